//! The mock's state and its answers to each EKS operation, on EKS's wire format.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::model::{EksCluster, EksConfig, EksInsight};

/// An error as EKS returns it: HTTP status, exception name (`x-amzn-errortype`), message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Exception name (`ResourceInUseException`).
    pub kind: String,
    /// Message.
    pub message: String,
}

impl ApiError {
    /// An error with this status, exception name and message.
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }
    /// `InvalidParameterException` (400).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterException", message)
    }
    /// `InvalidRequestException` (400).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }
    /// `ResourceNotFoundException` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", message)
    }
    /// `ResourceInUseException` (409).
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(409, "ResourceInUseException", message)
    }
    /// `ThrottlingException` (429), as API Gateway-fronted AWS services answer bursts.
    pub fn throttling() -> Self {
        Self::new(429, "ThrottlingException", "Rate exceeded")
    }
    /// `ServerException` (500).
    pub fn server() -> Self {
        Self::new(500, "ServerException", "An internal error occurred")
    }
    /// `AccessDeniedException` (403).
    pub fn access_denied() -> Self {
        Self::new(
            403,
            "AccessDeniedException",
            "User is not authorized to perform this operation",
        )
    }
}

/// An injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EksFault {
    /// The next update started fails when it would have finished, with these errors
    /// (errorCode, errorMessage, resourceIds).
    FailNextUpdate(Vec<(String, String, Vec<String>)>),
    /// The next `times` calls of `operation` (e.g. `DescribeCluster`, or `*` for any) answer
    /// with this error.
    Error {
        /// Operation name, or `*`.
        operation: String,
        /// How many calls.
        times: u32,
        /// The error returned.
        error: ApiError,
    },
    /// Updates started from now on take `factor` times longer.
    SlowUpdates(u32),
}

/// What an update changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateTarget {
    /// The control plane, to a minor.
    ControlPlane {
        /// Target minor.
        version: String,
    },
    /// A node group.
    Nodegroup {
        /// Its name.
        nodegroup: String,
        /// Target minor.
        version: String,
        /// Target AMI release version.
        release_version: String,
        /// Whether PDB-blocked pods are deleted after the eviction timeout.
        force: bool,
        /// The launch template version it moves to, for groups with a launch template.
        launch_template_version: Option<String>,
    },
    /// An add-on.
    Addon {
        /// Its name.
        addon: String,
        /// Target version.
        version: String,
        /// `resolveConflicts` as sent.
        resolve_conflicts: String,
    },
}

/// An update the mock has accepted.
#[derive(Clone, Debug)]
pub struct Update {
    /// Its id.
    pub id: String,
    /// What it changes.
    pub target: UpdateTarget,
    /// `InProgress`, `Successful`, `Failed` or `Cancelled`.
    pub status: String,
    /// Errors when it failed.
    pub errors: Vec<(String, String, Vec<String>)>,
    /// Whether it is a control-plane version rollback (`VersionRollback`) rather than an
    /// upgrade.
    pub rollback: bool,
    /// The control-plane minor it started from, for control-plane updates.
    pub from_version: Option<String>,
    pub(crate) created_sim: f64,
    pub(crate) finish_sim: f64,
    /// When it ended (simulated seconds since the epoch); EKS's rollback window runs from
    /// the end of the upgrade.
    pub(crate) ended_sim: Option<f64>,
    pub(crate) fail_with: Option<Vec<(String, String, Vec<String>)>>,
    /// The node group's launch template name, as the update's params name it.
    pub(crate) launch_template: Option<String>,
}

pub(crate) struct NodegroupState {
    pub spec: super::model::EksNodegroup,
    /// The newest version of the group's launch template that exists in EC2 (versions are
    /// numbered 1, 2, 3…).
    pub lt_latest: u32,
    pub status: String,
    pub created_sim: f64,
    pub modified_sim: f64,
}

pub(crate) struct AddonState {
    pub version: String,
    pub status: String,
    pub created_sim: f64,
    pub modified_sim: f64,
}

pub(crate) struct ClusterState {
    pub name: String,
    pub version: String,
    pub platform_version: u32,
    pub created_sim: f64,
    pub nodegroups: BTreeMap<String, NodegroupState>,
    pub addons: BTreeMap<String, AddonState>,
    pub insights: Vec<EksInsight>,
    pub updates: Vec<Update>,
}

/// Everything the mock holds.
pub(crate) struct State {
    pub config: EksConfig,
    pub clusters: BTreeMap<String, ClusterState>,
    pub faults: VecDeque<EksFault>,
    pub slow_factor: u32,
    pub started: Instant,
    pub epoch: f64,
    pub next_id: u64,
    pub calls: BTreeMap<String, u64>,
    /// Control-plane versions reached, for the simulator (cluster, patch version).
    pub control_plane_reached: Vec<(String, String)>,
}

/// A request the router has parsed.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub segments: Vec<String>,
    pub query: BTreeMap<String, Vec<String>>,
    pub body: Value,
}

impl Call<'_> {
    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

type Answer = Result<Value, ApiError>;

fn ts(secs: f64) -> Value {
    json!((secs * 1000.0).round() / 1000.0)
}

