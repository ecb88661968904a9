//! The mock's state and its answers to each GKE call, on GKE's REST/JSON wire format.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::model::{GkeCluster, GkeConfig, GkeExclusion, GkePool};
use super::wire::{self, ApiError};

/// An injected fault.
#[derive(Clone, Debug, PartialEq)]
pub enum GkeFault {
    /// The next operation started ends `DONE` with `error` set to this code (a
    /// `google.rpc.Code` name) and message, and these cluster conditions (canonical code,
    /// message).
    FailNextOperation {
        /// `google.rpc.Code` name (`INTERNAL`).
        code: String,
        /// The error message.
        message: String,
        /// `clusterConditions` / `nodepoolConditions` entries (canonical code, message).
        conditions: Vec<(String, String)>,
    },
    /// The next `times` calls of `call` (e.g. `updateMaster`, or `*` for any) answer with
    /// this error.
    Error {
        /// Call name (`getCluster`, `updateNodePool`…), or `*`.
        call: String,
        /// How many calls.
        times: u32,
        /// The error returned.
        error: ApiError,
    },
    /// Operations started from now on take `factor` times longer.
    SlowOperations(u32),
}

/// An armed failure: `google.rpc.Code` name, message, conditions (canonical code, message).
pub(crate) type Failure = (String, String, Vec<(String, String)>);

/// How a node-pool operation replaces nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Surge: `max_surge` new nodes join before old ones go, `max_unavailable` old ones may
    /// go before their replacement joins.
    Surge {
        /// `maxSurge`.
        max_surge: u32,
        /// `maxUnavailable`.
        max_unavailable: u32,
    },
    /// Blue-green: the whole green pool first, then the blue pool drained in batches.
    BlueGreen {
        /// `standardRolloutPolicy.batchNodeCount`.
        batch_nodes: Option<u32>,
        /// `standardRolloutPolicy.batchPercentage` (0–1).
        batch_percentage: Option<f64>,
        /// `standardRolloutPolicy.batchSoakDuration`, seconds.
        batch_soak: f64,
        /// `nodePoolSoakDuration`, seconds.
        node_pool_soak: f64,
    },
}

/// What an operation changes.
#[derive(Clone, Debug, PartialEq)]
pub enum OpTarget {
    /// The control plane, to a full version.
    ControlPlane {
        /// Target version.
        version: String,
    },
    /// A node pool, to a full version.
    NodePool {
        /// The pool.
        pool: String,
        /// Target version.
        version: String,
        /// How nodes are replaced.
        strategy: Strategy,
        /// True for a rollback (`rollback_node_pool_upgrade`).
        rollback: bool,
        /// Whether drains respect PodDisruptionBudgets (rollbacks may ask not to).
        respect_pdb: bool,
    },
}

/// An operation the mock has accepted.
#[derive(Clone, Debug)]
pub struct GkeOperation {
    /// Its short id (`operation-…`), as `Operation.name` carries it.
    pub name: String,
    /// The cluster.
    pub cluster: String,
    /// What it changes.
    pub target: OpTarget,
    /// `PENDING`, `RUNNING`, `DONE` or `ABORTING`.
    pub status: String,
    /// `error` once done with a failure: (`google.rpc.Code` name, message).
    pub error: Option<(String, String)>,
    /// Cluster or node-pool conditions (canonical code, message).
    pub conditions: Vec<(String, String)>,
    /// Nodes done and in total (node-pool operations).
    pub progress: (u32, u32),
    /// What the roller is doing, for `detail`.
    pub detail: String,
    pub(crate) created: f64,
    pub(crate) running_at: f64,
    pub(crate) finish: f64,
    pub(crate) ended: Option<f64>,
    pub(crate) fail_with: Option<Failure>,
    pub(crate) cancel: bool,
}

impl GkeOperation {
    /// True until `DONE`.
    pub fn is_running(&self) -> bool {
        self.status != "DONE"
    }
}

pub(crate) struct PoolState {
    pub spec: GkePool,
    pub status: String,
    pub settings: Option<Value>,
    pub phase: Option<String>,
    pub green_version: Option<String>,
    /// The version before the last upgrade, while a rollback is still possible.
    pub previous_version: Option<String>,
    pub complete_requested: bool,
    pub rollback_requested: Option<String>,
}

pub(crate) struct ClusterState {
    pub spec: GkeCluster,
    pub pools: BTreeMap<String, PoolState>,
    pub history: Vec<(String, String, f64, f64, String)>,
    /// A rollback-safe minor upgrade's step one, once its operation is accepted: the
    /// operation, the soak it asked for (seconds) and the version it started from.
    pub pending_soak: Option<(String, f64, String)>,
    /// The soak of a rollback-safe upgrade whose step one is done: rollback is possible.
    pub soak: Option<ControlPlaneSoak>,
    /// How the last soak ended (`ended at …`, `was completed`, `was rolled back`), for
    /// GKE's refusal of a later downgrade.
    pub soak_ended: Option<String>,
}

/// A control plane in the rollback-safe mode of a two-step minor upgrade.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ControlPlaneSoak {
    /// The version before step one (`previousVersion`).
    pub previous: String,
    /// When the soak ends (`controlPlaneUpgradeRollbackEndTime`), simulated seconds.
    pub end: f64,
}

/// GKE's bounds on `controlPlaneSoakDuration`: six hours to seven days.
const MIN_CONTROL_PLANE_SOAK: f64 = 6.0 * 3600.0;
const MAX_CONTROL_PLANE_SOAK: f64 = 7.0 * 24.0 * 3600.0;

/// Everything the mock holds.
pub(crate) struct State {
    pub config: GkeConfig,
    pub clusters: BTreeMap<String, ClusterState>,
    pub operations: Vec<GkeOperation>,
    pub faults: VecDeque<GkeFault>,
    pub slow_factor: u32,
    pub started: Instant,
    pub epoch: f64,
    pub next_id: u64,
    pub calls: BTreeMap<String, u64>,
    /// Control-plane versions reached, for the simulator.
    pub control_plane_reached: Vec<String>,
}

