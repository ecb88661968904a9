//! A stateful mock of the Amazon EKS API on wiremock, serving what `aws-sdk-eks` (and the
//! `aws` CLI) send: cluster versions, clusters, updates, managed node groups, add-ons with
//! per-version compatibility, and upgrade-readiness insights.
//!
//! Updates progress `InProgress` → `Successful` over simulated time; a second update while one
//! runs gets `ResourceInUseException` (409); bad input gets `InvalidParameterException` (400);
//! errors carry `x-amzn-errortype` and a JSON `message`, as EKS sends them. Given a
//! [`crate::k8s::SimHandle`], node-group updates replace the group's nodes in the simulator
//! the way EKS does (see `roll.rs`), and control-plane updates move the simulated API server.
//!
//! Version rollback: UpdateClusterVersion with the previous minor and a `rollbackConfig`
//! (`timeoutMinutes` 120–10080) runs as a `VersionRollback` update within 7 days of the end of
//! the in-place upgrade it undoes ([`EksMock::age_updates`] moves that into the past); more
//! than one minor back or without that upgrade it is `InvalidParameterException` or
//! `InvalidRequestException`, as is a node group newer than the version asked for; a
//! downgrade without `rollbackConfig` stays `InvalidParameterException`.
//!
//! ```no_run
//! use kup_mocks::eks::{EksConfig, EksMock};
//! # async fn demo() -> kup_mocks::Result<()> {
//! let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None).await?;
//! println!("EKS endpoint: {}", mock.endpoint());
//! # Ok(()) }
//! ```

mod demo;
mod model;
pub(crate) mod roll;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use demo::demo_scenario;
pub use model::{
    AddonCatalogEntry, AddonVersion, ClusterVersion, EksAddon, EksCluster, EksConfig,
    EksDeprecation, EksInsight, EksNodegroup, demo_cluster, standard_addon_catalog,
    standard_versions,
};
pub use roll::{LT_VERSION_LABEL, NODEGROUP_LABEL};
pub use state::{ApiError, EksFault, Update, UpdateTarget};

use crate::k8s::SimHandle;
use state::{Call, State};

type Errors = Vec<(String, String, Vec<String>)>;

pub(crate) struct Inner {
    state: Mutex<State>,
    sim: Option<SimHandle>,
    rolling: Mutex<BTreeSet<String>>,
    node_seq: Mutex<u32>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data: every mutation is one step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn scale(&self) -> f64 {
        self.lock().config.time_scale
    }

    fn eviction_timeout(&self) -> Duration {
        self.lock().config.eviction_timeout
    }

    async fn sleep_sim(&self, d: Duration) {
        let real = d.as_secs_f64() / self.scale();
        tokio::time::sleep(Duration::from_secs_f64(real.clamp(0.005, 5.0))).await;
    }

    fn deadline(&self, d: Duration) -> f64 {
        let s = self.lock();
        s.now() + d.as_secs_f64()
    }

    fn past(&self, deadline: f64) -> bool {
        self.lock().now() >= deadline
    }

    fn next_node_name(&self) -> String {
        let mut n = self.node_seq.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        format!("ip-10-0-{}-{}.ec2.internal", 100 + *n / 250, 10 + *n % 250)
    }

    fn with_nodegroup<T>(
        &self,
        cluster: &str,
        update_id: &str,
        f: impl FnOnce(&state::NodegroupState, &Update) -> T,
    ) -> Option<T> {
        let s = self.lock();
        let c = s.clusters.get(cluster)?;
        let u = c.updates.iter().find(|u| u.id == update_id)?;
        let (ng, ..) = roll::target_of(&u.target)?;
        let n = c.nodegroups.get(&ng)?;
        Some(f(n, u))
    }

    /// (node group, target minor, kubelet version string, force, batch size, launch template
    /// version).
    fn nodegroup_update(
        &self,
        cluster: &str,
        update_id: &str,
    ) -> Option<(String, String, String, bool, u32, Option<String>)> {
        let patch = {
            let s = self.lock();
            let c = s.clusters.get(cluster)?;
            let u = c.updates.iter().find(|u| u.id == update_id)?;
            let (_, version, ..) = roll::target_of(&u.target)?;
            s.patch_of(&version)
        };
        self.with_nodegroup(cluster, update_id, |n, u| {
            let (ng, version, _, force) = roll::target_of(&u.target).unwrap_or_default();
            let lt = match &u.target {
                UpdateTarget::Nodegroup {
                    launch_template_version,
                    ..
                } => launch_template_version.clone(),
                _ => None,
            };
            (
                ng,
                version,
                format!("v{patch}-eks-3025e55"),
                force,
                n.spec.max_unavailable,
                lt,
            )
        })
    }

