//! A stateful mock of Azure Resource Manager's Microsoft.ContainerService API on wiremock,
//! served over HTTPS (azure_core sends bearer tokens to `https://` only) with a CA of its own.
//!
//! Managed clusters and agent pools; upgrade profiles derived from the region's version
//! catalogue; PUTs that answer with `Azure-AsyncOperation` and `Retry-After` (also as
//! `retry-after-ms`, scaled to the mock's time) and progress over simulated time; 409
//! `OperationNotAllowed` while an operation runs; the removed-API upgrade block (400
//! `ValidationError`, subcode `UpgradeBlockedOnDeprecatedAPIUsage`) unless `forceUpgrade` is
//! set; injected failures, error answers on chosen calls, latency and dropped connections. Given a [`crate::k8s::SimHandle`], agent-pool
//! upgrades play out on the simulator the way AKS does them (see `roll.rs`) and control-plane
//! upgrades move the simulated API server.
//!
//! ```no_run
//! use kup_mocks::aks::{AksConfig, AksMock};
//! # async fn demo() -> kup_mocks::Result<()> {
//! let mock = AksMock::start(AksConfig::demo().time_scale(600.0), None).await?;
//! println!("ARM endpoint: {} (CA: {} bytes)", mock.endpoint(), mock.ca_pem().len());
//! # Ok(()) }
//! ```

mod demo;
mod model;
mod roll;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use demo::{DEMO_NODE_IMAGE, demo_scenario};
pub use model::{
    AksCluster, AksConfig, AksPool, AksVersion, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, PoolMode,
    demo_cluster, standard_versions,
};
pub use roll::{AGENTPOOL_LABEL, QUARANTINE_LABEL};
pub use state::{AksFault, ArmError, ArmOperation, OperationTarget};

use crate::eks::decode;
use crate::k8s::SimHandle;
use state::{Call, State};

pub(crate) struct Inner {
    state: Mutex<State>,
    sim: Option<SimHandle>,
    rolling: Mutex<BTreeSet<String>>,
    node_seq: Mutex<u32>,
    /// Connections still to drop after their TLS handshake.
    drops: AtomicU32,
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

    fn next_instance(&self) -> u32 {
        let mut n = self.node_seq.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        *n
    }
}

struct Responder(Weak<Inner>);

fn error_response(e: &ArmError) -> ResponseTemplate {
    ResponseTemplate::new(e.status)
        .insert_header("x-ms-error-code", e.code.as_str())
        .insert_header("x-ms-request-id", "9c4e1f7a-2b3d-4e5f-8a9b-0c1d2e3f4a5b")
        .set_body_raw(e.body().to_string(), "application/json")
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
                    return error_response(&ArmError::new(
                        400,
                        "InvalidRequestContent",
                        format!(
                            "The request content was invalid and could not be deserialized: {e}"
                        ),
                    ));
                }
            }
        };
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
        let call = Call {
            method: request.method.as_str(),
            segments: request
                .url
                .path()
                .split('/')
                .filter(|s| !s.is_empty())
                .map(decode)
                .collect(),
            query: request
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            body,
            authorized,
        };
        let (answer, latency) = {
            let mut s = inner.lock();
            let (_, answer) = s.route(&call);
            (answer, s.latency)
        };
        let reply = match answer {
            Ok(reply) => {
                let mut t = ResponseTemplate::new(reply.status)
                    .insert_header("x-ms-request-id", "5f0e2a8c-1b7d-4c3e-8a9f-2d6b4e8c0a11");
                for (k, v) in reply.headers {
                    t = t.insert_header(k, v.as_str());
                }
                match reply.body {
                    Some(b) => t.set_body_raw(b.to_string(), "application/json"),
                    None => t,
                }
            }
            Err(e) => error_response(&e),
        };
        reply.set_delay(latency)
    }
}

