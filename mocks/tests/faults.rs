//! Fault injection does what it says: statuses on the Nth call or at a rate, latency,
//! connection resets, nodes that never become Ready, pods stuck terminating.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{GUARD, code, raw};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kup_mocks::k8s::{Fault, Node as SimNode, Scenario, SimConfig, SimHandle, Simulator, Workload};
use serde_json::json;

fn client(sim: &SimHandle) -> kube::Client {
    let mut cfg = sim.client_config();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

fn small() -> Scenario {
    Scenario::new()
        .node(SimNode::new("n1"))
        .node(SimNode::new("n2"))
        .workload(Workload::deployment("default", "web").replicas(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_the_nth_call_and_at_a_rate() {
    let sim = Simulator::start(small(), SimConfig::fast()).await.unwrap();
    let nodes: Api<Node> = Api::all(client(&sim));
    let id = sim.faults().add(
        Fault::status(503)
            .method("GET")
            .path("/api/v1/nodes")
            .nth(2),
    );
    assert!(nodes.list(&ListParams::default()).await.is_ok());
    let e = nodes.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(code(&e), 503);
    let kube::Error::Api(s) = &e else { panic!() };
    assert_eq!(s.reason, "ServiceUnavailable");
    assert!(nodes.list(&ListParams::default()).await.is_ok());
    assert!(
        nodes.get("n1").await.is_ok(),
        "other paths are not affected"
    );
    assert_eq!(sim.faults().fired(id), 1);

    sim.faults().clear();
    sim.faults()
        .add(Fault::status(500).path("/api/v1/namespaces").rate(0.25));
    let ns: Api<Namespace> = Api::all(client(&sim));
    let mut failed = 0;
    for _ in 0..200 {
        if let Err(e) = ns.list(&ListParams::default()).await {
            assert_eq!(code(&e), 500);
            failed += 1;
        }
    }
    assert!(
        (25..=80).contains(&failed),
        "about a quarter of 200 calls fail: {failed}"
    );
    assert_eq!(sim.requests().count_status(500), failed);

    // 429 with Retry-After, limited to two hits.
    sim.faults().clear();
    sim.faults().add(
        Fault::status(429)
            .path("/api/v1/nodes/*")
            .retry_after(7)
            .times(2),
    );
    for _ in 0..2 {
        let (status, head, body) = raw(&sim, "GET", "/api/v1/nodes/n1", None).await.unwrap();
        assert_eq!(status, 429);
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 7"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["details"]["retryAfterSeconds"], 7);
        assert_eq!(v["reason"], "TooManyRequests");
    }
    assert_eq!(
        raw(&sim, "GET", "/api/v1/nodes/n1", None).await.unwrap().0,
        200
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_connection_resets() {
    let sim = Simulator::start(small(), SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    sim.faults()
        .add(Fault::latency(Duration::from_millis(400)).path("/version"));
    let started = Instant::now();
    c.apiserver_version().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the answer waited for the injected latency"
    );
    let logged = sim.requests().matching("GET", "/version");
    assert!(logged.last().unwrap().duration >= Duration::from_millis(400));

    sim.faults().add(Fault::reset().path("/api/v1/pods").nth(1));
    let pods: Api<Pod> = Api::all(c.clone());
    let e = pods.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(code(&e), 0, "a transport error, not an API answer: {e}");
    assert!(
        pods.list(&ListParams::default()).await.is_ok(),
        "the next call goes through"
    );
    assert!(
        sim.requests()
            .matching("GET", "/api/v1/pods")
            .iter()
            .any(|r| r.status == 0)
    );

    // On the wire: no response at all, the connection is reset or closed.
    sim.faults().add(Fault::reset().path("/api/v1/nodes"));
    match raw(&sim, "GET", "/api/v1/nodes", None).await {
        Ok((status, head, _)) => assert_eq!((status, head.as_str()), (0, ""), "no bytes come back"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_never_become_ready() {
    let sim = Simulator::start(small(), SimConfig::fast()).await.unwrap();
    sim.add_node(SimNode::new("joins")).unwrap();
    sim.add_node(SimNode::new("broken").never_ready()).unwrap();
    sim.wait_for(GUARD, "joins Ready", |s| ready(s, "joins"))
        .await
        .unwrap();
    sim.advance_clock(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!ready(&sim, "broken"));
    let n = sim.get("nodes", None, "broken").unwrap();
    assert!(
        n["status"]["conditions"][3]["message"]
            .as_str()
            .unwrap()
            .contains("cni plugin not initialized"),
        "{n}"
    );

    // A kubelet upgrade on a node marked never-ready: the version changes, Ready never comes.
    sim.set_node_never_ready("n2", true).unwrap();
    sim.set_kubelet_version("n2", "v1.34.0").unwrap();
    sim.wait_for(GUARD, "n2 reports v1.34.0", |s| {
        s.get("nodes", None, "n2").unwrap()["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.0"
    })
    .await
    .unwrap();
    sim.advance_clock(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!ready(&sim, "n2"));
    // The scheduler keeps new pods off it.
    sim.set_node_condition("n1", "Ready", "False").unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&sim), "default");
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "late"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})).unwrap();
    pods.create(&Default::default(), &p).await.unwrap();
    sim.wait_for(GUARD, "late scheduled", |s| {
        s.get("pods", Some("default"), "late").unwrap()["spec"]["nodeName"].is_string()
    })
    .await
    .unwrap();
    assert_eq!(
        sim.get("pods", Some("default"), "late").unwrap()["spec"]["nodeName"],
        "joins"
    );
    sim.shutdown().await;
}

fn ready(s: &SimHandle, node: &str) -> bool {
    s.get("nodes", None, node).is_some_and(|n| {
        n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_stuck_terminating() {
    let sim = Simulator::start(small(), SimConfig::fast()).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&sim), "default");
    let names: Vec<String> = sim
        .list("pods", Some("default"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    sim.set_pod_stuck_terminating("default", &names[0], true)
        .unwrap();
    pods.delete(&names[0], &DeleteParams::default())
        .await
        .unwrap();
    pods.delete(&names[1], &DeleteParams::default())
        .await
        .unwrap();
    sim.wait_for(GUARD, "the other pod gone", |s| {
        s.get("pods", Some("default"), &names[1]).is_none()
    })
    .await
    .unwrap();
    sim.advance_clock(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stuck = sim
        .get("pods", Some("default"), &names[0])
        .expect("still there");
    assert!(stuck["metadata"]["deletionTimestamp"].is_string());
    // Force deletion (grace 0) removes it, as on a real cluster.
    pods.delete(&names[0], &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(sim.get("pods", Some("default"), &names[0]).is_none());
    // Replacements came up for both.
    sim.wait_for(GUARD, "two web pods again", |s| {
        s.list("pods", Some("default"))
            .iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
            })
            .count()
            == 2
    })
    .await
    .unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_over_the_control_endpoint() {
    let sim = Simulator::start(small(), SimConfig::fast()).await.unwrap();
    let body = json!({"method": "GET", "path": "/api/v1/nodes", "action": {"type": "status", "code": 504}, "trigger": {"type": "fromNth", "n": 1}});
    let (status, _, resp) = raw(&sim, "POST", "/_sim/faults", Some(&body.to_string()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{resp}");
    let id = serde_json::from_str::<serde_json::Value>(&resp).unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        raw(&sim, "GET", "/api/v1/nodes", None).await.unwrap().0,
        504
    );
    let (_, _, list) = raw(&sim, "GET", "/_sim/faults", None).await.unwrap();
    assert!(list.contains("\"fired\":1"), "{list}");
    assert_eq!(
        raw(&sim, "DELETE", &format!("/_sim/faults/{id}"), None)
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        raw(&sim, "GET", "/api/v1/nodes", None).await.unwrap().0,
        200
    );
    let bad = raw(
        &sim,
        "POST",
        "/_sim/faults",
        Some("{\"action\": {\"type\": \"explode\"}}"),
    )
    .await
    .unwrap();
    assert_eq!(bad.0, 400, "{}", bad.2);
    sim.shutdown().await;
}
