//! `kup fleet` over a mixed fleet: GKE, AKS and two EKS clusters, each a cloud mock with its
//! own simulated cluster behind it, upgraded in three stages (dev → staging → prod) through
//! the real SDK clients, with an approval gate, an error budget and a killed run resumed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use kup_mocks::aks::{AksConfig, AksMock};
use kup_mocks::eks::{EksConfig, EksMock};
use kup_mocks::gke::{GkeConfig, GkeMock};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

fn sim_config() -> SimConfig {
    SimConfig::fast()
        .time_scale(50.0)
        .pod_start_delay(Duration::from_secs(1))
        .pod_ready_delay(Duration::from_secs(1))
        .pod_shutdown_delay(Duration::from_secs(1))
        .node_ready_delay(Duration::from_secs(3))
}

/// One member: its simulator and its fleet-file entry.
struct Member {
    sim: SimHandle,
    entry: String,
}

enum Cloud {
    Gke(GkeMock),
    Aks(AksMock),
    Eks(EksMock),
}

struct Fleet {
    dir: tempfile::TempDir,
    members: BTreeMap<String, (Member, Cloud)>,
}

async fn kubeconfig(dir: &Path, name: &str, sim: &SimHandle) -> PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
    sim.write_kubeconfig(&path).unwrap();
    path
}

async fn gke(dir: &Path, name: &str, labels: &str) -> (Member, Cloud) {
    let sim = Simulator::start(kup_mocks::gke::demo_scenario(), sim_config())
        .await
        .unwrap();
    let mock = GkeMock::start(GkeConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let kc = kubeconfig(dir, name, &sim).await;
    let entry = format!(
        "  - name: {name}\n    labels: {labels}\n    provider: gke\n    project: demo-project\n    location: us-central1\n    cluster: demo\n    endpoint_url: {}\n    anonymous_credentials: true\n    kubeconfig: {}\n",
        mock.endpoint(),
        kc.file_name().unwrap().to_string_lossy()
    );
    (Member { sim, entry }, Cloud::Gke(mock))
}

async fn aks(dir: &Path, name: &str, labels: &str) -> (Member, Cloud) {
    let sim = Simulator::start(kup_mocks::aks::demo_scenario(), sim_config())
        .await
        .unwrap();
    let mock = AksMock::start(AksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let kc = kubeconfig(dir, name, &sim).await;
    let ca = dir.join(format!("{name}-arm-ca.pem"));
    std::fs::write(&ca, mock.ca_pem()).unwrap();
    let (sub, rg) = mock.coordinates();
    let entry = format!(
        "  - name: {name}\n    labels: {labels}\n    provider: aks\n    subscription: {sub}\n    resource_group: {rg}\n    cluster: demo\n    arm_endpoint: {}\n    arm_ca_file: {}\n    kubeconfig: {}\n",
        mock.endpoint(),
        ca.display(),
        kc.display()
    );
    (Member { sim, entry }, Cloud::Aks(mock))
}

async fn eks(dir: &Path, name: &str, labels: &str, config: EksConfig) -> (Member, Cloud) {
    let sim = Simulator::start(kup_mocks::eks::demo_scenario(), sim_config())
        .await
        .unwrap();
    let mock = EksMock::start(config.time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let kc = kubeconfig(dir, name, &sim).await;
    let entry = format!(
        "  - name: {name}\n    labels: {labels}\n    provider: eks\n    cluster: demo\n    region: us-west-2\n    endpoint_url: {}\n    kubeconfig: {}\n",
        mock.endpoint(),
        kc.display()
    );
    (Member { sim, entry }, Cloud::Eks(mock))
}

impl Fleet {
    fn write(&self, name: &str, header: &str, indent_members: bool, strategy: &str) -> PathBuf {
        let mut members = String::new();
        for (m, _) in self.members.values() {
            if indent_members {
                for line in m.entry.lines() {
                    members.push_str("  ");
                    members.push_str(line);
                    members.push('\n');
                }
            } else {
                members.push_str(&m.entry);
            }
        }
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, format!("{header}{members}{strategy}")).unwrap();
        path
    }

    fn cloud(&self, name: &str) -> &Cloud {
        &self.members[name].1
    }

    /// How many upgrades the member's provider was asked to start.
    fn upgrade_calls(&self, name: &str) -> u64 {
        let calls = match self.cloud(name) {
            Cloud::Gke(m) => m.calls(),
            Cloud::Aks(m) => m.calls(),
            Cloud::Eks(m) => m.calls(),
        };
        calls
            .iter()
            .filter(|(op, _)| {
                [
                    "updateMaster",
                    "updateCluster",
                    "UpdateClusterVersion",
                    "PUT managedCluster",
                ]
                .contains(&op.as_str())
            })
            .map(|(_, n)| *n)
            .sum()
    }

    fn control_plane(&self, name: &str) -> String {
        match self.cloud(name) {
            Cloud::Gke(m) => m.master_version("demo").unwrap(),
            Cloud::Aks(m) => m.cluster_json("demo")["properties"]["currentKubernetesVersion"]
                .as_str()
                .unwrap()
                .to_string(),
            Cloud::Eks(m) => m.cluster_version("demo").unwrap(),
        }
    }

    async fn shutdown(self) {
        for (m, _) in self.members.into_values() {
            m.sim.shutdown().await;
        }
    }
}

async fn kup(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kup"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-key")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/kup-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kup-test")
        .env("KUP_AKS_ACCESS_TOKEN", "test-bearer-token")
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .env_remove("GOOGLE_CLOUD_PROJECT")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/kup-test.json",
        )
        .env_remove("KUBECONFIG")
        .env("USER", "alice")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn both(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(out)))
}

