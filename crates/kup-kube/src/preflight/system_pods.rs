//! System pods: every pod in a system namespace (kube-system) or with a
//! `system-cluster-critical`/`system-node-critical` priority class must be Running with all
//! containers ready (kOps validation's rule).

use k8s_openapi::api::core::v1::Pod;
use kup_core::{Finding, ObjectRef, Severity};

/// Priority classes that mark a pod as part of the cluster's own machinery.
pub(crate) const CRITICAL_PRIORITY_CLASSES: [&str; 2] =
    ["system-cluster-critical", "system-node-critical"];

/// Whether the pod counts as a system pod.
pub(crate) fn is_system_pod(pod: &Pod, system_namespaces: &[String]) -> bool {
    let in_namespace = pod
        .metadata
        .namespace
        .as_ref()
        .is_some_and(|ns| system_namespaces.iter().any(|s| s == ns));
    let critical = pod
        .spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        .is_some_and(|p| CRITICAL_PRIORITY_CLASSES.contains(&p));
    in_namespace || critical
}

/// The pod's phase (`Pending` when not reported yet).
pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether the pod's Ready condition is True.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Why a pod is not healthy, or `None` when it is Running and Ready, finished (a completed Job
/// pod), or already terminating (it is on its way out, which a rollout does on purpose).
pub(crate) fn unhealthy_reason(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let phase = phase(pod);
    if phase == "Succeeded" {
        return None;
    }
    if phase == "Running" && is_ready(pod) {
        return None;
    }
    // The first waiting or terminated container says most (CrashLoopBackOff, ImagePullBackOff).
    let container_reason = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter().filter(|c| !c.ready).find_map(|c| {
                let state = c.state.as_ref()?;
                state
                    .waiting
                    .as_ref()
                    .and_then(|w| w.reason.clone())
                    .or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))
            })
        });
    Some(match (phase, container_reason) {
        ("Running", Some(r)) => format!("Running, not ready: {r}"),
        ("Running", None) => "Running, not ready".to_string(),
        (p, Some(r)) => format!("{p}: {r}"),
        (p, None) => p.to_string(),
    })
}

/// Aggregates unhealthy system pods while pods stream past.
#[derive(Debug, Default)]
pub(crate) struct SystemPods {
    unhealthy: Vec<(ObjectRef, String)>,
}

impl SystemPods {
    pub(crate) fn observe(&mut self, pod: &Pod, system_namespaces: &[String]) {
        if !is_system_pod(pod, system_namespaces) {
            return;
        }
        if let Some(reason) = unhealthy_reason(pod) {
            self.unhealthy.push((pod_ref(pod), reason));
        }
    }

    pub(crate) fn finish(self, source: &str) -> Vec<Finding> {
        system_pod_finding(&self.unhealthy, source)
            .into_iter()
            .collect()
    }
}

/// One finding naming every unhealthy system pod, or none.
pub(crate) fn system_pod_finding(pods: &[(ObjectRef, String)], source: &str) -> Option<Finding> {
    if pods.is_empty() {
        return None;
    }
    let listed: Vec<String> = pods
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
    let more = pods.len().saturating_sub(10);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Some(
        Finding::new(
            "system-pod.unhealthy",
            Severity::Blocker,
            format!(
                "{} system pod(s) not Running and Ready: {}{tail}",
                pods.len(),
                listed.join(", ")
            ),
        )
        .remediation(
            "repair these pods first (`kubectl -n <ns> describe pod`, logs); an upgrade moves \
             and restarts system pods and needs them healthy to notice problems",
        )
        .objects(pods.iter().map(|(p, _)| p.clone()))
        .source(source),
    )
}

/// `Pod/<ns>/<name>`.
pub(crate) fn pod_ref(pod: &Pod) -> ObjectRef {
    ObjectRef::namespaced(
        "Pod",
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}
