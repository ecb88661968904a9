//! `kup-mock --provider eks|aks|gke` as its own process. The real `aws` CLI, configured only by the
//! environment the server prints, reads the cluster and moves its control plane, and the
//! Kubernetes side behind the printed kubeconfig follows; Google's and Microsoft's Python
//! clients read the GKE and ARM mocks the same way.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `KUP_AWS`, else `aws` on PATH if it runs. Missing: panics under CI, else `None`.
fn aws() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUP_AWS").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("aws"))
                .find(|k| k.is_file())
        })
    });
    let works = candidate.filter(|a| {
        std::process::Command::new(a)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if works.is_none() {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("aws CLI not found: set KUP_AWS (scripts/test installs awscli)");
        }
        eprintln!("skipping: aws CLI not found (set KUP_AWS or run scripts/test)");
    }
    works
}

/// `export K=V` lines as a map (values here need no unquoting).
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

async fn aws_cli(bin: &Path, env: &BTreeMap<String, String>, home: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(bin)
        .args(["eks", "--output", "json"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("HOME", home)
        .output()
        .await
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "aws failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_drives_the_standalone_eks_mock_and_the_cluster_behind_it() {
    let Some(bin) = aws() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let (mut child, env, printed) = serve("eks", dir.path(), &kubeconfig).await;
    for key in [
        "KUP_MOCK_KUBERNETES_URL",
        "KUP_MOCK_EKS_URL",
        "KUBECONFIG",
        "AWS_ENDPOINT_URL_EKS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "KUP_EKS_ENDPOINT",
    ] {
        assert!(env.contains_key(key), "{key} missing from:\n{printed}");
    }
    assert!(
        env["KUP_MOCK_EKS_URL"].starts_with("http://127.0.0.1:"),
        "{printed}"
    );
    assert_eq!(env["AWS_ENDPOINT_URL_EKS"], env["KUP_MOCK_EKS_URL"]);
    assert_eq!(env["KUBECONFIG"], kubeconfig.display().to_string());

    // No --endpoint-url: the CLI finds the mock through the printed environment.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cluster = json(&aws_cli(&bin, &env, &home, &["describe-cluster", "--name", "demo"]).await);
    assert_eq!(cluster["cluster"]["version"], "1.33");
    let groups = json(
        &aws_cli(
            &bin,
            &env,
            &home,
            &["list-nodegroups", "--cluster-name", "demo"],
        )
        .await,
    );
    assert_eq!(groups["nodegroups"], serde_json::json!(["apps", "system"]));

    // The Kubernetes side behind the printed kubeconfig is the same cluster.
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    assert!(
        client
            .apiserver_version()
            .await
            .unwrap()
            .minor
            .starts_with("33")
    );

    let update = json(
        &aws_cli(
            &bin,
            &env,
            &home,
            &[
                "update-cluster-version",
                "--name",
                "demo",
                "--kubernetes-version",
                "1.34",
            ],
        )
        .await,
    );
    let id = update["update"]["id"].as_str().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..120 {
        let now = json(
            &aws_cli(
                &bin,
                &env,
                &home,
                &["describe-update", "--name", "demo", "--update-id", &id],
            )
            .await,
        );
        status = now["update"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status != "InProgress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, "Successful");
    let cluster = json(&aws_cli(&bin, &env, &home, &["describe-cluster", "--name", "demo"]).await);
    assert_eq!(cluster["cluster"]["version"], "1.34");
    assert!(
        client
            .apiserver_version()
            .await
            .unwrap()
            .minor
            .starts_with("34")
    );
    child.kill().await.unwrap();
}

/// Starts `kup-mock --provider <cloud>` and reads the environment it prints (checked equal to
/// the `--env-file` it writes); the process ends when the child is dropped.
async fn serve(
    cloud: &str,
    dir: &Path,
    kubeconfig: &Path,
) -> (tokio::process::Child, BTreeMap<String, String>, String) {
    let env_file = dir.join(format!("{cloud}.env"));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kup-mock"))
        .args(["--provider", cloud, "--time-scale", "600", "--env-file"])
        .arg(&env_file)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("# kup-mock:") {
            break;
        }
    }
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), printed);
    (child, parse_env(&printed), printed)
}

/// A Python from `var` that imports `module` (scripts/test installs the clients). Missing:
/// panics under CI, else `None`.
fn python_with(var: &str, module: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let works = std::process::Command::new(&candidate)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        assert!(
            !std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false"),
            "no Python with {module}: set {var} (scripts/test installs it)"
        );
        eprintln!("skipping: no Python with {module} (set {var})");
        return None;
    }
    Some(candidate)
}

/// Runs `script` with the printed environment only (plus PATH and HOME), returning stdout.
async fn python_run(
    py: &Path,
    env: &BTreeMap<String, String>,
    home: &Path,
    script: &str,
) -> String {
    let out = tokio::process::Command::new(py)
        .args(["-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn googles_python_client_reads_the_standalone_gke_mock_from_its_printed_environment() {
    let Some(py) = python_with("KUP_GKE_PYTHON", "google.cloud.container_v1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, env, printed) = serve("gke", dir.path(), &dir.path().join("kubeconfig")).await;
    assert!(
        env["KUP_MOCK_GKE_URL"].starts_with("http://127.0.0.1:"),
        "{printed}"
    );
    let version = python_run(
        &py,
        &env,
        dir.path(),
        r#"
import os
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import container_v1
client = container_v1.ClusterManagerClient(
    credentials=AnonymousCredentials(), transport="rest",
    client_options=ClientOptions(api_endpoint=os.environ["KUP_MOCK_GKE_URL"]))
name = "projects/%s/locations/%s/clusters/%s" % (
    os.environ["KUP_GKE_PROJECT"], os.environ["KUP_GKE_LOCATION"], os.environ["KUP_EKS_CLUSTER"])
print(client.get_cluster(name=name).current_master_version)
"#,
    )
    .await;
    assert!(version.starts_with("1.33"), "{version}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsofts_python_client_reads_the_standalone_arm_mock_over_tls_from_its_printed_environment()
 {
    let Some(py) = python_with("KUP_AZURE_PYTHON", "azure.mgmt.containerservice") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, env, printed) = serve("aks", dir.path(), &dir.path().join("kubeconfig")).await;
    assert!(
        env["KUP_MOCK_AKS_URL"].starts_with("https://127.0.0.1:"),
        "{printed}"
    );
    assert!(Path::new(&env["REQUESTS_CA_BUNDLE"]).is_file(), "{printed}");
    let version = python_run(
        &py,
        &env,
        dir.path(),
        r#"
import os, time
from azure.core.credentials import AccessToken
from azure.mgmt.containerservice import ContainerServiceClient
class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["KUP_AKS_ACCESS_TOKEN"], int(time.time()) + 3600)
client = ContainerServiceClient(Token(), os.environ["AZURE_SUBSCRIPTION_ID"],
    base_url=os.environ["KUP_MOCK_AKS_URL"], retry_total=0)
mc = client.managed_clusters.get(os.environ["KUP_AKS_RESOURCE_GROUP"], os.environ["KUP_EKS_CLUSTER"])
print(mc.kubernetes_version)
"#,
    )
    .await;
    assert!(version.starts_with("1.33"), "{version}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cloud_is_a_usage_error_listing_the_accepted_ones() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kup-mock"))
        .args(["--provider", "openstack"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("accepted: eks, aks, gke"), "{err}");
}
