//! End to end on AKS: a cluster upgraded 1.33 → 1.34 by the engine is rolled back by a
//! rollback plan made from the live cluster and the provider's offer (each agent pool's
//! `recentlyUsedVersions`). The pools go back through AKS's surge roll on the Kubernetes
//! simulator, PodDisruptionBudgets held; the control plane stays, refused in AKS's words.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kup_aks::{AksBuilder, AksProvider};
use kup_core::{KubeVersion, Outcome, PlanKind, PlanOptions, RollbackRequest, UpgradeProvider};
use kup_engine::journal::MemoryJournalStore;
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, KubeCluster};
use kup_mocks::aks::{AksConfig, AksMock, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, SimHandle, Simulator};
use kup_tests::sim::BudgetWatch;
use tokio_util::sync::CancellationToken;

async fn start() -> (SimHandle, AksMock) {
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
    let mock = AksMock::start(AksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    (sim, mock)
}

fn provider(mock: &AksMock) -> Arc<AksProvider> {
    let (subscription, resource_group) = mock.coordinates();
    Arc::new(
        AksBuilder::new()
            .subscription(subscription)
            .resource_group(resource_group)
            .cluster("demo")
            .endpoint(mock.endpoint())
            .ca_certificate_pem(mock.ca_pem())
            .static_token("test-token")
            .build()
            .unwrap(),
    )
}

fn engine(provider: Arc<AksProvider>, sim: &SimHandle) -> Engine {
    Engine::builder(provider)
        .kube(KubeCluster::from_config(sim.client_config()).unwrap())
        .journal(Arc::new(MemoryJournalStore::default()))
        .lock(Arc::new(LocalLock::new("demo")))
        .options(kup_tests::sim::cloud_options())
        .build()
        .unwrap()
}

fn node_names(sim: &SimHandle) -> BTreeSet<String> {
    sim.nodes()
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_cluster_rolls_its_pools_back_under_pdbs_and_keeps_its_control_plane() {
    let (sim, mock) = start().await;
    let p = provider(&mock);
    let target = KubeVersion::parse("1.34").unwrap();
    let plan = kup_engine::planning::plan_for(p.as_ref(), &target, PlanOptions::default())
        .await
        .unwrap();
    let report = engine(p.clone(), &sim)
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("upgrade failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let upgraded = p.cluster().await.unwrap();
    assert!(upgraded.control_plane.same_minor(&target), "{upgraded:?}");

    let offer = p.rollback_offer().await.unwrap();
    let caps = p.capabilities();
    let rollback = kup_core::plan_rollback(&RollbackRequest {
        cluster: &upgraded,
        caps: &caps,
        offer: &offer,
        control_plane: plan.from.clone(),
        pools: plan.pools.clone(),
        backup: None,
    })
    .unwrap();
    assert_eq!(rollback.kind, PlanKind::Rollback);
    let kinds: Vec<&str> = rollback.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "pool-rollback").count(),
        2,
        "{rollback}"
    );
    assert!(!kinds.iter().any(|k| k.contains("control")), "{rollback}");
    assert!(
        rollback
            .to_string()
            .contains("does not support downgrading"),
        "{rollback}"
    );

    let before = node_names(&sim);
    let deletions_before = sim.pod_deletions().len();
    let budgets = BudgetWatch::start(&sim);
    let report = engine(p.clone(), &sim)
        .run(&rollback, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("rollback failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let violations = budgets.finish().await;
    assert!(violations.is_empty(), "budgets broken: {violations:?}");

    let after = p.cluster().await.unwrap();
    assert_eq!(after.control_plane, upgraded.control_plane);
    for pool in &after.node_pools {
        assert_eq!(pool.version.to_string(), "1.33.5", "{}", pool.name);
    }
    let now = node_names(&sim);
    assert_eq!(now.len(), before.len(), "{before:?} → {now:?}");
    assert!(now.is_disjoint(&before), "{before:?} → {now:?}");
    for node in sim.nodes() {
        assert_eq!(
            node["status"]["nodeInfo"]["kubeletVersion"], "v1.33.5",
            "{}",
            node["metadata"]["name"]
        );
    }
    let app: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .skip(deletions_before)
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(!app.is_empty());
    assert!(app.iter().all(|d| d.via == DeletedVia::Eviction), "{app:?}");
    sim.shutdown().await;
}
