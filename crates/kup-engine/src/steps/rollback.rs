//! Rollback steps: a pool moved back (through the provider's rollback, or node by node where
//! kup rolls it), the control plane restored from a backup or rolled back by the provider.
//!
//! They keep the rules' invariants 1, 2 and 4 (see the parent module); invariant 3 turns
//! around: a part already *back* at the step's version, or before it, is skipped, and no
//! rollback step ever sends a version newer than the live one.

use kup_core::{
    BackupRecord, ClusterInfo, ControlPlaneRollback, KubeVersion, OperationTarget, PoolManagement,
    RollbackOption, RollbackPart,
};

use super::node_pool::kup_rolled;
use super::{Decision, Facts, Record, RuleInputs, busy, not_found, precondition};
use crate::engine::operation::{OpRequest, OpSlot};
use crate::engine::{RunContext, StepOutcome};
use crate::error::Result;
use crate::journal::Journal;
use crate::versions::{Direction, back_at, kubelet_not_newer};

fn not_supported(inputs: &RuleInputs<'_>, what: String) -> Decision {
    Decision::Refuse(kup_core::Error::not_supported(inputs.provider.clone(), what).into())
}

/// Gone → refuse; recorded operation or nodes in flight → continue; finished in the journal
/// → skip; a provider-rolled pool already back (at `to`, and at the step's release when it
/// names one the provider reports, nothing running on it) → skip; `to` below the
/// control plane's skew limit, a capability the provider lacks, or another operation running
/// → refuse. A kup-rolled pool runs: its nodes already back are skipped one by one.
pub(super) fn pool_rule(
    pool: &str,
    (to, release): (&KubeVersion, Option<&str>),
    planned: PoolManagement,
    facts: &Facts,
    journal: &Journal,
    record: &Record<'_>,
    inputs: &RuleInputs<'_>,
) -> Decision {
    let Some(live) = facts.pools.get(pool) else {
        return Decision::Refuse(not_found("node pool", pool, &facts.cluster));
    };
    if let Some(settled) = record.settled() {
        return settled;
    }
    if let Some(rule) = inputs.policy.kubelet_rule_broken(to, &facts.control_plane) {
        return Decision::Refuse(precondition(format!(
            "node pool {pool} cannot go back to {to} with the control plane at {} ({rule})",
            facts.control_plane
        )));
    }
    if kup_rolled(pool, planned, live, inputs) {
        if !inputs.caps.node_upgrade {
            return not_supported(inputs, format!("single-node rollbacks (node pool {pool})"));
        }
        return Decision::Run;
    }
    if !inputs.caps.node_pool_rollback {
        return not_supported(inputs, format!("node pool rollbacks (node pool {pool})"));
    }
    let target = OperationTarget::NodePool {
        pool: pool.to_string(),
    };
    let running = facts.in_progress.iter().any(|o| o.target == target);
    // A release rollback keeps the version: the pool is back only once it runs that release.
    let release_pending =
        matches!((release, live.release.as_deref()), (Some(want), Some(have)) if want != have);
    if back_at(&live.version, to) && !running && !release_pending {
        return Decision::Skip(format!(
            "node pool {pool} is already back at {}",
            live.version
        ));
    }
    busy(facts, journal, &target, Some(to)).unwrap_or(Decision::Run)
}

/// Recorded operation → re-attach; finished in the journal → skip; the control plane back at
/// `to` → skip; a kubelet that would be newer than it, or a capability the provider lacks →
/// refuse.
pub(super) fn control_plane_rule(
    to: &KubeVersion,
    restored_pools: &[String],
    how: ControlPlaneRollback,
    facts: &Facts,
    journal: &Journal,
    record: &Record<'_>,
    inputs: &RuleInputs<'_>,
) -> Decision {
    if let Some(settled) = record.settled() {
        return settled;
    }
    if inputs.caps.control_plane_rollback != how {
        return not_supported(
            inputs,
            match how {
                ControlPlaneRollback::RestoreBackup => "restoring the control plane".into(),
                _ => "control-plane rollbacks".into(),
            },
        );
    }
    let cp = &facts.control_plane;
    if back_at(cp, to) {
        return Decision::Skip(format!("the control plane is already back at {cp}"));
    }
    let too_new: Vec<String> = facts
        .pools
        .iter()
        .filter(|(name, _)| !restored_pools.contains(name))
        .filter(|(_, p)| !kubelet_not_newer(&p.version, to))
        .map(|(name, p)| format!("node pool {name} at {}", p.version))
        .collect();
    if !too_new.is_empty() {
        return Decision::Refuse(precondition(format!(
            "the control plane cannot go back to {to} while kubelets are newer: {}; roll those \
             pools back first",
            too_new.join(", ")
        )));
    }
    if how == ControlPlaneRollback::DuringSoak {
        return busy(facts, journal, &OperationTarget::ControlPlane, Some(to))
            .unwrap_or(Decision::Run);
    }
    Decision::Run
}

