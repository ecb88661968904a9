//! The AKS provider against the ARM mock over HTTPS (azure_core's pipeline, a bearer token, the
//! mock's own CA): every call, LROs ending Succeeded, Failed and Canceled, busy clusters, the
//! removed-API block, and ARM's errors mapped to kup's categories.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kup_aks::{AksBuilder, AksProvider, AksSettings};
use kup_core::{
    ControlPlaneOptions, ErrorCategory, KubeVersion, NodePoolOptions, Operation, OperationStatus,
    OperationTarget, StuckDrainPolicy, SupportStatus, UpgradeProvider, VersionScope,
};
use kup_mocks::aks::{AksConfig, AksFault, AksMock, ArmError};

fn builder(mock: &AksMock) -> AksBuilder {
    let (sub, rg) = mock.coordinates();
    AksBuilder::new()
        .subscription(sub)
        .resource_group(rg)
        .cluster("demo")
        .endpoint(mock.endpoint())
        .ca_certificate_pem(mock.ca_pem())
        .static_token("test-token")
        .retries(0)
}

async fn start(config: AksConfig) -> (AksMock, AksProvider) {
    let mock = AksMock::start(config, None).await.unwrap();
    let p = builder(&mock).build().unwrap();
    (mock, p)
}

fn fast() -> AksConfig {
    AksConfig::demo().time_scale(3000.0)
}

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

async fn until_terminal(p: &AksProvider, op: &Operation) -> OperationStatus {
    tokio::time::timeout(
        Duration::from_secs(120),
        p.wait(op, Duration::from_millis(20)),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn versions_come_from_the_region_and_the_upgrade_profile() {
    let (_mock, p) = start(fast()).await;
    let versions = p.available_versions().await.unwrap();
    let names: Vec<String> = versions.iter().map(|a| a.version.to_string()).collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("1.31.8"),
        "{names:?}"
    );
    assert!(names.contains(&"1.36.0".to_string()), "{names:?}");
    let get = |n: &str| {
        versions
            .iter()
            .find(|a| a.version.to_string() == n)
            .unwrap()
    };
    assert_eq!(get("1.31.10").support, SupportStatus::Extended);
    assert_eq!(get("1.36.0").support, SupportStatus::Preview);
    assert_eq!(get("1.34.2").support, SupportStatus::Standard);
    assert!(get("1.34.2").default);
    assert!(versions.iter().all(|a| a.scope == VersionScope::Both));
}

#[tokio::test]
async fn cluster_reads_pools_across_pages() {
    let (_mock, p) = start(fast().page_size(1)).await;
    let info = p.cluster().await.unwrap();
    assert_eq!(info.control_plane, v("1.33.5"));
    assert_eq!(info.status.as_deref(), Some("Succeeded"));
    assert!(!info.is_busy());
    let names: Vec<&str> = info.node_pools.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["apps", "system"]);
    let apps = info.pool("apps").unwrap();
    assert_eq!(apps.node_count, Some(3));
    assert_eq!(apps.version, v("1.33.5"));
    assert_eq!(
        apps.node_selector.as_deref(),
        Some("kubernetes.azure.com/agentpool=apps")
    );
}

#[tokio::test]
async fn control_plane_upgrade_leaves_the_pools_and_succeeds() {
    let (mock, p) = start(fast()).await;
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(op.target, OperationTarget::ControlPlane);
    assert_eq!(
        op.to_version.as_deref(),
        Some("1.34.2"),
        "newest patch of 1.34"
    );
    assert!(op.handle.contains_key("azure_async_operation"), "{op:?}");
    let busy = p.cluster().await.unwrap();
    assert!(busy.is_busy(), "{busy:?}");
    assert_eq!(until_terminal(&p, &op).await, OperationStatus::Succeeded);
    let info = p.cluster().await.unwrap();
    assert_eq!(info.control_plane, v("1.34.2"));
    for pool in &info.node_pools {
        assert_eq!(pool.version, v("1.33.5"), "{} moved", pool.name);
    }
    assert_eq!(mock.accepted(), ["PUT managedCluster demo → 1.34.2"]);
}

