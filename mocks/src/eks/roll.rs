//! Managed node group updates, played out on the Kubernetes simulator the way EKS does them:
//! new nodes at the new version join, each old node is cordoned and drained through the
//! eviction API (a PDB's 429 is retried), then terminated. Evictions still refused after the
//! eviction timeout fail the update with `PodEvictionFailure`, unless `force` deletes the pods.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Inner;
use super::state::UpdateTarget;
use crate::k8s::{AwsPlacement, Node, SimHandle};

/// The label EKS puts on every node of a managed node group.
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// The label EKS puts on the nodes of a launch-template node group: the template version the
/// node was launched from.
pub const LT_VERSION_LABEL: &str = "eks.amazonaws.com/sourceLaunchTemplateVersion";

/// The label naming the launch template id the node was launched from.
const LT_ID_LABEL: &str = "eks.amazonaws.com/sourceLaunchTemplateId";

enum Drained {
    Done,
    Blocked(Vec<String>),
}

pub(crate) async fn roll(inner: Arc<Inner>, cluster: String, update_id: String) {
    let result = match inner.sim.clone() {
        Some(sim) => roll_on(&inner, &sim, &cluster, &update_id).await,
        None => {
            // Without a simulator the node group has no nodes to move: it takes the time EKS
            // would need to replace its instances.
            let size = inner.with_nodegroup(&cluster, &update_id, |ng, _| ng.spec.desired_size);
            inner
                .sleep_sim(Duration::from_secs(90 * u64::from(size.unwrap_or(1))))
                .await;
            inner.take_failure(&cluster, &update_id).map_or(Ok(()), Err)
        }
    };
    inner.finish_nodegroup(&cluster, &update_id, result);
}