/// A request the router has parsed.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub segments: Vec<String>,
    pub body: Value,
    /// Whether enums go out as numbers (`$alt=json;enum-encoding=int`).
    pub ints: bool,
}

type Answer = Result<Value, ApiError>;

/// `1.34.1-gke.1829001` → (1, 34, 1, 1829001).
pub(crate) fn version_key(v: &str) -> (u64, u64, u64, u64) {
    let (base, build) = v.split_once("-gke.").unwrap_or((v, "0"));
    let mut parts = base.split('.').map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        build.parse().unwrap_or(0),
    )
}

pub(crate) fn minor_of(v: &str) -> u64 {
    version_key(v).1
}

/// The kubelet version a node at a GKE version reports (`v1.34.1-gke.1829001`).
pub(crate) fn kubelet_of(v: &str) -> String {
    format!("v{v}")
}

impl State {
    pub fn new(config: GkeConfig) -> Self {
        let epoch = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        let mut s = Self {
            clusters: BTreeMap::new(),
            operations: Vec::new(),
            faults: VecDeque::new(),
            slow_factor: 1,
            started: Instant::now(),
            epoch,
            next_id: 1,
            calls: BTreeMap::new(),
            control_plane_reached: Vec::new(),
            config,
        };
        for c in s.config.clusters.clone() {
            s.add_cluster(c);
        }
        s
    }

