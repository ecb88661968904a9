//! Upgrade plans: the reviewable, storable list of steps from a cluster's state to a target.

mod planner;
mod render;
mod rollback;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cluster::PoolManagement;
use crate::error::{Error, Result};
use crate::provider::{BackupRecord, ProviderKind};
use crate::version::KubeVersion;

pub use planner::{PlanOptions, PlanRequest, control_plane_path, plan};
pub use rollback::{RollbackRequest, plan_rollback};

/// The plan JSON schema this crate writes and reads.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// Why a node pool moves at this point of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PoolMoveReason {
    /// The next control-plane hop would put the pool out of skew.
    Skew {
        /// The hop that would break skew.
        before_control_plane: KubeVersion,
    },
    /// The pool was already out of skew when the plan was made.
    AlreadyOutOfSkew,
    /// The pools end at the target.
    Target,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepAction {
    /// Pre-flight checks for the target; blockers stop the run here.
    Preflight {
        /// The target version checked against.
        target: KubeVersion,
    },
    /// Back up the control plane's state (etcd) and verify the backup.
    Backup {
        /// The control-plane version being backed up.
        control_plane: KubeVersion,
    },
    /// Move the control plane one hop (at most one minor).
    ControlPlane {
        /// From.
        from: KubeVersion,
        /// To.
        to: KubeVersion,
    },
    /// Move a node pool.
    NodePool {
        /// The pool.
        pool: String,
        /// From.
        from: KubeVersion,
        /// To (never newer than the control plane at that point).
        to: KubeVersion,
        /// Who rolls its nodes.
        management: PoolManagement,
        /// Why it moves now.
        #[serde(flatten)]
        reason: PoolMoveReason,
    },
    /// Move an add-on to a version that works with the control plane.
    Addon {
        /// The add-on.
        name: String,
        /// From.
        from: String,
        /// To.
        to: String,
        /// The control-plane version it is chosen for.
        control_plane: KubeVersion,
    },
    /// Move a node pool back to an earlier version (rollback plans): through the provider's
    /// rollback, or node by node where kup rolls the pool.
    PoolRollback {
        /// The pool.
        pool: String,
        /// From.
        from: KubeVersion,
        /// Back to (never older than the control plane's kubelet skew allows).
        to: KubeVersion,
        /// Who rolls its nodes.
        management: PoolManagement,
        /// The provider release it returns to with it, when the provider names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release: Option<String>,
        /// Where this way back comes from (the provider's offer).
        basis: String,
    },
    /// Return the control plane to a verified backup (kubeadm: the etcd snapshot restored on
    /// every control-plane node, with the packages and manifests of its version). Everything
    /// written to the cluster after the backup is lost.
    Restore {
        /// The control plane's version now.
        from: KubeVersion,
        /// The backup's control-plane version.
        to: KubeVersion,
        /// The backup, as verified when it was taken.
        backup: BackupRecord,
        /// The pools whose kubelets go back with it (the control-plane nodes').
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pools: Vec<String>,
    },
    /// Roll the control plane back through the provider (GKE, during the soak of a
    /// rollback-safe upgrade; EKS, within 7 days of an in-place upgrade).
    ControlPlaneRollback {
        /// From.
        from: KubeVersion,
        /// Back to.
        to: KubeVersion,
        /// Where this way back comes from (the provider's offer).
        basis: String,
    },
    /// Validate the cluster: nodes Ready at the expected versions, system pods, `/readyz`,
    /// workloads available, N consecutive passes.
    Validate {
        /// The expected control-plane version.
        control_plane: KubeVersion,
        /// The expected version of every pool at this point.
        pools: BTreeMap<String, KubeVersion>,
    },
}

impl StepAction {
    /// A short kind name (`control-plane`, `node-pool`…), as shown in the plan table.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Preflight { .. } => "preflight",
            Self::Backup { .. } => "backup",
            Self::ControlPlane { .. } => "control-plane",
            Self::NodePool { .. } => "node-pool",
            Self::Addon { .. } => "addon",
            Self::PoolRollback { .. } => "pool-rollback",
            Self::Restore { .. } => "restore",
            Self::ControlPlaneRollback { .. } => "control-plane-rollback",
            Self::Validate { .. } => "validate",
        }
    }

    /// Whether the step changes the cluster.
    pub fn changes_cluster(&self) -> bool {
        matches!(
            self,
            Self::ControlPlane { .. }
                | Self::NodePool { .. }
                | Self::Addon { .. }
                | Self::PoolRollback { .. }
                | Self::Restore { .. }
                | Self::ControlPlaneRollback { .. }
        )
    }
}

