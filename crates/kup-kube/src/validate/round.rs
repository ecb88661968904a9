//! One validation round: every check once, each failure a finding.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kup_core::{Finding, KubeVersion, ObjectRef, Severity};

use super::expectation::Expectation;
use crate::listing::Reader;
use crate::preflight::{
    PoolMatcher, node_finding, node_problems, pod_ref, readyz, system_pod_finding, unhealthy_reason,
};
use crate::report::ScanStats;

/// Runs every check once. API failures become findings (an API server restarting during an
/// upgrade is a failed round, not an error).
pub(crate) async fn run(
    reader: &Reader,
    expectation: &Expectation,
    matcher: &PoolMatcher,
    stats: &mut ScanStats,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    control_plane(reader, expectation, &mut findings).await;
    findings.extend(readyz::check(reader, "validate/readyz").await);
    nodes(reader, expectation, matcher, stats, &mut findings).await;
    pods(reader, expectation, stats, &mut findings).await;
    workloads(reader, &mut findings).await;
    findings
}

fn unreachable(what: &str, error: &crate::Error, findings: &mut Vec<Finding>) {
    findings.push(
        Finding::new(
            "control-plane.unreachable",
            Severity::Blocker,
            format!("could not read {what}: {error}"),
        )
        .remediation("wait for the API server to come back; validation retries")
        .source("validate"),
    );
}

async fn control_plane(reader: &Reader, expectation: &Expectation, findings: &mut Vec<Finding>) {
    match reader.version().await {
        Ok(info) => {
            let actual = KubeVersion::parse(&info.git_version).ok();
            if !actual
                .as_ref()
                .is_some_and(|a| a.matches(&expectation.control_plane))
            {
                findings.push(
                    Finding::new(
                        "control-plane.version-mismatch",
                        Severity::Blocker,
                        format!(
                            "the API server reports {}, expected {}",
                            info.git_version, expectation.control_plane
                        ),
                    )
                    .remediation(
                        "wait for every API server to finish its upgrade (behind a load \
                         balancer, answers alternate until they all run the new version)",
                    )
                    .source("validate/control-plane"),
                );
            }
        }
        Err(e) => unreachable("/version", &e, findings),
    }
}

async fn nodes(
    reader: &Reader,
    expectation: &Expectation,
    matcher: &PoolMatcher,
    stats: &mut ScanStats,
    findings: &mut Vec<Finding>,
) {
    let expected: BTreeMap<&str, &KubeVersion> = expectation
        .pools
        .iter()
        .map(|p| (p.name.as_str(), &p.kubelet))
        .collect();
    let mut seen_per_pool: BTreeMap<String, u64> = BTreeMap::new();
    let mut named_seen: Vec<String> = Vec::new();
    let mut problems: BTreeMap<&'static str, Vec<(String, String)>> = BTreeMap::new();
    let mut mismatched: Vec<(String, String)> = Vec::new();
    let api: Api<Node> = Api::all(reader.client().clone());
    let listed = reader
        .for_each(&api, &ListParams::default(), |node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            for (code, detail) in node_problems(&node) {
                problems
                    .entry(code)
                    .or_default()
                    .push((name.clone(), detail));
            }
            let labels = node.metadata.labels.clone().unwrap_or_default();
            if let Some(pool) = matcher.pool_of(&name, &labels) {
                *seen_per_pool.entry(pool.to_string()).or_default() += 1;
                named_seen.push(name.clone());
                let kubelet = node
                    .status
                    .as_ref()
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| i.kubelet_version.clone())
                    .unwrap_or_default();
                let want = expected.get(pool);
                let ok = KubeVersion::parse(&kubelet)
                    .ok()
                    .zip(want)
                    .is_some_and(|(have, want)| have.matches(want));
                if !ok {
                    mismatched.push((
                        name,
                        format!(
                            "pool {pool}: kubelet {kubelet}, expected {}",
                            want.map(ToString::to_string).unwrap_or_default()
                        ),
                    ));
                }
            }
        })
        .await;
    match listed {
        Ok(n) => stats.nodes = n,
        Err(e) => return unreachable("nodes", &e, findings),
    }
    for pool in &expectation.pools {
        for missing in pool.nodes.iter().filter(|n| !named_seen.contains(n)) {
            problems.entry("node.not-ready").or_default().push((
                missing.clone(),
                format!("pool {}: node not found", pool.name),
            ));
        }
        if seen_per_pool.get(&pool.name).copied().unwrap_or(0) == 0 {
            findings.push(
                Finding::new(
                    "pool.no-nodes",
                    Severity::Blocker,
                    format!(
                        "no node belongs to pool {} (selector {:?}, nodes {:?})",
                        pool.name,
                        pool.node_selector.as_deref().unwrap_or(""),
                        pool.nodes
                    ),
                )
                .remediation(
                    "wait for the pool's new nodes to register, or check its node selector",
                )
                .object(ObjectRef::cluster("NodePool", &pool.name))
                .source("validate/nodes"),
            );
        }
    }
    for (code, nodes) in &problems {
        // Everything that makes a node unhealthy fails validation, pressure included.
        let mut f = node_finding(code, nodes, "validate/nodes");
        f.severity = Severity::Blocker;
        findings.push(f);
    }
    if !mismatched.is_empty() {
        let shown: Vec<String> = mismatched
            .iter()
            .take(10)
            .map(|(n, d)| format!("{n} ({d})"))
            .collect();
        findings.push(
            Finding::new(
                "node.version-mismatch",
                Severity::Blocker,
                format!(
                    "{} node(s) not at their pool's expected kubelet version: {}{}",
                    mismatched.len(),
                    shown.join(", "),
                    if mismatched.len() > 10 {
                        format!(" and {} more", mismatched.len() - 10)
                    } else {
                        String::new()
                    }
                ),
            )
            .remediation("wait for the pool's rollout to replace or upgrade these nodes")
            .objects(
                mismatched
                    .iter()
                    .map(|(n, _)| ObjectRef::cluster("Node", n)),
            )
            .source("validate/nodes"),
        );
    }
}

