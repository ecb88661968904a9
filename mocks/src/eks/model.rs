//! What an EKS mock starts with: clusters, managed node groups, add-ons, the versions EKS
//! offers and the add-on compatibility catalog.

use std::time::Duration;

/// A Kubernetes minor EKS offers, with its support lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterVersion {
    /// The minor, as EKS names it (`1.34`).
    pub minor: String,
    /// The patch release the control plane runs at this minor (`1.34.2`).
    pub patch: String,
    /// `STANDARD_SUPPORT`, `EXTENDED_SUPPORT` or `UNSUPPORTED`.
    pub status: String,
    /// Release date, as a civil date (`2025-05-29`).
    pub release_date: String,
    /// End of standard support.
    pub end_of_standard_support: String,
    /// End of extended support.
    pub end_of_extended_support: String,
    /// Whether it is the default for new clusters.
    pub default: bool,
}

/// One version of an add-on and the cluster minors it supports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonVersion {
    /// The add-on version (`v1.19.2-eksbuild.1`).
    pub version: String,
    /// Cluster minors it is compatible with, and whether it is the default for each.
    pub compatibilities: Vec<(String, bool)>,
}

/// The versions EKS publishes for one add-on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonCatalogEntry {
    /// The add-on's name (`vpc-cni`).
    pub name: String,
    /// Its type (`networking`, `dns`…).
    pub kind: String,
    /// Every published version, newest first as EKS lists them.
    pub versions: Vec<AddonVersion>,
}

/// A managed node group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksNodegroup {
    /// Its name; its nodes carry the label `eks.amazonaws.com/nodegroup=<name>`.
    pub name: String,
    /// Its Kubernetes minor (`1.33`).
    pub version: String,
    /// Its AMI release version (`1.33.5-20251112`).
    pub release_version: String,
    /// Desired node count.
    pub desired_size: u32,
    /// `updateConfig.maxUnavailable`: nodes replaced at once.
    pub max_unavailable: u32,
    /// A launch template (name, version), when the group uses one.
    pub launch_template: Option<(String, String)>,
    /// True when the launch template names its own AMI: EKS then refuses a `version` update.
    pub custom_ami: bool,
}

impl EksNodegroup {
    /// A node group at `version` with `size` nodes, one replaced at a time.
    pub fn new(name: impl Into<String>, version: impl Into<String>, size: u32) -> Self {
        let version = version.into();
        Self {
            name: name.into(),
            release_version: format!("{version}.0-20251112"),
            version,
            desired_size: size,
            max_unavailable: 1,
            launch_template: None,
            custom_ami: false,
        }
    }

    /// Uses a launch template; `custom_ami` when it pins its own AMI.
    pub fn launch_template(
        mut self,
        name: impl Into<String>,
        version: impl Into<String>,
        custom_ami: bool,
    ) -> Self {
        self.launch_template = Some((name.into(), version.into()));
        self.custom_ami = custom_ami;
        self
    }

    /// Sets `updateConfig.maxUnavailable`.
    pub fn max_unavailable(mut self, n: u32) -> Self {
        self.max_unavailable = n.max(1);
        self
    }
}

/// An installed add-on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksAddon {
    /// Its name.
    pub name: String,
    /// Its installed version.
    pub version: String,
}

impl EksAddon {
    /// An add-on at `version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }
}

/// A readiness insight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksInsight {
    /// Its id.
    pub id: String,
    /// `UPGRADE_READINESS` (checks before an upgrade to `kubernetes_version`) or
    /// `ROLLBACK_READINESS` (checks before a version rollback to `kubernetes_version`).
    pub category: String,
    /// Its name (`Deprecated APIs removed in Kubernetes v1.35`).
    pub name: String,
    /// The minor it concerns.
    pub kubernetes_version: String,
    /// `PASSING`, `WARNING`, `ERROR` or `UNKNOWN`.
    pub status: String,
    /// Why it has that status.
    pub reason: String,
    /// What to do about it.
    pub recommendation: String,
    /// For deprecated-API insights: (usage, replacedWith, stopServingVersion, clients as
    /// (userAgent, requests in the last 30 days)).
    pub deprecations: Vec<EksDeprecation>,
}

/// A deprecated API still being called, as an insight reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksDeprecation {
    /// The API called (`/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas`).
    pub usage: String,
    /// Its replacement.
    pub replaced_with: String,
    /// The minor that stops serving it.
    pub stop_serving_version: String,
    /// Clients still calling it: user agent and requests in the last 30 days.
    pub clients: Vec<(String, u64)>,
}

