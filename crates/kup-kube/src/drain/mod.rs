//! Cordon, uncordon and a PodDisruptionBudget-aware node drain, compatible with
//! `kubectl drain` and faster than it.
//!
//! # What is the same as kubectl
//!
//! - Cordon is a strategic-merge PATCH of `spec.unschedulable`, sent only when it changes.
//! - The pods are those listed with `fieldSelector=spec.nodeName=<node>` (and the pod
//!   selector), 500 per page, run through kubectl's filters in kubectl's order with kubectl's
//!   refusal messages; every refused pod is listed, grouped by reason, before anything is
//!   evicted (see [`RefusedGroup`]).
//! - Evictions are `policy/v1` Evictions; 404 means gone; a 403 `NamespaceTerminating` is
//!   waited out; a 500 for a pod under two budgets fails the drain at once; a pod whose UID
//!   changed counts as gone; `--disable-eviction` is plain DELETEs, never chosen implicitly.
//!
//! # What is better
//!
//! - **429s wait on the budget, not a clock.** kubectl sleeps 5 s per refused pod. Here the
//!   budget that refused is watched and the pod is retried the moment the budget allows a
//!   disruption, one pod per budget at a time, budgets in parallel (see `budget.rs`).
//! - **Deletion is watched, not polled.** One watch on the node's pods replaces kubectl's GET
//!   per pod per second; a pod is gone when its UID is.
//! - **Overload is not a budget.** 429 without a disruption-budget cause, 503 and 504 are
//!   retried with jittered, bounded backoff honouring `Retry-After`.
//! - **Bounded concurrency** ([`DrainOptions::max_concurrent_evictions`]).
//! - **UID preconditions** on every eviction, so a pod recreated under the same name is never
//!   evicted in place of the one listed.
//! - A typed [`DrainReport`] and [`kup_core::Event`]s instead of text.
//!
//! # The node's state afterwards
//!
//! [`Drainer::drain`] cordons the node when it is schedulable and **never uncordons it**:
//! not after success (the node is about to be upgraded), not after a refusal, a timeout or an
//! error. Uncordoning is the caller's decision ([`Drainer::uncordon`]), and a caller must not
//! uncordon a node whose [`CordonOutcome::was_cordoned`] was true: it was cordoned before the
//! upgrade and stays so.
//!
//! # Permissions
//!
//! `deploy/rbac/kup-drain-clusterrole.yaml` is the minimal ClusterRole. The drain also works
//! without `watch` on pods or PodDisruptionBudgets, falling back to polling.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kup_kube::drain::{DrainOptions, Drainer};
//!
//! let config = kube::Config::infer().await?;
//! let drainer = Drainer::from_config(config)?;
//! let cordon = drainer.cordon("worker-1").await?;
//! let opts = DrainOptions {
//!     timeout: Some(std::time::Duration::from_secs(600)),
//!     ..DrainOptions::default()
//! };
//! let report = drainer.drain("worker-1", &opts, &kup_core::NoEvents).await?;
//! println!("evicted {} pods in {:?}", report.evicted.len(), report.elapsed);
//! // ... upgrade the node ...
//! if !cordon.was_cordoned {
//!     drainer.uncordon("worker-1").await?;
//! }
//! # Ok(())
//! # }
//! ```

mod budget;
mod cordon;
mod evict;
mod filters;
mod options;
mod pods;
mod report;
mod run;
mod selector;

use std::fmt;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::{Client, Config};

pub use cordon::CordonOutcome;
pub use options::{DEFAULT_MAX_CONCURRENT_EVICTIONS, DrainOptions};
pub use report::{
    BlockedPod, DrainMethod, DrainReport, PodRef, RefusalReason, RefusedGroup, SkipReason,
    SkippedPod,
};
pub(crate) use report::{RefusalList, StuckSummary};

use crate::error::{Error, Result};
use crate::retry::BackoffPolicy;

/// Retries of the drain's reads and node updates that fail transiently: 8 attempts, 200 ms
/// doubling to 5 s. kube's own client retry may already have retried the same request; this
/// bound keeps the total finite either way.
pub(crate) const API_RETRY: BackoffPolicy = BackoffPolicy::exponential(
    std::time::Duration::from_millis(200),
    std::time::Duration::from_secs(5),
    7,
);

/// Retries of an eviction or DELETE that the API server answers with overload (not a
/// budget's refusal): 8 attempts, 250 ms doubling to 8 s, `Retry-After` honoured.
pub(crate) const EVICTION_RETRY: BackoffPolicy = BackoffPolicy::exponential(
    std::time::Duration::from_millis(250),
    std::time::Duration::from_secs(8),
    7,
);

/// Cordons, uncordons and drains nodes through one cluster's API.
///
/// Cheap to clone. Evictions go through their own client so that a PodDisruptionBudget's 429
/// reaches the drain at once instead of being retried by kube's client: build the drainer
/// with [`Drainer::from_config`], or give [`Drainer::new`] plus
/// [`Drainer::with_eviction_client`] a client built with `default_retry = false`.
#[derive(Clone)]
pub struct Drainer {
    client: Client,
    eviction_client: Client,
}