impl fmt::Display for StepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Preflight { target } => write!(f, "pre-flight checks for {target}"),
            Self::Backup { control_plane } => {
                write!(f, "back up and verify etcd at {control_plane}")
            }
            Self::ControlPlane { from, to } => write!(f, "control plane {from} → {to}"),
            Self::NodePool { pool, from, to, .. } => write!(f, "node pool {pool} {from} → {to}"),
            Self::Addon { name, from, to, .. } => write!(f, "add-on {name} {from} → {to}"),
            Self::PoolRollback { pool, from, to, .. } => {
                write!(f, "roll node pool {pool} back {from} → {to}")
            }
            Self::Restore { to, backup, .. } => write!(
                f,
                "restore the control plane to {to} from backup {}",
                backup.id
            ),
            Self::ControlPlaneRollback { from, to, .. } => {
                write!(f, "roll the control plane back {from} → {to}")
            }
            Self::Validate { control_plane, .. } => {
                write!(f, "validate the cluster at {control_plane}")
            }
        }
    }
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanStep {
    /// Its position, 1-based, stable for the plan's lifetime.
    pub index: usize,
    /// What it does.
    #[serde(flatten)]
    pub action: StepAction,
}

impl PlanStep {
    /// `actions` as steps numbered 1, 2, 3… in order.
    pub(crate) fn numbered(actions: Vec<StepAction>) -> Vec<Self> {
        actions
            .into_iter()
            .enumerate()
            .map(|(i, action)| Self {
                index: i + 1,
                action,
            })
            .collect()
    }
}

/// What a plan does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Moves the cluster forward to its target.
    #[default]
    Upgrade,
    /// Moves the cluster back towards where an upgrade started ([`plan_rollback`]).
    Rollback,
}

impl PlanKind {
    fn is_upgrade(&self) -> bool {
        *self == Self::Upgrade
    }
}

/// A plan: data that can be printed, reviewed, saved as JSON and executed later.
///
/// Its `id` is a hash of everything else, so a journal can tell whether it resumes the same
/// plan and a saved plan cannot be edited unnoticed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradePlan {
    /// The schema version ([`PLAN_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The content hash (16 hex digits).
    pub id: String,
    /// Upgrade or rollback (upgrade plans leave it out of their JSON, so their ids are those
    /// of earlier kups).
    #[serde(default, skip_serializing_if = "PlanKind::is_upgrade")]
    pub kind: PlanKind,
    /// The provider.
    pub provider: ProviderKind,
    /// The cluster's name.
    pub cluster: String,
    /// The control plane's version when planned.
    pub from: KubeVersion,
    /// The target.
    pub target: KubeVersion,
    /// Whether pools stay where they are unless skew forces them.
    pub control_plane_only: bool,
    /// The kubelet skew limit the plan respects.
    pub max_kubelet_skew: u32,
    /// Every pool's version when planned.
    pub pools: BTreeMap<String, KubeVersion>,
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
    /// What a rollback plan leaves where it is because the provider cannot move it back, each
    /// with the provider's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_rolled_back: Vec<crate::rollback::RollbackRefusal>,
}

impl UpgradePlan {
    pub(crate) fn seal(mut self) -> Self {
        self.id = self.content_hash();
        self
    }

    fn content_hash(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.id = String::new();
        // Serialising plain structs, BTreeMaps and Vecs is deterministic, so equal content gives
        // an equal id on every machine.
        let bytes = serde_json::to_vec(&unsealed).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        hex::encode(&digest[..8])
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a saved plan, refusing other schema versions, edited content, and plans that
    /// break the plan rules ([`UpgradePlan::validate`]) even with a recomputed id.
    pub fn from_json(text: &str) -> Result<Self> {
        let plan: Self = serde_json::from_str(text)
            .map_err(|e| Error::invalid_input("plan", format!("not a kup plan: {e}")))?;
        if plan.schema_version != PLAN_SCHEMA_VERSION {
            return Err(Error::invalid_input(
                "plan.schema_version",
                format!(
                    "schema version {} is not supported; this kup reads version {}",
                    plan.schema_version, PLAN_SCHEMA_VERSION
                ),
            ));
        }
        let expected = plan.content_hash();
        if plan.id != expected {
            return Err(Error::invalid_input(
                "plan.id",
                format!(
                    "the plan's content does not match its id {} (it hashes to {expected}); \
                     it was edited after planning. Make a new plan with `kup plan`",
                    plan.id
                ),
            ));
        }
        plan.validate()?;
        Ok(plan)
    }

    /// Node-pool steps in the plan.
    pub fn pool_upgrades(&self) -> impl Iterator<Item = &PlanStep> {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, StepAction::NodePool { .. }))
    }

    /// Control-plane steps in the plan.
    pub fn control_plane_hops(&self) -> impl Iterator<Item = &PlanStep> {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, StepAction::ControlPlane { .. }))
    }

    /// The step with this index.
    pub fn step(&self, index: usize) -> Option<&PlanStep> {
        self.steps.iter().find(|s| s.index == index)
    }
}
