//! Node-group rollback through the real aws-sdk-eks client against the EKS mock over loopback:
//! the offer read from each group's update history (ListUpdates + DescribeUpdate), the
//! UpdateNodegroupVersion back to the previous launch template version, and EKS's refusals of
//! earlier Kubernetes versions and AMI releases, busy groups and failing calls; and EKS
//! version rollback of the control plane (UpdateClusterVersion with rollbackConfig) within
//! 7 days of an in-place upgrade, with EKS's refusals outside it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_eks::types::LaunchTemplateSpecification;
use kup_core::{
    ControlPlaneOptions, ErrorCategory, KubeVersion, NodePoolOptions, Operation, OperationStatus,
    RollbackOption, RollbackPart, UpgradeProvider,
};
use kup_eks::{EksBuilder, EksProvider, NODE_GROUP_ROLLBACK_REFUSAL};
use kup_mocks::eks::{ApiError, EksConfig, EksFault, EksMock, UpdateTarget};

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

async fn provider(mock: &EksMock) -> EksProvider {
    EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(mock.endpoint())
        .static_credentials("AKIDEXAMPLE", "test-secret")
        .sdk_config(
            aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        )
        .build()
        .await
        .unwrap()
}

async fn wait(p: &EksProvider, op: &Operation) -> OperationStatus {
    for _ in 0..3000 {
        let s = p.poll(op).await.unwrap();
        if s.is_terminal() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{op:?} never finished");
}

/// What an operator does outside kup: a new launch template version, then the node group
/// updated to it (keeping its Kubernetes version and AMI release).
async fn move_to_new_template_version(p: &EksProvider, mock: &EksMock) -> String {
    let version = mock.create_launch_template_version("demo", "apps").unwrap();
    let (k8s, release) = mock.nodegroup_version("demo", "apps").unwrap();
    let out = p
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
        .unwrap();
    let id = out.update.unwrap().id.unwrap();
    let op = Operation::new(
        kup_core::ProviderKind::Eks,
        &id,
        kup_core::OperationTarget::NodePool {
            pool: "apps".into(),
        },
    )
    .with_handle("update_id", &id)
    .with_handle("nodegroup", "apps");
    assert_eq!(wait(p, &op).await, OperationStatus::Succeeded);
    version
}

fn release(version: &str) -> String {
    format!("launch template apps-lt version {version}")
}

#[tokio::test]
async fn the_previous_launch_template_version_goes_back_and_eks_refusals_are_kept() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    assert!(p.capabilities().node_pool_rollback);
    let apps = RollbackPart::pool("apps");
    let system = RollbackPart::pool("system");

    // A fresh cluster: nothing recorded, so nothing offered; each group says why.
    let offer = p.rollback_offer().await.unwrap();
    assert!(offer.options.is_empty(), "{offer:?}");
    for part in [&apps, &system] {
        let why = offer.refusal(part).unwrap();
        assert!(why.ends_with(NODE_GROUP_ROLLBACK_REFUSAL), "{why}");
    }
    assert_eq!(
        p.cluster().await.unwrap().pool("apps").unwrap().release,
        Some(release("4"))
    );

    // One template bump: EKS records only where it went, so where it came from is unknown.
    assert_eq!(move_to_new_template_version(&p, &mock).await, "5");
    let offer = p.rollback_offer().await.unwrap();
    let why = offer.refusal(&apps).unwrap();
    assert!(why.contains("holds one version update"), "{why}");

    // A second bump: version 5 is recorded, and offered back.
    assert_eq!(move_to_new_template_version(&p, &mock).await, "6");
    let offer = p.rollback_offer().await.unwrap();
    let option = offer.options_for(&apps).next().cloned().unwrap();
    assert_eq!(option.to, v("1.33"));
    assert_eq!(option.release, Some(release("5")));
    assert!(
        option.basis.contains("launch template version 5"),
        "{option:?}"
    );
    // A group without a launch template has only AMI releases, which never go back.
    let why = offer.refusal(&system).unwrap();
    assert!(why.contains("has no launch template"), "{why}");

    // Refused before anything is sent: another group's option, no release, another version,
    // a release the history no longer offers.
    let sent = |m: &EksMock| {
        m.calls()
            .get("UpdateNodegroupVersion")
            .copied()
            .unwrap_or(0)
    };
    let before = sent(&mock);
    let opts = NodePoolOptions::default();
    let err = p
        .rollback_node_pool("system", &option, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    assert!(err.to_string().contains("pools.system.rollback"), "{err}");
    let bare = RollbackOption {
        release: None,
        ..option.clone()
    };
    let err = p
        .rollback_node_pool("apps", &bare, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    let older = RollbackOption {
        to: v("1.32"),
        ..option.clone()
    };
    let err = p
        .rollback_node_pool("apps", &older, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(
        err.to_string().contains(NODE_GROUP_ROLLBACK_REFUSAL),
        "{err}"
    );
    let stale = RollbackOption {
        release: Some(release("3")),
        ..option.clone()
    };
    let err = p
        .rollback_node_pool("apps", &stale, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(err.to_string().contains(&release("5")), "{err}");
    assert_eq!(sent(&mock), before, "refusals sent nothing");

    // The rollback: UpdateNodegroupVersion back to version 5, `force` as asked, polled to
    // the end like any update.
    let forced = NodePoolOptions {
        force: true,
        ..NodePoolOptions::default()
    };
    let op = p
        .rollback_node_pool("apps", &option, &forced)
        .await
        .unwrap();
    assert_eq!(op.handle.get("kind").map(String::as_str), Some("rollback"));
    assert_eq!(op.to_version.as_deref(), Some("1.33"));
    let last = mock.updates("demo").last().cloned().unwrap();
    assert!(
        matches!(
            &last.target,
            UpdateTarget::Nodegroup { nodegroup, force: true, launch_template_version: Some(v), .. }
                if nodegroup == "apps" && v == "5"
        ),
        "{last:?}"
    );
    // While it runs, the group is busy: EKS's ResourceInUseException, reported as busy.
    let err = p
        .rollback_node_pool("apps", &option, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Busy, "{err}");
    assert!(p.cluster().await.unwrap().is_busy());
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(
        mock.nodegroup_launch_template("demo", "apps"),
        Some(("apps-lt".into(), "5".into()))
    );
    let (k8s, ami) = mock.nodegroup_version("demo", "apps").unwrap();
    assert_eq!(k8s, "1.33");
    assert_eq!(ami, "1.33.0-20251112", "the AMI release is kept");
    let back = p.cluster().await.unwrap();
    assert_eq!(back.pool("apps").unwrap().release, Some(release("5")));
    // The history now ends 6 → 5: the way back is 6 again.
    let offer = p.rollback_offer().await.unwrap();
    let again = offer.options_for(&apps).next().unwrap();
    assert_eq!(again.release, Some(release("6")));
}

#[tokio::test]
async fn kubernetes_version_changes_are_refused_in_eks_words_and_nothing_moves() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    move_to_new_template_version(&p, &mock).await;
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    let op = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);

    let offer = p.rollback_offer().await.unwrap();
    let why = offer.refusal(&RollbackPart::pool("apps")).unwrap();
    assert!(
        why.contains("from Kubernetes 1.33 to 1.34") && why.ends_with(NODE_GROUP_ROLLBACK_REFUSAL),
        "{why}"
    );
    assert!(offer.options.is_empty(), "{offer:?}");

    // EKS itself refuses the downgrade too: InvalidParameterException, mapped to bad input.
    let err = p
        .sdk()
        .update_nodegroup_version()
        .cluster_name("demo")
        .nodegroup_name("apps")
        .version("1.33")
        .send()
        .await
        .unwrap_err();
    let text = format!("{}", aws_sdk_eks::error::DisplayErrorContext(&err));
    assert!(text.contains("InvalidParameterException"), "{text}");
    assert!(text.contains(NODE_GROUP_ROLLBACK_REFUSAL), "{text}");
    let back = RollbackOption {
        part: RollbackPart::pool("apps"),
        to: v("1.33"),
        release: Some(release("4")),
        basis: "the upgrade's start".into(),
    };
    let err = p
        .rollback_node_pool("apps", &back, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(err.to_string().contains("runs Kubernetes 1.34"), "{err}");
    assert_eq!(
        mock.nodegroup_version("demo", "apps").unwrap().0,
        "1.34",
        "nothing moved"
    );
}

#[tokio::test]
async fn a_failing_history_read_fails_the_offer_and_sends_nothing() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    move_to_new_template_version(&p, &mock).await;
    move_to_new_template_version(&p, &mock).await;
    mock.inject(EksFault::Error {
        operation: "DescribeUpdate".into(),
        times: 1,
        error: ApiError::access_denied(),
    });
    let err = p.rollback_offer().await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::PermissionDenied, "{err}");
    let option = p
        .rollback_offer()
        .await
        .unwrap()
        .options_for(&RollbackPart::pool("apps"))
        .next()
        .cloned()
        .unwrap();
    let sent = mock.calls().get("UpdateNodegroupVersion").copied();
    mock.inject(EksFault::Error {
        operation: "ListUpdates".into(),
        times: 1,
        error: ApiError::throttling(),
    });
    let err = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Provider, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(mock.calls().get("UpdateNodegroupVersion").copied(), sent);

    // A rollback whose update ends Failed reports EKS's errors, and the group stays.
    mock.inject(EksFault::FailNextUpdate(vec![(
        "NodeCreationFailure".into(),
        "Instances failed to join the kubernetes cluster".into(),
        vec!["i-0abc".into()],
    )]));
    let op = p
        .rollback_node_pool("apps", &option, &NodePoolOptions::default())
        .await
        .unwrap();
    match wait(&p, &op).await {
        OperationStatus::Failed { errors } => {
            assert_eq!(errors[0].code, "NodeCreationFailure");
            assert_eq!(errors[0].resource_ids, vec!["i-0abc".to_string()]);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        mock.nodegroup_launch_template("demo", "apps").unwrap().1,
        "6"
    );
}

/// The control plane moved 1.33 → 1.34 in place, node groups left at 1.33.
async fn upgrade_control_plane(p: &EksProvider) {
    let op = p
        .upgrade_control_plane(&v("1.34"), &ControlPlaneOptions::default())
        .await
        .unwrap();
    assert_eq!(wait(p, &op).await, OperationStatus::Succeeded);
}

fn rollback_error<E: std::error::Error + 'static>(err: &aws_sdk_eks::error::SdkError<E>) -> String {
    format!("{}", aws_sdk_eks::error::DisplayErrorContext(err))
}

#[tokio::test]
async fn the_control_plane_goes_back_one_minor_within_the_window_through_version_rollback() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    assert_eq!(
        p.capabilities().control_plane_rollback,
        kup_core::ControlPlaneRollback::DuringSoak
    );
    upgrade_control_plane(&p).await;
    let upgrade = mock.updates("demo").last().cloned().unwrap();

    let offer = p.rollback_offer().await.unwrap();
    let option = offer
        .options_for(&RollbackPart::ControlPlane)
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("no control-plane option: {offer:?}"));
    assert_eq!(option.to, v("1.33"));
    assert_eq!(option.release, None);
    assert!(
        option
            .basis
            .contains(&format!("in-place upgrade {}", upgrade.id))
            && option.basis.contains("open until"),
        "{option:?}"
    );

    // Refused before anything is sent: another part, a release, two minors back.
    let sent = |m: &EksMock| m.calls().get("UpdateClusterVersion").copied().unwrap_or(0);
    let before = sent(&mock);
    let wrong_part = RollbackOption {
        part: RollbackPart::pool("apps"),
        ..option.clone()
    };
    let err = p.rollback_control_plane(&wrong_part).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    assert!(err.to_string().contains("control_plane.rollback"), "{err}");
    let with_release = RollbackOption {
        release: Some("eks.1".into()),
        ..option.clone()
    };
    let err = p.rollback_control_plane(&with_release).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    let two_back = RollbackOption {
        to: v("1.32"),
        ..option.clone()
    };
    let err = p.rollback_control_plane(&two_back).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(
        err.to_string()
            .contains(kup_eks::CONTROL_PLANE_ROLLBACK_REFUSAL),
        "{err}"
    );
    assert_eq!(sent(&mock), before, "refusals sent nothing");

    // An update kup could not see yet (started elsewhere a moment ago): EKS's
    // ResourceInUseException is reported as busy, and nothing changes.
    mock.inject(EksFault::Error {
        operation: "UpdateClusterVersion".into(),
        times: 1,
        error: ApiError::in_use(
            "Cannot update cluster demo because update 0b1c-elsewhere is in progress",
        ),
    });
    let err = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Busy, "{err}");
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));

    // The rollback: UpdateClusterVersion with the previous minor and a rollbackConfig, run
    // by EKS as a VersionRollback and polled like any update.
    let op = p.rollback_control_plane(&option).await.unwrap();
    assert_eq!(op.target, kup_core::OperationTarget::ControlPlane);
    assert_eq!(op.to_version.as_deref(), Some("1.33"));
    assert_eq!(op.handle.get("kind").map(String::as_str), Some("rollback"));
    let rollback = mock.updates("demo").last().cloned().unwrap();
    assert!(rollback.rollback, "{rollback:?}");
    assert_eq!(rollback.from_version.as_deref(), Some("1.34"));
    let described = p
        .sdk()
        .describe_update()
        .name("demo")
        .update_id(&rollback.id)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(
        described.r#type(),
        Some(&aws_sdk_eks::types::UpdateType::VersionRollback)
    );
    // While it runs the cluster is busy: kup refuses a second start itself, and EKS's own
    // ResourceInUseException reads as busy too.
    let err = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Busy, "{err}");
    let raw = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.33")
        .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
        .send()
        .await
        .unwrap_err();
    assert!(rollback_error(&raw).contains("ResourceInUseException"));
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(p.cluster().await.unwrap().control_plane, v("1.33"));

    // Its last change was a rollback: nothing left to roll back.
    let offer = p.rollback_offer().await.unwrap();
    let why = offer.refusal(&RollbackPart::ControlPlane).unwrap();
    assert!(why.contains("was a rollback to 1.33"), "{why}");
}

