//! Agent-pool rollback against the ARM mock over HTTPS, played out on the Kubernetes
//! simulator: the offer read from the pool's `recentlyUsedVersions`, the PUT back to one of
//! them rolling surge nodes like an upgrade, AKS's refusals, busy clusters and a restarted kup
//! re-attaching to the rollback in flight.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use kup_aks::{AksBuilder, AksProvider, CONTROL_PLANE_ROLLBACK_REFUSAL};
use kup_core::{
    ControlPlaneOptions, ErrorCategory, KubeVersion, NodePoolOptions, Operation, OperationStatus,
    OperationTarget, RollbackOption, RollbackPart, UpgradeProvider,
};
use kup_mocks::aks::{AGENTPOOL_LABEL, AksConfig, AksMock, DEMO_NODE_IMAGE, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};

async fn start() -> (SimHandle, AksMock, AksProvider) {
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
    let p = provider(&mock);
    (sim, mock, p)
}

/// What a (re)started kup builds.
fn provider(mock: &AksMock) -> AksProvider {
    let (sub, rg) = mock.coordinates();
    AksBuilder::new()
        .subscription(sub)
        .resource_group(rg)
        .cluster("demo")
        .endpoint(mock.endpoint())
        .ca_certificate_pem(mock.ca_pem())
        .static_token("test-token")
        .retries(0)
        .build()
        .unwrap()
}

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

async fn until_terminal(p: &AksProvider, op: &Operation) -> OperationStatus {
    tokio::time::timeout(
        Duration::from_secs(180),
        p.wait(op, Duration::from_millis(50)),
    )
    .await
    .unwrap()
    .unwrap()
}

/// The pool's nodes in the simulator: name and kubelet version.
fn pool_nodes(sim: &SimHandle, pool: &str) -> Vec<(String, String)> {
    sim.nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][AGENTPOOL_LABEL] == pool)
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// Control plane and pool `apps` to 1.34.
async fn upgrade_apps(p: &AksProvider) {
    let cp = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(until_terminal(p, &cp).await, OperationStatus::Succeeded);
    let op = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(until_terminal(p, &op).await, OperationStatus::Succeeded);
}

fn apps_option(offer: &kup_core::RollbackOffer) -> RollbackOption {
    offer
        .options_for(&RollbackPart::pool("apps"))
        .next()
        .cloned()
        .expect("an option for pool apps")
}

#[tokio::test]
async fn an_upgraded_pool_is_offered_its_previous_version_and_rolls_back_through_surge_nodes() {
    let (sim, mock, p) = start().await;
    assert!(p.capabilities().node_pool_rollback);
    // Before any upgrade there is nowhere to go back to.
    let offer = p.rollback_offer().await.unwrap();
    assert!(offer.options.is_empty(), "{offer:?}");
    assert!(
        offer
            .refusal(&RollbackPart::pool("apps"))
            .unwrap()
            .contains("recentlyUsedVersions")
    );

    upgrade_apps(&p).await;
    let offer = p.rollback_offer().await.unwrap();
    let option = apps_option(&offer);
    assert_eq!(option.to, v("1.33.5"));
    assert_eq!(option.release.as_deref(), Some(DEMO_NODE_IMAGE));
    assert!(
        option.basis.starts_with("recentlyUsedVersions entry of 20"),
        "{}",
        option.basis
    );
    // The pool that never moved has nothing to go back to; the control plane never goes back.
    assert_eq!(offer.options_for(&RollbackPart::pool("system")).count(), 0);
    assert_eq!(
        offer.refusal(&RollbackPart::ControlPlane),
        Some(CONTROL_PLANE_ROLLBACK_REFUSAL)
    );
    assert!(CONTROL_PLANE_ROLLBACK_REFUSAL.contains("does not support downgrading"));

    let before: BTreeSet<String> = pool_nodes(&sim, "apps").into_iter().map(|n| n.0).collect();
    assert_eq!(before.len(), 3);
    let op = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(
        op.target,
        OperationTarget::NodePool {
            pool: "apps".into()
        }
    );
    assert_eq!(op.to_version.as_deref(), Some("1.33.5"));
    let sent = mock.pool_json("demo", "apps");
    assert_eq!(sent["properties"]["orchestratorVersion"], "1.33.5");
    assert_eq!(until_terminal(&p, &op).await, OperationStatus::Succeeded);

    let info = p.cluster().await.unwrap();
    assert_eq!(info.pool("apps").unwrap().version, v("1.33.5"));
    let pool = mock.pool_json("demo", "apps");
    assert_eq!(pool["properties"]["nodeImageVersion"], DEMO_NODE_IMAGE);
    let after = pool_nodes(&sim, "apps");
    assert_eq!(after.len(), 3, "{after:?}");
    for (name, kubelet) in &after {
        assert_eq!(kubelet, "v1.33.5", "{name}");
        assert!(!before.contains(name), "{name} was not replaced");
    }
    // The rollback is recorded too: 1.34 is now the way back.
    let offer = p.rollback_offer().await.unwrap();
    assert_eq!(apps_option(&offer).to, v("1.34.2"));
}

#[tokio::test]
async fn a_second_rollback_is_busy_and_a_restarted_kup_reattaches_to_the_first() {
    let (sim, _mock, p) = start().await;
    upgrade_apps(&p).await;
    let option = apps_option(&p.rollback_offer().await.unwrap());
    let op = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap();
    let err = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Busy, "{err}");
    // A restarted kup has only the journalled operation.
    drop(p);
    let restarted = provider(&_mock);
    let journalled: Operation = serde_json::from_value(serde_json::to_value(&op).unwrap()).unwrap();
    assert_eq!(
        until_terminal(&restarted, &journalled).await,
        OperationStatus::Succeeded
    );
    let info = restarted.cluster().await.unwrap();
    assert_eq!(info.pool("apps").unwrap().version, v("1.33.5"));
    assert!(pool_nodes(&sim, "apps").iter().all(|n| n.1 == "v1.33.5"));
}

#[tokio::test]
async fn a_version_the_profile_does_not_list_is_refused_before_any_put() {
    let (_sim, mock, p) = start().await;
    upgrade_apps(&p).await;
    let mut option = apps_option(&p.rollback_offer().await.unwrap());
    option.to = v("1.33.1");
    let accepted = mock.accepted().len();
    let err = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(err.to_string().contains("recentlyUsedVersions"), "{err}");
    // An option for another pool is bad input.
    let err = p
        .rollback_node_pool(
            "system",
            &apps_option(&p.rollback_offer().await.unwrap()),
            &NodePoolOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    assert_eq!(mock.accepted().len(), accepted);
    // The control plane never goes back.
    let err = p
        .rollback_control_plane(&RollbackOption {
            part: RollbackPart::ControlPlane,
            to: v("1.33.5"),
            release: None,
            basis: "test".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NotSupported, "{err}");
}
