//! The Azure AKS provider for kup, on Azure Resource Manager.
//!
//! There is no maintained container-service crate: `azure_mgmt_containerservice` speaks only
//! 2022–2023 preview api-versions that AKS retires, never polls long-running operations, and
//! is no longer built by its maintainers; the official new SDK has no container-service crate
//! yet. So this crate talks to ARM through the official, maintained `azure_core` 1.x pipeline
//! (retries honouring `Retry-After`, bearer tokens) and `azure_identity` 1.x credentials, with
//! a small typed client for the calls upgrades need, at a stable api-version that is a setting
//! ([`DEFAULT_API_VERSION`] by default).
//!
//! - versions from the region's `kubernetesVersions` (patches, preview and LTS-only minors) and
//!   the cluster's upgrade profile (what the control plane may move to);
//! - the cluster from the managed cluster and its agent pools; a `provisioningState` other than
//!   `Succeeded`, `Failed` or `Canceled` makes the cluster busy, `Failed` is reported as the
//!   cluster's status and does not stop a new upgrade (AKS allows one);
//! - control-plane-only upgrades (PUT of the managed cluster with a new `kubernetesVersion`,
//!   pools untouched; `force` sets `upgradeSettings.overrideSettings.forceUpgrade`), agent-pool
//!   upgrades (PUT of the pool's `orchestratorVersion` with `upgradeSettings`), node-image-only
//!   upgrades and aborts, each followed through `Azure-AsyncOperation` (or `Location` on 202)
//!   honouring `Retry-After`;
//! - ARM's answers mapped once, in [`error`]: 409 `OperationNotAllowed` busy, the removed-API
//!   block (`subcode` `UpgradeBlockedOnDeprecatedAPIUsage`) a precondition, 400 invalid input,
//!   401/403 permission, 404 not found, 429 and 5xx retryable.
//!
//! ```no_run
//! # async fn demo() -> kup_core::Result<()> {
//! use kup_core::UpgradeProvider;
//! let aks = kup_aks::AksBuilder::from_env()
//!     .resource_group("rg-prod")
//!     .cluster("prod-1")
//!     .build()?;
//! for v in aks.available_versions().await? {
//!     println!("{} {}", v.version, v.support);
//! }
//! # Ok(()) }
//! ```

mod arm;
mod builder;
mod credential;
pub mod error;
mod models;
mod provider;

pub use builder::{ACCESS_TOKEN_ENV, AksBuilder, DEFAULT_API_VERSION, DEFAULT_ENDPOINT};
pub use credential::{DefaultChain, StaticToken};
pub use error::{Error, Result};
pub use provider::{AGENTPOOL_LABEL, AksProvider, AksSettings, CONTROL_PLANE_ROLLBACK_REFUSAL};
