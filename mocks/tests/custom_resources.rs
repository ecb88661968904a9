//! Custom resources through kube-rs: a CRD created over the API becomes Established and serves
//! its kind (discovery, CRUD, status subresource, generation, schema validation, watches), and
//! takes its objects along when deleted.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::GUARD;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{WatchStreamExt, watcher};
use kup_mocks::k8s::{Scenario, SimConfig, SimHandle, Simulator, User};
use serde_json::{Value, json};

fn code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> u16 {
    match r {
        Err(e) => common::code(&e),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "fleets.kup.dev"},
        "spec": {
            "group": "kup.dev", "scope": "Namespaced",
            "names": {"plural": "fleets", "singular": "fleet", "kind": "Fleet",
                "shortNames": ["fl"], "categories": ["kup"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Target", "type": "string", "jsonPath": ".spec.target"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["target"], "properties": {
                        "target": {"type": "string"},
                        "maxUnavailable": {"type": "integer"},
                        "strategy": {"type": "string", "enum": ["Surge", "InPlace"]}}},
                    "status": {"type": "object", "properties": {
                        "phase": {"type": "string"},
                        "observedGeneration": {"type": "integer"}}}}}}
            }]
        }
    })
}

/// What the test controller reconciles with: the Fleet API and the names it cleaned up.
type Ctx = (Api<DynamicObject>, Arc<std::sync::Mutex<Vec<String>>>);

fn fleet_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kup.dev", "v1alpha1", "Fleet"),
        "fleets",
    )
}

fn fleet(name: &str, target: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "kup.dev/v1alpha1", "kind": "Fleet",
        "metadata": {"name": name, "labels": {"tier": "prod"}},
        "spec": {"target": target, "unknownField": true}
    }))
    .unwrap()
}

