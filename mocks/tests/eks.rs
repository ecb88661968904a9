//! The EKS mock driven by the real `aws-sdk-eks` client over loopback: every operation, the
//! error wire format, pagination, update progression, and node-group updates played out on the
//! Kubernetes simulator through the eviction API.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_eks::Client;
use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::types::{Category, InsightsFilter, ResolveConflicts, UpdateStatus};
use kup_mocks::eks::{
    ApiError, EksCluster, EksConfig, EksFault, EksMock, EksNodegroup, NODEGROUP_LABEL,
};
use kup_mocks::k8s::{DeletedVia, Pdb, Pool, Scenario, SimConfig, Simulator, Workload};

fn client(mock: &EksMock) -> Client {
    let config = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(mock.endpoint())
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_eks::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn wait_update(
    c: &Client,
    cluster: &str,
    id: &str,
    ng: Option<&str>,
    addon: Option<&str>,
) -> aws_sdk_eks::types::Update {
    for _ in 0..3000 {
        let u = c
            .describe_update()
            .name(cluster)
            .update_id(id)
            .set_nodegroup_name(ng.map(String::from))
            .set_addon_name(addon.map(String::from))
            .send()
            .await
            .unwrap()
            .update
            .unwrap();
        if u.status != Some(UpdateStatus::InProgress) {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("update {id} never finished");
}

#[tokio::test]
async fn describes_versions_clusters_node_groups_and_addons() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let c = client(&mock);

    let versions = c.describe_cluster_versions().send().await.unwrap();
    let minors: Vec<_> = versions
        .cluster_versions()
        .iter()
        .map(|v| v.cluster_version().unwrap().to_string())
        .collect();
    assert_eq!(
        minors,
        ["1.30", "1.31", "1.32", "1.33", "1.34", "1.35"],
        "1.29 is unsupported"
    );
    let v134 = &versions.cluster_versions()[4];
    assert!(v134.default_version());
    assert_eq!(v134.version_status().unwrap().as_str(), "STANDARD_SUPPORT");
    assert!(v134.end_of_standard_support_date().is_some());
    let all = c
        .describe_cluster_versions()
        .include_all(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.cluster_versions().len(), 7);

    let cluster = c
        .describe_cluster()
        .name("demo")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(cluster.version(), Some("1.33"));
    assert_eq!(cluster.status().unwrap().as_str(), "ACTIVE");
    assert!(cluster.arn().unwrap().starts_with("arn:aws:eks:us-west-2:"));

    let ngs = c
        .list_nodegroups()
        .cluster_name("demo")
        .send()
        .await
        .unwrap();
    assert_eq!(ngs.nodegroups(), ["apps", "system"]);
    let apps = c
        .describe_nodegroup()
        .cluster_name("demo")
        .nodegroup_name("apps")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(apps.version(), Some("1.33"));
    assert_eq!(apps.launch_template().unwrap().name(), Some("apps-lt"));
    assert_eq!(apps.scaling_config().unwrap().desired_size(), Some(3));

    let addons = c.list_addons().cluster_name("demo").send().await.unwrap();
    assert_eq!(addons.addons(), ["coredns", "kube-proxy", "vpc-cni"]);
    let coredns = c
        .describe_addon()
        .cluster_name("demo")
        .addon_name("coredns")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(coredns.addon_version(), Some("v1.12.1-eksbuild.2"));

    let catalog = c
        .describe_addon_versions()
        .kubernetes_version("1.35")
        .addon_name("coredns")
        .send()
        .await
        .unwrap();
    let info = &catalog.addons()[0];
    assert_eq!(info.addon_name(), Some("coredns"));
    let versions: Vec<_> = info
        .addon_versions()
        .iter()
        .map(|v| v.addon_version().unwrap())
        .collect();
    assert_eq!(versions, ["v1.12.4-eksbuild.1"]);
    assert!(info.addon_versions()[0].compatibilities()[0].default_version());

    let insights = c
        .list_insights()
        .cluster_name("demo")
        .filter(
            InsightsFilter::builder()
                .categories(Category::UpgradeReadiness)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(insights.insights().len(), 2);
    let warning = insights
        .insights()
        .iter()
        .find(|i| i.insight_status().unwrap().status().unwrap().as_str() == "WARNING")
        .unwrap();
    let detail = c
        .describe_insight()
        .cluster_name("demo")
        .id(warning.id().unwrap())
        .send()
        .await
        .unwrap()
        .insight
        .unwrap();
    let dep = &detail
        .category_specific_summary()
        .unwrap()
        .deprecation_details()[0];
    assert_eq!(
        dep.client_stats()[0].user_agent(),
        Some("legacy-operator/v0.9.1")
    );
    assert_eq!(dep.client_stats()[0].number_of_requests_last30_days(), 4120);
}

#[tokio::test]
async fn lists_page_with_next_tokens() {
    let mut cluster = EksCluster::new("big", "1.33");
    for i in 0..7 {
        cluster = cluster.nodegroup(EksNodegroup::new(format!("ng-{i}"), "1.33", 1));
    }
    let mock = EksMock::start(EksConfig::new(vec![cluster]).page_size(3), None)
        .await
        .unwrap();
    let c = client(&mock);
    let first = c
        .list_nodegroups()
        .cluster_name("big")
        .send()
        .await
        .unwrap();
    assert_eq!(first.nodegroups().len(), 3);
    assert!(first.next_token().is_some());
    let all: Vec<String> = c
        .list_nodegroups()
        .cluster_name("big")
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    let bad = c
        .list_nodegroups()
        .cluster_name("big")
        .next_token("bogus")
        .send()
        .await
        .unwrap_err();
    assert!(bad.into_service_error().is_invalid_parameter_exception());
}

#[tokio::test]
async fn control_plane_updates_progress_and_refuse_a_second_update() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let c = client(&mock);
    let skip = c
        .update_cluster_version()
        .name("demo")
        .version("1.35")
        .send()
        .await
        .unwrap_err();
    let skip = skip.into_service_error();
    assert!(skip.is_invalid_parameter_exception(), "{skip:?}");
    assert!(skip.to_string().contains("1.33 to 1.35"), "{skip}");

    let u = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(u.status(), Some(&UpdateStatus::InProgress));
    let busy = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .send()
        .await
        .unwrap_err();
    assert!(busy.into_service_error().is_resource_in_use_exception());
    let cluster = c
        .describe_cluster()
        .name("demo")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(cluster.status().unwrap().as_str(), "UPDATING");
    let ids = c.list_updates().name("demo").send().await.unwrap();
    assert_eq!(ids.update_ids(), [u.id().unwrap().to_string()]);

    let done = wait_update(&c, "demo", u.id().unwrap(), None, None).await;
    assert_eq!(done.status(), Some(&UpdateStatus::Successful));
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));
    let missing = c.describe_cluster().name("nope").send().await.unwrap_err();
    assert!(
        missing
            .into_service_error()
            .is_resource_not_found_exception()
    );
}

