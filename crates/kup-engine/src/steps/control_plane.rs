//! Control-plane steps: one hop of at most one minor, through the provider's operation.

use kup_core::{ClusterInfo, KubeVersion, OperationTarget};

use super::{Decision, Facts, Record, RuleInputs, busy, precondition};
use crate::engine::operation::{OpRequest, OpSlot};
use crate::engine::{RunContext, StepOutcome};
use crate::error::Result;
use crate::journal::Journal;
use crate::versions::reached;

/// Recorded operation → re-attach; finished in the journal → skip; the control plane at `to`
/// or past it → skip; behind the hop's start, or a pool that would fall out of skew, or
/// another operation running → refuse.
pub(super) fn rule(
    from: &KubeVersion,
    to: &KubeVersion,
    facts: &Facts,
    journal: &Journal,
    record: &Record<'_>,
    inputs: &RuleInputs<'_>,
) -> Decision {
    if let Some(settled) = record.settled() {
        return settled;
    }
    let cp = &facts.control_plane;
    if reached(cp, to) {
        return Decision::Skip(format!("the control plane is already at {cp}"));
    }
    if cp.minor_distance(from) > 0 {
        return Decision::Refuse(precondition(format!(
            "the control plane is at {cp}, behind this hop's start {from}; was it restored? \
             Make a new plan"
        )));
    }
    let out_of_skew: Vec<String> = facts
        .pools
        .iter()
        .filter_map(|(name, p)| {
            inputs
                .policy
                .kubelet_rule_broken(&p.version, to)
                .map(|rule| format!("node pool {name} at {} ({rule})", p.version))
        })
        .collect();
    if !out_of_skew.is_empty() {
        return Decision::Refuse(precondition(format!(
            "moving the control plane to {to} would leave kubelets out of skew: {}; upgrade \
             those nodes first (nodes left cordoned by a stuck drain count too)",
            out_of_skew.join(", ")
        )));
    }
    busy(facts, journal, &OperationTarget::ControlPlane, Some(to)).unwrap_or(Decision::Run)
}

impl RunContext<'_> {
    pub(super) async fn run_control_plane(
        &self,
        index: usize,
        to: &KubeVersion,
        live: &ClusterInfo,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let opts = engine.options.control_plane.clone();
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::ControlPlane,
                to: Some(to),
                timeout: engine.options.timeouts.control_plane,
                in_progress: Some(&live.in_progress),
            },
            || async move { engine.provider.upgrade_control_plane(to, &opts).await },
        )
        .await?;
        let after = self.cluster().await?;
        if !reached(&after.control_plane, to) {
            return Err(precondition(format!(
                "the provider reported the control-plane upgrade to {to} done, but the control \
                 plane reports {}",
                after.control_plane
            )));
        }
        Ok(StepOutcome::Done(format!(
            "control plane at {}",
            after.control_plane
        )))
    }
}
