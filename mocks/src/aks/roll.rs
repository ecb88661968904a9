//! Agent-pool upgrades played out on the Kubernetes simulator the way AKS does them: surge
//! nodes join at the new version, then each old node is cordoned and drained through the
//! eviction API (a PDB's 429 is retried until `drainTimeoutInMinutes`), the pool waits
//! `nodeSoakDurationInMinutes`, and the old node is deleted. A node whose drain times out
//! fails the upgrade, or with `undrainableNodeBehavior: Cordon` stays cordoned, labelled
//! `kubernetes.azure.com/upgrade-status: Quarantined`, and the upgrade goes on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Inner;
use super::state::{OperationTarget, State};
use crate::eks::roll::{cordon, evictable, no_retry_client, node_ready, send};
use crate::k8s::{Node, SimHandle};

/// The label AKS puts on every node of an agent pool.
pub const AGENTPOOL_LABEL: &str = "kubernetes.azure.com/agentpool";
/// The label AKS puts on a node it could not drain under `undrainableNodeBehavior: Cordon`
/// (value `Quarantined`).
pub const QUARANTINE_LABEL: &str = "kubernetes.azure.com/upgrade-status";
pub(crate) const MODE_LABEL: &str = "kubernetes.azure.com/mode";
pub(crate) const NODE_IMAGE_LABEL: &str = "kubernetes.azure.com/node-image-version";

/// What one roll needs, read once from the operation and its pool.
struct Plan {
    pool: String,
    mode: String,
    kubelet: String,
    image: String,
    surge: String,
    unavailable: String,
    drain_timeout: Duration,
    soak: Duration,
    cordon_undrainable: bool,
    count: u32,
}

type Failure = Value;

impl State {
    fn roll_plan(&self, id: &str) -> Option<Plan> {
        let op = self.operations.iter().find(|o| o.id == id)?;
        let (pool, to, image) = match &op.target {
            OperationTarget::AgentPool { pool, to, image } => {
                (pool.clone(), Some(to.clone()), image.clone())
            }
            OperationTarget::NodeImage { pool } => (pool.clone(), None, None),
            _ => return None,
        };
        let p = self.clusters.get(&op.cluster)?.pools.get(&pool)?;
        let s = &p.upgrade_settings;
        let minutes =
            |key: &str, default: u64| Duration::from_secs(60 * s[key].as_u64().unwrap_or(default));
        Some(Plan {
            pool,
            mode: p.mode.as_str().to_ascii_lowercase(),
            kubelet: format!("v{}", to.unwrap_or_else(|| p.current.clone())),
            image: image.unwrap_or_else(|| self.config.node_image.clone()),
            surge: s["maxSurge"].as_str().unwrap_or("10%").to_string(),
            unavailable: s["maxUnavailable"].as_str().unwrap_or("0").to_string(),
            drain_timeout: minutes("drainTimeoutInMinutes", 30),
            soak: minutes("nodeSoakDurationInMinutes", 0),
            cordon_undrainable: s["undrainableNodeBehavior"] == "Cordon",
            count: p.count,
        })
    }

    fn op_running(&self, id: &str) -> bool {
        self.operations
            .iter()
            .any(|o| o.id == id && o.status == "InProgress")
    }

    fn finish_roll(&mut self, id: &str, result: Result<(), Failure>) {
        let Some(op) = self.operations.iter_mut().find(|o| o.id == id) else {
            return;
        };
        if op.status != "InProgress" {
            // Aborted meanwhile: the abort set the states.
            return;
        }
        let (pool, to, image) = match &op.target {
            OperationTarget::AgentPool { pool, to, image } => {
                (pool.clone(), Some(to.clone()), image.clone())
            }
            OperationTarget::NodeImage { pool } => (pool.clone(), None, None),
            _ => return,
        };
        let failed = result.is_err();
        match result {
            Ok(()) => {
                op.status = "Succeeded".into();
                op.percent = 100.0;
            }
            Err(e) => {
                op.status = "Failed".into();
                op.error = Some(e);
            }
        }
        let image = image.unwrap_or_else(|| self.config.node_image.clone());
        let Some(p) = self
            .clusters
            .get_mut(&op.cluster)
            .and_then(|c| c.pools.get_mut(&pool))
        else {
            return;
        };
        if failed {
            p.provisioning = "Failed".into();
        } else {
            p.provisioning = "Succeeded".into();
            p.node_image = image;
            if let Some(to) = to {
                p.current = to;
            }
        }
    }

