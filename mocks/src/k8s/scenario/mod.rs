//! Scenarios: what the simulated cluster holds when it starts.
//!
//! Build one in Rust or load a YAML file; both describe the same [`Scenario`] value (the YAML
//! keys are the camelCase names of the builder's fields):
//!
//! ```
//! use kup_mocks::k8s::{Node, Pdb, Pool, Scenario, Workload};
//!
//! let scenario = Scenario::new()
//!     .version("v1.32.4")
//!     .pool(Pool::new("cp", 1).control_plane())
//!     .pool(Pool::new("workers", 3))
//!     .node(Node::new("spare").pool("workers").unschedulable())
//!     .workload(Workload::deployment("shop", "web").replicas(3).pool("workers"))
//!     .pdb(Pdb::new("shop", "web").match_label("app", "web").min_available(2));
//! assert!(scenario.validate().is_ok());
//!
//! let same = Scenario::from_yaml(
//!     r#"
//! version: v1.32.4
//! pools:
//!   - {name: cp, count: 1, controlPlane: true}
//!   - {name: workers, count: 3}
//! nodes:
//!   - {name: spare, pool: workers, unschedulable: true}
//! workloads:
//!   - {kind: Deployment, namespace: shop, name: web, replicas: 3, pool: workers}
//! pdbs:
//!   - {namespace: shop, name: web, matchLabels: {app: web}, minAvailable: 2}
//! "#,
//! )
//! .unwrap();
//! assert_eq!(same, scenario);
//! ```

mod canned;
mod cloud;
pub(crate) mod load;
mod users;

pub use cloud::AwsPlacement;
pub use users::{ADMIN_TOKEN, ADMIN_USER, Anonymous, User};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::resources;
use super::version::KubeVersion;
use crate::{Error, Result};

/// The default node-pool label key (override with [`Scenario::pool_label`]).
pub const DEFAULT_POOL_LABEL: &str = "kup.dev/pool";

fn default_version() -> String {
    "v1.33.5".to_string()
}

fn default_pool_label() -> String {
    DEFAULT_POOL_LABEL.to_string()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Everything the simulated cluster starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// API server version (`/version`, which group-versions are served, default kubelet version).
    #[serde(default = "default_version")]
    pub version: String,
    /// Label key that carries a node's pool name.
    #[serde(default = "default_pool_label")]
    pub pool_label: String,
    /// Node pools (nodes named `<pool>-<n>`, numbered from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Pool>,
    /// Individual nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// Extra namespaces (those used by workloads, pods and PDBs are created anyway).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Deployments, StatefulSets, DaemonSets and ReplicaSets, with their pods placed and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
    /// PodDisruptionBudgets (status computed at start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pdbs: Vec<Pdb>,
    /// Pods without a workload (naked pods, static control-plane pods, system pods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<Pod>,
    /// PersistentVolumeClaims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pvcs: Vec<Pvc>,
    /// Any other manifests, stored as given (any served group-version, deprecated ones included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Value>,
    /// Users besides the built-in `admin` (their permissions come from RBAC objects in
    /// [`Scenario::objects`] or created through the API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    /// What a request without credentials is (default: the admin).
    #[serde(default, skip_serializing_if = "Anonymous::is_admin")]
    pub anonymous: Anonymous,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            version: default_version(),
            pool_label: default_pool_label(),
            pools: Vec::new(),
            nodes: Vec::new(),
            namespaces: Vec::new(),
            workloads: Vec::new(),
            pdbs: Vec::new(),
            pods: Vec::new(),
            pvcs: Vec::new(),
            objects: Vec::new(),
            users: Vec::new(),
            anonymous: Anonymous::Admin,
        }
    }
}

impl Scenario {
    /// An empty cluster at the default version (`v1.33.5`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the API server version (`v1.31.4`, `1.24`, `v1.30.2-eks-abc`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets the label key that carries pool names (e.g. `eks.amazonaws.com/nodegroup`).
    pub fn pool_label(mut self, key: impl Into<String>) -> Self {
        self.pool_label = key.into();
        self
    }

