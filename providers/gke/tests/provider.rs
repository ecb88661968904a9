//! The GKE provider through the real `google-cloud-container-v1` client against the stateful
//! GKE mock: each call, operations to success, failure and cancellation, busy refusals,
//! error mapping, surge and blue-green pool upgrades on the Kubernetes simulator, rollback
//! and completion of blue-green upgrades, and pre-flight.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kup_core::{
    ControlPlaneOptions, ErrorCategory, KubeVersion, NodePoolOptions, Operation, OperationStatus,
    OperationTarget, PoolStrategy, Severity, UpgradeProvider, VersionScope,
};
use kup_gke::{GkeBuilder, GkeProvider, GkeSettings};
use kup_mocks::gke::{ApiError, GkeConfig, GkeExclusion, GkeFault, GkeMock, demo_scenario};
use kup_mocks::k8s::{DeletedVia, Pdb, SimConfig, SimHandle, Simulator, Workload};

async fn provider(mock: &GkeMock) -> GkeProvider {
    builder(mock).build().await.unwrap()
}

fn builder(mock: &GkeMock) -> GkeBuilder {
    GkeBuilder::new()
        .project("demo-project")
        .location("us-central1")
        .cluster("demo")
        .endpoint(mock.endpoint())
        .anonymous_credentials()
}

async fn mock() -> GkeMock {
    GkeMock::start(GkeConfig::demo().time_scale(600.0), None)
        .await
        .unwrap()
}

async fn sim() -> SimHandle {
    Simulator::start(
        demo_scenario(),
        SimConfig::fast()
            .time_scale(50.0)
            .pod_start_delay(Duration::from_secs(1))
            .pod_ready_delay(Duration::from_secs(1))
            .pod_shutdown_delay(Duration::from_secs(1))
            .node_ready_delay(Duration::from_secs(3)),
    )
    .await
    .unwrap()
}

async fn until_done(p: &GkeProvider, op: &Operation) -> OperationStatus {
    for _ in 0..3000 {
        let s = p.poll(op).await.unwrap();
        if s.is_terminal() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{op} never ended");
}

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

#[tokio::test]
async fn versions_come_from_the_server_config_oldest_first_with_scopes_and_channels() {
    let mock = mock().await;
    let p = provider(&mock).await;
    let versions = p.available_versions().await.unwrap();
    assert!(
        versions
            .windows(2)
            .all(|w| w[0].version.cmp_build(&w[1].version).is_lt())
    );
    let old = versions.iter().find(|a| a.version.minor() == 32).unwrap();
    assert_eq!(
        old.scope,
        VersionScope::Nodes,
        "1.32 is offered for nodes only"
    );
    let next = versions
        .iter()
        .find(|a| a.version.to_string() == "1.34.1-gke.1829001")
        .unwrap();
    assert_eq!(next.scope, VersionScope::Both);
    assert!(next.default);
    assert!(next.channels.iter().any(|c| c == "REGULAR"), "{next:?}");
    let current = versions
        .iter()
        .find(|a| a.version.to_string() == "1.33.5-gke.1080000")
        .unwrap();
    assert!(current.end_of_standard_support.is_some(), "{current:?}");
    assert!(current.end_of_extended_support > current.end_of_standard_support);
    assert!(mock.calls()["getServerConfig"] >= 1);
    assert!(mock.calls()["fetchClusterUpgradeInfo"] >= 1);
}

#[tokio::test]
async fn cluster_reports_pools_channel_and_running_operations() {
    let mock = mock().await;
    let p = provider(&mock).await;
    let info = p.cluster().await.unwrap();
    assert_eq!(info.control_plane.to_string(), "1.33.5-gke.1080000");
    let names: Vec<&str> = info.node_pools.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["apps", "default-pool"]);
    assert_eq!(
        info.pool("apps").unwrap().node_selector.as_deref(),
        Some("cloud.google.com/gke-nodepool=apps")
    );
    assert_eq!(
        info.status.as_deref(),
        Some("RUNNING (release channel REGULAR)")
    );
    assert!(!info.is_busy());
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let busy = p.cluster().await.unwrap();
    assert_eq!(busy.in_progress.len(), 1, "{busy:?}");
    assert_eq!(busy.in_progress[0].id, op.id);
    assert_eq!(busy.in_progress[0].target, OperationTarget::ControlPlane);
    assert!(busy.status.unwrap().starts_with("RECONCILING"));
}

