//! Node-pool upgrades played out on the Kubernetes simulator the way GKE does them.
//!
//! - Surge: `maxSurge` new nodes at the new version join, then old nodes are cordoned and
//!   drained through the eviction API and deleted, `maxSurge + maxUnavailable` at a time.
//! - Blue-green: the whole green pool joins, the blue pool is cordoned, drained in batches
//!   with a soak after each, the pool soaks, then the blue nodes are deleted. Until that
//!   deletion starts, `rollback` brings the blue nodes back and removes the green ones;
//!   `completeUpgrade` cuts the pool soak short.
//! - Drains respect PodDisruptionBudgets for up to one hour (`pdb_timeout`, on the mock's
//!   scaled clock); pods still blocked then are deleted anyway, as GKE does.
//! - Cancel stops at the next node; rollback puts the pool's nodes back at its old version.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Inner;
use super::state::{Failure, OpTarget, Strategy, kubelet_of};
use crate::k8s::{Node, SimHandle};

/// The label GKE puts on every node of a node pool.
pub const NODE_POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// How a roll ended.
enum End {
    Done,
    Failed(String, String, Vec<(String, String)>),
    Cancelled,
    /// A blue-green upgrade stopped for the rollback operation named.
    RolledBack(String),
}

struct Job {
    op: String,
    cluster: String,
    pool: String,
    version: String,
    strategy: Strategy,
    rollback: bool,
    respect_pdb: bool,
    size: u32,
}

fn job_of(inner: &Inner, op_name: &str) -> Option<Job> {
    let s = inner.lock();
    let op = s.operations.iter().find(|o| o.name == op_name)?;
    let OpTarget::NodePool {
        pool,
        version,
        strategy,
        rollback,
        respect_pdb,
    } = &op.target
    else {
        return None;
    };
    let size = s
        .clusters
        .get(&op.cluster)?
        .pools
        .get(pool)?
        .spec
        .node_count;
    Some(Job {
        op: op.name.clone(),
        cluster: op.cluster.clone(),
        pool: pool.clone(),
        version: version.clone(),
        strategy: strategy.clone(),
        rollback: *rollback,
        respect_pdb: *respect_pdb,
        size,
    })
}

pub(crate) async fn roll(inner: Arc<Inner>, op_name: String) {
    let Some(job) = job_of(&inner, &op_name) else {
        return;
    };
    if job.rollback && matches!(job.strategy, Strategy::BlueGreen { .. }) {
        // A rollback during a blue-green upgrade is carried out by that upgrade's roller.
        return;
    }
    let end = if job.rollback {
        restore(&inner, &job).await
    } else {
        match &job.strategy {
            Strategy::Surge {
                max_surge,
                max_unavailable,
            } => surge(&inner, &job, *max_surge, *max_unavailable).await,
            Strategy::BlueGreen { .. } => blue_green(&inner, &job).await,
        }
    };
    if let End::RolledBack(rollback_op) = &end {
        finish(&inner, &job, &End::RolledBack(rollback_op.clone()));
        set_phase(&inner, &job, Some("ROLLBACK_STARTED"));
        let respect_pdb = {
            let s = inner.lock();
            s.operations
                .iter()
                .find(|o| &o.name == rollback_op)
                .is_some_and(|o| {
                    matches!(
                        o.target,
                        OpTarget::NodePool {
                            respect_pdb: true,
                            ..
                        }
                    )
                })
        };
        let version = previous_version(&inner, &job).unwrap_or_default();
        let rb = Job {
            op: rollback_op.clone(),
            rollback: true,
            respect_pdb,
            version,
            ..job
        };
        let end = restore(&inner, &rb).await;
        finish(&inner, &rb, &end);
        return;
    }
    finish(&inner, &job, &end);
}

fn previous_version(inner: &Inner, job: &Job) -> Option<String> {
    let s = inner.lock();
    s.clusters
        .get(&job.cluster)?
        .pools
        .get(&job.pool)?
        .previous_version
        .clone()
}

fn finish(inner: &Inner, job: &Job, end: &End) {
    let mut s = inner.lock();
    let now = s.now();
    if let Some(op) = s.operations.iter_mut().find(|o| o.name == job.op) {
        op.status = "DONE".into();
        op.ended = Some(now);
        match end {
            End::Done => op.progress.0 = op.progress.1,
            End::Failed(code, message, conditions) => {
                op.error = Some((code.clone(), message.clone()));
                op.conditions = conditions.clone();
            }
            End::Cancelled => {
                op.error = Some(("CANCELLED".into(), "Operation was canceled.".into()));
            }
            End::RolledBack(by) => {
                op.error = Some((
                    "ABORTED".into(),
                    format!("The node pool upgrade was rolled back by operation {by}."),
                ));
            }
        }
    }
    if let Some(p) = s
        .clusters
        .get_mut(&job.cluster)
        .and_then(|c| c.pools.get_mut(&job.pool))
    {
        match (end, job.rollback) {
            (End::RolledBack(_), _) => return,
            (End::Done, false) => {
                p.spec.version = job.version.clone();
                p.previous_version = None;
            }
            (End::Done, true) => {
                p.spec.version = job.version.clone();
                p.previous_version = None;
            }
            _ => {}
        }
        p.status = "RUNNING".into();
        p.phase = None;
        p.green_version = None;
        p.complete_requested = false;
        p.rollback_requested = None;
    }
}

