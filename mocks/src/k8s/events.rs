//! Events the simulated components record, as upstream's do: the scheduler's `Scheduled`, the
//! kubelet's `Killing`, `NodeNotSchedulable`/`NodeSchedulable` and `NodeReady`, the node
//! controller's `NodeNotReady`.

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::objects::s;
use super::resources::ids;

/// Who records an event (`source` / `reportingComponent`).
pub(crate) struct Source<'a> {
    pub component: &'a str,
    pub host: &'a str,
}

impl Cluster {
    /// Records a `Normal` event about `object` (a stored Pod or Node).
    pub(crate) fn record_event(
        &mut self,
        object: &Value,
        field_path: Option<&str>,
        reason: &str,
        message: &str,
        source: &Source<'_>,
    ) {
        let name = s(object, "metadata.name");
        let kind = s(object, "kind");
        // Events about cluster-scoped objects live in `default`, as upstream's recorder puts them.
        let ns = match s(object, "metadata.namespace") {
            "" => "default",
            n => n,
        }
        .to_string();
        let now = self.now_str();
        let mut involved = json!({"kind": kind, "name": name, "uid": s(object, "metadata.uid"),
            "apiVersion": s(object, "apiVersion"),
            "resourceVersion": s(object, "metadata.resourceVersion")});
        if kind != "Node" {
            involved["namespace"] = json!(ns);
        }
        if let Some(fp) = field_path {
            involved["fieldPath"] = json!(fp);
        }
        let mut src = json!({"component": source.component});
        if !source.host.is_empty() {
            src["host"] = json!(source.host);
        }
        let event_name = format!("{name}.{:016x}", self.rng.next_u64());
        let ev = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message, "source": src,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": "Normal",
            "eventTime": null, "reportingComponent": source.component,
            "reportingInstance": source.host});
        // An event the store refuses (its namespace is terminating) is dropped, as the
        // recorder drops it.
        let _ = self.create(ids::EVENTS, ev, &ns, false);
    }

    /// The kubelet's `Killing` event for every container of a pod it stops.
    pub(crate) fn record_killing(&mut self, pod: &Value) {
        let node = s(pod, "spec.nodeName").to_string();
        if node.is_empty() {
            return;
        }
        let containers: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| s(c, "name").to_string()).collect())
            .unwrap_or_default();
        for c in containers {
            self.record_event(
                pod,
                Some(&format!("spec.containers{{{c}}}")),
                "Killing",
                &format!("Stopping container {c}"),
                &Source {
                    component: "kubelet",
                    host: &node,
                },
            );
        }
    }

    /// The scheduler's `Scheduled` event.
    pub(crate) fn record_scheduled(&mut self, pod: &Value, node: &str) {
        let message = format!(
            "Successfully assigned {}/{} to {node}",
            s(pod, "metadata.namespace"),
            s(pod, "metadata.name")
        );
        self.record_event(
            pod,
            None,
            "Scheduled",
            &message,
            &Source {
                component: "default-scheduler",
                host: "",
            },
        );
    }

    /// A node status event (`NodeNotSchedulable`, `NodeReady`…), from the kubelet unless the
    /// node controller reports it.
    pub(crate) fn record_node_status(&mut self, node: &Value, status: &str) {
        let name = s(node, "metadata.name").to_string();
        let message = format!("Node {name} status is now: {status}");
        let kubelet = Source {
            component: "kubelet",
            host: &name,
        };
        let controller = Source {
            component: "node-controller",
            host: "",
        };
        let source = if status == "NodeNotReady" {
            controller
        } else {
            kubelet
        };
        self.record_event(node, None, status, &message, &source);
    }
}
