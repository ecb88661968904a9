//! [`AksProvider`]: kup's [`UpgradeProvider`] over Azure Resource Manager.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kup_core::{
    AvailableVersion, BackupSupport, Capabilities, ClusterInfo, ControlPlaneOptions, Finding,
    KubeVersion, NodePool, NodePoolOptions, Operation, OperationStatus, OperationTarget,
    ProviderErrorDetail, ProviderKind, RollbackOffer, RollbackOption, RollbackPart,
    StuckDrainPolicy, SupportStatus, UpgradeProvider,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use kup_kube::preflight::removed_apis::metric;

use crate::arm::{Answer, ArmClient, Lro};
use crate::error::{self, Error};
use crate::models::{
    AgentPool, ClusterUpgradeProfile, KubernetesVersionList, ManagedCluster, PoolUpgradeProfile,
    RecentlyUsedVersion,
};

/// AKS's limit on the control plane, as its documentation words it.
pub const CONTROL_PLANE_ROLLBACK_REFUSAL: &str = "AKS does not support downgrading a managed \
     cluster's Kubernetes version: the control plane cannot be rolled back, only upgraded again";

/// The label AKS puts on the nodes of an agent pool.
pub const AGENTPOOL_LABEL: &str = "kubernetes.azure.com/agentpool";

/// Handle keys kup stores in an [`Operation`] to find it again after a restart.
const H_ASYNC: &str = "azure_async_operation";
const H_LOCATION: &str = "location";
const H_RESOURCE: &str = "resource";
const H_POOL: &str = "pool";

/// Pool-upgrade settings kup passes to AKS in `upgradeSettings`, and polling settings.
#[derive(Clone, Debug)]
pub struct AksSettings {
    /// `drainTimeoutInMinutes`: how long AKS waits for a node's evictions (PDBs) before it
    /// applies `undrainableNodeBehavior`. `None` keeps the pool's own (AKS: 30 minutes).
    pub drain_timeout: Option<Duration>,
    /// `nodeSoakDurationInMinutes`: the wait after each node is drained before the next.
    pub node_soak: Option<Duration>,
    /// What a node whose drain times out gets: `Fail` is AKS's `Schedule` (the upgrade fails),
    /// `CordonAndContinue` its `Cordon` (the node stays cordoned, labelled
    /// `kubernetes.azure.com/upgrade-status: Quarantined`, and the upgrade goes on).
    pub on_stuck_drain: StuckDrainPolicy,
    /// How long `forceUpgrade` stays in effect when a control-plane upgrade is forced.
    pub force_window: Duration,
}

impl Default for AksSettings {
    fn default() -> Self {
        Self {
            drain_timeout: None,
            node_soak: None,
            on_stuck_drain: StuckDrainPolicy::Fail,
            force_window: Duration::from_secs(60 * 60),
        }
    }
}

/// Upgrades one AKS cluster: control plane, agent pools and their node images.
pub struct AksProvider {
    arm: ArmClient,
    subscription: String,
    resource_group: String,
    cluster: String,
    settings: AksSettings,
    /// The cluster's Kubernetes API, for the removed-API pre-flight.
    kube: Option<kube::Client>,
    /// Per LRO URL: not polled again before this instant (`Retry-After`), and what it said.
    polls: Mutex<HashMap<String, (Instant, OperationStatus)>>,
}

impl std::fmt::Debug for AksProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AksProvider")
            .field("subscription", &self.subscription)
            .field("resource_group", &self.resource_group)
            .field("cluster", &self.cluster)
            .field("api_version", &self.arm.api_version())
            .finish_non_exhaustive()
    }
}

type CoreResult<T> = kup_core::Result<T>;

fn parse_version(op: &'static str, field: &str, text: Option<&str>) -> CoreResult<KubeVersion> {
    let text = text.ok_or_else(|| Error::response(op, format!("response lacks {field}")))?;
    KubeVersion::parse(text)
}

fn busy_state(state: Option<&str>) -> bool {
    !matches!(state, None | Some("Succeeded" | "Failed" | "Canceled"))
}

/// `minutes` for ARM's `*InMinutes` fields, at least 1.
fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

