//! Crash and resume: the run is killed (its future dropped) at every journal write, before
//! and after the write lands, and at points inside steps (mid-drain, with a cloud operation
//! in flight, while a node restarts, during validation); failures are injected in the
//! provider and the API. A resume from the journal must always reach the same end state:
//! every pool at the target, no pod deleted outside the eviction API, no node left cordoned
//! that was not cordoned before, no operation started twice.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;

use futures::StreamExt;
use kup_core::{ErrorCategory, Event, OperationTarget, UpgradePlan};
use kup_engine::journal::{ConfigMapJournalStore, JournalStore, NodePhase, RunState};
use kup_engine::{EngineOptions, Error};
use kup_mocks::k8s::Fault;
use support::{
    Attempt, CrashStore, How, SimCluster, Tripwire, attempt, fast_options, memory, small, standard,
};
use tokio_util::sync::CancellationToken;

/// Reruns with fresh engines (as restarted processes would: `apply` resumes the journal, or
/// starts afresh when the crash came before its first write) until a run finishes well.
async fn resume_until_done(h: &SimCluster, plan: &UpgradePlan, store: Arc<dyn JournalStore>) {
    for _ in 0..5 {
        let engine = h.engine(
            store.clone(),
            "runner",
            Arc::new(kup_core::NoEvents),
            fast_options(),
        );
        match attempt(&engine, plan, How::Apply, &CancellationToken::new()).await {
            Attempt::Finished(Ok(_)) => return,
            Attempt::Finished(Err(e)) => eprintln!("resume failed, retrying: {e}"),
            Attempt::Crashed => unreachable!("no crash point armed"),
        }
    }
    panic!(
        "no convergence after 5 resumes:\n{}",
        store
            .load()
            .await
            .unwrap()
            .map(|j| j.to_table())
            .unwrap_or_default()
    );
}

/// Saves a crash-free run of the small plan writes.
async fn saves_of_a_clean_run() -> usize {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    let counting = Arc::new(CrashStore::new(memory(), usize::MAX, false));
    let engine = h.engine(
        counting.clone(),
        "runner",
        Arc::new(kup_core::NoEvents),
        fast_options(),
    );
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    h.sim.shutdown().await;
    counting.saves()
}