async fn control_plane_hop(mock: &GkeMock) {
    let p = provider(mock).await;
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(op.to_version.as_deref(), Some("1.34.1-gke.1829001"));
    assert!(
        op.handle["operation"]
            .starts_with("projects/demo-project/locations/us-central1/operations/operation-"),
        "{op:?}"
    );
    assert!(matches!(
        p.poll(&op).await.unwrap(),
        OperationStatus::Pending | OperationStatus::Running { .. }
    ));
    assert_eq!(until_done(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(
        p.cluster().await.unwrap().control_plane.to_string(),
        "1.34.1-gke.1829001"
    );
    assert_eq!(
        mock.master_version("demo").as_deref(),
        Some("1.34.1-gke.1829001")
    );
}

#[tokio::test]
async fn control_plane_upgrade_runs_pending_running_done_with_integer_enums() {
    let mock = mock().await;
    control_plane_hop(&mock).await;
}

#[tokio::test]
async fn control_plane_upgrade_reads_enums_sent_as_names_too() {
    let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0).string_enums(), None)
        .await
        .unwrap();
    control_plane_hop(&mock).await;
}

#[tokio::test]
async fn skips_downgrades_and_busy_starts_are_refused_before_anything_is_sent() {
    let mock = mock().await;
    let p = provider(&mock).await;
    for to in ["1.35", "1.32", "1.33.4"] {
        let e = p
            .upgrade_control_plane(&v(to), &ControlPlaneOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.category(), ErrorCategory::Precondition, "{to}: {e}");
    }
    assert!(!mock.calls().contains_key("updateMaster"));
    let other = provider(&mock).await;
    mock.inject(GkeFault::SlowOperations(1000));
    let running = other
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let e = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    match &e {
        kup_core::Error::Busy { operation, .. } => {
            assert_eq!(operation.as_deref(), Some(running.id.as_str()))
        }
        other => panic!("expected busy, got {other:?}"),
    }
    let e = p
        .upgrade_node_pool("apps", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Busy, "{e}");
    assert_eq!(mock.calls()["updateMaster"], 1);
    assert!(!mock.calls().contains_key("updateNodePool"));
}