impl AksProvider {
    pub(crate) fn new(
        arm: ArmClient,
        subscription: String,
        resource_group: String,
        cluster: String,
        settings: AksSettings,
        kube: Option<kube::Client>,
    ) -> Self {
        Self {
            arm,
            subscription,
            resource_group,
            cluster,
            settings,
            kube,
            polls: Mutex::new(HashMap::new()),
        }
    }

    /// The subscription.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The resource group.
    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }

    /// The api-version every call uses.
    pub fn api_version(&self) -> &str {
        self.arm.api_version()
    }

    async fn managed_cluster(&self) -> Result<(ManagedCluster, Value), Error> {
        const OP: &str = "GET managedCluster";
        let answer = self.arm.get_path(OP, &self.arm.cluster_path()).await?;
        Ok((answer.json(OP)?, answer.json(OP)?))
    }

    async fn agent_pool(&self, pool: &str) -> Result<(AgentPool, Value), Error> {
        const OP: &str = "GET agentPool";
        let answer = self.arm.get_path(OP, &self.arm.pool_path(pool)).await?;
        Ok((answer.json(OP)?, answer.json(OP)?))
    }

    fn operation(&self, target: OperationTarget, answer: &Answer, resource: &str) -> Operation {
        let url = match &answer.lro {
            Some(Lro::AsyncOperation(u) | Lro::Location(u)) => Some(u.as_str()),
            None => None,
        };
        // Without an LRO header the change was applied at once (ARM answered 200 with the
        // final state); the resource's own state is then what to poll.
        let id = url.map_or_else(
            || format!("{resource}-{}", jiff::Timestamp::now().as_millisecond()),
            operation_id,
        );
        let mut op =
            Operation::new(ProviderKind::Aks, id, target.clone()).with_handle(H_RESOURCE, resource);
        match &answer.lro {
            Some(Lro::AsyncOperation(u)) => op = op.with_handle(H_ASYNC, u.clone()),
            Some(Lro::Location(u)) => op = op.with_handle(H_LOCATION, u.clone()),
            None => {}
        }
        if let OperationTarget::NodePool { pool } = &target {
            op = op.with_handle(H_POOL, pool.clone());
        }
        if let Some(u) = url {
            self.remember(u, answer.retry_after, OperationStatus::Pending);
        }
        op.started_at = Some(jiff::Timestamp::now());
        op
    }

    fn remember(&self, url: &str, retry_after: Option<Duration>, status: OperationStatus) {
        if let Some(wait) = retry_after {
            let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
            polls.insert(url.to_string(), (Instant::now() + wait, status));
        }
    }

    /// What was last read from `url`, while its `Retry-After` has not passed.
    fn too_early(&self, url: &str) -> Option<OperationStatus> {
        let polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        polls
            .get(url)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, s)| s.clone())
    }

    /// Starts a node-image-only upgrade of `pool` (its Kubernetes version stays).
    pub async fn upgrade_node_image(&self, pool: &str) -> CoreResult<Operation> {
        self.refuse_if_busy(&format!("node pool {pool}")).await?;
        let answer = self
            .arm
            .post(
                "POST upgradeNodeImageVersion",
                &format!("{}/upgradeNodeImageVersion", self.arm.pool_path(pool)),
            )
            .await?;
        let mut op = self.operation(
            OperationTarget::NodePool {
                pool: pool.to_string(),
            },
            &answer,
            "nodeImage",
        );
        op = op.with_handle("kind", "node_image");
        Ok(op)
    }

    /// Aborts the operation running on the control plane (`pool: None`) or on a pool; the
    /// aborted operation ends `Canceled`.
    pub async fn abort(&self, pool: Option<&str>) -> CoreResult<Operation> {
        let (path, target, resource) = match pool {
            Some(p) => (
                format!("{}/abort", self.arm.pool_path(p)),
                OperationTarget::NodePool {
                    pool: p.to_string(),
                },
                "agentPoolAbort",
            ),
            None => (
                format!("{}/abort", self.arm.cluster_path()),
                OperationTarget::ControlPlane,
                "managedClusterAbort",
            ),
        };
        let answer = self.arm.post("POST abort", &path).await?;
        Ok(self.operation(target, &answer, resource))
    }

    /// Polls `op` until it ends, waiting as ARM's `Retry-After` asks (at least `floor`).
    pub async fn wait(&self, op: &Operation, floor: Duration) -> CoreResult<OperationStatus> {
        loop {
            let status = self.poll(op).await?;
            if status.is_terminal() {
                return Ok(status);
            }
            let url = op.handle.get(H_ASYNC).or(op.handle.get(H_LOCATION));
            let wait = url
                .and_then(|u| {
                    let polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
                    polls
                        .get(u)
                        .map(|(t, _)| t.saturating_duration_since(Instant::now()))
                })
                .unwrap_or(floor)
                .max(floor);
            tokio::time::sleep(wait).await;
        }
    }

    async fn refuse_if_busy(&self, what: &str) -> CoreResult<()> {
        let live = self.cluster().await?;
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; AKS allows no other operation on {what} until it ends \
                     (it would answer 409 OperationNotAllowed)"
                ),
                operation: Some(op.id.clone()),
            });
        }
        Ok(())
    }

    /// Reads an operation's state from ARM's status resource.
    async fn poll_async(&self, op: &Operation, url: &str) -> CoreResult<OperationStatus> {
        const OP: &str = "GET operationStatus";
        let answer = match self.arm.get_url(OP, url).await {
            Err(Error::Api { status: 404, .. }) => {
                return Err(kup_core::Error::NotFound {
                    kind: "AKS operation".into(),
                    name: op.id.clone(),
                    scope: Some(format!("managed cluster {}", self.cluster)),
                });
            }
            other => other?,
        };
        let body: Value = answer.json(OP)?;
        let errors = || {
            body.get("error")
                .filter(|e| e.is_object())
                .map(error::error_list)
                .unwrap_or_default()
        };
        let status = match body["status"].as_str() {
            Some(s) if s.eq_ignore_ascii_case("Succeeded") => OperationStatus::Succeeded,
            Some(s) if s.eq_ignore_ascii_case("Failed") => {
                let mut errors = errors();
                if errors.is_empty() {
                    errors.push(ProviderErrorDetail {
                        code: "Failed".into(),
                        message: "the operation failed without an error body".into(),
                        resource_ids: Vec::new(),
                    });
                }
                OperationStatus::Failed { errors }
            }
            Some(s)
                if s.eq_ignore_ascii_case("Canceled") || s.eq_ignore_ascii_case("Cancelled") =>
            {
                OperationStatus::Cancelled { errors: errors() }
            }
            Some(s) => OperationStatus::Running {
                progress: body["percentComplete"]
                    .as_f64()
                    .map(|p| (p / 100.0).clamp(0.0, 1.0) as f32),
                message: Some(s.to_string()),
            },
            None => {
                return Err(Error::response(OP, "operation status lacks `status`").into());
            }
        };
        self.remember(url, answer.retry_after, status.clone());
        Ok(status)
    }

    /// Reads an operation's state from its `Location`: 202 running, 200/204 done, an error
    /// answer its failure.
    async fn poll_location(&self, url: &str) -> CoreResult<OperationStatus> {
        match self.arm.get_url("GET operationResult", url).await {
            Ok(a) if a.status == 202 => {
                let s = OperationStatus::Running {
                    progress: None,
                    message: None,
                };
                self.remember(url, a.retry_after, s.clone());
                Ok(s)
            }
            Ok(_) => Ok(OperationStatus::Succeeded),
            Err(Error::Api {
                status,
                code,
                message,
                details,
                ..
            }) if (400..500).contains(&status) && status != 429 => {
                let mut errors = vec![ProviderErrorDetail {
                    code,
                    message,
                    resource_ids: Vec::new(),
                }];
                errors.extend(details);
                Ok(OperationStatus::Failed { errors })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// For an operation seen only as a resource state (started by a run that died before it
    /// recorded the operation): the resource's provisioning state.
    async fn poll_resource(&self, op: &Operation) -> CoreResult<OperationStatus> {
        let state = match &op.target {
            OperationTarget::NodePool { pool } => {
                self.agent_pool(pool).await?.0.properties.provisioning_state
            }
            _ => {
                self.managed_cluster()
                    .await?
                    .0
                    .properties
                    .provisioning_state
            }
        };
        Ok(match state.as_deref() {
            Some("Succeeded") => OperationStatus::Succeeded,
            Some("Failed") => OperationStatus::Failed {
                errors: vec![ProviderErrorDetail {
                    code: "Failed".into(),
                    message: format!("{} provisioningState is Failed", op.target),
                    resource_ids: Vec::new(),
                }],
            },
            Some("Canceled") => OperationStatus::Cancelled { errors: Vec::new() },
            other => OperationStatus::Running {
                progress: None,
                message: other.map(str::to_string),
            },
        })
    }

    async fn pool_profile(&self, pool: &str) -> CoreResult<PoolUpgradeProfile> {
        Ok(self
            .arm
            .get_json(
                "GET agentPool upgradeProfile",
                &format!("{}/upgradeProfiles/default", self.arm.pool_path(pool)),
            )
            .await?)
    }

    /// The pool's ways back: its profile's `recentlyUsedVersions` other than what it runs.
    async fn pool_rollbacks(&self, pool: &AgentPool) -> CoreResult<Vec<RollbackOption>> {
        let props = &pool.properties;
        let current = props
            .current_orchestrator_version
            .as_deref()
            .or(props.orchestrator_version.as_deref())
            .and_then(|v| KubeVersion::parse(v).ok());
        let profile = self.pool_profile(&pool.name).await?;
        Ok(profile
            .properties
            .recently_used_versions
            .iter()
            .filter_map(|r| rollback_option(&pool.name, r))
            .filter(|o| current.as_ref() != Some(&o.to) || o.release != props.node_image_version)
            .collect())
    }

    /// PUTs an agent pool whose `orchestratorVersion` is set, with kup's upgrade settings.
    async fn put_pool(
        &self,
        pool: &str,
        mut body: Value,
        opts: &NodePoolOptions,
        version: KubeVersion,
    ) -> CoreResult<Operation> {
        let settings = &mut body["properties"]["upgradeSettings"];
        if !settings.is_object() {
            *settings = json!({});
        }
        if let Some(s) = &opts.max_surge {
            settings["maxSurge"] = json!(s);
        }
        if let Some(u) = &opts.max_unavailable {
            settings["maxUnavailable"] = json!(u);
        }
        if let Some(d) = self.settings.drain_timeout {
            settings["drainTimeoutInMinutes"] = json!(minutes(d));
        }
        if let Some(d) = self.settings.node_soak {
            settings["nodeSoakDurationInMinutes"] = json!(d.as_secs() / 60);
        }
        settings["undrainableNodeBehavior"] = json!(match self.settings.on_stuck_drain {
            StuckDrainPolicy::CordonAndContinue => "Cordon",
            StuckDrainPolicy::Fail => "Schedule",
        });
        let answer = self
            .arm
            .put("PUT agentPool", &self.arm.pool_path(pool), &body)
            .await?;
        Ok(self
            .operation(
                OperationTarget::NodePool {
                    pool: pool.to_string(),
                },
                &answer,
                "agentPool",
            )
            .with_version(version))
    }

    /// The versions a pool may move to, from its upgrade profile.
    async fn pool_offers(&self, pool: &str) -> CoreResult<Vec<KubeVersion>> {
        let profile = self.pool_profile(pool).await?;
        Ok(profile
            .properties
            .upgrades
            .iter()
            .filter(|u| !u.is_preview)
            .filter_map(|u| KubeVersion::parse(&u.kubernetes_version).ok())
            .collect())
    }
}

/// The operation's id: the last path segment of its status URL.
fn operation_id(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(path)
        .to_string()
}

/// The way back a `recentlyUsedVersions` entry offers (none for a version kup cannot read).
fn rollback_option(pool: &str, r: &RecentlyUsedVersion) -> Option<RollbackOption> {
    Some(RollbackOption {
        part: RollbackPart::pool(pool),
        to: KubeVersion::parse(&r.orchestrator_version).ok()?,
        release: r.node_image_version.clone(),
        basis: format!(
            "recentlyUsedVersions entry of {}",
            r.timestamp.as_deref().unwrap_or("an unrecorded time")
        ),
    })
}

/// The newest version in `offers` matching `to` (a minor picks its newest patch; a patch must
/// be offered exactly).
fn choose(offers: &[KubeVersion], to: &KubeVersion) -> Option<KubeVersion> {
    offers
        .iter()
        .filter(|o| o.same_minor(to) && to.patch().is_none_or(|p| o.patch() == Some(p)))
        .max()
        .cloned()
}

#[async_trait]
impl UpgradeProvider for AksProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aks
    }

    fn cluster_name(&self) -> &str {
        &self.cluster
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(|c| {
            // AKS supports agent pools up to three minors behind the control plane.
            c.max_kubelet_skew = 3;
            // A pool may move several minors at once, up to the control plane's.
            c.max_node_pool_minor_jump = None;
            // kubernetesVersion takes a patch (or a minor, AKS choosing its newest patch).
            c.control_plane_patch_selectable = true;
            c.node_pool_upgrade = true;
            // AKS cordons and drains through the eviction API during pool upgrades.
            c.provider_drains_nodes = true;
            // AKS's add-ons (CoreDNS, konnectivity, CSI drivers…) move with the control plane;
            // there is nothing for kup to upgrade through the provider.
            c.managed_addons = false;
            c.backup = BackupSupport::ProviderManaged;
            // upgradeSettings.maxSurge and maxUnavailable.
            c.surge_upgrades = true;
            c.pool_max_unavailable = true;
            // The stable api-version has no blue-green pool upgrades.
            c.blue_green_upgrades = false;
            // A pool goes back to an entry of its profile's recentlyUsedVersions; the control
            // plane never goes back.
            c.node_pool_rollback = true;
            c.control_plane_rollback = kup_core::ControlPlaneRollback::Unsupported;
        })
    }

    async fn cluster(&self) -> CoreResult<ClusterInfo> {
        let (c, _) = self.managed_cluster().await?;
        let control_plane = parse_version(
            "GET managedCluster",
            "properties.currentKubernetesVersion",
            c.properties
                .current_kubernetes_version
                .as_deref()
                .or(c.properties.kubernetes_version.as_deref()),
        )?;
        let mut in_progress = Vec::new();
        if busy_state(c.properties.provisioning_state.as_deref()) {
            let mut op = Operation::new(
                ProviderKind::Aks,
                format!(
                    "managedCluster/{}",
                    c.properties.provisioning_state.as_deref().unwrap_or("")
                ),
                OperationTarget::ControlPlane,
            )
            .with_handle(H_RESOURCE, "managedCluster");
            op.to_version = c.properties.kubernetes_version.clone();
            in_progress.push(op);
        }
        let mut pools = Vec::new();
        for p in self.arm.agent_pools().await? {
            let props = &p.properties;
            let version = parse_version(
                "GET agentPools",
                "properties.currentOrchestratorVersion",
                props
                    .current_orchestrator_version
                    .as_deref()
                    .or(props.orchestrator_version.as_deref()),
            )?;
            let mut pool = NodePool::managed(p.name.clone(), version)
                .with_node_selector(format!("{AGENTPOOL_LABEL}={}", p.name));
            pool.node_count = props.count;
            pool.status = props.provisioning_state.clone();
            if busy_state(props.provisioning_state.as_deref()) {
                let mut op = Operation::new(
                    ProviderKind::Aks,
                    format!(
                        "agentPool/{}/{}",
                        p.name,
                        props.provisioning_state.as_deref().unwrap_or("")
                    ),
                    OperationTarget::NodePool {
                        pool: p.name.clone(),
                    },
                )
                .with_handle(H_RESOURCE, "agentPool")
                .with_handle(H_POOL, p.name.clone());
                op.to_version = props.orchestrator_version.clone();
                in_progress.push(op);
            }
            pools.push(pool);
        }
        Ok(ClusterInfo {
            provider: ProviderKind::Aks,
            name: self.cluster.clone(),
            control_plane,
            api_servers: Vec::new(),
            node_pools: pools,
            addons: Vec::new(),
            in_progress,
            status: c.properties.provisioning_state,
        })
    }

    async fn available_versions(&self) -> CoreResult<Vec<AvailableVersion>> {
        let (c, _) = self.managed_cluster().await?;
        if c.location.is_empty() {
            return Err(Error::response("GET managedCluster", "response lacks location").into());
        }
        let region: KubernetesVersionList = self
            .arm
            .get_json(
                "GET kubernetesVersions",
                &format!("{}/kubernetesVersions", self.arm.location_path(&c.location)),
            )
            .await?;
        let mut out: Vec<AvailableVersion> = Vec::new();
        for minor in &region.values {
            let lts_only = !minor.capabilities.support_plan.is_empty()
                && minor
                    .capabilities
                    .support_plan
                    .iter()
                    .all(|p| p == "AKSLongTermSupport");
            let support = if minor.is_preview {
                SupportStatus::Preview
            } else if lts_only {
                SupportStatus::Extended
            } else {
                SupportStatus::Standard
            };
            for patch in minor.patch_versions.keys() {
                let Ok(version) = KubeVersion::parse(patch) else {
                    continue;
                };
                // Every patch of the region is reachable hop by hop; which one the next hop may
                // take is the cluster's upgrade profile's to say, checked at the upgrade.
                let mut a = AvailableVersion::new(version, support);
                a.default = minor.is_default;
                out.push(a);
            }
        }
        out.sort_by(|a, b| a.version.cmp_build(&b.version));
        out.dedup_by(|a, b| a.version.cmp_build(&b.version).is_eq());
        Ok(out)
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        opts: &ControlPlaneOptions,
    ) -> CoreResult<Operation> {
        // Refused here, before anything is sent: a hop that is not the next minor (or a newer
        // patch), and a start while an operation runs.
        let live = self.cluster().await?;
        let distance = live.control_plane.minor_distance(to);
        let newer_patch = distance == 0 && to.patch() > live.control_plane.patch();
        if distance != 1 && !newer_patch {
            return Err(kup_core::Error::precondition(format!(
                "the AKS control plane is at {}; it moves one minor at a time, to {}, and never \
                 back, so {to} is not a hop it can make",
                live.control_plane,
                live.control_plane.next_minor()
            )));
        }
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; AKS takes no control-plane upgrade until it ends"
                ),
                operation: Some(op.id.clone()),
            });
        }
        let profile: ClusterUpgradeProfile = self
            .arm
            .get_json(
                "GET upgradeProfile",
                &format!("{}/upgradeProfiles/default", self.arm.cluster_path()),
            )
            .await?;
        let offers: Vec<KubeVersion> = profile
            .properties
            .control_plane_profile
            .upgrades
            .iter()
            .filter(|u| !u.is_preview || to.patch().is_some())
            .filter_map(|u| KubeVersion::parse(&u.kubernetes_version).ok())
            .collect();
        let Some(version) = choose(&offers, to) else {
            return Err(kup_core::Error::precondition(format!(
                "AKS offers no upgrade of the control plane to {to} (its upgrade profile offers: \
                 {})",
                offers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let (_, mut body) = self.managed_cluster().await?;
        // Control-plane only: the pools keep the orchestratorVersion they have in the body.
        body["properties"]["kubernetesVersion"] = json!(version.to_string());
        if opts.force {
            let until = jiff::Timestamp::now()
                + jiff::SignedDuration::from_secs(
                    i64::try_from(self.settings.force_window.as_secs()).unwrap_or(3600),
                );
            body["properties"]["upgradeSettings"]["overrideSettings"] = json!({
                "forceUpgrade": true,
                "until": until.to_string(),
            });
        }
        let answer = self
            .arm
            .put("PUT managedCluster", &self.arm.cluster_path(), &body)
            .await?;
        Ok(self
            .operation(OperationTarget::ControlPlane, &answer, "managedCluster")
            .with_version(version))
    }

    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        opts: &NodePoolOptions,
    ) -> CoreResult<Operation> {
        if opts.force {
            return Err(kup_core::Error::invalid_input(
                format!("pools.{pool}.force"),
                "AKS has no way to evict past PodDisruptionBudgets; leave force unset (a node \
                 that cannot be drained is left cordoned with --on-stuck-drain \
                 cordon-and-continue)",
            ));
        }
        if let Some(release) = &opts.release_version {
            return Err(kup_core::Error::invalid_input(
                format!("pools.{pool}.release_version"),
                format!(
                    "AKS always moves a pool to its newest node image, so {release:?} cannot be \
                     chosen; leave release_version unset"
                ),
            ));
        }
        let (_, mut body) = match self.agent_pool(pool).await {
            Err(Error::Api { status: 404, .. }) => {
                return Err(kup_core::Error::NotFound {
                    kind: "agent pool".into(),
                    name: pool.to_string(),
                    scope: Some(format!("managed cluster {}", self.cluster)),
                });
            }
            other => other?,
        };
        let live = self.cluster().await?;
        if live.control_plane.minor_distance(to) < 0 {
            return Err(kup_core::Error::precondition(format!(
                "pool {pool} cannot move to {to}, past the control plane's {}",
                live.control_plane
            )));
        }
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; AKS takes no agent-pool upgrade until it ends"
                ),
                operation: Some(op.id.clone()),
            });
        }
        let version = if live.control_plane.same_minor(to)
            && to
                .patch()
                .is_none_or(|p| live.control_plane.patch() == Some(p))
        {
            live.control_plane.clone()
        } else {
            let offers = self.pool_offers(pool).await?;
            choose(&offers, to).ok_or_else(|| {
                kup_core::Error::precondition(format!(
                    "AKS offers no upgrade of pool {pool} to {to}"
                ))
            })?
        };
        body["properties"]["orchestratorVersion"] = json!(version.to_string());
        self.put_pool(pool, body, opts, version).await
    }

    async fn rollback_offer(&self) -> CoreResult<RollbackOffer> {
        let mut offer = RollbackOffer::default()
            .refuse(RollbackPart::ControlPlane, CONTROL_PLANE_ROLLBACK_REFUSAL);
        for pool in &self.arm.agent_pools().await? {
            let options = self.pool_rollbacks(pool).await?;
            if options.is_empty() {
                offer = offer.refuse(
                    RollbackPart::pool(pool.name.clone()),
                    format!(
                        "agent pool {}'s upgrade profile lists no recentlyUsedVersions to roll \
                         back to",
                        pool.name
                    ),
                );
            }
            offer.options.extend(options);
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
        if opts.force {
            return Err(kup_core::Error::invalid_input(
                format!("pools.{pool}.force"),
                "AKS has no way to evict past PodDisruptionBudgets; leave force unset",
            ));
        }
        let (typed, mut body) = match self.agent_pool(pool).await {
            Err(Error::Api { status: 404, .. }) => {
                return Err(kup_core::Error::NotFound {
                    kind: "agent pool".into(),
                    name: pool.to_string(),
                    scope: Some(format!("managed cluster {}", self.cluster)),
                });
            }
            other => other?,
        };
        let live = self.cluster().await?;
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; AKS takes no agent-pool rollback until it ends (it \
                     would answer 409 OperationNotAllowed)"
                ),
                operation: Some(op.id.clone()),
            });
        }
        // Only what the profile lists now: entries age out as the pool upgrades again.
        let listed = self.pool_rollbacks(&typed).await?;
        let Some(option) = listed
            .into_iter()
            .find(|o| o.to == to.to && (to.release.is_none() || o.release == to.release))
        else {
            return Err(kup_core::Error::precondition(format!(
                "agent pool {pool}'s upgrade profile does not list {}{} among its \
                 recentlyUsedVersions; AKS rolls a pool back only to one of those",
                to.to,
                to.release
                    .as_deref()
                    .map(|r| format!(" (node image {r})"))
                    .unwrap_or_default()
            )));
        };
        body["properties"]["orchestratorVersion"] = json!(option.to.to_string());
        if let Some(image) = &option.release {
            body["properties"]["nodeImageVersion"] = json!(image);
        }
        let op = self.put_pool(pool, body, opts, option.to.clone()).await?;
        Ok(op.with_handle("kind", "rollback"))
    }

    async fn poll(&self, op: &Operation) -> CoreResult<OperationStatus> {
        if let Some(url) = op.handle.get(H_ASYNC) {
            if let Some(s) = self.too_early(url) {
                return Ok(s);
            }
            return self.poll_async(op, url).await;
        }
        if let Some(url) = op.handle.get(H_LOCATION) {
            if let Some(s) = self.too_early(url) {
                return Ok(s);
            }
            return self.poll_location(url).await;
        }
        if op.handle.contains_key(H_RESOURCE) {
            return self.poll_resource(op).await;
        }
        // An id alone: ARM's operation status resource under the cluster's region.
        let (c, _) = self.managed_cluster().await?;
        let url = format!(
            "{}{}/operations/{}?api-version={}",
            self.arm.origin(),
            self.arm.location_path(&c.location),
            op.id,
            self.arm.api_version()
        );
        self.poll_async(op, &url).await
    }

    async fn preflight(&self, to: &KubeVersion) -> CoreResult<Vec<Finding>> {
        let (c, _) = self.managed_cluster().await?;
        let mut findings = Vec::new();
        // A cluster whose last operation failed upgrades again (AKS reconciles it); worth
        // saying before a run.
        if c.properties.provisioning_state.as_deref() == Some("Failed") {
            findings.push(
                Finding::new(
                    "AksLastOperationFailed",
                    kup_core::Severity::Warning,
                    format!(
                        "the managed cluster's last operation failed (provisioningState Failed); \
                         an upgrade to {to} retries it"
                    ),
                )
                .remediation("read the failure in the Azure activity log before upgrading")
                .source("aks"),
            );
        }
        let current = c
            .properties
            .current_kubernetes_version
            .as_deref()
            .and_then(|v| KubeVersion::parse(v).ok());
        if let (Some(kube), Some(current)) = (&self.kube, current) {
            findings.extend(deprecated_api_block(kube, &current, to).await?);
        }
        Ok(findings)
    }
}

