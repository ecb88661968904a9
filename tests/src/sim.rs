//! Simulated clusters for the engine's end-to-end tests: a simulated cluster, the reference
//! provider bound to it, engines wired to both, crash points, and the end-state checks every
//! test applies.

// Test-support code: a failed expectation is a test failure, so it panics with context.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{
    EventSink, KubeVersion, NodePool, PlanOptions, PlanRequest, PoolManagement, UpgradePlan,
    UpgradeProvider,
};
use kup_engine::backoff::BackoffPolicy;
use kup_engine::journal::{Journal, JournalStore, MemoryJournalStore};
use kup_engine::lock::{LeaseLock, LeaseSettings};
use kup_engine::{
    DrainOutcome, Engine, EngineOptions, KubeCluster, NodeOps, NodeState, PoolOptions, RunReport,
    StepTimeouts,
};
use kup_kube::drain::{DrainOptions, DrainReport};
use kup_kube::validate::ValidationOptions;
use kup_mocks::k8s::{
    DeletedVia, IntOrPercent, Node, Pdb, Pool, Scenario, SimConfig, SimHandle, Simulator, Workload,
};
use tokio_util::sync::CancellationToken;

use crate::reference::{POOL_LABEL, SimProvider, Timing, v};

/// A guard for waits that end long before it; never the thing asserted.
pub const GUARD: Duration = Duration::from_secs(120);

/// The simulator's speed: delays in simulated seconds, 50× faster in real time.
pub fn sim_config() -> SimConfig {
    SimConfig::fast()
        .time_scale(50.0)
        .pod_start_delay(Duration::from_secs(1))
        .pod_ready_delay(Duration::from_secs(1))
        .pod_shutdown_delay(Duration::from_secs(1))
        .kubelet_restart_delay(Duration::from_secs(2))
        .node_ready_delay(Duration::from_secs(2))
}

/// Engine options for the end-to-end tests against the cloud mocks: fast polling, with
/// room for the mocks' long-running operations (pool rolls up to five minutes).
pub fn cloud_options() -> EngineOptions {
    let validation = ValidationOptions {
        passes: 2,
        interval: Duration::from_millis(50),
        failure_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(120),
        ..ValidationOptions::default()
    };
    EngineOptions {
        validation: validation.clone(),
        gate: validation,
        polling: BackoffPolicy::fast(),
        timeouts: StepTimeouts {
            control_plane: Duration::from_secs(120),
            node_pool: Duration::from_secs(300),
            node_upgrade: Duration::from_secs(120),
            node_ready: Duration::from_secs(120),
            addon: Duration::from_secs(120),
        },
        helm_releases: false,
        ..EngineOptions::default()
    }
}

/// Engine options for tests: fast polling and validation, generous guards.
pub fn fast_options() -> EngineOptions {
    let validation = ValidationOptions {
        passes: 2,
        interval: Duration::from_millis(20),
        failure_interval: Duration::from_millis(40),
        timeout: Duration::from_secs(60),
        ..ValidationOptions::default()
    };
    EngineOptions {
        drain: DrainOptions::default(),
        pool_defaults: PoolOptions {
            drain_timeout: Some(Duration::from_secs(30)),
            ..PoolOptions::default()
        },
        validation: validation.clone(),
        gate: validation,
        polling: BackoffPolicy::fast(),
        timeouts: StepTimeouts {
            control_plane: Duration::from_secs(60),
            node_pool: Duration::from_secs(60),
            node_upgrade: Duration::from_secs(60),
            node_ready: Duration::from_secs(60),
            addon: Duration::from_secs(60),
        },
        helm_releases: false,
        ..EngineOptions::default()
    }
}

