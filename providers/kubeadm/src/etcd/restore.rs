//! Putting a verified etcd snapshot back: the kubeadm rollback.
//!
//! # When a rollback is possible
//!
//! kubeadm has no downgrade command, and Kubernetes does not support running an older API
//! server on data a newer one wrote. The only sound way back is to return the control plane
//! to the exact state of a snapshot taken *before* the upgrade, with the binaries of that
//! version. So a rollback is possible when:
//!
//! * a snapshot verified by kup exists (size, SHA-256, etcd's own trailer checksum) and was
//!   taken at the control-plane version being returned to;
//! * etcd is kubeadm's stacked etcd on the control-plane nodes (an external etcd cluster is
//!   restored where it runs, outside kup);
//! * the control-plane nodes are the ones that existed at the snapshot (a member added later
//!   would not be in the restored membership);
//! * no kubelet in the cluster is newer than the version returned to (a kubelet must never be
//!   newer than the API server): workers already moved must be drained and downgraded first.
//!
//! It is **not** possible, or not wise, when the snapshot is older than changes that must be
//! kept (everything written after it — Deployments, Secrets, leases — is lost), when
//! encryption-at-rest keys were rotated since, or when add-ons were moved to versions that
//! need the newer API.
//!
//! # The sequence (every control-plane node)
//!
//! 1. Check the local file again, put it on each node (copying it only when the node's copy
//!    is missing or differs), check the node's copy's SHA-256; find etcdutl/etcdctl on the
//!    host (the etcd container is about to stop) and read each member's name and peer URL
//!    from its etcd manifest. Nothing has changed yet.
//! 2. Stop the API server and etcd static pods by moving their manifests out of the manifest
//!    directory, and wait until they are gone.
//! 3. `snapshot restore` into a new data directory with the member's name, the full initial
//!    cluster and a fresh cluster token; swap it in place of the old data directory (kept as
//!    `<data_dir>.kup-replaced-<id>`; a repeated attempt keeps the first one's copy).
//! 4. Downgrade kubeadm, kubelet and kubectl to the snapshot's version (repository switched
//!    back to its minor) where the node runs something newer.
//! 5. Put the manifests and kubelet configuration kup saved before the upgrade back (or the
//!    moved ones when none were saved), then `systemctl daemon-reload` and
//!    `systemctl restart kubelet`.

use std::sync::Arc;
use std::time::Duration;

use kup_core::BackupRecord;

use super::{EtcdSettings, remote_digest};
use crate::error::{Error, Result};
use crate::exec::{NodeCommand, NodeExecutor};
use crate::packages::{NodePackages, PackageManager, PackageSettings};

/// The explicit confirmation a restore needs: it replaces the cluster's whole state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreConfirmation(());

impl RestoreConfirmation {
    /// Confirms that every change made after the snapshot will be lost.
    pub const fn i_understand_all_changes_since_the_snapshot_are_lost() -> Self {
        Self(())
    }
}

/// A control-plane node taking part in a restore.
#[derive(Clone, Debug)]
pub struct RestoreTarget {
    /// How to reach it.
    pub exec: Arc<dyn NodeExecutor>,
    /// Its package manager.
    pub packages: PackageManager,
    /// Its repository definition, when not at the settings' default path.
    pub repo_file: Option<String>,
}

/// What one node's etcd member is called and where its peers reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `--name`.
    pub name: String,
    /// `--initial-advertise-peer-urls`.
    pub peer_url: String,
}

