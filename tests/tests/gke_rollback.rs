//! End to end on GKE: a control plane upgraded 1.33 → 1.34 by the engine as a rollback-safe
//! (two-step) upgrade is rolled back during its soak by a rollback plan made from the live
//! cluster and the provider's offer: dry run first (nothing sent), then a run killed while GKE
//! moves the control plane back, resumed from its journal without a second update. After the
//! soak is completed, the same rollback is refused in GKE's words and nothing moves.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kup_core::{
    Event, KubeVersion, OperationStatus, OperationTarget, Outcome, PlanKind, PlanOptions,
    RollbackRequest, UpgradePlan, UpgradeProvider,
};
use kup_engine::events::Recorder;
use kup_engine::journal::{MemoryJournalStore, RunState, StepState};
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, KubeCluster};
use kup_gke::{CONTROL_PLANE_ROLLBACK_REFUSAL, GkeBuilder, GkeProvider, GkeSettings};
use kup_mocks::gke::{GkeConfig, GkeFault, GkeMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use kup_tests::sim::{Attempt, How, Tripwire, attempt};
use tokio_util::sync::CancellationToken;

const OLD: &str = "1.33.5-gke.1080000";
const NEW: &str = "1.34.1-gke.1829001";

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

/// What a (re)started kup builds: minor control-plane upgrades soak for seven days.
async fn provider(mock: &GkeMock, sim: &SimHandle) -> Arc<GkeProvider> {
    Arc::new(
        GkeBuilder::new()
            .project("demo-project")
            .location("us-central1")
            .cluster("demo")
            .endpoint(mock.endpoint())
            .anonymous_credentials()
            .kube_client(sim.client().unwrap())
            .settings(GkeSettings {
                control_plane_soak: Some(Duration::from_secs(7 * 24 * 3600)),
                ..GkeSettings::default()
            })
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

fn calls(mock: &GkeMock, call: &str) -> u64 {
    mock.calls().get(call).copied().unwrap_or(0)
}

/// The control plane upgraded to 1.34 (pools left at 1.33), soaking; the upgrade's plan.
async fn upgraded(mock: &GkeMock, sim: &SimHandle) -> UpgradePlan {
    let p = provider(mock, sim).await;
    let target = KubeVersion::parse("1.34").unwrap();
    let plan = kup_engine::planning::plan_for(
        p.as_ref(),
        &target,
        PlanOptions {
            control_plane_only: true,
            ..PlanOptions::default()
        },
    )
    .await
    .unwrap();
    let report = engine(
        p.clone(),
        sim,
        Arc::new(MemoryJournalStore::default()),
        Arc::new(Recorder::new()),
    )
    .run(&plan, &CancellationToken::new())
    .await
    .unwrap_or_else(|e| panic!("upgrade failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(mock.master_version("demo").as_deref(), Some(NEW));
    assert_eq!(calls(mock, "updateCluster"), 1, "a rollback-safe upgrade");
    assert!(mock.control_plane_soak("demo").is_some());
    plan
}

async fn rollback_plan(p: &GkeProvider, upgrade: &UpgradePlan) -> kup_core::Result<UpgradePlan> {
    let live = p.cluster().await.unwrap();
    let offer = p.rollback_offer().await.unwrap();
    let caps = p.capabilities();
    kup_core::plan_rollback(&RollbackRequest {
        cluster: &live,
        caps: &caps,
        offer: &offer,
        control_plane: upgrade.from.clone(),
        pools: upgrade.pools.clone(),
        backup: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soaking_control_plane_is_rolled_back_dry_run_first_then_resumed_after_a_crash() {
    let (sim, mock) = start().await;
    let upgrade = upgraded(&mock, &sim).await;
    let p = provider(&mock, &sim).await;

    let rollback = rollback_plan(&p, &upgrade).await.unwrap();
    assert_eq!(rollback.kind, PlanKind::Rollback);
    let kinds: Vec<&str> = rollback.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(
        kinds,
        vec!["control-plane-rollback", "validate"],
        "{rollback}"
    );
    assert_eq!(rollback.target, KubeVersion::parse(OLD).unwrap());
    assert!(rollback.to_string().contains("rollback-safe"), "{rollback}");

    // A dry run reads, and sends nothing.
    let store = Arc::new(MemoryJournalStore::default());
    let masters = calls(&mock, "updateMaster");
    let report = engine(p.clone(), &sim, store.clone(), Arc::new(Recorder::new()))
        .dry_run(&rollback)
        .await
        .unwrap();
    assert!(report.ok(), "{}", report.to_table());
    assert_eq!(calls(&mock, "updateMaster"), masters);
    assert!(store.get().is_none(), "a dry run writes no journal");

    // Killed at the first "running" poll of the rollback: GKE keeps moving the control plane.
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let wire = Arc::new(Tripwire::new(1, move |e| match e {
        Event::OperationStarted { operation, .. } => {
            if operation.target == OperationTarget::ControlPlane {
                seen.store(true, Ordering::SeqCst);
            }
            false
        }
        Event::OperationProgress { status, .. } => {
            seen.load(Ordering::SeqCst) && matches!(status, OperationStatus::Running { .. })
        }
        _ => false,
    }));
    let first = engine(p.clone(), &sim, store.clone(), wire.clone());
    match attempt(&first, &rollback, How::Run, &wire.tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("the rollback ended before its crash point: {r:?}"),
    }
    drop(first);
    assert_eq!(
        calls(&mock, "updateMaster"),
        masters + 1,
        "one rollback sent"
    );
    let journal = store.get().unwrap();
    assert_eq!(journal.state, RunState::Running);
    assert!(
        journal.steps[0].operation.is_some(),
        "the journal holds the operation in flight: {journal:?}"
    );

    // A restarted kup resumes from the journal and re-attaches.
    let fresh = provider(&mock, &sim).await;
    let events = Arc::new(Recorder::new());
    let second = engine(fresh.clone(), &sim, store.clone(), events.clone());
    match attempt(&second, &rollback, How::Apply, &CancellationToken::new()).await {
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
        "the rerun re-attached to the rollback in flight"
    );
    assert_eq!(
        calls(&mock, "updateMaster"),
        masters + 1,
        "no second rollback"
    );
    assert_eq!(mock.master_version("demo").as_deref(), Some(OLD));
    assert!(mock.control_plane_soak("demo").is_none());
    let journal = store.get().unwrap();
    assert_eq!(journal.state, RunState::Succeeded);
    assert!(
        journal
            .steps
            .iter()
            .all(|s| matches!(s.state, StepState::Succeeded | StepState::Skipped)),
        "{journal:?}"
    );
    for node in sim.nodes() {
        assert_eq!(
            node["status"]["nodeInfo"]["kubeletVersion"],
            format!("v{OLD}"),
            "{}",
            node["metadata"]["name"]
        );
    }
    // Nothing left to roll back.
    let e = rollback_plan(&fresh, &upgrade).await.unwrap_err();
    assert_eq!(e.category(), kup_core::ErrorCategory::Precondition, "{e}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_soak_is_completed_the_rollback_is_refused_in_gkes_words() {
    let (sim, mock) = start().await;
    let upgrade = upgraded(&mock, &sim).await;
    let p = provider(&mock, &sim).await;
    let done = p.complete_control_plane_upgrade().await.unwrap();
    let mut status = p.poll(&done).await.unwrap();
    for _ in 0..3000 {
        if status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = p.poll(&done).await.unwrap();
    }
    assert_eq!(status, OperationStatus::Succeeded);

    let masters = calls(&mock, "updateMaster");
    let e = rollback_plan(&p, &upgrade).await.unwrap_err();
    assert_eq!(e.category(), kup_core::ErrorCategory::NotSupported, "{e}");
    assert!(
        e.to_string().contains(CONTROL_PLANE_ROLLBACK_REFUSAL),
        "{e}"
    );
    assert_eq!(calls(&mock, "updateMaster"), masters);
    assert_eq!(mock.master_version("demo").as_deref(), Some(NEW));
    sim.shutdown().await;
}

fn pool_kubelets(sim: &SimHandle, pool: &str) -> Vec<String> {
    let mut out: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][kup_gke::NODE_POOL_LABEL] == pool)
        .filter_map(|n| {
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .map(String::from)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_left_part_way_by_a_failed_upgrade_is_planned_back_with_the_control_plane() {
    let (sim, mock) = start().await;
    let upgrade = upgraded(&mock, &sim).await;
    let p = provider(&mock, &sim).await;
    // The pool's upgrade fails after some nodes moved: GKE still reports the old version.
    mock.inject(GkeFault::FailNextOperation {
        code: "INTERNAL".into(),
        message: "Node creation failed: ZONE_RESOURCE_POOL_EXHAUSTED".into(),
        conditions: vec![],
    });
    let up = p
        .upgrade_node_pool(
            "apps",
            &KubeVersion::parse("1.34").unwrap(),
            &kup_core::NodePoolOptions::default(),
        )
        .await
        .unwrap();
    let mut status = p.poll(&up).await.unwrap();
    for _ in 0..6000 {
        if status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = p.poll(&up).await.unwrap();
    }
    assert!(
        matches!(status, OperationStatus::Failed { .. }),
        "{status:?}"
    );
    let mixed = pool_kubelets(&sim, "apps");
    assert!(mixed.iter().any(|k| k == &format!("v{NEW}")), "{mixed:?}");
    let live = p.cluster().await.unwrap();
    let apps = live.pool("apps").unwrap();
    assert_eq!(apps.version, KubeVersion::parse(OLD).unwrap());
    assert!(
        apps.release
            .as_deref()
            .is_some_and(|r| r.contains("failed")),
        "{apps:?}"
    );

    // The plan takes the pool back to its version on every node, then the control plane.
    let rollback = rollback_plan(&p, &upgrade).await.unwrap();
    let kinds: Vec<&str> = rollback.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(
        kinds,
        vec!["pool-rollback", "control-plane-rollback", "validate"],
        "{rollback}"
    );
    let report = engine(
        p.clone(),
        &sim,
        Arc::new(MemoryJournalStore::default()),
        Arc::new(Recorder::new()),
    )
    .run(&rollback, &CancellationToken::new())
    .await
    .unwrap_or_else(|e| panic!("rollback failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(pool_kubelets(&sim, "apps"), vec![format!("v{OLD}"); 3]);
    assert_eq!(mock.master_version("demo").as_deref(), Some(OLD));
    let live = p.cluster().await.unwrap();
    assert_eq!(live.pool("apps").unwrap().release, None, "{live:?}");
    // Nothing left to roll back.
    let e = rollback_plan(&p, &upgrade).await.unwrap_err();
    assert_eq!(e.category(), kup_core::ErrorCategory::Precondition, "{e}");
    sim.shutdown().await;
}
