//! The behaviour suite on the kubeadm provider: a real sshd whose sessions run the node shims
//! (which tell the Kubernetes simulator what changed), a real etcd for the snapshots, and
//! release markers on loopback. Two control-plane nodes and two workers at 1.30.6.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use kup_core::{BackupOptions, UpgradeProvider};
use kup_kubeadm::KubeadmProvider;
use kup_mocks::k8s::SimHandle;
use kup_tests::kubeadm_lab::{KubeadmLab, LabSpec};
use kup_tests::{Harness, Mutations, Unstaged};

const CPS: [&str; 2] = ["cp-1", "cp-2"];
const WORKERS: [&str; 2] = ["w-1", "w-2"];

const SPEC: LabSpec = LabSpec {
    control_plane: &CPS,
    workers: &WORKERS,
    cordoned: &[],
    markers: &[
        ("stable.txt", "v1.32.1"),
        ("stable-1.29.txt", "v1.29.14"),
        ("stable-1.30.txt", "v1.30.6"),
        ("stable-1.31.txt", "v1.31.2"),
        ("stable-1.32.txt", "v1.32.1"),
    ],
};

// Fields drop in this order: the provider first, so its SSH masters are told to exit while
// their control sockets (in the lab's sshd directory) still exist.
struct Kubeadm {
    provider: Arc<KubeadmProvider>,
    lab: KubeadmLab,
}

#[async_trait]
impl Harness for Kubeadm {
    async fn start() -> Option<Self> {
        let lab = KubeadmLab::start(&SPEC).await?;
        let provider = Arc::new(lab.provider().await);
        Some(Self { provider, lab })
    }

    fn provider(&self) -> Arc<dyn UpgradeProvider> {
        self.provider.clone()
    }

    async fn restart(&self) -> Arc<dyn UpgradeProvider> {
        // The old process stops once the node step it is in has finished (a hop runs inside
        // the provider that started it; nothing else is left running by it), then a new one
        // picks the hop up from the cluster.
        self.provider.wait_for_node_step().await;
        Arc::new(self.lab.provider().await)
    }

    fn simulator(&self) -> &SimHandle {
        &self.lab.sim
    }

    fn kube(&self) -> kube::Client {
        self.lab.sim.client().unwrap()
    }

    async fn prepare_control_plane(&self) {
        // kubeadm never moves a control plane without a verified snapshot of it.
        self.provider
            .backup(&BackupOptions::default())
            .await
            .unwrap();
    }

    async fn make_busy(&self) -> Result<(), Unstaged> {
        Err(Unstaged::because(
            "a kubeadm hop runs inside the provider that started it, and nothing outside that \
             process can start one this provider would see; a second start of the same hop \
             answers that hop",
        ))
    }

    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged> {
        self.lab.sshd.set_state(
            "cp-2",
            "fail/upgrade-node",
            "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to \
             recover everything into the earlier state\n",
        );
        Ok(vec!["CommandFailed".into(), "EtcdSnapshotAvailable".into()])
    }

    fn mutations(&self) -> Mutations {
        let mut sent = Vec::new();
        let mut accepted = Vec::new();
        for node in CPS.iter().chain(WORKERS.iter()) {
            for call in self.lab.sshd.calls(node) {
                // The commands that change a node, named with their versions so that the same
                // step run twice reads the same.
                if call.starts_with("kubeadm upgrade apply")
                    || call.starts_with("kubeadm upgrade node")
                    || call.starts_with("apt-get install")
                {
                    accepted.push(format!("{node}: {call}"));
                }
                sent.push(format!("{node}: {call}"));
            }
        }
        Mutations { sent, accepted }
    }

    fn tracks_operations(&self) -> Result<(), Unstaged> {
        Err(Unstaged::because(
            "kubeadm derives an operation's state from the cluster (API server images, \
             kubelets), not from a record of operations started, so it cannot tell an id it \
             never issued",
        ))
    }
}

kup_tests::behaviour_tests!(Kubeadm);
