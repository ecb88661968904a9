//! Turns a [`Scenario`] into stored objects: nodes, namespaces, workloads with their pods
//! placed and Ready, PDBs, claims and raw manifests; then lets the controllers compute status.

use jiff::SignedDuration;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::{Node, Pdb, PdbSelector, Pod, Scenario, Workload, WorkloadKind};
use crate::k8s::auth::bootstrap;
use crate::k8s::clock::rfc3339;
use crate::k8s::cluster::{Cluster, NodeSim};
use crate::k8s::convert;
use crate::k8s::objects;
use crate::k8s::resources::{self, ids};
use crate::k8s::scheduling::{NodeFacts, daemon_should_run, feasible};
use crate::k8s::version::KubeVersion;
use crate::k8s::workloads::template_hash;
use crate::{Error, Result};

const DEFAULT_IMAGE: &str = "registry.k8s.io/pause:3.10";

fn map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

struct Loader<'a> {
    c: &'a mut Cluster,
    version: String,
    pool_label: String,
    born: String,
    now: String,
    node_uids: BTreeMap<String, String>,
    node_ips: BTreeMap<String, String>,
    spread: usize,
}

/// Loads `sc` into an empty cluster.
pub(crate) fn materialize(sc: &Scenario, c: &mut Cluster) -> Result<()> {
    sc.validate()?;
    let version = KubeVersion::parse(&sc.version)?;
    c.version = version.clone();
    let now_ts = c.now();
    let born = rfc3339(
        now_ts
            .checked_sub(SignedDuration::from_hours(72))
            .unwrap_or(now_ts),
    );
    let mut l = Loader {
        version: version.git_version(),
        pool_label: sc.pool_label.clone(),
        born,
        now: rfc3339(now_ts),
        node_uids: BTreeMap::new(),
        node_ips: BTreeMap::new(),
        spread: 0,
        c,
    };
    l.namespaces(sc);
    l.priority_classes();
    let mut all_nodes: Vec<Node> = sc.pools.iter().flat_map(|p| p.nodes()).collect();
    all_nodes.extend(sc.nodes.iter().cloned());
    for (i, n) in all_nodes.iter().enumerate() {
        l.node(n, i)?;
    }
    let facts: Vec<NodeFacts> =
        l.c.store
            .table(ids::NODES)
            .values()
            .map(|n| NodeFacts::from_value(&n.value()))
            .collect();
    for w in &sc.workloads {
        l.workload(w, &facts);
    }
    for p in &sc.pods {
        l.pod(p);
    }
    for p in &sc.pvcs {
        let (phase, volume) = if p.bound {
            ("Bound", Some(format!("pvc-{}", l.c.rng.uuid())))
        } else {
            ("Pending", None)
        };
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": p.storage}},
            "storageClassName": "standard", "volumeMode": "Filesystem"});
        let mut status = json!({"phase": phase});
        if let Some(v) = volume {
            spec["volumeName"] = json!(v);
            status["accessModes"] = json!(["ReadWriteOnce"]);
            status["capacity"] = json!({"storage": p.storage});
        }
        let obj = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": l.meta(&p.namespace, &p.name, None), "spec": spec, "status": status});
        l.c.store.load(ids::PVCS, obj);
    }
    for p in &sc.pdbs {
        l.pdb(p);
    }
    l.rbac_defaults();
    l.cluster_defaults();
    for (i, o) in sc.objects.iter().enumerate() {
        l.object(o)
            .map_err(|m| Error::scenario(format!("objects[{i}]"), m))?;
    }
    // Controllers fill in workload and PDB status; history starts after loading.
    let c = l.c;
    c.dirty.daemonsets = true;
    c.dirty.scheduling = true;
    let nodes: Vec<String> = c
        .store
        .table(ids::NODES)
        .keys()
        .map(|(_, n)| n.clone())
        .collect();
    c.dirty.node_taints.extend(nodes);
    for res in [ids::DEPLOYMENTS, ids::REPLICASETS, ids::STATEFULSETS] {
        let keys: Vec<_> = c.store.table(res).keys().cloned().collect();
        for (ns, name) in keys {
            c.dirty.workloads.insert((res, ns, name));
        }
    }
    let namespaces: Vec<String> = c
        .store
        .table(ids::NAMESPACES)
        .keys()
        .map(|(_, n)| n.clone())
        .collect();
    c.dirty.pdb_namespaces.extend(namespaces);
    c.reconcile();
    c.store.compact();
    c.deletions.clear();
    Ok(())
}

