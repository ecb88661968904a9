//! `kup-bench drain`: the same simulated node drained by kup and by `kubectl drain`.
//!
//! The two drain scenarios, on a simulator running in real time:
//! 1. 60 pods (6 Deployments × 10), no PodDisruptionBudget contention;
//! 2. 40 pods of 4 Deployments (× 10), each with a budget `maxUnavailable: 1`, replacements
//!    Ready 1 s after creation.
//!
//! Every pod takes 1 s to stop after its eviction. The lower bound is what no drain can beat
//! on that cluster: scenario 1, one stop (1 s); scenario 2, ten disruptions in a row per
//! budget, each waiting for the previous replacement to be Ready (9 × 1 s), then the last
//! pod's stop (1 s): 10 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kup_core::NoEvents;
use kup_kube::drain::{DrainOptions, Drainer};
use kup_mocks::k8s::{Node, Pdb, Pool, Scenario, SimConfig, SimHandle, Simulator, Workload};

use crate::error::BenchError;
use crate::kubectl::{self, Kubectl};
use crate::table::Table;

const NODE: &str = "a-1";
const SPARE: &str = "spare";
/// How long a pod takes to stop, and a replacement to become Ready.
const STEP: Duration = Duration::from_secs(1);

/// Options of `kup-bench drain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Which::All)]
    scenario: Which,
    /// The kubectl to compare with (default: $KUP_KUBECTL, else kubectl on PATH).
    #[arg(long)]
    kubectl: Option<PathBuf>,
    /// Measure kup only.
    #[arg(long)]
    no_kubectl: bool,
    /// Runs per tool and scenario; the median wall time is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    #[value(name = "1")]
    One,
    #[value(name = "2")]
    Two,
    All,
}

/// One bench scenario.
struct Case {
    number: u8,
    title: &'static str,
    scenario: fn() -> Scenario,
    lower_bound: Duration,
}

fn cases() -> [Case; 2] {
    [
        Case {
            number: 1,
            title: "60 pods, no PDB contention",
            scenario: scenario_one,
            lower_bound: STEP,
        },
        Case {
            number: 2,
            title: "40 pods, 4 PDBs maxUnavailable=1",
            scenario: scenario_two,
            lower_bound: STEP * 10,
        },
    ]
}

/// The node to drain and a cordoned spare for the replacements (opened before each run).
fn base() -> Scenario {
    Scenario::new()
        .pool(Pool::new("a", 1))
        .node(Node::new(SPARE).pool("a").unschedulable())
}

fn scenario_one() -> Scenario {
    (1..=6).fold(base(), |s, i| {
        s.workload(
            Workload::deployment("bench", format!("svc-{i}"))
                .replicas(10)
                .pool("a"),
        )
    })
}

fn scenario_two() -> Scenario {
    (1..=4).fold(base(), |s, i| {
        let name = format!("app-{i}");
        s.workload(Workload::deployment("bench", &name).replicas(10).pool("a"))
            .pdb(
                Pdb::new("bench", &name)
                    .match_label("app", &name)
                    .max_unavailable(1),
            )
    })
}

fn sim_config() -> SimConfig {
    SimConfig::default()
        .time_scale(1.0)
        .pod_start_delay(Duration::ZERO)
        .pod_ready_delay(STEP)
        .pod_shutdown_delay(STEP)
}

/// Starts the scenario and opens the spare node; the request log starts empty.
async fn prepare(case: &Case) -> Result<(SimHandle, Drainer), BenchError> {
    let sim = Simulator::start((case.scenario)(), sim_config()).await?;
    let drainer = Drainer::from_config(sim.client_config())?;
    drainer.uncordon(SPARE).await?;
    Ok((sim, drainer))
}

/// What one drain cost.
#[derive(Debug, Clone, Copy)]
struct Measure {
    wall: Duration,
    requests: u64,
}

fn check_drained(sim: &SimHandle, tool: &str) -> Result<(), BenchError> {
    let left = sim.pods_on_node(NODE).len();
    if left != 0 {
        return Err(BenchError::Check(format!(
            "{tool} left {left} pods on {NODE}"
        )));
    }
    Ok(())
}

async fn run_kup(case: &Case) -> Result<Measure, BenchError> {
    let (sim, drainer) = prepare(case).await?;
    sim.requests().clear();
    let opts = DrainOptions {
        timeout: Some(Duration::from_secs(300)),
        ..DrainOptions::default()
    };
    let started = Instant::now();
    let result = drainer.drain(NODE, &opts, &NoEvents).await;
    let wall = started.elapsed();
    let requests = sim.requests().total();
    let checked = result
        .map_err(BenchError::from)
        .and_then(|_| check_drained(&sim, "kup"));
    sim.shutdown().await;
    checked?;
    Ok(Measure { wall, requests })
}

