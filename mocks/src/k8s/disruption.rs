//! The disruption controller (`pkg/controller/disruption/disruption.go`): recomputes every
//! PodDisruptionBudget's status from the pods it selects and their controllers' scale.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::clock::{parse_time, plus, rfc3339};
use super::cluster::{Cluster, Task};
use super::objects;
use super::resources::ids;
use super::selector::LabelSelector;
use super::store::Stored;

/// How long an eviction's entry in `disruptedPods` keeps the pod out of `currentHealthy`.
pub(crate) const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The pods a PDB selects: a missing/null selector selects nothing, `{}` everything (policy/v1).
pub(crate) fn pdb_selector(pdb: &Value) -> Option<LabelSelector> {
    let sel = pdb.pointer("/spec/selector").filter(|s| !s.is_null())?;
    LabelSelector::from_object(sel).ok()
}

/// `(expectedCount, desiredHealthy)` as `getExpectedPodCount` computes them.
pub(crate) fn expected_pod_count(
    c: &Cluster,
    pdb: &Value,
    pods: &[Arc<Stored>],
) -> Result<(i64, i64), String> {
    let spec = pdb.get("spec").cloned().unwrap_or(json!({}));
    let max_unavailable = spec.get("maxUnavailable").filter(|v| !v.is_null());
    let min_available = spec.get("minAvailable").filter(|v| !v.is_null());
    if let Some(mu) = max_unavailable {
        let expected = expected_scale(c, pods)?;
        let value = objects::scaled_value(mu, expected, true)?;
        Ok((expected, (expected - value).max(0)))
    } else if let Some(ma) = min_available {
        if ma.is_number() {
            Ok((pods.len() as i64, ma.as_i64().unwrap_or(0)))
        } else {
            let expected = expected_scale(c, pods)?;
            Ok((expected, objects::scaled_value(ma, expected, true)?))
        }
    } else {
        Ok((0, 0))
    }
}

/// Sum of the scale of the distinct controllers of `pods` (`getExpectedScale`); pods without a
/// controller are ignored.
fn expected_scale(c: &Cluster, pods: &[Arc<Stored>]) -> Result<i64, String> {
    let mut scale: HashMap<String, i64> = HashMap::new();
    for p in pods {
        let Some(owner) = &p.meta.controller else {
            continue;
        };
        if scale.contains_key(&owner.uid) {
            continue;
        }
        let ns = &p.meta.namespace;
        let found = match owner.kind.as_str() {
            "ReplicaSet" => c
                .get(ids::REPLICASETS, ns, &owner.name)
                .filter(|rs| rs.meta.uid == owner.uid)
                .map(|rs| {
                    let rsv = rs.value();
                    // A ReplicaSet run by a Deployment counts with the Deployment's replicas.
                    match &rs.meta.controller {
                        Some(d) if d.kind == "Deployment" => c
                            .get(ids::DEPLOYMENTS, ns, &d.name)
                            .filter(|dep| dep.meta.uid == d.uid)
                            .map(|dep| (d.uid.clone(), replicas(&dep.value()))),
                        _ => Some((rs.meta.uid.clone(), replicas(&rsv))),
                    }
                }),
            "StatefulSet" => c
                .get(ids::STATEFULSETS, ns, &owner.name)
                .filter(|o| o.meta.uid == owner.uid)
                .map(|o| Some((o.meta.uid.clone(), replicas(&o.value())))),
            "DaemonSet" => {
                return Err("daemonsets.apps does not implement the scale subresource".into());
            }
            "Deployment" => c
                .get(ids::DEPLOYMENTS, ns, &owner.name)
                .filter(|o| o.meta.uid == owner.uid)
                .map(|o| Some((o.meta.uid.clone(), replicas(&o.value())))),
            _ => None,
        };
        match found.flatten() {
            Some((uid, n)) => {
                scale.insert(owner.uid.clone(), 0);
                scale.insert(uid, n);
            }
            None => return Err(format!("found no controllers for pod {:?}", p.meta.name)),
        }
    }
    Ok(scale.values().sum())
}

fn replicas(v: &Value) -> i64 {
    objects::int(v, "spec.replicas").unwrap_or(1)
}

