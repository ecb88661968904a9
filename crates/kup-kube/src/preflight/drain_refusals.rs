//! Pods a drain will refuse, by kubectl's filters (`pkg/drain/filters.go`), in its order:
//! DaemonSet pods (left in place; an orphaned one needs `force`), mirror pods (skipped), pods
//! with emptyDir volumes (need `delete_emptydir_data`), pods without a controller (need
//! `force`). Finished pods pass every filter, and terminating pods are already leaving.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use kup_core::{Finding, ObjectRef, Severity};
use serde::{Deserialize, Serialize};

use super::system_pods::{phase, pod_ref};

/// The drain options that let refused pods go, as the drain will be run. Pods these options
/// allow are reported as info (with what letting them go costs) instead of blockers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainAllowances {
    /// Delete pods without a controller and orphaned DaemonSet pods (kubectl `--force`).
    #[serde(default)]
    pub force: bool,
    /// Evict pods with emptyDir volumes, losing that data (kubectl `--delete-emptydir-data`).
    #[serde(default)]
    pub delete_emptydir_data: bool,
}

/// Why a drain refuses a pod, in filter order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Refusal {
    OrphanedDaemonSet,
    EmptyDir,
    Unmanaged,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Self::OrphanedDaemonSet => "drain.orphaned-daemonset-pod",
            Self::EmptyDir => "drain.emptydir-pod",
            Self::Unmanaged => "drain.unmanaged-pod",
        }
    }

    fn allowed_by(self, allow: DrainAllowances) -> bool {
        match self {
            Self::OrphanedDaemonSet | Self::Unmanaged => allow.force,
            Self::EmptyDir => allow.delete_emptydir_data,
        }
    }

    fn option(self) -> &'static str {
        match self {
            Self::OrphanedDaemonSet | Self::Unmanaged => "`force` (kubectl drain --force)",
            Self::EmptyDir => "`delete_emptydir_data` (kubectl drain --delete-emptydir-data)",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::OrphanedDaemonSet => "belong to a DaemonSet that no longer exists",
            Self::EmptyDir => "use emptyDir volumes",
            Self::Unmanaged => "have no controller (no ReplicaSet, Job, StatefulSet… owns them)",
        }
    }

    fn cost(self) -> &'static str {
        match self {
            Self::OrphanedDaemonSet => {
                "the pod is deleted and nothing recreates it, since its DaemonSet is gone"
            }
            Self::EmptyDir => "the data in their emptyDir volumes is deleted with the pod",
            Self::Unmanaged => "the pod is deleted and nothing recreates it",
        }
    }
}

/// Every filter that refuses `pod`, in kubectl's order (empty when a drain lets it go or leaves
/// it in place). `daemonsets` holds `(namespace, name)` of every DaemonSet.
pub(crate) fn refusals(pod: &Pod, daemonsets: &HashSet<(String, String)>) -> Vec<Refusal> {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(phase(pod), "Succeeded" | "Failed");
    if !bound || finished || pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    let mut found = Vec::new();
    if let Some(owner) = controller.filter(|o| o.kind == "DaemonSet") {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        if daemonsets.contains(&(namespace, owner.name.clone())) {
            // Left in place by the drain (kup, like kubectl with --ignore-daemonsets).
            return Vec::new();
        }
        found.push(Refusal::OrphanedDaemonSet);
    }
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    if mirror {
        return Vec::new();
    }
    let empty_dir = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()));
    if empty_dir {
        found.push(Refusal::EmptyDir);
    }
    if controller.is_none() {
        found.push(Refusal::Unmanaged);
    }
    found
}

#[derive(Debug)]
struct Entry {
    pod: ObjectRef,
    node: String,
    /// Further options this pod needs beyond the one its finding names.
    also: Vec<Refusal>,
}

/// Aggregates drain refusals while pods stream past.
#[derive(Debug, Default)]
pub(crate) struct DrainRefusals {
    allow: DrainAllowances,
    refused: BTreeMap<Refusal, Vec<Entry>>,
    allowed: BTreeMap<Refusal, Vec<Entry>>,
}

impl DrainRefusals {
    pub(crate) fn new(allow: DrainAllowances) -> Self {
        Self {
            allow,
            ..Self::default()
        }
    }