impl Loader<'_> {
    fn meta(&mut self, ns: &str, name: &str, labels: Option<Value>) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        if !ns.is_empty() {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert("uid".into(), json!(self.c.rng.uuid()));
        m.insert("creationTimestamp".into(), json!(self.born));
        if let Some(l) = labels {
            m.insert("labels".into(), l);
        }
        Value::Object(m)
    }

    fn namespaces(&mut self, sc: &Scenario) {
        let mut names: BTreeSet<String> =
            ["default", "kube-system", "kube-public", "kube-node-lease"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        names.extend(sc.namespaces.iter().cloned());
        names.extend(sc.workloads.iter().map(|w| w.namespace.clone()));
        names.extend(sc.pdbs.iter().map(|p| p.namespace.clone()));
        names.extend(sc.pods.iter().map(|p| p.namespace.clone()));
        names.extend(sc.pvcs.iter().map(|p| p.namespace.clone()));
        for o in &sc.objects {
            if let Some(ns) = o.pointer("/metadata/namespace").and_then(Value::as_str) {
                names.insert(ns.to_string());
            }
        }
        for n in names {
            let md = self.meta("", &n, Some(json!({"kubernetes.io/metadata.name": n})));
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": md,
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            self.c.store.load(ids::NAMESPACES, obj);
        }
    }

    /// What every cluster has from its first minutes: the `kubernetes` Service in `default`
    /// (the API server's ClusterIP) and a `default` ServiceAccount in every namespace.
    fn cluster_defaults(&mut self) {
        if let Some(svc) = resources::by_kind("", "Service") {
            let md = self.meta(
                "default",
                "kubernetes",
                Some(json!({"component": "apiserver", "provider": "kubernetes"})),
            );
            self.c.store.load(
                svc,
                json!({"apiVersion": "v1", "kind": "Service", "metadata": md,
                    "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                        "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                        "ipFamilyPolicy": "SingleStack",
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                   "targetPort": 6443}],
                        "sessionAffinity": "None", "type": "ClusterIP"},
                    "status": {"loadBalancer": {}}}),
            );
        }
        // kind's default class: PVCs of scenarios name `standard`.
        if let Some(sc) = resources::by_kind("storage.k8s.io", "StorageClass")
            && self.c.store.get(sc, "", "standard").is_none()
        {
            let mut md = self.meta("", "standard", None);
            md["annotations"] = json!({"storageclass.kubernetes.io/is-default-class": "true"});
            self.c.store.load(
                sc,
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": md, "provisioner": "rancher.io/local-path",
                    "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
            );
        }
        // The aggregator lists every built-in group version as a local APIService.
        if let Some(api) = resources::by_kind("apiregistration.k8s.io", "APIService") {
            let mut versions = vec![("", vec!["v1"])];
            versions.extend(resources::served_groups(self.c.version.minor));
            for (group, vs) in versions {
                for (i, version) in vs.iter().enumerate() {
                    let name = format!("{version}.{group}");
                    let md = self.meta(
                        "",
                        &name,
                        Some(json!({"kube-aggregator.kubernetes.io/automanaged": "onstart"})),
                    );
                    let born = self.born.clone();
                    self.c.store.load(
                        api,
                        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                            "metadata": md,
                            "spec": {"group": group, "version": version,
                                "groupPriorityMinimum": 18000, "versionPriority": 15 - i64::try_from(i).unwrap_or(14).min(14)},
                            "status": {"conditions": [{"type": "Available", "status": "True",
                                "reason": "Local", "message": "Local APIServices are always available",
                                "lastTransitionTime": born}]}}),
                    );
                }
            }
        }
        // Every kubelet registers its node's CSI drivers (none here).
        if let Some(csinode) = resources::by_kind("storage.k8s.io", "CSINode") {
            let nodes: Vec<(String, String)> = self
                .c
                .store
                .table(ids::NODES)
                .values()
                .map(|n| (n.meta.name.clone(), n.meta.uid.clone()))
                .collect();
            for (node, uid) in nodes {
                let mut md = self.meta("", &node, None);
                md["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
                    "name": node, "uid": uid}]);
                self.c.store.load(
                    csinode,
                    json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                        "metadata": md, "spec": {"drivers": []}}),
                );
            }
        }
        if let Some(sa) = resources::by_kind("", "ServiceAccount") {
            let namespaces: Vec<String> = self
                .c
                .store
                .table(ids::NAMESPACES)
                .keys()
                .map(|(_, n)| n.clone())
                .collect();
            for ns in namespaces {
                if self.c.store.get(sa, &ns, "default").is_none() {
                    let md = self.meta(&ns, "default", None);
                    self.c.store.load(
                        sa,
                        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": md}),
                    );
                }
            }
        }
    }

    fn rbac_defaults(&mut self) {
        for (role, groups) in bootstrap::cluster_roles() {
            let name = objects::s(&role, "metadata.name").to_string();
            let binding = bootstrap::binding(&name, &groups);
            for (res, mut v) in [
                (ids::CLUSTERROLES, role),
                (ids::CLUSTERROLEBINDINGS, binding),
            ] {
                // uid and creationTimestamp as every loaded object has them.
                let md = self.meta("", &name, None);
                if let (Some(m), Some(fresh)) = (v["metadata"].as_object_mut(), md.as_object()) {
                    m.extend(fresh.clone());
                }
                self.c.store.load(res, v);
            }
        }
    }

    fn priority_classes(&mut self) {
        for (name, value, desc) in [
            (
                "system-cluster-critical",
                2_000_000_000,
                "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
            ),
            (
                "system-node-critical",
                2_000_001_000,
                "Used for system critical pods that must not be moved from their current node.",
            ),
        ] {
            let md = self.meta("", name, None);
            let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": md,
                "value": value, "globalDefault": false, "description": desc, "preemptionPolicy": "PreemptLowerPriority"});
            self.c.store.load(ids::PRIORITYCLASSES, obj);
        }
    }

    fn node(&mut self, n: &Node, idx: usize) -> Result<()> {
        let kubelet = match &n.kubelet_version {
            Some(v) => KubeVersion::parse(v)?.git_version(),
            None => self.version.clone(),
        };
        let v = node_object(
            n,
            &self.pool_label,
            &kubelet,
            idx,
            &self.born,
            &self.now,
            &mut self.c.rng,
        );
        let uid = objects::s(&v, "metadata.uid").to_string();
        let ip = format!("10.0.{}.{}", idx / 250, idx % 250 + 2);
        self.node_uids.insert(n.name.clone(), uid.clone());
        self.node_ips.insert(n.name.clone(), ip);
        self.c.store.load(ids::NODES, v);
        self.c.nodes.insert(
            n.name.clone(),
            NodeSim {
                never_ready: n.never_ready,
            },
        );
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": n.name, "namespace": "kube-node-lease", "uid": self.c.rng.uuid(),
                "creationTimestamp": self.born,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": uid}]},
            "spec": {"holderIdentity": n.name, "leaseDurationSeconds": 40,
                "renewTime": format!("{}.000000Z", self.now.trim_end_matches('Z'))}});
        self.c.store.load(ids::LEASES, lease);
        Ok(())
    }

    fn template(&self, w: &Workload) -> Value {
        let labels = map(&w.pod_labels());
        let mut container = json!({"name": w.name, "image": w.image.as_deref().unwrap_or(DEFAULT_IMAGE),
            "imagePullPolicy": "IfNotPresent", "resources": {}});
        let mut spec = json!({"containers": [], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": w.grace_period_seconds.unwrap_or(30)});
        if w.empty_dir {
            container["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
            spec["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
        }
        if w.kind == WorkloadKind::StatefulSet && w.volume_claim.is_some() {
            let mounts = container
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert(json!([])));
            if let Some(Value::Array(m)) = mounts {
                m.push(json!({"name": "data", "mountPath": "/data"}));
            }
        }
        spec["containers"] = json!([container]);
        if let Some(pc) = &w.priority_class {
            spec["priorityClassName"] = json!(pc);
        }
        let mut selector = w.node_selector.clone();
        if let Some(p) = &w.pool {
            selector.insert(self.pool_label.clone(), p.clone());
        }
        if !selector.is_empty() {
            spec["nodeSelector"] = map(&selector);
        }
        let mut tolerations = Vec::new();
        if w.tolerate_all {
            tolerations.push(json!({"operator": "Exists"}));
        }
        if w.tolerate_control_plane {
            tolerations.push(json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}));
        }
        if !tolerations.is_empty() {
            spec["tolerations"] = Value::Array(tolerations);
        }
        json!({"metadata": {"labels": labels}, "spec": spec})
    }

    /// A Running pod built from `template`, bound to `node` (or Pending when `None`).
    #[allow(clippy::too_many_arguments)]
    fn place_pod(
        &mut self,
        ns: &str,
        name: &str,
        template: &Value,
        owner: Value,
        extra_labels: &[(&str, String)],
        node: Option<&str>,
        ready: bool,
        patch: impl FnOnce(&mut Map<String, Value>),
    ) {
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        if let Some(l) = labels.as_object_mut() {
            for (k, v) in extra_labels {
                l.insert((*k).to_string(), json!(v));
            }
        }
        let mut md = self.meta(ns, name, Some(labels));
        md["ownerReferences"] = json!([owner]);
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        let prio = self.c.priority_of(objects::s(&spec, "priorityClassName"));
        if let Some(o) = spec.as_object_mut() {
            o.insert("priority".into(), json!(prio));
            patch(o);
        }
        self.finish_pod(md, spec, node, "Running", ready);
    }

    fn finish_pod(
        &mut self,
        md: Value,
        mut spec: Value,
        node: Option<&str>,
        phase: &str,
        ready: bool,
    ) {
        let uid = objects::s(&md, "uid").to_string();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": md});
        let node_ready = node.is_some_and(|n| {
            self.c
                .store
                .get(ids::NODES, "", n)
                .is_some_and(|x| objects::condition_true(&x.value(), "Ready"))
        });
        match node {
            Some(n) => {
                spec["nodeName"] = json!(n);
                pod["spec"] = spec;
                let host_ip = self.node_ips.get(n).cloned().unwrap_or_default();
                match phase {
                    "Running" if node_ready => {
                        let ip = if pod.pointer("/spec/hostNetwork").and_then(Value::as_bool)
                            == Some(true)
                        {
                            host_ip.clone()
                        } else {
                            self.c.next_pod_ip()
                        };
                        objects::mark_running(&mut pod, &ip, &host_ip, &self.born, ready);
                        if !ready {
                            self.c.broken.insert(uid.clone());
                        }
                    }
                    "Succeeded" | "Failed" => {
                        let reason = if phase == "Succeeded" {
                            "Completed"
                        } else {
                            "Error"
                        };
                        let code = if phase == "Succeeded" { 0 } else { 1 };
                        let cname = pod
                            .pointer("/spec/containers/0/name")
                            .cloned()
                            .unwrap_or(json!("main"));
                        pod["status"] = json!({"phase": phase, "hostIP": host_ip, "startTime": self.born,
                            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": self.born},
                                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": self.born}],
                            "containerStatuses": [{"name": cname, "ready": false, "restartCount": 0, "started": false,
                                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": self.born, "finishedAt": self.now}}}],
                            "qosClass": "BestEffort"});
                    }
                    _ => {
                        pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                            {"type": "PodScheduled", "status": "True", "lastTransitionTime": self.born}]});
                        if !ready {
                            self.c.broken.insert(uid.clone());
                        }
                    }
                }
            }
            None => {
                pod["spec"] = spec;
                pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
        }
        // A pod on a NotReady node stays Pending until the node turns Ready.
        let stored = self.c.store.load(ids::PODS, pod);
        if node.is_none() {
            self.c.unscheduled.insert(stored.key());
        }
    }

    fn workload(&mut self, w: &Workload, nodes: &[NodeFacts]) {
        let template = self.template(w);
        let labels = map(&w.pod_labels());
        let selector = json!({"matchLabels": labels});
        let ns = w.namespace.clone();
        let tspec = template.get("spec").cloned().unwrap_or(json!({}));
        match w.kind {
            WorkloadKind::Deployment | WorkloadKind::ReplicaSet => {
                let hash = template_hash(&template);
                let (rs_name, owner_ref) = if w.kind == WorkloadKind::Deployment {
                    let md = self.meta(&ns, &w.name, Some(labels.clone()));
                    let duid = objects::s(&md, "uid").to_string();
                    let mut md = md;
                    md["generation"] = json!(1);
                    md["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
                    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md,
                        "spec": {"replicas": w.replicas, "selector": selector, "template": template,
                            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
                        "status": {}});
                    self.c.store.load(ids::DEPLOYMENTS, d);
                    (
                        format!("{}-{hash}", w.name),
                        Some(
                            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": w.name, "uid": duid,
                            "controller": true, "blockOwnerDeletion": true}),
                        ),
                    )
                } else {
                    (w.name.clone(), None)
                };
                let mut rs_template = template.clone();
                let mut rs_selector = selector.clone();
                let mut rs_labels = labels.clone();
                if owner_ref.is_some() {
                    objects::obj_mut(&mut rs_template, "metadata.labels")
                        .insert("pod-template-hash".into(), json!(hash));
                    objects::obj_mut(&mut rs_selector, "matchLabels")
                        .insert("pod-template-hash".into(), json!(hash));
                    rs_labels["pod-template-hash"] = json!(hash);
                }
                let mut md = self.meta(&ns, &rs_name, Some(rs_labels));
                md["generation"] = json!(1);
                if let Some(o) = &owner_ref {
                    md["ownerReferences"] = json!([o]);
                    md["annotations"] = json!({"deployment.kubernetes.io/revision": "1",
                        "deployment.kubernetes.io/desired-replicas": w.replicas.to_string()});
                }
                let rs_uid = objects::s(&md, "uid").to_string();
                let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": md,
                    "spec": {"replicas": w.replicas, "selector": rs_selector, "template": rs_template}, "status": {}});
                self.c.store.load(ids::REPLICASETS, rs);
                let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid,
                    "controller": true, "blockOwnerDeletion": true});
                let targets = self.targets(&tspec, nodes, w.replicas as usize);
                for (i, node) in targets.iter().enumerate() {
                    let pname = format!("{rs_name}-{}", self.c.rng.suffix(5));
                    let ready = i >= w.not_ready as usize;
                    self.place_pod(
                        &ns,
                        &pname,
                        &rs_template,
                        owner.clone(),
                        &[],
                        node.as_deref(),
                        ready,
                        |_| {},
                    );
                }
            }
            WorkloadKind::StatefulSet => {
                let mut md = self.meta(&ns, &w.name, Some(labels.clone()));
                md["generation"] = json!(1);
                let uid = objects::s(&md, "uid").to_string();
                let revision = format!("{}-{}", w.name, template_hash(&template));
                let mut spec = json!({"replicas": w.replicas, "selector": selector, "template": template,
                    "serviceName": w.name, "podManagementPolicy": "OrderedReady",
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}});
                if let Some(size) = &w.volume_claim {
                    spec["volumeClaimTemplates"] = json!([{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, "volumeMode": "Filesystem"}}]);
                }
                let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": md, "spec": spec, "status": {}});
                self.c.store.load(ids::STATEFULSETS, sts);
                let owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": w.name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true});
                let targets = self.targets(&tspec, nodes, w.replicas as usize);
                for (i, node) in targets.iter().enumerate() {
                    let pname = format!("{}-{i}", w.name);
                    let claim = w.volume_claim.as_ref().map(|size| {
                        let cname = format!("data-{pname}");
                        let mut cmd = self.meta(&ns, &cname, Some(labels.clone()));
                        cmd["ownerReferences"] = json!([]);
                        let vol = format!("pvc-{}", self.c.rng.uuid());
                        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": cmd,
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                                "storageClassName": "standard", "volumeMode": "Filesystem", "volumeName": vol},
                            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}});
                        self.c.store.load(ids::PVCS, pvc);
                        cname
                    });
                    let ready = i >= w.not_ready as usize;
                    let svc = w.name.clone();
                    let pn = pname.clone();
                    self.place_pod(
                        &ns,
                        &pname,
                        &template,
                        owner.clone(),
                        &[
                            ("controller-revision-hash", revision.clone()),
                            ("statefulset.kubernetes.io/pod-name", pname.clone()),
                            ("apps.kubernetes.io/pod-index", i.to_string()),
                        ],
                        node.as_deref(),
                        ready,
                        move |spec| {
                            spec.insert("hostname".into(), json!(pn));
                            spec.insert("subdomain".into(), json!(svc));
                            if let Some(c) = claim {
                                spec.insert("volumes".into(), json!([{"name": "data", "persistentVolumeClaim": {"claimName": c}}]));
                            }
                        },
                    );
                }
            }
            WorkloadKind::DaemonSet => {
                let mut md = self.meta(&ns, &w.name, Some(labels.clone()));
                md["generation"] = json!(1);
                let uid = objects::s(&md, "uid").to_string();
                let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": md,
                    "spec": {"selector": selector, "template": template,
                        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                        "revisionHistoryLimit": 10},
                    "status": {}});
                self.c.store.load(ids::DAEMONSETS, ds);
                let owner = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": w.name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true});
                let revision = template_hash(&template);
                for (k, n) in nodes
                    .iter()
                    .filter(|n| daemon_should_run(&tspec, n))
                    .enumerate()
                {
                    let pname = format!("{}-{}", w.name, self.c.rng.suffix(5));
                    let target = n.name.clone();
                    let ready = k >= w.not_ready as usize;
                    let node = if feasible(&daemon_spec(&tspec), n) {
                        Some(n.name.as_str())
                    } else {
                        None
                    };
                    self.place_pod(
                        &ns,
                        &pname,
                        &template,
                        owner.clone(),
                        &[("controller-revision-hash", revision.clone()), ("pod-template-generation", "1".into())],
                        node,
                        ready,
                        move |spec| {
                            spec.insert(
                                "affinity".into(),
                                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [target]}]}]}}}),
                            );
                            add_daemon_tolerations(spec);
                        },
                    );
                }
            }
        }
    }

    /// Nodes for `n` replicas: feasible nodes in turn, continuing where the last workload
    /// stopped so replicas spread; `None` when nothing fits (the pod stays Pending).
    fn targets(&mut self, spec: &Value, nodes: &[NodeFacts], n: usize) -> Vec<Option<String>> {
        let fit: Vec<&NodeFacts> = nodes.iter().filter(|x| feasible(spec, x)).collect();
        let start = self.spread;
        self.spread += n;
        (0..n)
            .map(|i| (!fit.is_empty()).then(|| fit[(start + i) % fit.len()].name.clone()))
            .collect()
    }

    fn pod(&mut self, p: &Pod) {
        let mut md = self.meta(&p.namespace, &p.name, Some(map(&p.labels)));
        let mut spec = json!({"containers": [{"name": p.name.split('-').next().unwrap_or("main"), "image": DEFAULT_IMAGE, "resources": {}}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": p.grace_period_seconds.unwrap_or(30)});
        if p.empty_dir {
            spec["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
            spec["containers"][0]["volumeMounts"] =
                json!([{"name": "scratch", "mountPath": "/scratch"}]);
        }
        if let Some(pc) = &p.priority_class {
            spec["priorityClassName"] = json!(pc);
        }
        spec["priority"] = json!(
            self.c
                .priority_of(p.priority_class.as_deref().unwrap_or(""))
        );
        if p.mirror {
            let hash = format!("{:032x}", self.c.rng.next_u64());
            md["annotations"] = json!({"kubernetes.io/config.hash": hash, "kubernetes.io/config.mirror": hash,
                "kubernetes.io/config.seen": self.born, "kubernetes.io/config.source": "file"});
            if let Some(n) = &p.node {
                let uid = self.node_uids.get(n).cloned().unwrap_or_default();
                md["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": n, "uid": uid, "controller": true}]);
            }
            spec["hostNetwork"] = json!(true);
            spec["tolerations"] = json!([{"operator": "Exists", "effect": "NoExecute"}]);
        }
        if let Some(owner) = &p.orphan_of {
            let (kind, name) = owner
                .split_once('/')
                .unwrap_or(("DaemonSet", owner.as_str()));
            let api = match kind {
                "DaemonSet" | "ReplicaSet" | "StatefulSet" | "Deployment" => "apps/v1",
                "Job" | "CronJob" => "batch/v1",
                _ => "v1",
            };
            md["ownerReferences"] = json!([{"apiVersion": api, "kind": kind, "name": name, "uid": self.c.rng.uuid(),
                "controller": true, "blockOwnerDeletion": true}]);
        }
        self.finish_pod(md, spec, p.node.as_deref(), &p.phase, p.ready);
    }

    fn pdb(&mut self, p: &Pdb) {
        let mut spec = Map::new();
        match p.selector {
            PdbSelector::Labels => {
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": map(&p.match_labels)}),
                );
            }
            PdbSelector::All => {
                spec.insert("selector".into(), json!({}));
            }
            PdbSelector::None => {}
        }
        if let Some(v) = &p.min_available {
            spec.insert("minAvailable".into(), v.to_json());
        }
        if let Some(v) = &p.max_unavailable {
            spec.insert("maxUnavailable".into(), v.to_json());
        }
        if let Some(pol) = &p.unhealthy_pod_eviction_policy {
            spec.insert("unhealthyPodEvictionPolicy".into(), json!(pol));
        }
        let mut md = self.meta(&p.namespace, &p.name, None);
        md["generation"] = json!(1);
        let api = p.api_version.clone().unwrap_or_else(|| "policy/v1".into());
        let mut obj = json!({"apiVersion": api, "kind": "PodDisruptionBudget", "metadata": md, "spec": Value::Object(spec),
            "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "observedGeneration": 0}});
        if p.api_version.is_some() {
            annotate_applied(&mut obj);
        }
        let version = api.rsplit('/').next().unwrap_or("v1").to_string();
        convert::to_storage(ids::PDBS, &version, &mut obj);
        self.c.store.load(ids::PDBS, obj);
    }

    fn object(&mut self, o: &Value) -> std::result::Result<(), String> {
        let api = objects::s(o, "apiVersion").to_string();
        let kind = objects::s(o, "kind").to_string();
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api.as_str()));
        let res = resources::by_kind(group, &kind)
            .or_else(|| self.c.customs.by_kind(group, &kind))
            .ok_or_else(|| format!("{api} {kind} is not stored by the simulator"))?;
        let mut v = o.clone();
        annotate_applied(&mut v);
        convert::to_storage(res, version, &mut v);
        let ns = if resources::def(res).namespaced {
            let ns = objects::s(&v, "metadata.namespace");
            if ns.is_empty() {
                "default".to_string()
            } else {
                ns.to_string()
            }
        } else {
            String::new()
        };
        let status = v.get("status").cloned();
        let created = self.c.create(res, v, &ns, false).map_err(|e| e.message)?;
        // Manifests may carry status (a Bound claim, a finished Job): keep it as given.
        if let Some(st) = status {
            let mut cv = created.value();
            cv["status"] = st;
            self.c.put(res, cv);
        }
        Ok(())
    }
}

