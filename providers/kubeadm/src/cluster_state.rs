//! What the cluster itself says about its nodes: kubelet versions and readiness from Node
//! objects, and each control-plane node's API server version from its `kube-apiserver`
//! mirror pod's image (how kubeadm itself tells API server versions apart).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kup_core::KubeVersion;

use crate::error::{Error, Result};

/// One node's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet: Option<KubeVersion>,
    /// The Ready condition is True.
    pub ready: bool,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

impl NodeState {
    fn of(node: &Node) -> Self {
        let status = node.status.as_ref();
        let kubelet = status
            .and_then(|s| s.node_info.as_ref())
            .and_then(|i| KubeVersion::parse(&i.kubelet_version).ok());
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        Self {
            kubelet,
            ready,
            unschedulable,
            annotations: node.metadata.annotations.clone().unwrap_or_default(),
        }
    }

    /// Ready and running `version`'s kubelet.
    pub fn ready_at(&self, version: &KubeVersion) -> bool {
        self.ready && self.kubelet.as_ref().is_some_and(|k| k == version)
    }
}

/// Every node by name.
pub async fn nodes(client: &Client) -> Result<BTreeMap<String, NodeState>> {
    let api: Api<Node> = Api::all(client.clone());
    let mut out = BTreeMap::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let list = api.list(&params).await?;
        for node in &list.items {
            if let Some(name) = &node.metadata.name {
                out.insert(name.clone(), NodeState::of(node));
            }
        }
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

/// One node's state.
pub async fn node(client: &Client, name: &str) -> Result<NodeState> {
    let api: Api<Node> = Api::all(client.clone());
    match api.get_opt(name).await? {
        Some(node) => Ok(NodeState::of(&node)),
        None => Err(Error::Core(kup_core::Error::NotFound {
            kind: "node".into(),
            name: name.to_string(),
            scope: Some("the cluster".into()),
        })),
    }
}

/// The version in an image reference's tag (`registry.k8s.io/kube-apiserver:v1.31.2`).
pub fn image_version(image: &str) -> Option<KubeVersion> {
    let without_digest = image.split('@').next()?;
    let (_, tag) = without_digest.rsplit_once(':')?;
    if tag.contains('/') {
        return None;
    }
    KubeVersion::parse(tag).ok()
}

/// Each control-plane node's API server version, from the `component=kube-apiserver`
/// mirror pods in `kube-system`.
pub async fn api_servers(client: &Client) -> Result<BTreeMap<String, KubeVersion>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let pods = api
        .list(&ListParams::default().labels("component=kube-apiserver"))
        .await?;
    let mut out = BTreeMap::new();
    for pod in pods.items {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| {
                s.containers
                    .iter()
                    .find(|c| c.name == "kube-apiserver")
                    .or_else(|| s.containers.first())
            })
            .and_then(|c| c.image.clone());
        if let Some(version) = image.as_deref().and_then(image_version) {
            out.insert(node, version);
        }
    }
    Ok(out)
}

/// The API server's own `/version`.
pub async fn server_version(client: &Client) -> Result<KubeVersion> {
    let info = client.apiserver_version().await?;
    KubeVersion::parse(&info.git_version).map_err(Error::Core)
}

/// Waits until `node` is Ready with `version`'s kubelet.
pub async fn wait_ready_at(
    client: &Client,
    name: &str,
    version: &KubeVersion,
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        match node(client, name).await {
            Ok(state) if state.ready_at(version) => return Ok(()),
            Ok(state) => last = Some(state),
            // Brief API outages are expected while API servers restart; a refusal (403, 404)
            // is not an outage and ends the wait at once.
            Err(Error::Kube(e)) if kup_kube::kube_error::is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() >= deadline {
            let seen = last.map_or("no answer from the API server".to_string(), |s| {
                format!(
                    "last seen kubelet {} and Ready={}",
                    s.kubelet.map_or("unknown".into(), |k| k.to_string()),
                    s.ready
                )
            });
            return Err(Error::WaitTimeout {
                what: format!("node {name} to be Ready at {version} ({seen})"),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn versions_come_from_image_tags() {
        assert_eq!(
            image_version("registry.k8s.io/kube-apiserver:v1.31.2").unwrap(),
            "1.31.2".parse().unwrap()
        );
        assert_eq!(
            image_version("localhost:5000/kube-apiserver:v1.30.1@sha256:abc").unwrap(),
            "1.30.1".parse().unwrap()
        );
        assert_eq!(image_version("localhost:5000/kube-apiserver"), None);
    }
}
