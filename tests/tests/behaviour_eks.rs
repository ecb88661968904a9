//! The behaviour suite on the EKS provider: the real aws-sdk-eks client against the stateful
//! EKS mock, which plays node-group updates out on the Kubernetes simulator behind it (the
//! demo cluster: 1.33, node groups `system` and `apps`, three add-ons, workloads under
//! PodDisruptionBudgets).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{ControlPlaneOptions, UpgradeProvider};
use kup_eks::{EksBuilder, EksProvider};
use kup_mocks::eks::{EksConfig, EksFault, EksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use kup_tests::{Harness, Mutations, Unstaged, behaviours};

/// EKS operations that change something.
const MUTATING: [&str; 3] = [
    "UpdateClusterVersion",
    "UpdateNodegroupVersion",
    "UpdateAddon",
];

struct Eks {
    sim: SimHandle,
    mock: EksMock,
    provider: Arc<EksProvider>,
}

async fn build(mock: &EksMock, sim: &SimHandle) -> EksProvider {
    EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDEXAMPLE", "test-secret")
        .kube_client(sim.client().unwrap())
        .sdk_config(
            aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        )
        .build()
        .await
        .unwrap()
}

#[async_trait]
impl Harness for Eks {
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
        let mock = EksMock::start(EksConfig::demo().time_scale(600.0), Some(sim.clone()))
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
        // Someone else (the console, another tool) starts a control-plane update that lasts
        // longer than the behaviour.
        self.mock.inject(EksFault::SlowUpdates(1000));
        let other = build(&self.mock, &self.sim).await;
        let to = behaviours::next_minor(&other).await;
        other
            .upgrade_control_plane(&to, &ControlPlaneOptions::default())
            .await
            .unwrap();
        Ok(())
    }

    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged> {
        self.mock.inject(EksFault::FailNextUpdate(vec![
            (
                "ClusterUnreachable".into(),
                "The cluster's API server endpoint could not be reached".into(),
                vec![],
            ),
            (
                "IpNotAvailable".into(),
                "The subnet does not have enough free addresses".into(),
                vec!["subnet-0a1b2c3d".into()],
            ),
        ]));
        Ok(vec!["ClusterUnreachable".into(), "IpNotAvailable".into()])
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
            .updates("demo")
            .into_iter()
            .map(|u| format!("{:?}", u.target))
            .collect();
        Mutations { sent, accepted }
    }

    fn pool_to_roll(&self) -> Option<String> {
        Some("system".into())
    }
}

kup_tests::behaviour_tests!(Eks);
