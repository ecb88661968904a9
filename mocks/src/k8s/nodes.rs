//! Cluster-side controls: what cloud providers, kubeadm shims and tests do to nodes and pods
//! outside the Kubernetes API (kubelet upgrades, nodes joining and leaving, faults).

use serde_json::{Value, json};

use super::cluster::{Cluster, DeleteOpts, DeletedVia, NodeSim, Task};
use super::objects;
use super::resources::ids;
use super::scenario::Node;
use super::scenario::load::node_object;
use super::version::KubeVersion;
use crate::{Error, Result};

const CONDITIONS: &[&str] = &[
    "Ready",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

impl Cluster {
    fn node_value(&self, node: &str) -> Result<Value> {
        self.get_value(ids::NODES, "", node)
            .ok_or_else(|| Error::not_found("node", node))
    }

    /// The node's kubelet restarts with `version`: NotReady for the restart delay, then Ready
    /// (unless the node never becomes Ready) reporting the new version.
    pub(crate) fn ctl_set_kubelet_version(&mut self, node: &str, version: &str) -> Result<()> {
        let v = KubeVersion::parse(version)?;
        let mut n = self.node_value(node)?;
        let now = self.now_str();
        objects::set_condition(
            &mut n,
            "Ready",
            "False",
            "KubeletNotReady",
            "kubelet is restarting",
            &now,
        );
        self.put(ids::NODES, n);
        let delay = self.delays.kubelet_restart;
        self.after(
            delay,
            Task::KubeletUp {
                node: node.to_string(),
                version: v.git_version(),
            },
        );
        Ok(())
    }

    /// A new node registers (NotReady) and turns Ready after the node-ready delay.
    pub(crate) fn ctl_add_node(&mut self, n: &Node) -> Result<()> {
        if self.store.get(ids::NODES, "", &n.name).is_some() {
            return Err(Error::invalid(
                "node",
                format!("node {:?} already exists", n.name),
            ));
        }
        let probe = super::scenario::Scenario::new()
            .version(self.version.git_version())
            .node(n.clone());
        probe.validate()?;
        let kubelet = match &n.kubelet_version {
            Some(v) => KubeVersion::parse(v)?.git_version(),
            None => self.version.git_version(),
        };
        let idx = self.store.count(ids::NODES) + 1000;
        let now = self.now_str();
        let mut joining = n.clone();
        joining
            .conditions
            .entry("Ready".into())
            .or_insert_with(|| "False".into());
        let pool_label = self.pool_label.clone();
        let mut v = node_object(
            &joining,
            &pool_label,
            &kubelet,
            idx,
            &now,
            &now,
            &mut self.rng,
        );
        if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("uid");
        }
        self.nodes.insert(
            n.name.clone(),
            NodeSim {
                never_ready: n.never_ready,
            },
        );
        let created = self
            .create(ids::NODES, v, "", false)
            .map_err(|e| Error::invalid("node", e.message))?;
        let uid = created.meta.uid.clone();
        let lease = json!({"metadata": {"name": n.name, "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": uid}]},
            "spec": {"holderIdentity": n.name, "leaseDurationSeconds": 40}});
        let _ = self.create(ids::LEASES, lease, "kube-node-lease", false);
        if !n.conditions.contains_key("Ready") {
            let delay = self.delays.node_ready;
            self.after(
                delay,
                Task::NodeReady {
                    node: n.name.clone(),
                },
            );
        }
        Ok(())
    }

    /// Deletes the node; its pods are force-deleted as upstream's pod GC does.
    pub(crate) fn ctl_remove_node(&mut self, name: &str) -> Result<()> {
        self.node_value(name)?;
        for (ns, pod) in self.store.pods_on_node(name) {
            let _ = self.delete(
                ids::PODS,
                &ns,
                &pod,
                &DeleteOpts {
                    grace: Some(0),
                    ..Default::default()
                },
                DeletedVia::NodeRemoved,
            );
        }
        let _ = self.delete(
            ids::NODES,
            "",
            name,
            &DeleteOpts::default(),
            DeletedVia::Controller,
        );
        self.nodes.remove(name);
        Ok(())
    }

    /// Sets a node condition (`Ready`, `MemoryPressure`, …) to `True`, `False` or `Unknown`.
    pub(crate) fn ctl_set_node_condition(
        &mut self,
        node: &str,
        ty: &str,
        status: &str,
    ) -> Result<()> {
        if !CONDITIONS.contains(&ty) {
            return Err(Error::invalid(
                "condition type",
                format!("{ty:?}; accepted: {}", CONDITIONS.join(", ")),
            ));
        }
        if !["True", "False", "Unknown"].contains(&status) {
            return Err(Error::invalid(
                "condition status",
                format!("{status:?}; accepted: True, False, Unknown"),
            ));
        }
        let mut n = self.node_value(node)?;
        let now = self.now_str();
        let reason = match (ty, status) {
            ("Ready", "True") => "KubeletReady",
            ("Ready", "Unknown") => "NodeStatusUnknown",
            ("Ready", _) => "KubeletNotReady",
            (_, "True") => "SimulatedPressure",
            _ => "SimulatedOk",
        };
        let message = if ty == "Ready" && status == "Unknown" {
            "Kubelet stopped posting node status."
        } else {
            ""
        };
        objects::set_condition(&mut n, ty, status, reason, message, &now);
        self.put(ids::NODES, n);
        Ok(())
    }

    /// From now on the node does not become Ready (after a kubelet restart or when it joins).
    pub(crate) fn ctl_set_never_ready(&mut self, node: &str, never: bool) -> Result<()> {
        self.node_value(node)?;
        self.nodes.entry(node.to_string()).or_default().never_ready = never;
        Ok(())
    }

    /// A stuck pod stays Terminating until unstuck or force-deleted.
    pub(crate) fn ctl_set_pod_stuck(&mut self, ns: &str, name: &str, stuck: bool) -> Result<()> {
        let p = self
            .get(ids::PODS, ns, name)
            .ok_or_else(|| Error::not_found("pod", format!("{ns}/{name}")))?;
        if stuck {
            self.stuck.insert(p.meta.uid.clone());
        } else if self.stuck.remove(&p.meta.uid) && p.meta.deleting {
            let delay = self.delays.pod_shutdown;
            self.after(
                delay,
                Task::PodGone {
                    key: p.key(),
                    uid: p.meta.uid.clone(),
                },
            );
        }
        Ok(())
    }

    /// Sets a running pod's readiness (its containers pass or fail their readiness probes).
    pub(crate) fn ctl_set_pod_ready(&mut self, ns: &str, name: &str, ready: bool) -> Result<()> {
        let p = self
            .get(ids::PODS, ns, name)
            .ok_or_else(|| Error::not_found("pod", format!("{ns}/{name}")))?;
        if ready {
            self.broken.remove(&p.meta.uid);
        } else {
            self.broken.insert(p.meta.uid.clone());
        }
        let mut v = p.value();
        let now = self.now_str();
        objects::set_pod_ready(&mut v, ready, &now);
        self.put(ids::PODS, v);
        Ok(())
    }

    /// Changes the API server version (and with it the served group-versions).
    pub(crate) fn ctl_set_version(&mut self, version: &str) -> Result<()> {
        self.version = KubeVersion::parse(version)?;
        Ok(())
    }
}