#[tokio::test]
async fn injected_failures_errors_and_throttling_reach_the_client() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let c = client(&mock);
    mock.inject(EksFault::Error {
        operation: "DescribeCluster".into(),
        times: 1,
        error: ApiError::throttling(),
    });
    let throttled = c.describe_cluster().name("demo").send().await.unwrap_err();
    let raw = throttled.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(429));
    assert_eq!(
        aws_sdk_eks::error::ProvideErrorMetadata::code(&throttled),
        Some("ThrottlingException")
    );
    assert!(c.describe_cluster().name("demo").send().await.is_ok());

    mock.inject(EksFault::FailNextUpdate(vec![(
        "ClusterUnreachable".into(),
        "The control plane could not reach the nodes".into(),
        vec!["demo".into()],
    )]));
    let u = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = wait_update(&c, "demo", u.id().unwrap(), None, None).await;
    assert_eq!(done.status(), Some(&UpdateStatus::Failed));
    let e = &done.errors()[0];
    assert_eq!(e.error_code().unwrap().as_str(), "ClusterUnreachable");
    assert_eq!(e.resource_ids(), ["demo"]);
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.33"));

    // An ERROR insight for the next minor blocks the upgrade unless forced.
    mock.set_insight_status("demo", "b1f3c6c2-0a9e-4c39-9d6a-5c1de1f0a002", "ERROR");
    let blocked = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .send()
        .await
        .unwrap_err();
    assert!(blocked.into_service_error().is_invalid_state_exception());
    let forced = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .force(true)
        .send()
        .await;
    assert!(forced.is_ok());
}

