//! PodDisruptionBudgets that would block a drain, found before any node is touched.
//!
//! A budget never allows an eviction when `maxUnavailable` resolves to 0 or `minAvailable` to
//! at least its expected pods (a single-replica workload behind `minAvailable: 1` is the common
//! case); it allows none *now* when its pods are not all healthy. The disruption controller's
//! numbers (`status.expectedPods`, `desiredHealthy`, `disruptionsAllowed`) are used when its
//! status is current, and the spec is resolved against the matching pods otherwise. Pods
//! selected by two budgets fail eviction with HTTP 500; budgets that select no pod are
//! reported as likely mistakes.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kup_core::{Finding, ObjectRef, Severity};

use super::selector;
use super::system_pods::{phase, pod_ref};

/// How many pods an overlap finding names.
const OVERLAP_SAMPLE: usize = 50;

#[derive(Debug)]
struct Budget {
    namespace: String,
    name: String,
    selector: Option<LabelSelector>,
    min_available: Option<IntOrString>,
    max_unavailable: Option<IntOrString>,
    /// `(expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed)` when the status is
    /// current for the budget's generation.
    status: Option<(i32, i32, i32, i32)>,
    /// Pods selected that are not finished.
    matched: u64,
}

impl Budget {
    fn object(&self) -> ObjectRef {
        ObjectRef::namespaced("PodDisruptionBudget", &self.namespace, &self.name)
    }

    fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a budget can never allow an eviction.
#[derive(Debug, PartialEq, Eq)]
enum Never {
    MaxUnavailableZero,
    MinAvailableCoversAll { min: String, expected: i64 },
    SingleReplica { min: String },
}

/// Resolves an int-or-percent like `intstr.GetScaledValueFromIntOrPercent`.
fn scaled(value: &IntOrString, total: i64, round_up: bool) -> Option<i64> {
    match value {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.trim().parse().ok()?;
            let scaled = pct * total;
            Some(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            })
        }
    }
}

