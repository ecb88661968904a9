//! What a GKE mock starts with: the project and location, the versions GKE offers, clusters
//! with their node pools, release channel and maintenance policy, and its timings.

use std::time::Duration;

/// A node pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkePool {
    /// Its name; its nodes carry the label `cloud.google.com/gke-nodepool=<name>`.
    pub name: String,
    /// Its full GKE version (`1.33.5-gke.1080000`).
    pub version: String,
    /// Node count.
    pub node_count: u32,
    /// `upgradeSettings.maxSurge` when the upgrade request sends none.
    pub max_surge: u32,
    /// `upgradeSettings.maxUnavailable` when the upgrade request sends none.
    pub max_unavailable: u32,
}

impl GkePool {
    /// A pool at `version` with `count` nodes, surging one node at a time (GKE's default).
    pub fn new(name: impl Into<String>, version: impl Into<String>, count: u32) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            node_count: count,
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

/// A maintenance exclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkeExclusion {
    /// Its name.
    pub name: String,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// `NO_UPGRADES`, `NO_MINOR_UPGRADES` or `NO_MINOR_OR_NODE_UPGRADES`.
    pub scope: String,
}

/// A cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkeCluster {
    /// Its name.
    pub name: String,
    /// The control plane's full version.
    pub master_version: String,
    /// Node pools.
    pub pools: Vec<GkePool>,
    /// Release channel (`REGULAR`), or `UNSPECIFIED` for a static version.
    pub channel: String,
    /// A recurring maintenance window (start, end, RRULE), when set.
    pub maintenance_window: Option<(String, String, String)>,
    /// Maintenance exclusions.
    pub exclusions: Vec<GkeExclusion>,
}

impl GkeCluster {
    /// A cluster at `master_version` on the Regular channel with no pools.
    pub fn new(name: impl Into<String>, master_version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            master_version: master_version.into(),
            pools: Vec::new(),
            channel: "REGULAR".into(),
            maintenance_window: None,
            exclusions: Vec::new(),
        }
    }

    /// Adds a pool.
    pub fn pool(mut self, pool: GkePool) -> Self {
        self.pools.push(pool);
        self
    }

    /// Sets the release channel.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Sets a recurring maintenance window.
    pub fn maintenance_window(
        mut self,
        start: impl Into<String>,
        end: impl Into<String>,
        recurrence: impl Into<String>,
    ) -> Self {
        self.maintenance_window = Some((start.into(), end.into(), recurrence.into()));
        self
    }

    /// Adds a maintenance exclusion.
    pub fn exclusion(mut self, exclusion: GkeExclusion) -> Self {
        self.exclusions.push(exclusion);
        self
    }
}

/// The mock's configuration.
#[derive(Clone, Debug)]
pub struct GkeConfig {
    /// The project id.
    pub project: String,
    /// The location (region or zone).
    pub location: String,
    /// Valid versions, oldest first (full GKE versions). Master versions are those at or
    /// above `min_master_minor`; every one is a valid node version.
    pub versions: Vec<String>,
    /// The oldest minor offered for the control plane.
    pub min_master_minor: u64,
    /// The default version for new clusters.
    pub default_version: String,
    /// Clusters.
    pub clusters: Vec<GkeCluster>,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// How long an operation stays PENDING.
    pub pending: Duration,
    /// How long a control-plane upgrade runs.
    pub master_upgrade: Duration,
    /// How long GKE respects a PodDisruptionBudget while draining a node before it evicts
    /// anyway (one hour).
    pub pdb_timeout: Duration,
    /// Blue-green: soak after each drained batch when the request names none.
    pub batch_soak: Duration,
    /// Blue-green: soak of the whole drained blue pool when the request names none.
    pub node_pool_soak: Duration,
    /// Answer enums as numbers when the request asks for `enum-encoding=int` (as GKE does);
    /// false answers names always.
    pub honour_int_enums: bool,
}

impl GkeConfig {
    /// Real GKE timings (minutes for a control plane) and no clusters.
    pub fn new(project: impl Into<String>, location: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            location: location.into(),
            versions: standard_versions(),
            min_master_minor: 33,
            default_version: "1.34.1-gke.1829001".into(),
            clusters: Vec::new(),
            time_scale: 1.0,
            pending: Duration::from_secs(10),
            master_upgrade: Duration::from_secs(8 * 60),
            pdb_timeout: Duration::from_secs(3600),
            batch_soak: Duration::from_secs(0),
            node_pool_soak: Duration::from_secs(3600),
            honour_int_enums: true,
        }
    }

    /// Project `demo-project`, location `us-central1`, the [`demo_cluster`].
    pub fn demo() -> Self {
        let mut c = Self::new("demo-project", "us-central1");
        c.clusters.push(demo_cluster());
        c
    }

    /// Runs simulated time `scale` times faster than real time.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale.max(0.001);
        self
    }

    /// Sets how long GKE respects PodDisruptionBudgets before evicting anyway.
    pub fn pdb_timeout(mut self, d: Duration) -> Self {
        self.pdb_timeout = d;
        self
    }

    /// Sets the blue-green soak defaults (after each batch, and of the whole blue pool).
    pub fn soaks(mut self, batch: Duration, node_pool: Duration) -> Self {
        self.batch_soak = batch;
        self.node_pool_soak = node_pool;
        self
    }

    /// Adds a cluster.
    pub fn cluster(mut self, cluster: GkeCluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Answers enums as names even when numbers are asked for.
    pub fn string_enums(mut self) -> Self {
        self.honour_int_enums = false;
        self
    }
}

/// GKE versions of late 2026, oldest first.
pub fn standard_versions() -> Vec<String> {
    [
        "1.32.9-gke.1108000",
        "1.33.4-gke.1036000",
        "1.33.5-gke.1080000",
        "1.34.0-gke.1709000",
        "1.34.1-gke.1829001",
        "1.35.0-gke.1214000",
        "1.35.1-gke.1396000",
        "1.36.0-gke.1160000",
    ]
    .map(String::from)
    .to_vec()
}

/// Cluster `demo` at 1.33.5 on the Regular channel: pools `default-pool` (2 nodes) and
/// `apps` (3 nodes), a weekend maintenance window.
pub fn demo_cluster() -> GkeCluster {
    GkeCluster::new("demo", "1.33.5-gke.1080000")
        .pool(GkePool::new("default-pool", "1.33.5-gke.1080000", 2))
        .pool(GkePool::new("apps", "1.33.5-gke.1080000", 3))
        .maintenance_window(
            "2026-01-03T02:00:00Z",
            "2026-01-03T06:00:00Z",
            "FREQ=WEEKLY;BYDAY=SA,SU",
        )
}