    /// Adds a node pool.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pools.push(pool);
        self
    }

    /// Adds a node.
    pub fn node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds a namespace.
    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        self.namespaces.push(name.into());
        self
    }

    /// Adds a workload.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workloads.push(workload);
        self
    }

    /// Adds a PodDisruptionBudget.
    pub fn pdb(mut self, pdb: Pdb) -> Self {
        self.pdbs.push(pdb);
        self
    }

    /// Adds a pod that no workload owns.
    pub fn pod(mut self, pod: Pod) -> Self {
        self.pods.push(pod);
        self
    }

    /// Adds a system pod: a pod in `kube-system` with a priority class.
    pub fn system_pod(
        self,
        name: impl Into<String>,
        node: impl Into<String>,
        priority_class: impl Into<String>,
    ) -> Self {
        self.pod(
            Pod::new("kube-system", name)
                .node(node)
                .priority_class(priority_class),
        )
    }

    /// Adds a PersistentVolumeClaim.
    pub fn pvc(mut self, pvc: Pvc) -> Self {
        self.pvcs.push(pvc);
        self
    }

    /// Adds any manifest (JSON form), e.g. a `batch/v1beta1` CronJob on a 1.24 cluster.
    pub fn object(mut self, manifest: Value) -> Self {
        self.objects.push(manifest);
        self
    }

    /// Adds a user who authenticates with a bearer token.
    pub fn user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// Sets what a request without credentials is treated as.
    pub fn anonymous(mut self, anonymous: Anonymous) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Parses a YAML scenario and validates it.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let s: Scenario =
            serde_saphyr::from_str(text).map_err(|e| Error::scenario("(yaml)", e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Reads and parses a YAML scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading scenario {}", path.display()), e))?;
        Scenario::from_yaml(&text).map_err(|e| match e {
            Error::Scenario { field, message } => Error::Scenario {
                field: format!("{}: {field}", path.display()),
                message,
            },
            other => other,
        })
    }

    /// The scenario as YAML (the format [`Scenario::from_yaml`] reads).
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self).map_err(|e| Error::scenario("(yaml)", e.to_string()))
    }

    /// A canned scenario by name: `small`, `pdb-blocked` or `large`.
    pub fn canned(name: &str) -> Result<Self> {
        match name {
            "small" => Ok(Self::small()),
            "pdb-blocked" | "pdb_blocked" => Ok(Self::pdb_blocked()),
            "large" => Ok(Self::large()),
            other => Err(Error::invalid(
                "scenario",
                format!(
                    "unknown canned scenario {other:?}; accepted: small, pdb-blocked, large (or a path to a YAML file)"
                ),
            )),
        }
    }

    /// Names of every node the scenario creates, pools first.
    pub fn node_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.pools.iter().flat_map(|p| p.node_names()).collect();
        out.extend(self.nodes.iter().map(|n| n.name.clone()));
        out
    }

    /// Checks the scenario; errors name the field and the accepted values.
    pub fn validate(&self) -> Result<()> {
        let version = KubeVersion::parse(&self.version)
            .map_err(|e| Error::scenario("version", e.to_string()))?;
        let minor = version.minor;
        let mut tokens = BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            u.check(&format!("users[{i}]"))?;
            if !tokens.insert(u.bearer_token()) {
                return Err(Error::scenario(
                    format!("users[{i}].token"),
                    "two users have the same token",
                ));
            }
        }
        let mut names = BTreeSet::new();
        let pools: BTreeSet<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
        for (i, p) in self.pools.iter().enumerate() {
            check_name(&format!("pools[{i}].name"), &p.name)?;
            if let Some(v) = &p.kubelet_version {
                KubeVersion::parse(v).map_err(|e| {
                    Error::scenario(format!("pools[{i}].kubeletVersion"), e.to_string())
                })?;
            }
            for (j, t) in p.taints.iter().enumerate() {
                t.check(&format!("pools[{i}].taints[{j}]"))?;
            }
        }
        for n in self.node_names() {
            if !names.insert(n.clone()) {
                return Err(Error::scenario(
                    "nodes",
                    format!("node {n:?} is defined twice"),
                ));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            check_name(&format!("nodes[{i}].name"), &n.name)?;
            if let Some(v) = &n.kubelet_version {
                KubeVersion::parse(v).map_err(|e| {
                    Error::scenario(format!("nodes[{i}].kubeletVersion"), e.to_string())
                })?;
            }
            for (ty, st) in &n.conditions {
                if !NODE_CONDITIONS.contains(&ty.as_str()) {
                    return Err(Error::scenario(
                        format!("nodes[{i}].conditions.{ty}"),
                        format!(
                            "unknown node condition; accepted: {}",
                            NODE_CONDITIONS.join(", ")
                        ),
                    ));
                }
                check_condition_status(&format!("nodes[{i}].conditions.{ty}"), st)?;
            }
            for (j, t) in n.taints.iter().enumerate() {
                t.check(&format!("nodes[{i}].taints[{j}]"))?;
            }
        }
        let mut seen = BTreeSet::new();
        for (i, w) in self.workloads.iter().enumerate() {
            let f = |k: &str| format!("workloads[{i}].{k}");
            check_name(&f("namespace"), &w.namespace)?;
            check_name(&f("name"), &w.name)?;
            if !seen.insert((w.kind, w.namespace.clone(), w.name.clone())) {
                return Err(Error::scenario(
                    f("name"),
                    format!("{:?} {}/{} is defined twice", w.kind, w.namespace, w.name),
                ));
            }
            if let Some(p) = &w.pool
                && !pools.contains(p.as_str())
            {
                return Err(Error::scenario(
                    f("pool"),
                    format!("unknown pool {p:?}; defined pools: {}", join(&pools)),
                ));
            }
            if w.not_ready > w.replicas && w.kind != WorkloadKind::DaemonSet {
                return Err(Error::scenario(
                    f("notReady"),
                    format!("{} is more than replicas ({})", w.not_ready, w.replicas),
                ));
            }
        }
        for (i, p) in self.pdbs.iter().enumerate() {
            let f = |k: &str| format!("pdbs[{i}].{k}");
            check_name(&f("namespace"), &p.namespace)?;
            check_name(&f("name"), &p.name)?;
            if p.min_available.is_some() && p.max_unavailable.is_some() {
                return Err(Error::scenario(
                    f("minAvailable"),
                    "minAvailable and maxUnavailable cannot both be set",
                ));
            }
            for (k, v) in [
                ("minAvailable", &p.min_available),
                ("maxUnavailable", &p.max_unavailable),
            ] {
                if let Some(IntOrPercent::Percent(s)) = v
                    && s.strip_suffix('%')
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_none()
                {
                    return Err(Error::scenario(
                        f(k),
                        format!("{s:?} is neither an integer nor a percentage like \"50%\""),
                    ));
                }
            }
            if let Some(pol) = &p.unhealthy_pod_eviction_policy
                && pol != "IfHealthyBudget"
                && pol != "AlwaysAllow"
            {
                return Err(Error::scenario(
                    f("unhealthyPodEvictionPolicy"),
                    format!("{pol:?} is not supported; accepted: IfHealthyBudget, AlwaysAllow"),
                ));
            }
            if let Some(av) = &p.api_version {
                let ok = match av.as_str() {
                    "policy/v1" => minor >= 21,
                    "policy/v1beta1" => minor < 25,
                    _ => false,
                };
                if !ok {
                    return Err(Error::scenario(
                        f("apiVersion"),
                        format!(
                            "{av} PodDisruptionBudget is not served by {}; accepted: policy/v1 (1.21+), policy/v1beta1 (before 1.25)",
                            version
                        ),
                    ));
                }
            }
        }
        for (i, p) in self.pods.iter().enumerate() {
            let f = |k: &str| format!("pods[{i}].{k}");
            check_name(&f("namespace"), &p.namespace)?;
            check_name(&f("name"), &p.name)?;
            if let Some(n) = &p.node
                && !names.contains(n)
            {
                return Err(Error::scenario(f("node"), format!("unknown node {n:?}")));
            }
            if !POD_PHASES.contains(&p.phase.as_str()) {
                return Err(Error::scenario(
                    f("phase"),
                    format!(
                        "{:?} is not a pod phase; accepted: {}",
                        p.phase,
                        POD_PHASES.join(", ")
                    ),
                ));
            }
        }
        for (i, p) in self.pvcs.iter().enumerate() {
            check_name(&format!("pvcs[{i}].namespace"), &p.namespace)?;
            check_name(&format!("pvcs[{i}].name"), &p.name)?;
        }
        for (i, o) in self.objects.iter().enumerate() {
            let f = |k: &str| format!("objects[{i}].{k}");
            let api = o
                .get("apiVersion")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::scenario(f("apiVersion"), "required"))?;
            let kind = o
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::scenario(f("kind"), "required"))?;
            if o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(Error::scenario(f("metadata.name"), "required"));
            }
            let (group, ver) = api.rsplit_once('/').unwrap_or(("", api));
            if self.objects[..i]
                .iter()
                .any(|c| defines(c, group, ver, kind))
            {
                // A kind an earlier CustomResourceDefinition of the scenario serves.
                continue;
            }
            let Some(res) = resources::by_kind(group, kind) else {
                return Err(Error::scenario(
                    f("kind"),
                    format!("{api} {kind} is not a kind the simulator stores"),
                ));
            };
            let d = resources::def(res);
            if d.version(ver).is_none_or(|v| !v.served_in(minor)) {
                let served: Vec<String> = d
                    .versions
                    .iter()
                    .filter(|v| v.served_in(minor))
                    .map(|v| d.api_version(v.version))
                    .collect();
                return Err(Error::scenario(
                    f("apiVersion"),
                    format!(
                        "{api} {kind} is not served by {version}; served: {}",
                        if served.is_empty() {
                            "none".into()
                        } else {
                            served.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `true` if `crd` is a CustomResourceDefinition serving `group`/`version` `kind`.
fn defines(crd: &Value, group: &str, version: &str, kind: &str) -> bool {
    crd["kind"] == "CustomResourceDefinition"
        && crd["spec"]["group"] == group
        && crd["spec"]["names"]["kind"] == kind
        && crd["spec"]["versions"].as_array().is_some_and(|vs| {
            vs.iter()
                .any(|v| v["name"] == version && v["served"].as_bool() == Some(true))
        })
}

const NODE_CONDITIONS: &[&str] = &[
    "Ready",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];
const POD_PHASES: &[&str] = &["Pending", "Running", "Succeeded", "Failed", "Unknown"];

fn join(set: &BTreeSet<&str>) -> String {
    if set.is_empty() {
        "(none)".into()
    } else {
        set.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::scenario(
            field,
            format!(
                "{name:?} is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
            ),
        ))
    }
}

fn check_condition_status(field: &str, status: &str) -> Result<()> {
    if ["True", "False", "Unknown"].contains(&status) {
        Ok(())
    } else {
        Err(Error::scenario(
            field,
            format!("{status:?} is not a condition status; accepted: True, False, Unknown"),
        ))
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// A taint with the given key, value and effect.
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        }
    }

    fn check(&self, field: &str) -> Result<()> {
        if ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&self.effect.as_str()) {
            Ok(())
        } else {
            Err(Error::scenario(
                format!("{field}.effect"),
                format!(
                    "{:?} is not a taint effect; accepted: NoSchedule, PreferNoSchedule, NoExecute",
                    self.effect
                ),
            ))
        }
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Pool name (written to the scenario's pool label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// A control-plane node: role label and the `node-role.kubernetes.io/control-plane:NoSchedule` taint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub control_plane: bool,
    /// Kubelet version (default: the API server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
    /// Extra labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints (besides the control-plane one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Condition overrides: `Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`,
    /// `NetworkUnavailable` → `True`/`False`/`Unknown`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, String>,
    /// Cordoned (`spec.unschedulable`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    /// The node never becomes Ready (after a kubelet restart or when it joins).
    #[serde(default, skip_serializing_if = "is_false")]
    pub never_ready: bool,
    /// `spec.providerID`, as the cloud provider sets it (e.g. `aws:///us-west-2a/i-0…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

impl Node {
    /// A Ready worker node.
    pub fn new(name: impl Into<String>) -> Self {
        Node {
            name: name.into(),
            pool: None,
            control_plane: false,
            kubelet_version: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            conditions: BTreeMap::new(),
            unschedulable: false,
            never_ready: false,
            provider_id: None,
        }
    }

    /// Sets `spec.providerID`.
    pub fn provider_id(mut self, id: impl Into<String>) -> Self {
        self.provider_id = Some(id.into());
        self
    }

    /// Places the node in AWS as the `index`-th of its group (zone, instance type, provider ID).
    pub fn aws(self, placement: &AwsPlacement, index: usize) -> Self {
        placement.place(self, index)
    }

    /// Puts the node in a pool.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Makes it a control-plane node.
    pub fn control_plane(mut self) -> Self {
        self.control_plane = true;
        self
    }

    /// Sets the kubelet version (`v1.31.2`).
    pub fn kubelet_version(mut self, version: impl Into<String>) -> Self {
        self.kubelet_version = Some(version.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint.
    pub fn taint(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        self.taints.push(Taint::new(key, value, effect));
        self
    }

    /// Sets a condition (`"MemoryPressure"`, `"True"`).
    pub fn condition(mut self, ty: impl Into<String>, status: impl Into<String>) -> Self {
        self.conditions.insert(ty.into(), status.into());
        self
    }

    /// Ready=False.
    pub fn not_ready(self) -> Self {
        self.condition("Ready", "False")
    }

    /// Cordoned.
    pub fn unschedulable(mut self) -> Self {
        self.unschedulable = true;
        self
    }

    /// Never becomes Ready again once it is NotReady (or when it joins).
    pub fn never_ready(mut self) -> Self {
        self.never_ready = true;
        self
    }
}

/// A pool of identical nodes named `<name>-1` … `<name>-<count>` (or `<prefix>-<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pool {
    /// Pool name (the pool label's value).
    pub name: String,
    /// Number of nodes.
    pub count: u32,
    /// Node name prefix (default: the pool name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Control-plane nodes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub control_plane: bool,
    /// Kubelet version (default: the API server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
    /// Extra labels on every node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Nodes in AWS: zones, instance type and provider IDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlacement>,
}

impl Pool {
    /// A pool of `count` Ready worker nodes.
    pub fn new(name: impl Into<String>, count: u32) -> Self {
        Pool {
            name: name.into(),
            count,
            prefix: None,
            control_plane: false,
            kubelet_version: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            aws: None,
        }
    }

    /// Places the pool's nodes in AWS (see [`AwsPlacement`]).
    pub fn aws(mut self, placement: AwsPlacement) -> Self {
        self.aws = Some(placement);
        self
    }

    /// Names nodes `<prefix>-<n>`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Control-plane nodes.
    pub fn control_plane(mut self) -> Self {
        self.control_plane = true;
        self
    }

    /// Kubelet version of every node.
    pub fn kubelet_version(mut self, version: impl Into<String>) -> Self {
        self.kubelet_version = Some(version.into());
        self
    }

    /// Adds a label to every node.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint to every node.
    pub fn taint(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        self.taints.push(Taint::new(key, value, effect));
        self
    }

    /// The pool's node names.
    pub fn node_names(&self) -> Vec<String> {
        let prefix = self.prefix.as_deref().unwrap_or(&self.name);
        (1..=self.count).map(|i| format!("{prefix}-{i}")).collect()
    }

    /// The pool as individual [`Node`]s.
    pub fn nodes(&self) -> Vec<Node> {
        self.node_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let node = Node {
                    name,
                    pool: Some(self.name.clone()),
                    control_plane: self.control_plane,
                    kubelet_version: self.kubelet_version.clone(),
                    labels: self.labels.clone(),
                    taints: self.taints.clone(),
                    conditions: BTreeMap::new(),
                    unschedulable: false,
                    never_ready: false,
                    provider_id: None,
                };
                match &self.aws {
                    Some(p) => p.place(node, i),
                    None => node,
                }
            })
            .collect()
    }
}

/// Workload kinds with a simulated controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment (with one ReplicaSet).
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet (one pod per eligible node).
    DaemonSet,
    /// apps/v1 ReplicaSet without a Deployment.
    ReplicaSet,
}

/// A workload and its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Replicas (ignored for DaemonSets).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replicas: u32,
    /// Pod labels and selector (default `app: <name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pods mount an emptyDir volume.
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_dir: bool,
    /// `priorityClassName` of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    /// Only on nodes of this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Extra nodeSelector entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerate every taint (`operator: Exists`), like kube-proxy and CNI DaemonSets.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tolerate_all: bool,
    /// Tolerate the control-plane taint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tolerate_control_plane: bool,
    /// `terminationGracePeriodSeconds` (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    /// StatefulSets: a volume claim template of this size (e.g. `1Gi`), with Bound claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim: Option<String>,
    /// How many of its pods start (and stay) unready (CrashLoopBackOff).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_ready: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Workload {
    fn new(kind: WorkloadKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Workload {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            replicas: 1,
            labels: BTreeMap::new(),
            image: None,
            empty_dir: false,
            priority_class: None,
            pool: None,
            node_selector: BTreeMap::new(),
            tolerate_all: false,
            tolerate_control_plane: false,
            grace_period_seconds: None,
            volume_claim: None,
            not_ready: 0,
        }
    }

    /// A Deployment.
    pub fn deployment(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(WorkloadKind::Deployment, namespace, name)
    }

    /// A StatefulSet.
    pub fn stateful_set(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(WorkloadKind::StatefulSet, namespace, name)
    }

    /// A DaemonSet.
    pub fn daemon_set(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(WorkloadKind::DaemonSet, namespace, name)
    }

    /// A ReplicaSet without a Deployment.
    pub fn replica_set(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(WorkloadKind::ReplicaSet, namespace, name)
    }

    /// Sets replicas.
    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = n;
        self
    }

    /// Adds a pod label (the selector uses all labels).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the container image.
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Pods mount an emptyDir volume.
    pub fn empty_dir(mut self) -> Self {
        self.empty_dir = true;
        self
    }

    /// Sets `priorityClassName`.
    pub fn priority_class(mut self, class: impl Into<String>) -> Self {
        self.priority_class = Some(class.into());
        self
    }

    /// Runs only on nodes of `pool`.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Adds a nodeSelector entry.
    pub fn node_selector(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.node_selector.insert(key.into(), value.into());
        self
    }

    /// Tolerates every taint.
    pub fn tolerate_all(mut self) -> Self {
        self.tolerate_all = true;
        self
    }

    /// Tolerates the control-plane taint.
    pub fn tolerate_control_plane(mut self) -> Self {
        self.tolerate_control_plane = true;
        self
    }

    /// Sets `terminationGracePeriodSeconds`.
    pub fn grace_period_seconds(mut self, secs: i64) -> Self {
        self.grace_period_seconds = Some(secs);
        self
    }

    /// StatefulSet volume claim template of `size`.
    pub fn volume_claim(mut self, size: impl Into<String>) -> Self {
        self.volume_claim = Some(size.into());
        self
    }

    /// `n` pods start (and stay) unready.
    pub fn not_ready(mut self, n: u32) -> Self {
        self.not_ready = n;
        self
    }

    /// The pod labels (default `app: <name>`).
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        if self.labels.is_empty() {
            BTreeMap::from([("app".to_string(), self.name.clone())])
        } else {
            self.labels.clone()
        }
    }
}

