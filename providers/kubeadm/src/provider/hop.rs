//! The control-plane hop as an operation the engine polls node by node.
//!
//! [`UpgradeProvider::upgrade_control_plane`](kup_core::UpgradeProvider::upgrade_control_plane)
//! checks the hop (target, one minor, verified snapshot, drain, health, repositories), starts
//! the first node's step and returns a running [`Operation`]. Each
//! [`UpgradeProvider::poll`](kup_core::UpgradeProvider::poll) then advances the hop by at most
//! one node and reports where it stands.
//!
//! # Invariants
//!
//! 1. **The cluster is the record.** Every poll derives the hop's state from the cluster: a
//!    control-plane node is *done* when its `kube-apiserver` mirror pod runs the target's
//!    image, its kubelet is Ready at the target, and it carries no
//!    [`CORDONED_BY_KUP_ANNOTATION`]. Nothing about progress lives only in memory, so a
//!    provider in a new process, given the operation's JSON, continues where the cluster is.
//! 2. **The operation names the hop.** Its id is `kubeadm-control-plane:{cluster}:v{from}..v{to}`
//!    ([`HopId`]); its handle holds `nodes` (the control-plane nodes in order, comma-separated;
//!    the first runs `kubeadm upgrade apply`) and `backup` (the verified snapshot's
//!    [`BackupRecord`] as JSON, restorable if a node fails). A poll refuses an operation whose
//!    cluster or nodes differ from the inventory's.
//! 3. **One node at a time, in order.** A node's step runs in a task owned by the provider; a
//!    poll starts the next not-done node's step only when no step is running, checking and
//!    spawning under one lock. A poll that finds a step finished reports that node done
//!    (`done/total`) and starts nothing: the next node starts on the following poll. Between
//!    those two polls the hop sits at a node boundary.
//! 4. **Cancelling is clean between nodes.** The engine's cancellation drops a poll, never a
//!    step: a running step finishes, and no further node starts because only a poll starts
//!    one. A cancel at a node boundary leaves every later node untouched.
//! 5. **A crash mid-node is safe to resume.** Each phase of a step is checked against the
//!    cluster before it runs: components are skipped when the node's API server runs the
//!    target; the drain and kubelet are skipped when the kubelet is Ready at it; kup's own
//!    cordon is recognised by its annotation (set *before* cordoning) and undone, while an
//!    operator's cordon is kept. Dropping the provider aborts its running step the way a crash
//!    would.
//! 6. **`kubeadm upgrade apply` runs at most once per hop**, on the first node, and only while
//!    no API server runs the target; once one does, every remaining node (the first included,
//!    when its kubelet is still to move) gets the idempotent `kubeadm upgrade node`.
//! 7. **A failed step ends the operation `Failed`** with the node's error (its provider code,
//!    the node as resource) and the snapshot that can be restored; this provider keeps
//!    answering `Failed` for that operation. A new `upgrade_control_plane` retries from the
//!    cluster's state.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kup_core::{
    BackupRecord, ControlPlaneOptions, Event, EventSink, KubeVersion, Operation, OperationStatus,
    OperationTarget, ProviderErrorDetail, ProviderKind,
};
use serde_json::json;
use tokio::task::JoinHandle;

use super::{KubeadmProvider, KubeadmSettings};
use crate::cluster_state::{self, NodeState};
use crate::drain::NodeDrain;
use crate::error::{Error, Result};
use crate::etcd::restore::save_pre_upgrade_state;
use crate::etcd::{self, EtcdTools};
use crate::exec::NodeExecutor;
use crate::kubeadm::{self, UpgradePlanOutput};
use crate::packages::{NodePackages, PackageManager};

/// Set on a control-plane node while kup holds it cordoned, so a resumed run tells its own
/// cordon from one an operator made (which it must keep).
pub const CORDONED_BY_KUP_ANNOTATION: &str = "kubeadm.kup.dev/cordoned-for-upgrade";

const ID_PREFIX: &str = "kubeadm-control-plane:";
const NODES_HANDLE: &str = "nodes";
const BACKUP_HANDLE: &str = "backup";

