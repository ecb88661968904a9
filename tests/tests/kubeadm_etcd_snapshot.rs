//! A real etcd reached through a real sshd: snapshot, status, copy off, verify, restore.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kup_tests::lab as support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{BackupRecord, KubeVersion};
use kup_kubeadm::etcd::restore::{
    RestoreConfirmation, RestoreTarget, restore_control_plane, snapshot_file_name,
};
use kup_kubeadm::etcd::verify::{Expected, verify_local};
use kup_kubeadm::etcd::{self, EtcdSettings, ToolLocation};
use kup_kubeadm::exec::{CommandOutput, NodeCommand, NodeExecutor, SshExecutor};
use kup_kubeadm::packages::{PackageManager, PackageSettings};
use support::{Etcd, Sshd, binary};

struct Tools {
    etcd: PathBuf,
    etcdctl: PathBuf,
    sshd: PathBuf,
}

fn tools() -> Option<Tools> {
    Some(Tools {
        etcd: binary("KUP_ETCD", "etcd")?,
        etcdctl: binary("KUP_ETCDCTL", "etcdctl")?,
        sshd: binary("KUP_SSHD", "sshd")?,
    })
}

fn settings(work: &Path, etcd: &Etcd, etcdctl: &Path) -> EtcdSettings {
    EtcdSettings {
        endpoint: etcd.endpoint(),
        data_dir: etcd.data_dir.display().to_string(),
        manifest_dir: work.join("manifests").display().to_string(),
        node_work_dir: work.join("node").display().to_string(),
        kubelet_config: work.join("kubelet-config.yaml").display().to_string(),
        local_tool: Some(etcdctl.to_path_buf()),
        stop_timeout: Duration::from_secs(60),
        ..EtcdSettings::default()
    }
}

/// An executor that damages what it copies off the node (a transfer gone wrong).
#[derive(Debug)]
struct Damaging {
    inner: SshExecutor,
    truncate: bool,
}

