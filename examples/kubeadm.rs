//! The kubeadm provider end to end.
//!
//! Simulated (default): a Kubernetes simulator with one control-plane node and two workers
//! at v1.30.6, nodes played by local shims (`tests/shims`: kubeadm, apt-get, apt-mark,
//! systemctl) that report to the simulator, a real local etcd (needs `etcd` and `etcdctl`,
//! installed by `scripts/test`), and release markers served on loopback. It backs etcd up,
//! verifies the snapshot, upgrades the control plane to 1.31 and rolls the workers.
//!
//! ```text
//! cargo run -p kup-examples --example kubeadm
//! ```
//!
//! Real nodes: pass an inventory (and use the current kubeconfig). It prints the cluster, the
//! offered versions and the pre-flight findings for the target; it changes nothing unless
//! `--yes` is given, and then only backs up etcd and moves the control plane one hop.
//!
//! ```text
//! cargo run -p kup-examples --example kubeadm -- --inventory nodes.yaml --target 1.31 \
//!     [--drain-timeout-secs 600] [--yes]
//! ```
//!
//! `KUP_INVENTORY` and `KUP_TARGET` stand in for the flags; `KUP_ETCD` names the etcd binary
//! of the simulated mode (default: `etcd` on `PATH`). `cargo test -p kup-examples --example
//! kubeadm` runs the simulated mode and checks where it ended (under `CI=true` a missing etcd
//! fails the test instead of skipping it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kup_core::{
    BackupOptions, ClusterInfo, ControlPlaneOptions, KubeVersion, Operation, OperationStatus,
    UpgradeProvider,
};
use kup_kube::drain::{DrainOptions, Drainer};
use kup_kubeadm::drain::KubeDrain;
use kup_kubeadm::exec::LocalExecutor;
use kup_kubeadm::inventory::Inventory;
use kup_kubeadm::versions::ReleaseSettings;
use kup_kubeadm::{KubeadmBuilder, KubeadmProvider, KubeadmSettings};
use kup_mocks::k8s::{Node, Scenario, SimConfig, Simulator};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, env: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var(env).ok())
    };
    match flag("--inventory", "KUP_INVENTORY") {
        Some(inv) => {
            let drain_timeout = match flag("--drain-timeout-secs", "KUP_DRAIN_TIMEOUT_SECS") {
                Some(s) => Some(Duration::from_secs(s.parse()?)),
                None => None,
            };
            real(
                PathBuf::from(inv),
                flag("--target", "KUP_TARGET"),
                drain_timeout,
                args.iter().any(|a| a == "--yes"),
            )
            .await
        }
        None => simulated().await.map(drop),
    }
}