/// One crash at save `at` (landing first when `after`), then resumes until done.
async fn crash_at_save(at: usize, after: bool) -> (usize, bool) {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    let inner = memory();
    let crashing = Arc::new(CrashStore::new(inner.clone(), at, after));
    let engine = h.engine(
        crashing.clone(),
        "runner",
        Arc::new(kup_core::NoEvents),
        fast_options(),
    );
    match attempt(&engine, &plan, How::Run, &crashing.tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("save {at}: the run ended before its crash point: {r:?}"),
    }
    drop(engine);
    resume_until_done(&h, &plan, inner.clone()).await;
    h.assert_converged(&plan, inner.get()).await;
    h.sim.shutdown().await;
    (at, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_journal_write_resumes_to_the_same_end_state() {
    let total = saves_of_a_clean_run().await;
    assert!(
        total > 15,
        "a run writes its journal at every transition ({total})"
    );
    eprintln!("crash points: {total} saves");
    // The last save marks the run finished; crashing there leaves nothing to redo but the
    // record, which a resume writes.
    let points: Vec<(usize, bool)> = (1..=total)
        .flat_map(|at| [(at, false), (at, true)])
        .collect();
    let done: Vec<(usize, bool)> = futures::stream::iter(points.clone())
        .map(|(at, after)| crash_at_save(at, after))
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(done.len(), points.len());
}

/// Crashes at the `nth` event `pred` accepts, checks the journal with `inspect`, resumes.
async fn crash_on_event(
    nth: usize,
    pred: impl Fn(&Event) -> bool + Send + Sync + 'static,
    inspect: impl FnOnce(&SimCluster, &kup_engine::journal::Journal),
) {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let wire = Arc::new(Tripwire::new(nth, pred));
    let engine = h.engine(store.clone(), "runner", wire.clone(), fast_options());
    match attempt(&engine, &plan, How::Run, &wire.tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("the run ended before its crash point: {r:?}"),
    }
    drop(engine);
    inspect(&h, &store.get().unwrap());
    resume_until_done(&h, &plan, store.clone()).await;
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_drain_leaves_the_node_recorded_and_resumes() {
    crash_on_event(
        1,
        |e| matches!(e, Event::PodEvicted { .. }),
        |h, journal| {
            let record = journal
                .nodes
                .iter()
                .find(|n| n.phase == NodePhase::Cordoned)
                .expect("the node being drained is recorded");
            assert!(!record.was_cordoned);
            assert!(support::cordoned(&h.sim).contains(&record.node));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_a_control_plane_operation_in_flight_reattaches() {
    crash_on_event(
        1,
        |e| {
            matches!(e, Event::OperationStarted { operation, reattached: false }
                if operation.target == OperationTarget::ControlPlane)
        },
        |h, journal| {
            let recorded: Vec<_> = journal
                .steps
                .iter()
                .filter_map(|s| s.operation.as_ref())
                .collect();
            assert_eq!(recorded.len(), 1, "{}", journal.to_table());
            assert_eq!(h.provider.started().len(), 1);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_the_provider_rolls_a_pool_reattaches() {
    crash_on_event(
        1,
        |e| matches!(e, Event::OperationProgress { .. }),
        |_, _| {},
    )
    .await;
    crash_on_event(
        1,
        |e| {
            matches!(e, Event::OperationStarted { operation, .. }
                if matches!(operation.target, OperationTarget::NodePool { .. }))
        },
        |_, journal| {
            assert!(journal.steps.iter().any(|s| {
                s.operation
                    .as_ref()
                    .is_some_and(|o| matches!(o.target, OperationTarget::NodePool { .. }))
            }));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_a_node_restarts_or_during_validation_resumes() {
    crash_on_event(
        2,
        |e| {
            matches!(e, Event::OperationStarted { operation, .. }
                if matches!(operation.target, OperationTarget::Node { .. }))
        },
        |_, journal| {
            assert!(
                journal
                    .nodes
                    .iter()
                    .any(|n| n.phase == NodePhase::Upgrading && n.operation.is_some()),
                "{}",
                journal.to_table()
            );
        },
    )
    .await;
    crash_on_event(3, |e| matches!(e, Event::ValidationRound { .. }), |_, _| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_in_a_configmap_survives_a_crash() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = || {
        Arc::new(ConfigMapJournalStore::new(
            h.sim.client().unwrap(),
            "kube-system",
            "prod",
        )) as Arc<dyn JournalStore>
    };
    let wire = Arc::new(Tripwire::new(2, |e| {
        matches!(e, Event::NodeCordoned { .. })
    }));
    let engine = h.engine(store(), "runner", wire.clone(), fast_options());
    assert!(matches!(
        attempt(&engine, &plan, How::Run, &wire.tripped).await,
        Attempt::Crashed
    ));
    drop(engine);
    let stored = h
        .sim
        .get("configmaps", Some("kube-system"), "kup-journal-prod")
        .expect("journal ConfigMap");
    assert!(
        stored["data"]["journal.json"]
            .as_str()
            .unwrap()
            .contains(&plan.id)
    );
    resume_until_done(&h, &plan, store()).await;
    let journal = store().load().await.unwrap();
    h.assert_converged(&plan, journal).await;
    h.sim.shutdown().await;
}

/// Runs until an injected failure stops it; returns the error.
async fn fails_with(
    h: &SimCluster,
    plan: &UpgradePlan,
    store: Arc<dyn JournalStore>,
    options: EngineOptions,
) -> Error {
    let engine = h.engine(store, "runner", Arc::new(kup_core::NoEvents), options);
    match engine.run(plan, &CancellationToken::new()).await {
        Ok(r) => panic!("expected a failure, got {r:?}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_control_plane_operation_lists_every_provider_error_then_resumes() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    h.provider.set_faults(|f| {
        f.fail_control_plane = Some(vec![
            kup_core::ProviderErrorDetail {
                code: "ClusterUnreachable".into(),
                message: "the control plane did not come back".into(),
                resource_ids: vec!["cp-1".into()],
            },
            kup_core::ProviderErrorDetail {
                code: "InsufficientFreeAddresses".into(),
                message: "subnet full".into(),
                resource_ids: vec!["subnet-1".into()],
            },
        ])
    });
    let store = memory();
    let err = fails_with(&h, &plan, store.clone(), fast_options()).await;
    assert_eq!(err.category(), ErrorCategory::OperationFailed);
    let text = err.to_string();
    assert!(
        text.contains("ClusterUnreachable") && text.contains("InsufficientFreeAddresses"),
        "{text}"
    );
    assert!(text.contains("subnet-1"), "{text}");
    let journal = store.get().unwrap();
    assert!(matches!(
        journal.state,
        RunState::Failed {
            category: ErrorCategory::OperationFailed,
            ..
        }
    ));
    // A failed operation is not re-attached to: the resume starts a new one.
    assert!(journal.steps.iter().all(|s| s.operation.is_none()));
    resume_until_done(&h, &plan, store.clone()).await;
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_are_reported_as_busy_and_nothing_is_started() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    h.provider.set_faults(|f| f.busy_once = true);
    let store = memory();
    let err = fails_with(&h, &plan, store.clone(), fast_options()).await;
    assert_eq!(err.category(), ErrorCategory::Busy, "{err}");
    assert!(err.to_string().contains("ResourceInUseException"), "{err}");
    assert!(h.provider.started().is_empty());
    assert!(matches!(
        store.get().unwrap().state,
        RunState::Failed {
            category: ErrorCategory::Busy,
            ..
        }
    ));
    resume_until_done(&h, &plan, store.clone()).await;
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_node_upgrade_failures_stop_the_run_and_resume_converges() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    // The second node upgrade fails in the provider; the node stays cordoned and recorded.
    h.provider.set_faults(|f| f.fail_node = Some("kw-2".into()));
    let err = fails_with(&h, &plan, store.clone(), fast_options()).await;
    assert_eq!(err.category(), ErrorCategory::OperationFailed, "{err}");
    assert!(err.to_string().contains("NodeUpgradeFailure"), "{err}");
    let journal = store.get().unwrap();
    let kw2 = journal.node("kw-2").expect("kw-2 recorded");
    assert!(!kw2.was_cordoned);
    assert!(support::cordoned(&h.sim).contains("kw-2"));
    // Then the API refuses node updates for a while.
    let fault = h.sim.faults().add(
        Fault::status(500)
            .method("PATCH")
            .path("/api/v1/nodes/*")
            .times(12),
    );
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(kup_core::NoEvents),
        fast_options(),
    );
    let _ = engine.resume(&plan, &CancellationToken::new()).await;
    h.sim.faults().remove(fault);
    resume_until_done(&h, &plan, store.clone()).await;
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}