fn set_phase(inner: &Inner, job: &Job, phase: Option<&str>) {
    let mut s = inner.lock();
    if let Some(p) = s
        .clusters
        .get_mut(&job.cluster)
        .and_then(|c| c.pools.get_mut(&job.pool))
    {
        p.phase = phase.map(String::from);
        p.green_version = phase.map(|_| job.version.clone());
    }
    if let Some(op) = s.operations.iter_mut().find(|o| o.name == job.op) {
        op.detail = phase
            .map(|p| format!("Blue-green phase {p}"))
            .unwrap_or_default();
    }
}

fn cancelled(inner: &Inner, job: &Job) -> bool {
    inner
        .lock()
        .operations
        .iter()
        .find(|o| o.name == job.op)
        .is_some_and(|o| o.cancel)
}

fn rollback_requested(inner: &Inner, job: &Job) -> Option<String> {
    let s = inner.lock();
    s.clusters
        .get(&job.cluster)?
        .pools
        .get(&job.pool)?
        .rollback_requested
        .clone()
}

fn complete_requested(inner: &Inner, job: &Job) -> bool {
    let s = inner.lock();
    s.clusters
        .get(&job.cluster)
        .and_then(|c| c.pools.get(&job.pool))
        .is_some_and(|p| p.complete_requested)
}

fn take_failure(inner: &Inner, job: &Job) -> Option<Failure> {
    let mut s = inner.lock();
    s.operations
        .iter_mut()
        .find(|o| o.name == job.op)?
        .fail_with
        .take()
}

fn progress(inner: &Inner, job: &Job, done: u32, total: u32) {
    let mut s = inner.lock();
    if let Some(op) = s.operations.iter_mut().find(|o| o.name == job.op) {
        op.progress = (done, total);
    }
}

fn note(inner: &Inner, job: &Job, detail: String) {
    let mut s = inner.lock();
    if let Some(op) = s.operations.iter_mut().find(|o| o.name == job.op) {
        op.detail = detail;
    }
}

/// Sleeps `secs` simulated seconds, checking `stop` every simulated second.
async fn soak(inner: &Inner, secs: f64, stop: impl Fn() -> bool) -> bool {
    let until = inner.now() + secs;
    while inner.now() < until {
        if stop() {
            return true;
        }
        inner.sleep_sim(Duration::from_secs(1)).await;
    }
    stop()
}

async fn surge(inner: &Arc<Inner>, job: &Job, max_surge: u32, max_unavailable: u32) -> End {
    let Some(sim) = inner.sim.clone() else {
        return without_sim(inner, job).await;
    };
    let kubelet = kubelet_of(&job.version);
    let old = pool_nodes(&sim, &job.pool, |k| k != kubelet);
    let total = u32::try_from(old.len()).unwrap_or(u32::MAX);
    progress(inner, job, 0, total);
    let client = match no_retry_client(&sim) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let batch = (max_surge + max_unavailable).max(1) as usize;
    let mut done = 0;
    for (i, chunk) in old.chunks(batch).enumerate() {
        if cancelled(inner, job) {
            return End::Cancelled;
        }
        if i > 0
            && let Some((code, message, conditions)) = take_failure(inner, job)
        {
            return End::Failed(code, message, conditions);
        }
        let surge_now = chunk.len().min(max_surge as usize);
        if let Err(e) = join(inner, &sim, job, &kubelet, surge_now).await {
            return e;
        }
        for node in chunk {
            if let Err(e) = patch_unschedulable(&client, node, true).await {
                return internal(e);
            }
        }
        for node in chunk {
            if let Err(e) = drain(inner, &client, &sim, job, node, job.respect_pdb).await {
                return internal(e);
            }
            if let Err(e) = sim.remove_node(node) {
                return internal(e);
            }
            done += 1;
            progress(inner, job, done, total);
        }
        if let Err(e) = join(inner, &sim, job, &kubelet, chunk.len() - surge_now).await {
            return e;
        }
    }
    if let Some((code, message, conditions)) = take_failure(inner, job) {
        return End::Failed(code, message, conditions);
    }
    End::Done
}

