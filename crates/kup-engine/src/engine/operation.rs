//! Provider operations: start one (or re-attach to the one already running), record it, and
//! poll it with the shared backoff until it ends or its step's time limit passes.

use std::future::Future;
use std::time::Duration;

use kup_core::{Event, KubeVersion, Operation, OperationTarget};
use tokio::time::Instant;

use super::context::RunContext;
use crate::error::{Error, Result, core_transient};

/// Where an operation is recorded in the journal.
#[derive(Clone, Debug)]
pub(crate) enum OpSlot {
    /// A plan step's operation (control plane, pool, add-on).
    Step(usize),
    /// A node's upgrade.
    Node(String),
}

/// Whether a running operation does what `req` asks (same target, same version).
fn same_work(op: &Operation, req: &OpRequest<'_>) -> bool {
    op.target == req.target && version_agrees(op, req.to)
}

/// The running operation that keeps kup from starting work on `target`: one on another
/// target (node upgrades of one batch run side by side), unless `known` says this plan's runs
/// started it. One doing the same work is not blocking: a run adopts it.
pub(crate) fn blocking<'o>(
    in_progress: &'o [Operation],
    target: &OperationTarget,
    to: Option<&KubeVersion>,
    known: impl Fn(&Operation) -> bool,
) -> Option<&'o Operation> {
    if in_progress
        .iter()
        .any(|o| o.target == *target && version_agrees(o, to))
    {
        return None;
    }
    // Node upgrades of one batch run side by side.
    let side_by_side = |o: &Operation| {
        matches!(target, OperationTarget::Node { .. })
            && matches!(o.target, OperationTarget::Node { .. })
    };
    in_progress.iter().find(|o| !known(o) && !side_by_side(o))
}

fn version_agrees(op: &Operation, to: Option<&KubeVersion>) -> bool {
    op.to_version
        .as_deref()
        .and_then(|v| KubeVersion::parse(v).ok())
        .zip(to)
        .is_none_or(|(v, to)| v.matches(to) || to.matches(&v))
}

/// An operation to drive.
pub(crate) struct OpRequest<'s> {
    pub(crate) slot: OpSlot,
    pub(crate) target: OperationTarget,
    /// The Kubernetes version it moves the target to (`None` for add-ons, whose versions
    /// are their own).
    pub(crate) to: Option<&'s KubeVersion>,
    pub(crate) timeout: Duration,
    /// Operations the provider reports as running, when the caller just read them; they are
    /// adopted when they target the same thing, and block the start otherwise.
    pub(crate) in_progress: Option<&'s [Operation]>,
}

impl RunContext<'_> {
    async fn recorded_operation(&self, slot: &OpSlot) -> Option<Operation> {
        self.journal
            .read(|j| match slot {
                OpSlot::Step(i) => j.step(*i).and_then(|s| s.operation.clone()),
                OpSlot::Node(n) => j.node(n).and_then(|r| r.operation.clone()),
            })
            .await
    }

    async fn record_operation(&self, slot: &OpSlot, op: Option<Operation>) -> Result<()> {
        self.journal
            .update(|j| match slot {
                OpSlot::Step(i) => {
                    if let Some(s) = j.step_mut(*i) {
                        s.operation = op;
                    }
                }
                OpSlot::Node(n) => {
                    if let Some(r) = j.node_mut(n) {
                        r.operation = op;
                    }
                }
            })
            .await
    }

    /// Re-attaches to the recorded or running operation on `req.target`, or starts one with
    /// `start`, records it, and polls it to the end.
    pub(crate) async fn drive_operation<F, Fut>(&self, req: OpRequest<'_>, start: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = kup_core::Result<Operation>>,
    {
        let (op, reattached) = if let Some(op) = self.recorded_operation(&req.slot).await {
            (op, true)
        } else if let Some(op) = req
            .in_progress
            .and_then(|ops| ops.iter().find(|o| same_work(o, &req)))
        {
            // Started by an earlier run that died before recording it.
            self.record_operation(&req.slot, Some(op.clone())).await?;
            (op.clone(), true)
        } else {
            let blocking = req
                .in_progress
                .and_then(|ops| blocking(ops, &req.target, req.to, |_| false));
            if let Some(other) = blocking {
                return Err(kup_core::Error::Busy {
                    message: format!(
                        "{other} is in progress; kup sends nothing for the {} until it ends",
                        req.target
                    ),
                    operation: Some(other.id.clone()),
                }
                .into());
            }
            // Not cancellable between the start and its record: a cancelled run must not
            // leave an operation the journal does not know.
            let op = start().await?;
            self.record_operation(&req.slot, Some(op.clone())).await?;
            (op, false)
        };
        self.emit(Event::OperationStarted {
            operation: op.clone(),
            reattached,
        });
        let result = self.poll_until_done(&op, &req.slot, req.timeout).await;
        match &result {
            // Ended one way or the other: nothing to re-attach to any more.
            Ok(()) | Err(Error::Core(kup_core::Error::OperationFailed { .. })) => {
                self.record_operation(&req.slot, None).await?;
            }
            _ => {}
        }
        result
    }

    /// Polls `op` until it ends; a failed or cancelled operation is the provider's own error
    /// list ([`kup_core::OperationStatus::into_result`]).
    pub(crate) async fn poll_until_done(
        &self,
        op: &Operation,
        slot: &OpSlot,
        timeout: Duration,
    ) -> Result<()> {
        let policy = &self.engine.options.polling;
        let deadline = Instant::now() + timeout;
        let mut backoff = policy.start();
        let mut failures = 0u32;
        let mut last = String::new();
        let what = format!("waiting for {op}");
        loop {
            let polled = self
                .cancellable(&what, async { Ok(self.engine.provider.poll(op).await) })
                .await?;
            match polled {
                Ok(status) => {
                    failures = 0;
                    let text = status.to_string();
                    if text != last {
                        // A step's progress (a kubeadm hop's `cp-2: draining (1/3 …)`) is kept
                        // in its journal record, so `kup status` shows where it stands.
                        if let (OpSlot::Step(i), false) = (slot, status.is_terminal()) {
                            let message = crate::journal::short(text.clone());
                            self.journal
                                .update(|j| {
                                    if let Some(s) = j.step_mut(*i) {
                                        s.message = Some(message);
                                    }
                                })
                                .await?;
                        }
                        last = text;
                        self.emit(Event::OperationProgress {
                            operation_id: op.id.clone(),
                            status: status.clone(),
                        });
                    }
                    if status.is_terminal() {
                        return status.into_result(op).map(|_| ()).map_err(Into::into);
                    }
                }
                Err(e) if core_transient(&e) && failures < policy.max_retries => {
                    failures += 1;
                    tracing::debug!(operation = %op, error = %e, "polling failed; retrying");
                }
                Err(e) => return Err(e.into()),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(kup_core::Error::Timeout {
                    what: format!(
                        "{op} to finish (last status: {}); it may still be running, and a \
                         resume polls it again",
                        if last.is_empty() { "unknown" } else { &last }
                    ),
                    after: timeout,
                }
                .into());
            }
            self.sleep(&what, backoff.next_delay().min(deadline - now))
                .await?;
        }
    }
}
