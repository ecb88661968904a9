//! Full runs against the simulator: a multi-minor plan to its end state, a second execution
//! of the same plan, node batches, and the events observers see.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;

use kup_core::{Event, NodePoolOptions, Outcome, PoolManagement, StepAction};
use kup_engine::PoolOptions;
use kup_engine::events::Recorder;
use kup_engine::journal::JournalStore;
use kup_mocks::k8s::{Node, Pool};
use kup_tests::reference::v;
use support::{BudgetWatch, SimCluster, fast_options, memory, standard};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_minor_plan_reaches_its_end_state() {
    let mut setup = standard();
    // An older kup-rolled pool, and one minor per pool upgrade: pools move three and two times.
    setup.scenario = setup
        .scenario
        .pool(Pool::new("old", 2).kubelet_version("v1.30.2"));
    setup.pools.push(("old", PoolManagement::Kup));
    setup.max_jump = Some(1);
    let h = SimCluster::start(setup).await;
    let plan = h.plan("1.33.2").await;
    let pool_steps: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::NodePool { pool, from, to, .. } => Some(format!("{pool} {from}>{to}")),
            _ => None,
        })
        .collect();
    assert!(
        pool_steps.contains(&"old 1.30.2>1.31.4".to_string()),
        "{pool_steps:?}"
    );
    assert_eq!(plan.control_plane_hops().count(), 2);

    let store = memory();
    let events = Arc::new(Recorder::new());
    let mut options = fast_options();
    options.pools.insert(
        "kw".into(),
        PoolOptions {
            provider: NodePoolOptions {
                max_unavailable: Some("2".into()),
                ..NodePoolOptions::default()
            },
            ..options.pool_defaults.clone()
        },
    );
    let engine = h.engine(store.clone(), "runner-a", events.clone(), options);
    let budgets = BudgetWatch::start(&h.sim);
    let report = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}\n{}", store.get().unwrap().to_table()));
    assert_eq!(budgets.finish().await, Vec::<String>::new());
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.steps.len(), plan.steps.len());
    assert_eq!(report.backups.len(), 2, "one verified backup per hop");
    h.assert_converged(&plan, store.get()).await;
    assert_eq!(h.provider.addon("coredns").as_deref(), Some("v1.12.0"));
    // kw-4 was cordoned before and stays cordoned; it was still upgraded.
    assert!(support::cordoned(&h.sim).contains("kw-4"));
    // Batches: never more than max_unavailable nodes of a pool cordoned by kup at once.
    assert_eq!(h.nodes.max_cordoned("kw"), 2);
    assert_eq!(h.nodes.max_cordoned("old"), 1);

    // Events: every step started and finished, nodes cordoned/upgraded/uncordoned.
    let seen = events.events();
    assert!(matches!(
        seen.first(),
        Some(Event::RunStarted { dry_run: false, .. })
    ));
    assert!(matches!(
        seen.last(),
        Some(Event::RunFinished {
            outcome: Outcome::Succeeded,
            ..
        })
    ));
    for step in &plan.steps {
        assert_eq!(
            events.count(|e| matches!(e, Event::StepStarted { step: s, .. } if *s == step.index)),
            1
        );
    }
    assert!(events.count(|e| matches!(e, Event::NodeUncordoned { .. })) >= 6);
    assert!(events.count(|e| matches!(e, Event::PodEvicted { .. })) > 0);
    assert!(events.count(|e| matches!(e, Event::BackupVerified { .. })) == 2);
    assert!(events.count(|e| matches!(e, Event::ValidationRound { .. })) > 0);
    assert_eq!(
        events.count(|e| matches!(e, Event::NodeLeftCordoned { node, .. } if node == "kw-4")),
        2,
        "kw-4 is reported as left cordoned after each of its two upgrades"
    );
    // The canary: the first node of a pool goes alone before any batch of two.
    let kw_batches: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            Event::StepProgress { message, .. } if message.starts_with("pool kw: taking down") => {
                Some(message.clone())
            }
            _ => None,
        })
        .collect();
    assert!(kw_batches[0].contains("1 node(s): kw-1"), "{kw_batches:?}");
    assert!(kw_batches[1].contains("2 node(s)"), "{kw_batches:?}");

    // Executing the same plan again changes nothing: every change step is skipped.
    let requests_before = h.provider.started().len();
    let again = engine.run(&plan, &CancellationToken::new()).await.unwrap();
    assert_eq!(h.provider.started().len(), requests_before);
    for step in &again.steps {
        if plan.step(step.index).unwrap().action.changes_cluster() {
            assert_eq!(step.outcome, Outcome::Skipped, "{step:?}");
        }
    }
    assert_eq!(store.load().await.unwrap().unwrap().attempts, 1);
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cordoned_before_is_upgraded_and_left_cordoned() {
    let mut setup = standard();
    setup.scenario = setup.scenario.node(Node::new("kw-5").pool("kw"));
    let h = SimCluster::start(setup).await;
    let plan = h.plan("1.32.4").await;
    let store = memory();
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    h.assert_converged(&plan, store.get()).await;
    assert_eq!(h.kubelets()["kw-4"], "v1.32.4");
    assert!(support::cordoned(&h.sim).contains("kw-4"));
    assert!(!support::cordoned(&h.sim).contains("kw-5"));
    let _ = v("1.32.4");
    h.sim.shutdown().await;
}
