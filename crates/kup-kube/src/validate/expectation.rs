//! What a validated cluster should look like.

use std::collections::BTreeMap;

use kup_core::{KubeVersion, NodePool};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kubelet version one pool's nodes should run, and how to find them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolExpectation {
    /// The pool's name.
    pub name: String,
    /// The expected kubelet version (`1.31` accepts any patch; `1.31.4` that patch, any build).
    pub kubelet: KubeVersion,
    /// A label selector matching the pool's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// The pool's node names, when known instead of (or beside) a selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

impl PoolExpectation {
    /// Expects `pool`'s nodes (by its selector or names) at `kubelet`.
    pub fn new(pool: &NodePool, kubelet: KubeVersion) -> Self {
        Self {
            name: pool.name.clone(),
            kubelet,
            node_selector: pool.node_selector.clone(),
            nodes: pool.nodes.clone(),
        }
    }

    /// The pool as a `NodePool` for matching nodes.
    pub(crate) fn as_pool(&self) -> NodePool {
        NodePool {
            node_selector: self.node_selector.clone(),
            nodes: self.nodes.clone(),
            ..NodePool::rolled_by_kup(self.name.clone(), self.kubelet.clone())
        }
    }
}

/// The state validation waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    /// The API server's expected version.
    pub control_plane: KubeVersion,
    /// Per pool, the expected kubelet version. Nodes in no listed pool must be healthy; their
    /// version is not checked.
    #[serde(default)]
    pub pools: Vec<PoolExpectation>,
    /// When the upgrade started: Pending pods created since then count as stuck because of
    /// it. Without it, only unschedulable Pending pods count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<jiff::Timestamp>,
    /// Namespaces whose pods count as system pods.
    #[serde(default = "kube_system")]
    pub system_namespaces: Vec<String>,
}

fn kube_system() -> Vec<String> {
    vec!["kube-system".to_string()]
}

impl Expectation {
    /// Expects the control plane at `control_plane`, and no pool versions yet.
    pub fn new(control_plane: KubeVersion) -> Self {
        Self {
            control_plane,
            pools: Vec::new(),
            since: None,
            system_namespaces: kube_system(),
        }
    }

    /// Adds a pool expectation.
    pub fn pool(mut self, pool: &NodePool, kubelet: KubeVersion) -> Self {
        self.pools.push(PoolExpectation::new(pool, kubelet));
        self
    }

    /// Sets when the upgrade started.
    pub fn since(mut self, at: jiff::Timestamp) -> Self {
        self.since = Some(at);
        self
    }

    /// The expectation of a plan's validate step (`StepAction::Validate`): the step names
    /// pools and versions, the cluster's pools say how to find their nodes. A pool the
    /// cluster does not have is an error naming the known pools.
    pub fn from_step(
        control_plane: &KubeVersion,
        pools: &BTreeMap<String, KubeVersion>,
        cluster_pools: &[NodePool],
    ) -> Result<Self> {
        let mut expectation = Self::new(control_plane.clone());
        for (name, version) in pools {
            let pool = cluster_pools
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| Error::InvalidInput {
                    field: "pools".into(),
                    message: format!(
                        "unknown node pool {name:?}; the cluster has: {}",
                        cluster_pools
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            if pool.node_selector.is_none() && pool.nodes.is_empty() {
                return Err(Error::InvalidInput {
                    field: format!("pools[{name}]"),
                    message: "the pool has neither node_selector nor nodes, so its nodes \
                              cannot be found; the provider must report one of them"
                        .into(),
                });
            }
            expectation
                .pools
                .push(PoolExpectation::new(pool, version.clone()));
        }
        Ok(expectation)
    }
}