#[tokio::test]
async fn hops_that_skip_or_go_back_are_refused_before_any_put() {
    let (mock, p) = start(fast()).await;
    for to in ["1.35", "1.32", "1.33.3"] {
        let e = p
            .upgrade_control_plane(&v(to), &ControlPlaneOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.category(), ErrorCategory::Precondition, "{to}: {e}");
    }
    assert_eq!(mock.calls().get("PUT managedCluster"), None);
}

#[tokio::test]
async fn pool_upgrade_sends_upgrade_settings_from_kups_options() {
    let mock = AksMock::start(fast(), None).await.unwrap();
    let p = builder(&mock)
        .settings(AksSettings {
            drain_timeout: Some(Duration::from_secs(10 * 60)),
            node_soak: Some(Duration::from_secs(120)),
            on_stuck_drain: StuckDrainPolicy::CordonAndContinue,
            ..AksSettings::default()
        })
        .build()
        .unwrap();
    let cp = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    until_terminal(&p, &cp).await;
    let opts = NodePoolOptions {
        max_surge: Some("33%".into()),
        max_unavailable: Some("1".into()),
        ..Default::default()
    };
    let op = p
        .upgrade_node_pool("apps", &v("1.34"), &opts)
        .await
        .unwrap();
    assert_eq!(op.to_version.as_deref(), Some("1.34.2"));
    let sent = &mock.pool_json("demo", "apps")["properties"]["upgradeSettings"];
    assert_eq!(sent["maxSurge"], "33%");
    assert_eq!(sent["maxUnavailable"], "1");
    assert_eq!(sent["drainTimeoutInMinutes"], 10);
    assert_eq!(sent["nodeSoakDurationInMinutes"], 2);
    assert_eq!(sent["undrainableNodeBehavior"], "Cordon");
    assert_eq!(until_terminal(&p, &op).await, OperationStatus::Succeeded);
    let info = p.cluster().await.unwrap();
    assert_eq!(info.pool("apps").unwrap().version, v("1.34.2"));
    assert_eq!(info.pool("system").unwrap().version, v("1.33.5"));
}

#[tokio::test]
async fn pool_options_aks_cannot_honour_are_refused_by_name() {
    let (mock, p) = start(fast()).await;
    for (opts, field) in [
        (
            NodePoolOptions {
                force: true,
                ..Default::default()
            },
            "pools.apps.force",
        ),
        (
            NodePoolOptions {
                release_version: Some("AKSUbuntu-2204gen2containerd-202401.01.0".into()),
                ..Default::default()
            },
            "pools.apps.release_version",
        ),
    ] {
        let e = p
            .upgrade_node_pool("apps", &v("1.33"), &opts)
            .await
            .unwrap_err();
        assert_eq!(e.category(), ErrorCategory::InvalidInput);
        assert!(e.to_string().contains(field), "{e}");
    }
    let e = p
        .upgrade_node_pool("nope", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(mock.accepted().is_empty());
}

#[tokio::test]
async fn a_busy_cluster_is_refused_before_sending_and_a_409_maps_to_busy() {
    let (mock, p) = start(fast()).await;
    mock.inject(AksFault::SlowOperations(1000));
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let puts = mock.calls().get("PUT managedCluster").copied();
    let e = p
        .upgrade_node_pool("apps", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Busy, "{e}");
    let e = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Busy, "{e}");
    assert_eq!(mock.calls().get("PUT managedCluster").copied(), puts);
    assert_eq!(mock.calls().get("PUT agentPool"), None);
    // ARM's own refusal, when it comes, reads the same.
    let e = p.upgrade_node_image("apps").await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Busy, "{e}");
    let aborted = p.abort(None).await.unwrap();
    assert_eq!(
        until_terminal(&p, &aborted).await,
        OperationStatus::Succeeded
    );
    let status = until_terminal(&p, &op).await;
    let OperationStatus::Cancelled { errors } = &status else {
        panic!("{status:?}");
    };
    assert_eq!(errors[0].code, "OperationCanceled");
    assert_eq!(
        p.cluster().await.unwrap().status.as_deref(),
        Some("Canceled")
    );
}