    pub fn add_cluster(&mut self, c: GkeCluster) {
        let pools = c
            .pools
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    PoolState {
                        spec: p.clone(),
                        status: "RUNNING".into(),
                        settings: None,
                        phase: None,
                        green_version: None,
                        previous_version: None,
                        complete_requested: false,
                        rollback_requested: None,
                    },
                )
            })
            .collect();
        self.clusters.insert(
            c.name.clone(),
            ClusterState {
                spec: c,
                pools,
                history: Vec::new(),
                pending_soak: None,
                soak: None,
                soak_ended: None,
            },
        );
    }

    pub fn now(&self) -> f64 {
        self.epoch + self.started.elapsed().as_secs_f64() * self.config.time_scale
    }

    fn new_op_name(&mut self) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!(
            "operation-{}-{:08x}-4c1e-4f7a-9b2d-{:012x}",
            (self.now() * 1000.0) as u64,
            0x5eed_0000 + n,
            n * 104_729
        )
    }

    fn parent(&self) -> String {
        format!(
            "projects/{}/locations/{}",
            self.config.project, self.config.location
        )
    }

    fn self_link(&self, rest: &str) -> String {
        format!(
            "https://container.googleapis.com/v1/{}/{rest}",
            self.parent()
        )
    }

    /// Master versions, oldest first.
    fn master_versions(&self) -> Vec<String> {
        self.config
            .versions
            .iter()
            .filter(|v| minor_of(v) >= self.config.min_master_minor)
            .cloned()
            .collect()
    }

    /// Resolves a requested version (`latest`, `-`, `1.34`, `1.34.1`, `1.34.1-gke.1829001`)
    /// among `valid`, as GKE does.
    fn resolve(valid: &[String], asked: &str, default: &str) -> Option<String> {
        match asked {
            "-" => Some(default.to_string()),
            "latest" => valid.last().cloned(),
            _ if asked.contains("-gke.") => valid.iter().find(|v| *v == asked).cloned(),
            _ => valid
                .iter()
                .rev()
                .find(|v| {
                    v.starts_with(&format!("{asked}.")) || v.starts_with(&format!("{asked}-"))
                })
                .cloned(),
        }
    }

    fn running_on(&self, cluster: &str) -> Option<&GkeOperation> {
        self.operations
            .iter()
            .find(|o| o.cluster == cluster && o.is_running())
    }

    fn busy(&self, cluster: &str) -> Result<(), ApiError> {
        match self.running_on(cluster) {
            Some(op) => Err(ApiError::precondition(format!(
                "Cluster is running incompatible operation {}.",
                op.name
            ))),
            None => Ok(()),
        }
    }

    /// Moves operations along: PENDING → RUNNING after the pending time, control-plane
    /// upgrades DONE at their finish time (node-pool operations are finished by the roller).
    pub fn tick(&mut self) {
        let now = self.now();
        let mut reached = Vec::new();
        for op in self.operations.iter_mut() {
            match op.status.as_str() {
                "PENDING" if now >= op.running_at => op.status = "RUNNING".into(),
                "RUNNING" | "ABORTING" => {
                    let OpTarget::ControlPlane { version } = &op.target else {
                        continue;
                    };
                    if op.status == "ABORTING" {
                        op.status = "DONE".into();
                        op.error = Some(("CANCELLED".into(), "Operation was canceled.".into()));
                        op.ended = Some(now);
                        continue;
                    }
                    if now < op.finish {
                        op.progress = (
                            ((now - op.running_at) / (op.finish - op.running_at) * 100.0)
                                .clamp(0.0, 99.0) as u32,
                            100,
                        );
                        continue;
                    }
                    op.status = "DONE".into();
                    op.ended = Some(now);
                    op.progress = (100, 100);
                    if let Some((code, message, conditions)) = op.fail_with.take() {
                        op.error = Some((code, message));
                        op.conditions = conditions;
                    } else {
                        reached.push((
                            op.cluster.clone(),
                            op.name.clone(),
                            version.clone(),
                            op.created,
                        ));
                    }
                }
                _ => {}
            }
        }
        for (cluster, op, version, started) in reached {
            if let Some(c) = self.clusters.get_mut(&cluster) {
                let from = std::mem::replace(&mut c.spec.master_version, version.clone());
                if from != version {
                    c.history.push((
                        from.clone(),
                        version.clone(),
                        started,
                        now,
                        "SUCCEEDED".into(),
                    ));
                }
                match c.pending_soak.take() {
                    // Step one is done: the control plane soaks, and can go back until the end.
                    Some((name, secs, previous)) if name == op => {
                        c.soak = Some(ControlPlaneSoak {
                            previous,
                            end: now + secs,
                        });
                        c.soak_ended = None;
                    }
                    other => c.pending_soak = other,
                }
                if c.soak.as_ref().is_some_and(|s| s.previous == version) {
                    c.soak = None;
                    c.soak_ended = Some("was rolled back".into());
                }
            }
            self.control_plane_reached.push(version);
        }
        for c in self.clusters.values_mut() {
            if let Some(end) = c.soak.as_ref().map(|s| s.end)
                && now >= end
            {
                // GKE performs step two itself when the soak ends.
                c.soak = None;
                c.soak_ended = Some(format!("ended at {}", wire::timestamp(end)));
            }
        }
    }

    /// Ends a control-plane soak now, as the passing of its end time would (tests use it
    /// instead of waiting).
    pub fn end_soak(&mut self, cluster: &str) -> bool {
        let now = self.now();
        match self.clusters.get_mut(cluster) {
            Some(c) if c.soak.is_some() => {
                c.soak = None;
                c.soak_ended = Some(format!("ended at {}", wire::timestamp(now)));
                true
            }
            _ => false,
        }
    }

    fn take_fault(&mut self, call: &str) -> Option<ApiError> {
        let i = self.faults.iter().position(|f| {
            matches!(f, GkeFault::Error { call: c, times, .. } if (c == call || c == "*") && *times > 0)
        })?;
        let GkeFault::Error { times, error, .. } = &mut self.faults[i] else {
            return None;
        };
        *times -= 1;
        let e = error.clone();
        if *times == 0 {
            self.faults.remove(i);
        }
        Some(e)
    }

    fn take_failure(&mut self) -> Option<Failure> {
        let i = self
            .faults
            .iter()
            .position(|f| matches!(f, GkeFault::FailNextOperation { .. }))?;
        match self.faults.remove(i) {
            Some(GkeFault::FailNextOperation {
                code,
                message,
                conditions,
            }) => Some((code, message, conditions)),
            _ => None,
        }
    }

    /// Routes one call; returns the call's name (for counting) and the answer.
    pub fn route(&mut self, call: &Call<'_>) -> (String, Answer) {
        self.tick();
        let name = call_name(call);
        *self.calls.entry(name.clone()).or_default() += 1;
        if let Some(e) = self.take_fault(&name) {
            return (name, Err(e));
        }
        let answer = self.answer(&name, call);
        (name, answer)
    }

    fn answer(&mut self, name: &str, call: &Call<'_>) -> Answer {
        let seg = &call.segments;
        // v1 / projects / P / locations / L / …
        if seg.len() < 5 || seg[0] != "v1" || seg[1] != "projects" || seg[3] != "locations" {
            return Err(ApiError::not_found(format!(
                "Method not found: {} /{}",
                call.method,
                seg.join("/")
            )));
        }
        if seg[2] != self.config.project {
            return Err(ApiError::not_found(format!(
                "Project \"{}\" not found.",
                seg[2]
            )));
        }
        if seg[4] != self.config.location {
            return Err(ApiError::not_found(format!(
                "Location \"{}\" not found.",
                seg[4]
            )));
        }
        let ints = call.ints;
        let cluster = seg.get(6).map(|c| strip_verb(c).to_string());
        let pool = seg.get(8).map(|p| strip_verb(p).to_string());
        match name {
            "getServerConfig" => Ok(self.server_config(ints)),
            "listClusters" => {
                let names: Vec<String> = self.clusters.keys().cloned().collect();
                let list: Vec<Value> = names
                    .iter()
                    .filter_map(|n| self.cluster_json(n, ints).ok())
                    .collect();
                Ok(json!({ "clusters": list }))
            }
            "getCluster" => self.cluster_json(&cluster.unwrap_or_default(), ints),
            "fetchClusterUpgradeInfo" => self.upgrade_info(&cluster.unwrap_or_default(), ints),
            "updateMaster" => {
                let c = cluster.unwrap_or_default();
                let asked = call.body["masterVersion"].as_str().unwrap_or_default();
                if asked.is_empty() {
                    return Err(ApiError::invalid("Master version must be specified."));
                }
                self.update_master(&c, asked, None, ints)
            }
            "updateCluster" => self.update_cluster(&cluster.unwrap_or_default(), &call.body, ints),
            "completeControlPlaneUpgrade" => {
                self.complete_control_plane(&cluster.unwrap_or_default(), ints)
            }
            "listNodePools" => {
                let c = cluster.unwrap_or_default();
                self.cluster_exists(&c)?;
                let names: Vec<String> = self.clusters[&c].pools.keys().cloned().collect();
                let pools: Vec<Value> = names
                    .iter()
                    .filter_map(|p| self.pool_json(&c, p, ints).ok())
                    .collect();
                Ok(json!({ "nodePools": pools }))
            }
            "getNodePool" => self.pool_json(
                &cluster.unwrap_or_default(),
                &pool.unwrap_or_default(),
                ints,
            ),
            "fetchNodePoolUpgradeInfo" => {
                let (c, p) = (cluster.unwrap_or_default(), pool.unwrap_or_default());
                let pool = self.pool(&c, &p)?;
                let version = pool.spec.version.clone();
                let target = self
                    .master_versions()
                    .into_iter()
                    .rev()
                    .find(|v| minor_of(v) == minor_of(&self.clusters[&c].spec.master_version));
                Ok(json!({
                    "minorTargetVersion": target.clone().unwrap_or(version.clone()),
                    "patchTargetVersion": target.unwrap_or(version),
                    "autoUpgradeStatus": [wire::AUTO_UPGRADE_STATUS.write("ACTIVE", ints)],
                }))
            }
            "updateNodePool" => self.update_pool(
                &cluster.unwrap_or_default(),
                &pool.unwrap_or_default(),
                &call.body,
                ints,
            ),
            "rollbackNodePoolUpgrade" => self.rollback(
                &cluster.unwrap_or_default(),
                &pool.unwrap_or_default(),
                &call.body,
                ints,
            ),
            "completeNodePoolUpgrade" => {
                self.complete(&cluster.unwrap_or_default(), &pool.unwrap_or_default())
            }
            "listOperations" => {
                let ops: Vec<Value> = self
                    .operations
                    .iter()
                    .map(|o| self.op_json(o, ints))
                    .collect();
                Ok(json!({ "operations": ops }))
            }
            "getOperation" => {
                let id = strip_verb(&seg[6]).to_string();
                let op = self.find_op(&id)?;
                Ok(self.op_json(op, ints))
            }
            "cancelOperation" => {
                let id = strip_verb(&seg[6]).to_string();
                self.find_op(&id)?;
                let op = self
                    .operations
                    .iter_mut()
                    .find(|o| o.name == id)
                    .ok_or_else(|| ApiError::not_found("gone"))?;
                if op.status == "DONE" {
                    return Err(ApiError::precondition(format!(
                        "Operation \"{id}\" has already completed."
                    )));
                }
                op.cancel = true;
                op.status = "ABORTING".into();
                Ok(json!({}))
            }
            _ => Err(ApiError::not_found(format!(
                "Method not found: {} /{}",
                call.method,
                seg.join("/")
            ))),
        }
    }

    fn find_op(&self, id: &str) -> Result<&GkeOperation, ApiError> {
        self.operations
            .iter()
            .find(|o| o.name == id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Operation \"{}/operations/{id}\" not found.",
                    self.parent()
                ))
            })
    }

    fn cluster_exists(&self, c: &str) -> Result<(), ApiError> {
        if self.clusters.contains_key(c) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "Not found: {}/clusters/{c}.",
                self.parent()
            )))
        }
    }

    fn pool(&self, c: &str, p: &str) -> Result<&PoolState, ApiError> {
        self.cluster_exists(c)?;
        self.clusters[c].pools.get(p).ok_or_else(|| {
            ApiError::not_found(format!(
                "Not found: {}/clusters/{c}/nodePools/{p}.",
                self.parent()
            ))
        })
    }

    fn server_config(&self, ints: bool) -> Value {
        let mut nodes = self.config.versions.clone();
        nodes.reverse();
        let mut masters = self.master_versions();
        masters.reverse();
        let channels: Vec<Value> = ["RAPID", "REGULAR", "STABLE", "EXTENDED"]
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                // Faster channels offer newer versions first.
                let keep = masters.len().saturating_sub(i);
                let valid: Vec<&String> = masters.iter().skip(masters.len() - keep).collect();
                let valid: Vec<&String> = if *ch == "RAPID" {
                    masters.iter().collect()
                } else {
                    valid
                };
                json!({
                    "channel": wire::CHANNEL.write(ch, ints),
                    "defaultVersion": valid.get(1).or(valid.first()).cloned(),
                    "validVersions": valid,
                    "upgradeTargetVersion": valid.first().cloned(),
                })
            })
            .collect();
        json!({
            "defaultClusterVersion": self.config.default_version,
            "validNodeVersions": nodes,
            "defaultImageType": "COS_CONTAINERD",
            "validImageTypes": ["COS_CONTAINERD", "UBUNTU_CONTAINERD", "WINDOWS_LTSC_CONTAINERD"],
            "validMasterVersions": masters,
            "channels": channels,
        })
    }

    pub(crate) fn cluster_json(&self, c: &str, ints: bool) -> Answer {
        self.cluster_exists(c)?;
        let cs = &self.clusters[c];
        let busy = self.running_on(c).is_some();
        let names: Vec<String> = cs.pools.keys().cloned().collect();
        let pools: Vec<Value> = names
            .iter()
            .filter_map(|p| self.pool_json(c, p, ints).ok())
            .collect();
        let oldest = cs
            .pools
            .values()
            .map(|p| p.spec.version.clone())
            .min_by_key(|v| version_key(v))
            .unwrap_or_else(|| cs.spec.master_version.clone());
        let mut window = Map::new();
        if let Some((start, end, rrule)) = &cs.spec.maintenance_window {
            window.insert(
                "recurringWindow".into(),
                json!({ "window": { "startTime": start, "endTime": end }, "recurrence": rrule }),
            );
        }
        if !cs.spec.exclusions.is_empty() {
            let ex: Map<String, Value> = cs
                .spec
                .exclusions
                .iter()
                .map(|e: &GkeExclusion| {
                    (
                        e.name.clone(),
                        json!({
                            "startTime": e.start,
                            "endTime": e.end,
                            "maintenanceExclusionOptions": { "scope": wire::EXCLUSION_SCOPE.write(&e.scope, ints) },
                        }),
                    )
                })
                .collect();
            window.insert("maintenanceExclusions".into(), Value::Object(ex));
        }
        let mut out = json!({
            "name": c,
            "selfLink": self.self_link(&format!("clusters/{c}")),
            "location": self.config.location,
            "zone": self.config.location,
            "endpoint": "34.118.224.10",
            "initialClusterVersion": cs.spec.master_version,
            "currentMasterVersion": cs.spec.master_version,
            "currentNodeVersion": oldest,
            "currentNodeCount": cs.pools.values().map(|p| p.spec.node_count).sum::<u32>(),
            "status": wire::CLUSTER_STATUS.write(if busy { "RECONCILING" } else { "RUNNING" }, ints),
            "nodePools": pools,
            "maintenancePolicy": { "window": window, "resourceVersion": "e3b0c442" },
        });
        if cs.spec.channel != "UNSPECIFIED" {
            out["releaseChannel"] =
                json!({ "channel": wire::CHANNEL.write(&cs.spec.channel, ints) });
        }
        Ok(out)
    }

    pub(crate) fn pool_json(&self, c: &str, p: &str, ints: bool) -> Answer {
        let ps = self.pool(c, p)?;
        let mut settings = ps.settings.clone().unwrap_or_else(|| {
            json!({ "maxSurge": ps.spec.max_surge, "maxUnavailable": ps.spec.max_unavailable, "strategy": "SURGE" })
        });
        if let Some(s) = settings
            .get("strategy")
            .and_then(|s| wire::STRATEGY.read(s))
        {
            settings["strategy"] = wire::STRATEGY.write(s, ints);
        }
        let mut out = json!({
            "name": p,
            "version": ps.spec.version,
            "initialNodeCount": ps.spec.node_count,
            "status": wire::POOL_STATUS.write(&ps.status, ints),
            "selfLink": self.self_link(&format!("clusters/{c}/nodePools/{p}")),
            "config": { "machineType": "e2-standard-4", "imageType": "COS_CONTAINERD", "diskSizeGb": 100 },
            "management": { "autoUpgrade": true, "autoRepair": true },
            "upgradeSettings": settings,
        });
        if let Some(phase) = &ps.phase {
            out["updateInfo"] = json!({ "blueGreenInfo": {
                "phase": wire::BLUE_GREEN_PHASE.write(phase, ints),
                "greenPoolVersion": ps.green_version,
            }});
        }
        Ok(out)
    }

    fn upgrade_info(&self, c: &str, ints: bool) -> Answer {
        self.cluster_exists(c)?;
        let cs = &self.clusters[c];
        let current = &cs.spec.master_version;
        let minor = minor_of(current);
        let masters = self.master_versions();
        let minor_target = masters.iter().rev().find(|v| minor_of(v) == minor + 1);
        let patch_target = masters
            .iter()
            .rev()
            .find(|v| minor_of(v) == minor && version_key(v) > version_key(current));
        let now = jiff::Timestamp::from_second(self.now() as i64).unwrap_or_default();
        let active_exclusion = cs.spec.exclusions.iter().find(|e| {
            let s = e.start.parse::<jiff::Timestamp>().ok();
            let t = e.end.parse::<jiff::Timestamp>().ok();
            matches!((s, t), (Some(s), Some(t)) if s <= now && now < t)
        });
        let (status, reasons): (&str, Vec<&str>) = match active_exclusion.map(|e| e.scope.as_str())
        {
            Some("NO_UPGRADES") => ("UPGRADE_PAUSED", vec!["MAINTENANCE_EXCLUSION_NO_UPGRADES"]),
            Some(_) => (
                "MINOR_UPGRADE_PAUSED",
                vec!["MAINTENANCE_EXCLUSION_NO_MINOR_UPGRADES"],
            ),
            None => ("ACTIVE", vec![]),
        };
        // Standard support: 14 months from a minor's release, roughly four months apart.
        let eos = |extended: bool| {
            let months =
                i64::try_from(minor).unwrap_or(0) * 4 - 122 + if extended { 10 } else { 0 };
            let base = jiff::civil::date(2026, 1, 31);
            base.checked_add(jiff::Span::new().months(months))
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp().to_string())
        };
        let details: Vec<Value> = cs
            .history
            .iter()
            .map(|(from, to, start, end, state)| {
                json!({
                    "state": if ints { json!(if state == "SUCCEEDED" { 2 } else { 1 }) } else { json!(state) },
                    "startTime": wire::timestamp(*start),
                    "endTime": wire::timestamp(*end),
                    "initialVersion": from,
                    "targetVersion": to,
                })
            })
            .collect();
        let mut out = json!({
            "autoUpgradeStatus": [wire::AUTO_UPGRADE_STATUS.write(status, ints)],
            "pausedReason": reasons.iter().map(|r| wire::PAUSED_REASON.write(r, ints)).collect::<Vec<_>>(),
            "upgradeDetails": details,
            "endOfStandardSupportTimestamp": eos(false),
            "endOfExtendedSupportTimestamp": eos(true),
        });
        if let Some(soak) = &cs.soak {
            out["rollbackSafeUpgradeStatus"] = json!({
                "mode": if ints { json!(1) } else { json!("KCP_MINOR_UPGRADE_ROLLBACK_SAFE_MODE") },
                "controlPlaneUpgradeRollbackEndTime": wire::timestamp(soak.end),
                "previousVersion": soak.previous,
            });
        }
        if let Some(t) = minor_target {
            out["minorTargetVersion"] = json!(t);
        }
        if let Some(t) = patch_target {
            out["patchTargetVersion"] = json!(t);
        }
        Ok(out)
    }

    fn start_op(&mut self, cluster: &str, target: OpTarget, duration: Duration) -> GkeOperation {
        let now = self.now();
        let pending = self.config.pending.as_secs_f64();
        let run = duration.as_secs_f64() * f64::from(self.slow_factor);
        let total = match &target {
            OpTarget::NodePool { pool, .. } => self
                .clusters
                .get(cluster)
                .and_then(|c| c.pools.get(pool))
                .map_or(0, |p| p.spec.node_count),
            OpTarget::ControlPlane { .. } => 100,
        };
        let op = GkeOperation {
            name: self.new_op_name(),
            cluster: cluster.to_string(),
            target,
            status: "PENDING".into(),
            error: None,
            conditions: Vec::new(),
            progress: (0, total),
            detail: String::new(),
            created: now,
            running_at: now + pending,
            finish: now + pending + run,
            ended: None,
            fail_with: self.take_failure(),
            cancel: false,
        };
        self.operations.push(op.clone());
        op
    }

    /// `updateMaster`, or `updateCluster` with `desiredMasterVersion`: `soak` (seconds) asks
    /// for a rollback-safe minor upgrade. During a soak the one move accepted is back to the
    /// previous version (the rollback); after it, a downgrade is refused.
    fn update_master(&mut self, c: &str, asked: &str, soak: Option<f64>, ints: bool) -> Answer {
        self.cluster_exists(c)?;
        let current = self.clusters[c].spec.master_version.clone();
        if let Some(s) = self.clusters[c].soak.clone() {
            let back = asked == s.previous
                || s.previous.starts_with(&format!("{asked}."))
                || s.previous.starts_with(&format!("{asked}-"));
            if !back {
                return Err(ApiError::precondition(format!(
                    "Cluster \"{c}\" is in rollback-safe mode after its control plane upgrade \
                     from \"{}\" to \"{current}\" until {}: the master can only be rolled back to \
                     \"{}\" or the upgrade completed (completeControlPlaneUpgrade).",
                    s.previous,
                    wire::timestamp(s.end),
                    s.previous
                )));
            }
            if soak.is_some() {
                return Err(ApiError::invalid(
                    "desiredRollbackSafeUpgrade cannot be set on a rollback.",
                ));
            }
            self.busy(c)?;
            let d = self.config.master_upgrade;
            let op = self.start_op(
                c,
                OpTarget::ControlPlane {
                    version: s.previous,
                },
                d,
            );
            return Ok(self.op_json(&op, ints));
        }
        let version = Self::resolve(&self.master_versions(), asked, &self.config.default_version)
            .ok_or_else(|| {
            ApiError::invalid(format!("Master version \"{asked}\" is unsupported."))
        })?;
        let (from, to) = (minor_of(&current), minor_of(&version));
        if version_key(&version) <= version_key(&current) && to <= from {
            if to < from {
                if let Some(ended) = &self.clusters[c].soak_ended {
                    return Err(ApiError::precondition(format!(
                        "Cluster \"{c}\" is not in rollback-safe mode: the soak of its last \
                         control plane upgrade {ended}. The master cannot be rolled back from \
                         \"{current}\" to \"{version}\"."
                    )));
                }
                return Err(ApiError::invalid(format!(
                    "Master cannot be downgraded from \"{current}\" to \"{version}\"."
                )));
            }
            if version == current {
                return Err(ApiError::invalid(format!(
                    "Cluster is already at version \"{current}\"."
                )));
            }
        }
        if to > from + 1 {
            return Err(ApiError::invalid(format!(
                "Master cannot be upgraded from \"{current}\" to \"{version}\": upgrades may move \
                 at most one minor version at a time."
            )));
        }
        if soak.is_some() && to == from {
            return Err(ApiError::invalid(format!(
                "desiredRollbackSafeUpgrade applies to minor version upgrades only; \"{current}\" \
                 to \"{version}\" is a patch upgrade."
            )));
        }
        self.busy(c)?;
        let d = self.config.master_upgrade;
        let op = self.start_op(c, OpTarget::ControlPlane { version }, d);
        if let (Some(secs), Some(cs)) = (soak, self.clusters.get_mut(c)) {
            cs.pending_soak = Some((op.name.clone(), secs, current));
        }
        Ok(self.op_json(&op, ints))
    }

    /// `updateCluster`: this mock serves the master upgrade it can carry
    /// (`desiredMasterVersion`, optionally `desiredRollbackSafeUpgrade`).
    fn update_cluster(&mut self, c: &str, body: &Value, ints: bool) -> Answer {
        self.cluster_exists(c)?;
        let update = &body["update"];
        let Some(fields) = update.as_object().filter(|u| !u.is_empty()) else {
            return Err(ApiError::invalid(
                "At least one field to update must be specified (update).",
            ));
        };
        if let Some(other) = fields
            .keys()
            .find(|k| *k != "desiredMasterVersion" && *k != "desiredRollbackSafeUpgrade")
        {
            return Err(ApiError::invalid(format!(
                "update.{other} is not served by this GKE mock (it serves desiredMasterVersion \
                 and desiredRollbackSafeUpgrade)."
            )));
        }
        let asked = update["desiredMasterVersion"].as_str().unwrap_or_default();
        if asked.is_empty() {
            return Err(ApiError::invalid(
                "desiredRollbackSafeUpgrade is applied with an upgrade: set \
                 update.desiredMasterVersion too.",
            ));
        }
        let soak = match update.get("desiredRollbackSafeUpgrade") {
            None | Some(Value::Null) => None,
            Some(r) => {
                let v = &r["controlPlaneSoakDuration"];
                let secs = if v.is_null() {
                    MIN_CONTROL_PLANE_SOAK
                } else {
                    wire::duration_secs(v).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "Invalid value for \
                             update.desiredRollbackSafeUpgrade.controlPlaneSoakDuration: {v}"
                        ))
                    })?
                };
                if !(MIN_CONTROL_PLANE_SOAK..=MAX_CONTROL_PLANE_SOAK).contains(&secs) {
                    return Err(ApiError::invalid(format!(
                        "update.desiredRollbackSafeUpgrade.controlPlaneSoakDuration {v} is out of \
                         range: it must be between 6 hours (21600s) and 7 days (604800s)."
                    )));
                }
                Some(secs)
            }
        };
        self.update_master(c, asked, soak, ints)
    }

    /// `completeControlPlaneUpgrade`: step two now; the upgrade can no longer be rolled back.
    fn complete_control_plane(&mut self, c: &str, ints: bool) -> Answer {
        self.cluster_exists(c)?;
        if self.clusters[c].soak.is_none() {
            return Err(ApiError::precondition(format!(
                "Cluster \"{c}\" is not in rollback-safe mode: there is no control plane upgrade \
                 to complete."
            )));
        }
        self.busy(c)?;
        let version = self.clusters[c].spec.master_version.clone();
        if let Some(cs) = self.clusters.get_mut(c) {
            cs.soak = None;
            cs.soak_ended = Some("was completed".into());
        }
        let op = self.start_op(
            c,
            OpTarget::ControlPlane { version },
            Duration::from_secs(60),
        );
        Ok(self.op_json(&op, ints))
    }

    fn update_pool(&mut self, c: &str, p: &str, body: &Value, ints: bool) -> Answer {
        let (current, spec) = {
            let ps = self.pool(c, p)?;
            (ps.spec.version.clone(), ps.spec.clone())
        };
        let master = self.clusters[c].spec.master_version.clone();
        let asked = body["nodeVersion"].as_str().unwrap_or_default();
        if asked.is_empty() {
            return Err(ApiError::invalid(
                "At least one field to update must be specified (nodeVersion).",
            ));
        }
        let version = Self::resolve(&self.config.versions, asked, &master).ok_or_else(|| {
            ApiError::invalid(format!("Node version \"{asked}\" is unsupported."))
        })?;
        if version_key(&version) > version_key(&master) {
            return Err(ApiError::invalid(format!(
                "Node version \"{version}\" must not be newer than the master version \"{master}\"."
            )));
        }
        if minor_of(&version) < minor_of(&current) {
            return Err(ApiError::invalid(format!(
                "Node pool \"{p}\" cannot be downgraded from \"{current}\" to \"{version}\"."
            )));
        }
        let settings = &body["upgradeSettings"];
        let strategy = parse_strategy(settings, &spec, &self.config)?;
        self.busy(c)?;
        let stored = stored_settings(settings, &strategy);
        let op = self.start_op(
            c,
            OpTarget::NodePool {
                pool: p.to_string(),
                version: version.clone(),
                strategy,
                rollback: false,
                respect_pdb: true,
            },
            Duration::from_secs(60),
        );
        if let Some(ps) = self.clusters.get_mut(c).and_then(|cs| cs.pools.get_mut(p)) {
            ps.status = "RECONCILING".into();
            ps.settings = Some(stored);
            ps.previous_version = Some(current);
            ps.complete_requested = false;
            ps.rollback_requested = None;
        }
        Ok(self.op_json(&op, ints))
    }

    fn rollback(&mut self, c: &str, p: &str, body: &Value, ints: bool) -> Answer {
        let (previous, version, phase) = {
            let ps = self.pool(c, p)?;
            (
                ps.previous_version.clone(),
                ps.spec.version.clone(),
                ps.phase.clone(),
            )
        };
        let respect_pdb = body["respectPdb"].as_bool().unwrap_or(false);
        let running = self.operations.iter().find(|o| {
            o.cluster == c
                && o.is_running()
                && matches!(&o.target, OpTarget::NodePool { pool, rollback: false, .. } if pool == p)
        });
        let Some(previous) = previous else {
            return Err(ApiError::precondition(format!(
                "Node pool \"{p}\" has no upgrade to roll back."
            )));
        };
        if let Some(up) = running {
            let blue_green = matches!(
                &up.target,
                OpTarget::NodePool {
                    strategy: Strategy::BlueGreen { .. },
                    ..
                }
            );
            if !blue_green {
                return Err(ApiError::precondition(format!(
                    "Cluster is running incompatible operation {}; cancel it before rolling \
                     back node pool \"{p}\".",
                    up.name
                )));
            }
            if phase.as_deref() == Some("DELETING_BLUE_POOL") {
                return Err(ApiError::precondition(format!(
                    "Node pool \"{p}\" is deleting its blue nodes; the soak has ended and the \
                     upgrade can no longer be rolled back."
                )));
            }
            // The roller sees the request, ends the upgrade and finishes this operation.
            let op = self.start_op(
                c,
                OpTarget::NodePool {
                    pool: p.to_string(),
                    version: previous,
                    strategy: Strategy::BlueGreen {
                        batch_nodes: None,
                        batch_percentage: None,
                        batch_soak: 0.0,
                        node_pool_soak: 0.0,
                    },
                    rollback: true,
                    respect_pdb,
                },
                Duration::from_secs(0),
            );
            if let Some(ps) = self.clusters.get_mut(c).and_then(|cs| cs.pools.get_mut(p)) {
                ps.rollback_requested = Some(op.name.clone());
            }
            return Ok(self.op_json(&op, ints));
        }
        if phase.is_none() && version != previous {
            return Err(ApiError::precondition(format!(
                "Node pool \"{p}\" completed its upgrade to \"{version}\"; it can no longer be \
                 rolled back."
            )));
        }
        self.busy(c)?;
        let op = self.start_op(
            c,
            OpTarget::NodePool {
                pool: p.to_string(),
                version: previous,
                strategy: Strategy::Surge {
                    max_surge: 1,
                    max_unavailable: 0,
                },
                rollback: true,
                respect_pdb,
            },
            Duration::from_secs(60),
        );
        if let Some(ps) = self.clusters.get_mut(c).and_then(|cs| cs.pools.get_mut(p)) {
            ps.status = "RECONCILING".into();
        }
        Ok(self.op_json(&op, ints))
    }

    fn complete(&mut self, c: &str, p: &str) -> Answer {
        let phase = self.pool(c, p)?.phase.clone();
        if phase.as_deref() != Some("NODE_POOL_SOAKING") {
            return Err(ApiError::precondition(format!(
                "Node pool \"{p}\" is not soaking a blue-green upgrade (phase {}).",
                phase.as_deref().unwrap_or("none")
            )));
        }
        if let Some(ps) = self.clusters.get_mut(c).and_then(|cs| cs.pools.get_mut(p)) {
            ps.complete_requested = true;
        }
        Ok(json!({}))
    }

    pub(crate) fn op_json(&self, op: &GkeOperation, ints: bool) -> Value {
        let (kind, target_link) = match &op.target {
            OpTarget::ControlPlane { .. } => (
                "UPGRADE_MASTER",
                self.self_link(&format!("clusters/{}", op.cluster)),
            ),
            OpTarget::NodePool { pool, .. } => (
                "UPGRADE_NODES",
                self.self_link(&format!("clusters/{}/nodePools/{pool}", op.cluster)),
            ),
        };
        let status = if op.cancel && op.status != "DONE" {
            "ABORTING"
        } else {
            op.status.as_str()
        };
        let mut out = json!({
            "name": op.name,
            "zone": self.config.location,
            "operationType": wire::OPERATION_TYPE.write(kind, ints),
            "status": wire::OPERATION_STATUS.write(status, ints),
            "selfLink": self.self_link(&format!("operations/{}", op.name)),
            "targetLink": target_link,
            "location": self.config.location,
            "startTime": wire::timestamp(op.created),
        });
        if !op.detail.is_empty() {
            out["detail"] = json!(op.detail);
        }
        if let Some(end) = op.ended {
            out["endTime"] = json!(wire::timestamp(end));
        }
        let (done, total) = op.progress;
        let metrics = match &op.target {
            OpTarget::ControlPlane { .. } => json!([
                { "name": "PROGRESS_PERCENT", "intValue": done.to_string() },
            ]),
            OpTarget::NodePool { .. } => json!([
                { "name": "NODES_TOTAL", "intValue": total.to_string() },
                { "name": "NODES_DONE", "intValue": done.to_string() },
            ]),
        };
        out["progress"] = json!({
            "status": wire::OPERATION_STATUS.write(status, ints),
            "metrics": metrics,
        });
        if let Some((code, message)) = &op.error {
            out["error"] = json!({ "code": wire::code_number(code), "message": message });
            out["statusMessage"] = json!(message);
        }
        if !op.conditions.is_empty() {
            let key = match op.target {
                OpTarget::ControlPlane { .. } => "clusterConditions",
                OpTarget::NodePool { .. } => "nodepoolConditions",
            };
            let conds: Vec<Value> = op
                .conditions
                .iter()
                .map(|(code, message)| {
                    json!({
                        "canonicalCode": if ints { json!(wire::code_number(code)) } else { json!(code) },
                        "message": message,
                    })
                })
                .collect();
            out[key] = Value::Array(conds);
        }
        out
    }
}