#[tokio::test]
async fn gke_refusing_while_busy_is_busy_too() {
    // A race: the operation starts after kup looked. GKE's FAILED_PRECONDITION reads busy.
    let mock = mock().await;
    let p = provider(&mock).await;
    mock.inject(GkeFault::Error {
        call: "updateMaster".into(),
        times: 1,
        error: ApiError::precondition(
            "Cluster is running incompatible operation operation-42-abc.",
        ),
    });
    let e = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    match e {
        kup_core::Error::Busy { operation, .. } => {
            assert_eq!(operation.as_deref(), Some("operation-42-abc"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn api_errors_map_to_their_categories() {
    let mock = mock().await;
    let p = provider(&mock).await;
    for (error, category, retryable) in [
        (
            ApiError::permission_denied(),
            ErrorCategory::PermissionDenied,
            false,
        ),
        (
            ApiError::unauthenticated(),
            ErrorCategory::PermissionDenied,
            false,
        ),
        (ApiError::unavailable(), ErrorCategory::Provider, true),
        (ApiError::exhausted(), ErrorCategory::Provider, true),
        (ApiError::internal(), ErrorCategory::Provider, false),
        (ApiError::invalid("bad"), ErrorCategory::InvalidInput, false),
    ] {
        mock.inject(GkeFault::Error {
            call: "getCluster".into(),
            times: 1,
            error: error.clone(),
        });
        let e = p.cluster().await.unwrap_err();
        assert_eq!(e.category(), category, "{error:?}: {e}");
        assert_eq!(e.is_retryable(), retryable, "{error:?}: {e}");
    }
    let e = p
        .upgrade_node_pool("no-such-pool", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound, "{e}");
    assert!(e.to_string().contains("no-such-pool"), "{e}");
    let stranger = Operation::new(
        kup_core::ProviderKind::Gke,
        "operation-0-nothing",
        OperationTarget::ControlPlane,
    );
    let e = p.poll(&stranger).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
    assert!(e.to_string().contains("operation-0-nothing"), "{e}");
}

#[tokio::test]
async fn an_operation_done_with_an_error_is_a_failure_with_its_code() {
    let mock = mock().await;
    let p = provider(&mock).await;
    mock.inject(GkeFault::FailNextOperation {
        code: "RESOURCE_EXHAUSTED".into(),
        message: "Insufficient regional quota to satisfy request: resource \"CPUS\"".into(),
        conditions: vec![("GCE_QUOTA_EXCEEDED".into(), "quota".into())],
    });
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let OperationStatus::Failed { errors } = until_done(&p, &op).await else {
        panic!("not failed")
    };
    assert_eq!(errors[0].code, "RESOURCE_EXHAUSTED");
    assert!(errors[0].message.contains("CPUS"));
    assert_eq!(
        p.cluster().await.unwrap().control_plane.to_string(),
        "1.33.5-gke.1080000"
    );
}

#[tokio::test]
async fn a_cancelled_operation_ends_cancelled() {
    let mock = mock().await;
    let p = provider(&mock).await;
    mock.inject(GkeFault::SlowOperations(1000));
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    p.cancel(&op).await.unwrap();
    let OperationStatus::Cancelled { errors } = until_done(&p, &op).await else {
        panic!("not cancelled")
    };
    assert_eq!(errors[0].code, "CANCELLED");
    let e = p.cancel(&op).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
}

#[tokio::test]
async fn pool_options_gke_cannot_take_are_refused_naming_the_field() {
    let mock = mock().await;
    let p = provider(&mock).await;
    let cases = [
        (
            NodePoolOptions {
                max_surge: Some("25%".into()),
                ..Default::default()
            },
            "max_surge",
        ),
        (
            NodePoolOptions {
                strategy: PoolStrategy::BlueGreen,
                max_surge: Some("1".into()),
                ..Default::default()
            },
            "max_surge",
        ),
        (
            NodePoolOptions {
                force: true,
                ..Default::default()
            },
            "force",
        ),
        (
            NodePoolOptions {
                max_surge: Some("0".into()),
                max_unavailable: Some("0".into()),
                ..Default::default()
            },
            "max_surge",
        ),
    ];
    for (opts, field) in cases {
        let e = p
            .upgrade_node_pool("apps", &v("1.33"), &opts)
            .await
            .unwrap_err();
        assert_eq!(e.category(), ErrorCategory::InvalidInput, "{e}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let e = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.category(),
        ErrorCategory::Precondition,
        "newer than the control plane: {e}"
    );
    assert!(!mock.calls().contains_key("updateNodePool"));
}

async fn with_sim(config: GkeConfig) -> (SimHandle, GkeMock, GkeProvider) {
    let sim = sim().await;
    let mock = GkeMock::start(config, Some(sim.clone())).await.unwrap();
    let p = builder(&mock)
        .kube_client(sim.client().unwrap())
        .settings(GkeSettings {
            node_pool_soak: Some(Duration::from_secs(1800)),
            ..GkeSettings::default()
        })
        .build()
        .await
        .unwrap();
    (sim, mock, p)
}

fn pool_kubelets(sim: &SimHandle, pool: &str) -> Vec<String> {
    let mut out: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"]["cloud.google.com/gke-nodepool"] == pool)
        .map(|n| {
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

async fn cp_to_134(p: &GkeProvider) {
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(until_done(p, &op).await, OperationStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_upgrade_replaces_nodes_through_evictions_with_the_settings_sent() {
    let (sim, mock, p) = with_sim(GkeConfig::demo().time_scale(600.0)).await;
    cp_to_134(&p).await;
    let opts = NodePoolOptions {
        max_surge: Some("2".into()),
        max_unavailable: Some("1".into()),
        ..Default::default()
    };
    let op = p
        .upgrade_node_pool("apps", &v("1.34"), &opts)
        .await
        .unwrap();
    assert_eq!(
        op.target,
        OperationTarget::NodePool {
            pool: "apps".into()
        }
    );
    assert_eq!(until_done(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(pool_kubelets(&sim, "apps"), vec!["v1.34.1-gke.1829001"; 3]);
    assert_eq!(
        mock.pool_version("demo", "apps").as_deref(),
        Some("1.34.1-gke.1829001")
    );
    let ops = mock.operations();
    let last = ops.last().unwrap();
    assert_eq!(
        last.target,
        kup_mocks::gke::OpTarget::NodePool {
            pool: "apps".into(),
            version: "1.34.1-gke.1829001".into(),
            strategy: kup_mocks::gke::Strategy::Surge {
                max_surge: 2,
                max_unavailable: 1
            },
            rollback: false,
            respect_pdb: true,
        }
    );
    let shop: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(!shop.is_empty());
    assert!(
        shop.iter().all(|d| d.via == DeletedVia::Eviction),
        "{shop:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_upgrade_can_be_rolled_back_during_its_soak() {
    let (sim, mock, p) = with_sim(GkeConfig::demo().time_scale(600.0)).await;
    cp_to_134(&p).await;
    let opts = NodePoolOptions {
        strategy: PoolStrategy::BlueGreen,
        max_unavailable: Some("50%".into()),
        ..Default::default()
    };
    let up = p
        .upgrade_node_pool("apps", &v("1.34"), &opts)
        .await
        .unwrap();
    // Wait for the soak: green nodes serving, blue ones drained and cordoned.
    for _ in 0..3000 {
        if mock.pool_phase("demo", "apps").as_deref() == Some("NODE_POOL_SOAKING") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mock.pool_phase("demo", "apps").as_deref(),
        Some("NODE_POOL_SOAKING")
    );
    assert_eq!(
        pool_kubelets(&sim, "apps").len(),
        6,
        "blue and green side by side"
    );
    let rb = p.rollback_node_pool_upgrade("apps", true).await.unwrap();
    assert_eq!(until_done(&p, &rb).await, OperationStatus::Succeeded);
    assert!(matches!(
        until_done(&p, &up).await,
        OperationStatus::Cancelled { .. }
    ));
    assert_eq!(pool_kubelets(&sim, "apps"), vec!["v1.33.5-gke.1080000"; 3]);
    assert!(
        sim.nodes()
            .iter()
            .all(|n| n["spec"]["unschedulable"] != true)
    );
    assert_eq!(
        mock.pool_version("demo", "apps").as_deref(),
        Some("1.33.5-gke.1080000")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_soak_completed_early_deletes_the_blue_pool_and_ends_rollback() {
    let (sim, mock, p) = with_sim(GkeConfig::demo().time_scale(600.0)).await;
    cp_to_134(&p).await;
    let opts = NodePoolOptions {
        strategy: PoolStrategy::BlueGreen,
        max_unavailable: Some("1".into()),
        ..Default::default()
    };
    let e = p.complete_node_pool_upgrade("apps").await.unwrap_err();
    assert_eq!(
        e.category(),
        ErrorCategory::Precondition,
        "nothing soaking yet: {e}"
    );
    let up = p
        .upgrade_node_pool("apps", &v("1.34"), &opts)
        .await
        .unwrap();
    for _ in 0..3000 {
        if mock.pool_phase("demo", "apps").as_deref() == Some("NODE_POOL_SOAKING") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.complete_node_pool_upgrade("apps").await.unwrap();
    assert_eq!(until_done(&p, &up).await, OperationStatus::Succeeded);
    assert_eq!(pool_kubelets(&sim, "apps"), vec!["v1.34.1-gke.1829001"; 3]);
    let e = p
        .rollback_node_pool_upgrade("apps", true)
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_surge_upgrade_rolls_back_to_the_old_version() {
    let mut config = GkeConfig::demo().time_scale(600.0);
    config.clusters[0].pools[1].max_surge = 1;
    let (sim, mock, p) = with_sim(config).await;
    cp_to_134(&p).await;
    let up = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap();
    for _ in 0..3000 {
        if pool_kubelets(&sim, "apps")
            .iter()
            .any(|k| k.starts_with("v1.34"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.cancel(&up).await.unwrap();
    assert!(matches!(
        until_done(&p, &up).await,
        OperationStatus::Cancelled { .. }
    ));
    let rb = p.rollback_node_pool_upgrade("apps", false).await.unwrap();
    assert_eq!(until_done(&p, &rb).await, OperationStatus::Succeeded);
    assert_eq!(pool_kubelets(&sim, "apps"), vec!["v1.33.5-gke.1080000"; 3]);
    assert_eq!(
        mock.pool_version("demo", "apps").as_deref(),
        Some("1.33.5-gke.1080000")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_never_allows_eviction_is_overridden_after_an_hour_and_preflight_warns() {
    let sim = Simulator::start(
        demo_scenario()
            .workload(
                Workload::deployment("shop", "ledger")
                    .replicas(1)
                    .image("ledger:1")
                    .pool("apps"),
            )
            .pdb(
                Pdb::new("shop", "ledger")
                    .match_label("app", "ledger")
                    .min_available(1),
            ),
        SimConfig::fast()
            .time_scale(50.0)
            .pod_start_delay(Duration::from_secs(1))
            .pod_ready_delay(Duration::from_secs(1))
            .pod_shutdown_delay(Duration::from_secs(1))
            .node_ready_delay(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    mock.add_exclusion(
        "demo",
        GkeExclusion {
            name: "black-friday".into(),
            start: "2026-01-01T00:00:00Z".into(),
            end: "2099-01-01T00:00:00Z".into(),
            scope: "NO_MINOR_UPGRADES".into(),
        },
    );
    let p = builder(&mock)
        .kube_client(sim.client().unwrap())
        .build()
        .await
        .unwrap();
    // Wait for the disruption controller to count the ledger pod.
    let mut findings = Vec::new();
    for _ in 0..200 {
        findings = p.preflight(&v("1.34")).await.unwrap();
        if findings
            .iter()
            .any(|f| f.code == "gke.pdb-limit" && f.severity == Severity::Warning)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pdb = findings.iter().find(|f| f.code == "gke.pdb-limit").unwrap();
    assert_eq!(pdb.severity, Severity::Warning, "{pdb:?}");
    assert!(pdb.message.contains("one hour"), "{}", pdb.message);
    assert!(pdb.objects.iter().any(|o| o.name == "ledger"), "{pdb:?}");
    let ex = findings
        .iter()
        .find(|f| f.code == "gke.maintenance-exclusion")
        .unwrap();
    assert_eq!(ex.severity, Severity::Warning);
    assert!(ex.message.contains("black-friday") && ex.message.contains("allowed"));
    for code in [
        "gke.managed-addons",
        "gke.release-channel",
        "gke.maintenance-window",
        "gke.auto-upgrade",
    ] {
        assert!(
            findings.iter().any(|f| f.code == code),
            "{code} missing: {findings:?}"
        );
    }
    let auto = findings
        .iter()
        .find(|f| f.code == "gke.auto-upgrade")
        .unwrap();
    assert!(
        auto.message.contains("MINOR_UPGRADE_PAUSED"),
        "{}",
        auto.message
    );

    cp_to_134(&p).await;
    let op = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(until_done(&p, &op).await, OperationStatus::Succeeded);
    let ledger: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .filter(|d| d.namespace == "shop" && d.name.starts_with("ledger"))
        .collect();
    assert!(
        ledger.iter().any(|d| d.via != DeletedVia::Eviction),
        "the budget-protected pod was deleted past its budget after the hour: {ledger:?}"
    );
    let detail = mock.operations().last().unwrap().detail.clone();
    assert!(
        detail.contains("PodDisruptionBudget") && detail.contains("3600s"),
        "{detail}"
    );
    sim.shutdown().await;
}
