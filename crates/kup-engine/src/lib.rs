//! Runs kup's upgrade plans: pre-flight gate, backup, control-plane hops, node pools (by the
//! provider, or node by node in batches with validation gates between them), add-ons and
//! validation — with a journal to resume from, a cluster lock, events for observers, dry runs
//! and cancellation at safe points.
//!
//! ```no_run
//! # async fn demo(provider: std::sync::Arc<dyn kup_core::UpgradeProvider>, plan: kup_core::UpgradePlan)
//! # -> Result<(), kup_engine::Error> {
//! use std::sync::Arc;
//! use kup_engine::{Engine, EngineOptions, KubeCluster};
//! use kup_engine::journal::ConfigMapJournalStore;
//! use kup_engine::lock::{LeaseLock, LeaseSettings};
//! use tokio_util::sync::CancellationToken;
//!
//! let cluster = KubeCluster::from_config(kube::Config::infer().await.map_err(|e| {
//!     kup_engine::Error::invalid_input("kubeconfig", e.to_string())
//! })?)?;
//! let name = provider.cluster_name().to_string();
//! let client = cluster.client().clone();
//! let (events, mut rx) = kup_engine::events::channel();
//! let engine = Engine::builder(provider)
//!     .kube(cluster)
//!     .journal(Arc::new(ConfigMapJournalStore::new(client.clone(), "kube-system", &name)))
//!     .lock(Arc::new(LeaseLock::new(client, &name, LeaseSettings::default())?))
//!     .events(Arc::new(events))
//!     .options(EngineOptions::default())
//!     .build()?;
//! tokio::spawn(async move { while let Some(e) = rx.recv().await { println!("{e:?}"); } });
//! let report = engine.run(&plan, &CancellationToken::new()).await?;
//! println!("{:?}", report.outcome);
//! # Ok(()) }
//! ```
//!
//! # Safety rules the engine keeps
//!
//! - Nothing changes before pre-flight passes (blockers stop the run unless their codes are
//!   overridden) and, where the provider needs one, before a verified backup exists.
//! - Every step re-reads the cluster first and skips what is already done, so a plan can be
//!   executed twice, and a resumed run does not repeat finished work.
//! - A node is recorded in the journal before it is cordoned; it is uncordoned afterwards only
//!   when it was schedulable before; a node whose drain is stuck stays cordoned and recorded.
//! - A provider operation is recorded when it starts; a resumed run polls it again (or adopts
//!   the provider's running operation on the same target) instead of starting a second one.
//! - No kubelet is moved past the control plane, and no control-plane hop leaves a kubelet
//!   out of skew.
//! - Cancellation stops at the next safe point: never between a cordon and its record, never
//!   between starting an operation and recording it.

pub mod backoff;
mod batch;
pub mod dry_run;
mod engine;
mod error;
pub mod events;
pub mod journal;
pub mod lock;
pub mod names;
pub mod ops;
mod options;
pub mod planning;
pub mod report;
mod steps;
mod versions;

pub use dry_run::{DryRunReport, DryRunStep, WouldDo};
pub use engine::{Engine, EngineBuilder, RunReport, StepReport};
pub use error::{Error, Result};
pub use ops::{ClusterValidator, DrainOutcome, KubeCluster, NodeOps, NodeState, PreflightRunner};
pub use options::{EngineOptions, PoolOptions, StepTimeouts, parse_max_unavailable};
pub use report::Runbook;

/// Durations as (fractional) seconds in JSON.
pub(crate) mod serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Optional durations as (fractional) seconds in JSON.
pub(crate) mod serde_opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}
