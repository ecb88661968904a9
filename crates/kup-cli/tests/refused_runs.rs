//! A refused `kup upgrade` changes nothing: with another run's lease live, with pre-flight
//! blockers, with the provider busy, or with an invalid plan, the stored plan, the journal and
//! the Lease stay as they were, the simulator sees no mutating request and the EKS mock no
//! update call, so the earlier run's stored plan is still there for its `kup resume`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use kup_core::{ControlPlaneOptions, KubeVersion, UpgradeProvider};
use kup_mocks::eks::{EksConfig, EksFault, EksMock, demo_scenario};
use kup_mocks::k8s::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

struct Env {
    sim: SimHandle,
    mock: EksMock,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Env {
    async fn kup(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kup"))
            .args([
                "--provider",
                "eks",
                "--cluster",
                "demo",
                "--region",
                "us-west-2",
                "--endpoint-url",
                &self.mock.endpoint(),
                "--kubeconfig",
                &self.kubeconfig.display().to_string(),
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret-key")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/kup-test")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kup-test")
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// The objects kup keeps in kube-system, as stored (resourceVersion included).
    fn state(&self) -> BTreeMap<&'static str, Option<Value>> {
        BTreeMap::from([
            (
                "plan",
                self.sim
                    .get("configmaps", Some("kube-system"), "kup-plan-demo"),
            ),
            (
                "journal",
                self.sim
                    .get("configmaps", Some("kube-system"), "kup-journal-demo"),
            ),
            (
                "lease",
                self.sim
                    .get("leases", Some("kube-system"), "kup-upgrade-demo"),
            ),
        ])
    }

    /// EKS calls that change something, by operation.
    fn eks_writes(&self) -> BTreeMap<String, u64> {
        self.mock
            .calls()
            .into_iter()
            .filter(|(op, _)| !(op.starts_with("Describe") || op.starts_with("List")))
            .collect()
    }

    /// Requests to the simulator other than reads, from `from` on.
    fn sim_writes(&self, from: usize) -> Vec<String> {
        self.sim
            .requests()
            .entries()
            .into_iter()
            .skip(from)
            .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD" | "OPTIONS"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Runs a refused upgrade and checks it changed nothing.
    async fn refused(&self, args: &[&str], exit: i32, why: &str) {
        let before = self.state();
        let eks_before = self.eks_writes();
        let from = self.sim.requests().entries().len();
        let out = self.kup(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit), "{why}: {stderr}");
        assert_eq!(self.state(), before, "{why}: kup's objects changed");
        assert_eq!(
            self.eks_writes(),
            eks_before,
            "{why}: EKS was asked to change"
        );
        assert_eq!(
            self.sim_writes(from),
            Vec::<String>::new(),
            "{why}: mutating requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_leaves_plan_journal_and_lease_untouched() {
    let sim = Simulator::start(demo_scenario(), SimConfig::fast().time_scale(50.0))
        .await
        .unwrap();
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), Some(sim.clone()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let env = Env {
        sim,
        mock,
        dir,
        kubeconfig,
    };

    // A first run stores its plan and journal, and leaves its released Lease.
    let out = env
        .kup(&["upgrade", "--to", "1.34", "--yes", "--holder", "runner-a"])
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = env.state();
    assert!(first.values().all(Option::is_some), "{first:?}");
    let stored = first["plan"].as_ref().unwrap()["data"]["plan.json"]
        .as_str()
        .unwrap()
        .to_string();

    // An invalid plan: edited after planning.
    let edited = env.dir.path().join("edited.json");
    std::fs::write(&edited, stored.replace("\"1.34", "\"1.35")).unwrap();
    env.refused(
        &["upgrade", "--yes", "--plan", &edited.display().to_string()],
        2,
        "edited plan",
    )
    .await;

    // Pre-flight blockers (an EKS upgrade insight in ERROR).
    env.mock
        .set_insight_status("demo", "b1f3c6c2-0a9e-4c39-9d6a-5c1de1f0a001", "ERROR");
    env.refused(
        &["upgrade", "--to", "1.35", "--yes"],
        3,
        "pre-flight blockers",
    )
    .await;

    // Another run's live lease.
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(env.sim.client().unwrap(), "kube-system");
    let mut lease = api.get("kup-upgrade-demo").await.unwrap();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some("runner-b".into());
    spec.lease_duration_seconds = Some(3600);
    spec.renew_time = Some(now);
    api.replace("kup-upgrade-demo", &Default::default(), &lease)
        .await
        .unwrap();
    env.refused(&["upgrade", "--to", "1.35", "--yes"], 4, "lease held")
        .await;

    // The provider busy with an update started elsewhere.
    let provider = kup_eks::EksBuilder::new()
        .cluster_name("demo")
        .region("us-west-2")
        .endpoint_url(env.mock.endpoint())
        .static_credentials("AKIDEXAMPLE", "test-secret-key")
        .build()
        .await
        .unwrap();
    env.mock.inject(EksFault::SlowUpdates(1000));
    provider
        .upgrade_control_plane(
            &KubeVersion::parse("1.35").unwrap(),
            &ControlPlaneOptions { force: true },
        )
        .await
        .unwrap();
    env.refused(&["upgrade", "--to", "1.35", "--yes"], 4, "provider busy")
        .await;

    // The first run's plan is still the stored one, for its resume.
    assert_eq!(
        env.state()["plan"].as_ref().unwrap()["data"]["plan.json"],
        first["plan"].as_ref().unwrap()["data"]["plan.json"]
    );
    env.sim.shutdown().await;
}
