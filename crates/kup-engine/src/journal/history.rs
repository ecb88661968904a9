//! The run's history: what happened and when, kept in the journal so that a report of a
//! finished or interrupted run (`kup report`) can say when each node was upgraded, how long
//! its drain took and which PodDisruptionBudget held it up.
//!
//! It is built from the engine's own events, so it says exactly what the progress display
//! said. Pod-level events are folded into one entry per blocked pod (first and last time it
//! was refused) so the history stays small on large pools; past [`MAX_HISTORY`] entries the
//! oldest are dropped and counted.

use jiff::Timestamp;
use kup_core::{Event, Finding, Outcome, TimedEvent};
use serde::{Deserialize, Serialize};

use super::Journal;

/// Entries kept at most; older ones are dropped (and counted in `history_dropped`).
pub const MAX_HISTORY: usize = 1000;

/// History messages are cut to this many bytes; with [`MAX_HISTORY`] the history stays well
/// inside a ConfigMap journal.
const MAX_HISTORY_MESSAGE: usize = 200;

fn brief(message: String) -> String {
    super::cut(message, MAX_HISTORY_MESSAGE)
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub at: Timestamp,
    /// The run (attempt) it happened in.
    pub attempt: u32,
    /// The plan step it belongs to, when known.
    #[serde(
        rename = "during_step",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub step: Option<usize>,
    /// The node pool of the node concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// What.
    #[serde(flatten)]
    pub what: Happening,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Happening {
    /// A step began.
    StepStarted {
        /// The step.
        step: usize,
    },
    /// A step ended.
    StepFinished {
        /// The step.
        step: usize,
        /// How.
        outcome: Outcome,
        /// Details.
        message: String,
    },
    /// A provider operation started, or was re-attached to.
    OperationStarted {
        /// Its id.
        id: String,
        /// What it changes.
        description: String,
        /// True when an earlier run started it.
        reattached: bool,
    },
    /// A node was cordoned.
    NodeCordoned {
        /// The node.
        node: String,
        /// Whether it was cordoned before kup touched it.
        was_cordoned: bool,
    },
    /// A node's drain began.
    DrainStarted {
        /// The node.
        node: String,
        /// Pods to move.
        pods: usize,
    },
    /// A pod's eviction was refused by a PodDisruptionBudget from `at` until `until`.
    PodBlocked {
        /// The node.
        node: String,
        /// `namespace/name` of the pod.
        pod: String,
        /// `namespace/name` of the budget, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pdb: Option<String>,
        /// The last refusal's message.
        message: String,
        /// The last time it was refused, or the time it was finally evicted.
        until: Timestamp,
        /// Whether it was evicted in the end.
        evicted: bool,
    },
    /// A node was drained.
    NodeDrained {
        /// The node.
        node: String,
        /// Pods evicted.
        evicted: usize,
        /// Pods deleted (no-eviction mode).
        deleted: usize,
        /// How long the drain took.
        elapsed_ms: u64,
    },
    /// A node's drain ran out of time.
    DrainTimedOut {
        /// The node.
        node: String,
        /// Pods still on it.
        remaining: Vec<String>,
    },
    /// A node is Ready at its new version.
    NodeUpgraded {
        /// The node.
        node: String,
        /// The version.
        version: String,
    },
    /// A node was uncordoned.
    NodeUncordoned {
        /// The node.
        node: String,
    },
    /// A node stays cordoned.
    NodeLeftCordoned {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A backup was taken and verified.
    BackupVerified {
        /// Its id.
        id: String,
    },
    /// An add-on moved.
    AddonUpgrading {
        /// The add-on.
        name: String,
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// A validation round ended.
    ValidationRound {
        /// Its number.
        round: u32,
        /// Whether it passed.
        passed: bool,
        /// Consecutive passes so far.
        consecutive: u32,
        /// Passes required.
        required: u32,
        /// What failed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failures: Vec<String>,
    },
    /// Something worth a second look.
    Warning {
        /// The warning.
        message: String,
    },
}

/// Findings kept at most: a report lists them, the journal need not hold thousands.
pub const MAX_FINDINGS: usize = 200;

impl Happening {
    /// The node it concerns, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::NodeCordoned { node, .. }
            | Self::DrainStarted { node, .. }
            | Self::PodBlocked { node, .. }
            | Self::NodeDrained { node, .. }
            | Self::DrainTimedOut { node, .. }
            | Self::NodeUpgraded { node, .. }
            | Self::NodeUncordoned { node }
            | Self::NodeLeftCordoned { node, .. } => Some(node),
            _ => None,
        }
    }
}

impl Journal {
    /// Keeps a pre-flight's findings (blockers and warnings first when there are too many).
    pub fn set_findings(&mut self, findings: &[Finding]) {
        let mut kept: Vec<Finding> = findings.to_vec();
        kept.sort_by_key(|f| std::cmp::Reverse(f.severity));
        kept.truncate(MAX_FINDINGS);
        for f in &mut kept {
            f.message = super::short(std::mem::take(&mut f.message));
        }
        self.findings = kept;
    }

    /// Adds `event` to the history (events a report has no use for, such as progress
    /// messages and single evictions, are left out).
    pub fn record(&mut self, attempt: u32, event: &TimedEvent) {
        let at = event.at;
        let what = match &event.event {
            Event::StepStarted { step, .. } => Happening::StepStarted { step: *step },
            Event::StepFinished {
                step,
                outcome,
                message,
            } => Happening::StepFinished {
                step: *step,
                outcome: *outcome,
                message: brief(message.clone()),
            },
            Event::OperationStarted {
                operation,
                reattached,
            } => Happening::OperationStarted {
                id: operation.id.clone(),
                description: operation.to_string(),
                reattached: *reattached,
            },
            Event::NodeCordoned { node, was_cordoned } => Happening::NodeCordoned {
                node: node.clone(),
                was_cordoned: *was_cordoned,
            },
            Event::DrainStarted { node, pods } => Happening::DrainStarted {
                node: node.clone(),
                pods: *pods,
            },
            Event::PodBlocked {
                namespace,
                name,
                node,
                pdb,
                message,
                since,
            } => {
                let pod = format!("{namespace}/{name}");
                if let Some(open) = self.open_block(node, &pod) {
                    *open.1 = brief(message.clone());
                    *open.0 = at;
                    return;
                }
                self.push_history(HistoryEntry {
                    at: *since,
                    attempt,
                    step: None,
                    pool: None,
                    what: Happening::PodBlocked {
                        node: node.clone(),
                        pod,
                        pdb: pdb.as_ref().map(|p| {
                            if p.contains('/') {
                                p.clone()
                            } else {
                                format!("{namespace}/{p}")
                            }
                        }),
                        message: brief(message.clone()),
                        until: at,
                        evicted: false,
                    },
                });
                return;
            }
            Event::PodEvicted {
                namespace,
                name,
                node,
            } => {
                let pod = format!("{namespace}/{name}");
                if let Some(open) = self.open_block(node, &pod) {
                    *open.0 = at;
                    *open.2 = true;
                }
                return;
            }
            Event::NodeDrained {
                node,
                evicted,
                deleted,
                elapsed_ms,
            } => Happening::NodeDrained {
                node: node.clone(),
                evicted: *evicted,
                deleted: *deleted,
                elapsed_ms: *elapsed_ms,
            },
            Event::DrainTimedOut { node, remaining } => Happening::DrainTimedOut {
                node: node.clone(),
                remaining: remaining.clone(),
            },
            Event::NodeUpgraded { node, version } => Happening::NodeUpgraded {
                node: node.clone(),
                version: version.clone(),
            },
            Event::NodeUncordoned { node } => Happening::NodeUncordoned { node: node.clone() },
            Event::NodeLeftCordoned { node, reason } => Happening::NodeLeftCordoned {
                node: node.clone(),
                reason: brief(reason.clone()),
            },
            Event::BackupVerified { backup } => Happening::BackupVerified {
                id: backup.id.clone(),
            },
            Event::AddonUpgrading { upgrade } => Happening::AddonUpgrading {
                name: upgrade.name.clone(),
                from: upgrade.from.clone(),
                to: upgrade.to.clone(),
            },
            Event::ValidationRound {
                round,
                passed,
                consecutive,
                required,
                failures,
            } => Happening::ValidationRound {
                round: *round,
                passed: *passed,
                consecutive: *consecutive,
                required: *required,
                failures: failures.iter().take(5).cloned().map(brief).collect(),
            },
            Event::Warning { message } => Happening::Warning {
                message: brief(message.clone()),
            },
            _ => return,
        };
        self.push_history(HistoryEntry {
            at,
            attempt,
            step: None,
            pool: None,
            what,
        });
    }

    /// The step started last and not finished since, per the history.
    fn running_step(&self) -> Option<usize> {
        self.history.iter().rev().find_map(|e| match e.what {
            Happening::StepStarted { step } => Some(Some(step)),
            Happening::StepFinished { .. } => Some(None),
            _ => None,
        })?
    }

    /// The still-open block of `pod` on `node`: its `until`, message and evicted flag.
    fn open_block(
        &mut self,
        node: &str,
        pod: &str,
    ) -> Option<(&mut Timestamp, &mut String, &mut bool)> {
        self.history
            .iter_mut()
            .rev()
            .find_map(|e| match &mut e.what {
                Happening::PodBlocked {
                    node: n,
                    pod: p,
                    until,
                    message,
                    evicted,
                    ..
                } if n == node && p == pod && !*evicted => Some((until, message, evicted)),
                _ => None,
            })
    }

    /// Adds `entry`, with its step and pool: a node's from the node's record (kept while kup
    /// handles the node), anything else's from the step running at the time.
    fn push_history(&mut self, mut entry: HistoryEntry) {
        let record = entry.what.node().and_then(|n| self.node(n));
        entry.pool = record.map(|r| r.pool.clone());
        entry.step = match &entry.what {
            Happening::StepStarted { step } | Happening::StepFinished { step, .. } => Some(*step),
            _ => record.map(|r| r.step).or_else(|| self.running_step()),
        };
        self.history.push(entry);
        if self.history.len() > MAX_HISTORY {
            let over = self.history.len() - MAX_HISTORY;
            self.history.drain(..over);
            self.history_dropped += over as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn journal() -> Journal {
        Journal::new(&super::super::tests::plan(), "test")
    }

    fn at(secs: i64, event: Event) -> TimedEvent {
        TimedEvent {
            at: Timestamp::from_second(secs).unwrap(),
            event,
        }
    }

    fn blocked(secs: i64) -> TimedEvent {
        at(
            secs,
            Event::PodBlocked {
                namespace: "shop".into(),
                name: "web-1".into(),
                node: "w1".into(),
                pdb: Some("web".into()),
                message: "needs 2 healthy pods".into(),
                since: Timestamp::from_second(100).unwrap(),
            },
        )
    }

    #[test]
    fn repeated_refusals_of_one_pod_fold_into_one_block_closed_by_its_eviction() {
        let mut j = journal();
        j.record(1, &blocked(100));
        j.record(1, &blocked(130));
        j.record(
            1,
            &at(
                170,
                Event::PodEvicted {
                    namespace: "shop".into(),
                    name: "web-1".into(),
                    node: "w1".into(),
                },
            ),
        );
        assert_eq!(j.history.len(), 1);
        let HistoryEntry {
            at: start,
            what:
                Happening::PodBlocked {
                    pdb,
                    until,
                    evicted,
                    ..
                },
            ..
        } = &j.history[0]
        else {
            panic!("not a block: {:?}", j.history);
        };
        assert_eq!(start.as_second(), 100);
        assert_eq!(until.as_second(), 170);
        assert!(*evicted);
        assert_eq!(pdb.as_deref(), Some("shop/web"));
        // A later refusal of the same pod (after it came back) opens a new block.
        j.record(1, &blocked(400));
        assert_eq!(j.history.len(), 2);
    }

    #[test]
    fn a_journal_with_history_round_trips() {
        let mut j = journal();
        j.record(
            1,
            &at(
                5,
                Event::StepStarted {
                    step: 2,
                    description: "control plane".into(),
                },
            ),
        );
        j.record(1, &blocked(100));
        let back: Journal = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
        assert_eq!(
            back.history[1].step,
            Some(2),
            "the block happened during step 2"
        );
    }

    #[test]
    fn progress_is_left_out_and_the_history_is_bounded() {
        let mut j = journal();
        j.record(
            1,
            &at(
                1,
                Event::StepProgress {
                    step: 1,
                    message: "x".into(),
                },
            ),
        );
        assert!(j.history.is_empty());
        for i in 0..(MAX_HISTORY as i64 + 5) {
            j.record(
                1,
                &at(
                    i,
                    Event::NodeUncordoned {
                        node: format!("n{i}"),
                    },
                ),
            );
        }
        assert_eq!(j.history.len(), MAX_HISTORY);
        assert_eq!(j.history_dropped, 5);
        assert_eq!(j.history[0].at.as_second(), 5);
    }
}
