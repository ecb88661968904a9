//! The journal: what a run has done, so that an interrupted run resumes where it stopped.
//!
//! It records the plan's id, each step's state, provider operations in flight (a resumed run
//! polls them again instead of starting second ones), backups taken, and every node kup
//! cordoned and has not finished with, together with whether that node was cordoned before
//! kup touched it. A node record is written *before* the cordon is sent, so no crash can leave
//! a node cordoned by kup without a record.
//!
//! Stores: [`FileJournalStore`] (atomic replace of a local file) and
//! [`ConfigMapJournalStore`] (a ConfigMap in the cluster, updates guarded by resourceVersion),
//! plus [`MemoryJournalStore`] for embedders that keep state themselves. The run's plan is kept
//! beside the journal by a [`PlanStore`].

mod configmap;
mod file;
mod history;
mod memory;
mod plan_store;
mod summary;

use async_trait::async_trait;
use jiff::Timestamp;
use kup_core::{
    BackupRecord, ErrorCategory, Finding, KubeVersion, Operation, ProviderKind, StepAction,
    UpgradePlan,
};
use serde::{Deserialize, Serialize};

pub use configmap::{CONFIGMAP_KEY, ConfigMapJournalStore, MAX_CONFIGMAP_JOURNAL_BYTES};
pub use file::FileJournalStore;
pub use history::{Happening, HistoryEntry, MAX_HISTORY};
pub use memory::MemoryJournalStore;
pub use plan_store::{ConfigMapPlanStore, FilePlanStore, PLAN_CONFIGMAP_KEY, PlanStore};

use crate::error::Result;

/// The journal format this crate writes and reads.
pub const JOURNAL_SCHEMA_VERSION: u32 = 1;

/// Where a journal is kept.
#[async_trait]
pub trait JournalStore: Send + Sync + std::fmt::Debug {
    /// The stored journal, `None` when there is none.
    async fn load(&self) -> Result<Option<Journal>>;

    /// Replaces the stored journal. Must be atomic: a reader sees the old or the new one.
    async fn save(&self, journal: &Journal) -> Result<()>;

    /// Removes the stored journal.
    async fn clear(&self) -> Result<()>;

    /// Where it is kept, for messages (`file /var/lib/kup/prod.json`,
    /// `configmap kube-system/kup-journal-prod`).
    fn describe(&self) -> String;

    /// Whether it is kept in the cluster's own API (a ConfigMap), so that a restore of the
    /// cluster's state would rewind it.
    fn in_cluster(&self) -> bool {
        false
    }
}

/// A run's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// Running, or the process died while running.
    Running,
    /// Every step finished.
    Succeeded,
    /// A step failed; resume once the cause is fixed.
    Failed {
        /// The error's category.
        category: ErrorCategory,
        /// The error.
        message: String,
    },
    /// Cancelled at a safe point; resume to continue.
    Cancelled {
        /// Where it stopped.
        message: String,
    },
}

impl RunState {
    /// Whether the run still has work to do (running, crashed, failed or cancelled).
    pub fn is_unfinished(&self) -> bool {
        !matches!(self, Self::Succeeded)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Running => f.write_str("running (or interrupted)"),
            Self::Succeeded => f.write_str("succeeded"),
            Self::Failed { message, .. } => write!(f, "failed: {message}"),
            Self::Cancelled { message } => write!(f, "cancelled: {message}"),
        }
    }
}

/// A step's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Started and not finished (possibly interrupted).
    Running,
    /// Done by this journal's runs.
    Succeeded,
    /// Nothing needed doing (already done).
    Skipped,
    /// Failed; resume retries it.
    Failed,
}

impl StepState {
    /// Succeeded or skipped.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
}

