//! kup's engine embedded in a program that consumes its events in code.
//!
//! `Tally` is an [`EventSink`]: it counts every event by kind, prints the step boundaries and
//! the provider operations as they happen, and the program reads the counts at the end (a
//! platform team would feed its own dashboards or chat bot the same way). The upgrade runs on
//! kup's reference provider over the Kubernetes simulator: a control plane at 1.31, a pool
//! kup rolls and a pool the provider rolls, workloads under PodDisruptionBudgets.
//!
//! ```text
//! cargo run -p kup-examples --example embed_engine [-- --target 1.33.2]
//! ```
//!
//! Against a real EKS cluster: `KUP_EKS_CLUSTER=prod-1 AWS_REGION=us-west-2` (credentials from
//! the AWS default chain, the cluster's kubeconfig as the current context). The engine then
//! does a dry run (every precondition checked, nothing changed) and the same sink counts its
//! events; `--yes` runs the plan for real. `KUP_TARGET` stands in for `--target`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kup_core::{Event, EventSink, KubeVersion, Outcome, PlanOptions, UpgradeProvider};
use kup_engine::journal::{ConfigMapJournalStore, MemoryJournalStore};
use kup_engine::lock::{LeaseLock, LeaseSettings, LocalLock};
use kup_engine::{Engine, EngineOptions, KubeCluster};
use kup_tests::sim::{SimCluster, fast_options, standard};
use tokio_util::sync::CancellationToken;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Counts events by kind and prints the ones a person watching wants to see.
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<String, usize>>,
}

impl Tally {
    fn counts(&self) -> BTreeMap<String, usize> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl EventSink for Tally {
    fn emit(&self, event: Event) {
        // The serialised form names the kind (`"event": "step_started"`).
        let kind = serde_json::to_value(&event)
            .ok()
            .and_then(|v| v["event"].as_str().map(String::from))
            .unwrap_or_else(|| "unknown".into());
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(kind).or_default() += 1;
        }
        match event {
            Event::StepStarted { step, description } => println!("[{step}] {description}"),
            Event::StepFinished {
                step,
                outcome,
                message,
            } => println!("[{step}] {outcome:?}: {message}"),
            Event::OperationStarted { operation, .. } => println!("    started {operation}"),
            _ => {}
        }
    }
}

/// Plans and runs `target` on a simulated cluster; the tally and the outcome.
async fn simulated(target: &KubeVersion) -> Res<(BTreeMap<String, usize>, Outcome)> {
    let cluster = SimCluster::start(standard()).await;
    let provider: Arc<dyn UpgradeProvider> = cluster.provider.clone();
    let plan =
        kup_engine::planning::plan_for(provider.as_ref(), target, PlanOptions::default()).await?;
    let tally = Arc::new(Tally::default());
    let engine = Engine::builder(provider)
        .kube(cluster.kube.clone())
        .journal(Arc::new(MemoryJournalStore::default()))
        .lock(Arc::new(LocalLock::new(&cluster.name)))
        .events(tally.clone())
        .options(fast_options())
        .build()?;
    let report = engine.run(&plan, &CancellationToken::new()).await?;
    cluster.sim.shutdown().await;
    Ok((tally.counts(), report.outcome))
}

/// A dry run (or with `yes` a run) on a real EKS cluster, counted by the same sink.
async fn real(cluster: String, target: &KubeVersion, yes: bool) -> Res<BTreeMap<String, usize>> {
    let config = kube::Config::infer().await?;
    let client = kube::Client::try_from(config.clone())?;
    let provider = Arc::new(
        kup_eks::EksBuilder::from_env()
            .cluster_name(&cluster)
            .kube_client(client.clone())
            .build()
            .await?,
    );
    let plan =
        kup_engine::planning::plan_for(provider.as_ref(), target, PlanOptions::default()).await?;
    let tally = Arc::new(Tally::default());
    let engine = Engine::builder(provider)
        .kube(KubeCluster::from_config(config)?)
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
        .events(tally.clone())
        .options(EngineOptions::default())
        .build()?;
    if yes {
        let report = engine.run(&plan, &CancellationToken::new()).await?;
        println!("outcome: {:?}", report.outcome);
    } else {
        let report = engine.dry_run(&plan).await?;
        println!("dry run: {} steps would run", report.steps.len());
    }
    Ok(tally.counts())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let target = args
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("KUP_TARGET").ok());
    let counts = match std::env::var("KUP_EKS_CLUSTER") {
        Ok(cluster) => {
            let target = KubeVersion::parse(target.as_deref().unwrap_or("1.34"))?;
            real(cluster, &target, args.iter().any(|a| a == "--yes")).await?
        }
        Err(_) => {
            let target = KubeVersion::parse(target.as_deref().unwrap_or("1.33.2"))?;
            let (counts, outcome) = simulated(&target).await?;
            println!("outcome: {outcome:?}");
            counts
        }
    };
    for (kind, n) in counts {
        println!("{n:5}  {kind}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sink_sees_every_step_start_and_finish() {
        let (counts, outcome) = simulated(&KubeVersion::parse("1.33.2").unwrap())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Succeeded);
        let started = counts.get("step_started").copied().unwrap_or(0);
        assert!(started > 0, "{counts:?}");
        assert_eq!(
            counts.get("step_finished").copied(),
            Some(started),
            "{counts:?}"
        );
        assert!(
            counts.get("operation_started").copied().unwrap_or(0) >= 2,
            "{counts:?}"
        );
    }
}
