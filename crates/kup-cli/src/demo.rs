//! `kup demo`: the whole job on a built-in simulated EKS cluster, no cloud account needed.
//!
//! It starts the Kubernetes simulator (node groups `system` and `apps`, system and app
//! workloads under PodDisruptionBudgets) and the EKS mock wired to it, then runs what an
//! operator would: versions → pre-flight → plan → the upgrade through the EKS provider and
//! the engine (journal and lease in the simulated cluster) → validation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kup_engine::EngineOptions;
use kup_engine::backoff::BackoffPolicy;
use kup_kube::validate::ValidationOptions;
use kup_mocks::eks::{EksConfig, EksMock, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, Simulator};

use crate::args::{Cli, DemoArgs, PreflightArgs, RunArgs, UpgradeArgs, ValidateArgs};
use crate::commands;
use crate::error::{CliError, Result};
use crate::target::Target;

pub(crate) fn say(cli: &Cli, text: impl AsRef<str>) {
    if cli.output == crate::args::Format::Table {
        println!("{}", text.as_ref());
    } else {
        eprintln!("{}", text.as_ref());
    }
}

/// Runs the demo.
pub async fn run(cli: &Cli, a: &DemoArgs) -> Result<()> {
    let aks = cli.cluster.provider.as_deref() == Some("aks");
    match cli.cluster.provider.as_deref() {
        None | Some("eks" | "aks") => {}
        Some(other) => {
            return Err(CliError::usage(
                "--provider",
                format!(
                    "the demo drives eks and aks; {other} is not available for the demo in this release \
                     (kubeadm needs real nodes over SSH; gke is not in this release)"
                ),
            ));
        }
    }
    if !(a.speed.is_finite() && (1.0..=1000.0).contains(&a.speed)) {
        return Err(CliError::usage(
            "--speed",
            format!("{} must be between 1 and 1000", a.speed),
        ));
    }
    if aks {
        return crate::demo_aks::run(cli, a).await;
    }
    let started = Instant::now();
    say(
        cli,
        "kup demo: a simulated EKS cluster `demo` at 1.33 (node groups system and apps,\nadd-ons vpc-cni, coredns, kube-proxy; app `shop` under PodDisruptionBudgets)\n",
    );
    let sim = Simulator::start(
        demo_scenario(),
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
    let mut eks = EksConfig::demo().time_scale(a.speed * 8.0);
    eks.eviction_timeout = Duration::from_secs(15 * 60);
    let mock = EksMock::start(eks, Some(sim.clone())).await?;
    let client = sim.client()?;
    let provider = kup_eks::EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDDEMO", "demo-secret-key")
        .kube_client(client.clone())
        .build()
        .await?;
    let target = Target {
        provider: Arc::new(provider),
        kube_config: sim.client_config(),
        kube: client,
        warnings: Vec::new(),
    };
    tour(cli, a, &target, &sim, started, "EKS", "node groups").await?;
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