/// Records the manifest as `kubectl apply` would, so tools that read
/// `kubectl.kubernetes.io/last-applied-configuration` see the group-version it was written in.
fn annotate_applied(v: &mut Value) {
    let mut applied = v.clone();
    if let Some(o) = applied.as_object_mut() {
        o.remove("status");
    }
    if let Some(md) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            md.remove(k);
        }
    }
    let text = serde_json::to_string(&applied).unwrap_or_default();
    objects::obj_mut(v, "metadata.annotations").insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        json!(format!("{text}\n")),
    );
}

fn daemon_spec(tspec: &Value) -> Value {
    let mut s = tspec.clone();
    if let Some(o) = s.as_object_mut() {
        add_daemon_tolerations(o);
    }
    s
}

fn add_daemon_tolerations(spec: &mut Map<String, Value>) {
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            list.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
}

/// The Node object for `n`.
pub(crate) fn node_object(
    n: &Node,
    pool_label: &str,
    kubelet: &str,
    idx: usize,
    born: &str,
    now: &str,
    rng: &mut crate::k8s::rng::Rng,
) -> Value {
    let mut labels = BTreeMap::from([
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("kubernetes.io/hostname".to_string(), n.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
    ]);
    if let Some(p) = &n.pool {
        labels.insert(pool_label.to_string(), p.clone());
    }
    let mut taints: Vec<Value> = Vec::new();
    if n.control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
        labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".into(),
            String::new(),
        );
        taints
            .push(json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}));
    }
    labels.extend(n.labels.clone());
    for t in &n.taints {
        let mut tj = json!({"key": t.key, "effect": t.effect});
        if !t.value.is_empty() {
            tj["value"] = json!(t.value);
        }
        taints.push(tj);
    }
    let cond = |ty: &str, default: &str| {
        n.conditions
            .get(ty)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let mk = |ty: &str, status: String, ok: (&str, &str), bad: (&str, &str), healthy: &str| {
        let (reason, message) = if status == healthy { ok } else { bad };
        json!({"type": ty, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": born,
               "reason": reason, "message": message})
    };
    let mut conditions = vec![
        mk(
            "MemoryPressure",
            cond("MemoryPressure", "False"),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            "False",
        ),
        mk(
            "DiskPressure",
            cond("DiskPressure", "False"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            "False",
        ),
        mk(
            "PIDPressure",
            cond("PIDPressure", "False"),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            "False",
        ),
        mk(
            "Ready",
            cond("Ready", "True"),
            ("KubeletReady", "kubelet is posting ready status"),
            (
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
            ),
            "True",
        ),
    ];
    if let Some(st) = n.conditions.get("NetworkUnavailable") {
        conditions.insert(
            0,
            mk(
                "NetworkUnavailable",
                st.clone(),
                ("RouteCreated", "RouteController created a route"),
                ("NoRouteCreated", "Node created without a route"),
                "False",
            ),
        );
    }
    let cidr = format!("10.{}.{}.0/24", 244 + idx / 256, idx % 256);
    let mut spec = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
    if !taints.is_empty() {
        spec["taints"] = Value::Array(taints);
    }
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
    }
    if let Some(id) = &n.provider_id {
        spec["providerID"] = json!(id);
    }
    let ip = format!("10.0.{}.{}", idx / 250, idx % 250 + 2);
    let resources = json!({"cpu": "4", "ephemeral-storage": "102625208Ki", "hugepages-2Mi": "0", "memory": "16374584Ki", "pods": "110"});
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n.name, "uid": rng.uuid(), "creationTimestamp": born, "labels": map(&labels),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": {"capacity": resources, "allocatable": resources, "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()), "systemUUID": rng.uuid(), "bootID": rng.uuid(),
                "kernelVersion": "6.1.0-31-cloud-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": kubelet, "kubeProxyVersion": kubelet,
                "operatingSystem": "linux", "architecture": "amd64"}}})
}