#[tokio::test]
async fn a_409_operation_not_allowed_from_arm_is_busy() {
    let (mock, p) = start(fast()).await;
    mock.inject(AksFault::Answer {
        call: Some("PUT managedCluster".into()),
        error: ArmError::new(
            409,
            "OperationNotAllowed",
            "Operation is not allowed because there's an in progress operation",
        ),
        times: 1,
    });
    let e = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, kup_core::Error::Busy { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_failed_operation_carries_arms_error_and_details() {
    let (mock, p) = start(fast()).await;
    mock.inject(AksFault::FailNextOperation {
        code: "UpgradeFailed".into(),
        message: "the control plane did not come up".into(),
        details: vec![("EtcdUnhealthy".into(), "etcd quorum lost".into())],
    });
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    let status = until_terminal(&p, &op).await;
    let err = status.into_result(&op).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::OperationFailed);
    let text = err.to_string();
    assert!(
        text.contains("UpgradeFailed") && text.contains("EtcdUnhealthy"),
        "{text}"
    );
    // Failed is reported, and AKS takes a new upgrade.
    let info = p.cluster().await.unwrap();
    assert_eq!(info.status.as_deref(), Some("Failed"));
    assert!(!info.is_busy());
    let findings = p.preflight(&v("1.34")).await.unwrap();
    assert!(
        findings.iter().any(|f| f.code == "AksLastOperationFailed"),
        "{findings:?}"
    );
    let again = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(until_terminal(&p, &again).await, OperationStatus::Succeeded);
}

#[tokio::test]
async fn the_removed_api_block_is_a_precondition_and_force_overrides_it() {
    let (mock, p) = start(fast()).await;
    mock.use_deprecated_api(
        "demo",
        "flowcontrol.apiserver.k8s.io/v1beta3/flowschemas",
        "1.32",
    );
    let e = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Precondition, "{e}");
    assert!(
        e.to_string()
            .contains("flowcontrol.apiserver.k8s.io/v1beta3"),
        "{e}"
    );
    assert!(mock.accepted().is_empty());
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions { force: true })
        .await
        .unwrap();
    assert_eq!(until_terminal(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(mock.accepted().len(), 1);
}

#[tokio::test]
async fn arm_errors_map_to_kups_categories() {
    let (mock, p) = start(fast()).await;
    let cases = [
        (
            403,
            "AuthorizationFailed",
            ErrorCategory::PermissionDenied,
            false,
        ),
        (
            401,
            "InvalidAuthenticationToken",
            ErrorCategory::PermissionDenied,
            false,
        ),
        (400, "InvalidParameter", ErrorCategory::InvalidInput, false),
        (429, "TooManyRequests", ErrorCategory::Provider, true),
        (503, "ServiceUnavailable", ErrorCategory::Provider, true),
    ];
    for (status, code, category, retryable) in cases {
        mock.inject(AksFault::Answer {
            call: Some("GET managedCluster".into()),
            error: ArmError::new(status, code, format!("{code} says no")),
            times: 1,
        });
        let e = p.cluster().await.unwrap_err();
        assert_eq!(e.category(), category, "{status}: {e}");
        assert_eq!(e.is_retryable(), retryable, "{status}: {e}");
    }
    let other = builder(&mock).cluster("elsewhere").build().unwrap();
    let e = other.cluster().await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound, "{e}");
}

#[tokio::test]
async fn retries_follow_retry_after_then_succeed() {
    let mock = AksMock::start(fast(), None).await.unwrap();
    let p = builder(&mock).retries(3).build().unwrap();
    mock.inject(AksFault::Answer {
        call: Some("GET managedCluster".into()),
        error: ArmError::new(503, "ServiceUnavailable", "later"),
        times: 2,
    });
    assert_eq!(p.cluster().await.unwrap().control_plane, v("1.33.5"));
    assert!(mock.calls()["GET managedCluster"] >= 3);
}

