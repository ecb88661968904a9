//! `kup-mock`: serves a simulated Kubernetes API, and with `--provider` a cloud's API mock
//! driving it, until killed.
//!
//! ```text
//! cargo run -p kup-mocks --bin kup-mock -- --scenario small --kubeconfig /tmp/kubeconfig
//! cargo run -p kup-mocks --bin kup-mock -- --provider eks --env-file /tmp/mock.env
//! ```
//!
//! With `--provider`, stdout (and `--env-file`) is a shell-sourceable list of `export` lines:
//! both endpoints, the kubeconfig, and the cloud's endpoint override and dummy credentials.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use kup_mocks::k8s::{Scenario, SimConfig, SimHandle, Simulator};
use kup_mocks::standalone::{self, StartOptions};

/// Serve a simulated Kubernetes API server (and, with --provider, a cloud API mock driving it)
/// on 127.0.0.1 until interrupted.
#[derive(Debug, Parser)]
#[command(name = "kup-mock", version)]
struct Args {
    /// A cloud's API mock to serve beside the simulator (accepted: eks, aks, gke).
    #[arg(long)]
    provider: Option<String>,
    /// Canned scenario (small, pdb-blocked, large) or a path to a scenario YAML file
    /// (default: small, or the cloud's own cluster with --provider).
    #[arg(long)]
    scenario: Option<String>,
    /// Where to write a kubeconfig pointing at the simulator (with --provider, a temporary
    /// file when not given).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// With --provider: also write the environment to this file, once both are serving.
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve HTTPS with a generated CA (written into the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Simulated seconds per real second (the cloud's operations too).
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

/// `value` quoted for a POSIX shell.
fn quoted(value: &str) -> String {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn write_env(path: &Path, text: &str) -> std::io::Result<()> {
    // Written whole and renamed into place, so a reader never sees half of it.
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

async fn serve_cloud(args: &Args, name: &str, sim: &SimHandle) -> Result<(), (u8, String)> {
    let cloud = standalone::find(name).map_err(|e| (2, e.to_string()))?;
    let kubeconfig = args.kubeconfig.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("kup-mock-{}.kubeconfig", std::process::id()))
    });
    sim.write_kubeconfig(&kubeconfig)
        .map_err(|e| (1, e.to_string()))?;
    let serving = (cloud.start)(StartOptions {
        sim: sim.clone(),
        time_scale: args.time_scale,
    })
    .await
    .map_err(|e| (1, e.to_string()))?;
    let upper = name.to_ascii_uppercase();
    let mut env = vec![
        ("KUP_MOCK_KUBERNETES_URL".to_string(), sim.url().to_string()),
        (format!("KUP_MOCK_{upper}_URL"), serving.endpoint.clone()),
        ("KUBECONFIG".to_string(), kubeconfig.display().to_string()),
    ];
    env.extend(serving.env.iter().cloned());
    let mut text: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", quoted(v)))
        .collect();
    text.push_str(&format!(
        "# kup-mock: {name} at {} and Kubernetes at {}; Ctrl-C to stop\n",
        serving.endpoint,
        sim.url()
    ));
    if let Some(path) = &args.env_file {
        write_env(path, &text).map_err(|e| (1, format!("{}: {e}", path.display())))?;
    }
    print!("{text}");
    eprintln!(
        "kup-mock: {} ({}) at {}, driving {} nodes (Kubernetes {}) at {}; kubeconfig {}",
        cloud.name,
        cloud.help,
        serving.endpoint,
        sim.count("nodes"),
        sim.api_server_version(),
        sim.url(),
        kubeconfig.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(serving);
    if args.kubeconfig.is_none() {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cloud = match args.provider.as_deref().map(standalone::find).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kup-mock: {e}");
            return ExitCode::from(2);
        }
    };
    let scenario = match (&args.scenario, cloud) {
        (Some(name), _) => load(name),
        (None, Some(c)) => Ok((c.scenario)()),
        (None, None) => load("small"),
    };
    let mut scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kup-mock: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(v) = &args.server_version {
        scenario = scenario.version(v.clone());
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
    if let Some(cloud) = cloud {
        let result = serve_cloud(&args, cloud.name, &sim).await;
        sim.shutdown().await;
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, message)) => {
                eprintln!("kup-mock: {message}");
                ExitCode::from(code)
            }
        };
    }
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
