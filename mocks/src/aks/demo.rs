//! The Kubernetes side of the AKS demo cluster ([`super::AksConfig::demo`]): the nodes of agent
//! pools `system` and `apps`, AKS's system add-ons as workloads, and an application under
//! PodDisruptionBudgets.

use super::roll::{AGENTPOOL_LABEL, MODE_LABEL, NODE_IMAGE_LABEL};
use crate::k8s::{Pdb, Pool, Scenario, Workload};

const CRITICAL: &str = "system-cluster-critical";
const NODE_CRITICAL: &str = "system-node-critical";

/// The node image the demo cluster's nodes start on (older than the mock's newest).
pub const DEMO_NODE_IMAGE: &str = "AKSUbuntu-2204gen2containerd-202510.15.0";

/// The simulated cluster behind the demo AKS cluster: API server v1.33.5, agent pools
/// `system` (2 nodes, mode System) and `apps` (3 nodes, mode User) labelled
/// `kubernetes.azure.com/agentpool`, the kube-proxy and azure-cns DaemonSets, CoreDNS (2
/// replicas, PDB) and metrics-server on the system pool, and namespace `shop`: `web` (3
/// replicas, PDB minAvailable 2), `api` (2, PDB maxUnavailable 1) and `db` (StatefulSet of 3,
/// PDB maxUnavailable 1). Every budget allows a disruption once replacements are Ready.
pub fn demo_scenario() -> Scenario {
    let kubelet = "v1.33.5";
    let pool = |name: &str, count: u32, mode: &str| {
        Pool::new(name, count)
            .prefix(format!("aks-{name}-31415926-vmss00000"))
            .kubelet_version(kubelet)
            .label(MODE_LABEL, mode)
            .label(NODE_IMAGE_LABEL, DEMO_NODE_IMAGE)
            .label("agentpool", name)
    };
    Scenario::new()
        .version("v1.33.5")
        .pool_label(AGENTPOOL_LABEL)
        .pool(pool("system", 2, "system"))
        .pool(pool("apps", 3, "user"))
        .workload(
            Workload::daemon_set("kube-system", "kube-proxy")
                .label("component", "kube-proxy")
                .image("mcr.microsoft.com/oss/kubernetes/kube-proxy:v1.33.5")
                .priority_class(NODE_CRITICAL)
                .tolerate_all(),
        )
        .workload(
            Workload::daemon_set("kube-system", "azure-cns")
                .label("k8s-app", "azure-cns")
                .image("mcr.microsoft.com/containernetworking/azure-cns:v1.6.30")
                .priority_class(NODE_CRITICAL)
                .tolerate_all(),
        )
        .workload(
            Workload::deployment("kube-system", "coredns")
                .label("k8s-app", "kube-dns")
                .replicas(2)
                .image("mcr.microsoft.com/oss/kubernetes/coredns:v1.12.1")
                .priority_class(CRITICAL)
                .pool("system"),
        )
        .pdb(
            Pdb::new("kube-system", "coredns-pdb")
                .match_label("k8s-app", "kube-dns")
                .max_unavailable(1),
        )
        .workload(
            Workload::deployment("kube-system", "metrics-server")
                .label("k8s-app", "metrics-server")
                .replicas(2)
                .image("mcr.microsoft.com/oss/kubernetes/metrics-server:v0.7.2")
                .priority_class(CRITICAL)
                .pool("system"),
        )
        .pdb(
            Pdb::new("kube-system", "metrics-server-pdb")
                .match_label("k8s-app", "metrics-server")
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
}
