//! What a drain did, pod by pod: the [`DrainReport`] and its parts.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

/// A pod, by namespace, name and the UID it had when the drain listed it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (a pod recreated under the same name has a new one).
    pub uid: String,
}

impl PodRef {
    /// The reference of a listed pod.
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PodRef {
    /// `namespace/name`, as kubectl prints pods.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How pods leave the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainMethod {
    /// The policy/v1 eviction API, which honours PodDisruptionBudgets.
    #[default]
    Eviction,
    /// Plain DELETEs (`disable_eviction`), which bypass PodDisruptionBudgets.
    Delete,
}

/// Why the drain's filters refused a pod. The filters and their messages are kubectl's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalReason {
    /// Managed by a DaemonSet and `ignore_daemonsets` is off.
    DaemonSet,
    /// Its DaemonSet no longer exists and `force` is off.
    OrphanedDaemonSet,
    /// Looking up its DaemonSet failed (the API's message says why).
    DaemonSetLookupFailed,
    /// Uses `emptyDir` and `delete_emptydir_data` is off.
    LocalStorage,
    /// Declares no controller and `force` is off.
    Unmanaged,
}

/// kubectl's refusal texts (`pkg/drain/filters.go`).
pub(crate) const DAEMONSET_FATAL: &str =
    "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
pub(crate) const LOCAL_STORAGE_FATAL: &str =
    "Pods with local storage (use --delete-emptydir-data to override)";
pub(crate) const UNMANAGED_FATAL: &str =
    "Pods that declare no controller (use --force to override)";
/// kubectl's warning texts.
pub(crate) const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
pub(crate) const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
pub(crate) const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";

/// Pods refused for one reason, listed in the order the API listed them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedGroup {
    /// The reason.
    pub reason: RefusalReason,
    /// kubectl's text for it, e.g. `Pods with local storage (use --delete-emptydir-data to
    /// override)`, or the API's message for DaemonSet lookups.
    pub message: String,
    /// Every pod refused for it.
    pub pods: Vec<PodRef>,
}

impl fmt::Display for RefusedGroup {
    /// kubectl's line: `cannot delete <message>: ns/a, ns/b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot delete {}: {}", self.message, PodList(&self.pods))
    }
}

/// Why a pod was left alone or no longer waited for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// A static (mirror) pod: the kubelet owns it, the API cannot remove it.
    MirrorPod,
    /// A DaemonSet pod left in place (`ignore_daemonsets`).
    DaemonSetIgnored,
    /// Its deletion started longer ago than `skip_wait_for_delete_timeout`.
    TerminatingTooLong {
        /// When its deletion started.
        since: jiff::Timestamp,
    },
}

/// A pod the drain did not remove or stopped waiting for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedPod {
    /// The pod.
    pub pod: PodRef,
    /// Why.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// A pod whose eviction a PodDisruptionBudget refused (HTTP 429) at least once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedPod {
    /// The pod.
    pub pod: PodRef,
    /// The budget (in the pod's namespace), when the API named it.
    pub pdb: Option<String>,
    /// The budget's last answer, e.g. `The disruption budget web needs 2 healthy pods and has
    /// 2 currently`.
    pub message: String,
    /// When it was first refused.
    pub since: jiff::Timestamp,
    /// How many evictions of it were refused.
    pub refusals: u32,
    /// Whether it was evicted in the end.
    pub resolved: bool,
}

impl fmt::Display for BlockedPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pdb {
            Some(pdb) => write!(
                f,
                "{} (PodDisruptionBudget {}/{}: {})",
                self.pod, self.pod.namespace, pdb, self.message
            ),
            None => write!(f, "{} ({})", self.pod, self.message),
        }
    }
}

/// Everything one drain did, for the engine, the CLI and the journal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// The node.
    pub node: String,
    /// Nothing was changed: `pods` is what would be evicted, `refused` what would be refused.
    pub dry_run: bool,
    /// How pods were removed.
    pub method: DrainMethod,
    /// Whether this drain cordoned the node (false when it was already cordoned).
    pub cordoned: bool,
    /// The pods selected for eviction (or deletion) after the filters, in list order.
    pub pods: Vec<PodRef>,
    /// Pods whose eviction the API accepted.
    pub evicted: Vec<PodRef>,
    /// Pods deleted with DELETE (`disable_eviction` only).
    pub deleted: Vec<PodRef>,
    /// Pods that were already gone when the drain came to them (404, or replaced by a pod with
    /// a new UID).
    pub already_gone: Vec<PodRef>,
    /// Pods refused by the filters, grouped by reason. A non-dry-run drain with refusals
    /// evicts nothing and fails with [`Error::DrainRefused`](crate::Error::DrainRefused).
    pub refused: Vec<RefusedGroup>,
    /// Pods left in place or no longer waited for. A pod can be both evicted and skipped (its
    /// termination outlasted `skip_wait_for_delete_timeout`).
    pub skipped: Vec<SkippedPod>,
    /// kubectl-style warnings, e.g. `ignoring DaemonSet-managed Pods: kube-system/kube-proxy-x`.
    pub warnings: Vec<String>,
    /// Pods a PodDisruptionBudget held back at least once.
    pub blocked: Vec<BlockedPod>,
    /// The drain hit its deadline.
    pub timed_out: bool,
    /// Pods still on the node when the drain ended (empty after a successful drain).
    pub remaining: Vec<PodRef>,
    /// How long the drain took.
    pub elapsed: Duration,
}