#[tokio::test]
async fn dropped_connections_are_retried_and_slow_answers_still_arrive() {
    let mock = AksMock::start(fast(), None).await.unwrap();
    mock.inject(AksFault::DropConnections(1));
    mock.inject(AksFault::Latency(Duration::from_millis(50)));
    let retrying = builder(&mock).retries(3).build().unwrap();
    assert_eq!(retrying.cluster().await.unwrap().control_plane, v("1.33.5"));
    mock.inject(AksFault::DropConnections(1));
    let once = builder(&mock).build().unwrap();
    let e = once.cluster().await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Provider, "{e}");
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test]
async fn polls_wait_for_retry_after() {
    let mut config = AksConfig::demo().time_scale(60.0);
    // 60 simulated seconds: one real second between polls.
    config.retry_after = Duration::from_secs(60);
    let (mock, p) = start(config).await;
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(!p.poll(&op).await.unwrap().is_terminal());
    }
    // The status resource was not asked before its Retry-After passed.
    assert_eq!(mock.calls().get("GET operationStatus"), None);
}

#[tokio::test]
async fn node_image_upgrades_poll_by_location_too_and_unknown_operations_are_not_found() {
    let (mock, p) = start(fast()).await;
    let op = p.upgrade_node_image("apps").await.unwrap();
    let url = op.handle["azure_async_operation"].replace("/operations/", "/operationresults/");
    let by_location = Operation::new(op.provider.clone(), op.id.clone(), op.target.clone())
        .with_handle("location", url);
    assert_eq!(
        until_terminal(&p, &by_location).await,
        OperationStatus::Succeeded
    );
    assert!(mock.calls()["GET operationResult"] >= 1);
    assert_eq!(
        mock.pool_json("demo", "apps")["properties"]["nodeImageVersion"],
        "AKSUbuntu-2204gen2containerd-202511.07.0"
    );
    let stranger = Operation::new(
        kup_core::ProviderKind::Aks,
        "no-such-operation",
        OperationTarget::ControlPlane,
    );
    let e = p.poll(&stranger).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound);
    assert!(e.to_string().contains("no-such-operation"), "{e}");
}

#[tokio::test]
async fn without_a_token_arm_answers_401_and_http_endpoints_are_refused() {
    let e = AksBuilder::new()
        .subscription("3f2c9a1e-5b7d-4c8e-9f0a-1b2c3d4e5f60")
        .resource_group("rg-demo")
        .cluster("demo")
        .endpoint("http://127.0.0.1:1")
        .static_token("t")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("endpoint"), "{e}");
}

#[tokio::test]
async fn pre_flight_reports_the_removed_api_block_from_the_api_servers_metric() {
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/metrics"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string(
            "# TYPE apiserver_requested_deprecated_apis gauge\n\
             apiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.34\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta3\"} 1\n",
        ))
        .mount(&api)
        .await;
    let mock = AksMock::start(fast(), None).await.unwrap();
    let kube = kube::Client::try_from(kube::Config::new(api.uri().parse().unwrap())).unwrap();
    let p = builder(&mock).kube_client(kube).build().unwrap();
    let findings = p.preflight(&v("1.34")).await.unwrap();
    let block = findings
        .iter()
        .find(|f| f.code == "aks.UpgradeBlockedOnDeprecatedAPIUsage")
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert!(block.is_blocker());
    assert!(
        block
            .message
            .contains("flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"),
        "{}",
        block.message
    );
    assert!(
        block
            .remediation
            .as_deref()
            .unwrap_or_default()
            .contains("forceUpgrade")
    );
    // A patch upgrade, or a target that still serves the API, is not blocked.
    assert!(p.preflight(&v("1.33.5")).await.unwrap().is_empty());
    assert!(mock.accepted().is_empty());
}
