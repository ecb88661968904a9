//! `kup` on a cluster it knows only through a kubeconfig (the simulator playing k3s): pre-flight,
//! validation, status, drain and uncordon need no provider flag; upgrades are refused, naming
//! the cluster's own tool.

#![allow(clippy::unwrap_used)]

use std::process::Output;

use kup_mocks::k8s::{Scenario, SimConfig, SimHandle, Simulator};
use serde_json::Value;

async fn start() -> (SimHandle, tempfile::TempDir, String) {
    let sim = Simulator::start(Scenario::small().version("v1.33.5+k3s1"), SimConfig::fast())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    (sim, dir, kubeconfig.display().to_string())
}

async fn kup(kubeconfig: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kup"))
        .args(["--kubeconfig", kubeconfig])
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUP_PROVIDER")
        .env_remove("KUP_CONFIG")
        .env_remove("KUP_CLUSTER_NAME")
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_and_validate_need_only_a_kubeconfig() {
    let (sim, dir, kc) = start().await;

    // The checks run against the cluster: this one has pods a drain would refuse.
    let out = kup(&kc, &["preflight", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["target"], "1.34", "{report}");
    let findings = report["findings"].to_string();
    assert!(
        findings.contains("drain.emptydir-pod") && findings.contains("shop/cache-"),
        "{findings}"
    );
    assert!(
        findings.contains("kubernetes.upgrade-tool") && findings.contains("INSTALL_K3S_VERSION"),
        "{findings}"
    );
    assert_eq!(report["stats"]["nodes"], 9, "{report}");
    let out = kup(&kc, &["preflight", "--to", "1.32"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--to"), "{}", text(&out));

    // A cluster with nothing to refuse passes, to any later minor.
    let clean = Simulator::start(kup_mocks::eks::demo_scenario(), SimConfig::fast())
        .await
        .unwrap();
    let clean_kc = dir.path().join("clean");
    clean.write_kubeconfig(&clean_kc).unwrap();
    let clean_kc = clean_kc.display().to_string();
    for to in ["1.34", "1.36"] {
        let out = kup(&clean_kc, &["preflight", "--to", to]).await;
        assert_eq!(out.status.code(), Some(0), "--to {to}: {}", text(&out));
    }
    clean.shutdown().await;

    let out = kup(&kc, &["validate", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["passed"], true);

    // A node that is not Ready fails validation.
    sim.set_node_condition("pool-a-1", "Ready", "False")
        .unwrap();
    let out = kup(&kc, &["validate", "--timeout", "2s"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("pool-a-1"), "{}", text(&out));

    let out = kup(&kc, &["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("no upgrade recorded for kubernetes"),
        "{}",
        text(&out)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_work_and_upgrades_are_refused_naming_the_clusters_own_tool() {
    let (sim, _dir, kc) = start().await;
    let out = kup(
        &kc,
        &[
            "drain",
            "pool-b-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let node = sim.get("nodes", None, "pool-b-1").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    let out = kup(&kc, &["uncordon", "pool-b-1", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["changed"], true);

    let out = kup(
        &kc,
        &[
            "--provider",
            "kubernetes",
            "upgrade",
            "--to",
            "1.34",
            "--yes",
        ],
    )
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("upgrade the control plane")
            && text(&out).contains("INSTALL_K3S_VERSION"),
        "{}",
        text(&out)
    );
    let out = kup(&kc, &["--provider", "kubernetes", "versions", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let versions = json(&out).to_string();
    assert!(
        versions.contains("1.33.5+k3s1") && versions.contains("\"1.34\""),
        "{versions}"
    );
    // Without a provider, commands that change versions still ask for one.
    let out = kup(&kc, &["plan", "--to", "1.34"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--provider"), "{}", text(&out));
    sim.shutdown().await;
}
