//! End to end on EKS: node group `apps` moved to newer launch template versions is rolled back
//! by a rollback plan made from the live cluster and the provider's offer (the group's update
//! history), dry-run, then run by the engine: EKS replaces the group's nodes on the Kubernetes
//! simulator through the eviction API, PodDisruptionBudgets held, and the journal records the
//! step. A node group whose last update moved its Kubernetes version is refused in EKS's words
//! and nothing moves. The control plane, upgraded 1.33 → 1.34 in place, goes back to 1.33 by
//! EKS version rollback while the 7-day window lasts, and is refused once it has closed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eks::types::LaunchTemplateSpecification;
use kup_core::{
    KubeVersion, Operation, OperationStatus, OperationTarget, Outcome, PlanKind, PlanOptions,
    ProviderKind, RollbackRequest, StepAction, UpgradeProvider,
};
use kup_eks::{
    CONTROL_PLANE_ROLLBACK_REFUSAL, EksBuilder, EksProvider, NODE_GROUP_ROLLBACK_REFUSAL,
};
use kup_engine::journal::{MemoryJournalStore, StepState};
use kup_engine::lock::LocalLock;
use kup_engine::{Engine, KubeCluster};
use kup_mocks::eks::{EksConfig, EksMock, LT_VERSION_LABEL, NODEGROUP_LABEL, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, SimHandle, Simulator};
use kup_tests::sim::BudgetWatch;
use tokio_util::sync::CancellationToken;

async fn start() -> (SimHandle, EksMock, Arc<EksProvider>) {
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
    (sim, mock, provider)
}

fn engine(provider: Arc<EksProvider>, sim: &SimHandle, store: Arc<MemoryJournalStore>) -> Engine {
    Engine::builder(provider)
        .kube(KubeCluster::from_config(sim.client_config()).unwrap())
        .journal(store)
        .lock(Arc::new(LocalLock::new("demo")))
        .options(kup_tests::sim::cloud_options())
        .build()
        .unwrap()
}

