//! etcd snapshots where kubeadm's stacked etcd lives: on the first control-plane node,
//! through the node executor, with kubeadm's certificate paths.
//!
//! * [`snapshot`]: `etcdctl snapshot save` (on the host when etcdctl is installed there,
//!   otherwise inside the etcd static pod's container through `crictl exec`), then
//!   `snapshot status -w json` on the node, then a copy off the node and a local
//!   verification ([`verify`]).
//! * [`restore`]: the command sequence that puts a verified snapshot back.

pub mod restore;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exec::{NodeCommand, NodeExecutor};

pub use verify::{LocalVerification, verify_local};

/// Where etcd and its certificates are on control-plane nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdSettings {
    /// The client endpoint as seen from the node. With `https://` the client certificates
    /// below are passed; with `http://` (test etcds) none are.
    pub endpoint: String,
    /// kubeadm's etcd certificate directory.
    pub cert_dir: String,
    /// CA certificate file name in `cert_dir`.
    pub ca_cert: String,
    /// Client certificate file name in `cert_dir` (any certificate the etcd CA signed for
    /// client use; kubeadm's own docs use the server pair).
    pub client_cert: String,
    /// Client key file name in `cert_dir`.
    pub client_key: String,
    /// etcd's data directory on the node.
    pub data_dir: String,
    /// The static pod manifest directory.
    pub manifest_dir: String,
    /// Where kup keeps snapshots and manifest copies on the node.
    pub node_work_dir: String,
    /// The etcd container's name, for `crictl` when etcdctl is not on the host.
    pub container_name: String,
    /// Time limit for one etcd command.
    #[serde(with = "secs")]
    pub command_timeout: Duration,
    /// The kubelet's configuration file, kept with the manifests before each control-plane
    /// node is upgraded (`kubeadm upgrade` rewrites it) and put back by a restore.
    pub kubelet_config: String,
    /// Where etcdctl runs: `auto` (the host when it has etcdctl, else the etcd container),
    /// `host` or `container`.
    pub tools: ToolLocation,
    /// How long a restore waits for the API server and etcd to stop after their manifests
    /// are moved away.
    #[serde(with = "secs")]
    pub stop_timeout: Duration,
    /// An etcdctl (3.4) or etcdutl (3.5+) on this machine for the second, local status check;
    /// `None` looks for `etcdutl`, then `etcdctl` on `PATH`, and skips the check when neither
    /// exists (size and both checksums are still verified).
    pub local_tool: Option<PathBuf>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoint: "https://127.0.0.1:2379".into(),
            cert_dir: "/etc/kubernetes/pki/etcd".into(),
            ca_cert: "ca.crt".into(),
            client_cert: "server.crt".into(),
            client_key: "server.key".into(),
            data_dir: "/var/lib/etcd".into(),
            manifest_dir: "/etc/kubernetes/manifests".into(),
            node_work_dir: "/var/lib/kup".into(),
            container_name: "etcd".into(),
            command_timeout: Duration::from_secs(600),
            kubelet_config: "/var/lib/kubelet/config.yaml".into(),
            tools: ToolLocation::Auto,
            stop_timeout: Duration::from_secs(180),
            local_tool: None,
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl EtcdSettings {
    fn tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// The connection flags for etcdctl.
    pub fn client_flags(&self) -> Vec<String> {
        let mut flags = vec![format!("--endpoints={}", self.endpoint)];
        if self.tls() {
            let dir = self.cert_dir.trim_end_matches('/');
            flags.push(format!("--cacert={dir}/{}", self.ca_cert));
            flags.push(format!("--cert={dir}/{}", self.client_cert));
            flags.push(format!("--key={dir}/{}", self.client_key));
        }
        flags
    }

    /// Where kup keeps a node's manifests and kubelet configuration from before the upgrade
    /// that followed backup `backup_id`.
    pub fn pre_upgrade_dir(&self, backup_id: &str) -> String {
        format!(
            "{}/pre-upgrade-{backup_id}",
            self.node_work_dir.trim_end_matches('/')
        )
    }

    /// Where snapshots are kept on the node.
    pub fn snapshot_dir(&self) -> String {
        format!("{}/snapshots", self.node_work_dir.trim_end_matches('/'))
    }

    /// Checks the settings before anything runs.
    pub fn validate(&self) -> Result<()> {
        if !(self.endpoint.starts_with("https://") || self.endpoint.starts_with("http://")) {
            return Err(Error::invalid(
                "settings.etcd.endpoint",
                format!("{:?} is not an http(s) URL", self.endpoint),
            ));
        }
        for (field, value) in [
            ("settings.etcd.cert_dir", &self.cert_dir),
            ("settings.etcd.data_dir", &self.data_dir),
            ("settings.etcd.manifest_dir", &self.manifest_dir),
            ("settings.etcd.node_work_dir", &self.node_work_dir),
        ] {
            if !value.starts_with('/') || value.trim_end_matches('/').is_empty() {
                return Err(Error::invalid(
                    field,
                    format!("{value:?} must be an absolute path other than /"),
                ));
            }
        }
        Ok(())
    }
}

