//! Starting a simulator ([`Simulator::start`]) and driving it ([`SimHandle`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::Authenticator;
use super::clock::SimClock;
use super::cluster::{Cluster, Delays, PodDeletion};
use super::faults::Faults;
use super::requests::RequestLog;
use super::resources::{self, def, ids};
use super::scenario::{ADMIN_TOKEN, ADMIN_USER, Node, Scenario, load};
use super::server;
use super::shared::{Shared, SharedRef};
use super::tls::{self, ClientCertificate};
use super::version::KubeVersion;
use crate::{Error, Result};

/// How the simulator runs: transport, simulated time, controller delays.
///
/// All delays are simulated time; with `time_scale` *s*, one real second is *s* simulated
/// seconds, so a 2 s pod-ready delay takes 0.1 s of real time at scale 20.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimConfig {
    /// Serve HTTPS with a freshly generated CA (written into the kubeconfig).
    pub tls: bool,
    /// Simulated seconds per real second (> 0).
    pub time_scale: f64,
    /// How long a controller takes to replace a missing pod.
    pub pod_start_delay: Duration,
    /// From a pod being scheduled to it running and Ready.
    pub pod_ready_delay: Duration,
    /// How long a deleted pod takes to stop (capped by its grace period).
    pub pod_shutdown_delay: Duration,
    /// How long a kubelet restart keeps its node NotReady.
    pub kubelet_restart_delay: Duration,
    /// From a node joining to it being Ready.
    pub node_ready_delay: Duration,
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Seed for generated names, UIDs and fault rates.
    pub seed: u64,
    /// Changes kept for watches; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// Request log entries kept (counters keep counting past it).
    pub request_log_limit: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tls: false,
            time_scale: 1.0,
            pod_start_delay: Duration::from_secs(1),
            pod_ready_delay: Duration::from_secs(2),
            pod_shutdown_delay: Duration::from_secs(1),
            kubelet_restart_delay: Duration::from_secs(10),
            node_ready_delay: Duration::from_secs(15),
            port: 0,
            seed: 1,
            watch_history: 10_000,
            request_log_limit: 200_000,
        }
    }
}

impl SimConfig {
    /// Defaults with time running 20× faster (what most tests want).
    pub fn fast() -> Self {
        SimConfig {
            time_scale: 20.0,
            ..Self::default()
        }
    }

    /// Serve HTTPS.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Simulated seconds per real second.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    /// Delay before a controller replaces a missing pod.
    pub fn pod_start_delay(mut self, d: Duration) -> Self {
        self.pod_start_delay = d;
        self
    }

    /// Delay from scheduling to Ready.
    pub fn pod_ready_delay(mut self, d: Duration) -> Self {
        self.pod_ready_delay = d;
        self
    }

    /// Delay from deletion to gone.
    pub fn pod_shutdown_delay(mut self, d: Duration) -> Self {
        self.pod_shutdown_delay = d;
        self
    }

    /// Kubelet restart duration.
    pub fn kubelet_restart_delay(mut self, d: Duration) -> Self {
        self.kubelet_restart_delay = d;
        self
    }

    /// Node join-to-Ready duration.
    pub fn node_ready_delay(mut self, d: Duration) -> Self {
        self.node_ready_delay = d;
        self
    }

