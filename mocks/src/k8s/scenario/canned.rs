//! The canned scenarios.

use super::{Pdb, Pod, Pool, Pvc, Scenario, Workload};

const CRITICAL: &str = "system-cluster-critical";
const NODE_CRITICAL: &str = "system-node-critical";

/// kube-proxy and a CNI agent on every node, tolerating everything.
fn node_agents(s: Scenario) -> Scenario {
    s.workload(
        Workload::daemon_set("kube-system", "kube-proxy")
            .label("k8s-app", "kube-proxy")
            .image("registry.k8s.io/kube-proxy:v1.33.5")
            .priority_class(NODE_CRITICAL)
            .tolerate_all(),
    )
    .workload(
        Workload::daemon_set("kube-system", "cilium")
            .label("k8s-app", "cilium")
            .image("quay.io/cilium/cilium:v1.18.2")
            .priority_class(NODE_CRITICAL)
            .tolerate_all(),
    )
}

/// kubeadm's static control-plane pods (mirror pods) on each control-plane node.
fn static_pods(mut s: Scenario, nodes: &[String]) -> Scenario {
    for n in nodes {
        for component in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            s = s.pod(
                Pod::new("kube-system", format!("{component}-{n}"))
                    .node(n.clone())
                    .label("component", component)
                    .label("tier", "control-plane")
                    .priority_class(NODE_CRITICAL)
                    .mirror(),
            );
        }
    }
    s
}

fn cluster_addons(s: Scenario, coredns: u32) -> Scenario {
    s.workload(
        Workload::deployment("kube-system", "coredns")
            .replicas(coredns)
            .label("k8s-app", "kube-dns")
            .image("registry.k8s.io/coredns/coredns:v1.12.0")
            .priority_class(CRITICAL)
            .tolerate_control_plane(),
    )
    .pdb(
        Pdb::new("kube-system", "coredns")
            .match_label("k8s-app", "kube-dns")
            .max_unavailable(1),
    )
    .workload(
        Workload::deployment("kube-system", "metrics-server")
            .label("k8s-app", "metrics-server")
            .image("registry.k8s.io/metrics-server/metrics-server:v0.8.0")
            .priority_class(CRITICAL)
            .empty_dir(),
    )
}

impl Scenario {
    /// 3 control-plane nodes and 6 workers (two pools) on v1.33.5, with kubeadm-style static
    /// pods, kube-proxy, a CNI, CoreDNS (with a PDB), metrics-server (emptyDir), node-exporter,
    /// and an app namespace `shop`: `web` (3 replicas, PDB minAvailable 2), `api` (2, PDB
    /// maxUnavailable 1), `db` StatefulSet (3, claims, PDB maxUnavailable 1) and `cache`
    /// (2, emptyDir, PDB minAvailable 50%). Every PDB allows at least one disruption, so a
    /// drain completes once replacements are Ready.
    pub fn small() -> Scenario {
        let s = Scenario::new()
            .version("v1.33.5")
            .pool(Pool::new("cp", 3).control_plane())
            .pool(Pool::new("pool-a", 3))
            .pool(Pool::new("pool-b", 3));
        let cps = s.pools[0].node_names();
        let s = static_pods(node_agents(s), &cps);
        cluster_addons(s, 2)
            .workload(
                Workload::daemon_set("monitoring", "node-exporter")
                    .label("app.kubernetes.io/name", "node-exporter")
                    .image("quay.io/prometheus/node-exporter:v1.9.1")
                    .tolerate_all(),
            )
            .workload(
                Workload::deployment("shop", "web")
                    .replicas(3)
                    .image("nginx:1.27"),
            )
            .pdb(
                Pdb::new("shop", "web")
                    .match_label("app", "web")
                    .min_available(2),
            )
            .workload(
                Workload::deployment("shop", "api")
                    .replicas(2)
                    .image("ghcr.io/example/api:2.4.1"),
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
                    .volume_claim("5Gi"),
            )
            .pdb(
                Pdb::new("shop", "db")
                    .match_label("app", "db")
                    .max_unavailable(1),
            )
            .workload(
                Workload::deployment("shop", "cache")
                    .replicas(2)
                    .image("redis:7.4")
                    .empty_dir(),
            )
            .pdb(
                Pdb::new("shop", "cache")
                    .match_label("app", "cache")
                    .min_available("50%"),
            )
            .pvc(Pvc::new("shop", "uploads").storage("20Gi"))
    }

    /// One control-plane node and 3 workers where `payments` (2 replicas, PDB minAvailable 2)
    /// and `ledger` (StatefulSet of 1, PDB maxUnavailable 0) can never be evicted: a drain of
    /// their nodes retries until its deadline.
    pub fn pdb_blocked() -> Scenario {
        let s = Scenario::new()
            .version("v1.33.5")
            .pool(Pool::new("cp", 1).control_plane())
            .pool(Pool::new("workers", 3));
        let cps = s.pools[0].node_names();
        static_pods(node_agents(s), &cps)
            .workload(
                Workload::deployment("finance", "payments")
                    .replicas(2)
                    .pool("workers"),
            )
            .pdb(
                Pdb::new("finance", "payments")
                    .match_label("app", "payments")
                    .min_available(2),
            )
            .workload(
                Workload::stateful_set("finance", "ledger")
                    .pool("workers")
                    .volume_claim("1Gi"),
            )
            .pdb(
                Pdb::new("finance", "ledger")
                    .match_label("app", "ledger")
                    .max_unavailable(0),
            )
            .workload(
                Workload::deployment("finance", "frontend")
                    .replicas(2)
                    .pool("workers"),
            )
            .pdb(
                Pdb::new("finance", "frontend")
                    .match_label("app", "frontend")
                    .max_unavailable(1),
            )
    }

    /// 5,003 nodes (3 control-plane, 10 pools of 500) and about 150,000 pods: kube-proxy and a
    /// CNI on every node, CoreDNS, and 50 namespaces × 28 Deployments × 100 replicas, each with
    /// a `maxUnavailable: 10%` PDB.
    pub fn large() -> Scenario {
        let mut s = Scenario::new()
            .version("v1.33.5")
            .pool(Pool::new("cp", 3).control_plane());
        for p in 0..10 {
            s = s.pool(Pool::new(format!("pool-{p:02}"), 500));
        }
        let cps = s.pools[0].node_names();
        let mut s = cluster_addons(static_pods(node_agents(s), &cps), 10);
        for t in 0..50 {
            let ns = format!("team-{t:02}");
            for a in 0..28 {
                let name = format!("svc-{a:02}");
                s = s
                    .workload(Workload::deployment(ns.clone(), name.clone()).replicas(100))
                    .pdb(
                        Pdb::new(ns.clone(), name.clone())
                            .match_label("app", name)
                            .max_unavailable("10%"),
                    );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_scenarios_are_valid() {
        for s in [
            Scenario::small(),
            Scenario::pdb_blocked(),
            Scenario::large(),
        ] {
            assert!(s.validate().is_ok(), "{:?}", s.validate());
        }
        assert_eq!(Scenario::small().node_names().len(), 9);
        assert_eq!(Scenario::large().node_names().len(), 5003);
    }
}
