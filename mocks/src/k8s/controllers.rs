//! The controller loop: timers (pod start/stop, kubelet restarts, delayed creations, PDB
//! expiry), the scheduler, garbage and namespace cleanup, and the workload and disruption
//! controllers, run until nothing is left to do.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::cluster::{Cluster, DeleteOpts, DeletedVia, Task, finalizers, node_ready};
use super::objects::{self, s};
use super::resources::{def, ids};
use super::scheduling::NodeFacts;
use super::store::Stored;

impl Cluster {
    /// Runs everything that is due or dirty until the cluster is quiet; returns when the next
    /// timer is due.
    pub(crate) fn reconcile(&mut self) -> Option<Timestamp> {
        for _ in 0..64 {
            let now = self.now();
            let mut did = false;
            while let Some(entry) = self.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let task = entry.remove();
                self.run_task(task);
                did = true;
            }
            if !self.dirty.gc_uids.is_empty() {
                self.collect_garbage();
                did = true;
            }
            let namespaces = std::mem::take(&mut self.dirty.namespaces);
            for ns in namespaces {
                self.clean_namespace(&ns);
                did = true;
            }
            let tainted = std::mem::take(&mut self.dirty.node_taints);
            for n in tainted {
                self.sync_node_taints(&n);
                did = true;
            }
            let ready_nodes = std::mem::take(&mut self.dirty.nodes_ready);
            for n in ready_nodes {
                self.node_became_ready(&n);
                did = true;
            }
            if std::mem::take(&mut self.dirty.daemonsets) {
                let all: Vec<_> = self.store.table(ids::DAEMONSETS).keys().cloned().collect();
                for (ns, name) in all {
                    self.dirty.workloads.insert((ids::DAEMONSETS, ns, name));
                }
            }
            let work = std::mem::take(&mut self.dirty.workloads);
            // Deployments first so their ReplicaSets see the new replica counts in this round.
            let (deps, rest): (Vec<_>, Vec<_>) = work
                .into_iter()
                .partition(|(r, _, _)| *r == ids::DEPLOYMENTS);
            for (res, ns, name) in deps.into_iter().chain(rest) {
                match res {
                    ids::DEPLOYMENTS => self.sync_deployment(&ns, &name),
                    ids::REPLICASETS => self.sync_replicaset(&ns, &name),
                    ids::STATEFULSETS => self.sync_statefulset(&ns, &name),
                    ids::DAEMONSETS => self.sync_daemonset(&ns, &name),
                    _ => {}
                }
                did = true;
            }
            if std::mem::take(&mut self.dirty.scheduling) && !self.unscheduled.is_empty() {
                self.schedule_pending();
                did = true;
            }
            let pdb_ns = std::mem::take(&mut self.dirty.pdb_namespaces);
            for ns in pdb_ns {
                self.sync_pdbs(&ns);
                did = true;
            }
            if !did {
                break;
            }
        }
        self.timers.keys().next().map(|(t, _)| *t)
    }

    fn run_task(&mut self, task: Task) {
        match task {
            Task::PodStart { key, uid } => self.start_pod(&key.0, &key.1, &uid),
            Task::PodGone { key, uid } => self.finish_pod(&key.0, &key.1, &uid),
            Task::KubeletUp { node, version } => self.kubelet_up(&node, &version),
            Task::NodeReady { node } => self.node_up(&node),
            Task::Resync(key) => {
                self.dirty.workloads.insert(key);
            }
            Task::PdbRecheck(ns) => {
                self.dirty.pdb_namespaces.insert(ns);
            }
            Task::NamespaceCleanup(ns) => {
                self.dirty.namespaces.insert(ns);
            }
        }
    }

    /// The kubelet starts a scheduled pod: Running, and Ready unless it is marked broken.
    fn start_pod(&mut self, ns: &str, name: &str, uid: &str) {
        let Some(p) = self.get(ids::PODS, ns, name) else {
            return;
        };
        let Some(f) = &p.meta.pod else { return };
        if p.meta.uid != uid || p.meta.deleting || f.phase != "Pending" || f.node.is_empty() {
            return;
        }
        let Some(node) = self.get(ids::NODES, "", &f.node) else {
            return;
        };
        let nv = node.value();
        if !node_ready(&nv) {
            return;
        }
        let host_ip = NodeFacts::from_value(&nv).internal_ip;
        let ip = if p
            .value()
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            == Some(true)
        {
            host_ip.clone()
        } else {
            self.next_pod_ip()
        };
        let ready = !self.broken.contains(uid);
        let mut v = p.value();
        let now = self.now_str();
        objects::mark_running(&mut v, &ip, &host_ip, &now, ready);
        self.put(ids::PODS, v);
    }

    /// The kubelet finished stopping a deleted pod: it leaves storage (unless finalizers hold it).
    fn finish_pod(&mut self, ns: &str, name: &str, uid: &str) {
        let Some(p) = self.get(ids::PODS, ns, name) else {
            return;
        };
        if p.meta.uid != uid || !p.meta.deleting || self.stuck.contains(uid) {
            return;
        }
        let node = p
            .meta
            .pod
            .as_ref()
            .map(|f| f.node.clone())
            .unwrap_or_default();
        let kubelet_up = self
            .get(ids::NODES, "", &node)
            .is_some_and(|n| node_ready(&n.value()));
        if !node.is_empty() && !kubelet_up {
            // Nobody is there to stop it; it finishes when the node comes back.
            return;
        }
        if !finalizers(&p.value()).is_empty() {
            self.finished.insert(uid.to_string());
            return;
        }
        self.purge(ids::PODS, ns, name);
    }

    /// A node turned Ready: its kubelet starts pending pods and finishes terminating ones.
    fn node_became_ready(&mut self, node: &str) {
        let delays = self.delays.clone();
        for (ns, name) in self.store.pods_on_node(node) {
            let Some(p) = self.get(ids::PODS, &ns, &name) else {
                continue;
            };
            let uid = p.meta.uid.clone();
            if p.meta.deleting {
                self.after(
                    delays.pod_shutdown,
                    Task::PodGone {
                        key: (ns, name),
                        uid,
                    },
                );
            } else if p.meta.pod.as_ref().is_some_and(|f| f.phase == "Pending") {
                self.after(
                    delays.pod_ready,
                    Task::PodStart {
                        key: (ns, name),
                        uid,
                    },
                );
            }
        }
    }

    fn kubelet_up(&mut self, node: &str, version: &str) {
        let Some(n) = self.get(ids::NODES, "", node) else {
            return;
        };
        let mut v = n.value();
        objects::set(&mut v, "status.nodeInfo.kubeletVersion", json!(version));
        objects::set(&mut v, "status.nodeInfo.kubeProxyVersion", json!(version));
        self.put(ids::NODES, v);
        self.node_up(node);
    }

    /// The kubelet reports Ready (or, for a node that never becomes Ready, a network fault).
    fn node_up(&mut self, node: &str) {
        let Some(n) = self.get(ids::NODES, "", node) else {
            return;
        };
        let mut v = n.value();
        let now = self.now_str();
        if self.nodes.get(node).is_some_and(|s| s.never_ready) {
            objects::set_condition(
                &mut v,
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
                &now,
            );
        } else {
            objects::set_condition(
                &mut v,
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                &now,
            );
        }
        self.put(ids::NODES, v);
    }

    /// Binds unscheduled pods to the least-loaded feasible node.
    fn schedule_pending(&mut self) {
        let nodes = self.node_facts();
        let pending: Vec<_> = self.unscheduled.iter().cloned().collect();
        for (ns, name) in pending {
            let Some(p) = self.get(ids::PODS, &ns, &name) else {
                self.unscheduled.remove(&(ns, name));
                continue;
            };
            if p.meta.deleting {
                continue;
            }
            let mut v = p.value();
            let now = self.now_str();
            match self.pick_node(&v, &nodes) {
                Some(node) => {
                    self.record_scheduled(&v, &node);
                    objects::set(&mut v, "spec.nodeName", json!(node));
                    objects::set_condition(&mut v, "PodScheduled", "True", "", "", &now);
                    if let Some(c) = v
                        .pointer_mut("/status/conditions")
                        .and_then(Value::as_array_mut)
                    {
                        for c in c.iter_mut().filter(|c| s(c, "type") == "PodScheduled") {
                            c.as_object_mut().map(|o| {
                                o.remove("reason");
                                o.remove("message")
                            });
                        }
                    }
                    let stored = self.put(ids::PODS, v);
                    let delay = self.delays.pod_ready;
                    self.after(
                        delay,
                        Task::PodStart {
                            key: stored.key(),
                            uid: stored.meta.uid.clone(),
                        },
                    );
                }
                None => {
                    let msg = format!(
                        "0/{} nodes are available: no node satisfies the pod's scheduling constraints (taints, selectors, readiness).",
                        nodes.len()
                    );
                    objects::set_condition(
                        &mut v,
                        "PodScheduled",
                        "False",
                        "Unschedulable",
                        &msg,
                        &now,
                    );
                    self.put(ids::PODS, v);
                }
            }
        }
    }

    /// Deletes everything in a terminating namespace, then the namespace itself.
    fn clean_namespace(&mut self, ns: &str) {
        let Some(n) = self.get(ids::NAMESPACES, "", ns) else {
            return;
        };
        if !n.meta.deleting {
            return;
        }
        let mut left = 0usize;
        for res in self.store.resources() {
            if !def(res).namespaced {
                continue;
            }
            let objs: Vec<Arc<Stored>> = self.store.list(res, Some(ns)).cloned().collect();
            left += objs.len();
            for o in objs {
                if !o.meta.deleting || res == ids::PODS {
                    let _ = self.delete(
                        res,
                        ns,
                        &o.meta.name,
                        &DeleteOpts::default(),
                        DeletedVia::NamespaceDeletion,
                    );
                }
            }
        }
        let remaining: usize = self
            .store
            .resources()
            .into_iter()
            .filter(|r| def(*r).namespaced)
            .map(|r| self.store.list(r, Some(ns)).count())
            .sum();
        if remaining == 0 {
            self.purge(ids::NAMESPACES, "", ns);
        } else if left > 0 {
            // Check again once terminating pods had time to go.
            let delay = self.delays.pod_shutdown.max(Duration::from_secs(1));
            self.after(delay, Task::NamespaceCleanup(ns.to_string()));
        }
    }
}
