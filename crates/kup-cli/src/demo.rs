//! `kup demo`: the whole job on a built-in simulated EKS cluster (or, with `--provider`, a
//! simulated GKE, AKS or kubeadm one), no cloud account needed.
//!
//! It starts the Kubernetes simulator (two node pools, system and app workloads under
//! PodDisruptionBudgets) and the cloud mock wired to it, then runs what an operator would:
//! versions → pre-flight → plan → the upgrade through the provider and the engine (journal
//! and lease in the simulated cluster) → validation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kup_engine::EngineOptions;
use kup_engine::backoff::BackoffPolicy;
use kup_kube::validate::ValidationOptions;
use kup_mocks::eks::{EksConfig, EksMock, demo_scenario};
#[cfg(feature = "gke")]
use kup_mocks::gke::{GkeConfig, GkeMock};
use kup_mocks::k8s::{DeletedVia, Scenario, SimConfig, SimHandle, Simulator};

use crate::args::{Cli, DemoArgs, PreflightArgs, RunArgs, UpgradeArgs, ValidateArgs};
use crate::commands;
use crate::error::{CliError, Result};
use crate::target::Target;

#[cfg(feature = "aks")]
mod aks;
mod etcd;
mod kubeadm;
mod node;

pub(crate) fn say(cli: &Cli, text: impl AsRef<str>) {
    if cli.output == crate::args::Format::Table {
        println!("{}", text.as_ref());
    } else {
        eprintln!("{}", text.as_ref());
    }
}

/// Runs the demo.
pub async fn run(cli: &Cli, a: &DemoArgs) -> Result<()> {
    if !(a.speed.is_finite() && (1.0..=1000.0).contains(&a.speed)) {
        return Err(CliError::usage(
            "--speed",
            format!("{} must be between 1 and 1000", a.speed),
        ));
    }
    let gke = match cli.cluster.provider.as_deref() {
        None | Some("eks") => false,
        #[cfg(feature = "gke")]
        Some("gke") => true,
        #[cfg(feature = "aks")]
        Some("aks") => return aks::run(cli, a).await,
        Some("kubeadm") => return kubeadm::run(cli, a).await,
        Some(other) => {
            return Err(CliError::usage(
                "--provider",
                format!(
                    "the demo drives eks, gke, aks and kubeadm; {other} has no demo (a \
                     provider left out of this build has none either)"
                ),
            ));
        }
    };
    let started = Instant::now();
    let (cloud, scenario): (&str, Scenario) = if gke {
        ("GKE", demo_gke_scenario())
    } else {
        ("EKS", demo_scenario())
    };
    say(
        cli,
        if gke {
            "kup demo: a simulated GKE cluster `demo` at 1.33 (node pools default-pool and apps,\nadd-ons managed by GKE; app `shop` under PodDisruptionBudgets)\n"
        } else {
            "kup demo: a simulated EKS cluster `demo` at 1.33 (node groups system and apps,\nadd-ons vpc-cni, coredns, kube-proxy; app `shop` under PodDisruptionBudgets)\n"
        },
    );
    let sim = Simulator::start(
        scenario,
        SimConfig::default()
            .time_scale(a.speed)
            .pod_start_delay(Duration::from_secs(2))
            .pod_ready_delay(Duration::from_secs(3))
            .pod_shutdown_delay(Duration::from_secs(2))
            .node_ready_delay(Duration::from_secs(20)),
    )
    .await?;
    let kubeconfig = a.kubeconfig_out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("kup-demo-{}.kubeconfig", std::process::id()))
    });
    sim.write_kubeconfig(&kubeconfig)?;
    say(
        cli,
        format!(
            "simulated cluster API: {}\nwatch it while it runs:  kubectl --kubeconfig {} get nodes,pods -A -w\n",
            sim.url(),
            kubeconfig.display()
        ),
    );
    let client = sim.client()?;
    let (mock, provider) = start_cloud(gke, a.speed, &sim, &client).await?;
    let target = Target {
        provider,
        kube_config: sim.client_config(),
        kube: client,
        warnings: Vec::new(),
    };
    let pools = if gke { "node pools" } else { "node groups" };
    tour(cli, a, &target, &sim, started, cloud, pools).await?;
    mock.shutdown();
    sim.shutdown().await;
    if a.kubeconfig_out.is_none() {
        let _ = std::fs::remove_file::<PathBuf>(kubeconfig);
    }
    Ok(())
}

