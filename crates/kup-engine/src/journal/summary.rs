//! A journal as a status report (`kup status`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Journal, NodePhase, RunState, StepState};

/// What a journal says, briefly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalSummary {
    /// The plan's id.
    pub plan_id: String,
    /// The cluster.
    pub cluster: String,
    /// The run's state.
    pub state: RunState,
    /// Steps finished (succeeded or skipped).
    pub steps_done: usize,
    /// Steps in the plan.
    pub steps_total: usize,
    /// The first step not finished, with its description.
    pub current_step: Option<(usize, String)>,
    /// Provider operations in flight (`step n: operation`, `node x: operation`).
    pub operations_in_flight: Vec<String>,
    /// Nodes kup cordoned and has not finished with, with their phase.
    pub nodes_cordoned: Vec<String>,
    /// Nodes left cordoned on purpose, with the reason.
    pub nodes_left_cordoned: Vec<String>,
    /// Backups taken (`id at location`).
    pub backups: Vec<String>,
}

impl Journal {
    /// A brief account of the journal.
    pub fn summary(&self) -> JournalSummary {
        let mut operations_in_flight: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| {
                s.operation
                    .as_ref()
                    .map(|op| format!("step {}: {op}", s.index))
            })
            .collect();
        operations_in_flight.extend(self.nodes.iter().filter_map(|n| {
            n.operation
                .as_ref()
                .map(|op| format!("node {}: {op}", n.node))
        }));
        JournalSummary {
            plan_id: self.plan_id.clone(),
            cluster: self.cluster.clone(),
            state: self.state.clone(),
            steps_done: self.steps.iter().filter(|s| s.state.is_done()).count(),
            steps_total: self.steps.len(),
            current_step: self
                .steps
                .iter()
                .find(|s| !s.state.is_done())
                .map(|s| (s.index, s.description.clone())),
            operations_in_flight,
            nodes_cordoned: self
                .nodes
                .iter()
                .filter(|n| n.phase != NodePhase::LeftCordoned)
                .map(|n| {
                    format!(
                        "{} (pool {}, {:?}{})",
                        n.node,
                        n.pool,
                        n.phase,
                        if n.was_cordoned {
                            ", cordoned before the upgrade"
                        } else {
                            ""
                        }
                    )
                })
                .collect(),
            nodes_left_cordoned: self
                .left_cordoned()
                .map(|n| {
                    format!(
                        "{} (pool {}): {}",
                        n.node,
                        n.pool,
                        n.reason.as_deref().unwrap_or("left cordoned")
                    )
                })
                .collect(),
            backups: self
                .backups
                .iter()
                .map(|b| format!("{} at {}", b.id, b.location))
                .collect(),
        }
    }

    /// The journal as a plain-text table, one line per step.
    pub fn to_table(&self) -> String {
        let summary = self.summary();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan {} for cluster {}: {} ({}/{} steps done, attempt {})",
            self.plan_id,
            self.cluster,
            self.state,
            summary.steps_done,
            summary.steps_total,
            self.attempts
        );
        for step in &self.steps {
            let state = match step.state {
                StepState::Pending => "pending",
                StepState::Running => "running",
                StepState::Succeeded => "done",
                StepState::Skipped => "skipped",
                StepState::Failed => "FAILED",
            };
            let _ = write!(
                out,
                "  {:>3}  {:<8} {}",
                step.index, state, step.description
            );
            if let Some(message) = &step.message {
                let _ = write!(out, " — {message}");
            }
            out.push('\n');
        }
        for (title, lines) in [
            ("operations in flight", &summary.operations_in_flight),
            ("nodes cordoned by kup", &summary.nodes_cordoned),
            ("nodes left cordoned", &summary.nodes_left_cordoned),
            ("backups", &summary.backups),
        ] {
            if !lines.is_empty() {
                let _ = writeln!(out, "{title}:");
                for line in lines {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kup_core::{Operation, OperationTarget, ProviderKind};

    use super::*;
    use crate::journal::NodeRecord;
    use crate::journal::tests::{plan, v};

    #[test]
    fn summary_names_the_current_step_operations_and_nodes() {
        let mut j = Journal::new(&plan(), "h");
        j.step_mut(1).unwrap().state = StepState::Succeeded;
        j.step_mut(2).unwrap().state = StepState::Running;
        j.step_mut(2).unwrap().operation = Some(Operation::new(
            ProviderKind::Eks,
            "u-1",
            OperationTarget::ControlPlane,
        ));
        j.nodes.push(NodeRecord {
            node: "w2".into(),
            pool: "workers".into(),
            step: 2,
            to: v("1.32.3"),
            was_cordoned: false,
            phase: NodePhase::LeftCordoned,
            operation: None,
            reason: Some("drain stuck on shop/web-1".into()),
            attempt: 1,
            since: jiff::Timestamp::UNIX_EPOCH,
        });
        let s = j.summary();
        assert_eq!(s.steps_done, 1);
        assert_eq!(s.current_step.as_ref().map(|c| c.0), Some(2));
        assert_eq!(s.operations_in_flight.len(), 1);
        assert!(s.operations_in_flight[0].contains("u-1"));
        assert_eq!(
            s.nodes_left_cordoned,
            vec!["w2 (pool workers): drain stuck on shop/web-1"]
        );
        let table = j.to_table();
        assert!(table.contains("running"), "{table}");
        assert!(table.contains("nodes left cordoned"), "{table}");
    }
}