/// An int-or-percent value (`2` or `"50%"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// An absolute number.
    Int(i32),
    /// A percentage such as `"50%"`.
    Percent(String),
}

impl From<i32> for IntOrPercent {
    fn from(n: i32) -> Self {
        IntOrPercent::Int(n)
    }
}

impl From<&str> for IntOrPercent {
    fn from(s: &str) -> Self {
        IntOrPercent::Percent(s.to_string())
    }
}

impl IntOrPercent {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            IntOrPercent::Int(n) => Value::from(*n),
            IntOrPercent::Percent(s) => Value::from(s.clone()),
        }
    }
}

/// How a PDB selects pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PdbSelector {
    /// `matchLabels` from [`Pdb::match_labels`].
    #[default]
    Labels,
    /// An empty selector `{}` (policy/v1: every pod in the namespace).
    All,
    /// No selector at all (selects nothing).
    None,
}

fn is_labels(s: &PdbSelector) -> bool {
    *s == PdbSelector::Labels
}

/// A PodDisruptionBudget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pdb {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `matchLabels` of the selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Selector form (labels, empty, none).
    #[serde(default, skip_serializing_if = "is_labels")]
    pub selector: PdbSelector,
    /// `minAvailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrPercent>,
    /// `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// `IfHealthyBudget` or `AlwaysAllow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pod_eviction_policy: Option<String>,
    /// `policy/v1` (default) or `policy/v1beta1` (clusters before 1.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

