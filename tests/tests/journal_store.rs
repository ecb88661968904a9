//! The in-cluster journal store against the simulator: round trips between processes,
//! resourceVersion-guarded writes (another writer is detected, never overwritten), the
//! ConfigMap size limit, and transient API errors retried.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kup_core::{PlanStep, ProviderKind, StepAction, UpgradePlan};
use kup_engine::Error;
use kup_engine::backoff::BackoffPolicy;
use kup_engine::journal::{
    ConfigMapJournalStore, Journal, JournalStore, NodePhase, NodeRecord, StepState,
};
use kup_mocks::k8s::{Fault, Scenario, SimConfig, SimHandle, Simulator};
use kup_tests::reference::v;

fn plan() -> UpgradePlan {
    UpgradePlan {
        schema_version: kup_core::PLAN_SCHEMA_VERSION,
        id: "00112233445566aa".into(),
        kind: kup_core::PlanKind::Upgrade,
        not_rolled_back: Vec::new(),
        provider: ProviderKind::Other("sim".into()),
        cluster: "prod".into(),
        from: v("1.32.4"),
        target: v("1.33.2"),
        control_plane_only: false,
        max_kubelet_skew: 3,
        pools: BTreeMap::new(),
        steps: vec![PlanStep {
            index: 1,
            action: StepAction::ControlPlane {
                from: v("1.32.4"),
                to: v("1.33.2"),
            },
        }],
    }
}

async fn sim() -> SimHandle {
    Simulator::start(Scenario::new(), SimConfig::fast())
        .await
        .unwrap()
}

fn store(sim: &SimHandle) -> ConfigMapJournalStore {
    ConfigMapJournalStore::new(sim.client().unwrap(), "kube-system", "prod")
        .with_retry(BackoffPolicy::fast())
}

#[tokio::test]
async fn a_journal_round_trips_between_processes() {
    let sim = sim().await;
    let first = store(&sim);
    assert_eq!(first.name(), "kup-journal-prod");
    assert!(first.load().await.unwrap().is_none());
    let mut journal = Journal::new(&plan(), "run-a");
    first.save(&journal).await.unwrap();
    journal.steps[0].state = StepState::Running;
    first.save(&journal).await.unwrap();
    // A restarted process reads it back and goes on writing.
    let second = store(&sim);
    assert_eq!(second.load().await.unwrap(), Some(journal.clone()));
    journal.steps[0].state = StepState::Succeeded;
    second.save(&journal).await.unwrap();
    let stored = sim
        .get("configmaps", Some("kube-system"), "kup-journal-prod")
        .unwrap();
    assert_eq!(
        stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kup"
    );
    assert!(
        stored["data"]["journal.json"]
            .as_str()
            .unwrap()
            .contains("succeeded")
    );
    second.clear().await.unwrap();
    assert!(second.load().await.unwrap().is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn another_writer_is_detected_not_overwritten() {
    let sim = sim().await;
    let ours = store(&sim);
    ours.load().await.unwrap();
    let journal = Journal::new(&plan(), "run-a");
    ours.save(&journal).await.unwrap();
    // Someone else writes the ConfigMap in between.
    let theirs = store(&sim);
    let mut other = theirs.load().await.unwrap().unwrap();
    other.holder = "run-b".into();
    theirs.save(&other).await.unwrap();
    let err = ours.save(&journal).await.unwrap_err();
    assert!(matches!(err, Error::JournalConflict { .. }), "{err}");
    assert_eq!(err.category(), kup_core::ErrorCategory::Conflict);
    assert_eq!(store(&sim).load().await.unwrap().unwrap().holder, "run-b");
    // Deleted behind our back: also a conflict, not a silent re-create.
    theirs.clear().await.unwrap();
    let err = ours.save(&journal).await.unwrap_err();
    assert!(matches!(err, Error::JournalConflict { .. }), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_journal_too_large_for_a_configmap_is_refused_before_sending() {
    let sim = sim().await;
    let s = store(&sim);
    s.load().await.unwrap();
    let mut journal = Journal::new(&plan(), "run-a");
    for i in 0..6000 {
        journal.nodes.push(NodeRecord {
            node: format!("node-with-a-rather-long-name-{i:05}"),
            pool: "workers".into(),
            step: 1,
            to: v("1.33.2"),
            was_cordoned: false,
            phase: NodePhase::LeftCordoned,
            operation: None,
            reason: Some("drain stuck on shop/web-0 (budget web needs 3 healthy pods)".into()),
            attempt: 1,
            since: jiff::Timestamp::UNIX_EPOCH,
        });
    }
    let posts = sim
        .requests()
        .count("POST", "/api/v1/namespaces/kube-system/configmaps");
    let err = s.save(&journal).await.unwrap_err().to_string();
    assert!(err.contains("1 MiB") && err.contains("file"), "{err}");
    assert_eq!(
        sim.requests()
            .count("POST", "/api/v1/namespaces/kube-system/configmaps"),
        posts
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn transient_errors_are_retried_and_foreign_configmaps_refused() {
    let sim = sim().await;
    let s = store(&sim);
    s.load().await.unwrap();
    let journal = Journal::new(&plan(), "run-a");
    s.save(&journal).await.unwrap();
    sim.faults().add(
        Fault::status(503)
            .method("PUT")
            .path("/api/v1/namespaces/kube-system/configmaps/*")
            .times(2),
    );
    s.save(&journal).await.unwrap();
    assert_eq!(
        sim.requests()
            .matching("PUT", "/api/v1/namespaces/kube-system/configmaps/*")
            .iter()
            .filter(|r| r.status == 503)
            .count(),
        2
    );

    let api: Api<ConfigMap> = Api::namespaced(sim.client().unwrap(), "kube-system");
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("kup-journal-staging".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("other".into(), "x".into())])),
            ..ConfigMap::default()
        },
    )
    .await
    .unwrap();
    let foreign = ConfigMapJournalStore::new(sim.client().unwrap(), "kube-system", "staging");
    let err = foreign.load().await.unwrap_err().to_string();
    assert!(err.contains("not a kup journal"), "{err}");
    sim.shutdown().await;
}