async fn blue_green(inner: &Arc<Inner>, job: &Job) -> End {
    let Strategy::BlueGreen {
        batch_nodes,
        batch_percentage,
        batch_soak,
        node_pool_soak,
    } = job.strategy.clone()
    else {
        return End::Done;
    };
    let Some(sim) = inner.sim.clone() else {
        return without_sim(inner, job).await;
    };
    let kubelet = kubelet_of(&job.version);
    let blue = pool_nodes(&sim, &job.pool, |k| k != kubelet);
    let total = u32::try_from(blue.len()).unwrap_or(u32::MAX);
    progress(inner, job, 0, total);
    let client = match no_retry_client(&sim) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let stop = || {
        if let Some(rb) = rollback_requested(inner, job) {
            return Some(End::RolledBack(rb));
        }
        cancelled(inner, job).then_some(End::Cancelled)
    };
    set_phase(inner, job, Some("CREATING_GREEN_POOL"));
    if let Err(e) = join(inner, &sim, job, &kubelet, blue.len()).await {
        return e;
    }
    if let Some((code, message, conditions)) = take_failure(inner, job) {
        return End::Failed(code, message, conditions);
    }
    if let Some(end) = stop() {
        return end;
    }
    set_phase(inner, job, Some("CORDONING_BLUE_POOL"));
    for node in &blue {
        if let Err(e) = patch_unschedulable(&client, node, true).await {
            return internal(e);
        }
    }
    set_phase(inner, job, Some("DRAINING_BLUE_POOL"));
    let batch = match (batch_nodes, batch_percentage) {
        (Some(n), _) => n as usize,
        (None, Some(p)) => ((p * blue.len() as f64).ceil() as usize).max(1),
        (None, None) => 1,
    };
    let mut done = 0;
    for chunk in blue.chunks(batch.max(1)) {
        if let Some(end) = stop() {
            return end;
        }
        for node in chunk {
            if let Err(e) = drain(inner, &client, &sim, job, node, true).await {
                return internal(e);
            }
            done += 1;
            progress(inner, job, done, total);
        }
        if soak(inner, batch_soak, || stop().is_some()).await
            && let Some(end) = stop()
        {
            return end;
        }
    }
    set_phase(inner, job, Some("NODE_POOL_SOAKING"));
    if soak(inner, node_pool_soak, || {
        stop().is_some() || complete_requested(inner, job)
    })
    .await
        && let Some(end) = stop()
    {
        return end;
    }
    set_phase(inner, job, Some("DELETING_BLUE_POOL"));
    for node in &blue {
        if let Err(e) = sim.remove_node(node) {
            return internal(e);
        }
    }
    End::Done
}

/// Puts the pool's nodes back at `job.version`: nodes already there are uncordoned, the
/// others drained and replaced (only as far as the pool is short of nodes).
async fn restore(inner: &Arc<Inner>, job: &Job) -> End {
    let Some(sim) = inner.sim.clone() else {
        return without_sim(inner, job).await;
    };
    let kubelet = kubelet_of(&job.version);
    let client = match no_retry_client(&sim) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let keep = pool_nodes(&sim, &job.pool, |k| k == kubelet);
    let others = pool_nodes(&sim, &job.pool, |k| k != kubelet);
    let total = u32::try_from(others.len()).unwrap_or(u32::MAX);
    progress(inner, job, 0, total);
    for node in &keep {
        if let Err(e) = patch_unschedulable(&client, node, false).await {
            return internal(e);
        }
    }
    let mut have = keep.len();
    let mut done = 0;
    for node in &others {
        if (have as u32) < job.size {
            if let Err(e) = join(inner, &sim, job, &kubelet, 1).await {
                return e;
            }
            have += 1;
        }
        if let Err(e) = patch_unschedulable(&client, node, true).await {
            return internal(e);
        }
        if let Err(e) = drain(inner, &client, &sim, job, node, job.respect_pdb).await {
            return internal(e);
        }
        if let Err(e) = sim.remove_node(node) {
            return internal(e);
        }
        done += 1;
        progress(inner, job, done, total);
    }
    End::Done
}

/// Without a simulator the pool has no nodes to move: it takes the time GKE would need.
async fn without_sim(inner: &Arc<Inner>, job: &Job) -> End {
    progress(inner, job, 0, job.size);
    for done in 0..job.size {
        if let Some(rb) = rollback_requested(inner, job).filter(|_| !job.rollback) {
            return End::RolledBack(rb);
        }
        if cancelled(inner, job) {
            return End::Cancelled;
        }
        if done > 0
            && let Some((code, message, conditions)) = take_failure(inner, job)
        {
            return End::Failed(code, message, conditions);
        }
        inner.sleep_sim(Duration::from_secs(60)).await;
        progress(inner, job, done + 1, job.size);
    }
    if let Some((code, message, conditions)) = take_failure(inner, job) {
        return End::Failed(code, message, conditions);
    }
    if let Strategy::BlueGreen { node_pool_soak, .. } = job.strategy
        && !job.rollback
    {
        set_phase(inner, job, Some("NODE_POOL_SOAKING"));
        soak(inner, node_pool_soak, || {
            rollback_requested(inner, job).is_some() || complete_requested(inner, job)
        })
        .await;
        if let Some(rb) = rollback_requested(inner, job) {
            return End::RolledBack(rb);
        }
    }
    End::Done
}

