//! Events: what happens during a run, for progress displays, JSON lines and webhooks.

use serde::{Deserialize, Serialize};

use crate::cluster::AddonUpgrade;
use crate::finding::Finding;
use crate::operation::{Operation, OperationStatus};
use crate::provider::BackupRecord;

/// How a step or run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what it should.
    Succeeded,
    /// Nothing needed doing (already done, or dry run).
    Skipped,
    /// It failed.
    Failed,
    /// It was cancelled at a safe point.
    Cancelled,
}

/// Something that happened during planning, a drain or a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A run began.
    RunStarted {
        /// The plan's id.
        plan_id: String,
        /// The cluster.
        cluster: String,
        /// Whether anything will change.
        dry_run: bool,
    },
    /// A run ended.
    RunFinished {
        /// How.
        outcome: Outcome,
        /// A summary.
        message: String,
    },
    /// A plan step began.
    StepStarted {
        /// Its index in the plan (1-based, as shown to users).
        step: usize,
        /// What it does.
        description: String,
    },
    /// A plan step reports progress.
    StepProgress {
        /// Its index.
        step: usize,
        /// What is happening.
        message: String,
    },
    /// A plan step ended.
    StepFinished {
        /// Its index.
        step: usize,
        /// How.
        outcome: Outcome,
        /// Details.
        message: String,
    },
    /// A check produced a finding.
    Finding {
        /// The finding.
        finding: Finding,
    },
    /// A provider operation started (or was re-attached to after a resume).
    OperationStarted {
        /// The operation.
        operation: Operation,
        /// True when an earlier run started it.
        reattached: bool,
    },
    /// A provider operation was polled.
    OperationProgress {
        /// The operation's id.
        operation_id: String,
        /// Its status.
        status: OperationStatus,
    },
    /// A backup was taken and verified.
    BackupVerified {
        /// The backup.
        backup: BackupRecord,
    },
    /// An add-on is moving.
    AddonUpgrading {
        /// The change.
        upgrade: AddonUpgrade,
    },
    /// A node was cordoned.
    NodeCordoned {
        /// The node.
        node: String,
        /// True when it was cordoned before kup touched it (kup leaves it cordoned).
        was_cordoned: bool,
    },
    /// A node's drain began.
    DrainStarted {
        /// The node.
        node: String,
        /// Pods to evict or delete.
        pods: usize,
    },
    /// A pod was evicted through the eviction API.
    PodEvicted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its node.
        node: String,
    },
    /// A pod was deleted (explicit no-eviction mode only).
    PodDeleted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its node.
        node: String,
    },
    /// A pod's eviction is refused by its PodDisruptionBudget.
    PodBlocked {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its node.
        node: String,
        /// The blocking budget, when known.
        pdb: Option<String>,
        /// The budget's message (`needs 2 healthy pods and has 2 currently`).
        message: String,
        /// Since when it has been blocked.
        since: jiff::Timestamp,
    },
    /// A pod was refused by the drain's filters (it needs an explicit option).
    PodRefused {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why, in kubectl's words.
        reason: String,
    },
    /// A node's pods are all gone.
    NodeDrained {
        /// The node.
        node: String,
        /// Pods evicted.
        evicted: usize,
        /// Pods deleted.
        deleted: usize,
        /// Milliseconds the drain took.
        elapsed_ms: u64,
    },
    /// A node's drain hit its deadline.
    DrainTimedOut {
        /// The node.
        node: String,
        /// The pods still there, `namespace/name`.
        remaining: Vec<String>,
    },
    /// A node now runs the new version.
    NodeUpgraded {
        /// The node.
        node: String,
        /// Its kubelet version.
        version: String,
    },
    /// A node was uncordoned.
    NodeUncordoned {
        /// The node.
        node: String,
    },
    /// A node was left cordoned on purpose (stuck drain policy, or cordoned before the run).
    NodeLeftCordoned {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A validation round ran.
    ValidationRound {
        /// Round number.
        round: u32,
        /// Whether it passed.
        passed: bool,
        /// Consecutive passes so far.
        consecutive: u32,
        /// Passes required.
        required: u32,
        /// What failed, if anything.
        failures: Vec<String>,
    },
    /// Something worth telling the user that is not an error.
    Warning {
        /// The message.
        message: String,
    },
}

/// Receives events. Implemented for closures, so `&|e| println!("{e:?}")` is a sink.
pub trait EventSink: Send + Sync {
    /// Handles one event. Must not block for long: slow consumers should queue.
    fn emit(&self, event: Event);
}

impl<F> EventSink for F
where
    F: Fn(Event) + Send + Sync,
{
    fn emit(&self, event: Event) {
        self(event)
    }
}

/// A sink that drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}

/// An event with the time it happened, as written to JSON lines and webhooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedEvent {
    /// When it happened.
    pub at: jiff::Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn closures_are_sinks_and_events_serialise_tagged() {
        let seen = Mutex::new(Vec::new());
        let sink = |e: Event| seen.lock().unwrap().push(e);
        sink.emit(Event::NodeCordoned {
            node: "w1".into(),
            was_cordoned: false,
        });
        let events = seen.into_inner().unwrap();
        assert_eq!(events.len(), 1);
        let timed = TimedEvent {
            at: jiff::Timestamp::UNIX_EPOCH,
            event: events[0].clone(),
        };
        let json = serde_json::to_string(&timed).unwrap();
        assert_eq!(
            json,
            r#"{"at":"1970-01-01T00:00:00Z","event":"node_cordoned","node":"w1","was_cordoned":false}"#
        );
        let back: TimedEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, timed);
    }
}
