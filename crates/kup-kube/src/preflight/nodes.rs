//! Node health: Ready, pressure conditions, NetworkUnavailable, and nodes already cordoned.
//!
//! Cluster API calls a node healthy when Ready is True and MemoryPressure, DiskPressure,
//! PIDPressure and NetworkUnavailable are not True; kOps validation requires Ready and
//! NetworkUnavailable not True. Pressure is a warning here (it is often transient and does not
//! stop a drain), the others block.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kup_core::{Finding, ObjectRef, Severity};

/// The condition types that report pressure.
pub(crate) const PRESSURE_CONDITIONS: [&str; 3] = ["MemoryPressure", "DiskPressure", "PIDPressure"];

/// The status of condition `ty` on a node (`True`, `False`, `Unknown`), if reported.
pub(crate) fn condition<'a>(node: &'a Node, ty: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| c.status.as_str())
}

/// What is wrong with one node's health, if anything: `(code, detail)` pairs.
pub(crate) fn node_problems(node: &Node) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    match condition(node, "Ready") {
        Some("True") => {}
        Some(other) => problems.push(("node.not-ready", format!("Ready={other}"))),
        None => problems.push(("node.not-ready", "no Ready condition".to_string())),
    }
    for ty in PRESSURE_CONDITIONS {
        if condition(node, ty) == Some("True") {
            problems.push(("node.pressure", ty.to_string()));
        }
    }
    if condition(node, "NetworkUnavailable") == Some("True") {
        problems.push((
            "node.network-unavailable",
            "NetworkUnavailable=True".to_string(),
        ));
    }
    problems
}

/// Whether the node is cordoned.
pub(crate) fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// Aggregates node health while nodes stream past: one finding per code, naming every node.
#[derive(Debug, Default)]
pub(crate) struct NodeHealth {
    by_code: BTreeMap<&'static str, Vec<(String, String)>>,
}

impl NodeHealth {
    pub(crate) fn observe(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        for (code, detail) in node_problems(node) {
            self.by_code
                .entry(code)
                .or_default()
                .push((name.clone(), detail));
        }
        if is_cordoned(node) {
            self.by_code
                .entry("node.cordoned")
                .or_default()
                .push((name, "spec.unschedulable=true".to_string()));
        }
    }

    pub(crate) fn finish(self) -> Vec<Finding> {
        self.by_code
            .into_iter()
            .map(|(code, nodes)| node_finding(code, &nodes, "nodes"))
            .collect()
    }
}

/// One finding for `code` naming every node with its detail.
pub(crate) fn node_finding(
    code: &'static str,
    nodes: &[(String, String)],
    source: &str,
) -> Finding {
    let (severity, what, fix) = match code {
        "node.not-ready" => (
            Severity::Blocker,
            "not Ready",
            "find out why the kubelet is not Ready (`kubectl describe node`), repair or replace \
             the node, then run again",
        ),
        "node.pressure" => (
            Severity::Warning,
            "under resource pressure",
            "free memory, disk or PIDs on these nodes; pods evicted elsewhere during the upgrade \
             may not fit on them",
        ),
        "node.network-unavailable" => (
            Severity::Blocker,
            "without a working network (NetworkUnavailable=True)",
            "repair the CNI on these nodes before upgrading",
        ),
        _ => (
            Severity::Warning,
            "already cordoned",
            "nothing to do if intended: kup drains them with the others and leaves them \
             cordoned afterwards; uncordon them first if they should take pods again",
        ),
    };
    let listed: Vec<String> = nodes
        .iter()
        .take(10)
        .map(|(n, d)| format!("{n} ({d})"))
        .collect();
    let more = nodes.len().saturating_sub(10);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Finding::new(
        code,
        severity,
        format!(
            "{} node(s) {what}: {}{tail}",
            nodes.len(),
            listed.join(", ")
        ),
    )
    .remediation(fix)
    .objects(nodes.iter().map(|(n, _)| ObjectRef::cluster("Node", n)))
    .source(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, conditions: &[(&str, &str)], cordoned: bool) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: cordoned.then_some(true),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn one_finding_per_code_naming_every_node() {
        let mut health = NodeHealth::default();
        health.observe(&node("ok", &[("Ready", "True")], false));
        health.observe(&node("a", &[("Ready", "False")], false));
        health.observe(&node(
            "b",
            &[("Ready", "Unknown"), ("DiskPressure", "True")],
            true,
        ));
        health.observe(&node(
            "c",
            &[("Ready", "True"), ("NetworkUnavailable", "True")],
            false,
        ));
        let findings = health.finish();
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "node.cordoned",
                "node.network-unavailable",
                "node.not-ready",
                "node.pressure"
            ]
        );
        let not_ready = &findings[2];
        assert_eq!(not_ready.objects.len(), 2);
        assert!(not_ready.message.contains("a (Ready=False)"));
        assert!(not_ready.message.contains("b (Ready=Unknown)"));
        assert_eq!(findings[3].severity, Severity::Warning);
    }
}
