//! [`LeaseLock`]: a `coordination.k8s.io/v1` Lease per cluster.
//!
//! Every write carries the resourceVersion just read, so when two runs race for the same
//! lease one of them gets a 409 Conflict: it reads the lease again and finds it held by the
//! winner. A lease held by someone else is taken over only once `renewTime +
//! leaseDurationSeconds` has passed (kured's and client-go's leader election rule).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ClusterLock, LockGuard, LockInfo, set_lost};
use kup_kube::kube_error::{self, KubeErrorKind};
use kup_kube::retry::{retry, retry_until};

use crate::backoff::{BackoffPolicy, random_hex};
use crate::error::{Error, Result};
use crate::names::{label_value, object_name};

/// Attempts at taking a lease that keeps changing under us. These are not blind retries:
/// each 409 is answered by reading the lease again and deciding afresh.
const MAX_ATTEMPTS: u32 = 5;

/// Lease writes need no options; one value outlives every retried call.
const POST: PostParams = PostParams {
    dry_run: false,
    field_manager: None,
};

/// The classifier's kind of a failed call.
fn kind(e: &kube::Error) -> KubeErrorKind {
    kube_error::classify(e).kind
}

/// A create or replace lost a race with another writer (409 AlreadyExists or Conflict).
fn lost_race(e: &kube::Error) -> bool {
    matches!(
        kind(e),
        KubeErrorKind::Conflict | KubeErrorKind::AlreadyExists
    )
}

/// Where the lease lives and how long it lasts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseSettings {
    /// The lease's namespace.
    pub namespace: String,
    /// How long the lease lasts without renewal (`leaseDurationSeconds`, whole seconds, at
    /// least 1).
    #[serde(with = "crate::serde_secs")]
    pub duration: Duration,
    /// How often it is renewed; `None`: a third of `duration`.
    #[serde(default, with = "crate::serde_opt_secs")]
    pub renew_every: Option<Duration>,
    /// The identity written as holder; `None`: [`default_holder`] (unique per process). Give
    /// a stable one to let a restarted process take its own lease back before it expires.
    pub holder: Option<String>,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            namespace: "kube-system".into(),
            duration: Duration::from_secs(60),
            renew_every: None,
            holder: None,
        }
    }
}

/// `kup@<host>/<pid>/<random>`: unique per process, readable in `kubectl get lease`.
pub fn default_holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown-host".into());
    format!("kup@{host}/{}/{}", std::process::id(), random_hex())
}

/// The lock of one cluster as a Lease named `kup-upgrade-<cluster>`.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    cluster: String,
    name: String,
    namespace: String,
    holder: String,
    duration: Duration,
    renew_every: Duration,
    retry: BackoffPolicy,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock")
            .field("lease", &format!("{}/{}", self.namespace, self.name))
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// When the lease expires, from its own fields; `None` when it says nothing (expired).
fn expires_at(spec: &LeaseSpec) -> Option<Timestamp> {
    let last = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    last.checked_add(jiff::SignedDuration::from_secs(duration))
        .ok()
}

fn holder_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

impl LeaseLock {
    /// The lock of `cluster` with `settings`.
    pub fn new(client: Client, cluster: &str, settings: LeaseSettings) -> Result<Self> {
        if settings.duration < Duration::from_secs(1) {
            return Err(Error::invalid_input(
                "lock.duration",
                format!(
                    "{:?} is shorter than the lease's one-second resolution; give 1s or more",
                    settings.duration
                ),
            ));
        }
        if settings.namespace.trim().is_empty() {
            return Err(Error::invalid_input(
                "lock.namespace",
                "empty; give the namespace for the lock's Lease (default kube-system)",
            ));
        }
        let renew_every = settings.renew_every.unwrap_or(settings.duration / 3);
        if renew_every.is_zero() || renew_every >= settings.duration {
            return Err(Error::invalid_input(
                "lock.renew_every",
                format!(
                    "{renew_every:?} must be positive and shorter than the lease duration ({:?})",
                    settings.duration
                ),
            ));
        }
        Ok(Self {
            api: Api::namespaced(client, &settings.namespace),
            cluster: cluster.to_string(),
            name: object_name("kup-upgrade", cluster),
            namespace: settings.namespace,
            holder: settings.holder.unwrap_or_else(default_holder),
            duration: settings.duration,
            renew_every,
            retry: BackoffPolicy::default(),
        })
    }

