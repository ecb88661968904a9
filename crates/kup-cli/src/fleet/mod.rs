//! `kup fleet`: a fleet's upgrade in stages, on this machine, with the engine, journals and
//! locks `kup upgrade` uses on each member, and a fleet journal (in the state directory) so a
//! rerun resumes the wave. Approvals and halt requests are small files beside that journal,
//! written by `kup fleet approve|halt` from any terminal while `kup fleet run` waits.

mod connector;
mod events;
mod file;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use kup_engine::lock::{ClusterLock, FileLock};
use kup_fleet::{
    FileFleetControls, FileFleetJournal, FleetControls, FleetJournalStore, FleetPhase, FleetRunner,
    RunnerOptions, WaitMode, plan::plan_validated,
};

use crate::args::{Cli, FleetCommand, FleetRunArgs};
use crate::commands::{self, cancel_on_ctrl_c, confirm_with, version_flag};
use crate::error::{CliError, Result};
use crate::output;
use connector::CliConnector;
use file::FleetFile;

/// Runs a `kup fleet` subcommand.
pub async fn dispatch(cli: &Cli, command: &FleetCommand) -> Result<()> {
    match command {
        FleetCommand::Plan(a) => {
            let f = file::load(&a.file)?;
            let target = version_flag("--to", &a.to)?;
            let connector = connector(cli, &f, &crate::args::RunArgs::default())?;
            let plan = plan_validated(&f.fleet, &target, &connector, a.parallel.max(1)).await;
            output::emit(cli.output, &plan, || plan.to_table())?;
            let problems = plan.problems();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(CliError::Blocked(problems.len()))
            }
        }
        FleetCommand::Run(a) => run(cli, a, false).await,
        FleetCommand::Resume(a) => run(cli, a, true).await,
        FleetCommand::Status(a) => {
            let f = file::load(&a.file)?;
            let journal = FileFleetJournal::new(&f.state_dir);
            let Some(run) = journal.load().await? else {
                return Err(CliError::usage(
                    "--fleet",
                    format!(
                        "fleet {} has no run in {} yet; start one with `kup fleet run`",
                        f.name,
                        f.state_dir.display()
                    ),
                ));
            };
            output::emit(cli.output, &run, || run.to_table())
        }
        FleetCommand::Approve(a) => {
            let f = file::load(&a.file)?;
            if f.fleet.stage(&a.stage).is_none() {
                return Err(CliError::usage(
                    "STAGE",
                    format!(
                        "{:?} is not a stage of fleet {}; accepted: {}",
                        a.stage,
                        f.name,
                        stage_names(&f)
                    ),
                ));
            }
            let by = a.by.clone().unwrap_or_else(operator);
            let approval = controls(&f)?.approve(&a.stage, &by).await?;
            output::emit(cli.output, &approval, || {
                format!(
                    "stage {} of fleet {} approved by {} at {}\n",
                    approval.stage, f.name, approval.by, approval.at
                )
            })
        }
        FleetCommand::Halt(a) => {
            let f = file::load(&a.file)?;
            let request = controls(&f)?.request_halt(&operator(), &a.reason).await?;
            output::emit(cli.output, &request, || {
                format!(
                    "{}\nno further cluster of fleet {} starts; clusters upgrading now stop at \
                     their next safe point; `kup fleet resume` continues\n",
                    request.describe(),
                    f.name
                )
            })
        }
    }
}

