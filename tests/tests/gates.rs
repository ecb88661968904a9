//! What stops a run, and what it leaves behind: pre-flight blockers (nothing changed unless
//! overridden by code), a backup that does not verify (control plane untouched), stuck drains
//! (fail, or leave the node cordoned and go on), a flapping validation gate (no further node
//! touched), cancellation at a safe point, and resumes that are refused with a reason.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kup_core::{
    ErrorCategory, Event, EventSink, Finding, OperationTarget, Outcome, Severity, StuckDrainPolicy,
};
use kup_engine::events::Recorder;
use kup_engine::journal::{NodePhase, RunState, StepState};
use kup_engine::{Error, PoolOptions};
use kup_mocks::k8s::RequestRecord;
use kup_mocks::k8s::{IntOrPercent, Node, Pdb, SimHandle, Workload};
use support::{Attempt, How, SimCluster, Tripwire, attempt, fast_options, memory, small, standard};
use tokio_util::sync::CancellationToken;

/// Mutating requests other than the lock's lease.
fn changes(sim: &SimHandle) -> Vec<RequestRecord> {
    sim.requests()
        .entries()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .filter(|r| !r.path.starts_with("/apis/coordination.k8s.io/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_blockers_stop_the_run_before_any_change_unless_overridden() {
    let mut setup = small();
    setup.scenario = setup
        .scenario
        .node(Node::new("kw-9").pool("kw").not_ready());
    let h = SimCluster::start(setup).await;
    h.provider.set_faults(|f| {
        f.findings = vec![Finding::new(
            "sim.insight-deprecated-apis",
            Severity::Blocker,
            "clients still call removed APIs",
        )]
    });
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let events = Arc::new(Recorder::new());
    let engine = h.engine(store.clone(), "runner", events.clone(), fast_options());
    let err = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    let Error::PreflightBlocked { blockers } = &err else {
        panic!("expected a pre-flight stop, got {err}");
    };
    let codes: Vec<&str> = blockers.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"sim.insight-deprecated-apis"), "{codes:?}");
    assert!(codes.contains(&"node.not-ready"), "{codes:?}");
    assert!(err.to_string().contains("Node/kw-9"), "{err}");
    assert_eq!(err.category(), ErrorCategory::Precondition);
    assert!(changes(&h.sim).is_empty(), "{:?}", changes(&h.sim));
    assert!(h.provider.started().is_empty());
    assert_eq!(h.provider.backups(), 0);
    assert!(events.count(|e| matches!(e, Event::Finding { .. })) >= 2);

    // Overriding only one of the codes is not enough; overriding both lets the run go, and
    // the stopped run (which changed nothing) does not stand in its way.
    let mut options = fast_options();
    options.overrides = vec!["sim.insight-deprecated-apis".into()];
    let engine = h.engine(store.clone(), "runner", events.clone(), options.clone());
    assert!(matches!(
        engine.run(&plan, &CancellationToken::new()).await,
        Err(Error::PreflightBlocked { .. })
    ));
    // The NotReady node has to go before validation can pass: the operator removes it.
    h.sim.remove_node("kw-9").unwrap();
    let engine = h.engine(store.clone(), "runner", events, options);
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_does_not_verify_leaves_the_control_plane_untouched() {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    h.provider.set_faults(|f| f.backup_fails = true);
    let store = memory();
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    let err = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(err.category(), ErrorCategory::Precondition);
    assert!(h.provider.started().is_empty(), "nothing started");
    assert_eq!(h.provider.control_plane().to_string(), "1.32.4");
    assert!(changes(&h.sim).is_empty(), "{:?}", changes(&h.sim));
    let journal = store.get().unwrap();
    assert!(journal.backups.is_empty());
    assert_eq!(journal.steps[1].state, StepState::Failed);
    h.provider.set_faults(|f| f.backup_fails = false);
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

/// The small cluster plus a one-pod deployment on pool `kw` whose budget allows no eviction.
fn stuck() -> support::Setup {
    let mut setup = small();
    setup.scenario = setup
        .scenario
        .workload(Workload::deployment("shop", "solo").replicas(1).pool("kw"))
        .pdb(
            Pdb::new("shop", "solo")
                .match_label("app", "solo")
                .max_unavailable(IntOrPercent::Int(0)),
        );
    setup
}

fn stuck_options(policy: StuckDrainPolicy) -> kup_engine::EngineOptions {
    let mut options = fast_options();
    options.overrides = vec![
        "pdb.max-unavailable-zero".into(),
        "pdb.single-replica".into(),
        "pdb.zero-disruptions".into(),
    ];
    options.pools.insert(
        "kw".into(),
        PoolOptions {
            drain_timeout: Some(Duration::from_millis(1500)),
            on_stuck_drain: policy,
            ..PoolOptions::default()
        },
    );
    options
}

fn solo_node(sim: &SimHandle) -> String {
    sim.pods()
        .iter()
        .find(|p| p["metadata"]["labels"]["app"] == "solo")
        .and_then(|p| p["spec"]["nodeName"].as_str().map(String::from))
        .unwrap()
}

async fn open_budget(h: &SimCluster) {
    let api: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(h.sim.client().unwrap(), "shop");
    api.patch(
        "solo",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"maxUnavailable": 1}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_drain_fails_the_run_and_leaves_the_node_cordoned_and_recorded() {
    let h = SimCluster::start(stuck()).await;
    let node = solo_node(&h.sim);
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        stuck_options(StuckDrainPolicy::Fail),
    );
    let err = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    let Error::DrainStuck {
        node: stuck_node,
        message,
    } = &err
    else {
        panic!("expected a stuck drain, got {err}");
    };
    assert_eq!(stuck_node, &node);
    assert!(message.contains("shop/solo"), "{message}");
    assert_eq!(err.category(), ErrorCategory::Timeout);
    assert!(support::cordoned(&h.sim).contains(&node));
    let journal = store.get().unwrap();
    let record = journal.node(&node).unwrap();
    assert_eq!(record.phase, NodePhase::Cordoned);
    assert!(!record.was_cordoned);
    // No other node of the pool was touched after the stuck one.
    for other in ["kw-1", "kw-2"].iter().filter(|n| **n != node) {
        if h.kubelets()[*other] == "v1.32.4" {
            assert!(!support::cordoned(&h.sim).contains(*other));
        }
    }
    assert!(
        h.sim
            .pod_deletions()
            .iter()
            .all(|d| d.via == kup_mocks::k8s::DeletedVia::Eviction
                || d.via == kup_mocks::k8s::DeletedVia::Controller),
        "never fell back to DELETE"
    );
    open_budget(&h).await;
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        stuck_options(StuckDrainPolicy::Fail),
    );
    engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_and_continue_leaves_the_stuck_node_cordoned_and_a_later_run_finishes_it() {
    let h = SimCluster::start(stuck()).await;
    let node = solo_node(&h.sim);
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let events = Arc::new(Recorder::new());
    let engine = h.engine(
        store.clone(),
        "runner",
        events.clone(),
        stuck_options(StuckDrainPolicy::CordonAndContinue),
    );
    let report = engine.run(&plan, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.left_cordoned.len(), 1);
    assert_eq!(report.left_cordoned[0].node, node);
    assert!(
        report.left_cordoned[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("shop/solo")
    );
    assert_eq!(
        events.count(|e| matches!(e, Event::NodeLeftCordoned { node: n, reason } if *n == node && reason.contains("not upgraded"))),
        1
    );
    assert!(support::cordoned(&h.sim).contains(&node));
    assert_eq!(
        h.kubelets()[&node],
        "v1.32.4",
        "a node that did not drain is not upgraded"
    );
    for (n, kubelet) in h.kubelets() {
        if n != node {
            assert_eq!(kubelet, "v1.33.2", "{n}");
        }
    }
    let journal = store.get().unwrap();
    assert_eq!(journal.state, RunState::Succeeded);
    assert_eq!(journal.left_cordoned().count(), 1);
    assert!(journal.to_table().contains("nodes left cordoned"));

    // Once the budget allows it, running the plan again finishes the node and uncordons it.
    open_budget(&h).await;
    let engine = h.engine(
        store.clone(),
        "runner",
        events,
        stuck_options(StuckDrainPolicy::CordonAndContinue),
    );
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

/// Flips a node's NetworkUnavailable condition after every validation round once armed, so
/// rounds alternate between passing and failing.
struct Flapper {
    sim: SimHandle,
    armed: Mutex<bool>,
    bad: Mutex<bool>,
}

impl EventSink for Flapper {
    fn emit(&self, event: Event) {
        match event {
            Event::NodeUpgraded { .. } => *self.armed.lock().unwrap() = true,
            Event::ValidationRound { .. } if *self.armed.lock().unwrap() => {
                let mut bad = self.bad.lock().unwrap();
                *bad = !*bad;
                let status = if *bad { "True" } else { "False" };
                self.sim
                    .set_node_condition("mg-1", "NetworkUnavailable", status)
                    .unwrap();
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_validation_gate_stops_before_the_next_node() {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let flapper = Arc::new(Flapper {
        sim: h.sim.clone(),
        armed: Mutex::new(false),
        bad: Mutex::new(false),
    });
    let mut options = fast_options();
    options.gate.timeout = Duration::from_millis(1500);
    let engine = h.engine(store.clone(), "runner", flapper.clone(), options);
    let err = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    let Error::ValidationFailed {
        node,
        timed_out,
        failures,
        ..
    } = &err
    else {
        panic!("expected a validation stop, got {err}");
    };
    assert_eq!(node.as_deref(), Some("kw-1"), "the canary");
    assert!(*timed_out);
    assert!(
        failures
            .iter()
            .any(|f| f.contains("node.network-unavailable"))
            || failures.is_empty(),
        "{failures:?}"
    );
    // The canary is done; the next node was not touched.
    assert_eq!(h.kubelets()["kw-1"], "v1.33.2");
    assert_eq!(h.kubelets()["kw-2"], "v1.32.4");
    assert!(!support::cordoned(&h.sim).contains("kw-2"));
    *flapper.armed.lock().unwrap() = false;
    h.sim
        .set_node_condition("mg-1", "NetworkUnavailable", "False")
        .unwrap();
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

/// Cancels a token on the first event `pred` accepts.
struct CancelOn<F: Fn(&Event) -> bool + Send + Sync> {
    pred: F,
    token: CancellationToken,
}

impl<F: Fn(&Event) -> bool + Send + Sync> EventSink for CancelOn<F> {
    fn emit(&self, event: Event) {
        if (self.pred)(&event) {
            self.token.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_at_a_safe_point_with_an_accurate_journal() {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let cancel = CancellationToken::new();
    let sink = Arc::new(CancelOn {
        pred: |e: &Event| matches!(e, Event::NodeCordoned { .. }),
        token: cancel.clone(),
    });
    let engine = h.engine(store.clone(), "runner", sink, fast_options());
    let err = engine.run(&plan, &cancel).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert_eq!(err.category(), ErrorCategory::Cancelled);
    let journal = store.get().unwrap();
    assert!(
        matches!(journal.state, RunState::Cancelled { .. }),
        "{}",
        journal.to_table()
    );
    // The cordoned node is recorded, and nothing else was started after it.
    let cordoned = support::cordoned(&h.sim);
    for record in &journal.nodes {
        assert!(cordoned.contains(&record.node));
    }
    let recorded: Vec<&str> = journal.nodes.iter().map(|n| n.node.as_str()).collect();
    for node in &cordoned {
        assert!(
            h.cordoned_before.contains(node) || recorded.contains(&node.as_str()),
            "{node} cordoned without a record"
        );
    }
    assert!(
        h.provider
            .started()
            .iter()
            .all(|(t, _)| !matches!(t, OperationTarget::Node { .. }))
    );
    // The lock was given back.
    let leases = h
        .sim
        .get("leases", Some("kube-system"), "kup-upgrade-prod")
        .unwrap();
    assert!(leases["spec"]["holderIdentity"].is_null());

    // Cancelled while polling the control plane: the operation stays recorded and is
    // re-attached, not started again.
    let h2 = SimCluster::start(small()).await;
    let plan2 = h2.plan("1.33.2").await;
    let store2 = memory();
    let cancel2 = CancellationToken::new();
    let sink2 = Arc::new(CancelOn {
        pred: |e: &Event| matches!(e, Event::OperationStarted { .. }),
        token: cancel2.clone(),
    });
    let engine2 = h2.engine(store2.clone(), "runner", sink2, fast_options());
    assert!(matches!(
        engine2.run(&plan2, &cancel2).await,
        Err(Error::Cancelled { .. })
    ));
    assert!(
        store2
            .get()
            .unwrap()
            .steps
            .iter()
            .any(|s| s.operation.is_some())
    );
    let events = Arc::new(Recorder::new());
    let engine2 = h2.engine(store2.clone(), "runner", events.clone(), fast_options());
    engine2
        .resume(&plan2, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        events.count(|e| matches!(
            e,
            Event::OperationStarted {
                reattached: true,
                ..
            }
        )),
        1
    );
    h2.assert_converged(&plan2, store2.get()).await;
    h2.sim.shutdown().await;

    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_that_would_be_unsafe_are_refused_with_the_reason() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    // Crash after the first hop, while pool kw is being rolled.
    let wire = Arc::new(Tripwire::new(1, |e| {
        matches!(e, Event::NodeCordoned { .. })
    }));
    let engine = h.engine(store.clone(), "runner", wire.clone(), fast_options());
    assert!(matches!(
        attempt(&engine, &plan, How::Run, &wire.tripped).await,
        Attempt::Crashed
    ));
    drop(engine);
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );

    // Another plan.
    let mut other = plan.clone();
    other.id = "feedfacefeedface".into();
    let err = engine
        .resume(&other, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("belongs to plan {}", plan.id)),
        "{err}"
    );
    // A fresh run is refused too: the journal's run changed the cluster.
    let err = engine
        .run(&other, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnfinishedRun { ref plan_id, .. } if *plan_id == plan.id),
        "{err}"
    );

    // The control plane went back (restored) behind what the journal recorded.
    let at = h.provider.control_plane().to_string();
    h.provider.force_control_plane("1.31.4");
    let err = engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ResumeRefused { .. }), "{err}");
    assert!(err.to_string().contains("behind"), "{err}");
    h.provider.force_control_plane(&at);

    // A pool with work left disappeared.
    h.provider.remove_pool("mg");
    let err = engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("node pool(s) mg are gone"),
        "{err}"
    );
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kup_drains_a_provider_pool_ahead_of_the_provider_when_asked() {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let mut options = fast_options();
    options.drain_ahead.insert("mg".into());
    let engine = h.engine(store.clone(), "runner", Arc::new(Recorder::new()), options);
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    h.assert_converged(&plan, store.get()).await;
    assert!(
        h.kubelets().contains_key("mg-1"),
        "upgraded in place, not replaced"
    );
    assert!(
        h.provider
            .started()
            .iter()
            .all(|(t, _)| !matches!(t, OperationTarget::NodePool { .. })),
        "{:?}",
        h.provider.started()
    );
    let status = engine.status().await.unwrap().unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    h.sim.shutdown().await;
}
