//! `kup demo --provider kubeadm`: the kubeadm provider on the simulator, its nodes played in
//! process ([`super::node::SimNode`]): control-plane nodes one at a time (`kubeadm upgrade
//! apply`, then `upgrade node`), workers cordoned, drained, upgraded and uncordoned by the
//! engine, and a verified etcd snapshot before every hop, with a real etcd when one is
//! installed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kup_core::Event;
use kup_kube::drain::{DrainOptions, Drainer};
use kup_kubeadm::drain::KubeDrain;
use kup_kubeadm::inventory::Inventory;
use kup_kubeadm::versions::ReleaseSettings;
use kup_kubeadm::{KubeadmProvider, KubeadmSettings};
use kup_mocks::k8s::{DeletedVia, Node, Pdb, Pool, Scenario, SimConfig, Simulator, Workload};
use kup_mocks::releases::ReleaseMock;
use serde_json::json;

use super::etcd::{RealEtcd, SimulatedEtcd, find};
use super::node::SimNode;
use super::{demo_upgrade, say};
use crate::args::{Cli, DemoArgs, PreflightArgs, RunArgs, UpgradeArgs, ValidateArgs};
use crate::commands;
use crate::error::{CliError, Result};
use crate::target::Target;

const START: &str = "1.33.5";
const RELEASES: [&str; 5] = ["1.33.4", "1.33.5", "1.34.2", "1.35.0", "1.35.1"];
const CONTROL_PLANE: [&str; 2] = ["cp-1", "cp-2"];
const WORKERS: [&str; 3] = ["w-1", "w-2", "w-3"];

/// The simulated kubeadm cluster: two control-plane nodes with their API servers' mirror
/// pods, three workers, and the app `shop` under PodDisruptionBudgets.
fn scenario() -> Scenario {
    let mut s = Scenario::new().version(format!("v{START}"));
    for cp in CONTROL_PLANE {
        s = s
            .node(
                Node::new(cp)
                    .control_plane()
                    .kubelet_version(format!("v{START}")),
            )
            .object(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("kube-apiserver-{cp}"), "namespace": "kube-system",
                    "labels": {"component": "kube-apiserver", "tier": "control-plane"},
                    "annotations": {"kubernetes.io/config.mirror": "a1b2c3"}},
                "spec": {"nodeName": cp, "containers": [{"name": "kube-apiserver",
                    "image": format!("registry.k8s.io/kube-apiserver:v{START}")}]}
            }));
    }
    // Workers w-1..w-3.
    s.pool(
        Pool::new("workers", WORKERS.len() as u32)
            .prefix("w")
            .kubelet_version(format!("v{START}")),
    )
    .workload(
        Workload::deployment("shop", "web")
            .replicas(3)
            .image("nginx:1.27")
            .pool("workers"),
    )
    .pdb(
        Pdb::new("shop", "web")
            .match_label("app", "web")
            .min_available(2),
    )
    .workload(
        Workload::deployment("shop", "api")
            .replicas(2)
            .image("ghcr.io/example/api:2.4.1")
            .pool("workers"),
    )
    .pdb(
        Pdb::new("shop", "api")
            .match_label("app", "api")
            .max_unavailable(1),
    )
}

