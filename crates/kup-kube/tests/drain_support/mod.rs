//! Shared helpers of the drain tests: a simulated cluster with one node to drain (`a-1`) and
//! a spare node for the replacements, a drainer pointed at it, and an event recorder.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use kup_core::{Event, EventSink};
use kup_kube::drain::Drainer;
use kup_mocks::k8s::{Node, Pool, Scenario, SimConfig, SimHandle, Simulator};
use serde_json::Value;

/// The node the tests drain.
pub const NODE: &str = "a-1";
/// Where replacements go once it is opened.
pub const SPARE: &str = "spare";
/// A guard for waits that should end long before it; never the thing asserted.
pub const GUARD: Duration = Duration::from_secs(60);

/// One node (`a-1`) that workloads of pool `a` land on, and a cordoned spare in the same
/// pool that [`Cluster::open_spare`] makes schedulable.
pub fn base() -> Scenario {
    Scenario::new()
        .pool(Pool::new("a", 1))
        .node(Node::new(SPARE).pool("a").unschedulable())
}

/// A running simulator and a drainer for it.
pub struct Cluster {
    pub sim: SimHandle,
    pub drainer: Drainer,
    pub client: kube::Client,
}

impl Cluster {
    /// Starts `scenario` with time running 20× faster.
    pub async fn start(scenario: Scenario) -> Self {
        Self::start_with(scenario, SimConfig::fast()).await
    }

    /// Starts `scenario` with `config`.
    pub async fn start_with(scenario: Scenario, config: SimConfig) -> Self {
        let sim = Simulator::start(scenario, config).await.unwrap();
        let drainer = Drainer::from_config(sim.client_config()).unwrap();
        let client = sim.client().unwrap();
        Self {
            sim,
            drainer,
            client,
        }
    }

    /// Makes the spare node schedulable, so replacements have somewhere to go.
    pub async fn open_spare(&self) {
        assert!(self.drainer.uncordon(SPARE).await.unwrap());
    }

    /// Whether `node` is cordoned, as the simulator stores it.
    pub fn cordoned(&self, node: &str) -> bool {
        self.sim
            .get("nodes", None, node)
            .and_then(|n| n["spec"]["unschedulable"].as_bool())
            .unwrap_or(false)
    }

    /// `namespace/name` of the pods on `node`, sorted.
    pub fn pods_on(&self, node: &str) -> Vec<String> {
        let mut names: Vec<String> = self.sim.pods_on_node(node).iter().map(pod_key).collect();
        names.sort();
        names
    }

    /// The names of the pods on `node` whose name starts with `prefix`.
    pub fn pods_on_with_prefix(&self, node: &str, prefix: &str) -> Vec<String> {
        self.sim
            .pods_on_node(node)
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    /// The first pod on `node` whose name starts with `prefix`: (name, uid).
    pub fn pod_on(&self, node: &str, prefix: &str) -> (String, String) {
        self.sim
            .pods_on_node(node)
            .iter()
            .find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["metadata"]["uid"].as_str().unwrap().to_string(),
                )
            })
            .unwrap_or_else(|| panic!("no pod {prefix}* on {node}"))
    }

    /// Requests the simulator answered with `method` on paths matching `glob`, by status.
    pub fn statuses(&self, method: &str, glob: &str) -> Vec<u16> {
        self.sim
            .requests()
            .matching(method, glob)
            .iter()
            .map(|r| r.status)
            .collect()
    }

    /// Stops the simulator.
    pub async fn stop(self) {
        self.sim.shutdown().await;
    }
}

/// `namespace/name` of a pod value.
pub fn pod_key(p: &Value) -> String {
    format!(
        "{}/{}",
        p["metadata"]["namespace"].as_str().unwrap_or_default(),
        p["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Every event, in order.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// How many events `pred` accepts.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| pred(e)).count()
    }
}
