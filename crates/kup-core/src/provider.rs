//! The provider abstraction: one trait that every kind of cluster implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::cluster::{AddonUpgrade, AvailableVersion, ClusterInfo};
use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::operation::{Operation, OperationStatus};
use crate::rollback::{ControlPlaneRollback, RollbackOffer, RollbackOption};
use crate::version::KubeVersion;

/// The kinds of cluster kup upgrades.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderKind {
    /// Self-managed clusters built with kubeadm.
    Kubeadm,
    /// Amazon EKS.
    Eks,
    /// Azure AKS.
    Aks,
    /// Google GKE.
    Gke,
    /// A provider written outside kup (embedders, tests).
    Other(String),
}

impl ProviderKind {
    /// The names accepted by [`ProviderKind::from_str`].
    pub const ACCEPTED: &'static str = "kubeadm, eks, aks, gke";

    /// The lowercase name used in flags, config files and JSON.
    pub fn name(&self) -> &str {
        match self {
            Self::Kubeadm => "kubeadm",
            Self::Eks => "eks",
            Self::Aks => "aks",
            Self::Gke => "gke",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kubeadm => "kubeadm",
            Self::Eks => "EKS",
            Self::Aks => "AKS",
            Self::Gke => "GKE",
            Self::Other(name) => name,
        })
    }
}

impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kubeadm" => Ok(Self::Kubeadm),
            "eks" => Ok(Self::Eks),
            "aks" => Ok(Self::Aks),
            "gke" => Ok(Self::Gke),
            _ => Err(Error::invalid_input(
                "provider",
                format!(
                    "unknown provider {s:?}; accepted values: {}",
                    Self::ACCEPTED
                ),
            )),
        }
    }
}

/// Whether and how a provider backs the cluster up before the control plane moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupSupport {
    /// The provider keeps the control plane's state itself (managed clusters).
    #[default]
    ProviderManaged,
    /// kup takes a backup, and plans put it before the first control-plane step.
    Required,
}

/// What a provider can do, declared by the provider and never guessed.
///
/// Every flag is enforced: the planner plans only what is declared (pool upgrades, single-node
/// upgrades, add-ons, backups, pool jumps, skew), the engine refuses at build time pool options
/// a provider cannot honour (surge, blue-green, unavailability), and the behaviour suite checks
/// that what is declared false answers [`Error::NotSupported`].
///
/// It is `#[non_exhaustive]`: start from [`Capabilities::new`] and set what the provider does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The most minors a kubelet may lag the control plane on this provider (upstream: 3).
    pub max_kubelet_skew: u32,
    /// The most minors one node-pool upgrade may move a pool (`None`: any distance within
    /// skew, up to the control plane's version).
    pub max_node_pool_minor_jump: Option<u32>,
    /// Whether the control-plane target names a patch (kubeadm, GKE, AKS) or only a minor,
    /// the provider choosing the patch (EKS).
    pub control_plane_patch_selectable: bool,
    /// Whether node pools can be upgraded through the provider.
    pub node_pool_upgrade: bool,
    /// Whether single nodes can be upgraded in place after kup drained them (kubeadm).
    pub node_upgrade: bool,
    /// Whether the provider drains nodes itself (during its pool upgrades and, on kubeadm,
    /// while it moves control-plane nodes). When false, a provider-rolled pool's nodes are
    /// replaced without a drain unless kup drains them ahead (`drain_ahead`), and pre-flight
    /// reports it.
    pub provider_drains_nodes: bool,
    /// Whether add-ons are managed by the provider and upgraded through it.
    pub managed_addons: bool,
    /// Backups before the control plane moves.
    pub backup: BackupSupport,
    /// Whether provider-rolled pool upgrades accept a surge (`NodePoolOptions::max_surge`).
    pub surge_upgrades: bool,
    /// Whether provider-rolled pool upgrades accept an unavailability limit
    /// (`NodePoolOptions::max_unavailable`). kup-rolled pools always do: kup batches them.
    pub pool_max_unavailable: bool,
    /// Whether pool upgrades can be blue-green (`PoolStrategy::BlueGreen`).
    pub blue_green_upgrades: bool,
    /// Whether the provider moves the control plane. When false (a cluster kup only checks,
    /// validates and drains), plans that move it are refused, naming [`Self::upgrade_tool`].
    #[serde(default = "yes")]
    pub control_plane_upgrade: bool,
    /// What upgrades the cluster where the provider does not (the distribution's own tool),
    /// named in refusals of what is not declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_tool: Option<String>,
    /// How the control plane can go back to an earlier version, if at all.
    #[serde(default)]
    pub control_plane_rollback: ControlPlaneRollback,
    /// Whether provider-rolled pools can go back to an earlier version through the provider
    /// ([`UpgradeProvider::rollback_node_pool`]); pools kup rolls go back node by node with
    /// `node_upgrade`.
    #[serde(default)]
    pub node_pool_rollback: bool,
}

