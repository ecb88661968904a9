//! The engine with in-memory fakes behind its traits: batch sizes, the canary, stuck-drain
//! policies and the gate, without a cluster.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{
    Capabilities, ClusterInfo, ControlPlaneOptions, EventSink, KubeVersion, NodePool,
    NodePoolOptions, Operation, OperationStatus, OperationTarget, PlanOptions, PlanRequest,
    ProviderKind, StuckDrainPolicy, SupportStatus, UpgradePlan, UpgradeProvider,
};
use kup_kube::drain::{DrainOptions, DrainReport};
use kup_kube::preflight::{PreflightInput, PreflightReport};
use kup_kube::report::{Findings, ScanStats};
use kup_kube::validate::{Expectation, ValidationOptions, ValidationReport};
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::error::{Error, Result};
use crate::journal::{MemoryJournalStore, NodePhase};
use crate::lock::LocalLock;
use crate::ops::{ClusterValidator, DrainOutcome, NodeOps, NodeState, PreflightRunner};
use crate::options::{EngineOptions, PoolOptions};

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

#[derive(Default)]
struct World {
    control_plane: Option<KubeVersion>,
    nodes: BTreeMap<String, NodeState>,
    stuck: Vec<String>,
    cordoned_now: usize,
    max_cordoned: usize,
    order: Vec<String>,
    gates: u32,
    fail_gate_after: Option<u32>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<World>>);

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fake")
    }
}

impl Fake {
    fn new(nodes: usize) -> Self {
        let fake = Fake::default();
        {
            let mut w = fake.0.lock().unwrap();
            w.control_plane = Some(v("1.33.2"));
            for i in 1..=nodes {
                let name = format!("n{i}");
                w.nodes.insert(
                    name.clone(),
                    NodeState {
                        name,
                        kubelet: Some(v("1.32.4")),
                        cordoned: false,
                        ready: true,
                    },
                );
            }
        }
        fake
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }
}

#[async_trait]
impl UpgradeProvider for Fake {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Other("fake".into())
    }

    fn cluster_name(&self) -> &str {
        "c"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(|c| c.node_upgrade = true)
    }

    async fn cluster(&self) -> kup_core::Result<ClusterInfo> {
        let w = self.w();
        let version = w
            .nodes
            .values()
            .filter_map(|n| n.kubelet.clone())
            .min()
            .unwrap();
        let mut pool = NodePool::rolled_by_kup("workers", version);
        pool.nodes = w.nodes.keys().cloned().collect();
        Ok(ClusterInfo {
            provider: self.kind(),
            name: "c".into(),
            control_plane: w.control_plane.clone().unwrap(),
            api_servers: vec![],
            node_pools: vec![pool],
            addons: vec![],
            in_progress: vec![],
            status: None,
        })
    }

    async fn available_versions(&self) -> kup_core::Result<Vec<kup_core::AvailableVersion>> {
        Ok(vec![kup_core::AvailableVersion::new(
            v("1.33.2"),
            SupportStatus::Standard,
        )])
    }

    async fn upgrade_control_plane(
        &self,
        _to: &KubeVersion,
        _opts: &ControlPlaneOptions,
    ) -> kup_core::Result<Operation> {
        Err(kup_core::Error::precondition("not in these tests"))
    }

    async fn upgrade_node(
        &self,
        _pool: &str,
        node: &str,
        to: &KubeVersion,
    ) -> kup_core::Result<Operation> {
        let mut w = self.w();
        let n = w.nodes.get_mut(node).unwrap();
        assert!(n.cordoned, "{node} upgraded while schedulable");
        n.kubelet = Some(to.clone());
        w.order.push(node.to_string());
        Ok(Operation::new(
            self.kind(),
            node,
            OperationTarget::Node { node: node.into() },
        )
        .with_version(to))
    }

    async fn poll(&self, _op: &Operation) -> kup_core::Result<OperationStatus> {
        Ok(OperationStatus::Succeeded)
    }
}

#[async_trait]
impl NodeOps for Fake {
    async fn pool_nodes(&self, _pool: &NodePool) -> Result<Vec<NodeState>> {
        Ok(self.w().nodes.values().cloned().collect())
    }

    async fn node(&self, name: &str) -> Result<Option<NodeState>> {
        Ok(self.w().nodes.get(name).cloned())
    }

    async fn cordon(&self, node: &str) -> Result<bool> {
        let mut w = self.w();
        let n = w.nodes.get_mut(node).unwrap();
        let was = n.cordoned;
        n.cordoned = true;
        if !was {
            w.cordoned_now += 1;
            w.max_cordoned = w.max_cordoned.max(w.cordoned_now);
        }
        Ok(was)
    }

    async fn drain(
        &self,
        node: &str,
        _opts: &DrainOptions,
        _events: &dyn EventSink,
    ) -> Result<DrainOutcome> {
        // A drain waits on the API; let the other nodes of the batch move meanwhile.
        tokio::task::yield_now().await;
        if self.w().stuck.iter().any(|s| s == node) {
            return Ok(DrainOutcome::Stuck {
                message: format!("pod shop/solo on {node} is held by budget solo"),
                remaining: vec!["shop/solo".into()],
            });
        }
        Ok(DrainOutcome::Drained { evicted: 1 })
    }

