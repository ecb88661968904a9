//! Pools kup rolls itself: the first node alone as a canary, then batches of
//! `max_unavailable`, each node cordoned → drained → upgraded by the provider → Ready at the
//! new version → uncordoned (unless it was cordoned before), and a validation gate (N
//! consecutive passes) after every batch before the next one starts.

mod node;

use futures::future::join_all;
use kup_core::{Event, KubeVersion, NodePool};
use kup_kube::validate::Expectation;

use crate::engine::RunContext;
use crate::engine::StepOutcome;
use crate::error::{Error, Result};
use crate::journal::NodePhase;
use crate::options::parse_max_unavailable;
use crate::versions::Direction;

pub(crate) use node::NodeResult;

/// The next nodes to take down: the first pending node alone until a canary has been
/// upgraded, then up to `budget` of them, in order.
pub(crate) fn next_batch(pending: &[String], canary_done: bool, budget: usize) -> Vec<String> {
    let size = if canary_done { budget.max(1) } else { 1 };
    pending.iter().take(size).cloned().collect()
}

/// What one batch did.
#[derive(Default)]
struct BatchTally {
    upgraded: Vec<String>,
    left_cordoned: Vec<String>,
}

impl RunContext<'_> {
    /// Rolls `pool` to `to` (forward for an upgrade, back for a rollback), one batch at a
    /// time.
    pub(crate) async fn roll_pool(
        &self,
        index: usize,
        pool: &NodePool,
        to: &KubeVersion,
        control_plane: &KubeVersion,
        direction: Direction,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let opts = engine.options.pool(&pool.name).clone();
        let mut upgraded: Vec<String> = Vec::new();
        let mut left: Vec<String> = Vec::new();
        let mut first = true;
        loop {
            self.checkpoint(&format!("node pool {} between batches", pool.name))?;
            let nodes = engine.nodes.pool_nodes(pool).await?;
            let budget = match &opts.provider.max_unavailable {
                Some(m) => parse_max_unavailable(
                    &format!("pools.{}.max_unavailable", pool.name),
                    m,
                    nodes.len(),
                )?,
                None => 1,
            };
            let (in_flight, left_now): (Vec<String>, Vec<String>) = self
                .journal
                .read(|j| {
                    let ours = j.nodes.iter().filter(|r| r.pool == pool.name);
                    let mut in_flight = Vec::new();
                    let mut left_now = Vec::new();
                    for r in ours {
                        if r.phase == NodePhase::LeftCordoned && r.attempt == self.attempt {
                            left_now.push(r.node.clone());
                        } else {
                            in_flight.push(r.node.clone());
                        }
                    }
                    (in_flight, left_now)
                })
                .await;
            // Finish what an earlier run (or an interrupted batch) left in flight first.
            let batch = if !in_flight.is_empty() {
                in_flight
            } else {
                let pending: Vec<String> = nodes
                    .iter()
                    .filter(|n| !n.kubelet.as_ref().is_some_and(|k| direction.arrived(k, to)))
                    .filter(|n| !left_now.contains(&n.name))
                    .map(|n| n.name.clone())
                    .collect();
                if pending.is_empty() {
                    if first {
                        return Ok(StepOutcome::Skipped(format!(
                            "all {} node(s) of pool {} are at {to}{}",
                            nodes.len(),
                            pool.name,
                            if left_now.is_empty() {
                                String::new()
                            } else {
                                format!(" except {} (left cordoned)", left_now.join(", "))
                            }
                        )));
                    }
                    break;
                }
                let canary_done = !upgraded.is_empty()
                    || nodes
                        .iter()
                        .any(|n| n.kubelet.as_ref().is_some_and(|k| direction.arrived(k, to)));
                next_batch(&pending, canary_done, budget)
            };
            first = false;
            let tally = self
                .run_batch(index, pool, &batch, to, control_plane, direction)
                .await?;
            upgraded.extend(tally.upgraded);
            left.extend(tally.left_cordoned);
        }
        let mut message = format!(
            "{} node(s) of pool {} {} to {to}",
            upgraded.len(),
            pool.name,
            direction.moved()
        );
        if !left.is_empty() {
            message.push_str(&format!(
                "; left cordoned after stuck drains, not upgraded: {}",
                left.join(", ")
            ));
        }
        Ok(StepOutcome::Done(message))
    }

    /// Rolls the nodes of one batch side by side, then gates on validation.
    async fn run_batch(
        &self,
        index: usize,
        pool: &NodePool,
        batch: &[String],
        to: &KubeVersion,
        control_plane: &KubeVersion,
        direction: Direction,
    ) -> Result<BatchTally> {
        self.emit(Event::StepProgress {
            step: index,
            message: format!(
                "pool {}: taking down {} node(s): {}",
                pool.name,
                batch.len(),
                batch.join(", ")
            ),
        });
        let results = join_all(
            batch
                .iter()
                .map(|name| self.roll_node(index, &pool.name, name, to, control_plane, direction)),
        )
        .await;
        let mut tally = BatchTally::default();
        let mut first_error = None;
        for (name, result) in batch.iter().zip(results) {
            match result {
                Ok(NodeResult::Upgraded) => tally.upgraded.push(name.clone()),
                Ok(NodeResult::LeftCordoned) => tally.left_cordoned.push(name.clone()),
                Ok(NodeResult::Gone) => {}
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some(last) = tally.upgraded.last() {
            self.gate(index, last, control_plane).await?;
        }
        Ok(tally)
    }

    /// Validation between batches: the whole cluster healthy at the control plane's version,
    /// N consecutive passes; a failure stops the run before another node is touched.
    async fn gate(&self, index: usize, node: &str, control_plane: &KubeVersion) -> Result<()> {
        let engine = self.engine;
        let expectation = Expectation::new(control_plane.clone()).since(self.started);
        let report = self
            .cancellable(
                &format!("validation after node {node}"),
                engine
                    .validator
                    .validate(&expectation, &engine.options.gate, &*self.events),
            )
            .await?;
        if report.passed {
            return Ok(());
        }
        Err(Error::ValidationFailed {
            step: index,
            node: Some(node.to_string()),
            failures: report
                .blockers()
                .map(|f| format!("{}: {}", f.code, f.message))
                .collect(),
            timed_out: report.timed_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("w{i}")).collect()
    }

    #[test]
    fn the_canary_goes_alone_then_batches_of_the_budget() {
        assert_eq!(next_batch(&names(5), false, 3), vec!["w1"]);
        assert_eq!(next_batch(&names(5), true, 3), vec!["w1", "w2", "w3"]);
        assert_eq!(next_batch(&names(2), true, 3), vec!["w1", "w2"]);
        assert_eq!(next_batch(&names(2), true, 0), vec!["w1"]);
        assert!(next_batch(&[], true, 2).is_empty());
    }
}
