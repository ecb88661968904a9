//! A full 1.33 → 1.35 upgrade of an AKS cluster with a System and a User agent pool under
//! PodDisruptionBudgets, run by kup's engine through the AKS provider against the ARM mock,
//! which plays agent-pool upgrades out on the Kubernetes simulator; validated at the end. And a
//! kill in the middle of an agent-pool operation: the restarted run re-attaches to it and sends
//! no second PUT.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kup_aks::{AksBuilder, AksProvider};
use kup_core::{
    Event, EventSink, KubeVersion, OperationTarget, Outcome, PlanOptions, UpgradePlan,
    UpgradeProvider,
};
use kup_engine::events::Recorder;
use kup_engine::journal::{JournalStore, MemoryJournalStore};
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, KubeCluster};
use kup_mocks::aks::{AksConfig, AksMock, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, SimHandle, Simulator};
use kup_tests::sim::{Attempt, BudgetWatch, How, Tripwire, attempt};
use tokio_util::sync::CancellationToken;

async fn start() -> (SimHandle, AksMock) {
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
    let mock = AksMock::start(AksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    (sim, mock)
}

/// What a (re)started kup builds from its configuration.
fn provider(mock: &AksMock) -> Arc<AksProvider> {
    let (subscription, resource_group) = mock.coordinates();
    Arc::new(
        AksBuilder::new()
            .subscription(subscription)
            .resource_group(resource_group)
            .cluster("demo")
            .endpoint(mock.endpoint())
            .ca_certificate_pem(mock.ca_pem())
            .static_token("test-token")
            .build()
            .unwrap(),
    )
}

fn engine(
    provider: Arc<AksProvider>,
    sim: &SimHandle,
    store: Arc<dyn JournalStore>,
    events: Arc<dyn EventSink>,
) -> Engine {
    Engine::builder(provider)
        .kube(KubeCluster::from_config(sim.client_config()).unwrap())
        .journal(store)
        .lock(Arc::new(LocalLock::new("demo")))
        .events(events)
        .options(kup_tests::sim::cloud_options())
        .build()
        .unwrap()
}

async fn plan(p: &AksProvider) -> UpgradePlan {
    let target = KubeVersion::parse("1.35").unwrap();
    let plan = kup_engine::planning::plan_for(p, &target, PlanOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.control_plane_hops().count(), 2, "{plan}");
    plan
}

/// Everything at 1.35, nothing cordoned, application pods only ever evicted, every PUT once.
async fn assert_converged(sim: &SimHandle, mock: &AksMock, p: &AksProvider) {
    let cluster = p.cluster().await.unwrap();
    assert!(
        cluster.control_plane.to_string().starts_with("1.35."),
        "{cluster:?}"
    );
    assert_eq!(cluster.node_pools.len(), 2);
    for pool in &cluster.node_pools {
        assert!(
            pool.version.same_minor(&cluster.control_plane),
            "{}",
            pool.name
        );
    }
    let accepted = mock.accepted();
    let mut unique = accepted.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        accepted.len(),
        "work started twice: {accepted:?}"
    );
    let cp = accepted
        .iter()
        .filter(|a| a.starts_with("PUT managedCluster"))
        .count();
    assert_eq!(cp, 2, "{accepted:?}");
    for pool in ["system", "apps"] {
        let puts = accepted
            .iter()
            .filter(|a| a.starts_with(&format!("PUT agentPool demo/{pool} ")))
            .count();
        assert_eq!(puts, 1, "pool {pool}: {accepted:?}");
    }
    assert_eq!(
        mock.calls().get("PUT agentPool").copied(),
        Some(2),
        "one PUT per pool was sent"
    );
    let ops = mock.operations("demo");
    assert!(ops.iter().all(|o| o.status == "Succeeded"), "{ops:?}");
    for node in sim.nodes() {
        assert!(
            node["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap()
                .starts_with("v1.35."),
            "{}",
            node["metadata"]["name"]
        );
        assert_ne!(node["spec"]["unschedulable"], true);
    }
    let app: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(!app.is_empty());
    assert!(app.iter().all(|d| d.via == DeletedVia::Eviction), "{app:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_two_minors_with_a_system_and_a_user_pool_under_pdbs_and_validates() {
    let (sim, mock) = start().await;
    let p = provider(&mock);
    let plan = plan(&p).await;
    let budgets = BudgetWatch::start(&sim);
    let events = Arc::new(Recorder::new());
    let store = Arc::new(MemoryJournalStore::default());
    let report = engine(p.clone(), &sim, store, events.clone())
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let violations = budgets.finish().await;
    assert!(violations.is_empty(), "budgets broken: {violations:?}");
    assert_converged(&sim, &mock, &p).await;
    assert!(
        events.count(|e| matches!(e, Event::ValidationRound { .. })) > 0,
        "validated"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_an_agent_pool_operation_resumes_without_a_second_put() {
    let (sim, mock) = start().await;
    let p = provider(&mock);
    let plan = plan(&p).await;
    let store = Arc::new(MemoryJournalStore::default());
    let wire = Arc::new(Tripwire::new(1, |e| {
        matches!(e, Event::OperationStarted { operation, reattached: false }
            if matches!(operation.target, OperationTarget::NodePool { .. }))
    }));
    let first = engine(p, &sim, store.clone(), wire.clone());
    match attempt(&first, &plan, How::Run, &wire.tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("the run ended before its crash point: {r:?}"),
    }
    drop(first);
    // The pool's operation is still running in AKS, and the journal knows it.
    let running: Vec<_> = mock
        .operations("demo")
        .into_iter()
        .filter(|o| o.status == "InProgress")
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    let journal = store.load().await.unwrap().unwrap();
    let recorded = journal
        .steps
        .iter()
        .filter_map(|s| s.operation.as_ref())
        .find(|o| matches!(o.target, OperationTarget::NodePool { .. }))
        .expect("the pool operation is recorded");
    assert_eq!(recorded.id, running[0].id);
    let puts_before = mock.calls().get("PUT agentPool").copied();
    assert_eq!(puts_before, Some(1));

    // A restarted kup: a new provider, a new engine, the same journal.
    let events = Arc::new(Recorder::new());
    let restarted = provider(&mock);
    let second = engine(restarted.clone(), &sim, store.clone(), events.clone());
    match attempt(&second, &plan, How::Apply, &CancellationToken::new()).await {
        Attempt::Finished(Ok(report)) => assert_eq!(report.outcome, Outcome::Succeeded),
        Attempt::Finished(Err(e)) => panic!("resume failed: {e}"),
        Attempt::Crashed => unreachable!("no crash point armed"),
    }
    assert!(
        events.count(
            |e| matches!(e, Event::OperationStarted { operation, reattached: true }
            if operation.id == recorded.id)
        ) == 1,
        "the resumed run re-attached to {}",
        recorded.id
    );
    assert_converged(&sim, &mock, &restarted).await;
    sim.shutdown().await;
}
