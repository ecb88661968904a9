//! How the fleet reaches a member: a [`Connector`] turns a member's connection fields into
//! the parts kup's engine needs for that cluster.

use std::sync::Arc;

use async_trait::async_trait;
use kup_core::{EventSink, PlanOptions, UpgradeProvider};
use kup_engine::journal::JournalStore;
use kup_engine::lock::ClusterLock;
use kup_engine::{Engine, EngineOptions, KubeCluster, NodeOps};

use crate::error::{Error, Result};
use crate::spec::Member;

/// Everything the engine needs for one member cluster.
#[derive(Clone)]
pub struct MemberCluster {
    /// The provider bound to the cluster.
    pub provider: Arc<dyn UpgradeProvider>,
    /// Its Kubernetes API.
    pub kube: KubeCluster,
    /// Node operations other than the Kubernetes API's own (`None`: through `kube`).
    pub node_ops: Option<Arc<dyn NodeOps>>,
    /// Its engine journal (a resumed fleet run resumes the cluster's run from it).
    pub journal: Arc<dyn JournalStore>,
    /// Its cluster lock.
    pub lock: Arc<dyn ClusterLock>,
    /// Engine options for it.
    pub options: EngineOptions,
    /// Planning options for it.
    pub plan_options: PlanOptions,
}

impl std::fmt::Debug for MemberCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCluster")
            .field("provider", &self.provider)
            .field("journal", &self.journal)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl MemberCluster {
    /// An engine for the cluster sending its events to `events`.
    pub fn engine(&self, name: &str, events: Arc<dyn EventSink>) -> Result<Engine> {
        let mut builder = Engine::builder(self.provider.clone())
            .kube(self.kube.clone())
            .journal(self.journal.clone())
            .lock(self.lock.clone())
            .events(events)
            .options(self.options.clone());
        if let Some(nodes) = &self.node_ops {
            builder = builder.node_ops(nodes.clone());
        }
        builder.build().map_err(|source| Error::Engine {
            cluster: name.to_string(),
            source: Box::new(source),
        })
    }
}

/// Connects to members from their connection fields.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The parts for `member`'s cluster; errors say what is wrong with its connection.
    async fn connect(&self, member: &Member) -> Result<MemberCluster>;
}