    fn take_failure(&self, cluster: &str, update_id: &str) -> Option<Errors> {
        let mut s = self.lock();
        let u = s
            .clusters
            .get_mut(cluster)?
            .updates
            .iter_mut()
            .find(|u| u.id == update_id)?;
        u.fail_with.take()
    }

    fn finish_nodegroup(&self, cluster: &str, update_id: &str, result: Result<(), Errors>) {
        let mut s = self.lock();
        let now = s.now();
        let Some(c) = s.clusters.get_mut(cluster) else {
            return;
        };
        let Some(u) = c.updates.iter_mut().find(|u| u.id == update_id) else {
            return;
        };
        let Some((ng, version, release, _)) = roll::target_of(&u.target) else {
            return;
        };
        let lt_version = match &u.target {
            UpdateTarget::Nodegroup {
                launch_template_version,
                ..
            } => launch_template_version.clone(),
            _ => None,
        };
        match result {
            Ok(()) => {
                u.status = "Successful".into();
                if let Some(n) = c.nodegroups.get_mut(&ng) {
                    n.spec.version = version;
                    n.spec.release_version = release;
                    if let (Some((_, v)), Some(to)) = (n.spec.launch_template.as_mut(), lt_version)
                    {
                        *v = to;
                    }
                }
            }
            Err(errors) => {
                u.status = "Failed".into();
                u.errors = errors;
            }
        }
        u.ended_sim = Some(now);
        if let Some(n) = c.nodegroups.get_mut(&ng) {
            n.status = "ACTIVE".into();
            n.modified_sim = now;
        }
        drop(s);
        self.rolling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(update_id);
    }
}

struct Responder(Weak<Inner>);

fn parse_query(q: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(decode(k)).or_default().push(decode(v));
    }
    out
}

pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_response(e: &ApiError) -> ResponseTemplate {
    ResponseTemplate::new(e.status)
        .insert_header("x-amzn-errortype", e.kind.as_str())
        .insert_header("x-amzn-requestid", "7a4c55d1-6f0e-4b4e-9d53-0d8e4d6f2c11")
        .set_body_raw(
            json!({ "message": e.message }).to_string(),
            "application/json",
        )
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Some(inner) = self.0.upgrade() else {
            return ResponseTemplate::new(503);
        };
        let body: Value = if request.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&request.body) {
                Ok(v) => v,
                Err(e) => {
                    return error_response(&ApiError {
                        status: 400,
                        kind: "SerializationException".into(),
                        message: format!("request body is not JSON: {e}"),
                    });
                }
            }
        };
        let segments = request
            .url
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect();
        let call = Call {
            method: request.method.as_str(),
            segments,
            query: parse_query(request.url.query()),
            body,
        };
        let (_, answer) = inner.lock().route(&call);
        match answer {
            Ok(v) => ResponseTemplate::new(200)
                .insert_header("x-amzn-requestid", "5f0e2a8c-1b7d-4c3e-8a9f-2d6b4e8c0a11")
                .set_body_raw(v.to_string(), "application/json"),
            Err(e) => error_response(&e),
        }
    }
}

/// A running EKS mock.
pub struct EksMock {
    server: MockServer,
    inner: Arc<Inner>,
    controller: JoinHandle<()>,
}

impl std::fmt::Debug for EksMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksMock")
            .field("endpoint", &self.server.uri())
            .finish()
    }
}

