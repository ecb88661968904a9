//! Every provider call through the real aws-sdk-eks client against the stateful EKS mock.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kup_core::{
    AddonOptions, ControlPlaneOptions, ErrorCategory, KubeVersion, NodePoolOptions,
    OperationStatus, OperationTarget, PoolManagement, Severity, SupportStatus, UpgradeProvider,
};
use kup_eks::{EksBuilder, EksProvider};
use kup_mocks::eks::{ApiError, EksConfig, EksFault, EksMock, EksNodegroup, demo_cluster};
use kup_mocks::k8s::{Node, Scenario, SimConfig, Simulator};

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

async fn provider(mock: &EksMock, kube: Option<kube::Client>) -> EksProvider {
    let mut b = EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDEXAMPLE", "test-secret")
        .sdk_config(
            aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        );
    if let Some(k) = kube {
        b = b.kube_client(k);
    }
    b.build().await.unwrap()
}

async fn wait(p: &EksProvider, op: &kup_core::Operation) -> OperationStatus {
    for _ in 0..2000 {
        let s = p.poll(op).await.unwrap();
        if s.is_terminal() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{op:?} never finished");
}

#[tokio::test]
async fn versions_and_cluster_as_eks_reports_them() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    let versions = p.available_versions().await.unwrap();
    let v134 = versions.iter().find(|a| a.version == v("1.34")).unwrap();
    assert_eq!(v134.support, SupportStatus::Standard);
    assert!(v134.default);
    assert_eq!(
        v134.end_of_standard_support.unwrap().to_string(),
        "2026-12-02"
    );
    let v130 = versions.iter().find(|a| a.version == v("1.30")).unwrap();
    assert_eq!(v130.support, SupportStatus::Extended);
    assert!(versions.windows(2).all(|w| w[0].version < w[1].version));

    let c = p.cluster().await.unwrap();
    assert_eq!(c.control_plane, v("1.33"));
    assert_eq!(c.status.as_deref(), Some("ACTIVE"));
    assert!(!c.is_busy());
    let apps = c.pool("apps").unwrap();
    assert_eq!(apps.management, PoolManagement::Provider);
    assert_eq!(apps.node_count, Some(3));
    assert_eq!(
        apps.node_selector.as_deref(),
        Some("eks.amazonaws.com/nodegroup=apps")
    );
    let addons: Vec<_> = c
        .addons
        .iter()
        .map(|a| (a.name.as_str(), a.version.as_str()))
        .collect();
    assert_eq!(
        addons,
        [
            ("coredns", "v1.12.1-eksbuild.2"),
            ("kube-proxy", "v1.33.0-eksbuild.2"),
            ("vpc-cni", "v1.19.6-eksbuild.1")
        ]
    );
    assert!(p.capabilities().provider_drains_nodes && !p.capabilities().surge_upgrades);
}

