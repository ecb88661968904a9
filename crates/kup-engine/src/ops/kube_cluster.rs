//! [`KubeCluster`]: the engine's cluster operations through the Kubernetes API (kup-kube).

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};
use kup_core::{EventSink, KubeVersion, NodePool};
use kup_kube::drain::{DrainOptions, DrainReport, Drainer};
use kup_kube::preflight::{Preflight, PreflightInput, PreflightReport};
use kup_kube::validate::{Expectation, ValidationOptions, ValidationReport, Validator};

use super::{ClusterValidator, DrainOutcome, NodeOps, NodeState, PreflightRunner};
use crate::backoff::{BackoffPolicy, retry};
use crate::error::{Error, Result};

/// Node operations, validation and pre-flight through one cluster's API.
///
/// Build it with [`KubeCluster::from_config`] so that evictions go through a client that does
/// not retry 429s itself (a PodDisruptionBudget's answer must reach the drain at once).
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    drainer: Drainer,
    validator: Validator,
    retry: BackoffPolicy,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster").finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// Clients built from `config` (see [`Drainer::from_config`]).
    pub fn from_config(config: kube::Config) -> Result<Self> {
        let drainer = Drainer::from_config(config)?;
        let client = drainer.client().clone();
        Ok(Self {
            validator: Validator::new(client.clone()),
            client,
            drainer,
            retry: BackoffPolicy::default(),
        })
    }

    /// Uses `client` for everything (evictions included; see [`Drainer::new`]).
    pub fn new(client: Client) -> Self {
        Self {
            validator: Validator::new(client.clone()),
            drainer: Drainer::new(client.clone()),
            client,
            retry: BackoffPolicy::default(),
        }
    }

    /// Retries reads and node updates that fail transiently with `policy`.
    pub fn with_retry(mut self, policy: BackoffPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The client for reads and updates (locks and journals use it too).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn list_nodes(&self, params: &ListParams) -> Result<Vec<Node>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut out = Vec::new();
        let mut params = params.clone().limit(500);
        loop {
            let page = retry(&self.retry, || async {
                api.list(&params)
                    .await
                    .map_err(|e| Error::api("listing nodes", e))
            })
            .await?;
            out.extend(page.items);
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// The engine's view of a node object.
pub(crate) fn node_state(node: &Node) -> NodeState {
    let status = node.status.as_ref();
    NodeState {
        name: node.metadata.name.clone().unwrap_or_default(),
        kubelet: status
            .and_then(|s| s.node_info.as_ref())
            .and_then(|i| KubeVersion::parse(&i.kubelet_version).ok()),
        cordoned: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True"),
    }
}

#[async_trait]
impl NodeOps for KubeCluster {
    async fn pool_nodes(&self, pool: &NodePool) -> Result<Vec<NodeState>> {
        let mut nodes: Vec<NodeState> = if !pool.nodes.is_empty() {
            self.list_nodes(&ListParams::default())
                .await?
                .iter()
                .map(node_state)
                .filter(|n| pool.nodes.contains(&n.name))
                .collect()
        } else if let Some(selector) = &pool.node_selector {
            self.list_nodes(&ListParams::default().labels(selector))
                .await?
                .iter()
                .map(node_state)
                .collect()
        } else {
            return Err(Error::invalid_input(
                format!("pools[{}]", pool.name),
                "the provider reports neither node names nor a node selector for this pool, \
                 so kup cannot find its nodes",
            ));
        };
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    async fn node(&self, name: &str) -> Result<Option<NodeState>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let found = retry(&self.retry, || async {
            api.get_opt(name)
                .await
                .map_err(|e| Error::api(format!("reading node {name}"), e))
        })
        .await?;
        Ok(found.as_ref().map(node_state))
    }

    async fn cordon(&self, node: &str) -> Result<bool> {
        Ok(self.drainer.cordon(node).await?.was_cordoned)
    }

    async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        events: &dyn EventSink,
    ) -> Result<DrainOutcome> {
        match self.drainer.drain(node, opts, events).await {
            Ok(report) => Ok(DrainOutcome::Drained {
                evicted: report.evicted.len(),
            }),
            Err(e @ kup_kube::Error::DrainTimedOut { .. }) => {
                let remaining = e
                    .drain_report()
                    .map(|r| {
                        r.remaining
                            .iter()
                            .map(|p| format!("{}/{}", p.namespace, p.name))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(DrainOutcome::Stuck {
                    message: e.to_string(),
                    remaining,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn drain_preview(&self, node: &str, opts: &DrainOptions) -> Result<DrainReport> {
        let opts = DrainOptions {
            dry_run: true,
            ..opts.clone()
        };
        Ok(self.drainer.drain(node, &opts, &kup_core::NoEvents).await?)
    }

    async fn uncordon(&self, node: &str) -> Result<bool> {
        Ok(self.drainer.uncordon(node).await?)
    }

    async fn wait_ready(&self, node: &str, version: &KubeVersion, timeout: Duration) -> Result<()> {
        Ok(kup_kube::validate::wait_node_ready(&self.client, node, version, timeout).await?)
    }
}

#[async_trait]
impl ClusterValidator for KubeCluster {
    async fn validate(
        &self,
        expectation: &Expectation,
        options: &ValidationOptions,
        events: &dyn EventSink,
    ) -> Result<ValidationReport> {
        Ok(self.validator.run(expectation, options, events).await?)
    }
}

#[async_trait]
impl PreflightRunner for KubeCluster {
    async fn preflight(&self, input: &PreflightInput) -> Result<PreflightReport> {
        Ok(Preflight::new(self.client.clone()).run(input).await?)
    }
}
