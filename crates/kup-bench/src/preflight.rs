//! `kup-bench preflight`: kup's pre-flight checks on a large simulated cluster (by default the
//! simulator's `large` scenario: 5,003 nodes, about 150,000 pods).
//!
//! Three processes keep the measurement honest: the simulator runs as its own `kup-mock`
//! process (its memory is the cluster's, not kup's), and the pre-flight runs in a child
//! `kup-bench` process that reports its own peak RSS (`VmHWM` from `/proc/self/status`) and
//! its RSS just before the run (runtime and binary baseline). The parent starts both, prints
//! the table and stops the simulator.
//!
//! Target: under 300 MB peak RSS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use kup_core::KubeVersion;
use kup_kube::preflight::{Preflight, PreflightInput};

use crate::error::BenchError;
use crate::table::Table;

/// The peak RSS target.
const TARGET_MB: f64 = 300.0;

/// Options of `kup-bench preflight`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Canned simulator scenario (or a scenario YAML file) to check.
    #[arg(long, default_value = "large")]
    scenario: String,
    /// The version to check an upgrade to (default: the next minor of the cluster).
    #[arg(long)]
    target: Option<String>,
    /// List page size.
    #[arg(long, default_value_t = 500)]
    page_size: u32,
    /// The `kup-mock` binary (default: next to this binary, else on PATH).
    #[arg(long)]
    kup_mock: Option<PathBuf>,
    /// Internal: run the pre-flight against this API server URL and report as JSON.
    #[arg(long, hide = true)]
    child_server: Option<String>,
}

/// What the child reports, one JSON line on stdout.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ChildReport {
    wall_ms: u64,
    api_requests: u64,
    nodes: u64,
    pods: u64,
    blockers: usize,
    warnings: usize,
    peak_rss_kb: Option<u64>,
    baseline_rss_kb: Option<u64>,
    control_plane: String,
    target: String,
}

/// `VmHWM` and `VmRSS` of this process, in kB (Linux).
fn rss_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(
        || "n/a".to_string(),
        |k| format!("{:.1} MB", k as f64 / 1024.0),
    )
}

async fn child(server: &str, args: &Args) -> Result<(), BenchError> {
    let url = server
        .parse()
        .map_err(|e| BenchError::Check(format!("bad server URL {server}: {e}")))?;
    let client = kube::Client::try_from(kube::Config::new(url))
        .map_err(|e| BenchError::Check(format!("kube client: {e}")))?;
    let info = client
        .apiserver_version()
        .await
        .map_err(|e| BenchError::Check(format!("/version: {e}")))?;
    let current = KubeVersion::parse(&info.git_version)
        .map_err(|e| BenchError::Check(format!("/version: {e}")))?;
    let target = match &args.target {
        Some(t) => {
            KubeVersion::parse(t).map_err(|e| BenchError::Check(format!("--target: {e}")))?
        }
        None => current.next_minor(),
    };
    let mut input = PreflightInput::new(target.clone());
    input.page_size = args.page_size;
    let baseline = rss_kb("VmRSS:");
    let started = Instant::now();
    let report = Preflight::new(client)
        .run(&input)
        .await
        .map_err(|e| BenchError::Check(format!("kup pre-flight: {e}")))?;
    let wall = started.elapsed();
    let out = ChildReport {
        wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
        api_requests: report.stats.api_requests,
        nodes: report.stats.nodes,
        pods: report.stats.pods,
        blockers: report
            .findings
            .findings
            .iter()
            .filter(|f| f.is_blocker())
            .count(),
        warnings: report
            .findings
            .findings
            .iter()
            .filter(|f| f.severity == kup_core::Severity::Warning)
            .count(),
        peak_rss_kb: rss_kb("VmHWM:"),
        baseline_rss_kb: baseline,
        control_plane: current.to_string(),
        target: target.to_string(),
    };
    let line = serde_json::to_string(&out).map_err(|e| BenchError::Check(e.to_string()))?;
    println!("{line}");
    Ok(())
}

fn find_kup_mock(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("kup-mock")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("kup-mock"))
}

/// The simulator process, stopped when dropped.
struct MockProcess(Child);

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mock(program: &Path, scenario: &str) -> Result<(MockProcess, String), BenchError> {
    let mut child = Command::new(program)
        .args(["--scenario", scenario])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            program: format!(
                "{} (build it with `cargo build --release -p kup-mocks --bin kup-mock`, or pass \
                 --kup-mock)",
                program.display()
            ),
            source,
        })?;
    let stdout = child.stdout.take();
    let process = MockProcess(child);
    // kup-mock prints its URL on the first stdout line once it serves.
    let mut url = String::new();
    if let Some(out) = stdout {
        BufReader::new(out)
            .read_line(&mut url)
            .map_err(|source| BenchError::Io {
                what: "reading kup-mock's URL",
                source,
            })?;
    }
    let url = url.trim().to_string();
    if url.is_empty() {
        return Err(BenchError::Check(
            "kup-mock exited before serving (see its output above)".into(),
        ));
    }
    Ok((process, url))
}

pub(crate) async fn run(args: Args) -> Result<(), BenchError> {
    if let Some(server) = &args.child_server {
        return child(server, &args).await;
    }
    let program = find_kup_mock(args.kup_mock.as_deref());
    eprintln!(
        "starting {} --scenario {} ...",
        program.display(),
        args.scenario
    );
    let loading = Instant::now();
    let (_mock, url) = start_mock(&program, &args.scenario)?;
    eprintln!(
        "simulator serving at {url} after {:.1} s; running the pre-flight in a child process ...",
        loading.elapsed().as_secs_f64()
    );

    let exe = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "locating kup-bench",
        source,
    })?;
    let mut command = Command::new(&exe);
    command.args(["preflight", "--child-server", &url]);
    command.args(["--page-size", &args.page_size.to_string()]);
    if let Some(t) = &args.target {
        command.args(["--target", t]);
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BenchError::Spawn {
            program: exe.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(BenchError::Check(format!(
            "the pre-flight child failed ({})",
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let report: ChildReport = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| BenchError::Check(format!("no report from the child: {text}")))?;

    let mut table = Table::new(&[
        "scenario",
        "nodes",
        "pods",
        "upgrade",
        "wall time",
        "peak RSS",
        "RSS before run",
        "API requests",
        "findings",
        "target <300 MB",
    ]);
    let peak_ok = report
        .peak_rss_kb
        .is_some_and(|k| (k as f64 / 1024.0) < TARGET_MB);
    table.row(vec![
        args.scenario.clone(),
        report.nodes.to_string(),
        report.pods.to_string(),
        format!("{} → {}", report.control_plane, report.target),
        format!("{:.2} s", report.wall_ms as f64 / 1000.0),
        mb(report.peak_rss_kb),
        mb(report.baseline_rss_kb),
        report.api_requests.to_string(),
        format!(
            "{} blocker(s), {} warning(s)",
            report.blockers, report.warnings
        ),
        if peak_ok { "met" } else { "MISSED" }.to_string(),
    ]);
    println!("{}", table.render());
    println!(
        "peak RSS is the whole pre-flight process (VmHWM), runtime included; the simulator runs \
         in its own process. Page size {}.",
        args.page_size
    );
    Ok(())
}