fn strip_verb(s: &str) -> &str {
    s.split(':').next().unwrap_or(s)
}

fn verb(s: &str) -> Option<&str> {
    s.split_once(':').map(|(_, v)| v)
}

/// The API method a request calls, by method and path.
pub(crate) fn call_name(call: &Call<'_>) -> String {
    let seg = &call.segments;
    let tail: Vec<&str> = seg.iter().skip(5).map(String::as_str).collect();
    let last_verb = seg.last().and_then(|s| verb(s));
    let name = match (call.method, tail.as_slice(), last_verb) {
        ("GET", ["serverConfig"], _) => "getServerConfig",
        ("GET", ["clusters"], _) => "listClusters",
        ("GET", ["clusters", _], Some("fetchClusterUpgradeInfo")) => "fetchClusterUpgradeInfo",
        ("GET", ["clusters", _], None) => "getCluster",
        ("POST", ["clusters", _], Some("updateMaster")) => "updateMaster",
        ("PUT", ["clusters", _], None) => "updateCluster",
        ("POST", ["clusters", _], Some("completeControlPlaneUpgrade")) => {
            "completeControlPlaneUpgrade"
        }
        ("GET", ["clusters", _, "nodePools"], _) => "listNodePools",
        ("GET", ["clusters", _, "nodePools", _], Some("fetchNodePoolUpgradeInfo")) => {
            "fetchNodePoolUpgradeInfo"
        }
        ("GET", ["clusters", _, "nodePools", _], None) => "getNodePool",
        ("PUT", ["clusters", _, "nodePools", _], None) => "updateNodePool",
        ("POST", ["clusters", _, "nodePools", _], Some("rollback")) => "rollbackNodePoolUpgrade",
        ("POST", ["clusters", _, "nodePools", _], Some("completeUpgrade")) => {
            "completeNodePoolUpgrade"
        }
        ("GET", ["operations"], _) => "listOperations",
        ("GET", ["operations", _], None) => "getOperation",
        ("POST", ["operations", _], Some("cancel")) => "cancelOperation",
        _ => "unknown",
    };
    name.to_string()
}

