//! The pod eviction subresource (`pkg/registry/core/pod/storage/eviction.go`).

use serde_json::{Value, json};

use super::cluster::{Cluster, DeleteOpts, DeletedVia};
use super::disruption::{pdb_selector, set_disruption_allowed_condition};
use super::objects;
use super::resources::{def, ids};
use super::status::ApiError;

/// More entries than this in `disruptedPods` and evictions are refused (upstream's limit).
const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// What an eviction answered when it did not fail with an error status.
#[derive(Debug)]
pub(crate) enum Evicted {
    /// 201 Success.
    Done,
    /// The 500 answer for a pod covered by several PDBs (a Status, not an error).
    MultiplePdbs,
}

fn too_many_requests(message: String, retry_after: u32) -> ApiError {
    let mut e = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.details = Some(json!({"causes": [{"reason": "DisruptionBudget", "message": message}]}));
    if retry_after > 0 {
        e.retry_after = Some(retry_after);
    }
    e
}

impl Cluster {
    /// Evicts `ns/name` as the eviction subresource does.
    pub(crate) fn evict(
        &mut self,
        ns: &str,
        name: &str,
        body: &Value,
        dry_run: bool,
    ) -> Result<Evicted, ApiError> {
        let body_name = objects::s(body, "metadata.name");
        if body_name != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let opts = body.get("deleteOptions").cloned().unwrap_or(json!({}));
        let grace = opts.get("gracePeriodSeconds").and_then(Value::as_i64);
        let dry_run = dry_run
            || opts
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let pre_uid = objects::s(&opts, "preconditions.uid").to_string();
        let pre_rv = objects::s(&opts, "preconditions.resourceVersion").to_string();
        let Some(pod) = self.get(ids::PODS, ns, name) else {
            return Err(ApiError::not_found(def(ids::PODS), name));
        };
        // NamespaceLifecycle admission refuses creates (evictions included) in a terminating namespace.
        if let Some(n) = self.store.get(ids::NAMESPACES, "", ns)
            && n.meta.deleting
        {
            let mut e = ApiError::new(
                403,
                "Forbidden",
                format!(
                    "pods {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            e.details = Some(
                json!({"name": name, "kind": "pods", "causes": [{"reason": "NamespaceTerminating",
                "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
            );
            return Err(e);
        }
        let facts = pod.meta.pod.clone().unwrap_or(super::store::PodFacts {
            node: String::new(),
            phase: String::new(),
            ready: false,
        });
        let mut delete = DeleteOpts {
            grace,
            uid: (!pre_uid.is_empty()).then_some(pre_uid),
            rv: (!pre_rv.is_empty()).then_some(pre_rv),
            orphan: false,
            dry_run,
        };
        let can_ignore_pdb =
            matches!(facts.phase.as_str(), "Succeeded" | "Failed" | "Pending") || pod.meta.deleting;
        if can_ignore_pdb {
            self.delete_for_eviction(ns, name, &delete)?;
            return Ok(Evicted::Done);
        }
        let pdbs: Vec<_> = self
            .store
            .list(ids::PDBS, Some(ns))
            .filter(|p| pdb_selector(&p.value()).is_some_and(|sel| sel.matches(&pod.meta.labels)))
            .cloned()
            .collect();
        if pdbs.len() > 1 {
            return Ok(Evicted::MultiplePdbs);
        }
        let mut rv_added = false;
        if let Some(pdb) = pdbs.first() {
            let mut pv = pdb.value();
            let st = |k: &str| objects::int(&pv, &format!("status.{k}")).unwrap_or(0);
            let mut skip_budget = false;
            if !facts.ready {
                let always = objects::s(&pv, "spec.unhealthyPodEvictionPolicy") == "AlwaysAllow";
                // An unready pod does not count towards currentHealthy: deleting it takes nothing
                // from the budget when the budget is otherwise satisfied (or the policy says so).
                if always
                    || (st("currentHealthy") >= st("desiredHealthy") && st("desiredHealthy") > 0)
                {
                    skip_budget = true;
                }
            }
            if !skip_budget {
                let pdb_name = pdb.meta.name.clone();
                if st("observedGeneration") < objects::int(&pv, "metadata.generation").unwrap_or(0)
                {
                    return Err(too_many_requests(
                        format!(
                            "The disruption budget {pdb_name} is still being processed by the server."
                        ),
                        10,
                    ));
                }
                if st("disruptionsAllowed") < 0 {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "poddisruptionbudget.policy {pdb_name:?} is forbidden: pdb disruptions allowed is negative"
                        ),
                    ));
                }
                let disrupted = pv
                    .pointer("/status/disruptedPods")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
                if disrupted > MAX_DISRUPTED_POD_SIZE {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "poddisruptionbudget.policy {pdb_name:?} is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
                        ),
                    ));
                }
                if st("disruptionsAllowed") == 0 {
                    return Err(too_many_requests(
                        format!(
                            "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                            st("desiredHealthy"),
                            st("currentHealthy")
                        ),
                        0,
                    ));
                }
                let left = st("disruptionsAllowed") - 1;
                if !dry_run {
                    let now = self.now_str();
                    objects::set(&mut pv, "status.disruptionsAllowed", json!(left));
                    if left == 0 {
                        set_disruption_allowed_condition(&mut pv, &now);
                    }
                    objects::obj_mut(&mut pv, "status.disruptedPods")
                        .insert(name.to_string(), json!(now));
                    self.put(ids::PDBS, pv);
                }
            }
            // Deleting an unready pod is conditional on it not having become ready since.
            if skip_budget && delete.rv.is_none() {
                delete.rv = Some(pod.meta.rv.to_string());
                rv_added = true;
            }
        }
        match self.delete_for_eviction(ns, name, &delete) {
            Err(e) if e.code == 409 && rv_added => Err(too_many_requests(
                format!(
                    "The disruption budget {} is still being processed by the server.",
                    pdbs.first()
                        .map(|p| p.meta.name.as_str())
                        .unwrap_or_default()
                ),
                10,
            )),
            other => other.map(|_| Evicted::Done),
        }
    }

    fn delete_for_eviction(
        &mut self,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<(), ApiError> {
        if !opts.dry_run && self.minor() >= 26 {
            // PodDisruptionConditions: the pod learns why it is going away.
            if let Some(p) = self.get(ids::PODS, ns, name)
                && !p.meta.deleting
                && opts
                    .rv
                    .as_deref()
                    .is_none_or(|rv| rv == p.meta.rv.to_string())
            {
                let mut v = p.value();
                let now = self.now_str();
                objects::set_condition(
                    &mut v,
                    "DisruptionTarget",
                    "True",
                    "EvictionByEvictionAPI",
                    "Eviction API: evicting",
                    &now,
                );
                let stored = self.put(ids::PODS, v);
                let mut o = opts.clone();
                if o.rv.is_some() {
                    o.rv = Some(stored.meta.rv.to_string());
                }
                return self
                    .delete(ids::PODS, ns, name, &o, DeletedVia::Eviction)
                    .map(|_| ());
            }
        }
        self.delete(ids::PODS, ns, name, opts, DeletedVia::Eviction)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::k8s::cluster::{Cluster, Part, test_cluster};
    use crate::k8s::scenario::{Node, Pdb, Pod, Scenario, Workload};

    fn body(name: &str) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "ns"}})
    }

    fn pods(c: &Cluster, app: &str, ready: bool) -> Vec<String> {
        c.store
            .list(ids::PODS, Some("ns"))
            .filter(|p| p.meta.labels.iter().any(|(k, v)| k == "app" && v == app))
            .filter(|p| p.meta.pod.as_ref().unwrap().ready == ready)
            .map(|p| p.meta.name.clone())
            .collect()
    }

    fn pdb(c: &Cluster, name: &str) -> Value {
        c.get_value(ids::PDBS, "ns", name).unwrap()
    }

    #[test]
    fn approval_decrements_and_records_then_refuses() {
        let s = Scenario::new()
            .node(Node::new("n1"))
            .workload(Workload::deployment("ns", "w").replicas(3))
            .pdb(
                Pdb::new("ns", "p")
                    .match_label("app", "w")
                    .max_unavailable(1),
            );
        let mut c = test_cluster(&s);
        let names = pods(&c, "w", true);
        assert!(matches!(
            c.evict("ns", &names[0], &body(&names[0]), false),
            Ok(Evicted::Done)
        ));
        let p = pdb(&c, "p");
        assert_eq!(p["status"]["disruptionsAllowed"], 0);
        assert!(p["status"]["disruptedPods"][&names[0]].is_string());
        assert_eq!(p["status"]["conditions"][0]["reason"], "InsufficientPods");
        assert!(c.get(ids::PODS, "ns", &names[0]).unwrap().meta.deleting);
        // The budget is spent until the controller sees a replacement Ready.
        let e = c
            .evict("ns", &names[1], &body(&names[1]), false)
            .unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(
            e.body()["details"]["causes"][0]["message"],
            "The disruption budget p needs 2 healthy pods and has 3 currently"
        );
        assert!(e.retry_after.is_none());
        // Evicting a pod that is already terminating needs no budget.
        assert!(matches!(
            c.evict("ns", &names[0], &body(&names[0]), false),
            Ok(Evicted::Done)
        ));
        assert_eq!(
            c.deletions
                .iter()
                .filter(|d| d.via == DeletedVia::Eviction)
                .count(),
            1
        );
        c.reconcile();
        assert_eq!(pdb(&c, "p")["status"]["currentHealthy"], 2);
        assert!(
            pdb(&c, "p")["status"].get("disruptedPods").is_none(),
            "the deleting pod leaves the map"
        );
    }

    #[test]
    fn unprocessed_budget_answers_retry_after_10() {
        let s = Scenario::new()
            .node(Node::new("n1"))
            .workload(Workload::deployment("ns", "w").replicas(3))
            .pdb(
                Pdb::new("ns", "p")
                    .match_label("app", "w")
                    .max_unavailable(1),
            );
        let mut c = test_cluster(&s);
        let mut p = pdb(&c, "p");
        p["spec"]["maxUnavailable"] = json!(2);
        c.update(ids::PDBS, "ns", "p", p, Part::Main, false)
            .unwrap();
        let name = pods(&c, "w", true).remove(0);
        let e = c.evict("ns", &name, &body(&name), false).unwrap_err();
        assert_eq!((e.code, e.retry_after), (429, Some(10)));
        let b = e.body();
        assert_eq!(b["details"]["retryAfterSeconds"], 10);
        assert_eq!(
            b["details"]["causes"][0]["message"],
            "The disruption budget p is still being processed by the server."
        );
        c.reconcile();
        assert!(c.evict("ns", &name, &body(&name), false).is_ok());
    }

    #[test]
    fn unhealthy_pods_follow_the_policy() {
        let s = Scenario::new()
            .node(Node::new("n1"))
            .workload(Workload::deployment("ns", "ok").replicas(3).not_ready(1))
            .pdb(
                Pdb::new("ns", "ok")
                    .match_label("app", "ok")
                    .min_available(2),
            )
            .workload(Workload::deployment("ns", "short").replicas(3).not_ready(1))
            .pdb(
                Pdb::new("ns", "short")
                    .match_label("app", "short")
                    .min_available(3),
            )
            .workload(
                Workload::deployment("ns", "always")
                    .replicas(3)
                    .not_ready(1),
            )
            .pdb(
                Pdb::new("ns", "always")
                    .match_label("app", "always")
                    .min_available(3)
                    .unhealthy_pod_eviction_policy("AlwaysAllow"),
            );
        let mut c = test_cluster(&s);
        // IfHealthyBudget (default): an unready pod may go while the budget is met, and takes nothing from it.
        let sick = pods(&c, "ok", false).remove(0);
        assert!(c.evict("ns", &sick, &body(&sick), false).is_ok());
        assert!(pdb(&c, "ok")["status"].get("disruptedPods").is_none());
        let healthy = pods(&c, "ok", true).remove(0);
        assert_eq!(
            c.evict("ns", &healthy, &body(&healthy), false)
                .unwrap_err()
                .code,
            429
        );
        // Budget not met: the unready pod falls through to the budget check (0 allowed).
        let sick = pods(&c, "short", false).remove(0);
        assert_eq!(
            c.evict("ns", &sick, &body(&sick), false).unwrap_err().code,
            429
        );
        // AlwaysAllow: unready pods always go.
        let sick = pods(&c, "always", false).remove(0);
        assert!(c.evict("ns", &sick, &body(&sick), false).is_ok());
    }

    #[test]
    fn pending_and_finished_pods_skip_the_budget() {
        let s = Scenario::new()
            .node(Node::new("n1"))
            .pod(
                Pod::new("ns", "pending")
                    .node("n1")
                    .label("app", "x")
                    .phase("Pending"),
            )
            .pod(
                Pod::new("ns", "done")
                    .node("n1")
                    .label("app", "x")
                    .phase("Succeeded"),
            )
            .pod(Pod::new("ns", "running").node("n1").label("app", "x"))
            .pdb(
                Pdb::new("ns", "strict")
                    .match_label("app", "x")
                    .min_available(10),
            );
        let mut c = test_cluster(&s);
        assert!(c.evict("ns", "pending", &body("pending"), false).is_ok());
        assert!(c.evict("ns", "done", &body("done"), false).is_ok());
        assert!(
            c.get(ids::PODS, "ns", "done").is_none(),
            "finished pods go at once"
        );
        assert_eq!(
            c.evict("ns", "running", &body("running"), false)
                .unwrap_err()
                .code,
            429
        );
        assert_eq!(
            c.evict("ns", "running", &body("other"), false)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            c.evict("ns", "ghost", &body("ghost"), false)
                .unwrap_err()
                .code,
            404
        );
        // A terminating namespace refuses evictions with the NamespaceTerminating cause.
        c.delete(
            ids::NAMESPACES,
            "",
            "ns",
            &Default::default(),
            DeletedVia::Delete,
        )
        .unwrap();
        let e = c
            .evict("ns", "running", &body("running"), false)
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.body()["details"]["causes"][0]["reason"],
            "NamespaceTerminating"
        );
    }
}
