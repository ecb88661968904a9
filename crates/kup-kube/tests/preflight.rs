//! Pre-flight checks against the Kubernetes simulator: each check with a scenario that triggers
//! it, and the healthy `small` scenario reporting nothing that is not really there.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod as KPod;
use kube::api::{Api, EvictParams, PostParams};
use kup_core::{
    Capabilities, ClusterInfo, Finding, KubeVersion, NodePool, ObjectRef, Operation,
    OperationStatus, PlanStep, PoolManagement, PoolMoveReason, ProviderKind, Severity, StepAction,
    UpgradePlan, UpgradeProvider,
};
use kup_kube::preflight::{DrainAllowances, Preflight, PreflightInput, PreflightReport};
use kup_mocks::k8s::{
    Node, Pdb, Pod, Pool, Pvc, Scenario, SimConfig, SimHandle, Simulator, Workload,
};

const POOL_LABEL: &str = "kup.dev/pool";

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

async fn start(scenario: Scenario) -> SimHandle {
    Simulator::start(scenario, SimConfig::fast()).await.unwrap()
}

async fn preflight(sim: &SimHandle, input: &PreflightInput) -> PreflightReport {
    let report = Preflight::new(sim.client().unwrap())
        .run(input)
        .await
        .unwrap();
    // Every code kup reports is one of the documented ones.
    for f in &report.findings.findings {
        assert!(
            kup_kube::report::code_info(&f.code).is_some(),
            "undocumented code {}",
            f.code
        );
    }
    report
}

/// `(code, severity)` of every finding, sorted.
fn codes(report: &PreflightReport) -> Vec<(String, Severity)> {
    let mut out: Vec<(String, Severity)> = report
        .findings
        .findings
        .iter()
        .map(|f| (f.code.clone(), f.severity))
        .collect();
    out.sort();
    out
}

fn only<'a>(report: &'a PreflightReport, code: &'a str) -> &'a Finding {
    let found: Vec<&Finding> = report.with_code(code).collect();
    assert_eq!(found.len(), 1, "{code}: {}", report.to_table());
    found[0]
}

