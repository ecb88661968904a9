//! `kup-bench`: measures kup against the tools it replaces on identical simulated clusters and
//! prints a table (wall time, API requests, the scenario's lower bound).
//!
//! ```text
//! cargo run --release -p kup-bench -- drain              # both drain scenarios
//! cargo run --release -p kup-bench -- drain --scenario 2 --runs 3
//! ```
//!
//! Each subcommand is one module with an `Args` (clap) and an async `run`; adding one is a
//! module, a variant of [`Command`] and its match arm in `main`.

mod drain;
mod error;
mod kubectl;
mod preflight;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks kup against the tools it replaces, on identical simulated clusters.
#[derive(Debug, Parser)]
#[command(name = "kup-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Drain a node with kup and with `kubectl drain` (the two drain scenarios).
    Drain(drain::Args),
    /// Pre-flight checks on a large simulated cluster: wall time, peak RSS, API requests.
    Preflight(preflight::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Drain(args) => drain::run(args).await,
        Command::Preflight(args) => preflight::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kup-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
