//! The Amazon EKS provider for kup, on `aws-sdk-eks`.
//!
//! - versions from DescribeClusterVersions (standard and extended support, end dates);
//! - the cluster from DescribeCluster, its managed node groups and add-ons, and running
//!   updates (an update in progress makes the cluster busy);
//! - control-plane updates (UpdateClusterVersion), managed node group updates
//!   (UpdateNodegroupVersion, launch-template aware, `force` only when asked), add-on updates
//!   (DescribeAddonVersions → UpdateAddon with `resolveConflicts: PRESERVE` by default), all
//!   polled through DescribeUpdate with EKS's own error list;
//! - pre-flight from upgrade-readiness insights, and nodes outside managed node groups;
//! - node-group rollbacks to the launch template version before the last update, read from
//!   the group's update history (EKS takes no group back to an earlier Kubernetes version or
//!   AMI release, and kup says so in EKS's words);
//! - control-plane rollbacks by EKS version rollback (UpdateClusterVersion with
//!   `rollbackConfig`, a `VersionRollback` update): one minor back, within 7 days of an
//!   in-place upgrade recorded in the cluster's update history, while no node group is newer
//!   than the version it returns to; refused in EKS's terms otherwise.
//!
//! ```no_run
//! # async fn demo() -> kup_core::Result<()> {
//! use kup_core::UpgradeProvider;
//! let eks = kup_eks::EksBuilder::from_env()
//!     .cluster_name("prod-1")
//!     .region("us-west-2")
//!     .build()
//!     .await?;
//! for v in eks.available_versions().await? {
//!     println!("{} {}", v.version, v.support);
//! }
//! # Ok(()) }
//! ```

mod builder;
pub mod error;
mod insights;
mod provider;
mod rollback;

pub use builder::EksBuilder;
pub use error::{Error, Result};
pub use provider::{CONTROL_PLANE_ROLLBACK_REFUSAL, EksProvider, EksSettings, NODEGROUP_LABEL};
pub use rollback::NODE_GROUP_ROLLBACK_REFUSAL;