/// Reads `--name` and `--initial-advertise-peer-urls` from an etcd static pod manifest.
pub fn member_from_manifest(manifest: &str) -> Option<Member> {
    let flag = |name: &str| {
        manifest.lines().find_map(|line| {
            let t = line.trim().trim_start_matches('-').trim();
            t.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    Some(Member {
        name: flag("--name")?,
        peer_url: flag("--initial-advertise-peer-urls")?
            .split(',')
            .next()?
            .to_string(),
    })
}

/// The file name of a backup's snapshot on the nodes.
pub fn snapshot_file_name(record: &BackupRecord) -> String {
    format!("{}.db", record.id)
}

/// Where a restore moves the static pod manifests it stops.
fn stopped_dir(settings: &EtcdSettings, record: &BackupRecord) -> String {
    format!(
        "{}/restore-{}/stopped-manifests",
        settings.node_work_dir.trim_end_matches('/'),
        record.id
    )
}

struct Prepared {
    target: RestoreTarget,
    member: Member,
    tool: &'static str,
    saved_state: bool,
}

async fn prepare(
    target: &RestoreTarget,
    settings: &EtcdSettings,
    record: &BackupRecord,
    local: &std::path::Path,
) -> Result<Prepared> {
    let exec = target.exec.as_ref();
    let tool = if exec.has_program("etcdutl").await? {
        "etcdutl"
    } else if exec.has_program("etcdctl").await? {
        "etcdctl"
    } else {
        return Err(Error::Precondition(format!(
            "node {} has neither etcdutl nor etcdctl on the host; a restore runs while etcd's \
             container is stopped, so install etcdutl (etcd 3.5+) or etcdctl (3.4) there first",
            exec.node()
        )));
    };
    let mut manifest_path = format!("{}/etcd.yaml", settings.manifest_dir.trim_end_matches('/'));
    if !exec
        .run(&NodeCommand::new("test").args(["-f", manifest_path.as_str()]))
        .await?
        .success()
    {
        // An interrupted earlier attempt moved it aside with the API server's.
        manifest_path = format!("{}/etcd.yaml", stopped_dir(settings, record));
    }
    let manifest = exec
        .run_checked(&NodeCommand::new("cat").arg(&manifest_path))
        .await?
        .stdout;
    let member = member_from_manifest(&manifest).ok_or_else(|| Error::UnexpectedOutput {
        node: exec.node().to_string(),
        what: manifest_path.clone(),
        message: "no --name and --initial-advertise-peer-urls flags".into(),
    })?;
    let dir = settings.snapshot_dir();
    let remote = format!("{dir}/{}", snapshot_file_name(record));
    let present = exec
        .run(&NodeCommand::new("test").args(["-f", remote.as_str()]))
        .await?
        .success();
    let matches = present && remote_digest(exec, &remote).await?.1 == record.sha256;
    if !matches {
        exec.run_checked(&NodeCommand::new("mkdir").args(["-p", "-m", "0700", dir.as_str()]))
            .await?;
        exec.copy_to(local, &remote).await?;
        let (size, sha) = remote_digest(exec, &remote).await?;
        if size != record.size_bytes || sha != record.sha256 {
            return Err(Error::SnapshotVerification {
                path: local.to_path_buf(),
                message: format!(
                    "the copy on {} has {size} bytes and SHA-256 {sha}, expected {} bytes and {}",
                    exec.node(),
                    record.size_bytes,
                    record.sha256
                ),
            });
        }
    }
    let saved_state = exec
        .run(&NodeCommand::new("test").args([
            "-d",
            &format!("{}/manifests", settings.pre_upgrade_dir(&record.id)),
        ]))
        .await?
        .success();
    Ok(Prepared {
        target: target.clone(),
        member,
        tool,
        saved_state,
    })
}

async fn wait_stopped(exec: &dyn NodeExecutor, settings: &EtcdSettings, tool: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + settings.stop_timeout;
    let use_crictl = exec.has_program("crictl").await?;
    loop {
        let running = if use_crictl {
            let out = exec
                .run_checked(&NodeCommand::new("crictl").args([
                    "ps",
                    "--state",
                    "running",
                    "--name",
                    "^(kube-apiserver|etcd)$",
                    "-q",
                ]))
                .await?;
            !out.stdout.trim().is_empty()
        } else {
            // Without crictl, etcd answering its health check means it still runs.
            let mut health = NodeCommand::new("env")
                .arg("ETCDCTL_API=3")
                .arg(if tool == "etcdutl" { "etcdctl" } else { tool })
                .args(settings.client_flags())
                .args(["endpoint", "health", "--command-timeout=2s"])
                .timeout(Duration::from_secs(30));
            health = health.arg("--dial-timeout=2s");
            exec.run(&health).await?.success()
        };
        if !running {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::WaitTimeout {
                what: format!("the API server and etcd on {} to stop", exec.node()),
                after: settings.stop_timeout,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Restores `record` (whose verified file is at `local`) on every control-plane node in
/// `targets`, following the sequence in the module docs.
pub async fn restore_control_plane(
    targets: &[RestoreTarget],
    record: &BackupRecord,
    local: &std::path::Path,
    settings: &EtcdSettings,
    package_settings: &PackageSettings,
    _confirmed: RestoreConfirmation,
) -> Result<()> {
    if targets.is_empty() {
        return Err(Error::Precondition(
            "no control-plane node to restore".into(),
        ));
    }
    // 1. Everything that can be checked without changing anything.
    let mut prepared = Vec::with_capacity(targets.len());
    for target in targets {
        prepared.push(prepare(target, settings, record, local).await?);
    }
    let initial_cluster = prepared
        .iter()
        .map(|p| format!("{}={}", p.member.name, p.member.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    let manifests = settings.manifest_dir.trim_end_matches('/');
    let stopped = stopped_dir(settings, record);
    let data = settings.data_dir.trim_end_matches('/');
    let new_data = format!("{data}.kup-restore-{}", record.id);
    let old_data = format!("{data}.kup-replaced-{}", record.id);
    let remote = format!("{}/{}", settings.snapshot_dir(), snapshot_file_name(record));

    // 2. Stop the API servers and etcd everywhere before any data moves.
    for p in &prepared {
        let exec = p.target.exec.as_ref();
        exec.run_checked(&NodeCommand::new("mkdir").args(["-p", stopped.as_str()]))
            .await?;
        for manifest in ["kube-apiserver.yaml", "etcd.yaml"] {
            let from = format!("{manifests}/{manifest}");
            // A manifest already moved by an interrupted earlier attempt is where it should be.
            if exec
                .run(&NodeCommand::new("test").args(["-f", from.as_str()]))
                .await?
                .success()
            {
                exec.run_checked(&NodeCommand::new("mv").args([
                    "-f",
                    from.as_str(),
                    stopped.as_str(),
                ]))
                .await?;
            }
        }
    }
    for p in &prepared {
        wait_stopped(p.target.exec.as_ref(), settings, p.tool).await?;
    }

    // 3. Restore into a new data directory and swap it in.
    for p in &prepared {
        let exec = p.target.exec.as_ref();
        exec.run_checked(&NodeCommand::new("rm").args(["-rf", new_data.as_str()]))
            .await?;
        exec.run_checked(
            &NodeCommand::new("env")
                .arg("ETCDCTL_API=3")
                .arg(p.tool)
                .args(["snapshot", "restore", remote.as_str()])
                .arg(format!("--data-dir={new_data}"))
                .arg(format!("--name={}", p.member.name))
                .arg(format!("--initial-cluster={initial_cluster}"))
                .arg(format!(
                    "--initial-advertise-peer-urls={}",
                    p.member.peer_url
                ))
                .arg(format!("--initial-cluster-token=kup-restore-{}", record.id))
                .timeout(settings.command_timeout),
        )
        .await?;
        let kept_aside = exec
            .run(&NodeCommand::new("test").args(["-e", old_data.as_str()]))
            .await?
            .success();
        if kept_aside {
            // An earlier attempt already swapped: the data directory holds its restore, and
            // the state from before the restore stays where that attempt put it.
            exec.run_checked(&NodeCommand::new("rm").args(["-rf", data]))
                .await?;
        } else if exec
            .run(&NodeCommand::new("test").args(["-e", data]))
            .await?
            .success()
        {
            exec.run_checked(&NodeCommand::new("mv").args([data, old_data.as_str()]))
                .await?;
        }
        exec.run_checked(&NodeCommand::new("mv").args([new_data.as_str(), data]))
            .await?;
    }

    // 4–5. Binaries of the snapshot's version, the manifests from before the upgrade, kubelet.
    for p in &prepared {
        let exec = p.target.exec.as_ref();
        let pkgs = NodePackages::new(exec, p.target.packages, package_settings)
            .with_repo_file(p.target.repo_file.as_deref());
        let installed = pkgs.kubeadm_version().await?;
        if installed > record.control_plane {
            pkgs.upgrade_kubeadm(&record.control_plane, true).await?;
        }
        // Pinned whatever an interrupted attempt left (it may have moved kubeadm and died
        // before the kubelet); installing the installed version changes nothing.
        pkgs.install_kubelet(&record.control_plane, true).await?;
        if p.saved_state {
            let saved = settings.pre_upgrade_dir(&record.id);
            exec.run_checked(&NodeCommand::new("cp").args([
                "-a",
                &format!("{saved}/manifests/."),
                &format!("{manifests}/"),
            ]))
            .await?;
            let kubelet_saved = format!("{saved}/kubelet-config.yaml");
            if exec
                .run(&NodeCommand::new("test").args(["-f", kubelet_saved.as_str()]))
                .await?
                .success()
            {
                exec.run_checked(&NodeCommand::new("cp").args([
                    "-a",
                    kubelet_saved.as_str(),
                    settings.kubelet_config.as_str(),
                ]))
                .await?;
            }
            exec.run_checked(&NodeCommand::new("rm").args(["-rf", stopped.as_str()]))
                .await?;
        } else {
            for manifest in ["etcd.yaml", "kube-apiserver.yaml"] {
                exec.run_checked(&NodeCommand::new("mv").args([
                    "-f",
                    &format!("{stopped}/{manifest}"),
                    &format!("{manifests}/{manifest}"),
                ]))
                .await?;
            }
        }
        pkgs.restart_kubelet().await?;
    }
    Ok(())
}

/// Copies a control-plane node's manifests and kubelet configuration aside before its
/// upgrade, once per backup (a resumed run never overwrites the pre-upgrade copy).
pub async fn save_pre_upgrade_state(
    exec: &dyn NodeExecutor,
    settings: &EtcdSettings,
    backup_id: &str,
) -> Result<()> {
    let dir = settings.pre_upgrade_dir(backup_id);
    let manifests_copy = format!("{dir}/manifests");
    if exec
        .run(&NodeCommand::new("test").args(["-d", manifests_copy.as_str()]))
        .await?
        .success()
    {
        return Ok(());
    }
    exec.run_checked(&NodeCommand::new("mkdir").args(["-p", "-m", "0700", dir.as_str()]))
        .await?;
    let kubelet = settings.kubelet_config.as_str();
    if exec
        .run(&NodeCommand::new("test").args(["-f", kubelet]))
        .await?
        .success()
    {
        exec.run_checked(&NodeCommand::new("cp").args([
            "-a",
            kubelet,
            &format!("{dir}/kubelet-config.yaml"),
        ]))
        .await?;
    }
    // Copied to a temporary name and renamed, so a half-done copy is never taken as complete.
    let partial = format!("{dir}/manifests.partial");
    exec.run_checked(&NodeCommand::new("rm").args(["-rf", partial.as_str()]))
        .await?;
    exec.run_checked(&NodeCommand::new("cp").args([
        "-a",
        settings.manifest_dir.trim_end_matches('/'),
        partial.as_str(),
    ]))
    .await?;
    exec.run_checked(&NodeCommand::new("mv").args([partial.as_str(), manifests_copy.as_str()]))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_member_flags_from_kubeadm_etcd_manifest() {
        let manifest = "spec:\n  containers:\n  - command:\n    - etcd\n    - --advertise-client-urls=https://10.0.0.11:2379\n    - --initial-advertise-peer-urls=https://10.0.0.11:2380\n    - --initial-cluster=cp-1=https://10.0.0.11:2380\n    - --name=cp-1\n";
        assert_eq!(
            member_from_manifest(manifest).unwrap(),
            Member {
                name: "cp-1".into(),
                peer_url: "https://10.0.0.11:2380".into()
            }
        );
        assert_eq!(member_from_manifest("spec: {}"), None);
    }
}