    /// Retries transient API errors with `policy`.
    pub fn with_retry(mut self, policy: BackoffPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    async fn read(&self) -> Result<Option<Lease>> {
        retry(&self.retry, || self.api.get_opt(&self.name))
            .await
            .map_err(|e| Error::api(format!("reading lease {}", self.lease_ref()), e))
    }

    fn fresh(&self, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        (
                            "app.kubernetes.io/managed-by".to_string(),
                            "kup".to_string(),
                        ),
                        ("kup.dev/cluster".to_string(), label_value(&self.cluster)),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(secs(self.duration)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    /// One attempt: `Ok(Some(lease))` when taken, `Ok(None)` when another writer won the
    /// race (read again), `Err(LockHeld)` when someone else holds it.
    async fn try_take(&self) -> Result<Option<Lease>> {
        let now = Timestamp::now();
        let Some(current) = self.read().await? else {
            let fresh = self.fresh(now);
            return match retry(&self.retry, || self.api.create(&POST, &fresh)).await {
                Ok(lease) => Ok(Some(lease)),
                Err(e) if lost_race(&e) => Ok(None),
                Err(e) => Err(Error::api(
                    format!("creating lease {}", self.lease_ref()),
                    e,
                )),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = holder_of(&current);
        let expiry = expires_at(&spec);
        let expired = expiry.is_none_or(|t| t <= now);
        let ours = holder.as_deref() == Some(self.holder.as_str());
        if let Some(other) = holder.as_ref().filter(|_| !ours && !expired) {
            return Err(Error::LockHeld {
                cluster: self.cluster.clone(),
                holder: other.clone(),
                lease: self.lease_ref(),
                expires_at: expiry,
            });
        }
        let mut next = current.clone();
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(secs(self.duration)),
            lease_transitions: Some(
                spec.lease_transitions.unwrap_or(0) + i32::from(holder.is_some() && !ours),
            ),
            ..spec
        });
        if holder.is_some() && !ours {
            tracing::warn!(
                lease = %self.lease_ref(),
                previous = holder.as_deref().unwrap_or_default(),
                "taking over an expired lock"
            );
        }
        // `next` carries the resourceVersion just read: a concurrent writer makes this a 409.
        match retry(&self.retry, || self.api.replace(&self.name, &POST, &next)).await {
            Ok(lease) => Ok(Some(lease)),
            Err(e) if lost_race(&e) || kind(&e) == KubeErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::api(
                format!("updating lease {}", self.lease_ref()),
                e,
            )),
        }
    }
}

/// Renews the lease until aborted or lost.
struct Renewer {
    api: Api<Lease>,
    name: String,
    lease_ref: String,
    holder: String,
    duration: Duration,
    every: Duration,
    lost: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    retry: BackoffPolicy,
}

impl Renewer {
    async fn run(self, mut current: Lease) {
        let mut last_renewal = tokio::time::Instant::now();
        let mut wait = self.every;
        loop {
            tokio::time::sleep(wait).await;
            wait = self.every;
            let mut next = current.clone();
            if let Some(spec) = next.spec.as_mut() {
                spec.renew_time = Some(MicroTime(Timestamp::now()));
            }
            // Transient failures are retried until the lease would be overdue; past that
            // another run may take it over, so this one stops.
            let overdue_at = last_renewal + self.duration;
            let renewed = retry_until(&self.retry, Some(overdue_at), || {
                self.api.replace(&self.name, &POST, &next)
            })
            .await;
            match renewed {
                Ok(lease) => {
                    current = lease;
                    last_renewal = tokio::time::Instant::now();
                }
                Err(e) if lost_race(&e) => {
                    let fresh = retry_until(&self.retry, Some(overdue_at), || {
                        self.api.get_opt(&self.name)
                    })
                    .await;
                    match fresh {
                        Ok(Some(fresh)) if holder_of(&fresh).as_deref() == Some(&self.holder) => {
                            // Someone touched our lease (labels, annotations): renew on top.
                            current = fresh;
                            wait = Duration::from_millis(10);
                        }
                        Ok(Some(fresh)) => {
                            return self.lose(format!(
                                "it is now held by {}",
                                holder_of(&fresh).unwrap_or_else(|| "nobody".into())
                            ));
                        }
                        Ok(None) => return self.lose("the lease was deleted".into()),
                        Err(e) => {
                            if let Some(why) = self.overdue(last_renewal, &e) {
                                return self.lose(why);
                            }
                            wait = self.every / 4;
                        }
                    }
                }
                Err(e) if kind(&e) == KubeErrorKind::NotFound => {
                    return self.lose("the lease was deleted".into());
                }
                Err(e) => {
                    if let Some(why) = self.overdue(last_renewal, &e) {
                        return self.lose(why);
                    }
                    tracing::debug!(lease = %self.lease_ref, error = %e, "lease renewal failed; retrying");
                    wait = self.every / 4;
                }
            }
        }
    }

    /// Past the lease's duration without a renewal another run may take it: stop.
    fn overdue(&self, last: tokio::time::Instant, e: &kube::Error) -> Option<String> {
        let transient = kube_error::is_retryable(e);
        (!transient || last.elapsed() >= self.duration).then(|| {
            format!(
                "it could not be renewed for {:?} (last error: {e})",
                last.elapsed()
            )
        })
    }

    fn lose(&self, why: String) {
        tracing::warn!(lease = %self.lease_ref, reason = %why, "lost the cluster lock");
        set_lost(&self.lost, &self.reason, why);
    }
}

#[async_trait]
impl ClusterLock for LeaseLock {
    async fn acquire(&self) -> Result<LockGuard> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(lease) = self.try_take().await? else {
                continue;
            };
            let lost = CancellationToken::new();
            let reason = Arc::new(Mutex::new(None));
            let renewer = Renewer {
                api: self.api.clone(),
                name: self.name.clone(),
                lease_ref: self.lease_ref(),
                holder: self.holder.clone(),
                duration: self.duration,
                every: self.renew_every,
                lost: lost.clone(),
                reason: reason.clone(),
                retry: self.retry.clone(),
            };
            let task = tokio::spawn(renewer.run(lease));
            let this = self.clone();
            return Ok(LockGuard::new(
                format!("lease {}", self.lease_ref()),
                lost,
                reason,
                Some(task),
                async move { this.release().await },
            ));
        }
        Err(Error::Core(kup_core::Error::Conflict {
            message: format!(
                "lease {} changed {MAX_ATTEMPTS} times while kup tried to take it",
                self.lease_ref()
            ),
        }))
    }

