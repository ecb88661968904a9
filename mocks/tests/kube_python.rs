//! The official Python client for Kubernetes (`kubernetes`, an implementation nobody here
//! wrote, with typed models that check required fields) against the simulator: reads of
//! every kind kup touches, paged lists from one snapshot, a watch, evictions (201, 429 with
//! the DisruptionBudget cause, 500 for two budgets) and the 404/409/422 Status bodies.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kup_mocks::k8s::{Pdb, Pool, Scenario, SimConfig, Simulator, Workload};
use serde_json::{Value, json};

/// `KUP_KUBE_PYTHON` (a Python with the `kubernetes` client), else `python3` if it has it.
/// Missing: panics under CI, else `None`.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUP_KUBE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let works = std::process::Command::new(&candidate)
        .args(["-c", "import kubernetes.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!(
                "no Python with the kubernetes client: set KUP_KUBE_PYTHON (scripts/test \
                 installs it)"
            );
        }
        eprintln!("skipping: the Python kubernetes client not found (set KUP_KUBE_PYTHON)");
        return None;
    }
    Some(candidate)
}

fn scenario() -> Scenario {
    Scenario::new()
        .version("v1.34.2")
        .pool(Pool::new("workers", 2))
        .workload(Workload::deployment("shop", "web").replicas(2))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(2),
        )
        .workload(Workload::deployment("shop", "api").replicas(2))
        .pdb(
            Pdb::new("shop", "api-a")
                .match_label("app", "api")
                .max_unavailable(1),
        )
        .pdb(
            Pdb::new("shop", "api-b")
                .match_label("app", "api")
                .max_unavailable(1),
        )
        .workload(Workload::deployment("shop", "batch").replicas(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_reads_pages_watches_evicts_and_gets_status_bodies() {
    let Some(py) = python() else { return };
    let sim = Simulator::start(scenario(), SimConfig::fast())
        .await
        .unwrap();
    // Every replica up before the client looks.
    for _ in 0..600 {
        let ready = sim
            .list("deployments", Some("shop"))
            .iter()
            .all(|d| d["status"]["readyReplicas"] == d["spec"]["replicas"]);
        if ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let before: Vec<String> = sim
        .pods()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kube_python/check.py");
    let out = tokio::process::Command::new(&py)
        .arg(script)
        .arg(&kubeconfig)
        .env("HOME", dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Typed reads.
    assert_eq!(got["version"], "v1.34.2");
    assert_eq!(got["nodes"], json!(["workers-1", "workers-2"]));
    assert_eq!(got["ready"], got["nodes"]);
    let mut sorted = before.clone();
    sorted.sort();
    assert_eq!(got["pods"], json!(sorted));
    assert_eq!(
        got["image_ids"], true,
        "every container status has its imageID"
    );
    assert_eq!(
        got["deployments"],
        json!([["api", 2], ["batch", 3], ["web", 2]])
    );
    assert_eq!(got["pdbs"], json!([["api-a", 1], ["api-b", 1], ["web", 0]]));
    assert_eq!(got["services"], json!(["kubernetes"]));

    // Pages: every pod once, one snapshot, the pod created meanwhile only in a new list.
    assert_eq!(got["paged"], json!(sorted), "{got}");
    assert_eq!(got["pages"], json!(sorted.len().div_ceil(2)));
    assert_eq!(
        got["page_versions"], 1,
        "every page carries the snapshot's version"
    );
    assert_eq!(got["late_listed_now"], true);

    // The watch saw the pod come, run and go.
    let watch: Vec<(String, String)> = got["watch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        watch.first().map(|e| e.0.as_str()),
        Some("ADDED"),
        "{watch:?}"
    );
    assert!(
        watch.iter().any(|e| e.0 == "MODIFIED" && e.1 == "Running"),
        "{watch:?}"
    );
    assert_eq!(
        watch.last().map(|e| e.0.as_str()),
        Some("DELETED"),
        "{watch:?}"
    );

    // Evictions.
    assert_eq!(
        got["evict_free"],
        Value::Null,
        "a free pod is evicted (201)"
    );
    assert_eq!(got["evicted_is_terminating"], true);
    let budget = &got["evict_budget"];
    assert_eq!(budget[0], 429, "{budget}");
    assert_eq!(budget[1], "TooManyRequests", "{budget}");
    assert_eq!(
        budget[2]["causes"][0]["reason"], "DisruptionBudget",
        "{budget}"
    );
    assert!(
        budget[2]["causes"][0]["message"]
            .as_str()
            .unwrap()
            .contains("needs 2 healthy pods"),
        "{budget}"
    );
    let two = &got["evict_two_budgets"];
    assert_eq!(two[0], 500, "{two}");
    // Upstream's eviction.go returns a bare Status here (code and message, no reason).
    assert_eq!((&two[1], &two[2]), (&Value::Null, &Value::Null), "{two}");
    assert!(
        two[3]
            .as_str()
            .unwrap()
            .contains("more than one PodDisruptionBudget"),
        "{two}"
    );

    // Status bodies as real servers send them.
    let nf = &got["not_found"];
    assert_eq!(nf[0], 404);
    assert_eq!(nf[1], "NotFound");
    assert_eq!(nf[2], json!({"name": "nope", "kind": "pods"}));
    assert_eq!(nf[3], "pods \"nope\" not found");
    assert_eq!((&nf[4], &nf[5]), (&json!("Status"), &json!("Failure")));
    let exists = &got["exists"];
    assert_eq!(exists[0], 409, "{exists}");
    assert_eq!(exists[1], "AlreadyExists");
    assert_eq!(exists[2]["kind"], "pods");
    assert!(
        exists[3].as_str().unwrap().ends_with("already exists"),
        "{exists}"
    );
    let invalid = &got["invalid"];
    assert_eq!(invalid[0], 422, "{invalid}");
    assert_eq!(invalid[1], "Invalid");
    assert_eq!(invalid[2]["name"], "bad");
    assert_eq!(invalid[2]["kind"], "Pod");
    assert_eq!(
        invalid[2]["causes"][0],
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}),
        "{invalid}"
    );
    assert_eq!(
        invalid[3],
        "Pod \"bad\" is invalid: spec.containers: Required value"
    );
    sim.shutdown().await;
}
