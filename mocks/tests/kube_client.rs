//! kube-rs against the simulator: selectors, pagination, CRUD status codes, patches, watches,
//! Table and metadata output, evictions.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{GUARD, code};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kup_mocks::k8s::{
    DeletedVia, Node as SimNode, Pdb, Pool, Scenario, SimConfig, SimHandle, Simulator, Workload,
};
use serde_json::{Value, json};

fn client(sim: &SimHandle) -> kube::Client {
    // Evictions answer 429 as a PDB verdict; the test must see it rather than kube's retry.
    let mut cfg = sim.client_config();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

async fn raw(client: &kube::Client, req: http::Request<Vec<u8>>) -> (u16, http::HeaderMap, Value) {
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn evict(name: &str, ns: &str) -> Eviction {
    Eviction {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        delete_options: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_selectors_and_pagination() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let c = client(&sim);
    let pods: Api<Pod> = Api::all(c.clone());

    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 3);
    let set = pods
        .list(&ListParams::default().labels("app in (web,api),app!=api"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 3);
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=pool-a-1"))
        .await
        .unwrap();
    assert!(!on_node.items.is_empty());
    assert!(
        on_node
            .items
            .iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some("pool-a-1"))
    );
    assert_eq!(on_node.items.len(), sim.pods_on_node("pool-a-1").len());
    let not_running = pods
        .list(&ListParams::default().fields("status.phase!=Running"))
        .await
        .unwrap();
    assert!(not_running.items.is_empty());
    let by_name = pods
        .list(&ListParams::default().fields("metadata.namespace==shop,metadata.name=db-0"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    let e = pods
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 400, "{e}");
    let e = pods
        .list(&ListParams::default().labels("app in web"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 400, "{e}");

    // Pages of 7: every pod exactly once, in a stable order, with remainingItemCount.
    let total = sim.count("pods");
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(7);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = pods.list(&lp).await.unwrap();
        pages += 1;
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some((total - 7) as i64));
        }
        names.extend(page.items.iter().map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.clone().unwrap(),
                p.metadata.name.clone().unwrap()
            )
        }));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, total.div_ceil(7));
    assert_eq!(names.len(), total);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "list order is by namespace then name");
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), total);

    // Namespaced lists and label selectors with pagination.
    let shop: Api<Pod> = Api::namespaced(c.clone(), "shop");
    let page = shop
        .list(&ListParams::default().labels("app=db").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = shop
        .list(
            &ListParams::default()
                .labels("app=db")
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].metadata.name.as_deref(), Some("db-2"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_status_codes_and_bodies() {
    let sim = Simulator::start(Scenario::new().node(SimNode::new("n1")), SimConfig::fast())
        .await
        .unwrap();
    let c = client(&sim);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("lock".into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    };
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let e = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(code(&e), 409);
    let kube::Error::Api(s) = &e else { panic!() };
    assert_eq!(s.reason, "AlreadyExists");
    assert_eq!(s.message, "configmaps \"lock\" already exists");

    let mut update = created.clone();
    update.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = cms
        .replace("lock", &PostParams::default(), &update)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    // The same stale object again: 409 Conflict.
    let e = cms
        .replace("lock", &PostParams::default(), &update)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);
    let kube::Error::Api(s) = &e else { panic!() };
    assert_eq!(s.reason, "Conflict");
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );

    let e = cms.get("missing").await.unwrap_err();
    assert_eq!(code(&e), 404);
    let kube::Error::Api(s) = &e else { panic!() };
    assert_eq!(
        (s.reason.as_str(), s.message.as_str()),
        ("NotFound", "configmaps \"missing\" not found")
    );

    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let bad: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
            .unwrap();
    let e = pods.create(&PostParams::default(), &bad).await.unwrap_err();
    assert_eq!(code(&e), 422);
    let e = Api::<ConfigMap>::namespaced(c.clone(), "nope")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 404, "a missing namespace");

    let deleted = cms.delete("lock", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "configmaps answer a Status");
    assert_eq!(code(&cms.get("lock").await.unwrap_err()), 404);

    // Pods are created Pending, scheduled and started by the simulated kubelet.
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    sim.wait_for(GUARD, "pod p Running", |s| {
        s.get("pods", Some("default"), "p")
            .is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await
    .unwrap();
    let p = pods.get("p").await.unwrap();
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("n1"));
    let deleted = pods.delete("p", &DeleteParams::default()).await.unwrap();
    let terminating = deleted.left().expect("pods answer the object");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    sim.wait_for(GUARD, "pod p gone", |s| {
        s.get("pods", Some("default"), "p").is_none()
    })
    .await
    .unwrap();
    assert_eq!(sim.pod_deletions()[0].via, DeletedVia::Delete);
    assert_eq!(c.apiserver_version().await.unwrap().git_version, "v1.33.5");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_merge_json_and_apply_patches() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let c = client(&sim);
    let nodes: Api<Node> = Api::all(c.clone());
    nodes.cordon("pool-a-2").await.unwrap();
    assert_eq!(
        sim.get("nodes", None, "pool-a-2").unwrap()["spec"]["unschedulable"],
        true
    );
    nodes.uncordon("pool-a-2").await.unwrap();
    assert_ne!(
        sim.get("nodes", None, "pool-a-2").unwrap()["spec"]["unschedulable"],
        true
    );

    // Strategic merge: a taint is added to the list by key, labels merge.
    let smp = json!({"metadata": {"labels": {"team": "infra"}}, "spec": {"taints": [{"key": "maint", "effect": "NoSchedule"}]}});
    nodes
        .patch("pool-b-1", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let smp2 = json!({"spec": {"taints": [{"key": "other", "effect": "NoExecute"}]}});
    let n = nodes
        .patch(
            "pool-b-1",
            &PatchParams::default(),
            &Patch::Strategic(&smp2),
        )
        .await
        .unwrap();
    let taints: Vec<String> = n
        .spec
        .unwrap()
        .taints
        .unwrap()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(taints, ["maint", "other"]);
    assert_eq!(n.metadata.labels.unwrap()["team"], "infra");

    // Merge patch: lists are replaced, null removes.
    let mp = json!({"metadata": {"labels": {"team": null}}, "spec": {"taints": [{"key": "only", "effect": "NoSchedule"}]}});
    let n = nodes
        .patch("pool-b-1", &PatchParams::default(), &Patch::Merge(&mp))
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().taints.unwrap().len(), 1);
    assert!(!n.metadata.labels.unwrap().contains_key("team"));

    // JSON patch (sent raw: kube's Patch::Json needs an extra feature).
    let body = serde_json::to_vec(
        &json!([{"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"}]),
    )
    .unwrap();
    let req = http::Request::patch("/apis/apps/v1/namespaces/shop/deployments/web")
        .header("content-type", "application/json-patch+json")
        .body(body)
        .unwrap();
    let (status, _, obj) = raw(&c, req).await;
    assert_eq!(status, 200, "{obj}");
    assert_eq!(obj["spec"]["replicas"], 4);
    let failing =
        serde_json::to_vec(&json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).unwrap();
    let req = http::Request::patch("/apis/apps/v1/namespaces/shop/deployments/web")
        .header("content-type", "application/json-patch+json")
        .body(failing)
        .unwrap();
    assert_eq!(raw(&c, req).await.0, 422);
    // The Deployment controller scales the ReplicaSet; a fourth pod appears and turns Ready.
    let deps: Api<Deployment> = Api::namespaced(c.clone(), "shop");
    sim.wait_for(GUARD, "web at 4 ready", |s| {
        s.get("deployments", Some("shop"), "web")
            .is_some_and(|d| d["status"]["readyReplicas"] == 4)
    })
    .await
    .unwrap();
    assert_eq!(
        deps.get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .available_replicas,
        Some(4)
    );

    // Server-side apply creates, then updates.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "shop"}, "data": {"a": "1"}});
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "shop");
    let pp = PatchParams::apply("kup-test").force();
    cms.patch("applied", &pp, &Patch::Apply(&cm)).await.unwrap();
    let cm2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "shop"}, "data": {"b": "2"}});
    let got = cms
        .patch("applied", &pp, &Patch::Apply(&cm2))
        .await
        .unwrap();
    assert_eq!(got.data.unwrap()["b"], "2");

    // A resourceVersion in a patch is a precondition.
    let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}});
    let e = nodes
        .patch("pool-b-2", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 409);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_and_answers_410_for_compacted_history() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let c = client(&sim);
    let pods: Api<Pod> = Api::namespaced(c.clone(), "shop");
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    let victim = list.items[0].metadata.name.clone().unwrap();

    let mut stream = pods
        .watch(&WatchParams::default().labels("app=web").timeout(60), &rv)
        .await
        .unwrap()
        .boxed();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    // The pod goes Terminating (MODIFIED), leaves (DELETED), and the ReplicaSet adds one (ADDED).
    let mut seen = Vec::new();
    while !(seen.iter().any(|(k, n)| *k == "DELETED" && *n == victim)
        && seen.iter().any(|(k, n)| *k == "ADDED" && *n != victim))
    {
        let ev = tokio::time::timeout(GUARD, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(p) => seen.push(("ADDED", p.metadata.name.unwrap())),
            WatchEvent::Modified(p) => seen.push(("MODIFIED", p.metadata.name.unwrap())),
            WatchEvent::Deleted(p) => seen.push(("DELETED", p.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen[0], ("MODIFIED", victim.clone()), "{seen:?}");

    // Watching from "0" starts with synthetic ADDED events for what exists.
    let mut from_zero = pods
        .watch(&WatchParams::default().labels("app=db").timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    for _ in 0..3 {
        let ev = tokio::time::timeout(GUARD, from_zero.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(ev, WatchEvent::Added(_)), "{ev:?}");
    }

    // After a compaction an old resourceVersion is gone: an ERROR event with 410 Expired.
    sim.compact();
    let mut old = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(GUARD, old.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(s) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert!(
                s.message.starts_with("too old resource version"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }

    // kube-runtime's watcher (list + watch, re-list on 410) sees a new pod.
    let nodes: Api<Node> = Api::all(c.clone());
    let mut w = watcher(nodes, watcher::Config::default())
        .applied_objects()
        .boxed();
    sim.add_node(SimNode::new("late-joiner")).unwrap();
    loop {
        let n = tokio::time::timeout(GUARD, w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if n.metadata.name.as_deref() == Some("late-joiner") {
            break;
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_answer_201_429_and_500() {
    let scenario = Scenario::new()
        .pool(Pool::new("w", 3))
        .workload(Workload::deployment("app", "blocked").replicas(2))
        .pdb(
            Pdb::new("app", "blocked")
                .match_label("app", "blocked")
                .min_available(2),
        )
        .workload(Workload::deployment("app", "free").replicas(3))
        .pdb(
            Pdb::new("app", "free")
                .match_label("app", "free")
                .max_unavailable(1),
        )
        .workload(Workload::deployment("app", "twice").replicas(2))
        .pdb(
            Pdb::new("app", "twice-a")
                .match_label("app", "twice")
                .min_available(1),
        )
        .pdb(
            Pdb::new("app", "twice-b")
                .match_label("app", "twice")
                .max_unavailable(1),
        );
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    let pods: Api<Pod> = Api::namespaced(c.clone(), "app");
    let name_of = |app: &str| {
        sim.list("pods", Some("app"))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == app)
            .unwrap()["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // 429: the budget needs both pods.
    let blocked = name_of("blocked");
    let e = pods
        .create_subresource::<_, Value>(
            "eviction",
            &blocked,
            &PostParams::default(),
            &evict(&blocked, "app"),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = &e else {
        panic!("{e}")
    };
    assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        s.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &s.details.as_ref().unwrap().causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget blocked needs 2 healthy pods and has 2 currently"
    );

    // 500: two budgets select the pod.
    let twice = name_of("twice");
    let e = pods
        .create_subresource::<_, Value>(
            "eviction",
            &twice,
            &PostParams::default(),
            &evict(&twice, "app"),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = &e else {
        panic!("{e}")
    };
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );

    // 201: the budget allows one; it is decremented and the pod recorded as disrupted.
    let free = name_of("free");
    let ok: Value = pods
        .create_subresource(
            "eviction",
            &free,
            &PostParams::default(),
            &evict(&free, "app"),
        )
        .await
        .unwrap();
    assert_eq!(
        ok,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    // The evicted pod is terminating (or already gone) and says why.
    if let Some(p) = sim.get("pods", Some("app"), &free) {
        assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
        let conds = p["status"]["conditions"].as_array().unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "EvictionByEvictionAPI"),
            "{p}"
        );
    }
    assert_eq!(
        sim.pod_deletions()
            .iter()
            .filter(|d| d.name == free)
            .count(),
        1
    );
    // kube's own evict helper works too (it ends in the same subresource).
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), "app");
    sim.wait_for(GUARD, "free healthy again", |s| {
        s.get("pdb", Some("app"), "free").is_some_and(|p| {
            p["status"]["currentHealthy"] == 3 && p["status"]["disruptionsAllowed"] == 1
        })
    })
    .await
    .unwrap();
    assert_eq!(
        pdbs.get("free")
            .await
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        Some(1)
    );

    // A missing pod: 404; a name mismatch: 400.
    let e = pods
        .create_subresource::<_, Value>(
            "eviction",
            "ghost",
            &PostParams::default(),
            &evict("ghost", "app"),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 404);
    let e = pods
        .create_subresource::<_, Value>(
            "eviction",
            &free,
            &PostParams::default(),
            &evict("other", "app"),
        )
        .await
        .unwrap_err();
    assert!(code(&e) == 400 || code(&e) == 404, "{e}");
    assert!(
        sim.pod_deletions()
            .iter()
            .all(|d| d.via == DeletedVia::Eviction)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_metadata_output() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let c = client(&sim);
    let req = http::Request::get("/api/v1/nodes?limit=500")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
        .body(Vec::new())
        .unwrap();
    let (status, _, table) = raw(&c, req).await;
    assert_eq!(status, 200);
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..5], ["Name", "Status", "Roles", "Age", "Version"]);
    assert_eq!(table["rows"].as_array().unwrap().len(), 9);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let meta = Api::<Pod>::namespaced(c.clone(), "shop")
        .list_metadata(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 3);
    assert!(
        meta.items
            .iter()
            .all(|m| m.metadata.name.as_deref().unwrap().starts_with("web-"))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_eviction_as_policy_v1() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let c = client(&sim);
    let core = c.list_core_api_resources("v1").await.unwrap();
    let ev = core
        .resources
        .iter()
        .find(|r| r.name == "pods/eviction")
        .unwrap();
    assert_eq!(
        (ev.group.as_deref(), ev.version.as_deref(), ev.kind.as_str()),
        (Some("policy"), Some("v1"), "Eviction")
    );
    let groups = c.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "apps"));
    assert!(
        !groups
            .groups
            .iter()
            .find(|g| g.name == "policy")
            .unwrap()
            .versions
            .iter()
            .any(|v| v.version == "v1beta1")
    );
    let _ = Duration::ZERO;
    sim.shutdown().await;
}