/// One plan step in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's index in the plan.
    pub index: usize,
    /// Its kind (`control-plane`, `node-pool`…).
    pub kind: String,
    /// What it does.
    pub description: String,
    /// Where it stands.
    pub state: StepState,
    /// When it last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The last outcome or error, briefly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The provider operation in flight for this step (control plane, pool, add-on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// Nodes finished by this step (kup-rolled pools).
    #[serde(default)]
    pub nodes_done: u32,
}

/// Where a node kup cordoned stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodePhase {
    /// Recorded; the cordon may or may not have been sent.
    Cordoning,
    /// Cordoned; its drain has not finished.
    Cordoned,
    /// Drained; its upgrade has not started.
    Drained,
    /// Its upgrade started (the operation, if any, is recorded).
    Upgrading,
    /// Left cordoned on purpose (stuck drain with the cordon-and-continue policy).
    LeftCordoned,
}

/// A node kup cordoned and has not finished with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node.
    pub node: String,
    /// Its pool.
    pub pool: String,
    /// The plan step rolling it.
    pub step: usize,
    /// The version it moves to.
    pub to: KubeVersion,
    /// Whether it was cordoned before kup touched it (it stays cordoned afterwards).
    pub was_cordoned: bool,
    /// Where it stands.
    pub phase: NodePhase,
    /// The provider operation upgrading it, while in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// Why it was left cordoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The attempt (run or resume, from 1) that last changed it.
    pub attempt: u32,
    /// When it last changed.
    pub since: Timestamp,
}

/// Everything a run has recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// [`JOURNAL_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The plan's id.
    pub plan_id: String,
    /// The cluster.
    pub cluster: String,
    /// The provider.
    pub provider: ProviderKind,
    /// The control plane's version when planned.
    pub from: KubeVersion,
    /// The plan's target.
    pub target: KubeVersion,
    /// The lock holder of the run that last wrote it.
    pub holder: String,
    /// When the first run started.
    pub started_at: Timestamp,
    /// When it was last written.
    pub updated_at: Timestamp,
    /// Runs so far (the first run is 1, each resume adds one).
    pub attempts: u32,
    /// The run's state.
    #[serde(flatten)]
    pub state: RunState,
    /// One record per plan step, in plan order.
    pub steps: Vec<StepRecord>,
    /// Backups taken, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupRecord>,
    /// Nodes kup cordoned and has not finished with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRecord>,
    /// The findings of the last pre-flight check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// What happened and when, oldest first (see [`HistoryEntry`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// History entries dropped to keep the journal small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Messages kept in the journal are cut to this many bytes, so it stays small.
const MAX_MESSAGE: usize = 2048;

pub(crate) fn short(message: impl Into<String>) -> String {
    cut(message.into(), MAX_MESSAGE)
}

