//! The upgrade runbook: a plan as the change-review document, and a run (finished or
//! interrupted) as the same document with its checklist ticked and timestamped from the
//! journal.
//!
//! [`Runbook`] is the data (serialisable, for `-o json`); [`Runbook::to_markdown`] and
//! [`Runbook::to_html`] render it. The HTML is one self-contained file with a timeline of
//! steps and nodes, where waits on PodDisruptionBudgets show.

mod html;
mod markdown;
mod rollback;

use std::collections::BTreeMap;

use jiff::Timestamp;
use kup_core::{
    BackupRecord, ClusterInfo, Finding, KubeVersion, PoolManagement, ProviderKind, StepAction,
    UpgradePlan,
};
use serde::{Deserialize, Serialize};

use crate::journal::{Happening, Journal, RunState, StepState};

/// The change-review document of one plan, and of its run when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runbook {
    /// The plan's id.
    pub plan_id: String,
    /// The cluster.
    pub cluster: String,
    /// The provider.
    pub provider: ProviderKind,
    /// The control plane's version when planned.
    pub from: KubeVersion,
    /// The target.
    pub target: KubeVersion,
    /// The run's state, when the document describes a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
    /// When the run started and was last recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunTimes>,
    /// What must be true before the change starts.
    pub prerequisites: Vec<CheckItem>,
    /// The plan's steps in order, each with its checklist.
    pub steps: Vec<RunbookStep>,
    /// What can be undone, and how, on this provider.
    pub rollback: Vec<String>,
    /// The last pre-flight's findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Backups taken by the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupRecord>,
    /// Validation rounds, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<ValidationRecord>,
    /// Each node the run touched, with its timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeTimeline>,
    /// Nodes still cordoned by kup or left cordoned on purpose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cordoned: Vec<String>,
    /// History entries the journal dropped to stay small (the timeline lacks the oldest).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// When a run happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTimes {
    /// When the first attempt started.
    pub started_at: Timestamp,
    /// When the journal was last written.
    pub updated_at: Timestamp,
    /// Runs so far (1, plus one per resume).
    pub attempts: u32,
}

/// One line of a checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    /// What is checked.
    pub text: String,
    /// Whether it is done.
    pub done: bool,
    /// When it was done, when the journal says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// Details: how it went, or what the operator fills in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl CheckItem {
    fn open(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            done: false,
            at: None,
            note: None,
        }
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// One plan step in the runbook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookStep {
    /// Its index in the plan.
    pub index: usize,
    /// Its kind (`control-plane`, `node-pool`…).
    pub kind: String,
    /// What it does.
    pub description: String,
    /// The step itself, ticked when done.
    pub check: CheckItem,
    /// Where it stands in the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StepState>,
    /// When it (last) started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// Node by node, in order (control-plane nodes for a kubeadm hop, workers for a kup-rolled
    /// pool); empty where the provider rolls the nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<CheckItem>,
}

/// A validation round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// When it ended.
    pub at: Timestamp,
    /// The step it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// Its number.
    pub round: u32,
    /// Whether it passed.
    pub passed: bool,
    /// Consecutive passes so far, of `required`.
    pub consecutive: u32,
    /// Passes required.
    pub required: u32,
    /// What failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

/// What happened to one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTimeline {
    /// The node.
    pub node: String,
    /// Its pool, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The step that rolled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// Cordoned at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordoned_at: Option<Timestamp>,
    /// Drain started at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_started_at: Option<Timestamp>,
    /// Drained at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained_at: Option<Timestamp>,
    /// How long the drain took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_ms: Option<u64>,
    /// Pods evicted.
    #[serde(default)]
    pub evicted: usize,
    /// Ready at its new version at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgraded_at: Option<Timestamp>,
    /// The version it reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Uncordoned at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncordoned_at: Option<Timestamp>,
    /// Why it stays cordoned, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_cordoned: Option<String>,
    /// Evictions held up by PodDisruptionBudgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<PdbWait>,
}

