//! What every step of a run shares: the engine's parts, the plan, the journal, and the
//! tokens that stop the run (the caller's cancellation and the lock's loss).

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use kup_core::{ClusterInfo, Event, EventSink, UpgradePlan};
use tokio_util::sync::CancellationToken;

use super::Engine;
use super::journal_handle::JournalHandle;
use crate::error::{Error, Result};
use crate::lock::LockWatch;

pub(crate) struct RunContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) plan: &'a UpgradePlan,
    pub(crate) journal: JournalHandle,
    /// The engine's sink, with every event also kept for the journal's history.
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) cancel: CancellationToken,
    pub(crate) lock: LockWatch,
    /// This run's number (1 for the first run of the journal, +1 per resume).
    pub(crate) attempt: u32,
    pub(crate) started: jiff::Timestamp,
    /// The leading pre-flight step and its summary, when it passed before the run wrote
    /// anything.
    pub(crate) preflight_passed: Option<PreflightPassed>,
    /// The restore step an earlier run left unfinished, when the cluster could not be read
    /// at the start of this one (its API servers are stopped until the restore ends).
    pub(crate) restoring: Option<usize>,
}

/// The leading pre-flight step that passed before the run wrote anything: its index, its
/// summary and its findings.
pub(crate) type PreflightPassed = (usize, String, Vec<kup_core::Finding>);

impl RunContext<'_> {
    pub(crate) fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    fn stop_error(&self, at: &str) -> Error {
        if self.lock.lost().is_cancelled() {
            Error::LockLost {
                lease: self.lock.description().to_string(),
                reason: self
                    .lock
                    .reason()
                    .unwrap_or_else(|| "the lock was lost".into()),
            }
        } else {
            Error::Cancelled { at: at.to_string() }
        }
    }

    /// A safe point: stops here when the run was cancelled or lost its lock.
    pub(crate) fn checkpoint(&self, at: &str) -> Result<()> {
        if self.cancel.is_cancelled() || self.lock.lost().is_cancelled() {
            return Err(self.stop_error(at));
        }
        Ok(())
    }

    /// Runs `fut` unless the run stops first; used only around waits (drains, polls,
    /// readiness, validation), never around a change and its journal record.
    pub(crate) async fn cancellable<T>(
        &self,
        at: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.checkpoint(at)?;
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(self.stop_error(at)),
            _ = self.lock.lost().cancelled() => Err(self.stop_error(at)),
            out = fut => out,
        }
    }

    /// Sleeps unless the run stops first.
    pub(crate) async fn sleep(&self, at: &str, d: Duration) -> Result<()> {
        self.cancellable(at, async {
            tokio::time::sleep(d).await;
            Ok(())
        })
        .await
    }

    /// The cluster as the provider sees it now (transient errors retried).
    pub(crate) async fn cluster(&self) -> Result<ClusterInfo> {
        self.engine.read_cluster().await
    }
}