/// What a test cluster looks like.
pub struct Setup {
    /// The Kubernetes side.
    pub scenario: Scenario,
    /// Who rolls each pool.
    pub pools: Vec<(&'static str, PoolManagement)>,
    /// Add-ons and their installed versions.
    pub addons: Vec<(&'static str, &'static str)>,
    /// The provider's `max_node_pool_minor_jump`.
    pub max_jump: Option<u32>,
    /// The simulator's speed.
    pub config: SimConfig,
}

/// The cluster most tests use: kup-rolled pool `kw` (3 nodes, plus `kw-4` cordoned before
/// the upgrade), provider-rolled pool `mg` (2 nodes), two deployments under budgets, a
/// DaemonSet, and add-on coredns. Control plane and kubelets at 1.31.4.
pub fn standard() -> Setup {
    let scenario = Scenario::new()
        .version("v1.31.4")
        .pool(Pool::new("kw", 3))
        .node(Node::new("kw-4").pool("kw").unschedulable())
        .pool(Pool::new("mg", 2))
        .workload(Workload::deployment("shop", "web").replicas(4))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(IntOrPercent::Int(3)),
        )
        .workload(Workload::deployment("shop", "api").replicas(2))
        .pdb(
            Pdb::new("shop", "api")
                .match_label("app", "api")
                .max_unavailable(IntOrPercent::Int(1)),
        )
        .workload(Workload::daemon_set("kube-system", "node-agent").tolerate_all());
    Setup {
        scenario,
        pools: vec![
            ("kw", PoolManagement::Kup),
            ("mg", PoolManagement::Provider),
        ],
        addons: vec![("coredns", "v1.11.3")],
        max_jump: None,
        config: sim_config(),
    }
}

/// A smaller cluster for tests that run many times: one hop (1.32.4 → 1.33.2), kup-rolled
/// `kw` (2 nodes plus `kw-3` cordoned before), provider-rolled `mg` (1 node), a deployment
/// under a budget, a DaemonSet and coredns.
pub fn small() -> Setup {
    let scenario = Scenario::new()
        .version("v1.32.4")
        .pool(Pool::new("kw", 2))
        .node(Node::new("kw-3").pool("kw").unschedulable())
        .pool(Pool::new("mg", 1))
        .workload(Workload::deployment("shop", "web").replicas(3))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(IntOrPercent::Int(2)),
        )
        .workload(Workload::daemon_set("kube-system", "node-agent").tolerate_all());
    Setup {
        scenario,
        pools: vec![
            ("kw", PoolManagement::Kup),
            ("mg", PoolManagement::Provider),
        ],
        addons: vec![("coredns", "v1.11.3")],
        max_jump: None,
        config: sim_config(),
    }
}

/// Node operations that count how many nodes of each pool kup has cordoned at once.
pub struct Watched {
    inner: KubeCluster,
    sim: SimHandle,
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    cordoned: BTreeMap<String, BTreeSet<String>>,
    max: BTreeMap<String, usize>,
}

impl Watched {
    fn pool_of(&self, node: &str) -> String {
        self.sim
            .get("nodes", None, node)
            .and_then(|n| {
                n["metadata"]["labels"][POOL_LABEL]
                    .as_str()
                    .map(String::from)
            })
            .unwrap_or_default()
    }