fn names(finding: &Finding, kind: &str) -> BTreeSet<String> {
    finding
        .objects
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| o.name.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The healthy `small` cluster: the only findings are real ones kubectl's own rules produce
/// (metrics-server and the `cache` pods use emptyDir, metrics-server runs one replica without a
/// budget); with emptyDir data allowed to go there is no blocker and no warning beyond that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_cluster_has_no_false_positives() {
    let sim = start(Scenario::small()).await;
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;
    assert_eq!(
        codes(&report),
        [
            (
                "workload.single-replica-no-pdb".to_string(),
                Severity::Warning
            ),
            ("drain.emptydir-pod".to_string(), Severity::Blocker),
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>(),
        "{}",
        report.to_table()
    );
    let empty_dir = only(&report, "drain.emptydir-pod");
    let pods = names(empty_dir, "Pod");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(pods.iter().filter(|p| p.starts_with("cache-")).count() == 2);
    assert!(pods.iter().any(|p| p.starts_with("metrics-server-")));
    assert!(
        empty_dir
            .remediation
            .as_ref()
            .unwrap()
            .contains("--delete-emptydir-data")
    );
    let single = only(&report, "workload.single-replica-no-pdb");
    assert_eq!(names(single, "Deployment"), set(&["metrics-server"]));
    assert_eq!(report.control_plane, Some(v("1.33.5")));
    assert!(report.has_blockers());
    assert_eq!(report.stats.nodes, 9);
    assert_eq!(report.stats.pods as usize, sim.pods().len());
    // Every request the report counts reached the API server, and nothing else did.
    assert_eq!(report.stats.api_requests, sim.requests().total());

    let allowed = PreflightInput::new(v("1.34")).drain(DrainAllowances {
        force: false,
        delete_emptydir_data: true,
    });
    let report = preflight(&sim, &allowed).await;
    assert!(!report.has_blockers(), "{}", report.to_table());
    assert_eq!(only(&report, "drain.emptydir-pod").severity, Severity::Info);
    assert!(report.to_table().ends_with("result: ready\n"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["blocked"], false);
    assert_eq!(json["target"], "1.34");
    sim.shutdown().await;
}

fn plan_to_1_32() -> UpgradePlan {
    let step = |index, action| PlanStep { index, action };
    UpgradePlan {
        schema_version: 1,
        id: String::new(),
        kind: kup_core::PlanKind::Upgrade,
        not_rolled_back: Vec::new(),
        provider: ProviderKind::Kubeadm,
        cluster: "sim".into(),
        from: v("1.31"),
        target: v("1.32"),
        control_plane_only: false,
        max_kubelet_skew: 3,
        pools: [
            ("current".to_string(), v("1.31")),
            ("legacy".to_string(), v("1.28")),
        ]
        .into(),
        steps: vec![
            step(1, StepAction::Preflight { target: v("1.32") }),
            step(
                2,
                StepAction::ControlPlane {
                    from: v("1.31"),
                    to: v("1.32"),
                },
            ),
            step(
                3,
                StepAction::NodePool {
                    pool: "current".into(),
                    from: v("1.31"),
                    to: v("1.32"),
                    management: PoolManagement::Kup,
                    reason: PoolMoveReason::Target,
                },
            ),
        ],
    }
}

/// Kubelets too old and too new now, a controller-manager lagging the API server, and a pool
/// the plan leaves behind that falls out of skew at the control-plane step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_skew_now_and_at_each_plan_step() {
    let sim = start(
        Scenario::new()
            .version("v1.31.4")
            .pool(Pool::new("current", 2))
            .pool(Pool::new("legacy", 2).kubelet_version("v1.28.9"))
            .node(Node::new("ancient").kubelet_version("v1.27.3"))
            .node(Node::new("future").kubelet_version("v1.32.0")),
    )
    .await;
    // A kubeadm control-plane static pod one minor too far behind.
    let pods: Api<KPod> = Api::namespaced(sim.client().unwrap(), "kube-system");
    let kcm: KPod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kube-controller-manager-cp", "namespace": "kube-system",
                     "labels": {"component": "kube-controller-manager", "tier": "control-plane"}},
        "spec": {"nodeName": "current-1", "containers": [{"name": "kube-controller-manager",
                 "image": "registry.k8s.io/kube-controller-manager:v1.29.7"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &kcm).await.unwrap();

    let pools = vec![
        NodePool::rolled_by_kup("current", v("1.31"))
            .with_node_selector(format!("{POOL_LABEL}=current")),
        NodePool::rolled_by_kup("legacy", v("1.28"))
            .with_node_selector(format!("{POOL_LABEL}=legacy")),
    ];
    let input = PreflightInput::for_plan(&plan_to_1_32()).pools(pools);
    let report = preflight(&sim, &input).await;

    let too_old = only(&report, "skew.kubelet-too-old");
    assert_eq!(names(too_old, "Node"), set(&["ancient"]));
    assert!(too_old.message.contains("1.27.3"), "{}", too_old.message);
    let too_new = only(&report, "skew.kubelet-too-new");
    assert_eq!(names(too_new, "Node"), set(&["future"]));
    let controller = only(&report, "skew.controller-too-old");
    assert!(
        controller
            .message
            .contains("kube-controller-manager 1.29.7"),
        "{}",
        controller.message
    );
    // The legacy pool (1.28) fits 1.31 but not 1.32: the plan's step 2 breaks it; so does the
    // standalone 1.27 node, which is already reported above and again at the step it worsens.
    let step: Vec<&Finding> = report
        .with_code("skew.plan-step")
        .filter(|f| f.message.contains("at 1.28"))
        .collect();
    assert_eq!(step.len(), 1, "{}", report.to_table());
    assert!(
        step[0]
            .message
            .starts_with("after step 2 (control plane 1.31 → 1.32)")
    );
    assert_eq!(names(step[0], "Node"), set(&["legacy-1", "legacy-2"]));
    // Nodes of the pool the plan moves never show up.
    assert!(
        report
            .findings
            .findings
            .iter()
            .all(|f| names(f, "Node").iter().all(|n| !n.starts_with("current-")))
    );
    sim.shutdown().await;
}

/// Every kind of drain-blocking budget, each reported once with its budget; the prediction is
/// checked against the eviction API's own answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_that_block_drains() {
    let deploy = |ns: &str, name: &str, n| Workload::deployment(ns, name).replicas(n).pool("w");
    let sim = start(
        Scenario::new()
            .pool(Pool::new("w", 3))
            .workload(deploy("apps", "zero", 2))
            .pdb(
                Pdb::new("apps", "zero")
                    .match_label("app", "zero")
                    .max_unavailable(0),
            )
            .workload(deploy("apps", "all", 2))
            .pdb(
                Pdb::new("apps", "all")
                    .match_label("app", "all")
                    .min_available(2),
            )
            .workload(deploy("apps", "solo", 1))
            .pdb(
                Pdb::new("apps", "solo")
                    .match_label("app", "solo")
                    .min_available(1),
            )
            .workload(deploy("apps", "flaky", 3).not_ready(2))
            .pdb(
                Pdb::new("apps", "flaky")
                    .match_label("app", "flaky")
                    .min_available(2),
            )
            .workload(deploy("apps", "fine", 3))
            .pdb(
                Pdb::new("apps", "fine")
                    .match_label("app", "fine")
                    .max_unavailable(1),
            )
            .pdb(
                Pdb::new("apps", "ghost")
                    .match_label("app", "nothing")
                    .max_unavailable(1),
            )
            .workload(deploy("overlap", "shared", 2))
            .pdb(
                Pdb::new("overlap", "first")
                    .match_label("app", "shared")
                    .max_unavailable(1),
            )
            .pdb(
                Pdb::new("overlap", "second")
                    .match_label("app", "shared")
                    .max_unavailable(1),
            ),
    )
    .await;
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;
    let pdbs = |code: &str| -> BTreeSet<String> {
        report
            .with_code(code)
            .flat_map(|f| names(f, "PodDisruptionBudget"))
            .collect()
    };
    assert_eq!(pdbs("pdb.max-unavailable-zero"), set(&["zero"]));
    assert_eq!(pdbs("pdb.min-available-equals-replicas"), set(&["all"]));
    assert_eq!(pdbs("pdb.single-replica"), set(&["solo"]));
    assert_eq!(pdbs("pdb.zero-disruptions"), set(&["flaky"]));
    assert_eq!(pdbs("pdb.selects-nothing"), set(&["ghost"]));
    let overlap = only(&report, "pdb.overlapping");
    assert_eq!(
        names(overlap, "PodDisruptionBudget"),
        set(&["first", "second"])
    );
    assert_eq!(names(overlap, "Pod").len(), 2);
    assert!(overlap.message.contains("HTTP 500"));
    assert!(
        report
            .findings
            .findings
            .iter()
            .all(|f| !names(f, "PodDisruptionBudget").contains("fine"))
    );
    assert_eq!(
        only(&report, "pdb.selects-nothing").severity,
        Severity::Warning
    );

    // What the eviction API says about the same pods (without the client's own 429 retry).
    let mut config = sim.client_config();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let pod_of = |app: &str| {
        sim.pods()
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == app)
            .map(|p| {
                (
                    p["metadata"]["namespace"].as_str().unwrap().to_string(),
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    for (app, status) in [("zero", 429), ("all", 429), ("solo", 429), ("shared", 500)] {
        let (ns, name) = pod_of(app);
        let api: Api<KPod> = Api::namespaced(client.clone(), &ns);
        let err = api.evict(&name, &EvictParams::default()).await.unwrap_err();
        match err {
            kube::Error::Api(s) => assert_eq!(s.code, status, "{app}: {s:?}"),
            other => panic!("{app}: {other}"),
        }
    }
    sim.shutdown().await;
}

/// Node health: each problem one finding naming its nodes; healthy nodes never named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_health() {
    let sim = start(
        Scenario::new()
            .node(Node::new("healthy"))
            .node(Node::new("down").not_ready())
            .node(Node::new("full").condition("DiskPressure", "True"))
            .node(Node::new("offline").condition("NetworkUnavailable", "True"))
            .node(Node::new("parked").unschedulable()),
    )
    .await;
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;
    let node = |code: &str| names(only(&report, code), "Node");
    assert_eq!(node("node.not-ready"), set(&["down"]));
    assert_eq!(node("node.pressure"), set(&["full"]));
    assert_eq!(node("node.network-unavailable"), set(&["offline"]));
    assert_eq!(node("node.cordoned"), set(&["parked"]));
    assert_eq!(only(&report, "node.not-ready").severity, Severity::Blocker);
    assert_eq!(only(&report, "node.pressure").severity, Severity::Warning);
    assert!(
        only(&report, "node.pressure")
            .message
            .contains("full (DiskPressure)")
    );
    assert!(
        report
            .findings
            .findings
            .iter()
            .all(|f| !names(f, "Node").contains("healthy"))
    );
    sim.shutdown().await;
}

/// System pods, pending claims, pods a drain refuses (with the option that lets them go and
/// its cost), and single-replica workloads without a budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_claims_and_workloads() {
    let sim = start(
        Scenario::new()
            .pool(Pool::new("w", 2))
            .workload(
                Workload::deployment("kube-system", "dns")
                    .replicas(2)
                    .not_ready(1)
                    .priority_class("system-cluster-critical"),
            )
            .pdb(
                Pdb::new("kube-system", "dns")
                    .match_label("app", "dns")
                    .max_unavailable(1),
            )
            .pod(
                Pod::new("agents", "log-shipper")
                    .node("w-1")
                    .priority_class("system-node-critical")
                    .not_ready(),
            )
            .pod(Pod::new("default", "naked").node("w-1"))
            .pod(
                Pod::new("default", "leftover")
                    .node("w-2")
                    .orphan_of("DaemonSet/old-agent"),
            )
            .workload(
                Workload::deployment("default", "scratch")
                    .replicas(2)
                    .empty_dir(),
            )
            .pdb(
                Pdb::new("default", "scratch")
                    .match_label("app", "scratch")
                    .max_unavailable(1),
            )
            .workload(Workload::deployment("default", "lonely"))
            .workload(Workload::stateful_set("default", "single-db").volume_claim("1Gi"))
            .pvc(Pvc::new("default", "waiting").pending())
            .pvc(Pvc::new("default", "bound")),
    )
    .await;
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;

    let system = only(&report, "system-pod.unhealthy");
    let pods = names(system, "Pod");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.contains("log-shipper"));
    assert!(pods.iter().any(|p| p.starts_with("dns-")));
    assert_eq!(
        names(only(&report, "pvc.pending"), "PersistentVolumeClaim"),
        set(&["waiting"])
    );

    // log-shipper is a system pod and also has no controller: the drain refuses it too.
    let unmanaged = only(&report, "drain.unmanaged-pod");
    assert_eq!(names(unmanaged, "Pod"), set(&["naked", "log-shipper"]));
    assert!(unmanaged.remediation.as_ref().unwrap().contains("--force"));
    assert!(
        unmanaged
            .remediation
            .as_ref()
            .unwrap()
            .contains("nothing recreates it")
    );
    assert_eq!(
        names(only(&report, "drain.orphaned-daemonset-pod"), "Pod"),
        set(&["leftover"])
    );
    let scratch = names(only(&report, "drain.emptydir-pod"), "Pod");
    assert_eq!(scratch.len(), 2);
    assert!(scratch.iter().all(|p| p.starts_with("scratch-")));

    let single = only(&report, "workload.single-replica-no-pdb");
    assert_eq!(names(single, "Deployment"), set(&["lonely"]));
    assert_eq!(names(single, "StatefulSet"), set(&["single-db"]));

    // With both drain options, the refusals become the costs the user accepted.
    let input = PreflightInput::new(v("1.34")).drain(DrainAllowances {
        force: true,
        delete_emptydir_data: true,
    });
    let report = preflight(&sim, &input).await;
    for code in [
        "drain.unmanaged-pod",
        "drain.orphaned-daemonset-pod",
        "drain.emptydir-pod",
    ] {
        let f = only(&report, code);
        assert_eq!(f.severity, Severity::Info, "{code}");
        assert!(
            f.message.contains("the drain lets them go"),
            "{}",
            f.message
        );
    }
    sim.shutdown().await;
}

/// `/readyz?verbose`: a failing check is named, and healing it clears the finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_health() {
    let sim = start(Scenario::new().node(Node::new("n1"))).await;
    sim.set_health_check("etcd", false);
    sim.set_health_check("poststarthook/start-apiextensions-controllers", false);
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;
    let failing: BTreeSet<String> = report
        .with_code("control-plane.readyz-failed")
        .map(|f| f.message.clone())
        .collect();
    assert_eq!(
        failing,
        set(&[
            "/readyz check etcd failed: reason withheld",
            "/readyz check poststarthook/start-apiextensions-controllers failed: reason withheld",
        ])
    );
    sim.set_health_check("etcd", true);
    sim.set_health_check("poststarthook/start-apiextensions-controllers", true);
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;
    assert_eq!(report.with_code("control-plane.readyz-failed").count(), 0);
    assert!(!report.has_blockers(), "{}", report.to_table());
    sim.shutdown().await;
}

