//! The provider's control-plane and worker sequences over a real sshd, against node shims
//! that tell the Kubernetes simulator what changed, with a real etcd for the snapshots.
//! 3 control-plane nodes and 4 workers move 1.30 → 1.31 → 1.32: once with the test playing the
//! engine's part for workers (cordon, `upgrade_node`, poll, uncordon), once through kup's engine
//! itself (backups, hops, worker batches, validation, and a resume after a failed node).
//! The control-plane hop is polled node by node: progress `done/total`, a fresh provider
//! re-attaching mid-node from the operation's JSON, a failed node's error list, and an engine
//! cancelled between two nodes and resumed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kup_tests::kubeadm_lab::{KubeadmLab, LabSpec};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kup_core::{
    BackupOptions, ControlPlaneOptions, ErrorCategory, Event, KubeVersion, Operation,
    OperationStatus, UpgradeProvider,
};
use kup_kube::drain::Drainer;
use kup_kubeadm::inventory::Inventory;
use kup_kubeadm::{KubeadmProvider, KubeadmSettings};
use kup_mocks::k8s::SimHandle;

const CPS: [&str; 3] = ["cp-1", "cp-2", "cp-3"];
const WORKERS: [&str; 4] = ["w-1", "w-2", "w-3", "w-4"];

const SPEC: LabSpec = LabSpec {
    control_plane: &CPS,
    workers: &WORKERS,
    // Cordoned by an operator before the upgrade: it must stay cordoned.
    cordoned: &["cp-3"],
    markers: &[
        ("stable.txt", "v1.32.1"),
        ("stable-1.31.txt", "v1.31.2"),
        ("stable-1.32.txt", "v1.32.1"),
    ],
};

// Fields drop in this order: the provider first, so its SSH masters are told to exit while
// their control sockets (in the lab's sshd directory) still exist.
struct Lab {
    provider: KubeadmProvider,
    drainer: Drainer,
    lab: KubeadmLab,
}

impl std::ops::Deref for Lab {
    type Target = KubeadmLab;

    fn deref(&self) -> &KubeadmLab {
        &self.lab
    }
}

impl Lab {
    /// Another provider for the same cluster, as a new kup process would build it.
    async fn fresh_provider(&self) -> KubeadmProvider {
        self.lab.provider().await
    }
}

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

async fn lab() -> Option<Lab> {
    let lab = KubeadmLab::start(&SPEC).await?;
    let provider = lab.provider().await;
    let drainer = Drainer::new(lab.sim.client().unwrap());
    Some(Lab {
        provider,
        drainer,
        lab,
    })
}

fn control_plane_calls(first: bool, to: &str) -> Vec<String> {
    let mut calls = vec![
        "apt-mark unhold kubeadm".to_string(),
        "apt-get update".into(),
        format!("apt-get install -y kubeadm={to}-*"),
        "apt-mark hold kubeadm".into(),
        "kubeadm version -o short".into(),
    ];
    if first {
        calls.push(format!("kubeadm upgrade plan v{to} -o json"));
        calls.push(format!("kubeadm upgrade apply v{to} --yes"));
    } else {
        calls.push("kubeadm upgrade node".into());
    }
    calls.extend([
        "apt-mark unhold kubelet kubectl".to_string(),
        "apt-get update".into(),
        format!("apt-get install -y kubelet={to}-* kubectl={to}-*"),
        "apt-mark hold kubelet kubectl".into(),
        "systemctl daemon-reload".into(),
        "systemctl restart kubelet".into(),
    ]);
    calls
}

fn worker_calls(to: &str) -> Vec<String> {
    control_plane_calls(false, to)
}

fn calls_since(sshd: &kup_tests::lab::Sshd, node: &str, from: usize) -> Vec<String> {
    sshd.calls(node).into_iter().skip(from).collect()
}

