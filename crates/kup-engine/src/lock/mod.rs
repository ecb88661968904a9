//! The cluster lock: one run per cluster at a time.
//!
//! [`LeaseLock`] keeps a `coordination.k8s.io/v1` Lease in the cluster, renewed in the
//! background while the run goes on and taken over from another holder only after it
//! expired; [`FileLock`] is a lock file on the machine running kup, for runs that cannot
//! depend on the cluster's API (restores); [`LocalLock`] is a process-local lock for embedders that coordinate runs
//! themselves, and for tests.

mod file;
mod lease;
mod local;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use file::FileLock;
pub use lease::{LeaseLock, LeaseSettings, default_holder};
pub use local::LocalLock;

use crate::error::Result;

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The holder's identity.
    pub holder: String,
    /// When it expires unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<jiff::Timestamp>,
    /// Whether it has expired (another run may take it over).
    pub expired: bool,
}

/// A lock on one cluster.
#[async_trait]
pub trait ClusterLock: Send + Sync + std::fmt::Debug {
    /// Takes the lock, or fails at once with [`crate::Error::LockHeld`] naming the holder.
    async fn acquire(&self) -> Result<LockGuard>;

    /// Who holds it now, changing nothing (dry runs).
    async fn holder(&self) -> Result<Option<LockInfo>>;

    /// The error [`ClusterLock::acquire`] answers while `info`'s holder has the lock; a run
    /// checks [`ClusterLock::holder`] first so that a refused run writes nothing at all.
    fn held_error(&self, cluster: &str, info: LockInfo) -> crate::Error {
        crate::Error::LockHeld {
            cluster: cluster.to_string(),
            holder: info.holder,
            lease: self.describe(),
            expires_at: info.expires_at,
        }
    }

    /// What the lock is (`lease kube-system/kup-upgrade-prod`).
    fn describe(&self) -> String;

    /// The identity this lock writes as holder.
    fn identity(&self) -> &str;

    /// Whether the lock is kept in the cluster's own API (a Lease), so that a restore of the
    /// cluster's state would rewind it and a stopped API server would lose it.
    fn in_cluster(&self) -> bool {
        false
    }
}

type Release = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A held lock. Dropping it stops the renewal without releasing (a crashed run's lock stays
/// until it expires); [`LockGuard::release`] gives it back.
pub struct LockGuard {
    lost: CancellationToken,
    lost_reason: Arc<Mutex<Option<String>>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    release: Option<Release>,
    description: String,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.description)
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// A guard for a lock implementation: `renewer` keeps it alive (aborted when the guard
    /// goes), `release` gives it back, `lost` is cancelled (with [`LockGuard::set_lost`]'s
    /// reason) when the lock is lost.
    pub fn new(
        description: impl Into<String>,
        lost: CancellationToken,
        lost_reason: Arc<Mutex<Option<String>>>,
        renewer: Option<tokio::task::JoinHandle<()>>,
        release: impl Future<Output = Result<()>> + Send + 'static,
    ) -> Self {
        Self {
            lost,
            lost_reason,
            renewer,
            release: Some(Box::pin(release)),
            description: description.into(),
        }
    }

    /// Cancelled when the lock is lost (taken over, deleted, not renewable in time).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Why it was lost, once it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the lock is.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// A handle that tells whether (and why) the lock was lost, without the guard.
    pub fn watch(&self) -> LockWatch {
        LockWatch {
            lost: self.lost.clone(),
            reason: self.lost_reason.clone(),
            description: self.description.clone(),
        }
    }

    /// Stops renewing and gives the lock back.
    pub async fn release(mut self) -> Result<()> {
        if let Some(task) = self.renewer.take() {
            task.abort();
        }
        match self.release.take() {
            Some(release) => release.await,
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(task) = self.renewer.take() {
            task.abort();
        }
    }
}

/// Tells whether a held lock was lost, and why.
#[derive(Clone, Debug)]
pub struct LockWatch {
    lost: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    description: String,
}

impl LockWatch {
    /// Cancelled when the lock is lost.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Why it was lost, once it was.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the lock is.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// Marks a lock lost with a reason.
pub(crate) fn set_lost(token: &CancellationToken, reason: &Mutex<Option<String>>, why: String) {
    *reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    token.cancel();
}
