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