/// What `etcdctl snapshot status -w json` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// etcd's hash of the database contents.
    pub hash: u64,
    /// The store revision at the snapshot.
    pub revision: u64,
    /// How many keys it holds.
    #[serde(rename = "totalKey")]
    pub total_keys: u64,
    /// The database size etcd reports.
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

impl SnapshotStatus {
    /// Parses the JSON status line (etcd 3.4 etcdctl and 3.5+ etcdutl write the same fields).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let start = text
            .find('{')
            .ok_or_else(|| format!("no JSON object in {text:?}"))?;
        let mut de = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Self>();
        match de.next() {
            Some(Ok(status)) => Ok(status),
            Some(Err(e)) => Err(format!("{e} in {text:?}")),
            None => Err(format!("no JSON object in {text:?}")),
        }
    }
}

/// Where etcdctl runs on the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolLocation {
    /// The host when etcdctl is installed there, else the etcd container.
    #[default]
    Auto,
    /// The host only.
    Host,
    /// The etcd container only (`crictl exec`).
    Container,
}

/// How etcd's tools are reached on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdTools {
    /// etcdctl (and maybe etcdutl) installed on the host.
    Host {
        /// Whether etcdutl (3.5+, required for status and restore from 3.6) is there too.
        etcdutl: bool,
    },
    /// Only inside the etcd container.
    Container {
        /// The container id from `crictl ps`.
        id: String,
        /// Whether etcdutl is in the image.
        etcdutl: bool,
    },
}

impl EtcdTools {
    /// Finds etcdctl on the host, else the running etcd container.
    pub async fn find(exec: &dyn NodeExecutor, settings: &EtcdSettings) -> Result<Self> {
        if settings.tools != ToolLocation::Container && exec.has_program("etcdctl").await? {
            return Ok(Self::Host {
                etcdutl: exec.has_program("etcdutl").await?,
            });
        }
        if settings.tools == ToolLocation::Host {
            return Err(Error::Precondition(format!(
                "node {} has no etcdctl on its PATH (settings.etcd.tools is `host`)",
                exec.node()
            )));
        }
        if !exec.has_program("crictl").await? {
            return Err(Error::Precondition(format!(
                "node {} has neither etcdctl nor crictl on its PATH; install etcdctl (the \
                 etcd-client package) or crictl (cri-tools) there",
                exec.node()
            )));
        }
        let out = exec
            .run_checked(
                &NodeCommand::new("crictl")
                    .args(["ps", "--state", "running", "--name"])
                    .arg(format!("^{}$", settings.container_name))
                    .arg("-q"),
            )
            .await?;
        let Some(id) = out.stdout.lines().map(str::trim).find(|l| !l.is_empty()) else {
            return Err(Error::Precondition(format!(
                "no running container named {} on {} (is this a stacked-etcd control-plane \
                 node? external etcd clusters are backed up where they run)",
                settings.container_name,
                exec.node()
            )));
        };
        let id = id.to_string();
        let etcdutl = exec
            .run(&NodeCommand::new("crictl").args(["exec", &id, "etcdutl", "version"]))
            .await?
            .success();
        Ok(Self::Container { id, etcdutl })
    }

    /// A command running `tool` (etcdctl or etcdutl) where the tools are.
    pub fn command(&self, tool: &str, settings: &EtcdSettings) -> NodeCommand {
        let cmd = match self {
            Self::Host { .. } => NodeCommand::new("env").arg("ETCDCTL_API=3").arg(tool),
            Self::Container { id, .. } => NodeCommand::new("crictl")
                .args(["exec", id.as_str(), "env", "ETCDCTL_API=3"])
                .arg(tool),
        };
        cmd.timeout(settings.command_timeout)
    }

    fn has_etcdutl(&self) -> bool {
        match self {
            Self::Host { etcdutl } | Self::Container { etcdutl, .. } => *etcdutl,
        }
    }

    /// `snapshot status` through etcdutl when present (etcd 3.6 removed it from etcdctl).
    pub fn status_command(&self, path: &str, settings: &EtcdSettings) -> NodeCommand {
        let tool = if self.has_etcdutl() {
            "etcdutl"
        } else {
            "etcdctl"
        };
        self.command(tool, settings)
            .args(["snapshot", "status", path, "-w", "json"])
    }
}

/// Checks etcd's health from the node (`etcdctl endpoint health`).
pub async fn health(
    exec: &dyn NodeExecutor,
    tools: &EtcdTools,
    settings: &EtcdSettings,
) -> Result<()> {
    let out = exec
        .run(
            &tools
                .command("etcdctl", settings)
                .args(settings.client_flags())
                .args(["endpoint", "health"])
                .timeout(Duration::from_secs(60)),
        )
        .await?;
    if !out.success() {
        return Err(Error::Precondition(format!(
            "etcd on {} is not healthy: {}",
            exec.node(),
            format!("{} {}", out.stdout.trim(), out.stderr.trim()).trim()
        )));
    }
    Ok(())
}

