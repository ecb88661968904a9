//! Pre-flight checks: what makes an upgrade safe to start.
//!
//! [`Preflight::run`] reads the cluster once, page by page (`limit` 500, like kubectl), and
//! feeds every page to the checks that need it, so memory stays flat however many pods the
//! cluster runs. Each check yields [`Finding`]s with a stable code (see
//! [`crate::report::CODES`]); together they form a [`PreflightReport`] that renders as a table
//! or JSON and says whether a blocker remains after the user's overrides.
//!
//! Checks, in the order they read the cluster:
//!
//! 1. version skew now ([`skew`]) and at every step of the plan, from `/version`, nodes and
//!    control-plane static pods;
//! 2. node health ([`nodes`]): Ready, pressure, NetworkUnavailable, already cordoned;
//! 3. PodDisruptionBudgets that block drains ([`pdb`]);
//! 4. system pods not Running and Ready ([`system_pods`]);
//! 5. pods a drain refuses ([`drain_refusals`]);
//! 6. Pending PersistentVolumeClaims ([`pvcs`]);
//! 7. single-replica workloads without a budget ([`availability`]);
//! 8. `/readyz?verbose` ([`readyz`]);
//! 9. removed APIs ([`removed_apis`]): the deprecated-API metric first, then stored objects,
//!    Helm releases and manifests on disk;
//! 10. the provider's own findings, merged.
//!
//! A check whose API calls fail yields `preflight.check-failed` naming it and the error, and
//! the others still run: the report says what could not be verified instead of saying nothing.

mod availability;
mod drain_refusals;
mod nodes;
mod pdb;
mod pools;
mod pvcs;
pub mod readyz;
pub mod removed_apis;
pub(crate) mod selector;
mod skew;
mod system_pods;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, ListParams};
use kup_core::{
    Finding, KubeVersion, NodePool, Severity, SkewPolicy, UpgradePlan, UpgradeProvider,
};
use serde::{Deserialize, Serialize};

pub use drain_refusals::DrainAllowances;
pub use readyz::{HealthCheck, HealthReport, parse_health};
pub use removed_apis::{RemovalWindow, RemovedApi, removed_apis};

pub(crate) use nodes::{node_finding, node_problems};
pub(crate) use pools::PoolMatcher;
pub(crate) use system_pods::{is_system_pod, pod_ref, system_pod_finding, unhealthy_reason};

use crate::error::{Error, Result};
use crate::listing::{DEFAULT_PAGE_SIZE, Reader};
use crate::report::{Findings, ScanStats, validate_overrides};

/// What to check the cluster for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreflightInput {
    /// The version the upgrade goes to.
    pub target: KubeVersion,
    /// The proposed plan: skew is checked after each of its steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<UpgradePlan>,
    /// The skew policy in force (the provider's, see `SkewPolicy::for_provider`).
    #[serde(default)]
    pub skew_policy: SkewPolicy,
    /// The cluster's node pools (from `UpgradeProvider::cluster`), to follow each node through
    /// the plan; without them the plan is checked pool by pool at the pools' versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<NodePool>,
    /// Manifest files or directories to scan for removed APIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<PathBuf>,
    /// Whether to scan deployed Helm v3 releases (needs `list` on Secrets).
    #[serde(default = "yes")]
    pub helm_releases: bool,
    /// The options the drain will run with.
    #[serde(default)]
    pub drain: DrainAllowances,
    /// Findings the provider already reported (`UpgradeProvider::preflight`), merged as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_findings: Vec<Finding>,
    /// Finding codes whose blockers the user chose to proceed past.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Namespaces whose pods count as system pods.
    #[serde(default = "system_namespaces")]
    pub system_namespaces: Vec<String>,
    /// List page size.
    #[serde(default = "page_size")]
    pub page_size: u32,
}

fn yes() -> bool {
    true
}

fn system_namespaces() -> Vec<String> {
    vec!["kube-system".to_string()]
}

fn page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