fn internal(e: impl ToString) -> End {
    End::Failed("INTERNAL".into(), e.to_string(), Vec::new())
}

fn pool_nodes(sim: &SimHandle, pool: &str, kubelet: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][NODE_POOL_LABEL] == pool)
        .filter(|n| {
            kubelet(
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or(""),
            )
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

/// `count` new nodes join the pool at `kubelet` and become Ready.
async fn join(
    inner: &Arc<Inner>,
    sim: &SimHandle,
    job: &Job,
    kubelet: &str,
    count: usize,
) -> Result<(), End> {
    let mut joined = Vec::new();
    for _ in 0..count {
        let name = inner.next_node_name(&job.cluster, &job.pool);
        let node = Node::new(name.clone())
            .pool(job.pool.clone())
            .kubelet_version(kubelet)
            .label(NODE_POOL_LABEL, job.pool.clone())
            .label("cloud.google.com/machine-family", "e2");
        sim.add_node(node).map_err(|e| {
            End::Failed(
                "INTERNAL".into(),
                format!("Node {name} failed to register: {e}"),
                Vec::new(),
            )
        })?;
        joined.push(name);
    }
    let by = inner.now() + 15.0 * 60.0;
    while !joined.iter().all(|n| node_ready(sim, n)) {
        if inner.now() > by {
            return Err(End::Failed(
                "DEADLINE_EXCEEDED".into(),
                format!("Nodes {} did not become Ready.", joined.join(", ")),
                Vec::new(),
            ));
        }
        inner.sleep_sim(Duration::from_secs(5)).await;
    }
    Ok(())
}

fn node_ready(sim: &SimHandle, name: &str) -> bool {
    sim.get("nodes", None, name).is_some_and(|n| {
        n["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    })
}

fn no_retry_client(sim: &SimHandle) -> Result<kube::Client, String> {
    let mut config = sim.client_config();
    // An eviction's 429 is the PDB's answer; the roller retries on its own schedule.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

async fn send(
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

async fn patch_unschedulable(client: &kube::Client, node: &str, on: bool) -> Result<(), String> {
    let value = if on { json!(true) } else { Value::Null };
    send(
        client,
        http::Method::PATCH,
        &format!("/api/v1/nodes/{node}"),
        "application/strategic-merge-patch+json",
        Some(json!({ "spec": { "unschedulable": value } })),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("cordon {node}: {e}"))
}

fn evictable(pod: &Value) -> bool {
    let daemon = pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"));
    let mirror = pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string();
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    !daemon && !mirror && !finished
}

/// Drains `node` through the eviction API. With `respect_pdb`, evictions refused by a budget
/// are retried until `pdb_timeout` has passed; then (or at once without `respect_pdb`) the
/// pods are deleted, as GKE does.
async fn drain(
    inner: &Arc<Inner>,
    client: &kube::Client,
    sim: &SimHandle,
    job: &Job,
    node: &str,
    respect_pdb: bool,
) -> Result<(), String> {
    let timeout = inner.lock().config.pdb_timeout.as_secs_f64();
    let give_up = inner.now() + if respect_pdb { timeout } else { 0.0 };
    loop {
        let pods = sim.pods_on_node(node);
        let pending: Vec<(String, String)> = pods
            .iter()
            .filter(|p| evictable(p) && p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| {
                Some((
                    p["metadata"]["namespace"].as_str()?.to_string(),
                    p["metadata"]["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        if pending.is_empty() {
            let terminating = pods
                .iter()
                .any(|p| evictable(p) && !p["metadata"]["deletionTimestamp"].is_null());
            if !terminating {
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
                Err(kube::Error::Api(e)) if e.code == 429 || e.code == 500 => {
                    blocked.push(format!("{ns}/{name}"));
                }
                Err(e) => return Err(format!("evict {ns}/{name}: {e}")),
            }
        }
        if !blocked.is_empty() && inner.now() >= give_up {
            note(
                inner,
                job,
                format!(
                    "Pods {} on node {node} were still protected by a PodDisruptionBudget \
                     after {}s; deleting them.",
                    blocked.join(", "),
                    timeout as u64
                ),
            );
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
