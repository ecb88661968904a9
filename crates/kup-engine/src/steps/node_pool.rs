//! Node-pool steps: a pool the provider rolls (its own rolling upgrade, one operation), or a
//! pool kup rolls node by node in batches (see `crate::batch`).

use kup_core::{ClusterInfo, KubeVersion, OperationTarget, PoolManagement};

use super::{Decision, Facts, PoolFacts, Record, RuleInputs, busy, not_found, precondition};
use crate::batch::next_batch;
use crate::engine::operation::{OpRequest, OpSlot};
use crate::engine::{Engine, RunContext, StepOutcome};
use crate::error::Result;
use crate::journal::Journal;
use crate::options::parse_max_unavailable;
use crate::versions::{kubelet_not_newer, reached};

/// Whether kup rolls the pool's nodes itself (planned so, managed so, or drained ahead).
pub(super) fn kup_rolled(
    pool: &str,
    planned: PoolManagement,
    live: &PoolFacts,
    inputs: &RuleInputs<'_>,
) -> bool {
    planned == PoolManagement::Kup
        || live.management == PoolManagement::Kup
        || inputs.drain_ahead.contains(pool)
}

/// Gone → refuse; recorded operation or nodes in flight → continue; finished in the journal
/// → skip; the pool at `to` or past it → skip; `to` newer than the control plane, a pool
/// nobody can roll, a capability the provider lacks, or another operation running → refuse.
pub(super) fn rule(
    pool: &str,
    to: &KubeVersion,
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
    let by_kup = kup_rolled(pool, planned, live, inputs);
    if by_kup && record.nodes_in_flight {
        return Decision::Run;
    }
    if reached(&live.version, to) {
        return Decision::Skip(format!("node pool {pool} is already at {}", live.version));
    }
    if !kubelet_not_newer(to, &facts.control_plane) {
        return Decision::Refuse(precondition(format!(
            "node pool {pool} cannot move to {to}: the control plane is at {}, and a kubelet \
             must never be newer than the API server",
            facts.control_plane
        )));
    }
    if by_kup {
        if !inputs.caps.node_upgrade {
            return Decision::Refuse(
                kup_core::Error::not_supported(
                    inputs.provider.clone(),
                    format!("single-node upgrades (node pool {pool})"),
                )
                .into(),
            );
        }
        return Decision::Run;
    }
    if live.management == PoolManagement::External {
        return Decision::Refuse(precondition(format!(
            "node pool {pool} is not managed by {} or kup; upgrade it outside kup",
            inputs.provider
        )));
    }
    if !inputs.caps.node_pool_upgrade {
        return Decision::Refuse(
            kup_core::Error::not_supported(
                inputs.provider.clone(),
                format!("node pool upgrades (node pool {pool})"),
            )
            .into(),
        );
    }
    let target = OperationTarget::NodePool {
        pool: pool.to_string(),
    };
    busy(facts, journal, &target, Some(to)).unwrap_or(Decision::Run)
}

impl RunContext<'_> {
    pub(super) async fn run_pool(
        &self,
        index: usize,
        pool: &str,
        to: &KubeVersion,
        planned: PoolManagement,
        live: &ClusterInfo,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let Some(live_pool) = live.pool(pool).cloned() else {
            return Err(not_found("node pool", pool, &live.name));
        };
        let facts = PoolFacts {
            version: live_pool.version.clone(),
            management: live_pool.management,
            release: live_pool.release.clone(),
        };
        if kup_rolled(pool, planned, &facts, &engine.rule_inputs(self.plan)) {
            return self
                .roll_pool(
                    index,
                    &live_pool,
                    to,
                    &live.control_plane,
                    crate::versions::Direction::Forward,
                )
                .await;
        }
        let opts = engine.options.pool(pool).provider.clone();
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
            || async move { engine.provider.upgrade_node_pool(pool, to, &opts).await },
        )
        .await?;
        let after = self.cluster().await?;
        let version = after
            .pool(pool)
            .map(|p| p.version.clone())
            .ok_or_else(|| not_found("node pool", pool, &after.name))?;
        if !reached(&version, to) {
            return Err(precondition(format!(
                "the provider reported node pool {pool}'s upgrade to {to} done, but its oldest \
                 kubelet is at {version}"
            )));
        }
        Ok(StepOutcome::Done(format!("node pool {pool} at {version}")))
    }
}