fn yes() -> bool {
    true
}

impl Capabilities {
    /// Upstream's skew limit and nothing else; a provider sets what it can do.
    pub fn new() -> Self {
        Self::default()
    }

    /// These capabilities changed by `set`, for declaring them in one expression:
    /// `Capabilities::new().with(|c| c.node_pool_upgrade = true)`.
    pub fn with(mut self, set: impl FnOnce(&mut Self)) -> Self {
        set(&mut self);
        self
    }

    /// Checks provider-facing pool options against what is declared; the error names the
    /// option (`field` is its path, e.g. `pools.apps`) and what the provider accepts.
    pub fn check_pool_options(
        &self,
        provider: &ProviderKind,
        field: &str,
        opts: &NodePoolOptions,
    ) -> Result<()> {
        if opts.max_surge.is_some() && !self.surge_upgrades {
            return Err(Error::invalid_input(
                format!("{field}.max_surge"),
                format!("{provider} pool upgrades take no surge setting; leave max_surge unset"),
            ));
        }
        if opts.max_unavailable.is_some() && !self.pool_max_unavailable {
            return Err(Error::invalid_input(
                format!("{field}.max_unavailable"),
                format!(
                    "{provider} rolls its pools with its own unavailability setting; leave \
                     max_unavailable unset for its pools (it applies to pools kup rolls)"
                ),
            ));
        }
        if opts.strategy == PoolStrategy::BlueGreen && !self.blue_green_upgrades {
            return Err(Error::invalid_input(
                format!("{field}.strategy"),
                format!("{provider} cannot upgrade pools blue-green; accepted values: surge"),
            ));
        }
        if opts.force && !self.provider_drains_nodes {
            return Err(Error::invalid_input(
                format!("{field}.force"),
                format!(
                    "{provider} does not drain nodes itself, so there is no provider drain to \
                     force; leave force unset"
                ),
            ));
        }
        Ok(())
    }
}

impl Default for Capabilities {
    /// Upstream's skew limit and nothing else: a provider adds what it can do.
    fn default() -> Self {
        Self {
            max_kubelet_skew: 3,
            max_node_pool_minor_jump: None,
            control_plane_patch_selectable: true,
            node_pool_upgrade: false,
            node_upgrade: false,
            provider_drains_nodes: false,
            managed_addons: false,
            backup: BackupSupport::ProviderManaged,
            surge_upgrades: false,
            pool_max_unavailable: false,
            blue_green_upgrades: false,
            control_plane_upgrade: true,
            upgrade_tool: None,
            control_plane_rollback: ControlPlaneRollback::Unsupported,
            node_pool_rollback: false,
        }
    }
}

/// Options for a control-plane upgrade.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneOptions {
    /// Proceed past the provider's own readiness checks (EKS insights, AKS deprecated-API
    /// block). Off by default; only an explicit user choice sets it.
    #[serde(default)]
    pub force: bool,
}

/// How a pool's nodes are replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolStrategy {
    /// Surge: new nodes join, old ones are drained a few at a time.
    #[default]
    Surge,
    /// Blue-green: a whole new set of nodes, then the old set is drained.
    BlueGreen,
}

/// What to do with a node whose drain does not finish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StuckDrainPolicy {
    /// Fail the run; the node stays cordoned and is recorded.
    #[default]
    Fail,
    /// Leave the node cordoned, record it, and continue with the next one.
    CordonAndContinue,
}

impl StuckDrainPolicy {
    /// The names accepted by [`StuckDrainPolicy::from_str`].
    pub const ACCEPTED: &'static str = "fail, cordon-and-continue";
}

impl FromStr for StuckDrainPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(Self::Fail),
            "cordon-and-continue" => Ok(Self::CordonAndContinue),
            _ => Err(Error::invalid_input(
                "on-stuck-drain",
                format!("unknown policy {s:?}; accepted values: {}", Self::ACCEPTED),
            )),
        }
    }
}

