//! A provider kup does not ship, written in a hundred lines and run through kup's engine.
//!
//! `TinyProvider` implements [`UpgradeProvider`] for a made-up platform whose "API" is a
//! Kubernetes simulator: it keeps its operations in memory, moves the control plane by setting
//! the simulator's API server version, and upgrades a node (after kup has cordoned and drained
//! it) by restarting its kubelet at the new version. It declares exactly that in its
//! [`Capabilities`] (`node_upgrade`, nothing else), so kup plans kup-rolled pools, PDB-aware
//! drains and validation around it.
//!
//! ```text
//! cargo run -p kup-examples --example custom_provider [-- --target 1.32]
//! ```
//!
//! Against a real cluster (`KUBECONFIG`, or `--kubeconfig`): the provider reads it (control
//! plane from `/version`, pools from the `kup.dev/pool` node label) and the example prints
//! the plan it would run; nothing changes, because this provider's actions only drive the
//! simulator. `KUP_TARGET` stands in for `--target`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kup_core::{
    AvailableVersion, Capabilities, ClusterInfo, ControlPlaneOptions, Error, KubeVersion, NodePool,
    Operation, OperationStatus, OperationTarget, Outcome, PlanOptions, ProviderKind, Result,
    SupportStatus, UpgradeProvider,
};
use kup_engine::backoff::BackoffPolicy;
use kup_engine::journal::MemoryJournalStore;
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, EngineOptions, KubeCluster};
use kup_kube::validate::ValidationOptions;
use kup_mocks::k8s::{
    IntOrPercent, Pdb, Pool, Scenario, SimConfig, SimHandle, Simulator, Workload,
};
use tokio_util::sync::CancellationToken;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The node label naming a node's pool on this platform.
const POOL_LABEL: &str = "kup.dev/pool";

/// A provider for the "tiny" platform.
struct TinyProvider {
    name: String,
    client: kube::Client,
    /// The platform's API; `None` on a real cluster, where the provider only reads.
    platform: Option<SimHandle>,
    /// Operations started: id → what it moves and to which version.
    ops: Mutex<BTreeMap<String, (OperationTarget, KubeVersion)>>,
}

impl std::fmt::Debug for TinyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TinyProvider {
    fn platform(&self) -> Result<&SimHandle> {
        self.platform.as_ref().ok_or_else(|| {
            Error::precondition(
                "the tiny platform drives only its simulator; this cluster is read-only",
            )
        })
    }

    fn start(&self, target: OperationTarget, to: &KubeVersion) -> Result<Operation> {
        let mut ops = self
            .ops
            .lock()
            .map_err(|_| Error::precondition("state poisoned"))?;
        let id = format!("tiny-{}", ops.len() + 1);
        ops.insert(id.clone(), (target.clone(), to.clone()));
        Ok(Operation::new(self.kind(), id, target).with_version(to))
    }

    async fn nodes(&self) -> Result<Vec<Node>> {
        let api: Api<Node> = Api::all(self.client.clone());
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(provider_error)
    }
}

/// Kubernetes API errors mapped once, by kup's classifier: a 404 is `NotFound`, a 503 is
/// retried, a certificate failure says so.
fn provider_error(e: kube::Error) -> Error {
    kup_kube::kube_error::to_core_error(e)
}

fn kubelet(node: &Node) -> Option<KubeVersion> {
    let info = node.status.as_ref()?.node_info.as_ref()?;
    KubeVersion::parse(&info.kubelet_version).ok()
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[async_trait]
impl UpgradeProvider for TinyProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Other("tiny".into())
    }

    fn cluster_name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // Workers upgraded one by one after kup drained them; nothing else.
        Capabilities::new().with(|c| c.node_upgrade = true)
    }

    async fn cluster(&self) -> Result<ClusterInfo> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(provider_error)?;
        let control_plane = KubeVersion::parse(&info.git_version)?;
        let mut pools: BTreeMap<String, Vec<Node>> = BTreeMap::new();
        for node in self.nodes().await? {
            let pool = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POOL_LABEL).cloned());
            if let Some(pool) = pool {
                pools.entry(pool).or_default().push(node);
            }
        }
        let node_pools = pools
            .into_iter()
            .filter_map(|(name, nodes)| {
                let version = nodes.iter().filter_map(kubelet).min()?;
                let mut pool = NodePool::rolled_by_kup(name.clone(), version)
                    .with_node_selector(format!("{POOL_LABEL}={name}"));
                pool.node_count = u32::try_from(nodes.len()).ok();
                Some(pool)
            })
            .collect();
        Ok(ClusterInfo {
            provider: self.kind(),
            name: self.name.clone(),
            control_plane,
            api_servers: Vec::new(),
            node_pools,
            addons: Vec::new(),
            in_progress: Vec::new(),
            status: None,
        })
    }

    async fn available_versions(&self) -> Result<Vec<AvailableVersion>> {
        Ok((29..=34)
            .map(|minor| {
                AvailableVersion::new(KubeVersion::new(1, minor, 3), SupportStatus::Standard)
            })
            .collect())
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        _opts: &ControlPlaneOptions,
    ) -> Result<Operation> {
        let current = self.cluster().await?.control_plane;
        if current.minor_distance(to) != 1 && !current.same_minor(to) {
            return Err(Error::precondition(format!(
                "the tiny platform moves the control plane one minor at a time, not {current} → {to}"
            )));
        }
        self.platform()?
            .set_api_server_version(&format!("v{to}"))
            .map_err(|e| Error::precondition(e.to_string()))?;
        self.start(OperationTarget::ControlPlane, to)
    }

    async fn upgrade_node(&self, _pool: &str, node: &str, to: &KubeVersion) -> Result<Operation> {
        self.platform()?
            .set_kubelet_version(node, &format!("v{to}"))
            .map_err(|e| Error::NotFound {
                kind: "node".into(),
                name: format!("{node} ({e})"),
                scope: Some(self.name.clone()),
            })?;
        self.start(OperationTarget::Node { node: node.into() }, to)
    }

    async fn poll(&self, op: &Operation) -> Result<OperationStatus> {
        let known = self
            .ops
            .lock()
            .map_err(|_| Error::precondition("state poisoned"))?
            .get(&op.id)
            .cloned();
        let Some((target, to)) = known else {
            return Err(Error::NotFound {
                kind: "operation".into(),
                name: op.id.clone(),
                scope: Some(self.name.clone()),
            });
        };
        let done = match &target {
            OperationTarget::Node { node } => {
                let api: Api<Node> = Api::all(self.client.clone());
                let n = api.get(node).await.map_err(provider_error)?;
                ready(&n) && kubelet(&n).is_some_and(|k| k == to)
            }
            _ => self.cluster().await?.control_plane == to,
        };
        Ok(if done {
            OperationStatus::Succeeded
        } else {
            OperationStatus::Running {
                progress: None,
                message: Some(format!("{target} moving to {to}")),
            }
        })
    }
}

