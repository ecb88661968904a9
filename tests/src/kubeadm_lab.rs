//! A kubeadm cluster in a lab: the Kubernetes simulator with control-plane nodes (API server
//! mirror pods) and workers, a real sshd whose sessions run the node shims, a real etcd for
//! the snapshots, release markers and package repositories on loopback, and the inventory and
//! settings that tie them together.

// Test-support code: a lab that cannot start is a failed test, so it panics with context.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use kup_kube::drain::DrainOptions;
use kup_kubeadm::inventory::Inventory;
use kup_kubeadm::versions::ReleaseSettings;
use kup_kubeadm::{KubeadmBuilder, KubeadmProvider, KubeadmSettings};
use kup_mocks::k8s::{Node, Scenario, SimConfig, SimHandle, Simulator};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::lab::{Etcd, Sshd, binary};

/// The version every node starts at.
pub const START: &str = "1.30.6";

/// What the lab holds.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// Control-plane nodes, in inventory order.
    pub control_plane: &'static [&'static str],
    /// Workers (pool `workers`).
    pub workers: &'static [&'static str],
    /// Nodes cordoned by an operator before the upgrade.
    pub cordoned: &'static [&'static str],
    /// Release markers served (`stable-1.31.txt` → `v1.31.2`).
    pub markers: &'static [(&'static str, &'static str)],
}

/// The lab's processes and files. Fields drop in order: the simulator, then the sshd (whose
/// directory holds the SSH control sockets), etcd, the release server and the work directory;
/// a provider built from the lab must be dropped before it.
pub struct KubeadmLab {
    /// The Kubernetes side.
    pub sim: SimHandle,
    /// The nodes' sshd.
    pub sshd: Sshd,
    /// The control plane's etcd.
    pub etcd: Etcd,
    /// Release markers and package repositories.
    pub releases: MockServer,
    /// Repository files (`repos/<node>.list`), manifests, backups, node work directories.
    pub work: tempfile::TempDir,
    /// The host's etcdctl.
    pub etcdctl: PathBuf,
    /// The inventory as written.
    pub inventory_yaml: String,
    /// The inventory.
    pub inventory: Inventory,
    /// The provider's settings for this lab.
    pub settings: KubeadmSettings,
}

impl KubeadmLab {
    /// Starts the lab; `None` when etcd, etcdctl or sshd is missing outside CI.
    pub async fn start(spec: &LabSpec) -> Option<Self> {
        let etcd_bin = binary("KUP_ETCD", "etcd")?;
        let etcdctl = binary("KUP_ETCDCTL", "etcdctl")?;
        let sshd_bin = binary("KUP_SSHD", "sshd")?;
        let sim = Simulator::start(scenario(spec), SimConfig::fast())
            .await
            .expect("simulator");
        let nodes: Vec<&str> = spec
            .control_plane
            .iter()
            .chain(spec.workers)
            .copied()
            .collect();
        let sshd = Sshd::start(&sshd_bin, &nodes, true, &[("KUP_SIM_URL", sim.url())]);
        let work = tempfile::tempdir().unwrap();
        let etcd = Etcd::start(
            &etcd_bin,
            &etcdctl,
            &work.path().join("etcd-data"),
            spec.control_plane.first().copied().unwrap_or("cp-1"),
            None,
        );
        etcd.put(&etcdctl, "/registry/namespaces/default", "{}");
        let releases = releases(spec).await;

        let repos = work.path().join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        let mut yaml = format!(
            "cluster: lab\nssh:\n  config_file: {}\n  control_dir: {}\ncontrol_plane:\n",
            sshd.ssh_config.display(),
            sshd.dir.path().display()
        );
        for (i, node) in nodes.iter().enumerate() {
            if i == spec.control_plane.len() {
                yaml.push_str("workers:\n");
            }
            let repo = repos.join(format!("{node}.list"));
            std::fs::write(
                &repo,
                "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
                 https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n",
            )
            .unwrap();
            sshd.set_state(node, "repo-file", &repo.display().to_string());
            for p in ["kubeadm", "kubelet", "kubectl"] {
                sshd.set_state(node, &format!("pkg/{p}"), START);
                sshd.set_state(node, &format!("hold/{p}"), "");
            }
            if spec.control_plane.contains(node) {
                sshd.set_state(node, "role", "control-plane");
                sshd.set_state(node, "apiserver", START);
            }
            yaml.push_str(&format!(
                "  - {{name: {node}, host: {node}, repo_file: {}}}\n",
                repo.display()
            ));
        }
        let inventory = Inventory::parse(&yaml, None).unwrap();
        let manifests = work.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(manifests.join("kube-apiserver.yaml"), "spec: {}\n").unwrap();
        // The shims stop the simulator from answering while the API server's manifest is
        // away, as the kubelet would stop the static pod.
        for node in spec.control_plane {
            sshd.set_state(node, "manifest-dir", &manifests.display().to_string());
        }
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
        settings.etcd.local_tool = Some(etcdctl.clone());
        Some(Self {
            sim,
            sshd,
            etcd,
            releases,
            work,
            etcdctl,
            inventory_yaml: yaml,
            inventory,
            settings,
        })
    }

    /// A provider for the lab's cluster, as a kup process would build it (drains time out
    /// after two minutes).
    pub async fn provider(&self) -> KubeadmProvider {
        KubeadmBuilder::new()
            .inventory(self.inventory.clone())
            .kube_client(self.sim.client().unwrap())
            .settings(self.settings.clone())
            .drain_options(DrainOptions {
                timeout: Some(Duration::from_secs(120)),
                ..DrainOptions::default()
            })
            .build()
            .await
            .expect("kubeadm provider")
    }
}

async fn releases(spec: &LabSpec) -> MockServer {
    let server = MockServer::start().await;
    for (marker, body) in spec.markers {
        Mock::given(method("GET"))
            .and(path(format!("/release/{marker}")))
            .respond_with(ResponseTemplate::new(200).set_body_string(*body))
            .mount(&server)
            .await;
    }
    // The minor the nodes run (a rollback returns to it) and the ones they move to.
    for minor in ["v1.30", "v1.31", "v1.32"] {
        Mock::given(method("GET"))
            .and(path(format!("/core:/stable:/{minor}/deb/Release")))
            .respond_with(ResponseTemplate::new(200).set_body_string("Origin: obs\n"))
            .mount(&server)
            .await;
    }
    server
}

fn scenario(spec: &LabSpec) -> Scenario {
    let kubelet = format!("v{START}");
    let mut s = Scenario::new().version(&kubelet);
    for cp in spec.control_plane {
        let mut node = Node::new(*cp).control_plane().kubelet_version(&kubelet);
        if spec.cordoned.contains(cp) {
            node = node.unschedulable();
        }
        s = s.node(node).object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("kube-apiserver-{cp}"), "namespace": "kube-system",
                "labels": {"component": "kube-apiserver", "tier": "control-plane"},
                "annotations": {"kubernetes.io/config.mirror": "0d2c"}},
            "spec": {"nodeName": cp, "containers": [{"name": "kube-apiserver",
                "image": format!("registry.k8s.io/kube-apiserver:v{START}")}]}
        }));
    }
    for w in spec.workers {
        let mut node = Node::new(*w).pool("workers").kubelet_version(&kubelet);
        if spec.cordoned.contains(w) {
            node = node.unschedulable();
        }
        s = s.node(node);
    }
    s
}