/// A cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksCluster {
    /// Its name.
    pub name: String,
    /// Its Kubernetes minor (`1.33`).
    pub version: String,
    /// Managed node groups.
    pub nodegroups: Vec<EksNodegroup>,
    /// Installed add-ons.
    pub addons: Vec<EksAddon>,
    /// Upgrade-readiness insights.
    pub insights: Vec<EksInsight>,
}

impl EksCluster {
    /// A cluster at `version` with no node groups or add-ons.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            nodegroups: Vec::new(),
            addons: Vec::new(),
            insights: Vec::new(),
        }
    }

    /// Adds a node group.
    pub fn nodegroup(mut self, ng: EksNodegroup) -> Self {
        self.nodegroups.push(ng);
        self
    }

    /// Adds an add-on.
    pub fn addon(mut self, addon: EksAddon) -> Self {
        self.addons.push(addon);
        self
    }

    /// Adds an insight.
    pub fn insight(mut self, insight: EksInsight) -> Self {
        self.insights.push(insight);
        self
    }
}

/// How the mock behaves.
#[derive(Clone, Debug)]
pub struct EksConfig {
    /// Clusters it starts with.
    pub clusters: Vec<EksCluster>,
    /// The versions DescribeClusterVersions returns.
    pub versions: Vec<ClusterVersion>,
    /// The add-on catalog DescribeAddonVersions returns.
    pub addon_catalog: Vec<AddonCatalogEntry>,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// How long a control-plane update takes (simulated).
    pub control_plane_update: Duration,
    /// How long an add-on update takes (simulated).
    pub addon_update: Duration,
    /// How long a node group update keeps retrying a PDB-blocked eviction (15 min on EKS).
    pub eviction_timeout: Duration,
    /// Page size of the list calls when the caller gives no `maxResults`.
    pub page_size: usize,
    /// AWS account id in ARNs.
    pub account: String,
    /// Region in ARNs.
    pub region: String,
}

impl EksConfig {
    /// Real EKS timings (a control-plane update takes minutes) at `time_scale`.
    pub fn new(clusters: Vec<EksCluster>) -> Self {
        Self {
            clusters,
            versions: standard_versions(),
            addon_catalog: standard_addon_catalog(),
            time_scale: 1.0,
            control_plane_update: Duration::from_secs(8 * 60),
            addon_update: Duration::from_secs(60),
            eviction_timeout: Duration::from_secs(15 * 60),
            page_size: 100,
            account: "123456789012".into(),
            region: "us-west-2".into(),
        }
    }

    /// Sets simulated seconds per real second.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale.max(0.001);
        self
    }

    /// Sets the default page size of the list calls.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The demo cluster `demo` at 1.33: node groups `system` (2 nodes) and `apps` (3 nodes,
    /// launch template without its own AMI), add-ons vpc-cni, coredns and kube-proxy, and a
    /// warning insight about a deprecated API still called by one client.
    pub fn demo() -> Self {
        Self::new(vec![demo_cluster("demo")])
    }
}

/// The demo cluster described at [`EksConfig::demo`], under `name`.
pub fn demo_cluster(name: &str) -> EksCluster {
    EksCluster::new(name, "1.33")
        .nodegroup(EksNodegroup::new("system", "1.33", 2))
        .nodegroup(EksNodegroup::new("apps", "1.33", 3).launch_template("apps-lt", "4", false))
        .addon(EksAddon::new("vpc-cni", "v1.19.6-eksbuild.1"))
        .addon(EksAddon::new("coredns", "v1.12.1-eksbuild.2"))
        .addon(EksAddon::new("kube-proxy", "v1.33.0-eksbuild.2"))
        .insight(EksInsight {
            category: "UPGRADE_READINESS".into(),
            id: "b1f3c6c2-0a9e-4c39-9d6a-5c1de1f0a001".into(),
            name: "Deprecated APIs removed in Kubernetes v1.35".into(),
            kubernetes_version: "1.35".into(),
            status: "WARNING".into(),
            reason: "Deprecated API usage detected within the last 30 days.".into(),
            recommendation: "Update manifests and API clients to use newer Kubernetes APIs if \
                             applicable before upgrading to Kubernetes v1.35."
                .into(),
            deprecations: vec![EksDeprecation {
                usage: "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas".into(),
                replaced_with: "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas".into(),
                stop_serving_version: "1.32".into(),
                clients: vec![("legacy-operator/v0.9.1".into(), 4120)],
            }],
        })
        .insight(EksInsight {
            category: "UPGRADE_READINESS".into(),
            id: "b1f3c6c2-0a9e-4c39-9d6a-5c1de1f0a002".into(),
            name: "Kubelet version skew".into(),
            kubernetes_version: "1.34".into(),
            status: "PASSING".into(),
            reason: "No issues detected.".into(),
            recommendation: "Upgrade your worker nodes to match the control plane version.".into(),
            deprecations: Vec::new(),
        })
}