/// The etcd binary of the simulated mode.
fn etcd_binary() -> PathBuf {
    std::env::var_os("KUP_ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

/// The real mode: reads the cluster through the inventory and the current kubeconfig; with
/// `yes`, backs etcd up and moves the control plane one hop towards `target`, draining each
/// control-plane node with the given timeout (none: wait as long as it takes).
async fn real(
    inventory: PathBuf,
    target: Option<String>,
    drain_timeout: Option<Duration>,
    yes: bool,
) -> Res<()> {
    let provider = KubeadmBuilder::from_env()
        .inventory_file(inventory)
        .kube_config(kube::Config::infer().await?)
        .drain_options(DrainOptions {
            timeout: drain_timeout,
            ..DrainOptions::default()
        })
        .build()
        .await?;
    let info = provider.cluster().await?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    for offer in provider.available_versions().await? {
        println!("offered: {} ({})", offer.version, offer.support);
    }
    let Some(target) = target else { return Ok(()) };
    let target: KubeVersion = target.parse()?;
    for finding in provider.preflight(&target).await? {
        println!("{finding}");
    }
    if yes {
        let backup = provider.backup(&BackupOptions::default()).await?;
        println!(
            "verified snapshot {} (revision {:?})",
            backup.location, backup.revision
        );
        let next = info.control_plane.next_minor();
        let hop = if target.minor_distance(&info.control_plane) < -1 {
            next
        } else {
            target
        };
        let op = provider
            .upgrade_control_plane(&hop, &ControlPlaneOptions::default())
            .await?;
        println!("control plane: {}", until_terminal(&provider, &op).await?);
    }
    Ok(())
}

/// The simulated mode: one control-plane node and two workers moved 1.30.6 → 1.31.2.
/// Returns the cluster as the provider sees it afterwards.
async fn simulated() -> Res<ClusterInfo> {
    let cps = ["cp-1"];
    let workers = ["w-1", "w-2"];
    let mut scenario = Scenario::new().version("v1.30.6");
    for cp in cps {
        scenario = scenario
            .node(Node::new(cp).control_plane().kubelet_version("v1.30.6"))
            .object(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("kube-apiserver-{cp}"), "namespace": "kube-system",
                    "labels": {"component": "kube-apiserver"},
                    "annotations": {"kubernetes.io/config.mirror": "1"}},
                "spec": {"nodeName": cp, "containers": [{"name": "kube-apiserver",
                    "image": "registry.k8s.io/kube-apiserver:v1.30.6"}]}
            }));
    }
    for w in workers {
        scenario = scenario.node(Node::new(w).pool("workers").kubelet_version("v1.30.6"));
    }
    let sim = Simulator::start(scenario, SimConfig::fast()).await?;

    // Release markers and the 1.31 package repository on loopback.
    let releases = MockServer::start().await;
    for (p, body) in [
        ("/release/stable.txt", "v1.31.2"),
        ("/release/stable-1.30.txt", "v1.30.6"),
        ("/release/stable-1.31.txt", "v1.31.2"),
        ("/core:/stable:/v1.31/deb/Release", "Origin: obs"),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&releases)
            .await;
    }

    // A real etcd for the snapshot.
    let work = std::env::temp_dir().join(format!("kup-kubeadm-example-{}", std::process::id()));
    std::fs::create_dir_all(work.join("manifests"))?;
    let client_port = free_port();
    let peer_port = free_port();
    let mut etcd = std::process::Command::new(etcd_binary())
        .arg(format!("--data-dir={}", work.join("etcd").display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
        ))
        .arg(format!(
            "--initial-cluster=default=http://127.0.0.1:{peer_port}"
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot start etcd (install etcd-server, or run scripts/test once): {e}")
        })?;
    let result = run_simulated(&sim, &releases, &work, client_port, &cps, &workers).await;
    let _ = etcd.kill();
    let _ = etcd.wait();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Builds the provider on the shims and runs the upgrade: backup, control plane, workers.
