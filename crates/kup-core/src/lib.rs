//! The pure domain of kup: Kubernetes versions, the version-skew policy, the upgrade path
//! planner, upgrade plans, and the [`UpgradeProvider`] trait every kind of cluster implements.
//!
//! Nothing here does I/O: providers (EKS, AKS, GKE, kubeadm) and the Kubernetes-facing code
//! live in other crates and meet here.
//!
//! ```
//! use kup_core::{KubeVersion, SkewPolicy};
//!
//! let kubelet: KubeVersion = "v1.29.3-eks-4d9e7a1".parse()?;
//! let api_server: KubeVersion = "1.33".parse()?;
//! assert_eq!(kubelet.minor_distance(&api_server), 4);
//! assert!(!SkewPolicy::upstream().kubelet_fits(&kubelet, &api_server));
//! # Ok::<(), kup_core::Error>(())
//! ```

pub mod cluster;
pub mod error;
pub mod event;
pub mod finding;
pub mod operation;
pub mod plan;
pub mod provider;
pub mod rollback;
pub mod skew;
pub mod version;

pub use cluster::{
    Addon, AddonUpgrade, AvailableVersion, ClusterInfo, NodePool, PoolManagement, SupportStatus,
    VersionScope, addon_version_cmp,
};
pub use error::{BoxError, Error, ErrorCategory, PlanError, Result};
pub use event::{Event, EventSink, NoEvents, Outcome, TimedEvent};
pub use finding::{Finding, ObjectRef, Severity};
pub use operation::{Operation, OperationStatus, OperationTarget, ProviderErrorDetail};
pub use plan::{
    PLAN_SCHEMA_VERSION, PlanKind, PlanOptions, PlanRequest, PlanStep, PoolMoveReason,
    RollbackRequest, StepAction, UpgradePlan, control_plane_path, plan, plan_rollback,
};
pub use provider::{
    AddonOptions, BackupOptions, BackupRecord, BackupSupport, Capabilities, ConflictResolution,
    ControlPlaneOptions, NodePoolOptions, PoolStrategy, ProviderKind, StuckDrainPolicy,
    UpgradeProvider,
};
pub use rollback::{
    ControlPlaneRollback, RollbackOffer, RollbackOption, RollbackPart, RollbackRefusal,
};
pub use skew::{Component, ComponentVersion, SkewPolicy, SkewRule, SkewViolation};
pub use version::KubeVersion;