fn version(
    minor: &str,
    patch: &str,
    status: &str,
    release: &str,
    eos: &str,
    eoes: &str,
) -> ClusterVersion {
    ClusterVersion {
        minor: minor.into(),
        patch: patch.into(),
        status: status.into(),
        release_date: release.into(),
        end_of_standard_support: eos.into(),
        end_of_extended_support: eoes.into(),
        default: false,
    }
}

/// The versions EKS offers on 2026-11-24, oldest first.
pub fn standard_versions() -> Vec<ClusterVersion> {
    let mut v = vec![
        version(
            "1.29",
            "1.29.15",
            "UNSUPPORTED",
            "2024-01-23",
            "2025-03-23",
            "2026-03-23",
        ),
        version(
            "1.30",
            "1.30.14",
            "EXTENDED_SUPPORT",
            "2024-05-23",
            "2025-07-23",
            "2026-07-23",
        ),
        version(
            "1.31",
            "1.31.13",
            "EXTENDED_SUPPORT",
            "2024-09-26",
            "2025-11-26",
            "2026-11-26",
        ),
        version(
            "1.32",
            "1.32.9",
            "EXTENDED_SUPPORT",
            "2025-01-23",
            "2026-03-23",
            "2027-03-23",
        ),
        version(
            "1.33",
            "1.33.5",
            "EXTENDED_SUPPORT",
            "2025-05-29",
            "2026-07-29",
            "2027-07-29",
        ),
        version(
            "1.34",
            "1.34.2",
            "STANDARD_SUPPORT",
            "2025-10-02",
            "2026-12-02",
            "2027-12-02",
        ),
        version(
            "1.35",
            "1.35.1",
            "STANDARD_SUPPORT",
            "2026-01-27",
            "2027-03-27",
            "2028-03-27",
        ),
    ];
    if let Some(d) = v.iter_mut().find(|c| c.minor == "1.34") {
        d.default = true;
    }
    v
}

fn addon(name: &str, kind: &str, versions: &[(&str, &[&str], &[&str])]) -> AddonCatalogEntry {
    AddonCatalogEntry {
        name: name.into(),
        kind: kind.into(),
        versions: versions
            .iter()
            .map(|(v, compat, defaults)| AddonVersion {
                version: (*v).into(),
                compatibilities: compat
                    .iter()
                    .map(|m| ((*m).to_string(), defaults.contains(m)))
                    .collect(),
            })
            .collect(),
    }
}

/// vpc-cni, coredns and kube-proxy with per-minor compatibility, newest version first.
pub fn standard_addon_catalog() -> Vec<AddonCatalogEntry> {
    const ALL: &[&str] = &["1.30", "1.31", "1.32", "1.33", "1.34", "1.35"];
    vec![
        addon(
            "vpc-cni",
            "networking",
            &[
                ("v1.20.4-eksbuild.1", ALL, &["1.34", "1.35"]),
                ("v1.19.6-eksbuild.1", ALL, &["1.30", "1.31", "1.32", "1.33"]),
                ("v1.18.5-eksbuild.1", &["1.30", "1.31", "1.32", "1.33"], &[]),
            ],
        ),
        addon(
            "coredns",
            "dns",
            &[
                ("v1.12.4-eksbuild.1", &["1.34", "1.35"], &["1.34", "1.35"]),
                ("v1.12.1-eksbuild.2", &["1.33", "1.34"], &["1.33"]),
                (
                    "v1.11.4-eksbuild.2",
                    &["1.30", "1.31", "1.32"],
                    &["1.30", "1.31", "1.32"],
                ),
            ],
        ),
        addon(
            "kube-proxy",
            "networking",
            &[
                ("v1.35.0-eksbuild.2", &["1.35"], &["1.35"]),
                ("v1.34.1-eksbuild.2", &["1.34"], &["1.34"]),
                ("v1.33.0-eksbuild.2", &["1.33"], &["1.33"]),
                ("v1.32.6-eksbuild.2", &["1.32"], &["1.32"]),
            ],
        ),
    ]
}
