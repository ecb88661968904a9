//! The behaviour suite on the kubernetes provider (any conformant cluster): kube-rs against the
//! Kubernetes simulator playing a k3s cluster (three control-plane nodes, pools `pool-a` and
//! `pool-b` by the `kup.dev/pool` label). The provider declares no upgrades, so the
//! behaviours that start one check that it answers `NotSupported` and sends nothing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use kup_core::UpgradeProvider;
use kup_kubernetes::{Distribution, KubernetesProvider};
use kup_mocks::k8s::{Scenario, SimConfig, SimHandle, Simulator};
use kup_tests::{Harness, Mutations, Unstaged};

const MUTATING: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

struct Kubernetes {
    sim: SimHandle,
    provider: Arc<KubernetesProvider>,
}

async fn build(sim: &SimHandle) -> KubernetesProvider {
    let provider = KubernetesProvider::connect(sim.client().unwrap(), "lab")
        .await
        .unwrap()
        .with_pool_label("kup.dev/pool");
    assert_eq!(provider.distribution(), Distribution::K3s);
    provider
}

#[async_trait]
impl Harness for Kubernetes {
    async fn start() -> Option<Self> {
        let sim = Simulator::start(Scenario::small().version("v1.33.5+k3s1"), SimConfig::fast())
            .await
            .unwrap();
        let provider = Arc::new(build(&sim).await);
        Some(Self { sim, provider })
    }

    fn provider(&self) -> Arc<dyn UpgradeProvider> {
        self.provider.clone()
    }

    async fn restart(&self) -> Arc<dyn UpgradeProvider> {
        Arc::new(build(&self.sim).await)
    }

    fn simulator(&self) -> &SimHandle {
        &self.sim
    }

    fn kube(&self) -> kube::Client {
        self.sim.client().unwrap()
    }

    async fn make_busy(&self) -> Result<(), Unstaged> {
        Err(Unstaged::because(
            "the kubernetes provider starts no operations, so there is none to be busy with",
        ))
    }

    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged> {
        Err(Unstaged::because(
            "the kubernetes provider starts no operations, so there is none to fail",
        ))
    }

    fn mutations(&self) -> Mutations {
        let mut sent = Vec::new();
        let mut accepted = Vec::new();
        for r in self.sim.requests().entries() {
            if MUTATING.contains(&r.method.as_str()) {
                let call = format!("{} {}", r.method, r.path);
                if (200..300).contains(&r.status) {
                    accepted.push(call.clone());
                }
                sent.push(call);
            }
        }
        Mutations { sent, accepted }
    }
}

kup_tests::behaviour_tests!(Kubernetes);