impl EksMock {
    /// Starts the mock on 127.0.0.1 (a random port). With `sim`, node-group updates replace
    /// nodes in the simulator and control-plane updates set its API server version.
    pub async fn start(config: EksConfig, sim: Option<SimHandle>) -> crate::Result<EksMock> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| crate::Error::Io {
                context: "binding the EKS mock to 127.0.0.1".into(),
                source,
            })?;
        let server = MockServer::builder().listener(listener).start().await;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(config)),
            sim,
            rolling: Mutex::new(BTreeSet::new()),
            node_seq: Mutex::new(0),
        });
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(Arc::downgrade(&inner)))
            .mount(&server)
            .await;
        let controller = tokio::spawn(control_loop(Arc::downgrade(&inner)));
        Ok(EksMock {
            server,
            inner,
            controller,
        })
    }

    /// The endpoint to give the SDK (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// Adds a fault.
    pub fn inject(&self, fault: EksFault) {
        let mut s = self.inner.lock();
        if let EksFault::SlowUpdates(f) = fault {
            s.slow_factor = f.max(1);
        } else {
            s.faults.push_back(fault);
        }
    }

    /// Adds a cluster.
    pub fn add_cluster(&self, cluster: EksCluster) {
        self.inner.lock().add_cluster(cluster);
    }

    /// Sets an insight's status (`PASSING`, `WARNING`, `ERROR`, `UNKNOWN`).
    pub fn set_insight_status(&self, cluster: &str, id: &str, status: &str) {
        let mut s = self.inner.lock();
        if let Some(i) = s
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.insights.iter_mut().find(|i| i.id == id))
        {
            i.status = status.to_string();
        }
    }

    /// The cluster's control-plane minor.
    pub fn cluster_version(&self, cluster: &str) -> Option<String> {
        let mut s = self.inner.lock();
        s.tick();
        s.clusters.get(cluster).map(|c| c.version.clone())
    }

    /// A node group's minor and release version.
    pub fn nodegroup_version(&self, cluster: &str, ng: &str) -> Option<(String, String)> {
        let s = self.inner.lock();
        let n = s.clusters.get(cluster)?.nodegroups.get(ng)?;
        Some((n.spec.version.clone(), n.spec.release_version.clone()))
    }

    /// A node group's launch template (name, version the group uses), when it has one.
    pub fn nodegroup_launch_template(&self, cluster: &str, ng: &str) -> Option<(String, String)> {
        let s = self.inner.lock();
        s.clusters
            .get(cluster)?
            .nodegroups
            .get(ng)?
            .spec
            .launch_template
            .clone()
    }

    /// Creates the next version of a node group's launch template (what
    /// `aws ec2 create-launch-template-version` does) and returns its number; `None` when the
    /// group has no launch template.
    pub fn create_launch_template_version(&self, cluster: &str, ng: &str) -> Option<String> {
        let mut s = self.inner.lock();
        let n = s.clusters.get_mut(cluster)?.nodegroups.get_mut(ng)?;
        n.spec.launch_template.as_ref()?;
        n.lt_latest += 1;
        Some(n.lt_latest.to_string())
    }

    /// An add-on's installed version.
    pub fn addon_version(&self, cluster: &str, addon: &str) -> Option<String> {
        let mut s = self.inner.lock();
        s.tick();
        Some(s.clusters.get(cluster)?.addons.get(addon)?.version.clone())
    }

    /// Every update the cluster has seen, oldest first.
    pub fn updates(&self, cluster: &str) -> Vec<Update> {
        let mut s = self.inner.lock();
        s.tick();
        s.clusters
            .get(cluster)
            .map(|c| c.updates.clone())
            .unwrap_or_default()
    }

    /// Moves every update of `cluster` `by` into the past, as if it had happened that much
    /// earlier: lets a test run EKS's 7-day rollback window out without waiting.
    pub fn age_updates(&self, cluster: &str, by: Duration) {
        let mut s = self.inner.lock();
        s.tick();
        s.age_updates(cluster, by);
    }

    /// How many times each operation was called (`DescribeCluster` → 12).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.lock().calls.clone()
    }

    /// Stops the mock's background work (the HTTP server stops when the mock is dropped).
    pub fn shutdown(&self) {
        self.controller.abort();
    }
}

impl Drop for EksMock {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// Finishes timed updates, moves the simulator's API server, and starts node-group rolls.
async fn control_loop(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let (reached, to_roll) = {
            let mut s = inner.lock();
            s.tick();
            let reached = std::mem::take(&mut s.control_plane_reached);
            let to_roll: Vec<(String, String)> = s
                .clusters
                .values()
                .flat_map(|c| {
                    c.updates
                        .iter()
                        .filter(|u| {
                            u.status == "InProgress"
                                && matches!(u.target, UpdateTarget::Nodegroup { .. })
                        })
                        .map(|u| (c.name.clone(), u.id.clone()))
                })
                .collect();
            (reached, to_roll)
        };
        if let Some(sim) = &inner.sim {
            for (_, patch) in reached {
                if let Err(e) = sim.set_api_server_version(&format!("v{patch}-eks-3025e55")) {
                    tracing::warn!("EKS mock: cannot move the simulated API server: {e}");
                }
            }
        }
        for (cluster, id) in to_roll {
            let fresh = inner
                .rolling
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
            if fresh {
                tokio::spawn(roll::roll(inner.clone(), cluster, id));
            }
        }
    }
}