/// A control-plane hop's operation id: `kubeadm-control-plane:{cluster}:v{from}..v{to}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopId {
    /// The inventory's cluster name.
    pub cluster: String,
    /// The control plane's version when the hop started.
    pub from: KubeVersion,
    /// The full target build.
    pub to: KubeVersion,
}

impl HopId {
    /// Reads an id written by [`fmt::Display`]; anything else is an invalid `operation.id`.
    pub fn parse(id: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "operation.id",
                format!(
                    "{id:?} is not a kubeadm control-plane hop; accepted: \
                     kubeadm-control-plane:<cluster>:v<from>..v<to>"
                ),
            )
        };
        let rest = id.strip_prefix(ID_PREFIX).ok_or_else(bad)?;
        let (cluster, hop) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (from, to) = hop.split_once("..").ok_or_else(bad)?;
        let from = KubeVersion::parse(from).map_err(|_| bad())?;
        let to = KubeVersion::parse(to).map_err(|_| bad())?;
        if cluster.is_empty() || to.patch().is_none() {
            return Err(bad());
        }
        Ok(Self {
            cluster: cluster.to_string(),
            from,
            to,
        })
    }
}

impl fmt::Display for HopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ID_PREFIX}{}:v{}..v{}",
            self.cluster, self.from, self.to
        )
    }
}

/// A hop read back from its operation.
struct Hop {
    id: HopId,
    op: Operation,
    nodes: Vec<String>,
    backup: BackupRecord,
}

impl Hop {
    fn new(id: HopId, nodes: Vec<String>, backup: BackupRecord) -> Result<Self> {
        let backup_json = serde_json::to_string(&backup).map_err(|e| {
            Error::Precondition(format!("cannot record the backup in the operation: {e}"))
        })?;
        let mut op = Operation::new(
            ProviderKind::Kubeadm,
            id.to_string(),
            OperationTarget::ControlPlane,
        )
        .with_version(&id.to)
        .with_handle(NODES_HANDLE, nodes.join(","))
        .with_handle(BACKUP_HANDLE, backup_json);
        op.started_at = Some(jiff::Timestamp::now());
        Ok(Self {
            id,
            op,
            nodes,
            backup,
        })
    }

    fn from_operation(op: &Operation, provider: &KubeadmProvider) -> Result<Self> {
        let id = HopId::parse(&op.id)?;
        if id.cluster != provider.inventory.cluster {
            return Err(Error::invalid(
                "operation.id",
                format!(
                    "{} belongs to cluster {}; this provider drives {}",
                    op.id, id.cluster, provider.inventory.cluster
                ),
            ));
        }
        if let Some(v) = &op.to_version
            && KubeVersion::parse(v).ok().as_ref() != Some(&id.to)
        {
            return Err(Error::invalid(
                "operation.to_version",
                format!("{v} differs from the target {} in the id {}", id.to, op.id),
            ));
        }
        let nodes: Vec<String> = op
            .handle
            .get(NODES_HANDLE)
            .map(|n| n.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let inventory: Vec<String> = provider
            .inventory
            .control_plane
            .iter()
            .map(|n| n.name.clone())
            .collect();
        if nodes != inventory {
            return Err(Error::Precondition(format!(
                "{} was started for control-plane nodes [{}], but the inventory lists [{}]; \
                 use the inventory the hop started with",
                op.id,
                nodes.join(", "),
                inventory.join(", ")
            )));
        }
        let backup = op
            .handle
            .get(BACKUP_HANDLE)
            .ok_or_else(|| {
                Error::invalid(
                    "operation.handle.backup",
                    "missing; a kubeadm control-plane hop records its verified snapshot there",
                )
            })
            .and_then(|b| {
                serde_json::from_str::<BackupRecord>(b).map_err(|e| {
                    Error::invalid(
                        "operation.handle.backup",
                        format!("not a backup record: {e}"),
                    )
                })
            })?;
        Ok(Self {
            id,
            op: op.clone(),
            nodes,
            backup,
        })
    }

    fn progress(&self, done: usize) -> Option<f32> {
        Some(done as f32 / self.nodes.len().max(1) as f32)
    }

    fn tally(&self, done: usize) -> String {
        format!(
            "{done}/{} control-plane nodes at {}",
            self.nodes.len(),
            self.id.to
        )
    }
}

/// Where a running node step is (read by polls for their message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Starting = 0,
    Kubeadm,
    Apply,
    UpgradeNode,
    Draining,
    Kubelet,
    WaitingReady,
    Uncordoning,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Kubeadm,
            2 => Self::Apply,
            3 => Self::UpgradeNode,
            4 => Self::Draining,
            5 => Self::Kubelet,
            6 => Self::WaitingReady,
            7 => Self::Uncordoning,
            _ => Self::Starting,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Kubeadm => "installing kubeadm",
            Self::Apply => "kubeadm upgrade apply",
            Self::UpgradeNode => "kubeadm upgrade node",
            Self::Draining => "draining",
            Self::Kubelet => "installing kubelet and kubectl",
            Self::WaitingReady => "waiting for Ready",
            Self::Uncordoning => "uncordoning",
        }
    }
}

