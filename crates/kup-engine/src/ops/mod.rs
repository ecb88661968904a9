//! What the engine needs from the cluster besides the provider, as small traits:
//! [`NodeOps`] (nodes of a pool, cordon, drain, uncordon, wait for Ready),
//! [`ClusterValidator`] (validation rounds until N consecutive passes) and
//! [`PreflightRunner`] (the pre-flight checks).
//!
//! [`KubeCluster`] implements all three through the Kubernetes API with kup-kube. Embedders
//! and tests can put anything else behind them (a recorder, a fault injector, a fake).

mod kube_cluster;

use std::time::Duration;

use async_trait::async_trait;
use kup_core::{EventSink, KubeVersion, NodePool};
use kup_kube::drain::{DrainOptions, DrainReport};
use kup_kube::preflight::{PreflightInput, PreflightReport};
use kup_kube::validate::{Expectation, ValidationOptions, ValidationReport};
use serde::{Deserialize, Serialize};

pub use kube_cluster::KubeCluster;

use crate::error::Result;

/// A node as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// Its kubelet's version, when it reports one kup can parse.
    pub kubelet: Option<KubeVersion>,
    /// Whether it is cordoned (`spec.unschedulable`).
    pub cordoned: bool,
    /// Whether its Ready condition is True.
    pub ready: bool,
}

/// How a drain ended when it did not fail outright.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every pod that had to go is gone.
    Drained {
        /// Pods evicted.
        evicted: usize,
    },
    /// The drain hit its deadline (a budget at 0, a finalizer); the node stays cordoned.
    Stuck {
        /// What blocks it, naming pods and budgets.
        message: String,
        /// The pods still there, `namespace/name`.
        remaining: Vec<String>,
    },
}

/// Node operations on one cluster.
#[async_trait]
pub trait NodeOps: Send + Sync {
    /// The nodes of `pool` (by its node names, else its label selector), sorted by name.
    async fn pool_nodes(&self, pool: &NodePool) -> Result<Vec<NodeState>>;

    /// One node, `None` when it does not exist.
    async fn node(&self, name: &str) -> Result<Option<NodeState>>;

    /// Cordons the node; returns whether it was already cordoned (nothing sent then).
    async fn cordon(&self, node: &str) -> Result<bool>;

    /// Drains the node (evictions honouring PodDisruptionBudgets). A drain that hits
    /// `opts.timeout` is [`DrainOutcome::Stuck`]; refusals and other failures are errors.
    async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        events: &dyn EventSink,
    ) -> Result<DrainOutcome>;

    /// What a drain would do, changing nothing.
    async fn drain_preview(&self, node: &str, opts: &DrainOptions) -> Result<DrainReport>;

    /// Uncordons the node; returns whether anything changed.
    async fn uncordon(&self, node: &str) -> Result<bool>;

    /// Waits until the node is Ready with its kubelet at `version`.
    async fn wait_ready(&self, node: &str, version: &KubeVersion, timeout: Duration) -> Result<()>;
}

/// Validation of the whole cluster.
#[async_trait]
pub trait ClusterValidator: Send + Sync {
    /// Rounds until `options.passes` consecutive rounds pass or `options.timeout` passes;
    /// a cluster that does not validate is a report with `passed: false`, not an error.
    async fn validate(
        &self,
        expectation: &Expectation,
        options: &ValidationOptions,
        events: &dyn EventSink,
    ) -> Result<ValidationReport>;
}

/// The pre-flight checks.
#[async_trait]
pub trait PreflightRunner: Send + Sync {
    /// Runs every check; API failures are findings, errors are for bad input only.
    async fn preflight(&self, input: &PreflightInput) -> Result<PreflightReport>;
}