#[tokio::test]
async fn a_control_plane_update_runs_makes_the_cluster_busy_and_refuses_a_second() {
    let mock = EksMock::start(EksConfig::demo().time_scale(300.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(op.target, OperationTarget::ControlPlane);
    assert_eq!(op.handle.get("update_id"), Some(&op.id));
    let c = p.cluster().await.unwrap();
    assert!(c.is_busy());
    assert_eq!(c.in_progress[0].id, op.id);
    let second = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(second.category(), ErrorCategory::Busy, "{second}");
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(p.cluster().await.unwrap().control_plane, v("1.34"));
    // Exactly one update was started.
    assert_eq!(mock.updates("demo").len(), 1);
}

#[tokio::test]
async fn failed_updates_carry_every_eks_error() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    mock.inject(EksFault::FailNextUpdate(vec![
        (
            "NodeCreationFailure".into(),
            "Instances failed to join".into(),
            vec!["i-0abc".into(), "i-0def".into()],
        ),
        (
            "AccessDenied".into(),
            "Role lacks ec2:RunInstances".into(),
            vec![],
        ),
    ]));
    let op = p
        .upgrade_node_pool("system", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap();
    match wait(&p, &op).await {
        OperationStatus::Failed { errors } => {
            assert_eq!(errors.len(), 2);
            assert_eq!(errors[0].code, "NodeCreationFailure");
            assert_eq!(errors[0].resource_ids, ["i-0abc", "i-0def"]);
            assert_eq!(errors[1].message, "Role lacks ec2:RunInstances");
            let e = OperationStatus::Failed { errors }
                .into_result(&op)
                .unwrap_err();
            assert!(e.to_string().contains("NodeCreationFailure"), "{e}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn eks_exceptions_map_to_kup_error_categories() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    // A skip is refused by kup before anything is sent (as every provider refuses it); EKS's
    // own InvalidParameterException maps to InvalidInput (the error module's tests).
    let skip = p
        .upgrade_control_plane(&v("1.35"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(skip.category(), ErrorCategory::Precondition, "{skip}");
    assert!(skip.to_string().contains("one minor at a time"), "{skip}");
    assert!(mock.updates("demo").is_empty(), "nothing was sent");

    mock.inject(EksFault::Error {
        operation: "DescribeCluster".into(),
        times: 1,
        error: ApiError::throttling(),
    });
    let throttled = p.cluster().await.unwrap_err();
    assert!(throttled.is_retryable(), "{throttled}");

    mock.inject(EksFault::Error {
        operation: "ListNodegroups".into(),
        times: 1,
        error: ApiError::access_denied(),
    });
    let denied = p.cluster().await.unwrap_err();
    assert_eq!(
        denied.category(),
        ErrorCategory::PermissionDenied,
        "{denied}"
    );

    mock.set_insight_status("demo", "b1f3c6c2-0a9e-4c39-9d6a-5c1de1f0a002", "ERROR");
    let state = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(state.category(), ErrorCategory::Precondition, "{state}");
    assert!(
        p.upgrade_control_plane(&v("1.34"), &ControlPlaneOptions { force: true })
            .await
            .is_ok()
    );

    let other = EksBuilder::new()
        .cluster_name("missing")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDEXAMPLE", "test-secret")
        .build()
        .await
        .unwrap();
    assert_eq!(
        other.cluster().await.unwrap_err().category(),
        ErrorCategory::NotFound
    );
}

#[tokio::test]
async fn addon_recommendations_follow_compatibility_across_two_hops() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    let hop1 = p.addon_upgrades(&v("1.34")).await.unwrap();
    let find =
        |list: &[kup_core::AddonUpgrade], n: &str| list.iter().find(|a| a.name == n).cloned();
    let proxy = find(&hop1, "kube-proxy").unwrap();
    assert_eq!(proxy.to, "v1.34.1-eksbuild.2");
    assert!(
        !proxy.current_compatible,
        "kube-proxy 1.33 does not run on 1.34"
    );
    let dns = find(&hop1, "coredns").unwrap();
    assert_eq!(dns.to, "v1.12.4-eksbuild.1");
    assert!(dns.current_compatible);
    let cni = find(&hop1, "vpc-cni").unwrap();
    assert_eq!(cni.to, "v1.20.4-eksbuild.1");

    let hop2 = p.addon_upgrades(&v("1.35")).await.unwrap();
    let proxy2 = find(&hop2, "kube-proxy").unwrap();
    assert_eq!(proxy2.to, "v1.35.0-eksbuild.2");
    let dns2 = find(&hop2, "coredns").unwrap();
    assert!(
        !dns2.current_compatible,
        "coredns 1.12.1 does not run on 1.35"
    );

    // Add-on updates are checked against the cluster's version by EKS.
    let early = p
        .upgrade_addon(&proxy, &AddonOptions::default())
        .await
        .unwrap_err();
    assert_eq!(early.category(), ErrorCategory::InvalidInput, "{early}");
    let op = p
        .upgrade_addon(&cni, &AddonOptions::default())
        .await
        .unwrap();
    assert_eq!(op.handle.get("addon").map(String::as_str), Some("vpc-cni"));
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(
        mock.addon_version("demo", "vpc-cni").as_deref(),
        Some("v1.20.4-eksbuild.1")
    );
    let u = mock.updates("demo");
    assert!(matches!(&u.last().unwrap().target,
        kup_mocks::eks::UpdateTarget::Addon { resolve_conflicts, .. } if resolve_conflicts == "PRESERVE"));
}

#[tokio::test]
async fn node_group_updates_respect_launch_templates_and_release_versions() {
    let cluster = demo_cluster("demo")
        .nodegroup(EksNodegroup::new("gpu", "1.33", 1).launch_template("gpu-lt", "7", true));
    let mock = EksMock::start(EksConfig::new(vec![cluster]).time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    let custom = p
        .upgrade_node_pool("gpu", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(custom.category(), ErrorCategory::Precondition);
    assert!(custom.to_string().contains("gpu-lt"), "{custom}");
    let wrong_release = NodePoolOptions {
        release_version: Some("1.32.9-20251101".into()),
        ..NodePoolOptions::default()
    };
    let e = p
        .upgrade_node_pool("apps", &v("1.33"), &wrong_release)
        .await
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::InvalidInput, "{e}");
    let newer = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        newer.category(),
        ErrorCategory::InvalidInput,
        "node groups never pass the control plane"
    );
    let op = p
        .upgrade_node_pool("apps", &v("1.33"), &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(op.handle.get("nodegroup").map(String::as_str), Some("apps"));
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(
        mock.nodegroup_version("demo", "apps").unwrap().1,
        "1.33.5-20251120"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reports_insights_with_their_clients_and_unmanaged_nodes() {
    let scenario = kup_mocks::eks::demo_scenario()
        .node(Node::new("ip-10-0-9-1.ec2.internal").label("karpenter.sh/nodepool", "default"));
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, Some(sim.client().unwrap())).await;

    let to_134 = p.preflight(&v("1.34")).await.unwrap();
    assert!(
        to_134
            .iter()
            .all(|f| f.code != "eks.insight.deprecated-api"),
        "the 1.35 insight is not for 1.34"
    );
    let stray = to_134
        .iter()
        .find(|f| f.code == "eks.unmanaged-nodes")
        .unwrap();
    assert_eq!(stray.objects.len(), 1);
    assert_eq!(stray.objects[0].name, "ip-10-0-9-1.ec2.internal");

    let to_135 = p.preflight(&v("1.35")).await.unwrap();
    let dep = to_135
        .iter()
        .find(|f| f.code == "eks.insight.deprecated-api")
        .unwrap();
    assert_eq!(dep.severity, Severity::Warning);
    assert!(
        dep.message.contains("legacy-operator/v0.9.1"),
        "{}",
        dep.message
    );
    assert!(dep.message.contains("flowschemas"), "{}", dep.message);
    assert!(dep.remediation.is_some());

    mock.set_insight_status("demo", "b1f3c6c2-0a9e-4c39-9d6a-5c1de1f0a001", "ERROR");
    let blocked = p.preflight(&v("1.35")).await.unwrap();
    assert!(
        blocked
            .iter()
            .any(|f| f.code == "eks.insight.deprecated-api" && f.severity == Severity::Blocker)
    );
    sim.shutdown().await;
    let _ = Scenario::new();
}

#[tokio::test]
async fn a_fresh_cluster_and_fresh_node_groups_have_no_way_back_and_say_why() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock, None).await;
    let caps = p.capabilities();
    // Node groups go back to an earlier launch template version (tests/rollback.rs).
    assert!(caps.node_pool_rollback);
    // The control plane goes back only within 7 days of an in-place upgrade, and this
    // cluster has had none (tests/rollback.rs covers one that has).
    assert_eq!(
        caps.control_plane_rollback,
        kup_core::ControlPlaneRollback::DuringSoak
    );
    let offer = p.rollback_offer().await.unwrap();
    assert!(offer.options.is_empty(), "{offer:?}");
    let why = offer
        .refusal(&kup_core::RollbackPart::ControlPlane)
        .unwrap();
    assert!(why.contains("records no in-place upgrade"), "{why}");
    assert!(
        why.ends_with(kup_eks::CONTROL_PLANE_ROLLBACK_REFUSAL),
        "{why}"
    );
    let groups = p.cluster().await.unwrap().node_pools;
    assert!(!groups.is_empty());
    for g in &groups {
        let why = offer
            .refusal(&kup_core::RollbackPart::pool(g.name.clone()))
            .unwrap_or_else(|| panic!("{} is neither offered nor refused", g.name));
        assert!(why.ends_with(kup_eks::NODE_GROUP_ROLLBACK_REFUSAL), "{why}");
    }
    // An option naming no launch template version is bad input, refused before any call.
    let back = kup_core::RollbackOption {
        part: kup_core::RollbackPart::pool(groups[0].name.clone()),
        to: groups[0].version.clone(),
        release: None,
        basis: "test".into(),
    };
    let err = p
        .rollback_node_pool(&groups[0].name, &back, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    assert!(!mock.calls().contains_key("UpdateNodegroupVersion"));
}