impl Pdb {
    /// A PDB with no budget yet; add [`Pdb::min_available`] or [`Pdb::max_unavailable`].
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Pdb {
            namespace: namespace.into(),
            name: name.into(),
            match_labels: BTreeMap::new(),
            selector: PdbSelector::Labels,
            min_available: None,
            max_unavailable: None,
            unhealthy_pod_eviction_policy: None,
            api_version: None,
        }
    }

    /// Adds a `matchLabels` entry.
    pub fn match_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.match_labels.insert(key.into(), value.into());
        self
    }

    /// An empty selector: every pod in the namespace (policy/v1).
    pub fn select_all(mut self) -> Self {
        self.selector = PdbSelector::All;
        self
    }

    /// No selector: selects nothing.
    pub fn select_none(mut self) -> Self {
        self.selector = PdbSelector::None;
        self
    }

    /// `minAvailable` (`2` or `"50%"`).
    pub fn min_available(mut self, v: impl Into<IntOrPercent>) -> Self {
        self.min_available = Some(v.into());
        self
    }

    /// `maxUnavailable` (`1` or `"25%"`).
    pub fn max_unavailable(mut self, v: impl Into<IntOrPercent>) -> Self {
        self.max_unavailable = Some(v.into());
        self
    }

    /// `unhealthyPodEvictionPolicy` (`IfHealthyBudget` or `AlwaysAllow`).
    pub fn unhealthy_pod_eviction_policy(mut self, policy: impl Into<String>) -> Self {
        self.unhealthy_pod_eviction_policy = Some(policy.into());
        self
    }

    /// Stores it through `policy/v1beta1` (a deprecated API on 1.21–1.24).
    pub fn api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = Some(api_version.into());
        self
    }
}

