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