    pub(crate) fn observe(&mut self, pod: &Pod, daemonsets: &HashSet<(String, String)>) {
        let all = refusals(pod, daemonsets);
        if all.is_empty() {
            return;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        // The first filter the options do not lift is what the drain reports (kubectl stops at
        // the first refusal); the rest are what the user would hit next.
        match all.iter().position(|r| !r.allowed_by(self.allow)) {
            Some(i) => {
                let also = all
                    .iter()
                    .skip(i + 1)
                    .copied()
                    .filter(|r| !r.allowed_by(self.allow) && r.option() != all[i].option())
                    .collect();
                self.refused.entry(all[i]).or_default().push(Entry {
                    pod: pod_ref(pod),
                    node,
                    also,
                });
            }
            None => {
                for r in all {
                    self.allowed.entry(r).or_default().push(Entry {
                        pod: pod_ref(pod),
                        node: node.clone(),
                        also: Vec::new(),
                    });
                }
            }
        }
    }

    pub(crate) fn finish(self, source: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (refusal, pods) in &self.refused {
            let also: Vec<&str> = {
                let mut v: Vec<&str> = pods
                    .iter()
                    .flat_map(|e| e.also.iter().map(|r| r.option()))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            };
            let needing_more = pods.iter().filter(|e| !e.also.is_empty()).count();
            let mut message = format!(
                "{} pod(s) {}; a drain refuses them: {}",
                pods.len(),
                refusal.what(),
                list(pods)
            );
            if needing_more > 0 {
                message.push_str(&format!(
                    "; {needing_more} of them also need {}",
                    also.join(" and ")
                ));
            }
            findings.push(
                Finding::new(refusal.code(), Severity::Blocker, message)
                    .remediation(format!(
                        "let them go with the drain option {} (cost: {}), or give them a \
                         controller / move them off the nodes to upgrade before starting",
                        refusal.option(),
                        refusal.cost()
                    ))
                    .objects(pods.iter().map(|e| e.pod.clone()))
                    .source(source),
            );
        }
        for (refusal, pods) in &self.allowed {
            findings.push(
                Finding::new(
                    refusal.code(),
                    Severity::Info,
                    format!(
                        "{} pod(s) {}; the drain lets them go because {} is set, and {}: {}",
                        pods.len(),
                        refusal.what(),
                        refusal.option(),
                        refusal.cost(),
                        list(pods)
                    ),
                )
                .objects(pods.iter().map(|e| e.pod.clone()))
                .source(source),
            );
        }
        findings
    }
}

fn list(pods: &[Entry]) -> String {
    let shown: Vec<String> = pods
        .iter()
        .take(10)
        .map(|e| {
            format!(
                "{}/{} on {}",
                e.pod.namespace.as_deref().unwrap_or_default(),
                e.pod.name,
                e.node
            )
        })
        .collect();
    let more = pods.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn pod(name: &str, owner: Option<&str>, empty_dir: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                owner_references: owner.map(|kind| {
                    vec![OwnerReference {
                        kind: kind.into(),
                        name: "owner".into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                volumes: empty_dir.then(|| {
                    vec![Volume {
                        name: "scratch".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn filters_follow_kubectl_order() {
        let none = HashSet::new();
        let with_ds: HashSet<_> = [("default".to_string(), "owner".to_string())].into();
        assert!(refusals(&pod("rs", Some("ReplicaSet"), false), &none).is_empty());
        assert!(refusals(&pod("ds", Some("DaemonSet"), true), &with_ds).is_empty());
        assert_eq!(
            refusals(&pod("orphan", Some("DaemonSet"), false), &none),
            [Refusal::OrphanedDaemonSet]
        );
        assert_eq!(
            refusals(&pod("naked", None, true), &none),
            [Refusal::EmptyDir, Refusal::Unmanaged]
        );
        let mut done = pod("job", None, true);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(refusals(&done, &none).is_empty());
    }

    #[test]
    fn allowances_turn_blockers_into_info_with_the_cost() {
        let none = HashSet::new();
        let mut strict = DrainAllowances::default();
        let mut agg = DrainRefusals::new(strict);
        agg.observe(&pod("naked", None, true), &none);
        let findings = agg.finish("drain");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "drain.emptydir-pod");
        assert!(findings[0].message.contains("also need `force`"));

        strict.delete_emptydir_data = true;
        let mut agg = DrainRefusals::new(strict);
        agg.observe(&pod("naked", None, true), &none);
        let findings = agg.finish("drain");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "drain.unmanaged-pod");
        assert!(
            findings[0]
                .remediation
                .as_ref()
                .unwrap()
                .contains("--force")
        );

        strict.force = true;
        let mut agg = DrainRefusals::new(strict);
        agg.observe(&pod("naked", None, true), &none);
        let findings = agg.finish("drain");
        assert_eq!(findings.len(), 2);
        assert!(findings.iter().all(|f| f.severity == Severity::Info));
        let info = findings
            .iter()
            .find(|f| f.code == "drain.emptydir-pod")
            .unwrap();
        assert!(
            info.message
                .contains("data in their emptyDir volumes is deleted")
        );
    }
}
