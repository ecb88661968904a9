//! Upstream's node lifecycle controller: the taints it keeps in `spec.taints` from
//! `spec.unschedulable` and the node's conditions, with `timeAdded`, and the node status
//! events that go with them.

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::objects::{self, s};
use super::resources::ids;

const PREFIX: &str = "node.kubernetes.io/";

/// The condition taints the controller owns, `(key suffix, effect)`, that `node` should have.
fn wanted(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        out.push(("unschedulable", "NoSchedule"));
    }
    match objects::condition(node, "Ready") {
        Some("True") => {}
        Some("Unknown") => {
            out.push(("unreachable", "NoSchedule"));
            out.push(("unreachable", "NoExecute"));
        }
        _ => {
            out.push(("not-ready", "NoSchedule"));
            out.push(("not-ready", "NoExecute"));
        }
    }
    for (cond, key) in [
        ("MemoryPressure", "memory-pressure"),
        ("DiskPressure", "disk-pressure"),
        ("PIDPressure", "pid-pressure"),
        ("NetworkUnavailable", "network-unavailable"),
    ] {
        if objects::condition_true(node, cond) {
            out.push((key, "NoSchedule"));
        }
    }
    out
}

const OWNED: &[&str] = &[
    "unschedulable",
    "not-ready",
    "unreachable",
    "memory-pressure",
    "disk-pressure",
    "pid-pressure",
    "network-unavailable",
];

/// `true` for a taint the controller owns (the scheduler derives these from the node anyway).
pub(crate) fn controller_owned(key: &str) -> bool {
    key.strip_prefix(PREFIX).is_some_and(|k| OWNED.contains(&k))
}

impl Cluster {
    /// Brings `node`'s controller taints in line with its spec and conditions; records
    /// `NodeNotSchedulable`/`NodeSchedulable` and `NodeNotReady`/`NodeReady` when they turn.
    pub(crate) fn sync_node_taints(&mut self, name: &str) {
        let Some(mut node) = self.get_value(ids::NODES, "", name) else {
            return;
        };
        let current: Vec<Value> = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let wanted = wanted(&node);
        let has = |key: &str, effect: &str| {
            current
                .iter()
                .any(|t| s(t, "key") == format!("{PREFIX}{key}") && s(t, "effect") == effect)
        };
        let now = self.now_str();
        let mut taints: Vec<Value> = current
            .iter()
            .filter(|t| {
                let key = s(t, "key");
                !controller_owned(key)
                    || wanted
                        .iter()
                        .any(|(k, e)| format!("{PREFIX}{k}") == key && *e == s(t, "effect"))
            })
            .cloned()
            .collect();
        for (k, e) in &wanted {
            if !has(k, e) {
                taints.push(json!({"key": format!("{PREFIX}{k}"), "effect": e, "timeAdded": now}));
            }
        }
        if taints == current {
            return;
        }
        let was_unschedulable = has("unschedulable", "NoSchedule");
        let was_not_ready = has("not-ready", "NoSchedule") || has("unreachable", "NoSchedule");
        if taints.is_empty() {
            if let Some(spec) = node.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("taints");
            }
        } else {
            objects::set(&mut node, "spec.taints", json!(taints));
        }
        let stored = self.put(ids::NODES, node).value();
        let unschedulable = wanted.contains(&("unschedulable", "NoSchedule"));
        let not_ready = wanted
            .iter()
            .any(|(k, _)| *k == "not-ready" || *k == "unreachable");
        if unschedulable != was_unschedulable {
            let status = if unschedulable {
                "NodeNotSchedulable"
            } else {
                "NodeSchedulable"
            };
            self.record_node_status(&stored, status);
        }
        if not_ready != was_not_ready {
            let status = if not_ready {
                "NodeNotReady"
            } else {
                "NodeReady"
            };
            self.record_node_status(&stored, status);
        }
    }
}
