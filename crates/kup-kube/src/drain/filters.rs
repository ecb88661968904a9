//! kubectl's pod filters (`pkg/drain/filters.go`), in kubectl's order; the first filter that
//! keeps a pod decides:
//!
//! 1. deletion started longer ago than `skip_wait_for_delete_timeout` → skipped;
//! 2. DaemonSet-managed: finished pods go; an orphan (DaemonSet not found) needs `force`;
//!    otherwise refused unless `ignore_daemonsets` (then left in place with a warning);
//! 3. mirror pods → skipped;
//! 4. `emptyDir` volumes: refused unless `delete_emptydir_data` (finished pods go);
//! 5. no controller: refused unless `force` (finished pods go).
//!
//! Unlike kubectl, which keeps only the last filter's warning, every warning is reported.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::options::DrainOptions;
use super::report::{
    DAEMONSET_FATAL, DAEMONSET_WARNING, LOCAL_STORAGE_FATAL, LOCAL_STORAGE_WARNING, PodRef,
    RefusalReason, RefusedGroup, SkipReason, SkippedPod, UNMANAGED_FATAL, UNMANAGED_WARNING,
};

/// The annotation the kubelet puts on the API copies of static pods.
pub(crate) const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What looking up a pod's DaemonSet found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DaemonSetLookup {
    /// It exists.
    Exists,
    /// 404; the API's message (`daemonsets.apps "x" not found`).
    NotFound(String),
    /// Any other error; its message.
    Failed(String),
}

/// DaemonSet lookups by `(namespace, name)`.
pub(crate) type DaemonSetTable = HashMap<(String, String), DaemonSetLookup>;

/// The pods' fate after filtering.
#[derive(Debug, Default)]
pub(crate) struct Filtered {
    /// Pods to evict or delete, in list order.
    pub remove: Vec<Pod>,
    /// Refusals grouped by reason (and, for DaemonSet lookups, by message), in the order the
    /// reasons first occurred.
    pub refused: Vec<RefusedGroup>,
    /// Pods left alone.
    pub skipped: Vec<SkippedPod>,
    /// `message: ns/a, ns/b` lines.
    pub warnings: Vec<String>,
}

/// One pod's verdict.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Remove,
    Skip(SkipReason),
    Refuse(RefusalReason, String),
}

/// The controller owner reference, as `metav1.GetControllerOf` finds it.
pub(crate) fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

fn is_daemonset_ref(r: &OwnerReference) -> bool {
    r.kind == "DaemonSet" && r.api_version == "apps/v1"
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn has_local_storage(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vols| vols.iter().any(|v| v.empty_dir.is_some()))
}

/// When the pod's deletion started, if it did.
pub(crate) fn deletion_started(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.metadata.deletion_timestamp.as_ref().map(|t| t.0)
}

/// kubectl's `shouldSkipPod`: deletion started more than `skip` ago, in whole seconds.
pub(crate) fn terminating_too_long(
    since: Option<jiff::Timestamp>,
    skip: Option<Duration>,
    now: jiff::Timestamp,
) -> bool {
    let (Some(since), Some(skip)) = (since, skip) else {
        return false;
    };
    let age = now.duration_since(since);
    age.as_secs() > 0 && age.as_secs().unsigned_abs() > skip.as_secs()
}

