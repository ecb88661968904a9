//! The behaviour suite on the AKS provider: azure_core's pipeline against the ARM mock over
//! HTTPS, which plays agent-pool upgrades out on the Kubernetes simulator behind it (the demo
//! cluster: 1.33.5, a System pool `system` and a User pool `apps`, workloads under
//! PodDisruptionBudgets).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kup_aks::{AksBuilder, AksProvider};
use kup_core::{ControlPlaneOptions, UpgradeProvider};
use kup_mocks::aks::{AksConfig, AksFault, AksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use kup_tests::{Harness, Mutations, Unstaged, behaviours};

/// ARM calls that change something.
const MUTATING: [&str; 5] = [
    "PUT managedCluster",
    "PUT agentPool",
    "POST upgradeNodeImageVersion",
    "POST abort",
    "POST agentPool abort",
];

struct Aks {
    sim: SimHandle,
    mock: AksMock,
    provider: Arc<AksProvider>,
}

fn build(mock: &AksMock) -> AksProvider {
    let (subscription, resource_group) = mock.coordinates();
    AksBuilder::new()
        .subscription(subscription)
        .resource_group(resource_group)
        .cluster("demo")
        .endpoint(mock.endpoint())
        .ca_certificate_pem(mock.ca_pem())
        .static_token("test-token")
        .retries(0)
        .build()
        .unwrap()
}

#[async_trait]
impl Harness for Aks {
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
        let mock = AksMock::start(AksConfig::demo().time_scale(600.0), Some(sim.clone()))
            .await
            .unwrap();
        let provider = Arc::new(build(&mock));
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
        Arc::new(build(&self.mock))
    }

    fn simulator(&self) -> &SimHandle {
        &self.sim
    }

    fn kube(&self) -> kube::Client {
        self.sim.client().unwrap()
    }

    async fn make_busy(&self) -> Result<(), Unstaged> {
        // Someone else (the portal, `az aks upgrade`) starts a control-plane upgrade that
        // lasts longer than the behaviour.
        self.mock.inject(AksFault::SlowOperations(1000));
        let other = build(&self.mock);
        let to = behaviours::next_minor(&other).await;
        other
            .upgrade_control_plane(&to, &ControlPlaneOptions::default())
            .await
            .unwrap();
        Ok(())
    }

    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged> {
        self.mock.inject(AksFault::FailNextOperation {
            code: "UpgradeFailed".into(),
            message: "The control plane upgrade did not complete".into(),
            details: vec![(
                "ControlPlaneUnhealthy".into(),
                "The API server did not become healthy at the new version".into(),
            )],
        });
        Ok(vec!["UpgradeFailed".into(), "ControlPlaneUnhealthy".into()])
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
        Mutations {
            sent,
            accepted: self.mock.accepted(),
        }
    }

    fn pool_to_roll(&self) -> Option<String> {
        Some("system".into())
    }

    fn rolls_back_completed_pool_upgrades(&self) -> bool {
        true
    }
}

kup_tests::behaviour_tests!(Aks);