    /// The most nodes of `pool` cordoned by kup at the same time.
    pub fn max_cordoned(&self, pool: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .max
            .get(pool)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl NodeOps for Watched {
    async fn pool_nodes(&self, pool: &NodePool) -> kup_engine::Result<Vec<NodeState>> {
        self.inner.pool_nodes(pool).await
    }

    async fn node(&self, name: &str) -> kup_engine::Result<Option<NodeState>> {
        self.inner.node(name).await
    }

    async fn cordon(&self, node: &str) -> kup_engine::Result<bool> {
        let was = self.inner.cordon(node).await?;
        if !was {
            let pool = self.pool_of(node);
            let mut st = self.state.lock().unwrap();
            let existing: BTreeSet<String> = self
                .sim
                .nodes()
                .iter()
                .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
                .collect();
            let set = st.cordoned.entry(pool.clone()).or_default();
            set.insert(node.to_string());
            set.retain(|n| existing.contains(n));
            let now = set.len();
            let max = st.max.entry(pool).or_default();
            *max = (*max).max(now);
        }
        Ok(was)
    }

    async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        events: &dyn EventSink,
    ) -> kup_engine::Result<DrainOutcome> {
        self.inner.drain(node, opts, events).await
    }

    async fn drain_preview(
        &self,
        node: &str,
        opts: &DrainOptions,
    ) -> kup_engine::Result<DrainReport> {
        self.inner.drain_preview(node, opts).await
    }

    async fn uncordon(&self, node: &str) -> kup_engine::Result<bool> {
        let changed = self.inner.uncordon(node).await?;
        let pool = self.pool_of(node);
        if let Some(set) = self.state.lock().unwrap().cordoned.get_mut(&pool) {
            set.remove(node);
        }
        Ok(changed)
    }

    async fn wait_ready(
        &self,
        node: &str,
        version: &KubeVersion,
        timeout: Duration,
    ) -> kup_engine::Result<()> {
        self.inner.wait_ready(node, version, timeout).await
    }
}

/// Samples PodDisruptionBudgets while a test runs: a budget whose healthy pods ever drop below
/// what it requires is recorded.
pub struct BudgetWatch {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl BudgetWatch {
    /// Starts sampling `sim`'s budgets every 10 ms.
    pub fn start(sim: &SimHandle) -> Self {
        let stop = CancellationToken::new();
        let sim = sim.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !token.is_cancelled() {
                for pdb in sim.list("poddisruptionbudgets", None) {
                    let st = &pdb["status"];
                    let (Some(current), Some(desired)) =
                        (st["currentHealthy"].as_i64(), st["desiredHealthy"].as_i64())
                    else {
                        continue;
                    };
                    if current < desired {
                        seen.push(format!(
                            "{}/{}: {current} healthy < {desired} required",
                            pdb["metadata"]["namespace"], pdb["metadata"]["name"]
                        ));
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        });
        Self { stop, task }
    }

    /// Stops sampling; the violations seen.
    pub async fn finish(self) -> Vec<String> {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

/// A running simulated cluster with its provider.
pub struct SimCluster {
    /// The simulator.
    pub sim: SimHandle,
    /// The reference provider bound to it.
    pub provider: Arc<SimProvider>,
    /// The engine's Kubernetes operations on it.
    pub kube: KubeCluster,
    /// Node operations that count cordons.
    pub nodes: Arc<Watched>,
    /// Nodes cordoned before anything ran (they must stay cordoned).
    pub cordoned_before: BTreeSet<String>,
    /// The cluster's name.
    pub name: String,
    /// The simulator user kup's clients authenticate as (`None`: the admin).
    pub user: Option<String>,
}

impl SimCluster {
    /// Starts cluster `prod`.
    pub async fn start(setup: Setup) -> Self {
        Self::start_named("prod", setup).await
    }

    /// Starts a cluster named `name`.
    pub async fn start_named(name: &str, setup: Setup) -> Self {
        Self::start_as(name, setup, None).await
    }

    /// Starts a cluster named `name` whose Kubernetes clients (cluster operations, drains,
    /// pre-flight, lock) authenticate as scenario user `user` (`None`: the admin).
    pub async fn start_as(name: &str, setup: Setup, user: Option<&str>) -> Self {
        let sim = Simulator::start(setup.scenario, setup.config)
            .await
            .unwrap();
        let provider = Arc::new(SimProvider::new(
            name,
            &sim,
            &setup.pools,
            &setup.addons,
            SimProvider::capabilities(setup.max_jump),
            Timing::default(),
        ));
        let config = match user {
            Some(u) => sim.client_config_as(u).unwrap(),
            None => sim.client_config(),
        };
        let kube = KubeCluster::from_config(config)
            .unwrap()
            .with_retry(BackoffPolicy::fast());
        let nodes = Arc::new(Watched {
            inner: kube.clone(),
            sim: sim.clone(),
            state: Mutex::new(WatchState::default()),
        });
        let cordoned_before = cordoned(&sim);
        Self {
            sim,
            provider,
            kube,
            nodes,
            cordoned_before,
            name: name.to_string(),
            user: user.map(String::from),
        }
    }

    /// A kube client as the cluster's user.
    pub fn client(&self) -> kube::Client {
        match &self.user {
            Some(u) => self.sim.client_as(u).unwrap(),
            None => self.sim.client().unwrap(),
        }
    }

    /// A plan to `target` made by kup-core's planner from the provider's view.
    pub async fn plan(&self, target: &str) -> UpgradePlan {
        self.plan_with(target, PlanOptions::default()).await
    }

    /// A plan to `target` with planning options.
    pub async fn plan_with(&self, target: &str, options: PlanOptions) -> UpgradePlan {
        let cluster = self.provider.cluster().await.unwrap();
        let offered = self.provider.available_versions().await.unwrap();
        let caps = self.provider.capabilities();
        let path =
            kup_core::control_plane_path(&cluster.control_plane, &v(target), &offered, &caps)
                .unwrap();
        let mut addon_upgrades = Vec::new();
        for hop in &path {
            addon_upgrades.extend(self.provider.addon_upgrades(hop).await.unwrap());
        }
        kup_core::plan(&PlanRequest {
            cluster,
            target: v(target),
            offered,
            capabilities: caps,
            addon_upgrades,
            options,
        })
        .unwrap()
    }

    /// The cluster's Lease lock for `holder`, with a short lease.
    pub fn lock(&self, holder: &str) -> LeaseLock {
        LeaseLock::new(
            self.client(),
            &self.name,
            LeaseSettings {
                duration: Duration::from_secs(15),
                holder: Some(holder.to_string()),
                ..LeaseSettings::default()
            },
        )
        .unwrap()
        .with_retry(BackoffPolicy::fast())
    }

    /// An engine on this cluster with the watched node operations.
    pub fn engine(
        &self,
        store: Arc<dyn JournalStore>,
        holder: &str,
        events: Arc<dyn EventSink>,
        options: EngineOptions,
    ) -> Engine {
        Engine::builder(self.provider.clone())
            .kube(self.kube.clone())
            .node_ops(self.nodes.clone())
            .journal(store)
            .lock(Arc::new(self.lock(holder)))
            .events(events)
            .options(options)
            .build()
            .unwrap()
    }

    /// Kubelet versions by node.
    pub fn kubelets(&self) -> BTreeMap<String, String> {
        self.sim
            .nodes()
            .iter()
            .map(|n| {
                (
                    n["metadata"]["name"].as_str().unwrap().to_string(),
                    n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    /// The checks every converged run must pass.
    pub async fn assert_converged(&self, plan: &UpgradePlan, journal: Option<Journal>) {
        let target = &plan.target;
        assert_eq!(self.provider.control_plane(), *target);
        assert_eq!(
            KubeVersion::parse(&self.sim.api_server_version()).unwrap(),
            *target
        );
        for (node, kubelet) in self.kubelets() {
            assert_eq!(
                KubeVersion::parse(&kubelet).unwrap(),
                *target,
                "node {node} is at {kubelet}, not {target}"
            );
        }
        let deletions = self.sim.pod_deletions();
        for d in &deletions {
            assert!(
                matches!(d.via, DeletedVia::Eviction | DeletedVia::Controller)
                    || (d.via == DeletedVia::NodeRemoved && d.namespace == "kube-system"),
                "pod {}/{} deleted outside the eviction API: {:?}",
                d.namespace,
                d.name,
                d.via
            );
        }
        let cordoned_now = cordoned(&self.sim);
        let existing: BTreeSet<String> = self.kubelets().into_keys().collect();
        let expected: BTreeSet<String> = self
            .cordoned_before
            .intersection(&existing)
            .cloned()
            .collect();
        assert_eq!(
            cordoned_now, expected,
            "cordoned nodes differ from those cordoned before the upgrade"
        );
        assert!(
            self.provider.started_twice().is_empty(),
            "operations started twice: {:?}",
            self.provider.started_twice()
        );
        assert!(
            self.provider.violations().is_empty(),
            "provider saw violations: {:?}",
            self.provider.violations()
        );
        assert_eq!(self.provider.running(), 0, "operations still running");
        if let Some(j) = journal {
            assert_eq!(j.state, kup_engine::journal::RunState::Succeeded);
            assert!(
                j.nodes.is_empty(),
                "journal still lists nodes: {:?}",
                j.nodes
            );
            assert!(
                j.steps.iter().all(|s| s.state.is_done()),
                "{}",
                j.to_table()
            );
            assert!(
                j.steps.iter().all(|s| s.operation.is_none()),
                "{}",
                j.to_table()
            );
        }
    }
}

/// Names of cordoned nodes.
pub fn cordoned(sim: &SimHandle) -> BTreeSet<String> {
    sim.nodes()
        .iter()
        .filter(|n| n["spec"]["unschedulable"] == true)
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Where a crash happens: at the nth journal save (before or after it lands), or at the nth
/// event a predicate accepts.
pub struct CrashStore {
    inner: Arc<dyn JournalStore>,
    at: usize,
    after: bool,
    saves: AtomicUsize,
    /// Cancelled when the crash point is reached.
    pub tripped: CancellationToken,
}

impl std::fmt::Debug for CrashStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashStore").field("at", &self.at).finish()
    }
}

impl CrashStore {
    /// Crashes at save number `at` (1-based); with `after` the save lands first.
    pub fn new(inner: Arc<dyn JournalStore>, at: usize, after: bool) -> Self {
        Self {
            inner,
            at,
            after,
            saves: AtomicUsize::new(0),
            tripped: CancellationToken::new(),
        }
    }

    /// Saves attempted so far.
    pub fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JournalStore for CrashStore {
    async fn load(&self) -> kup_engine::Result<Option<Journal>> {
        self.inner.load().await
    }

    async fn save(&self, journal: &Journal) -> kup_engine::Result<()> {
        let n = self.saves.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at {
            if self.after {
                self.inner.save(journal).await?;
            }
            self.tripped.cancel();
            // The process dies here: this future never completes.
            std::future::pending::<()>().await;
        }
        self.inner.save(journal).await
    }

    async fn clear(&self) -> kup_engine::Result<()> {
        self.inner.clear().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// An event sink that trips a token on the nth event `pred` accepts.
pub struct Tripwire {
    pred: Box<dyn Fn(&kup_core::Event) -> bool + Send + Sync>,
    nth: usize,
    seen: AtomicUsize,
    /// Cancelled at the nth matching event.
    pub tripped: CancellationToken,
    /// Another sink every event is passed on to.
    pub also: Option<Arc<dyn EventSink>>,
}

impl Tripwire {
    /// Trips at the `nth` event `pred` accepts.
    pub fn new(
        nth: usize,
        pred: impl Fn(&kup_core::Event) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            pred: Box::new(pred),
            nth,
            seen: AtomicUsize::new(0),
            tripped: CancellationToken::new(),
            also: None,
        }
    }
}

impl EventSink for Tripwire {
    fn emit(&self, event: kup_core::Event) {
        if (self.pred)(&event) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            self.tripped.cancel();
        }
        if let Some(also) = &self.also {
            also.emit(event);
        }
    }
}

/// How a run attempt ended.
pub enum Attempt {
    /// The future was dropped at the crash point.
    Crashed,
    /// It returned.
    Finished(kup_engine::Result<RunReport>),
}

/// How an attempt starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// `Engine::run`: a fresh run.
    Run,
    /// `Engine::resume`: continue the journal.
    Resume,
    /// `Engine::apply`: resume when there is a journal, else run.
    Apply,
}

/// Runs (or resumes) until it returns or `crash` trips, then drops the run like a killed
/// process would.
pub async fn attempt(
    engine: &Engine,
    plan: &UpgradePlan,
    how: How,
    crash: &CancellationToken,
) -> Attempt {
    let cancel = CancellationToken::new();
    let run = async {
        match how {
            How::Run => engine.run(plan, &cancel).await,
            How::Resume => engine.resume(plan, &cancel).await,
            How::Apply => engine.apply(plan, &cancel).await,
        }
    };
    tokio::select! {
        biased;
        _ = crash.cancelled() => Attempt::Crashed,
        r = tokio::time::timeout(GUARD, run) => Attempt::Finished(r.expect("run did not finish within the guard")),
    }
}

/// A fresh memory journal.
pub fn memory() -> Arc<MemoryJournalStore> {
    Arc::new(MemoryJournalStore::new())
}
