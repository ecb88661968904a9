//! The cluster lock: a second run is refused at once naming the holder, an expired lease is
//! taken over and a live one is not, racing writers get 409 and exactly one wins, and the
//! lease is renewed while a run goes on (a takeover stops the run).

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kup_core::{ErrorCategory, Event};
use kup_engine::Error;
use kup_engine::lock::{ClusterLock, LeaseLock, LeaseSettings};
use kup_mocks::k8s::Fault;
use support::{SimCluster, Tripwire, fast_options, memory, small};
use tokio_util::sync::CancellationToken;

fn lease_api(h: &SimCluster) -> Api<Lease> {
    Api::namespaced(h.sim.client().unwrap(), "kube-system")
}

fn lock(h: &SimCluster, holder: &str, duration: Duration) -> LeaseLock {
    LeaseLock::new(
        h.sim.client().unwrap(),
        "prod",
        LeaseSettings {
            duration,
            holder: Some(holder.into()),
            ..LeaseSettings::default()
        },
    )
    .unwrap()
}

async fn put_lease(h: &SimCluster, holder: &str, renewed_secs_ago: i64, duration: i32) {
    let renew = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("kup-upgrade-prod".into()),
            namespace: Some("kube-system".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            acquire_time: Some(MicroTime(renew)),
            renew_time: Some(MicroTime(renew)),
            lease_duration_seconds: Some(duration),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }),
    };
    lease_api(h)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_at_once_naming_the_holder() {
    let h = SimCluster::start(small()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let wire = Arc::new(Tripwire::new(1, |e| {
        matches!(e, Event::NodeCordoned { .. })
    }));
    let first = h.engine(store.clone(), "runner-a", wire.clone(), fast_options());
    let second_store = memory();
    let second = h.engine(
        second_store.clone(),
        "runner-b",
        Arc::new(kup_core::NoEvents),
        fast_options(),
    );
    let cancel = CancellationToken::new();
    let run_a = first.run(&plan, &cancel);
    let run_b = async {
        wire.tripped.cancelled().await;
        let started = h.provider.started().len();
        let err = second
            .run(&plan, &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(
            h.provider.started().len(),
            started,
            "the refused run started nothing"
        );
        err
    };
    let (a, b) = tokio::join!(run_a, run_b);
    a.unwrap();
    assert_eq!(b.category(), ErrorCategory::Busy);
    match &b {
        Error::LockHeld { holder, lease, .. } => {
            assert_eq!(holder, "runner-a");
            assert_eq!(lease, "kube-system/kup-upgrade-prod");
        }
        other => panic!("expected LockHeld, got {other}"),
    }
    assert!(b.to_string().contains("runner-a"), "{b}");
    assert!(
        second_store.get().is_none(),
        "the refused run wrote no journal"
    );
    // The finished run gave the lease back: the second may go now (and finds nothing to do).
    let lease = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    assert_eq!(holder(&lease), None);
    second.run(&plan, &CancellationToken::new()).await.unwrap();
    h.assert_converged(&plan, store.get()).await;
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_not() {
    let h = SimCluster::start(small()).await;
    put_lease(&h, "crashed-run", 5, 60).await;
    let err = lock(&h, "next-run", Duration::from_secs(15))
        .acquire()
        .await
        .unwrap_err();
    match &err {
        Error::LockHeld {
            holder, expires_at, ..
        } => {
            assert_eq!(holder, "crashed-run");
            let left = expires_at.unwrap() - jiff::Timestamp::now();
            assert!(left.get_seconds() > 40, "expires in about 55 s: {left:?}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("crashed-run"));
    let lease = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    assert_eq!(
        holder(&lease).as_deref(),
        Some("crashed-run"),
        "a live lease is left alone"
    );

    lease_api(&h)
        .delete("kup-upgrade-prod", &Default::default())
        .await
        .unwrap();
    put_lease(&h, "crashed-run", 120, 60).await;
    let guard = lock(&h, "next-run", Duration::from_secs(15))
        .acquire()
        .await
        .unwrap();
    let lease = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("next-run"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    guard.release().await.unwrap();
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_get_409_and_exactly_one_wins() {
    let h = SimCluster::start(small()).await;
    put_lease(&h, "crashed-run", 120, 60).await;
    // Both read the expired lease before either writes: the second write carries a stale
    // resourceVersion and gets 409. The reads are held long enough that both are in flight
    // together even on a loaded machine.
    let slow = h.sim.faults().add(
        Fault::latency(Duration::from_secs(2))
            .method("GET")
            .path("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/*")
            .times(2),
    );
    let a = lock(&h, "run-a", Duration::from_secs(15));
    let b = lock(&h, "run-b", Duration::from_secs(15));
    let (ra, rb) = tokio::join!(a.acquire(), b.acquire());
    h.sim.faults().remove(slow);
    let conflicts = h
        .sim
        .requests()
        .matching(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/*",
        )
        .iter()
        .filter(|r| r.status == 409)
        .count();
    assert!(conflicts >= 1, "one write lost the race with a 409");
    let (winner, loser) = match (ra, rb) {
        (Ok(g), Err(e)) => ((g, "run-a"), e),
        (Err(e), Ok(g)) => ((g, "run-b"), e),
        (Ok(_), Ok(_)) => panic!("both won"),
        (Err(a), Err(b)) => panic!("both lost: {a} / {b}"),
    };
    match &loser {
        Error::LockHeld { holder, .. } => assert_eq!(holder, winner.1),
        other => panic!("{other}"),
    }
    let lease = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    assert_eq!(holder(&lease).as_deref(), Some(winner.1));
    winner.0.release().await.unwrap();

    // An injected 409 on the write is answered by reading again, not by overwriting.
    put_lease_after_release(&h).await;
    h.sim.faults().add(
        Fault::status(409)
            .method("PUT")
            .path("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/*")
            .times(1),
    );
    let gets_before = h
        .sim
        .requests()
        .count("GET", "/apis/coordination.k8s.io/**");
    let g = lock(&h, "run-c", Duration::from_secs(15))
        .acquire()
        .await
        .unwrap();
    assert!(
        h.sim
            .requests()
            .count("GET", "/apis/coordination.k8s.io/**")
            >= gets_before + 2
    );
    g.release().await.unwrap();
    h.sim.shutdown().await;
}

async fn put_lease_after_release(h: &SimCluster) {
    let lease = lease_api(h).get("kup-upgrade-prod").await.unwrap();
    assert_eq!(holder(&lease), None, "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_renewed_and_a_takeover_stops_the_run() {
    let h = SimCluster::start(small()).await;
    let l = lock(&h, "renewer", Duration::from_secs(2));
    let guard = l.acquire().await.unwrap();
    let first = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    let renewed = |l: &Lease| l.spec.as_ref().unwrap().renew_time.clone().unwrap().0;
    assert!(
        renewed(&later) > renewed(&first),
        "renewed in the background"
    );
    assert!(!guard.lost().is_cancelled());
    guard.release().await.unwrap();

    // A run whose lease is taken over stops at the next safe point with LockLost.
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let wire = Arc::new(Tripwire::new(1, |e| matches!(e, Event::StepStarted { .. })));
    let victim = LeaseLock::new(
        h.sim.client().unwrap(),
        "prod",
        LeaseSettings {
            duration: Duration::from_secs(1),
            renew_every: Some(Duration::from_millis(50)),
            holder: Some("victim".into()),
            ..LeaseSettings::default()
        },
    )
    .unwrap();
    let engine = kup_engine::Engine::builder(h.provider.clone())
        .kube(h.kube.clone())
        .journal(store.clone())
        .lock(Arc::new(victim))
        .events(wire.clone())
        .options(fast_options())
        .build()
        .unwrap();
    let thief = async {
        wire.tripped.cancelled().await;
        let api = lease_api(&h);
        let mut lease = api.get("kup-upgrade-prod").await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("thief".into());
        api.replace("kup-upgrade-prod", &PostParams::default(), &lease)
            .await
            .unwrap();
    };
    let cancel = CancellationToken::new();
    let (result, ()) = tokio::join!(engine.run(&plan, &cancel), thief);
    let err = result.unwrap_err();
    match &err {
        Error::LockLost { reason, .. } => assert!(reason.contains("thief"), "{reason}"),
        other => panic!("expected LockLost, got {other}"),
    }
    assert_eq!(err.category(), ErrorCategory::Conflict);
    let lease = lease_api(&h).get("kup-upgrade-prod").await.unwrap();
    assert_eq!(
        holder(&lease).as_deref(),
        Some("thief"),
        "the loser does not release it"
    );
    // The journal still says where the run stood, for whoever resumes.
    let journal = store.get().unwrap();
    assert!(journal.state.is_unfinished());
    h.sim.shutdown().await;
}
