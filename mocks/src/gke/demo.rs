//! The Kubernetes side of the GKE demo cluster ([`super::GkeConfig::demo`]): the nodes of node
//! pools `default-pool` and `apps`, GKE's managed add-ons as workloads, and an application
//! under PodDisruptionBudgets.

use super::roll::NODE_POOL_LABEL;
use crate::k8s::{Pdb, Pool, Pvc, Scenario, Workload};

const CRITICAL: &str = "system-cluster-critical";
const NODE_CRITICAL: &str = "system-node-critical";

/// The simulated cluster behind the demo GKE cluster: API server v1.33.5-gke.1080000, node
/// pools `default-pool` (2 nodes) and `apps` (3 nodes) labelled
/// `cloud.google.com/gke-nodepool`, the kube-proxy and fluentbit-gke DaemonSets, kube-dns
/// (2 replicas, PDB), and namespace `shop`: `web` (3 replicas, PDB minAvailable 2), `api`
/// (2, PDB maxUnavailable 1) and `db` (StatefulSet of 3 with claims, PDB maxUnavailable 1).
/// Every budget allows a disruption once replacements are Ready, so upgrades complete.
pub fn demo_scenario() -> Scenario {
    let kubelet = "v1.33.5-gke.1080000";
    Scenario::new()
        .version(kubelet)
        .pool_label(NODE_POOL_LABEL)
        .pool(
            Pool::new("default-pool", 2)
                .prefix("gke-demo-default-pool-5c1a9e2f")
                .kubelet_version(kubelet)
                .label("cloud.google.com/machine-family", "e2"),
        )
        .pool(
            Pool::new("apps", 3)
                .prefix("gke-demo-apps-8b3d0c47")
                .kubelet_version(kubelet)
                .label("cloud.google.com/machine-family", "e2"),
        )
        .workload(
            Workload::daemon_set("kube-system", "kube-proxy")
                .label("k8s-app", "kube-proxy")
                .image("gke.gcr.io/kube-proxy-amd64:v1.33.5-gke.1080000")
                .priority_class(NODE_CRITICAL)
                .tolerate_all(),
        )
        .workload(
            Workload::daemon_set("kube-system", "fluentbit-gke")
                .label("k8s-app", "fluentbit-gke")
                .image("gke.gcr.io/fluent-bit:v1.8.12-gke.41")
                .priority_class(NODE_CRITICAL)
                .tolerate_all(),
        )
        .workload(
            Workload::deployment("kube-system", "kube-dns")
                .label("k8s-app", "kube-dns")
                .replicas(2)
                .image("gke.gcr.io/k8s-dns-kube-dns:1.23.0-gke.20")
                .priority_class(CRITICAL)
                .pool("default-pool"),
        )
        .pdb(
            Pdb::new("kube-system", "kube-dns")
                .match_label("k8s-app", "kube-dns")
                .max_unavailable(1),
        )
        .workload(
            Workload::deployment("shop", "web")
                .replicas(3)
                .image("nginx:1.27")
                .pool("apps"),
        )
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(2),
        )
        .workload(
            Workload::deployment("shop", "api")
                .replicas(2)
                .image("ghcr.io/example/api:2.4.1")
                .pool("apps"),
        )
        .pdb(
            Pdb::new("shop", "api")
                .match_label("app", "api")
                .max_unavailable(1),
        )
        .workload(
            Workload::stateful_set("shop", "db")
                .replicas(3)
                .image("postgres:17")
                .volume_claim("5Gi")
                .pool("apps"),
        )
        .pdb(
            Pdb::new("shop", "db")
                .match_label("app", "db")
                .max_unavailable(1),
        )
        .pvc(Pvc::new("shop", "uploads").storage("20Gi"))
}
