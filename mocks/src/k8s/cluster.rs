//! The cluster state and the write operations every path goes through (REST handlers,
//! controllers, control calls): create, update, delete, with upstream's defaults and checks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::clock::{SimClock, plus, rfc3339};
use super::objects::{self, s};
use super::resources::{ResId, def, ids};
use super::rng::Rng;
use super::status::ApiError;
use super::store::{ObjKey, Store, Stored};
use super::version::KubeVersion;

/// How a pod deletion was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum DeletedVia {
    /// `POST …/pods/{name}/eviction` (the only way a careful drain deletes pods).
    Eviction,
    /// `DELETE …/pods/{name}`.
    Delete,
    /// `DELETE …/pods` (a collection delete).
    DeleteCollection,
    /// The namespace was deleted.
    NamespaceDeletion,
    /// The garbage collector deleted it after its owner went away.
    GarbageCollector,
    /// The pod garbage collector deleted it because its node was removed.
    NodeRemoved,
    /// A workload controller scaled it away (too many replicas, DaemonSet pod on an ineligible node).
    Controller,
}

impl DeletedVia {
    /// `true` for deletions a client asked for through the API (eviction, DELETE, collection DELETE,
    /// namespace deletion), `false` for the cluster's own controllers.
    pub fn is_api_call(self) -> bool {
        matches!(
            self,
            DeletedVia::Eviction
                | DeletedVia::Delete
                | DeletedVia::DeleteCollection
                | DeletedVia::NamespaceDeletion
        )
    }
}

/// A record of one pod deletion, kept for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDeletion {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub name: String,
    /// UID of the pod.
    pub uid: String,
    /// Node the pod was bound to (empty if unscheduled).
    pub node: String,
    /// How the deletion was asked for.
    pub via: DeletedVia,
    /// Simulated time of the request.
    pub at: Timestamp,
    /// Grace period the deletion used (0 = immediate).
    pub grace_period_seconds: i64,
}

/// Simulated delays (in simulated time).
#[derive(Debug, Clone)]
pub(crate) struct Delays {
    pub pod_start: Duration,
    pub pod_ready: Duration,
    pub pod_shutdown: Duration,
    pub kubelet_restart: Duration,
    pub node_ready: Duration,
}

/// Per-node simulation state that is not in the Node object.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeSim {
    pub never_ready: bool,
}

/// A workload (by resource, namespace, name).
pub(crate) type WorkKey = (ResId, String, String);

/// Deferred work, due at a simulated time.
#[derive(Debug, Clone)]
pub(crate) enum Task {
    PodStart { key: ObjKey, uid: String },
    PodGone { key: ObjKey, uid: String },
    KubeletUp { node: String, version: String },
    NodeReady { node: String },
    Resync(WorkKey),
    PdbRecheck(String),
    NamespaceCleanup(String),
}

/// What changed since the controllers last ran.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    pub workloads: BTreeSet<WorkKey>,
    pub pdb_namespaces: BTreeSet<String>,
    pub daemonsets: bool,
    pub scheduling: bool,
    pub nodes_ready: BTreeSet<String>,
    pub node_taints: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
    pub gc_uids: Vec<String>,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub rv: Option<String>,
    pub orphan: bool,
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Removed from storage.
    Gone(Arc<Stored>),
    /// Marked for deletion (grace period, finalizers, namespace cleanup).
    Pending(Arc<Stored>),
}

/// Which part of an object an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
}

/// A deprecated API a client called, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DeprecatedUse {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub removed_release: String,
}

/// The whole simulated cluster.
pub(crate) struct Cluster {
    pub store: Store,
    pub version: KubeVersion,
    pub clock: SimClock,
    pub delays: Delays,
    pub rng: Rng,
    pub pool_label: String,
    pub nodes: HashMap<String, NodeSim>,
    /// Pods (by UID) that stay Terminating until unstuck or force-deleted.
    pub stuck: HashSet<String>,
    /// Pods (by UID) that never become Ready.
    pub broken: HashSet<String>,
    /// Pods (by UID) whose containers stopped but whose finalizers keep them.
    pub finished: HashSet<String>,
    pub deletions: Vec<PodDeletion>,
    pub timers: BTreeMap<(Timestamp, u64), Task>,
    timer_seq: u64,
    pub resync_due: HashMap<WorkKey, Timestamp>,
    pub dirty: Dirty,
    /// Pods waiting for the scheduler.
    pub unscheduled: BTreeSet<ObjKey>,
    /// Parsed node facts, dropped whenever a node changes.
    pub node_cache: Option<Arc<Vec<super::scheduling::NodeFacts>>>,
    pub failing_checks: BTreeSet<String>,
    pub deprecated_used: BTreeSet<DeprecatedUse>,
    pub wake: Arc<Notify>,
    /// What the established CustomResourceDefinitions serve.
    pub customs: super::custom::Customs,
    ip_counter: u32,
}

