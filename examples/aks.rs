//! The AKS provider end to end.
//!
//! Simulated (default): the ARM mock (over HTTPS, with its own CA) and the Kubernetes
//! simulator behind it, a cluster at 1.33.5 with a System pool `system` and a User pool `apps`
//! under PodDisruptionBudgets, upgraded to 1.35 by kup's engine, then validated. No Azure
//! subscription needed.
//!
//! ```text
//! cargo run -p kup-examples --example aks
//! ```
//!
//! Real Azure: credentials from the default chain (`az login`, a service principal in
//! AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, workload or managed identity), the
//! cluster's kubeconfig as the current context (`az aks get-credentials`). It prints the
//! cluster, the offered versions, the pre-flight findings and the plan; it changes nothing
//! unless `--yes` is given.
//!
//! ```text
//! cargo run -p kup-examples --example aks -- --subscription SUB --resource-group rg-prod \
//!     --cluster prod-1 --target 1.34 [--yes]
//! ```
//!
//! Without flags the settings come from AZURE_SUBSCRIPTION_ID, KUP_AKS_RESOURCE_GROUP,
//! KUP_AKS_CLUSTER and KUP_TARGET. `cargo test -p kup-examples --example aks` runs the
//! simulated mode to the end and checks where it ended.

use std::sync::Arc;
use std::time::Duration;

use kup_aks::{AksBuilder, AksSettings};
use kup_core::{ClusterInfo, Event, KubeVersion, PlanOptions, StuckDrainPolicy, UpgradeProvider};
use kup_engine::backoff::BackoffPolicy;
use kup_engine::journal::ConfigMapJournalStore;
use kup_engine::lock::{LeaseLock, LeaseSettings};
use kup_engine::{Engine, EngineOptions, KubeCluster};
use kup_kube::validate::ValidationOptions;
use kup_mocks::aks::{AksConfig, AksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use tokio_util::sync::CancellationToken;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Shows what the engine does, one line per step and per AKS operation.
fn show(e: Event) {
    match e {
        Event::StepStarted { step, description } => println!("  [{step}] {description}"),
        Event::StepFinished { step, outcome, .. } => println!("  [{step}] {outcome:?}"),
        Event::OperationStarted {
            operation,
            reattached,
        } => println!(
            "      ARM operation {} on {}{}",
            operation.id,
            operation.target,
            if reattached { " (re-attached)" } else { "" }
        ),
        _ => {}
    }
}

/// Reads the cluster, the offered versions, pre-flight and the plan to `target`; runs the plan
/// when `execute`, with its journal and lock in the cluster.
async fn upgrade(
    aks: Arc<dyn UpgradeProvider>,
    kube_config: kube::Config,
    target: &KubeVersion,
    options: EngineOptions,
    execute: bool,
) -> Res<()> {
    let info = aks.cluster().await?;
    let pools: Vec<String> = info
        .node_pools
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    println!(
        "managed cluster {} at {} (pools {})",
        info.name,
        info.control_plane,
        pools.join(" ")
    );
    let offered: Vec<String> = aks
        .available_versions()
        .await?
        .iter()
        .map(|v| format!("{} ({})", v.version, v.support))
        .collect();
    println!("AKS offers {}", offered.join(", "));
    for f in aks.preflight(target).await? {
        println!("  pre-flight {} {}: {}", f.severity, f.code, f.message);
    }
    let plan = kup_engine::planning::plan_for(aks.as_ref(), target, PlanOptions::default()).await?;
    println!("{plan}");
    if !execute {
        println!("nothing changed (pass --yes to run the plan)");
        return Ok(());
    }
    let client = kube::Client::try_from(kube_config.clone())?;
    let cluster = aks.cluster_name().to_string();
    let report = Engine::builder(aks)
        .kube(KubeCluster::from_config(kube_config)?)
        .journal(Arc::new(ConfigMapJournalStore::new(
            client.clone(),
            "kube-system",
            &cluster,
        )))
        .lock(Arc::new(LeaseLock::new(
            client,
            &cluster,
            LeaseSettings::default(),
        )?))
        .events(Arc::new(show))
        .options(options)
        .build()?
        .run(&plan, &CancellationToken::new())
        .await?;
    println!("outcome: {:?}", report.outcome);
    Ok(())
}

/// The simulated mode, `speed` times the demo pace. Returns the cluster as the provider sees
/// it afterwards and the simulator.
async fn simulated(target: &KubeVersion, speed: f64) -> Res<(ClusterInfo, SimHandle)> {
    let sim = Simulator::start(
        demo_scenario(),
        SimConfig::default()
            .time_scale(40.0 * speed)
            .node_ready_delay(Duration::from_secs(20)),
    )
    .await?;
    let mock = AksMock::start(
        AksConfig::demo().time_scale(320.0 * speed),
        Some(sim.clone()),
    )
    .await?;
    println!(
        "ARM mock at {}, Kubernetes simulator at {}",
        mock.endpoint(),
        sim.url()
    );
    let (subscription, resource_group) = mock.coordinates();
    let aks = Arc::new(
        AksBuilder::new()
            .subscription(subscription)
            .resource_group(resource_group)
            .cluster("demo")
            .endpoint(mock.endpoint())
            .ca_certificate_pem(mock.ca_pem())
            .static_token("example-token")
            .settings(AksSettings {
                drain_timeout: Some(Duration::from_secs(10 * 60)),
                on_stuck_drain: StuckDrainPolicy::CordonAndContinue,
                ..AksSettings::default()
            })
            .build()?,
    );
    let validation = ValidationOptions {
        passes: 2,
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(300),
        ..ValidationOptions::default()
    };
    let options = EngineOptions {
        validation: validation.clone(),
        gate: validation,
        polling: BackoffPolicy::fast(),
        ..EngineOptions::default()
    };
    upgrade(aks.clone(), sim.client_config(), target, options, true).await?;
    Ok((aks.cluster().await?, sim))
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let setting = |name: &str, env: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    };
    let target =
        KubeVersion::parse(&setting("--target", "KUP_TARGET").unwrap_or_else(|| "1.35".into()))?;
    let Some(cluster) = setting("--cluster", "KUP_AKS_CLUSTER") else {
        let (_, sim) = simulated(&target, 1.0).await?;
        sim.shutdown().await;
        return Ok(());
    };
    let mut b = AksBuilder::from_env().cluster(cluster);
    if let Some(s) = setting("--subscription", "AZURE_SUBSCRIPTION_ID") {
        b = b.subscription(s);
    }
    if let Some(rg) = setting("--resource-group", "KUP_AKS_RESOURCE_GROUP") {
        b = b.resource_group(rg);
    }
    let kube_config = kube::Config::infer().await?;
    let yes = args.iter().any(|a| a == "--yes");
    upgrade(
        Arc::new(b.build()?),
        kube_config,
        &target,
        EngineOptions::default(),
        yes,
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upgrades_the_mock_cluster_to_1_35() {
        let target = KubeVersion::parse("1.35").unwrap();
        let (info, sim) = simulated(&target, 4.0).await.unwrap();
        assert!(info.control_plane.same_minor(&target), "{info:?}");
        assert!(
            info.node_pools
                .iter()
                .all(|p| p.version.same_minor(&target)),
            "{info:?}"
        );
        for n in sim.nodes() {
            let kubelet = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap();
            assert!(kubelet.starts_with("v1.35."), "{kubelet}");
        }
        sim.shutdown().await;
    }
}
