//! `kup`: upgrade Kubernetes clusters safely.

mod args;
mod commands;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod fleet;
mod output;
mod registry;
mod rollback;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};
use crate::error::{EXIT_OK, EXIT_USAGE, Result};

#[cfg(feature = "demo")]
async fn demo(cli: &Cli, a: &args::DemoArgs) -> Result<()> {
    demo::run(cli, a).await
}

#[cfg(not(feature = "demo"))]
async fn demo(_: &Cli, _: &args::DemoArgs) -> Result<()> {
    Err(crate::error::CliError::usage(
        "demo",
        "this kup was built without the demo (cargo feature `demo`, on by default); \
         rebuild with the default features to run it",
    ))
}

async fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Demo(a) => demo(cli, a).await,
        Command::Fleet(f) => fleet::dispatch(cli, f).await,
        Command::Drain(a) => {
            let kube = target::kube(&config::resolve(&cli.cluster)?).await?;
            output::warn(cli, &kube.warnings);
            commands::drain(cli, kube.client, a).await
        }
        Command::Uncordon { node } => {
            let kube = target::kube(&config::resolve(&cli.cluster)?).await?;
            output::warn(cli, &kube.warnings);
            commands::uncordon(cli, kube.client, node).await
        }
        other => {
            let run = match other {
                Command::Upgrade(a) => Some(&a.run),
                Command::Resume(r) => Some(r),
                _ => None,
            };
            let drain = commands::drain_options(run)?;
            // Checks, validation, status and the report need only the Kubernetes API.
            let default = match other {
                Command::Preflight(_)
                | Command::Validate(_)
                | Command::Status
                | Command::Report(_) => Some(registry::KUBECONFIG_ONLY),
                _ => None,
            };
            let stuck = commands::stuck_drain_policy(run)?;
            let restores = matches!(other, Command::Rollback(_) | Command::Restore(_));
            let t = target::resolve(&cli.cluster, &drain, stuck, default, restores).await?;
            output::warn(cli, &t.warnings);
            match other {
                Command::Versions => commands::versions(cli, &t).await,
                Command::Plan(a) => commands::plan(cli, &t, a).await.map(|_| ()),
                Command::Preflight(a) => commands::preflight(cli, &t, a).await.map(|_| ()),
                Command::Upgrade(a) => commands::upgrade(cli, &t, a).await,
                Command::Resume(a) => commands::resume(cli, &t, a).await,
                Command::Status => commands::status(cli, &t).await,
                Command::Report(a) => commands::report(cli, &t, a).await,
                Command::Validate(a) => commands::validate(cli, &t, a).await,
                Command::Rollback(a) => rollback::rollback(cli, &t, a).await,
                Command::Restore(a) => rollback::restore(cli, &t, a).await,
                Command::Backup { destination } => {
                    commands::backup(cli, t.provider.as_ref(), destination.clone()).await
                }
                Command::Demo(_)
                | Command::Drain(_)
                | Command::Uncordon { .. }
                | Command::Fleet(_) => Ok(()),
            }
        }
    }
}

/// Parses the flags: the derived ones plus every provider's, from the registry.
fn parse() -> std::result::Result<Cli, clap::Error> {
    let mut command = registry::augment(Cli::command());
    let matches = command.try_get_matches_from_mut(std::env::args_os())?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    cli.cluster.settings = registry::Settings::from_matches(&matches);
    Ok(cli)
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The EKS builder's cleartext-endpoint warning is shown by kup itself, not as a log line.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUP_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kup_eks::builder=error")
            }),
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
