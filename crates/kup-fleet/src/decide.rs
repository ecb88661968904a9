//! The wave decision: given the fleet, the run so far, the controls and the time, what
//! happens next. Pure: the runner applies the decision ([`crate::FleetRun::apply`]) and acts.
//!
//! Stage gate: a stage starts only when every cluster of the stage before finished, that
//! stage's failures are within its budget, its soak elapsed and, when the stage needs
//! approval, it is approved. Within a stage at most `maxConcurrency` clusters run at once, and
//! once its failures exceed the budget no further cluster starts and the fleet run halts.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::controls::ControlState;
use crate::run_state::{ClusterPhase, FleetRun, StagePhase};
use crate::spec::Fleet;

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum Decision {
    /// Start these clusters of `stage` now (starting the stage if it has not started).
    Start {
        /// The stage.
        stage: String,
        /// The clusters, in upgrade order.
        clusters: Vec<String>,
    },
    /// Clusters are running and no more may start: wait for one to finish.
    Wait,
    /// Every cluster of `stage` finished within budget: it completes (and soaks until
    /// `soak_until` when set).
    FinishStage {
        /// The stage.
        stage: String,
        /// The end of its soak.
        soak_until: Option<Timestamp>,
    },
    /// `stage` completed and soaks until `until`; the next stage waits.
    Soak {
        /// The soaking stage.
        stage: String,
        /// Its end.
        until: Timestamp,
    },
    /// `stage` needs approval before it starts.
    AwaitApproval {
        /// The stage.
        stage: String,
    },
    /// Stop starting clusters; the run halts once the running ones finished.
    Halt {
        /// Why.
        reason: String,
        /// The stage whose error budget was exceeded, if that is why.
        failed_stage: Option<String>,
    },
    /// Every stage completed.
    Complete,
}

/// Decides what happens next in `run` of `fleet`.
pub fn decide(fleet: &Fleet, run: &FleetRun, controls: &ControlState, now: Timestamp) -> Decision {
    if let Some(h) = &run.halted {
        return Decision::Halt {
            reason: h.reason.clone(),
            failed_stage: None,
        };
    }
    if let Some(req) = &controls.halt {
        return Decision::Halt {
            reason: req.describe(),
            failed_stage: None,
        };
    }
    let last = fleet.stages.len().saturating_sub(1);
    for (i, stage) in fleet.stages.iter().enumerate() {
        let Some(sr) = run.stage(&stage.name) else {
            continue;
        };
        match &sr.phase {
            StagePhase::Completed => continue,
            StagePhase::Soaking { until } => {
                if now < *until {
                    return Decision::Soak {
                        stage: stage.name.clone(),
                        until: *until,
                    };
                }
                continue;
            }
            StagePhase::Pending
            | StagePhase::WaitingApproval
            | StagePhase::Running
            | StagePhase::Failed => {}
        }
        let failed: Vec<&String> = stage
            .clusters
            .iter()
            .filter(|(c, _)| sr.clusters.get(c).is_some_and(|r| r.phase.is_failed()))
            .map(|(c, _)| c)
            .collect();
        let total = stage.clusters.len();
        if stage.error_budget.exceeded(failed.len(), total) {
            return Decision::Halt {
                reason: format!(
                    "stage {}: {} of {total} clusters failed ({}), over its error budget ({})",
                    stage.name,
                    failed.len(),
                    failed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    stage.error_budget.describe()
                ),
                failed_stage: Some(stage.name.clone()),
            };
        }
        let started = sr.phase == StagePhase::Running;
        if !started && stage.approval && !controls.approvals.contains_key(&stage.name) {
            return Decision::AwaitApproval {
                stage: stage.name.clone(),
            };
        }
        let phase_of = |c: &str| sr.clusters.get(c).map(|r| &r.phase);
        let running = stage
            .clusters
            .iter()
            .filter(|(c, _)| phase_of(c) == Some(&ClusterPhase::Running))
            .count();
        let pending: Vec<String> = stage
            .clusters
            .iter()
            .filter(|(c, _)| matches!(phase_of(c), None | Some(ClusterPhase::Pending)))
            .map(|(c, _)| c.clone())
            .collect();
        if pending.is_empty() && running == 0 {
            let soak_until = if i == last {
                None
            } else {
                stage.soak.map(|d| {
                    let d =
                        SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                    now.checked_add(d).unwrap_or(Timestamp::MAX)
                })
            };
            return Decision::FinishStage {
                stage: stage.name.clone(),
                soak_until,
            };
        }
        let slots = stage.max_concurrency.saturating_sub(running);
        if slots > 0 && !pending.is_empty() {
            return Decision::Start {
                stage: stage.name.clone(),
                clusters: pending.into_iter().take(slots).collect(),
            };
        }
        return Decision::Wait;
    }
    Decision::Complete
}