impl PreflightInput {
    /// Checks for an upgrade to `target` with defaults: upstream skew, Helm releases scanned,
    /// the drain's defaults (no force, emptyDir data kept), kube-system as system namespace.
    pub fn new(target: KubeVersion) -> Self {
        Self {
            target,
            plan: None,
            skew_policy: SkewPolicy::upstream(),
            pools: Vec::new(),
            manifests: Vec::new(),
            helm_releases: true,
            drain: DrainAllowances::default(),
            provider_findings: Vec::new(),
            overrides: Vec::new(),
            system_namespaces: system_namespaces(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Checks for a plan: its target, and skew after each of its steps.
    pub fn for_plan(plan: &UpgradePlan) -> Self {
        Self {
            plan: Some(plan.clone()),
            ..Self::new(plan.target.clone())
        }
    }

    /// Sets the skew policy.
    pub fn skew_policy(mut self, policy: SkewPolicy) -> Self {
        self.skew_policy = policy;
        self
    }

    /// Sets the node pools.
    pub fn pools(mut self, pools: Vec<NodePool>) -> Self {
        self.pools = pools;
        self
    }

    /// Adds manifest files or directories to scan.
    pub fn manifests(mut self, paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.manifests.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Sets the drain options.
    pub fn drain(mut self, drain: DrainAllowances) -> Self {
        self.drain = drain;
        self
    }

    /// Adds provider findings.
    pub fn provider_findings(mut self, findings: impl IntoIterator<Item = Finding>) -> Self {
        self.provider_findings.extend(findings);
        self
    }

    /// Adds override codes.
    pub fn overrides(mut self, codes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.overrides.extend(codes.into_iter().map(Into::into));
        self
    }
}

/// The result of a pre-flight run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightReport {
    /// The API server's version when checked.
    pub control_plane: Option<KubeVersion>,
    /// The target checked for.
    pub target: KubeVersion,
    /// The minors whose removals were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<RemovalWindow>,
    /// Findings and overrides.
    #[serde(flatten)]
    pub findings: Findings,
    /// What the run read.
    pub stats: ScanStats,
}

impl PreflightReport {
    /// Blockers left after overrides.
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.findings.blockers()
    }

    /// True when a blocker remains after overrides: the upgrade must not start.
    pub fn has_blockers(&self) -> bool {
        self.findings.has_blockers()
    }

    /// Findings with this code.
    pub fn with_code<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.with_code(code)
    }

    /// Overrides more codes (validated).
    pub fn override_codes<'a>(&mut self, codes: impl IntoIterator<Item = &'a str>) -> Result<()> {
        self.findings.override_codes(codes)
    }

    /// The report as a plain-text table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Pre-flight for {} → {}\n",
            self.control_plane
                .as_ref()
                .map_or_else(|| "unknown".to_string(), ToString::to_string),
            self.target
        );
        out.push_str(&self.findings.to_table());
        out.push_str(if self.has_blockers() {
            "result: blocked\n"
        } else {
            "result: ready\n"
        });
        out
    }

    /// The report as pretty JSON, with a top-level `blocked` flag.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("blocked".into(), self.has_blockers().into());
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// Runs the pre-flight checks against one cluster.
pub struct Preflight {
    client: Client,
    provider: Option<Arc<dyn UpgradeProvider>>,
}

impl std::fmt::Debug for Preflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preflight")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Adds a `preflight.check-failed` finding for a check whose API calls failed.
fn failed(check: &str, severity: Severity, error: &Error, findings: &mut Vec<Finding>) {
    findings.push(
        Finding::new(
            "preflight.check-failed",
            severity,
            format!("the {check} check could not run: {error}"),
        )
        .remediation(
            "grant kup's RBAC what the check reads (see deploy/rbac) or fix the API error, then \
             run again; override this code to proceed without the check",
        )
        .source(check),
    );
}