    /// Fixed port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Watch history length.
    pub fn watch_history(mut self, n: usize) -> Self {
        self.watch_history = n;
        self
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Loads `scenario`, binds 127.0.0.1 and starts serving and simulating.
    pub async fn start(scenario: Scenario, config: SimConfig) -> Result<SimHandle> {
        if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
            return Err(Error::invalid(
                "time_scale",
                format!(
                    "{} must be a positive number of simulated seconds per real second",
                    config.time_scale
                ),
            ));
        }
        let version = KubeVersion::parse(&scenario.version)
            .map_err(|e| Error::scenario("version", e.to_string()))?;
        let clock = SimClock::new(config.time_scale);
        let delays = Delays {
            pod_start: config.pod_start_delay,
            pod_ready: config.pod_ready_delay,
            pod_shutdown: config.pod_shutdown_delay,
            kubelet_restart: config.kubelet_restart_delay,
            node_ready: config.node_ready_delay,
        };
        let mut cluster = Cluster::new(
            version,
            clock.clone(),
            delays,
            config.seed,
            config.watch_history,
            scenario.pool_label.clone(),
        );
        load::materialize(&scenario, &mut cluster)?;
        let auth = Authenticator::new(&scenario);
        let mut users: BTreeMap<String, (String, Vec<String>)> = scenario
            .users
            .iter()
            .map(|u| (u.name.clone(), (u.bearer_token(), u.groups.clone())))
            .collect();
        users.insert(
            ADMIN_USER.to_string(),
            (ADMIN_TOKEN.to_string(), vec!["system:masters".to_string()]),
        );
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|e| Error::io(format!("binding 127.0.0.1:{}", config.port), e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let material = if config.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let wake = cluster.wake.clone();
        let shared: SharedRef = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            clock: clock.clone(),
            faults: Faults::new(config.seed),
            requests: RequestLog::new(config.request_log_limit),
            request_totals: Mutex::new(BTreeMap::new()),
            address,
            https: config.tls,
            shutdown: CancellationToken::new(),
            wake,
            auth,
        });
        let scheme = if config.tls { "https" } else { "http" };
        let url = format!("{scheme}://{address}");
        let server_task = tokio::spawn(server::serve(
            listener,
            shared.clone(),
            material.as_ref().map(|m| m.acceptor.clone()),
        ));
        let controller_task = tokio::spawn(run_controllers(shared.clone()));
        Ok(SimHandle {
            inner: Arc::new(Inner {
                shared,
                url,
                ca_pem: material.as_ref().map(|m| m.ca_pem.clone()),
                ca_der: material.as_ref().map(|m| m.ca_der.clone()),
                issuer: material.map(|m| m.issuer),
                users,
                tasks: Mutex::new(vec![server_task, controller_task]),
            }),
        })
    }
}