impl fmt::Debug for Drainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drainer").finish_non_exhaustive()
    }
}

impl Drainer {
    /// A drainer using `client` for everything.
    ///
    /// If `client` retries 429s by itself (kube's `Config::default_retry`, on by default),
    /// a budget's refusal is first retried by kube with a short exponential backoff up to
    /// 15 times before the drain sees it: the drain still completes correctly, with more
    /// requests and later reactions. Prefer [`Drainer::from_config`].
    pub fn new(client: Client) -> Self {
        Self {
            eviction_client: client.clone(),
            client,
        }
    }

    /// A drainer whose reads, watches and node updates use a client built from `config` as
    /// given (kube's retry of 429/503/504 applies), and whose evictions and deletes use a
    /// second client from the same config with that retry turned off.
    pub fn from_config(config: Config) -> Result<Self> {
        let mut no_retry = config.clone();
        no_retry.default_retry = false;
        Ok(Self {
            client: Client::try_from(config)?,
            eviction_client: Client::try_from(no_retry)?,
        })
    }

    /// Sends evictions and deletes through `client`, which should not retry 429s itself.
    pub fn with_eviction_client(mut self, client: Client) -> Self {
        self.eviction_client = client;
        self
    }

    /// The client used for reads, watches and node updates.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Marks the node unschedulable. Idempotent: when it already is, nothing is sent and
    /// [`CordonOutcome::was_cordoned`] is true.
    ///
    /// It emits no event (it takes no sink): callers report `Event::NodeCordoned` with
    /// `was_cordoned` themselves.
    ///
    /// Errors: [`Error::NodeNotFound`], [`Error::NodeConflict`] after repeated 409s (each
    /// answered by re-reading the node), or [`Error::Kube`].
    pub async fn cordon(&self, node: &str) -> Result<CordonOutcome> {
        let api: Api<Node> = Api::all(self.client.clone());
        let current = cordon::get_node(&api, node, None).await?;
        if cordon::is_cordoned(&current) {
            return Ok(CordonOutcome { was_cordoned: true });
        }
        let changed = cordon::set_unschedulable(&api, node, true, Some(current), None).await?;
        Ok(CordonOutcome {
            was_cordoned: !changed,
        })
    }

    /// Marks the node schedulable again. Returns whether anything changed (false when it was
    /// not cordoned); callers report `Event::NodeUncordoned` when it did. Do not call it for a
    /// node that was cordoned before kup touched it. Errors as for [`Drainer::cordon`].
    pub async fn uncordon(&self, node: &str) -> Result<bool> {
        let api: Api<Node> = Api::all(self.client.clone());
        cordon::set_unschedulable(&api, node, false, None, None).await
    }

    /// Drains the node: cordons it if needed, removes its pods as `opts` allow, and waits
    /// until each is gone. See the [module documentation](self) for the rules.
    ///
    /// Events: `NodeCordoned` (when this call cordoned it), `Warning`s, `PodRefused`,
    /// `DrainStarted`, `PodEvicted`/`PodDeleted`, `PodBlocked` (first refusal by a budget),
    /// then `NodeDrained`, or `DrainTimedOut` and `NodeLeftCordoned`.
    ///
    /// With `opts.dry_run` nothing changes and the report lists what would be evicted
    /// (`pods`) and refused (`refused`); it is `Ok` even when pods would be refused.
    ///
    /// Errors (each failure carries the [`DrainReport`] so far; the node stays cordoned):
    /// - [`Error::InvalidInput`]: an option is out of range; nothing was sent;
    /// - [`Error::NodeNotFound`];
    /// - [`Error::DrainRefused`]: pods need an option (`force`, `delete_emptydir_data`,
    ///   `ignore_daemonsets`); nothing was evicted;
    /// - [`Error::MultiplePodDisruptionBudgets`]: names the pod and its budgets;
    /// - [`Error::DrainTimedOut`]: names the pods still there and the budgets blocking them;
    /// - [`Error::PodRemovalFailed`]: any other eviction answer (kubectl fails at once too);
    /// - [`Error::Kube`]: listing or cordoning failed.
    pub async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        events: &dyn kup_core::EventSink,
    ) -> Result<DrainReport> {
        run::drain(self, node, opts, events).await
    }
}

impl Error {
    /// The drain report a drain failure carries (refusal, timeout, budgets, removal failure).
    pub fn drain_report(&self) -> Option<&DrainReport> {
        match self {
            Error::DrainRefused { report, .. }
            | Error::MultiplePodDisruptionBudgets { report, .. }
            | Error::DrainTimedOut { report, .. }
            | Error::PodRemovalFailed { report, .. } => Some(report),
            _ => None,
        }
    }
}