/// A small cluster on the tiny platform: control plane and two pools at 1.30.3, a web
/// Deployment under a PodDisruptionBudget.
fn scenario() -> Scenario {
    Scenario::new()
        .version("v1.30.3")
        .pool(Pool::new("apps", 3).kubelet_version("v1.30.3"))
        .pool(Pool::new("batch", 1).kubelet_version("v1.30.3"))
        .workload(Workload::deployment("shop", "web").replicas(3).pool("apps"))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(IntOrPercent::Int(2)),
        )
}

/// Upgrades a simulated tiny cluster to `target` through kup's engine; the cluster afterwards.
async fn simulated(target: &KubeVersion) -> Res<ClusterInfo> {
    let sim = Simulator::start(
        scenario(),
        SimConfig::fast()
            .time_scale(50.0)
            .pod_start_delay(Duration::from_secs(1))
            .pod_ready_delay(Duration::from_secs(1))
            .kubelet_restart_delay(Duration::from_secs(2)),
    )
    .await?;
    let provider = Arc::new(TinyProvider {
        name: "tiny-1".into(),
        client: sim.client()?,
        platform: Some(sim.clone()),
        ops: Mutex::new(BTreeMap::new()),
    });
    let plan =
        kup_engine::planning::plan_for(provider.as_ref(), target, PlanOptions::default()).await?;
    println!("{plan}");
    let validation = ValidationOptions {
        passes: 2,
        interval: Duration::from_millis(100),
        failure_interval: Duration::from_millis(200),
        timeout: Duration::from_secs(120),
        ..ValidationOptions::default()
    };
    let engine = Engine::builder(provider.clone())
        .kube(KubeCluster::from_config(sim.client_config())?)
        .journal(Arc::new(MemoryJournalStore::default()))
        .lock(Arc::new(LocalLock::new("tiny-1")))
        .events(Arc::new(|e: kup_core::Event| {
            if let kup_core::Event::StepFinished {
                step,
                outcome,
                message,
            } = e
            {
                println!("  [{step}] {outcome:?}: {message}");
            }
        }))
        .options(EngineOptions {
            validation: validation.clone(),
            gate: validation,
            polling: BackoffPolicy::fast(),
            helm_releases: false,
            ..EngineOptions::default()
        })
        .build()?;
    let report = engine.run(&plan, &CancellationToken::new()).await?;
    println!("outcome: {:?}", report.outcome);
    if report.outcome != Outcome::Succeeded {
        return Err(format!("the run ended {:?}", report.outcome).into());
    }
    let info = provider.cluster().await?;
    sim.shutdown().await;
    Ok(info)
}

/// Reads a real cluster through the tiny provider and prints the plan it would run.
async fn real(config: kube::Config, target: &KubeVersion) -> Res<()> {
    let provider = TinyProvider {
        name: "real".into(),
        client: kube::Client::try_from(config)?,
        platform: None,
        ops: Mutex::new(BTreeMap::new()),
    };
    let plan = kup_engine::planning::plan_for(&provider, target, PlanOptions::default()).await?;
    println!("{plan}");
    println!("nothing changed: the tiny platform drives only its simulator");
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let target = flag("--target")
        .or_else(|| std::env::var("KUP_TARGET").ok())
        .unwrap_or_else(|| "1.32".into());
    let target = KubeVersion::parse(&target)?;
    if let Some(path) = flag("--kubeconfig") {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
        let options = kube::config::KubeConfigOptions::default();
        return real(
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?,
            &target,
        )
        .await;
    }
    if std::env::var_os("KUBECONFIG").is_some() {
        return real(kube::Config::infer().await?, &target).await;
    }
    let info = simulated(&target).await?;
    println!(
        "control plane {}; pools {:?}",
        info.control_plane, info.node_pools
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_engine_upgrades_a_tiny_cluster_two_minors() {
        let target = KubeVersion::parse("1.32.3").unwrap();
        let info = simulated(&target).await.unwrap();
        assert_eq!(info.control_plane, target);
        assert_eq!(info.node_pools.len(), 2);
        for pool in &info.node_pools {
            assert_eq!(pool.version, target, "{}", pool.name);
        }
    }
}