    async fn holder(&self) -> Result<Option<LockInfo>> {
        let now = Timestamp::now();
        Ok(self.read().await?.and_then(|lease| {
            let holder = holder_of(&lease)?;
            let expires_at = lease.spec.as_ref().and_then(expires_at);
            Some(LockInfo {
                holder,
                expired: expires_at.is_none_or(|t| t <= now),
                expires_at,
            })
        }))
    }

    fn in_cluster(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("lease {}", self.lease_ref())
    }

    fn held_error(&self, _cluster: &str, info: LockInfo) -> Error {
        Error::LockHeld {
            cluster: self.cluster.clone(),
            holder: info.holder,
            lease: self.lease_ref(),
            expires_at: info.expires_at,
        }
    }

    fn identity(&self) -> &str {
        &self.holder
    }
}

impl LeaseLock {
    /// Clears the holder when it is still us; a lease someone else holds is left alone.
    async fn release(&self) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut lease) = self.read().await? else {
                return Ok(());
            };
            if holder_of(&lease).as_deref() != Some(self.holder.as_str()) {
                return Ok(());
            }
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = Some(MicroTime(Timestamp::now()));
            }
            match retry(&self.retry, || self.api.replace(&self.name, &POST, &lease)).await {
                Ok(_) => return Ok(()),
                Err(e) if lost_race(&e) => continue,
                Err(e) if kind(&e) == KubeErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(Error::api(
                        format!("releasing lease {}", self.lease_ref()),
                        e,
                    ));
                }
            }
        }
        Err(Error::Core(kup_core::Error::Conflict {
            message: format!(
                "lease {} kept changing while kup released it",
                self.lease_ref()
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_renewal_plus_duration() {
        let t = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let spec = LeaseSpec {
            renew_time: Some(MicroTime(t)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert_eq!(expires_at(&spec).map(|e| e.as_second()), Some(1_015));
        let only_acquired = LeaseSpec {
            acquire_time: Some(MicroTime(t)),
            lease_duration_seconds: Some(5),
            ..LeaseSpec::default()
        };
        assert_eq!(
            expires_at(&only_acquired).map(|e| e.as_second()),
            Some(1_005)
        );
        assert_eq!(expires_at(&LeaseSpec::default()), None);
    }

    #[test]
    fn default_holder_is_unique_per_call_and_readable() {
        let a = default_holder();
        assert!(a.starts_with("kup@"), "{a}");
        assert_ne!(a, default_holder());
    }
}