impl NodeTimeline {
    /// When kup started on it.
    pub fn start(&self) -> Option<Timestamp> {
        self.cordoned_at.or(self.drain_started_at)
    }

    /// When kup finished with it (or last heard of it).
    pub fn end(&self) -> Option<Timestamp> {
        self.uncordoned_at
            .or(self.upgraded_at)
            .or(self.drained_at)
            .or(self.blocks.iter().map(|b| b.until).max())
    }
}

/// A pod whose eviction a PodDisruptionBudget refused for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdbWait {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// `namespace/name` of the budget, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    /// First refused at.
    pub from: Timestamp,
    /// Last refused at, or evicted at.
    pub until: Timestamp,
    /// Whether it was evicted in the end.
    pub evicted: bool,
}

impl PdbWait {
    /// How long it waited, in milliseconds.
    pub fn millis(&self) -> u64 {
        (self.until.as_millisecond() - self.from.as_millisecond()).max(0) as u64
    }

    /// How long it waited, in whole seconds.
    pub fn seconds(&self) -> u64 {
        self.millis() / 1000
    }
}

impl Runbook {
    /// The document for `plan` before it runs; `cluster` (the state it was planned from)
    /// lists the nodes to tick one by one where kup rolls them.
    pub fn for_plan(plan: &UpgradePlan, cluster: Option<&ClusterInfo>) -> Self {
        let steps = plan
            .steps
            .iter()
            .map(|s| RunbookStep {
                index: s.index,
                kind: s.action.kind().to_string(),
                description: s.action.to_string(),
                check: CheckItem::open(s.action.to_string()),
                state: None,
                started_at: None,
                items: step_nodes(&s.action, cluster)
                    .into_iter()
                    .map(|n| CheckItem::open(format!("node {n}")))
                    .collect(),
            })
            .collect();
        Self::blank(
            (
                &plan.id,
                &plan.cluster,
                &plan.provider,
                &plan.from,
                &plan.target,
            ),
            prerequisites(plan),
            steps,
            rollback::steps(plan),
        )
    }

    /// A document with its header, checklists and rollback, and nothing from a run yet.
    fn blank(
        (plan_id, cluster, provider, from, target): (
            &str,
            &str,
            &ProviderKind,
            &KubeVersion,
            &KubeVersion,
        ),
        prerequisites: Vec<CheckItem>,
        steps: Vec<RunbookStep>,
        rollback: Vec<String>,
    ) -> Self {
        Self {
            plan_id: plan_id.to_string(),
            cluster: cluster.to_string(),
            provider: provider.clone(),
            from: from.clone(),
            target: target.clone(),
            state: None,
            run: None,
            prerequisites,
            steps,
            rollback,
            findings: Vec::new(),
            backups: Vec::new(),
            validations: Vec::new(),
            nodes: Vec::new(),
            cordoned: Vec::new(),
            history_dropped: 0,
        }
    }

    /// The document of a run from its journal; `plan` (when still stored) adds what only the
    /// plan knows (rollback steps, the backup prerequisite).
    pub fn for_run(journal: &Journal, plan: Option<&UpgradePlan>) -> Self {
        let mut book = match plan {
            Some(plan) => Self::for_plan(plan, None),
            None => Self::from_journal_steps(journal),
        };
        book.state = Some(journal.state.clone());
        book.run = Some(RunTimes {
            started_at: journal.started_at,
            updated_at: journal.updated_at,
            attempts: journal.attempts,
        });
        book.findings = journal.findings.clone();
        book.backups = journal.backups.clone();
        book.history_dropped = journal.history_dropped;
        book.nodes = node_timelines(journal);
        book.validations = validations(journal);
        book.cordoned = journal
            .nodes
            .iter()
            .map(|n| match &n.reason {
                Some(reason) => format!("{} (pool {}): {reason}", n.node, n.pool),
                None => format!("{} (pool {}, {:?})", n.node, n.pool, n.phase),
            })
            .collect();
        book.tick_prerequisites(journal);
        for step in &mut book.steps {
            let Some(record) = journal.step(step.index) else {
                continue;
            };
            step.state = Some(record.state);
            step.started_at = record.started_at;
            step.check.done = record.state.is_done();
            step.check.at = record.finished_at.filter(|_| step.check.done);
            step.check.note = record.message.clone();
            // The nodes of this step as they happened, in the order kup took them.
            let nodes: Vec<&NodeTimeline> = book
                .nodes
                .iter()
                .filter(|n| n.step == Some(step.index))
                .collect();
            if !nodes.is_empty() {
                step.items = nodes.into_iter().map(node_item).collect();
            } else if step.check.done {
                for item in &mut step.items {
                    item.done = true;
                    item.at = step.check.at;
                }
            }
        }
        book
    }