#[tokio::test]
async fn outside_the_window_or_without_rollback_config_eks_refuses() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    upgrade_control_plane(&p).await;

    // A downgrade without rollbackConfig is no rollback: EKS's InvalidParameterException.
    let err = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.33")
        .send()
        .await
        .unwrap_err();
    let text = rollback_error(&err);
    assert!(
        text.contains("InvalidParameterException")
            && text.contains("Unsupported Kubernetes minor version update from 1.34 to 1.33"),
        "{text}"
    );
    // More than one minor back.
    let err = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.32")
        .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
        .send()
        .await
        .unwrap_err();
    let text = rollback_error(&err);
    assert!(
        text.contains("InvalidParameterException") && text.contains("previous minor version"),
        "{text}"
    );
    // A timeout that is no number of minutes.
    let err = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.33")
        .rollback_config(
            aws_sdk_eks::types::RollbackConfig::builder()
                .timeout_minutes(0)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        rollback_error(&err).contains("rollbackConfig.timeoutMinutes"),
        "{}",
        rollback_error(&err)
    );

    // Eight days later the window has closed: kup refuses in EKS's terms, and so does EKS.
    mock.age_updates("demo", Duration::from_secs(8 * 86_400));
    let offer = p.rollback_offer().await.unwrap();
    let why = offer.refusal(&RollbackPart::ControlPlane).unwrap();
    assert!(
        why.contains("more than 7 days old")
            && why.ends_with(kup_eks::CONTROL_PLANE_ROLLBACK_REFUSAL),
        "{why}"
    );
    assert!(
        offer
            .options_for(&RollbackPart::ControlPlane)
            .next()
            .is_none()
    );
    let option = RollbackOption {
        part: RollbackPart::ControlPlane,
        to: v("1.33"),
        release: None,
        basis: "a plan made in time".into(),
    };
    let sent = mock.calls().get("UpdateClusterVersion").copied();
    let err = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    assert!(err.to_string().contains("more than 7 days old"), "{err}");
    assert_eq!(mock.calls().get("UpdateClusterVersion").copied(), sent);
    let err = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.33")
        .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
        .send()
        .await
        .unwrap_err();
    let text = rollback_error(&err);
    assert!(
        text.contains("InvalidRequestException") && text.contains("7 days"),
        "{text}"
    );
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));
}