fn show(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Aggregates budgets and the pods they select.
#[derive(Debug, Default)]
pub(crate) struct PdbCheck {
    budgets: Vec<Budget>,
    by_namespace: HashMap<String, Vec<usize>>,
    /// Budget index sets that share pods → (pod count, sample of pods).
    overlaps: BTreeMap<Vec<usize>, (u64, Vec<ObjectRef>)>,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl PdbCheck {
    pub(crate) fn add(&mut self, pdb: PodDisruptionBudget) {
        let namespace = pdb.metadata.namespace.clone().unwrap_or_default();
        let generation = pdb.metadata.generation.unwrap_or(0);
        let spec = pdb.spec.unwrap_or_default();
        let status = pdb.status.and_then(|s| {
            (s.observed_generation.unwrap_or(0) >= generation).then_some((
                s.expected_pods.unwrap_or(0),
                s.desired_healthy.unwrap_or(0),
                s.current_healthy.unwrap_or(0),
                s.disruptions_allowed.unwrap_or(0),
            ))
        });
        let idx = self.budgets.len();
        self.budgets.push(Budget {
            namespace: namespace.clone(),
            name: pdb.metadata.name.unwrap_or_default(),
            selector: spec.selector,
            min_available: spec.min_available,
            max_unavailable: spec.max_unavailable,
            status,
            matched: 0,
        });
        self.by_namespace.entry(namespace).or_default().push(idx);
    }

    /// Whether some budget in `namespace` selects objects labelled `labels`.
    pub(crate) fn covers(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.by_namespace.get(namespace).is_some_and(|idxs| {
            idxs.iter().any(|&i| {
                self.budgets[i]
                    .selector
                    .as_ref()
                    .is_some_and(|s| selector::matches(s, labels))
            })
        })
    }

    pub(crate) fn observe(&mut self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(idxs) = self.by_namespace.get(namespace) else {
            return;
        };
        let phase = phase(pod);
        if matches!(phase, "Succeeded" | "Failed") {
            return;
        }
        let labels = pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        let selecting: Vec<usize> = idxs
            .iter()
            .copied()
            .filter(|&i| {
                self.budgets[i]
                    .selector
                    .as_ref()
                    .is_some_and(|s| selector::matches(s, labels))
            })
            .collect();
        for &i in &selecting {
            self.budgets[i].matched += 1;
        }
        // Only running, non-terminating pods go through the budget check on eviction (the
        // others are deleted without it), so only they can hit the two-budget error.
        if selecting.len() > 1 && phase == "Running" && pod.metadata.deletion_timestamp.is_none() {
            let entry = self.overlaps.entry(selecting).or_default();
            entry.0 += 1;
            if entry.1.len() < OVERLAP_SAMPLE {
                entry.1.push(pod_ref(pod));
            }
        }
    }

    fn never(budget: &Budget, expected: i64) -> Option<Never> {
        if expected <= 0 {
            return None;
        }
        if let Some(mu) = &budget.max_unavailable {
            return (scaled(mu, expected, true).unwrap_or(0) <= 0)
                .then_some(Never::MaxUnavailableZero);
        }
        let min = budget.min_available.as_ref()?;
        let desired = scaled(min, expected, true)?;
        if desired < expected {
            return None;
        }
        Some(if expected == 1 {
            Never::SingleReplica { min: show(min) }
        } else {
            Never::MinAvailableCoversAll {
                min: show(min),
                expected,
            }
        })
    }

    pub(crate) fn finish(self, source: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        for b in &self.budgets {
            if b.selector.is_none() || b.matched == 0 {
                let why = if b.selector.is_none() {
                    "has no selector, so it selects nothing"
                } else {
                    "selects no pod"
                };
                findings.push(
                    Finding::new(
                        "pdb.selects-nothing",
                        Severity::Warning,
                        format!("PodDisruptionBudget {} {why}", b.display()),
                    )
                    .remediation(
                        "check its selector against the labels of the pods it should protect; \
                         as it is, it protects nothing during the upgrade",
                    )
                    .object(b.object())
                    .source(source),
                );
                continue;
            }
            let expected = b
                .status
                .map(|s| i64::from(s.0))
                .filter(|e| *e > 0)
                .unwrap_or(b.matched as i64);
            let pods = format!("{expected} expected pod(s)");
            if let Some(never) = Self::never(b, expected) {
                let (code, message, fix) = match never {
                    Never::MaxUnavailableZero => (
                        "pdb.max-unavailable-zero",
                        format!(
                            "PodDisruptionBudget {} has maxUnavailable {} ({pods}): it never \
                             allows an eviction, so draining a node with its pods waits forever",
                            b.display(),
                            b.max_unavailable.as_ref().map(show).unwrap_or_default()
                        ),
                        "raise maxUnavailable to at least 1 for the upgrade (or a percentage \
                         that rounds up to 1), or override this code and choose a stuck-drain \
                         policy",
                    ),
                    Never::MinAvailableCoversAll { min, expected } => (
                        "pdb.min-available-equals-replicas",
                        format!(
                            "PodDisruptionBudget {} has minAvailable {min} with {expected} \
                             expected pod(s): it never allows an eviction",
                            b.display()
                        ),
                        "scale the workload above minAvailable, or lower minAvailable (or use \
                         maxUnavailable: 1) for the upgrade",
                    ),
                    Never::SingleReplica { min } => (
                        "pdb.single-replica",
                        format!(
                            "PodDisruptionBudget {} protects a single pod with minAvailable \
                             {min}: it never allows an eviction",
                            b.display()
                        ),
                        "run at least 2 replicas, or switch the budget to maxUnavailable: 1 and \
                         accept a short outage while the pod moves",
                    ),
                };
                findings.push(
                    Finding::new(code, Severity::Blocker, message)
                        .remediation(fix)
                        .object(b.object())
                        .source(source),
                );
            } else if let Some((_, desired, current, 0)) = b.status {
                findings.push(
                    Finding::new(
                        "pdb.zero-disruptions",
                        Severity::Blocker,
                        format!(
                            "PodDisruptionBudget {} allows 0 disruptions now: {current} healthy \
                             pod(s), {desired} needed ({pods})",
                            b.display()
                        ),
                    )
                    .remediation(
                        "repair its unhealthy pods or wait for the running rollout to finish; \
                         until then every eviction of its pods answers 429",
                    )
                    .object(b.object())
                    .source(source),
                );
            }
        }
        for (set, (count, sample)) in self.overlaps {
            let names: Vec<String> = set.iter().map(|&i| self.budgets[i].name.clone()).collect();
            let namespace = &self.budgets[set[0]].namespace;
            let shown: Vec<&str> = sample.iter().take(10).map(|p| p.name.as_str()).collect();
            findings.push(
                Finding::new(
                    "pdb.overlapping",
                    Severity::Blocker,
                    format!(
                        "{count} pod(s) in namespace {namespace} are selected by \
                         PodDisruptionBudgets {}; evicting them fails with HTTP 500 (\"more than \
                         one PodDisruptionBudget\"): {}{}",
                        names.join(" and "),
                        shown.join(", "),
                        if count as usize > shown.len() {
                            format!(" and {} more", count as usize - shown.len())
                        } else {
                            String::new()
                        }
                    ),
                )
                .remediation("make the budgets' selectors disjoint so each pod has one budget")
                .objects(set.iter().map(|&i| self.budgets[i].object()))
                .objects(sample)
                .source(source),
            );
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pdb(
        name: &str,
        app: Option<&str>,
        min: Option<IntOrString>,
        max: Option<IntOrString>,
        status: Option<(i32, i32, i32, i32)>,
    ) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector: app.map(|a| LabelSelector {
                    match_labels: Some([("app".to_string(), a.to_string())].into()),
                    ..Default::default()
                }),
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            status: status.map(|(e, d, c, a)| PodDisruptionBudgetStatus {
                observed_generation: Some(1),
                expected_pods: Some(e),
                desired_healthy: Some(d),
                current_healthy: Some(c),
                disruptions_allowed: Some(a),
                ..Default::default()
            }),
        }
    }

    fn pod(name: &str, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
    }

    fn codes(check: PdbCheck) -> Vec<(String, String)> {
        check
            .finish("pdb")
            .into_iter()
            .map(|f| (f.code, f.objects[0].name.clone()))
            .collect()
    }

    #[test]
    fn budgets_that_never_allow_an_eviction() {
        let mut check = PdbCheck::default();
        check.add(pdb(
            "zero",
            Some("a"),
            None,
            Some(IntOrString::Int(0)),
            Some((3, 3, 3, 0)),
        ));
        check.add(pdb(
            "zero-pct",
            Some("b"),
            None,
            Some(IntOrString::String("0%".into())),
            None,
        ));
        check.add(pdb(
            "all",
            Some("c"),
            Some(IntOrString::Int(2)),
            None,
            Some((2, 2, 2, 0)),
        ));
        check.add(pdb(
            "single",
            Some("d"),
            Some(IntOrString::String("100%".into())),
            None,
            None,
        ));
        check.add(pdb(
            "fine",
            Some("e"),
            None,
            Some(IntOrString::Int(1)),
            Some((3, 2, 3, 1)),
        ));
        check.add(pdb(
            "degraded",
            Some("f"),
            Some(IntOrString::Int(2)),
            None,
            Some((3, 2, 2, 0)),
        ));
        check.add(pdb(
            "nothing",
            Some("nope"),
            Some(IntOrString::Int(1)),
            None,
            Some((0, 1, 0, 0)),
        ));
        check.add(pdb("nil", None, Some(IntOrString::Int(1)), None, None));
        for (i, app) in [
            "a", "a", "a", "b", "c", "c", "d", "e", "e", "e", "f", "f", "f",
        ]
        .iter()
        .enumerate()
        {
            check.observe(&pod(&format!("p{i}"), app));
        }
        let mut got = codes(check);
        got.sort();
        let expect: Vec<(String, String)> = [
            ("pdb.max-unavailable-zero", "zero"),
            ("pdb.max-unavailable-zero", "zero-pct"),
            ("pdb.min-available-equals-replicas", "all"),
            ("pdb.selects-nothing", "nil"),
            ("pdb.selects-nothing", "nothing"),
            ("pdb.single-replica", "single"),
            ("pdb.zero-disruptions", "degraded"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn pods_under_two_budgets_are_reported_once_per_budget_pair() {
        let mut check = PdbCheck::default();
        check.add(pdb(
            "one",
            Some("web"),
            None,
            Some(IntOrString::Int(1)),
            Some((2, 1, 2, 1)),
        ));
        let mut two = pdb(
            "two",
            None,
            None,
            Some(IntOrString::Int(1)),
            Some((2, 1, 2, 1)),
        );
        two.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        check.add(two);
        check.observe(&pod("w1", "web"));
        check.observe(&pod("w2", "web"));
        let findings = check.finish("pdb");
        let overlap: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.code == "pdb.overlapping")
            .collect();
        assert_eq!(overlap.len(), 1);
        assert!(
            overlap[0]
                .message
                .starts_with("2 pod(s) in namespace default")
        );
        assert!(overlap[0].message.contains("one and two"));
        assert_eq!(overlap[0].objects.len(), 4);
    }
}