    fn from_journal_steps(journal: &Journal) -> Self {
        Self::blank(
            (
                &journal.plan_id,
                &journal.cluster,
                &journal.provider,
                &journal.from,
                &journal.target,
            ),
            vec![
                CheckItem::open("Upgrade rehearsed on a staging cluster")
                    .note("attested by the operator"),
                CheckItem::open("Change window approved").note("approved by: ______"),
            ],
            journal
                .steps
                .iter()
                .map(|s| RunbookStep {
                    index: s.index,
                    kind: s.kind.clone(),
                    description: s.description.clone(),
                    check: CheckItem::open(s.description.clone()),
                    state: None,
                    started_at: None,
                    items: Vec::new(),
                })
                .collect(),
            vec!["The plan is no longer stored; see the provider's rollback procedure.".into()],
        )
    }

    fn tick_prerequisites(&mut self, journal: &Journal) {
        let preflight = journal.steps.iter().find(|s| s.kind == "preflight");
        for item in &mut self.prerequisites {
            if item.text.starts_with(SNAPSHOT) {
                if let Some(b) = journal.backups.first() {
                    item.done = true;
                    item.at = Some(b.taken_at);
                    item.note = Some(format!("{} (sha256 {})", b.id, b.sha256));
                }
            } else if item.text.starts_with(PREFLIGHT)
                && let Some(p) = preflight.filter(|p| p.state.is_done())
            {
                item.done = true;
                item.at = p.finished_at;
                item.note = p.message.clone();
            }
        }
    }
}

const SNAPSHOT: &str = "etcd snapshot taken and verified";
const PREFLIGHT: &str = "Pre-flight checks pass with no blocker";

fn rollback_prerequisites(plan: &UpgradePlan) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for step in &plan.steps {
        if let StepAction::Restore { backup, .. } = &step.action {
            items.push(
                CheckItem::open(format!(
                    "Backup {} (taken {} at {}, sha256 {}) is the one to return to",
                    backup.id, backup.taken_at, backup.control_plane, backup.sha256
                ))
                .note("verified again by the restore"),
            );
            items.push(
                CheckItem::open(
                    "Everything written to the cluster since that backup will be lost \
                     (workloads, Secrets, leases changed since)",
                )
                .note("accepted by: ______"),
            );
        }
    }
    for refusal in &plan.not_rolled_back {
        items.push(
            CheckItem::open(format!(
                "Stays where it is: {} ({})",
                refusal.part, refusal.reason
            ))
            .note("acknowledged by the operator"),
        );
    }
    items.push(CheckItem::open("Rollback window approved").note("approved by: ______"));
    items
}

