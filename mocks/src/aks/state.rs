//! The ARM mock's state and its routes: managed clusters, agent pools, upgrade profiles derived
//! from the version catalogue, and operations that progress over simulated time.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::model::{AksCluster, AksConfig, PoolMode};

/// An ARM error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// AKS's `error.subcode`.
    pub subcode: Option<String>,
}

impl ArmError {
    /// An error answer.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            subcode: None,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(s) = &self.subcode {
            e["subcode"] = json!(s);
        }
        json!({ "error": e })
    }
}

/// Faults to inject.
#[derive(Clone, Debug)]
pub enum AksFault {
    /// The next operation started ends `Failed` with this error (`code`, `message`, and
    /// `details` as `(code, message)`).
    FailNextOperation {
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
        /// `error.details`.
        details: Vec<(String, String)>,
    },
    /// The next `times` calls whose name is `call` (`PUT agentPool`; `None` for any) answer
    /// this error.
    Answer {
        /// The call to refuse, by the names [`super::AksMock::calls`] uses.
        call: Option<String>,
        /// The answer.
        error: ArmError,
        /// How many calls.
        times: u32,
    },
    /// Operations take this many times longer.
    SlowOperations(u32),
    /// Every answer is delayed this long (real time).
    Latency(Duration),
    /// The next `n` connections are closed right after the TLS handshake, before any answer.
    DropConnections(u32),
}

/// What an operation changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationTarget {
    /// The control plane moves to a patch.
    ControlPlane {
        /// The target patch.
        to: String,
    },
    /// An agent pool moves to a patch (and the newest node image).
    AgentPool {
        /// The pool.
        pool: String,
        /// The target patch.
        to: String,
        /// The node image it moves to: `None` the newest, a rollback the one its
        /// `recentlyUsedVersions` entry names.
        image: Option<String>,
    },
    /// An agent pool moves to the newest node image only.
    NodeImage {
        /// The pool.
        pool: String,
    },
    /// An abort of whatever ran on the cluster or a pool.
    Abort {
        /// The pool, `None` for the managed cluster.
        pool: Option<String>,
    },
}

/// One operation, as its `Azure-AsyncOperation` resource reports it.
#[derive(Clone, Debug)]
pub struct ArmOperation {
    /// Its id (the last segment of its status URL).
    pub id: String,
    /// The cluster.
    pub cluster: String,
    /// What it changes.
    pub target: OperationTarget,
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    pub status: String,
    /// `error`, when it failed or was canceled.
    pub error: Option<Value>,
    pub(crate) started: f64,
    pub(crate) ends_at: Option<f64>,
    pub(crate) fail_with: Option<Value>,
    pub(crate) percent: f64,
}

pub(crate) struct PoolState {
    pub name: String,
    pub mode: PoolMode,
    pub count: u32,
    pub current: String,
    pub target: String,
    pub provisioning: String,
    pub node_image: String,
    pub upgrade_settings: Value,
    /// `recentlyUsedVersions`, newest first: what the pool ran before each upgrade.
    pub recent: Vec<RecentVersion>,
}

/// One `recentlyUsedVersions` entry of an agent pool's upgrade profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecentVersion {
    pub orchestrator_version: String,
    pub node_image_version: String,
    pub timestamp: String,
}

/// How many `recentlyUsedVersions` entries a pool keeps.
const RECENT_VERSIONS: usize = 5;

pub(crate) struct ClusterState {
    pub name: String,
    pub current: String,
    pub target: String,
    pub provisioning: String,
    pub pools: BTreeMap<String, PoolState>,
    /// Removed APIs clients used lately, with the minor that removed them.
    pub deprecated_apis: Vec<(String, String)>,
}

/// A call, as the responder read it.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub segments: Vec<String>,
    pub query: BTreeMap<String, String>,
    pub body: Value,
    pub authorized: bool,
}

/// An answer: status, headers, body.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: Some(body),
        }
    }
}

pub(crate) type Answer = Result<Reply, ArmError>;

pub(crate) struct State {
    pub config: AksConfig,
    pub base: String,
    started: Instant,
    pub clusters: BTreeMap<String, ClusterState>,
    pub operations: Vec<ArmOperation>,
    pub faults: VecDeque<AksFault>,
    pub slow: u32,
    pub latency: Duration,
    pub calls: BTreeMap<String, u64>,
    /// Changes accepted, in words (`PUT managedCluster demo → 1.34.2`).
    pub accepted: Vec<String>,
    /// Control-plane patches reached, for the simulator's API server.
    pub control_plane_reached: Vec<String>,
    seq: u64,
}

const KEYWORDS: [&str; 13] = [
    "subscriptions",
    "resourceGroups",
    "providers",
    "locations",
    "managedClusters",
    "agentPools",
    "upgradeProfiles",
    "kubernetesVersions",
    "operations",
    "operationresults",
    "abort",
    "upgradeNodeImageVersion",
    "availableAgentPoolVersions",
];

