//! What the AKS mock is configured with: the region's version catalogue, timings, and the
//! managed clusters it starts with.

use std::time::Duration;

/// One minor in the region's catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AksVersion {
    /// `1.34`.
    pub minor: String,
    /// Its patches, oldest first (`1.34.1`, `1.34.2`).
    pub patches: Vec<String>,
    /// Preview only.
    pub preview: bool,
    /// Only under AKS's long-term support plan.
    pub lts_only: bool,
    /// The region's default for new clusters.
    pub default: bool,
}

impl AksVersion {
    /// A generally available minor with these patches.
    pub fn new(minor: &str, patches: &[&str]) -> Self {
        Self {
            minor: minor.into(),
            patches: patches.iter().map(|p| format!("{minor}.{p}")).collect(),
            preview: false,
            lts_only: false,
            default: false,
        }
    }

    /// Marks it preview.
    pub fn preview(mut self) -> Self {
        self.preview = true;
        self
    }

    /// Marks it LTS-only.
    pub fn lts_only(mut self) -> Self {
        self.lts_only = true;
        self
    }

    /// Marks it the default.
    pub fn default_version(mut self) -> Self {
        self.default = true;
        self
    }
}

/// The catalogue the demo region offers: 1.31 (LTS only) to 1.36 (preview), 1.34 default.
pub fn standard_versions() -> Vec<AksVersion> {
    vec![
        AksVersion::new("1.31", &["8", "10"]).lts_only(),
        AksVersion::new("1.32", &["6", "7"]),
        AksVersion::new("1.33", &["3", "5"]),
        AksVersion::new("1.34", &["1", "2"]).default_version(),
        AksVersion::new("1.35", &["0", "1"]),
        AksVersion::new("1.36", &["0"]).preview(),
    ]
}

/// Whether an agent pool runs system pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// `System`.
    System,
    /// `User`.
    User,
}

impl PoolMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::System => "System",
            Self::User => "User",
        }
    }
}

/// An agent pool the mock starts with.
#[derive(Clone, Debug)]
pub struct AksPool {
    /// Its name.
    pub name: String,
    /// System or User.
    pub mode: PoolMode,
    /// Node count.
    pub count: u32,
    /// `orchestratorVersion` (a patch, `1.33.5`).
    pub version: String,
    /// `upgradeSettings.maxSurge`.
    pub max_surge: String,
}

impl AksPool {
    /// A pool of `count` nodes at `version`, surging one node at a time.
    pub fn new(name: &str, mode: PoolMode, count: u32, version: &str) -> Self {
        Self {
            name: name.into(),
            mode,
            count,
            version: version.into(),
            max_surge: "1".into(),
        }
    }
}

/// A managed cluster the mock starts with.
#[derive(Clone, Debug)]
pub struct AksCluster {
    /// Its name.
    pub name: String,
    /// `currentKubernetesVersion`.
    pub version: String,
    /// Its agent pools.
    pub pools: Vec<AksPool>,
}

/// The demo cluster: `demo` at 1.33.5 with a System pool `system` (2 nodes) and a User pool
/// `apps` (3 nodes), matching [`super::demo_scenario`].
pub fn demo_cluster() -> AksCluster {
    AksCluster {
        name: "demo".into(),
        version: "1.33.5".into(),
        pools: vec![
            AksPool::new("system", PoolMode::System, 2, "1.33.5"),
            AksPool::new("apps", PoolMode::User, 3, "1.33.5"),
        ],
    }
}

/// The mock's configuration.
#[derive(Clone, Debug)]
pub struct AksConfig {
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// The subscription every path must name.
    pub subscription: String,
    /// The resource group the clusters live in.
    pub resource_group: String,
    /// The region.
    pub location: String,
    /// The region's versions.
    pub versions: Vec<AksVersion>,
    /// The node image new nodes get.
    pub node_image: String,
    /// How long a control-plane upgrade takes (simulated).
    pub control_plane_duration: Duration,
    /// `Retry-After` on operation answers (simulated; sent scaled, in `retry-after-ms` too).
    pub retry_after: Duration,
    /// Agent pools per page of `agentPools`.
    pub page_size: usize,
    /// The clusters it starts with.
    pub clusters: Vec<AksCluster>,
}

/// The subscription of the demo configuration.
pub const DEMO_SUBSCRIPTION: &str = "3f2c9a1e-5b7d-4c8e-9f0a-1b2c3d4e5f60";
/// The resource group of the demo configuration.
pub const DEMO_RESOURCE_GROUP: &str = "rg-demo";

impl AksConfig {
    /// The demo region (westeurope) with [`demo_cluster`].
    pub fn demo() -> Self {
        Self {
            time_scale: 1.0,
            subscription: DEMO_SUBSCRIPTION.into(),
            resource_group: DEMO_RESOURCE_GROUP.into(),
            location: "westeurope".into(),
            versions: standard_versions(),
            node_image: "AKSUbuntu-2204gen2containerd-202511.07.0".into(),
            control_plane_duration: Duration::from_secs(8 * 60),
            retry_after: Duration::from_secs(15),
            page_size: 50,
            clusters: vec![demo_cluster()],
        }
    }

    /// Sets the time scale.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale.max(0.001);
        self
    }

    /// Sets the page size of `agentPools`.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }
}