/// The DaemonSets the filters must look up: those of running DaemonSet pods that filter 1
/// does not skip.
pub(crate) fn daemonsets_to_look_up(
    pods: &[Pod],
    opts: &DrainOptions,
    now: jiff::Timestamp,
) -> Vec<(String, String)> {
    let mut wanted: Vec<(String, String)> = pods
        .iter()
        .filter(|p| {
            !terminating_too_long(deletion_started(p), opts.skip_wait_for_delete_timeout, now)
        })
        .filter(|p| !is_finished(p))
        .filter_map(|p| {
            let r = controller_of(p).filter(|r| is_daemonset_ref(r))?;
            Some((
                p.metadata.namespace.clone().unwrap_or_default(),
                r.name.clone(),
            ))
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    wanted
}

/// Runs the filters over `pods` (in list order).
pub(crate) fn filter_pods(
    pods: Vec<Pod>,
    opts: &DrainOptions,
    daemonsets: &DaemonSetTable,
    now: jiff::Timestamp,
) -> Filtered {
    let mut out = Filtered::default();
    let mut warnings: Vec<(String, Vec<PodRef>)> = Vec::new();
    for pod in pods {
        let pod_ref = PodRef::of(&pod);
        let mut pod_warnings = Vec::new();
        let verdict = classify(&pod, opts, daemonsets, now, &mut pod_warnings);
        for w in pod_warnings {
            match warnings.iter_mut().find(|(m, _)| *m == w) {
                Some((_, pods)) => pods.push(pod_ref.clone()),
                None => warnings.push((w, vec![pod_ref.clone()])),
            }
        }
        match verdict {
            Verdict::Remove => out.remove.push(pod),
            Verdict::Skip(reason) => out.skipped.push(SkippedPod {
                pod: pod_ref,
                reason,
            }),
            Verdict::Refuse(reason, message) => {
                match out
                    .refused
                    .iter_mut()
                    .find(|g| g.reason == reason && g.message == message)
                {
                    Some(group) => group.pods.push(pod_ref),
                    None => out.refused.push(RefusedGroup {
                        reason,
                        message,
                        pods: vec![pod_ref],
                    }),
                }
            }
        }
    }
    out.warnings = warnings
        .into_iter()
        .map(|(m, pods)| format!("{m}: {}", super::report::PodList(&pods)))
        .collect();
    out
}

fn classify(
    pod: &Pod,
    opts: &DrainOptions,
    daemonsets: &DaemonSetTable,
    now: jiff::Timestamp,
    warnings: &mut Vec<String>,
) -> Verdict {
    // 1. Deletion started long ago: nothing to wait for.
    let since = deletion_started(pod);
    if terminating_too_long(since, opts.skip_wait_for_delete_timeout, now)
        && let Some(since) = since
    {
        return Verdict::Skip(SkipReason::TerminatingTooLong { since });
    }
    let finished = is_finished(pod);
    let controller = controller_of(pod);
    // 2. DaemonSet pods.
    if let Some(r) = controller.filter(|r| is_daemonset_ref(r))
        && !finished
    {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            r.name.clone(),
        );
        match daemonsets.get(&key) {
            Some(DaemonSetLookup::Exists) => {
                if !opts.ignore_daemonsets {
                    return Verdict::Refuse(RefusalReason::DaemonSet, DAEMONSET_FATAL.into());
                }
                warnings.push(DAEMONSET_WARNING.into());
                return Verdict::Skip(SkipReason::DaemonSetIgnored);
            }
            Some(DaemonSetLookup::NotFound(message)) if opts.force => {
                warnings.push(message.clone());
            }
            Some(DaemonSetLookup::NotFound(message)) => {
                return Verdict::Refuse(RefusalReason::OrphanedDaemonSet, message.clone());
            }
            Some(DaemonSetLookup::Failed(message)) => {
                return Verdict::Refuse(RefusalReason::DaemonSetLookupFailed, message.clone());
            }
            None => {
                return Verdict::Refuse(
                    RefusalReason::DaemonSetLookupFailed,
                    format!("daemonsets.apps {:?} was not looked up", key.1),
                );
            }
        }
    }
    // 3. Mirror pods.
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
    {
        return Verdict::Skip(SkipReason::MirrorPod);
    }
    // 4. Local storage.
    if has_local_storage(pod) && !finished {
        if !opts.delete_emptydir_data {
            return Verdict::Refuse(RefusalReason::LocalStorage, LOCAL_STORAGE_FATAL.into());
        }
        warnings.push(LOCAL_STORAGE_WARNING.into());
    }
    // 5. Unmanaged pods.
    if !finished && controller.is_none() {
        if !opts.force {
            return Verdict::Refuse(RefusalReason::Unmanaged, UNMANAGED_FATAL.into());
        }
        warnings.push(UNMANAGED_WARNING.into());
    }
    Verdict::Remove
}

/// Labels of a pod, for PodDisruptionBudget matching.
pub(crate) fn labels_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn owner(kind: &str, name: &str) -> OwnerReference {
        OwnerReference {
            api_version: if kind == "ReplicaSet" || kind == "DaemonSet" {
                "apps/v1".into()
            } else {
                "batch/v1".into()
            },
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            ..Default::default()
        }
    }

    fn pod(name: &str, owner: Option<OwnerReference>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                owner_references: owner.map(|o| vec![o]),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
    }

    fn with_empty_dir(mut p: Pod) -> Pod {
        p.spec = Some(PodSpec {
            volumes: Some(vec![Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn finished(mut p: Pod) -> Pod {
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        p
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).expect("ts")
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn table(entries: &[(&str, DaemonSetLookup)]) -> DaemonSetTable {
        entries
            .iter()
            .map(|(n, l)| (("default".to_string(), n.to_string()), l.clone()))
            .collect()
    }

    #[test]
    fn kubectl_defaults_refuse_every_kind_and_name_every_pod() {
        let pods = vec![
            pod("web-1", Some(owner("ReplicaSet", "web"))),
            pod("naked-a", None),
            with_empty_dir(pod("cache", Some(owner("ReplicaSet", "cache")))),
            pod("proxy", Some(owner("DaemonSet", "proxy"))),
            pod("naked-b", None),
            pod("logs", Some(owner("DaemonSet", "gone"))),
        ];
        let ds = table(&[
            ("proxy", DaemonSetLookup::Exists),
            (
                "gone",
                DaemonSetLookup::NotFound("daemonsets.apps \"gone\" not found".into()),
            ),
        ]);
        let out = filter_pods(pods, &DrainOptions::kubectl(), &ds, now());
        assert_eq!(names(&out.remove), ["web-1"]);
        let groups: Vec<String> = out.refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            groups,
            [
                "cannot delete Pods that declare no controller (use --force to override): default/naked-a, default/naked-b",
                "cannot delete Pods with local storage (use --delete-emptydir-data to override): default/cache",
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/proxy",
                "cannot delete daemonsets.apps \"gone\" not found: default/logs",
            ]
        );
    }

    #[test]
    fn explicit_options_let_them_go_with_warnings() {
        let pods = vec![
            pod("naked", None),
            with_empty_dir(pod("cache", Some(owner("ReplicaSet", "cache")))),
            pod("proxy", Some(owner("DaemonSet", "proxy"))),
            pod("logs", Some(owner("DaemonSet", "gone"))),
        ];
        let ds = table(&[
            ("proxy", DaemonSetLookup::Exists),
            (
                "gone",
                DaemonSetLookup::NotFound("daemonsets.apps \"gone\" not found".into()),
            ),
        ]);
        let opts = DrainOptions {
            force: true,
            delete_emptydir_data: true,
            ..DrainOptions::default()
        };
        let out = filter_pods(pods, &opts, &ds, now());
        assert!(out.refused.is_empty());
        assert_eq!(names(&out.remove), ["naked", "cache", "logs"]);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].reason, SkipReason::DaemonSetIgnored);
        assert_eq!(
            out.warnings,
            [
                "deleting Pods that declare no controller: default/naked",
                "deleting Pods with local storage: default/cache",
                "ignoring DaemonSet-managed Pods: default/proxy",
                "daemonsets.apps \"gone\" not found: default/logs",
            ]
        );
    }

    #[test]
    fn finished_pods_always_go_and_mirror_pods_stay() {
        let mut mirror = pod("kube-apiserver-w1", None);
        mirror.metadata.annotations = Some(BTreeMap::from([(
            MIRROR_POD_ANNOTATION.to_string(),
            "abc".to_string(),
        )]));
        let pods = vec![
            finished(pod("job-done", None)),
            finished(with_empty_dir(pod("scratch-done", None))),
            finished(pod("ds-done", Some(owner("DaemonSet", "unknown")))),
            mirror,
        ];
        let out = filter_pods(
            pods,
            &DrainOptions::kubectl(),
            &DaemonSetTable::new(),
            now(),
        );
        assert!(out.refused.is_empty(), "{:?}", out.refused);
        assert_eq!(names(&out.remove), ["job-done", "scratch-done", "ds-done"]);
        assert_eq!(out.skipped[0].reason, SkipReason::MirrorPod);
    }

    #[test]
    fn long_terminating_pods_are_skipped_before_any_other_filter() {
        let mut stuck = pod("stuck", None);
        let since = now() - jiff::SignedDuration::from_secs(120);
        stuck.metadata.deletion_timestamp = Some(Time(since));
        let mut recent = pod("recent", Some(owner("ReplicaSet", "web")));
        recent.metadata.deletion_timestamp =
            Some(Time(now() - jiff::SignedDuration::from_secs(30)));
        let opts = DrainOptions {
            skip_wait_for_delete_timeout: Some(Duration::from_secs(60)),
            ..DrainOptions::kubectl()
        };
        let out = filter_pods(
            vec![stuck.clone(), recent],
            &opts,
            &DaemonSetTable::new(),
            now(),
        );
        assert_eq!(names(&out.remove), ["recent"]);
        assert_eq!(
            out.skipped[0].reason,
            SkipReason::TerminatingTooLong { since }
        );
        // Without the option the naked stuck pod is refused like any unmanaged pod.
        let out = filter_pods(
            vec![stuck],
            &DrainOptions::kubectl(),
            &DaemonSetTable::new(),
            now(),
        );
        assert_eq!(out.refused[0].reason, RefusalReason::Unmanaged);
    }

    #[test]
    fn only_running_daemonset_pods_need_a_lookup() {
        let pods = vec![
            pod("a", Some(owner("DaemonSet", "proxy"))),
            pod("b", Some(owner("DaemonSet", "proxy"))),
            finished(pod("c", Some(owner("DaemonSet", "done")))),
            pod("d", Some(owner("ReplicaSet", "web"))),
        ];
        assert_eq!(
            daemonsets_to_look_up(&pods, &DrainOptions::default(), now()),
            [("default".to_string(), "proxy".to_string())]
        );
    }
}