/// A snapshot taken and checked on the node, before it is copied off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// Its path on the node.
    pub remote_path: String,
    /// What `snapshot status` said on the node.
    pub status: SnapshotStatus,
    /// Its size on the node.
    pub size: u64,
    /// Its SHA-256 on the node, hex.
    pub sha256: String,
}

/// Takes a snapshot on the node and reads its status, size and checksum there.
pub async fn snapshot(
    exec: &dyn NodeExecutor,
    settings: &EtcdSettings,
    name: &str,
) -> Result<NodeSnapshot> {
    let tools = EtcdTools::find(exec, settings).await?;
    health(exec, &tools, settings).await?;
    let dir = settings.snapshot_dir();
    exec.run_checked(&NodeCommand::new("mkdir").args(["-p", "-m", "0700", dir.as_str()]))
        .await?;
    let remote_path = format!("{dir}/{name}");
    // Inside the container only etcd's own mounts are visible: save into the data directory
    // (a hostPath mount at the same path), then move it next to the others on the host.
    let save_path = match tools {
        EtcdTools::Host { .. } => remote_path.clone(),
        EtcdTools::Container { .. } => {
            format!("{}/{name}", settings.data_dir.trim_end_matches('/'))
        }
    };
    exec.run_checked(
        &tools
            .command("etcdctl", settings)
            .args(settings.client_flags())
            .args(["snapshot", "save", save_path.as_str()]),
    )
    .await?;
    // Status is read where the tools see the file, before it moves.
    let out = exec
        .run_checked(&tools.status_command(&save_path, settings))
        .await?;
    if save_path != remote_path {
        exec.run_checked(&NodeCommand::new("mv").args([
            "-f",
            save_path.as_str(),
            remote_path.as_str(),
        ]))
        .await?;
    }
    let status = SnapshotStatus::parse(&out.stdout).map_err(|message| Error::UnexpectedOutput {
        node: exec.node().to_string(),
        what: "etcdctl snapshot status".into(),
        message,
    })?;
    let (size, sha256) = remote_digest(exec, &remote_path).await?;
    Ok(NodeSnapshot {
        remote_path,
        status,
        size,
        sha256,
    })
}

/// The size and SHA-256 of a file on the node (`stat`, `sha256sum`).
pub async fn remote_digest(exec: &dyn NodeExecutor, path: &str) -> Result<(u64, String)> {
    let bad = |what: &str, message: String| Error::UnexpectedOutput {
        node: exec.node().to_string(),
        what: what.to_string(),
        message,
    };
    let size_out = exec
        .run_checked(&NodeCommand::new("stat").args(["-c", "%s", path]))
        .await?;
    let size = size_out
        .stdout
        .trim()
        .parse::<u64>()
        .map_err(|e| bad("stat", format!("{e} in {:?}", size_out.stdout)))?;
    let sum_out = exec
        .run_checked(
            &NodeCommand::new("sha256sum")
                .arg(path)
                .timeout(Duration::from_secs(600)),
        )
        .await?;
    let sha = sum_out
        .stdout
        .split_whitespace()
        .next()
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad("sha256sum", format!("no checksum in {:?}", sum_out.stdout)))?
        .to_ascii_lowercase();
    Ok((size, sha))
}

/// Where a snapshot copied off the node is written: `destination` itself when it names a
/// file, `destination/<name>` when it is a directory (or ends with `/`).
pub fn local_path(destination: &Path, name: &str) -> PathBuf {
    if destination.is_dir() || destination.as_os_str().to_string_lossy().ends_with('/') {
        destination.join(name)
    } else {
        destination.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_status_of_etcdctl_and_etcdutl() {
        let s = SnapshotStatus::parse(
            r#"{"hash":3125371498,"revision":12,"totalKey":9,"totalSize":20480}"#,
        )
        .unwrap();
        assert_eq!(
            (s.hash, s.revision, s.total_keys, s.total_size),
            (3125371498, 12, 9, 20480)
        );
        let with_warning = "Deprecated: Use `etcdutl snapshot status` instead.\n\n{\"hash\":1,\"revision\":2,\"totalKey\":3,\"totalSize\":4,\"version\":\"3.5.0\"}\n";
        assert_eq!(SnapshotStatus::parse(with_warning).unwrap().revision, 2);
        assert!(SnapshotStatus::parse("Error: snapshot file has wrong size").is_err());
    }

    #[test]
    fn tls_flags_follow_the_endpoint_scheme() {
        let s = EtcdSettings::default();
        assert_eq!(
            s.client_flags(),
            vec![
                "--endpoints=https://127.0.0.1:2379",
                "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                "--cert=/etc/kubernetes/pki/etcd/server.crt",
                "--key=/etc/kubernetes/pki/etcd/server.key"
            ]
        );
        let plain = EtcdSettings {
            endpoint: "http://127.0.0.1:23790".into(),
            ..EtcdSettings::default()
        };
        assert_eq!(
            plain.client_flags(),
            vec!["--endpoints=http://127.0.0.1:23790"]
        );
        let bad = EtcdSettings {
            data_dir: "var/lib/etcd".into(),
            ..EtcdSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("settings.etcd.data_dir")
        );
    }
}
