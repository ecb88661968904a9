//! Post-upgrade validation against the simulator: passes, fails and flaps as scripted, and
//! the per-node wait the engine uses.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use kup_core::{Event, KubeVersion, NodePool};
use kup_kube::Error;
use kup_kube::validate::{
    Expectation, ValidationOptions, ValidationReport, Validator, wait_node_ready,
};
use kup_mocks::k8s::{Node, Pool, Scenario, SimConfig, SimHandle, Simulator, Workload};

const POOL_LABEL: &str = "kup.dev/pool";
/// A failure guard only: every test finishes far sooner when it passes.
const GUARD: Duration = Duration::from_secs(60);

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

fn pool(name: &str) -> NodePool {
    NodePool::rolled_by_kup(name, v("1.33")).with_node_selector(format!("{POOL_LABEL}={name}"))
}

/// The `small` cluster as it is: every pool at 1.33.
fn small_expectation() -> Expectation {
    Expectation::new(v("1.33"))
        .pool(&pool("cp"), v("1.33"))
        .pool(&pool("pool-a"), v("1.33"))
        .pool(&pool("pool-b"), v("1.33.5"))
}

fn quick(passes: u32, timeout: Duration) -> ValidationOptions {
    ValidationOptions {
        passes,
        interval: Duration::from_millis(100),
        failure_interval: Duration::from_millis(100),
        timeout,
        ..ValidationOptions::default()
    }
}

async fn start(scenario: Scenario) -> SimHandle {
    Simulator::start(scenario, SimConfig::fast()).await.unwrap()
}

/// `(round, passed, consecutive)` of one ValidationRound event, plus its failures.
type Round = (u32, bool, u32, Vec<String>);

/// Every ValidationRound event.
#[derive(Default)]
struct Rounds(Mutex<Vec<Round>>);

impl Rounds {
    fn record(&self, e: &Event) -> Option<u32> {
        if let Event::ValidationRound {
            round,
            passed,
            consecutive,
            failures,
            ..
        } = e
        {
            self.0
                .lock()
                .unwrap()
                .push((*round, *passed, *consecutive, failures.clone()));
            return Some(*round);
        }
        None
    }

    fn failures(&self, index: usize) -> Vec<String> {
        self.0.lock().unwrap()[index].3.clone()
    }

    fn summary(&self) -> Vec<(u32, bool, u32)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.0, r.1, r.2))
            .collect()
    }
}

fn node_names(report: &ValidationReport, code: &str) -> BTreeSet<String> {
    report
        .with_code(code)
        .flat_map(|f| f.objects.iter().map(|o| o.name.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_passes_after_the_required_rounds() {
    let sim = start(Scenario::small()).await;
    let rounds = Rounds::default();
    let sink = |e: Event| {
        rounds.record(&e);
    };
    let report = Validator::new(sim.client().unwrap())
        .run(&small_expectation(), &quick(2, GUARD), &sink)
        .await
        .unwrap();
    assert!(report.passed, "{}", report.to_table());
    assert!(!report.timed_out);
    assert_eq!(
        (report.rounds, report.consecutive, report.required),
        (2, 2, 2)
    );
    assert_eq!(rounds.summary(), [(1, true, 1), (2, true, 2)]);
    assert!(report.findings.findings.is_empty(), "{}", report.to_table());
    assert_eq!(report.stats.nodes, 9);
    assert!(
        report
            .to_table()
            .starts_with("Validation: passed after 2 round(s), 2/2")
    );
    sim.shutdown().await;
}

/// A pool whose kubelets never reach the expected version fails at the timeout, naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_at_the_wrong_version_fail_validation() {
    let sim = start(Scenario::small()).await;
    let expectation = Expectation::new(v("1.33"))
        .pool(&pool("pool-a"), v("1.34"))
        .pool(&pool("pool-b"), v("1.33"));
    let rounds = Rounds::default();
    let sink = |e: Event| {
        rounds.record(&e);
    };
    let report = Validator::new(sim.client().unwrap())
        .run(&expectation, &quick(2, Duration::from_millis(500)), &sink)
        .await
        .unwrap();
    assert!(!report.passed && report.timed_out, "{}", report.to_table());
    assert!(report.rounds >= 1);
    assert!(rounds.summary().iter().all(|r| !r.1 && r.2 == 0));
    assert_eq!(
        node_names(&report, "node.version-mismatch"),
        BTreeSet::from(["pool-a-1".into(), "pool-a-2".into(), "pool-a-3".into()])
    );
    let message = &report
        .with_code("node.version-mismatch")
        .next()
        .unwrap()
        .message;
    assert!(
        message.contains("pool pool-a: kubelet v1.33.5, expected 1.34"),
        "{message}"
    );
    let failures = rounds.failures(0);
    assert!(
        failures[0].starts_with("node.version-mismatch: 3 node(s)"),
        "{failures:?}"
    );
    sim.shutdown().await;
}

/// kOps' flapping case: a node drops out after the first passing round and comes back after
/// the failed one; the count starts over and two fresh consecutive passes are needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_resets_the_count() {
    let sim = start(Scenario::small()).await;
    let rounds = Rounds::default();
    let sink = |e: Event| match rounds.record(&e) {
        Some(1) => sim
            .set_node_condition("pool-a-1", "Ready", "False")
            .unwrap(),
        Some(2) => sim.set_node_condition("pool-a-1", "Ready", "True").unwrap(),
        _ => {}
    };
    let report = Validator::new(sim.client().unwrap())
        .run(&small_expectation(), &quick(2, GUARD), &sink)
        .await
        .unwrap();
    assert!(report.passed, "{}", report.to_table());
    let summary = rounds.summary();
    assert_eq!(summary[..2], [(1, true, 1), (2, false, 0)]);
    assert_eq!(
        summary[summary.len() - 2..],
        [
            (summary.len() as u32 - 1, true, 1),
            (summary.len() as u32, true, 2)
        ]
    );
    let failed = rounds.failures(1);
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("node.not-ready") && f.contains("pool-a-1 (Ready=False)")),
        "{failed:?}"
    );
    sim.shutdown().await;
}