/// Sets `DisruptionAllowed` like `pdbhelper.UpdateDisruptionAllowedCondition`.
pub(crate) fn set_disruption_allowed_condition(pdb: &mut Value, now: &str) {
    let allowed = objects::int(pdb, "status.disruptionsAllowed").unwrap_or(0) > 0;
    let observed = objects::int(pdb, "status.observedGeneration").unwrap_or(0);
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    set_metav1_condition(pdb, "DisruptionAllowed", status, reason, "", observed, now);
}

fn set_metav1_condition(
    v: &mut Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed: i64,
    now: &str,
) {
    let st = objects::obj_mut(v, "status");
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Value::Array(list) = conds else { return };
    let fresh = json!({"type": ty, "status": status, "observedGeneration": observed,
        "lastTransitionTime": now, "reason": reason, "message": message});
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(c) => {
            let ltt = if c.get("status").and_then(Value::as_str) == Some(status) {
                c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
            } else {
                json!(now)
            };
            *c = fresh;
            c["lastTransitionTime"] = ltt;
        }
        None => list.push(fresh),
    }
}

impl Cluster {
    /// Recomputes the status of every PDB in `ns`.
    pub(crate) fn sync_pdbs(&mut self, ns: &str) {
        let pdbs: Vec<Arc<Stored>> = self.store.list(ids::PDBS, Some(ns)).cloned().collect();
        for pdb in pdbs {
            self.sync_pdb(&pdb);
        }
    }

    fn sync_pdb(&mut self, pdb: &Stored) {
        let mut v = pdb.value();
        let now_ts = self.now();
        let now = rfc3339(now_ts);
        let ns = pdb.meta.namespace.clone();
        let pods: Vec<Arc<Stored>> = match pdb_selector(&v) {
            None => Vec::new(),
            Some(sel) => self
                .store
                .list(ids::PODS, Some(&ns))
                .filter(|p| sel.matches(&p.meta.labels))
                .cloned()
                .collect(),
        };
        let (expected, desired) = match expected_pod_count(self, &v, &pods) {
            Ok(x) => x,
            Err(e) => {
                // failSafe: no disruptions, and observedGeneration is left alone.
                objects::set(&mut v, "status.disruptionsAllowed", json!(0));
                let observed = objects::int(&v, "status.observedGeneration").unwrap_or(0);
                set_metav1_condition(
                    &mut v,
                    "DisruptionAllowed",
                    "False",
                    "SyncFailed",
                    &e,
                    observed,
                    &now,
                );
                self.put(ids::PDBS, v);
                return;
            }
        };
        let (disrupted, recheck) = disrupted_pod_map(&v, &pods, now_ts);
        let healthy = count_healthy(&pods, &disrupted, now_ts);
        let mut allowed = healthy - desired;
        if expected <= 0 || allowed <= 0 {
            allowed = 0;
        }
        let generation = objects::int(&v, "metadata.generation").unwrap_or(1);
        let conditions = v.pointer("/status/conditions").cloned();
        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(generation));
        if !disrupted.is_empty() {
            status.insert(
                "disruptedPods".into(),
                Value::Object(
                    disrupted
                        .iter()
                        .map(|(k, t)| (k.clone(), json!(rfc3339(*t))))
                        .collect(),
                ),
            );
        }
        status.insert("disruptionsAllowed".into(), json!(allowed));
        status.insert("currentHealthy".into(), json!(healthy));
        status.insert("desiredHealthy".into(), json!(desired));
        status.insert("expectedPods".into(), json!(expected));
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
        v["status"] = Value::Object(status);
        set_disruption_allowed_condition(&mut v, &now);
        self.put(ids::PDBS, v);
        if let Some(t) = recheck {
            self.at(plus(t, Duration::from_secs(1)), Task::PdbRecheck(ns));
        }
    }
}

/// `buildDisruptedPodMap`: keeps entries of live, not-yet-deleting pods younger than
/// [`DELETION_TIMEOUT`]; returns them and when the next one expires.
fn disrupted_pod_map(
    pdb: &Value,
    pods: &[Arc<Stored>],
    now: Timestamp,
) -> (BTreeMap<String, Timestamp>, Option<Timestamp>) {
    let mut out = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let Some(map) = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
    else {
        return (out, None);
    };
    for p in pods {
        if p.meta.deleting {
            continue;
        }
        let Some(t) = map
            .get(&p.meta.name)
            .and_then(Value::as_str)
            .and_then(parse_time)
        else {
            continue;
        };
        let expires = plus(t, DELETION_TIMEOUT);
        if expires < now {
            continue;
        }
        recheck = Some(recheck.map_or(expires, |r: Timestamp| r.min(expires)));
        out.insert(p.meta.name.clone(), t);
    }
    (out, recheck)
}