fn running() -> String {
    "Running".into()
}

fn is_running(s: &String) -> bool {
    s == "Running"
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// A pod no workload manages (a naked pod, a static pod's mirror, a system pod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Node it runs on (unscheduled and Pending when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Phase (`Running` by default).
    #[serde(default = "running", skip_serializing_if = "is_running")]
    pub phase: String,
    /// Ready (for Running pods).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ready: bool,
    /// Mounts an emptyDir volume.
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_dir: bool,
    /// `priorityClassName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    /// A static pod's mirror (annotation `kubernetes.io/config.mirror`, owned by its Node).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mirror: bool,
    /// Controller owner `Kind/name` that does not exist (e.g. an orphaned `DaemonSet/old-agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_of: Option<String>,
    /// `terminationGracePeriodSeconds` (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
}

impl Pod {
    /// A Running, Ready pod (schedule it with [`Pod::node`]).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            node: None,
            labels: BTreeMap::new(),
            phase: running(),
            ready: true,
            empty_dir: false,
            priority_class: None,
            mirror: false,
            orphan_of: None,
            grace_period_seconds: None,
        }
    }

    /// Runs it on `node`.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the phase (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    pub fn phase(mut self, phase: impl Into<String>) -> Self {
        self.phase = phase.into();
        self
    }

    /// Running but not Ready.
    pub fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }

    /// Mounts an emptyDir volume.
    pub fn empty_dir(mut self) -> Self {
        self.empty_dir = true;
        self
    }

    /// Sets `priorityClassName`.
    pub fn priority_class(mut self, class: impl Into<String>) -> Self {
        self.priority_class = Some(class.into());
        self
    }

    /// Makes it a static pod's mirror.
    pub fn mirror(mut self) -> Self {
        self.mirror = true;
        self
    }

    /// Gives it a controller (`"DaemonSet/old-agent"`) that does not exist.
    pub fn orphan_of(mut self, owner: impl Into<String>) -> Self {
        self.orphan_of = Some(owner.into());
        self
    }

    /// Sets `terminationGracePeriodSeconds`.
    pub fn grace_period_seconds(mut self, secs: i64) -> Self {
        self.grace_period_seconds = Some(secs);
        self
    }
}

