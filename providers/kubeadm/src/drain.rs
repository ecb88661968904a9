//! How control-plane nodes are emptied before their kubelet moves.
//!
//! Workers are cordoned, drained and uncordoned by the engine around
//! [`UpgradeProvider::upgrade_node`](kup_core::UpgradeProvider::upgrade_node); control-plane
//! nodes are upgraded inside
//! [`UpgradeProvider::upgrade_control_plane`](kup_core::UpgradeProvider::upgrade_control_plane),
//! so the provider drains them itself through this trait. [`KubeDrain`] is kup-kube's drain;
//! embedders can plug in their own.

use std::fmt;

use async_trait::async_trait;
use kup_core::EventSink;
use kup_kube::drain::{DrainOptions, Drainer};

use crate::error::Result;

/// Cordons, drains and uncordons nodes.
#[async_trait]
pub trait NodeDrain: Send + Sync + fmt::Debug {
    /// Marks the node unschedulable; returns whether it already was (then it stays cordoned
    /// after the upgrade).
    async fn cordon(&self, node: &str) -> Result<bool>;

    /// Evicts the node's pods (the node is cordoned).
    async fn drain(&self, node: &str, events: &dyn EventSink) -> Result<()>;

    /// Marks the node schedulable again.
    async fn uncordon(&self, node: &str) -> Result<()>;
}

/// kup-kube's drain (kubectl's rules: eviction API, PodDisruptionBudgets honoured, refusals
/// named).
#[derive(Clone, Debug)]
pub struct KubeDrain {
    drainer: Drainer,
    options: DrainOptions,
}

impl KubeDrain {
    /// Drains with `drainer` and `options` (their deadline bounds each control-plane node's
    /// drain; when it passes the upgrade stops and the node stays cordoned).
    pub fn new(drainer: Drainer, options: DrainOptions) -> Self {
        Self { drainer, options }
    }
}

#[async_trait]
impl NodeDrain for KubeDrain {
    async fn cordon(&self, node: &str) -> Result<bool> {
        Ok(self.drainer.cordon(node).await?.was_cordoned)
    }

    async fn drain(&self, node: &str, events: &dyn EventSink) -> Result<()> {
        self.drainer.drain(node, &self.options, events).await?;
        Ok(())
    }

    async fn uncordon(&self, node: &str) -> Result<()> {
        self.drainer.uncordon(node).await?;
        Ok(())
    }
}