fn minor_of(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn patch_key(v: &str) -> Vec<u64> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

impl State {
    pub fn new(config: AksConfig) -> Self {
        let mut s = Self {
            config: config.clone(),
            base: String::new(),
            started: Instant::now(),
            clusters: BTreeMap::new(),
            operations: Vec::new(),
            faults: VecDeque::new(),
            slow: 1,
            latency: Duration::ZERO,
            calls: BTreeMap::new(),
            accepted: Vec::new(),
            control_plane_reached: Vec::new(),
            seq: 0,
        };
        for c in config.clusters {
            s.add_cluster(c);
        }
        s
    }

    pub fn add_cluster(&mut self, c: AksCluster) {
        let pools = c
            .pools
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    PoolState {
                        name: p.name.clone(),
                        mode: p.mode,
                        count: p.count,
                        current: p.version.clone(),
                        target: p.version.clone(),
                        provisioning: "Succeeded".into(),
                        node_image: super::demo::DEMO_NODE_IMAGE.into(),
                        upgrade_settings: json!({ "maxSurge": p.max_surge }),
                        recent: Vec::new(),
                    },
                )
            })
            .collect();
        self.clusters.insert(
            c.name.clone(),
            ClusterState {
                name: c.name.clone(),
                current: c.version.clone(),
                target: c.version,
                provisioning: "Succeeded".into(),
                pools,
                deprecated_apis: Vec::new(),
            },
        );
    }

    /// Simulated seconds since the start.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.config.time_scale
    }

    fn new_id(&mut self) -> String {
        self.seq += 1;
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            0x5e1f_0000_u64 + self.seq,
            self.seq % 0xffff,
            self.seq % 0xfff,
            (self.seq * 7) % 0xfff,
            self.seq * 7919
        )
    }

    fn scaled_ms(&self, d: Duration) -> u64 {
        ((d.as_secs_f64() / self.config.time_scale) * 1000.0).max(1.0) as u64
    }

    fn lro_headers(&self, id: &str, location_too: bool) -> Vec<(&'static str, String)> {
        let ms = self.scaled_ms(self.config.retry_after);
        let base = format!(
            "{}/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}",
            self.base, self.config.subscription, self.config.location
        );
        let mut h = vec![
            (
                "azure-asyncoperation",
                format!("{base}/operations/{id}?api-version=2026-08-01"),
            ),
            ("retry-after", ms.div_ceil(1000).to_string()),
            ("retry-after-ms", ms.to_string()),
        ];
        if location_too {
            h.push((
                "location",
                format!("{base}/operationresults/{id}?api-version=2026-08-01"),
            ));
        }
        h
    }

    /// Finishes control-plane operations whose time has come.
    pub fn tick(&mut self) {
        let now = self.now();
        for i in 0..self.operations.len() {
            let op = &self.operations[i];
            if op.status != "InProgress" {
                continue;
            }
            let OperationTarget::ControlPlane { to } = op.target.clone() else {
                continue;
            };
            let Some(end) = op.ends_at else { continue };
            let cluster = op.cluster.clone();
            if now < end {
                let total = (end - op.started).max(1e-6);
                self.operations[i].percent = ((now - op.started) / total * 100.0).clamp(0.0, 99.0);
                continue;
            }
            let fail = self.operations[i].fail_with.take();
            let op = &mut self.operations[i];
            let Some(c) = self.clusters.get_mut(&cluster) else {
                continue;
            };
            match fail {
                Some(e) => {
                    op.status = "Failed".into();
                    op.error = Some(e);
                    c.provisioning = "Failed".into();
                }
                None => {
                    op.status = "Succeeded".into();
                    op.percent = 100.0;
                    c.current = to.clone();
                    c.provisioning = "Succeeded".into();
                    self.control_plane_reached.push(to);
                }
            }
        }
    }

    fn fault_for(&mut self, call: &str) -> Option<ArmError> {
        let i = self.faults.iter().position(|f| match f {
            AksFault::Answer { call: c, .. } => c.as_deref().is_none_or(|c| c == call),
            _ => false,
        })?;
        let Some(AksFault::Answer { error, times, .. }) = self.faults.get_mut(i) else {
            return None;
        };
        let e = error.clone();
        *times = times.saturating_sub(1);
        if *times == 0 {
            self.faults.remove(i);
        }
        Some(e)
    }

    fn take_failure(&mut self) -> Option<Value> {
        let i = self
            .faults
            .iter()
            .position(|f| matches!(f, AksFault::FailNextOperation { .. }))?;
        match self.faults.remove(i)? {
            AksFault::FailNextOperation {
                code,
                message,
                details,
            } => Some(json!({
                "code": code,
                "message": message,
                "details": details
                    .iter()
                    .map(|(c, m)| json!({ "code": c, "message": m }))
                    .collect::<Vec<_>>(),
            })),
            _ => None,
        }
    }

    /// Routes one call; the name is what [`super::AksMock::calls`] counts.
    pub fn route(&mut self, call: &Call<'_>) -> (String, Answer) {
        self.tick();
        let name = route_name(call);
        *self.calls.entry(name.clone()).or_default() += 1;
        let answer = self.answer(&name, call);
        (name, answer)
    }

    fn answer(&mut self, name: &str, call: &Call<'_>) -> Answer {
        if !call.authorized {
            return Err(ArmError::new(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ));
        }
        let Some(version) = call.query.get("api-version") else {
            return Err(ArmError::new(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        };
        if !valid_api_version(version) {
            return Err(ArmError::new(
                400,
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{version}' is invalid. The supported versions are \
                     '2026-08-01,2025-10-01,2025-08-01,2025-07-01,2024-10-01'."
                ),
            ));
        }
        if let Some(e) = self.fault_for(name) {
            return Err(e);
        }
        // ARM matches its path keywords case-insensitively (ids come back as `resourcegroups`).
        let seg: Vec<&str> = call
            .segments
            .iter()
            .map(|s| {
                KEYWORDS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(s))
                    .copied()
                    .unwrap_or(s.as_str())
            })
            .collect();
        match seg.as_slice() {
            [
                "subscriptions",
                s,
                "providers",
                p,
                "locations",
                loc,
                rest @ ..,
            ] if eq(p, "Microsoft.ContainerService") => {
                self.check_subscription(s)?;
                if !eq(loc, &self.config.location) {
                    return Err(ArmError::new(
                        404,
                        "NoRegisteredProviderFound",
                        format!("No registered resource provider found for location '{loc}'."),
                    ));
                }
                match rest {
                    ["kubernetesVersions"] if call.method == "GET" => {
                        Ok(Reply::ok(self.kubernetes_versions()))
                    }
                    ["operations", id] if call.method == "GET" => self.operation_status(id),
                    ["operationresults", id] if call.method == "GET" => self.operation_result(id),
                    _ => Err(not_found_path(call)),
                }
            }
            [
                "subscriptions",
                s,
                "resourceGroups",
                rg,
                "providers",
                p,
                "managedClusters",
                name,
                rest @ ..,
            ] if eq(p, "Microsoft.ContainerService") => {
                self.check_subscription(s)?;
                if !eq(rg, &self.config.resource_group) {
                    return Err(ArmError::new(
                        404,
                        "ResourceGroupNotFound",
                        format!("Resource group '{rg}' could not be found."),
                    ));
                }
                let Some(cluster) = self.clusters.keys().find(|k| eq(k, name)).cloned() else {
                    return Err(ArmError::new(
                        404,
                        "ResourceNotFound",
                        format!(
                            "The Resource 'Microsoft.ContainerService/managedClusters/{name}' \
                             under resource group '{rg}' was not found."
                        ),
                    ));
                };
                self.cluster_route(&cluster, rest, call)
            }
            _ => Err(not_found_path(call)),
        }
    }

    fn check_subscription(&self, s: &str) -> Result<(), ArmError> {
        if eq(s, &self.config.subscription) {
            Ok(())
        } else {
            Err(ArmError::new(
                404,
                "SubscriptionNotFound",
                format!("The subscription '{s}' could not be found."),
            ))
        }
    }

    fn cluster_route(&mut self, cluster: &str, rest: &[&str], call: &Call<'_>) -> Answer {
        match (call.method, rest) {
            ("GET", []) => Ok(Reply::ok(self.cluster_json(cluster))),
            ("PUT", []) => self.put_cluster(cluster, &call.body),
            ("GET", ["upgradeProfiles", d]) if eq(d, "default") => {
                Ok(Reply::ok(self.cluster_upgrade_profile(cluster)))
            }
            ("GET", ["availableAgentPoolVersions"]) => Ok(Reply::ok(json!({
                "id": format!("{}/availableagentpoolversions", self.cluster_id(cluster)),
                "name": "default",
                "type": "Microsoft.ContainerService/managedClusters/availableAgentpoolVersions",
                "properties": { "agentPoolVersions": self.patches().iter()
                    .map(|(v, _)| json!({ "kubernetesVersion": v }))
                    .collect::<Vec<_>>() },
            }))),
            ("POST", ["abort"]) => self.abort(cluster, None),
            ("GET", ["agentPools"]) => Ok(Reply::ok(self.list_pools(cluster, call))),
            ("GET", ["agentPools", pool]) => {
                let pool = self.pool_name(cluster, pool)?;
                Ok(Reply::ok(self.pool_json(cluster, &pool)))
            }
            ("PUT", ["agentPools", pool]) => {
                let pool = self.pool_name(cluster, pool)?;
                self.put_pool(cluster, &pool, &call.body)
            }
            ("GET", ["agentPools", pool, "upgradeProfiles", d]) if eq(d, "default") => {
                let pool = self.pool_name(cluster, pool)?;
                Ok(Reply::ok(self.pool_upgrade_profile(cluster, &pool)))
            }
            ("POST", ["agentPools", pool, "upgradeNodeImageVersion"]) => {
                let pool = self.pool_name(cluster, pool)?;
                self.node_image(cluster, &pool)
            }
            ("POST", ["agentPools", pool, "abort"]) => {
                let pool = self.pool_name(cluster, pool)?;
                self.abort(cluster, Some(&pool))
            }
            _ => Err(not_found_path(call)),
        }
    }

    fn pool_name(&self, cluster: &str, pool: &str) -> Result<String, ArmError> {
        self.clusters
            .get(cluster)
            .and_then(|c| c.pools.keys().find(|k| eq(k, pool)).cloned())
            .ok_or_else(|| {
                ArmError::new(
                    404,
                    "NotFound",
                    format!("Agent pool '{pool}' not found in managed cluster '{cluster}'."),
                )
            })
    }

    fn cluster_id(&self, cluster: &str) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ContainerService/managedClusters/{cluster}",
            self.config.subscription, self.config.resource_group
        )
    }

    /// Every patch in the catalogue with its minor's flags (`preview`), oldest first.
    fn patches(&self) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = self
            .config
            .versions
            .iter()
            .flat_map(|m| m.patches.iter().map(move |p| (p.clone(), m.preview)))
            .collect();
        out.sort_by_key(|(p, _)| patch_key(p));
        out
    }

    fn kubernetes_versions(&self) -> Value {
        let values: Vec<Value> = self
            .config
            .versions
            .iter()
            .map(|m| {
                let patches: serde_json::Map<String, Value> = m
                    .patches
                    .iter()
                    .map(|p| {
                        let upgrades: Vec<String> = self
                            .patches()
                            .into_iter()
                            .map(|(q, _)| q)
                            .filter(|q| {
                                let (a, b) = (minor_of(p), minor_of(q));
                                patch_key(q) > patch_key(p)
                                    && a.zip(b).is_some_and(|(a, b)| b.1 <= a.1 + 1)
                            })
                            .collect();
                        (p.clone(), json!({ "upgrades": upgrades }))
                    })
                    .collect();
                let plans = if m.lts_only {
                    json!(["AKSLongTermSupport"])
                } else {
                    json!(["KubernetesOfficial", "AKSLongTermSupport"])
                };
                let mut v = json!({
                    "version": m.minor,
                    "capabilities": { "supportPlan": plans },
                    "patchVersions": patches,
                });
                if m.preview {
                    v["isPreview"] = json!(true);
                }
                if m.default {
                    v["isDefault"] = json!(true);
                }
                v
            })
            .collect();
        json!({ "values": values })
    }

    /// Patches newer than `from` within one minor of it.
    fn upgrades_from(&self, from: &str) -> Vec<Value> {
        self.patches()
            .into_iter()
            .filter(|(q, _)| {
                patch_key(q) > patch_key(from)
                    && minor_of(from)
                        .zip(minor_of(q))
                        .is_some_and(|(a, b)| b.1 <= a.1 + 1)
            })
            .map(|(q, preview)| {
                let mut v = json!({ "kubernetesVersion": q });
                if preview {
                    v["isPreview"] = json!(true);
                }
                v
            })
            .collect()
    }

    fn cluster_upgrade_profile(&self, cluster: &str) -> Value {
        let Some(c) = self.clusters.get(cluster) else {
            return Value::Null;
        };
        let pools: Vec<Value> = c
            .pools
            .values()
            .map(|p| {
                json!({
                    "name": p.name,
                    "kubernetesVersion": p.current,
                    "osType": "Linux",
                    "upgrades": self.pool_upgrades(c, p),
                })
            })
            .collect();
        json!({
            "id": format!("{}/upgradeprofiles/default", self.cluster_id(cluster)),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/upgradeprofiles",
            "properties": {
                "controlPlaneProfile": {
                    "kubernetesVersion": c.current,
                    "name": null,
                    "osType": "Linux",
                    "upgrades": self.upgrades_from(&c.current),
                },
                "agentPoolProfiles": pools,
            },
        })
    }

    /// A pool may move to any patch newer than its own up to the control plane's.
    fn pool_upgrades(&self, c: &ClusterState, p: &PoolState) -> Vec<Value> {
        self.patches()
            .into_iter()
            .filter(|(q, _)| {
                patch_key(q) > patch_key(&p.current) && patch_key(q) <= patch_key(&c.current)
            })
            .map(|(q, _)| json!({ "kubernetesVersion": q }))
            .collect()
    }

    fn pool_upgrade_profile(&self, cluster: &str, pool: &str) -> Value {
        let Some(c) = self.clusters.get(cluster) else {
            return Value::Null;
        };
        let Some(p) = c.pools.get(pool) else {
            return Value::Null;
        };
        json!({
            "id": format!("{}/agentPools/{pool}/upgradeProfiles/default", self.cluster_id(cluster)),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
            "properties": {
                "kubernetesVersion": p.current,
                "osType": "Linux",
                "upgrades": self.pool_upgrades(c, p),
                "latestNodeImageVersion": self.config.node_image,
                "recentlyUsedVersions": p.recent.iter().map(|r| json!({
                    "orchestratorVersion": r.orchestrator_version,
                    "nodeImageVersion": r.node_image_version,
                    "timestamp": r.timestamp,
                })).collect::<Vec<_>>(),
            },
        })
    }

    fn pool_properties(&self, p: &PoolState) -> Value {
        json!({
            "count": p.count,
            "vmSize": "Standard_D4ds_v5",
            "osType": "Linux",
            "osSKU": "Ubuntu",
            "type": "VirtualMachineScaleSets",
            "mode": p.mode.as_str(),
            "orchestratorVersion": p.target,
            "currentOrchestratorVersion": p.current,
            "nodeImageVersion": p.node_image,
            "upgradeSettings": p.upgrade_settings,
            "provisioningState": p.provisioning,
            "powerState": { "code": "Running" },
        })
    }

    pub fn cluster_json(&self, cluster: &str) -> Value {
        let Some(c) = self.clusters.get(cluster) else {
            return Value::Null;
        };
        let profiles: Vec<Value> = c
            .pools
            .values()
            .map(|p| {
                let mut v = self.pool_properties(p);
                v["name"] = json!(p.name);
                v
            })
            .collect();
        json!({
            "id": self.cluster_id(cluster),
            "location": self.config.location,
            "name": c.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "sku": { "name": "Base", "tier": "Standard" },
            "properties": {
                "provisioningState": c.provisioning,
                "powerState": { "code": "Running" },
                "kubernetesVersion": c.target,
                "currentKubernetesVersion": c.current,
                "dnsPrefix": format!("{}-dns", c.name),
                "fqdn": format!("{}-dns-k7q2x9c1.hcp.{}.azmk8s.io", c.name, self.config.location),
                "agentPoolProfiles": profiles,
                "supportPlan": "KubernetesOfficial",
                "nodeResourceGroup": format!("MC_{}_{}_{}", self.config.resource_group, c.name, self.config.location),
            },
        })
    }

    pub fn pool_json(&self, cluster: &str, pool: &str) -> Value {
        let Some(p) = self.clusters.get(cluster).and_then(|c| c.pools.get(pool)) else {
            return Value::Null;
        };
        json!({
            "id": format!("{}/agentPools/{pool}", self.cluster_id(cluster)),
            "name": pool,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": self.pool_properties(p),
        })
    }

    fn list_pools(&self, cluster: &str, call: &Call<'_>) -> Value {
        let Some(c) = self.clusters.get(cluster) else {
            return Value::Null;
        };
        let names: Vec<&String> = c.pools.keys().collect();
        let start: usize = call
            .query
            .get("$skipToken")
            .or_else(|| call.query.get("$skiptoken"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let end = (start + self.config.page_size).min(names.len());
        let value: Vec<Value> = names
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|n| self.pool_json(cluster, n))
            .collect();
        let mut out = json!({ "value": value });
        if end < names.len() {
            out["nextLink"] = json!(format!(
                "{}{}/agentPools?api-version=2026-08-01&$skipToken={end}",
                self.base,
                self.cluster_id(cluster)
            ));
        }
        out
    }

    /// The operation running on the cluster or any of its pools.
    fn running(&self, cluster: &str) -> Option<&ArmOperation> {
        self.operations
            .iter()
            .find(|o| o.cluster == cluster && o.status == "InProgress")
    }

    fn refuse_if_busy(&self, cluster: &str) -> Result<(), ArmError> {
        match self.running(cluster) {
            Some(op) => {
                let what = match &op.target {
                    OperationTarget::ControlPlane { .. } => "Upgrading managed cluster".to_string(),
                    OperationTarget::AgentPool { pool, .. } => {
                        format!("Upgrading agent pool {pool}")
                    }
                    OperationTarget::NodeImage { pool } => {
                        format!("Upgrading node image of agent pool {pool}")
                    }
                    OperationTarget::Abort { .. } => "Aborting".to_string(),
                };
                Err(ArmError::new(
                    409,
                    "OperationNotAllowed",
                    format!(
                        "Operation is not allowed because there's an in progress operation \
                         ({what}, operation id {}) on the managed cluster {cluster}. Please wait \
                         for it to finish before starting a new operation.",
                        op.id
                    ),
                ))
            }
            None => Ok(()),
        }
    }

    fn start(&mut self, cluster: &str, target: OperationTarget, ends_in: Option<f64>) -> String {
        let id = self.new_id();
        let now = self.now();
        let fail_with = self.take_failure();
        self.operations.push(ArmOperation {
            id: id.clone(),
            cluster: cluster.to_string(),
            target,
            status: "InProgress".into(),
            error: None,
            started: now,
            ends_at: ends_in.map(|d| now + d * f64::from(self.slow)),
            fail_with,
            percent: 0.0,
        });
        id
    }

    fn put_cluster(&mut self, cluster: &str, body: &Value) -> Answer {
        let Some(to) = body["properties"]["kubernetesVersion"]
            .as_str()
            .map(str::to_string)
        else {
            return Err(ArmError::new(
                400,
                "InvalidParameter",
                "The value of parameter properties.kubernetesVersion is invalid: it is required.",
            ));
        };
        let Some(c) = self.clusters.get(cluster) else {
            return Err(ArmError::new(404, "ResourceNotFound", cluster.to_string()));
        };
        let current = c.current.clone();
        // A minor alone means its newest patch.
        let to = if to.split('.').count() == 2 {
            match self
                .patches()
                .into_iter()
                .filter(|(p, _)| minor_of(p) == minor_of(&to))
                .map(|(p, _)| p)
                .next_back()
            {
                Some(p) => p,
                None => to,
            }
        } else {
            to
        };
        if to == current && to == c.target {
            // Nothing to change: ARM answers with the resource as it is.
            return Ok(Reply::ok(self.cluster_json(cluster)));
        }
        self.refuse_if_busy(cluster)?;
        if !self.patches().iter().any(|(p, _)| *p == to) {
            return Err(ArmError::new(
                400,
                "VersionNotSupported",
                format!(
                    "Version {to} is not supported in this region. Please use [az aks \
                     get-versions] command to get the supported version list in this region."
                ),
            ));
        }
        let (Some(from), Some(want)) = (minor_of(&current), minor_of(&to)) else {
            return Err(ArmError::new(
                400,
                "InvalidParameter",
                format!("bad version {to}"),
            ));
        };
        if patch_key(&to) < patch_key(&current) {
            return Err(ArmError::new(
                400,
                "NotAllowedAgentPoolVersionDowngrade",
                format!("Downgrading the control plane from {current} to {to} is not allowed."),
            ));
        }
        if want.1 > from.1 + 1 {
            return Err(ArmError::new(
                400,
                "UpgradeNotAllowed",
                format!(
                    "Upgrading Kubernetes version {current} to {to} is not allowed. Available \
                     upgrades: {}. Minor versions cannot be skipped.",
                    self.upgrades_from(&current)
                        .iter()
                        .filter_map(|v| v["kubernetesVersion"].as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let oldest_pool = c.pools.values().filter_map(|p| minor_of(&p.current)).min();
        if let Some(p) = oldest_pool
            && want.1 > p.1 + 3
        {
            return Err(ArmError::new(
                400,
                "NodePoolMcVersionIncompatible",
                format!(
                    "Node pool version 1.{} and control plane version {to} are incompatible: \
                     node pools may be at most 3 minors behind.",
                    p.1
                ),
            ));
        }
        let forced = body["properties"]["upgradeSettings"]["overrideSettings"]["forceUpgrade"]
            .as_bool()
            .unwrap_or(false)
            && body["properties"]["upgradeSettings"]["overrideSettings"]["until"]
                .as_str()
                .and_then(|u| u.parse::<jiff::Timestamp>().ok())
                .is_some_and(|u| u > jiff::Timestamp::now());
        if want.1 > from.1 && want.1 >= 26 && !forced {
            let blocking: Vec<&(String, String)> = c
                .deprecated_apis
                .iter()
                .filter(|(_, removed)| minor_of(removed).is_some_and(|r| r.1 <= want.1))
                .collect();
            if let Some((api, removed)) = blocking.first() {
                let mut e = ArmError::new(
                    400,
                    "ValidationError",
                    format!(
                        "Control Plane upgrade is blocked due to recent usage of a Kubernetes \
                         API deprecated in the specified version. Please refer to \
                         https://kubernetes.io/docs/reference/using-api/deprecation-guide to \
                         migrate the usage. To bypass this error, set forceUpgrade in \
                         upgradeSettings.overrideSettings. Bypassing this error without \
                         migrating usage will result in the deprecated Kubernetes API calls \
                         failing. Usage details: 1 error occurred: * usage has been detected on \
                         API {api}, which is removed in {removed}."
                    ),
                );
                e.subcode = Some("UpgradeBlockedOnDeprecatedAPIUsage".into());
                return Err(e);
            }
        }
        let duration = self.config.control_plane_duration.as_secs_f64();
        let id = self.start(
            cluster,
            OperationTarget::ControlPlane { to: to.clone() },
            Some(duration),
        );
        if let Some(c) = self.clusters.get_mut(cluster) {
            c.target = to.clone();
            c.provisioning = "Upgrading".into();
        }
        self.accepted
            .push(format!("PUT managedCluster {cluster} → {to}"));
        Ok(Reply {
            status: 200,
            headers: self.lro_headers(&id, false),
            body: Some(self.cluster_json(cluster)),
        })
    }

    fn put_pool(&mut self, cluster: &str, pool: &str, body: &Value) -> Answer {
        let props = &body["properties"];
        let Some(c) = self.clusters.get(cluster) else {
            return Err(ArmError::new(404, "ResourceNotFound", cluster.to_string()));
        };
        let Some(p) = c.pools.get(pool) else {
            return Err(ArmError::new(404, "NotFound", pool.to_string()));
        };
        let to = props["orchestratorVersion"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| p.target.clone());
        let settings = props["upgradeSettings"].clone();
        for key in ["maxSurge", "maxUnavailable"] {
            if let Some(v) = settings[key].as_str()
                && !valid_count(v)
            {
                return Err(ArmError::new(
                    400,
                    "InvalidParameter",
                    format!(
                        "The value of parameter agentPoolProfile.upgradeSettings.{key} is \
                         invalid: {v:?}; expected an integer or a percentage such as 33%."
                    ),
                ));
            }
        }
        if let Some(b) = settings["undrainableNodeBehavior"].as_str()
            && !matches!(b, "Cordon" | "Schedule")
        {
            return Err(ArmError::new(
                400,
                "InvalidParameter",
                format!(
                    "The value of parameter upgradeSettings.undrainableNodeBehavior is invalid: \
                     {b:?}; accepted values: Cordon, Schedule."
                ),
            ));
        }
        if to == p.current && to == p.target {
            // Settings only: applied at once.
            if settings.is_object()
                && let Some(p) = self
                    .clusters
                    .get_mut(cluster)
                    .and_then(|c| c.pools.get_mut(pool))
            {
                p.upgrade_settings = settings;
            }
            return Ok(Reply::ok(self.pool_json(cluster, pool)));
        }
        self.refuse_if_busy(cluster)?;
        let Some(c) = self.clusters.get(cluster) else {
            return Err(ArmError::new(404, "ResourceNotFound", cluster.to_string()));
        };
        let Some(p) = c.pools.get(pool) else {
            return Err(ArmError::new(404, "NotFound", pool.to_string()));
        };
        if !self.patches().iter().any(|(v, _)| *v == to) {
            return Err(ArmError::new(
                400,
                "VersionNotSupported",
                format!("Version {to} is not supported in this region."),
            ));
        }
        // A rollback: back to a version the pool ran before, with that entry's node image.
        let rollback = p
            .recent
            .iter()
            .find(|r| r.orchestrator_version == to)
            .filter(|_| patch_key(&to) < patch_key(&p.current))
            .map(|r| r.node_image_version.clone());
        if patch_key(&to) < patch_key(&p.current) && rollback.is_none() {
            return Err(ArmError::new(
                400,
                "NotAllowedAgentPoolVersionDowngrade",
                format!(
                    "Downgrading agent pool {pool} from {} to {to} is not allowed.",
                    p.current
                ),
            ));
        }
        if patch_key(&to) > patch_key(&c.current) {
            return Err(ArmError::new(
                400,
                "NodePoolMcVersionIncompatible",
                format!(
                    "Node pool version {to} and control plane version {} are incompatible: a \
                     node pool may not be newer than the control plane.",
                    c.current
                ),
            ));
        }
        let id = self.start(
            cluster,
            OperationTarget::AgentPool {
                pool: pool.to_string(),
                to: to.clone(),
                image: rollback,
            },
            None,
        );
        if let Some(p) = self
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.pools.get_mut(pool))
        {
            // AKS records what the pool ran before the change, newest first.
            let previous = RecentVersion {
                orchestrator_version: p.current.clone(),
                node_image_version: p.node_image.clone(),
                timestamp: jiff::Timestamp::now().to_string(),
            };
            p.recent.retain(|r| {
                (&r.orchestrator_version, &r.node_image_version)
                    != (&previous.orchestrator_version, &previous.node_image_version)
            });
            p.recent.insert(0, previous);
            p.recent.truncate(RECENT_VERSIONS);
            p.target = to.clone();
            p.provisioning = "Upgrading".into();
            if settings.is_object() {
                p.upgrade_settings = settings;
            }
        }
        self.accepted
            .push(format!("PUT agentPool {cluster}/{pool} → {to}"));
        Ok(Reply {
            status: 200,
            headers: self.lro_headers(&id, false),
            body: Some(self.pool_json(cluster, pool)),
        })
    }

    fn node_image(&mut self, cluster: &str, pool: &str) -> Answer {
        self.refuse_if_busy(cluster)?;
        let id = self.start(
            cluster,
            OperationTarget::NodeImage {
                pool: pool.to_string(),
            },
            None,
        );
        if let Some(p) = self
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.pools.get_mut(pool))
        {
            p.provisioning = "UpgradingNodeImageVersion".into();
        }
        self.accepted
            .push(format!("POST upgradeNodeImageVersion {cluster}/{pool}"));
        Ok(Reply {
            status: 202,
            headers: self.lro_headers(&id, true),
            body: Some(self.pool_json(cluster, pool)),
        })
    }

    fn abort(&mut self, cluster: &str, pool: Option<&str>) -> Answer {
        let running = self.operations.iter().position(|o| {
            o.cluster == cluster
                && o.status == "InProgress"
                && match (&o.target, pool) {
                    (OperationTarget::ControlPlane { .. }, None) => true,
                    (
                        OperationTarget::AgentPool { pool: p, .. }
                        | OperationTarget::NodeImage { pool: p },
                        Some(q),
                    ) => p == q,
                    _ => false,
                }
        });
        let Some(i) = running else {
            return Err(ArmError::new(
                400,
                "OperationNotAllowed",
                format!(
                    "There is no operation in progress on {} to abort.",
                    pool.map_or_else(
                        || format!("managed cluster {cluster}"),
                        |p| format!("agent pool {p}")
                    )
                ),
            ));
        };
        let aborted = self.operations[i].id.clone();
        self.operations[i].status = "Canceled".into();
        self.operations[i].error = Some(json!({
            "code": "OperationCanceled",
            "message": format!("The operation {aborted} was canceled by an abort request."),
        }));
        if let Some(c) = self.clusters.get_mut(cluster) {
            match pool {
                None => {
                    c.provisioning = "Canceled".into();
                }
                Some(p) => {
                    if let Some(p) = c.pools.get_mut(p) {
                        p.provisioning = "Canceled".into();
                    }
                }
            }
        }
        let id = self.new_id();
        let now = self.now();
        self.operations.push(ArmOperation {
            id: id.clone(),
            cluster: cluster.to_string(),
            target: OperationTarget::Abort {
                pool: pool.map(str::to_string),
            },
            status: "Succeeded".into(),
            error: None,
            started: now,
            ends_at: Some(now),
            fail_with: None,
            percent: 100.0,
        });
        self.accepted.push(format!(
            "POST abort {cluster}{}",
            pool.map(|p| format!("/{p}")).unwrap_or_default()
        ));
        Ok(Reply {
            status: 202,
            headers: self.lro_headers(&id, true),
            body: None,
        })
    }

    fn find_op(&self, id: &str) -> Result<&ArmOperation, ArmError> {
        self.operations.iter().find(|o| o.id == id).ok_or_else(|| {
            ArmError::new(404, "NotFound", format!("Operation id {id} is not found."))
        })
    }

    fn operation_status(&self, id: &str) -> Answer {
        let op = self.find_op(id)?;
        let mut body = json!({
            "id": format!(
                "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{id}",
                self.config.subscription, self.config.location
            ),
            "name": id,
            "status": op.status,
            "startTime": start_time(op.started, self),
        });
        if op.status == "InProgress" {
            body["percentComplete"] = json!(op.percent.round());
        } else {
            body["endTime"] = json!(jiff::Timestamp::now().to_string());
        }
        if let Some(e) = &op.error {
            body["error"] = e.clone();
        }
        let mut reply = Reply::ok(body);
        if op.status == "InProgress" {
            reply.headers = self
                .lro_headers(id, false)
                .into_iter()
                .filter(|(k, _)| k.starts_with("retry-after"))
                .collect();
        }
        Ok(reply)
    }

    fn operation_result(&self, id: &str) -> Answer {
        let op = self.find_op(id)?;
        match op.status.as_str() {
            "InProgress" => Ok(Reply {
                status: 202,
                headers: self
                    .lro_headers(id, true)
                    .into_iter()
                    .filter(|(k, _)| *k != "azure-asyncoperation")
                    .collect(),
                body: None,
            }),
            "Succeeded" => Ok(Reply {
                status: 204,
                headers: Vec::new(),
                body: None,
            }),
            _ => {
                let e = op.error.clone().unwrap_or(Value::Null);
                Err(ArmError::new(
                    400,
                    e["code"].as_str().unwrap_or("Failed"),
                    e["message"]
                        .as_str()
                        .unwrap_or("the operation failed")
                        .to_string(),
                ))
            }
        }
    }
}

fn start_time(started: f64, s: &State) -> String {
    let ago = ((s.now() - started) / s.config.time_scale).max(0.0);
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs_f64(ago);
    t.to_string()
}

fn valid_count(v: &str) -> bool {
    let n = v.strip_suffix('%').unwrap_or(v);
    !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
}

fn valid_api_version(v: &str) -> bool {
    let d = v.strip_suffix("-preview").unwrap_or(v);
    d.len() == 10 && jiff::civil::Date::strptime("%Y-%m-%d", d).is_ok()
}

fn not_found_path(call: &Call<'_>) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!(
            "The resource type could not be found for {} /{}.",
            call.method,
            call.segments.join("/")
        ),
    )
}

/// The call's name: method and the ARM resource type it addresses.
fn route_name(call: &Call<'_>) -> String {
    let seg: Vec<String> = call
        .segments
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let kind = match seg
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [.., "locations", _, "kubernetesversions"] => "kubernetesVersions",
        [.., "locations", _, "operations", _] => "operationStatus",
        [.., "locations", _, "operationresults", _] => "operationResult",
        [.., "managedclusters", _] => "managedCluster",
        [.., "managedclusters", _, "upgradeprofiles", _] => "upgradeProfile",
        [.., "managedclusters", _, "availableagentpoolversions"] => "availableAgentPoolVersions",
        [.., "managedclusters", _, "abort"] => "abort",
        [.., "managedclusters", _, "agentpools"] => "agentPools",
        [.., "agentpools", _] => "agentPool",
        [.., "agentpools", _, "upgradeprofiles", _] => "agentPool upgradeProfile",
        [.., "agentpools", _, "upgradenodeimageversion"] => "upgradeNodeImageVersion",
        [.., "agentpools", _, "abort"] => "agentPool abort",
        _ => "unknown",
    };
    format!("{} {kind}", call.method)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn put(s: &mut State, to: &str) -> Answer {
        s.put_pool(
            "demo",
            "apps",
            &json!({ "properties": { "orchestratorVersion": to } }),
        )
    }

    /// Ends the pool's running operation as a finished roll would.
    fn finish(s: &mut State, to: &str) {
        for op in &mut s.operations {
            op.status = "Succeeded".into();
        }
        let p = s
            .clusters
            .get_mut("demo")
            .and_then(|c| c.pools.get_mut("apps"))
            .unwrap();
        p.current = to.into();
        p.provisioning = "Succeeded".into();
    }

    #[test]
    fn a_downgrade_is_refused_unless_the_profile_lists_it_as_recently_used() {
        let mut s = State::new(AksConfig::demo());
        let Err(err) = put(&mut s, "1.33.3") else {
            panic!("a downgrade to 1.33.3 was accepted")
        };
        assert_eq!(err.status, 400);
        assert_eq!(err.code, "NotAllowedAgentPoolVersionDowngrade");
        assert!(profile_versions(&s).is_empty());

        s.clusters.get_mut("demo").unwrap().current = "1.34.2".into();
        assert!(put(&mut s, "1.34.2").is_ok());
        finish(&mut s, "1.34.2");
        assert_eq!(profile_versions(&s), ["1.33.5"]);

        // Still refused: 1.33.3 was never used by the pool.
        let Err(err) = put(&mut s, "1.33.3") else {
            panic!("a downgrade to 1.33.3 was accepted")
        };
        assert_eq!(err.code, "NotAllowedAgentPoolVersionDowngrade");
        // Accepted: 1.33.5 is listed, and the rollback puts its node image back.
        assert!(put(&mut s, "1.33.5").is_ok());
        let op = s.operations.last().unwrap();
        assert_eq!(
            op.target,
            OperationTarget::AgentPool {
                pool: "apps".into(),
                to: "1.33.5".into(),
                image: Some(super::super::demo::DEMO_NODE_IMAGE.into()),
            }
        );
        // The rollback is recorded as well: 1.34.2 is the way back now, newest first.
        assert_eq!(profile_versions(&s), ["1.34.2", "1.33.5"]);
    }

    fn profile_versions(s: &State) -> Vec<String> {
        s.pool_upgrade_profile("demo", "apps")["properties"]["recentlyUsedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["orchestratorVersion"].as_str().unwrap().to_string())
            .collect()
    }
}
