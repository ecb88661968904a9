//! The real `aws` CLI (botocore, an independent implementation of EKS's wire format) against
//! the EKS mock: reads, an update and its progress, and errors as the CLI reports them.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Output;

use kup_mocks::eks::{EksConfig, EksMock};
use serde_json::Value;

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

async fn run(bin: &PathBuf, mock: &EksMock, home: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(bin)
        .args([
            "eks",
            "--endpoint-url",
            &mock.endpoint(),
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_DEFAULT_REGION", "us-west-2")
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
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

#[tokio::test]
async fn the_aws_cli_reads_updates_and_sees_errors() {
    let Some(bin) = aws() else { return };
    let home = tempfile::tempdir().unwrap();
    // Slow enough that the update is still running across several CLI calls (~1 s each).
    let mock = EksMock::start(EksConfig::demo().time_scale(10.0), None)
        .await
        .unwrap();

    let cluster = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &["describe-cluster", "--name", "demo"],
        )
        .await,
    );
    assert_eq!(cluster["cluster"]["version"], "1.33");
    assert_eq!(cluster["cluster"]["status"], "ACTIVE");

    let groups = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &["list-nodegroups", "--cluster-name", "demo"],
        )
        .await,
    );
    assert_eq!(groups["nodegroups"], serde_json::json!(["apps", "system"]));

    let addons = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &[
                "describe-addon-versions",
                "--kubernetes-version",
                "1.35",
                "--addon-name",
                "kube-proxy",
            ],
        )
        .await,
    );
    assert_eq!(
        addons["addons"][0]["addonVersions"][0]["addonVersion"],
        "v1.35.0-eksbuild.2"
    );

    let update = json(
        &run(
            &bin,
            &mock,
            home.path(),
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
    assert_eq!(update["update"]["status"], "InProgress");
    let listed = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &["list-updates", "--name", "demo"],
        )
        .await,
    );
    assert_eq!(listed["updateIds"], serde_json::json!([id.clone()]));

    // A second update while one runs: the CLI names EKS's exception.
    let busy = run(
        &bin,
        &mock,
        home.path(),
        &[
            "update-cluster-version",
            "--name",
            "demo",
            "--kubernetes-version",
            "1.34",
        ],
    )
    .await;
    assert!(!busy.status.success());
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("ResourceInUseException"), "{stderr}");

    let missing = run(
        &bin,
        &mock,
        home.path(),
        &["describe-cluster", "--name", "nope"],
    )
    .await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFoundException"));
    assert_eq!(mock.updates("demo").len(), 1);
}

#[tokio::test]
async fn the_aws_cli_reads_a_node_groups_update_history() {
    let Some(bin) = aws() else { return };
    let home = tempfile::tempdir().unwrap();
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let version = mock.create_launch_template_version("demo", "apps").unwrap();
    let lt = format!("name=apps-lt,version={version}");
    let update = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &[
                "update-nodegroup-version",
                "--cluster-name",
                "demo",
                "--nodegroup-name",
                "apps",
                "--launch-template",
                &lt,
            ],
        )
        .await,
    );
    let id = update["update"]["id"].as_str().unwrap().to_string();
    let listed = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &["list-updates", "--name", "demo", "--nodegroup-name", "apps"],
        )
        .await,
    );
    assert_eq!(listed["updateIds"], serde_json::json!([id.clone()]));
    let cluster_only = json(
        &run(
            &bin,
            &mock,
            home.path(),
            &["list-updates", "--name", "demo"],
        )
        .await,
    );
    assert_eq!(cluster_only["updateIds"], serde_json::json!([]));
    // The update's params, as botocore reads them: the values it moved to.
    let mut described = Value::Null;
    for _ in 0..50 {
        described = json(
            &run(
                &bin,
                &mock,
                home.path(),
                &[
                    "describe-update",
                    "--name",
                    "demo",
                    "--nodegroup-name",
                    "apps",
                    "--update-id",
                    &id,
                ],
            )
            .await,
        );
        if described["update"]["status"] != "InProgress" {
            break;
        }
    }
    let u = &described["update"];
    assert_eq!(u["status"], "Successful", "{u}");
    assert_eq!(u["type"], "VersionUpdate");
    let param = |t: &str| {
        u["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == t)
            .map(|p| p["value"].clone())
    };
    assert_eq!(param("LaunchTemplateName"), Some("apps-lt".into()));
    assert_eq!(param("LaunchTemplateVersion"), Some(version.clone().into()));
    assert_eq!(param("Version"), Some("1.33".into()));
    // An earlier Kubernetes version: the CLI names EKS's exception and its words.
    let down = run(
        &bin,
        &mock,
        home.path(),
        &[
            "update-nodegroup-version",
            "--cluster-name",
            "demo",
            "--nodegroup-name",
            "apps",
            "--kubernetes-version",
            "1.32",
        ],
    )
    .await;
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains("InvalidParameterException")
            && stderr.contains("You cannot roll back a node group"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_aws_cli_rolls_the_control_plane_back_with_rollback_config() {
    let Some(bin) = aws() else { return };
    let home = tempfile::tempdir().unwrap();
    let mock = EksMock::start(EksConfig::demo().time_scale(600.0), None)
        .await
        .unwrap();
    let cli = |args: &'static [&'static str]| run(&bin, &mock, home.path(), args);
    json(
        &cli(&[
            "update-cluster-version",
            "--name",
            "demo",
            "--kubernetes-version",
            "1.34",
        ])
        .await,
    );
    for _ in 0..500 {
        if mock.cluster_version("demo").as_deref() == Some("1.34") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.34"));

    // A downgrade without --rollback-config is no rollback.
    let plain = cli(&[
        "update-cluster-version",
        "--name",
        "demo",
        "--kubernetes-version",
        "1.33",
    ])
    .await;
    assert!(!plain.status.success());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("InvalidParameterException"), "{err}");

    // A timeout outside EKS's 120–10080 minutes is refused by the mock, not the CLI.
    let short = cli(&[
        "update-cluster-version",
        "--name",
        "demo",
        "--kubernetes-version",
        "1.33",
        "--rollback-config",
        "timeoutMinutes=60",
    ])
    .await;
    assert!(!short.status.success());
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(
        err.contains("InvalidParameterException") && err.contains("between 120 and 10080"),
        "{err}"
    );

    let update = json(
        &cli(&[
            "update-cluster-version",
            "--name",
            "demo",
            "--kubernetes-version",
            "1.33",
            "--rollback-config",
            "timeoutMinutes=180",
        ])
        .await,
    );
    assert_eq!(update["update"]["type"], "VersionRollback");
    assert_eq!(update["update"]["status"], "InProgress");
    let last = mock.updates("demo").last().cloned().unwrap();
    assert!(last.rollback, "{last:?}");
    assert_eq!(update["update"]["id"], last.id.as_str());
    for _ in 0..500 {
        if mock.cluster_version("demo").as_deref() == Some("1.33") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mock.cluster_version("demo").as_deref(), Some("1.33"));
}
