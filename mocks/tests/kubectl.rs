//! Real kubectl against the simulator: the outcomes a real cluster gives.
#![allow(clippy::unwrap_used)]

mod common;

use common::{GUARD, Kubectl, kubectl};
use kup_mocks::k8s::{DeletedVia, Node, Pdb, Pod, Pool, Scenario, SimConfig, Simulator, Workload};
use serde_json::Value;

fn ready_on(sim: &kup_mocks::k8s::SimHandle, app: &str, node: &str) -> usize {
    sim.pods_on_node(node)
        .iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == app
                && p["metadata"].get("deletionTimestamp").is_none()
        })
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_nodes_pods_and_pdbs() {
    let Some(bin) = kubectl() else { return };
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let k = Kubectl::new(bin, &sim);

    let nodes = k.ok(&["get", "nodes"]).await;
    let lines: Vec<&str> = nodes.lines().collect();
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
        "{nodes}"
    );
    assert_eq!(lines.len(), 10, "{nodes}");
    assert!(
        lines.iter().any(|l| l.starts_with("cp-1")
            && l.contains(" Ready ")
            && l.contains("control-plane")
            && l.contains("v1.33.5")),
        "{nodes}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pool-b-3") && l.contains("<none>")),
        "{nodes}"
    );

    let pods = k.ok(&["get", "pods", "-A", "-o", "wide"]).await;
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        &header[..6],
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(header.contains(&"NODE") && header.contains(&"IP"), "{pods}");
    assert_eq!(
        pods.lines().count() - 1,
        sim.count("pods"),
        "one line per pod"
    );
    for p in sim.pods() {
        let name = p["metadata"]["name"].as_str().unwrap();
        let node = p["spec"]["nodeName"].as_str().unwrap();
        let line = pods
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap();
        assert!(
            line.contains(node) && line.contains("Running") && line.contains("1/1"),
            "{line}"
        );
    }

    let pdbs = k.ok(&["get", "pdb", "-A"]).await;
    let web = pdbs
        .lines()
        .find(|l| l.starts_with("shop") && l.contains(" web "))
        .unwrap();
    assert!(
        web.split_whitespace()
            .eq(["shop", "web", "2", "N/A", "1", "3d"]),
        "{web}"
    );
    let cache = pdbs.lines().find(|l| l.contains(" cache ")).unwrap();
    assert!(
        cache
            .split_whitespace()
            .eq(["shop", "cache", "50%", "N/A", "1", "3d"]),
        "{cache}"
    );

    let json: Value = serde_json::from_str(&k.ok(&["get", "nodes", "-o", "json"]).await).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 9);
    let names = k
        .ok(&["get", "pods", "-n", "shop", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(names.lines().count(), 3, "{names}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_drain_retries_on_pdb_then_completes_and_uncordon() {
    let Some(bin) = kubectl() else { return };
    // Both web replicas start on w-1 (w-2 is cordoned), and the PDB lets only one go at a time.
    let scenario = Scenario::new()
        .pool(Pool::new("cp", 1).control_plane())
        .node(Node::new("w-1"))
        .node(Node::new("w-2").unschedulable())
        .workload(Workload::daemon_set("kube-system", "kube-proxy").tolerate_all())
        .workload(Workload::deployment("shop", "web").replicas(2))
        .workload(Workload::deployment("shop", "cache").empty_dir())
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(1),
        );
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    assert_eq!(ready_on(&sim, "web", "w-1"), 2);
    let k = Kubectl::new(bin, &sim);

    let out = k.ok(&["uncordon", "w-2"]).await;
    assert!(out.contains("node/w-2 uncordoned"), "{out}");
    assert!(
        sim.get("nodes", None, "w-2").unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );

    let out = k.ok(&["cordon", "w-1"]).await;
    assert!(out.contains("node/w-1 cordoned"), "{out}");
    assert_eq!(
        sim.get("nodes", None, "w-1").unwrap()["spec"]["unschedulable"],
        true
    );

    let drain = k
        .run(&[
            "drain",
            "w-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&drain.stdout),
        String::from_utf8_lossy(&drain.stderr)
    );
    assert!(drain.status.success(), "{text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "the PDB made kubectl retry: {text}"
    );
    assert!(text.contains("node/w-1 drained"), "{text}");

    // Only the DaemonSet pod is left on w-1; both web replicas run Ready on w-2.
    let left: Vec<Value> = sim.pods_on_node("w-1");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        left[0]["metadata"]["ownerReferences"][0]["kind"],
        "DaemonSet"
    );
    assert_eq!(ready_on(&sim, "web", "w-2"), 2);
    let deletions = sim.pod_deletions();
    assert_eq!(
        deletions.len(),
        3,
        "two web pods and the cache pod: {deletions:?}"
    );
    assert!(
        deletions
            .iter()
            .all(|d| d.via == DeletedVia::Eviction && d.node == "w-1"),
        "{deletions:?}"
    );
    let evictions = sim
        .requests()
        .matching("POST", "/api/v1/namespaces/shop/pods/*/eviction");
    assert!(evictions.iter().any(|r| r.status == 429), "{evictions:?}");
    assert_eq!(evictions.iter().filter(|r| r.status == 201).count(), 3);

    let out = k.ok(&["uncordon", "w-1"]).await;
    assert!(out.contains("node/w-1 uncordoned"), "{out}");
    assert!(
        sim.get("nodes", None, "w-1").unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_unmanaged_pods_without_force() {
    let Some(bin) = kubectl() else { return };
    let scenario = Scenario::new()
        .node(Node::new("w-1"))
        .node(Node::new("w-2"))
        .pod(Pod::new("default", "debug").node("w-1"))
        .pod(
            Pod::new("default", "scratch")
                .node("w-1")
                .empty_dir()
                .orphan_of("ReplicaSet/gone"),
        );
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    let k = Kubectl::new(bin, &sim);
    let out = k
        .run(&["drain", "w-1", "--ignore-daemonsets", "--timeout=30s"])
        .await;
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("default/debug") && text.contains("declare no controller"),
        "{text}"
    );
    assert!(
        text.contains("default/scratch") && text.contains("local storage"),
        "{text}"
    );
    assert!(
        sim.pod_deletions().is_empty(),
        "nothing is evicted when a pod is refused"
    );
    assert_eq!(
        sim.get("nodes", None, "w-1").unwrap()["spec"]["unschedulable"],
        true,
        "the node stays cordoned"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_node_ready_follows_the_kubelet() {
    let Some(bin) = kubectl() else { return };
    let scenario = Scenario::new()
        .node(Node::new("w-1"))
        .node(Node::new("w-2"));
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    let k = Kubectl::new(bin, &sim);

    // A node that never comes back: wait times out.
    sim.set_node_never_ready("w-2", true).unwrap();
    sim.set_kubelet_version("w-2", "v1.34.2").unwrap();
    let out = k
        .run(&["wait", "--for=condition=Ready", "node/w-2", "--timeout=2s"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A kubelet restart: NotReady, then Ready with the new version; wait returns once Ready.
    sim.set_kubelet_version("w-1", "v1.34.2").unwrap();
    assert_eq!(
        sim.get("nodes", None, "w-1").unwrap()["status"]["conditions"][3]["status"],
        "False"
    );
    let out = k
        .ok(&["wait", "--for=condition=Ready", "node/w-1", "--timeout=60s"])
        .await;
    assert!(out.contains("node/w-1 condition met"), "{out}");
    let node = sim.get("nodes", None, "w-1").unwrap();
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.34.2");

    sim.set_node_never_ready("w-2", false).unwrap();
    sim.set_node_condition("w-2", "Ready", "True").unwrap();
    k.ok(&["wait", "--for=condition=Ready", "node/w-2", "--timeout=60s"])
        .await;
    let _ = GUARD;
    sim.shutdown().await;
}

/// Pods of `app` not being deleted, and how many of them are Ready.
fn live_and_ready(sim: &kup_mocks::k8s::SimHandle, app: &str) -> (usize, usize) {
    let live: Vec<Value> = sim
        .pods()
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == app
                && p["metadata"].get("deletionTimestamp").is_none()
        })
        .collect();
    let ready = live
        .iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count();
    (live.len(), ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_within_max_surge_and_max_unavailable() {
    let Some(bin) = kubectl() else { return };
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            }
        }
    });
    let scenario = Scenario::new()
        .node(Node::new("w-1"))
        .node(Node::new("w-2"))
        .object(deployment);
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    let k = Kubectl::new(bin, &sim);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert_eq!(live_and_ready(&sim, "web"), (4, 4));

    k.ok(&["set", "image", "deployment/web", "web=nginx:1.28"])
        .await;
    // Watch the rollout from the side while kubectl follows it to its end.
    let watcher = {
        let sim = sim.clone();
        tokio::spawn(async move {
            let (mut most_live, mut fewest_ready, mut most_scaled) = (0, usize::MAX, 0);
            for _ in 0..3000 {
                let (live, ready) = live_and_ready(&sim, "web");
                most_live = most_live.max(live);
                fewest_ready = fewest_ready.min(ready);
                let scaled: i64 = sim
                    .list("replicasets", Some("default"))
                    .iter()
                    .map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(0))
                    .sum();
                most_scaled = most_scaled.max(scaled);
                let images: Vec<Value> = sim
                    .pods()
                    .iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "web")
                    .map(|p| p["spec"]["containers"][0]["image"].clone())
                    .collect();
                if images.len() == 4 && images.iter().all(|i| i == "nginx:1.28") && ready == 4 {
                    return (most_live, fewest_ready, most_scaled, true);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (most_live, fewest_ready, most_scaled, false)
        })
    };
    let status = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .await;
    assert!(status.contains("successfully rolled out"), "{status}");
    let (most_live, fewest_ready, most_scaled, finished) = watcher.await.unwrap();
    assert!(finished, "the rollout did not replace every pod");
    assert!(
        most_scaled <= 5,
        "ReplicaSets asked for {most_scaled} pods, above replicas 4 + maxSurge 1"
    );
    assert!(
        most_live <= 5,
        "{most_live} pods ran at once, above replicas 4 + maxSurge 1"
    );
    assert!(
        fewest_ready >= 4,
        "only {fewest_ready} pods were ready, below replicas 4 - maxUnavailable 0"
    );
    // The old ReplicaSet stays, scaled to zero, as the rollout history.
    let sets = sim.list("replicasets", Some("default"));
    assert_eq!(sets.len(), 2);
    let mut replicas: Vec<i64> = sets
        .iter()
        .map(|rs| rs["spec"]["replicas"].as_i64().unwrap())
        .collect();
    replicas.sort_unstable();
    assert_eq!(replicas, [0, 4]);
    let history = k.ok(&["rollout", "history", "deployment/web"]).await;
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let _ = GUARD;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_extensions_and_storage_objects_are_served_as_on_a_real_cluster() {
    let Some(bin) = kubectl() else { return };
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let k = Kubectl::new(bin, &sim);
    // The aggregator's local APIServices, one per served group version, all available.
    let apis = k.ok(&["get", "apiservices"]).await;
    for name in ["v1.", "v1.apps", "v1.policy", "v1.apiextensions.k8s.io"] {
        assert!(
            apis.lines().any(|l| l.starts_with(&format!("{name} "))
                && l.contains("Local")
                && l.contains("True")),
            "{name} missing:\n{apis}"
        );
    }
    // kind's default StorageClass, which the scenario's claims name.
    let classes = k.ok(&["get", "storageclass"]).await;
    assert!(
        classes.contains("standard (default)") && classes.contains("rancher.io/local-path"),
        "{classes}"
    );
    // A CSINode per node, and no webhooks, CRDs or attachments until someone adds them.
    let csinodes = k.ok(&["get", "csinodes", "-o", "name"]).await;
    assert_eq!(csinodes.lines().count(), sim.nodes().len(), "{csinodes}");
    for kind in [
        "crd",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "csidrivers",
        "volumeattachments",
    ] {
        let out = k.run(&["get", kind]).await;
        assert!(out.status.success(), "{kind}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("No resources found"),
            "{kind}: {out:?}"
        );
    }
    // Objects round-trip through a typed client.
    let client = sim.client().unwrap();
    let hooks: kube::Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = kube::Api::all(client.clone());
    let hook: k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "policy"},
            "webhooks": [{"name": "check.policy.example.com", "admissionReviewVersions": ["v1"],
                "sideEffects": "None", "failurePolicy": "Fail",
                "clientConfig": {"service": {"namespace": "policy", "name": "webhook"}},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods"]}]}]
        }))
        .unwrap();
    hooks
        .create(&kube::api::PostParams::default(), &hook)
        .await
        .unwrap();
    let listed = k
        .ok(&["get", "validatingwebhookconfigurations", "-o", "name"])
        .await;
    assert_eq!(
        listed.trim(),
        "validatingwebhookconfiguration.admissionregistration.k8s.io/policy"
    );
    let got = hooks.get("policy").await.unwrap();
    assert_eq!(
        got.webhooks.unwrap()[0].failure_policy.as_deref(),
        Some("Fail")
    );
    let _ = GUARD;
    sim.shutdown().await;
}