/// A PersistentVolumeClaim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pvc {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Bound (`true`) or Pending.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub bound: bool,
    /// Requested size.
    #[serde(default = "one_gi", skip_serializing_if = "is_one_gi")]
    pub storage: String,
}

fn one_gi() -> String {
    "1Gi".into()
}

fn is_one_gi(s: &String) -> bool {
    s == "1Gi"
}

impl Pvc {
    /// A Bound 1Gi claim.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Pvc {
            namespace: namespace.into(),
            name: name.into(),
            bound: true,
            storage: one_gi(),
        }
    }

    /// Leaves it Pending.
    pub fn pending(mut self) -> Self {
        self.bound = false;
        self
    }

    /// Sets the requested size.
    pub fn storage(mut self, size: impl Into<String>) -> Self {
        self.storage = size.into();
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_input_names_the_field() {
        let e = Scenario::new()
            .pool(Pool::new("a", 1))
            .workload(Workload::deployment("ns", "w").pool("b"))
            .validate()
            .unwrap_err();
        assert!(
            e.to_string().contains("workloads[0].pool")
                && e.to_string().contains("defined pools: a"),
            "{e}"
        );
        let e = Scenario::new()
            .version("v1.26.0")
            .pdb(Pdb::new("ns", "p").api_version("policy/v1beta1"))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("pdbs[0].apiVersion"), "{e}");
        let e = Scenario::from_yaml("version: v1.30.0\nnodez: []\n").unwrap_err();
        assert!(e.to_string().contains("nodez"), "{e}");
        let e = Scenario::new()
            .node(Node::new("n").condition("Ready", "Maybe"))
            .validate()
            .unwrap_err();
        assert!(
            e.to_string().contains("accepted: True, False, Unknown"),
            "{e}"
        );
        let e = Scenario::new().version("1.24").object(serde_json::json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "x"}})).validate();
        assert!(e.is_ok());
        let e = Scenario::new().version("1.25").object(serde_json::json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "x"}})).validate().unwrap_err();
        assert!(e.to_string().contains("served: batch/v1"), "{e}");
        assert!(
            Scenario::canned("medium")
                .unwrap_err()
                .to_string()
                .contains("accepted: small, pdb-blocked, large")
        );
    }

    #[test]
    fn yaml_round_trips() {
        for s in [
            Scenario::small(),
            Scenario::pdb_blocked(),
            Scenario::large(),
        ] {
            let y = s.to_yaml().unwrap();
            assert_eq!(Scenario::from_yaml(&y).unwrap(), s);
        }
    }
}
