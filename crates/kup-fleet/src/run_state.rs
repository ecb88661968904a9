//! The state of a fleet run, as journaled: every stage and cluster with its phase, each
//! cluster's plan (stored at its first start, so a resume reruns exactly that plan), and the
//! halt, if any.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kup_core::{KubeVersion, UpgradePlan};
use serde::{Deserialize, Serialize};

use crate::decide::Decision;
use crate::spec::Fleet;

/// The fleet journal's schema version.
pub const FLEET_RUN_SCHEMA_VERSION: u32 = 1;

/// A fleet run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRun {
    /// [`FLEET_RUN_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Every cluster's stage and group when the run started (a resume must match it).
    pub fleet: BTreeMap<String, Vec<String>>,
    /// The version every cluster moves to.
    pub target: KubeVersion,
    /// Where the run stands.
    pub phase: FleetPhase,
    /// The stages in order.
    pub stages: Vec<StageRun>,
    /// Why the run halted, while it is halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halt>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// Where a fleet run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FleetPhase {
    /// Clusters are upgrading, or about to.
    Running,
    /// The next stage waits for approval.
    WaitingApproval,
    /// A completed stage soaks before the next starts.
    Soaking,
    /// Halted (a halt request or an exceeded error budget); resume to continue.
    Halted,
    /// Every stage completed.
    Completed,
}

/// Why and when a run halted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Halt {
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// One stage of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRun {
    /// The stage's name.
    pub name: String,
    /// Where it stands.
    pub phase: StagePhase,
    /// When its first cluster started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When its last cluster finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Its clusters.
    pub clusters: BTreeMap<String, ClusterRun>,
}

/// Where a stage stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum StagePhase {
    /// Not started.
    Pending,
    /// Waiting for a person to approve it.
    WaitingApproval,
    /// Its clusters are upgrading.
    Running,
    /// Completed; the next stage waits until `until`.
    Soaking {
        /// The soak's end.
        until: Timestamp,
    },
    /// Every cluster finished within the error budget (and the soak, if any, elapsed).
    Completed,
    /// Its failures exceeded the error budget.
    Failed,
}

/// One cluster of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRun {
    /// Its group.
    pub group: String,
    /// Where it stands.
    pub phase: ClusterPhase,
    /// Times it was started (a resume after a kill counts again).
    pub attempts: u32,
    /// When it first started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The plan run on it, stored at its first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<UpgradePlan>,
}

/// Where a cluster stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ClusterPhase {
    /// Not started.
    Pending,
    /// Upgrading (or left upgrading by a killed run: the next run resumes it).
    Running,
    /// Its engine run succeeded (the run's last steps validate the cluster).
    Succeeded,
    /// Its upgrade failed.
    Failed {
        /// Why.
        message: String,
    },
    /// Nothing to do.
    Skipped {
        /// Why (e.g. already at the target).
        reason: String,
    },
}

impl ClusterPhase {
    /// Succeeded, failed or skipped.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed { .. } | Self::Skipped { .. }
        )
    }

    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }
}

/// How a cluster's run ended, as the runner reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum ClusterOutcome {
    /// The engine run succeeded.
    Succeeded,
    /// It failed.
    Failed {
        /// Why.
        message: String,
    },
    /// Nothing to do.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Stopped at a safe point (cancel): it stays running, and the next run resumes it.
    Interrupted,
}

impl FleetRun {
    /// A new run of `fleet` to `target`, nothing started.
    pub fn new(fleet: &Fleet, target: &KubeVersion, now: Timestamp) -> Self {
        Self {
            schema_version: FLEET_RUN_SCHEMA_VERSION,
            fleet: assignment(fleet),
            target: target.clone(),
            phase: FleetPhase::Running,
            stages: fleet
                .stages
                .iter()
                .map(|s| StageRun {
                    name: s.name.clone(),
                    phase: StagePhase::Pending,
                    started_at: None,
                    finished_at: None,
                    clusters: s
                        .clusters
                        .iter()
                        .map(|(c, g)| {
                            (
                                c.clone(),
                                ClusterRun {
                                    group: g.clone(),
                                    phase: ClusterPhase::Pending,
                                    attempts: 0,
                                    started_at: None,
                                    finished_at: None,
                                    plan: None,
                                },
                            )
                        })
                        .collect(),
                })
                .collect(),
            halted: None,
            started_at: now,
            updated_at: now,
        }
    }

