//! The GKE provider end to end.
//!
//! Simulated (default): the GKE mock and the Kubernetes simulator behind it, a cluster at
//! 1.33 with node pools `default-pool` and `apps` (add-ons managed by GKE), upgraded to 1.35
//! by kup's engine, then validated. No Google Cloud account needed.
//!
//! ```text
//! cargo run -p kup-examples --example gke
//! ```
//!
//! Real GKE: Application Default Credentials (`gcloud auth application-default login`,
//! `GOOGLE_APPLICATION_CREDENTIALS`, the metadata server), the cluster's kubeconfig as the
//! current context. It prints the cluster, the offered versions, the pre-flight findings and
//! the plan; it changes nothing unless `--yes` is given.
//!
//! ```text
//! cargo run -p kup-examples --example gke -- --project my-project --location us-central1 --cluster prod-1 --target 1.34 [--yes]
//! ```
//!
//! The same settings come from the environment when no flag is given: `GOOGLE_CLOUD_PROJECT`,
//! `KUP_GKE_LOCATION`, `KUP_GKE_CLUSTER`, `KUP_TARGET`. `cargo test -p kup-examples --example
//! gke` runs the simulated mode to the end and checks where it ended.

use std::sync::Arc;
use std::time::Duration;

use kup_core::{ClusterInfo, Event, KubeVersion, PlanOptions, UpgradeProvider};
use kup_engine::backoff::BackoffPolicy;
use kup_engine::journal::ConfigMapJournalStore;
use kup_engine::lock::{LeaseLock, LeaseSettings};
use kup_engine::{Engine, EngineOptions, KubeCluster};
use kup_gke::GkeBuilder;
use kup_kube::validate::ValidationOptions;
use kup_mocks::gke::{GkeConfig, GkeMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use tokio_util::sync::CancellationToken;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn print_event(e: Event) {
    match e {
        Event::StepStarted { step, description } => println!("  [{step}] {description}"),
        Event::StepFinished {
            step,
            outcome,
            message,
        } => {
            println!("  [{step}] {outcome:?}: {message}")
        }
        Event::OperationStarted { operation, .. } => {
            println!(
                "      GKE operation {} for {}",
                operation.id, operation.target
            )
        }
        Event::Finding { finding } => {
            println!(
                "      {} {}: {}",
                finding.severity, finding.code, finding.message
            )
        }
        _ => {}
    }
}

/// Prints the cluster, its versions, pre-flight findings and the plan to `target`; runs the
/// plan when `execute`.
async fn run(
    provider: Arc<dyn UpgradeProvider>,
    kube_config: kube::Config,
    target: &KubeVersion,
    options: EngineOptions,
    execute: bool,
) -> Res<()> {
    let info = provider.cluster().await?;
    println!(
        "cluster {} at {} ({} node pools, {})",
        info.name,
        info.control_plane,
        info.node_pools.len(),
        info.status.as_deref().unwrap_or("status unknown")
    );
    for v in provider.available_versions().await? {
        println!(
            "  offered {} {} (standard support ends {})",
            v.version,
            v.support,
            v.end_of_standard_support
                .map(|d| d.to_string())
                .unwrap_or_default()
        );
    }
    for f in provider.preflight(target).await? {
        println!("  pre-flight {} {}: {}", f.severity, f.code, f.message);
    }
    let plan =
        kup_engine::planning::plan_for(provider.as_ref(), target, PlanOptions::default()).await?;
    println!("{plan}");
    if !execute {
        println!("nothing changed (pass --yes to run the plan)");
        return Ok(());
    }
    let client = kube::Client::try_from(kube_config.clone())?;
    let name = provider.cluster_name().to_string();
    let engine = Engine::builder(provider)
        .kube(KubeCluster::from_config(kube_config)?)
        .journal(Arc::new(ConfigMapJournalStore::new(
            client.clone(),
            "kube-system",
            &name,
        )))
        .lock(Arc::new(LeaseLock::new(
            client,
            &name,
            LeaseSettings::default(),
        )?))
        .events(Arc::new(print_event))
        .options(options)
        .build()?;
    let report = engine.run(&plan, &CancellationToken::new()).await?;
    println!("outcome: {:?}", report.outcome);
    Ok(())
}

/// The simulated mode: the GKE mock with the Kubernetes simulator behind it, upgraded to
/// `target`. `speed` multiplies the mocks' clocks (the demo pace is 1). Returns the cluster
/// as the provider sees it afterwards, and the simulator for the caller to inspect.
async fn simulated(target: &KubeVersion, speed: f64) -> Res<(ClusterInfo, SimHandle)> {
    let sim = Simulator::start(
        demo_scenario(),
        SimConfig::default()
            .time_scale(40.0 * speed)
            .node_ready_delay(Duration::from_secs(20)),
    )
    .await?;
    let mock = GkeMock::start(
        GkeConfig::demo().time_scale(320.0 * speed),
        Some(sim.clone()),
    )
    .await?;
    println!(
        "GKE mock at {}, Kubernetes simulator at {}",
        mock.endpoint(),
        sim.url()
    );
    let provider = Arc::new(
        GkeBuilder::new()
            .project("demo-project")
            .location("us-central1")
            .cluster("demo")
            .endpoint(mock.endpoint())
            .anonymous_credentials()
            .kube_client(sim.client()?)
            .build()
            .await?,
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
    run(provider.clone(), sim.client_config(), target, options, true).await?;
    for n in sim.nodes() {
        println!(
            "  node {} kubelet {}",
            n["metadata"]["name"].as_str().unwrap_or_default(),
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap_or_default()
        );
    }
    Ok((provider.cluster().await?, sim))
}

/// The real mode: the cluster named on the command line or in `KUP_GKE_CLUSTER`.
async fn real(
    cluster: String,
    project: Option<String>,
    location: Option<String>,
    target: &KubeVersion,
    yes: bool,
) -> Res<()> {
    let mut b = GkeBuilder::from_env().cluster(cluster);
    if let Some(project) = project {
        b = b.project(project);
    }
    if let Some(location) = location {
        b = b.location(location);
    }
    let kube_config = kube::Config::infer().await?;
    let provider = b
        .kube_client(kube::Client::try_from(kube_config.clone())?)
        .build()
        .await?;
    run(
        Arc::new(provider),
        kube_config,
        target,
        EngineOptions::default(),
        yes,
    )
    .await
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let setting = |name: &str, env: &str| flag(&args, name).or_else(|| std::env::var(env).ok());
    let target =
        KubeVersion::parse(&setting("--target", "KUP_TARGET").unwrap_or_else(|| "1.35".into()))?;
    match setting("--cluster", "KUP_GKE_CLUSTER") {
        Some(cluster) => {
            let yes = args.iter().any(|a| a == "--yes");
            real(
                cluster,
                setting("--project", "GOOGLE_CLOUD_PROJECT"),
                setting("--location", "KUP_GKE_LOCATION"),
                &target,
                yes,
            )
            .await
        }
        None => {
            let (_, sim) = simulated(&target, 1.0).await?;
            sim.shutdown().await;
            Ok(())
        }
    }
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