#[derive(Debug)]
struct FakeProvider;

#[async_trait::async_trait]
impl UpgradeProvider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Eks
    }
    fn cluster_name(&self) -> &str {
        "sim"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn cluster(&self) -> kup_core::Result<ClusterInfo> {
        Err(kup_core::Error::not_supported(self.kind(), "cluster"))
    }
    async fn available_versions(&self) -> kup_core::Result<Vec<kup_core::AvailableVersion>> {
        Ok(Vec::new())
    }
    async fn upgrade_control_plane(
        &self,
        _to: &KubeVersion,
        _opts: &kup_core::ControlPlaneOptions,
    ) -> kup_core::Result<Operation> {
        Err(kup_core::Error::not_supported(self.kind(), "control plane"))
    }
    async fn poll(&self, _op: &Operation) -> kup_core::Result<OperationStatus> {
        Err(kup_core::Error::not_supported(self.kind(), "poll"))
    }
    async fn preflight(&self, to: &KubeVersion) -> kup_core::Result<Vec<Finding>> {
        Ok(vec![
            Finding::new(
                "eks.insight-addon-version",
                Severity::Blocker,
                format!("vpc-cni is not compatible with {to}"),
            )
            .object(ObjectRef::cluster("Addon", "vpc-cni")),
        ])
    }
}