    /// Why this run cannot continue as a run of `fleet` to `target`, if it cannot.
    pub fn mismatch(&self, fleet: &Fleet, target: &KubeVersion) -> Option<String> {
        if self.target != *target {
            return Some(format!("it upgrades to {}, not {target}", self.target));
        }
        let order: Vec<&String> = fleet.stages.iter().map(|s| &s.name).collect();
        let stored: Vec<&String> = self.stages.iter().map(|s| &s.name).collect();
        if self.fleet != assignment(fleet) || order != stored {
            return Some(
                "the stages, groups or members changed since it started (concurrency, soak, \
                 approval and budgets may change, the placement of clusters may not)"
                    .into(),
            );
        }
        None
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&ClusterRun> {
        self.stages.iter().find_map(|s| s.clusters.get(name))
    }

    /// The cluster named `name`, to change.
    pub fn cluster_mut(&mut self, name: &str) -> Option<&mut ClusterRun> {
        self.stages
            .iter_mut()
            .find_map(|s| s.clusters.get_mut(name))
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageRun> {
        self.stages.iter().find(|s| s.name == name)
    }

    fn stage_mut(&mut self, name: &str) -> Option<&mut StageRun> {
        self.stages.iter_mut().find(|s| s.name == name)
    }

    /// Clusters running now, by name.
    pub fn running(&self) -> Vec<String> {
        self.stages
            .iter()
            .flat_map(|s| s.clusters.iter())
            .filter(|(_, c)| c.phase == ClusterPhase::Running)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Counts a new attempt for every cluster a killed run left running (the runner resumes
    /// them through their engine journals); their names.
    pub fn resume_interrupted(&mut self, now: Timestamp) -> Vec<String> {
        let names = self.running();
        for name in &names {
            if let Some(c) = self.cluster_mut(name) {
                c.attempts += 1;
            }
        }
        if !names.is_empty() {
            self.phase = FleetPhase::Running;
            self.updated_at = now;
        }
        names
    }

    /// Records the plan `name` runs (its first start only; a stored plan is kept).
    pub fn record_plan(&mut self, name: &str, plan: UpgradePlan, now: Timestamp) {
        if let Some(c) = self.cluster_mut(name)
            && c.plan.is_none()
        {
            c.plan = Some(plan);
            self.updated_at = now;
        }
    }

    /// Records how cluster `name`'s run ended.
    pub fn record_outcome(&mut self, name: &str, outcome: &ClusterOutcome, now: Timestamp) {
        let Some(c) = self.cluster_mut(name) else {
            return;
        };
        let phase = match outcome {
            ClusterOutcome::Succeeded => ClusterPhase::Succeeded,
            ClusterOutcome::Failed { message } => ClusterPhase::Failed {
                message: message.clone(),
            },
            ClusterOutcome::Skipped { reason } => ClusterPhase::Skipped {
                reason: reason.clone(),
            },
            ClusterOutcome::Interrupted => return,
        };
        c.phase = phase;
        c.finished_at = Some(now);
        self.updated_at = now;
    }

    /// Applies `decision`'s state change; whether anything changed.
    pub fn apply(&mut self, decision: &Decision, now: Timestamp) -> bool {
        let before = self.clone();
        match decision {
            Decision::Start { stage, clusters } => {
                // Starting a stage ends the previous stage's soak.
                for s in &mut self.stages {
                    if s.name == *stage {
                        break;
                    }
                    if matches!(s.phase, StagePhase::Soaking { .. }) {
                        s.phase = StagePhase::Completed;
                    }
                }
                if let Some(s) = self.stage_mut(stage) {
                    s.phase = StagePhase::Running;
                    s.started_at.get_or_insert(now);
                    for name in clusters {
                        if let Some(c) = s.clusters.get_mut(name) {
                            c.phase = ClusterPhase::Running;
                            c.attempts += 1;
                            c.started_at.get_or_insert(now);
                            c.finished_at = None;
                        }
                    }
                }
                self.phase = FleetPhase::Running;
            }
            Decision::Wait => {}
            Decision::FinishStage { stage, soak_until } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.phase = match soak_until {
                        Some(until) => StagePhase::Soaking { until: *until },
                        None => StagePhase::Completed,
                    };
                    s.finished_at = Some(now);
                }
            }
            Decision::Soak { .. } => self.phase = FleetPhase::Soaking,
            Decision::AwaitApproval { stage } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.phase = StagePhase::WaitingApproval;
                }
                self.phase = FleetPhase::WaitingApproval;
            }
            Decision::Halt {
                reason,
                failed_stage,
            } => {
                if let Some(name) = failed_stage
                    && let Some(s) = self.stage_mut(name)
                {
                    s.phase = StagePhase::Failed;
                }
                if self.halted.is_none() {
                    self.halted = Some(Halt {
                        reason: reason.clone(),
                        at: now,
                    });
                }
                self.phase = FleetPhase::Halted;
            }
            Decision::Complete => {
                for s in &mut self.stages {
                    if matches!(s.phase, StagePhase::Soaking { .. }) {
                        s.phase = StagePhase::Completed;
                    }
                }
                self.phase = FleetPhase::Completed;
            }
        }
        let changed = *self != before;
        if changed {
            self.updated_at = now;
        }
        changed
    }

