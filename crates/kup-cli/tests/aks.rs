//! `kup --provider aks` against the ARM mock over HTTPS (its CA given with --arm-ca-file, a
//! bearer token in KUP_AKS_ACCESS_TOKEN) and the simulator behind it: versions, plan, a full
//! upgrade, and kup.yaml entries.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use kup_mocks::aks::{AksConfig, AksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

struct Env {
    sim: SimHandle,
    mock: AksMock,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    ca: PathBuf,
}

async fn start() -> Env {
    let sim = Simulator::start(
        demo_scenario(),
        SimConfig::fast()
            .time_scale(50.0)
            .pod_start_delay(Duration::from_secs(1))
            .pod_ready_delay(Duration::from_secs(1))
            .pod_shutdown_delay(Duration::from_secs(1))
            .node_ready_delay(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let mock = AksMock::start(AksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let ca = dir.path().join("arm-ca.pem");
    std::fs::write(&ca, mock.ca_pem()).unwrap();
    Env {
        sim,
        mock,
        dir,
        kubeconfig,
        ca,
    }
}

async fn kup(args: &[String]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kup"))
        .args(args)
        .env("KUP_AKS_ACCESS_TOKEN", "test-bearer-token")
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .env_remove("KUP_AKS_RESOURCE_GROUP")
        .env_remove("KUP_AKS_ARM_ENDPOINT")
        .output()
        .await
        .unwrap()
}

impl Env {
    fn flags(&self) -> Vec<String> {
        let (sub, rg) = self.mock.coordinates();
        [
            "--provider",
            "aks",
            "--subscription",
            &sub,
            "--resource-group",
            &rg,
            "--cluster",
            "demo",
            "--arm-endpoint",
            self.mock.endpoint(),
            "--arm-ca-file",
            &self.ca.display().to_string(),
            "--kubeconfig",
            &self.kubeconfig.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    async fn kup(&self, args: &[&str]) -> Output {
        let mut all = self.flags();
        all.extend(args.iter().map(|s| s.to_string()));
        kup(&all).await
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_plan_and_an_upgrade_through_the_aks_entry() {
    let env = start().await;
    let out = env.kup(&["versions", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1.34.2") && text.contains("preview"),
        "{text}"
    );
    let out = env.kup(&["plan", "--to", "1.34", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan = json(&out);
    assert!(plan.to_string().contains("1.34"), "{plan}");
    let out = env
        .kup(&[
            "upgrade",
            "--to",
            "1.34",
            "--yes",
            "--on-stuck-drain",
            "cordon-and-continue",
            "--drain-timeout",
            "10m",
        ])
        .await;
    assert_eq!(
        code(&out),
        0,
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let cluster = env.mock.cluster_json("demo");
    assert_eq!(cluster["properties"]["currentKubernetesVersion"], "1.34.2");
    for pool in ["system", "apps"] {
        let p = env.mock.pool_json("demo", pool);
        assert_eq!(
            p["properties"]["currentOrchestratorVersion"], "1.34.2",
            "{pool}"
        );
        let s = &p["properties"]["upgradeSettings"];
        assert_eq!(s["undrainableNodeBehavior"], "Cordon", "{pool}: {s}");
        assert_eq!(s["drainTimeoutInMinutes"], 10, "{pool}: {s}");
    }
    assert!(!stderr(&out).contains("test-bearer-token"));
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kup_yaml_entries_take_the_aks_keys_and_missing_ones_are_named() {
    let env = start().await;
    let (sub, rg) = env.mock.coordinates();
    let config = env.dir.path().join("kup.yaml");
    std::fs::write(
        &config,
        format!(
            "clusters:\n  - name: prod\n    provider: aks\n    subscription: {sub}\n    resource_group: {rg}\n    cluster: demo\n    arm_endpoint: {}\n    arm_ca_file: arm-ca.pem\n    kubeconfig: kubeconfig\n",
            env.mock.endpoint()
        ),
    )
    .unwrap();
    let out = kup(&[
        "--config".into(),
        config.display().to_string(),
        "--name".into(),
        "prod".into(),
        "status".into(),
        "-o".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = kup(&[
        "--provider".into(),
        "aks".into(),
        "--cluster".into(),
        "demo".into(),
        "--kubeconfig".into(),
        env.kubeconfig.display().to_string(),
        "versions".into(),
    ])
    .await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--subscription"), "{}", stderr(&out));
    let mut bad = env.flags();
    bad.extend([
        "--api-version".to_string(),
        "2023-01-02-preview".into(),
        "versions".into(),
    ]);
    let out = kup(&bad).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("api_version"), "{}", stderr(&out));
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aks_demo_upgrades_its_simulated_cluster() {
    let out = kup(&[
        "--provider".into(),
        "aks".into(),
        "demo".into(),
        "--speed".into(),
        "200".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("versions AKS offers"), "{stdout}");
    assert!(stdout.contains("control plane 1.35"), "{stdout}");
    assert!(
        stdout.contains("agent pools apps=1.35.1 system=1.35.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 app pods deleted any other way"),
        "{stdout}"
    );
}