async fn established(sim: &SimHandle) -> Api<DynamicObject> {
    let client = sim.client().unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd()).unwrap(),
    )
    .await
    .unwrap();
    let cond = |o: &DynamicObject| {
        o.data["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
    };
    let mut got = crds.get("fleets.kup.dev").await.unwrap();
    let deadline = tokio::time::Instant::now() + GUARD;
    while !cond(&got) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        got = crds.get("fleets.kup.dev").await.unwrap();
    }
    assert!(cond(&got), "{:?}", got.data["status"]);
    assert_eq!(got.data["status"]["acceptedNames"]["kind"], "Fleet");
    assert_eq!(
        got.data["status"]["acceptedNames"]["shortNames"],
        json!(["fl"])
    );
    Api::namespaced_with(client, "default", &fleet_resource())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_serves_its_kind_until_deleted() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let before: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &fleet_resource());
    assert_eq!(code(before.list(&ListParams::default()).await), 404);

    let fleets = established(&sim).await;

    // The CRD itself is validated: its name must be <plural>.<group>.
    let mut wrong = crd();
    wrong["metadata"]["name"] = json!("fleets");
    let crd_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    match crd_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(wrong).unwrap(),
        )
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("metadata.name"), "{}", s.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }

    // Discovery lists the kind with its names and status subresource.
    let (group, _) = kube::discovery::pinned_group(&client, &"kup.dev/v1alpha1".parse().unwrap())
        .await
        .map(|g| (g.name().to_string(), ()))
        .unwrap();
    assert_eq!(group, "kup.dev");
    let list: Value = client
        .request(
            http::Request::get("/apis/kup.dev/v1alpha1")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fleets", "fleets/status"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["fl"]));
    assert_eq!(list["resources"][0]["namespaced"], true);

    // Create: pruned, generation 1.
    let a = fleets
        .create(&PostParams::default(), &fleet("a", "1.34"))
        .await
        .unwrap();
    assert_eq!(a.metadata.generation, Some(1));
    assert!(a.data["spec"].get("unknownField").is_none(), "{:?}", a.data);
    fleets
        .create(&PostParams::default(), &fleet("b", "1.33"))
        .await
        .unwrap();
    assert_eq!(
        code(
            fleets
                .create(&PostParams::default(), &fleet("a", "1.34"))
                .await
        ),
        409
    );

    // Schema violations: 422 with causes naming the field.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kup.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "bad"},
        "spec": {"maxUnavailable": "two", "strategy": "Sideways"}}))
    .unwrap();
    match fleets.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert_eq!(s.reason, "Invalid");
            for field in ["spec.maxUnavailable", "spec.strategy", "spec.target"] {
                assert!(s.message.contains(field), "{}", s.message);
            }
        }
        other => panic!("expected 422, got {other:?}"),
    }

    // Selectors and pagination.
    let sel = fleets
        .list(
            &ListParams::default()
                .labels("tier=prod")
                .fields("metadata.name=b"),
        )
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 1);
    let page = fleets.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let next = fleets
        .list(
            &ListParams::default()
                .limit(1)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(next.items[0].metadata.name.as_deref(), Some("b"));

    // Status writes: the main resource ignores status; /status changes only status.
    let pp = PatchParams::default();
    let main = fleets
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Ignored"}})),
        )
        .await
        .unwrap();
    assert!(
        main.data
            .get("status")
            .is_none_or(|s| s.get("phase").is_none())
    );
    assert_eq!(main.metadata.generation, Some(1), "status-only write");
    let st = fleets
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"spec": {"target": "9.9"}, "status": {"phase": "Upgrading", "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Upgrading");
    assert_eq!(st.data["spec"]["target"], "1.34");
    assert_eq!(st.metadata.generation, Some(1));
    let labelled = fleets
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1), "metadata-only write");
    let spec = fleets
        .patch("a", &pp, &Patch::Merge(json!({"spec": {"target": "1.35"}})))
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(spec.data["status"]["phase"], "Upgrading");
    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/target", "value": "1.36"}]))
    .unwrap();
    let jp = fleets
        .patch("a", &pp, &Patch::<()>::Json(json_patch))
        .await
        .unwrap();
    assert_eq!(jp.metadata.generation, Some(3));
    assert_eq!(
        code(
            fleets
                .patch(
                    "a",
                    &pp,
                    &Patch::Strategic(json!({"spec": {"target": "x"}}))
                )
                .await
        ),
        415
    );
    let applied = fleets
        .patch_status(
            "a",
            &PatchParams::apply("kup").force(),
            &Patch::Apply(json!({"apiVersion": "kup.dev/v1alpha1", "kind": "Fleet",
                "status": {"phase": "Done", "observedGeneration": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Done");

    // Finalizers hold a deletion until they are removed.
    fleets
        .patch(
            "b",
            &pp,
            &Patch::Merge(json!({"metadata": {"finalizers": ["kup.dev/cleanup"]}})),
        )
        .await
        .unwrap();
    fleets.delete("b", &DeleteParams::default()).await.unwrap();
    let held = fleets.get("b").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    fleets
        .patch(
            "b",
            &pp,
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(code(fleets.get("b").await), 404);

    // Deleting the CRD deletes its objects and stops serving the kind.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    // A finalizer on an object holds the CRD (Terminating) until it is removed.
    fleets
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"finalizers": ["kup.dev/cleanup"]}})),
        )
        .await
        .unwrap();
    crds.delete("fleets.kup.dev", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = crds.get("fleets.kup.dev").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        code(
            fleets
                .create(&PostParams::default(), &fleet("c", "1.34"))
                .await
        ),
        405
    );
    assert!(
        fleets
            .get("a")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    fleets
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(code(crds.get("fleets.kup.dev").await), 404);
    assert_eq!(code(fleets.get("a").await), 404);
    assert_eq!(code(fleets.list(&ListParams::default()).await), 404);
    assert_eq!(sim.count("fleets.kup.dev"), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_and_controller_see_custom_objects() {
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let fleets = established(&sim).await;
    fleets
        .create(&PostParams::default(), &fleet("early", "1.34"))
        .await
        .unwrap();

    // A watcher (list, then watch) sees the existing object and later changes.
    let mut stream = watcher(fleets.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(GUARD, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("early"));
    fleets
        .create(&PostParams::default(), &fleet("late", "1.35"))
        .await
        .unwrap();
    let second = tokio::time::timeout(GUARD, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("late"));
    drop(stream);

    // A controller reconciles every Fleet through kube-runtime's finalizer helper: it records
    // observedGeneration through /status, and lets a deleted Fleet go after its cleanup.
    let cleaned = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ctx = Arc::new((fleets.clone(), cleaned.clone()));
    let controller = Controller::new_with(
        fleets.clone(),
        watcher::Config::default(),
        fleet_resource(),
    )
    .run(
        |obj: Arc<DynamicObject>, ctx: Arc<Ctx>| async move {
            let api = ctx.0.clone();
            finalizer(&api, "kup.dev/cleanup", obj, |event| async {
                match event {
                    FinalizerEvent::Apply(obj) => {
                        let name = obj.metadata.name.clone().unwrap_or_default();
                        let generation = obj.metadata.generation.unwrap_or(0);
                        api.patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"status": {"phase": "Reconciled", "observedGeneration": generation}})),
                        )
                        .await?;
                    }
                    FinalizerEvent::Cleanup(obj) => {
                        ctx.1.lock().unwrap().push(obj.metadata.name.clone().unwrap_or_default());
                    }
                }
                Ok::<_, kube::Error>(Action::await_change())
            })
            .await
        },
        |_, _, _| Action::requeue(std::time::Duration::from_millis(200)),
        ctx,
    )
    .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    fleets
        .patch(
            "late",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"target": "1.36"}})),
        )
        .await
        .unwrap();
    sim.wait_for(GUARD, "both fleets reconciled at their generation", |s| {
        ["early", "late"].iter().all(|n| {
            s.get("fleets.kup.dev", Some("default"), n)
                .is_some_and(|f| {
                    f["status"]["phase"] == "Reconciled"
                        && f["status"]["observedGeneration"] == f["metadata"]["generation"]
                        && f["metadata"]["generation"] == if *n == "late" { 2 } else { 1 }
                        && f["metadata"]["finalizers"] == json!(["kup.dev/cleanup"])
                })
        })
    })
    .await
    .unwrap();
    fleets
        .delete("early", &DeleteParams::default())
        .await
        .unwrap();
    sim.wait_for(GUARD, "early cleaned up and gone", |s| {
        s.get("fleets.kup.dev", Some("default"), "early").is_none()
    })
    .await
    .unwrap();
    assert_eq!(*cleaned.lock().unwrap(), ["early"]);
    let late = fleets.get("late").await.unwrap();
    assert_eq!(late.metadata.generation, Some(2));
    handle.abort();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_objects_and_rbac_for_custom_resources() {
    // A scenario may carry a CRD and objects of its kind; RBAC names its group and plural.
    let scenario = Scenario::small()
        .user(User::new("operator"))
        .object(crd())
        .object(json!({"apiVersion": "kup.dev/v1alpha1", "kind": "Fleet",
            "metadata": {"name": "seeded", "namespace": "default"}, "spec": {"target": "1.34"}}))
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "fleet-operator", "namespace": "default"},
            "rules": [
                {"apiGroups": ["kup.dev"], "resources": ["fleets"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["kup.dev"], "resources": ["fleets/status"], "verbs": ["patch"]}]}))
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "fleet-operator", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fleet-operator"},
            "subjects": [{"kind": "User", "name": "operator"}]}));
    let sim = Simulator::start(scenario, SimConfig::fast()).await.unwrap();
    assert!(sim.get("fleets", Some("default"), "seeded").is_some());
    let as_operator: Api<DynamicObject> = Api::namespaced_with(
        sim.client_as("operator").unwrap(),
        "default",
        &fleet_resource(),
    );
    let listed = as_operator.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let patched = as_operator
        .patch_status(
            "seeded",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Seen"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Seen");
    assert_eq!(
        code(
            as_operator
                .patch(
                    "seeded",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"target": "1.35"}}))
                )
                .await
        ),
        403
    );
    assert_eq!(
        code(
            as_operator
                .create(&PostParams::default(), &fleet("new", "1.34"))
                .await
        ),
        403
    );
    // Deletecollection removes every object of the kind in the namespace.
    let admin: Api<DynamicObject> =
        Api::namespaced_with(sim.client().unwrap(), "default", &fleet_resource());
    admin
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(sim.count("fleets"), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_kind_apply_and_table() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterupgrades.kup.dev"},
        "spec": {"group": "kup.dev", "scope": "Cluster",
            "names": {"plural": "clusterupgrades", "kind": "ClusterUpgrade"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let sim = Simulator::start(Scenario::small().object(crd), SimConfig::fast())
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kup.dev", "v1alpha1", "ClusterUpgrade"),
        "clusterupgrades",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    // Server-side apply creates the object, then merges into it; unknown fields are kept.
    let body = json!({"apiVersion": "kup.dev/v1alpha1", "kind": "ClusterUpgrade",
        "metadata": {"name": "to-1-34"}, "spec": {"target": "1.34", "pools": ["a", "b"]}});
    let created = api
        .patch("to-1-34", &PatchParams::apply("kup"), &Patch::Apply(body))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.namespace.is_none());
    let body = json!({"apiVersion": "kup.dev/v1alpha1", "kind": "ClusterUpgrade",
        "metadata": {"name": "to-1-34"}, "spec": {"pools": ["c"]}});
    let merged = api
        .patch("to-1-34", &PatchParams::apply("kup"), &Patch::Apply(body))
        .await
        .unwrap();
    assert_eq!(
        merged.data["spec"],
        json!({"target": "1.34", "pools": ["c"]})
    );
    assert_eq!(merged.metadata.generation, Some(2));
    // No printer columns declared: Name and Age, as upstream defaults them.
    let table: Value = client
        .request(
            http::Request::get("/apis/kup.dev/v1alpha1/clusterupgrades")
                .header("Accept", "application/json;as=Table;g=meta.k8s.io;v=v1")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "to-1-34");
    // Namespaced paths do not serve a cluster-scoped kind.
    let namespaced: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    assert_eq!(code(namespaced.get("to-1-34").await), 404);
    sim.shutdown().await;
}