/// The phase of stage `name` (`completed`, `waitingApproval` ...).
fn stage(run: &Value, name: &str) -> String {
    let stage = run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {run}"));
    stage["phase"]["state"].as_str().unwrap().to_string()
}

const MIXED_STRATEGY: &str = "  strategy:
    stages:
      - name: dev
        groups:
          - name: gcp
            selector:
              matchLabels: {env: dev}
      - name: staging
        groups:
          - name: azure
            clusters: [aks-staging]
      - name: prod
        approval: true
        maxConcurrency: \"2\"
        groups:
          - name: aws
            selector:
              matchExpressions:
                - {key: env, operator: In, values: [prod]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_fleet_upgrades_in_three_stages_behind_an_approval_gate() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = BTreeMap::new();
    members.insert(
        "gke-dev".to_string(),
        gke(dir.path(), "gke-dev", "{env: dev, cloud: gcp}").await,
    );
    members.insert(
        "aks-staging".to_string(),
        aks(dir.path(), "aks-staging", "{env: staging}").await,
    );
    for name in ["eks-prod-1", "eks-prod-2"] {
        members.insert(
            name.to_string(),
            eks(dir.path(), name, "{env: prod}", EksConfig::demo()).await,
        );
    }
    let fleet = Fleet { dir, members };
    let file = fleet.write(
        "mixed",
        "apiVersion: kup.dev/v1alpha1\nkind: Fleet\nmetadata:\n  name: mixed\nspec:\n  members:\n",
        true,
        MIXED_STRATEGY,
    );
    let f = file.display().to_string();

    // The plan shows every member, changes nothing.
    let out = kup(&["fleet", "plan", "-f", &f, "--to", "1.34", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    let plan = json(&out);
    let rows = plan["clusters"].as_array().unwrap();
    let order: Vec<&str> = rows
        .iter()
        .map(|r| r["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["gke-dev", "aks-staging", "eks-prod-1", "eks-prod-2"],
        "stage order"
    );
    for row in rows {
        assert!(row["plan"].is_object(), "{row}");
        assert!(
            row["current"].as_str().unwrap().starts_with("1.33"),
            "{row}"
        );
    }
    let out = kup(&["fleet", "plan", "-f", &f, "--to", "1.34"]).await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("aks-staging") && table.contains("prod"),
        "{table}"
    );
    for name in fleet.members.keys() {
        assert_eq!(
            fleet.upgrade_calls(name),
            0,
            "{name}: a plan changes nothing"
        );
    }

    // dev and staging run; prod waits for its approval.
    let run = [
        "fleet",
        "run",
        "-f",
        &f,
        "--to",
        "1.34",
        "--yes",
        "--no-wait",
        "--on-stuck-drain",
        "cordon-and-continue",
        "-o",
        "json",
    ];
    let out = kup(&run).await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    let state = json(&out);
    assert_eq!(state["phase"], "waitingApproval", "{state}");
    assert_eq!(stage(&state, "dev"), "completed", "{state}");
    assert_eq!(stage(&state, "staging"), "completed", "{state}");
    assert_eq!(stage(&state, "prod"), "waitingApproval", "{state}");
    assert!(fleet.control_plane("gke-dev").starts_with("1.34"));
    assert!(fleet.control_plane("aks-staging").starts_with("1.34"));
    for name in ["eks-prod-1", "eks-prod-2"] {
        assert_eq!(fleet.upgrade_calls(name), 0, "{name} waits for the gate");
        assert_eq!(fleet.control_plane(name), "1.33");
    }
    let before: BTreeMap<String, u64> = fleet
        .members
        .keys()
        .map(|n| (n.clone(), fleet.upgrade_calls(n)))
        .collect();

    // Status reads the journal; an unknown stage is refused with the accepted ones.
    let out = kup(&["fleet", "status", "-f", &f, "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert_eq!(json(&out)["phase"], "waitingApproval");
    let out = kup(&["fleet", "approve", "qa", "-f", &f]).await;
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert!(both(&out).contains("dev, staging, prod"), "{}", both(&out));
    let out = kup(&["fleet", "approve", "prod", "-f", &f]).await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(both(&out).contains("approved by alice"), "{}", both(&out));

    // The rerun takes the journal's target, runs prod, and starts nothing twice.
    let out = kup(&[
        "fleet",
        "run",
        "-f",
        &f,
        "--yes",
        "--on-stuck-drain",
        "cordon-and-continue",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    let state = json(&out);
    assert_eq!(state["phase"], "completed", "{state}");
    for name in ["eks-prod-1", "eks-prod-2"] {
        assert_eq!(fleet.control_plane(name), "1.34", "{name}");
        assert!(fleet.upgrade_calls(name) >= 1, "{name}");
    }
    for name in ["gke-dev", "aks-staging"] {
        assert_eq!(
            fleet.upgrade_calls(name),
            before[name],
            "{name}: no second upgrade"
        );
    }
    assert!(!both(&out).contains("test-bearer-token"));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_cluster_over_the_error_budget_halts_the_next_stage() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = BTreeMap::new();
    for name in ["eks-a", "eks-b"] {
        members.insert(
            name.to_string(),
            eks(dir.path(), name, "{env: dev}", EksConfig::demo()).await,
        );
    }
    members.insert(
        "eks-prod".to_string(),
        eks(dir.path(), "eks-prod", "{env: prod}", EksConfig::demo()).await,
    );
    let fleet = Fleet { dir, members };
    if let Cloud::Eks(mock) = fleet.cloud("eks-a") {
        mock.inject(kup_mocks::eks::EksFault::FailNextUpdate(vec![(
            "ClusterUnreachable".into(),
            "the control plane update failed".into(),
            vec![],
        )]));
    }
    let file = fleet.write(
        "budget",
        "name: budget\nmembers:\n",
        false,
        "strategy:
  stages:
    - name: dev
      maxConcurrency: \"100%\"
      groups: [{name: dev, selector: {matchLabels: {env: dev}}}]
    - name: prod
      groups: [{name: prod, clusters: [eks-prod]}]
",
    );
    let f = file.display().to_string();
    let out = kup(&["fleet", "run", "-f", &f, "--to", "1.34", "--yes"]).await;
    assert_eq!(code(&out), 1, "{}", both(&out));
    let text = both(&out);
    assert!(text.contains("halted") && text.contains("eks-a"), "{text}");
    assert_eq!(
        fleet.control_plane("eks-b"),
        "1.34",
        "within the stage, others finish"
    );
    assert_eq!(fleet.upgrade_calls("eks-prod"), 0, "prod never starts");
    let out = kup(&["fleet", "status", "-f", &f, "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", both(&out));
    let state = json(&out);
    assert_eq!(state["phase"], "halted", "{state}");
    assert_eq!(stage(&state, "dev"), "failed", "{state}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fleet_files_name_the_field_before_anything_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nmembers:\n  - name: a\n    labels: {env: dev}\n    provider: eks\n    cluster: a\n    region: us-west-2\n  - name: b\n    labels: {env: prod}\n    provider: eks\n    cluster: b\n    region: us-west-2\nstrategy:\n  stages:\n    - name: dev\n      maxConcurrency: \"lots\"\n      groups: [{name: dev, selector: {matchLabels: {env: dev}}}]\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let out = kup(&["fleet", "plan", "-f", &f, "--to", "1.34"]).await;
    assert_eq!(code(&out), 2, "{}", both(&out));
    let text = both(&out);
    assert!(text.contains("maxConcurrency"), "{text}");
    assert!(
        text.contains("b"),
        "the member in no group is named: {text}"
    );
    let out = kup(&["fleet", "status", "-f", "/nonexistent/fleet.yaml"]).await;
    assert_eq!(code(&out), 2, "{}", both(&out));
    assert!(both(&out).contains("--fleet"), "{}", both(&out));
}
