//! Rollback through the real `google-cloud-container-v1` client against the stateful GKE mock:
//! the offer (a rollback-safe control-plane upgrade while it soaks; pools with a failed or
//! cancelled upgrade, or a blue-green upgrade in its soak; GKE's refusals otherwise), the
//! control plane rolled back during the soak and refused after it, pools rolled back on the
//! Kubernetes simulator, and busy clusters.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use kup_core::{
    ControlPlaneOptions, ErrorCategory, KubeVersion, NodePoolOptions, Operation, OperationStatus,
    PoolStrategy, RollbackOption, RollbackPart, UpgradeProvider,
};
use kup_gke::{CONTROL_PLANE_ROLLBACK_REFUSAL, GkeBuilder, GkeProvider, GkeSettings};
use kup_mocks::gke::{ApiError, GkeConfig, GkeFault, GkeMock, OpTarget, demo_scenario};
use kup_mocks::k8s::{DeletedVia, SimConfig, SimHandle, Simulator};

const OLD: &str = "1.33.5-gke.1080000";
const NEW: &str = "1.34.1-gke.1829001";
/// Seven days: the longest soak GKE takes, so that none ends during a test.
const SOAK: Duration = Duration::from_secs(7 * 24 * 3600);

fn builder(mock: &GkeMock) -> GkeBuilder {
    GkeBuilder::new()
        .project("demo-project")
        .location("us-central1")
        .cluster("demo")
        .endpoint(mock.endpoint())
        .anonymous_credentials()
}

/// A provider whose minor control-plane upgrades are rollback-safe.
async fn soaking(mock: &GkeMock) -> GkeProvider {
    builder(mock)
        .settings(GkeSettings {
            control_plane_soak: Some(SOAK),
            ..GkeSettings::default()
        })
        .build()
        .await
        .unwrap()
}

async fn mock(scale: f64) -> GkeMock {
    GkeMock::start(GkeConfig::demo().time_scale(scale), None)
        .await
        .unwrap()
}

