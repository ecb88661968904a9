//! A full 1.33 → 1.35 upgrade of an EKS cluster with two node groups and three add-ons, run by
//! kup's engine through the EKS provider against the EKS mock, which plays node-group updates
//! out on the Kubernetes simulator; validated at the end.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kup_core::{KubeVersion, Outcome, PlanOptions, StepAction, UpgradeProvider};
use kup_eks::EksBuilder;
use kup_engine::events::Recorder;
use kup_engine::journal::MemoryJournalStore;
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, KubeCluster};
use kup_mocks::eks::{EksConfig, EksMock, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_two_minors_with_node_groups_and_addons_and_validates() {
    let sim = Simulator::start(
        demo_scenario(),
        SimConfig::fast()
            .time_scale(50.0)
            .pod_start_delay(Duration::from_secs(1))
            .pod_ready_delay(Duration::from_secs(1))
            .pod_shutdown_delay(Duration::from_secs(1))
            .node_ready_delay(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let provider = Arc::new(
        EksBuilder::new()
            .cluster_name("demo")
            .region("us-west-2")
            .endpoint_url(mock.endpoint())
            .static_credentials("AKIDEXAMPLE", "test-secret")
            .kube_client(sim.client().unwrap())
            .build()
            .await
            .unwrap(),
    );
    let target = KubeVersion::parse("1.35").unwrap();
    let plan = kup_engine::planning::plan_for(provider.as_ref(), &target, PlanOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.control_plane_hops().count(), 2);
    let addon_steps = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, StepAction::Addon { .. }))
        .count();
    assert!(addon_steps >= 3, "{plan}");

    let events = Arc::new(Recorder::new());
    let store = Arc::new(MemoryJournalStore::default());
    let engine = Engine::builder(provider.clone())
        .kube(KubeCluster::from_config(sim.client_config()).unwrap())
        .journal(store.clone())
        .lock(Arc::new(LocalLock::new("demo")))
        .events(events.clone())
        .options(kup_tests::sim::cloud_options())
        .build()
        .unwrap();
    let report = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");

    // The provider's view: everything at 1.35 and the add-ons at 1.35's defaults.
    let cluster = provider.cluster().await.unwrap();
    assert_eq!(cluster.control_plane, target);
    for pool in &cluster.node_pools {
        assert_eq!(pool.version, target, "{}", pool.name);
    }
    assert_eq!(
        mock.addon_version("demo", "kube-proxy").as_deref(),
        Some("v1.35.0-eksbuild.2")
    );
    assert_eq!(
        mock.addon_version("demo", "coredns").as_deref(),
        Some("v1.12.4-eksbuild.1")
    );
    assert_eq!(
        mock.addon_version("demo", "vpc-cni").as_deref(),
        Some("v1.20.4-eksbuild.1")
    );
    // Two control-plane updates, each node group updated as rarely as skew allows, no update
    // started twice.
    let updates = mock.updates("demo");
    let cp = updates
        .iter()
        .filter(|u| matches!(u.target, kup_mocks::eks::UpdateTarget::ControlPlane { .. }))
        .count();
    assert_eq!(cp, 2);
    assert!(
        updates.iter().all(|u| u.status == "Successful"),
        "{updates:?}"
    );

    // The simulated cluster: every node at 1.35, nothing cordoned, application pods only ever
    // removed through the eviction API.
    for node in sim.nodes() {
        assert!(
            node["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap()
                .starts_with("v1.35."),
            "{}",
            node["metadata"]["name"]
        );
        assert_ne!(node["spec"]["unschedulable"], true);
        // Replacements are EC2 instances as the AWS cloud provider registers them.
        let labels = &node["metadata"]["labels"];
        let zone = labels["topology.kubernetes.io/zone"].as_str().unwrap();
        assert!(zone.starts_with("us-west-2"), "{labels}");
        assert_eq!(labels["node.kubernetes.io/instance-type"], "m5.large");
        let id = node["spec"]["providerID"].as_str().unwrap();
        assert!(id.starts_with(&format!("aws:///{zone}/i-0")), "{id}");
    }
    let ids: std::collections::BTreeSet<String> = sim
        .nodes()
        .iter()
        .map(|n| n["spec"]["providerID"].to_string())
        .collect();
    assert_eq!(ids.len(), sim.nodes().len(), "one instance per node");
    let app_deletions: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(!app_deletions.is_empty());
    assert!(app_deletions.iter().all(|d| d.via == DeletedVia::Eviction));
    assert!(
        events.count(|e| matches!(e, kup_core::Event::ValidationRound { .. })) > 0,
        "validated"
    );
    sim.shutdown().await;
}