impl Cluster {
    pub(crate) fn new(
        version: KubeVersion,
        clock: SimClock,
        delays: Delays,
        seed: u64,
        history: usize,
        pool_label: String,
    ) -> Cluster {
        Cluster {
            store: Store::new(history),
            version,
            clock,
            delays,
            rng: Rng::new(seed),
            pool_label,
            nodes: HashMap::new(),
            stuck: HashSet::new(),
            broken: HashSet::new(),
            finished: HashSet::new(),
            deletions: Vec::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            resync_due: HashMap::new(),
            dirty: Dirty::default(),
            unscheduled: BTreeSet::new(),
            node_cache: None,
            failing_checks: BTreeSet::new(),
            deprecated_used: BTreeSet::new(),
            wake: Arc::new(Notify::new()),
            customs: super::custom::Customs::default(),
            ip_counter: 0,
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn now_str(&self) -> String {
        rfc3339(self.now())
    }

    pub(crate) fn minor(&self) -> u32 {
        self.version.minor
    }

    pub(crate) fn at(&mut self, due: Timestamp, task: Task) {
        self.timer_seq += 1;
        self.timers.insert((due, self.timer_seq), task);
        self.wake.notify_one();
    }

    pub(crate) fn after(&mut self, delay: Duration, task: Task) {
        let due = plus(self.now(), delay);
        self.at(due, task);
    }

    /// The next pod IP.
    pub(crate) fn next_pod_ip(&mut self) -> String {
        self.ip_counter += 1;
        let n = self.ip_counter;
        format!(
            "10.{}.{}.{}",
            244 + (n >> 16) % 10,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    pub(crate) fn get(&self, res: ResId, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.store.get(res, ns, name).cloned()
    }

    pub(crate) fn get_value(&self, res: ResId, ns: &str, name: &str) -> Option<Value> {
        self.store.get(res, ns, name).map(|s| s.value())
    }

    /// Notes what a change affects, for the controllers.
    pub(crate) fn changed(&mut self, res: ResId, prev: Option<&Stored>, new: Option<&Stored>) {
        let mut wake = true;
        match res {
            ids::PODS => {
                for s in [prev, new].into_iter().flatten() {
                    if let Some(c) = &s.meta.controller {
                        let owner = match c.kind.as_str() {
                            "ReplicaSet" => Some(ids::REPLICASETS),
                            "StatefulSet" => Some(ids::STATEFULSETS),
                            "DaemonSet" => Some(ids::DAEMONSETS),
                            _ => None,
                        };
                        if let Some(o) = owner {
                            self.dirty.workloads.insert((
                                o,
                                s.meta.namespace.clone(),
                                c.name.clone(),
                            ));
                        }
                    }
                    self.dirty.pdb_namespaces.insert(s.meta.namespace.clone());
                }
                if let Some(p) = prev {
                    self.unscheduled.remove(&p.key());
                }
                match new {
                    Some(n)
                        if n.meta.pod.as_ref().is_some_and(|p| p.node.is_empty())
                            && !n.meta.deleting =>
                    {
                        self.unscheduled.insert(n.key());
                        self.dirty.scheduling = true;
                    }
                    Some(_) => {}
                    None => {
                        // A pod leaving a terminating namespace may let the namespace go.
                        if let Some(p) = prev
                            && self
                                .store
                                .get(ids::NAMESPACES, "", &p.meta.namespace)
                                .is_some_and(|n| n.meta.deleting)
                        {
                            self.dirty.namespaces.insert(p.meta.namespace.clone());
                        }
                    }
                }
            }
            ids::NODES => {
                self.node_cache = None;
                self.dirty.daemonsets = true;
                self.dirty.scheduling = true;
                if let Some(n) = new {
                    self.dirty.node_taints.insert(n.meta.name.clone());
                    let ready_now = node_ready(&n.value());
                    let ready_before = prev.is_some_and(|p| node_ready(&p.value()));
                    if ready_now && !ready_before {
                        self.dirty.nodes_ready.insert(n.meta.name.clone());
                    }
                }
            }
            ids::REPLICASETS | ids::STATEFULSETS | ids::DAEMONSETS | ids::DEPLOYMENTS => {
                for s in [prev, new].into_iter().flatten() {
                    self.dirty.workloads.insert((
                        res,
                        s.meta.namespace.clone(),
                        s.meta.name.clone(),
                    ));
                    if res == ids::REPLICASETS
                        && let Some(c) = &s.meta.controller
                        && c.kind == "Deployment"
                    {
                        self.dirty.workloads.insert((
                            ids::DEPLOYMENTS,
                            s.meta.namespace.clone(),
                            c.name.clone(),
                        ));
                    }
                }
            }
            ids::PDBS => {
                for s in [prev, new].into_iter().flatten() {
                    self.dirty.pdb_namespaces.insert(s.meta.namespace.clone());
                }
            }
            _ if Some(res) == super::custom::crd_resource() => {
                if let Some(name) = new.or(prev).map(|s| s.meta.name.clone()) {
                    self.crd_changed(new, &name);
                }
            }
            super::resources::ResId::Custom(_) if new.is_none() => self.custom_deleted(res),
            _ => wake = false,
        }
        if prev.is_some() && new.is_none() {
            if let Some(p) = prev {
                self.dirty.gc_uids.push(p.meta.uid.clone());
            }
            wake = true;
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Writes `v` if it differs from what is stored (ignoring resourceVersion); returns the
    /// stored object either way.
    pub(crate) fn put(&mut self, res: ResId, mut v: Value) -> Arc<Stored> {
        let ns = s(&v, "metadata.namespace").to_string();
        let name = s(&v, "metadata.name").to_string();
        let prev = self.get(res, &ns, &name);
        if let Some(p) = &prev {
            objects::set(
                &mut v,
                "metadata.resourceVersion",
                json!(p.meta.rv.to_string()),
            );
            if serde_json::to_vec(&v).ok().as_deref() == Some(&p.json[..]) {
                return p.clone();
            }
        }
        let new = self.store.write(res, v);
        self.changed(res, prev.as_deref(), Some(&new));
        new
    }

    /// Removes an object from storage and tells the controllers.
    pub(crate) fn purge(&mut self, res: ResId, ns: &str, name: &str) -> Option<Arc<Stored>> {
        let prev = self.get(res, ns, name)?;
        let gone = self.store.remove(res, ns, name)?;
        if res == ids::PODS {
            self.stuck.remove(&prev.meta.uid);
            self.broken.remove(&prev.meta.uid);
            self.finished.remove(&prev.meta.uid);
        }
        self.changed(res, Some(&prev), None);
        Some(gone)
    }

    fn namespace_check(&self, res: ResId, ns: &str, name: &str) -> Result<(), ApiError> {
        if !def(res).namespaced {
            return Ok(());
        }
        match self.store.get(ids::NAMESPACES, "", ns) {
            None => Err(ApiError::not_found(def(ids::NAMESPACES), ns)),
            Some(n) if n.meta.deleting => {
                let d = def(res);
                let mut details = Map::new();
                details.insert("name".into(), json!(name));
                if !d.group.is_empty() {
                    details.insert("group".into(), json!(d.group));
                }
                details.insert("kind".into(), json!(d.plural));
                details.insert(
                    "causes".into(),
                    json!([{"reason": "NamespaceTerminating",
                            "message": format!("namespace {ns} is being terminated"),
                            "field": "metadata.namespace"}]),
                );
                Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        d.qualified()
                    ),
                )
                .with_details(details))
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (`ns` is the namespace from the URL, empty for cluster scope).
    pub(crate) fn create(
        &mut self,
        res: ResId,
        mut v: Value,
        ns: &str,
        dry_run: bool,
    ) -> Result<Arc<Stored>, ApiError> {
        let d = def(res);
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let md = objects::obj_mut(&mut v, "metadata");
        let mut name = md
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            && let Some(g) = md.get("generateName").and_then(Value::as_str)
            && !g.is_empty()
        {
            name = format!("{g}{}", self.rng.suffix(5));
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                d,
                "",
                &[(
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        if let Err(why) = validate_name(res, &name) {
            return Err(ApiError::invalid(
                d,
                &name,
                &[(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: {why}"),
                )],
            ));
        }
        let md = objects::obj_mut(&mut v, "metadata");
        md.insert("name".into(), json!(name));
        if d.namespaced {
            let body_ns = md
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            md.insert("namespace".into(), json!(ns));
        } else {
            md.remove("namespace");
        }
        self.namespace_check(res, ns, &name)?;
        let ns_key = if d.namespaced { ns } else { "" };
        if self.store.get(res, ns_key, &name).is_some() {
            return Err(ApiError::already_exists(d, &name));
        }
        validate(res, &v, &name)?;
        if d.custom.is_some() && self.crd_terminating(res) {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        if d.custom.is_some() {
            super::custom::admit(d, d.versions[0].version, &mut v, &name)?;
        }
        let now = self.now_str();
        let uid = self.rng.uuid();
        let md = objects::obj_mut(&mut v, "metadata");
        md.insert("uid".into(), json!(uid));
        md.insert("creationTimestamp".into(), json!(now));
        md.remove("deletionTimestamp");
        md.remove("deletionGracePeriodSeconds");
        md.remove("resourceVersion");
        md.remove("managedFields");
        md.remove("selfLink");
        if (v.get("spec").is_some() && res != ids::PODS) || d.custom.is_some() {
            objects::set(&mut v, "metadata.generation", json!(1));
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("apiVersion".into(), json!(d.storage_api_version()));
            o.insert("kind".into(), json!(d.kind));
        }
        self.defaults_on_create(res, &mut v);
        if dry_run {
            return Ok(Arc::new(Stored::new(res, &v, self.store.rv())));
        }
        let stored = self.store.write(res, v);
        self.changed(res, None, Some(&stored));
        if res == ids::NAMESPACES
            && let Some(sa) = super::resources::by_kind("", "ServiceAccount")
        {
            // The service-account controller gives every new namespace its `default` account.
            let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": stored.meta.name}});
            let _ = self.create(sa, account, &stored.meta.name.clone(), false);
        }
        if res == ids::PODS && !stored.meta.pod.as_ref().is_none_or(|p| p.node.is_empty()) {
            // Bound at creation (static pods, DaemonSet pods written by a test): the kubelet starts it.
            let delay = self.delays.pod_ready;
            self.after(
                delay,
                Task::PodStart {
                    key: stored.key(),
                    uid: stored.meta.uid.clone(),
                },
            );
        }
        Ok(stored)
    }

    fn defaults_on_create(&mut self, res: ResId, v: &mut Value) {
        match res {
            ids::PODS => {
                let spec = objects::obj_mut(v, "spec");
                spec.entry("restartPolicy").or_insert(json!("Always"));
                spec.entry("terminationGracePeriodSeconds")
                    .or_insert(json!(30));
                spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
                spec.entry("schedulerName")
                    .or_insert(json!("default-scheduler"));
                let pc = spec
                    .get("priorityClassName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let prio = self.priority_of(&pc);
                objects::set(v, "spec.priority", json!(prio));
                // Upstream resets status on create; the kubelet fills it in.
                let mut st = json!({"phase": "Pending", "qosClass": "BestEffort"});
                if !s(v, "spec.nodeName").is_empty() {
                    let now = self.now_str();
                    st["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]);
                }
                v["status"] = st;
            }
            ids::NAMESPACES => {
                let name = s(v, "metadata.name").to_string();
                objects::obj_mut(v, "metadata.labels")
                    .insert("kubernetes.io/metadata.name".into(), json!(name));
                objects::obj_mut(v, "spec").insert("finalizers".into(), json!(["kubernetes"]));
                v["status"] = json!({"phase": "Active"});
            }
            ids::PDBS => {
                v["status"] = json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "observedGeneration": 0});
            }
            ids::DEPLOYMENTS | ids::REPLICASETS | ids::STATEFULSETS => {
                let spec = objects::obj_mut(v, "spec");
                spec.entry("replicas").or_insert(json!(1));
                if res == ids::STATEFULSETS {
                    spec.entry("podManagementPolicy")
                        .or_insert(json!("OrderedReady"));
                }
                if res == ids::DEPLOYMENTS {
                    spec.entry("strategy")
                        .or_insert(json!({"type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
                }
                v.as_object_mut()
                    .map(|o| o.entry("status").or_insert(json!({})));
            }
            ids::PVCS if v.pointer("/status/phase").is_none() => {
                objects::set(v, "status.phase", json!("Pending"));
            }
            _ => {}
        }
    }

    pub(crate) fn priority_of(&self, class: &str) -> i64 {
        match class {
            "" => 0,
            "system-node-critical" => 2_000_001_000,
            "system-cluster-critical" => 2_000_000_000,
            other => self
                .store
                .get(ids::PRIORITYCLASSES, "", other)
                .and_then(|p| p.value().get("value").and_then(Value::as_i64))
                .unwrap_or(0),
        }
    }

    /// Replaces an object (PUT, or the result of a PATCH).
    pub(crate) fn update(
        &mut self,
        res: ResId,
        ns: &str,
        name: &str,
        mut v: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Arc<Stored>, ApiError> {
        let d = def(res);
        let ns = if d.namespaced { ns } else { "" };
        let Some(old) = self.get(res, ns, name) else {
            return Err(ApiError::not_found(d, name));
        };
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let body_name = s(&v, "metadata.name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = s(&v, "metadata.resourceVersion").to_string();
        if !body_rv.is_empty() && body_rv != old.meta.rv.to_string() {
            return Err(ApiError::stale(d, name));
        }
        let oldv = old.value();
        let mut new = match part {
            Part::Main => {
                if d.status {
                    match oldv.get("status") {
                        Some(st) => v["status"] = st.clone(),
                        None => {
                            v.as_object_mut().map(|o| o.remove("status"));
                        }
                    }
                }
                v
            }
            Part::Status => {
                let mut n = oldv.clone();
                n["status"] = v.get("status").cloned().unwrap_or(json!({}));
                n
            }
        };
        // Fields the server owns.
        {
            let md = objects::obj_mut(&mut new, "metadata");
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match oldv["metadata"].get(k) {
                    Some(x) => md.insert(k.into(), x.clone()),
                    None => md.remove(k),
                };
            }
            md.insert("name".into(), json!(name));
            if d.namespaced {
                md.insert("namespace".into(), json!(ns));
            } else {
                md.remove("namespace");
            }
            md.remove("managedFields");
        }
        if let Some(o) = new.as_object_mut() {
            o.insert("apiVersion".into(), json!(d.storage_api_version()));
            o.insert("kind".into(), json!(d.kind));
        }
        if part == Part::Main && res != ids::PODS && spec_changed(d, &oldv, &new) {
            let g = objects::int(&oldv, "metadata.generation").unwrap_or(0) + 1;
            objects::set(&mut new, "metadata.generation", json!(g));
        }
        if d.custom.is_some() {
            super::custom::admit(d, d.versions[0].version, &mut new, name)?;
        }
        if part == Part::Main {
            validate(res, &new, name)?;
            if res == ids::PODS {
                pod_update_allowed(&oldv, &new).map_err(|m| {
                    ApiError::invalid(d, name, &[("spec", "FieldValueForbidden", m)])
                })?;
            }
        }
        if dry_run {
            return Ok(Arc::new(Stored::new(res, &new, old.meta.rv)));
        }
        let stored = self.put(res, new);
        // Removing the last finalizer of an object marked for deletion completes the deletion.
        if stored.meta.deleting && finalizers(&stored.value()).is_empty() {
            let done = res != ids::PODS || self.finished.contains(&stored.meta.uid);
            if done && res != ids::NAMESPACES {
                self.purge(res, ns, name);
            }
        }
        Ok(stored)
    }

    /// Deletes an object the way its registry does.
    pub(crate) fn delete(
        &mut self,
        res: ResId,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        via: DeletedVia,
    ) -> Result<Deleted, ApiError> {
        let d = def(res);
        let ns = if d.namespaced { ns } else { "" };
        let Some(old) = self.get(res, ns, name) else {
            return Err(ApiError::not_found(d, name));
        };
        if let Some(uid) = &opts.uid
            && *uid != old.meta.uid
        {
            return Err(ApiError::conflict(
                d,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old.meta.uid
                ),
            ));
        }
        if let Some(rv) = &opts.rv
            && *rv != old.meta.rv.to_string()
        {
            return Err(ApiError::conflict(
                d,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    old.meta.rv
                ),
            ));
        }
        if opts.dry_run {
            return Ok(Deleted::Pending(old));
        }
        let mut v = old.value();
        let now = self.now();
        match res {
            ids::PODS => Ok(self.delete_pod(old, v, opts.grace, via)),
            ids::NAMESPACES => {
                if !old.meta.deleting {
                    objects::set(&mut v, "metadata.deletionTimestamp", json!(rfc3339(now)));
                    objects::set(&mut v, "status.phase", json!("Terminating"));
                    self.put(res, v);
                }
                self.dirty.namespaces.insert(name.to_string());
                self.wake.notify_one();
                Ok(Deleted::Pending(self.get(res, ns, name).unwrap_or(old)))
            }
            _ => {
                if opts.orphan {
                    self.orphan_dependents(&old.meta.uid);
                }
                if !finalizers(&v).is_empty() {
                    if !old.meta.deleting {
                        objects::set(&mut v, "metadata.deletionTimestamp", json!(rfc3339(now)));
                        objects::set(&mut v, "metadata.deletionGracePeriodSeconds", json!(0));
                        return Ok(Deleted::Pending(self.put(res, v)));
                    }
                    return Ok(Deleted::Pending(old));
                }
                let gone = self.purge(res, ns, name).unwrap_or(old);
                Ok(Deleted::Gone(gone))
            }
        }
    }

    fn delete_pod(
        &mut self,
        old: Arc<Stored>,
        mut v: Value,
        grace: Option<i64>,
        via: DeletedVia,
    ) -> Deleted {
        let (ns, name) = old.key();
        let facts = old.meta.pod.clone().unwrap_or(super::store::PodFacts {
            node: String::new(),
            phase: String::new(),
            ready: false,
        });
        let spec_grace = objects::int(&v, "spec.terminationGracePeriodSeconds").unwrap_or(30);
        // Upstream: unscheduled and finished pods go at once; otherwise the requested grace
        // period (or the pod's own) applies, and a second delete may only shorten it.
        let mut grace = grace.unwrap_or(spec_grace).max(0);
        if facts.node.is_empty() || objects::pod_terminal(&facts.phase) {
            grace = 0;
        }
        let now = self.now();
        let already = old.meta.deleting;
        if !self
            .deletions
            .iter()
            .any(|d| d.uid == old.meta.uid && d.via == via)
        {
            self.deletions.push(PodDeletion {
                namespace: ns.clone(),
                name: name.clone(),
                uid: old.meta.uid.clone(),
                node: facts.node.clone(),
                via,
                at: now,
                grace_period_seconds: grace,
            });
        }
        if !already && !facts.node.is_empty() && !objects::pod_terminal(&facts.phase) {
            self.record_killing(&v);
        }
        if grace == 0 && finalizers(&v).is_empty() {
            let gone = self.purge(ids::PODS, &ns, &name).unwrap_or(old);
            return Deleted::Gone(gone);
        }
        if already {
            let current =
                objects::int(&v, "metadata.deletionGracePeriodSeconds").unwrap_or(i64::MAX);
            if grace >= current {
                return Deleted::Pending(old);
            }
        }
        objects::set(
            &mut v,
            "metadata.deletionTimestamp",
            json!(rfc3339(plus(now, Duration::from_secs(grace as u64)))),
        );
        objects::set(&mut v, "metadata.deletionGracePeriodSeconds", json!(grace));
        let stored = self.put(ids::PODS, v);
        let stop_after = Duration::from_secs(grace as u64).min(self.delays.pod_shutdown);
        let uid = stored.meta.uid.clone();
        self.after(
            stop_after,
            Task::PodGone {
                key: (ns, name),
                uid,
            },
        );
        Deleted::Pending(stored)
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        for res in self.store.resources() {
            let hits: Vec<Value> = self
                .store
                .table(res)
                .values()
                .filter(|s| {
                    s.meta
                        .controller
                        .as_ref()
                        .is_some_and(|c| c.uid == owner_uid)
                        || has_owner(s, owner_uid)
                })
                .map(|s| s.value())
                .collect();
            for mut v in hits {
                if let Some(refs) = v
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                self.put(res, v);
            }
        }
    }

    /// Deletes objects whose owners are all gone (background cascading deletion).
    pub(crate) fn collect_garbage(&mut self) {
        while let Some(uid) = self.dirty.gc_uids.pop() {
            for res in self.store.resources() {
                let candidates: Vec<ObjKey> = if res == ids::PODS {
                    self.store.pods_owned_by(&uid)
                } else {
                    self.store
                        .table(res)
                        .values()
                        .filter(|s| has_owner(s, &uid))
                        .map(|s| s.key())
                        .collect()
                };
                for (ns, name) in candidates {
                    let Some(obj) = self.get(res, &ns, &name) else {
                        continue;
                    };
                    let v = obj.value();
                    let owners_alive = v
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .map(|refs| refs.iter().any(|r| self.uid_exists(r)))
                        .unwrap_or(false);
                    if !owners_alive && !obj.meta.deleting {
                        let _ = self.delete(
                            res,
                            &ns,
                            &name,
                            &DeleteOpts::default(),
                            DeletedVia::GarbageCollector,
                        );
                    }
                }
            }
        }
    }

    fn uid_exists(&self, owner_ref: &Value) -> bool {
        let kind = s(owner_ref, "kind");
        let api = s(owner_ref, "apiVersion");
        let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let uid = s(owner_ref, "uid");
        let Some(res) = super::resources::by_kind(group, kind) else {
            return true;
        };
        self.store.table(res).values().any(|o| o.meta.uid == uid)
    }
}

/// Whether a write changes what `metadata.generation` counts: the spec of built-in kinds,
/// everything but metadata and status of custom ones.
fn spec_changed(d: &super::resources::ResourceDef, old: &Value, new: &Value) -> bool {
    if d.custom.is_none() {
        return new.get("spec") != old.get("spec");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            for k in ["metadata", "status", "apiVersion", "kind"] {
                o.remove(k);
            }
        }
        v
    };
    strip(old) != strip(new)
}

fn has_owner(s: &Stored, uid: &str) -> bool {
    // Fast path: most dependents name their owner as controller.
    if s.meta.controller.as_ref().is_some_and(|c| c.uid == uid) {
        return true;
    }
    // Only parse when the raw bytes mention the uid.
    memchr_contains(&s.json, uid.as_bytes())
        && s.value()
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
            })
}

fn memchr_contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// `metadata.finalizers` as strings.
pub(crate) fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A node counts as Ready when its Ready condition is True.
pub(crate) fn node_ready(v: &Value) -> bool {
    objects::condition_true(v, "Ready")
}

fn validate_name(res: ResId, name: &str) -> Result<(), String> {
    let dns1123_label = res == ids::NAMESPACES;
    let max = if dns1123_label { 63 } else { 253 };
    let ok_chars = name.chars().all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!dns1123_label && c == '.')
    });
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.len() <= max && ok_chars && ok_ends {
        Ok(())
    } else if dns1123_label {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// The few validation rules clients meet in practice.
fn validate(res: ResId, v: &Value, name: &str) -> Result<(), ApiError> {
    let d = def(res);
    if Some(res) == super::custom::crd_resource()
        && let Err(causes) = super::custom::check(v)
    {
        let errs: Vec<(&str, &str, String)> = causes
            .iter()
            .map(|(f, r, m)| (f.as_str(), *r, m.clone()))
            .collect();
        return Err(ApiError::invalid(d, name, &errs));
    }
    match res {
        ids::PODS => {
            let n = v
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if n == 0 {
                return Err(ApiError::invalid(
                    d,
                    name,
                    &[(
                        "spec.containers",
                        "FieldValueRequired",
                        "Required value".into(),
                    )],
                ));
            }
        }
        ids::PDBS => {
            let spec = v.get("spec");
            let has = |k: &str| spec.and_then(|s| s.get(k)).is_some_and(|x| !x.is_null());
            if has("minAvailable") && has("maxUnavailable") {
                return Err(ApiError::invalid(
                    d,
                    name,
                    &[("spec", "FieldValueInvalid", "Invalid value: policy.PodDisruptionBudgetSpec{…}: minAvailable and maxUnavailable cannot be both set".into())],
                ));
            }
            for k in ["minAvailable", "maxUnavailable"] {
                if let Some(x) = spec.and_then(|s| s.get(k)).filter(|x| !x.is_null())
                    && objects::scaled_value(x, 100, true).is_err()
                {
                    return Err(ApiError::invalid(
                        d,
                        name,
                        &[(
                            &format!("spec.{k}"),
                            "FieldValueInvalid",
                            format!(
                                "Invalid value: {x}: must be an integer or percentage (e.g '5%')"
                            ),
                        )],
                    ));
                }
            }
            if let Some(p) = spec
                .and_then(|s| s.get("unhealthyPodEvictionPolicy"))
                .and_then(Value::as_str)
                && p != "IfHealthyBudget"
                && p != "AlwaysAllow"
            {
                return Err(ApiError::invalid(
                    d,
                    name,
                    &[(
                        "spec.unhealthyPodEvictionPolicy",
                        "FieldValueNotSupported",
                        format!(
                            "Unsupported value: {p:?}: supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
                        ),
                    )],
                ));
            }
        }
        ids::DEPLOYMENTS | ids::REPLICASETS | ids::STATEFULSETS | ids::DAEMONSETS => {
            let Some(sel) = v.pointer("/spec/selector") else {
                return Err(ApiError::invalid(
                    d,
                    name,
                    &[(
                        "spec.selector",
                        "FieldValueRequired",
                        "Required value".into(),
                    )],
                ));
            };
            let parsed = super::selector::LabelSelector::from_object(sel).map_err(|e| {
                ApiError::invalid(d, name, &[("spec.selector", "FieldValueInvalid", e)])
            })?;
            if parsed.is_empty() {
                return Err(ApiError::invalid(
                    d,
                    name,
                    &[(
                        "spec.selector",
                        "FieldValueInvalid",
                        "Invalid value: empty selector is invalid for deployment".into(),
                    )],
                ));
            }
            if !parsed.matches_json(v.pointer("/spec/template/metadata/labels")) {
                return Err(ApiError::invalid(
                    d,
                    name,
                    &[(
                        "spec.template.metadata.labels",
                        "FieldValueInvalid",
                        "Invalid value: `selector` does not match template `labels`".into(),
                    )],
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Pods are mostly immutable once created.
fn pod_update_allowed(old: &Value, new: &Value) -> Result<(), String> {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
        if let Some(o) = spec.as_object_mut() {
            // Mutable (or server-set) fields.
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                o.remove(k);
            }
            if let Some(cs) = o.get_mut("containers").and_then(Value::as_array_mut) {
                for c in cs {
                    c.as_object_mut().map(|c| c.remove("image"));
                }
            }
            // Binding may set nodeName once.
            if old.pointer("/spec/nodeName").is_none_or(Value::is_null) {
                o.remove("nodeName");
            }
        }
        spec
    };
    if strip(old) == strip(new) {
        Ok(())
    } else {
        Err("Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into())
    }
}

/// A loaded cluster without server or controller loop, for unit tests that step the
/// controllers by hand with [`Cluster::reconcile`].
#[cfg(test)]
pub(crate) fn test_cluster(s: &super::scenario::Scenario) -> Cluster {
    let delays = Delays {
        pod_start: Duration::from_secs(1),
        pod_ready: Duration::from_secs(2),
        pod_shutdown: Duration::from_secs(1),
        kubelet_restart: Duration::from_secs(10),
        node_ready: Duration::from_secs(15),
    };
    let version = KubeVersion::parse(&s.version).unwrap_or_else(|e| panic!("{e}"));
    let mut c = Cluster::new(
        version,
        SimClock::new(1.0),
        delays,
        1,
        10_000,
        s.pool_label.clone(),
    );
    super::scenario::load::materialize(s, &mut c).unwrap_or_else(|e| panic!("{e}"));
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn cluster() -> Cluster {
        let mut c = Cluster::new(
            KubeVersion::parse("v1.31.0").unwrap(),
            SimClock::new(1.0),
            Delays {
                pod_start: Duration::from_secs(1),
                pod_ready: Duration::from_secs(1),
                pod_shutdown: Duration::from_secs(1),
                kubelet_restart: Duration::from_secs(1),
                node_ready: Duration::from_secs(1),
            },
            7,
            100,
            "pool".into(),
        );
        c.create(
            ids::NAMESPACES,
            json!({"metadata": {"name": "ns"}}),
            "",
            false,
        )
        .unwrap();
        c
    }

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    }

    #[test]
    fn create_defaults_and_conflicts() {
        let mut c = cluster();
        let p = c.create(ids::PODS, pod("a"), "ns", false).unwrap().value();
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(p["apiVersion"], "v1");
        assert_eq!(
            c.create(ids::PODS, pod("a"), "ns", false).unwrap_err().code,
            409
        );
        assert_eq!(
            c.create(ids::PODS, pod("b"), "missing", false)
                .unwrap_err()
                .code,
            404
        );
        assert_eq!(
            c.create(ids::PODS, pod("Bad_Name"), "ns", false)
                .unwrap_err()
                .code,
            422
        );
        let stale = json!({"metadata": {"name": "a", "resourceVersion": "1"}, "spec": p["spec"]});
        assert_eq!(
            c.update(ids::PODS, "ns", "a", stale, Part::Main, false)
                .unwrap_err()
                .code,
            409
        );
    }

    #[test]
    fn unscheduled_pods_go_at_once_and_are_recorded() {
        let mut c = cluster();
        c.create(ids::PODS, pod("a"), "ns", false).unwrap();
        let r = c
            .delete(
                ids::PODS,
                "ns",
                "a",
                &DeleteOpts::default(),
                DeletedVia::Delete,
            )
            .unwrap();
        assert!(matches!(r, Deleted::Gone(_)));
        assert_eq!(c.deletions.len(), 1);
        assert_eq!(c.deletions[0].via, DeletedVia::Delete);
    }

    #[test]
    fn terminating_namespace_refuses_new_content() {
        let mut c = cluster();
        c.delete(
            ids::NAMESPACES,
            "",
            "ns",
            &DeleteOpts::default(),
            DeletedVia::Delete,
        )
        .unwrap();
        let e = c.create(ids::PODS, pod("x"), "ns", false).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.body()["details"]["causes"][0]["reason"],
            "NamespaceTerminating"
        );
    }
}