async fn run_simulated(
    sim: &kup_mocks::k8s::SimHandle,
    releases: &MockServer,
    work: &std::path::Path,
    etcd_port: u16,
    cps: &[&str],
    workers: &[&str],
) -> Res<ClusterInfo> {
    let shims = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../providers/kubeadm/tests/shims");
    let state = work.join("nodes");
    let mut yaml = "cluster: example\ncontrol_plane:\n".to_string();
    for (i, node) in cps.iter().chain(workers.iter()).enumerate() {
        if i == cps.len() {
            yaml.push_str("workers:\n");
        }
        let dir = state.join(node);
        std::fs::create_dir_all(dir.join("pkg"))?;
        let repo = dir.join("kubernetes.list");
        std::fs::write(
            &repo,
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n",
        )?;
        std::fs::write(dir.join("repo-file"), repo.display().to_string())?;
        for p in ["kubeadm", "kubelet", "kubectl"] {
            std::fs::write(dir.join("pkg").join(p), "1.30.6")?;
        }
        if cps.contains(node) {
            std::fs::write(dir.join("role"), "control-plane")?;
            std::fs::write(dir.join("apiserver"), "1.30.6")?;
        }
        yaml.push_str(&format!(
            "  - {{name: {node}, local: true, repo_file: {}}}\n",
            repo.display()
        ));
    }
    let inventory = Inventory::parse(&yaml, None)?;
    let mut settings = KubeadmSettings {
        releases: ReleaseSettings {
            markers_url: format!("{}/release", releases.uri()),
            packages_url: format!("{}/core:/stable:", releases.uri()),
            ..ReleaseSettings::default()
        },
        backup_dir: work.join("backups"),
        ..KubeadmSettings::default()
    };
    settings.etcd.endpoint = format!("http://127.0.0.1:{etcd_port}");
    settings.etcd.data_dir = work.join("etcd").display().to_string();
    settings.etcd.manifest_dir = work.join("manifests").display().to_string();
    settings.etcd.node_work_dir = work.join("node-work").display().to_string();
    settings.etcd.kubelet_config = work.join("kubelet-config.yaml").display().to_string();
    let client = sim.client()?;
    let drainer = Drainer::new(client.clone());
    let mut provider = KubeadmProvider::new(inventory, client, settings)?
        .with_drain(Arc::new(KubeDrain::new(
            drainer.clone(),
            DrainOptions::default(),
        )))
        .with_events(Arc::new(|e: kup_core::Event| {
            println!("  event: {}", serde_json::to_string(&e).unwrap_or_default())
        }));
    for node in cps.iter().chain(workers.iter()) {
        let exec = LocalExecutor::new(*node)
            .with_path_prefix(shims.display().to_string())
            .with_env("KUP_SIM_NODE", *node)
            .with_env("KUP_SHIM_STATE", state.display().to_string())
            .with_env("KUP_SIM_URL", sim.url());
        provider = provider.with_executor(node, Arc::new(exec))?;
    }

    // etcd answers once it is up.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", etcd_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let info = provider.cluster().await?;
    println!(
        "cluster {} at {}; pools: {:?}",
        info.name,
        info.control_plane,
        info.node_pools
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
    );
    let backup = provider.backup(&BackupOptions::default()).await?;
    println!(
        "verified etcd snapshot {} ({} bytes, revision {:?}, hash {:?})",
        backup.location, backup.size_bytes, backup.revision, backup.store_hash
    );
    let target: KubeVersion = "1.31".parse()?;
    let op = provider
        .upgrade_control_plane(&target, &ControlPlaneOptions::default())
        .await?;
    println!("control plane: {}", until_terminal(&provider, &op).await?);
    for w in workers {
        drainer.cordon(w).await?;
        drainer
            .drain(w, &DrainOptions::default(), &kup_core::NoEvents)
            .await?;
        let op = provider.upgrade_node("workers", w, &target).await?;
        let status = until_terminal(&provider, &op).await?;
        if status != OperationStatus::Succeeded {
            return Err(format!("{w}: {status}").into());
        }
        drainer.uncordon(w).await?;
        println!("{w}: upgraded");
    }
    let info = provider.cluster().await?;
    println!(
        "cluster {} at {}; pools: {:?}",
        info.name,
        info.control_plane,
        info.node_pools
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
    );
    Ok(info)
}

/// Polls an operation until it ends (the provider may finish it in the start call, or advance
/// it node by node on every poll).
async fn until_terminal(provider: &KubeadmProvider, op: &Operation) -> Res<OperationStatus> {
    loop {
        let status = provider.poll(op).await?;
        if status.is_terminal() {
            return Ok(status.into_result(op)?);
        }
        println!("  {op}: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(23790)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn etcd_available() -> bool {
        let found = std::process::Command::new(etcd_binary())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            found || !ci,
            "etcd is required under CI: set KUP_ETCD or install it"
        );
        if !found {
            eprintln!("skipping: etcd not found (set KUP_ETCD or run scripts/test once)");
        }
        found
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upgrades_the_simulated_cluster_to_1_31() {
        if !etcd_available() {
            return;
        }
        let info = simulated().await.unwrap();
        let target = KubeVersion::parse("1.31.2").unwrap();
        assert_eq!(info.control_plane, target);
        for pool in &info.node_pools {
            assert_eq!(pool.version, target, "{}", pool.name);
        }
    }
}
