//! Dry runs: the plan walked against the live cluster, every precondition checked, and not a
//! single mutating request sent.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;

use kup_core::{Event, Finding, Outcome, Severity};
use kup_engine::WouldDo;
use kup_engine::events::Recorder;
use kup_mocks::k8s::{Node, Pod};
use support::{SimCluster, fast_options, memory, standard};
use tokio_util::sync::CancellationToken;

fn mutating(h: &SimCluster) -> Vec<String> {
    h.sim
        .requests()
        .entries()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_what_it_would_do_and_changes_nothing() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let events = Arc::new(Recorder::new());
    let engine = h.engine(store.clone(), "runner", events.clone(), fast_options());
    let before = h.kubelets();
    h.sim.requests().clear();
    let report = engine.dry_run(&plan).await.unwrap();
    assert_eq!(
        mutating(&h),
        Vec::<String>::new(),
        "a dry run sends no change"
    );
    assert!(h.sim.requests().total() > 0, "it did read the cluster");
    assert!(h.provider.started().is_empty());
    assert_eq!(h.provider.backups(), 0);
    assert!(store.get().is_none(), "no journal written");
    assert_eq!(h.kubelets(), before);

    assert!(report.ok(), "{}", report.to_table());
    assert_eq!(report.steps.len(), plan.steps.len());
    assert!(report.preflight.is_some());
    assert!(report.steps.iter().all(|s| s.would == WouldDo::Run));
    let kw = report
        .steps
        .iter()
        .find(|s| s.description.starts_with("node pool kw"))
        .unwrap();
    assert!(
        kw.details
            .iter()
            .any(|d| d.starts_with("batch 1 (canary): kw-1")),
        "{:?}",
        kw.details
    );
    assert!(
        kw.details.iter().any(|d| d.starts_with("batch 2: kw-2")),
        "{:?}",
        kw.details
    );
    assert!(
        kw.details
            .iter()
            .any(|d| d.contains("kw-4 is cordoned now and would stay cordoned"))
    );
    assert!(kw.details.iter().any(|d| d.contains("would evict")));
    let table = report.to_table();
    assert!(table.contains("ready"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["ok"], true);
    assert!(matches!(
        events.events().first(),
        Some(Event::RunStarted { dry_run: true, .. })
    ));
    assert!(matches!(
        events.events().last(),
        Some(Event::RunFinished {
            outcome: Outcome::Skipped,
            ..
        })
    ));

    // After a real run, a dry run of the same plan would skip every change.
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    h.sim.requests().clear();
    let again = engine.dry_run(&plan).await.unwrap();
    assert_eq!(mutating(&h), Vec::<String>::new());
    for step in &again.steps {
        if plan.step(step.index).unwrap().action.changes_cluster() {
            assert!(matches!(step.would, WouldDo::Skip { .. }), "{step:?}");
        }
    }
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_every_precondition_that_would_stop_the_run() {
    let mut setup = standard();
    // A pod no controller owns on kw-1: the drain would refuse it.
    setup.scenario = setup
        .scenario
        .pod(Pod::new("shop", "debug").node("kw-1"))
        .node(Node::new("kw-9").pool("kw").not_ready());
    let h = SimCluster::start(setup).await;
    h.provider.set_faults(|f| {
        f.findings = vec![Finding::new(
            "sim.insight-addon-version",
            Severity::Blocker,
            "coredns too old for 1.33",
        )]
    });
    let plan = h.plan("1.33.2").await;
    // Another run holds the lock.
    let holder = h.lock("someone-else");
    let guard = kup_engine::lock::ClusterLock::acquire(&holder)
        .await
        .unwrap();
    let engine = h.engine(
        memory(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    h.sim.requests().clear();
    let report = engine.dry_run(&plan).await.unwrap();
    let renewals: Vec<String> = mutating(&h)
        .into_iter()
        .filter(|r| !r.contains("/leases/"))
        .collect();
    assert_eq!(
        renewals,
        Vec::<String>::new(),
        "only the other run's lease renewals changed anything"
    );
    assert!(!report.ok());
    let problems = report.all_problems().join("\n");
    assert!(problems.contains("held by someone-else"), "{problems}");
    assert!(problems.contains("sim.insight-addon-version"), "{problems}");
    assert!(problems.contains("node.not-ready"), "{problems}");
    assert!(problems.contains("shop/debug"), "{problems}");
    assert!(report.to_table().contains("would stop"));
    guard.release().await.unwrap();
    h.sim.shutdown().await;
}
