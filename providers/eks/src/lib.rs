//! The Amazon EKS provider for kup, on `aws-sdk-eks`.
//!
//! - versions from DescribeClusterVersions (standard and extended support, end dates);
//! - the cluster from DescribeCluster, its managed node groups and add-ons, and running
//!   updates (an update in progress makes the cluster busy);
//! - control-plane updates (UpdateClusterVersion), managed node group updates
//!   (UpdateNodegroupVersion, launch-template aware, `force` only when asked), add-on updates
//!   (DescribeAddonVersions → UpdateAddon with `resolveConflicts: PRESERVE` by default), all
//!   polled through DescribeUpdate with EKS's own error list;
//! - pre-flight from upgrade-readiness insights, and nodes outside managed node groups.
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

pub use builder::EksBuilder;
pub use error::{Error, Result};
pub use provider::{
    CONTROL_PLANE_ROLLBACK_REFUSAL, EksProvider, EksSettings, NODE_GROUP_ROLLBACK_REFUSAL,
    NODEGROUP_LABEL,
};
