//! A stateful mock of the Google Kubernetes Engine API (v1, REST/JSON) on wiremock, serving
//! what `google-cloud-container-v1` (and Python's `google-cloud-container` over REST) send:
//! server config, clusters, node pools, operations, upgrade info, rollback and completion of
//! node-pool upgrades, and rollback-safe (two-step) control-plane minor upgrades: an
//! `updateCluster` with `desiredMasterVersion` and `desiredRollbackSafeUpgrade` soaks after
//! step one (`fetchClusterUpgradeInfo` reports `rollbackSafeUpgradeStatus`), an `updateMaster`
//! back to the previous version during the soak rolls it back, and after the soak's end or
//! `completeControlPlaneUpgrade` a downgrade is refused with `FAILED_PRECONDITION`.
//!
//! Operations move `PENDING` → `RUNNING` → `DONE` over simulated time, with progress metrics;
//! a failed operation is `DONE` with `error` set. A second operation while one runs gets
//! `FAILED_PRECONDITION` (HTTP 400); errors are `google.rpc.Status` bodies carrying the
//! `status` name the client reads. Enums are accepted as names or numbers and answered as
//! numbers when the request asks for `enum-encoding=int`, as GKE does; empty and unknown query
//! parameters are ignored. Given a [`crate::k8s::SimHandle`], node-pool upgrades replace the
//! pool's nodes in the simulator the way GKE does (see `roll.rs`) and control-plane upgrades
//! move the simulated API server.
//!
//! ```no_run
//! use kup_mocks::gke::{GkeConfig, GkeMock};
//! # async fn demo() -> kup_mocks::Result<()> {
//! let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0), None).await?;
//! println!("GKE endpoint: {}", mock.endpoint());
//! # Ok(()) }
//! ```

mod demo;
mod model;
mod roll;
mod state;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use demo::demo_scenario;
pub use model::{GkeCluster, GkeConfig, GkeExclusion, GkePool, demo_cluster, standard_versions};
pub use roll::NODE_POOL_LABEL;
pub use state::{GkeFault, GkeOperation, OpTarget, Strategy};
pub use wire::{ApiError, code_number};

use crate::k8s::SimHandle;
use state::{Call, State};

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

    async fn sleep_sim(&self, d: Duration) {
        let real = d.as_secs_f64() / self.scale();
        tokio::time::sleep(Duration::from_secs_f64(real.clamp(0.005, 5.0))).await;
    }

    fn now(&self) -> f64 {
        self.lock().now()
    }

    fn next_node_name(&self, cluster: &str, pool: &str) -> String {
        let mut n = self.node_seq.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        format!(
            "gke-{cluster}-{pool}-7f3a{:02x}c1-{:04x}",
            *n % 256,
            0x1a2b + *n
        )
    }
}

struct Responder(Weak<Inner>);

fn parse_query(q: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Empty legacy parameters (`projectId=&zone=`) mean "not set".
        if v.is_empty() {
            continue;
        }
        out.entry(decode(k)).or_default().push(decode(v));
    }
    out
}

fn decode(s: &str) -> String {
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

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Some(inner) = self.0.upgrade() else {
            return ApiError::unavailable().response();
        };
        let body: Value = if request.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&request.body) {
                Ok(v) => v,
                Err(e) => {
                    return ApiError::invalid(format!("Invalid JSON payload received. {e}"))
                        .response();
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
        let query = parse_query(request.url.query());
        let ints = inner.lock().config.honour_int_enums
            && query
                .get("$alt")
                .is_some_and(|v| v.iter().any(|a| a.contains("enum-encoding=int")));
        let call = Call {
            method: request.method.as_str(),
            segments,
            body,
            ints,
        };
        let (answer, reached) = {
            let mut s = inner.lock();
            let (_, answer) = s.route(&call);
            (answer, std::mem::take(&mut s.control_plane_reached))
        };
        // The simulated API server moves before GKE reports the operation DONE.
        apply_reached(&inner, reached);
        match answer {
            Ok(v) => ResponseTemplate::new(200)
                .set_body_raw(v.to_string(), "application/json; charset=UTF-8"),
            Err(e) => e.response(),
        }
    }
}

/// A running GKE mock.
pub struct GkeMock {
    server: MockServer,
    inner: Arc<Inner>,
    controller: JoinHandle<()>,
}