/// Options a provider receives for a pool upgrade it rolls itself. What kup does around it
/// (drain timeouts, stuck drains, batches of kup-rolled pools) is the engine's, not the
/// provider's. A provider honours only what its [`Capabilities`] declare; the engine refuses
/// the rest before anything runs ([`Capabilities::check_pool_options`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePoolOptions {
    /// Extra nodes during the upgrade (a count or a percentage such as `33%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<String>,
    /// Nodes that may be unavailable at once (a count or a percentage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
    /// How nodes are replaced.
    #[serde(default)]
    pub strategy: PoolStrategy,
    /// Let the provider evict past PodDisruptionBudgets (EKS `force`). Off by default.
    #[serde(default)]
    pub force: bool,
    /// A provider release (AMI release, node image) to move to instead of the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<String>,
}

/// How an add-on upgrade treats fields changed in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictResolution {
    /// Keep values changed in the cluster.
    #[default]
    Preserve,
    /// Overwrite them with the add-on's defaults.
    Overwrite,
    /// Fail when there is a conflict.
    None,
}

/// Options for an add-on upgrade.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonOptions {
    /// Conflict handling; `Preserve` by default.
    #[serde(default)]
    pub resolve_conflicts: ConflictResolution,
}

/// Options for a backup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOptions {
    /// Where to keep the backup on the machine running kup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<std::path::PathBuf>,
}

/// A verified backup.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackupRecord {
    /// An id unique to this backup.
    pub id: String,
    /// Where the file is kept.
    pub location: String,
    /// When it was taken.
    pub taken_at: jiff::Timestamp,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The store's own integrity hash (etcd's snapshot hash), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_hash: Option<u64>,
    /// The store's revision at the snapshot (etcd), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// How many keys it holds (etcd), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_keys: Option<u64>,
    /// The control-plane version when it was taken.
    pub control_plane: KubeVersion,
}

/// One kind of cluster, bound to one cluster.
///
/// Implementations map their API errors into [`Error`] in one place and declare what they can
/// do in [`Capabilities`]; an operation they cannot do returns [`Error::NotSupported`] (the
/// default for the optional methods), and the planner never plans it.
#[async_trait]
pub trait UpgradeProvider: Send + Sync + fmt::Debug {
    /// The kind of provider.
    fn kind(&self) -> ProviderKind;

    /// The cluster this provider is bound to (used for locks and journals).
    fn cluster_name(&self) -> &str;

    /// What the provider can do.
    fn capabilities(&self) -> Capabilities;

    /// The cluster as it is now.
    async fn cluster(&self) -> Result<ClusterInfo>;

    /// The versions the provider offers, oldest first.
    async fn available_versions(&self) -> Result<Vec<AvailableVersion>>;