/// The option a provider-rolled step hands back to the provider: the plan's own record of
/// what the provider offered.
fn option(
    part: RollbackPart,
    to: &KubeVersion,
    release: Option<&str>,
    basis: &str,
) -> RollbackOption {
    RollbackOption {
        part,
        to: to.clone(),
        release: release.map(str::to_string),
        basis: basis.to_string(),
    }
}

/// What a pool-rollback step needs at run time.
pub(crate) struct PoolBack<'s> {
    pub(crate) pool: &'s str,
    pub(crate) to: &'s KubeVersion,
    pub(crate) management: PoolManagement,
    pub(crate) release: Option<&'s str>,
    pub(crate) basis: &'s str,
}

impl RunContext<'_> {
    pub(super) async fn run_pool_rollback(
        &self,
        index: usize,
        step: PoolBack<'_>,
        live: &ClusterInfo,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let PoolBack {
            pool,
            to,
            management,
            release,
            basis,
        } = step;
        let Some(live_pool) = live.pool(pool).cloned() else {
            return Err(not_found("node pool", pool, &live.name));
        };
        let facts = super::PoolFacts {
            version: live_pool.version.clone(),
            management: live_pool.management,
            release: live_pool.release.clone(),
        };
        if kup_rolled(pool, management, &facts, &engine.rule_inputs(self.plan)) {
            return self
                .roll_pool(index, &live_pool, to, &live.control_plane, Direction::Back)
                .await;
        }
        let opts = engine.options.pool(pool).provider.clone();
        let choice = option(RollbackPart::pool(pool), to, release, basis);
        let choice = &choice;
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::NodePool {
                    pool: pool.to_string(),
                },
                to: Some(to),
                timeout: engine.options.timeouts.node_pool,
                in_progress: Some(&live.in_progress),
            },
            || async move {
                engine
                    .provider
                    .rollback_node_pool(pool, choice, &opts)
                    .await
            },
        )
        .await?;
        let after = self.cluster().await?;
        let (version, now) = after
            .pool(pool)
            .map(|p| (p.version.clone(), p.release.clone()))
            .ok_or_else(|| not_found("node pool", pool, &after.name))?;
        if !version.same_minor(to) || !back_at(&version, to) {
            return Err(precondition(format!(
                "the provider reported node pool {pool}'s rollback to {to} done, but its oldest \
                 kubelet is at {version}"
            )));
        }
        if let (Some(want), Some(have)) = (release, now.as_deref())
            && want != have
        {
            return Err(precondition(format!(
                "the provider reported node pool {pool}'s rollback to {want} done, but it runs \
                 {have}"
            )));
        }
        Ok(StepOutcome::Done(match release {
            Some(r) => format!("node pool {pool} back at {version} ({r})"),
            None => format!("node pool {pool} back at {version}"),
        }))
    }

    pub(super) async fn run_restore(
        &self,
        index: usize,
        to: &KubeVersion,
        backup: &BackupRecord,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        // No checkpoint inside: a restore stopped half-way leaves the control plane down, so
        // once started it runs to its end (a crash is resumed by running it again).
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::Restore,
                to: Some(to),
                timeout: engine.options.timeouts.control_plane,
                in_progress: None,
            },
            || async move { engine.provider.restore(backup).await },
        )
        .await?;
        self.control_plane_back(to, &format!("restored from backup {}", backup.id))
            .await
    }

    pub(super) async fn run_control_plane_rollback(
        &self,
        index: usize,
        to: &KubeVersion,
        basis: &str,
        live: &ClusterInfo,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let choice = option(RollbackPart::ControlPlane, to, None, basis);
        let choice = &choice;
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::ControlPlane,
                to: Some(to),
                timeout: engine.options.timeouts.control_plane,
                in_progress: Some(&live.in_progress),
            },
            || async move { engine.provider.rollback_control_plane(choice).await },
        )
        .await?;
        self.control_plane_back(to, "rolled back by the provider")
            .await
    }

    async fn control_plane_back(&self, to: &KubeVersion, how: &str) -> Result<StepOutcome> {
        let after = self.cluster().await?;
        if !after.control_plane.same_minor(to) || !back_at(&after.control_plane, to) {
            return Err(precondition(format!(
                "the control plane was {how}, but it reports {}, not {to}",
                after.control_plane
            )));
        }
        Ok(StepOutcome::Done(format!(
            "control plane back at {} ({how})",
            after.control_plane
        )))
    }
}