fn civil_epoch(date: &str) -> Value {
    match date.parse::<jiff::civil::Date>() {
        Ok(d) => d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| json!(z.timestamp().as_second()))
            .unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// How long after an in-place upgrade ends EKS lets the control plane roll back (7 days).
pub(crate) const ROLLBACK_WINDOW: f64 = 7.0 * 86_400.0;

/// The id every mocked launch template has.
pub(crate) const LAUNCH_TEMPLATE_ID: &str = "lt-0a1b2c3d4e5f67890";

/// Orders AMI release versions (`1.33.5-20251120`) by patch, then build date.
fn release_key(release: &str) -> Vec<u64> {
    release
        .split(['.', '-'])
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn minor_of(version: &str) -> Option<(u64, u64)> {
    let mut it = version.trim_start_matches('v').split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.split('-').next()?.parse().ok()?;
    Some((major, minor))
}

impl State {
    pub fn new(config: EksConfig) -> Self {
        let epoch = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        let mut state = Self {
            clusters: BTreeMap::new(),
            faults: VecDeque::new(),
            slow_factor: 1,
            started: Instant::now(),
            epoch,
            next_id: 1,
            calls: BTreeMap::new(),
            control_plane_reached: Vec::new(),
            config,
        };
        let clusters = state.config.clusters.clone();
        for c in clusters {
            state.add_cluster(c);
        }
        state
    }

    pub fn add_cluster(&mut self, c: EksCluster) {
        let now = self.now();
        let created = now - 86_400.0 * 90.0;
        self.clusters.insert(
            c.name.clone(),
            ClusterState {
                name: c.name.clone(),
                version: c.version.clone(),
                platform_version: 5,
                created_sim: created,
                nodegroups: c
                    .nodegroups
                    .into_iter()
                    .map(|spec| {
                        (
                            spec.name.clone(),
                            NodegroupState {
                                lt_latest: spec
                                    .launch_template
                                    .as_ref()
                                    .and_then(|(_, v)| v.parse().ok())
                                    .unwrap_or(1),
                                spec,
                                status: "ACTIVE".into(),
                                created_sim: created,
                                modified_sim: created,
                            },
                        )
                    })
                    .collect(),
                addons: c
                    .addons
                    .into_iter()
                    .map(|a| {
                        (
                            a.name,
                            AddonState {
                                version: a.version,
                                status: "ACTIVE".into(),
                                created_sim: created,
                                modified_sim: created,
                            },
                        )
                    })
                    .collect(),
                insights: c.insights,
                updates: Vec::new(),
            },
        );
    }

    /// Simulated seconds since the Unix epoch.
    pub fn now(&self) -> f64 {
        self.epoch + self.started.elapsed().as_secs_f64() * self.config.time_scale
    }

    pub fn sim_duration(&self, d: Duration) -> f64 {
        d.as_secs_f64() * f64::from(self.slow_factor)
    }

    /// The patch release EKS runs at a minor.
    pub fn patch_of(&self, minor: &str) -> String {
        self.config
            .versions
            .iter()
            .find(|v| v.minor == minor)
            .map(|v| v.patch.clone())
            .unwrap_or_else(|| format!("{minor}.0"))
    }

    fn arn(&self, kind: &str, rest: &str) -> String {
        format!(
            "arn:aws:eks:{}:{}:{kind}/{rest}",
            self.config.region, self.config.account
        )
    }

    fn new_id(&mut self) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{:08x}-5e1c-3a9b-8d2f-{:012x}", 0x3c5a_0000 + n, n * 7919)
    }

    /// Finishes the control-plane and add-on updates whose time has come; node-group updates
    /// are finished by the roller.
    pub fn tick(&mut self) {
        let now = self.now();
        for c in self.clusters.values_mut() {
            for u in c.updates.iter_mut() {
                if u.status != "InProgress" || now < u.finish_sim {
                    continue;
                }
                match &u.target {
                    UpdateTarget::ControlPlane { version } => {
                        u.ended_sim = Some(now);
                        if let Some(errors) = u.fail_with.take() {
                            u.status = "Failed".into();
                            u.errors = errors;
                        } else {
                            c.version = version.clone();
                            c.platform_version = 1;
                            u.status = "Successful".into();
                            let patch = self
                                .config
                                .versions
                                .iter()
                                .find(|v| &v.minor == version)
                                .map(|v| v.patch.clone())
                                .unwrap_or_else(|| format!("{version}.0"));
                            self.control_plane_reached.push((c.name.clone(), patch));
                        }
                    }
                    UpdateTarget::Addon { addon, version, .. } => {
                        let Some(a) = c.addons.get_mut(addon) else {
                            continue;
                        };
                        u.ended_sim = Some(now);
                        a.status = "ACTIVE".into();
                        a.modified_sim = now;
                        if let Some(errors) = u.fail_with.take() {
                            u.status = "Failed".into();
                            u.errors = errors;
                            a.status = "DEGRADED".into();
                        } else {
                            a.version = version.clone();
                            u.status = "Successful".into();
                        }
                    }
                    UpdateTarget::Nodegroup { .. } => {}
                }
            }
        }
    }

    /// Applies the injected error faults for `op`, if any.
    pub fn fault_for(&mut self, op: &str) -> Option<ApiError> {
        let pos = self.faults.iter().position(|f| {
            matches!(f, EksFault::Error { operation, times, .. }
                if (operation == op || operation == "*") && *times > 0)
        })?;
        let mut remove = false;
        let mut out = None;
        if let Some(EksFault::Error { times, error, .. }) = self.faults.get_mut(pos) {
            *times -= 1;
            remove = *times == 0;
            out = Some(error.clone());
        }
        if remove {
            self.faults.remove(pos);
        }
        out
    }

    fn take_failure(&mut self) -> Option<Vec<(String, String, Vec<String>)>> {
        let pos = self
            .faults
            .iter()
            .position(|f| matches!(f, EksFault::FailNextUpdate(_)))?;
        match self.faults.remove(pos) {
            Some(EksFault::FailNextUpdate(errors)) => Some(errors),
            _ => None,
        }
    }

    /// Routes a call to its operation; returns the operation's name and its answer.
    pub fn route(&mut self, call: &Call<'_>) -> (&'static str, Answer) {
        let s: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        let m = call.method;
        let op: &'static str = match (m, s.as_slice()) {
            ("GET", ["cluster-versions"]) => "DescribeClusterVersions",
            ("GET", ["clusters"]) => "ListClusters",
            ("GET", ["clusters", _]) => "DescribeCluster",
            ("POST", ["clusters", _, "updates"]) => "UpdateClusterVersion",
            ("GET", ["clusters", _, "updates"]) => "ListUpdates",
            ("GET", ["clusters", _, "updates", _]) => "DescribeUpdate",
            ("GET", ["clusters", _, "node-groups"]) => "ListNodegroups",
            ("GET", ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
            ("POST", ["clusters", _, "node-groups", _, "update-version"]) => {
                "UpdateNodegroupVersion"
            }
            ("GET", ["clusters", _, "addons"]) => "ListAddons",
            ("GET", ["clusters", _, "addons", _]) => "DescribeAddon",
            ("POST", ["clusters", _, "addons", _, "update"]) => "UpdateAddon",
            ("GET", ["addons", "supported-versions"]) => "DescribeAddonVersions",
            ("POST", ["clusters", _, "insights"]) => "ListInsights",
            ("GET", ["clusters", _, "insights", _]) => "DescribeInsight",
            _ => {
                return (
                    "Unknown",
                    Err(ApiError::new(
                        404,
                        "UnknownOperationException",
                        format!("no EKS operation at {m} /{}", s.join("/")),
                    )),
                );
            }
        };
        *self.calls.entry(op.to_string()).or_default() += 1;
        if let Some(e) = self.fault_for(op) {
            return (op, Err(e));
        }
        self.tick();
        let answer = match op {
            "DescribeClusterVersions" => self.describe_cluster_versions(call),
            "ListClusters" => {
                let names: Vec<Value> = self.clusters.keys().map(|n| json!(n)).collect();
                self.page(call, names, "clusters")
            }
            "DescribeCluster" => self
                .cluster(s[1])
                .map(|c| json!({ "cluster": self.cluster_json(c) })),
            "UpdateClusterVersion" => self.update_cluster_version(s[1], &call.body),
            "ListUpdates" => self.list_updates(s[1], call),
            "DescribeUpdate" => self.describe_update(s[1], s[3], call),
            "ListNodegroups" => self
                .cluster(s[1])
                .map(|c| c.nodegroups.keys().map(|n| json!(n)).collect::<Vec<_>>())
                .and_then(|names| self.page(call, names, "nodegroups")),
            "DescribeNodegroup" => self.describe_nodegroup(s[1], s[3]),
            "UpdateNodegroupVersion" => self.update_nodegroup_version(s[1], s[3], &call.body),
            "ListAddons" => self
                .cluster(s[1])
                .map(|c| c.addons.keys().map(|n| json!(n)).collect::<Vec<_>>())
                .and_then(|names| self.page(call, names, "addons")),
            "DescribeAddon" => self.describe_addon(s[1], s[3]),
            "UpdateAddon" => self.update_addon(s[1], s[3], &call.body),
            "DescribeAddonVersions" => self.describe_addon_versions(call),
            "ListInsights" => self.list_insights(s[1], &call.body),
            _ => self.describe_insight(s[1], s[3]),
        };
        (op, answer)
    }

    fn page_bounds(
        &self,
        max: Option<&str>,
        token: Option<&str>,
        len: usize,
    ) -> Result<(usize, usize), ApiError> {
        let size = match max {
            None => self.config.page_size,
            Some(m) => match m.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_parameter(format!(
                        "maxResults must be between 1 and 100, got {m}"
                    )));
                }
            },
        };
        let start = match token {
            None => 0,
            Some(t) => match t
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n <= len => n,
                _ => return Err(ApiError::invalid_parameter("The nextToken is invalid")),
            },
        };
        Ok((start, (start + size).min(len)))
    }

    fn page(&self, call: &Call<'_>, items: Vec<Value>, key: &str) -> Answer {
        self.page_body(call.q("maxResults"), call.q("nextToken"), items, key)
    }

    fn page_body(
        &self,
        max: Option<&str>,
        token: Option<&str>,
        items: Vec<Value>,
        key: &str,
    ) -> Answer {
        let (start, end) = self.page_bounds(max, token, items.len())?;
        let mut out = json!({ key: items[start..end].to_vec() });
        if end < items.len() {
            out["nextToken"] = json!(format!("page-{end}"));
        }
        Ok(out)
    }

    fn cluster(&self, name: &str) -> Result<&ClusterState, ApiError> {
        self.clusters
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("No cluster found for name: {name}.")))
    }

    fn cluster_json(&self, c: &ClusterState) -> Value {
        let updating = c.updates.iter().any(|u| {
            u.status == "InProgress" && matches!(u.target, UpdateTarget::ControlPlane { .. })
        });
        json!({
            "name": c.name,
            "arn": self.arn("cluster", &c.name),
            "createdAt": ts(c.created_sim),
            "version": c.version,
            "endpoint": format!("https://{}.gr7.{}.eks.amazonaws.com", c.name, self.config.region),
            "roleArn": format!("arn:aws:iam::{}:role/eks-cluster-role", self.config.account),
            "status": if updating { "UPDATING" } else { "ACTIVE" },
            "platformVersion": format!("eks.{}", c.platform_version),
            "tags": {},
            "health": { "issues": [] },
            "upgradePolicy": { "supportType": "EXTENDED" },
        })
    }

    fn describe_cluster_versions(&self, call: &Call<'_>) -> Answer {
        if let Some(t) = call.q("clusterType")
            && t != "eks"
        {
            return Err(ApiError::invalid_parameter(format!(
                "clusterType must be eks, got {t}"
            )));
        }
        let include_all = call.q("includeAll") == Some("true");
        let default_only = call.q("defaultOnly") == Some("true");
        let wanted = call
            .query
            .get("clusterVersions")
            .cloned()
            .unwrap_or_default();
        // `status` is the deprecated lower-case form (`standard-support`), `versionStatus`
        // the current one (`STANDARD_SUPPORT`).
        let status = call.q("versionStatus").map(String::from).or_else(|| {
            call.q("status")
                .map(|s| s.to_ascii_uppercase().replace('-', "_"))
        });
        let items: Vec<Value> = self
            .config
            .versions
            .iter()
            .filter(|v| include_all || v.status != "UNSUPPORTED" || wanted.contains(&v.minor))
            .filter(|v| !default_only || v.default)
            .filter(|v| wanted.is_empty() || wanted.contains(&v.minor))
            .filter(|v| status.as_ref().is_none_or(|s| *s == v.status))
            .map(|v| {
                json!({
                    "clusterVersion": v.minor,
                    "clusterType": "eks",
                    "defaultPlatformVersion": "eks.1",
                    "defaultVersion": v.default,
                    "releaseDate": civil_epoch(&v.release_date),
                    "endOfStandardSupportDate": civil_epoch(&v.end_of_standard_support),
                    "endOfExtendedSupportDate": civil_epoch(&v.end_of_extended_support),
                    "status": v.status.to_ascii_lowercase().replace('_', "-"),
                    "versionStatus": v.status,
                    "kubernetesPatchVersion": v.patch,
                })
            })
            .collect();
        self.page(call, items, "clusterVersions")
    }

    fn busy(c: &ClusterState) -> Option<&Update> {
        c.updates.iter().find(|u| u.status == "InProgress")
    }

    fn start_update(&mut self, cluster: &str, target: UpdateTarget, duration: f64) -> Answer {
        self.start_update_as(cluster, target, duration, false)
    }

    fn start_update_as(
        &mut self,
        cluster: &str,
        target: UpdateTarget,
        duration: f64,
        rollback: bool,
    ) -> Answer {
        let id = self.new_id();
        let now = self.now();
        let fail_with = self.take_failure();
        let launch_template = match &target {
            UpdateTarget::Nodegroup { nodegroup, .. } => self
                .clusters
                .get(cluster)
                .and_then(|c| c.nodegroups.get(nodegroup))
                .and_then(|n| n.spec.launch_template.as_ref())
                .map(|(name, _)| name.clone()),
            _ => None,
        };
        let from_version = match &target {
            UpdateTarget::ControlPlane { .. } => {
                self.clusters.get(cluster).map(|c| c.version.clone())
            }
            _ => None,
        };
        let update = Update {
            rollback,
            from_version,
            ended_sim: None,
            launch_template,
            id,
            target,
            status: "InProgress".into(),
            errors: Vec::new(),
            created_sim: now,
            finish_sim: now + duration,
            fail_with,
        };
        let body = json!({ "update": update_json(&update) });
        if let Some(c) = self.clusters.get_mut(cluster) {
            c.updates.push(update);
        }
        Ok(body)
    }

    fn update_cluster_version(&mut self, name: &str, body: &Value) -> Answer {
        let c = self.cluster(name)?;
        let Some(to) = body["version"].as_str() else {
            return Err(ApiError::invalid_parameter("version is required"));
        };
        let (Some(cur), Some(next)) = (minor_of(&c.version), minor_of(to)) else {
            return Err(ApiError::invalid_parameter(format!(
                "Unsupported Kubernetes version {to}"
            )));
        };
        if let Some(u) = Self::busy(c) {
            return Err(ApiError::in_use(format!(
                "Cannot update cluster {name} because update {} is in progress",
                u.id
            )));
        }
        if next == cur {
            return Err(ApiError::invalid_parameter(format!(
                "Cluster is already at the desired configuration with version {to}"
            )));
        }
        if next < cur && !body["rollbackConfig"].is_null() {
            return self.rollback_cluster_version(name, to, body);
        }
        if next.0 != cur.0 || next.1 != cur.1 + 1 {
            return Err(ApiError::invalid_parameter(format!(
                "Unsupported Kubernetes minor version update from {} to {to}",
                c.version
            )));
        }
        if !self.config.versions.iter().any(|v| v.minor == to) {
            return Err(ApiError::invalid_parameter(format!(
                "Unsupported Kubernetes version {to}"
            )));
        }
        // Node groups more than the allowed skew behind the new control plane block it.
        for ng in c.nodegroups.values() {
            if let Some(ngv) = minor_of(&ng.spec.version)
                && next.1 > ngv.1 + 3
            {
                return Err(ApiError::invalid_parameter(format!(
                    "Nodegroup {} is at version {}; update it before moving the control plane to {to}",
                    ng.spec.name, ng.spec.version
                )));
            }
        }
        let force = body["force"].as_bool().unwrap_or(false);
        let blocking: Vec<&EksInsight> = c
            .insights
            .iter()
            .filter(|i| {
                i.category == "UPGRADE_READINESS"
                    && i.status == "ERROR"
                    && minor_of(&i.kubernetes_version) == Some(next)
            })
            .collect();
        if !force && !blocking.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidStateException",
                format!(
                    "Cluster upgrade readiness insights report errors for {to}: {}. Resolve them or set force",
                    blocking
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let duration = self.sim_duration(self.config.control_plane_update);
        self.start_update(
            name,
            UpdateTarget::ControlPlane {
                version: to.to_string(),
            },
            duration,
        )
    }

    /// A version rollback (UpdateClusterVersion with `rollbackConfig`): back one minor, to
    /// the version the last in-place upgrade started from, within 7 days of its end.
    fn rollback_cluster_version(&mut self, name: &str, to: &str, body: &Value) -> Answer {
        let c = self.cluster(name)?;
        let config = &body["rollbackConfig"];
        if !config.is_object() {
            return Err(ApiError::invalid_parameter(
                "rollbackConfig must be an object with an optional timeoutMinutes",
            ));
        }
        // EKS's bounds: 2 hours to 7 days (720 minutes when not given).
        if let Some(t) = config.get("timeoutMinutes")
            && t.as_i64().is_none_or(|m| !(120..=10_080).contains(&m))
        {
            return Err(ApiError::invalid_parameter(format!(
                "rollbackConfig.timeoutMinutes must be between 120 and 10080, got {t}"
            )));
        }
        let (Some(cur), Some(next)) = (minor_of(&c.version), minor_of(to)) else {
            return Err(ApiError::invalid_parameter(format!(
                "Unsupported Kubernetes version {to}"
            )));
        };
        if next.0 != cur.0 || next.1 + 1 != cur.1 {
            return Err(ApiError::invalid_parameter(format!(
                "Version rollback is supported only to the previous minor version: cluster {name} \
                 is at {} and cannot roll back to {to}",
                c.version
            )));
        }
        let last = c
            .updates
            .iter()
            .filter(|u| {
                u.status == "Successful" && matches!(u.target, UpdateTarget::ControlPlane { .. })
            })
            .max_by(|a, b| a.created_sim.total_cmp(&b.created_sim));
        let upgrade = match last {
            Some(u) if !u.rollback && u.from_version.as_deref() == Some(to) => u,
            Some(u) if u.rollback => {
                return Err(ApiError::invalid_request(format!(
                    "Cluster {name} has no in-place upgrade to roll back: its last version \
                     update {} was a rollback",
                    u.id
                )));
            }
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "Cluster {name} has no in-place upgrade from {to} to roll back"
                )));
            }
        };
        let ended = upgrade.ended_sim.unwrap_or(upgrade.finish_sim);
        if self.now() > ended + ROLLBACK_WINDOW {
            return Err(ApiError::invalid_request(format!(
                "Cluster {name} cannot be rolled back: the rollback window of 7 days after \
                 upgrade {} has expired",
                upgrade.id
            )));
        }
        // The control plane may not end older than a kubelet: managed node groups go back
        // first (UpdateNodegroupVersion).
        for ng in c.nodegroups.values() {
            if let Some(ngv) = minor_of(&ng.spec.version)
                && ngv > next
            {
                return Err(ApiError::invalid_request(format!(
                    "Nodegroup {} is at version {}, newer than the rollback version {to}; roll \
                     it back before the control plane",
                    ng.spec.name, ng.spec.version
                )));
            }
        }
        // Rollback-readiness insights in ERROR block it unless `force` overrides them.
        let blocking: Vec<&str> = c
            .insights
            .iter()
            .filter(|i| {
                i.category == "ROLLBACK_READINESS"
                    && i.status == "ERROR"
                    && minor_of(&i.kubernetes_version) == Some(next)
            })
            .map(|i| i.name.as_str())
            .collect();
        if !body["force"].as_bool().unwrap_or(false) && !blocking.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidStateException",
                format!(
                    "Cluster rollback readiness insights report errors for {to}: {}. Resolve \
                     them or set force",
                    blocking.join(", ")
                ),
            ));
        }
        let duration = self.sim_duration(self.config.control_plane_update);
        self.start_update_as(
            name,
            UpdateTarget::ControlPlane {
                version: to.to_string(),
            },
            duration,
            true,
        )
    }

    /// Moves every update of `cluster` `by` into the past (a test's way to let EKS's 7-day
    /// rollback window run out without waiting).
    pub fn age_updates(&mut self, cluster: &str, by: Duration) {
        let by = by.as_secs_f64();
        if let Some(c) = self.clusters.get_mut(cluster) {
            for u in c.updates.iter_mut() {
                u.created_sim -= by;
                u.finish_sim -= by;
                if let Some(e) = u.ended_sim.as_mut() {
                    *e -= by;
                }
            }
        }
    }

    fn list_updates(&self, name: &str, call: &Call<'_>) -> Answer {
        let c = self.cluster(name)?;
        let ng = call.q("nodegroupName");
        let addon = call.q("addonName");
        if let Some(ng) = ng
            && !c.nodegroups.contains_key(ng)
        {
            return Err(ApiError::not_found(format!(
                "No node group found for name: {ng}."
            )));
        }
        if let Some(a) = addon
            && !c.addons.contains_key(a)
        {
            return Err(ApiError::not_found(format!(
                "No addon: {a} found in cluster: {name}"
            )));
        }
        let ids: Vec<Value> = c
            .updates
            .iter()
            .filter(|u| match (&u.target, ng, addon) {
                (UpdateTarget::Nodegroup { nodegroup, .. }, Some(n), None) => nodegroup == n,
                (UpdateTarget::Addon { addon: a, .. }, None, Some(n)) => a == n,
                (UpdateTarget::ControlPlane { .. }, None, None) => true,
                _ => false,
            })
            .map(|u| json!(u.id))
            .collect();
        self.page(call, ids, "updateIds")
    }

    fn describe_update(&self, name: &str, id: &str, call: &Call<'_>) -> Answer {
        let c = self.cluster(name)?;
        let u = c
            .updates
            .iter()
            .find(|u| {
                u.id == id
                    && match (&u.target, call.q("nodegroupName"), call.q("addonName")) {
                        (UpdateTarget::Nodegroup { nodegroup, .. }, Some(n), _) => nodegroup == n,
                        (UpdateTarget::Addon { addon, .. }, _, Some(n)) => addon == n,
                        (UpdateTarget::ControlPlane { .. }, None, None) => true,
                        _ => false,
                    }
            })
            .ok_or_else(|| ApiError::not_found(format!("No update found for ID: {id}")))?;
        Ok(json!({ "update": update_json(u) }))
    }

    fn describe_nodegroup(&self, name: &str, ng: &str) -> Answer {
        let c = self.cluster(name)?;
        let n = c
            .nodegroups
            .get(ng)
            .ok_or_else(|| ApiError::not_found(format!("No node group found for name: {ng}.")))?;
        let mut out = json!({
            "nodegroupName": n.spec.name,
            "nodegroupArn": self.arn("nodegroup", &format!("{name}/{ng}/0ac5d1e2")),
            "clusterName": name,
            "version": n.spec.version,
            "releaseVersion": n.spec.release_version,
            "createdAt": ts(n.created_sim),
            "modifiedAt": ts(n.modified_sim),
            "status": n.status,
            "capacityType": "ON_DEMAND",
            "scalingConfig": {
                "minSize": 1,
                "maxSize": n.spec.desired_size + n.spec.max_unavailable,
                "desiredSize": n.spec.desired_size,
            },
            "instanceTypes": ["m6i.large"],
            "amiType": if n.spec.custom_ami { "CUSTOM" } else { "AL2023_x86_64_STANDARD" },
            "nodeRole": format!("arn:aws:iam::{}:role/eks-node-role", self.config.account),
            "labels": {},
            "resources": { "autoScalingGroups": [{ "name": format!("eks-{ng}-0ac5d1e2") }] },
            "health": { "issues": [] },
            "updateConfig": { "maxUnavailable": n.spec.max_unavailable },
            "tags": {},
        });
        if let Some((lt, v)) = &n.spec.launch_template {
            out["launchTemplate"] = json!({ "name": lt, "version": v, "id": LAUNCH_TEMPLATE_ID });
        }
        Ok(json!({ "nodegroup": out }))
    }

    fn update_nodegroup_version(&mut self, name: &str, ng: &str, body: &Value) -> Answer {
        let c = self.cluster(name)?;
        let n = c
            .nodegroups
            .get(ng)
            .ok_or_else(|| ApiError::not_found(format!("No node group found for name: {ng}.")))?;
        if let Some(u) = c.updates.iter().find(|u| {
            u.status == "InProgress"
                && matches!(&u.target, UpdateTarget::Nodegroup { nodegroup, .. } if nodegroup == ng)
        }) {
            return Err(ApiError::in_use(format!(
                "Nodegroup {ng} cannot be updated because update {} is in progress",
                u.id
            )));
        }
        if c.updates.iter().any(|u| {
            u.status == "InProgress" && matches!(u.target, UpdateTarget::ControlPlane { .. })
        }) {
            return Err(ApiError::in_use(format!(
                "Cluster {name} is currently being updated"
            )));
        }
        let version = body["version"].as_str();
        let release = body["releaseVersion"].as_str();
        if n.spec.custom_ami && (version.is_some() || release.is_some()) {
            return Err(ApiError::invalid_parameter(
                "You cannot specify a Kubernetes version or AMI release version for a node group \
                 whose launch template specifies an AMI; update the launch template instead",
            ));
        }
        let to = version.unwrap_or(&c.version).to_string();
        let (Some(cp), Some(target), Some(cur)) = (
            minor_of(&c.version),
            minor_of(&to),
            minor_of(&n.spec.version),
        ) else {
            return Err(ApiError::invalid_parameter(format!(
                "Requested Nodegroup version {to} is invalid"
            )));
        };
        if target > cp {
            return Err(ApiError::invalid_parameter(format!(
                "Requested Nodegroup version {to} is newer than the control plane version {}",
                c.version
            )));
        }
        // EKS: "You cannot roll back a node group to an earlier Kubernetes version or AMI
        // version" (UpdateNodegroupVersion).
        if target < cur {
            return Err(ApiError::invalid_parameter(format!(
                "Requested Nodegroup version {to} is older than its current version {}. You \
                 cannot roll back a node group to an earlier Kubernetes version or AMI version.",
                n.spec.version
            )));
        }
        let release_version = match release {
            Some(r) => {
                if !r.starts_with(&format!("{to}.")) {
                    return Err(ApiError::invalid_parameter(format!(
                        "Requested release version {r} is not valid for kubernetes version {to}"
                    )));
                }
                if target == cur && release_key(r) < release_key(&n.spec.release_version) {
                    return Err(ApiError::invalid_parameter(format!(
                        "Requested release version {r} is older than the node group's current \
                         release version {}. You cannot roll back a node group to an earlier \
                         Kubernetes version or AMI version.",
                        n.spec.release_version
                    )));
                }
                r.to_string()
            }
            // A custom AMI comes from the launch template; EKS has no release of its own.
            None if n.spec.custom_ami => n.spec.release_version.clone(),
            None => format!("{}-20251120", self.patch_of(&to)),
        };
        let launch_template_version = match body.get("launchTemplate").filter(|v| !v.is_null()) {
            None => n.spec.launch_template.as_ref().map(|(_, v)| v.clone()),
            Some(lt) => {
                let Some((lt_name, lt_current)) = &n.spec.launch_template else {
                    return Err(ApiError::invalid_parameter(
                        "launchTemplate can only be specified for a node group created with a \
                         launch template",
                    ));
                };
                let (id, by_name) = (lt["id"].as_str(), lt["name"].as_str());
                if id.is_some() == by_name.is_some() {
                    return Err(ApiError::invalid_parameter(
                        "Either provide launch template ID or launch template name in the request.",
                    ));
                }
                if by_name.is_some_and(|x| x != lt_name)
                    || id.is_some_and(|x| x != LAUNCH_TEMPLATE_ID)
                {
                    return Err(ApiError::invalid_parameter(format!(
                        "The launch template ID or name must match the launch template the node \
                         group was created with ({lt_name}, {LAUNCH_TEMPLATE_ID})"
                    )));
                }
                match lt["version"].as_str() {
                    None => Some(lt_current.clone()),
                    // Any existing version goes, earlier ones too: the template is the
                    // operator's, and EKS rolls the nodes to whatever version it names.
                    Some(v) => match v.parse::<u32>() {
                        Ok(k) if (1..=n.lt_latest).contains(&k) => Some(k.to_string()),
                        _ => {
                            return Err(ApiError::invalid_parameter(format!(
                                "Launch template version {v} does not exist for launch \
                                 template {lt_name} (versions 1 to {})",
                                n.lt_latest
                            )));
                        }
                    },
                }
            }
        };
        let force = body["force"].as_bool().unwrap_or(false);
        let target = UpdateTarget::Nodegroup {
            nodegroup: ng.to_string(),
            version: to,
            release_version,
            force,
            launch_template_version,
        };
        let answer = self.start_update(name, target, f64::INFINITY)?;
        if let Some(n) = self
            .clusters
            .get_mut(name)
            .and_then(|c| c.nodegroups.get_mut(ng))
        {
            n.status = "UPDATING".into();
        }
        Ok(answer)
    }

    fn describe_addon(&self, name: &str, addon: &str) -> Answer {
        let c = self.cluster(name)?;
        let a = c.addons.get(addon).ok_or_else(|| {
            ApiError::not_found(format!("No addon: {addon} found in cluster: {name}"))
        })?;
        Ok(json!({ "addon": {
            "addonName": addon,
            "clusterName": name,
            "status": a.status,
            "addonVersion": a.version,
            "addonArn": self.arn("addon", &format!("{name}/{addon}/5ac8e1f0")),
            "createdAt": ts(a.created_sim),
            "modifiedAt": ts(a.modified_sim),
            "health": { "issues": [] },
            "tags": {},
        }}))
    }

    fn compatible(&self, addon: &str, version: &str, minor: &str) -> bool {
        self.config.addon_catalog.iter().any(|e| {
            e.name == addon
                && e.versions.iter().any(|v| {
                    v.version == version && v.compatibilities.iter().any(|(m, _)| m == minor)
                })
        })
    }

    fn update_addon(&mut self, name: &str, addon: &str, body: &Value) -> Answer {
        let c = self.cluster(name)?;
        if !c.addons.contains_key(addon) {
            return Err(ApiError::not_found(format!(
                "No addon: {addon} found in cluster: {name}"
            )));
        }
        if let Some(u) = c.updates.iter().find(|u| {
            u.status == "InProgress"
                && matches!(&u.target, UpdateTarget::Addon { addon: a, .. } if a == addon)
        }) {
            return Err(ApiError::in_use(format!(
                "Addon {addon} cannot be updated because update {} is in progress",
                u.id
            )));
        }
        let resolve = body["resolveConflicts"]
            .as_str()
            .unwrap_or("NONE")
            .to_string();
        if !["NONE", "OVERWRITE", "PRESERVE"].contains(&resolve.as_str()) {
            return Err(ApiError::invalid_parameter(format!(
                "resolveConflicts must be one of NONE, OVERWRITE, PRESERVE; got {resolve}"
            )));
        }
        let cluster_version = c.version.clone();
        let Some(version) = body["addonVersion"].as_str() else {
            return Err(ApiError::invalid_parameter("addonVersion is required"));
        };
        if !self.compatible(addon, version, &cluster_version) {
            return Err(ApiError::invalid_parameter(format!(
                "Addon version specified {version} is not supported for {addon} on Kubernetes {cluster_version}"
            )));
        }
        let duration = self.sim_duration(self.config.addon_update);
        let answer = self.start_update(
            name,
            UpdateTarget::Addon {
                addon: addon.to_string(),
                version: version.to_string(),
                resolve_conflicts: resolve,
            },
            duration,
        )?;
        if let Some(a) = self
            .clusters
            .get_mut(name)
            .and_then(|c| c.addons.get_mut(addon))
        {
            a.status = "UPDATING".into();
        }
        Ok(answer)
    }

    fn describe_addon_versions(&self, call: &Call<'_>) -> Answer {
        let k8s = call.q("kubernetesVersion");
        let name = call.q("addonName");
        if let Some(k) = k8s
            && minor_of(k).is_none()
        {
            return Err(ApiError::invalid_parameter(format!(
                "kubernetesVersion {k} is not valid"
            )));
        }
        let items: Vec<Value> = self
            .config
            .addon_catalog
            .iter()
            .filter(|e| name.is_none_or(|n| n == e.name))
            .filter_map(|e| {
                let versions: Vec<Value> = e
                    .versions
                    .iter()
                    .filter(|v| k8s.is_none_or(|k| v.compatibilities.iter().any(|(m, _)| m == k)))
                    .map(|v| {
                        json!({
                            "addonVersion": v.version,
                            "architecture": ["amd64", "arm64"],
                            "computeTypes": ["ec2"],
                            "requiresConfiguration": false,
                            "compatibilities": v.compatibilities.iter()
                                .filter(|(m, _)| k8s.is_none_or(|k| k == m))
                                .map(|(m, d)| json!({
                                    "clusterVersion": m,
                                    "platformVersions": ["*"],
                                    "defaultVersion": d,
                                })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                (!versions.is_empty()).then(|| {
                    json!({
                        "addonName": e.name,
                        "type": e.kind,
                        "addonVersions": versions,
                        "owner": "aws",
                        "publisher": "eks",
                    })
                })
            })
            .collect();
        self.page(call, items, "addons")
    }

    fn list_insights(&self, name: &str, body: &Value) -> Answer {
        let c = self.cluster(name)?;
        let filter = &body["filter"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let categories = strings(&filter["categories"]);
        let versions = strings(&filter["kubernetesVersions"]);
        let statuses = strings(&filter["statuses"]);
        for cat in &categories {
            if ![
                "UPGRADE_READINESS",
                "ROLLBACK_READINESS",
                "MISCONFIGURATION",
            ]
            .contains(&cat.as_str())
            {
                return Err(ApiError::invalid_parameter(format!(
                    "category must be UPGRADE_READINESS, ROLLBACK_READINESS or \
                     MISCONFIGURATION, got {cat}"
                )));
            }
        }
        let now = self.now();
        let items: Vec<Value> = c
            .insights
            .iter()
            .filter(|i| categories.is_empty() || categories.contains(&i.category))
            .filter(|i| versions.is_empty() || versions.contains(&i.kubernetes_version))
            .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
            .map(|i| {
                json!({
                    "id": i.id,
                    "name": i.name,
                    "category": i.category,
                    "kubernetesVersion": i.kubernetes_version,
                    "lastRefreshTime": ts(now - 3600.0),
                    "lastTransitionTime": ts(now - 86_400.0),
                    "description": format!("Checks for {}", i.name),
                    "insightStatus": { "status": i.status, "reason": i.reason },
                })
            })
            .collect();
        self.page_body(
            body["maxResults"]
                .as_u64()
                .map(|n| n.to_string())
                .as_deref(),
            body["nextToken"].as_str(),
            items,
            "insights",
        )
    }

    fn describe_insight(&self, name: &str, id: &str) -> Answer {
        let c = self.cluster(name)?;
        let i = c
            .insights
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| ApiError::not_found(format!("No insight found for id: {id}")))?;
        let now = self.now();
        Ok(json!({ "insight": {
            "id": i.id,
            "name": i.name,
            "category": i.category,
            "kubernetesVersion": i.kubernetes_version,
            "lastRefreshTime": ts(now - 3600.0),
            "lastTransitionTime": ts(now - 86_400.0),
            "description": format!("Checks for {}", i.name),
            "insightStatus": { "status": i.status, "reason": i.reason },
            "recommendation": i.recommendation,
            "additionalInfo": {},
            "resources": [],
            "categorySpecificSummary": {
                "deprecationDetails": i.deprecations.iter().map(|d| json!({
                    "usage": d.usage,
                    "replacedWith": d.replaced_with,
                    "stopServingVersion": d.stop_serving_version,
                    "startServingReplacementVersion": "1.29",
                    "clientStats": d.clients.iter().map(|(ua, n)| json!({
                        "userAgent": ua,
                        "numberOfRequestsLast30Days": n,
                        "lastRequestTime": ts(now - 600.0),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            },
        }}))
    }
}

/// An update on the wire.
pub(crate) fn update_json(u: &Update) -> Value {
    let (ty, params) = match &u.target {
        UpdateTarget::ControlPlane { version } => (
            if u.rollback {
                "VersionRollback"
            } else {
                "VersionUpdate"
            },
            json!([{ "type": "Version", "value": version }, { "type": "PlatformVersion", "value": "eks.1" }]),
        ),
        UpdateTarget::Nodegroup {
            version,
            release_version,
            launch_template_version,
            ..
        } => {
            // EKS records the values the update moves to, not the ones it replaced.
            let mut params = vec![
                json!({ "type": "Version", "value": version }),
                json!({ "type": "ReleaseVersion", "value": release_version }),
            ];
            if let (Some(lt), Some(v)) = (&u.launch_template, launch_template_version) {
                params.push(json!({ "type": "LaunchTemplateName", "value": lt }));
                params.push(json!({ "type": "LaunchTemplateVersion", "value": v }));
            }
            ("VersionUpdate", Value::Array(params))
        }
        UpdateTarget::Addon {
            version,
            resolve_conflicts,
            ..
        } => (
            "AddonUpdate",
            json!([{ "type": "AddonVersion", "value": version }, { "type": "ResolveConflicts", "value": resolve_conflicts }]),
        ),
    };
    json!({
        "id": u.id,
        "status": u.status,
        "type": ty,
        "params": params,
        "createdAt": ts(u.created_sim),
        "errors": u.errors.iter().map(|(code, msg, ids)| json!({
            "errorCode": code,
            "errorMessage": msg,
            "resourceIds": ids,
        })).collect::<Vec<_>>(),
    })
}
