//! kubeadm rollback end to end, over a real sshd whose sessions run the node shims, with a
//! real etcd: a cluster upgraded 1.30 → 1.31 by the engine is rolled back by a rollback plan
//! (workers drained and downgraded, then the run's verified etcd snapshot restored on the
//! control plane with the earlier packages and manifests). The rollback is killed while it
//! moves the workers and resumed by a new engine from its journal file; it ends with the
//! cluster at 1.30 and etcd's data directory holding the snapshot's data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kup_tests::kubeadm_lab::{KubeadmLab, LabSpec};
use kup_tests::lab::Etcd;

use std::sync::Arc;
use std::time::Duration;

use kup_core::{
    ErrorCategory, KubeVersion, Outcome, PlanKind, RollbackRequest, StepAction, UpgradeProvider,
};
use kup_engine::journal::{FileJournalStore, JournalStore, MemoryJournalStore};
use kup_engine::lock::{FileLock, LeaseLock, LeaseSettings, LocalLock};
use kup_kubeadm::KubeadmProvider;
use kup_kubeadm::etcd::restore::RestoreConfirmation;
use tokio_util::sync::CancellationToken;

const CPS: [&str; 1] = ["cp-1"];
const WORKERS: [&str; 2] = ["w-1", "w-2"];

const SPEC: LabSpec = LabSpec {
    control_plane: &CPS,
    workers: &WORKERS,
    cordoned: &[],
    markers: &[("stable.txt", "v1.31.2"), ("stable-1.31.txt", "v1.31.2")],
};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

fn options() -> kup_engine::EngineOptions {
    use kup_engine::backoff::BackoffPolicy;
    use kup_kube::validate::ValidationOptions;
    let validation = ValidationOptions {
        passes: 1,
        interval: Duration::from_millis(100),
        failure_interval: Duration::from_millis(200),
        timeout: Duration::from_secs(120),
        ..ValidationOptions::default()
    };
    kup_engine::EngineOptions {
        validation: validation.clone(),
        gate: validation,
        polling: BackoffPolicy::fast(),
        helm_releases: false,
        ..kup_engine::EngineOptions::default()
    }
}

fn engine(
    lab: &KubeadmLab,
    provider: Arc<KubeadmProvider>,
    journal: Arc<dyn JournalStore>,
    lock: Arc<dyn kup_engine::lock::ClusterLock>,
) -> kup_engine::Engine {
    kup_engine::Engine::builder(provider)
        .kube(kup_engine::KubeCluster::from_config(lab.sim.client_config()).unwrap())
        .journal(journal)
        .lock(lock)
        .options(options())
        .build()
        .unwrap()
}

