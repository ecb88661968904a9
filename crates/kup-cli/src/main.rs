//! `kup`: upgrade Kubernetes clusters safely.

mod args;
mod commands;
mod config;
mod demo;
mod error;
mod output;
mod target;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::{CliError, EXIT_OK, EXIT_USAGE, Result};

async fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Demo(a) => demo::run(cli, a).await,
        Command::Drain(a) => {
            let config = target::kube_config(&config::resolve(&cli.cluster)?).await?;
            let kube =
                kube::Client::try_from(config).map_err(|e| CliError::Kubeconfig(e.to_string()))?;
            commands::drain(cli, kube, a).await
        }
        Command::Uncordon { node } => {
            let config = target::kube_config(&config::resolve(&cli.cluster)?).await?;
            let kube =
                kube::Client::try_from(config).map_err(|e| CliError::Kubeconfig(e.to_string()))?;
            commands::uncordon(cli, kube, node).await
        }
        other => {
            let t = target::resolve(&cli.cluster).await?;
            match other {
                Command::Versions => commands::versions(cli, &t).await,
                Command::Plan(a) => commands::plan(cli, &t, a).await.map(|_| ()),
                Command::Preflight(a) => commands::preflight(cli, &t, a).await.map(|_| ()),
                Command::Upgrade(a) => commands::upgrade(cli, &t, a).await,
                Command::Resume(a) => commands::resume(cli, &t, a).await,
                Command::Status => commands::status(cli, &t).await,
                Command::Validate(a) => commands::validate(cli, &t, a).await,
                Command::Backup { destination } => {
                    commands::backup(cli, t.provider.as_ref(), destination.clone()).await
                }
                Command::Demo(_) | Command::Drain(_) | Command::Uncordon { .. } => Ok(()),
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(error::EXIT_FAILED);
        }
    };
    match runtime.block_on(dispatch(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
