//! The behaviour suite on the GKE provider: the real google-cloud-container-v1 client against
//! the stateful GKE mock, which plays node-pool upgrades out on the Kubernetes simulator behind
//! it (the demo cluster: 1.33, node pools `default-pool` and `apps`, workloads under
//! PodDisruptionBudgets).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{ControlPlaneOptions, UpgradeProvider};
use kup_gke::{GkeBuilder, GkeProvider};
use kup_mocks::gke::{GkeConfig, GkeFault, GkeMock, OpTarget, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use kup_tests::{Harness, Mutations, Unstaged, behaviours};

/// GKE calls that change something.
const MUTATING: [&str; 7] = [
    "updateMaster",
    "updateCluster",
    "completeControlPlaneUpgrade",
    "updateNodePool",
    "rollbackNodePoolUpgrade",
    "completeNodePoolUpgrade",
    "cancelOperation",
];

struct Gke {
    sim: SimHandle,
    mock: GkeMock,
    provider: Arc<GkeProvider>,
}

async fn build(mock: &GkeMock, sim: &SimHandle) -> GkeProvider {
    GkeBuilder::new()
        .project("demo-project")
        .location("us-central1")
        .cluster("demo")
        .endpoint(mock.endpoint())
        .anonymous_credentials()
        .kube_client(sim.client().unwrap())
        .build()
        .await
        .unwrap()
}

#[async_trait]
impl Harness for Gke {
    async fn start() -> Option<Self> {
        let sim = Simulator::start(
            demo_scenario(),
            SimConfig::fast()
                .time_scale(50.0)
                .pod_start_delay(Duration::from_secs(1))
                .pod_ready_delay(Duration::from_secs(1))
                .pod_shutdown_delay(Duration::from_secs(1))
                .node_ready_delay(Duration::from_secs(3)),
        )
        .await
        .unwrap();
        let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0), Some(sim.clone()))
            .await
            .unwrap();
        let provider = Arc::new(build(&mock, &sim).await);
        Some(Self {
            sim,
            mock,
            provider,
        })
    }

    fn provider(&self) -> Arc<dyn UpgradeProvider> {
        self.provider.clone()
    }

    async fn restart(&self) -> Arc<dyn UpgradeProvider> {
        Arc::new(build(&self.mock, &self.sim).await)
    }

    fn simulator(&self) -> &SimHandle {
        &self.sim
    }

    fn kube(&self) -> kube::Client {
        self.sim.client().unwrap()
    }

    async fn make_busy(&self) -> Result<(), Unstaged> {
        // Someone else (the console, gcloud) starts a control-plane upgrade that lasts longer
        // than the behaviour.
        self.mock.inject(GkeFault::SlowOperations(1000));
        let other = build(&self.mock, &self.sim).await;
        let to = behaviours::next_minor(&other).await;
        other
            .upgrade_control_plane(&to, &ControlPlaneOptions::default())
            .await
            .unwrap();
        Ok(())
    }

    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged> {
        self.mock.inject(GkeFault::FailNextOperation {
            code: "RESOURCE_EXHAUSTED".into(),
            message: "Insufficient regional quota to satisfy request: resource \"CPUS\"".into(),
            conditions: vec![],
        });
        Ok(vec!["RESOURCE_EXHAUSTED".into()])
    }

    fn mutations(&self) -> Mutations {
        let calls = self.mock.calls();
        let sent = MUTATING
            .iter()
            .flat_map(|op| {
                let n = calls.get(*op).copied().unwrap_or(0);
                (0..n).map(move |i| format!("{op} #{}", i + 1))
            })
            .collect();
        let accepted = self
            .mock
            .operations()
            .into_iter()
            .map(|o| match o.target {
                OpTarget::ControlPlane { version } => format!("updateMaster → {version}"),
                OpTarget::NodePool {
                    pool,
                    version,
                    rollback,
                    ..
                } => format!(
                    "{} {pool} → {version}",
                    if rollback {
                        "rollback"
                    } else {
                        "updateNodePool"
                    }
                ),
            })
            .collect();
        Mutations { sent, accepted }
    }

    fn pool_to_roll(&self) -> Option<String> {
        Some("default-pool".into())
    }
}

kup_tests::behaviour_tests!(Gke);
