//! kup under exactly the ClusterRoles it ships: the YAML in `deploy/rbac/` is loaded into the
//! simulator, bound to user `kup` as its header says, and a whole upgrade (pre-flight, lock,
//! drains, journal in a ConfigMap, validation) runs as that user; with a rule removed, the
//! run fails naming the verb and resource that were denied.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use kup_core::Outcome;
use kup_engine::events::Recorder;
use kup_engine::journal::{ConfigMapJournalStore, JournalStore};
use kup_mocks::k8s::User;
use kup_tests::sim::{Setup, SimCluster, fast_options, small};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The documents of `deploy/rbac/<file>` with `CLUSTER` replaced, as its header instructs.
fn shipped(file: &str, cluster: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/rbac")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("CLUSTER", cluster);
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap())
        .collect()
}

/// What the header's `kubectl create clusterrolebinding`/`rolebinding` commands create.
fn bindings() -> Vec<Value> {
    let subject = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kup"}]);
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "kup"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kup"},
            "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "kup-state", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kup-state"},
            "subjects": subject}),
    ]
}

/// The small cluster with user `kup` bound to the shipped roles, after `edit`.
fn setup(edit: impl FnOnce(&mut Vec<Value>)) -> Setup {
    let mut roles = shipped("kup-clusterrole.yaml", "prod");
    edit(&mut roles);
    let mut setup = small();
    setup.scenario = setup.scenario.user(User::new("kup"));
    for o in roles.into_iter().chain(bindings()) {
        setup.scenario = setup.scenario.object(o);
    }
    setup
}

/// The rules of the `kup` ClusterRole.
fn kup_rules(roles: &mut [Value]) -> &mut Vec<Value> {
    roles
        .iter_mut()
        .find(|r| r["kind"] == "ClusterRole" && r["metadata"]["name"] == "kup")
        .unwrap()["rules"]
        .as_array_mut()
        .unwrap()
}

async fn run_as_kup(h: &SimCluster) -> kup_engine::Result<kup_engine::RunReport> {
    let plan = h.plan("1.33.2").await;
    let store: Arc<dyn JournalStore> = Arc::new(ConfigMapJournalStore::new(
        h.client(),
        "kube-system",
        "prod",
    ));
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(Recorder::new()),
        fast_options(),
    );
    let report = engine.run(&plan, &CancellationToken::new()).await;
    if report.is_ok() {
        h.assert_converged(&plan, store.load().await.unwrap()).await;
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_runs_under_exactly_the_shipped_roles() {
    let h = SimCluster::start_as("prod", setup(|_| {}), Some("kup")).await;
    let report = run_as_kup(&h).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    // The run really was kup's: it was denied nothing, and what it wrote is in kube-system.
    let denied: Vec<_> = h
        .sim
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(denied.is_empty(), "{denied:#?}");
    assert!(
        h.sim
            .get("configmaps", Some("kube-system"), "kup-journal-prod")
            .is_some()
    );
    assert!(
        h.sim
            .get("leases", Some("kube-system"), "kup-upgrade-prod")
            .is_some()
    );
    h.sim.shutdown().await;
}

/// With the shipped roles changed by `edit`, the run fails and its error contains `denied`.
async fn fails_naming(edit: impl FnOnce(&mut Vec<Value>), denied: &str) {
    let h = SimCluster::start_as("prod", setup(edit), Some("kup")).await;
    let outcome = run_as_kup(&h).await;
    let text = match &outcome {
        Ok(report) => format!("{report:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        outcome
            .as_ref()
            .map_or(true, |r| r.outcome != Outcome::Succeeded),
        "{text}"
    );
    assert!(text.contains(denied), "{text}");
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_patch_on_nodes_the_run_fails_naming_it() {
    fails_naming(
        |roles| {
            let nodes = kup_rules(roles)
                .iter_mut()
                .find(|r| r["resources"] == json!(["nodes"]))
                .unwrap();
            nodes["verbs"] = json!(["get", "list", "watch"]);
        },
        "cannot patch resource \"nodes\" in API group \"\" at the cluster scope",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_evictions_the_run_fails_naming_them() {
    fails_naming(
        |roles| kup_rules(roles).retain(|r| r["resources"] != json!(["pods/eviction"])),
        "cannot create resource \"pods/eviction\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_and_uncordon_run_under_the_drain_role_alone() {
    let mut setup = small();
    setup.scenario = setup.scenario.user(User::new("drainer"));
    for o in shipped("kup-drain-clusterrole.yaml", "prod") {
        setup.scenario = setup.scenario.object(o);
    }
    setup.scenario = setup.scenario.object(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kup"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kup-drain"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "drainer"}]}));
    let h = SimCluster::start_as("prod", setup, Some("drainer")).await;
    let drainer = kup_kube::drain::Drainer::new(h.client());
    let opts = kup_kube::drain::DrainOptions {
        ignore_daemonsets: true,
        timeout: Some(std::time::Duration::from_secs(120)),
        ..kup_kube::drain::DrainOptions::default()
    };
    let report = drainer
        .drain("kw-1", &opts, &Recorder::new())
        .await
        .unwrap();
    assert!(report.cordoned && !report.evicted.is_empty(), "{report:?}");
    assert!(drainer.uncordon("kw-1").await.unwrap());
    assert_eq!(h.sim.requests().count_status(403), 0);
    h.sim.shutdown().await;
}
