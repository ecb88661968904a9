//! What a provider reports about a cluster and about the versions it offers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::operation::Operation;
use crate::provider::ProviderKind;
use crate::version::KubeVersion;

/// Who rolls a pool's nodes during an upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolManagement {
    /// The provider replaces or upgrades the nodes itself (EKS managed node groups, AKS agent
    /// pools, GKE node pools).
    Provider,
    /// kup cordons, drains and upgrades each node (kubeadm workers, self-managed nodes).
    Kup,
    /// Nobody kup can drive (self-managed nodes in a managed cluster, Karpenter): reported,
    /// never upgraded by the plan.
    External,
}

/// A group of nodes that is upgraded together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePool {
    /// The pool's name.
    pub name: String,
    /// The pool's version: its oldest kubelet.
    pub version: KubeVersion,
    /// How many nodes it has, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<u32>,
    /// Who rolls its nodes.
    pub management: PoolManagement,
    /// Whether it runs the control plane (kubeadm control-plane nodes).
    #[serde(default)]
    pub control_plane: bool,
    /// The provider's own state for it (ACTIVE, Succeeded, RUNNING…), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A Kubernetes label selector matching the pool's nodes (`eks.amazonaws.com/nodegroup=ng-1`,
    /// `cloud.google.com/gke-nodepool=default-pool`, `kubernetes.azure.com/agentpool=np1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// The pool's node names, when the provider knows them (kubeadm inventories).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The provider release the pool runs within its version, for providers that can take a
    /// pool back to an earlier one of the same version (an EKS launch-template version); it
    /// is the same text as [`crate::RollbackOption::release`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

impl NodePool {
    /// A pool rolled by the provider.
    pub fn managed(name: impl Into<String>, version: KubeVersion) -> Self {
        Self {
            name: name.into(),
            version,
            node_count: None,
            management: PoolManagement::Provider,
            control_plane: false,
            status: None,
            node_selector: None,
            nodes: Vec::new(),
            release: None,
        }
    }

    /// Sets the provider release the pool runs.
    pub fn with_release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// Sets the label selector matching the pool's nodes.
    pub fn with_node_selector(mut self, selector: impl Into<String>) -> Self {
        self.node_selector = Some(selector.into());
        self
    }

    /// A pool whose nodes kup rolls itself.
    pub fn rolled_by_kup(name: impl Into<String>, version: KubeVersion) -> Self {
        Self {
            management: PoolManagement::Kup,
            ..Self::managed(name, version)
        }
    }
}

/// Orders two add-on versions (`v1.34.1-eksbuild.2`): semver after an optional `v`, build
/// suffixes compared as semver pre-release identifiers (numbers numerically). `None` when
/// either is not such a version, so callers never guess an order.
pub fn addon_version_cmp(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |s: &str| semver::Version::parse(s.trim().trim_start_matches('v')).ok();
    Some(parse(a)?.cmp(&parse(b)?))
}

/// An add-on installed in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addon {
    /// Its name (`vpc-cni`, `coredns`, `kube-proxy`…).
    pub name: String,
    /// The installed version, as the provider writes it.
    pub version: String,
    /// Whether the provider manages it (kup can upgrade it through the provider).
    pub managed: bool,
}

/// A cluster as the provider sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The provider.
    pub provider: ProviderKind,
    /// The cluster's name.
    pub name: String,
    /// The control plane's version (the oldest API server when they differ).
    pub control_plane: KubeVersion,
    /// Every API server's version when the provider can tell (kubeadm HA), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_servers: Vec<KubeVersion>,
    /// Node pools, control-plane pools included for kubeadm.
    pub node_pools: Vec<NodePool>,
    /// Add-ons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<Addon>,
    /// Operations the provider reports as running; a non-empty list makes the cluster busy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_progress: Vec<Operation>,
    /// The provider's own state for the cluster (ACTIVE, Succeeded, RUNNING…), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl ClusterInfo {
    /// Every pool's version, by name.
    pub fn pool_versions(&self) -> std::collections::BTreeMap<String, KubeVersion> {
        self.node_pools
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect()
    }

    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&NodePool> {
        self.node_pools.iter().find(|p| p.name == name)
    }

    /// True when the provider reports a running operation.
    pub fn is_busy(&self) -> bool {
        !self.in_progress.is_empty()
    }
}

/// A version's place in the provider's support lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SupportStatus {
    /// Before general availability (preview, rapid-only).
    Preview,
    /// In standard support.
    Standard,
    /// In extended or long-term support (EKS extended, AKS LTS, GKE Extended channel).
    Extended,
    /// Past its end of support; offered only to move away from it.
    Unsupported,
    /// The provider does not say.
    Unknown,
}

impl fmt::Display for SupportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Preview => "preview",
            Self::Standard => "standard",
            Self::Extended => "extended",
            Self::Unsupported => "unsupported",
            Self::Unknown => "unknown",
        })
    }
}

/// What an offered version may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionScope {
    /// Control plane and nodes.
    Both,
    /// Only the control plane.
    ControlPlane,
    /// Only node pools.
    Nodes,
}

/// A version the provider offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableVersion {
    /// The version (EKS and AKS offer minors such as `1.31`; GKE and kubeadm offer builds).
    pub version: KubeVersion,
    /// Where it is in the support lifecycle.
    pub support: SupportStatus,
    /// End of standard support, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_standard_support: Option<jiff::civil::Date>,
    /// End of extended support, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_extended_support: Option<jiff::civil::Date>,
    /// Whether the provider makes it the default for new clusters.
    #[serde(default)]
    pub default: bool,
    /// What it may be used for.
    pub scope: VersionScope,
    /// Release channels that carry it (GKE), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

impl AvailableVersion {
    /// A version usable for control plane and nodes with unknown support dates.
    pub fn new(version: KubeVersion, support: SupportStatus) -> Self {
        Self {
            version,
            support,
            end_of_standard_support: None,
            end_of_extended_support: None,
            default: false,
            scope: VersionScope::Both,
            channels: Vec::new(),
        }
    }

    /// Whether the control plane may move to it.
    pub fn for_control_plane(&self) -> bool {
        matches!(self.scope, VersionScope::Both | VersionScope::ControlPlane)
    }

    /// Whether node pools may move to it.
    pub fn for_nodes(&self) -> bool {
        matches!(self.scope, VersionScope::Both | VersionScope::Nodes)
    }
}

/// An add-on version change the provider recommends for a control-plane version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonUpgrade {
    /// The add-on.
    pub name: String,
    /// The installed version.
    pub from: String,
    /// The recommended version for `control_plane`.
    pub to: String,
    /// The control-plane version this recommendation is for.
    pub control_plane: KubeVersion,
    /// Whether the installed version still works with `control_plane`; when false the add-on
    /// must move right after the control plane reaches it.
    pub current_compatible: bool,
}