/// The control-plane hop's node steps (the engine shows the workers' itself), on stderr like
/// the engine's progress lines.
fn control_plane_lines(event: Event) {
    let line = match event {
        Event::NodeCordoned { node, .. } => format!("cordoned {node}"),
        Event::NodeUpgraded { node, version } => {
            format!("{node}: kubeadm upgrade done, kubelet {version}")
        }
        Event::NodeUncordoned { node } => format!("uncordoned {node}"),
        _ => return,
    };
    eprintln!("      {line}");
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// Runs the kubeadm demo.
pub async fn run(cli: &Cli, a: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let work = std::env::temp_dir().join(format!("kup-demo-kubeadm-{}", std::process::id()));
    let result = demo(cli, a, &work, started).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn demo(cli: &Cli, a: &DemoArgs, work: &Path, started: Instant) -> Result<()> {
    say(
        cli,
        format!(
            "kup demo: a simulated kubeadm cluster `demo` at {START} (control-plane nodes cp-1, \
             cp-2; workers w-1..w-3;\napp `shop` under PodDisruptionBudgets), its nodes played \
             in process: kubeadm, apt and the kubelet\n"
        ),
    );
    let sim = Simulator::start(
        scenario(),
        SimConfig::default()
            .time_scale(a.speed)
            .pod_start_delay(Duration::from_secs(2))
            .pod_ready_delay(Duration::from_secs(3))
            .pod_shutdown_delay(Duration::from_secs(2))
            .kubelet_restart_delay(Duration::from_secs(10))
            .node_ready_delay(Duration::from_secs(20)),
    )
    .await?;
    let kubeconfig = a
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| work.join("kubeconfig"));
    if let Some(dir) = kubeconfig.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    sim.write_kubeconfig(&kubeconfig)?;
    say(
        cli,
        format!(
            "simulated cluster API: {}\nwatch it while it runs:  kubectl --kubeconfig {} get nodes,pods -A -w\n",
            sim.url(),
            kubeconfig.display()
        ),
    );
    let releases = ReleaseMock::start(&RELEASES).await?;

    // etcd: the real one when installed, else the simulator's store, said as such.
    let etcd_bin = find("KUP_ETCD", "etcd");
    let etcdctl = find("KUP_ETCDCTL", "etcdctl");
    let mut real = None;
    let note = match (&etcd_bin, &etcdctl) {
        (Some(etcd), Some(ctl)) => {
            let data = work.join("etcd-data");
            real = Some(RealEtcd::start(etcd, ctl, &data).await?);
            format!(
                "etcd: a real etcd ({}) on loopback; snapshots are taken and verified with {}",
                etcd.display(),
                ctl.display()
            )
        }
        _ => {
            let missing: Vec<&str> = [("etcd", &etcd_bin), ("etcdctl", &etcdctl)]
                .into_iter()
                .filter(|(_, found)| found.is_none())
                .map(|(name, _)| name)
                .collect();
            format!(
                "etcd: {} not installed, so the snapshots are of the simulator's own store \
                 (checksummed and verified the same way); install etcd-server and etcd-client, \
                 or set KUP_ETCD and KUP_ETCDCTL, to take them with real etcd",
                missing.join(" and ")
            )
        }
    };
    say(cli, format!("{note}\n"));

    let mut settings = KubeadmSettings {
        releases: ReleaseSettings {
            markers_url: releases.markers_url(),
            packages_url: releases.packages_url(),
            ..ReleaseSettings::default()
        },
        backup_dir: work.join("backups"),
        node_ready_timeout: Duration::from_secs(300),
        ..KubeadmSettings::default()
    };
    let manifests = work.join("manifests");
    write(
        &manifests.join("kube-apiserver.yaml"),
        "kind: Pod\nspec: {}\n",
    )?;
    write(&manifests.join("etcd.yaml"), "kind: Pod\nspec: {}\n")?;
    let kubelet_config = work.join("kubelet-config.yaml");
    write(&kubelet_config, "kind: KubeletConfiguration\n")?;
    settings.etcd.endpoint = real
        .as_ref()
        .map_or_else(|| sim.url().to_string(), |e| e.endpoint.clone());
    settings.etcd.data_dir = work.join("etcd-data").display().to_string();
    settings.etcd.manifest_dir = manifests.display().to_string();
    settings.etcd.node_work_dir = work.join("node").display().to_string();
    settings.etcd.kubelet_config = kubelet_config.display().to_string();
    settings.etcd.local_tool = match &real {
        Some(_) => etcdctl.clone(),
        None => Some(super::etcd::write_local_status_tool(&work.join("tools"))?),
    };

    let mut inventory = String::from("cluster: demo\ncontrol_plane:\n");
    let mut repos = Vec::new();
    for (i, node) in CONTROL_PLANE.iter().chain(WORKERS.iter()).enumerate() {
        if i == CONTROL_PLANE.len() {
            inventory.push_str("workers:\n");
        }
        let repo = work.join("repos").join(format!("{node}.list"));
        write(
            &repo,
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
             https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n",
        )?;
        inventory.push_str(&format!(
            "  - {{name: {node}, local: true, package_manager: apt, repo_file: {}}}\n",
            repo.display()
        ));
        repos.push(repo);
    }
    let client = sim.client()?;
    let inventory = Inventory::parse(&inventory, None).map_err(CliError::from)?;
    let drain = commands::drain_options(None)?;
    let mut provider = KubeadmProvider::new(inventory, client.clone(), settings)
        .map_err(CliError::from)?
        .with_events(Arc::new(control_plane_lines))
        .with_drain(Arc::new(KubeDrain::new(
            Drainer::new(client.clone()),
            DrainOptions {
                timeout: Some(Duration::from_secs(300)),
                ..drain
            },
        )));
    let tool_dir: Option<PathBuf> = etcdctl
        .as_ref()
        .filter(|_| real.is_some())
        .and_then(|p| p.parent().map(Path::to_path_buf));
    for (i, (node, repo)) in CONTROL_PLANE
        .iter()
        .chain(WORKERS.iter())
        .zip(&repos)
        .enumerate()
    {
        let simulated_etcd = (i == 0 && real.is_none()).then(|| SimulatedEtcd::new(sim.clone()));
        // The upgraded API server records the new version in the real etcd, so each snapshot
        // holds the state it was taken at.
        let etcd_writer = real
            .as_ref()
            .zip(etcdctl.as_ref())
            .map(|(e, ctl)| (ctl.clone(), e.endpoint.clone()));
        let executor = SimNode::new(
            node,
            i < CONTROL_PLANE.len(),
            START,
            repo,
            sim.clone(),
            client.clone(),
            tool_dir.as_deref(),
            simulated_etcd,
        )
        .with_etcd_writer(etcd_writer);
        provider = provider
            .with_executor(node, Arc::new(executor))
            .map_err(CliError::from)?;
    }
    let provider = Arc::new(provider);
    let target = Target {
        provider: provider.clone(),
        kube_config: sim.client_config(),
        kube: client,
        warnings: Vec::new(),
    };
    sim.wait_for(Duration::from_secs(120), "demo workloads Ready", |s| {
        s.list("pods", None).iter().all(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
    })
    .await?;

    say(cli, "== 1. versions the release markers offer");
    commands::versions(cli, &target).await?;
    say(cli, format!("\n== 2. pre-flight for {}", a.to));
    commands::preflight(
        cli,
        &target,
        &PreflightArgs {
            to: Some(a.to.clone()),
            manifests: Vec::new(),
            no_helm: false,
        },
    )
    .await?;
    say(cli, format!("\n== 3. plan to {}", a.to));
    commands::plan(
        cli,
        &target,
        &crate::args::PlanArgs {
            to: a.to.clone(),
            control_plane_only: false,
            pools: Vec::new(),
            save: None,
        },
    )
    .await?;
    say(
        cli,
        "\n== 4. upgrade (etcd snapshot, control-plane nodes one at a time, workers one at a time;\n   journal and lease in kube-system of the simulated cluster)",
    );
    demo_upgrade(
        cli,
        &target,
        &UpgradeArgs {
            to: Some(a.to.clone()),
            yes: true,
            dry_run: false,
            control_plane_only: false,
            pools: Vec::new(),
            run: RunArgs::default(),
        },
    )
    .await?;
    say(cli, "\n== 5. validation of the upgraded cluster");
    commands::validate(
        cli,
        &target,
        &ValidateArgs {
            passes: 2,
            timeout: "5m".into(),
        },
    )
    .await?;

    let info = target.provider.cluster().await?;
    let deletions = sim.pod_deletions();
    let evictions = deletions
        .iter()
        .filter(|d| d.via == DeletedVia::Eviction)
        .count();
    let other = deletions
        .iter()
        .filter(|d| d.via != DeletedVia::Eviction && d.namespace == "shop")
        .count();
    let snapshots = std::fs::read_dir(work.join("backups"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
                .count()
        })
        .unwrap_or(0);
    let backup = provider.verified_backup().await;
    say(
        cli,
        format!(
            "\ndone in {:.0}s: control plane {}, pools {}, {} pods moved through the eviction API, {} app pods deleted any other way, {} etcd snapshot(s) verified{} ({})",
            started.elapsed().as_secs_f64(),
            info.control_plane,
            info.node_pools
                .iter()
                .map(|p| format!("{}={}", p.name, p.version))
                .collect::<Vec<_>>()
                .join(" "),
            evictions,
            other,
            snapshots,
            backup
                .map(|b| format!(", the last at revision {}", b.revision.unwrap_or_default()))
                .unwrap_or_default(),
            if real.is_some() {
                "real etcd"
            } else {
                "the simulator's store"
            }
        ),
    );
    if let Some(etcd) = real {
        etcd.stop().await;
    }
    sim.shutdown().await;
    drop(releases);
    Ok(())
}
