//! Consistent lists: a paginated list is served from the state at its first page's
//! resourceVersion, continue tokens past the retained history are 410 Expired, and
//! `resourceVersionMatch` is validated and honoured as upstream does.
#![allow(clippy::unwrap_used)]

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kup_mocks::k8s::{Scenario, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

fn scenario() -> Scenario {
    (0..6).fold(Scenario::new().namespace("cfg"), |s, i| {
        s.object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "cfg"}, "data": {"n": i.to_string()}}))
    })
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

async fn get(sim: &SimHandle, path: &str) -> (u16, Value) {
    common::get_json(sim.client_config(), path).await
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_list_reads_the_first_pages_snapshot() {
    let sim = Simulator::start(scenario(), SimConfig::fast())
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().unwrap(), "cfg");
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    let first_names: Vec<_> = first
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(first_names, ["cm-0", "cm-1", "cm-2"]);
    // Between the pages: one not yet listed goes, one is added after it, one is changed.
    api.delete("cm-4", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("cm-9"))
        .await
        .unwrap();
    let mut changed = api.get("cm-5").await.unwrap();
    changed.data = Some([("n".to_string(), "changed".to_string())].into());
    api.replace("cm-5", &PostParams::default(), &changed)
        .await
        .unwrap();

    let token = first.metadata.continue_.clone().unwrap();
    let second = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    let second_names: Vec<_> = second
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(second_names, ["cm-3", "cm-4", "cm-5"]);
    assert_eq!(second.items[2].data.as_ref().unwrap()["n"], "5");
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    assert!(second.metadata.continue_.is_none());
    // A fresh list sees the present.
    let now = api.list(&ListParams::default()).await.unwrap();
    let now_names: Vec<_> = now
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(now_names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-5", "cm-9"]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_token_past_the_retained_history_is_expired() {
    let sim = Simulator::start(scenario(), SimConfig::fast().watch_history(4))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().unwrap(), "cfg");
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("new-{i}")))
            .await
            .unwrap();
    }
    let token = first.metadata.continue_.unwrap();
    let (code, body) = get(
        &sim,
        &format!("/api/v1/namespaces/cfg/configmaps?limit=2&continue={token}"),
    )
    .await;
    assert_eq!(code, 410);
    assert_eq!(body["reason"], "Expired");
    assert!(
        body["message"].as_str().unwrap().starts_with(
            "The provided continue parameter is too old to display a consistent list result."
        ),
        "{body}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_version_match_is_validated_and_honoured() {
    let sim = Simulator::start(scenario(), SimConfig::fast().watch_history(50))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().unwrap(), "cfg");
    let before = api.list(&ListParams::default()).await.unwrap();
    let rv = before.metadata.resource_version.clone().unwrap();
    api.delete("cm-0", &DeleteParams::default()).await.unwrap();

    // Exact: the state at that version, reported at that version.
    let (code, exact) = get(
        &sim,
        &format!(
            "/api/v1/namespaces/cfg/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"
        ),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(exact["metadata"]["resourceVersion"], rv.as_str());
    assert!(names(&exact).contains(&"cm-0".to_string()));
    // NotOlderThan: the present.
    let (_, newer) = get(
        &sim,
        &format!("/api/v1/namespaces/cfg/configmaps?resourceVersion={rv}&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    assert!(!names(&newer).contains(&"cm-0".to_string()));

    // A version the server has not reached: 504, as the watch cache answers.
    let ahead = sim.resource_version() + 100;
    let (code, body) = get(
        &sim,
        &format!("/api/v1/namespaces/cfg/configmaps?resourceVersion={ahead}&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    assert_eq!(code, 504);
    assert_eq!(body["reason"], "Timeout");
    assert_eq!(
        body["message"],
        format!(
            "Too large resource version: {ahead}, current: {}",
            sim.resource_version()
        )
    );
    assert_eq!(
        body["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    assert_eq!(body["details"]["retryAfterSeconds"], 1);

    // Older than the retained history: 410.
    sim.compact();
    let (code, body) = get(
        &sim,
        &format!(
            "/api/v1/namespaces/cfg/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"
        ),
    )
    .await;
    assert_eq!(code, 410);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "The resourceVersion for the provided list is too old.",
            "reason": "Expired", "code": 410})
    );

    // Invalid combinations: 422 with every cause.
    let (code, body) = get(
        &sim,
        "/api/v1/namespaces/cfg/configmaps?resourceVersionMatch=Sometimes",
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Unsupported value: \"Sometimes\": supported values: \"Exact\", \"NotOlderThan\", \"\"]"
    );
    let causes = body["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2);
    assert_eq!(causes[1]["reason"], "FieldValueNotSupported");
    assert_eq!(body["details"]["group"], "meta.k8s.io");
    assert_eq!(body["details"]["kind"], "ListOptions");
    let (code, _) = get(
        &sim,
        "/api/v1/namespaces/cfg/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
    )
    .await;
    assert_eq!(code, 422);
    sim.shutdown().await;
}
