//! The reference provider: [`SimProvider`] implements the whole [`UpgradeProvider`] contract
//! against the Kubernetes simulator. It keeps its own control-plane version, add-ons and
//! operations (standing in for a cloud's API) and drives the simulated cluster's nodes, so
//! every upgrade is observable through the Kubernetes API. It passes the behaviour suite, and
//! the engine's end-to-end tests run on it.
//!
//! - Control-plane and add-on operations finish a set time after they start (whether anyone
//!   polls or not, as a cloud's would); the control plane's version then moves in the
//!   simulator (`/version`).
//! - Pools managed by the provider are rolled by a background task the way a cloud does it:
//!   a new node at the new version joins, then an old node is cordoned, drained through the
//!   eviction API and removed, one at a time.
//! - Single nodes (kup-rolled pools) are upgraded in place: the kubelet restarts at the new
//!   version; the node must be cordoned and drained first, or the provider records a
//!   violation.
//! - Every operation started is recorded, so tests can assert none was started twice; every
//!   kubelet move is checked against the control plane's version.

// Test-support code: the simulator answering out of turn is a failed test, so it panics.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{
    Addon, AddonOptions, AddonUpgrade, AvailableVersion, BackupOptions, BackupRecord,
    BackupSupport, Capabilities, ClusterInfo, ControlPlaneOptions, Error, Finding, KubeVersion,
    NodePool, NodePoolOptions, Operation, OperationStatus, OperationTarget, PoolManagement,
    ProviderErrorDetail, ProviderKind, Result, SupportStatus, UpgradeProvider,
};
use kup_kube::drain::{DrainOptions, Drainer};
use kup_mocks::k8s::SimHandle;
use serde_json::Value;
use tokio::time::Instant;

/// The label carrying a node's pool in the simulator.
pub const POOL_LABEL: &str = "kup.dev/pool";

/// Parses a version the tests spell out (panics on a typo).
pub fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

/// Faults the provider injects.
#[derive(Clone, Debug, Default)]
pub struct ProviderFaults {
    /// The next N polls fail with a retryable provider error.
    pub poll_errors: u32,
    /// The next control-plane operation ends Failed with these errors.
    pub fail_control_plane: Option<Vec<ProviderErrorDetail>>,
    /// The next node operation on this node ends Failed.
    pub fail_node: Option<String>,
    /// The next pool operation on this pool ends Failed.
    pub fail_pool: Option<String>,
    /// The next start of any operation answers Busy.
    pub busy_once: bool,
    /// Backups fail verification.
    pub backup_fails: bool,
    /// Findings the provider's pre-flight reports.
    pub findings: Vec<Finding>,
}

/// How long operations take (real time).
#[derive(Clone, Debug)]
pub struct Timing {
    /// From the start of a control-plane operation to its end.
    pub control_plane: Duration,
    /// From the start of an add-on operation to its end.
    pub addon: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            control_plane: Duration::from_millis(60),
            addon: Duration::from_millis(30),
        }
    }
}

#[derive(Debug)]
enum Work {
    ControlPlane(KubeVersion),
    Addon(String, String),
    Node(String, KubeVersion),
    Pool(Arc<Mutex<OperationStatus>>),
}

#[derive(Debug)]
struct OpState {
    op: Operation,
    work: Work,
    done_at: Option<Instant>,
    fail: Option<Vec<ProviderErrorDetail>>,
    status: OperationStatus,
}

#[derive(Debug, Default)]
struct State {
    control_plane: Option<KubeVersion>,
    addons: BTreeMap<String, String>,
    pools: BTreeMap<String, PoolManagement>,
    ops: BTreeMap<String, OpState>,
    next_id: u64,
    started: Vec<(OperationTarget, String)>,
    violations: Vec<String>,
    faults: ProviderFaults,
    backups: u32,
    replacements: u64,
    polls: u64,
}

/// The provider. Clones share state.
#[derive(Clone)]
pub struct SimProvider {
    name: String,
    sim: SimHandle,
    drainer: Drainer,
    caps: Capabilities,
    timing: Timing,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimProvider")
            .field("name", &self.name)
            .finish()
    }
}