    fn take_op_failure(&mut self, id: &str) -> Option<Value> {
        self.operations
            .iter_mut()
            .find(|o| o.id == id)?
            .fail_with
            .take()
    }
}

/// `10%` of `count` rounded up, or a plain number.
fn amount(spec: &str, count: u32) -> u32 {
    match spec.strip_suffix('%') {
        Some(p) => {
            let pct: u32 = p.parse().unwrap_or(0);
            (count * pct).div_ceil(100)
        }
        None => spec.parse().unwrap_or(0),
    }
}

pub(crate) async fn roll(inner: Arc<Inner>, id: String) {
    let plan = inner.lock().roll_plan(&id);
    let result = match (plan, inner.sim.clone()) {
        (Some(plan), Some(sim)) => roll_on(&inner, &sim, &id, &plan).await,
        (Some(plan), None) => {
            // Without a simulator the pool has no nodes to move: it takes the time AKS would
            // need to reimage its instances.
            inner
                .sleep_sim(Duration::from_secs(120 * u64::from(plan.count.max(1))))
                .await;
            let failure = inner.lock().take_op_failure(&id);
            failure.map_or(Ok(()), Err)
        }
        (None, _) => Ok(()),
    };
    inner.lock().finish_roll(&id, result);
    inner
        .rolling
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

fn upgrade_failed(message: String, details: Vec<Value>) -> Failure {
    json!({ "code": "UpgradeFailed", "message": message, "details": details })
}

async fn roll_on(
    inner: &Arc<Inner>,
    sim: &SimHandle,
    id: &str,
    plan: &Plan,
) -> Result<(), Failure> {
    let failure = inner.lock().take_op_failure(id);
    if let Some(e) = failure {
        inner.sleep_sim(Duration::from_secs(120)).await;
        return Err(e);
    }
    let label = |n: &Value, k: &str| n["metadata"]["labels"][k].as_str().map(str::to_string);
    let old: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| label(n, AGENTPOOL_LABEL).as_deref() == Some(plan.pool.as_str()))
        .filter(|n| {
            n["status"]["nodeInfo"]["kubeletVersion"] != plan.kubelet.as_str()
                || label(n, NODE_IMAGE_LABEL).as_deref() != Some(plan.image.as_str())
        })
        .filter(|n| label(n, QUARANTINE_LABEL).is_none())
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    let client = no_retry_client(sim).map_err(|e| upgrade_failed(e, Vec::new()))?;
    let surge = amount(&plan.surge, plan.count);
    let batch = (surge + amount(&plan.unavailable, plan.count)).max(1) as usize;
    for chunk in old.chunks(batch) {
        let running = inner.lock().op_running(id);
        if !running {
            return Ok(());
        }
        // Surge: new nodes join at the new version before anything is drained.
        let mut joined = Vec::new();
        for _ in 0..(surge as usize).min(chunk.len()) {
            joined.push(add_node(inner, sim, plan)?);
        }
        wait_ready(inner, sim, &joined).await?;
        for node in chunk {
            cordon(&client, node)
                .await
                .map_err(|e| upgrade_failed(e, Vec::new()))?;
        }
        for node in chunk {
            match drain(inner, &client, sim, node, plan.drain_timeout).await {
                Ok(()) => {}
                Err(blocked) if plan.cordon_undrainable => {
                    quarantine(&client, node).await?;
                    tracing::info!("AKS mock: {node} quarantined, blocked by {blocked:?}");
                }
                Err(blocked) => {
                    return Err(upgrade_failed(
                        format!(
                            "Drain node {node} failed when evicting pod {}: Eviction failed with \
                             Too many Requests error. This is often caused by a restrictive Pod \
                             Disruption Budget (PDB) policy. See \
                             http://aka.ms/aks/debugdrainfailures",
                            blocked.first().map(String::as_str).unwrap_or("?")
                        ),
                        blocked
                            .iter()
                            .map(|p| json!({ "code": "PodDrainFailure", "message": format!("pod {p} could not be evicted"), "target": node }))
                            .collect(),
                    ));
                }
            }
            if !plan.soak.is_zero() {
                inner.sleep_sim(plan.soak).await;
            }
        }
        for node in chunk {
            let quarantined = sim
                .get("nodes", None, node)
                .is_some_and(|n| label(&n, QUARANTINE_LABEL).is_some());
            if quarantined {
                continue;
            }
            sim.remove_node(node)
                .map_err(|e| upgrade_failed(e.to_string(), Vec::new()))?;
        }
        // Without surge the pool shrank; the reimaged nodes come back at the new version.
        let missing = chunk.len().saturating_sub(joined.len());
        let mut back = Vec::new();
        for _ in 0..missing {
            back.push(add_node(inner, sim, plan)?);
        }
        wait_ready(inner, sim, &back).await?;
    }
    Ok(())
}

