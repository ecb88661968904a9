//! The behaviour suite on the kubeadm provider: a real sshd whose sessions run the node shims
//! (which tell the Kubernetes simulator what changed), a real etcd for the snapshots, and
//! release markers on loopback. Two control-plane nodes and two workers at 1.30.6.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{BackupOptions, UpgradeProvider};
use kup_kube::drain::{DrainOptions, Drainer};
use kup_kubeadm::drain::KubeDrain;
use kup_kubeadm::inventory::Inventory;
use kup_kubeadm::versions::ReleaseSettings;
use kup_kubeadm::{KubeadmProvider, KubeadmSettings};
use kup_mocks::k8s::{Node, Scenario, SimConfig, SimHandle, Simulator};
use kup_tests::lab::{Etcd, Sshd, binary};
use kup_tests::{Harness, Mutations, Unstaged};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CPS: [&str; 2] = ["cp-1", "cp-2"];
const WORKERS: [&str; 2] = ["w-1", "w-2"];

// Fields drop in this order: the provider first, so its SSH masters are told to exit while
// their control sockets (in the sshd's directory) still exist.
struct Kubeadm {
    provider: Arc<KubeadmProvider>,
    sim: SimHandle,
    inventory: String,
    settings: KubeadmSettings,
    sshd: Sshd,
    _etcd: Etcd,
    _releases: MockServer,
    _work: tempfile::TempDir,
}

async fn releases() -> MockServer {
    let server = MockServer::start().await;
    for (marker, body) in [
        ("stable.txt", "v1.32.1"),
        ("stable-1.29.txt", "v1.29.14"),
        ("stable-1.30.txt", "v1.30.6"),
        ("stable-1.31.txt", "v1.31.2"),
        ("stable-1.32.txt", "v1.32.1"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/release/{marker}")))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&server)
            .await;
    }
    for minor in ["v1.31", "v1.32"] {
        Mock::given(method("GET"))
            .and(path(format!("/core:/stable:/{minor}/deb/Release")))
            .respond_with(ResponseTemplate::new(200).set_body_string("Origin: obs\n"))
            .mount(&server)
            .await;
    }
    server
}

fn scenario() -> Scenario {
    let mut s = Scenario::new().version("v1.30.6");
    for cp in CPS {
        s = s
            .node(Node::new(cp).control_plane().kubelet_version("v1.30.6"))
            .object(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("kube-apiserver-{cp}"), "namespace": "kube-system",
                    "labels": {"component": "kube-apiserver", "tier": "control-plane"},
                    "annotations": {"kubernetes.io/config.mirror": "0d2c"}},
                "spec": {"nodeName": cp, "containers": [{"name": "kube-apiserver",
                    "image": "registry.k8s.io/kube-apiserver:v1.30.6"}]}
            }));
    }
    for w in WORKERS {
        s = s.node(Node::new(w).pool("workers").kubelet_version("v1.30.6"));
    }
    s
}

fn provider(inventory: &str, sim: &SimHandle, settings: &KubeadmSettings) -> KubeadmProvider {
    let client = sim.client().unwrap();
    let drain = KubeDrain::new(
        Drainer::new(client.clone()),
        DrainOptions {
            timeout: Some(Duration::from_secs(120)),
            ..DrainOptions::default()
        },
    );
    KubeadmProvider::new(
        Inventory::parse(inventory, None).unwrap(),
        client,
        settings.clone(),
    )
    .unwrap()
    .with_drain(Arc::new(drain))
}

#[async_trait]
impl Harness for Kubeadm {
    async fn start() -> Option<Self> {
        let etcd_bin = binary("KUP_ETCD", "etcd")?;
        let etcdctl = binary("KUP_ETCDCTL", "etcdctl")?;
        let sshd_bin = binary("KUP_SSHD", "sshd")?;
        let sim = Simulator::start(scenario(), SimConfig::fast())
            .await
            .unwrap();
        let nodes: Vec<&str> = CPS.iter().chain(WORKERS.iter()).copied().collect();
        let sshd = Sshd::start(&sshd_bin, &nodes, true, &[("KUP_SIM_URL", sim.url())]);
        let work = tempfile::tempdir().unwrap();
        let etcd = Etcd::start(
            &etcd_bin,
            &etcdctl,
            &work.path().join("etcd-data"),
            "cp-1",
            None,
        );
        etcd.put(&etcdctl, "/registry/namespaces/default", "{}");
        let releases = releases().await;

        let repos = work.path().join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        let mut inventory = format!(
            "cluster: lab\nssh:\n  config_file: {}\n  control_dir: {}\ncontrol_plane:\n",
            sshd.ssh_config.display(),
            sshd.dir.path().display()
        );
        for (i, node) in nodes.iter().enumerate() {
            if i == CPS.len() {
                inventory.push_str("workers:\n");
            }
            let repo = repos.join(format!("{node}.list"));
            std::fs::write(&repo, "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n").unwrap();
            sshd.set_state(node, "repo-file", &repo.display().to_string());
            for p in ["kubeadm", "kubelet", "kubectl"] {
                sshd.set_state(node, &format!("pkg/{p}"), "1.30.6");
                sshd.set_state(node, &format!("hold/{p}"), "");
            }
            if CPS.contains(node) {
                sshd.set_state(node, "role", "control-plane");
                sshd.set_state(node, "apiserver", "1.30.6");
            }
            inventory.push_str(&format!(
                "  - {{name: {node}, host: {node}, repo_file: {}}}\n",
                repo.display()
            ));
        }
        let manifests = work.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(manifests.join("kube-apiserver.yaml"), "spec: {}\n").unwrap();
        let mut settings = KubeadmSettings {
            releases: ReleaseSettings {
                markers_url: format!("{}/release", releases.uri()),
                packages_url: format!("{}/core:/stable:", releases.uri()),
                ..ReleaseSettings::default()
            },
            backup_dir: work.path().join("backups"),
            node_ready_timeout: Duration::from_secs(120),
            ..KubeadmSettings::default()
        };
        settings.etcd.endpoint = etcd.endpoint();
        settings.etcd.data_dir = etcd.data_dir.display().to_string();
        settings.etcd.manifest_dir = manifests.display().to_string();
        settings.etcd.node_work_dir = work.path().join("node").display().to_string();
        settings.etcd.kubelet_config = work
            .path()
            .join("kubelet-config.yaml")
            .display()
            .to_string();
        settings.etcd.local_tool = Some(etcdctl);
        let provider = Arc::new(provider(&inventory, &sim, &settings));
        Some(Self {
            provider,
            sim,
            inventory,
            settings,
            sshd,
            _etcd: etcd,
            _releases: releases,
            _work: work,
        })
    }

    fn provider(&self) -> Arc<dyn UpgradeProvider> {
        self.provider.clone()
    }

    async fn restart(&self) -> Arc<dyn UpgradeProvider> {
        // The old process stops once the node step it is in has finished (a hop runs inside
        // the provider that started it; nothing else is left running by it), then a new one
        // picks the hop up from the cluster.
        self.provider.wait_for_node_step().await;
        Arc::new(provider(&self.inventory, &self.sim, &self.settings))
    }

    fn simulator(&self) -> &SimHandle {
        &self.sim
    }

    fn kube(&self) -> kube::Client {
        self.sim.client().unwrap()
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
        self.sshd.set_state(
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
            for call in self.sshd.calls(node) {
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