/// AKS's removed-API block, read ahead of the PUT from the same signal AKS uses: the API
/// server's `apiserver_requested_deprecated_apis`. A minor upgrade to 1.26 or later is refused
/// while a client used an API the target no longer serves.
async fn deprecated_api_block(
    kube: &kube::Client,
    current: &KubeVersion,
    to: &KubeVersion,
) -> CoreResult<Vec<Finding>> {
    if current.minor_distance(to) < 1 || to.minor() < 26 {
        return Ok(Vec::new());
    }
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| Error::response("GET /metrics", e.to_string()))?;
    let text = match kube.request_text(request).await {
        Ok(t) => t,
        // Without access to the metrics AKS's own refusal still comes back as a precondition.
        Err(e) => {
            tracing::debug!("AKS pre-flight: /metrics unreadable: {e}");
            return Ok(Vec::new());
        }
    };
    let blocking: Vec<String> = metric::parse_metric(&text)
        .into_iter()
        .filter(|d| {
            d.removed_release
                .as_ref()
                .is_some_and(|r| current.minor_distance(r) > 0 && r.minor_distance(to) >= 0)
        })
        .map(|d| {
            let gv = if d.group.is_empty() {
                d.version.clone()
            } else {
                format!("{}/{}", d.group, d.version)
            };
            format!(
                "{gv}/{} (removed in {})",
                d.resource,
                d.removed_release.map(|r| r.to_string()).unwrap_or_default()
            )
        })
        .collect();
    if blocking.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![
        Finding::new(
            "aks.UpgradeBlockedOnDeprecatedAPIUsage",
            kup_core::Severity::Blocker,
            format!(
                "AKS will refuse the control-plane upgrade to {to}: clients used APIs it no \
                 longer serves: {}",
                blocking.join(", ")
            ),
        )
        .remediation(
            "move those clients to the replacement APIs and wait for the usage to age out (AKS \
             looks back 12 hours), or force the control-plane upgrade (AKS's \
             overrideSettings.forceUpgrade), accepting that their calls will fail",
        )
        .source("aks"),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn operation_ids_come_from_the_status_url() {
        assert_eq!(
            operation_id(
                "https://management.azure.com/subscriptions/s/providers/Microsoft.ContainerService/locations/westeurope/operations/0d3f-11?api-version=2026-08-01"
            ),
            "0d3f-11"
        );
    }

    #[test]
    fn a_minor_picks_its_newest_offered_patch_and_a_patch_must_be_offered() {
        let offers: Vec<KubeVersion> = ["1.34.1", "1.34.3", "1.35.0"]
            .iter()
            .map(|v| KubeVersion::parse(v).unwrap())
            .collect();
        let minor = KubeVersion::parse("1.34").unwrap();
        assert_eq!(choose(&offers, &minor).unwrap().to_string(), "1.34.3");
        let exact = KubeVersion::parse("1.34.1").unwrap();
        assert_eq!(choose(&offers, &exact).unwrap().to_string(), "1.34.1");
        assert!(choose(&offers, &KubeVersion::parse("1.34.2").unwrap()).is_none());
        assert!(choose(&offers, &KubeVersion::parse("1.36").unwrap()).is_none());
    }

    #[test]
    fn drain_minutes_round_up() {
        assert_eq!(minutes(Duration::from_secs(30)), 1);
        assert_eq!(minutes(Duration::from_secs(61)), 2);
    }
}
