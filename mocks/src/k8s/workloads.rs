//! Workload controllers: Deployment → ReplicaSet → Pods, StatefulSet (stable names, ordered
//! start, claim templates) and DaemonSet (one pod per eligible node), each writing the status
//! fields upstream's controllers write.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::clock::plus;
use super::cluster::Task;
use super::cluster::{Cluster, DeleteOpts, DeletedVia, WorkKey};
use super::objects::{self, s};
use super::resources::ids;
use super::rollout;
use super::scheduling::{NodeFacts, daemon_should_run};
use super::store::Stored;

/// Upstream's `rand.SafeEncodeString(fmt.Sprint(fnv32a(template)))`.
pub(crate) fn template_hash(template: &Value) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// An ownerReference to `owner` as its controller.
pub(crate) fn controller_ref(api_version: &str, kind: &str, owner: &Stored) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": owner.meta.name, "uid": owner.meta.uid,
           "controller": true, "blockOwnerDeletion": true})
}

/// The DaemonSet tolerations upstream adds to every daemon pod.
fn daemon_tolerations(spec: &mut Map<String, Value>) {
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Value::Array(list) = list else { return };
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        if !list
            .iter()
            .any(|t| s(t, "key") == key && s(t, "effect") == effect)
        {
            list.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
}

fn active(p: &Stored) -> bool {
    !p.meta.deleting
        && !p
            .meta
            .pod
            .as_ref()
            .is_some_and(|f| objects::pod_terminal(&f.phase))
}

fn ready(p: &Stored) -> bool {
    active(p) && p.meta.pod.as_ref().is_some_and(|f| f.ready)
}

impl Cluster {
    /// `true` once the create delay for `key` has passed (arming it on first call).
    fn create_due(&mut self, key: &WorkKey) -> bool {
        let now = self.now();
        match self.resync_due.get(key) {
            Some(t) if *t <= now => {
                self.resync_due.remove(key);
                true
            }
            Some(_) => false,
            None if self.delays.pod_start.is_zero() => true,
            None => {
                let due = plus(now, self.delays.pod_start);
                self.resync_due.insert(key.clone(), due);
                self.at(due, Task::Resync(key.clone()));
                false
            }
        }
    }

    /// Creates a pod from a workload's template.
    pub(crate) fn pod_from_template(
        &mut self,
        template: &Value,
        ns: &str,
        name: &str,
        owner_ref: Value,
        extra_labels: &[(&str, String)],
        patch_spec: impl FnOnce(&mut Map<String, Value>),
    ) -> Option<Arc<Stored>> {
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        if let Some(l) = labels.as_object_mut() {
            for (k, v) in extra_labels {
                l.insert((*k).to_string(), json!(v));
            }
        }
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        if let Some(o) = spec.as_object_mut() {
            patch_spec(o);
        }
        let mut md = json!({"name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner_ref]});
        if let Some(a) = template.pointer("/metadata/annotations") {
            md["annotations"] = a.clone();
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec});
        self.create(ids::PODS, pod, ns, false).ok()
    }

    pub(crate) fn sync_replicaset(&mut self, ns: &str, name: &str) {
        let Some(rs) = self.get(ids::REPLICASETS, ns, name) else {
            return;
        };
        if rs.meta.deleting {
            return;
        }
        let v = rs.value();
        let want = objects::int(&v, "spec.replicas").unwrap_or(1).max(0) as usize;
        let pods: Vec<Arc<Stored>> = self
            .store
            .pods_owned_by(&rs.meta.uid)
            .into_iter()
            .filter_map(|(pns, pname)| self.get(ids::PODS, &pns, &pname))
            .collect();
        let live: Vec<&Arc<Stored>> = pods.iter().filter(|p| active(p)).collect();
        let key = (ids::REPLICASETS, ns.to_string(), name.to_string());
        if live.len() < want {
            if self.create_due(&key) {
                let template = v.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let owner = controller_ref("apps/v1", "ReplicaSet", &rs);
                for _ in live.len()..want {
                    let pname = format!("{name}-{}", self.rng.suffix(5));
                    self.pod_from_template(&template, ns, &pname, owner.clone(), &[], |_| {});
                }
            }
        } else if live.len() > want {
            let mut victims: Vec<&Arc<Stored>> = live.clone();
            // Upstream prefers unscheduled, then pending, then unready, then the newest pods.
            victims.sort_by_key(|p| {
                let f = p.meta.pod.clone();
                (
                    f.as_ref().is_some_and(|f| !f.node.is_empty()),
                    f.as_ref().is_some_and(|f| f.phase != "Pending"),
                    f.as_ref().is_some_and(|f| f.ready),
                    std::cmp::Reverse(p.meta.rv),
                )
            });
            let doomed: Vec<(String, String)> = victims
                .iter()
                .take(live.len() - want)
                .map(|p| p.key())
                .collect();
            for (pns, pname) in doomed {
                let _ = self.delete(
                    ids::PODS,
                    &pns,
                    &pname,
                    &DeleteOpts::default(),
                    DeletedVia::Controller,
                );
            }
        }
        let (n, r) = self.count_owned(&rs.meta.uid);
        let mut nv = v;
        let generation = objects::int(&nv, "metadata.generation").unwrap_or(1);
        nv["status"] = json!({"replicas": n, "fullyLabeledReplicas": n, "readyReplicas": r,
            "availableReplicas": r, "observedGeneration": generation});
        self.put(ids::REPLICASETS, nv);
    }

    /// `(active, ready)` pods owned by `uid`.
    fn count_owned(&self, uid: &str) -> (i64, i64) {
        let mut n = 0;
        let mut r = 0;
        for (pns, pname) in self.store.pods_owned_by(uid) {
            if let Some(p) = self.store.get(ids::PODS, &pns, &pname) {
                if active(p) {
                    n += 1;
                }
                if ready(p) {
                    r += 1;
                }
            }
        }
        (n, r)
    }

    pub(crate) fn sync_deployment(&mut self, ns: &str, name: &str) {
        let Some(d) = self.get(ids::DEPLOYMENTS, ns, name) else {
            return;
        };
        if d.meta.deleting {
            return;
        }
        let dv = d.value();
        let want = objects::int(&dv, "spec.replicas").unwrap_or(1).max(0);
        let template = dv.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let owned: Vec<Arc<Stored>> = self
            .store
            .list(ids::REPLICASETS, Some(ns))
            .filter(|rs| {
                rs.meta
                    .controller
                    .as_ref()
                    .is_some_and(|c| c.uid == d.meta.uid)
            })
            .cloned()
            .collect();
        let current = owned
            .iter()
            .find(|rs| {
                rs.meta
                    .labels
                    .iter()
                    .any(|(k, v)| k == "pod-template-hash" && *v == hash)
            })
            .cloned();
        let counts = |rs: &Stored| {
            let v = rs.value();
            rollout::Counts {
                spec: objects::int(&v, "spec.replicas").unwrap_or(0),
                available: objects::int(&v, "status.availableReplicas").unwrap_or(0),
                pods: objects::int(&v, "status.replicas").unwrap_or(0),
            }
        };
        // Old ReplicaSets, oldest first: the rollout scales those down first.
        let mut old: Vec<Arc<Stored>> = owned
            .iter()
            .filter(|rs| current.as_ref().is_none_or(|c| c.meta.uid != rs.meta.uid))
            .cloned()
            .collect();
        old.sort_by_key(|rs| rs.meta.rv);
        let old_counts: Vec<rollout::Counts> = old.iter().map(|rs| counts(rs)).collect();
        let (new_spec, old_specs) = rollout::step(
            want,
            rollout::Strategy::of(&dv, want),
            current.as_deref().map(counts).unwrap_or_default(),
            &old_counts,
        );
        let current = match current {
            Some(c) => {
                let mut cv = c.value();
                if objects::int(&cv, "spec.replicas") != Some(new_spec) {
                    objects::set(&mut cv, "spec.replicas", json!(new_spec));
                    let g = objects::int(&cv, "metadata.generation").unwrap_or(1) + 1;
                    objects::set(&mut cv, "metadata.generation", json!(g));
                    self.put(ids::REPLICASETS, cv);
                }
                c
            }
            None => {
                let revision = owned.len() + 1;
                let mut tmpl = template.clone();
                objects::obj_mut(&mut tmpl, "metadata.labels")
                    .insert("pod-template-hash".into(), json!(hash));
                let mut selector = dv.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                objects::obj_mut(&mut selector, "matchLabels")
                    .insert("pod-template-hash".into(), json!(hash));
                let labels = tmpl
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                        "annotations": {"deployment.kubernetes.io/revision": revision.to_string(),
                                        "deployment.kubernetes.io/desired-replicas": want.to_string()},
                        "ownerReferences": [controller_ref("apps/v1", "Deployment", &d)]},
                    "spec": {"replicas": new_spec, "selector": selector, "template": tmpl}});
                match self.create(ids::REPLICASETS, rs, ns, false) {
                    Ok(c) => c,
                    Err(_) => return,
                }
            }
        };
        let current_ready = objects::int(&current.value(), "status.readyReplicas").unwrap_or(0);
        for (rs, spec) in old.iter().zip(old_specs) {
            let mut ov = rs.value();
            if objects::int(&ov, "spec.replicas").unwrap_or(0) != spec {
                objects::set(&mut ov, "spec.replicas", json!(spec));
                let g = objects::int(&ov, "metadata.generation").unwrap_or(1) + 1;
                objects::set(&mut ov, "metadata.generation", json!(g));
                self.put(ids::REPLICASETS, ov);
            }
        }
        let mut replicas = 0;
        let mut ready_n = 0;
        for rs in self.store.list(ids::REPLICASETS, Some(ns)).filter(|rs| {
            rs.meta
                .controller
                .as_ref()
                .is_some_and(|c| c.uid == d.meta.uid)
        }) {
            let rv = rs.value();
            replicas += objects::int(&rv, "status.replicas").unwrap_or(0);
            ready_n += objects::int(&rv, "status.readyReplicas").unwrap_or(0);
        }
        let updated = objects::int(&current.value(), "status.replicas").unwrap_or(0);
        let max_unavailable = match rollout::Strategy::of(&dv, want) {
            rollout::Strategy::Rolling { unavailable, .. } => unavailable,
            rollout::Strategy::Recreate => 0,
        };
        let available_ok = ready_n >= want - max_unavailable;
        let now = self.now_str();
        let mut nv = dv;
        let generation = objects::int(&nv, "metadata.generation").unwrap_or(1);
        let old_conditions = nv.pointer("/status/conditions").cloned();
        nv["status"] = json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": updated,
            "readyReplicas": ready_n, "availableReplicas": ready_n, "unavailableReplicas": (want - ready_n).max(0)});
        if let Some(c) = old_conditions {
            nv["status"]["conditions"] = c;
        }
        let (st, reason, msg) = if available_ok {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        objects::set_condition(&mut nv, "Available", st, reason, msg, &now);
        let (preason, pmsg) = if current_ready >= want {
            (
                "NewReplicaSetAvailable",
                format!(
                    "ReplicaSet \"{}\" has successfully progressed.",
                    current.meta.name
                ),
            )
        } else {
            (
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{}\" is progressing.", current.meta.name),
            )
        };
        objects::set_condition(&mut nv, "Progressing", "True", preason, &pmsg, &now);
        self.put(ids::DEPLOYMENTS, nv);
    }

    pub(crate) fn sync_statefulset(&mut self, ns: &str, name: &str) {
        let Some(sts) = self.get(ids::STATEFULSETS, ns, name) else {
            return;
        };
        if sts.meta.deleting {
            return;
        }
        let v = sts.value();
        let want = objects::int(&v, "spec.replicas").unwrap_or(1).max(0);
        let ordered = objects::s(&v, "spec.podManagementPolicy") != "Parallel";
        let template = v.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let revision = format!("{name}-{}", template_hash(&template));
        let service = objects::s(&v, "spec.serviceName").to_string();
        let claims: Vec<Value> = v
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let key = (ids::STATEFULSETS, ns.to_string(), name.to_string());
        let mut missing: Vec<i64> = Vec::new();
        let mut blocked = false;
        for i in 0..want {
            let pname = format!("{name}-{i}");
            match self.get(ids::PODS, ns, &pname) {
                Some(p)
                    if p.meta
                        .controller
                        .as_ref()
                        .is_some_and(|c| c.uid == sts.meta.uid) =>
                {
                    if ordered && !ready(&p) {
                        blocked = true;
                    }
                }
                Some(_) => {}
                None => {
                    if !(ordered && blocked) {
                        missing.push(i);
                    }
                    if ordered {
                        blocked = true;
                    }
                }
            }
        }
        if !missing.is_empty() && self.create_due(&key) {
            let owner = controller_ref("apps/v1", "StatefulSet", &sts);
            for i in missing {
                let pname = format!("{name}-{i}");
                for c in &claims {
                    let cname = format!("{}-{pname}", s(c, "metadata.name"));
                    if self.get(ids::PVCS, ns, &cname).is_none() {
                        let mut pvc = c.clone();
                        objects::set(&mut pvc, "metadata.name", json!(cname));
                        objects::set(&mut pvc, "metadata.namespace", json!(ns));
                        objects::set(
                            &mut pvc,
                            "metadata.labels",
                            template
                                .pointer("/metadata/labels")
                                .cloned()
                                .unwrap_or(json!({})),
                        );
                        objects::set(
                            &mut pvc,
                            "status",
                            json!({"phase": "Bound", "accessModes": c.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                            "capacity": {"storage": c.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("1Gi"))}}),
                        );
                        let _ = self.create(ids::PVCS, pvc, ns, false);
                    }
                }
                let claims_for_pod: Vec<(String, String)> = claims
                    .iter()
                    .map(|c| {
                        (
                            s(c, "metadata.name").to_string(),
                            format!("{}-{pname}", s(c, "metadata.name")),
                        )
                    })
                    .collect();
                let svc = service.clone();
                let pn = pname.clone();
                self.pod_from_template(
                    &template,
                    ns,
                    &pname,
                    owner.clone(),
                    &[
                        ("controller-revision-hash", revision.clone()),
                        ("statefulset.kubernetes.io/pod-name", pname.clone()),
                        ("apps.kubernetes.io/pod-index", i.to_string()),
                    ],
                    move |spec| {
                        spec.insert("hostname".into(), json!(pn));
                        if !svc.is_empty() {
                            spec.insert("subdomain".into(), json!(svc));
                        }
                        let vols = spec.entry("volumes").or_insert_with(|| json!([]));
                        if let Some(vols) = vols.as_array_mut() {
                            for (vol, claim) in claims_for_pod {
                                vols.push(json!({"name": vol, "persistentVolumeClaim": {"claimName": claim}}));
                            }
                        }
                    },
                );
            }
        }
        // Scale down: highest ordinals first.
        let mut extra: Vec<(i64, String)> = self
            .store
            .pods_owned_by(&sts.meta.uid)
            .into_iter()
            .filter_map(|(_, pname)| {
                let ord = pname
                    .strip_prefix(&format!("{name}-"))?
                    .parse::<i64>()
                    .ok()?;
                (ord >= want).then_some((ord, pname))
            })
            .collect();
        extra.sort();
        if let Some((_, pname)) = extra.last() {
            let doomed: Vec<String> = if ordered {
                vec![pname.clone()]
            } else {
                extra.iter().map(|(_, n)| n.clone()).collect()
            };
            for pname in doomed {
                if self
                    .get(ids::PODS, ns, &pname)
                    .is_some_and(|p| !p.meta.deleting)
                {
                    let _ = self.delete(
                        ids::PODS,
                        ns,
                        &pname,
                        &DeleteOpts::default(),
                        DeletedVia::Controller,
                    );
                }
            }
        }
        let (n, r) = self.count_owned(&sts.meta.uid);
        let mut nv = v;
        let generation = objects::int(&nv, "metadata.generation").unwrap_or(1);
        nv["status"] = json!({"observedGeneration": generation, "replicas": n, "readyReplicas": r,
            "currentReplicas": n, "updatedReplicas": n, "availableReplicas": r,
            "currentRevision": revision, "updateRevision": revision, "collisionCount": 0});
        self.put(ids::STATEFULSETS, nv);
    }

    pub(crate) fn sync_daemonset(&mut self, ns: &str, name: &str) {
        let Some(ds) = self.get(ids::DAEMONSETS, ns, name) else {
            return;
        };
        if ds.meta.deleting {
            return;
        }
        let v = ds.value();
        let template = v.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let tspec = template.get("spec").cloned().unwrap_or(json!({}));
        let nodes = self.node_facts();
        let eligible: Vec<&NodeFacts> = nodes
            .iter()
            .filter(|n| daemon_should_run(&tspec, n))
            .collect();
        // Which node each live daemon pod is for.
        let mut by_node: std::collections::BTreeMap<String, Vec<Arc<Stored>>> = Default::default();
        for (pns, pname) in self.store.pods_owned_by(&ds.meta.uid) {
            let Some(p) = self.get(ids::PODS, &pns, &pname) else {
                continue;
            };
            if !active(&p) {
                continue;
            }
            let mut node = p
                .meta
                .pod
                .as_ref()
                .map(|f| f.node.clone())
                .unwrap_or_default();
            if node.is_empty() {
                node = daemon_target(&p.value()).unwrap_or_default();
            }
            by_node.entry(node).or_default().push(p);
        }
        let key = (ids::DAEMONSETS, ns.to_string(), name.to_string());
        let missing: Vec<String> = eligible
            .iter()
            .filter(|n| !by_node.contains_key(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let generation = objects::int(&v, "metadata.generation").unwrap_or(1);
        if !missing.is_empty() && self.create_due(&key) {
            let owner = controller_ref("apps/v1", "DaemonSet", &ds);
            let revision = template_hash(&template);
            for node in &missing {
                let pname = format!("{name}-{}", self.rng.suffix(5));
                let target = node.clone();
                self.pod_from_template(
                    &template,
                    ns,
                    &pname,
                    owner.clone(),
                    &[("controller-revision-hash", revision.clone()), ("pod-template-generation", generation.to_string())],
                    move |spec| {
                        spec.insert(
                            "affinity".into(),
                            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [target]}]}]}}}),
                        );
                        daemon_tolerations(spec);
                    },
                );
            }
        }
        // Pods on nodes that should not run them, or duplicates, go.
        let mut doomed: Vec<(String, String)> = Vec::new();
        for (node, pods) in &by_node {
            let wanted = eligible.iter().any(|n| n.name == *node);
            let keep = usize::from(wanted);
            doomed.extend(pods.iter().skip(keep).map(|p| p.key()));
        }
        for (pns, pname) in doomed {
            let _ = self.delete(
                ids::PODS,
                &pns,
                &pname,
                &DeleteOpts::default(),
                DeletedVia::Controller,
            );
        }
        let mut scheduled = 0;
        let mut ready_n = 0;
        let mut misscheduled = 0;
        for (node, pods) in &by_node {
            let wanted = eligible.iter().any(|n| n.name == *node);
            if !pods.is_empty() {
                if wanted {
                    scheduled += 1;
                    if pods.iter().any(|p| ready(p)) {
                        ready_n += 1;
                    }
                } else {
                    misscheduled += 1;
                }
            }
        }
        let desired = eligible.len() as i64;
        let mut nv = v;
        nv["status"] = json!({"currentNumberScheduled": scheduled, "desiredNumberScheduled": desired,
            "numberMisscheduled": misscheduled, "numberReady": ready_n, "numberAvailable": ready_n,
            "numberUnavailable": (desired - ready_n).max(0), "updatedNumberScheduled": scheduled,
            "observedGeneration": generation});
        self.put(ids::DAEMONSETS, nv);
    }
}

/// The node a daemon pod is pinned to through its required node affinity.
fn daemon_target(pod: &Value) -> Option<String> {
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?
        .iter()
        .filter_map(|t| t.get("matchFields")?.as_array())
        .flatten()
        .find(|f| s(f, "key") == "metadata.name")
        .and_then(|f| f.pointer("/values/0"))
        .and_then(Value::as_str)
        .map(str::to_string)
}
