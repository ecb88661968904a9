//! What the node lifecycle controller, the scheduler and the kubelets leave behind: the
//! `node.kubernetes.io/*` taints that follow cordons and readiness, and the Events they record.
#![allow(clippy::unwrap_used)]

mod common;

use common::{GUARD, Kubectl, kubectl};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kup_mocks::k8s::{Scenario, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

fn taints(sim: &SimHandle, node: &str) -> Vec<(String, String, bool)> {
    sim.get("nodes", None, node).unwrap()["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_string(),
                t["effect"].as_str().unwrap().to_string(),
                t["timeAdded"].is_string(),
            )
        })
        .collect()
}

fn events(sim: &SimHandle, reason: &str) -> Vec<Value> {
    sim.list("events", None)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

fn unschedulable() -> (String, String, bool) {
    (
        "node.kubernetes.io/unschedulable".into(),
        "NoSchedule".into(),
        true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordons_and_readiness_taint_the_node_and_record_events() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(sim.client().unwrap());
    assert!(taints(&sim, "pool-a-1").is_empty());
    let cordon = |on: bool| Patch::Merge(json!({"spec": {"unschedulable": on}}));
    nodes
        .patch("pool-a-1", &PatchParams::default(), &cordon(true))
        .await
        .unwrap();
    sim.wait_for(GUARD, "the unschedulable taint", |s| {
        taints(s, "pool-a-1") == vec![unschedulable()]
    })
    .await
    .unwrap();
    let typed = nodes.get("pool-a-1").await.unwrap();
    assert!(typed.spec.unwrap().taints.unwrap()[0].time_added.is_some());
    let ev = &events(&sim, "NodeNotSchedulable")[0];
    assert_eq!(ev["metadata"]["namespace"], "default");
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    assert_eq!(ev["involvedObject"]["name"], "pool-a-1");
    assert_eq!(
        ev["message"],
        "Node pool-a-1 status is now: NodeNotSchedulable"
    );
    assert_eq!(ev["source"]["component"], "kubelet");

    nodes
        .patch("pool-a-1", &PatchParams::default(), &cordon(false))
        .await
        .unwrap();
    sim.wait_for(GUARD, "the taint gone", |s| {
        taints(s, "pool-a-1").is_empty()
    })
    .await
    .unwrap();
    assert_eq!(events(&sim, "NodeSchedulable").len(), 1);

    // A kubelet restart: NotReady adds not-ready NoSchedule and NoExecute; Ready removes them.
    sim.set_kubelet_version("pool-a-2", "v1.33.6").unwrap();
    sim.wait_for(GUARD, "the not-ready taints", |s| {
        let t = taints(s, "pool-a-2");
        t.contains(&(
            "node.kubernetes.io/not-ready".into(),
            "NoSchedule".into(),
            true,
        )) && t.contains(&(
            "node.kubernetes.io/not-ready".into(),
            "NoExecute".into(),
            true,
        ))
    })
    .await
    .unwrap();
    sim.wait_for(GUARD, "Ready again, untainted", |s| {
        taints(s, "pool-a-2").is_empty()
    })
    .await
    .unwrap();
    assert_eq!(
        events(&sim, "NodeNotReady")[0]["source"]["component"],
        "node-controller"
    );
    assert!(!events(&sim, "NodeReady").is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_and_scheduling_record_kubelet_and_scheduler_events() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let web = sim
        .pods()
        .into_iter()
        .find(|p| p["metadata"]["namespace"] == "shop" && p["metadata"]["labels"]["app"] == "web")
        .unwrap();
    let name = web["metadata"]["name"].as_str().unwrap().to_string();
    let container = web["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let node = web["spec"]["nodeName"].as_str().unwrap().to_string();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    pods.evict(&name, &Default::default()).await.unwrap();

    // The kubelet stops the container; the ReplicaSet's replacement is scheduled.
    sim.wait_for(GUARD, "a replacement scheduled", |s| {
        events(s, "Scheduled").iter().any(|e| {
            e["involvedObject"]["name"] != name.as_str() && e["metadata"]["namespace"] == "shop"
        })
    })
    .await
    .unwrap();
    let shop: Api<Event> = Api::namespaced(client, "shop");
    let listed = shop
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items;
    let killing = listed
        .iter()
        .find(|e| e.reason.as_deref() == Some("Killing"))
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(
        killing.message.as_deref(),
        Some(format!("Stopping container {container}").as_str())
    );
    assert_eq!(
        killing.involved_object.field_path.as_deref(),
        Some(format!("spec.containers{{{container}}}").as_str())
    );
    assert_eq!(
        killing.source.as_ref().unwrap().host.as_deref(),
        Some(node.as_str())
    );
    let scheduled = events(&sim, "Scheduled")
        .into_iter()
        .find(|e| {
            e["metadata"]["namespace"] == "shop" && e["involvedObject"]["name"] != name.as_str()
        })
        .unwrap();
    let replacement = scheduled["involvedObject"]["name"].as_str().unwrap();
    let placed = sim.get("pods", Some("shop"), replacement).unwrap()["spec"]["nodeName"].clone();
    assert_eq!(
        scheduled["message"],
        format!(
            "Successfully assigned shop/{replacement} to {}",
            placed.as_str().unwrap()
        )
    );
    assert_eq!(scheduled["source"]["component"], "default-scheduler");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_taints_and_events() {
    let Some(bin) = kubectl() else { return };
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let k = Kubectl::new(bin, &sim);
    k.ok(&["cordon", "pool-b-1"]).await;
    sim.wait_for(GUARD, "the unschedulable taint", |s| {
        taints(s, "pool-b-1") == vec![unschedulable()]
    })
    .await
    .unwrap();
    let described = k.ok(&["describe", "node", "pool-b-1"]).await;
    assert!(
        described.contains("Taints:             node.kubernetes.io/unschedulable:NoSchedule"),
        "{described}"
    );
    assert!(described.contains("NodeNotSchedulable"), "{described}");
    let listed = k
        .ok(&[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            "reason=NodeNotSchedulable",
        ])
        .await;
    assert!(listed.contains("node/pool-b-1"), "{listed}");
    sim.shutdown().await;
}