fn parse_strategy(
    settings: &Value,
    spec: &GkePool,
    config: &GkeConfig,
) -> Result<Strategy, ApiError> {
    if settings.is_null() {
        return Ok(Strategy::Surge {
            max_surge: spec.max_surge,
            max_unavailable: spec.max_unavailable,
        });
    }
    let strategy = match settings.get("strategy") {
        None | Some(Value::Null) => "SURGE",
        Some(v) => match wire::STRATEGY.read(v) {
            Some("NODE_POOL_UPDATE_STRATEGY_UNSPECIFIED") => "SURGE",
            Some(s) => s,
            None => {
                return Err(ApiError::invalid(format!(
                    "Invalid value for upgradeSettings.strategy: {v}"
                )));
            }
        },
    };
    let count = |key: &str, default: u32| -> Result<u32, ApiError> {
        match settings.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => wire::int(v)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!("Invalid value for upgradeSettings.{key}: {v}"))
                }),
        }
    };
    match strategy {
        "SURGE" => {
            // An explicit settings message replaces the pool's: omitted fields are zero.
            let max_surge = count("maxSurge", 0)?;
            let max_unavailable = count("maxUnavailable", 0)?;
            if max_surge == 0 && max_unavailable == 0 {
                return Err(ApiError::invalid(
                    "upgradeSettings: maxSurge and maxUnavailable cannot both be 0.",
                ));
            }
            Ok(Strategy::Surge {
                max_surge,
                max_unavailable,
            })
        }
        "BLUE_GREEN" => {
            let bg = &settings["blueGreenSettings"];
            let policy = &bg["standardRolloutPolicy"];
            let batch_nodes = match policy.get("batchNodeCount") {
                Some(v) => Some(
                    wire::int(v)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            ApiError::invalid(format!(
                                "Invalid value for standardRolloutPolicy.batchNodeCount: {v}"
                            ))
                        })?,
                ),
                None => None,
            };
            let batch_percentage = match policy.get("batchPercentage") {
                Some(v) => Some(
                    v.as_f64()
                        .filter(|p| *p > 0.0 && *p <= 1.0)
                        .ok_or_else(|| ApiError::invalid(format!(
                            "Invalid value for standardRolloutPolicy.batchPercentage: {v} (0 < p <= 1)"
                        )))?,
                ),
                None => None,
            };
            if batch_nodes.is_some() && batch_percentage.is_some() {
                return Err(ApiError::invalid(
                    "standardRolloutPolicy: only one of batchNodeCount and batchPercentage may be set.",
                ));
            }
            let dur = |v: &Value, default: Duration, field: &str| -> Result<f64, ApiError> {
                if v.is_null() {
                    return Ok(default.as_secs_f64());
                }
                wire::duration_secs(v)
                    .ok_or_else(|| ApiError::invalid(format!("Invalid duration for {field}: {v}")))
            };
            Ok(Strategy::BlueGreen {
                batch_nodes,
                batch_percentage,
                batch_soak: dur(
                    &policy["batchSoakDuration"],
                    config.batch_soak,
                    "batchSoakDuration",
                )?,
                node_pool_soak: dur(
                    &bg["nodePoolSoakDuration"],
                    config.node_pool_soak,
                    "nodePoolSoakDuration",
                )?,
            })
        }
        other => Err(ApiError::invalid(format!(
            "upgradeSettings.strategy {other} is not supported for node pool upgrades."
        ))),
    }
}

fn stored_settings(sent: &Value, strategy: &Strategy) -> Value {
    match strategy {
        Strategy::Surge {
            max_surge,
            max_unavailable,
        } => {
            json!({ "maxSurge": max_surge, "maxUnavailable": max_unavailable, "strategy": "SURGE" })
        }
        Strategy::BlueGreen { .. } => {
            let mut v = sent.clone();
            v["strategy"] = json!("BLUE_GREEN");
            v
        }
    }
}