    /// Starts moving the control plane to `to` (one minor at most).
    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        opts: &ControlPlaneOptions,
    ) -> Result<Operation>;

    /// Starts moving a pool to `to`.
    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        opts: &NodePoolOptions,
    ) -> Result<Operation> {
        let _ = (pool, to, opts);
        Err(Error::not_supported(self.kind(), "node pool upgrades"))
    }

    /// Upgrades one node that kup has already cordoned and drained (kup-rolled pools).
    async fn upgrade_node(&self, pool: &str, node: &str, to: &KubeVersion) -> Result<Operation> {
        let _ = (pool, node, to);
        Err(Error::not_supported(self.kind(), "single-node upgrades"))
    }

    /// The add-on changes recommended for a control-plane version.
    async fn addon_upgrades(&self, control_plane: &KubeVersion) -> Result<Vec<AddonUpgrade>> {
        let _ = control_plane;
        Ok(Vec::new())
    }

    /// Starts an add-on upgrade.
    async fn upgrade_addon(
        &self,
        upgrade: &AddonUpgrade,
        opts: &AddonOptions,
    ) -> Result<Operation> {
        let _ = (upgrade, opts);
        Err(Error::not_supported(self.kind(), "add-on upgrades"))
    }

    /// Where an operation stands.
    async fn poll(&self, op: &Operation) -> Result<OperationStatus>;

    /// Provider-native readiness checks for moving to `to`.
    async fn preflight(&self, to: &KubeVersion) -> Result<Vec<Finding>> {
        let _ = to;
        Ok(Vec::new())
    }

    /// Takes and verifies a backup of the control plane's state.
    async fn backup(&self, opts: &BackupOptions) -> Result<BackupRecord> {
        let _ = opts;
        Err(Error::not_supported(self.kind(), "backups"))
    }

    /// Restores a backup taken by [`UpgradeProvider::backup`] (the control plane's rollback
    /// where [`Capabilities::control_plane_rollback`] is
    /// [`ControlPlaneRollback::RestoreBackup`]).
    async fn restore(&self, backup: &BackupRecord) -> Result<Operation> {
        let _ = backup;
        Err(Error::not_supported(self.kind(), "restore"))
    }

    /// What the provider can move back now, and, for what it cannot, its own wording of the
    /// limit. Rollback planning reads it; the default offers nothing.
    async fn rollback_offer(&self) -> Result<RollbackOffer> {
        Ok(RollbackOffer::default())
    }

    /// Starts moving a provider-rolled pool back to one of the options
    /// [`UpgradeProvider::rollback_offer`] gave.
    async fn rollback_node_pool(
        &self,
        pool: &str,
        to: &RollbackOption,
        opts: &NodePoolOptions,
    ) -> Result<Operation> {
        let _ = (pool, to, opts);
        Err(Error::not_supported(self.kind(), "node pool rollbacks"))
    }

    /// Starts moving the control plane back to an option [`UpgradeProvider::rollback_offer`]
    /// gave (where [`Capabilities::control_plane_rollback`] is
    /// [`ControlPlaneRollback::DuringSoak`]).
    async fn rollback_control_plane(&self, to: &RollbackOption) -> Result<Operation> {
        let _ = to;
        Err(Error::not_supported(self.kind(), "control-plane rollbacks"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn provider_names_parse_and_reject_with_accepted_values() {
        assert_eq!("EKS".parse::<ProviderKind>().unwrap(), ProviderKind::Eks);
        assert_eq!(
            "kubeadm".parse::<ProviderKind>().unwrap(),
            ProviderKind::Kubeadm
        );
        let err = "openshift".parse::<ProviderKind>().unwrap_err().to_string();
        assert!(err.contains("provider"), "{err}");
        assert!(err.contains("openshift"), "{err}");
        assert!(err.contains("kubeadm, eks, aks, gke"), "{err}");
    }

    #[test]
    fn stuck_drain_policy_parses() {
        assert_eq!(
            "cordon-and-continue".parse::<StuckDrainPolicy>().unwrap(),
            StuckDrainPolicy::CordonAndContinue
        );
        let err = "skip".parse::<StuckDrainPolicy>().unwrap_err().to_string();
        assert!(err.contains("on-stuck-drain") && err.contains("fail, cordon-and-continue"));
    }

    #[test]
    fn pool_options_round_trip() {
        let opts = NodePoolOptions {
            max_surge: Some("2".into()),
            max_unavailable: Some("1".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&opts).unwrap();
        let back: NodePoolOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, opts);
    }

    #[test]
    fn pool_options_a_provider_cannot_honour_are_refused_by_name() {
        let caps = Capabilities::new();
        let kind = ProviderKind::Eks;
        let ok = NodePoolOptions::default();
        assert!(caps.check_pool_options(&kind, "pools.apps", &ok).is_ok());
        for (opts, field) in [
            (
                NodePoolOptions {
                    max_surge: Some("1".into()),
                    ..Default::default()
                },
                "pools.apps.max_surge",
            ),
            (
                NodePoolOptions {
                    max_unavailable: Some("1".into()),
                    ..Default::default()
                },
                "pools.apps.max_unavailable",
            ),
            (
                NodePoolOptions {
                    strategy: PoolStrategy::BlueGreen,
                    ..Default::default()
                },
                "pools.apps.strategy",
            ),
            (
                NodePoolOptions {
                    force: true,
                    ..Default::default()
                },
                "pools.apps.force",
            ),
        ] {
            let err = caps
                .check_pool_options(&kind, "pools.apps", &opts)
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err}");
        }
        let mut all = Capabilities::new();
        all.surge_upgrades = true;
        all.pool_max_unavailable = true;
        all.blue_green_upgrades = true;
        all.provider_drains_nodes = true;
        let every = NodePoolOptions {
            max_surge: Some("1".into()),
            max_unavailable: Some("1".into()),
            strategy: PoolStrategy::BlueGreen,
            force: true,
            release_version: None,
        };
        assert!(all.check_pool_options(&kind, "pools.apps", &every).is_ok());
    }
}