/// The step this provider runs, if any.
pub(super) struct HopTask {
    op: Operation,
    node: String,
    done_before: usize,
    phase: Arc<AtomicU8>,
    handle: JoinHandle<Result<()>>,
}

/// The provider's hop bookkeeping: the running step, and the last failure per operation.
#[derive(Default)]
pub(super) struct HopSlot {
    running: Option<HopTask>,
    failed: Option<(String, Vec<ProviderErrorDetail>)>,
}

impl HopSlot {
    /// Stops the running step (the provider is going away; like a crash, resumable).
    pub(super) fn abort(&mut self) {
        if let Some(task) = self.running.take() {
            task.handle.abort();
        }
    }

    /// The operation whose step is running.
    pub(super) fn running_operation(&self) -> Option<Operation> {
        self.running
            .as_ref()
            .filter(|t| !t.handle.is_finished())
            .map(|t| t.op.clone())
    }
}

fn cordoned_by_kup(state: &NodeState) -> bool {
    state
        .annotations
        .get(CORDONED_BY_KUP_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Which of the hop's nodes are done (invariant 1), in the hop's order.
async fn nodes_done(client: &Client, hop: &Hop) -> Result<Vec<bool>> {
    let api = cluster_state::api_servers(client).await?;
    let nodes = cluster_state::nodes(client).await?;
    let to = &hop.id.to;
    Ok(hop
        .nodes
        .iter()
        .map(|n| {
            api.get(n) == Some(to)
                && nodes
                    .get(n)
                    .is_some_and(|s| s.ready_at(to) && !cordoned_by_kup(s))
        })
        .collect())
}

/// One control-plane node's step, owning everything it needs so it runs as its own task.
struct NodeStep {
    node: String,
    first: bool,
    to: KubeVersion,
    backup: BackupRecord,
    client: Client,
    exec: Arc<dyn NodeExecutor>,
    pm: PackageManager,
    repo_file: Option<String>,
    settings: KubeadmSettings,
    drain: Arc<dyn NodeDrain>,
    events: Arc<dyn EventSink>,
    phase: Arc<AtomicU8>,
}

impl NodeStep {
    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    fn failed(&self, step: &str, source: Error) -> Error {
        Error::ControlPlaneFailed {
            node: self.node.clone(),
            step: step.to_string(),
            source: Box::new(source),
            backup: Box::new(self.backup.clone()),
        }
    }

    async fn run(self) -> Result<()> {
        let pkgs = NodePackages::new(self.exec.as_ref(), self.pm, &self.settings.packages)
            .with_repo_file(self.repo_file.as_deref());
        let api = cluster_state::api_servers(&self.client)
            .await
            .map_err(|e| self.failed("control-plane components", e))?;
        if api.get(&self.node) != Some(&self.to) {
            // Invariant 6: apply only while no API server runs the target.
            let applied = api.values().any(|v| *v == self.to);
            self.components(&pkgs, self.first && !applied)
                .await
                .map_err(|e| self.failed("control-plane components", e))?;
        }
        self.kubelet(&pkgs)
            .await
            .map_err(|e| self.failed("kubelet", e))
    }

    async fn components(&self, pkgs: &NodePackages<'_>, apply: bool) -> Result<()> {
        let exec = self.exec.as_ref();
        save_pre_upgrade_state(exec, &self.settings.etcd, &self.backup.id).await?;
        self.set(Phase::Kubeadm);
        pkgs.upgrade_kubeadm(&self.to, false).await?;
        let timeout = self.settings.kubeadm_timeout;
        if apply {
            self.set(Phase::Apply);
            let plan = exec
                .run_checked(&kubeadm::upgrade_plan(&self.to, timeout))
                .await?;
            let plan = UpgradePlanOutput::parse(&plan.stdout).map_err(|message| {
                Error::UnexpectedOutput {
                    node: self.node.clone(),
                    what: "kubeadm upgrade plan".into(),
                    message,
                }
            })?;
            let blockers = plan.blockers(&self.to);
            if !blockers.is_empty() {
                return Err(Error::Precondition(blockers.join("; ")));
            }
            exec.run_checked(&kubeadm::upgrade_apply(&self.to, timeout))
                .await?;
        } else {
            self.set(Phase::UpgradeNode);
            exec.run_checked(&kubeadm::upgrade_node(timeout)).await?;
        }
        Ok(())
    }

    async fn annotate_cordon(&self, ours: bool) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let value = if ours { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {"annotations": {CORDONED_BY_KUP_ANNOTATION: value}}});
        api.patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Cordon, drain, kubelet and kubectl, Ready at the target, uncordon (unless an operator
    /// had cordoned the node).
    async fn kubelet(&self, pkgs: &NodePackages<'_>) -> Result<()> {
        let name = self.node.as_str();
        let state = cluster_state::node(&self.client, name).await?;
        let mut ours = cordoned_by_kup(&state);
        if !state.ready_at(&self.to) {
            if !state.unschedulable && !ours {
                // Marked before cordoning, so a crash in between still reads as kup's cordon.
                self.annotate_cordon(true).await?;
                ours = true;
            }
            self.drain.cordon(name).await?;
            self.events.emit(Event::NodeCordoned {
                node: name.to_string(),
                was_cordoned: !ours,
            });
            self.set(Phase::Draining);
            self.drain.drain(name, self.events.as_ref()).await?;
            self.set(Phase::Kubelet);
            pkgs.upgrade_kubelet(&self.to, false).await?;
            self.set(Phase::WaitingReady);
            cluster_state::wait_ready_at(
                &self.client,
                name,
                &self.to,
                self.settings.node_ready_timeout,
            )
            .await?;
            self.events.emit(Event::NodeUpgraded {
                node: name.to_string(),
                version: self.to.to_string(),
            });
        }
        if ours {
            self.set(Phase::Uncordoning);
            self.drain.uncordon(name).await?;
            self.annotate_cordon(false).await?;
            self.events.emit(Event::NodeUncordoned {
                node: name.to_string(),
            });
        } else if state.unschedulable {
            self.events.emit(Event::NodeLeftCordoned {
                node: name.to_string(),
                reason: "it was cordoned before the upgrade".into(),
            });
        }
        Ok(())
    }
}

impl KubeadmProvider {
    async fn check_repositories(&self, nodes: &[String], to: &KubeVersion) -> Result<()> {
        let mut missing = Vec::new();
        for node in nodes {
            let pm = self.package_manager(node).await?;
            if !self.releases.repository_exists(to, pm).await? {
                missing.push(format!("{} ({node})", self.releases.repository_url(to, pm)));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Precondition(format!(
                "the package repository for {}.{} does not exist: {}",
                to.major(),
                to.minor(),
                missing.join(", ")
            )))
        }
    }

    pub(super) async fn check_node_repositories(&self, node: &str, to: &KubeVersion) -> Result<()> {
        self.check_repositories(&[node.to_string()], to).await
    }

    /// Checks the hop and starts its first node's step (see the module's invariants).
    pub(super) async fn start_control_plane(
        &self,
        to: &KubeVersion,
        _opts: &ControlPlaneOptions,
    ) -> Result<Operation> {
        let to = self.resolve_target(to).await?;
        let cp_names: Vec<String> = self
            .inventory
            .control_plane
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let current = self.control_plane_version().await?;
        let distance = current.minor_distance(&to);
        if distance < 0 {
            return Err(Error::Precondition(format!(
                "the control plane runs {current}; kubeadm cannot downgrade it to {to}. Rolling \
                 back is a restore of the etcd snapshot taken before the upgrade"
            )));
        }
        if distance > 1 {
            return Err(Error::Precondition(format!(
                "kubeadm upgrades the control plane one minor at a time: upgrade from {current} \
                 to {}.{} first",
                current.major(),
                current.minor() + 1
            )));
        }
        // The control plane is touched only with a verified snapshot of its current state.
        let Some(backup) = self.verified_backup().await else {
            return Err(Error::Precondition(format!(
                "no verified etcd snapshot of the control plane at {current}: take one with \
                 `backup` first (kup never moves a kubeadm control plane without one)"
            )));
        };
        if backup.control_plane != current {
            return Err(Error::Precondition(format!(
                "the verified etcd snapshot {} was taken at {}, but the control plane runs \
                 {current}: take a new backup before this hop",
                backup.id, backup.control_plane
            )));
        }
        let hop = Hop::new(
            HopId {
                cluster: self.inventory.cluster.clone(),
                from: current.clone(),
                to: to.clone(),
            },
            cp_names.clone(),
            backup.clone(),
        )?;
        let mut slot = self.hop.lock().await;
        if let Some(task) = &slot.running
            && !task.handle.is_finished()
        {
            if task.op.id == hop.op.id {
                // Started already (a caller re-asking): the same operation.
                return Ok(task.op.clone());
            }
            return Err(Error::Core(kup_core::Error::Busy {
                message: format!(
                    "{} is upgrading {}; kup starts no other control-plane hop until it ends",
                    task.op, task.node
                ),
                operation: Some(task.op.id.clone()),
            }));
        }
        if nodes_done(&self.client, &hop).await?.iter().all(|d| *d) {
            return Ok(hop.op);
        }
        self.verify_record(&backup).await?;
        if self.drain.is_none() {
            return Err(Error::Precondition(
                "no drain is configured for control-plane nodes (KubeadmBuilder::drain_options \
                 or KubeadmProvider::with_drain)"
                    .into(),
            ));
        }
        // Health first; nothing has changed yet.
        let nodes = cluster_state::nodes(&self.client).await?;
        let not_ready: Vec<&str> = cp_names
            .iter()
            .filter(|n| !nodes.get(*n).is_some_and(|s| s.ready))
            .map(String::as_str)
            .collect();
        if !not_ready.is_empty() {
            return Err(Error::Precondition(format!(
                "control-plane nodes not Ready: {}",
                not_ready.join(", ")
            )));
        }
        let first_exec = self.executor(&self.inventory.first_control_plane().name)?;
        let tools = EtcdTools::find(first_exec.as_ref(), &self.settings.etcd).await?;
        etcd::health(first_exec.as_ref(), &tools, &self.settings.etcd).await?;
        self.check_repositories(&cp_names, &to).await?;

        slot.failed = None;
        slot.running = None;
        self.advance(&hop, &mut slot).await?;
        Ok(hop.op)
    }

    /// Starts the next not-done node's step; `slot` has no running step. Returns the status
    /// to report.
    async fn advance(&self, hop: &Hop, slot: &mut HopSlot) -> Result<OperationStatus> {
        let done = nodes_done(&self.client, hop).await?;
        let count = done.iter().filter(|d| **d).count();
        let Some(index) = done.iter().position(|d| !*d) else {
            return Ok(OperationStatus::Succeeded);
        };
        let node = hop.nodes[index].clone();
        let Some(drain) = self.drain.clone() else {
            return Err(Error::Precondition(
                "no drain is configured for control-plane nodes (KubeadmBuilder::drain_options \
                 or KubeadmProvider::with_drain)"
                    .into(),
            ));
        };
        let phase = Arc::new(AtomicU8::new(Phase::Starting as u8));
        let step = NodeStep {
            node: node.clone(),
            first: index == 0,
            to: hop.id.to.clone(),
            backup: hop.backup.clone(),
            client: self.client.clone(),
            exec: self.executor(&node)?,
            pm: self.package_manager(&node).await?,
            repo_file: self.spec(&node)?.repo_file.clone(),
            settings: self.settings.clone(),
            drain,
            events: self.events.clone(),
            phase: phase.clone(),
        };
        tracing::info!(operation = %hop.op.id, node = %node, "starting control-plane node step");
        slot.running = Some(HopTask {
            op: hop.op.clone(),
            node: node.clone(),
            done_before: count,
            phase,
            handle: tokio::spawn(step.run()),
        });
        Ok(OperationStatus::Running {
            progress: hop.progress(count),
            message: Some(format!("{node}: starting ({})", hop.tally(count))),
        })
    }

    /// One poll of a control-plane hop (see the module's invariants).
    pub(super) async fn poll_hop(&self, op: &Operation) -> Result<OperationStatus> {
        let hop = Hop::from_operation(op, self)?;
        let mut slot = self.hop.lock().await;
        if let Some(task) = slot.running.take() {
            if task.op.id != hop.op.id {
                let busy = kup_core::Error::Busy {
                    message: format!(
                        "{} is upgrading {}; {} waits until it ends",
                        task.op, task.node, hop.op.id
                    ),
                    operation: Some(task.op.id.clone()),
                };
                if !task.handle.is_finished() {
                    slot.running = Some(task);
                    return Err(Error::Core(busy));
                }
            } else if !task.handle.is_finished() {
                let phase = Phase::from_u8(task.phase.load(Ordering::Relaxed));
                let status = OperationStatus::Running {
                    progress: hop.progress(task.done_before),
                    message: Some(format!(
                        "{}: {} ({})",
                        task.node,
                        phase.describe(),
                        hop.tally(task.done_before)
                    )),
                };
                slot.running = Some(task);
                return Ok(status);
            } else {
                let node = task.node.clone();
                let outcome = match task.handle.await {
                    Ok(outcome) => outcome,
                    Err(join) => Err(Error::ControlPlaneFailed {
                        node: node.clone(),
                        step: "node step".into(),
                        source: Box::new(Error::Precondition(format!(
                            "the step stopped unexpectedly: {join}"
                        ))),
                        backup: Box::new(hop.backup.clone()),
                    }),
                };
                return match outcome {
                    Ok(()) => {
                        // Invariant 3: report the boundary; the next node starts next poll.
                        let done = nodes_done(&self.client, &hop).await?;
                        let count = done.iter().filter(|d| **d).count();
                        Ok(OperationStatus::Running {
                            progress: hop.progress(count),
                            message: Some(format!("{node}: done ({})", hop.tally(count))),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(operation = %hop.op.id, node = %node, error = %e, "control-plane node step failed");
                        let errors = e.details();
                        slot.failed = Some((hop.op.id.clone(), errors.clone()));
                        Ok(OperationStatus::Failed { errors })
                    }
                };
            }
        }
        if let Some((id, errors)) = &slot.failed
            && *id == hop.op.id
        {
            return Ok(OperationStatus::Failed {
                errors: errors.clone(),
            });
        }
        self.advance(&hop, &mut slot).await
    }

    /// Waits until this provider's running control-plane node step (if any) ends, so an
    /// embedder that cancelled a run can let the current node finish before it exits.
    pub async fn wait_for_node_step(&self) {
        loop {
            let running = self
                .hop
                .lock()
                .await
                .running
                .as_ref()
                .is_some_and(|t| !t.handle.is_finished());
            if !running {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hop_ids_round_trip_and_bad_ones_name_the_accepted_form() {
        let id = HopId {
            cluster: "prod:eu".into(),
            from: "1.30.6".parse().unwrap(),
            to: "1.31.2".parse().unwrap(),
        };
        let text = id.to_string();
        assert_eq!(text, "kubeadm-control-plane:prod:eu:v1.30.6..v1.31.2");
        assert_eq!(HopId::parse(&text).unwrap(), id);
        for bad in [
            "kubeadm-control-plane-lab-1.31.2",
            "kubeadm-control-plane::v1.30.6..v1.31.2",
            "kubeadm-control-plane:lab:v1.30.6..v1.31",
            "kubeadm-control-plane:lab:v1.30.6",
        ] {
            let err = HopId::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("operation.id")
                    && err.contains("kubeadm-control-plane:<cluster>:v<from>..v<to>"),
                "{bad}: {err}"
            );
        }
    }
}
