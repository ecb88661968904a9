//! Backups and restores for [`KubeadmProvider`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use kup_core::{
    BackupOptions, BackupRecord, Event, KubeVersion, Operation, OperationTarget, ProviderKind,
};

use super::KubeadmProvider;
use crate::cluster_state;
use crate::error::{Error, Result};
use crate::etcd::restore::{
    RestoreConfirmation, RestoreTarget, restore_control_plane, snapshot_file_name,
};
use crate::etcd::verify::{Expected, find_local_tool, verify_local};
use crate::etcd::{self, SnapshotStatus};

impl KubeadmProvider {
    /// The control plane's version now: the oldest API server (from the kube-apiserver
    /// mirror pods), else `/version`.
    pub async fn control_plane_version(&self) -> Result<KubeVersion> {
        let api = cluster_state::api_servers(&self.client).await?;
        match self
            .inventory
            .control_plane
            .iter()
            .filter_map(|n| api.get(&n.name))
            .min()
        {
            Some(v) => Ok(v.clone()),
            None => cluster_state::server_version(&self.client).await,
        }
    }

    fn local_tool(&self) -> Option<PathBuf> {
        find_local_tool(self.settings.etcd.local_tool.as_deref())
    }

    /// Takes an etcd snapshot on the first control-plane node, copies it off, verifies it
    /// and keeps the record as this provider's verified backup. A snapshot that fails
    /// verification is an error, and leaves the provider without a verified backup.
    pub async fn take_backup(&self, opts: &BackupOptions) -> Result<BackupRecord> {
        *self.verified_backup.lock().await = None;
        let control_plane = self.control_plane_version().await?;
        let first = self.inventory.first_control_plane();
        let exec = self.executor(&first.name)?;
        let taken_at = jiff::Timestamp::now();
        let id = format!(
            "etcd-{}-{}",
            self.inventory.cluster,
            taken_at.strftime("%Y%m%dT%H%M%S%.3fZ")
        )
        .replace(['/', ' '], "-");
        let file_name = format!("{id}.db");
        let node_snapshot = etcd::snapshot(exec.as_ref(), &self.settings.etcd, &file_name).await?;
        let destination = opts
            .destination
            .clone()
            .unwrap_or_else(|| self.settings.backup_dir.clone());
        if opts.destination.is_none() || destination.as_os_str().to_string_lossy().ends_with('/') {
            tokio::fs::create_dir_all(&destination)
                .await
                .map_err(|e| Error::io(&destination, e))?;
        }
        let local = absolute(&etcd::local_path(&destination, &file_name));
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::io(parent, e))?;
        }
        exec.copy_from(&node_snapshot.remote_path, &local).await?;
        let expected = Expected {
            size: node_snapshot.size,
            sha256: node_snapshot.sha256.clone(),
            status: Some(node_snapshot.status),
        };
        let tool = self.local_tool();
        verify_local(&local, &expected, tool.as_deref()).await?;
        let record = BackupRecord {
            id,
            location: local.display().to_string(),
            taken_at,
            size_bytes: node_snapshot.size,
            sha256: node_snapshot.sha256,
            store_hash: Some(node_snapshot.status.hash),
            revision: Some(node_snapshot.status.revision),
            total_keys: Some(node_snapshot.status.total_keys),
            control_plane,
        };
        let sidecar = sidecar_path(&local);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::UnexpectedOutput {
            node: "local".into(),
            what: "backup record".into(),
            message: e.to_string(),
        })?;
        tokio::fs::write(&sidecar, json)
            .await
            .map_err(|e| Error::io(&sidecar, e))?;
        *self.verified_backup.lock().await = Some(record.clone());
        self.emit(Event::BackupVerified {
            backup: record.clone(),
        });
        Ok(record)
    }

    /// Accepts a backup taken earlier (a resumed run) after verifying its file again.
    pub async fn adopt_backup(&self, record: &BackupRecord) -> Result<()> {
        self.verify_record(record).await?;
        *self.verified_backup.lock().await = Some(record.clone());
        Ok(())
    }

    /// Verifies the file a record points at (size, SHA-256, etcd's trailer, local status).
    pub async fn verify_record(&self, record: &BackupRecord) -> Result<()> {
        let status = match (record.store_hash, record.revision, record.total_keys) {
            (Some(hash), Some(revision), Some(total_keys)) => Some(SnapshotStatus {
                hash,
                revision,
                total_keys,
                total_size: 0,
            }),
            _ => None,
        };
        let expected = Expected {
            size: record.size_bytes,
            sha256: record.sha256.clone(),
            status,
        };
        let tool = self.local_tool();
        verify_local(Path::new(&record.location), &expected, tool.as_deref()).await?;
        Ok(())
    }

    /// Restores `record` on every control-plane node (see [`crate::etcd::restore`]).
    pub async fn restore_snapshot(
        &self,
        record: &BackupRecord,
        confirmation: RestoreConfirmation,
    ) -> Result<Operation> {
        self.verify_record(record).await?;
        // A kubelet must never be newer than the API server it talks to.
        let nodes = cluster_state::nodes(&self.client).await.unwrap_or_default();
        let too_new: Vec<String> = nodes
            .iter()
            .filter(|(name, _)| {
                self.inventory
                    .node(name)
                    .is_none_or(|n| n.role != crate::inventory::NodeRole::ControlPlane)
            })
            .filter(|(_, s)| {
                s.kubelet
                    .as_ref()
                    .is_some_and(|k| k.minor_distance(&record.control_plane) < 0)
            })
            .map(|(name, s)| {
                format!(
                    "{name} ({})",
                    s.kubelet
                        .as_ref()
                        .map_or(String::new(), ToString::to_string)
                )
            })
            .collect();
        if !too_new.is_empty() {
            return Err(Error::Precondition(format!(
                "cannot restore the snapshot of {}: these workers run newer kubelets and would \
                 be out of skew with the restored API server: {}; drain and downgrade them \
                 first",
                record.control_plane,
                too_new.join(", ")
            )));
        }
        let mut targets = Vec::new();
        for node in &self.inventory.control_plane {
            targets.push(RestoreTarget {
                exec: self.executor(&node.name)?,
                packages: self.package_manager(&node.name).await?,
                repo_file: node.repo_file.clone(),
            });
        }
        restore_control_plane(
            &targets,
            record,
            Path::new(&record.location),
            &self.settings.etcd,
            &self.settings.packages,
            confirmation,
        )
        .await?;
        let op = Operation::new(
            ProviderKind::Kubeadm,
            format!("restore-{}", record.id),
            OperationTarget::Restore,
        )
        .with_version(&record.control_plane)
        .with_handle("snapshot", snapshot_file_name(record));
        Ok(op)
    }

    /// Waits until the API server answers after a restore.
    pub async fn wait_api_server(&self, timeout: Duration) -> Result<KubeVersion> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(v) = cluster_state::server_version(&self.client).await {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    what: "the API server to answer".into(),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn sidecar_path(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}