fn cut(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

impl Journal {
    /// A fresh journal for `plan`, every step pending.
    pub fn new(plan: &UpgradePlan, holder: &str) -> Self {
        let now = Timestamp::now();
        Self {
            schema_version: JOURNAL_SCHEMA_VERSION,
            plan_id: plan.id.clone(),
            cluster: plan.cluster.clone(),
            provider: plan.provider.clone(),
            from: plan.from.clone(),
            target: plan.target.clone(),
            holder: holder.to_string(),
            started_at: now,
            updated_at: now,
            attempts: 0,
            state: RunState::Running,
            steps: plan
                .steps
                .iter()
                .map(|s| StepRecord {
                    index: s.index,
                    kind: s.action.kind().to_string(),
                    description: s.action.to_string(),
                    state: StepState::Pending,
                    started_at: None,
                    finished_at: None,
                    message: None,
                    operation: None,
                    nodes_done: 0,
                })
                .collect(),
            backups: Vec::new(),
            nodes: Vec::new(),
            findings: Vec::new(),
            history: Vec::new(),
            history_dropped: 0,
        }
    }

    /// The record of step `index`.
    pub fn step(&self, index: usize) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.index == index)
    }

    pub(crate) fn step_mut(&mut self, index: usize) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.index == index)
    }

    /// The record of node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.node == name)
    }

    pub(crate) fn node_mut(&mut self, name: &str) -> Option<&mut NodeRecord> {
        self.nodes.iter_mut().find(|n| n.node == name)
    }

    /// Whether a run recorded in this journal may have changed anything: a step other than
    /// pre-flight started, an operation or a backup is recorded, or a node was touched. A
    /// journal without progress (a run stopped by pre-flight) may be replaced by a new run.
    pub fn has_progress(&self) -> bool {
        !self.nodes.is_empty()
            || !self.backups.is_empty()
            || self.steps.iter().any(|s| {
                s.operation.is_some() || (s.kind != "preflight" && s.state != StepState::Pending)
            })
    }

    /// Whether this journal's run of `plan` is over with nothing left to retry: it succeeded
    /// and left no node cordoned after a stuck drain. Running the plan again does nothing.
    pub fn completes(&self, plan: &UpgradePlan) -> bool {
        self.plan_id == plan.id
            && self.state == RunState::Succeeded
            && self.left_cordoned().next().is_none()
    }

    /// Nodes left cordoned on purpose.
    pub fn left_cordoned(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes
            .iter()
            .filter(|n| n.phase == NodePhase::LeftCordoned)
    }

    /// The restore step an unfinished run of `plan` started and did not finish. Until it
    /// ends the API servers may be stopped, so a resume cannot read the cluster first.
    pub fn restore_in_flight(&self, plan: &UpgradePlan) -> Option<usize> {
        if self.plan_id != plan.id || !self.state.is_unfinished() {
            return None;
        }
        plan.steps
            .iter()
            .filter(|s| matches!(s.action, StepAction::Restore { .. }))
            .map(|s| s.index)
            .find(|&index| {
                self.step(index)
                    .is_some_and(|r| matches!(r.state, StepState::Running | StepState::Failed))
            })
    }

    /// The control-plane versions this journal vouches for: the `to` of the last finished
    /// control-plane step (or the plan's start) and the `to` of the first unfinished one (or
    /// the same again). The live control plane must lie between them for a resume.
    pub fn control_plane_window(&self, plan: &UpgradePlan) -> (KubeVersion, KubeVersion) {
        let mut done = plan.from.clone();
        let mut next = None;
        for step in &plan.steps {
            let (StepAction::ControlPlane { to, .. }
            | StepAction::Restore { to, .. }
            | StepAction::ControlPlaneRollback { to, .. }) = &step.action
            else {
                continue;
            };
            let finished = self.step(step.index).is_some_and(|r| r.state.is_done());
            if finished && next.is_none() {
                done = to.clone();
            } else if next.is_none() {
                next = Some(to.clone());
            }
        }
        let next = next.unwrap_or_else(|| done.clone());
        (done, next)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use kup_core::{PlanStep, StepAction};

    use super::*;

    pub(crate) fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    pub(crate) fn plan() -> UpgradePlan {
        let steps = vec![
            StepAction::Preflight {
                target: v("1.33.2"),
            },
            StepAction::ControlPlane {
                from: v("1.31.4"),
                to: v("1.32.3"),
            },
            StepAction::ControlPlane {
                from: v("1.32.3"),
                to: v("1.33.2"),
            },
            StepAction::Validate {
                control_plane: v("1.33.2"),
                pools: BTreeMap::new(),
            },
        ];
        plan_of(
            ProviderKind::Other("test".into()),
            "1.31.4",
            "1.33.2",
            steps,
        )
    }

    /// A plan of `steps` (numbered from 1) for cluster `prod`.
    pub(crate) fn plan_of(
        provider: ProviderKind,
        from: &str,
        target: &str,
        steps: Vec<StepAction>,
    ) -> UpgradePlan {
        UpgradePlan {
            schema_version: kup_core::PLAN_SCHEMA_VERSION,
            id: "0123456789abcdef".into(),
            kind: kup_core::PlanKind::Upgrade,
            not_rolled_back: Vec::new(),
            provider,
            cluster: "prod".into(),
            from: v(from),
            target: v(target),
            control_plane_only: false,
            max_kubelet_skew: 3,
            pools: BTreeMap::new(),
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(i, action)| PlanStep {
                    index: i + 1,
                    action,
                })
                .collect(),
        }
    }

    #[test]
    fn journal_round_trips_with_state_flattened() {
        let mut j = Journal::new(&plan(), "kup@host/1/abcd");
        j.state = RunState::Failed {
            category: ErrorCategory::Busy,
            message: "update in progress".into(),
        };
        j.nodes.push(NodeRecord {
            node: "w1".into(),
            pool: "workers".into(),
            step: 3,
            to: v("1.33.2"),
            was_cordoned: true,
            phase: NodePhase::Cordoned,
            operation: None,
            reason: None,
            attempt: 1,
            since: Timestamp::UNIX_EPOCH,
        });
        let json = serde_json::to_string(&j).unwrap();
        assert!(json.contains("\"state\":\"failed\""), "{json}");
        assert!(json.contains("\"category\":\"busy\""), "{json}");
        let back: Journal = serde_json::from_str(&json).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn control_plane_window_follows_finished_hops() {
        let plan = plan();
        let mut j = Journal::new(&plan, "h");
        assert_eq!(j.control_plane_window(&plan), (v("1.31.4"), v("1.32.3")));
        j.step_mut(2).unwrap().state = StepState::Succeeded;
        assert_eq!(j.control_plane_window(&plan), (v("1.32.3"), v("1.33.2")));
        j.step_mut(3).unwrap().state = StepState::Skipped;
        assert_eq!(j.control_plane_window(&plan), (v("1.33.2"), v("1.33.2")));
    }

    #[test]
    fn long_messages_are_cut() {
        let cut = short("é".repeat(5000));
        assert!(cut.len() <= MAX_MESSAGE + 3);
        assert!(cut.ends_with('…'));
    }
    #[test]
    fn a_restore_is_in_flight_from_its_start_until_it_is_done() {
        let backup = BackupRecord {
            id: "etcd-1".into(),
            location: "/var/lib/kup/etcd-1.db".into(),
            taken_at: Timestamp::UNIX_EPOCH,
            size_bytes: 4096,
            sha256: "ab12".into(),
            store_hash: None,
            revision: None,
            total_keys: None,
            control_plane: v("1.31.4"),
        };
        let mut p = plan_of(
            ProviderKind::Kubeadm,
            "1.32.3",
            "1.31.4",
            vec![
                StepAction::Preflight {
                    target: v("1.31.4"),
                },
                StepAction::Restore {
                    from: v("1.32.3"),
                    to: v("1.31.4"),
                    backup,
                    pools: vec![],
                },
            ],
        );
        p.kind = kup_core::PlanKind::Rollback;
        let mut j = Journal::new(&p, "h");
        assert_eq!(j.restore_in_flight(&p), None, "not started");
        j.step_mut(2).unwrap().state = StepState::Running;
        assert_eq!(j.restore_in_flight(&p), Some(2));
        j.step_mut(2).unwrap().state = StepState::Failed;
        assert_eq!(j.restore_in_flight(&p), Some(2), "failed half-way");
        let mut other = p.clone();
        other.id = "ffffffffffffffff".into();
        assert_eq!(j.restore_in_flight(&other), None, "another plan's journal");
        j.state = RunState::Succeeded;
        assert_eq!(j.restore_in_flight(&p), None, "the run is over");
        j.state = RunState::Running;
        j.step_mut(2).unwrap().state = StepState::Succeeded;
        assert_eq!(j.restore_in_flight(&p), None, "done");
        // An upgrade plan has no restore.
        assert_eq!(Journal::new(&plan(), "h").restore_in_flight(&plan()), None);
    }
}
