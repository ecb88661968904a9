//! [`KubeadmProvider`]: the [`UpgradeProvider`] for clusters built with kubeadm.

mod backup;
pub mod hop;
mod sequence;

pub use hop::{CORDONED_BY_KUP_ANNOTATION, HopId};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kube::Client;
use kup_core::{
    AvailableVersion, BackupOptions, BackupRecord, BackupSupport, Capabilities, ClusterInfo,
    ControlPlaneOptions, EventSink, Finding, KubeVersion, NoEvents, NodePool, Operation,
    OperationStatus, OperationTarget, PoolManagement, ProviderKind, UpgradeProvider,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::cluster_state;
use crate::drain::NodeDrain;
use crate::error::{Error, Result};
use crate::etcd::EtcdSettings;
use crate::etcd::restore::RestoreConfirmation;
use crate::exec::NodeExecutor;
use crate::inventory::{CONTROL_PLANE_POOL, Inventory, NodeSpec};
use crate::packages::{PackageManager, PackageSettings};
use crate::versions::{ReleaseSettings, Releases};

/// The pool that holds cluster nodes the inventory does not list: kup cannot reach them, so
/// they are reported (and kept in skew by the planner) but never upgraded.
pub const OUTSIDE_INVENTORY_POOL: &str = "outside-inventory";

/// Everything about a kubeadm provider that is not the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubeadmSettings {
    /// Release markers and package repositories.
    pub releases: ReleaseSettings,
    /// Package repository files and timeouts.
    pub packages: PackageSettings,
    /// etcd, certificate and manifest paths on control-plane nodes.
    pub etcd: EtcdSettings,
    /// Where snapshots are copied to when a backup names no destination.
    pub backup_dir: PathBuf,
    /// Time limit for one `kubeadm upgrade` command.
    #[serde(with = "secs")]
    pub kubeadm_timeout: Duration,
    /// How long a node may take to be Ready at the new version after its kubelet restarts.
    #[serde(with = "secs")]
    pub node_ready_timeout: Duration,
}