async fn run_controllers(sh: SharedRef) {
    loop {
        let next = sh.lock().reconcile();
        let wait = match next {
            Some(due) => {
                let sim = due.duration_since(sh.clock.now()).as_secs_f64().max(0.0);
                Duration::from_secs_f64(sim / sh.clock.scale())
                    .clamp(Duration::from_millis(1), Duration::from_millis(250))
            }
            None => Duration::from_millis(250),
        };
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            _ = sh.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

struct Inner {
    shared: SharedRef,
    url: String,
    ca_pem: Option<String>,
    ca_der: Option<Vec<u8>>,
    /// Signs client certificates in HTTPS mode.
    issuer: Option<rcgen::Issuer<'static, rcgen::KeyPair>>,
    /// Bearer token and groups by user name (the admin's included).
    users: BTreeMap<String, (String, Vec<String>)>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// A running simulator. Cheap to clone; the server stops when [`SimHandle::shutdown`] is called
/// or the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    fn sh(&self) -> &SharedRef {
        &self.inner.shared
    }

    fn wake(&self) {
        self.sh().wake.notify_one();
    }

    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.sh().address
    }

    /// The CA certificate (PEM) in HTTPS mode.
    pub fn ca_pem(&self) -> Option<&str> {
        self.inner.ca_pem.as_deref()
    }

    /// A kubeconfig (context `kup-sim`, namespace `default`) pointing at the simulator, with the
    /// CA in HTTPS mode, authenticating as the built-in `admin` (`system:masters`).
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_for(ADMIN_TOKEN)
    }

    /// [`SimHandle::kubeconfig_yaml`] authenticating as scenario user `user` instead.
    pub fn kubeconfig_yaml_as(&self, user: &str) -> Result<String> {
        Ok(self.kubeconfig_yaml_for(self.token_of(user)?))
    }

    fn user(&self, user: &str) -> Result<&(String, Vec<String>)> {
        self.inner.users.get(user).ok_or_else(|| {
            Error::invalid(
                "user",
                format!(
                    "{user:?} is not a user of this simulator (known: {})",
                    self.inner
                        .users
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    fn token_of(&self, user: &str) -> Result<&str> {
        Ok(self.user(user)?.0.as_str())
    }

    /// A client certificate for `user` (CN) in its scenario groups (O), signed by the
    /// simulator's CA; HTTPS mode only. The certificate authenticates as that user whatever
    /// its token.
    pub fn client_certificate_as(&self, user: &str) -> Result<ClientCertificate> {
        let groups = &self.user(user)?.1;
        let issuer = self.inner.issuer.as_ref().ok_or_else(|| {
            Error::invalid(
                "tls",
                "client certificates need the HTTPS mode (SimConfig::tls(true))",
            )
        })?;
        tls::client_certificate(issuer, user, groups)
    }

    /// [`SimHandle::kubeconfig_yaml`] authenticating with a client certificate for `user`
    /// (see [`SimHandle::client_certificate_as`]).
    pub fn kubeconfig_yaml_with_certificate(&self, user: &str) -> Result<String> {
        use base64::Engine;
        let cert = self.client_certificate_as(user)?;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let yaml = self.kubeconfig_yaml_for("");
        Ok(yaml.replace(
            "    token: \n",
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                b64(&cert.cert_pem),
                b64(&cert.key_pem)
            ),
        ))
    }

    /// [`SimHandle::client_config`] authenticating with a client certificate for `user`.
    pub fn client_config_with_certificate(&self, user: &str) -> Result<kube::Config> {
        use base64::Engine;
        let cert = self.client_certificate_as(user)?;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let mut cfg = self.config_with("");
        cfg.auth_info.token = None;
        // Kubeconfig `*-data` fields: base64 of the PEM.
        cfg.auth_info.client_certificate_data = Some(b64(&cert.cert_pem));
        cfg.auth_info.client_key_data = Some(b64(&cert.key_pem).into());
        Ok(cfg)
    }

    fn kubeconfig_yaml_for(&self, token: &str) -> String {
        use base64::Engine;
        let ca = self
            .inner
            .ca_pem
            .as_ref()
            .map(|p| {
                format!(
                    "    certificate-authority-data: {}\n",
                    base64::engine::general_purpose::STANDARD.encode(p)
                )
            })
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kup-sim\n  cluster:\n    server: {}\n{ca}contexts:\n- name: kup-sim\n  context:\n    cluster: kup-sim\n    user: kup-sim\n    namespace: default\ncurrent-context: kup-sim\nusers:\n- name: kup-sim\n  user:\n    token: {token}\npreferences: {{}}\n",
            self.inner.url
        )
    }

    /// Writes [`SimHandle::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<()> {
        self.write(path.as_ref(), self.kubeconfig_yaml())
    }

    /// Writes [`SimHandle::kubeconfig_yaml_as`] for `user` to `path`.
    pub fn write_kubeconfig_as(&self, user: &str, path: impl AsRef<Path>) -> Result<()> {
        self.write(path.as_ref(), self.kubeconfig_yaml_as(user)?)
    }

    fn write(&self, path: &Path, text: String) -> Result<()> {
        std::fs::write(path, text)
            .map_err(|e| Error::io(format!("writing kubeconfig {}", path.display()), e))
    }

    /// A kube client configuration for the simulator (trusting its CA in HTTPS mode),
    /// authenticating as the built-in `admin`. Note that kube retries 429/503/504 by default
    /// (`default_retry`).
    pub fn client_config(&self) -> kube::Config {
        self.config_with(ADMIN_TOKEN)
    }

    /// [`SimHandle::client_config`] authenticating as scenario user `user`.
    pub fn client_config_as(&self, user: &str) -> Result<kube::Config> {
        Ok(self.config_with(self.token_of(user)?))
    }

    fn config_with(&self, token: &str) -> kube::Config {
        let uri: http::Uri = self.inner.url.parse().unwrap_or_default();
        let mut cfg = kube::Config::new(uri);
        cfg.default_namespace = "default".into();
        cfg.auth_info.token = Some(token.to_string().into());
        if let Some(der) = &self.inner.ca_der {
            cfg.root_cert = Some(vec![der.clone()]);
        }
        cfg
    }

    /// A kube client for the simulator as `admin` (needs a Tokio runtime).
    pub fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.client_config())?)
    }

    /// A kube client for the simulator as scenario user `user` (needs a Tokio runtime).
    pub fn client_as(&self, user: &str) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.client_config_as(user)?)?)
    }

    /// The simulated clock.
    pub fn clock(&self) -> SimClock {
        self.sh().clock.clone()
    }

    /// Moves simulated time forward by `by`; controllers act on it at once.
    pub fn advance_clock(&self, by: Duration) {
        self.sh().clock.advance(by);
        self.wake();
    }

    /// The API server version (`v1.33.5`).
    pub fn api_server_version(&self) -> String {
        self.sh().lock().version.git_version()
    }

    /// Sets the API server version (and with it the served group-versions).
    pub fn set_api_server_version(&self, version: &str) -> Result<()> {
        self.sh().lock().ctl_set_version(version)
    }

    /// Restarts `node`'s kubelet with `version`: NotReady for the kubelet-restart delay, then
    /// Ready reporting the new version (unless the node is set never to become Ready).
    pub fn set_kubelet_version(&self, node: &str, version: &str) -> Result<()> {
        let r = self.sh().lock().ctl_set_kubelet_version(node, version);
        self.wake();
        r
    }

    /// A node joins: registered NotReady, Ready after the node-ready delay.
    pub fn add_node(&self, node: Node) -> Result<()> {
        let r = self.sh().lock().ctl_add_node(&node);
        self.wake();
        r
    }

    /// Removes a node; its pods are force-deleted (and replaced by their controllers elsewhere).
    pub fn remove_node(&self, name: &str) -> Result<()> {
        let r = self.sh().lock().ctl_remove_node(name);
        self.wake();
        r
    }

    /// Sets a node condition (`Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`,
    /// `NetworkUnavailable`) to `True`, `False` or `Unknown`.
    pub fn set_node_condition(&self, node: &str, condition: &str, status: &str) -> Result<()> {
        let r = self
            .sh()
            .lock()
            .ctl_set_node_condition(node, condition, status);
        self.wake();
        r
    }

    /// From now on `node` never becomes Ready (after a kubelet restart, or when it joins).
    pub fn set_node_never_ready(&self, node: &str, never: bool) -> Result<()> {
        self.sh().lock().ctl_set_never_ready(node, never)
    }

    /// A stuck pod stays Terminating after deletion (until unstuck or deleted with grace 0).
    pub fn set_pod_stuck_terminating(
        &self,
        namespace: &str,
        name: &str,
        stuck: bool,
    ) -> Result<()> {
        let r = self.sh().lock().ctl_set_pod_stuck(namespace, name, stuck);
        self.wake();
        r
    }

    /// Sets a running pod's readiness.
    pub fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) -> Result<()> {
        let r = self.sh().lock().ctl_set_pod_ready(namespace, name, ready);
        self.wake();
        r
    }

    /// Fails (or heals) a `/readyz`/`/livez`/`/healthz` check such as `etcd`.
    pub fn set_health_check(&self, check: &str, healthy: bool) {
        let mut c = self.sh().lock();
        if healthy {
            c.failing_checks.remove(check);
        } else {
            c.failing_checks.insert(check.to_string());
        }
    }

    /// Drops the watch history: watches from older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        self.sh().lock().store.compact();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.sh().lock().store.rv()
    }

    /// Fault injection for this simulator.
    pub fn faults(&self) -> Faults {
        self.sh().faults.clone()
    }

    /// The request log.
    pub fn requests(&self) -> RequestLog {
        self.sh().requests.clone()
    }

    /// One object by resource (`pods`, `Pod`, `po`, `deployments.apps`…), namespace and name,
    /// as stored (storage version). `None` if absent or the resource is unknown.
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let res = self.find_resource(resource)?;
        let ns = if def(res).namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        self.sh().lock().get_value(res, ns, name)
    }

    /// One object deserialised into `T` (e.g. a k8s-openapi type in tests).
    pub fn get_as<T: DeserializeOwned>(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<T> {
        let v = self.get(resource, namespace, name).ok_or_else(|| {
            Error::not_found(resource, format!("{}/{name}", namespace.unwrap_or("")))
        })?;
        serde_json::from_value(v)
            .map_err(|e| Error::invalid(resource, format!("does not deserialise: {e}")))
    }

    /// All objects of a resource (in `namespace`, or everywhere when `None`), in key order.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(res) = self.find_resource(resource) else {
            return Vec::new();
        };
        self.sh()
            .lock()
            .store
            .list(res, namespace)
            .map(|o| o.value())
            .collect()
    }

    /// Every pod.
    pub fn pods(&self) -> Vec<Value> {
        self.list("pods", None)
    }

    /// Every node.
    pub fn nodes(&self) -> Vec<Value> {
        self.list("nodes", None)
    }

    /// Pods bound to `node`.
    pub fn pods_on_node(&self, node: &str) -> Vec<Value> {
        let c = self.sh().lock();
        c.store
            .pods_on_node(node)
            .iter()
            .filter_map(|(ns, n)| c.get_value(ids::PODS, ns, n))
            .collect()
    }

    /// How many objects of a resource exist (cheap, for large scenarios).
    pub fn count(&self, resource: &str) -> usize {
        self.find_resource(resource)
            .map_or(0, |r| self.sh().lock().store.count(r))
    }

    /// A built-in resource, else one an established CRD defines.
    fn find_resource(&self, resource: &str) -> Option<super::resources::ResId> {
        resources::find(resource).or_else(|| self.sh().lock().customs.find(resource))
    }

    /// Every pod deletion so far (eviction, DELETE, controllers…), in order.
    pub fn pod_deletions(&self) -> Vec<PodDeletion> {
        self.sh().lock().deletions.clone()
    }

    /// Polls `check` every 20 ms until it holds; fails after `timeout` (a guard, not a measure).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&SimHandle) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check(self) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    after: timeout,
                    what: what.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server, its watches and the controllers.
    pub async fn shutdown(&self) {
        self.sh().shutdown.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// `true` once the simulator serves HTTPS.
    pub fn is_https(&self) -> bool {
        self.sh().https
    }
}