async fn roll_on(
    inner: &Arc<Inner>,
    sim: &SimHandle,
    cluster: &str,
    update_id: &str,
) -> Result<(), Vec<(String, String, Vec<String>)>> {
    let Some((ng, target, kubelet, force, batch, lt)) = inner.nodegroup_update(cluster, update_id)
    else {
        return Ok(());
    };
    // A node is replaced when it runs another kubelet or came from another launch template
    // version (EKS labels launch-template nodes with the version they came from).
    let old: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][NODEGROUP_LABEL] == ng.as_str())
        .filter(|n| {
            n["status"]["nodeInfo"]["kubeletVersion"] != kubelet.as_str()
                || lt.as_ref().is_some_and(|v| {
                    n["metadata"]["labels"][LT_VERSION_LABEL].as_str() != Some(v.as_str())
                })
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    if let Some(errors) = inner.take_failure(cluster, update_id) {
        inner.sleep_sim(Duration::from_secs(120)).await;
        return Err(errors);
    }
    let client = match no_retry_client(sim) {
        Ok(c) => c,
        Err(e) => return Err(vec![internal(&ng, e)]),
    };
    let _ = target;
    // Replacements land where the group's nodes are: same region and instance type.
    let placement = sim
        .nodes()
        .iter()
        .find(|n| n["metadata"]["labels"][NODEGROUP_LABEL] == ng.as_str())
        .and_then(|n| {
            let labels = &n["metadata"]["labels"];
            Some(AwsPlacement::new(
                labels["topology.kubernetes.io/region"].as_str()?,
                labels["node.kubernetes.io/instance-type"].as_str()?,
            ))
        });
    let mut placed = 0usize;
    for chunk in old.chunks(batch.max(1) as usize) {
        // Scale up: replacements join at the new version before anything is drained.
        let mut joined = Vec::new();
        for _ in chunk {
            let name = inner.next_node_name();
            let mut node = Node::new(name.clone())
                .pool(ng.clone())
                .kubelet_version(kubelet.clone())
                .label(NODEGROUP_LABEL, ng.clone())
                .label("eks.amazonaws.com/capacityType", "ON_DEMAND");
            if let Some(v) = &lt {
                node = node
                    .label(LT_VERSION_LABEL, v.clone())
                    .label(LT_ID_LABEL, super::state::LAUNCH_TEMPLATE_ID);
            }
            let node = match &placement {
                Some(p) => node.aws(p, placed),
                None => node,
            };
            placed += 1;
            if let Err(e) = sim.add_node(node) {
                return Err(vec![(
                    "NodeCreationFailure".into(),
                    format!("Instances failed to join the kubernetes cluster: {e}"),
                    vec![name],
                )]);
            }
            joined.push(name);
        }
        let ready_by = inner.deadline(Duration::from_secs(15 * 60));
        while !joined.iter().all(|n| node_ready(sim, n)) {
            if inner.past(ready_by) {
                return Err(vec![(
                    "NodeCreationFailure".into(),
                    "Instances failed to join the kubernetes cluster".into(),
                    joined.clone(),
                )]);
            }
            inner.sleep_sim(Duration::from_secs(5)).await;
        }
        for old_node in chunk {
            if let Err(e) = cordon(&client, old_node).await {
                return Err(vec![internal(&ng, e)]);
            }
        }
        let evict_by = inner.deadline(inner.eviction_timeout());
        for old_node in chunk {
            match drain(inner, &client, sim, old_node, evict_by, force).await {
                Ok(Drained::Done) => {}
                Ok(Drained::Blocked(pods)) => {
                    return Err(vec![(
                        "PodEvictionFailure".into(),
                        format!(
                            "Reached max retries while trying to evict pods from nodes in node group {ng}"
                        ),
                        pods,
                    )]);
                }
                Err(e) => return Err(vec![internal(&ng, e)]),
            }
        }
        // Scale down: the drained instances are terminated.
        for old_node in chunk {
            if let Err(e) = sim.remove_node(old_node) {
                return Err(vec![internal(&ng, e.to_string())]);
            }
        }
    }
    Ok(())
}

fn internal(ng: &str, e: impl ToString) -> (String, String, Vec<String>) {
    (
        "InternalFailure".into(),
        format!("node group {ng}: {}", e.to_string()),
        Vec::new(),
    )
}

pub(crate) fn node_ready(sim: &SimHandle, name: &str) -> bool {
    sim.get("nodes", None, name).is_some_and(|n| {
        n["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    })
}

pub(crate) fn no_retry_client(sim: &SimHandle) -> Result<kube::Client, String> {
    let mut config = sim.client_config();
    // A 429 from an eviction is the PDB's answer; the roller retries on its own schedule.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

pub(crate) async fn send(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> Result<Value, kube::Error> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(bytes)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(request).await
}

pub(crate) async fn cordon(client: &kube::Client, node: &str) -> Result<(), String> {
    send(
        client,
        http::Method::PATCH,
        &format!("/api/v1/nodes/{node}"),
        "application/strategic-merge-patch+json",
        Some(json!({ "spec": { "unschedulable": true } })),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("cordon {node}: {e}"))
}

pub(crate) fn evictable(pod: &Value) -> bool {
    let daemon = pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"));
    let mirror = pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string();
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    !daemon && !mirror && !finished && pod["metadata"]["deletionTimestamp"].is_null()
}

async fn drain(
    inner: &Arc<Inner>,
    client: &kube::Client,
    sim: &SimHandle,
    node: &str,
    deadline: f64,
    force: bool,
) -> Result<Drained, String> {
    loop {
        let pending: Vec<(String, String)> = sim
            .pods_on_node(node)
            .iter()
            .filter(|p| evictable(p))
            .filter_map(|p| {
                Some((
                    p["metadata"]["namespace"].as_str()?.to_string(),
                    p["metadata"]["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        if pending.is_empty() {
            // Evicted pods still terminating keep the instance alive until they are gone.
            let terminating = sim.pods_on_node(node).iter().any(|p| {
                !p["metadata"]["deletionTimestamp"].is_null() && {
                    let mut q = p.clone();
                    q["metadata"]["deletionTimestamp"] = Value::Null;
                    evictable(&q)
                }
            });
            if !terminating || inner.past(deadline) {
                return Ok(Drained::Done);
            }
            inner.sleep_sim(Duration::from_secs(1)).await;
            continue;
        }
        let mut blocked = Vec::new();
        for (ns, name) in &pending {
            let body = json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": { "name": name, "namespace": ns },
            });
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
            match send(
                client,
                http::Method::POST,
                &path,
                "application/json",
                Some(body),
            )
            .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(kube::Error::Api(e)) if e.code == 429 || e.code == 500 => {
                    blocked.push(format!("{ns}/{name}"));
                }
                Err(e) => return Err(format!("evict {ns}/{name}: {e}")),
            }
        }
        if !blocked.is_empty() && inner.past(deadline) {
            if !force {
                return Ok(Drained::Blocked(blocked));
            }
            for pod in &blocked {
                let (ns, name) = pod.split_once('/').unwrap_or(("default", pod));
                let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
                match send(
                    client,
                    http::Method::DELETE,
                    &path,
                    "application/json",
                    None,
                )
                .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(format!("delete {pod}: {e}")),
                }
            }
        }
        inner.sleep_sim(Duration::from_secs(5)).await;
    }
}

pub(crate) fn target_of(t: &UpdateTarget) -> Option<(String, String, String, bool)> {
    match t {
        UpdateTarget::Nodegroup {
            nodegroup,
            version,
            release_version,
            force,
            ..
        } => Some((
            nodegroup.clone(),
            version.clone(),
            release_version.clone(),
            *force,
        )),
        _ => None,
    }
}
