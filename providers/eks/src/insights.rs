//! EKS's own pre-flight: upgrade-readiness insights, and nodes no managed node group owns;
//! and the rollback-readiness insights that block a version rollback.

use aws_sdk_eks::types::{Category, InsightStatusValue, InsightsFilter};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kup_core::{Finding, KubeVersion, ObjectRef, Severity};

use crate::error::Error;
use crate::provider::{EksProvider, NODEGROUP_LABEL, minor_string};

type CoreResult<T> = kup_core::Result<T>;

/// Upgrade-readiness insights for every minor between the cluster and `to`, as findings:
/// `ERROR` blocks (EKS itself refuses the update unless forced), `WARNING` warns, `UNKNOWN`
/// informs. Deprecated-API insights name the clients still calling the removed API.
pub(crate) async fn upgrade_readiness(
    p: &EksProvider,
    to: &KubeVersion,
) -> CoreResult<Vec<Finding>> {
    let current = p
        .client
        .describe_cluster()
        .name(&p.cluster)
        .send()
        .await
        .map_err(Error::sdk("DescribeCluster"))?
        .cluster
        .and_then(|c| c.version().map(String::from))
        .ok_or(Error::missing("DescribeCluster", "cluster.version"))?;
    let current = KubeVersion::parse(&current)?;
    let summaries: Vec<aws_sdk_eks::types::InsightSummary> = p
        .client
        .list_insights()
        .cluster_name(&p.cluster)
        .filter(
            InsightsFilter::builder()
                .categories(Category::UpgradeReadiness)
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(Error::sdk("ListInsights"))?;
    let mut out = Vec::new();
    for s in summaries {
        let Some(version) = s
            .kubernetes_version()
            .and_then(|v| KubeVersion::parse(v).ok())
        else {
            continue;
        };
        // Only the minors this upgrade passes through.
        if version.minor_distance(&current) >= 0 || version.minor_distance(to) < 0 {
            continue;
        }
        let status = s.insight_status().and_then(|i| i.status());
        let severity = match status {
            Some(InsightStatusValue::Passing) => continue,
            Some(InsightStatusValue::Error) => Severity::Blocker,
            Some(InsightStatusValue::Warning) => Severity::Warning,
            _ => Severity::Info,
        };
        let id = s.id().unwrap_or_default();
        let detail = p
            .client
            .describe_insight()
            .cluster_name(&p.cluster)
            .id(id)
            .send()
            .await
            .map_err(Error::sdk("DescribeInsight"))?
            .insight;
        let name = s.name().unwrap_or("insight");
        let reason = s
            .insight_status()
            .and_then(|i| i.reason())
            .unwrap_or_default();
        let mut message = format!(
            "EKS insight \"{name}\" for {}: {}",
            minor_string(&version),
            reason
        );
        let mut objects = Vec::new();
        let mut remediation = None;
        if let Some(d) = &detail {
            remediation = d.recommendation().map(String::from);
            if let Some(summary) = d.category_specific_summary() {
                for dep in summary.deprecation_details() {
                    let clients: Vec<String> = dep
                        .client_stats()
                        .iter()
                        .map(|c| {
                            format!(
                                "{} ({} requests in 30 days)",
                                c.user_agent().unwrap_or("unknown client"),
                                c.number_of_requests_last30_days()
                            )
                        })
                        .collect();
                    message.push_str(&format!(
                        "; {} (removed in {}, use {}) still called by {}",
                        dep.usage().unwrap_or("?"),
                        dep.stop_serving_version().unwrap_or("?"),
                        dep.replaced_with().unwrap_or("?"),
                        if clients.is_empty() {
                            "unknown clients".to_string()
                        } else {
                            clients.join(", ")
                        }
                    ));
                }
            }
            for r in d.resources() {
                if let Some(uri) = r.kubernetes_resource_uri() {
                    objects.push(ObjectRef::cluster("Resource", uri));
                }
            }
        }
        let code = if name.to_ascii_lowercase().contains("deprecated api") {
            "eks.insight.deprecated-api"
        } else {
            "eks.insight"
        };
        let mut f = Finding::new(code, severity, message)
            .objects(objects)
            .source("eks");
        if let Some(r) = remediation {
            f = f.remediation(r);
        }
        out.push(f);
    }
    Ok(out)
}

/// Nodes with no `eks.amazonaws.com/nodegroup` label (self-managed groups, Karpenter, Fargate
/// aside) are not upgraded by EKS; kup reports them so nothing is left behind silently.
pub(crate) async fn unmanaged_nodes(p: &EksProvider) -> CoreResult<Vec<Finding>> {
    let Some(client) = &p.kube else {
        return Ok(Vec::new());
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default().limit(500))
        .await
        .map_err(Error::from)?;
    let groups = p.nodegroup_names().await?;
    let mut stray = Vec::new();
    for n in list.items {
        let labels = n.metadata.labels.clone().unwrap_or_default();
        if labels
            .get("eks.amazonaws.com/compute-type")
            .is_some_and(|t| t == "fargate")
        {
            continue;
        }
        let managed = labels
            .get(NODEGROUP_LABEL)
            .is_some_and(|g| groups.contains(g));
        if !managed {
            stray.push(n.metadata.name.unwrap_or_default());
        }
    }
    if stray.is_empty() {
        return Ok(Vec::new());
    }
    let karpenter = stray.len();
    Ok(vec![
        Finding::new(
            "eks.unmanaged-nodes",
            Severity::Warning,
            format!(
                "{karpenter} node(s) belong to no managed node group and will not be upgraded by \
                 EKS: {}",
                stray.join(", ")
            ),
        )
        .remediation(format!(
            "Self-managed nodes: roll them with a new AMI (kup can cordon and drain them with \
             `kup drain NODE`, respecting PodDisruptionBudgets). Karpenter nodes: update the \
             EC2NodeClass AMI and let drift replace them. EKS's own managed node group updates \
             give up on PDB-blocked pods after {} minutes.",
            p.settings.eviction_limit.as_secs() / 60
        ))
        .objects(stray.into_iter().map(|n| ObjectRef::cluster("Node", n)))
        .source("eks"),
    ])
}

/// The rollback-readiness insights in `ERROR` for a version rollback to `to`, as
/// "name (reason)": EKS refuses the rollback while any is, unless forced (kup never forces it).
pub(crate) async fn rollback_blockers(
    p: &EksProvider,
    to: &KubeVersion,
) -> CoreResult<Vec<String>> {
    let summaries: Vec<aws_sdk_eks::types::InsightSummary> = p
        .client
        .list_insights()
        .cluster_name(&p.cluster)
        .filter(
            InsightsFilter::builder()
                .categories(Category::RollbackReadiness)
                .kubernetes_versions(minor_string(to))
                .statuses(InsightStatusValue::Error)
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(Error::sdk("ListInsights"))?;
    Ok(summaries
        .iter()
        .filter(|s| s.insight_status().and_then(|i| i.status()) == Some(&InsightStatusValue::Error))
        .map(|s| {
            let reason = s
                .insight_status()
                .and_then(|i| i.reason())
                .unwrap_or_default();
            format!("{} ({reason})", s.name().unwrap_or("insight"))
        })
        .collect())
}