/// Each other check of a round fails when it should: control-plane version, /readyz,
/// unavailable workloads, unschedulable pods, missing pool nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_of_a_round() {
    let sim = start(
        Scenario::new()
            .pool(Pool::new("w", 2))
            .workload(
                Workload::deployment("apps", "limping")
                    .replicas(2)
                    .not_ready(1),
            )
            .workload(Workload::deployment("apps", "nowhere").node_selector("disk", "nvme")),
    )
    .await;
    sim.set_health_check("etcd", false);
    let validator = Validator::new(sim.client().unwrap());
    let expectation = Expectation::new(v("1.34"))
        .pool(
            &NodePool::rolled_by_kup("w", v("1.33")).with_node_selector(format!("{POOL_LABEL}=w")),
            v("1.33"),
        )
        .pool(
            &NodePool {
                nodes: vec!["gone-1".into()],
                ..NodePool::rolled_by_kup("gone", v("1.33"))
            },
            v("1.33"),
        );
    let report = validator
        .check_once(&expectation, &ValidationOptions::default())
        .await
        .unwrap();
    assert!(!report.passed);
    let codes: BTreeSet<&str> = report
        .findings
        .findings
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from([
            "control-plane.version-mismatch",
            "control-plane.readyz-failed",
            "workload.unavailable",
            "pod.pending",
            "pool.no-nodes",
            "node.not-ready",
        ]),
        "{}",
        report.to_table()
    );
    assert!(
        report
            .with_code("control-plane.readyz-failed")
            .next()
            .unwrap()
            .message
            .contains("etcd")
    );
    let workloads = node_names(&report, "workload.unavailable");
    assert!(
        workloads.contains("limping") && workloads.contains("nowhere"),
        "{workloads:?}"
    );
    assert!(
        node_names(&report, "pod.pending")
            .iter()
            .all(|p| p.starts_with("nowhere-"))
    );
    assert_eq!(
        node_names(&report, "pool.no-nodes"),
        BTreeSet::from(["gone".to_string()])
    );
    assert!(
        report
            .with_code("node.not-ready")
            .next()
            .unwrap()
            .message
            .contains("gone-1 (pool gone: node not found)")
    );

    // Overriding a code makes it stop failing rounds.
    let options = ValidationOptions {
        overrides: vec![
            "control-plane.version-mismatch".into(),
            "control-plane.readyz-failed".into(),
            "workload.unavailable".into(),
            "pod.pending".into(),
            "pool.no-nodes".into(),
            "node.not-ready".into(),
        ],
        ..ValidationOptions::default()
    };
    assert!(
        validator
            .check_once(&expectation, &options)
            .await
            .unwrap()
            .passed
    );
    sim.shutdown().await;
}

/// A plan's validate step becomes an expectation through the cluster's pools (by selector or
/// by node names); unknown pools are refused with the known ones named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectations_from_plan_steps() {
    let sim = start(
        Scenario::new()
            .pool(Pool::new("w", 2))
            .node(Node::new("solo")),
    )
    .await;
    let cluster_pools = vec![
        pool("w"),
        NodePool {
            nodes: vec!["solo".into()],
            ..NodePool::rolled_by_kup("single", v("1.33"))
        },
    ];
    let step: BTreeMap<String, KubeVersion> = [
        ("w".to_string(), v("1.33")),
        ("single".to_string(), v("1.33.5")),
    ]
    .into();
    let expectation = Expectation::from_step(&v("1.33"), &step, &cluster_pools).unwrap();
    let report = Validator::new(sim.client().unwrap())
        .check_once(&expectation, &ValidationOptions::default())
        .await
        .unwrap();
    assert!(report.passed, "{}", report.to_table());

    let bad: BTreeMap<String, KubeVersion> = [("gpu".to_string(), v("1.33"))].into();
    let err = Expectation::from_step(&v("1.33"), &bad, &cluster_pools).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown node pool \"gpu\"; the cluster has: w, single"),
        "{err}"
    );
    sim.shutdown().await;
}

/// The engine's per-node wait: returns once the kubelet restarted at the new version and the
/// node is Ready again; times out naming what it last saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_node_at_a_version() {
    let sim = start(Scenario::new().pool(Pool::new("w", 2))).await;
    let client = sim.client().unwrap();
    sim.set_kubelet_version("w-1", "v1.34.1").unwrap();
    wait_node_ready(&client, "w-1", &v("1.34"), GUARD)
        .await
        .unwrap();
    let node = sim.get("nodes", None, "w-1").unwrap();
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.34.1");

    let err = wait_node_ready(&client, "w-2", &v("1.35"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "node w-2 to be Ready at kubelet 1.35 (last seen: Ready=True, kubelet v1.33.5)"
        ),
        "{err}"
    );
    let err = wait_node_ready(&client, "missing", &v("1.35"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("last seen: not found"), "{err}");
    sim.shutdown().await;
}