#[tokio::test]
async fn addon_updates_check_compatibility_with_the_cluster_version() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let c = client(&mock);
    let wrong = c
        .update_addon()
        .cluster_name("demo")
        .addon_name("coredns")
        .addon_version("v1.12.4-eksbuild.1")
        .send()
        .await
        .unwrap_err();
    assert!(
        wrong.into_service_error().is_invalid_parameter_exception(),
        "1.12.4 needs 1.34"
    );
    let u = c
        .update_addon()
        .cluster_name("demo")
        .addon_name("vpc-cni")
        .addon_version("v1.20.4-eksbuild.1")
        .resolve_conflicts(ResolveConflicts::Preserve)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = wait_update(&c, "demo", u.id().unwrap(), None, Some("vpc-cni")).await;
    assert_eq!(done.status(), Some(&UpdateStatus::Successful));
    assert!(done.params().iter().any(|p| p.value() == Some("PRESERVE")));
    assert_eq!(
        mock.addon_version("demo", "vpc-cni").as_deref(),
        Some("v1.20.4-eksbuild.1")
    );
}

fn eks_scenario(pdb_blocks: bool) -> Scenario {
    let mut s = Scenario::new()
        .version("v1.34.2-eks-3025e55")
        .pool_label(NODEGROUP_LABEL)
        .pool(Pool::new("apps", 2).kubelet_version("v1.33.5-eks-3025e55"))
        .workload(
            Workload::deployment("shop", "web")
                .replicas(2)
                .image("nginx:1.27"),
        )
        .workload(
            Workload::daemon_set("kube-system", "aws-node")
                .image("602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.19.6")
                .tolerate_all(),
        );
    s = if pdb_blocks {
        s.pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(2),
        )
    } else {
        s.pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .max_unavailable(1),
        )
    };
    s
}