/// Provider findings are merged (from the provider and from the input), and overrides by code
/// let a run pass; an unknown kup code is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_findings_and_overrides() {
    let sim = start(Scenario::new().node(Node::new("n1"))).await;
    let input = PreflightInput::new(v("1.34")).provider_findings([Finding::new(
        "eks.insight-kubelet-skew",
        Severity::Warning,
        "from the input",
    )]);
    let report = Preflight::new(sim.client().unwrap())
        .with_provider(Arc::new(FakeProvider))
        .run(&input)
        .await
        .unwrap();
    let merged = only(&report, "eks.insight-addon-version");
    assert_eq!(merged.source, "eks");
    assert!(merged.message.contains("1.34"));
    assert_eq!(
        only(&report, "eks.insight-kubelet-skew").message,
        "from the input"
    );
    assert!(report.has_blockers());

    let overridden = Preflight::new(sim.client().unwrap())
        .with_provider(Arc::new(FakeProvider))
        .run(&input.clone().overrides(["eks.insight-addon-version"]))
        .await
        .unwrap();
    assert!(!overridden.has_blockers(), "{}", overridden.to_table());
    assert!(
        overridden
            .to_table()
            .contains("overridden eks.insight-addon-version")
    );

    sim.requests().clear();
    let err = Preflight::new(sim.client().unwrap())
        .run(&PreflightInput::new(v("1.34")).overrides(["pdb.no-such-code"]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("invalid overrides"), "{text}");
    assert!(text.contains("pdb.max-unavailable-zero"), "{text}");
    assert_eq!(sim.requests().total(), 0, "nothing was sent");
    sim.shutdown().await;
}

/// An API failure in one check is reported as such; the other checks still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_is_reported_and_the_rest_still_run() {
    let sim = start(Scenario::new().node(Node::new("down").not_ready())).await;
    sim.faults()
        .add(kup_mocks::k8s::Fault::status(403).path("/apis/policy/v1/poddisruptionbudgets"));
    let report = preflight(&sim, &PreflightInput::new(v("1.34"))).await;
    let failed = only(&report, "preflight.check-failed");
    assert_eq!(failed.source, "pdb");
    assert!(
        failed.message.contains("403") || failed.message.to_lowercase().contains("forbidden"),
        "{}",
        failed.message
    );
    assert_eq!(
        names(only(&report, "node.not-ready"), "Node"),
        set(&["down"])
    );
    sim.shutdown().await;
}
