//! Scenario files and the canned scenarios, including `large` (5,003 nodes, ~150,000 pods).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kup_mocks::k8s::{Scenario, SimConfig, Simulator};

fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.yaml"))
}

/// The shipped YAML files are the canned builders, written out. Regenerate with
/// `KUP_WRITE_SCENARIOS=1 cargo test -p kup-mocks --test scenarios`.
#[test]
fn scenario_files_match_the_canned_builders() {
    for (name, built) in [
        ("small", Scenario::small()),
        ("pdb-blocked", Scenario::pdb_blocked()),
        ("large", Scenario::large()),
    ] {
        if std::env::var_os("KUP_WRITE_SCENARIOS").is_some() {
            let header = format!(
                "# The `{name}` scenario (kup_mocks::k8s::Scenario::canned(\"{name}\")).\n"
            );
            std::fs::write(file(name), header + &built.to_yaml().unwrap()).unwrap();
        }
        let loaded = Scenario::from_file(file(name)).unwrap();
        assert_eq!(
            loaded, built,
            "{name}.yaml differs from Scenario::canned(\"{name}\")"
        );
        assert_eq!(Scenario::canned(name).unwrap(), built);
    }
}

#[test]
fn bad_files_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "version: v1.30.2\npools:\n  - {name: a, count: 2}\nworkloads:\n  - {kind: Deployment, namespace: x, name: y, pool: b}\n").unwrap();
    let e = Scenario::from_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml") && e.contains("workloads[0].pool") && e.contains("defined pools: a"),
        "{e}"
    );
    std::fs::write(
        &path,
        "version: v1.30.2\nworkloads:\n  - {kind: Job, namespace: x, name: y}\n",
    )
    .unwrap();
    let e = Scenario::from_file(&path).unwrap_err().to_string();
    assert!(e.contains("Job") && e.contains("Deployment"), "{e}");
    assert!(
        Scenario::from_file(dir.path().join("missing.yaml"))
            .unwrap_err()
            .to_string()
            .contains("missing.yaml")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_file_with_deprecated_objects_loads() {
    let yaml = r#"
version: v1.24.17
poolLabel: eks.amazonaws.com/nodegroup
pools:
  - {name: ng-1, count: 2, kubeletVersion: v1.23.17}
workloads:
  - {kind: Deployment, namespace: app, name: web, replicas: 2}
pdbs:
  - {namespace: app, name: web, matchLabels: {app: web}, minAvailable: 1, apiVersion: policy/v1beta1}
pvcs:
  - {namespace: app, name: pending-claim, bound: false}
objects:
  - apiVersion: batch/v1beta1
    kind: CronJob
    metadata: {name: report, namespace: app}
    spec:
      schedule: "*/5 * * * *"
      jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}}
"#;
    let s = Scenario::from_yaml(yaml).unwrap();
    let sim = Simulator::start(s, SimConfig::fast()).await.unwrap();
    let node = sim.get("nodes", None, "ng-1-1").unwrap();
    assert_eq!(
        node["metadata"]["labels"]["eks.amazonaws.com/nodegroup"],
        "ng-1"
    );
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.23.17");
    assert_eq!(
        sim.get("pvc", Some("app"), "pending-claim").unwrap()["status"]["phase"],
        "Pending"
    );
    assert_eq!(
        sim.get("pdb", Some("app"), "web").unwrap()["status"]["disruptionsAllowed"],
        1
    );
    assert!(sim.get("cronjobs", Some("app"), "report").is_some());
    sim.shutdown().await;

    let e = Scenario::from_yaml(&yaml.replace("v1.24.17", "v1.25.0"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pdbs[0].apiVersion"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_loads_and_lists_every_pod() {
    let sim = Simulator::start(Scenario::large(), SimConfig::default())
        .await
        .unwrap();
    assert_eq!(sim.count("nodes"), 5003);
    let total = sim.count("pods");
    assert!(total >= 150_000, "{total}");
    let mut cfg = sim.client_config();
    cfg.default_retry = false;
    let pods: Api<Pod> = Api::all(kube::Client::try_from(cfg).unwrap());
    let mut seen = 0;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(10_000);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = pods.list(&lp).await.unwrap();
        seen += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, total);
    // What a drain asks for: the pods of one node, by field selector (served from an index).
    let on_node = pods
        .list(
            &ListParams::default()
                .fields("spec.nodeName=pool-07-250")
                .limit(500),
        )
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), sim.pods_on_node("pool-07-250").len());
    assert!(on_node.items.len() >= 20, "{}", on_node.items.len());
    let pdb = sim.get("pdb", Some("team-49"), "svc-27").unwrap();
    assert_eq!(pdb["status"]["expectedPods"], 100);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 10);
    sim.shutdown().await;
}