async fn with_sim() -> (SimHandle, GkeMock, GkeProvider) {
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
    let mut config = GkeConfig::demo().time_scale(600.0);
    config.clusters[0].pools[1].max_surge = 1;
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

async fn until_done(p: &GkeProvider, op: &Operation) -> OperationStatus {
    for _ in 0..6000 {
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

fn calls(mock: &GkeMock, call: &str) -> u64 {
    mock.calls().get(call).copied().unwrap_or(0)
}

fn pool_kubelets(sim: &SimHandle, pool: &str) -> Vec<String> {
    let mut out: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][kup_gke::NODE_POOL_LABEL] == pool)
        .filter_map(|n| {
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .map(String::from)
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

/// The GKE answer to an `updateMaster` sent straight through the client.
async fn raw_update_master(p: &GkeProvider, version: &str) -> Result<(), (Option<Code>, String)> {
    p.client()
        .update_master()
        .set_name("projects/demo-project/locations/us-central1/clusters/demo")
        .set_master_version(version)
        .send()
        .await
        .map(drop)
        .map_err(|e| (e.status().map(|s| s.code), e.to_string()))
}

#[tokio::test]
async fn capabilities_declare_pool_rollbacks_and_control_plane_rollback_during_a_soak() {
    let mock = mock(600.0).await;
    let caps = builder(&mock).build().await.unwrap().capabilities();
    assert!(caps.node_pool_rollback);
    assert_eq!(
        caps.control_plane_rollback,
        kup_core::ControlPlaneRollback::DuringSoak
    );
}

#[tokio::test]
async fn with_nothing_to_roll_back_everything_is_refused_in_gkes_words_and_nothing_is_sent() {
    let mock = mock(600.0).await;
    let p = builder(&mock).build().await.unwrap();
    let offer = p.rollback_offer().await.unwrap();
    assert!(offer.options.is_empty(), "{offer:?}");
    assert_eq!(
        offer.refusal(&RollbackPart::ControlPlane),
        Some(CONTROL_PLANE_ROLLBACK_REFUSAL)
    );
    for pool in ["default-pool", "apps"] {
        let reason = offer.refusal(&RollbackPart::pool(pool)).unwrap();
        assert!(
            reason.contains("cancelled or failed") && reason.contains("soak"),
            "{pool}: {reason}"
        );
    }

    let back = RollbackOption {
        part: RollbackPart::ControlPlane,
        to: v("1.32"),
        release: None,
        basis: "a stale plan".into(),
    };
    let e = p.rollback_control_plane(&back).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
    assert!(e.to_string().contains("rollback-safe"), "{e}");
    let pool_back = RollbackOption {
        part: RollbackPart::pool("apps"),
        to: v("1.32"),
        release: None,
        basis: "a stale plan".into(),
    };
    let e = p
        .rollback_node_pool("apps", &pool_back, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
    // The option of another part is bad input, named.
    let e = p
        .rollback_node_pool("default-pool", &pool_back, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::InvalidInput, "{e}");
    assert!(e.to_string().contains("pools.default-pool.rollback"), "{e}");
    let e = p.rollback_control_plane(&pool_back).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::InvalidInput, "{e}");
    let e = p
        .rollback_node_pool(
            "nope",
            &RollbackOption {
                part: RollbackPart::pool("nope"),
                ..pool_back.clone()
            },
            &NodePoolOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound, "{e}");
    assert_eq!(calls(&mock, "updateMaster"), 0);
    assert_eq!(calls(&mock, "rollbackNodePoolUpgrade"), 0);

    // GKE itself refuses too: FAILED_PRECONDITION, a precondition rather than busy.
    let e = p
        .rollback_node_pool_upgrade("apps", true)
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
    assert!(e.to_string().contains("no upgrade to roll back"), "{e}");
    assert!(mock.operations().is_empty());
}

#[tokio::test]
async fn a_rollback_safe_upgrade_soaks_and_its_control_plane_goes_back_during_the_soak() {
    let mock = mock(600.0).await;
    let p = soaking(&mock).await;
    cp_to_134(&p).await;
    assert_eq!(calls(&mock, "updateCluster"), 1, "{:?}", mock.calls());
    assert_eq!(calls(&mock, "updateMaster"), 0);
    let (previous, _end) = mock.control_plane_soak("demo").unwrap();
    assert_eq!(previous, OLD);
    assert_eq!(p.cluster().await.unwrap().control_plane, v(NEW));

    let offer = p.rollback_offer().await.unwrap();
    let option = offer
        .options_for(&RollbackPart::ControlPlane)
        .next()
        .unwrap_or_else(|| panic!("no control-plane option: {offer:?}"))
        .clone();
    assert_eq!(option.to, v(OLD));
    assert!(
        option.basis.contains("rollback-safe") && option.basis.contains("soaking until"),
        "{}",
        option.basis
    );
    assert!(offer.refusal(&RollbackPart::ControlPlane).is_none());

    // While it soaks GKE takes no other upgrade: a precondition, not busy.
    let (code, message) = raw_update_master(&p, "1.35").await.unwrap_err();
    assert_eq!(code, Some(Code::FailedPrecondition), "{message}");
    let e = p
        .upgrade_control_plane(&v("1.35"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");

    let op = p.rollback_control_plane(&option).await.unwrap();
    assert_eq!(op.to_version.as_deref(), Some(OLD));
    assert_eq!(until_done(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(p.cluster().await.unwrap().control_plane, v(OLD));
    assert_eq!(mock.master_version("demo").as_deref(), Some(OLD));
    assert!(mock.control_plane_soak("demo").is_none());
    let ops = mock.operations();
    assert_eq!(
        ops.last().unwrap().target,
        OpTarget::ControlPlane {
            version: OLD.into()
        }
    );

    // Back where it started, there is nothing more to roll back.
    let offer = p.rollback_offer().await.unwrap();
    assert!(
        offer
            .options_for(&RollbackPart::ControlPlane)
            .next()
            .is_none(),
        "{offer:?}"
    );
    let e = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
}

#[tokio::test]
async fn after_completion_or_the_soaks_end_the_control_plane_is_refused() {
    let mock = mock(600.0).await;
    let p = soaking(&mock).await;
    let e = p.complete_control_plane_upgrade().await.unwrap_err();
    assert_eq!(
        e.category(),
        ErrorCategory::Precondition,
        "nothing soaks yet: {e}"
    );
    cp_to_134(&p).await;
    let option = p
        .rollback_offer()
        .await
        .unwrap()
        .options_for(&RollbackPart::ControlPlane)
        .next()
        .cloned()
        .unwrap();
    let done = p.complete_control_plane_upgrade().await.unwrap();
    assert_eq!(until_done(&p, &done).await, OperationStatus::Succeeded);
    assert_eq!(mock.master_version("demo").as_deref(), Some(NEW));

    let offer = p.rollback_offer().await.unwrap();
    assert_eq!(
        offer.refusal(&RollbackPart::ControlPlane),
        Some(CONTROL_PLANE_ROLLBACK_REFUSAL)
    );
    let sent = calls(&mock, "updateMaster");
    let e = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
    assert_eq!(calls(&mock, "updateMaster"), sent, "refused before sending");
    // GKE's own answer to the downgrade: FAILED_PRECONDITION naming the completed soak.
    let (code, message) = raw_update_master(&p, OLD).await.unwrap_err();
    assert_eq!(code, Some(Code::FailedPrecondition), "{message}");
    assert!(
        message.contains("not in rollback-safe mode") && message.contains("was completed"),
        "{message}"
    );

    // A second cluster's soak running out has the same effect.
    let mock = self::mock(600.0).await;
    let p = soaking(&mock).await;
    cp_to_134(&p).await;
    assert!(mock.end_control_plane_soak("demo"));
    let offer = p.rollback_offer().await.unwrap();
    assert_eq!(
        offer.refusal(&RollbackPart::ControlPlane),
        Some(CONTROL_PLANE_ROLLBACK_REFUSAL)
    );
    let (code, message) = raw_update_master(&p, OLD).await.unwrap_err();
    assert_eq!(code, Some(Code::FailedPrecondition), "{message}");
    assert!(message.contains("ended at"), "{message}");
}

#[tokio::test]
async fn soaks_outside_gkes_range_are_refused_naming_the_field() {
    let mock = mock(600.0).await;
    for soak in [
        Duration::from_secs(3600),
        Duration::from_secs(8 * 24 * 3600),
    ] {
        let e = builder(&mock)
            .settings(GkeSettings {
                control_plane_soak: Some(soak),
                ..GkeSettings::default()
            })
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("control_plane_soak") && e.contains("21600s"),
            "{e}"
        );
    }
    // GKE (the mock) refuses such a soak itself, naming the field.
    let p = builder(&mock).build().await.unwrap();
    let e = p
        .client()
        .update_cluster()
        .set_name("projects/demo-project/locations/us-central1/clusters/demo")
        .set_update(
            google_cloud_container_v1::model::ClusterUpdate::new()
                .set_desired_master_version("1.34")
                .set_desired_rollback_safe_upgrade(
                    google_cloud_container_v1::model::RollbackSafeUpgrade::new()
                        .set_control_plane_soak_duration(google_cloud_wkt::Duration::clamp(
                            3600, 0,
                        )),
                ),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.code), Some(Code::InvalidArgument));
    assert!(e.to_string().contains("controlPlaneSoakDuration"), "{e}");
    assert!(mock.operations().is_empty());
}

#[tokio::test]
async fn a_running_operation_makes_the_rollback_busy() {
    let mock = mock(600.0).await;
    let p = soaking(&mock).await;
    cp_to_134(&p).await;
    let option = p
        .rollback_offer()
        .await
        .unwrap()
        .options_for(&RollbackPart::ControlPlane)
        .next()
        .cloned()
        .unwrap();
    // Someone else's blue-green pool upgrade runs, soaking for days.
    let other = builder(&mock)
        .settings(GkeSettings {
            node_pool_soak: Some(SOAK),
            ..GkeSettings::default()
        })
        .build()
        .await
        .unwrap();
    let blue_green = NodePoolOptions {
        strategy: PoolStrategy::BlueGreen,
        ..Default::default()
    };
    let up = other
        .upgrade_node_pool("apps", &v("1.34"), &blue_green)
        .await
        .unwrap();
    let sent = calls(&mock, "updateMaster");
    let e = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Busy, "{e}");
    assert!(matches!(&e, kup_core::Error::Busy { operation: Some(id), .. } if *id == up.id));
    assert_eq!(calls(&mock, "updateMaster"), sent);
    // GKE's own busy answer maps to busy as well.
    mock.inject(GkeFault::Error {
        call: "rollbackNodePoolUpgrade".into(),
        times: 1,
        error: ApiError::precondition(format!(
            "Cluster is running incompatible operation {}.",
            up.id
        )),
    });
    let e = p
        .rollback_node_pool_upgrade("default-pool", true)
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Busy, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_surge_upgrade_is_offered_back_and_rolled_back_under_budgets() {
    let (sim, mock, p) = with_sim().await;
    cp_to_134(&p).await;
    mock.inject(GkeFault::FailNextOperation {
        code: "INTERNAL".into(),
        message: "Node creation failed: ZONE_RESOURCE_POOL_EXHAUSTED".into(),
        conditions: vec![],
    });
    let up = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        until_done(&p, &up).await,
        OperationStatus::Failed { .. }
    ));
    let mixed = pool_kubelets(&sim, "apps");
    assert!(
        mixed.iter().any(|k| k == &format!("v{NEW}"))
            && mixed.iter().any(|k| k == &format!("v{OLD}")),
        "{mixed:?}"
    );

    let offer = p.rollback_offer().await.unwrap();
    let option = offer
        .options_for(&RollbackPart::pool("apps"))
        .next()
        .unwrap_or_else(|| panic!("apps not offered: {offer:?}"))
        .clone();
    assert_eq!(option.to, v(OLD));
    assert!(
        option.basis.contains("failed") && option.basis.contains("INTERNAL"),
        "{}",
        option.basis
    );
    assert!(offer.refusal(&RollbackPart::pool("default-pool")).is_some());

    let deletions = sim.pod_deletions().len();
    let rb = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(until_done(&p, &rb).await, OperationStatus::Succeeded);
    assert_eq!(pool_kubelets(&sim, "apps"), vec![format!("v{OLD}"); 3]);
    let last = mock.operations().last().cloned().unwrap();
    assert!(
        matches!(
            last.target,
            OpTarget::NodePool {
                rollback: true,
                respect_pdb: true,
                ..
            }
        ),
        "{last:?}"
    );
    let shop: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .skip(deletions)
        .filter(|d| d.namespace == "shop")
        .collect();
    assert!(
        shop.iter().all(|d| d.via == DeletedVia::Eviction),
        "{shop:?}"
    );
    // Rolled back, the pool has nothing more to roll back.
    let offer = p.rollback_offer().await.unwrap();
    assert!(
        offer
            .options_for(&RollbackPart::pool("apps"))
            .next()
            .is_none(),
        "{offer:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_upgrade_in_its_soak_is_offered_back_and_force_skips_budgets() {
    let (sim, mock, p) = with_sim().await;
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
    let offer = p.rollback_offer().await.unwrap();
    let option = offer
        .options_for(&RollbackPart::pool("apps"))
        .next()
        .unwrap_or_else(|| panic!("apps not offered: {offer:?}"))
        .clone();
    assert_eq!(option.to, v(OLD));
    assert!(
        option.basis.contains("blue-green") && option.basis.contains("NODE_POOL_SOAKING"),
        "{}",
        option.basis
    );
    // The blue-green upgrade runs, yet it is the one being rolled back: not busy.
    let forced = NodePoolOptions {
        force: true,
        ..Default::default()
    };
    let rb = p
        .rollback_node_pool("apps", &option, &forced)
        .await
        .unwrap();
    assert_eq!(until_done(&p, &rb).await, OperationStatus::Succeeded);
    assert!(matches!(
        until_done(&p, &up).await,
        OperationStatus::Cancelled { .. }
    ));
    assert_eq!(pool_kubelets(&sim, "apps"), vec![format!("v{OLD}"); 3]);
    let rolled = mock
        .operations()
        .into_iter()
        .find(|o| o.name == rb.id)
        .unwrap();
    assert!(
        matches!(
            rolled.target,
            OpTarget::NodePool {
                rollback: true,
                respect_pdb: false,
                ..
            }
        ),
        "{rolled:?}"
    );
    sim.shutdown().await;
}
