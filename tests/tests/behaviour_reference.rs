//! The behaviour suite on the reference provider: [`SimProvider`] over the Kubernetes
//! simulator, with a kup-rolled pool, a provider-rolled pool one minor behind the control
//! plane, workloads under PodDisruptionBudgets and an add-on.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{ControlPlaneOptions, PoolManagement, ProviderErrorDetail, UpgradeProvider};
use kup_mocks::k8s::{Pool, SimHandle, Simulator};
use kup_tests::reference::{SimProvider, Timing};
use kup_tests::sim::{sim_config, standard};
use kup_tests::{Harness, Mutations, Unstaged, behaviours};

struct Reference {
    sim: SimHandle,
    provider: Arc<SimProvider>,
}

#[async_trait]
impl Harness for Reference {
    async fn start() -> Option<Self> {
        let mut setup = standard();
        // The provider-rolled pool lags a minor, so rolling it to the control plane replaces
        // every node.
        setup.scenario = setup
            .scenario
            .pool(Pool::new("lag", 2).kubelet_version("v1.30.6"));
        setup.pools.push(("lag", PoolManagement::Provider));
        let sim = Simulator::start(setup.scenario, sim_config())
            .await
            .unwrap();
        let provider = SimProvider::new(
            "prod",
            &sim,
            &setup.pools,
            &setup.addons,
            SimProvider::capabilities(setup.max_jump),
            Timing::default(),
        );
        Some(Self {
            sim,
            provider: Arc::new(provider),
        })
    }

    fn provider(&self) -> Arc<dyn UpgradeProvider> {
        self.provider.clone()
    }

    async fn restart(&self) -> Arc<dyn UpgradeProvider> {
        Arc::new(self.provider.reconnect())
    }

    fn simulator(&self) -> &SimHandle {
        &self.sim
    }

    fn kube(&self) -> kube::Client {
        self.sim.client().unwrap()
    }

    async fn make_busy(&self) -> Result<(), Unstaged> {
        // Another client starts a control-plane operation that outlasts the behaviour.
        let other = self.provider.reconnect().with_timing(Timing {
            control_plane: Duration::from_secs(600),
            ..Timing::default()
        });
        let to = behaviours::next_minor(&other).await;
        other
            .upgrade_control_plane(&to, &ControlPlaneOptions::default())
            .await
            .unwrap();
        Ok(())
    }

    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged> {
        self.provider.set_faults(|f| {
            f.fail_control_plane = Some(vec![ProviderErrorDetail {
                code: "ControlPlaneUpdateFailed".into(),
                message: "the new API servers did not become healthy".into(),
                resource_ids: vec!["apiserver-0".into()],
            }])
        });
        Ok(vec!["ControlPlaneUpdateFailed".into()])
    }

    fn mutations(&self) -> Mutations {
        // The provider refuses before it records anything, so what it sent is what it started.
        let started: Vec<String> = self
            .provider
            .started()
            .into_iter()
            .map(|(target, to)| format!("{target} → {to}"))
            .collect();
        Mutations {
            sent: started.clone(),
            accepted: started,
        }
    }

    fn pool_to_roll(&self) -> Option<String> {
        Some("lag".into())
    }
}

kup_tests::behaviour_tests!(Reference);
