//! [`GkeProvider`]: kup's [`UpgradeProvider`] over `google-cloud-container-v1`.

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::{
    self as gke, BlueGreenSettings, NodePoolUpdateStrategy, blue_green_settings, node_pool,
    operation,
};
use kup_core::{
    AvailableVersion, BackupSupport, Capabilities, ClusterInfo, ControlPlaneOptions, Finding,
    KubeVersion, NodePool, NodePoolOptions, Operation, OperationStatus, OperationTarget,
    PoolStrategy, ProviderErrorDetail, ProviderKind, RollbackOffer, RollbackOption, RollbackPart,
    SupportStatus, UpgradeProvider, VersionScope,
};

use crate::error::Error;
use crate::preflight;

/// GKE's limit on the control plane outside a rollback-safe upgrade's soak.
pub const CONTROL_PLANE_ROLLBACK_REFUSAL: &str = "GKE does not downgrade a control plane outside \
     the soak of a rollback-safe (two-step) minor upgrade: no such upgrade is soaking now, so the \
     control plane is fixed forward";

/// The label GKE puts on the nodes of a node pool.
pub const NODE_POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// Upgrade and timing settings.
#[derive(Clone, Debug)]
pub struct GkeSettings {
    /// How long GKE respects PodDisruptionBudgets while draining a node before it evicts
    /// anyway (one hour); pre-flight warns about budgets that would hit it.
    pub pdb_timeout: Duration,
    /// Blue-green: soak after each drained batch (`batchSoakDuration`); GKE's default when
    /// `None`.
    pub batch_soak: Option<Duration>,
    /// Blue-green: soak of the drained blue pool before it is deleted
    /// (`nodePoolSoakDuration`); GKE's default (one hour) when `None`. Until it ends the
    /// upgrade can be rolled back.
    pub node_pool_soak: Option<Duration>,
    /// Minor control-plane upgrades become rollback-safe (two-step) with this soak
    /// (`desiredRollbackSafeUpgrade.controlPlaneSoakDuration`, six hours to seven days):
    /// until it ends, or [`GkeProvider::complete_control_plane_upgrade`], the control plane
    /// can be rolled back. `None` upgrades in one step, which cannot be undone.
    pub control_plane_soak: Option<Duration>,
}

impl Default for GkeSettings {
    fn default() -> Self {
        Self {
            pdb_timeout: Duration::from_secs(3600),
            batch_soak: None,
            node_pool_soak: None,
            control_plane_soak: None,
        }
    }
}

/// Upgrades one GKE cluster: control plane and node pools (surge or blue-green); GKE moves its
/// managed add-ons itself.
pub struct GkeProvider {
    pub(crate) client: ClusterManager,
    project: String,
    location: String,
    cluster: String,
    pub(crate) kube: Option<kube::Client>,
    pub(crate) settings: GkeSettings,
}

impl std::fmt::Debug for GkeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GkeProvider")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

type CoreResult<T> = kup_core::Result<T>;

/// `1.34.1-gke.1829001` → the kup version (the build suffix kept).
fn parse_version(call: &'static str, field: &str, text: &str) -> Result<KubeVersion, Error> {
    KubeVersion::parse(text)
        .map_err(|e| Error::response(call, format!("{field} {text:?} is not a version: {e}")))
}

fn code_name(code: i32) -> String {
    google_cloud_gax::error::rpc::Code::from(code)
        .name()
        .to_string()
}

/// What an operation's status means to kup. `DONE` with `error` set is a failure;
/// `CANCELLED` (and `ABORTED`, a blue-green upgrade stopped by its rollback) a cancellation.
pub(crate) fn status_of(op: &gke::Operation) -> OperationStatus {
    // `clusterConditions`/`nodepoolConditions` and `statusMessage` are deprecated in favour
    // of `error`, which carries the outcome.
    let errors = || {
        op.error
            .iter()
            .filter(|e| e.code != 0)
            .map(|e| ProviderErrorDetail {
                code: code_name(e.code),
                message: e.message.clone(),
                resource_ids: vec![op.target_link.clone()],
            })
            .collect::<Vec<_>>()
    };
    match op.status {
        operation::Status::Pending => OperationStatus::Pending,
        operation::Status::Done => match op.error.as_ref().map(|e| e.code) {
            Some(1 | 10) => OperationStatus::Cancelled { errors: errors() },
            None | Some(0) => OperationStatus::Succeeded,
            Some(_) => OperationStatus::Failed { errors: errors() },
        },
        _ => OperationStatus::Running {
            progress: progress_of(op),
            message: Some(if op.detail.is_empty() {
                op.status.name().unwrap_or("RUNNING").to_string()
            } else {
                op.detail.clone()
            }),
        },
    }
}

