//! Backup steps: the provider takes and verifies a backup of the control plane's state
//! before the hop after it.

use kup_core::{BackupSupport, Event, KubeVersion, StepAction};

use super::{Decision, Facts, Record, RuleInputs};
use crate::engine::{RunContext, StepOutcome};
use crate::error::Result;
use crate::journal::Journal;

/// The control-plane hop a backup protects: the first control-plane step after it.
fn protected_hop(inputs: &RuleInputs<'_>, index: usize) -> Option<usize> {
    inputs
        .plan
        .steps
        .iter()
        .filter(|s| s.index > index)
        .find(|s| matches!(s.action, StepAction::ControlPlane { .. }))
        .map(|s| s.index)
}

/// Taken by this engine → skip; the control plane already past it, or the hop it protects
/// started → skip; a provider that takes no backups → refuse; else take one. A resumed run
/// in a new process takes a fresh backup: a provider trusts only backups it verified itself.
pub(super) fn rule(
    index: usize,
    control_plane: &KubeVersion,
    facts: &Facts,
    journal: &Journal,
    record: &Record<'_>,
    inputs: &RuleInputs<'_>,
) -> Decision {
    if record.state.is_done() && inputs.backups_taken.contains(&index) {
        return Decision::Skip("taken earlier in this process".into());
    }
    if facts.control_plane.minor_distance(control_plane) < 0 {
        return Decision::Skip(format!(
            "the control plane is already at {}, past {control_plane}",
            facts.control_plane
        ));
    }
    if let Some(hop) = protected_hop(inputs, index) {
        let started = journal
            .step(hop)
            .is_some_and(|s| s.state.is_done() || s.operation.is_some());
        if started {
            return Decision::Skip(format!(
                "the control-plane hop it protects (step {hop}) has started"
            ));
        }
    }
    if inputs.caps.backup != BackupSupport::Required {
        return Decision::Refuse(
            kup_core::Error::not_supported(inputs.provider.clone(), "backups").into(),
        );
    }
    Decision::Run
}

impl RunContext<'_> {
    pub(super) async fn run_backup(&self, index: usize) -> Result<StepOutcome> {
        let engine = self.engine;
        let record = engine.provider.backup(&engine.options.backup).await?;
        self.journal
            .update(|j| j.backups.push(record.clone()))
            .await?;
        engine.remember_backup(&self.plan.id, index);
        self.emit(Event::BackupVerified {
            backup: record.clone(),
        });
        Ok(StepOutcome::Done(format!(
            "backup {} at {} ({} bytes, sha256 {})",
            record.id, record.location, record.size_bytes, record.sha256
        )))
    }
}
