//! The kubernetes provider against the simulator: pools from the nodes, the versions they run,
//! drains through the eviction API.

#![allow(clippy::unwrap_used)]

use kup_core::{PoolManagement, UpgradeProvider};
use kup_kube::drain::DrainOptions;
use kup_kubernetes::{Distribution, KubernetesProvider};
use kup_mocks::k8s::{DeletedVia, Node, Scenario, SimConfig, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_come_from_the_nodes_and_drains_go_through_the_eviction_api() {
    let scenario = Scenario::small().version("v1.33.5+rke2r1").node(
        Node::new("pool-b-old")
            .pool("pool-b")
            .kubelet_version("v1.31.9+rke2r1"),
    );
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    let plain = KubernetesProvider::connect(sim.client().unwrap(), "lab")
        .await
        .unwrap();
    assert_eq!(plain.distribution(), Distribution::Rke2);
    let names: Vec<String> = plain
        .cluster()
        .await
        .unwrap()
        .node_pools
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, ["control-plane", "workers"]);

    let p = plain.with_pool_label("kup.dev/pool");
    let info = p.cluster().await.unwrap();
    let pools: Vec<(String, String, Option<u32>, bool)> = info
        .node_pools
        .iter()
        .map(|p| {
            assert_eq!(p.management, PoolManagement::External);
            (
                p.name.clone(),
                p.version.to_string(),
                p.node_count,
                p.control_plane,
            )
        })
        .collect();
    assert_eq!(
        pools,
        [
            (
                "control-plane".into(),
                "1.33.5+rke2r1".into(),
                Some(3),
                true
            ),
            ("pool-a".into(), "1.33.5+rke2r1".into(), Some(3), false),
            ("pool-b".into(), "1.31.9+rke2r1".into(), Some(4), false),
        ]
    );
    let versions: Vec<String> = p
        .available_versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version.to_string())
        .collect();
    assert_eq!(versions, ["1.31.9+rke2r1", "1.33.5+rke2r1", "1.34"]);
    assert!(
        p.capabilities()
            .upgrade_tool
            .unwrap()
            .contains("INSTALL_RKE2_VERSION")
    );

    let opts = DrainOptions {
        ignore_daemonsets: true,
        delete_emptydir_data: true,
        ..DrainOptions::default()
    };
    p.drain("pool-a-2", &opts, &kup_core::NoEvents)
        .await
        .unwrap();
    assert_eq!(
        sim.get("nodes", None, "pool-a-2").unwrap()["spec"]["unschedulable"],
        true
    );
    let moved: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .filter(|d| d.node == "pool-a-2")
        .collect();
    assert!(!moved.is_empty());
    assert!(
        moved.iter().all(|d| d.via == DeletedVia::Eviction),
        "{moved:?}"
    );
    assert!(p.uncordon("pool-a-2").await.unwrap());
    assert!(!p.uncordon("pool-a-2").await.unwrap());

    let err = KubernetesProvider::connect(sim.client().unwrap(), "Not A Label")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cluster_name"), "{err}");
    sim.shutdown().await;
}