/// The reference provider's kind: `sim`.
pub fn kind() -> ProviderKind {
    ProviderKind::Other("sim".into())
}

impl SimProvider {
    /// A provider for the simulated cluster `name`; `pools` says who rolls each pool.
    pub fn new(
        name: &str,
        sim: &SimHandle,
        pools: &[(&str, PoolManagement)],
        addons: &[(&str, &str)],
        caps: Capabilities,
        timing: Timing,
    ) -> Self {
        let control_plane = KubeVersion::parse(&sim.api_server_version()).unwrap();
        let state = State {
            control_plane: Some(control_plane),
            addons: addons
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            pools: pools.iter().map(|(n, m)| (n.to_string(), *m)).collect(),
            ..State::default()
        };
        Self {
            name: name.to_string(),
            sim: sim.clone(),
            drainer: Drainer::from_config(sim.client_config()).unwrap(),
            caps,
            timing,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// What a cloud provider with kup-rolled pools declares: everything.
    pub fn capabilities(max_jump: Option<u32>) -> Capabilities {
        Capabilities::new().with(|c| {
            c.max_node_pool_minor_jump = max_jump;
            c.node_pool_upgrade = true;
            c.node_upgrade = true;
            c.provider_drains_nodes = true;
            c.managed_addons = true;
            c.backup = BackupSupport::Required;
        })
    }

    /// Another instance on the same backend, as a restarted process (or a second client)
    /// builds: its own Kubernetes clients, the provider's state shared, because that state
    /// stands for the cloud's.
    pub fn reconnect(&self) -> Self {
        Self {
            drainer: Drainer::from_config(self.sim.client_config()).unwrap(),
            ..self.clone()
        }
    }

    /// The same provider with other operation timings (operations it starts from now on).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, f: impl FnOnce(&mut ProviderFaults)) {
        f(&mut self.state.lock().unwrap().faults);
    }

    /// Every operation started: (target, version).
    pub fn started(&self) -> Vec<(OperationTarget, String)> {
        self.state.lock().unwrap().started.clone()
    }

    /// Operations started more than once for the same target and version, not counting
    /// starts that ended Failed (retrying a failed operation is a new attempt).
    pub fn started_twice(&self) -> Vec<String> {
        self.settle();
        let st = self.state.lock().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut twice = Vec::new();
        for o in st.ops.values() {
            if matches!(o.status, OperationStatus::Failed { .. }) {
                continue;
            }
            let key = format!(
                "{} → {}",
                o.op.target,
                o.op.to_version.as_deref().unwrap_or("")
            );
            if !seen.insert(key.clone()) {
                twice.push(key);
            }
        }
        twice
    }

    /// Violations seen: kubelets moved past the control plane, nodes upgraded undrained.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// Moves the control plane behind kup's back (a restore, an outside upgrade).
    pub fn force_control_plane(&self, to: &str) {
        self.sim.set_api_server_version(&format!("v{to}")).unwrap();
        self.state.lock().unwrap().control_plane = Some(v(to));
    }

    /// Forgets a pool (deleted outside kup).
    pub fn remove_pool(&self, pool: &str) {
        self.state.lock().unwrap().pools.remove(pool);
    }

    /// Backups taken so far.
    pub fn backups(&self) -> u32 {
        self.state.lock().unwrap().backups
    }

    /// The control plane's version as the provider holds it.
    pub fn control_plane(&self) -> KubeVersion {
        self.state.lock().unwrap().control_plane.clone().unwrap()
    }

    /// An add-on's installed version.
    pub fn addon(&self, name: &str) -> Option<String> {
        self.state.lock().unwrap().addons.get(name).cloned()
    }

    /// Operations still running.
    pub fn running(&self) -> usize {
        self.settle();
        self.state
            .lock()
            .unwrap()
            .ops
            .values()
            .filter(|o| !o.status.is_terminal())
            .count()
    }

    fn node_value(&self, node: &str) -> Option<Value> {
        self.sim.get("nodes", None, node)
    }

    fn nodes_of(&self, pool: &str) -> Vec<Value> {
        let mut nodes: Vec<Value> = self
            .sim
            .nodes()
            .into_iter()
            .filter(|n| n["metadata"]["labels"][POOL_LABEL] == pool)
            .collect();
        nodes.sort_by_key(|n| n["metadata"]["name"].as_str().unwrap_or("").to_string());
        nodes
    }

    /// Finishes operations whose time has come.
    fn settle(&self) {
        let mut st = self.state.lock().unwrap();
        let now = Instant::now();
        let mut apply_cp = None;
        let mut addon_updates = Vec::new();
        let ids: Vec<String> = st.ops.keys().cloned().collect();
        for id in ids {
            let Some(op) = st.ops.get_mut(&id) else {
                continue;
            };
            if op.status.is_terminal() {
                continue;
            }
            match &op.work {
                Work::Pool(shared) => {
                    op.status = shared.lock().unwrap().clone();
                }
                Work::Node(node, to) => {
                    if let Some(errors) = op.fail.clone() {
                        op.status = OperationStatus::Failed { errors };
                        continue;
                    }
                    let n = self.sim.get("nodes", None, node);
                    let ready_at = n.as_ref().is_some_and(|n| {
                        let kubelet = n["status"]["nodeInfo"]["kubeletVersion"]
                            .as_str()
                            .unwrap_or("");
                        let ready = n["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True");
                        ready && KubeVersion::parse(kubelet).is_ok_and(|k| k == *to)
                    });
                    if ready_at {
                        op.status = OperationStatus::Succeeded;
                    } else {
                        op.status = OperationStatus::Running {
                            progress: None,
                            message: Some(format!("kubelet on {node} restarting at {to}")),
                        };
                    }
                }
                Work::ControlPlane(to) => {
                    if op.done_at.is_some_and(|t| now >= t) {
                        if let Some(errors) = op.fail.clone() {
                            op.status = OperationStatus::Failed { errors };
                        } else {
                            op.status = OperationStatus::Succeeded;
                            apply_cp = Some(to.clone());
                        }
                    }
                }
                Work::Addon(name, to) => {
                    if op.done_at.is_some_and(|t| now >= t) {
                        op.status = OperationStatus::Succeeded;
                        addon_updates.push((name.clone(), to.clone()));
                    }
                }
            }
        }
        for (name, to) in addon_updates {
            st.addons.insert(name, to);
        }
        if let Some(to) = apply_cp {
            self.sim.set_api_server_version(&format!("v{to}")).unwrap();
            st.control_plane = Some(to);
        }
    }

    fn new_op(
        &self,
        st: &mut State,
        target: OperationTarget,
        to: &str,
        work: Work,
        after: Option<Duration>,
    ) -> Operation {
        st.next_id += 1;
        let op = Operation::new(kind(), format!("op-{}", st.next_id), target.clone())
            .with_version(to)
            .with_handle("cluster", self.name.clone());
        st.started.push((target, to.to_string()));
        st.ops.insert(
            op.id.clone(),
            OpState {
                op: op.clone(),
                work,
                done_at: after.map(|d| Instant::now() + d),
                fail: None,
                status: OperationStatus::Running {
                    progress: Some(0.0),
                    message: None,
                },
            },
        );
        op
    }

    fn busy_check(&self, st: &mut State, allow_nodes: bool) -> Result<()> {
        if std::mem::take(&mut st.faults.busy_once) {
            return Err(Error::Busy {
                message: "ResourceInUseException: an update is already in progress".into(),
                operation: Some("elsewhere-1".into()),
            });
        }
        let running = st.ops.values().find(|o| {
            let node_op = matches!(o.work, Work::Node(..));
            !(o.status.is_terminal() || allow_nodes && node_op)
        });
        if let Some(o) = running {
            return Err(Error::Busy {
                message: format!("{} is in progress", o.op),
                operation: Some(o.op.id.clone()),
            });
        }
        Ok(())
    }
}

/// One managed pool upgrade, as a cloud runs it.
struct PoolJob {
    sim: SimHandle,
    drainer: Drainer,
    pool: String,
    to: KubeVersion,
    olds: Vec<String>,
    first_id: u64,
    fail: bool,
    status: Arc<Mutex<OperationStatus>>,
}

async fn pool_task(job: PoolJob) {
    let PoolJob {
        sim,
        drainer,
        pool,
        to,
        olds,
        first_id,
        fail,
        status,
    } = job;
    {
        let total = olds.len().max(1);
        for (i, old) in olds.iter().enumerate() {
            let new = format!("{pool}-r{}", first_id + i as u64);
            sim.add_node(
                kup_mocks::k8s::Node::new(&new)
                    .pool(&pool)
                    .kubelet_version(format!("v{to}")),
            )
            .unwrap();
            let ready = sim
                .wait_for(Duration::from_secs(60), "replacement Ready", |s| {
                    s.get("nodes", None, &new).is_some_and(|n| {
                        n["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .await;
            if ready.is_err() {
                *status.lock().unwrap() = OperationStatus::Failed {
                    errors: vec![ProviderErrorDetail {
                        code: "NodeCreationFailure".into(),
                        message: "Instances failed to join the kubernetes cluster".into(),
                        resource_ids: vec![new.clone()],
                    }],
                };
                return;
            }
            if fail && i == 0 {
                *status.lock().unwrap() = OperationStatus::Failed {
                    errors: vec![ProviderErrorDetail {
                        code: "PodEvictionFailure".into(),
                        message: "Reached max retries while trying to evict pods from nodes in node group".into(),
                        resource_ids: vec![old.clone()],
                    }],
                };
                return;
            }
            let _ = drainer.cordon(old).await;
            let opts = DrainOptions {
                timeout: Some(Duration::from_secs(60)),
                ..DrainOptions::default()
            };
            if let Err(e) = drainer.drain(old, &opts, &kup_core::NoEvents).await {
                *status.lock().unwrap() = OperationStatus::Failed {
                    errors: vec![ProviderErrorDetail {
                        code: "PodEvictionFailure".into(),
                        message: e.to_string(),
                        resource_ids: vec![old.clone()],
                    }],
                };
                return;
            }
            sim.remove_node(old).unwrap();
            *status.lock().unwrap() = OperationStatus::Running {
                progress: Some((i + 1) as f32 / total as f32),
                message: Some(format!("{old} replaced by {new}")),
            };
        }
        *status.lock().unwrap() = OperationStatus::Succeeded;
    }
}

fn pool_version(nodes: &[Value]) -> Option<KubeVersion> {
    nodes
        .iter()
        .filter_map(|n| n["status"]["nodeInfo"]["kubeletVersion"].as_str())
        .filter_map(|k| KubeVersion::parse(k).ok())
        .min()
}

#[async_trait]
impl UpgradeProvider for SimProvider {
    fn kind(&self) -> ProviderKind {
        kind()
    }

    fn cluster_name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }

    async fn cluster(&self) -> Result<ClusterInfo> {
        self.settle();
        let st = self.state.lock().unwrap();
        let mut node_pools = Vec::new();
        for (name, management) in &st.pools {
            let nodes = self.nodes_of(name);
            let Some(version) = pool_version(&nodes) else {
                continue;
            };
            let mut pool = NodePool::managed(name.clone(), version)
                .with_node_selector(format!("{POOL_LABEL}={name}"));
            pool.management = *management;
            pool.node_count = Some(nodes.len() as u32);
            node_pools.push(pool);
        }
        Ok(ClusterInfo {
            provider: kind(),
            name: self.name.clone(),
            control_plane: st.control_plane.clone().unwrap(),
            api_servers: vec![],
            node_pools,
            addons: st
                .addons
                .iter()
                .map(|(n, v)| Addon {
                    name: n.clone(),
                    version: v.clone(),
                    managed: true,
                })
                .collect(),
            in_progress: st
                .ops
                .values()
                .filter(|o| !o.status.is_terminal())
                .map(|o| o.op.clone())
                .collect(),
            status: Some("ACTIVE".into()),
        })
    }

    async fn available_versions(&self) -> Result<Vec<AvailableVersion>> {
        let mut out = Vec::new();
        for minor in 28..=36 {
            for patch in [0, 2, 4] {
                out.push(AvailableVersion::new(
                    KubeVersion::new(1, minor, patch),
                    SupportStatus::Standard,
                ));
            }
        }
        Ok(out)
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        _opts: &ControlPlaneOptions,
    ) -> Result<Operation> {
        self.settle();
        let mut st = self.state.lock().unwrap();
        self.busy_check(&mut st, false)?;
        let cp = st.control_plane.clone().unwrap();
        if to.minor_distance(&cp) > 0 {
            st.violations.push(format!(
                "control plane asked to move back from {cp} to {to}"
            ));
        }
        if to.minor_distance(&cp) > 0 || cp.minor_distance(to) > 1 {
            return Err(Error::precondition(format!(
                "control plane at {cp} cannot move to {to}"
            )));
        }
        let fail = st.faults.fail_control_plane.take();
        let op = self.new_op(
            &mut st,
            OperationTarget::ControlPlane,
            &to.to_string(),
            Work::ControlPlane(to.clone()),
            Some(self.timing.control_plane),
        );
        if let Some(o) = st.ops.get_mut(&op.id) {
            o.fail = fail;
        }
        Ok(op)
    }

    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        _opts: &NodePoolOptions,
    ) -> Result<Operation> {
        self.settle();
        let mut st = self.state.lock().unwrap();
        self.busy_check(&mut st, false)?;
        let cp = st.control_plane.clone().unwrap();
        if to.minor_distance(&cp) < 0 {
            st.violations.push(format!(
                "pool {pool} asked to move to {to} past the control plane {cp}"
            ));
            return Err(Error::precondition(format!(
                "{to} is newer than the control plane {cp}"
            )));
        }
        if !st.pools.contains_key(pool) {
            return Err(Error::NotFound {
                kind: "node pool".into(),
                name: pool.into(),
                scope: None,
            });
        }
        let olds: Vec<String> = self
            .nodes_of(pool)
            .iter()
            .filter(|n| {
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .and_then(|k| KubeVersion::parse(k).ok())
                    .is_none_or(|k| k != *to)
            })
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let fail = st.faults.fail_pool.as_deref() == Some(pool);
        if fail {
            st.faults.fail_pool = None;
        }
        let first_id = st.replacements + 1;
        st.replacements += olds.len() as u64;
        let shared = Arc::new(Mutex::new(OperationStatus::Running {
            progress: Some(0.0),
            message: None,
        }));
        let op = self.new_op(
            &mut st,
            OperationTarget::NodePool { pool: pool.into() },
            &to.to_string(),
            Work::Pool(shared.clone()),
            None,
        );
        tokio::spawn(pool_task(PoolJob {
            sim: self.sim.clone(),
            drainer: self.drainer.clone(),
            pool: pool.to_string(),
            to: to.clone(),
            olds,
            first_id,
            fail,
            status: shared,
        }));
        Ok(op)
    }

    async fn upgrade_node(&self, pool: &str, node: &str, to: &KubeVersion) -> Result<Operation> {
        self.settle();
        let mut st = self.state.lock().unwrap();
        self.busy_check(&mut st, true)?;
        let cp = st.control_plane.clone().unwrap();
        if to.minor_distance(&cp) < 0 {
            st.violations.push(format!(
                "node {node} asked to move to {to} past the control plane {cp}"
            ));
            return Err(Error::precondition(format!(
                "{to} is newer than the control plane {cp}"
            )));
        }
        let Some(n) = self.node_value(node) else {
            return Err(Error::NotFound {
                kind: "node".into(),
                name: node.into(),
                scope: Some(pool.into()),
            });
        };
        if n["spec"]["unschedulable"] != true {
            st.violations
                .push(format!("node {node} upgraded while schedulable"));
        }
        let undrained: Vec<String> = self
            .sim
            .pods_on_node(node)
            .iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && !p["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|o| o["kind"] == "DaemonSet")
                    && p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null()
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        if !undrained.is_empty() {
            st.violations.push(format!(
                "node {node} upgraded with pods still on it: {undrained:?}"
            ));
        }
        let fail = st.faults.fail_node.as_deref() == Some(node);
        if fail {
            st.faults.fail_node = None;
        }
        let op = self.new_op(
            &mut st,
            OperationTarget::Node { node: node.into() },
            &to.to_string(),
            Work::Node(node.into(), to.clone()),
            None,
        );
        if fail {
            if let Some(o) = st.ops.get_mut(&op.id) {
                o.fail = Some(vec![ProviderErrorDetail {
                    code: "NodeUpgradeFailure".into(),
                    message: format!("package install failed on {node}"),
                    resource_ids: vec![node.into()],
                }]);
            }
        } else {
            self.sim
                .set_kubelet_version(node, &format!("v{to}"))
                .unwrap();
        }
        Ok(op)
    }

    async fn addon_upgrades(&self, control_plane: &KubeVersion) -> Result<Vec<AddonUpgrade>> {
        let st = self.state.lock().unwrap();
        let recommended = match control_plane.minor() {
            ..=32 => "v1.11.3",
            33 => "v1.12.0",
            _ => "v1.12.1",
        };
        Ok(st
            .addons
            .iter()
            .filter(|(n, _)| n.as_str() == "coredns")
            .map(|(n, installed)| AddonUpgrade {
                name: n.clone(),
                from: installed.clone(),
                to: recommended.into(),
                control_plane: control_plane.clone(),
                current_compatible: installed == recommended,
            })
            .collect())
    }

    async fn upgrade_addon(
        &self,
        upgrade: &AddonUpgrade,
        _opts: &AddonOptions,
    ) -> Result<Operation> {
        self.settle();
        let mut st = self.state.lock().unwrap();
        self.busy_check(&mut st, false)?;
        if let Some(installed) = st.addons.get(&upgrade.name)
            && kup_core::addon_version_cmp(&upgrade.to, installed) == Some(std::cmp::Ordering::Less)
        {
            let moved_back = format!(
                "add-on {} asked to move back from {installed} to {}",
                upgrade.name, upgrade.to
            );
            st.violations.push(moved_back);
        }
        Ok(self.new_op(
            &mut st,
            OperationTarget::Addon {
                addon: upgrade.name.clone(),
            },
            &upgrade.to,
            Work::Addon(upgrade.name.clone(), upgrade.to.clone()),
            Some(self.timing.addon),
        ))
    }

    async fn poll(&self, op: &Operation) -> Result<OperationStatus> {
        self.settle();
        let mut st = self.state.lock().unwrap();
        st.polls += 1;
        if st.faults.poll_errors > 0 {
            st.faults.poll_errors -= 1;
            return Err(Error::provider(
                kind(),
                Some("ThrottlingException".into()),
                "Rate exceeded",
                true,
            ));
        }
        st.ops
            .get(&op.id)
            .map(|o| o.status.clone())
            .ok_or_else(|| Error::NotFound {
                kind: "operation".into(),
                name: op.id.clone(),
                scope: None,
            })
    }

    async fn preflight(&self, _to: &KubeVersion) -> Result<Vec<Finding>> {
        Ok(self.state.lock().unwrap().faults.findings.clone())
    }

    async fn backup(&self, _opts: &BackupOptions) -> Result<BackupRecord> {
        self.settle();
        let mut st = self.state.lock().unwrap();
        if st.faults.backup_fails {
            return Err(Error::precondition(
                "the etcd snapshot does not verify: hash mismatch (stored 0x1f, computed 0x2e)",
            ));
        }
        st.backups += 1;
        Ok(BackupRecord {
            id: format!("snap-{}", st.backups),
            location: format!("/backups/{}-{}.db", self.name, st.backups),
            taken_at: jiff::Timestamp::now(),
            size_bytes: 4096,
            sha256: "00".repeat(32),
            store_hash: Some(0x1f),
            revision: Some(1000 + u64::from(st.backups)),
            total_keys: Some(321),
            control_plane: st.control_plane.clone().unwrap(),
        })
    }
}