impl Default for KubeadmSettings {
    fn default() -> Self {
        Self {
            releases: ReleaseSettings::default(),
            packages: PackageSettings::default(),
            etcd: EtcdSettings::default(),
            backup_dir: PathBuf::from("kup-backups"),
            kubeadm_timeout: Duration::from_secs(1800),
            node_ready_timeout: Duration::from_secs(600),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// The kubeadm provider, bound to one cluster: its inventory, a Kubernetes client, and the
/// way to reach each node.
///
/// Who does what:
///
/// * [`UpgradeProvider::backup`] takes and verifies the etcd snapshot on the first
///   control-plane node; [`UpgradeProvider::upgrade_control_plane`] refuses to start unless a
///   snapshot of the current control-plane version was verified by this provider value (or
///   adopted with [`KubeadmProvider::adopt_backup`]).
/// * [`UpgradeProvider::upgrade_control_plane`] checks the hop (one minor, verified snapshot,
///   drain, health, etcd, package repositories) and starts it; it returns a running
///   [`Operation`] that [`UpgradeProvider::poll`] advances one control-plane node at a time:
///   kubeadm's package, `kubeadm upgrade apply` (first node) or `kubeadm upgrade node`
///   (others), then **the provider** cordons and drains the node, moves kubelet and kubectl,
///   waits until the node is Ready at the new version and uncordons it (a node cordoned
///   before stays cordoned). Progress is reported as `done/total` nodes; a provider in a new
///   process re-attaches from the operation's JSON. The invariants (where state lives, one
///   node at a time, clean cancellation between nodes, crash-safe resume) are in [`hop`].
/// * Workers: **the engine** cordons and drains each node (kup-kube), then calls
///   [`UpgradeProvider::upgrade_node`], which moves kubeadm, runs `kubeadm upgrade node`,
///   moves kubelet and kubectl and restarts the kubelet; the engine then waits for Ready and
///   uncordons.
/// * [`UpgradeProvider::restore`] puts a verified snapshot back (see [`crate::etcd::restore`]
///   for when that is and is not possible); it runs only when the provider was given a
///   [`RestoreConfirmation`].
pub struct KubeadmProvider {
    inventory: Inventory,
    client: Client,
    settings: KubeadmSettings,
    releases: Releases,
    executors: BTreeMap<String, Arc<dyn NodeExecutor>>,
    package_managers: Mutex<BTreeMap<String, PackageManager>>,
    verified_backup: Mutex<Option<BackupRecord>>,
    drain: Option<Arc<dyn NodeDrain>>,
    events: Arc<dyn EventSink>,
    restore_confirmation: Option<RestoreConfirmation>,
    hop: Mutex<hop::HopSlot>,
}

impl Drop for KubeadmProvider {
    // A step outliving its provider would hold SSH sessions nobody polls; stopping it is what
    // a crash does, and the next poll of the operation resumes the node (see `hop.rs`).
    fn drop(&mut self) {
        self.hop.get_mut().abort();
    }
}

impl std::fmt::Debug for KubeadmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeadmProvider")
            .field("cluster", &self.inventory.cluster)
            .field("nodes", &self.executors.keys().collect::<Vec<_>>())
            .field("settings", &self.settings)
            .field("drain", &self.drain)
            .field("restore_confirmed", &self.restore_confirmation.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeadmProvider {
    /// A provider for the cluster `client` reaches, whose nodes the inventory lists.
    /// Settings are checked here, before anything runs.
    pub fn new(inventory: Inventory, client: Client, settings: KubeadmSettings) -> Result<Self> {
        settings.etcd.validate()?;
        let releases = Releases::new(settings.releases.clone())?;
        let executors = inventory
            .nodes()
            .map(|n| (n.name.clone(), n.executor()))
            .collect();
        Ok(Self {
            inventory,
            client,
            settings,
            releases,
            executors,
            package_managers: Mutex::new(BTreeMap::new()),
            verified_backup: Mutex::new(None),
            drain: None,
            events: Arc::new(NoEvents),
            restore_confirmation: None,
            hop: Mutex::new(hop::HopSlot::default()),
        })
    }

    /// Reaches `node` through `executor` instead of the one its inventory entry describes.
    pub fn with_executor(mut self, node: &str, executor: Arc<dyn NodeExecutor>) -> Result<Self> {
        if self.inventory.node(node).is_none() {
            return Err(Error::invalid(
                "node",
                format!("{node:?} is not in the inventory"),
            ));
        }
        self.executors.insert(node.to_string(), executor);
        Ok(self)
    }

    /// Drains control-plane nodes with `drain` (required before a control-plane upgrade).
    pub fn with_drain(mut self, drain: Arc<dyn NodeDrain>) -> Self {
        self.drain = Some(drain);
        self
    }

    /// Sends progress events (cordons, drains, node upgrades, warnings) to `events`.
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Allows [`UpgradeProvider::restore`] to run (it replaces the cluster's state).
    pub fn confirm_restore(mut self, confirmation: RestoreConfirmation) -> Self {
        self.restore_confirmation = Some(confirmation);
        self
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The settings.
    pub fn settings(&self) -> &KubeadmSettings {
        &self.settings
    }

    /// The release lookups.
    pub fn releases(&self) -> &Releases {
        &self.releases
    }

    /// The executor reaching `node`.
    pub fn executor(&self, node: &str) -> Result<Arc<dyn NodeExecutor>> {
        self.executors
            .get(node)
            .cloned()
            .ok_or_else(|| Error::invalid("node", format!("{node:?} is not in the inventory")))
    }

    /// The inventory entry of a node a caller names: one the inventory lacks is not found (the
    /// same answer every provider gives for a node or pool it does not have).
    fn spec(&self, node: &str) -> Result<&NodeSpec> {
        self.inventory.node(node).ok_or_else(|| {
            Error::Core(kup_core::Error::NotFound {
                kind: "node".into(),
                name: node.to_string(),
                scope: Some(format!(
                    "the inventory of cluster {}",
                    self.inventory.cluster
                )),
            })
        })
    }

    /// The node's package manager: the inventory's choice, else detected once.
    pub async fn package_manager(&self, node: &str) -> Result<PackageManager> {
        if let Some(pm) = self.spec(node)?.package_manager {
            return Ok(pm);
        }
        if let Some(pm) = self.package_managers.lock().await.get(node) {
            return Ok(*pm);
        }
        let exec = self.executor(node)?;
        let pm = PackageManager::detect(exec.as_ref()).await?;
        self.package_managers
            .lock()
            .await
            .insert(node.to_string(), pm);
        Ok(pm)
    }

    /// The verified backup this provider holds, if any.
    pub async fn verified_backup(&self) -> Option<BackupRecord> {
        self.verified_backup.lock().await.clone()
    }

    fn emit(&self, event: kup_core::Event) {
        self.events.emit(event);
    }

    async fn cluster_info(&self) -> Result<ClusterInfo> {
        let nodes = cluster_state::nodes(&self.client).await?;
        let api = cluster_state::api_servers(&self.client).await?;
        for spec in self.inventory.nodes() {
            if !nodes.contains_key(&spec.name) {
                return Err(Error::Core(kup_core::Error::NotFound {
                    kind: "node".into(),
                    name: spec.name.clone(),
                    scope: Some(format!(
                        "cluster {} (listed in the inventory but not registered)",
                        self.inventory.cluster
                    )),
                }));
            }
        }
        let mut api_servers: Vec<KubeVersion> = self
            .inventory
            .control_plane
            .iter()
            .filter_map(|n| api.get(&n.name).cloned())
            .collect();
        api_servers.sort();
        let control_plane = match api_servers.first() {
            Some(v) => v.clone(),
            None => cluster_state::server_version(&self.client).await?,
        };
        let pool = |name: &str, members: &[String], cp: bool| -> Result<NodePool> {
            let version = members
                .iter()
                .filter_map(|n| nodes.get(n).and_then(|s| s.kubelet.clone()))
                .min()
                .ok_or_else(|| {
                    Error::Precondition(format!("no kubelet version reported for pool {name}"))
                })?;
            let mut p = NodePool::rolled_by_kup(name, version);
            p.control_plane = cp;
            p.nodes = members.to_vec();
            p.node_count = u32::try_from(members.len()).ok();
            Ok(p)
        };
        let cp_names: Vec<String> = self
            .inventory
            .control_plane
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let mut node_pools = vec![pool(CONTROL_PLANE_POOL, &cp_names, true)?];
        for (name, members) in self.inventory.worker_pools() {
            node_pools.push(pool(&name, &members, false)?);
        }
        let outside: Vec<String> = nodes
            .keys()
            .filter(|n| self.inventory.node(n).is_none())
            .cloned()
            .collect();
        if !outside.is_empty() {
            let mut p = pool(OUTSIDE_INVENTORY_POOL, &outside, false)?;
            p.management = PoolManagement::External;
            node_pools.push(p);
        }
        Ok(ClusterInfo {
            provider: ProviderKind::Kubeadm,
            name: self.inventory.cluster.clone(),
            control_plane,
            api_servers,
            node_pools,
            addons: Vec::new(),
            in_progress: self
                .hop
                .lock()
                .await
                .running_operation()
                .into_iter()
                .collect(),
            status: None,
        })
    }

    /// The full target build: `to` itself when it names a patch, else the newest patch of
    /// its minor from the release markers.
    pub async fn resolve_target(&self, to: &KubeVersion) -> Result<KubeVersion> {
        if to.patch().is_some() {
            return Ok(to.without_suffix());
        }
        self.releases.stable_patch(to).await?.ok_or_else(|| {
            Error::Precondition(format!(
                "no stable release of {to} is published at {}",
                self.releases.source()
            ))
        })
    }
}

#[async_trait]
impl UpgradeProvider for KubeadmProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kubeadm
    }

    fn cluster_name(&self) -> &str {
        &self.inventory.cluster
    }

    /// What kubeadm can do:
    ///
    /// * kubelets may lag the API server by 3 minors (upstream policy);
    /// * `max_node_pool_minor_jump: Some(1)`: kubeadm's skew policy says a node must be
    ///   upgraded with a kubeadm of the same minor or one minor newer than the kubeadm that last
    ///   managed it ("kubeadm's skew against kubeadm"), and each pkgs.k8s.io repository holds
    ///   one minor, so every `kubeadm upgrade node` moves a node at most one minor;
    /// * the control plane moves one minor per `kubeadm upgrade apply` (kubeadm refuses more),
    ///   to a patch kup chooses;
    /// * control-plane nodes are cordoned, drained (with the drain options the provider was
    ///   built with) and uncordoned **by the provider** inside the control-plane hop;
    /// * workers are drained **by the engine** and upgraded in place with
    ///   [`UpgradeProvider::upgrade_node`] (`node_upgrade`); there is no provider pool
    ///   upgrade, so `provider_drains_nodes` (a pool upgrade draining its nodes) is false;
    /// * an etcd snapshot is required before every control-plane hop.
    // Field by field: the form that still compiles once `Capabilities` is non-exhaustive.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(|c| {
            c.max_kubelet_skew = 3;
            // kubeadm's packages move one minor per `kubeadm upgrade node`.
            c.max_node_pool_minor_jump = Some(1);
            c.control_plane_patch_selectable = true;
            // Workers are drained by the engine, then upgraded in place one by one.
            c.node_pool_upgrade = false;
            c.node_upgrade = true;
            // The control-plane hop drains each control-plane node itself, with the user's
            // drain settings.
            c.provider_drains_nodes = true;
            c.managed_addons = false;
            c.backup = BackupSupport::Required;
            // Back by restoring the run's verified etcd snapshot; workers go back node by node.
            c.control_plane_rollback = kup_core::ControlPlaneRollback::RestoreBackup;
        })
    }

    async fn cluster(&self) -> kup_core::Result<ClusterInfo> {
        Ok(self.cluster_info().await?)
    }

    async fn available_versions(&self) -> kup_core::Result<Vec<AvailableVersion>> {
        let current = self.cluster_info().await?.control_plane;
        Ok(self.releases.available_from(&current).await?)
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        opts: &ControlPlaneOptions,
    ) -> kup_core::Result<Operation> {
        Ok(self.start_control_plane(to, opts).await?)
    }

    async fn upgrade_node(
        &self,
        pool: &str,
        node: &str,
        to: &KubeVersion,
    ) -> kup_core::Result<Operation> {
        Ok(self.run_node(pool, node, to).await?)
    }

    async fn poll(&self, op: &Operation) -> kup_core::Result<OperationStatus> {
        Ok(self.poll_operation(op).await?)
    }

    async fn preflight(&self, to: &KubeVersion) -> kup_core::Result<Vec<Finding>> {
        Ok(self.preflight_findings(to).await?)
    }

    async fn backup(&self, opts: &BackupOptions) -> kup_core::Result<BackupRecord> {
        Ok(self.take_backup(opts).await?)
    }

    async fn restore(&self, backup: &BackupRecord) -> kup_core::Result<Operation> {
        let Some(confirmation) = self.restore_confirmation else {
            return Err(Error::RestoreNotConfirmed {
                taken_at: backup.taken_at.to_string(),
                revision: backup
                    .revision
                    .map_or_else(|| "unknown".into(), |r| r.to_string()),
            }
            .into());
        };
        Ok(self.restore_snapshot(backup, confirmation).await?)
    }
}

impl KubeadmProvider {
    async fn poll_operation(&self, op: &Operation) -> Result<OperationStatus> {
        if op.target == OperationTarget::ControlPlane {
            return self.poll_hop(op).await;
        }
        // Every operation this provider starts names its target version; one without is not
        // ours, and claiming it succeeded would let a caller skip real work.
        let Some(to) = op.to_version.as_deref() else {
            return Err(Error::Core(kup_core::Error::NotFound {
                kind: "kubeadm operation".into(),
                name: op.id.clone(),
                scope: Some(format!(
                    "cluster {}: it names no target version, so kup's kubeadm provider did not \
                     start it",
                    self.inventory.cluster
                )),
            }));
        };
        let to = KubeVersion::parse(to)?;
        match &op.target {
            OperationTarget::Node { node } => {
                let state = cluster_state::node(&self.client, node).await?;
                if state.ready_at(&to) {
                    Ok(OperationStatus::Succeeded)
                } else {
                    Ok(OperationStatus::Running {
                        progress: None,
                        message: Some(format!(
                            "{node}: kubelet {}, Ready={}",
                            state.kubelet.map_or("unknown".into(), |k| k.to_string()),
                            state.ready
                        )),
                    })
                }
            }
            OperationTarget::Restore => match cluster_state::server_version(&self.client).await {
                Ok(v) if v == to => Ok(OperationStatus::Succeeded),
                Ok(v) => Ok(OperationStatus::Running {
                    progress: None,
                    message: Some(format!("API server answers {v}, waiting for {to}")),
                }),
                Err(_) => Ok(OperationStatus::Running {
                    progress: None,
                    message: Some("API server not answering yet".into()),
                }),
            },
            _ => Ok(OperationStatus::Succeeded),
        }
    }
}