/// What the demo shows on any simulated cluster: versions, pre-flight, plan, the upgrade and
/// validation, then a summary (`provider` names the cloud, `pools` what it calls its pools).
pub(crate) async fn tour(
    cli: &Cli,
    a: &DemoArgs,
    target: &Target,
    sim: &kup_mocks::k8s::SimHandle,
    started: Instant,
    provider: &str,
    pools: &str,
) -> Result<()> {
    // Let the workloads settle before checking them.
    sim.wait_for(Duration::from_secs(120), "demo workloads Ready", |s| {
        s.list("pods", None).iter().all(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
    })
    .await?;

    say(cli, format!("== 1. versions {provider} offers"));
    commands::versions(cli, target).await?;
    say(cli, format!("\n== 2. pre-flight for {}", a.to));
    let pre = PreflightArgs {
        to: Some(a.to.clone()),
        manifests: Vec::new(),
        no_helm: false,
    };
    commands::preflight(cli, target, &pre).await?;
    say(cli, format!("\n== 3. plan to {}", a.to));
    let plan_args = crate::args::PlanArgs {
        to: a.to.clone(),
        control_plane_only: false,
        pools: Vec::new(),
        save: None,
    };
    commands::plan(cli, target, &plan_args).await?;

    say(
        cli,
        "\n== 4. upgrade (journal and lease in kube-system of the simulated cluster)",
    );
    let up = UpgradeArgs {
        to: Some(a.to.clone()),
        yes: true,
        dry_run: false,
        control_plane_only: false,
        pools: Vec::new(),
        run: RunArgs::default(),
    };
    demo_upgrade(cli, target, &up).await?;

    say(cli, "\n== 5. validation of the upgraded cluster");
    commands::validate(
        cli,
        target,
        &ValidateArgs {
            passes: 2,
            timeout: "5m".into(),
        },
    )
    .await?;

    let info = target.provider.cluster().await?;
    let evictions = sim
        .pod_deletions()
        .iter()
        .filter(|d| d.via == DeletedVia::Eviction)
        .count();
    let other = sim
        .pod_deletions()
        .iter()
        .filter(|d| d.via != DeletedVia::Eviction && d.namespace == "shop")
        .count();
    say(
        cli,
        format!(
            "\ndone in {:.0}s: control plane {}, {pools} {}, {} pods moved through the eviction API, {} app pods deleted any other way",
            started.elapsed().as_secs_f64(),
            info.control_plane,
            info.node_pools
                .iter()
                .map(|p| format!("{}={}", p.name, p.version))
                .collect::<Vec<_>>()
                .join(" "),
            evictions,
            other
        ),
    );
    Ok(())
}

/// The upgrade with demo-speed validation and polling; otherwise `kup upgrade`'s code path.
async fn demo_upgrade(cli: &Cli, t: &Target, a: &UpgradeArgs) -> Result<()> {
    let mut options: EngineOptions = commands::engine_options(&a.run)?;
    let validation = ValidationOptions {
        passes: 2,
        interval: Duration::from_millis(500),
        failure_interval: Duration::from_millis(500),
        timeout: Duration::from_secs(300),
        ..ValidationOptions::default()
    };
    options.validation = validation.clone();
    options.gate = validation;
    options.polling = BackoffPolicy::fast();
    commands::upgrade_with(cli, t, a, options).await
}

/// The cloud mock the demo runs against, kept alive for the run.
enum DemoMock {
    Eks(EksMock),
    #[cfg(feature = "gke")]
    Gke(GkeMock),
}

impl DemoMock {
    fn shutdown(&self) {
        match self {
            Self::Eks(m) => m.shutdown(),
            #[cfg(feature = "gke")]
            Self::Gke(m) => m.shutdown(),
        }
    }
}

#[cfg(feature = "gke")]
fn demo_gke_scenario() -> Scenario {
    kup_mocks::gke::demo_scenario()
}

#[cfg(not(feature = "gke"))]
fn demo_gke_scenario() -> Scenario {
    demo_scenario()
}

/// Starts the cloud mock wired to the simulator and the provider pointed at it.
async fn start_cloud(
    gke: bool,
    speed: f64,
    sim: &SimHandle,
    client: &kube::Client,
) -> Result<(DemoMock, Arc<dyn kup_core::UpgradeProvider>)> {
    #[cfg(feature = "gke")]
    if gke {
        let mock =
            GkeMock::start(GkeConfig::demo().time_scale(speed * 8.0), Some(sim.clone())).await?;
        let provider = kup_gke::GkeBuilder::new()
            .project("demo-project")
            .location("us-central1")
            .cluster("demo")
            .endpoint(mock.endpoint())
            .anonymous_credentials()
            .kube_client(client.clone())
            .build()
            .await
            .map_err(|e| {
                let message = e.to_string();
                let category = kup_core::Error::from(e).category();
                CliError::Provider { category, message }
            })?;
        return Ok((DemoMock::Gke(mock), Arc::new(provider)));
    }
    let _ = gke;
    let mut eks = EksConfig::demo().time_scale(speed * 8.0);
    eks.eviction_timeout = Duration::from_secs(15 * 60);
    let mock = EksMock::start(eks, Some(sim.clone())).await?;
    let provider = kup_eks::EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDDEMO", "demo-secret-key")
        .kube_client(client.clone())
        .build()
        .await?;
    Ok((DemoMock::Eks(mock), Arc::new(provider)))
}
