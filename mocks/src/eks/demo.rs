//! The Kubernetes side of the EKS demo cluster ([`super::EksConfig::demo`]): the nodes of node
//! groups `system` and `apps`, EKS's add-ons as workloads, and an application under
//! PodDisruptionBudgets.

use super::roll::NODEGROUP_LABEL;
use crate::k8s::{AwsPlacement, Pdb, Pool, Pvc, Scenario, Workload};

const CRITICAL: &str = "system-cluster-critical";
const NODE_CRITICAL: &str = "system-node-critical";

/// The simulated cluster behind the demo EKS cluster: API server v1.33.5, node groups
/// `system` (2 nodes) and `apps` (3 nodes) labelled `eks.amazonaws.com/nodegroup`, aws-node
/// and kube-proxy DaemonSets, CoreDNS (2 replicas, PDB), and namespace `shop`: `web`
/// (3 replicas, PDB minAvailable 2), `api` (2, PDB maxUnavailable 1) and `db` (StatefulSet
/// of 3 with claims, PDB maxUnavailable 1). Every budget allows a disruption once
/// replacements are Ready, so node-group updates complete.
pub fn demo_scenario() -> Scenario {
    let kubelet = "v1.33.5-eks-3025e55";
    Scenario::new()
        .version("v1.33.5-eks-3025e55")
        .pool_label(NODEGROUP_LABEL)
        .pool(
            Pool::new("system", 2)
                .prefix("ip-10-0-1")
                .kubelet_version(kubelet)
                .label("eks.amazonaws.com/capacityType", "ON_DEMAND")
                .aws(AwsPlacement::new("us-west-2", "m5.large")),
        )
        .pool(
            Pool::new("apps", 3)
                .prefix("ip-10-0-2")
                .kubelet_version(kubelet)
                .label("eks.amazonaws.com/capacityType", "ON_DEMAND")
                .aws(AwsPlacement::new("us-west-2", "m5.large")),
        )
        .workload(
            Workload::daemon_set("kube-system", "aws-node")
                .label("k8s-app", "aws-node")
                .image("602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.19.6-eksbuild.1")
                .priority_class(NODE_CRITICAL)
                .tolerate_all(),
        )
        .workload(
            Workload::daemon_set("kube-system", "kube-proxy")
                .label("k8s-app", "kube-proxy")
                .image("602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy:v1.33.0-minimal-eksbuild.2")
                .priority_class(NODE_CRITICAL)
                .tolerate_all(),
        )
        .workload(
            Workload::deployment("kube-system", "coredns")
                .label("k8s-app", "kube-dns")
                .replicas(2)
                .image("602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/coredns:v1.12.1-eksbuild.2")
                .priority_class(CRITICAL)
                .pool("system"),
        )
        .pdb(
            Pdb::new("kube-system", "coredns")
                .match_label("k8s-app", "kube-dns")
                .max_unavailable(1),
        )
        .workload(
            Workload::deployment("shop", "web")
                .replicas(3)
                .image("nginx:1.27")
                .pool("apps"),
        )
        .pdb(Pdb::new("shop", "web").match_label("app", "web").min_available(2))
        .workload(
            Workload::deployment("shop", "api")
                .replicas(2)
                .image("ghcr.io/example/api:2.4.1")
                .pool("apps"),
        )
        .pdb(Pdb::new("shop", "api").match_label("app", "api").max_unavailable(1))
        .workload(
            Workload::stateful_set("shop", "db")
                .replicas(3)
                .image("postgres:17")
                .volume_claim("5Gi")
                .pool("apps"),
        )
        .pdb(Pdb::new("shop", "db").match_label("app", "db").max_unavailable(1))
        .pvc(Pvc::new("shop", "uploads").storage("20Gi"))
}