/// Progress from the operation's metrics: NODES_DONE / NODES_TOTAL, or PROGRESS_PERCENT.
fn progress_of(op: &gke::Operation) -> Option<f32> {
    use gke::operation_progress::metric::Value;
    let metrics = &op.progress.as_ref()?.metrics;
    let get = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| match &m.value {
                Some(Value::IntValue(v)) => Some(*v as f64),
                Some(Value::DoubleValue(v)) => Some(*v),
                Some(Value::StringValue(s)) => s.parse().ok(),
                _ => None,
            })
    };
    if let (Some(done), Some(total)) = (get("NODES_DONE"), get("NODES_TOTAL"))
        && total > 0.0
    {
        return Some((done / total).clamp(0.0, 1.0) as f32);
    }
    get("PROGRESS_PERCENT").map(|p| (p / 100.0).clamp(0.0, 1.0) as f32)
}

/// A count (`2`) for GKE's integer fields; percentages are refused naming the field.
fn count(field: &str, value: &str, what: &str) -> CoreResult<i32> {
    value.trim().parse::<u16>().map(i32::from).map_err(|_| {
        kup_core::Error::invalid_input(
            field,
            format!("{value:?}: GKE takes {what} as a node count (e.g. 1); percentages are not accepted here"),
        )
    })
}

fn duration(d: Duration) -> google_cloud_wkt::Duration {
    google_cloud_wkt::Duration::clamp(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0)
}

/// A pool's way back now, or GKE's reason why there is none: a blue-green upgrade until its
/// blue pool is deleted, or a node-pool upgrade that ended failed or cancelled.
fn pool_rollback(
    pool: &gke::NodePool,
    latest: Option<&gke::Operation>,
) -> Result<RollbackOption, String> {
    use node_pool::update_info::blue_green_info::Phase;
    let version = KubeVersion::parse(&pool.version).map_err(|e| {
        format!(
            "node pool {} reports version {:?}, which kup cannot read: {e}",
            pool.name, pool.version
        )
    })?;
    let option = |basis: String| RollbackOption {
        part: RollbackPart::pool(pool.name.clone()),
        to: version.clone(),
        release: Some(format!("{} on every node", pool.version)),
        basis,
    };
    if let Some(bg) = pool
        .update_info
        .as_ref()
        .and_then(|u| u.blue_green_info.as_ref())
        .filter(|bg| bg.phase != Phase::Unspecified)
    {
        let phase = bg.phase.name().unwrap_or("UNKNOWN");
        return match bg.phase {
            Phase::DeletingBluePool => Err(format!(
                "node pool {}'s blue-green upgrade to {} is deleting its blue nodes: its soak has \
                 ended, and GKE can no longer roll it back",
                pool.name, bg.green_pool_version
            )),
            Phase::RollbackStarted => Err(format!(
                "node pool {} is already rolling its blue-green upgrade back",
                pool.name
            )),
            _ => Ok(option(format!(
                "the blue-green upgrade to {} (phase {phase}): GKE brings the blue nodes back \
                 until the blue pool is deleted",
                bg.green_pool_version
            ))),
        };
    }
    let completed = || {
        format!(
            "GKE rolls back a node-pool upgrade only when it was cancelled or failed, or a \
             blue-green upgrade until its soak ends; node pool {}'s last upgrade completed, so \
             there is nothing to roll back",
            pool.name
        )
    };
    let Some(op) = latest else {
        return Err(completed());
    };
    if op.status != operation::Status::Done {
        return Err(format!(
            "node pool {}'s upgrade {} is still running; GKE rolls back a surge upgrade once \
             it is cancelled or has failed: cancel it first",
            pool.name, op.name
        ));
    }
    match op.error.as_ref().filter(|e| e.code != 0) {
        // ABORTED: a blue-green upgrade a rollback already stopped.
        Some(e) if e.code == 10 => Err(completed()),
        Some(e) => Ok(option(format!(
            "the {} upgrade {} ({}: {})",
            if e.code == 1 { "cancelled" } else { "failed" },
            op.name,
            code_name(e.code),
            e.message
        ))),
        None => Err(completed()),
    }
}