/// Whether a Pending pod is stuck because of the upgrade.
fn stuck_pending(pod: &Pod, since: Option<&jiff::Timestamp>) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Pending") {
        return None;
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    match since {
        Some(since) => {
            let created = pod.metadata.creation_timestamp.as_ref()?;
            (created.0 >= *since).then(|| {
                unschedulable
                    .and_then(|c| c.message.clone())
                    .unwrap_or_else(|| "created during the upgrade, still Pending".to_string())
            })
        }
        None => unschedulable.map(|c| c.message.clone().unwrap_or_else(|| "Unschedulable".into())),
    }
}

async fn pods(
    reader: &Reader,
    expectation: &Expectation,
    stats: &mut ScanStats,
    findings: &mut Vec<Finding>,
) {
    let mut system = Vec::new();
    let mut pending: Vec<(ObjectRef, String)> = Vec::new();
    let api: Api<Pod> = Api::all(reader.client().clone());
    let listed = reader
        .for_each(&api, &ListParams::default(), |pod| {
            if crate::preflight::is_system_pod(&pod, &expectation.system_namespaces)
                && let Some(reason) = unhealthy_reason(&pod)
            {
                system.push((pod_ref(&pod), reason));
            }
            if let Some(reason) = stuck_pending(&pod, expectation.since.as_ref()) {
                pending.push((pod_ref(&pod), reason));
            }
        })
        .await;
    match listed {
        Ok(n) => stats.pods = n,
        Err(e) => return unreachable("pods", &e, findings),
    }
    findings.extend(system_pod_finding(&system, "validate/system-pods"));
    if !pending.is_empty() {
        let shown: Vec<String> = pending
            .iter()
            .take(10)
            .map(|(p, r)| {
                format!(
                    "{}/{} ({r})",
                    p.namespace.as_deref().unwrap_or_default(),
                    p.name
                )
            })
            .collect();
        findings.push(
            Finding::new(
                "pod.pending",
                Severity::Blocker,
                format!(
                    "{} pod(s) stuck Pending: {}{}",
                    pending.len(),
                    shown.join(", "),
                    if pending.len() > 10 {
                        format!(" and {} more", pending.len() - 10)
                    } else {
                        String::new()
                    }
                ),
            )
            .remediation(
                "check capacity and scheduling constraints (cordoned nodes, taints, affinity, \
                 volumes in one zone); uncordon or add nodes",
            )
            .objects(pending.into_iter().map(|(p, _)| p))
            .source("validate/pods"),
        );
    }
}

async fn workloads(reader: &Reader, findings: &mut Vec<Finding>) {
    let mut unavailable: Vec<(ObjectRef, String)> = Vec::new();
    let client = reader.client().clone();
    let deployments: Api<Deployment> = Api::all(client.clone());
    let statefulsets: Api<StatefulSet> = Api::all(client.clone());
    let daemonsets: Api<DaemonSet> = Api::all(client);
    let params = ListParams::default();
    let result = async {
        reader
            .for_each(&deployments, &params, |d| {
                let want = d.spec.replicas.unwrap_or(1);
                let have = d
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                if have < want {
                    unavailable.push((
                        ObjectRef::namespaced(
                            "Deployment",
                            d.metadata.namespace.unwrap_or_default(),
                            d.metadata.name.unwrap_or_default(),
                        ),
                        format!("{have}/{want} available"),
                    ));
                }
            })
            .await?;
        reader
            .for_each(&statefulsets, &params, |s| {
                let want = s.spec.replicas.unwrap_or(1);
                let have = s
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                if have < want {
                    unavailable.push((
                        ObjectRef::namespaced(
                            "StatefulSet",
                            s.metadata.namespace.unwrap_or_default(),
                            s.metadata.name.unwrap_or_default(),
                        ),
                        format!("{have}/{want} ready"),
                    ));
                }
            })
            .await?;
        reader
            .for_each(&daemonsets, &params, |ds| {
                let status = ds.status.unwrap_or_default();
                let want = status.desired_number_scheduled;
                let have = status.number_available.unwrap_or(0);
                if have < want {
                    unavailable.push((
                        ObjectRef::namespaced(
                            "DaemonSet",
                            ds.metadata.namespace.unwrap_or_default(),
                            ds.metadata.name.unwrap_or_default(),
                        ),
                        format!("{have}/{want} available"),
                    ));
                }
            })
            .await
    }
    .await;
    if let Err(e) = result {
        return unreachable("workloads", &e, findings);
    }
    if unavailable.is_empty() {
        return;
    }
    let shown: Vec<String> = unavailable
        .iter()
        .take(10)
        .map(|(o, d)| format!("{o} ({d})"))
        .collect();
    findings.push(
        Finding::new(
            "workload.unavailable",
            Severity::Blocker,
            format!(
                "{} workload(s) without all their pods available: {}{}",
                unavailable.len(),
                shown.join(", "),
                if unavailable.len() > 10 {
                    format!(" and {} more", unavailable.len() - 10)
                } else {
                    String::new()
                }
            ),
        )
        .remediation(
            "look at their pods' events (`kubectl describe`); a workload unavailable before the \
             upgrade keeps failing validation until repaired or overridden",
        )
        .objects(unavailable.into_iter().map(|(o, _)| o))
        .source("validate/workloads"),
    );
}