/// `countHealthyPods`: Ready, not deleting, not recently evicted.
fn count_healthy(
    pods: &[Arc<Stored>],
    disrupted: &BTreeMap<String, Timestamp>,
    now: Timestamp,
) -> i64 {
    pods.iter()
        .filter(|p| !p.meta.deleting)
        .filter(|p| {
            disrupted
                .get(&p.meta.name)
                .is_none_or(|t| plus(*t, DELETION_TIMEOUT) <= now)
        })
        .filter(|p| p.meta.pod.as_ref().is_some_and(|f| f.ready))
        .count() as i64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::k8s::cluster::{Part, test_cluster};
    use crate::k8s::scenario::{IntOrPercent, Node, Pdb, Pod, Scenario, Workload};

    fn status(c: &Cluster, name: &str) -> (i64, i64, i64, i64) {
        let v = c.get_value(ids::PDBS, "ns", name).unwrap();
        let i = |k: &str| objects::int(&v, &format!("status.{k}")).unwrap();
        (
            i("expectedPods"),
            i("desiredHealthy"),
            i("currentHealthy"),
            i("disruptionsAllowed"),
        )
    }

    fn one(
        replicas: u32,
        not_ready: u32,
        min: Option<IntOrPercent>,
        max: Option<IntOrPercent>,
    ) -> (i64, i64, i64, i64) {
        let mut pdb = Pdb::new("ns", "p").match_label("app", "w");
        pdb.min_available = min;
        pdb.max_unavailable = max;
        let s = Scenario::new()
            .node(Node::new("n1"))
            .node(Node::new("n2"))
            .workload(
                Workload::deployment("ns", "w")
                    .replicas(replicas)
                    .not_ready(not_ready),
            )
            .pdb(pdb);
        status(&test_cluster(&s), "p")
    }

    #[test]
    fn budgets_round_like_upstream() {
        let int = |n: i32| Some(IntOrPercent::Int(n));
        let pct = |p: &str| Some(IntOrPercent::Percent(p.into()));
        // (expected, desired, healthy, allowed)
        assert_eq!(one(3, 0, int(2), None), (3, 2, 3, 1));
        assert_eq!(one(3, 0, pct("50%"), None), (3, 2, 3, 1), "ceil(1.5) = 2");
        assert_eq!(one(3, 0, pct("34%"), None), (3, 2, 3, 1), "ceil(1.02) = 2");
        assert_eq!(one(4, 0, pct("50%"), None), (4, 2, 4, 2));
        assert_eq!(one(3, 0, None, int(1)), (3, 2, 3, 1));
        assert_eq!(
            one(3, 0, None, pct("25%")),
            (3, 2, 3, 1),
            "ceil(0.75) = 1 unavailable"
        );
        assert_eq!(
            one(10, 0, None, pct("25%")),
            (10, 7, 10, 3),
            "ceil(2.5) = 3 unavailable"
        );
        assert_eq!(one(3, 0, None, int(0)), (3, 3, 3, 0));
        assert_eq!(one(3, 0, int(5), None), (3, 5, 3, 0), "never negative");
        assert_eq!(
            one(0, 0, int(0), None),
            (0, 0, 0, 0),
            "nothing expected, nothing allowed"
        );
        // Unhealthy pods do not count towards currentHealthy.
        assert_eq!(one(3, 1, int(2), None), (3, 2, 2, 0));
        assert_eq!(one(5, 2, None, pct("10%")), (5, 4, 3, 0));
        assert_eq!(one(5, 1, None, int(2)), (5, 3, 4, 1));
    }

    #[test]
    fn unmanaged_and_daemon_pods() {
        let s = Scenario::new()
            .node(Node::new("n1"))
            .pod(Pod::new("ns", "a").node("n1").label("app", "naked"))
            .pod(Pod::new("ns", "b").node("n1").label("app", "naked"))
            .pdb(
                Pdb::new("ns", "min")
                    .match_label("app", "naked")
                    .min_available(1),
            )
            .pdb(
                Pdb::new("ns", "max")
                    .match_label("app", "naked")
                    .max_unavailable(1),
            )
            .workload(Workload::daemon_set("ns", "agent"))
            .pdb(
                Pdb::new("ns", "ds")
                    .match_label("app", "agent")
                    .max_unavailable(1),
            )
            .pdb(Pdb::new("ns", "all").select_all().min_available(1))
            .pdb(Pdb::new("ns", "none").select_none().min_available(1));
        let c = test_cluster(&s);
        // An integer minAvailable counts pods; controllers are not needed.
        assert_eq!(status(&c, "min"), (2, 1, 2, 1));
        // maxUnavailable scales by controllers; pods without one are ignored.
        assert_eq!(status(&c, "max"), (0, 0, 2, 0));
        // DaemonSets have no scale: the budget fails safe.
        let ds = c.get_value(ids::PDBS, "ns", "ds").unwrap();
        assert_eq!(ds["status"]["disruptionsAllowed"], 0);
        assert_eq!(ds["status"]["conditions"][0]["reason"], "SyncFailed");
        assert_eq!(
            ds["status"]["conditions"][0]["message"],
            "daemonsets.apps does not implement the scale subresource"
        );
        // policy/v1: `{}` selects every pod in the namespace, no selector selects none.
        assert_eq!(status(&c, "all"), (3, 1, 3, 2));
        assert_eq!(status(&c, "none"), (0, 1, 0, 0));
        let ok = c.get_value(ids::PDBS, "ns", "min").unwrap();
        assert_eq!(ok["status"]["conditions"][0]["type"], "DisruptionAllowed");
        assert_eq!(ok["status"]["conditions"][0]["status"], "True");
        assert_eq!(ok["status"]["conditions"][0]["reason"], "SufficientPods");
        assert_eq!(ok["status"]["observedGeneration"], 1);
    }

    #[test]
    fn v1beta1_empty_selector_selects_nothing() {
        let s = Scenario::new()
            .version("v1.24.17")
            .node(Node::new("n1"))
            .workload(Workload::deployment("ns", "w").replicas(2))
            .pdb(
                Pdb::new("ns", "old")
                    .select_all()
                    .min_available(1)
                    .api_version("policy/v1beta1"),
            )
            .pdb(Pdb::new("ns", "new").select_all().min_available(1));
        let c = test_cluster(&s);
        assert_eq!(status(&c, "old"), (0, 1, 0, 0));
        assert_eq!(status(&c, "new"), (2, 1, 2, 1));
    }

    #[test]
    fn disrupted_pods_expire_after_two_minutes() {
        let s = Scenario::new()
            .node(Node::new("n1"))
            .workload(Workload::deployment("ns", "w").replicas(3))
            .pdb(
                Pdb::new("ns", "p")
                    .match_label("app", "w")
                    .max_unavailable(1),
            );
        let mut c = test_cluster(&s);
        let pod = c
            .store
            .list(ids::PODS, Some("ns"))
            .next()
            .unwrap()
            .meta
            .name
            .clone();
        // An eviction was approved but the pod was never deleted (say the delete failed).
        let mut pdb = c.get_value(ids::PDBS, "ns", "p").unwrap();
        objects::obj_mut(&mut pdb, "status.disruptedPods")
            .insert(pod.clone(), serde_json::json!(c.now_str()));
        c.update(ids::PDBS, "ns", "p", pdb, Part::Status, false)
            .unwrap();
        c.reconcile();
        assert_eq!(status(&c, "p"), (3, 2, 2, 0), "the pod is expected to go");
        c.clock.advance(Duration::from_secs(119));
        c.reconcile();
        assert_eq!(status(&c, "p").3, 0, "still within the timeout");
        c.clock.advance(Duration::from_secs(3));
        c.reconcile();
        assert_eq!(status(&c, "p"), (3, 2, 3, 1), "the entry expired");
        assert!(
            c.get_value(ids::PDBS, "ns", "p").unwrap()["status"]
                .get("disruptedPods")
                .is_none()
        );
    }
}