fn stage_names(f: &FleetFile) -> String {
    f.fleet
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who is running kup, for approvals and halt requests.
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn state_dir(f: &FleetFile) -> Result<()> {
    std::fs::create_dir_all(&f.state_dir).map_err(|source| CliError::Io {
        path: f.state_dir.display().to_string(),
        source,
    })
}

fn controls(f: &FleetFile) -> Result<FileFleetControls> {
    state_dir(f)?;
    Ok(FileFleetControls::new(&f.state_dir))
}

fn connector(cli: &Cli, f: &FleetFile, run: &crate::args::RunArgs) -> Result<CliConnector> {
    Ok(CliConnector {
        base: f.base.clone(),
        kup_config: cli.cluster.config.clone(),
        drain: commands::drain_options(Some(run))?,
        on_stuck_drain: commands::stuck_drain_policy(Some(run))?,
        options: commands::engine_options(run)?,
        holder: run
            .holder
            .clone()
            .unwrap_or_else(|| format!("kup-fleet-{}", f.name)),
        shown: Mutex::new(BTreeSet::new()),
    })
}

/// `kup fleet run` and `kup fleet resume`.
async fn run(cli: &Cli, a: &FleetRunArgs, resume: bool) -> Result<()> {
    let f = file::load(&a.file)?;
    state_dir(&f)?;
    let journal = Arc::new(FileFleetJournal::new(&f.state_dir));
    let stored = journal.load().await?;
    let target = match (&a.to, &stored) {
        (Some(to), _) => version_flag("--to", to)?,
        (None, Some(run)) => run.target.clone(),
        (None, None) => {
            return Err(CliError::usage(
                "--to",
                "is required to start a fleet run (a rerun takes the journal's target)",
            ));
        }
    };
    if !a.yes {
        let question = match &stored {
            Some(run) if run.phase != FleetPhase::Completed => format!(
                "Continue the upgrade of fleet {} to {} ({} stages)?",
                f.name,
                target,
                run.stages.len()
            ),
            _ => format!(
                "Upgrade the {} clusters of fleet {} to {} in {} stages ({})?",
                f.fleet.spec.members.len(),
                f.name,
                target,
                f.fleet.stages.len(),
                stage_names(&f)
            ),
        };
        confirm_with(&question)?;
    }
    // One runner per state directory: a second `kup fleet run` would race the first's
    // journal and start clusters twice.
    let runner_lock = FileLock::new(
        &format!("fleet {}", f.name),
        f.state_dir.join("runner.lock"),
    );
    let guard = runner_lock.acquire().await?;
    let connector = Arc::new(connector(cli, &f, &a.run)?);
    let sink = Arc::new(events::FleetOutput::new(cli));
    let runner = FleetRunner::new(
        &f.fleet.spec,
        target,
        connector,
        journal,
        Arc::new(FileFleetControls::new(&f.state_dir)),
        sink,
    )?
    .with_options(RunnerOptions {
        wait: if a.no_wait {
            WaitMode::Return
        } else {
            WaitMode::Block
        },
        ..RunnerOptions::default()
    });
    let cancel = cancel_on_ctrl_c(None);
    let result = if resume {
        runner.resume(&cancel).await
    } else {
        runner.run(&cancel).await
    };
    let _ = guard.release().await;
    let run = result?;
    output::emit(cli.output, &run, || run.to_table())?;
    match run.phase {
        FleetPhase::Completed => Ok(()),
        FleetPhase::WaitingApproval => {
            let waiting = run
                .stages
                .iter()
                .find(|s| s.phase == kup_fleet::StagePhase::WaitingApproval)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            eprintln!(
                "stage {waiting} waits for approval: `kup fleet approve {waiting} --fleet {}`, \
                 then `kup fleet run --fleet {}` continues",
                a.file.fleet.display(),
                a.file.fleet.display()
            );
            Ok(())
        }
        FleetPhase::Halted => Err(CliError::Failed(format!(
            "fleet {} halted: {}; `kup fleet resume --fleet {}` continues once it is dealt with",
            f.name,
            run.halted
                .as_ref()
                .map(|h| h.reason.clone())
                .unwrap_or_default(),
            a.file.fleet.display()
        ))),
        FleetPhase::Running | FleetPhase::Soaking => Err(CliError::Failed(format!(
            "fleet {} stopped before it finished (interrupted); `kup fleet run --fleet {}` \
             resumes it",
            f.name,
            a.file.fleet.display()
        ))),
    }
}
