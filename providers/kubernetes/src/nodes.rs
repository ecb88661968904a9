//! The cluster's nodes, read once per call and grouped into pools.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kup_core::{KubeVersion, NodePool, PoolManagement};

/// Nodes per page: a large cluster is listed in pages rather than in one answer.
const PAGE: u32 = 500;

/// The pool of control-plane nodes.
pub const CONTROL_PLANE_POOL: &str = "control-plane";
/// The pool of the other nodes when no pool label is given (or a node carries none).
pub const WORKER_POOL: &str = "workers";

/// Every node, page by page.
pub async fn list(client: &kube::Client) -> kube::Result<Vec<Node>> {
    let api: Api<Node> = Api::all(client.clone());
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

fn is_control_plane(node: &Node) -> bool {
    node.metadata.labels.as_ref().is_some_and(|l| {
        l.contains_key("node-role.kubernetes.io/control-plane")
            || l.contains_key("node-role.kubernetes.io/master")
    })
}

fn kubelet(node: &Node) -> Option<KubeVersion> {
    let info = node.status.as_ref()?.node_info.as_ref()?;
    KubeVersion::parse(&info.kubelet_version).ok()
}

/// The nodes grouped into pools: control-plane nodes in one, the others by `pool_label`'s
/// value (or all in `workers`). Each pool lists its nodes by name, runs its oldest kubelet's
/// version and is managed outside kup. Nodes that report no kubelet version are left out.
pub fn pools(nodes: &[Node], pool_label: Option<&str>) -> Vec<NodePool> {
    let mut groups: BTreeMap<(bool, String), Vec<(String, KubeVersion)>> = BTreeMap::new();
    for node in nodes {
        let (Some(name), Some(version)) = (node.metadata.name.clone(), kubelet(node)) else {
            continue;
        };
        let control_plane = is_control_plane(node);
        let pool = if control_plane {
            CONTROL_PLANE_POOL.to_string()
        } else {
            pool_label
                .and_then(|key| node.metadata.labels.as_ref()?.get(key).cloned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| WORKER_POOL.to_string())
        };
        // Control-plane pools sort first.
        groups
            .entry((!control_plane, pool))
            .or_default()
            .push((name, version));
    }
    groups
        .into_iter()
        .filter_map(|((worker, name), mut members)| {
            members.sort();
            let oldest = members.iter().map(|(_, v)| v).min()?.clone();
            let mut pool = NodePool::managed(name, oldest);
            pool.management = PoolManagement::External;
            pool.control_plane = !worker;
            pool.node_count = u32::try_from(members.len()).ok();
            pool.nodes = members.into_iter().map(|(n, _)| n).collect();
            Some(pool)
        })
        .collect()
}
