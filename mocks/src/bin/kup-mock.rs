//! `kup-mock`: serves a simulated Kubernetes API until killed.
//!
//! ```text
//! cargo run -p kup-mocks --bin kup-mock -- --scenario small --kubeconfig /tmp/kubeconfig
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kup_mocks::k8s::{Scenario, SimConfig, Simulator};

/// Serve a simulated Kubernetes API server on 127.0.0.1 until interrupted.
#[derive(Debug, Parser)]
#[command(name = "kup-mock", version)]
struct Args {
    /// Canned scenario (small, pdb-blocked, large) or a path to a scenario YAML file.
    #[arg(long, default_value = "small")]
    scenario: String,
    /// Where to write a kubeconfig pointing at the simulator.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve HTTPS with a generated CA (written into the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Override the scenario's API server version (e.g. v1.24.17).
    #[arg(long)]
    server_version: Option<String>,
}

fn load(name: &str) -> kup_mocks::Result<Scenario> {
    let path = PathBuf::from(name);
    if path.extension().is_some_and(|e| e == "yaml" || e == "yml") || path.exists() {
        Scenario::from_file(&path)
    } else {
        Scenario::canned(name)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut scenario = match load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kup-mock: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(v) = args.server_version {
        scenario = scenario.version(v);
    }
    let config = SimConfig::default()
        .tls(args.tls)
        .time_scale(args.time_scale)
        .port(args.port);
    let sim = match Simulator::start(scenario, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kup-mock: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.kubeconfig {
        if let Err(e) = sim.write_kubeconfig(path) {
            eprintln!("kup-mock: {e}");
            return ExitCode::from(1);
        }
        eprintln!("kup-mock: kubeconfig written to {}", path.display());
    }
    println!("{}", sim.url());
    eprintln!(
        "kup-mock: serving {} nodes and {} pods (Kubernetes {}) at {}; Ctrl-C to stop",
        sim.count("nodes"),
        sim.count("pods"),
        sim.api_server_version(),
        sim.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}