impl Preflight {
    /// Checks through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            provider: None,
        }
    }

    /// Also asks the provider for its own findings (`UpgradeProvider::preflight`).
    pub fn with_provider(mut self, provider: Arc<dyn UpgradeProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Runs every check. Errors only for bad input (unknown override codes, missing
    /// manifest paths, bad pool selectors), before anything is sent; API failures become
    /// `preflight.check-failed` findings.
    pub async fn run(&self, input: &PreflightInput) -> Result<PreflightReport> {
        validate_overrides(input.overrides.iter().map(String::as_str))?;
        removed_apis::manifests::validate_paths(&input.manifests)?;
        let matcher = PoolMatcher::new(&input.pools)?;
        let started = Instant::now();
        let reader = Reader::new(self.client.clone(), input.page_size);
        let mut findings: Vec<Finding> = Vec::new();
        let mut stats = ScanStats::default();

        // 1. The API server's version.
        let control_plane = match reader.version().await {
            Ok(info) => KubeVersion::parse(&info.git_version).ok(),
            Err(e) => {
                failed("version", Severity::Blocker, &e, &mut findings);
                None
            }
        };
        let mut skew = skew::SkewCheck::new(input.skew_policy.clone());
        if let Some(v) = &control_plane {
            skew.set_api_server(v.clone());
        }

        // 2. Removed APIs: discovery, then the metric before any list — the stored-object
        //    scan may have to list through a removed version, which the metric counts.
        let window = control_plane
            .as_ref()
            .map(|cp| RemovalWindow::new(cp.clone(), input.target.clone()));
        let mut targets = None;
        if let Some(window) = &window {
            match removed_apis::stored::discover(&reader, window).await {
                Ok(t) => targets = Some(t),
                Err(e) => failed("removed-apis/stored", Severity::Blocker, &e, &mut findings),
            }
            let self_listed = targets
                .as_ref()
                .map(removed_apis::stored::Targets::listed_through_removed)
                .unwrap_or_default();
            match reader.get_text("/metrics").await {
                Ok(answer) if answer.status == 200 => {
                    let samples = removed_apis::metric::parse_metric(&answer.body);
                    findings.extend(removed_apis::metric::findings(
                        &samples,
                        window,
                        &self_listed,
                        "removed-apis/metric",
                    )?);
                }
                Ok(answer) => failed(
                    "removed-apis/metric",
                    Severity::Warning,
                    &Error::InvalidInput {
                        field: "/metrics".into(),
                        message: format!(
                            "HTTP {}: {}",
                            answer.status,
                            answer.body.trim().chars().take(200).collect::<String>()
                        ),
                    },
                    &mut findings,
                ),
                Err(e) => failed("removed-apis/metric", Severity::Warning, &e, &mut findings),
            }
        }

        // 3. Nodes: health, versions, pools.
        let mut health = nodes::NodeHealth::default();
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        match reader
            .for_each(&nodes_api, &ListParams::default(), |node| {
                health.observe(&node);
                let name = node.metadata.name.clone().unwrap_or_default();
                let pool = if matcher.is_empty() {
                    None
                } else {
                    let labels = node.metadata.labels.clone().unwrap_or_default();
                    matcher.pool_of(&name, &labels).map(String::from)
                };
                skew.observe_node(&node, pool.as_deref());
            })
            .await
        {
            Ok(n) => {
                stats.nodes = n;
                findings.extend(health.finish());
            }
            Err(e) => failed("nodes", Severity::Blocker, &e, &mut findings),
        }

        // 4. Budgets and DaemonSets, needed while pods stream past.
        let mut budgets = pdb::PdbCheck::default();
        let pdb_api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
        let budgets_ok = match reader
            .for_each(&pdb_api, &ListParams::default(), |p| budgets.add(p))
            .await
        {
            Ok(_) => true,
            Err(e) => {
                failed("pdb", Severity::Blocker, &e, &mut findings);
                false
            }
        };
        let mut daemonsets: HashSet<(String, String)> = HashSet::new();
        let ds_api: Api<DaemonSet> = Api::all(self.client.clone());
        let daemonsets_ok = match reader
            .for_each(&ds_api, &ListParams::default(), |ds| {
                daemonsets.insert((
                    ds.metadata.namespace.unwrap_or_default(),
                    ds.metadata.name.unwrap_or_default(),
                ));
            })
            .await
        {
            Ok(_) => true,
            Err(e) => {
                failed("drain-refusals", Severity::Blocker, &e, &mut findings);
                false
            }
        };

        // 5. Pods, once, feeding every pod check.
        let mut system = system_pods::SystemPods::default();
        let mut refusals = drain_refusals::DrainRefusals::new(input.drain);
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        match reader
            .for_each(&pods_api, &ListParams::default(), |pod| {
                budgets.observe(&pod);
                system.observe(&pod, &input.system_namespaces);
                refusals.observe(&pod, &daemonsets);
                skew.observe_pod(&pod);
            })
            .await
        {
            Ok(n) => {
                stats.pods = n;
                findings.extend(system.finish("system-pods"));
                if daemonsets_ok {
                    findings.extend(refusals.finish("drain-refusals"));
                }
            }
            Err(e) => failed("pods", Severity::Blocker, &e, &mut findings),
        }
        findings.extend(skew.finish(input.plan.as_ref(), "skew"));

        // 6. Workloads without a budget (budgets' selectors against pod templates).
        if budgets_ok {
            let mut single = availability::SingleReplicas::default();
            let deployments: Api<Deployment> = Api::all(self.client.clone());
            let statefulsets: Api<StatefulSet> = Api::all(self.client.clone());
            let result = async {
                reader
                    .for_each(&deployments, &ListParams::default(), |d| {
                        single.observe_deployment(&d, &budgets)
                    })
                    .await?;
                reader
                    .for_each(&statefulsets, &ListParams::default(), |s| {
                        single.observe_statefulset(&s, &budgets)
                    })
                    .await
            }
            .await;
            match result {
                Ok(_) => findings.extend(single.finish("availability")),
                Err(e) => failed("availability", Severity::Warning, &e, &mut findings),
            }
            findings.extend(budgets.finish("pdb"));
        }

        // 7. Pending claims.
        let mut claims = pvcs::PendingClaims::default();
        let pvc_api: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        match reader
            .for_each(&pvc_api, &ListParams::default(), |c| claims.observe(&c))
            .await
        {
            Ok(_) => findings.extend(claims.finish("pvcs")),
            Err(e) => failed("pvcs", Severity::Blocker, &e, &mut findings),
        }

        // 8. Control-plane health.
        findings.extend(readyz::check(&reader, "readyz").await);

        // 9. Removed APIs in stored objects, Helm releases and manifests.
        if let Some(window) = &window {
            if let Some(targets) = &targets {
                match removed_apis::stored::scan(&reader, targets, "removed-apis/stored").await {
                    Ok(f) => findings.extend(f),
                    Err(e) => failed("removed-apis/stored", Severity::Blocker, &e, &mut findings),
                }
            }
            if input.helm_releases {
                match removed_apis::helm::scan_cluster(&reader, window, "removed-apis/helm").await {
                    Ok(f) => findings.extend(f),
                    Err(e) => failed("removed-apis/helm", Severity::Warning, &e, &mut findings),
                }
            }
            if !input.manifests.is_empty() {
                findings.extend(removed_apis::manifests::scan_paths(
                    &input.manifests,
                    window,
                    "removed-apis/manifests",
                )?);
            }
        }

        // 10. The provider's findings.
        findings.extend(input.provider_findings.iter().cloned());
        if let Some(provider) = &self.provider {
            match provider.preflight(&input.target).await {
                Ok(f) => findings.extend(f.into_iter().map(|mut f| {
                    if f.source.is_empty() {
                        f.source = provider.kind().name().to_string();
                    }
                    f
                })),
                Err(e) => findings.push(
                    Finding::new(
                        "preflight.check-failed",
                        Severity::Blocker,
                        format!(
                            "the {} provider's pre-flight could not run: {e}",
                            provider.kind()
                        ),
                    )
                    .remediation("fix the provider error and run again, or override this code")
                    .source(provider.kind().name().to_string()),
                ),
            }
        }

        let mut report = Findings::new(dedupe(findings));
        report.override_codes(input.overrides.iter().map(String::as_str))?;
        stats.api_requests = reader.requests();
        stats.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(PreflightReport {
            control_plane,
            target: input.target.clone(),
            window,
            findings: report,
            stats,
        })
    }
}

/// Drops exact duplicates (a provider repeating one of ours), keeping the first.
fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    findings
        .into_iter()
        .filter(|f| seen.insert((f.code.clone(), f.message.clone(), f.objects.clone())))
        .collect()
}