fn add_node(inner: &Arc<Inner>, sim: &SimHandle, plan: &Plan) -> Result<String, Failure> {
    let name = format!(
        "aks-{}-31415926-vmss{:06}",
        plan.pool,
        100 + inner.next_instance()
    );
    let node = Node::new(name.clone())
        .pool(plan.pool.clone())
        .kubelet_version(plan.kubelet.clone())
        .label(AGENTPOOL_LABEL, plan.pool.clone())
        .label("agentpool", plan.pool.clone())
        .label(MODE_LABEL, plan.mode.clone())
        .label(NODE_IMAGE_LABEL, plan.image.clone());
    sim.add_node(node).map_err(|e| {
        upgrade_failed(
            format!("VM {name} failed to join the cluster: {e}"),
            Vec::new(),
        )
    })?;
    Ok(name)
}

async fn wait_ready(inner: &Arc<Inner>, sim: &SimHandle, nodes: &[String]) -> Result<(), Failure> {
    let by = inner.now() + 15.0 * 60.0;
    while !nodes.iter().all(|n| node_ready(sim, n)) {
        if inner.now() >= by {
            return Err(upgrade_failed(
                format!("Nodes {} did not become Ready", nodes.join(", ")),
                Vec::new(),
            ));
        }
        inner.sleep_sim(Duration::from_secs(5)).await;
    }
    Ok(())
}

async fn quarantine(client: &kube::Client, node: &str) -> Result<(), Failure> {
    send(
        client,
        http::Method::PATCH,
        &format!("/api/v1/nodes/{node}"),
        "application/strategic-merge-patch+json",
        Some(json!({ "metadata": { "labels": { QUARANTINE_LABEL: "Quarantined" } } })),
    )
    .await
    .map(|_| ())
    .map_err(|e| upgrade_failed(format!("label {node}: {e}"), Vec::new()))
}

/// Evicts every evictable pod of `node`, retrying PDB refusals until `timeout` (simulated);
/// the still-blocked pods when it passes.
async fn drain(
    inner: &Arc<Inner>,
    client: &kube::Client,
    sim: &SimHandle,
    node: &str,
    timeout: Duration,
) -> Result<(), Vec<String>> {
    let deadline = inner.now() + timeout.as_secs_f64();
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
            // Evicted pods still terminating keep the node until they are gone.
            let terminating = sim.pods_on_node(node).iter().any(|p| {
                !p["metadata"]["deletionTimestamp"].is_null() && {
                    let mut q = p.clone();
                    q["metadata"]["deletionTimestamp"] = Value::Null;
                    evictable(&q)
                }
            });
            if !terminating || inner.now() >= deadline {
                return Ok(());
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
                Err(_) => blocked.push(format!("{ns}/{name}")),
            }
        }
        if !blocked.is_empty() && inner.now() >= deadline {
            return Err(blocked);
        }
        inner.sleep_sim(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::amount;

    #[test]
    fn surge_percentages_round_up() {
        assert_eq!(amount("10%", 3), 1);
        assert_eq!(amount("33%", 10), 4);
        assert_eq!(amount("2", 10), 2);
        assert_eq!(amount("0", 10), 0);
    }
}