    async fn drain_preview(&self, node: &str, _opts: &DrainOptions) -> Result<DrainReport> {
        Ok(DrainReport {
            node: node.into(),
            ..DrainReport::default()
        })
    }

    async fn uncordon(&self, node: &str) -> Result<bool> {
        let mut w = self.w();
        let n = w.nodes.get_mut(node).unwrap();
        let was = n.cordoned;
        n.cordoned = false;
        if was {
            w.cordoned_now -= 1;
        }
        Ok(was)
    }

    async fn wait_ready(
        &self,
        _node: &str,
        _version: &KubeVersion,
        _timeout: Duration,
    ) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl ClusterValidator for Fake {
    async fn validate(
        &self,
        _expectation: &Expectation,
        options: &ValidationOptions,
        _events: &dyn EventSink,
    ) -> Result<ValidationReport> {
        let mut w = self.w();
        w.gates += 1;
        let passed = w.fail_gate_after.is_none_or(|n| w.gates <= n);
        Ok(ValidationReport {
            passed,
            timed_out: !passed,
            rounds: options.passes,
            consecutive: if passed { options.passes } else { 0 },
            required: options.passes,
            findings: Findings::default(),
            stats: ScanStats::default(),
        })
    }
}

#[async_trait]
impl PreflightRunner for Fake {
    async fn preflight(&self, input: &PreflightInput) -> Result<PreflightReport> {
        Ok(PreflightReport {
            control_plane: Some(v("1.33.2")),
            target: input.target.clone(),
            window: None,
            findings: Findings::default(),
            stats: ScanStats::default(),
        })
    }
}

async fn plan(fake: &Fake) -> UpgradePlan {
    kup_core::plan(&PlanRequest {
        cluster: fake.cluster().await.unwrap(),
        target: v("1.33.2"),
        offered: fake.available_versions().await.unwrap(),
        capabilities: fake.capabilities(),
        addon_upgrades: vec![],
        options: PlanOptions::default(),
    })
    .unwrap()
}

fn engine(fake: &Fake, max_unavailable: &str, policy: StuckDrainPolicy) -> Engine {
    let options = EngineOptions {
        pool_defaults: PoolOptions {
            provider: NodePoolOptions {
                max_unavailable: Some(max_unavailable.into()),
                ..NodePoolOptions::default()
            },
            on_stuck_drain: policy,
            ..PoolOptions::default()
        },
        polling: crate::backoff::BackoffPolicy::fast(),
        ..EngineOptions::default()
    };
    let shared = Arc::new(fake.clone());
    Engine::builder(shared.clone())
        .node_ops(shared.clone())
        .validator(shared.clone())
        .preflight(shared)
        .journal(Arc::new(MemoryJournalStore::new()))
        .lock(Arc::new(LocalLock::new("c")))
        .options(options)
        .build()
        .unwrap()
}

#[tokio::test]
async fn canary_first_then_batches_of_max_unavailable_each_gated() {
    let fake = Fake::new(5);
    let plan = plan(&fake).await;
    let report = engine(&fake, "2", StuckDrainPolicy::Fail)
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, kup_core::Outcome::Succeeded);
    let w = fake.w();
    assert_eq!(w.order, ["n1", "n2", "n3", "n4", "n5"]);
    assert_eq!(w.max_cordoned, 2);
    assert_eq!(w.cordoned_now, 0);
    // One gate per batch ([n1], [n2, n3], [n4, n5]) plus the plan's validate step.
    assert_eq!(w.gates, 4);
    assert!(
        w.nodes
            .values()
            .all(|n| n.kubelet == Some(v("1.33.2")) && !n.cordoned)
    );
}

#[tokio::test]
async fn a_stuck_node_is_left_cordoned_under_cordon_and_continue() {
    let fake = Fake::new(3);
    fake.w().stuck.push("n2".into());
    let plan = plan(&fake).await;
    let engine = engine(&fake, "1", StuckDrainPolicy::CordonAndContinue);
    let report = engine.run(&plan, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.left_cordoned.len(), 1);
    assert_eq!(report.left_cordoned[0].node, "n2");
    assert_eq!(report.left_cordoned[0].phase, NodePhase::LeftCordoned);
    let w = fake.w();
    assert_eq!(w.order, ["n1", "n3"]);
    assert!(w.nodes["n2"].cordoned);
    assert_eq!(w.nodes["n2"].kubelet, Some(v("1.32.4")));
}

#[tokio::test]
async fn a_stuck_node_fails_the_run_by_default_and_a_failed_gate_touches_no_further_node() {
    let fake = Fake::new(3);
    fake.w().stuck.push("n2".into());
    let plan = plan(&fake).await;
    let err = engine(&fake, "1", StuckDrainPolicy::Fail)
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DrainStuck { node, .. } if node == "n2"),
        "{err}"
    );
    assert_eq!(fake.w().order, ["n1"]);

    let fake = Fake::new(3);
    fake.w().fail_gate_after = Some(0);
    let plan = self::plan(&fake).await;
    let err = engine(&fake, "1", StuckDrainPolicy::Fail)
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ValidationFailed { node: Some(n), .. } if n == "n1"),
        "{err}"
    );
    let w = fake.w();
    assert_eq!(w.order, ["n1"]);
    assert!(!w.nodes["n2"].cordoned && !w.nodes["n3"].cordoned);
}