    /// Clears a halt so the run can continue: failed clusters are retried (their engine
    /// journals resume them) and a stage that failed its budget runs again.
    pub fn clear_halt(&mut self, now: Timestamp) {
        self.halted = None;
        for s in &mut self.stages {
            if s.phase == StagePhase::Failed {
                s.phase = StagePhase::Running;
                s.finished_at = None;
            }
            for c in s.clusters.values_mut() {
                if c.phase.is_failed() {
                    c.phase = ClusterPhase::Pending;
                    c.finished_at = None;
                }
            }
        }
        if self.phase == FleetPhase::Halted {
            self.phase = FleetPhase::Running;
        }
        self.updated_at = now;
    }

    /// A table of every cluster: stage, group, phase, attempts, from → to.
    pub fn to_table(&self) -> String {
        let mut rows = vec![[
            "STAGE".to_string(),
            "STAGE STATE".into(),
            "GROUP".into(),
            "CLUSTER".into(),
            "STATE".into(),
            "ATTEMPTS".into(),
            "DETAIL".into(),
        ]];
        for s in &self.stages {
            for (name, c) in &s.clusters {
                let (state, detail) = match &c.phase {
                    ClusterPhase::Pending => ("pending", String::new()),
                    ClusterPhase::Running => ("running", String::new()),
                    ClusterPhase::Succeeded => ("succeeded", String::new()),
                    ClusterPhase::Failed { message } => ("failed", message.clone()),
                    ClusterPhase::Skipped { reason } => ("skipped", reason.clone()),
                };
                rows.push([
                    s.name.clone(),
                    stage_state(&s.phase),
                    c.group.clone(),
                    name.clone(),
                    state.into(),
                    c.attempts.to_string(),
                    detail,
                ]);
            }
        }
        let mut out = crate::plan::table(&rows);
        out.push_str(&format!(
            "fleet run: {:?}, target {}",
            self.phase, self.target
        ));
        if let Some(h) = &self.halted {
            out.push_str(&format!("; halted at {}: {}", h.at, h.reason));
        }
        out.push('\n');
        out
    }
}

fn stage_state(p: &StagePhase) -> String {
    match p {
        StagePhase::Pending => "pending".into(),
        StagePhase::WaitingApproval => "waiting approval".into(),
        StagePhase::Running => "running".into(),
        StagePhase::Soaking { until } => format!("soaking until {until}"),
        StagePhase::Completed => "completed".into(),
        StagePhase::Failed => "failed".into(),
    }
}

/// Stage → the clusters it holds, as `group/cluster`.
fn assignment(fleet: &Fleet) -> BTreeMap<String, Vec<String>> {
    fleet
        .stages
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.clusters.iter().map(|(c, g)| format!("{g}/{c}")).collect(),
            )
        })
        .collect()
}