impl DrainReport {
    /// Every refused pod, across reasons.
    pub fn refused_pods(&self) -> impl Iterator<Item = &PodRef> {
        self.refused.iter().flat_map(|g| g.pods.iter())
    }

    /// Blocked pods that were never evicted.
    pub fn still_blocked(&self) -> impl Iterator<Item = &BlockedPod> {
        self.blocked.iter().filter(|b| !b.resolved)
    }
}

/// `a, b, c` for pod lists in messages.
pub(crate) struct PodList<'a>(pub &'a [PodRef]);

impl fmt::Display for PodList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pod) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{pod}")?;
        }
        Ok(())
    }
}

/// `cannot delete …; cannot delete …` for refusal errors.
pub(crate) struct RefusalList<'a>(pub &'a [RefusedGroup]);

impl fmt::Display for RefusalList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{group}")?;
        }
        Ok(())
    }
}

/// The reasons a timed-out drain is stuck: blocked pods by budget, then pods still
/// terminating.
pub(crate) struct StuckSummary<'a> {
    pub blocked: &'a [BlockedPod],
    pub remaining: &'a [PodRef],
}

impl fmt::Display for StuckSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocked: Vec<&BlockedPod> = self.blocked.iter().filter(|b| !b.resolved).collect();
        let mut first = true;
        for b in &blocked {
            f.write_str(if first { "" } else { "; " })?;
            first = false;
            write!(f, "{b}")?;
        }
        let terminating: Vec<PodRef> = self
            .remaining
            .iter()
            .filter(|p| !blocked.iter().any(|b| &b.pod == *p))
            .cloned()
            .collect();
        if !terminating.is_empty() {
            f.write_str(if first { "" } else { "; " })?;
            first = false;
            write!(f, "not gone yet: {}", PodList(&terminating))?;
        }
        if first {
            f.write_str("no pod was reported stuck")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> PodRef {
        PodRef {
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn refusals_read_like_kubectl() {
        let groups = [
            RefusedGroup {
                reason: RefusalReason::LocalStorage,
                message: LOCAL_STORAGE_FATAL.into(),
                pods: vec![pod("default", "cache-0"), pod("default", "cache-1")],
            },
            RefusedGroup {
                reason: RefusalReason::Unmanaged,
                message: UNMANAGED_FATAL.into(),
                pods: vec![pod("default", "naked")],
            },
        ];
        assert_eq!(
            RefusalList(&groups).to_string(),
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): \
             default/cache-0, default/cache-1; cannot delete Pods that declare no controller \
             (use --force to override): default/naked"
        );
    }

    #[test]
    fn stuck_summary_names_budgets_and_terminating_pods() {
        let blocked = [BlockedPod {
            pod: pod("shop", "web-1"),
            pdb: Some("web".into()),
            message: "The disruption budget web needs 2 healthy pods and has 2 currently".into(),
            since: jiff::Timestamp::UNIX_EPOCH,
            refusals: 3,
            resolved: false,
        }];
        let remaining = [pod("shop", "web-1"), pod("shop", "stuck")];
        let text = StuckSummary {
            blocked: &blocked,
            remaining: &remaining,
        }
        .to_string();
        assert_eq!(
            text,
            "shop/web-1 (PodDisruptionBudget shop/web: The disruption budget web needs 2 \
             healthy pods and has 2 currently); not gone yet: shop/stuck"
        );
    }

    #[test]
    fn reports_round_trip_through_json() {
        let report = DrainReport {
            node: "w1".into(),
            skipped: vec![SkippedPod {
                pod: pod("kube-system", "etcd-w1"),
                reason: SkipReason::MirrorPod,
            }],
            elapsed: Duration::from_millis(1500),
            ..Default::default()
        };
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains(r#""reason":"mirror_pod""#), "{json}");
        let back: DrainReport = serde_json::from_str(&json).expect("back");
        assert_eq!(back, report);
    }
}