impl GkeProvider {
    pub(crate) fn new(
        client: ClusterManager,
        project: String,
        location: String,
        cluster: String,
        kube: Option<kube::Client>,
        settings: GkeSettings,
    ) -> Self {
        Self {
            client,
            project,
            location,
            cluster,
            kube,
            settings,
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &ClusterManager {
        &self.client
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The location (region or zone).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    pub(crate) fn cluster_path(&self) -> String {
        format!("{}/clusters/{}", self.parent(), self.cluster)
    }

    fn pool_path(&self, pool: &str) -> String {
        format!("{}/nodePools/{pool}", self.cluster_path())
    }

    /// `Operation.name` is the short id; calls take the full resource name.
    fn operation_path(&self, id: &str) -> String {
        format!("{}/operations/{id}", self.parent())
    }

    pub(crate) async fn get_cluster(&self) -> Result<gke::Cluster, Error> {
        self.client
            .get_cluster()
            .set_name(self.cluster_path())
            .send()
            .await
            .map_err(Error::gax("getCluster", "cluster", &self.cluster))
    }

    async fn get_pool(&self, pool: &str) -> Result<gke::NodePool, Error> {
        self.client
            .get_node_pool()
            .set_name(self.pool_path(pool))
            .send()
            .await
            .map_err(Error::gax("getNodePool", "node pool", pool))
    }

    pub(crate) async fn server_config(&self) -> Result<gke::ServerConfig, Error> {
        self.client
            .get_server_config()
            .set_name(self.parent())
            .send()
            .await
            .map_err(Error::gax("getServerConfig", "location", &self.location))
    }

    /// GKE's upgrade information for the cluster, `None` where the API does not offer it.
    pub(crate) async fn upgrade_info(&self) -> Result<Option<gke::ClusterUpgradeInfo>, Error> {
        match self
            .client
            .fetch_cluster_upgrade_info()
            .set_name(self.cluster_path())
            .send()
            .await
            .map_err(Error::gax(
                "fetchClusterUpgradeInfo",
                "cluster",
                &self.cluster,
            )) {
            Ok(info) => Ok(Some(info)),
            Err(e) if matches!(e.code(), Some("NOT_FOUND" | "UNIMPLEMENTED")) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The operations still running on this cluster (any of them makes it busy).
    async fn running(&self) -> Result<Vec<Operation>, Error> {
        let ops = self
            .client
            .list_operations()
            .set_parent(self.parent())
            .send()
            .await
            .map_err(Error::gax("listOperations", "location", &self.location))?;
        let mine = format!("/clusters/{}", self.cluster);
        Ok(ops
            .operations
            .iter()
            .filter(|o| o.status != operation::Status::Done)
            .filter(|o| {
                o.target_link.ends_with(&mine) || o.target_link.contains(&format!("{mine}/"))
            })
            .map(|o| self.operation_of(o))
            .collect())
    }

    fn operation_of(&self, o: &gke::Operation) -> Operation {
        let target = match o
            .target_link
            .split_once("/nodePools/")
            .map(|(_, p)| p.trim_end_matches('/'))
        {
            Some(pool) => OperationTarget::NodePool {
                pool: pool.to_string(),
            },
            None => OperationTarget::ControlPlane,
        };
        let mut op = Operation::new(ProviderKind::Gke, o.name.clone(), target)
            .with_handle("operation", self.operation_path(&o.name))
            .with_handle("cluster", self.cluster.clone());
        if let Some(t) = o.operation_type.name() {
            op = op.with_handle("type", t);
        }
        op.started_at = o.start_time.parse::<jiff::Timestamp>().ok();
        op
    }

    async fn refuse_if_busy(&self, what: &str) -> CoreResult<()> {
        if let Some(op) = self.running().await?.into_iter().next() {
            return Err(kup_core::Error::Busy {
                message: format!("{op} is running; GKE takes no {what} until it ends"),
                operation: Some(op.id),
            });
        }
        Ok(())
    }

    /// Cancels a running operation. GKE stops a node-pool upgrade after the node in progress;
    /// the pool keeps the nodes already moved (roll them back with
    /// [`GkeProvider::rollback_node_pool_upgrade`]).
    pub async fn cancel(&self, op: &Operation) -> CoreResult<()> {
        let name = self.name_of(op);
        self.client
            .cancel_operation()
            .set_name(name)
            .send()
            .await
            .map_err(Error::gax("cancelOperation", "operation", &op.id))?;
        Ok(())
    }

    /// Rolls a pool back to its version before the last upgrade: a cancelled or failed surge
    /// upgrade, or a blue-green upgrade until its soak ends. With `respect_pdb`, drains of the
    /// new nodes respect PodDisruptionBudgets.
    pub async fn rollback_node_pool_upgrade(
        &self,
        pool: &str,
        respect_pdb: bool,
    ) -> CoreResult<Operation> {
        let op = self
            .client
            .rollback_node_pool_upgrade()
            .set_name(self.pool_path(pool))
            .set_respect_pdb(respect_pdb)
            .send()
            .await
            .map_err(Error::gax("rollbackNodePoolUpgrade", "node pool", pool))?;
        Ok(self.operation_of(&op).with_handle("rollback", "true"))
    }

    /// Ends a blue-green upgrade's pool soak now: the blue nodes are deleted and the upgrade
    /// can no longer be rolled back.
    pub async fn complete_node_pool_upgrade(&self, pool: &str) -> CoreResult<()> {
        self.client
            .complete_node_pool_upgrade()
            .set_name(self.pool_path(pool))
            .send()
            .await
            .map_err(Error::gax("completeNodePoolUpgrade", "node pool", pool))?;
        Ok(())
    }

    /// Ends a rollback-safe control-plane upgrade's soak now (step two): the control plane can
    /// no longer be rolled back.
    pub async fn complete_control_plane_upgrade(&self) -> CoreResult<Operation> {
        let op = self
            .client
            .complete_control_plane_upgrade()
            .set_name(self.cluster_path())
            .send()
            .await
            .map_err(Error::gax(
                "completeControlPlaneUpgrade",
                "cluster",
                &self.cluster,
            ))?;
        Ok(self.operation_of(&op))
    }

    /// The soak of a rollback-safe control-plane upgrade, while one runs: the version before it
    /// and the soak's end.
    async fn control_plane_soak(&self) -> CoreResult<Option<(String, Option<String>)>> {
        use gke::rollback_safe_upgrade_status::Mode;
        let Some(info) = self.upgrade_info().await? else {
            return Ok(None);
        };
        let Some(status) = info.rollback_safe_upgrade_status else {
            return Ok(None);
        };
        let end = status
            .control_plane_upgrade_rollback_end_time
            .and_then(|t| jiff::Timestamp::new(t.seconds(), t.nanos()).ok());
        let soaking = status.mode == Mode::KcpMinorUpgradeRollbackSafeMode
            && !status.previous_version.is_empty()
            && end.is_none_or(|t| t > jiff::Timestamp::now());
        Ok(soaking.then(|| (status.previous_version, end.map(|t| t.to_string()))))
    }

    /// This cluster's node-pool operations, each pool's newest last.
    async fn pool_operations(&self) -> Result<Vec<gke::Operation>, Error> {
        let ops = self
            .client
            .list_operations()
            .set_parent(self.parent())
            .send()
            .await
            .map_err(Error::gax("listOperations", "location", &self.location))?;
        let mine = format!("/clusters/{}/nodePools/", self.cluster);
        let mut out: Vec<gke::Operation> = ops
            .operations
            .into_iter()
            .filter(|o| o.target_link.contains(&mine))
            .collect();
        // RFC 3339 times in one format sort as text; the list's own order is not documented.
        out.sort_by(|a, b| a.start_time.cmp(&b.start_time));
        Ok(out)
    }

    fn latest_for<'a>(ops: &'a [gke::Operation], pool: &str) -> Option<&'a gke::Operation> {
        let tail = format!("/nodePools/{pool}");
        ops.iter()
            .rev()
            .find(|o| o.target_link.trim_end_matches('/').ends_with(&tail))
    }

    fn name_of(&self, op: &Operation) -> String {
        op.handle
            .get("operation")
            .cloned()
            .unwrap_or_else(|| self.operation_path(&op.id))
    }

    /// The full version to send for a control-plane target: the exact build when `to` names
    /// one, else the newest valid master version with `to`'s minor (and patch, when given).
    fn pick(valid: &[String], to: &KubeVersion) -> Option<String> {
        let mut matching: Vec<(KubeVersion, &String)> = valid
            .iter()
            .filter_map(|v| Some((KubeVersion::parse(v).ok()?, v)))
            .filter(|(v, _)| {
                v.same_minor(to)
                    && to.patch().is_none_or(|p| v.patch() == Some(p))
                    && to.suffix().is_none_or(|_| v.same_build(to))
            })
            .collect();
        matching.sort_by(|a, b| a.0.cmp_build(&b.0));
        matching.last().map(|(_, s)| (*s).clone())
    }

    fn upgrade_settings(
        &self,
        pool: &gke::NodePool,
        opts: &NodePoolOptions,
    ) -> CoreResult<Option<node_pool::UpgradeSettings>> {
        if opts.force {
            return Err(kup_core::Error::invalid_input(
                "force",
                "GKE has no forced node-pool upgrade: it respects PodDisruptionBudgets for up to \
                 an hour per node and then evicts anyway; leave force unset",
            ));
        }
        let current = pool.upgrade_settings.clone().unwrap_or_default();
        match opts.strategy {
            PoolStrategy::Surge => {
                if opts.max_surge.is_none() && opts.max_unavailable.is_none() {
                    // The pool's own settings apply.
                    return Ok(None);
                }
                let surge = match &opts.max_surge {
                    Some(s) => count("max_surge", s, "maxSurge")?,
                    None => current.max_surge,
                };
                let unavailable = match &opts.max_unavailable {
                    Some(s) => count("max_unavailable", s, "maxUnavailable")?,
                    None => current.max_unavailable,
                };
                if surge == 0 && unavailable == 0 {
                    return Err(kup_core::Error::invalid_input(
                        "max_surge",
                        "GKE needs max_surge or max_unavailable above 0 to replace nodes",
                    ));
                }
                Ok(Some(
                    node_pool::UpgradeSettings::new()
                        .set_strategy(NodePoolUpdateStrategy::Surge)
                        .set_max_surge(surge)
                        .set_max_unavailable(unavailable),
                ))
            }
            PoolStrategy::BlueGreen => {
                if opts.max_surge.is_some() {
                    return Err(kup_core::Error::invalid_input(
                        "max_surge",
                        "a blue-green upgrade creates the whole new pool at once; leave \
                         max_surge unset (max_unavailable sets the drain batch: a count or a \
                         percentage)",
                    ));
                }
                let mut policy = blue_green_settings::StandardRolloutPolicy::new();
                match opts.max_unavailable.as_deref().map(str::trim) {
                    Some(p) if p.ends_with('%') => {
                        let pct: f32 = p.trim_end_matches('%').parse().map_err(|_| {
                            kup_core::Error::invalid_input(
                                "max_unavailable",
                                format!("{p:?} is not a percentage such as 25%"),
                            )
                        })?;
                        if !(pct > 0.0 && pct <= 100.0) {
                            return Err(kup_core::Error::invalid_input(
                                "max_unavailable",
                                format!("{p:?}: the drain batch must be above 0% and at most 100%"),
                            ));
                        }
                        policy = policy.set_batch_percentage(pct / 100.0);
                    }
                    Some(n) => {
                        let n = count("max_unavailable", n, "the blue-green drain batch")?;
                        if n == 0 {
                            return Err(kup_core::Error::invalid_input(
                                "max_unavailable",
                                "the blue-green drain batch must be at least 1 node",
                            ));
                        }
                        policy = policy.set_batch_node_count(n);
                    }
                    None => {}
                }
                if let Some(d) = self.settings.batch_soak {
                    policy = policy.set_batch_soak_duration(duration(d));
                }
                let mut bg = BlueGreenSettings::new().set_standard_rollout_policy(policy);
                if let Some(d) = self.settings.node_pool_soak {
                    bg = bg.set_node_pool_soak_duration(duration(d));
                }
                Ok(Some(
                    node_pool::UpgradeSettings::new()
                        .set_strategy(NodePoolUpdateStrategy::BlueGreen)
                        .set_blue_green_settings(bg),
                ))
            }
        }
    }
}

#[async_trait]
impl UpgradeProvider for GkeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gke
    }

    fn cluster_name(&self) -> &str {
        &self.cluster
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(|c| {
            // GKE follows upstream's skew: nodes up to three minors behind (1.28 and later).
            c.max_kubelet_skew = 3;
            // A node pool may move several minors at once, up to the control plane's.
            c.max_node_pool_minor_jump = None;
            // update_master takes a full version, so the patch is kup's to choose.
            c.control_plane_patch_selectable = true;
            c.node_pool_upgrade = true;
            // GKE cordons and drains nodes itself through the eviction API.
            c.provider_drains_nodes = true;
            // GKE upgrades its managed add-ons (kube-dns, kube-proxy, CNI…) with the control
            // plane; there is nothing for kup to move.
            c.managed_addons = true;
            c.backup = BackupSupport::ProviderManaged;
            c.surge_upgrades = true;
            c.pool_max_unavailable = true;
            c.blue_green_upgrades = true;
            // rollbackNodePoolUpgrade: a cancelled or failed upgrade, or a blue-green one
            // until its soak ends.
            c.node_pool_rollback = true;
            // A rollback-safe (two-step) minor upgrade can go back while it soaks.
            c.control_plane_rollback = kup_core::ControlPlaneRollback::DuringSoak;
        })
    }

    async fn cluster(&self) -> CoreResult<ClusterInfo> {
        let c = self.get_cluster().await?;
        let control_plane = parse_version(
            "getCluster",
            "currentMasterVersion",
            &c.current_master_version,
        )?;
        let ops = self.pool_operations().await?;
        let mut pools = Vec::new();
        for p in &c.node_pools {
            let version = parse_version("getCluster", "nodePools.version", &p.version)?;
            let mut pool = NodePool::managed(p.name.clone(), version)
                .with_node_selector(format!("{NODE_POOL_LABEL}={}", p.name));
            pool.status = p.status.name().map(String::from);
            // A pool GKE can roll back keeps its version while some of its nodes run the new
            // one (a failed or cancelled upgrade, a blue-green soak): its release says so, so
            // that a rollback plan takes it back to its version on every node.
            if let Ok(back) = pool_rollback(p, Self::latest_for(&ops, &p.name)) {
                pool.release = Some(format!("{}, part-way through {}", p.version, back.basis));
            }
            pools.push(pool);
        }
        let mut status = c.status.name().unwrap_or("UNKNOWN").to_string();
        if let Some(ch) = c.release_channel.as_ref().and_then(|r| r.channel.name())
            && ch != "UNSPECIFIED"
        {
            status.push_str(&format!(" (release channel {ch})"));
        }
        Ok(ClusterInfo {
            provider: ProviderKind::Gke,
            name: self.cluster.clone(),
            control_plane,
            api_servers: Vec::new(),
            node_pools: pools,
            addons: Vec::new(),
            in_progress: self.running().await?,
            status: Some(status),
        })
    }

    async fn available_versions(&self) -> CoreResult<Vec<AvailableVersion>> {
        let config = self.server_config().await?;
        let info = self.upgrade_info().await?;
        let current = self
            .get_cluster()
            .await
            .ok()
            .and_then(|c| KubeVersion::parse(&c.current_master_version).ok());
        let date = |t: &Option<String>| {
            t.as_deref()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
        };
        let (eos, eoes) = info
            .as_ref()
            .map(|i| {
                (
                    date(&i.end_of_standard_support_timestamp),
                    date(&i.end_of_extended_support_timestamp),
                )
            })
            .unwrap_or_default();
        let today = jiff::Zoned::now().date();
        let mut out: Vec<AvailableVersion> = Vec::new();
        let names: Vec<&String> = config
            .valid_master_versions
            .iter()
            .chain(&config.valid_node_versions)
            .collect();
        for name in names {
            let version = parse_version("getServerConfig", "version", name)?;
            if out.iter().any(|a| a.version.same_build(&version)) {
                continue;
            }
            let master = config.valid_master_versions.contains(name);
            let node = config.valid_node_versions.contains(name);
            let mut a = AvailableVersion::new(
                version.clone(),
                if master {
                    SupportStatus::Standard
                } else {
                    SupportStatus::Unknown
                },
            );
            a.scope = match (master, node) {
                (true, false) => VersionScope::ControlPlane,
                (false, true) => VersionScope::Nodes,
                _ => VersionScope::Both,
            };
            a.default = *name == config.default_cluster_version;
            a.channels = config
                .channels
                .iter()
                .filter(|c| c.valid_versions.contains(name))
                .filter_map(|c| c.channel.name().map(String::from))
                .collect();
            // GKE's support dates are per cluster: they apply to the minor it runs.
            if current.as_ref().is_some_and(|c| c.same_minor(&version)) {
                a.end_of_standard_support = eos;
                a.end_of_extended_support = eoes;
                if eos.is_some_and(|d| d < today) {
                    a.support = if eoes.is_some_and(|d| d < today) {
                        SupportStatus::Unsupported
                    } else {
                        SupportStatus::Extended
                    };
                }
            }
            out.push(a);
        }
        out.sort_by(|a, b| a.version.cmp_build(&b.version));
        Ok(out)
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        opts: &ControlPlaneOptions,
    ) -> CoreResult<Operation> {
        if opts.force {
            return Err(kup_core::Error::invalid_input(
                "force",
                "GKE has no forced control-plane upgrade; leave force unset",
            ));
        }
        // Refused here, before anything is sent: a hop other than a newer patch or the next
        // minor, a version GKE does not offer, and a start while another operation runs.
        let live = self.cluster().await?;
        let distance = live.control_plane.minor_distance(to);
        if !(distance == 1 || distance == 0 && to.patch() > live.control_plane.patch()) {
            return Err(kup_core::Error::precondition(format!(
                "the GKE control plane is at {}; it moves one minor at a time, to {}, so {to} \
                 is not a hop it can make",
                live.control_plane,
                live.control_plane.next_minor()
            )));
        }
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is running; GKE takes no control-plane upgrade until it ends"
                ),
                operation: Some(op.id.clone()),
            });
        }
        let config = self.server_config().await?;
        let Some(version) = Self::pick(&config.valid_master_versions, to) else {
            return Err(kup_core::Error::precondition(format!(
                "GKE offers no control-plane version matching {to} in {} (valid: {})",
                self.location,
                config.valid_master_versions.join(", ")
            )));
        };
        let op = match self.settings.control_plane_soak {
            // Two steps: GKE soaks the new binaries at the old emulated version, and the
            // control plane can go back until the soak ends. Patch upgrades are one step.
            Some(soak) if distance == 1 => self
                .client
                .update_cluster()
                .set_name(self.cluster_path())
                .set_update(
                    gke::ClusterUpdate::new()
                        .set_desired_master_version(&version)
                        .set_desired_rollback_safe_upgrade(
                            gke::RollbackSafeUpgrade::new()
                                .set_control_plane_soak_duration(duration(soak)),
                        ),
                )
                .send()
                .await
                .map_err(Error::gax("updateCluster", "cluster", &self.cluster))?,
            _ => self
                .client
                .update_master()
                .set_name(self.cluster_path())
                .set_master_version(&version)
                .send()
                .await
                .map_err(Error::gax("updateMaster", "cluster", &self.cluster))?,
        };
        Ok(self.operation_of(&op).with_version(version))
    }

    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        opts: &NodePoolOptions,
    ) -> CoreResult<Operation> {
        let current = self.get_pool(pool).await?;
        let settings = self.upgrade_settings(&current, opts)?;
        let cluster = self.get_cluster().await?;
        let master = parse_version(
            "getCluster",
            "currentMasterVersion",
            &cluster.current_master_version,
        )?;
        if master.minor_distance(to) > 0 {
            return Err(kup_core::Error::precondition(format!(
                "node pool {pool} cannot move to {to}: the control plane runs {master}, and \
                 nodes are never newer than it; upgrade the control plane first"
            )));
        }
        let version = match &opts.release_version {
            Some(r) => {
                let v = KubeVersion::parse(r)?;
                if !v.same_minor(to) {
                    return Err(kup_core::Error::invalid_input(
                        "release_version",
                        format!(
                            "{r:?} is not a GKE node version of Kubernetes {to} (expected e.g. \
                             {}.{}.1-gke.1829001)",
                            to.major(),
                            to.minor()
                        ),
                    ));
                }
                r.clone()
            }
            // At the control plane's minor, nodes follow its exact build.
            None if master.same_minor(to)
                && to.patch().is_none_or(|p| master.patch() == Some(p)) =>
            {
                cluster.current_master_version.clone()
            }
            None => {
                let config = self.server_config().await?;
                Self::pick(&config.valid_node_versions, to).ok_or_else(|| {
                    kup_core::Error::precondition(format!(
                        "GKE offers no node version matching {to} in {}",
                        self.location
                    ))
                })?
            }
        };
        self.refuse_if_busy("node-pool upgrade").await?;
        let op = self
            .client
            .update_node_pool()
            .set_name(self.pool_path(pool))
            .set_node_version(&version)
            .set_or_clear_upgrade_settings(settings)
            .send()
            .await
            .map_err(Error::gax("updateNodePool", "node pool", pool))?;
        Ok(self.operation_of(&op).with_version(version))
    }

    async fn rollback_offer(&self) -> CoreResult<RollbackOffer> {
        let mut offer = RollbackOffer::default();
        let live = self.cluster().await?;
        match self.control_plane_soak().await? {
            Some((previous, end)) => {
                let to = parse_version(
                    "fetchClusterUpgradeInfo",
                    "rollbackSafeUpgradeStatus.previousVersion",
                    &previous,
                )?;
                offer = offer.offer(RollbackOption {
                    part: RollbackPart::ControlPlane,
                    to,
                    release: None,
                    basis: format!(
                        "the rollback-safe upgrade from {previous} to {}, soaking until {}",
                        live.control_plane,
                        end.as_deref().unwrap_or("an unreported time")
                    ),
                });
            }
            None => {
                offer = offer.refuse(RollbackPart::ControlPlane, CONTROL_PLANE_ROLLBACK_REFUSAL)
            }
        }
        let cluster = self.get_cluster().await?;
        let ops = self.pool_operations().await?;
        for pool in &cluster.node_pools {
            match pool_rollback(pool, Self::latest_for(&ops, &pool.name)) {
                Ok(option) => offer = offer.offer(option),
                Err(reason) => offer = offer.refuse(RollbackPart::pool(pool.name.clone()), reason),
            }
        }
        Ok(offer)
    }

    async fn rollback_node_pool(
        &self,
        pool: &str,
        to: &RollbackOption,
        opts: &NodePoolOptions,
    ) -> CoreResult<Operation> {
        if to.part != RollbackPart::pool(pool) {
            return Err(kup_core::Error::invalid_input(
                format!("pools.{pool}.rollback"),
                format!("the option moves {}, not node pool {pool}", to.part),
            ));
        }
        let current = self.get_pool(pool).await?;
        let ops = self.pool_operations().await?;
        let latest = Self::latest_for(&ops, pool);
        let option = pool_rollback(&current, latest).map_err(kup_core::Error::precondition)?;
        if !(option.to.matches(&to.to) || to.to.matches(&option.to)) {
            return Err(kup_core::Error::precondition(format!(
                "node pool {pool} would go back to {}, not {}: GKE returns a pool to the \
                 version before its last upgrade",
                option.to, to.to
            )));
        }
        // A blue-green upgrade is rolled back while it runs; anything else running makes the
        // cluster busy.
        let own = latest
            .filter(|o| o.status != operation::Status::Done)
            .map(|o| o.name.clone());
        if let Some(op) = self
            .running()
            .await?
            .into_iter()
            .find(|o| Some(&o.id) != own.as_ref())
        {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is running; GKE takes no node-pool rollback until it ends (it would \
                     answer FAILED_PRECONDITION)"
                ),
                operation: Some(op.id),
            });
        }
        // `force` drains the pool's new nodes past PodDisruptionBudgets.
        let op = self.rollback_node_pool_upgrade(pool, !opts.force).await?;
        Ok(op.with_version(current.version.clone()))
    }

    async fn rollback_control_plane(&self, to: &RollbackOption) -> CoreResult<Operation> {
        if to.part != RollbackPart::ControlPlane {
            return Err(kup_core::Error::invalid_input(
                "rollback.part",
                format!("the option moves {}, not the control plane", to.part),
            ));
        }
        let Some((previous, _)) = self.control_plane_soak().await? else {
            return Err(kup_core::Error::precondition(
                CONTROL_PLANE_ROLLBACK_REFUSAL,
            ));
        };
        let back = parse_version(
            "fetchClusterUpgradeInfo",
            "rollbackSafeUpgradeStatus.previousVersion",
            &previous,
        )?;
        if !(back.matches(&to.to) || to.to.matches(&back)) {
            return Err(kup_core::Error::precondition(format!(
                "the rollback-safe upgrade soaking now goes back to {previous}, not {}",
                to.to
            )));
        }
        self.refuse_if_busy("control-plane rollback").await?;
        // GKE's rollback during the soak is an update of the master to the previous version.
        let op = self
            .client
            .update_master()
            .set_name(self.cluster_path())
            .set_master_version(&previous)
            .send()
            .await
            .map_err(Error::gax("updateMaster", "cluster", &self.cluster))?;
        Ok(self
            .operation_of(&op)
            .with_version(previous)
            .with_handle("rollback", "true"))
    }

    async fn poll(&self, op: &Operation) -> CoreResult<OperationStatus> {
        let o = self
            .client
            .get_operation()
            .set_name(self.name_of(op))
            .send()
            .await
            .map_err(Error::gax("getOperation", "operation", &op.id))?;
        Ok(status_of(&o))
    }

    async fn preflight(&self, to: &KubeVersion) -> CoreResult<Vec<Finding>> {
        Ok(preflight::findings(self, to).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pool(version: &str) -> gke::NodePool {
        gke::NodePool::new().set_name("apps").set_version(version)
    }

    fn op(status: operation::Status, error: Option<(i32, &str)>) -> gke::Operation {
        let mut o = gke::Operation::new()
            .set_name("operation-1")
            .set_status(status)
            .set_target_link("https://container.googleapis.com/v1/projects/p/locations/l/clusters/c/nodePools/apps");
        if let Some((code, message)) = error {
            o.error = Some(Default::default());
            if let Some(e) = o.error.as_mut() {
                e.code = code;
                e.message = message.into();
            }
        }
        o
    }

    #[test]
    fn pools_go_back_after_a_failed_or_cancelled_upgrade_only() {
        let p = pool("1.33.5-gke.1080000");
        let failed = op(operation::Status::Done, Some((13, "boom")));
        let o = pool_rollback(&p, Some(&failed)).unwrap();
        assert_eq!(o.to.to_string(), "1.33.5-gke.1080000");
        assert!(
            o.basis.contains("failed") && o.basis.contains("INTERNAL"),
            "{}",
            o.basis
        );
        let cancelled = op(
            operation::Status::Done,
            Some((1, "Operation was canceled.")),
        );
        assert!(
            pool_rollback(&p, Some(&cancelled))
                .unwrap()
                .basis
                .contains("cancelled")
        );
        let running = op(operation::Status::Running, None);
        let why = pool_rollback(&p, Some(&running)).unwrap_err();
        assert!(
            why.contains("still running") && why.contains("cancel"),
            "{why}"
        );
        for done in [
            op(operation::Status::Done, None),
            op(operation::Status::Done, Some((10, "rolled back"))),
        ] {
            let why = pool_rollback(&p, Some(&done)).unwrap_err();
            assert!(why.contains("completed"), "{why}");
        }
        assert!(pool_rollback(&p, None).is_err());
    }

    #[test]
    fn blue_green_upgrades_go_back_until_the_blue_pool_is_deleted() {
        use node_pool::update_info::{BlueGreenInfo, blue_green_info::Phase};
        let with = |phase| {
            pool("1.33.5-gke.1080000").set_update_info(
                node_pool::UpdateInfo::new().set_blue_green_info(
                    BlueGreenInfo::new()
                        .set_phase(phase)
                        .set_green_pool_version("1.34.1-gke.1829001"),
                ),
            )
        };
        let running = op(operation::Status::Running, None);
        let o = pool_rollback(&with(Phase::NodePoolSoaking), Some(&running)).unwrap();
        assert!(o.basis.contains("NODE_POOL_SOAKING"), "{}", o.basis);
        let why = pool_rollback(&with(Phase::DeletingBluePool), Some(&running)).unwrap_err();
        assert!(why.contains("no longer"), "{why}");
        assert!(pool_rollback(&with(Phase::RollbackStarted), Some(&running)).is_err());
    }
}