impl std::fmt::Debug for GkeMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GkeMock")
            .field("endpoint", &self.server.uri())
            .finish()
    }
}

impl GkeMock {
    /// Starts the mock on 127.0.0.1 (a random port). With `sim`, node-pool upgrades replace
    /// nodes in the simulator and control-plane upgrades set its API server version.
    pub async fn start(config: GkeConfig, sim: Option<SimHandle>) -> crate::Result<GkeMock> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| crate::Error::Io {
                context: "binding the GKE mock to 127.0.0.1".into(),
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
        Ok(GkeMock {
            server,
            inner,
            controller,
        })
    }

    /// The endpoint to give the client (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// Adds a fault.
    pub fn inject(&self, fault: GkeFault) {
        let mut s = self.inner.lock();
        if let GkeFault::SlowOperations(f) = fault {
            s.slow_factor = f.max(1);
        } else {
            s.faults.push_back(fault);
        }
    }

    /// Adds a cluster.
    pub fn add_cluster(&self, cluster: GkeCluster) {
        self.inner.lock().add_cluster(cluster);
    }

    /// Adds a maintenance exclusion to a cluster.
    pub fn add_exclusion(&self, cluster: &str, exclusion: GkeExclusion) {
        if let Some(c) = self.inner.lock().clusters.get_mut(cluster) {
            c.spec.exclusions.push(exclusion);
        }
    }

    /// The cluster's control-plane version.
    pub fn master_version(&self, cluster: &str) -> Option<String> {
        let mut s = self.inner.lock();
        s.tick();
        s.clusters
            .get(cluster)
            .map(|c| c.spec.master_version.clone())
    }

    /// The control plane's rollback-safe soak, while one runs: the previous version and the
    /// soak's end (RFC 3339).
    pub fn control_plane_soak(&self, cluster: &str) -> Option<(String, String)> {
        let mut s = self.inner.lock();
        s.tick();
        let soak = s.clusters.get(cluster)?.soak.clone()?;
        Some((soak.previous, wire::timestamp(soak.end)))
    }

    /// Ends the control plane's soak now, as reaching its end time would; false when none
    /// runs.
    pub fn end_control_plane_soak(&self, cluster: &str) -> bool {
        let mut s = self.inner.lock();
        s.tick();
        s.end_soak(cluster)
    }

    /// A node pool's version.
    pub fn pool_version(&self, cluster: &str, pool: &str) -> Option<String> {
        let s = self.inner.lock();
        Some(
            s.clusters
                .get(cluster)?
                .pools
                .get(pool)?
                .spec
                .version
                .clone(),
        )
    }

    /// A node pool's blue-green phase, while one runs.
    pub fn pool_phase(&self, cluster: &str, pool: &str) -> Option<String> {
        let s = self.inner.lock();
        s.clusters.get(cluster)?.pools.get(pool)?.phase.clone()
    }

    /// Every operation the mock has accepted, oldest first.
    pub fn operations(&self) -> Vec<GkeOperation> {
        let mut s = self.inner.lock();
        s.tick();
        s.operations.clone()
    }

    /// How many times each call was made (`getCluster` → 12).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.lock().calls.clone()
    }

    /// Stops the mock's background work (the HTTP server stops when the mock is dropped).
    pub fn shutdown(&self) {
        self.controller.abort();
    }
}

impl Drop for GkeMock {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

fn apply_reached(inner: &Inner, reached: Vec<String>) {
    if let Some(sim) = &inner.sim {
        for version in reached {
            if let Err(e) = sim.set_api_server_version(&state::kubelet_of(&version)) {
                tracing::warn!("GKE mock: cannot move the simulated API server: {e}");
            }
        }
    }
}

/// Moves operations along, the simulator's API server with the control plane, and starts
/// node-pool rolls.
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
            let to_roll: Vec<String> = s
                .operations
                .iter()
                .filter(|o| o.status != "PENDING" && o.status != "DONE")
                .filter(|o| matches!(o.target, OpTarget::NodePool { .. }))
                .map(|o| o.name.clone())
                .collect();
            (reached, to_roll)
        };
        apply_reached(&inner, reached);
        for name in to_roll {
            let fresh = inner
                .rolling
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone());
            if fresh {
                tokio::spawn(roll::roll(inner.clone(), name));
            }
        }
    }
}
