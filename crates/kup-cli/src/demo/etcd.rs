//! The demo's etcd: a real `etcd` process on loopback when etcd and etcdctl are installed
//! (the snapshot is then taken and verified by the real tools), else the simulator's own store
//! played as etcd, said as such.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kup_kubeadm::exec::CommandOutput;
use kup_mocks::k8s::SimHandle;
use sha2::{Digest, Sha256};

use crate::error::{CliError, Result};

/// A program from `env` (`KUP_ETCD`), else on `PATH`.
pub fn find(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A real etcd on loopback, stopped when dropped.
#[derive(Debug)]
pub struct RealEtcd {
    child: tokio::process::Child,
    /// Its client URL.
    pub endpoint: String,
}

fn free_port() -> Result<u16> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| CliError::Failed(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| CliError::Failed(e.to_string()))
}

impl RealEtcd {
    /// Starts `etcd` on `data_dir` and waits until `etcdctl` says it is healthy; a few keys
    /// are written so the snapshot holds something.
    pub async fn start(etcd: &Path, etcdctl: &Path, data_dir: &Path) -> Result<Self> {
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = tokio::process::Command::new(etcd)
            .arg("--name=cp-1")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=cp-1={peer_url}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| CliError::Failed(format!("starting {}: {e}", etcd.display())))?;
        let me = Self { child, endpoint };
        let ctl = |args: Vec<String>| {
            let mut c = tokio::process::Command::new(etcdctl);
            c.env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", me.endpoint))
                .args(args)
                .stdin(Stdio::null());
            c
        };
        let mut healthy = false;
        for _ in 0..300 {
            let out = ctl(vec!["endpoint".into(), "health".into()]).output().await;
            if out.is_ok_and(|o| o.status.success()) {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !healthy {
            return Err(CliError::Failed(format!(
                "etcd at {} did not become healthy",
                me.endpoint
            )));
        }
        for (k, v) in [
            ("/registry/namespaces/default", "{}"),
            ("/registry/namespaces/kube-system", "{}"),
            ("/registry/namespaces/shop", "{}"),
        ] {
            ctl(vec!["put".into(), k.into(), v.into()])
                .output()
                .await
                .map_err(|e| CliError::Failed(format!("etcdctl put: {e}")))?;
        }
        Ok(me)
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The Kubernetes resources a simulated snapshot holds.
const STORED: [&str; 8] = [
    "namespaces",
    "nodes",
    "pods",
    "deployments",
    "statefulsets",
    "poddisruptionbudgets",
    "configmaps",
    "leases",
];

/// etcdctl played against the simulator's store, for machines without etcd: `snapshot save`
/// writes the simulator's objects in etcd's framing (the contents padded to 512-byte pages
/// and closed by their SHA-256, which kup's verification checks), `snapshot status` reads the
/// revision and key count back from the file.
#[derive(Clone, Debug)]
pub struct SimulatedEtcd {
    sim: SimHandle,
}

impl SimulatedEtcd {
    /// The simulator's store as etcd.
    pub fn new(sim: SimHandle) -> Self {
        Self { sim }
    }

    /// Runs the etcdctl arguments (flags such as `--endpoints` ignored).
    pub fn run(&self, args: &[String]) -> CommandOutput {
        let words: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with("--"))
            .collect();
        let answer = match words.as_slice() {
            ["endpoint", "health"] => Ok(format!(
                "{} is healthy: successfully committed proposal (the simulator's store)\n",
                self.sim.url()
            )),
            ["snapshot", "save", path] => self.save(Path::new(path)),
            ["snapshot", "status", path, ..] => status(Path::new(path)),
            _ => Err(format!("unknown etcdctl command: {}", words.join(" "))),
        };
        match answer {
            Ok(stdout) => CommandOutput {
                status: Some(0),
                stdout,
                stderr: String::new(),
            },
            Err(stderr) => CommandOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: format!("Error: {stderr}\n"),
            },
        }
    }

    fn save(&self, path: &Path) -> std::result::Result<String, String> {
        let mut objects = Vec::new();
        for resource in STORED {
            objects.extend(self.sim.list(resource, None));
        }
        let header = serde_json::json!({
            "revision": self.sim.resource_version(),
            "keys": objects.len(),
        });
        let mut body = format!("{header}\n");
        for o in &objects {
            body.push_str(&o.to_string());
            body.push('\n');
        }
        let mut bytes = body.into_bytes();
        let padded = bytes.len().div_ceil(512) * 512;
        bytes.resize(padded, b'\n');
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(format!("Snapshot saved at {}\n", path.display()))
    }
}

/// The simulated etcd's own `snapshot status` for this machine's second check of a copied
/// snapshot (the check a real etcdctl does on real snapshots): recomputed from the file with
/// `sha256sum`, independently of the node's answer.
const LOCAL_STATUS_TOOL: &str = r#"#!/bin/sh
# kup demo: `snapshot status FILE -w json` of a snapshot of the simulator's store.
if [ "$1 $2" != "snapshot status" ]; then echo "Error: unsupported: $*" >&2; exit 1; fi
f="$3"
size=$(stat -c %s "$f") || exit 1
pages=$((size - 32))
if [ "$pages" -le 0 ]; then echo "Error: snapshot file is too short" >&2; exit 1; fi
hash=$((0x$(head -c "$pages" "$f" | sha256sum | cut -c1-8)))
header=$(head -n 1 "$f")
rev=$(printf '%s' "$header" | sed 's/.*"revision":\([0-9]*\).*/\1/')
keys=$(printf '%s' "$header" | sed 's/.*"keys":\([0-9]*\).*/\1/')
printf '{"hash":%s,"revision":%s,"totalKey":%s,"totalSize":%s}\n' "$hash" "$rev" "$keys" "$pages"
"#;

/// Writes [`LOCAL_STATUS_TOOL`] into `dir`, returning its path.
pub fn write_local_status_tool(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("simulated-etcdctl");
    let io = |source| CliError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    std::fs::write(&path, LOCAL_STATUS_TOOL).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    Ok(path)
}

fn status(path: &Path) -> std::result::Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(split) = bytes.len().checked_sub(32) else {
        return Err("snapshot file is too short".into());
    };
    let (pages, trailer) = bytes.split_at(split);
    let digest = Sha256::digest(pages);
    if digest.as_slice() != trailer {
        return Err("snapshot file integrity check failed".into());
    }
    let first = pages.split(|b| *b == b'\n').next().unwrap_or_default();
    let header: serde_json::Value =
        serde_json::from_slice(first).map_err(|e| format!("snapshot header: {e}"))?;
    let hash = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    Ok(format!(
        "{{\"hash\":{hash},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
        header["revision"].as_u64().unwrap_or_default(),
        header["keys"].as_u64().unwrap_or_default(),
        pages.len()
    ))
}
