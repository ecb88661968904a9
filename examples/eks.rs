//! The EKS provider end to end.
//!
//! Simulated (default): the EKS mock and the Kubernetes simulator behind it, a cluster at
//! 1.33 with node groups `system` and `apps` and add-ons vpc-cni, coredns and kube-proxy,
//! upgraded to 1.35 by kup's engine, then validated. No AWS account needed.
//!
//! ```text
//! cargo run -p kup-examples --example eks
//! ```
//!
//! Real AWS: credentials from the default chain (environment, profile, SSO, web identity),
//! the cluster's kubeconfig as the current context. It prints the cluster, the offered
//! versions, the pre-flight findings and the plan; it changes nothing unless `--yes` is given.
//!
//! ```text
//! cargo run -p kup-examples --example eks -- --cluster prod-1 --region us-west-2 --target 1.34 [--yes]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use kup_core::{Event, KubeVersion, PlanOptions, UpgradeProvider};
use kup_eks::EksBuilder;
use kup_engine::backoff::BackoffPolicy;
use kup_engine::journal::ConfigMapJournalStore;
use kup_engine::lock::{LeaseLock, LeaseSettings};
use kup_engine::{Engine, EngineOptions, KubeCluster};
use kup_kube::validate::ValidationOptions;
use kup_mocks::eks::{EksConfig, EksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, Simulator};
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
            println!("      EKS update {} for {}", operation.id, operation.target)
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

async fn run(
    provider: Arc<dyn UpgradeProvider>,
    kube_config: kube::Config,
    target: &KubeVersion,
    options: EngineOptions,
    execute: bool,
) -> Res<()> {
    let info = provider.cluster().await?;
    println!(
        "cluster {} at {} ({} node groups, {} add-ons)",
        info.name,
        info.control_plane,
        info.node_pools.len(),
        info.addons.len()
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

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let target = KubeVersion::parse(&flag(&args, "--target").unwrap_or_else(|| "1.35".into()))?;
    if let Some(cluster) = flag(&args, "--cluster") {
        let mut b = EksBuilder::from_env().cluster_name(cluster);
        if let Some(region) = flag(&args, "--region") {
            b = b.region(region);
        }
        let kube_config = kube::Config::infer().await?;
        let provider = b
            .kube_client(kube::Client::try_from(kube_config.clone())?)
            .build()
            .await?;
        let yes = args.iter().any(|a| a == "--yes");
        return run(
            Arc::new(provider),
            kube_config,
            &target,
            EngineOptions::default(),
            yes,
        )
        .await;
    }

    let sim = Simulator::start(
        demo_scenario(),
        SimConfig::default()
            .time_scale(40.0)
            .node_ready_delay(Duration::from_secs(20)),
    )
    .await?;
    let mock = EksMock::start(EksConfig::demo().time_scale(320.0), Some(sim.clone())).await?;
    println!(
        "EKS mock at {}, Kubernetes simulator at {}",
        mock.endpoint(),
        sim.url()
    );
    let provider = EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDEXAMPLE", "example-secret")
        .kube_client(sim.client()?)
        .build()
        .await?;
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
    run(
        Arc::new(provider),
        sim.client_config(),
        &target,
        options,
        true,
    )
    .await?;
    let info = sim.nodes();
    for n in info {
        println!(
            "  node {} kubelet {}",
            n["metadata"]["name"].as_str().unwrap_or_default(),
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap_or_default()
        );
    }
    sim.shutdown().await;
    Ok(())
}
