//! Validation steps: nodes Ready at the expected versions, system pods, `/readyz`,
//! workloads, N consecutive passes.

use std::collections::BTreeMap;

use kup_core::{ClusterInfo, KubeVersion, PlanKind};
use kup_kube::validate::Expectation;

use super::{Decision, Facts, Record};
use crate::engine::{RunContext, StepOutcome};
use crate::error::{Error, Result};
use crate::journal::StepState;

/// Passed in an earlier run → skip; the control plane already past this check → skip.
pub(super) fn rule(control_plane: &KubeVersion, facts: &Facts, record: &Record<'_>) -> Decision {
    if record.state == StepState::Succeeded {
        return Decision::Skip("passed in an earlier run".into());
    }
    if facts.control_plane.minor_distance(control_plane) < 0 {
        return Decision::Skip(format!(
            "the control plane is already at {}, past this check",
            facts.control_plane
        ));
    }
    Decision::Run
}

/// What this step expects of the cluster as it is: pools already past the step's version
/// are held to where they are.
pub(crate) fn expectation(
    control_plane: &KubeVersion,
    pools: &BTreeMap<String, KubeVersion>,
    live: &ClusterInfo,
    kind: PlanKind,
) -> Result<Expectation> {
    let expected: BTreeMap<String, KubeVersion> = pools
        .iter()
        .map(|(name, want)| {
            let have = live.pool(name).map(|p| &p.version);
            let want = match have {
                // An upgrade accepts a pool already past its plan; a rollback wants it back.
                Some(have) if kind == PlanKind::Upgrade && have.minor_distance(want) < 0 => {
                    have.to_minor()
                }
                _ => want.clone(),
            };
            (name.clone(), want)
        })
        .collect();
    Ok(Expectation::from_step(
        control_plane,
        &expected,
        &live.node_pools,
    )?)
}

impl RunContext<'_> {
    pub(super) async fn run_validate(
        &self,
        index: usize,
        control_plane: &KubeVersion,
        pools: &BTreeMap<String, KubeVersion>,
        live: &ClusterInfo,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let mut expectation =
            expectation(control_plane, pools, live, self.plan.kind)?.since(self.started);
        let left: Vec<(String, String)> = self
            .journal
            .read(|j| {
                j.left_cordoned()
                    .map(|n| (n.pool.clone(), n.node.clone()))
                    .collect()
            })
            .await;
        for pool in expectation.pools.iter_mut() {
            let skipped: Vec<&String> = left
                .iter()
                .filter(|(p, _)| *p == pool.name)
                .map(|(_, n)| n)
                .collect();
            if skipped.is_empty() {
                continue;
            }
            // Nodes left cordoned by a stuck drain were not upgraded: they are reported, not
            // validated against the pool's new version.
            let Some(live_pool) = live.pool(&pool.name) else {
                continue;
            };
            let members = engine.nodes.pool_nodes(live_pool).await?;
            pool.nodes = members
                .into_iter()
                .map(|n| n.name)
                .filter(|n| !skipped.contains(&n))
                .collect();
            pool.node_selector = None;
        }
        let report = self
            .cancellable(
                "validation",
                engine
                    .validator
                    .validate(&expectation, &engine.options.validation, &*self.events),
            )
            .await?;
        if !report.passed {
            return Err(Error::ValidationFailed {
                step: index,
                node: None,
                failures: report
                    .blockers()
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .collect(),
                timed_out: report.timed_out,
            });
        }
        let mut message = format!(
            "{} consecutive passes in {} round(s)",
            report.consecutive, report.rounds
        );
        if !left.is_empty() {
            message.push_str(&format!(
                "; not upgraded, left cordoned: {}",
                left.iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(StepOutcome::Done(message))
    }
}