/// The batches kup would take a pool's pending nodes down in: the canary alone (unless a
/// node is already upgraded), then `max_unavailable` at a time.
pub(crate) fn pool_batches(
    pending: &[String],
    already_upgraded: bool,
    budget: usize,
) -> Vec<Vec<String>> {
    let mut pending = pending.to_vec();
    let mut canary_done = already_upgraded;
    let mut batches = Vec::new();
    while !pending.is_empty() {
        let batch = next_batch(&pending, canary_done, budget);
        canary_done = true;
        pending.retain(|n| !batch.contains(n));
        batches.push(batch);
    }
    batches
}

impl Engine {
    /// What rolling `pool` would do, for a dry run: the provider's rolling upgrade, or kup's
    /// batches with every node's drain previewed. Returns details and problems.
    pub(crate) async fn preview_pool(
        &self,
        plan: &kup_core::UpgradePlan,
        live: &ClusterInfo,
        seen: &Facts,
        pool: &str,
        to: &KubeVersion,
        planned: PoolManagement,
    ) -> (Vec<String>, Vec<String>) {
        // A rollback plan moves kup-rolled pools back.
        let direction = match plan.kind {
            kup_core::PlanKind::Rollback => crate::versions::Direction::Back,
            _ => crate::versions::Direction::Forward,
        };
        let mut details = Vec::new();
        let mut problems = Vec::new();
        let (Some(live_pool), Some(facts)) = (live.pool(pool), seen.pools.get(pool)) else {
            return (details, problems);
        };
        let current = &facts.version;
        if !kup_rolled(pool, planned, facts, &self.rule_inputs(plan)) {
            details.push(format!(
                "{} would roll node pool {pool} {current} → {to}",
                self.provider.kind()
            ));
            return (details, problems);
        }
        let nodes = match self.nodes.pool_nodes(live_pool).await {
            Ok(n) => n,
            Err(e) => {
                problems.push(format!("could not list the pool's nodes: {e}"));
                return (details, problems);
            }
        };
        let budget = match &self.options.pool(pool).provider.max_unavailable {
            Some(m) => {
                parse_max_unavailable(&format!("pools.{pool}.max_unavailable"), m, nodes.len())
                    .unwrap_or_else(|e| {
                        problems.push(e.to_string());
                        1
                    })
            }
            None => 1,
        };
        let pending_nodes: Vec<_> = nodes
            .iter()
            .filter(|n| !n.kubelet.as_ref().is_some_and(|k| direction.arrived(k, to)))
            .collect();
        let pending: Vec<String> = pending_nodes.iter().map(|n| n.name.clone()).collect();
        let batches = pool_batches(&pending, nodes.len() > pending.len(), budget);
        let canary_first = nodes.len() == pending.len();
        for (i, batch) in batches.iter().enumerate() {
            details.push(format!(
                "batch {}{}: {} (cordon, drain, {} to {to}, wait Ready, uncordon, \
                 validate {} time(s))",
                i + 1,
                if i == 0 && canary_first {
                    " (canary)"
                } else {
                    ""
                },
                batch.join(", "),
                match direction {
                    crate::versions::Direction::Forward => "upgrade",
                    crate::versions::Direction::Back => "move back",
                },
                self.options.gate.passes
            ));
        }
        let drain = self.options.drain_for(pool);
        for node in pending_nodes {
            if node.cordoned {
                details.push(format!(
                    "node {} is cordoned now and would stay cordoned afterwards",
                    node.name
                ));
            }
            match self.nodes.drain_preview(&node.name, &drain).await {
                Ok(preview) => {
                    details.push(format!(
                        "node {}: would evict {} pod(s)",
                        node.name,
                        preview.pods.len()
                    ));
                    for group in &preview.refused {
                        problems.push(format!(
                            "node {}: the drain would refuse {}: {}",
                            node.name,
                            group
                                .pods
                                .iter()
                                .map(|p| format!("{}/{}", p.namespace, p.name))
                                .collect::<Vec<_>>()
                                .join(", "),
                            group.message
                        ));
                    }
                }
                Err(e) => problems.push(format!(
                    "node {}: could not preview its drain: {e}",
                    node.name
                )),
            }
        }
        (details, problems)
    }
}
