//! Node facts and the scheduler's filters: taints (including the ones upstream's node lifecycle
//! controller derives from conditions and `spec.unschedulable`), node selectors and required node
//! affinity; the least-loaded feasible node wins.

use std::sync::Arc;

use serde_json::Value;

use super::cluster::Cluster;
use super::node_lifecycle;
use super::objects::{self, s};
use super::resources::ids;
use super::selector::LabelSelector;

/// A taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// What scheduling needs to know about a node.
#[derive(Debug, Clone)]
pub(crate) struct NodeFacts {
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// `spec.taints` only.
    pub spec_taints: Vec<Taint>,
    /// `spec.taints` plus the condition taints (not-ready, unschedulable, pressure…).
    pub taints: Vec<Taint>,
    pub internal_ip: String,
}

impl NodeFacts {
    pub(crate) fn from_value(v: &Value) -> NodeFacts {
        let spec_taints: Vec<Taint> = v
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    // The lifecycle controller's taints are derived below from the node itself.
                    .filter(|t| !node_lifecycle::controller_owned(s(t, "key")))
                    .map(|t| Taint {
                        key: s(t, "key").to_string(),
                        value: s(t, "value").to_string(),
                        effect: s(t, "effect").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut taints = spec_taints.clone();
        let mut implied = |key: &str| {
            let key = format!("node.kubernetes.io/{key}");
            if !taints.iter().any(|t| t.key == key) {
                taints.push(Taint {
                    key,
                    value: String::new(),
                    effect: "NoSchedule".into(),
                });
            }
        };
        let ready = objects::condition(v, "Ready");
        match ready {
            Some("True") => {}
            Some("Unknown") => implied("unreachable"),
            _ => implied("not-ready"),
        }
        if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
            implied("unschedulable");
        }
        for (cond, key) in [
            ("MemoryPressure", "memory-pressure"),
            ("DiskPressure", "disk-pressure"),
            ("PIDPressure", "pid-pressure"),
            ("NetworkUnavailable", "network-unavailable"),
        ] {
            if objects::condition_true(v, cond) {
                implied(key);
            }
        }
        let internal_ip = v
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| s(x, "type") == "InternalIP"))
            .map(|x| s(x, "address").to_string())
            .unwrap_or_default();
        NodeFacts {
            name: s(v, "metadata.name").to_string(),
            labels: objects::labels(v),
            spec_taints,
            taints,
            internal_ip,
        }
    }
}

/// `true` if `tolerations` tolerate `taint` (upstream `ToleratesTaint`).
pub(crate) fn tolerates(tolerations: &[Value], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect = s(t, "effect");
        if !effect.is_empty() && effect != taint.effect {
            return false;
        }
        let key = s(t, "key");
        let op = match s(t, "operator") {
            "" => "Equal",
            o => o,
        };
        if key.is_empty() {
            return op == "Exists";
        }
        if key != taint.key {
            return false;
        }
        op == "Exists" || s(t, "value") == taint.value
    })
}

fn blocking(t: &Taint) -> bool {
    t.effect == "NoSchedule" || t.effect == "NoExecute"
}

/// Does `pod_spec` (a pod or template spec) select `node` by nodeSelector and required affinity?
pub(crate) fn selects(pod_spec: &Value, node: &NodeFacts) -> bool {
    if let Some(sel) = pod_spec.get("nodeSelector").and_then(Value::as_object) {
        for (k, v) in sel {
            if !node
                .labels
                .iter()
                .any(|(nk, nv)| nk == k && Some(nv.as_str()) == v.as_str())
            {
                return false;
            }
        }
    }
    let terms = pod_spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array);
    let Some(terms) = terms else { return true };
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        let exprs_ok = term.get("matchExpressions").is_none_or(|e| {
            LabelSelector::from_object(&serde_json::json!({"matchExpressions": e}))
                .map(|sel| sel.matches(&node.labels))
                .unwrap_or(false)
        });
        let fields_ok = term
            .get("matchFields")
            .and_then(Value::as_array)
            .is_none_or(|fs| {
                fs.iter().all(|f| {
                    let vals: Vec<&str> = f
                        .get("values")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let hit = s(f, "key") == "metadata.name" && vals.contains(&node.name.as_str());
                    match s(f, "operator") {
                        "NotIn" => !hit,
                        _ => hit,
                    }
                })
            });
        exprs_ok && fields_ok
    })
}

/// Can a pod with `pod_spec` run on `node` (all filters, condition taints included)?
pub(crate) fn feasible(pod_spec: &Value, node: &NodeFacts) -> bool {
    let tolerations = pod_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    selects(pod_spec, node)
        && node
            .taints
            .iter()
            .filter(|t| blocking(t))
            .all(|t| tolerates(tolerations, t))
}

/// Should a DaemonSet with this template run on `node` (selector, affinity, `spec.taints`)?
pub(crate) fn daemon_should_run(template_spec: &Value, node: &NodeFacts) -> bool {
    let tolerations = template_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    selects(template_spec, node)
        && node
            .spec_taints
            .iter()
            .filter(|t| blocking(t))
            .all(|t| tolerates(tolerations, t))
}

impl Cluster {
    /// Facts of every node, in name order (cached until a node changes).
    pub(crate) fn node_facts(&mut self) -> Arc<Vec<NodeFacts>> {
        if let Some(c) = &self.node_cache {
            return c.clone();
        }
        let facts: Arc<Vec<NodeFacts>> = Arc::new(
            self.store
                .table(ids::NODES)
                .values()
                .map(|n| NodeFacts::from_value(&n.value()))
                .collect(),
        );
        self.node_cache = Some(facts.clone());
        facts
    }

    /// The feasible node with the fewest pods (ties by name).
    pub(crate) fn pick_node(&self, pod: &Value, nodes: &[NodeFacts]) -> Option<String> {
        let spec = pod.get("spec")?;
        nodes
            .iter()
            .filter(|n| feasible(spec, n))
            .min_by_key(|n| (self.store.pod_count_on_node(&n.name), n.name.clone()))
            .map(|n| n.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(extra: Value) -> NodeFacts {
        let mut v = json!({"metadata": {"name": "n1", "labels": {"pool": "a"}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        NodeFacts::from_value(&v)
    }

    #[test]
    fn taints_selectors_and_affinity() {
        let plain = json!({"containers": []});
        assert!(feasible(&plain, &node(json!({}))));
        let cordoned = node(json!({"spec": {"unschedulable": true}}));
        assert!(!feasible(&plain, &cordoned));
        let ds = json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]});
        assert!(feasible(&ds, &cordoned));
        let cp = node(
            json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
        );
        assert!(!feasible(&plain, &cp));
        assert!(feasible(
            &json!({"tolerations": [{"operator": "Exists"}]}),
            &cp
        ));
        assert!(!feasible(
            &json!({"nodeSelector": {"pool": "b"}}),
            &node(json!({}))
        ));
        let pinned = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}});
        assert!(!feasible(&pinned, &node(json!({}))));
        let not_ready =
            node(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert!(!feasible(&plain, &not_ready));
        assert!(daemon_should_run(&plain, &not_ready));
    }
}