async fn upgrade_workers(lab: &Lab, to: &KubeVersion) {
    for w in WORKERS {
        let before = lab.sshd.calls(w).len();
        assert!(!lab.drainer.cordon(w).await.unwrap().was_cordoned);
        let op = lab.provider.upgrade_node("workers", w, to).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match lab.provider.poll(&op).await.unwrap() {
                OperationStatus::Succeeded => break,
                other => assert!(tokio::time::Instant::now() < deadline, "{w}: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        lab.drainer.uncordon(w).await.unwrap();
        assert_eq!(
            calls_since(&lab.sshd, w, before),
            worker_calls(&to.to_string()),
            "{w}"
        );
    }
}

fn node_json(sim: &SimHandle, name: &str) -> serde_json::Value {
    sim.get("nodes", None, name).unwrap()
}

fn apiserver_image(sim: &SimHandle, cp: &str) -> String {
    sim.get("pods", Some("kube-system"), &format!("kube-apiserver-{cp}"))
        .unwrap()["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The `done` of a status message's `(done/total control-plane nodes at …)`.
fn tally(status: &OperationStatus) -> Option<(usize, usize)> {
    let OperationStatus::Running {
        message: Some(m), ..
    } = status
    else {
        return None;
    };
    let (_, rest) = m.rsplit_once('(')?;
    let (done, rest) = rest.split_once('/')?;
    let total = rest.split_whitespace().next()?;
    Some((done.parse().ok()?, total.parse().ok()?))
}

/// The node a running status names (`cp-2: draining (…)`).
fn running_node(status: &OperationStatus) -> Option<&str> {
    match status {
        OperationStatus::Running {
            message: Some(m), ..
        } => m.split_once(':').map(|(n, _)| n),
        _ => None,
    }
}

/// Polls `op` until it ends, calling `check` on every status; returns every status seen.
async fn drive(
    p: &KubeadmProvider,
    op: &Operation,
    mut check: impl FnMut(&OperationStatus),
) -> Vec<OperationStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let mut seen = Vec::new();
    loop {
        let status = p.poll(op).await.unwrap();
        check(&status);
        let terminal = status.is_terminal();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if terminal {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{op} still running: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `done` count in order, each once.
fn tallies(seen: &[OperationStatus]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for (done, total) in seen.iter().filter_map(tally) {
        assert_eq!(total, CPS.len());
        if out.last() != Some(&done) {
            out.push(done);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_control_planes_and_four_workers_across_two_minors() {
    let Some(lab) = lab().await else { return };
    let p = &lab.provider;
    let info = p.cluster().await.unwrap();
    assert_eq!(info.control_plane, v("1.30.6"));
    assert_eq!(info.node_pools.len(), 2);

    // Without a verified snapshot the control plane is not touched.
    let err = p
        .upgrade_control_plane(&v("1.31"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(CPS.iter().all(|cp| lab.sshd.calls(cp).is_empty()));

    for (hop, to) in [(1, "1.31.2"), (2, "1.32.1")] {
        let backup = p.backup(&BackupOptions::default()).await.unwrap();
        assert!(Path::new(&backup.location).is_file());
        assert_eq!(
            backup.control_plane,
            p.cluster().await.unwrap().control_plane
        );
        let before: Vec<usize> = CPS.iter().map(|cp| lab.sshd.calls(cp).len()).collect();
        let from = p.cluster().await.unwrap().control_plane;
        // A minor without a patch resolves through the stable marker.
        let minor = v(to).to_minor();
        let op = p
            .upgrade_control_plane(&minor, &ControlPlaneOptions::default())
            .await
            .unwrap();
        assert_eq!(op.to_version.as_deref(), Some(to));
        assert_eq!(op.id, format!("kubeadm-control-plane:lab:v{from}..v{to}"));
        // The operation is what the journal stores: it must come back whole.
        let op: Operation = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        let seen = drive(p, &op, |status| {
            // One node at a time: while a node's step runs, later nodes are untouched and
            // earlier ones are finished.
            if let Some(node) = running_node(status) {
                let i = CPS.iter().position(|cp| *cp == node).unwrap();
                for (j, cp) in CPS.iter().enumerate().skip(i + 1) {
                    assert!(
                        calls_since(&lab.sshd, cp, before[j]).is_empty(),
                        "{cp} touched while {node} runs ({status})"
                    );
                }
                for (j, cp) in CPS.iter().enumerate().take(i) {
                    assert_eq!(
                        calls_since(&lab.sshd, cp, before[j]).len(),
                        control_plane_calls(j == 0, to).len(),
                        "{cp} unfinished while {node} runs ({status})"
                    );
                }
            }
        })
        .await;
        assert_eq!(seen.last(), Some(&OperationStatus::Succeeded), "hop {hop}");
        assert_eq!(tallies(&seen), [0, 1, 2, 3], "hop {hop}: {seen:?}");
        for (i, cp) in CPS.iter().enumerate() {
            assert!(
                seen.iter().any(|s| matches!(s,
                    OperationStatus::Running { message: Some(m), progress: Some(f) }
                        if m.starts_with(&format!("{cp}: done ({}/3 control-plane nodes at {to})", i + 1)) && (*f - (i + 1) as f32 / 3.0).abs() < 1e-6)),
                "{cp} reported done with its progress: {seen:?}"
            );
        }
        for (i, cp) in CPS.iter().enumerate() {
            assert_eq!(
                calls_since(&lab.sshd, cp, before[i]),
                control_plane_calls(i == 0, to),
                "{cp}, hop {hop}"
            );
            assert_eq!(
                apiserver_image(&lab.sim, cp),
                format!("registry.k8s.io/kube-apiserver:v{to}")
            );
        }
        upgrade_workers(&lab, &v(to)).await;
    }

    // Final state: every node Ready at 1.32.1; cp-3 stays cordoned as it was before.
    for node in CPS.iter().chain(WORKERS.iter()) {
        let n = node_json(&lab.sim, node);
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"], "v1.32.1",
            "{node}"
        );
        let cordoned = n["spec"]["unschedulable"].as_bool().unwrap_or(false);
        assert_eq!(cordoned, *node == "cp-3", "{node}");
        let annotations = &n["metadata"]["annotations"];
        assert!(
            annotations
                .get("kubeadm.kup.dev/cordoned-for-upgrade")
                .is_none(),
            "{node}"
        );
        for pkg in ["kubeadm", "kubelet", "kubectl"] {
            assert_eq!(
                lab.sshd.state(node, &format!("pkg/{pkg}")).unwrap().trim(),
                "1.32.1"
            );
            assert!(
                lab.sshd.state(node, &format!("hold/{pkg}")).is_some(),
                "{pkg} held again on {node}"
            );
        }
        let repo =
            std::fs::read_to_string(lab.work.path().join("repos").join(format!("{node}.list")))
                .unwrap();
        assert!(repo.contains("/core:/stable:/v1.32/deb/"), "{repo}");
    }
    let info = p.cluster().await.unwrap();
    assert_eq!(info.control_plane, v("1.32.1"));
    assert_eq!(info.api_servers, vec![v("1.32.1"); 3]);
    assert!(
        info.node_pools
            .iter()
            .all(|pool| pool.version == v("1.32.1"))
    );
    // Two verified snapshots were kept, each with its record.
    let kept = std::fs::read_dir(lab.work.path().join("backups"))
        .unwrap()
        .count();
    assert_eq!(kept, 4);
    let _ = &lab.etcdctl;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_on_the_second_control_plane_node_stops_and_a_rerun_resumes() {
    let Some(lab) = lab().await else { return };
    let p = &lab.provider;
    let backup = p.backup(&BackupOptions::default()).await.unwrap();
    lab.sshd.set_state(
        "cp-2",
        "fail/upgrade-node",
        "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state\n",
    );
    let op = p
        .upgrade_control_plane(&v("1.31.2"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let seen = drive(p, &op, |_| {}).await;
    let Some(OperationStatus::Failed { errors }) = seen.last().cloned() else {
        panic!("the hop should fail on cp-2: {seen:?}");
    };
    assert_eq!(tallies(&seen), [0, 1], "{seen:?}");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].code, "CommandFailed");
    assert_eq!(errors[0].resource_ids, ["cp-2"]);
    assert!(
        errors[0].message.contains("control-plane node cp-2")
            && errors[0].message.contains("couldn't upgrade control plane"),
        "{}",
        errors[0].message
    );
    assert_eq!(errors[1].code, "EtcdSnapshotAvailable");
    assert_eq!(errors[1].resource_ids, vec![backup.location.clone()]);
    // The same provider keeps answering Failed for this operation.
    assert_eq!(
        p.poll(&op).await.unwrap(),
        OperationStatus::Failed {
            errors: errors.clone()
        }
    );
    let err = OperationStatus::Failed { errors }
        .into_result(&op)
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.category(), ErrorCategory::OperationFailed, "{text}");
    // cp-1 moved; cp-2 stopped at `kubeadm upgrade node` before its drain; cp-3 untouched.
    assert_eq!(
        apiserver_image(&lab.sim, "cp-1"),
        "registry.k8s.io/kube-apiserver:v1.31.2"
    );
    assert_eq!(
        apiserver_image(&lab.sim, "cp-2"),
        "registry.k8s.io/kube-apiserver:v1.30.6"
    );
    assert_eq!(
        lab.sshd.calls("cp-2").last().unwrap(),
        "kubeadm upgrade node"
    );
    assert!(lab.sshd.calls("cp-3").is_empty());
    assert_ne!(node_json(&lab.sim, "cp-2")["spec"]["unschedulable"], true);

    // The cause is fixed; the same call resumes: cp-1 is not applied again.
    std::fs::remove_file(lab.sshd.state_dir.join("cp-2/fail/upgrade-node")).unwrap();
    let cp1_before = lab.sshd.calls("cp-1").len();
    let cp2_before = lab.sshd.calls("cp-2").len();
    let op = p
        .upgrade_control_plane(&v("1.31.2"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let seen = drive(p, &op, |_| {}).await;
    assert_eq!(seen.last(), Some(&OperationStatus::Succeeded));
    assert_eq!(tallies(&seen), [1, 2, 3], "{seen:?}");
    assert!(calls_since(&lab.sshd, "cp-1", cp1_before).is_empty());
    assert_eq!(
        calls_since(&lab.sshd, "cp-2", cp2_before),
        control_plane_calls(false, "1.31.2")
    );
    assert_eq!(lab.sshd.calls("cp-3"), control_plane_calls(false, "1.31.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_no_longer_verifies_blocks_the_control_plane() {
    let Some(lab) = lab().await else { return };
    let p = &lab.provider;
    let backup = p.backup(&BackupOptions::default()).await.unwrap();
    // The kept copy is damaged after the backup (disk, a careless edit).
    let mut bytes = std::fs::read(&backup.location).unwrap();
    let end = bytes.len() - 1;
    bytes[end] ^= 0x01;
    std::fs::write(&backup.location, &bytes).unwrap();
    let err = p
        .upgrade_control_plane(&v("1.31.2"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition);
    assert!(err.to_string().contains("failed verification"), "{err}");
    for cp in CPS {
        assert!(
            lab.sshd.calls(cp).is_empty(),
            "{cp}: {:?}",
            lab.sshd.calls(cp)
        );
    }
    // A restore without the explicit confirmation is refused before anything runs.
    let err = p.restore(&backup).await.unwrap_err();
    assert!(
        err.to_string().contains("every change since is lost"),
        "{err}"
    );
}

fn engine_for(
    lab: &Lab,
    provider: Arc<KubeadmProvider>,
) -> (
    kup_engine::Engine,
    Arc<kup_engine::journal::MemoryJournalStore>,
) {
    let store = Arc::new(kup_engine::journal::MemoryJournalStore::default());
    let engine = engine_with(lab, provider, store.clone(), Arc::new(kup_core::NoEvents));
    (engine, store)
}

fn engine_with(
    lab: &Lab,
    provider: Arc<KubeadmProvider>,
    store: Arc<kup_engine::journal::MemoryJournalStore>,
    events: Arc<dyn kup_core::EventSink>,
) -> kup_engine::Engine {
    use kup_engine::backoff::BackoffPolicy;
    use kup_kube::validate::ValidationOptions;
    let validation = ValidationOptions {
        passes: 2,
        interval: Duration::from_millis(100),
        failure_interval: Duration::from_millis(200),
        timeout: Duration::from_secs(120),
        ..ValidationOptions::default()
    };
    let options = kup_engine::EngineOptions {
        validation: validation.clone(),
        gate: validation,
        polling: BackoffPolicy::fast(),
        helm_releases: false,
        ..kup_engine::EngineOptions::default()
    };
    kup_engine::Engine::builder(provider)
        .kube(kup_engine::KubeCluster::from_config(lab.sim.client_config()).unwrap())
        .journal(store)
        .lock(Arc::new(kup_engine::lock::LocalLock::new("lab")))
        .events(events)
        .options(options)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_upgrades_three_control_planes_and_four_workers_across_two_minors() {
    let Some(mut lab) = lab().await else { return };
    let client = lab.sim.client().unwrap();
    let provider = Arc::new(std::mem::replace(
        &mut lab.provider,
        KubeadmProvider::new(
            Inventory::parse(
                "cluster: spare\ncontrol_plane:\n  - {name: cp-1, host: cp-1}\n",
                None,
            )
            .unwrap(),
            client,
            KubeadmSettings::default(),
        )
        .unwrap(),
    ));
    let plan = kup_engine::planning::plan_for(provider.as_ref(), &v("1.32"), Default::default())
        .await
        .unwrap();
    assert_eq!(plan.control_plane_hops().count(), 2, "{plan}");
    let (engine, store) = engine_for(&lab, provider.clone());

    // cp-2 fails on the first hop: the run stops, the journal says where.
    lab.sshd.set_state(
        "cp-2",
        "fail/upgrade-node",
        "[upgrade/apply] FATAL: couldn't upgrade control plane\n",
    );
    let err = engine
        .run(&plan, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cp-2"), "{err}");
    let journal = kup_engine::journal::JournalStore::load(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert!(journal.state.is_unfinished(), "{}", journal.to_table());
    assert!(
        lab.sshd.calls("cp-3").is_empty(),
        "nothing past the failed node"
    );
    assert!(WORKERS.iter().all(|w| lab.sshd.calls(w).is_empty()));

    // Fixed; the resumed run finishes without applying cp-1 again.
    std::fs::remove_file(lab.sshd.state_dir.join("cp-2/fail/upgrade-node")).unwrap();
    let applies_before = lab
        .sshd
        .calls("cp-1")
        .iter()
        .filter(|c| c.starts_with("kubeadm upgrade apply"))
        .count();
    let report = engine
        .resume(&plan, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("resume failed: {e}"));
    assert_eq!(report.outcome, kup_core::Outcome::Succeeded);
    let applies = lab
        .sshd
        .calls("cp-1")
        .iter()
        .filter(|c| c.starts_with("kubeadm upgrade apply"))
        .count();
    assert_eq!(
        applies,
        applies_before + 1,
        "one more apply, for the second hop only"
    );
    assert!(
        !report.backups.is_empty(),
        "verified snapshots before the hops"
    );

    for node in CPS.iter().chain(WORKERS.iter()) {
        let n = node_json(&lab.sim, node);
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"], "v1.32.1",
            "{node}"
        );
        let cordoned = n["spec"]["unschedulable"].as_bool().unwrap_or(false);
        assert_eq!(
            cordoned,
            *node == "cp-3",
            "only cp-3, cordoned before, stays so: {node}"
        );
        assert_eq!(
            lab.sshd.state(node, "pkg/kubelet").unwrap().trim(),
            "1.32.1"
        );
    }
    let info = provider.cluster().await.unwrap();
    assert_eq!(info.api_servers, vec![v("1.32.1"); 3]);
}

fn applies(lab: &Lab) -> usize {
    lab.sshd
        .calls("cp-1")
        .iter()
        .filter(|c| c.starts_with("kubeadm upgrade apply"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_provider_re_attaches_mid_node_without_applying_again() {
    let Some(mut lab) = lab().await else { return };
    lab.provider
        .backup(&BackupOptions::default())
        .await
        .unwrap();
    // cp-2 is held inside `kubeadm upgrade node` until the test lets it go.
    lab.sshd.set_state("cp-2", "block/upgrade-node", "");
    let op = lab
        .provider
        .upgrade_control_plane(&v("1.31.2"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let journaled = serde_json::to_string(&op).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let status = lab.provider.poll(&op).await.unwrap();
        assert!(!status.is_terminal(), "{status}");
        let held = lab
            .sshd
            .calls("cp-2")
            .iter()
            .any(|c| c == "kubeadm upgrade node");
        if held && running_node(&status) == Some("cp-2") {
            assert_eq!(tally(&status), Some((1, 3)), "{status}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(applies(&lab), 1);
    assert!(lab.sshd.calls("cp-3").is_empty());

    // The process dies mid-node: its provider (and the step it runs) is gone. A new process
    // has only the journaled operation, and no verified backup in memory.
    let fresh = lab.fresh_provider().await;
    drop(std::mem::replace(&mut lab.provider, fresh));
    std::fs::remove_file(lab.sshd.state_dir.join("cp-2/block/upgrade-node")).unwrap();
    let op: Operation = serde_json::from_str(&journaled).unwrap();
    let seen = drive(&lab.provider, &op, |_| {}).await;
    assert_eq!(seen.last(), Some(&OperationStatus::Succeeded), "{seen:?}");
    assert_eq!(
        running_node(&seen[0]),
        Some("cp-2"),
        "re-attached at cp-2: {seen:?}"
    );
    assert_eq!(tallies(&seen), [1, 2, 3], "{seen:?}");
    assert_eq!(applies(&lab), 1, "kubeadm upgrade apply ran once");
    for cp in CPS {
        assert_eq!(
            apiserver_image(&lab.sim, cp),
            "registry.k8s.io/kube-apiserver:v1.31.2"
        );
        let n = node_json(&lab.sim, cp);
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.31.2", "{cp}");
        let cordoned = n["spec"]["unschedulable"].as_bool().unwrap_or(false);
        assert_eq!(cordoned, cp == "cp-3", "{cp}");
        assert!(
            n["metadata"]["annotations"]
                .get("kubeadm.kup.dev/cordoned-for-upgrade")
                .is_none(),
            "{cp}"
        );
    }
    assert_eq!(lab.sshd.calls("cp-3"), control_plane_calls(false, "1.31.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_cancelled_between_control_plane_nodes_stops_and_resumes() {
    let Some(lab) = lab().await else { return };
    let provider = Arc::new(lab.fresh_provider().await);
    let plan = kup_engine::planning::plan_for(provider.as_ref(), &v("1.31"), Default::default())
        .await
        .unwrap();
    assert_eq!(plan.control_plane_hops().count(), 1, "{plan}");
    let store = Arc::new(kup_engine::journal::MemoryJournalStore::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let progress = Arc::new(std::sync::Mutex::new(Vec::new()));
    let events = {
        let cancel = cancel.clone();
        let progress = progress.clone();
        move |event: Event| {
            if let Event::OperationProgress { status, .. } = event {
                // The operator presses Ctrl-C the moment cp-1 is done.
                if running_node(&status) == Some("cp-1") && tally(&status) == Some((1, 3)) {
                    cancel.cancel();
                }
                progress.lock().unwrap().push(status);
            }
        }
    };
    let engine = engine_with(&lab, provider.clone(), store.clone(), Arc::new(events));
    let err = engine.run(&plan, &cancel).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Cancelled, "{err}");
    assert_eq!(
        tallies(&progress.lock().unwrap()),
        [0, 1],
        "{:?}",
        progress.lock().unwrap()
    );
    assert_eq!(
        apiserver_image(&lab.sim, "cp-1"),
        "registry.k8s.io/kube-apiserver:v1.31.2"
    );
    assert_eq!(
        node_json(&lab.sim, "cp-1")["status"]["nodeInfo"]["kubeletVersion"],
        "v1.31.2"
    );
    for later in ["cp-2", "cp-3"] {
        assert!(lab.sshd.calls(later).is_empty(), "{later} untouched");
        assert!(
            node_json(&lab.sim, later)["metadata"]["annotations"]
                .get("kubeadm.kup.dev/cordoned-for-upgrade")
                .is_none(),
            "{later} not cordoned by kup"
        );
    }
    assert_ne!(node_json(&lab.sim, "cp-2")["spec"]["unschedulable"], true);
    assert!(WORKERS.iter().all(|w| lab.sshd.calls(w).is_empty()));
    let journal = kup_engine::journal::JournalStore::load(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert!(journal.state.is_unfinished(), "{}", journal.to_table());
    drop(engine);

    // Resumed by a new process: a new provider and engine, the same journal.
    let cp1_before = lab.sshd.calls("cp-1").len();
    let resumed = Arc::new(lab.fresh_provider().await);
    let engine = engine_with(&lab, resumed.clone(), store, Arc::new(kup_core::NoEvents));
    let report = engine
        .resume(&plan, &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("resume failed: {e}"));
    assert_eq!(report.outcome, kup_core::Outcome::Succeeded);
    assert!(
        calls_since(&lab.sshd, "cp-1", cp1_before)
            .iter()
            .all(|c| !c.starts_with("kubeadm upgrade") && !c.contains("install")),
        "cp-1 is not upgraded again"
    );
    assert_eq!(applies(&lab), 1);
    for cp in ["cp-2", "cp-3"] {
        assert_eq!(
            lab.sshd.calls(cp),
            control_plane_calls(false, "1.31.2"),
            "{cp}"
        );
    }
    for node in CPS.iter().chain(WORKERS.iter()) {
        assert_eq!(
            node_json(&lab.sim, node)["status"]["nodeInfo"]["kubeletVersion"],
            "v1.31.2",
            "{node}"
        );
    }
}