#[async_trait]
impl NodeExecutor for Damaging {
    fn node(&self) -> &str {
        self.inner.node()
    }
    async fn run(&self, command: &NodeCommand) -> kup_kubeadm::Result<CommandOutput> {
        self.inner.run(command).await
    }
    async fn copy_from(&self, remote: &str, local: &Path) -> kup_kubeadm::Result<u64> {
        let n = self.inner.copy_from(remote, local).await?;
        let mut bytes = std::fs::read(local).unwrap();
        if self.truncate {
            bytes.truncate(bytes.len() / 2);
        } else {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
        }
        std::fs::write(local, &bytes).unwrap();
        Ok(n)
    }
    async fn copy_to(&self, local: &Path, remote: &str) -> kup_kubeadm::Result<u64> {
        self.inner.copy_to(local, remote).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_over_ssh_is_verified_and_restores_the_earlier_state() {
    let Some(t) = tools() else { return };
    let sshd = Sshd::start(&t.sshd, &["cp-1"], true, &[]);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("etcd-data");
    let etcd = Arc::new(Mutex::new(Etcd::start(
        &t.etcd, &t.etcdctl, &data, "cp-1", None,
    )));
    let (client_port, peer_port) = {
        let e = etcd.lock().unwrap();
        for i in 0..25 {
            e.put(
                &t.etcdctl,
                &format!("/registry/before/{i}"),
                &format!("v{i}"),
            );
        }
        (e.client_port, e.peer_port)
    };
    let settings = settings(work.path(), &etcd.lock().unwrap(), &t.etcdctl);
    let exec = SshExecutor::new("cp-1", sshd.options("cp-1"));

    // Snapshot on the node, status there, then copy off and verify here.
    let record_id = "etcd-test-1";
    let node_snap = etcd::snapshot(&exec, &settings, &format!("{record_id}.db"))
        .await
        .unwrap();
    assert!(node_snap.status.total_keys >= 25, "{:?}", node_snap.status);
    assert!(node_snap.status.revision >= 26, "{:?}", node_snap.status);
    assert_eq!(
        node_snap.remote_path,
        format!("{}/{record_id}.db", settings.snapshot_dir())
    );
    let local = work.path().join("copied.db");
    let copied = exec
        .copy_from(&node_snap.remote_path, &local)
        .await
        .unwrap();
    assert_eq!(copied, node_snap.size);
    let expected = Expected {
        size: node_snap.size,
        sha256: node_snap.sha256.clone(),
        status: Some(node_snap.status),
    };
    let verified = verify_local(&local, &expected, Some(&t.etcdctl))
        .await
        .unwrap();
    assert_eq!(verified.local_status.unwrap().hash, node_snap.status.hash);
    // The commands ran over SSH in this order (the shims are on PATH; etcdctl is the real one).
    assert!(
        sshd.calls("cp-1").is_empty(),
        "no shim was needed: {:?}",
        sshd.calls("cp-1")
    );

    // Keys written after the snapshot must disappear with the restore.
    {
        let e = etcd.lock().unwrap();
        for i in 0..10 {
            e.put(&t.etcdctl, &format!("/registry/after/{i}"), "late");
        }
        e.put(&t.etcdctl, "/registry/before/0", "overwritten");
    }

    // The node as kubeadm lays it out: static pod manifests, kubelet config, a package repo.
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("etcd.yaml"),
        format!(
            "spec:\n  containers:\n  - command:\n    - etcd\n    - --name=cp-1\n    - --initial-advertise-peer-urls=http://127.0.0.1:{peer_port}\n"
        ),
    )
    .unwrap();
    std::fs::write(manifests.join("kube-apiserver.yaml"), "spec: {}\n").unwrap();
    let repo = work.path().join("kubernetes.list");
    std::fs::write(
        &repo,
        "deb [signed-by=/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n",
    )
    .unwrap();
    sshd.set_state("cp-1", "repo-file", &repo.display().to_string());
    for p in ["kubeadm", "kubelet", "kubectl"] {
        sshd.set_state("cp-1", &format!("pkg/{p}"), "1.31.2");
    }
    sshd.set_state("cp-1", "crictl-ps", "0f3e2d1c-etcd\n");

    // A stand-in kubelet: stops etcd (and its container entry) once its manifest is gone.
    let kubelet = {
        let etcd = etcd.clone();
        let manifest = manifests.join("etcd.yaml");
        let ps = sshd.state_dir.join("cp-1").join("crictl-ps");
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while manifest.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            etcd.lock().unwrap().stop();
            let _ = std::fs::remove_file(ps);
        })
    };

    let record = BackupRecord {
        id: record_id.into(),
        location: local.display().to_string(),
        taken_at: jiff::Timestamp::now(),
        size_bytes: node_snap.size,
        sha256: node_snap.sha256.clone(),
        store_hash: Some(node_snap.status.hash),
        revision: Some(node_snap.status.revision),
        total_keys: Some(node_snap.status.total_keys),
        control_plane: KubeVersion::new(1, 30, 6),
    };
    assert_eq!(snapshot_file_name(&record), "etcd-test-1.db");
    let target = RestoreTarget {
        exec: Arc::new(SshExecutor::new("cp-1", sshd.options("cp-1"))),
        packages: PackageManager::Apt,
        repo_file: Some(repo.display().to_string()),
    };
    restore_control_plane(
        &[target],
        &record,
        &local,
        &settings,
        &PackageSettings::default(),
        RestoreConfirmation::i_understand_all_changes_since_the_snapshot_are_lost(),
    )
    .await
    .unwrap();
    kubelet.join().unwrap();

    // Packages went back to the snapshot's version, manifests are back, kubelet restarted.
    let calls = sshd.calls("cp-1");
    let tail: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("crictl"))
        .collect();
    assert_eq!(
        tail,
        vec![
            "kubeadm version -o short",
            "apt-mark unhold kubeadm",
            "apt-get update",
            "apt-get install -y --allow-downgrades kubeadm=1.30.6-*",
            "apt-mark hold kubeadm",
            "kubeadm version -o short",
            "apt-mark unhold kubelet kubectl",
            "apt-get update",
            "apt-get install -y --allow-downgrades kubelet=1.30.6-* kubectl=1.30.6-*",
            "apt-mark hold kubelet kubectl",
            "systemctl daemon-reload",
            "systemctl restart kubelet",
        ]
    );
    assert!(
        std::fs::read_to_string(&repo)
            .unwrap()
            .contains("/v1.30/deb/")
    );
    assert!(manifests.join("etcd.yaml").exists() && manifests.join("kube-apiserver.yaml").exists());
    let replaced = PathBuf::from(format!("{}.kup-replaced-{record_id}", data.display()));
    assert!(
        replaced.join("member").is_dir(),
        "the old data directory is kept aside"
    );

    // etcd on the restored data: the keys from before are intact, the later ones are gone.
    let restored = Etcd::start(
        &t.etcd,
        &t.etcdctl,
        &data,
        "cp-1",
        Some((client_port, peer_port)),
    );
    for i in 0..25 {
        assert_eq!(
            restored
                .get(&t.etcdctl, &format!("/registry/before/{i}"))
                .as_deref(),
            Some(format!("v{i}").as_str())
        );
    }
    for i in 0..10 {
        assert_eq!(
            restored.get(&t.etcdctl, &format!("/registry/after/{i}")),
            None
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_copies_and_snapshots_fail_verification() {
    let Some(t) = tools() else { return };
    let sshd = Sshd::start(&t.sshd, &["cp-1"], true, &[]);
    let work = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&t.etcd, &t.etcdctl, &work.path().join("data"), "cp-1", None);
    etcd.put(&t.etcdctl, "/registry/k", "v");
    let settings = settings(work.path(), &etcd, &t.etcdctl);

    for truncate in [true, false] {
        let exec = Damaging {
            inner: SshExecutor::new("cp-1", sshd.options("cp-1")),
            truncate,
        };
        let snap = etcd::snapshot(&exec, &settings, &format!("s-{truncate}.db"))
            .await
            .unwrap();
        let local = work.path().join(format!("s-{truncate}.db"));
        exec.copy_from(&snap.remote_path, &local).await.unwrap();
        let expected = Expected {
            size: snap.size,
            sha256: snap.sha256.clone(),
            status: Some(snap.status),
        };
        let err = verify_local(&local, &expected, Some(&t.etcdctl))
            .await
            .unwrap_err();
        let text = err.to_string();
        if truncate {
            assert!(text.contains("truncated or incomplete copy"), "{text}");
        } else {
            assert!(text.contains("SHA-256"), "{text}");
        }
        assert!(matches!(
            err,
            kup_kubeadm::Error::SnapshotVerification { .. }
        ));
    }

    // A snapshot damaged on the node before it was hashed there: etcd's own trailer catches
    // it, and so does the real etcdctl.
    let exec = SshExecutor::new("cp-1", sshd.options("cp-1"));
    let snap = etcd::snapshot(&exec, &settings, "on-node.db")
        .await
        .unwrap();
    let local = work.path().join("on-node.db");
    exec.copy_from(&snap.remote_path, &local).await.unwrap();
    let mut bytes = std::fs::read(&local).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&local, &bytes).unwrap();
    let node_view = Expected {
        size: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        status: Some(snap.status),
    };
    let err = verify_local(&local, &node_view, Some(&t.etcdctl))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("etcd's own checksum"), "{err}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_inside_the_etcd_container_through_crictl() {
    let Some(t) = tools() else { return };
    let sshd = Sshd::start(&t.sshd, &["cp-1"], true, &[]);
    let work = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&t.etcd, &t.etcdctl, &work.path().join("data"), "cp-1", None);
    etcd.put(&t.etcdctl, "/registry/k", "v");
    let mut settings = settings(work.path(), &etcd, &t.etcdctl);
    settings.tools = ToolLocation::Container;
    sshd.set_state("cp-1", "crictl-ps", "9a8b7c6d5e4f\n");
    let exec = SshExecutor::new("cp-1", sshd.options("cp-1"));
    let snap = etcd::snapshot(&exec, &settings, "in-container.db")
        .await
        .unwrap();
    assert!(snap.status.total_keys >= 1);
    let calls = sshd.calls("cp-1");
    let endpoint = format!("--endpoints={}", etcd.endpoint());
    let data = etcd.data_dir.display().to_string();
    assert_eq!(
        calls,
        vec![
            "ps --state running --name ^etcd$ -q".to_string(),
            "exec 9a8b7c6d5e4f etcdutl version".to_string(),
            format!("exec 9a8b7c6d5e4f env ETCDCTL_API=3 etcdctl {endpoint} endpoint health"),
            format!("exec 9a8b7c6d5e4f env ETCDCTL_API=3 etcdctl {endpoint} snapshot save {data}/in-container.db"),
            format!("exec 9a8b7c6d5e4f env ETCDCTL_API=3 etcdctl snapshot status {data}/in-container.db -w json"),
        ]
        .into_iter()
        .map(|c| format!("crictl {c}"))
        .collect::<Vec<_>>()
    );
    // Moved out of the data directory to kup's snapshot directory on the host.
    assert!(!etcd.data_dir.join("in-container.db").exists());
    assert!(Path::new(&snap.remote_path).is_file());
}
