//! `kup --provider gke` against the GKE mock and the simulator behind it: versions and a plan
//! through the real google-cloud-container-v1 client, and settings errors with exit code 2.

#![allow(clippy::unwrap_used)]

use std::process::Output;

use kup_mocks::gke::{GkeConfig, GkeMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, Simulator};

async fn kup(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kup"))
        .args(args)
        .env_remove("GOOGLE_CLOUD_PROJECT")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/kup-test.json",
        )
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gke_versions_and_plan_come_through_the_registry_entry() {
    let sim = Simulator::start(demo_scenario(), SimConfig::fast())
        .await
        .unwrap();
    let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let endpoint = mock.endpoint();
    let kc = kubeconfig.display().to_string();
    let base = [
        "--provider",
        "gke",
        "--project",
        "demo-project",
        "--location",
        "us-central1",
        "--cluster",
        "demo",
        "--endpoint-url",
        endpoint.as_str(),
        "--anonymous-credentials",
        "--kubeconfig",
        kc.as_str(),
        "-o",
        "json",
    ];
    let out = kup(&[&base[..], &["versions"]].concat()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1.34.1-gke.1829001"), "{stdout}");
    let out = kup(&[&base[..], &["plan", "--to", "1.35"]].concat()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1.35.1-gke.1396000"), "{stdout}");
    assert!(mock.calls()["getCluster"] >= 1);
    assert!(
        !mock.calls().contains_key("updateMaster"),
        "a plan changes nothing"
    );

    // Missing and malformed settings name the flag; nothing is called.
    let calls = mock.calls();
    let out = kup(&[
        "--provider",
        "gke",
        "--project",
        "demo-project",
        "--cluster",
        "demo",
        "--kubeconfig",
        kc.as_str(),
        "versions",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--location"));
    let out = kup(&[
        "--provider",
        "gke",
        "--project",
        "demo-project",
        "--location",
        "Iowa",
        "--cluster",
        "demo",
        "--endpoint-url",
        endpoint.as_str(),
        "--anonymous-credentials",
        "--kubeconfig",
        kc.as_str(),
        "versions",
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("us-central1"));
    let out = kup(&[
        "--provider",
        "gke",
        "--project",
        "demo-project",
        "--location",
        "us-central1",
        "--cluster",
        "demo",
        "--anonymous-credentials",
        "--kubeconfig",
        kc.as_str(),
        "versions",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--endpoint-url"));
    // A rollback-safe soak outside GKE's six hours to seven days is refused, named.
    let out = kup(&[&base[..], &["--control-plane-soak", "3600", "versions"]].concat()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("control_plane_soak") && stderr.contains("21600s"),
        "{stderr}"
    );
    assert_eq!(mock.calls(), calls);
    sim.shutdown().await;
}
