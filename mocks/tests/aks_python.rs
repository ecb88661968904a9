//! Microsoft's Python client (`azure-mgmt-containerservice`, an independent implementation of
//! the Microsoft.ContainerService wire format) against the ARM mock over HTTPS: reads, a
//! control-plane and an agent-pool upgrade and a node-image upgrade followed through their
//! long-running operations, and errors (404, 409 `OperationNotAllowed`, the removed-API block
//! with its subcode) as the client reports them.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kup_mocks::aks::{AksConfig, AksFault, AksMock, ArmError};
use serde_json::Value;

/// `KUP_AZURE_PYTHON` (a Python with azure-mgmt-containerservice), else `python3` if it has
/// it. Missing: panics under CI, else `None`.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUP_AZURE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let works = std::process::Command::new(&candidate)
        .args(["-c", "import azure.mgmt.containerservice"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!(
                "no Python with azure-mgmt-containerservice: set KUP_AZURE_PYTHON (scripts/test \
                 installs it)"
            );
        }
        eprintln!(
            "skipping: azure-mgmt-containerservice not found (set KUP_AZURE_PYTHON or run scripts/test)"
        );
        return None;
    }
    Some(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_reads_upgrades_and_reports_errors() {
    let Some(py) = python() else { return };
    let mock = AksMock::start(AksConfig::demo().time_scale(3000.0), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, mock.ca_pem()).unwrap();
    let mock = std::sync::Arc::new(mock);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aks_python/check.py");
    let (sub, rg) = mock.coordinates();
    let watcher = {
        let mock = mock.clone();
        tokio::spawn(async move {
            loop {
                if mock.calls().get("PUT agentPool").copied() == Some(1) {
                    mock.inject(AksFault::Answer {
                        call: Some("PUT agentPool".into()),
                        error: ArmError::new(
                            409,
                            "OperationNotAllowed",
                            "Operation is not allowed because there's an in progress operation",
                        ),
                        times: 1,
                    });
                    mock.use_deprecated_api(
                        "demo",
                        "flowcontrol.apiserver.k8s.io/v1beta3/flowschemas",
                        "1.35",
                    );
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let out = tokio::process::Command::new(&py)
        .arg(script)
        .args([mock.endpoint(), &ca.display().to_string(), &sub, &rg])
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env_remove("AZURE_CLIENT_ID")
        .output()
        .await
        .unwrap();
    watcher.abort();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["current"], "1.33.5", "{got}");
    assert_eq!(got["state"], "Succeeded");
    assert_eq!(got["profiles"], serde_json::json!(["apps", "system"]));
    assert_eq!(
        got["upgrades"],
        serde_json::json!(["1.33.5", "1.34.1", "1.34.2"])
            .as_array()
            .map(|a| serde_json::json!(a[1..]))
            .unwrap()
    );
    assert_eq!(got["preview"], serde_json::json!(["1.36"]));
    assert_eq!(
        got["pools"]["system"],
        serde_json::json!(["System", 2, "1.33.5"])
    );
    assert_eq!(
        got["pools"]["apps"],
        serde_json::json!(["User", 3, "1.33.5"])
    );
    assert_eq!(
        got["after_control_plane"],
        serde_json::json!(["1.34.2", "Succeeded"])
    );
    assert_eq!(
        got["after_pool"],
        serde_json::json!(["1.34.2", "33%", 5, "Cordon"])
    );
    assert_eq!(got["node_image"], got["latest_node_image"]);
    assert_eq!(got["not_found"]["status"], 404);
    assert_eq!(got["busy"]["status"], 409);
    assert_eq!(got["busy"]["code"], "OperationNotAllowed");
    assert_eq!(got["blocked"]["status"], 400);
    assert_eq!(got["blocked"]["code"], "ValidationError");
    assert_eq!(
        got["blocked"]["subcode"],
        "UpgradeBlockedOnDeprecatedAPIUsage"
    );
    // The client polled the operations the mock announced.
    assert!(
        mock.calls()["GET operationStatus"] >= 3,
        "{:?}",
        mock.calls()
    );
}