#[tokio::test]
async fn a_node_group_newer_than_the_previous_minor_blocks_the_control_plane() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    upgrade_control_plane(&p).await;
    let op = p
        .upgrade_node_pool("apps", &v("1.34"), &NodePoolOptions::default())
        .await
        .unwrap();
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    let offer = p.rollback_offer().await.unwrap();
    let why = offer.refusal(&RollbackPart::ControlPlane).unwrap();
    assert!(why.contains("node group apps runs 1.34"), "{why}");
    let option = RollbackOption {
        part: RollbackPart::ControlPlane,
        to: v("1.33"),
        release: None,
        basis: "test".into(),
    };
    let err = p.rollback_control_plane(&option).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Precondition, "{err}");
    let err = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.33")
        .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
        .send()
        .await
        .unwrap_err();
    let text = rollback_error(&err);
    assert!(
        text.contains("InvalidRequestException") && text.contains("Nodegroup apps"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rollback_readiness_insight_in_error_blocks_the_control_plane_until_it_passes() {
    let cluster = kup_mocks::eks::demo_cluster("demo").insight(kup_mocks::eks::EksInsight {
        id: "c2a4d7e3-1b0f-4d4a-8e7b-6d2ef2a1b003".into(),
        category: "ROLLBACK_READINESS".into(),
        name: "Cluster health issues".into(),
        kubernetes_version: "1.33".into(),
        status: "ERROR".into(),
        reason: "A resource stored by the cluster is not served by Kubernetes 1.33.".into(),
        recommendation: "Remove it before rolling back.".into(),
        deprecations: Vec::new(),
    });
    let mock = EksMock::start(EksConfig::new(vec![cluster]).time_scale(600.0), None)
        .await
        .unwrap();
    let p = provider(&mock).await;
    upgrade_control_plane(&p).await;
    let offer = p.rollback_offer().await.unwrap();
    let why = offer.refusal(&RollbackPart::ControlPlane).unwrap();
    assert!(
        why.contains("rollback readiness insights report errors for 1.33")
            && why.contains("Cluster health issues (A resource stored"),
        "{why}"
    );
    // EKS refuses it too unless forced.
    let err = p
        .sdk()
        .update_cluster_version()
        .name("demo")
        .version("1.33")
        .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
        .send()
        .await
        .unwrap_err();
    assert!(
        rollback_error(&err).contains("InvalidStateException"),
        "{}",
        rollback_error(&err)
    );
    // Once the insight passes, the control plane goes back.
    mock.set_insight_status("demo", "c2a4d7e3-1b0f-4d4a-8e7b-6d2ef2a1b003", "PASSING");
    let offer = p.rollback_offer().await.unwrap();
    let option = offer
        .options_for(&RollbackPart::ControlPlane)
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("{offer:?}"));
    let op = p.rollback_control_plane(&option).await.unwrap();
    assert_eq!(wait(&p, &op).await, OperationStatus::Succeeded);
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.33"));
}