fn prerequisites(plan: &UpgradePlan) -> Vec<CheckItem> {
    if plan.kind == kup_core::PlanKind::Rollback {
        return rollback_prerequisites(plan);
    }
    let mut items = Vec::new();
    let has_backup = plan
        .steps
        .iter()
        .any(|s| matches!(s.action, StepAction::Backup { .. }));
    if has_backup {
        items.push(
            CheckItem::open(format!("{SNAPSHOT} (the plan's backup step)"))
                .note("ticked by the run"),
        );
    } else {
        items.push(
            CheckItem::open(
                "Application data backed up (the provider keeps the control plane's state; \
                 there is no etcd snapshot to take)",
            )
            .note("attested by the operator"),
        );
    }
    items.push(CheckItem::open(format!("{PREFLIGHT} (`kup preflight`)")).note("ticked by the run"));
    let minors: Vec<String> = plan
        .control_plane_hops()
        .filter_map(|s| match &s.action {
            StepAction::ControlPlane { to, .. } => Some(format!("{}.{}", to.major(), to.minor())),
            _ => None,
        })
        .collect();
    if !minors.is_empty() {
        items.push(
            CheckItem::open(format!(
                "Release notes and removed APIs reviewed for {}",
                minors.join(", ")
            ))
            .note("attested by the operator"),
        );
    }
    items.push(
        CheckItem::open("Upgrade rehearsed on a staging cluster").note("attested by the operator"),
    );
    items.push(CheckItem::open("Change window approved").note("approved by: ______"));
    items
}

