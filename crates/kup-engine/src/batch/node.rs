//! One node of a kup-rolled pool, from wherever the journal says it stands to uncordoned at
//! the new version.

use kup_core::{Event, KubeVersion, OperationTarget, StuckDrainPolicy};

use crate::engine::RunContext;
use crate::engine::operation::{OpRequest, OpSlot};
use crate::error::{Error, Result};
use crate::journal::{NodePhase, NodeRecord, short};
use crate::versions::{Direction, kubelet_not_newer};

/// How a node ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeResult {
    /// At the new version, uncordoned unless it was cordoned before.
    Upgraded,
    /// Its drain was stuck; it stays cordoned (stuck-drain policy `cordon-and-continue`).
    LeftCordoned,
    /// It no longer exists (replaced or removed).
    Gone,
}

impl RunContext<'_> {
    async fn set_phase(&self, name: &str, phase: NodePhase) -> Result<()> {
        let attempt = self.attempt;
        self.journal
            .update(|j| {
                if let Some(r) = j.node_mut(name) {
                    r.phase = phase;
                    r.attempt = attempt;
                    r.since = jiff::Timestamp::now();
                    if phase != NodePhase::LeftCordoned {
                        r.reason = None;
                    }
                }
            })
            .await
    }

    async fn forget_node(&self, index: usize, name: &str, finished: bool) -> Result<()> {
        self.journal
            .update(|j| {
                j.nodes.retain(|r| r.node != name);
                if finished && let Some(step) = j.step_mut(index) {
                    step.nodes_done += 1;
                }
            })
            .await
    }

    /// Takes one node through cordon → drain → upgrade → Ready → uncordon, starting from
    /// its journal record when an earlier run left one.
    pub(crate) async fn roll_node(
        &self,
        index: usize,
        pool: &str,
        name: &str,
        to: &KubeVersion,
        control_plane: &KubeVersion,
        direction: Direction,
    ) -> Result<NodeResult> {
        let engine = self.engine;
        let record = self.journal.read(|j| j.node(name).cloned()).await;
        let (mut phase, was_cordoned) = match record {
            None => {
                let Some(state) = engine.nodes.node(name).await? else {
                    return Ok(NodeResult::Gone);
                };
                // The record goes first: a crash after the cordon then still finds it, with
                // whether the node was cordoned before.
                self.journal
                    .update(|j| {
                        j.nodes.push(NodeRecord {
                            node: name.to_string(),
                            pool: pool.to_string(),
                            step: index,
                            to: to.clone(),
                            was_cordoned: state.cordoned,
                            phase: NodePhase::Cordoning,
                            operation: None,
                            reason: None,
                            attempt: self.attempt,
                            since: jiff::Timestamp::now(),
                        })
                    })
                    .await?;
                let already = engine.nodes.cordon(name).await?;
                let was_cordoned = state.cordoned || already;
                let attempt = self.attempt;
                self.journal
                    .update(|j| {
                        if let Some(r) = j.node_mut(name) {
                            r.phase = NodePhase::Cordoned;
                            r.was_cordoned = was_cordoned;
                            r.attempt = attempt;
                        }
                    })
                    .await?;
                self.emit(Event::NodeCordoned {
                    node: name.to_string(),
                    was_cordoned,
                });
                (NodePhase::Cordoned, was_cordoned)
            }
            Some(r) => {
                let mut phase = r.phase;
                if matches!(phase, NodePhase::Cordoning | NodePhase::LeftCordoned) {
                    if engine.nodes.node(name).await?.is_none() {
                        self.forget_node(index, name, false).await?;
                        return Ok(NodeResult::Gone);
                    }
                    // The cordon may not have been sent before the crash; what the node was
                    // before is already recorded, so the answer does not change it.
                    engine.nodes.cordon(name).await?;
                    self.set_phase(name, NodePhase::Cordoned).await?;
                    if r.phase == NodePhase::Cordoning {
                        self.emit(Event::NodeCordoned {
                            node: name.to_string(),
                            was_cordoned: r.was_cordoned,
                        });
                    }
                    phase = NodePhase::Cordoned;
                }
                (phase, r.was_cordoned)
            }
        };

        let Some(state) = engine.nodes.node(name).await? else {
            self.emit(Event::Warning {
                message: format!("node {name} disappeared while kup was upgrading it"),
            });
            self.forget_node(index, name, false).await?;
            return Ok(NodeResult::Gone);
        };
        let at_version = state
            .kubelet
            .as_ref()
            .is_some_and(|k| direction.arrived(k, to));

        if !at_version && phase == NodePhase::Cordoned {
            let drain = engine.options.drain_for(pool);
            let outcome = self
                .cancellable(
                    &format!("draining node {name}"),
                    engine.nodes.drain(name, &drain, &*self.events),
                )
                .await?;
            match outcome {
                crate::ops::DrainOutcome::Drained { .. } => {
                    self.set_phase(name, NodePhase::Drained).await?;
                    phase = NodePhase::Drained;
                }
                crate::ops::DrainOutcome::Stuck { message, .. } => {
                    match engine.options.pool(pool).on_stuck_drain {
                        StuckDrainPolicy::CordonAndContinue => {
                            let attempt = self.attempt;
                            let reason = short(message.clone());
                            self.journal
                                .update(|j| {
                                    if let Some(r) = j.node_mut(name) {
                                        r.phase = NodePhase::LeftCordoned;
                                        r.reason = Some(reason.clone());
                                        r.attempt = attempt;
                                        r.since = jiff::Timestamp::now();
                                    }
                                })
                                .await?;
                            self.emit(Event::NodeLeftCordoned {
                                node: name.to_string(),
                                reason: format!(
                                    "its drain did not finish, so it was not upgraded: {message}"
                                ),
                            });
                            return Ok(NodeResult::LeftCordoned);
                        }
                        _ => {
                            return Err(Error::DrainStuck {
                                node: name.to_string(),
                                message,
                            });
                        }
                    }
                }
            }
        }

        if !at_version && phase >= NodePhase::Drained {
            if !kubelet_not_newer(to, control_plane) {
                return Err(Error::Core(kup_core::Error::precondition(format!(
                    "node {name} cannot move to {to}: the control plane is at {control_plane}"
                ))));
            }
            // After a crash between recording the start and recording the operation, the
            // provider's running operations tell whether it was sent.
            let has_op = self
                .journal
                .read(|j| j.node(name).is_some_and(|r| r.operation.is_some()))
                .await;
            let in_progress = if phase == NodePhase::Upgrading && !has_op {
                Some(self.cluster().await?.in_progress)
            } else {
                None
            };
            if phase == NodePhase::Drained {
                self.set_phase(name, NodePhase::Upgrading).await?;
            }
            self.drive_operation(
                OpRequest {
                    slot: OpSlot::Node(name.to_string()),
                    target: OperationTarget::Node {
                        node: name.to_string(),
                    },
                    to: Some(to),
                    timeout: engine.options.timeouts.node_upgrade,
                    in_progress: in_progress.as_deref(),
                },
                || async move { engine.provider.upgrade_node(pool, name, to).await },
            )
            .await?;
        }

        if engine.nodes.node(name).await?.is_none() {
            // The provider replaced it: its successor joined on its own.
            self.emit(Event::Warning {
                message: format!("node {name} was replaced by the provider during its upgrade"),
            });
            self.forget_node(index, name, true).await?;
            return Ok(NodeResult::Upgraded);
        }
        self.cancellable(
            &format!("waiting for node {name} to be Ready at {to}"),
            engine
                .nodes
                .wait_ready(name, to, engine.options.timeouts.node_ready),
        )
        .await?;
        self.emit(Event::NodeUpgraded {
            node: name.to_string(),
            version: to.to_string(),
        });
        if was_cordoned {
            self.emit(Event::NodeLeftCordoned {
                node: name.to_string(),
                reason: "it was cordoned before the upgrade".into(),
            });
        } else if engine.nodes.uncordon(name).await? {
            self.emit(Event::NodeUncordoned {
                node: name.to_string(),
            });
        }
        self.forget_node(index, name, true).await?;
        self.emit(Event::StepProgress {
            step: index,
            message: format!("node {name} at {to}"),
        });
        Ok(NodeResult::Upgraded)
    }
}