async fn confirmed(lab: &KubeadmLab) -> Arc<KubeadmProvider> {
    Arc::new(lab.provider().await.confirm_restore(
        RestoreConfirmation::i_understand_all_changes_since_the_snapshot_are_lost(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_is_rolled_back_killed_midway_resumed_and_ends_at_the_snapshot() {
    let Some(mut lab) = KubeadmLab::start(&SPEC).await else {
        return;
    };
    // kubeadm's etcd manifest: the restore reads the member's name and peer URL from it.
    std::fs::write(
        lab.work.path().join("manifests/etcd.yaml"),
        format!(
            "spec:\n  containers:\n  - command:\n    - etcd\n    - --name=cp-1\n    - \
             --initial-advertise-peer-urls=http://127.0.0.1:{}\n",
            lab.etcd.peer_port
        ),
    )
    .unwrap();
    lab.etcd
        .put(&lab.etcdctl, "/registry/configmaps/default/before", "kept");

    // The upgrade, with its journal (whose backups the rollback restores).
    let provider = Arc::new(lab.provider().await);
    let plan = kup_engine::planning::plan_for(provider.as_ref(), &v("1.31"), Default::default())
        .await
        .unwrap();
    let upgrade_journal = Arc::new(MemoryJournalStore::default());
    let report = engine(
        &lab,
        provider.clone(),
        upgrade_journal.clone(),
        Arc::new(LocalLock::new("lab")),
    )
    .run(&plan, &CancellationToken::new())
    .await
    .unwrap_or_else(|e| panic!("upgrade failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded);
    let live = provider.cluster().await.unwrap();
    assert_eq!(live.control_plane, v("1.31.2"));
    let backup = report.backups.first().cloned().expect("a verified backup");
    assert_eq!(backup.control_plane, v("1.30.6"));
    drop(provider);
    // Written after the snapshot: the restore loses it.
    lab.etcd
        .put(&lab.etcdctl, "/registry/configmaps/default/after", "lost");

    // The rollback plan: workers back first, then the restore, then validation.
    let provider = confirmed(&lab).await;
    let offer = provider.rollback_offer().await.unwrap();
    let caps = provider.capabilities();
    let rollback = kup_core::plan_rollback(&RollbackRequest {
        cluster: &provider.cluster().await.unwrap(),
        caps: &caps,
        offer: &offer,
        control_plane: plan.from.clone(),
        pools: plan.pools.clone(),
        backup: Some(backup.clone()),
    })
    .unwrap();
    assert_eq!(rollback.kind, PlanKind::Rollback);
    let kinds: Vec<&str> = rollback.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(
        kinds,
        ["pool-rollback", "restore", "validate"],
        "{rollback}"
    );
    assert!(
        rollback.to_string().starts_with("Rollback plan"),
        "{rollback}"
    );

    // A plan that restores refuses a journal or lock kept in the cluster.
    let in_cluster = engine(
        &lab,
        provider.clone(),
        Arc::new(MemoryJournalStore::default()),
        Arc::new(
            LeaseLock::new(lab.sim.client().unwrap(), "lab", LeaseSettings::default()).unwrap(),
        ),
    );
    let err = in_cluster
        .run(&rollback, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    assert!(err.to_string().contains("lock"), "{err}");

    // Killed while the second worker goes back: w-2's `kubeadm upgrade node` hangs.
    let journal_path = lab.work.path().join("kup-rollback-lab.json");
    let journal: Arc<dyn JournalStore> = Arc::new(FileJournalStore::new(&journal_path));
    let lock_path = lab.work.path().join("kup-rollback-lab.json.lock");
    lab.sshd.set_state("w-2", "block/upgrade-node", "");
    let node_upgrades = |lab: &KubeadmLab| {
        lab.sshd
            .calls("w-2")
            .iter()
            .filter(|c| *c == "kubeadm upgrade node")
            .count()
    };
    let upgraded_before = node_upgrades(&lab);
    let first = engine(
        &lab,
        provider.clone(),
        journal.clone(),
        Arc::new(FileLock::new("lab", &lock_path).as_holder("first")),
    );
    let rollback_plan = rollback.clone();
    let run = tokio::spawn(async move {
        first
            .run(&rollback_plan, &CancellationToken::new())
            .await
            .map(|r| r.outcome)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while node_upgrades(&lab) == upgraded_before {
        assert!(tokio::time::Instant::now() < deadline, "w-2 never started");
        if run.is_finished() {
            panic!("the rollback ended before w-2: {:?}", run.await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.abort();
    let _ = run.await;
    drop(provider);
    let stored = journal.load().await.unwrap().unwrap();
    assert!(stored.state.is_unfinished());
    assert!(
        stored.nodes.iter().any(|n| n.node == "w-2"),
        "the node kup took down is recorded: {}",
        stored.to_table()
    );
    assert_eq!(
        lab.sshd
            .state("w-1", "pkg/kubelet")
            .as_deref()
            .map(str::trim),
        Some("1.30.6"),
        "w-1 went back before the kill"
    );
    // The aborted process left its lock file, naming a live process: a second one is refused.
    let second = FileLock::new("lab", &lock_path).as_holder("second");
    assert!(
        kup_engine::lock::ClusterLock::holder(&second)
            .await
            .unwrap()
            .is_some()
    );

    // A new kup resumes from the journal file, under the first run's identity, and is killed
    // in turn during the restore: cp-1's package downgrade hangs.
    std::fs::remove_file(lab.sshd.state_dir.join("w-2/block/upgrade-node")).unwrap();
    lab.sshd.set_state("cp-1", "block/apt-install", "");
    let provider = confirmed(&lab).await;
    let second = engine(
        &lab,
        provider.clone(),
        journal.clone(),
        Arc::new(FileLock::new("lab", &lock_path).as_holder("first")),
    );
    let rollback_plan = rollback.clone();
    let run = tokio::spawn(async move {
        second
            .resume(&rollback_plan, &CancellationToken::new())
            .await
            .map(|r| r.outcome)
    });
    let downgrade = "apt-get install -y --allow-downgrades kubeadm=1.30.6-*";
    while !lab.sshd.calls("cp-1").iter().any(|c| c == downgrade) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restore never started"
        );
        if run.is_finished() {
            panic!("the rollback ended before the restore: {:?}", run.await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.abort();
    let _ = run.await;
    drop(provider);
    let stored = journal.load().await.unwrap().unwrap();
    let restore = stored.step(2).unwrap();
    assert!(!restore.state.is_done(), "{}", stored.to_table());
    // The node finishes what it was doing (or not: its session may have died with kup); the
    // next run takes the cluster as it finds it.
    std::fs::remove_file(lab.sshd.state_dir.join("cp-1/block/apt-install")).unwrap();
    let mut seen = lab.sshd.calls("cp-1").len();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = lab.sshd.calls("cp-1").len();
        if now == seen {
            break;
        }
        seen = now;
    }
    // The API servers stay stopped until the restore is finished: the resumed run cannot
    // read the cluster first and goes on from its journal.
    let provider = confirmed(&lab).await;
    let down = provider.cluster().await;
    assert!(
        down.is_err(),
        "the API server answers while its manifest is away: {down:?}"
    );
    let resumed = engine(
        &lab,
        provider.clone(),
        journal.clone(),
        Arc::new(FileLock::new("lab", &lock_path).as_holder("first")),
    );
    let report = resumed
        .resume(&rollback, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("resume failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.attempts, 3);
    let replaced = format!("{}.kup-replaced-{}", lab.etcd.data_dir.display(), backup.id);
    assert!(
        std::path::Path::new(&replaced).join("member").is_dir(),
        "the state from before the restore is kept aside"
    );
    assert!(!lock_path.exists(), "the lock file is given back");

    // The cluster is back at 1.30.6: API server, every kubelet, every package.
    let live = provider.cluster().await.unwrap();
    assert_eq!(live.control_plane, v("1.30.6"), "{live:?}");
    for pool in &live.node_pools {
        assert_eq!(pool.version, v("1.30.6"), "{}", pool.name);
    }
    for node in CPS.iter().chain(&WORKERS) {
        for p in ["kubeadm", "kubelet"] {
            assert_eq!(
                lab.sshd
                    .state(node, &format!("pkg/{p}"))
                    .as_deref()
                    .map(str::trim),
                Some("1.30.6"),
                "{node} {p}"
            );
        }
        let node_json = lab.sim.get("nodes", None, node).unwrap();
        assert_ne!(
            node_json["spec"]["unschedulable"],
            serde_json::json!(true),
            "{node} uncordoned"
        );
    }
    let calls = lab.sshd.calls("cp-1");
    assert!(
        calls
            .iter()
            .any(|c| c == "apt-get install -y --allow-downgrades kubeadm=1.30.6-*"),
        "{calls:?}"
    );
    assert!(
        lab.sshd
            .calls("w-2")
            .iter()
            .any(|c| c == "apt-get install -y --allow-downgrades kubelet=1.30.6-* kubectl=1.30.6-*")
    );
    // Run again: the journal says done, nothing is sent twice.
    let sent = lab.sshd.calls("cp-1").len();
    let again = resumed
        .apply(&rollback, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped);
    assert_eq!(
        lab.sshd.calls("cp-1").len(),
        sent,
        "nothing ran on cp-1 again"
    );

    // etcd's data directory now holds the snapshot: started on it, the key from before the
    // upgrade is there and the later one is gone.
    let ports = (lab.etcd.client_port, lab.etcd.peer_port);
    let data_dir = lab.etcd.data_dir.clone();
    drop(provider);
    drop(resumed);
    lab.etcd.stop();
    let restored = Etcd::start(
        &kup_tests::lab::binary("KUP_ETCD", "etcd").unwrap(),
        &lab.etcdctl,
        &data_dir,
        "cp-1",
        Some(ports),
    );
    assert_eq!(
        restored
            .get(&lab.etcdctl, "/registry/configmaps/default/before")
            .as_deref(),
        Some("kept")
    );
    assert_eq!(
        restored.get(&lab.etcdctl, "/registry/configmaps/default/after"),
        None
    );

    assert!(
        rollback.steps.iter().any(
            |s| matches!(&s.action, StepAction::Restore { backup: b, .. } if b.id == backup.id)
        )
    );
}