async fn run_kubectl(case: &Case, program: PathBuf) -> Result<Measure, BenchError> {
    let (sim, _drainer) = prepare(case).await?;
    let kubectl = Kubectl::new(&program, &sim)?;
    // Warm kubectl's discovery cache first, so the count below is the drain's own requests
    // (the most favourable count for kubectl).
    tokio::task::block_in_place(|| kubectl.run(&["api-resources", "-o", "name"]))?;
    sim.requests().clear();
    let started = Instant::now();
    let output = tokio::task::block_in_place(|| {
        kubectl.run(&["drain", NODE, "--ignore-daemonsets", "--timeout=300s"])
    })?;
    let wall = started.elapsed();
    let requests = sim.requests().total();
    let checked = if output.status.success() {
        check_drained(&sim, "kubectl")
    } else {
        Err(BenchError::Check(format!(
            "kubectl drain failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    };
    sim.shutdown().await;
    checked?;
    Ok(Measure { wall, requests })
}

/// Median wall time and request count over `runs` runs.
fn median(mut measures: Vec<Measure>) -> Measure {
    measures.sort_by_key(|m| m.wall);
    measures[measures.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Runs the chosen scenarios and prints the table and the targets.
pub(crate) async fn run(args: Args) -> Result<(), BenchError> {
    let kubectl = if args.no_kubectl {
        None
    } else {
        let found = kubectl::find(args.kubectl.as_deref());
        if found.is_none() {
            eprintln!("kubectl not found (--kubectl, $KUP_KUBECTL or PATH); measuring kup only");
        }
        found
    };
    let mut table = Table::new(&[
        "scenario",
        "tool",
        "wall time",
        "API requests",
        "lower bound",
        "vs kubectl",
        "vs lower bound",
    ]);
    let mut targets = Vec::new();
    for case in cases() {
        let chosen = match args.scenario {
            Which::One => case.number == 1,
            Which::Two => case.number == 2,
            Which::All => true,
        };
        if !chosen {
            continue;
        }
        eprintln!("scenario {}: {} ...", case.number, case.title);
        let mut ours = Vec::new();
        for _ in 0..args.runs {
            ours.push(run_kup(&case).await?);
        }
        let ours = median(ours);
        let theirs = match &kubectl {
            Some(program) => {
                let mut all = Vec::new();
                for _ in 0..args.runs {
                    all.push(run_kubectl(&case, program.clone()).await?);
                }
                Some(median(all))
            }
            None => None,
        };
        let label = format!("{}: {}", case.number, case.title);
        table.row(vec![
            label,
            "kup".into(),
            secs(ours.wall),
            ours.requests.to_string(),
            secs(case.lower_bound),
            theirs.map_or("-".into(), |t| format!("{:.2}x", ratio(ours.wall, t.wall))),
            format!("{:.2}x", ratio(ours.wall, case.lower_bound)),
        ]);
        if let Some(t) = theirs {
            table.row(vec![
                String::new(),
                "kubectl".into(),
                secs(t.wall),
                t.requests.to_string(),
                String::new(),
                String::new(),
                format!("{:.2}x", ratio(t.wall, case.lower_bound)),
            ]);
        }
        match (case.number, theirs) {
            (1, Some(t)) => {
                targets.push(format!(
                    "scenario 1: kup wall time <= kubectl's: {:.2} s vs {:.2} s, {}",
                    ours.wall.as_secs_f64(),
                    t.wall.as_secs_f64(),
                    verdict(ours.wall <= t.wall)
                ));
                targets.push(format!(
                    "scenario 1: kup API requests <= kubectl's: {} vs {}, {}",
                    ours.requests,
                    t.requests,
                    verdict(ours.requests <= t.requests)
                ));
            }
            (2, theirs) => {
                if let Some(t) = theirs {
                    let r = ratio(ours.wall, t.wall);
                    targets.push(format!(
                        "scenario 2: kup <= 0.5x kubectl's wall time: {r:.2}x, {}",
                        verdict(r <= 0.5)
                    ));
                }
                let r = ratio(ours.wall, case.lower_bound);
                targets.push(format!(
                    "scenario 2: kup <= 1.2x the lower bound: {r:.2}x, {}",
                    verdict(r <= 1.2)
                ));
            }
            _ => {}
        }
    }
    println!("{}", table.render());
    if !targets.is_empty() {
        println!("targets");
        for t in targets {
            println!("  {t}");
        }
    }
    Ok(())
}