/// A running AKS (ARM) mock.
pub struct AksMock {
    server: MockServer,
    inner: Arc<Inner>,
    endpoint: String,
    ca_pem: String,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for AksMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AksMock")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl AksMock {
    /// Starts the mock on 127.0.0.1 (random ports): wiremock on plain HTTP behind a TLS front
    /// that clients use. With `sim`, agent-pool upgrades replace nodes in the simulator and
    /// control-plane upgrades set its API server version.
    pub async fn start(config: AksConfig, sim: Option<SimHandle>) -> crate::Result<AksMock> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| crate::Error::Io { context, source }
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(io("binding the ARM mock to 127.0.0.1"))?;
        let server = MockServer::builder().listener(listener).start().await;
        let backend = *server.address();
        let tls = crate::k8s::tls::generate()?;
        let front = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding the ARM mock's TLS front to 127.0.0.1"))?;
        let port = front
            .local_addr()
            .map_err(io("reading the ARM mock's address"))?
            .port();
        let endpoint = format!("https://127.0.0.1:{port}");
        let mut state = State::new(config);
        state.base = endpoint.clone();
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            sim,
            rolling: Mutex::new(BTreeSet::new()),
            node_seq: Mutex::new(0),
            drops: AtomicU32::new(0),
        });
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(Arc::downgrade(&inner)))
            .mount(&server)
            .await;
        let acceptor = tls.acceptor.clone();
        let weak = Arc::downgrade(&inner);
        let front_task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = front.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let weak = weak.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let drop_it = weak.upgrade().is_some_and(|i| {
                        i.drops
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                    });
                    if drop_it {
                        return;
                    }
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        let controller = tokio::spawn(control_loop(Arc::downgrade(&inner)));
        Ok(AksMock {
            server,
            inner,
            endpoint,
            ca_pem: tls.ca_pem,
            tasks: vec![front_task, controller],
        })
    }

    /// The endpoint to give the client (`https://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CA that signed the endpoint's certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The plain-HTTP address of the wiremock server behind the TLS front (for inspecting
    /// received requests).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// The subscription and resource group the mock serves.
    pub fn coordinates(&self) -> (String, String) {
        let s = self.inner.lock();
        (
            s.config.subscription.clone(),
            s.config.resource_group.clone(),
        )
    }

    /// Adds a fault.
    pub fn inject(&self, fault: AksFault) {
        let mut s = self.inner.lock();
        match fault {
            AksFault::SlowOperations(f) => s.slow = f.max(1),
            AksFault::Latency(d) => s.latency = d,
            AksFault::DropConnections(n) => {
                self.inner.drops.fetch_add(n, Ordering::SeqCst);
            }
            f => s.faults.push_back(f),
        }
    }

    /// Records that clients used `api` (`flowcontrol.apiserver.k8s.io/v1beta3`), removed in
    /// `removed_in` (`1.32`), lately: AKS blocks minor upgrades to that minor or later.
    pub fn use_deprecated_api(&self, cluster: &str, api: &str, removed_in: &str) {
        if let Some(c) = self.inner.lock().clusters.get_mut(cluster) {
            c.deprecated_apis
                .push((api.to_string(), removed_in.to_string()));
        }
    }

    /// Adds a cluster.
    pub fn add_cluster(&self, cluster: AksCluster) {
        self.inner.lock().add_cluster(cluster);
    }

    /// The managed cluster as ARM returns it.
    pub fn cluster_json(&self, cluster: &str) -> Value {
        let mut s = self.inner.lock();
        s.tick();
        s.cluster_json(cluster)
    }

    /// An agent pool as ARM returns it.
    pub fn pool_json(&self, cluster: &str, pool: &str) -> Value {
        let mut s = self.inner.lock();
        s.tick();
        s.pool_json(cluster, pool)
    }

    /// Every operation the cluster has seen, oldest first.
    pub fn operations(&self, cluster: &str) -> Vec<ArmOperation> {
        let mut s = self.inner.lock();
        s.tick();
        s.operations
            .iter()
            .filter(|o| o.cluster == cluster)
            .cloned()
            .collect()
    }

    /// The changes accepted, in words (`PUT agentPool demo/apps → 1.35.1`), oldest first.
    pub fn accepted(&self) -> Vec<String> {
        self.inner.lock().accepted.clone()
    }

    /// How many times each call was made (`PUT agentPool` → 2).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.lock().calls.clone()
    }

    /// Stops the mock's background work (the HTTP server stops when the mock is dropped).
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for AksMock {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Finishes timed operations, moves the simulator's API server, and starts pool rolls.
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
                .filter(|o| {
                    o.status == "InProgress"
                        && matches!(
                            o.target,
                            OperationTarget::AgentPool { .. } | OperationTarget::NodeImage { .. }
                        )
                })
                .map(|o| o.id.clone())
                .collect();
            (reached, to_roll)
        };
        if let Some(sim) = &inner.sim {
            for patch in reached {
                if let Err(e) = sim.set_api_server_version(&format!("v{patch}")) {
                    tracing::warn!("AKS mock: cannot move the simulated API server: {e}");
                }
            }
        }
        for id in to_roll {
            let fresh = inner
                .rolling
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
            if fresh {
                tokio::spawn(roll::roll(inner.clone(), id));
            }
        }
    }
}