async fn nodegroup_update_on_sim(
    pdb_blocks: bool,
    force: bool,
) -> (
    aws_sdk_eks::types::Update,
    kup_mocks::k8s::SimHandle,
    EksMock,
) {
    let sim = Simulator::start(eks_scenario(pdb_blocks), SimConfig::fast().time_scale(60.0))
        .await
        .unwrap();
    let cluster = EksCluster::new("demo", "1.34").nodegroup(EksNodegroup::new("apps", "1.33", 2));
    let mut config = EksConfig::new(vec![cluster]).time_scale(600.0);
    config.eviction_timeout = Duration::from_secs(120);
    let mock = EksMock::start(config, Some(sim.clone())).await.unwrap();
    let c = client(&mock);
    sim.wait_for(Duration::from_secs(60), "web Ready", |s| {
        s.list("pods", Some("shop"))
            .iter()
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count()
            == 2
    })
    .await
    .unwrap();
    let u = c
        .update_nodegroup_version()
        .cluster_name("demo")
        .nodegroup_name("apps")
        .force(force)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = wait_update(&c, "demo", u.id().unwrap(), Some("apps"), None).await;
    (done, sim, mock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_group_update_replaces_nodes_through_the_eviction_api() {
    let (done, sim, mock) = nodegroup_update_on_sim(false, false).await;
    assert_eq!(done.status(), Some(&UpdateStatus::Successful), "{done:?}");
    let nodes = sim.nodes();
    assert_eq!(nodes.len(), 2);
    for n in &nodes {
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.34.2-eks-3025e55"
        );
        assert_eq!(n["metadata"]["labels"][NODEGROUP_LABEL], "apps");
    }
    let deletions = sim.pod_deletions();
    let web: Vec<_> = deletions.iter().filter(|d| d.namespace == "shop").collect();
    assert!(!web.is_empty());
    assert!(web.iter().all(|d| d.via == DeletedVia::Eviction), "{web:?}");
    assert_eq!(mock.nodegroup_version("demo", "apps").unwrap().0, "1.34");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_that_never_allows_a_disruption_fails_the_update_unless_forced() {
    let (done, sim, mock) = nodegroup_update_on_sim(true, false).await;
    assert_eq!(done.status(), Some(&UpdateStatus::Failed));
    let e = &done.errors()[0];
    assert_eq!(e.error_code().unwrap().as_str(), "PodEvictionFailure");
    assert!(
        e.resource_ids().iter().any(|r| r.starts_with("shop/web-")),
        "{e:?}"
    );
    assert_eq!(mock.nodegroup_version("demo", "apps").unwrap().0, "1.33");
    assert!(
        sim.pod_deletions().iter().all(|d| d.namespace != "shop"),
        "nothing evicted past the PDB"
    );
    sim.shutdown().await;

    let (done, sim, mock) = nodegroup_update_on_sim(true, true).await;
    assert_eq!(done.status(), Some(&UpdateStatus::Successful), "{done:?}");
    assert_eq!(mock.nodegroup_version("demo", "apps").unwrap().0, "1.34");
    sim.shutdown().await;
}

/// One `update-version` call on node group `apps`; `lt` is (by name?, version).
async fn update_apps(
    c: &Client,
    version: Option<&str>,
    release: Option<&str>,
    lt: Option<(bool, &str)>,
) -> Result<String, String> {
    use aws_sdk_eks::types::LaunchTemplateSpecification;
    let mut r = c
        .update_nodegroup_version()
        .cluster_name("demo")
        .nodegroup_name("apps")
        .set_version(version.map(String::from))
        .set_release_version(release.map(String::from));
    if let Some((by_name, v)) = lt {
        let spec = LaunchTemplateSpecification::builder().version(v);
        r = r.launch_template(if by_name {
            spec.name("apps-lt").build()
        } else {
            spec.id("lt-0a1b2c3d4e5f67890").build()
        });
    }
    match r.send().await {
        Ok(out) => Ok(out.update.unwrap().id.unwrap()),
        Err(e) => Err(format!("{}", aws_sdk_eks::error::DisplayErrorContext(&e))),
    }
}

#[tokio::test]
async fn node_groups_go_back_only_to_earlier_launch_template_versions() {
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let c = client(&mock);
    let release = "1.33.0-20251112";
    // Versions of the template that exist: 1..=4 from the start, 5 once created.
    let err = update_apps(&c, None, None, Some((true, "5")))
        .await
        .unwrap_err();
    assert!(
        err.contains("InvalidParameterException") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(
        mock.create_launch_template_version("demo", "apps")
            .as_deref(),
        Some("5")
    );
    assert_eq!(mock.create_launch_template_version("demo", "system"), None);
    let id = update_apps(&c, Some("1.33"), Some(release), Some((true, "5")))
        .await
        .unwrap();
    let u = wait_update(&c, "demo", &id, Some("apps"), None).await;
    assert_eq!(u.status, Some(UpdateStatus::Successful));
    // EKS records the values the update moved to.
    let params: Vec<(String, String)> = u
        .params()
        .iter()
        .map(|p| {
            (
                p.r#type().unwrap().as_str().to_string(),
                p.value().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        params,
        [
            ("Version".to_string(), "1.33".to_string()),
            ("ReleaseVersion".into(), release.into()),
            ("LaunchTemplateName".into(), "apps-lt".into()),
            ("LaunchTemplateVersion".into(), "5".into()),
        ]
    );
    assert_eq!(
        mock.nodegroup_launch_template("demo", "apps"),
        Some(("apps-lt".into(), "5".into()))
    );

    // Back to version 4, by the template's id this time: accepted.
    let id = update_apps(&c, Some("1.33"), Some(release), Some((false, "4")))
        .await
        .unwrap();
    assert_eq!(
        wait_update(&c, "demo", &id, Some("apps"), None)
            .await
            .status,
        Some(UpdateStatus::Successful)
    );
    assert_eq!(
        mock.nodegroup_launch_template("demo", "apps").unwrap().1,
        "4"
    );

    // What EKS refuses: both id and name, an earlier AMI release, an earlier Kubernetes
    // version, a template on a group created without one.
    use aws_sdk_eks::types::LaunchTemplateSpecification;
    let both = c
        .update_nodegroup_version()
        .cluster_name("demo")
        .nodegroup_name("apps")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .name("apps-lt")
                .id("lt-0a1b2c3d4e5f67890")
                .version("3")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    let both = format!("{}", aws_sdk_eks::error::DisplayErrorContext(&both));
    assert!(
        both.contains("Either provide launch template ID or launch template name"),
        "{both}"
    );
    let refusal =
        "You cannot roll back a node group to an earlier Kubernetes version or AMI version";
    let err = update_apps(&c, Some("1.33"), Some("1.33.0-20251001"), None)
        .await
        .unwrap_err();
    assert!(
        err.contains("InvalidParameterException") && err.contains(refusal),
        "{err}"
    );
    let err = update_apps(&c, Some("1.32"), None, None).await.unwrap_err();
    assert!(
        err.contains("InvalidParameterException") && err.contains(refusal),
        "{err}"
    );
    let err = c
        .update_nodegroup_version()
        .cluster_name("demo")
        .nodegroup_name("system")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .name("apps-lt")
                .version("1")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    let err = format!("{}", aws_sdk_eks::error::DisplayErrorContext(&err));
    assert!(err.contains("created with a launch template"), "{err}");

    // While an update runs, the next is ResourceInUseException; the history lists both
    // updates, a page at a time.
    mock.inject(EksFault::SlowUpdates(1000));
    let running = update_apps(&c, Some("1.33"), Some(release), Some((true, "5")))
        .await
        .unwrap();
    let err = update_apps(&c, Some("1.33"), Some(release), Some((true, "3")))
        .await
        .unwrap_err();
    assert!(err.contains("ResourceInUseException"), "{err}");
    let first = c
        .list_updates()
        .name("demo")
        .nodegroup_name("apps")
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.update_ids().len(), 2);
    let token = first.next_token().unwrap().to_string();
    let rest = c
        .list_updates()
        .name("demo")
        .nodegroup_name("apps")
        .max_results(2)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.update_ids(), [running]);
    assert!(rest.next_token().is_none());
    let system = c
        .list_updates()
        .name("demo")
        .nodegroup_name("system")
        .send()
        .await
        .unwrap();
    assert!(system.update_ids().is_empty());
}

/// The exception name and HTTP status of a failed UpdateClusterVersion, and its message.
fn refusal(
    err: aws_sdk_eks::error::SdkError<
        aws_sdk_eks::operation::update_cluster_version::UpdateClusterVersionError,
    >,
) -> (String, u16, String) {
    use aws_sdk_eks::error::ProvideErrorMetadata;
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let e = err.into_service_error();
    (
        e.code().unwrap_or_default().to_string(),
        status,
        e.message().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_version_rollback_goes_back_one_minor_within_7_days_of_an_in_place_upgrade() {
    let sim = Simulator::start(
        Scenario::new().version("v1.33.5-eks-3025e55"),
        SimConfig::fast(),
    )
    .await
    .unwrap();
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let c = client(&mock);
    let rollback = || {
        c.update_cluster_version()
            .name("demo")
            .version("1.33")
            .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
    };
    // Nothing to roll back on a cluster that was never upgraded in place.
    let (code, status, msg) = refusal(
        c.update_cluster_version()
            .name("demo")
            .version("1.32")
            .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code.as_str(), status),
        ("InvalidRequestException", 400),
        "{msg}"
    );
    assert!(msg.contains("no in-place upgrade from 1.32"), "{msg}");

    let up = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(
        wait_update(&c, "demo", up.id().unwrap(), None, None)
            .await
            .status,
        Some(UpdateStatus::Successful)
    );
    // The first attempt fails as EKS reports it, and the control plane stays.
    mock.inject(EksFault::FailNextUpdate(vec![(
        "Unknown".into(),
        "rollback readiness check failed".into(),
        vec![],
    )]));
    let failed = rollback().send().await.unwrap().update.unwrap();
    let failed = wait_update(&c, "demo", failed.id().unwrap(), None, None).await;
    assert_eq!(failed.status, Some(UpdateStatus::Failed));
    assert_eq!(failed.errors().len(), 1);
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));

    let back = rollback().send().await.unwrap().update.unwrap();
    assert_eq!(
        back.r#type(),
        Some(&aws_sdk_eks::types::UpdateType::VersionRollback)
    );
    let (code, status, _) = refusal(rollback().send().await.unwrap_err());
    assert_eq!((code.as_str(), status), ("ResourceInUseException", 409));
    assert_eq!(
        wait_update(&c, "demo", back.id().unwrap(), None, None)
            .await
            .status,
        Some(UpdateStatus::Successful)
    );
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.33"));
    for _ in 0..500 {
        if sim.api_server_version().starts_with("v1.33") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        sim.api_server_version().starts_with("v1.33"),
        "{}",
        sim.api_server_version()
    );
    // The last change was the rollback itself: there is no upgrade left to undo.
    let (code, _, msg) = refusal(
        c.update_cluster_version()
            .name("demo")
            .version("1.32")
            .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidRequestException", "{msg}");
    assert!(msg.contains("was a rollback"), "{msg}");

    // Upgraded again, then 8 days pass: the window has closed.
    let up = c
        .update_cluster_version()
        .name("demo")
        .version("1.34")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    wait_update(&c, "demo", up.id().unwrap(), None, None).await;
    mock.age_updates("demo", Duration::from_secs(8 * 86_400));
    let (code, status, msg) = refusal(rollback().send().await.unwrap_err());
    assert_eq!(
        (code.as_str(), status),
        ("InvalidRequestException", 400),
        "{msg}"
    );
    assert!(
        msg.contains("7 days") && msg.contains(up.id().unwrap()),
        "{msg}"
    );
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));
    sim.shutdown().await;
}