/// The nodes a step takes one by one, from the cluster it was planned on.
fn step_nodes(action: &StepAction, cluster: Option<&ClusterInfo>) -> Vec<String> {
    let Some(cluster) = cluster else {
        return Vec::new();
    };
    match action {
        StepAction::ControlPlane { .. } | StepAction::Restore { .. }
            if cluster.provider == ProviderKind::Kubeadm =>
        {
            cluster
                .node_pools
                .iter()
                .filter(|p| p.control_plane)
                .flat_map(|p| p.nodes.iter().cloned())
                .collect()
        }
        StepAction::NodePool {
            pool,
            management: PoolManagement::Kup,
            ..
        }
        | StepAction::PoolRollback {
            pool,
            management: PoolManagement::Kup,
            ..
        } => cluster
            .node_pools
            .iter()
            .filter(|p| &p.name == pool)
            .flat_map(|p| p.nodes.iter().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

fn node_item(n: &NodeTimeline) -> CheckItem {
    let mut parts = Vec::new();
    if let Some(ms) = n.drain_ms {
        parts.push(format!(
            "drain took {} ({} pods evicted)",
            duration(ms),
            n.evicted
        ));
    }
    for b in &n.blocks {
        parts.push(format!(
            "blocked by PDB {} for {}{}",
            b.pdb.as_deref().unwrap_or("(unknown)"),
            duration(b.millis()),
            if b.evicted {
                String::new()
            } else {
                format!(" ({} not evicted)", b.pod)
            }
        ));
    }
    if let Some(reason) = &n.left_cordoned {
        parts.push(format!("left cordoned: {reason}"));
    }
    let done = n.upgraded_at.is_some();
    CheckItem {
        text: match &n.version {
            Some(v) => format!("node {} upgraded to {v}", n.node),
            None => format!("node {}", n.node),
        },
        done,
        at: n.upgraded_at,
        note: (!parts.is_empty()).then(|| parts.join("; ")),
    }
}

fn node_timelines(journal: &Journal) -> Vec<NodeTimeline> {
    let mut order: Vec<String> = Vec::new();
    let mut nodes: BTreeMap<String, NodeTimeline> = BTreeMap::new();
    for e in &journal.history {
        let Some(name) = e.what.node() else {
            continue;
        };
        let n = nodes.entry(name.to_string()).or_insert_with(|| {
            order.push(name.to_string());
            NodeTimeline {
                node: name.to_string(),
                ..NodeTimeline::default()
            }
        });
        n.pool = n.pool.take().or_else(|| e.pool.clone());
        n.step = n.step.or(e.step);
        match &e.what {
            Happening::NodeCordoned { .. } => {
                n.cordoned_at.get_or_insert(e.at);
            }
            Happening::DrainStarted { .. } => {
                n.drain_started_at.get_or_insert(e.at);
            }
            Happening::NodeDrained {
                evicted,
                elapsed_ms,
                ..
            } => {
                n.drained_at = Some(e.at);
                n.drain_ms = Some(*elapsed_ms);
                n.evicted += evicted;
            }
            Happening::PodBlocked {
                pod,
                pdb,
                until,
                evicted,
                ..
            } => n.blocks.push(PdbWait {
                pod: pod.clone(),
                pdb: pdb.clone(),
                from: e.at,
                until: *until,
                evicted: *evicted,
            }),
            Happening::NodeUpgraded { version, .. } => {
                n.upgraded_at = Some(e.at);
                n.version = Some(version.clone());
            }
            Happening::NodeUncordoned { .. } => n.uncordoned_at = Some(e.at),
            Happening::NodeLeftCordoned { reason, .. } => n.left_cordoned = Some(reason.clone()),
            _ => {}
        }
    }
    order.into_iter().filter_map(|n| nodes.remove(&n)).collect()
}

fn validations(journal: &Journal) -> Vec<ValidationRecord> {
    journal
        .history
        .iter()
        .filter_map(|e| match &e.what {
            Happening::ValidationRound {
                round,
                passed,
                consecutive,
                required,
                failures,
            } => Some(ValidationRecord {
                at: e.at,
                step: e.step,
                round: *round,
                passed: *passed,
                consecutive: *consecutive,
                required: *required,
                failures: failures.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The columns of the node table.
pub(crate) const NODE_COLUMNS: [&str; 7] = [
    "node",
    "pool",
    "cordoned",
    "drain",
    "PDB waits",
    "upgraded",
    "uncordoned",
];

/// The columns of the backup table.
pub(crate) const BACKUP_COLUMNS: [&str; 6] =
    ["id", "taken", "location", "size", "sha256", "etcd hash"];

impl NodeTimeline {
    /// Its row of the node table, as plain text (each renderer escapes it).
    pub(crate) fn row(&self) -> [String; 7] {
        let at = |t: Option<Timestamp>| t.map(clock).unwrap_or_default();
        [
            self.node.clone(),
            self.pool.clone().unwrap_or_default(),
            at(self.cordoned_at),
            self.drain_ms
                .map(|ms| format!("{}, {} evicted", duration(ms), self.evicted))
                .unwrap_or_default(),
            self.blocks
                .iter()
                .map(|b| {
                    format!(
                        "{} {}",
                        b.pdb.as_deref().unwrap_or(&b.pod),
                        duration(b.millis())
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            at(self.upgraded_at),
            match &self.left_cordoned {
                Some(r) => format!("left cordoned: {r}"),
                None => at(self.uncordoned_at),
            },
        ]
    }
}

impl ValidationRecord {
    /// One line: `10:42:07 round 3: passed (2/2 consecutive)`, with what failed.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} round {}: {} ({}/{} consecutive){}",
            clock(self.at),
            self.round,
            if self.passed { "passed" } else { "failed" },
            self.consecutive,
            self.required,
            if self.failures.is_empty() {
                String::new()
            } else {
                format!(": {}", self.failures.join("; "))
            }
        )
    }
}

/// A backup's row of the backup table, as plain text.
pub(crate) fn backup_row(b: &BackupRecord) -> [String; 6] {
    [
        b.id.clone(),
        when(b.taken_at),
        b.location.clone(),
        format!("{} B", b.size_bytes),
        b.sha256.clone(),
        b.store_hash.map(|h| h.to_string()).unwrap_or_default(),
    ]
}

/// A finding as one line of plain text (without its severity, which renderers emphasise).
pub(crate) fn finding_text(f: &Finding) -> String {
    match &f.remediation {
        Some(r) => format!("{}: {} — {r}", f.code, f.message),
        None => format!("{}: {}", f.code, f.message),
    }
}

/// A duration for people: tenths of a second below ten seconds, whole seconds below ten
/// minutes, then minutes and seconds.
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        0..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        10_000..600_000 => format!("{} s", ms / 1000),
        _ => format!("{} min {} s", ms / 60_000, ms / 1000 % 60),
    }
}

/// `HH:MM:SS` in UTC, as the documents show times.
pub(crate) fn clock(t: Timestamp) -> String {
    t.strftime("%H:%M:%S").to_string()
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests;
