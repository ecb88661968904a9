//! Server-level behaviour: HTTPS with the generated CA, health checks, metrics, deprecated
//! APIs by simulated version, the control endpoint and the request log.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{GUARD, Kubectl, kubectl, raw};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kup_mocks::k8s::{Node as SimNode, Pdb, Scenario, SimConfig, Simulator, Workload};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_verified_with_the_generated_ca() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast().tls(true))
        .await
        .unwrap();
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    assert!(
        sim.kubeconfig_yaml()
            .contains("certificate-authority-data: ")
    );
    let nodes: Api<Node> = Api::all(sim.client().unwrap());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        9
    );

    // Without the CA the same server is rejected.
    let mut untrusted = sim.client_config();
    untrusted.root_cert = None;
    let e = Api::<Node>::all(kube::Client::try_from(untrusted).unwrap())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        !matches!(e, kube::Error::Api(_)),
        "a TLS failure, not an API answer: {e}"
    );

    // A kubeconfig file works the way users load it.
    let dir = tempfile::tempdir().unwrap();
    sim.write_kubeconfig(dir.path().join("config")).unwrap();
    let kc = kube::config::Kubeconfig::read_from(dir.path().join("config")).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let v = kube::Client::try_from(cfg)
        .unwrap()
        .apiserver_version()
        .await
        .unwrap();
    assert_eq!(v.git_version, "v1.33.5");

    if let Some(bin) = kubectl() {
        let k = Kubectl::new(bin, &sim);
        let out = k.ok(&["get", "nodes", "-o", "name"]).await;
        assert_eq!(out.lines().count(), 9, "{out}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_metrics() {
    let scenario = Scenario::new()
        .version("v1.24.17")
        .node(SimNode::new("n1"))
        .workload(Workload::deployment("app", "web").replicas(2))
        .pdb(Pdb::new("app", "old").match_label("app", "web").min_available(1).api_version("policy/v1beta1"))
        .object(json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "app"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}}}));
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();

    assert_eq!(raw(&sim, "GET", "/readyz", None).await.unwrap().2, "ok");
    let (s, _, body) = raw(&sim, "GET", "/readyz?verbose", None).await.unwrap();
    assert_eq!(s, 200);
    assert!(
        body.contains("[+]etcd ok") && body.ends_with("readyz check passed\n"),
        "{body}"
    );
    sim.set_health_check("etcd", false);
    let (s, _, body) = raw(&sim, "GET", "/readyz", None).await.unwrap();
    assert_eq!(s, 500);
    assert!(
        body.contains("[-]etcd failed: reason withheld") && body.ends_with("readyz check failed\n"),
        "{body}"
    );
    assert_eq!(raw(&sim, "GET", "/livez/etcd", None).await.unwrap().0, 500);
    assert_eq!(
        raw(&sim, "GET", "/readyz?exclude=etcd", None)
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        raw(&sim, "GET", "/healthz/ping", None).await.unwrap().2,
        "ok"
    );
    sim.set_health_check("etcd", true);
    assert_eq!(raw(&sim, "GET", "/livez", None).await.unwrap().0, 200);

    // Deprecated group-versions on 1.24: served, with a Warning header, and counted in /metrics.
    let (s, head, body) = raw(
        &sim,
        "GET",
        "/apis/policy/v1beta1/namespaces/app/poddisruptionbudgets",
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    assert!(
        head.to_ascii_lowercase().contains("warning: 299 - \"policy/v1beta1 PodDisruptionBudget is deprecated in v1.21+, unavailable in v1.25+; use policy/v1 PodDisruptionBudget\"".to_ascii_lowercase().as_str()),
        "{head}"
    );
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["apiVersion"], "policy/v1beta1");
    assert_eq!(list["items"][0]["apiVersion"], "policy/v1beta1");
    assert_eq!(
        raw(
            &sim,
            "GET",
            "/apis/batch/v1beta1/namespaces/app/cronjobs/nightly",
            None
        )
        .await
        .unwrap()
        .0,
        200
    );
    // The same stored PDB reads as policy/v1, without a warning.
    let (s, head, _) = raw(
        &sim,
        "GET",
        "/apis/policy/v1/namespaces/app/poddisruptionbudgets/old",
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    assert!(!head.to_ascii_lowercase().contains("warning"), "{head}");
    let (_, _, metrics) = raw(&sim, "GET", "/metrics", None).await.unwrap();
    assert!(metrics.contains(
        "apiserver_requested_deprecated_apis{group=\"policy\",removed_release=\"1.25\",resource=\"poddisruptionbudgets\",subresource=\"\",version=\"v1beta1\"} 1"
    ), "{metrics}");
    assert!(
        metrics.contains("resource=\"cronjobs\",subresource=\"\",version=\"v1beta1\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"policy\",resource=\"poddisruptionbudgets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1beta1\"} 1"), "{metrics}");
    let cj = sim.get("cronjobs", Some("app"), "nightly").unwrap();
    assert!(
        cj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("batch/v1beta1")
    );

    // Upgrading the API server to 1.25 removes the beta APIs; the objects stay under policy/v1.
    sim.set_api_server_version("v1.25.16").unwrap();
    let (s, _, body) = raw(
        &sim,
        "GET",
        "/apis/policy/v1beta1/namespaces/app/poddisruptionbudgets",
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, 404, "{body}");
    assert_eq!(
        raw(
            &sim,
            "GET",
            "/apis/policy/v1/namespaces/app/poddisruptionbudgets/old",
            None
        )
        .await
        .unwrap()
        .0,
        200
    );
    let (_, _, groups) = raw(&sim, "GET", "/apis", None).await.unwrap();
    assert!(
        !groups.contains("policy/v1beta1") && groups.contains("policy/v1"),
        "{groups}"
    );
    let (_, _, version) = raw(&sim, "GET", "/version", None).await.unwrap();
    assert!(version.contains("\"gitVersion\":\"v1.25.16\""), "{version}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoint_drives_the_cluster() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let post = |path: &'static str, body: Value| {
        let sim = sim.clone();
        async move {
            raw(&sim, "POST", path, Some(&body.to_string()))
                .await
                .unwrap()
        }
    };
    // What a kubeadm shim on a node says after installing a new kubelet.
    let (s, _, b) = post(
        "/_sim/nodes/pool-a-1/kubelet-version",
        json!({"version": "v1.34.1"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    sim.wait_for(GUARD, "pool-a-1 at v1.34.1 and Ready", |s| {
        let n = s.get("nodes", None, "pool-a-1").unwrap();
        n["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.1"
            && n["status"]["conditions"][3]["status"] == "True"
    })
    .await
    .unwrap();
    let (_, _, state) = raw(&sim, "GET", "/_sim/state", None).await.unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    let node = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "pool-a-1")
        .unwrap()
        .clone();
    assert_eq!(
        node,
        json!({"name": "pool-a-1", "ready": true, "kubeletVersion": "v1.34.1", "unschedulable": false})
    );

    // A managed pool upgrade: a new node joins, an old one leaves and its pods move.
    assert_eq!(
        post(
            "/_sim/nodes",
            json!({"name": "pool-a-4", "pool": "pool-a", "kubeletVersion": "v1.34.1"})
        )
        .await
        .0,
        200
    );
    let moved: Vec<String> = sim
        .pods_on_node("pool-a-2")
        .iter()
        .filter(|p| p["metadata"]["namespace"] == "shop")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        raw(&sim, "DELETE", "/_sim/nodes/pool-a-2", None)
            .await
            .unwrap()
            .0,
        200
    );
    assert!(sim.get("nodes", None, "pool-a-2").is_none());
    sim.wait_for(GUARD, "shop workloads whole again", |s| {
        ["web", "api", "cache"].iter().all(|d| {
            let d = s.get("deployments", Some("shop"), d).unwrap();
            d["status"]["readyReplicas"] == d["spec"]["replicas"]
        }) && s.get("statefulsets", Some("shop"), "db").unwrap()["status"]["readyReplicas"] == 3
    })
    .await
    .unwrap();
    assert!(
        sim.pod_deletions()
            .iter()
            .filter(|d| moved.contains(&d.name))
            .all(|d| d.via == kup_mocks::k8s::DeletedVia::NodeRemoved)
    );
    assert!(
        sim.list("leases", Some("kube-node-lease"))
            .iter()
            .any(|l| l["metadata"]["name"] == "pool-a-4")
    );

    // Bad input names the field and the accepted values; unknown objects are 404.
    let (s, _, b) = post(
        "/_sim/nodes/pool-a-1/condition",
        json!({"type": "Sleepy", "status": "True"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(b.contains("accepted: Ready, MemoryPressure"), "{b}");
    assert_eq!(
        post(
            "/_sim/nodes/nope/kubelet-version",
            json!({"version": "v1.34.1"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        post(
            "/_sim/nodes/pool-a-1/kubelet-version",
            json!({"version": "banana"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post("/_sim/version", json!({"version": "v1.34.0"})).await.0,
        200
    );
    assert_eq!(sim.api_server_version(), "v1.34.0");
    let before = sim.clock().now();
    assert_eq!(
        post("/_sim/clock/advance", json!({"seconds": 600})).await.0,
        200
    );
    assert!(sim.clock().now().duration_since(before) >= jiff::SignedDuration::from_secs(600));
    assert_eq!(
        post("/_sim/pods/shop/db-0/ready", json!({"ready": false}))
            .await
            .0,
        200
    );
    assert_eq!(
        sim.get("pods", Some("shop"), "db-0").unwrap()["status"]["conditions"][2]["status"],
        "False"
    );
    // Control calls stay out of the request log; API calls are in it.
    assert!(sim.requests().matching("", "/_sim/**").is_empty());
    let _ = Duration::ZERO;
    sim.shutdown().await;
}