fn apps_nodes(sim: &SimHandle) -> BTreeSet<String> {
    sim.nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][NODEGROUP_LABEL] == "apps")
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// What an operator does outside kup: a new version of `apps`' launch template, and the
/// group updated to it with its Kubernetes version and AMI release kept.
async fn new_template_version(p: &EksProvider, mock: &EksMock) -> String {
    let version = mock.create_launch_template_version("demo", "apps").unwrap();
    let (k8s, release) = mock.nodegroup_version("demo", "apps").unwrap();
    let id = p
        .sdk()
        .update_nodegroup_version()
        .cluster_name("demo")
        .nodegroup_name("apps")
        .version(k8s)
        .release_version(release)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .name("apps-lt")
                .version(&version)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .update
        .unwrap()
        .id
        .unwrap();
    let op = Operation::new(
        ProviderKind::Eks,
        &id,
        OperationTarget::NodePool {
            pool: "apps".into(),
        },
    )
    .with_handle("update_id", &id)
    .with_handle("nodegroup", "apps");
    let status = tokio::time::timeout(Duration::from_secs(240), async {
        loop {
            let s = p.poll(&op).await.unwrap();
            if s.is_terminal() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(status, OperationStatus::Succeeded);
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_group_goes_back_to_its_previous_launch_template_version_under_pdbs() {
    let (sim, mock, p) = start().await;
    let start_state = p.cluster().await.unwrap();
    assert_eq!(new_template_version(&p, &mock).await, "5");
    assert_eq!(new_template_version(&p, &mock).await, "6");
    let live = p.cluster().await.unwrap();
    assert_eq!(
        live.pool("apps").unwrap().release.as_deref(),
        Some("launch template apps-lt version 6")
    );

    let offer = p.rollback_offer().await.unwrap();
    let caps = p.capabilities();
    let rollback = kup_core::plan_rollback(&RollbackRequest {
        cluster: &live,
        caps: &caps,
        offer: &offer,
        control_plane: start_state.control_plane.clone(),
        pools: start_state.pool_versions(),
        backup: None,
    })
    .unwrap();
    assert_eq!(rollback.kind, PlanKind::Rollback);
    let kinds: Vec<&str> = rollback.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(kinds, ["pool-rollback", "validate"], "{rollback}");
    assert!(matches!(
        &rollback.steps[0].action,
        StepAction::PoolRollback { pool, release: Some(r), .. }
            if pool == "apps" && r == "launch template apps-lt version 5"
    ));
    // The control plane is where the upgrade started: nothing to refuse there.
    assert!(rollback.not_rolled_back.is_empty(), "{rollback}");

    // The dry run sees the step and sends nothing.
    let store = Arc::new(MemoryJournalStore::default());
    let calls = mock.calls().get("UpdateNodegroupVersion").copied();
    let dry = engine(p.clone(), &sim, store.clone())
        .dry_run(&rollback)
        .await
        .unwrap();
    assert!(dry.ok(), "{dry:?}");
    assert!(
        dry.steps[0]
            .details
            .iter()
            .any(|d| d.contains("apps") && d.contains("launch template apps-lt version 5")),
        "{dry:?}"
    );
    assert_eq!(mock.calls().get("UpdateNodegroupVersion").copied(), calls);

    let before = apps_nodes(&sim);
    let deletions_before = sim.pod_deletions().len();
    let budgets = BudgetWatch::start(&sim);
    let report = engine(p.clone(), &sim, store.clone())
        .run(&rollback, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("rollback failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let violations = budgets.finish().await;
    assert!(violations.is_empty(), "budgets broken: {violations:?}");

    assert_eq!(
        mock.nodegroup_launch_template("demo", "apps"),
        Some(("apps-lt".into(), "5".into()))
    );
    let after = p.cluster().await.unwrap();
    assert_eq!(after.control_plane, live.control_plane);
    assert_eq!(
        after.pool("apps").unwrap().version,
        live.pool("apps").unwrap().version
    );
    // Every node of the group was replaced by one launched from version 5.
    let now = apps_nodes(&sim);
    assert_eq!(now.len(), before.len(), "{before:?} → {now:?}");
    assert!(now.is_disjoint(&before), "{before:?} → {now:?}");
    for node in sim.nodes() {
        if node["metadata"]["labels"][NODEGROUP_LABEL] == "apps" {
            assert_eq!(node["metadata"]["labels"][LT_VERSION_LABEL], "5", "{node}");
        }
    }
    let app: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .skip(deletions_before)
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(!app.is_empty());
    assert!(app.iter().all(|d| d.via == DeletedVia::Eviction), "{app:?}");

    // The journal: the rollback step done, naming the release the group is back at.
    let journal = store.get().unwrap();
    assert!(journal.completes(&rollback), "{journal:?}");
    let step = journal.step(1).unwrap();
    assert_eq!(step.state, StepState::Succeeded, "{step:?}");
    assert!(
        step.message
            .as_deref()
            .is_some_and(|m| m.contains("launch template apps-lt version 5")),
        "{step:?}"
    );

    // Run again: the group is back, so nothing is sent.
    let calls = mock.calls().get("UpdateNodegroupVersion").copied();
    let again = engine(p.clone(), &sim, Arc::new(MemoryJournalStore::default()))
        .run(&rollback, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Succeeded, "{again:?}");
    assert_eq!(mock.calls().get("UpdateNodegroupVersion").copied(), calls);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_cluster_is_refused_in_eks_words_and_nothing_moves() {
    let (sim, mock, p) = start().await;
    new_template_version(&p, &mock).await;
    let target = KubeVersion::parse("1.34").unwrap();
    let plan = kup_engine::planning::plan_for(p.as_ref(), &target, PlanOptions::default())
        .await
        .unwrap();
    let report = engine(p.clone(), &sim, Arc::new(MemoryJournalStore::default()))
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("upgrade failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let upgraded = p.cluster().await.unwrap();

    let offer = p.rollback_offer().await.unwrap();
    assert!(offer.options.is_empty(), "{offer:?}");
    let caps = p.capabilities();
    let err = kup_core::plan_rollback(&RollbackRequest {
        cluster: &upgraded,
        caps: &caps,
        offer: &offer,
        control_plane: plan.from.clone(),
        pools: plan.pools.clone(),
        backup: None,
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("rolling back cluster demo")
            && text.contains("node pool apps")
            && text.contains("from Kubernetes 1.33 to 1.34")
            && text.contains(NODE_GROUP_ROLLBACK_REFUSAL)
            && text.contains("node pool system")
            && text.contains("control plane: node group apps runs 1.34"),
        "{text}"
    );
    let updates = mock.updates("demo").len();
    assert_eq!(p.cluster().await.unwrap().node_pools, upgraded.node_pools);
    assert_eq!(mock.updates("demo").len(), updates);
    sim.shutdown().await;
}

/// The control plane upgraded 1.33 → 1.34 in place by the engine; node groups and add-ons stay.
async fn upgrade_control_plane_only(
    sim: &SimHandle,
    p: &Arc<EksProvider>,
) -> (kup_core::UpgradePlan, kup_core::ClusterInfo) {
    let target = KubeVersion::parse("1.34").unwrap();
    let plan = kup_engine::planning::plan_for(
        p.as_ref(),
        &target,
        PlanOptions {
            control_plane_only: true,
            skip_addons: true,
            ..PlanOptions::default()
        },
    )
    .await
    .unwrap();
    let report = engine(p.clone(), sim, Arc::new(MemoryJournalStore::default()))
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("upgrade failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let upgraded = p.cluster().await.unwrap();
    assert!(upgraded.control_plane.same_minor(&target), "{upgraded:?}");
    for pool in &upgraded.node_pools {
        assert_eq!(pool.version.minor(), 33, "{pool:?}");
    }
    (plan, upgraded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_goes_back_to_1_33_by_eks_version_rollback_within_the_window() {
    let (sim, mock, p) = start().await;
    let (plan, upgraded) = upgrade_control_plane_only(&sim, &p).await;
    assert!(
        sim.api_server_version().starts_with("v1.34"),
        "{}",
        sim.api_server_version()
    );

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
    .unwrap_or_else(|e| panic!("no rollback plan: {e} ({offer:?})"));
    let kinds: Vec<&str> = rollback.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(kinds[0], "control-plane-rollback", "{rollback}");
    assert!(matches!(
        &rollback.steps[0].action,
        StepAction::ControlPlaneRollback { to, basis, .. }
            if to.minor() == 33 && basis.contains("in-place upgrade")
    ));
    assert!(rollback.not_rolled_back.is_empty(), "{rollback}");

    // The dry run sees the step and sends nothing.
    let store = Arc::new(MemoryJournalStore::default());
    let sent = |m: &EksMock| m.calls().get("UpdateClusterVersion").copied();
    let calls = sent(&mock);
    let dry = engine(p.clone(), &sim, store.clone())
        .dry_run(&rollback)
        .await
        .unwrap();
    assert!(dry.ok(), "{dry:?}");
    assert_eq!(sent(&mock), calls);

    let report = engine(p.clone(), &sim, store.clone())
        .run(&rollback, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("rollback failed: {e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.33"));
    let after = p.cluster().await.unwrap();
    assert_eq!(after.control_plane.minor(), 33);
    assert!(
        sim.api_server_version().starts_with("v1.33"),
        "{}",
        sim.api_server_version()
    );
    let last = mock.updates("demo").last().cloned().unwrap();
    assert!(last.rollback && last.status == "Successful", "{last:?}");

    // The journal: the rollback step done, the control plane back at 1.33.
    let journal = store.get().unwrap();
    assert!(journal.completes(&rollback), "{journal:?}");
    let step = journal.step(1).unwrap();
    assert_eq!(step.state, StepState::Succeeded, "{step:?}");
    assert!(
        step.message
            .as_deref()
            .is_some_and(|m| m.contains("control plane back at 1.33")),
        "{step:?}"
    );

    // Run again: the control plane is back, so nothing is sent.
    let calls = sent(&mock);
    let again = engine(p.clone(), &sim, Arc::new(MemoryJournalStore::default()))
        .run(&rollback, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Succeeded, "{again:?}");
    assert_eq!(sent(&mock), calls);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_upgraded_more_than_7_days_ago_is_refused_in_eks_words() {
    let (sim, mock, p) = start().await;
    let (plan, upgraded) = upgrade_control_plane_only(&sim, &p).await;
    mock.age_updates("demo", Duration::from_secs(8 * 86_400));

    let offer = p.rollback_offer().await.unwrap();
    let caps = p.capabilities();
    let err = kup_core::plan_rollback(&RollbackRequest {
        cluster: &upgraded,
        caps: &caps,
        offer: &offer,
        control_plane: plan.from.clone(),
        pools: plan.pools.clone(),
        backup: None,
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("control plane: cluster demo's last in-place upgrade")
            && text.contains("more than 7 days old")
            && text.contains(CONTROL_PLANE_ROLLBACK_REFUSAL),
        "{text}"
    );
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));
    sim.shutdown().await;
}
