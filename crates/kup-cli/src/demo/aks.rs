//! `kup demo --provider aks`: the whole job on a built-in simulated AKS cluster, no Azure
//! subscription needed.
//!
//! It starts the Kubernetes simulator (a System pool `system` and a User pool `apps`, system
//! and app workloads under PodDisruptionBudgets) and the ARM mock wired to it (over HTTPS with
//! its own CA), then walks the same tour as the EKS demo through the AKS provider.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kup_mocks::aks::{AksConfig, AksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, Simulator};

use crate::args::{Cli, DemoArgs};
use crate::demo::{say, tour};
use crate::error::Result;
use crate::target::Target;

/// Runs the AKS demo (the speed was checked by the caller).
pub async fn run(cli: &Cli, a: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    say(
        cli,
        "kup demo: a simulated AKS cluster `demo` at 1.33.5 (System pool system, User pool apps;\napp `shop` under PodDisruptionBudgets)\n",
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
        std::env::temp_dir().join(format!("kup-demo-aks-{}.kubeconfig", std::process::id()))
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
    let mock = AksMock::start(
        AksConfig::demo().time_scale(a.speed * 8.0),
        Some(sim.clone()),
    )
    .await?;
    let (subscription, resource_group) = mock.coordinates();
    let client = sim.client()?;
    let provider = kup_aks::AksBuilder::new()
        .subscription(subscription)
        .resource_group(resource_group)
        .cluster("demo")
        .endpoint(mock.endpoint())
        .ca_certificate_pem(mock.ca_pem())
        .static_token("demo-token")
        .kube_client(client.clone())
        .build()?;
    let target = Target {
        provider: Arc::new(provider),
        kube_config: sim.client_config(),
        kube: client,
        warnings: Vec::new(),
    };
    tour(cli, a, &target, &sim, started, "AKS", "agent pools").await?;
    mock.shutdown();
    sim.shutdown().await;
    if a.kubeconfig_out.is_none() {
        let _ = std::fs::remove_file::<PathBuf>(kubeconfig);
    }
    Ok(())
}
