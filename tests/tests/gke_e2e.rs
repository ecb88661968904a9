//! A full 1.33 → 1.35 upgrade of a GKE cluster with two node pools, run by kup's engine through
//! the GKE provider against the GKE mock, which plays node-pool upgrades out on the Kubernetes
//! simulator; validated at the end. And a run killed while GKE rolls a node pool: the rerun
//! re-attaches to the operation and sends no second update.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kup_core::{
    Event, KubeVersion, OperationStatus, OperationTarget, Outcome, PlanOptions, UpgradeProvider,
};
use kup_engine::events::Recorder;
use kup_engine::journal::MemoryJournalStore;
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, KubeCluster};
use kup_gke::{GkeBuilder, GkeProvider};
use kup_mocks::gke::{GkeConfig, GkeMock, OpTarget, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, SimHandle, Simulator};
use kup_tests::sim::{Attempt, How, Tripwire, attempt};
use tokio_util::sync::CancellationToken;

async fn start() -> (SimHandle, GkeMock) {
    let sim = Simulator::start(
        demo_scenario(),
        SimConfig::fast()
            .time_scale(50.0)
            .pod_start_delay(Duration::from_secs(1))
            .pod_ready_delay(Duration::from_secs(1))
            .pod_shutdown_delay(Duration::from_secs(1))
            .node_ready_delay(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    (sim, mock)
}

async fn provider(mock: &GkeMock, sim: &SimHandle) -> Arc<GkeProvider> {
    Arc::new(
        GkeBuilder::new()
            .project("demo-project")
            .location("us-central1")
            .cluster("demo")
            .endpoint(mock.endpoint())
            .anonymous_credentials()
            .kube_client(sim.client().unwrap())
            .build()
            .await
            .unwrap(),
    )
}

fn engine(
    p: Arc<GkeProvider>,
    sim: &SimHandle,
    store: Arc<MemoryJournalStore>,
    events: Arc<dyn kup_core::EventSink>,
) -> Engine {
    Engine::builder(p)
        .kube(KubeCluster::from_config(sim.client_config()).unwrap())
        .journal(store)
        .lock(Arc::new(LocalLock::new("demo")))
        .events(events)
        .options(kup_tests::sim::cloud_options())
        .build()
        .unwrap()
}

fn assert_all_at(sim: &SimHandle, prefix: &str) {
    for node in sim.nodes() {
        assert!(
            node["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap()
                .starts_with(prefix),
            "{}",
            node["metadata"]["name"]
        );
        assert_ne!(node["spec"]["unschedulable"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_two_minors_with_both_node_pools_and_validates() {
    let (sim, mock) = start().await;
    let p = provider(&mock, &sim).await;
    let target = KubeVersion::parse("1.35").unwrap();
    let plan = kup_engine::planning::plan_for(p.as_ref(), &target, PlanOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.control_plane_hops().count(), 2, "{plan}");
    let events = Arc::new(Recorder::new());
    let store = Arc::new(MemoryJournalStore::default());
    let report = engine(p.clone(), &sim, store, events.clone())
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");

    let cluster = p.cluster().await.unwrap();
    assert!(cluster.control_plane.same_minor(&target), "{cluster:?}");
    for pool in &cluster.node_pools {
        assert!(pool.version.same_minor(&target), "{}", pool.name);
    }
    let ops = mock.operations();
    let masters: Vec<_> = ops
        .iter()
        .filter_map(|o| match &o.target {
            OpTarget::ControlPlane { version } => Some(version.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(masters, ["1.34.1-gke.1829001", "1.35.1-gke.1396000"]);
    assert!(
        ops.iter().all(|o| o.status == "DONE" && o.error.is_none()),
        "{ops:?}"
    );
    assert_all_at(&sim, "v1.35.");
    let app: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(!app.is_empty());
    assert!(app.iter().all(|d| d.via == DeletedVia::Eviction), "{app:?}");
    assert!(events.count(|e| matches!(e, Event::ValidationRound { .. })) > 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_gke_rolls_a_pool_reattaches_and_sends_no_second_update() {
    let (sim, mock) = start().await;
    let target = KubeVersion::parse("1.34").unwrap();
    let p = provider(&mock, &sim).await;
    let plan = kup_engine::planning::plan_for(p.as_ref(), &target, PlanOptions::default())
        .await
        .unwrap();
    let store = Arc::new(MemoryJournalStore::default());
    // Killed at the first "running" poll of a node-pool operation: GKE keeps rolling.
    let pool_started = Arc::new(AtomicBool::new(false));
    let seen = pool_started.clone();
    let wire = Arc::new(Tripwire::new(1, move |e| match e {
        Event::OperationStarted { operation, .. } => {
            if matches!(operation.target, OperationTarget::NodePool { .. }) {
                seen.store(true, Ordering::SeqCst);
            }
            false
        }
        Event::OperationProgress { status, .. } => {
            seen.load(Ordering::SeqCst) && matches!(status, OperationStatus::Running { .. })
        }
        _ => false,
    }));
    let first = engine(p, &sim, store.clone(), wire.clone());
    match attempt(&first, &plan, How::Run, &wire.tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("the run ended before its crash point: {r:?}"),
    }
    drop(first);
    let updates_before = mock.calls().get("updateNodePool").copied().unwrap_or(0);
    assert_eq!(updates_before, 1, "one pool update was in flight");
    let running: Vec<_> = mock
        .operations()
        .into_iter()
        .filter(|o| o.is_running())
        .collect();
    assert_eq!(running.len(), 1, "GKE still rolls the pool: {running:?}");

    // A restarted kup: a fresh provider and engine on the same journal.
    let fresh = provider(&mock, &sim).await;
    let events = Arc::new(Recorder::new());
    let second = engine(fresh.clone(), &sim, store.clone(), events.clone());
    match attempt(&second, &plan, How::Apply, &CancellationToken::new()).await {
        Attempt::Finished(Ok(report)) => assert_eq!(report.outcome, Outcome::Succeeded),
        Attempt::Finished(Err(e)) => panic!("resume failed: {e}"),
        Attempt::Crashed => unreachable!("no crash point armed"),
    }
    assert!(
        events.count(|e| matches!(
            e,
            Event::OperationStarted {
                reattached: true,
                ..
            }
        )) >= 1,
        "the rerun re-attached to the running operation"
    );
    let pools: Vec<String> = mock
        .operations()
        .iter()
        .filter_map(|o| match &o.target {
            OpTarget::NodePool { pool, .. } => Some(pool.clone()),
            _ => None,
        })
        .collect();
    let mut unique = pools.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        pools.len(),
        unique.len(),
        "a pool was updated twice: {pools:?}"
    );
    assert_eq!(mock.calls()["updateMaster"], 1);
    assert_all_at(&sim, "v1.34.");
    sim.shutdown().await;
}
