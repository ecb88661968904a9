//! Rollback: what a provider can move back, as it says so itself.
//!
//! Providers differ in what they allow, and kup only plans what the provider truly offers:
//! a kubeadm control plane goes back by restoring the verified etcd snapshot of the run, a
//! GKE control plane only during the soak of a rollback-safe upgrade, an EKS one only one
//! minor and within 7 days of an in-place upgrade, an AKS one not at all; pools go back
//! through the provider (GKE's rollback, an AKS pool profile's recently used versions, an EKS
//! node group's previous launch template version) or, where kup
//! rolls them, node by node. [`crate::UpgradeProvider::rollback_offer`] reports what is
//! possible now and, for what is not, the provider's own wording of the limit; the rollback
//! planner ([`crate::plan_rollback`]) turns it into a reviewable plan.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::version::KubeVersion;

/// How a provider can return the control plane to an earlier version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlPlaneRollback {
    /// It cannot: a failed upgrade is fixed forward.
    #[default]
    Unsupported,
    /// By restoring a verified backup taken before the upgrade (kubeadm's etcd snapshot).
    RestoreBackup,
    /// Through the provider, while the provider's window after an upgrade lasts (GKE's soak
    /// of a rollback-safe upgrade, EKS's 7 days after an in-place upgrade), when
    /// [`crate::UpgradeProvider::rollback_offer`] offers it.
    DuringSoak,
}

/// The part of a cluster a rollback moves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum RollbackPart {
    /// The control plane.
    ControlPlane,
    /// A node pool.
    NodePool {
        /// The pool.
        pool: String,
    },
}

impl RollbackPart {
    /// The part for pool `pool`.
    pub fn pool(pool: impl Into<String>) -> Self {
        Self::NodePool { pool: pool.into() }
    }
}

impl fmt::Display for RollbackPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ControlPlane => f.write_str("control plane"),
            Self::NodePool { pool } => write!(f, "node pool {pool}"),
        }
    }
}

/// One way back the provider offers now.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RollbackOption {
    /// What moves.
    pub part: RollbackPart,
    /// The Kubernetes version it returns to.
    pub to: KubeVersion,
    /// The provider release it returns to with it (node image, AMI release, launch-template
    /// version), when the provider names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Where the option comes from, for the plan's reader (`recentlyUsedVersions entry of
    /// 2026-11-30T10:00:00Z`, `the upgrade in progress`).
    pub basis: String,
}

/// Something the provider cannot move back now, and why, in its words.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RollbackRefusal {
    /// What cannot move back.
    pub part: RollbackPart,
    /// The provider's reason.
    pub reason: String,
}

/// What a provider can move back now, and what it refuses to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOffer {
    /// The ways back, any number per part (newest first).
    #[serde(default)]
    pub options: Vec<RollbackOption>,
    /// What cannot move back, with the reason.
    #[serde(default)]
    pub refusals: Vec<RollbackRefusal>,
}

impl RollbackOffer {
    /// Adds an option.
    pub fn offer(mut self, option: RollbackOption) -> Self {
        self.options.push(option);
        self
    }

    /// Adds a refusal.
    pub fn refuse(mut self, part: RollbackPart, reason: impl Into<String>) -> Self {
        self.refusals.push(RollbackRefusal {
            part,
            reason: reason.into(),
        });
        self
    }

    /// The options for `part`, newest first.
    pub fn options_for<'a>(
        &'a self,
        part: &'a RollbackPart,
    ) -> impl Iterator<Item = &'a RollbackOption> + 'a {
        self.options.iter().filter(move |o| o.part == *part)
    }

    /// The provider's reason for not moving `part` back, when it gave one.
    pub fn refusal(&self, part: &RollbackPart) -> Option<&str> {
        self.refusals
            .iter()
            .find(|r| r.part == *part)
            .map(|r| r.reason.as_str())
    }
}
