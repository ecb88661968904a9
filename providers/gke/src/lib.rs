//! The Google GKE provider for kup, on `google-cloud-container-v1` (REST/JSON, rustls on
//! aws-lc-rs, no protoc).
//!
//! - versions from `get_server_config` (valid master and node versions, release channels and
//!   their defaults), with end-of-support dates from `fetch_cluster_upgrade_info`;
//! - the cluster from `get_cluster` with its node pools; any running operation makes it busy;
//!   the release channel is reported with its status;
//! - control-plane upgrades (`update_master`) and node-pool upgrades (`update_node_pool`, surge
//!   with `maxSurge`/`maxUnavailable` or blue-green with batches and soaks), polled with
//!   `get_operation` (`DONE` with `error` set is a failure); [`GkeProvider::cancel`],
//!   [`GkeProvider::rollback_node_pool_upgrade`] and
//!   [`GkeProvider::complete_node_pool_upgrade`];
//! - rollback ([`kup_core::UpgradeProvider::rollback_offer`]): a pool whose upgrade was
//!   cancelled or failed, or whose blue-green upgrade has not yet deleted its blue pool, goes
//!   back through `rollback_node_pool_upgrade`; a control plane upgraded rollback-safe
//!   ([`GkeSettings::control_plane_soak`]) goes back while it soaks (`update_master` to
//!   `rollbackSafeUpgradeStatus.previousVersion`), until
//!   [`GkeProvider::complete_control_plane_upgrade`] or the soak's end;
//! - pre-flight from GKE's upgrade info, maintenance windows and exclusions, the add-ons GKE
//!   moves itself, and the PodDisruptionBudgets GKE overrides after an hour.
//!
//! ```no_run
//! # async fn demo() -> kup_core::Result<()> {
//! use kup_core::UpgradeProvider;
//! let gke = kup_gke::GkeBuilder::from_env()
//!     .project("my-project-123")
//!     .location("us-central1")
//!     .cluster("prod-1")
//!     .build()
//!     .await?;
//! for v in gke.available_versions().await? {
//!     println!("{} {}", v.version, v.support);
//! }
//! # Ok(()) }
//! ```

mod builder;
pub mod error;
mod preflight;
mod provider;

pub use builder::GkeBuilder;
pub use error::{Error, Result};
pub use provider::{CONTROL_PLANE_ROLLBACK_REFUSAL, GkeProvider, GkeSettings, NODE_POOL_LABEL};
