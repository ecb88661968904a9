//! `kup rollback` and `kup restore`: plans that go back, run by the same engine as upgrades.
//!
//! The way back comes from the upgrade's own records: its plan says where the control plane
//! and every pool started, its journal holds the verified backups. A rollback keeps its own
//! journal (an unfinished upgrade's journal is what it reads), and a plan that restores etcd
//! keeps journal and lock in files on this machine: the restore stops the API servers and
//! rewinds everything stored in the cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kup_core::{BackupRecord, PlanKind, RollbackRequest, StepAction, UpgradePlan};
use kup_engine::journal::{
    ConfigMapJournalStore, ConfigMapPlanStore, FileJournalStore, FilePlanStore, JournalStore,
    PlanStore,
};
use kup_engine::lock::{ClusterLock, FileLock, LeaseLock, LeaseSettings};
use kup_engine::{Engine, EngineOptions, KubeCluster};

use crate::args::{Cli, Format, RestoreArgs, RollbackArgs, RunArgs};
use crate::commands::{
    STATE_NAMESPACE, Sinks, cancel_on_ctrl_c, engine as upgrade_engine, finish_run, read_plan_file,
    stored_plan,
};
use crate::error::{CliError, Result};
use crate::output::{self, emit};
use crate::target::Target;

/// Where a rollback keeps its journal, plan and lock.
enum State {
    /// Files on this machine (plans that restore).
    Files(PathBuf),
    /// The cluster: ConfigMaps of the rollback, and the cluster's upgrade Lease.
    Cluster,
}

fn rollback_engine(
    t: &Target,
    state: &State,
    holder: Option<String>,
    sinks: &Sinks,
) -> Result<Engine> {
    let cluster = t.provider.cluster_name().to_string();
    let (journal, plans, lock): (
        Arc<dyn JournalStore>,
        Arc<dyn PlanStore>,
        Arc<dyn ClusterLock>,
    ) = match state {
        State::Files(path) => {
            let mut lock = FileLock::new(&cluster, lock_path(path));
            if let Some(h) = &holder {
                lock = lock.as_holder(h);
            }
            (
                Arc::new(FileJournalStore::new(path.clone())),
                Arc::new(FilePlanStore::beside_journal(path)),
                Arc::new(lock),
            )
        }
        State::Cluster => {
            // Its own ConfigMaps (the upgrade's journal stays as the record of the upgrade),
            // under the cluster's one upgrade lock.
            let name = format!("{cluster}-rollback");
            (
                Arc::new(ConfigMapJournalStore::new(
                    t.kube.clone(),
                    STATE_NAMESPACE,
                    &name,
                )),
                Arc::new(ConfigMapPlanStore::new(
                    t.kube.clone(),
                    STATE_NAMESPACE,
                    &name,
                )),
                Arc::new(LeaseLock::new(
                    t.kube.clone(),
                    &cluster,
                    LeaseSettings {
                        holder,
                        ..LeaseSettings::default()
                    },
                )?),
            )
        }
    };
    Ok(Engine::builder(t.provider.clone())
        .kube(KubeCluster::from_config(t.kube_config.clone())?)
        .journal(journal)
        .plan_store(plans)
        .lock(lock)
        .events(sinks.fanout.clone())
        .options(EngineOptions::default())
        .build()?)
}

fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn restores(plan: &UpgradePlan) -> bool {
    plan.steps
        .iter()
        .any(|s| matches!(s.action, StepAction::Restore { .. }))
}

/// The rollback's journal file beside `backup` (kubeadm keeps backups on this machine).
fn beside_backup(backup: &BackupRecord, what: &str, cluster: &str) -> PathBuf {
    Path::new(&backup.location)
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(format!(
            "kup-{what}-{}.json",
            kup_engine::names::label_value(cluster)
        ))
}

/// An unfinished rollback in `state`, with its stored plan.
async fn unfinished(engine: &Engine, plans: Option<UpgradePlan>) -> Result<Option<UpgradePlan>> {
    let Some(journal) = engine.status().await? else {
        return Ok(None);
    };
    if !journal.state.is_unfinished() {
        return Ok(None);
    }
    Ok(plans.filter(|p| p.id == journal.plan_id && p.kind == PlanKind::Rollback))
}

async fn stored(state: &State, t: &Target) -> Result<Option<UpgradePlan>> {
    let store: Arc<dyn PlanStore> = match state {
        State::Files(path) => Arc::new(FilePlanStore::beside_journal(path)),
        State::Cluster => Arc::new(ConfigMapPlanStore::new(
            t.kube.clone(),
            STATE_NAMESPACE,
            &format!("{}-rollback", t.provider.cluster_name()),
        )),
    };
    Ok(store.load().await?)
}

/// `kup rollback`.
pub async fn rollback(cli: &Cli, t: &Target, a: &RollbackArgs) -> Result<()> {
    let sinks = Sinks::new(cli, &t.warnings)?;
    // An interrupted rollback in the file given resumes from it alone: a restore stopped
    // half-way leaves the API servers down, and with them the upgrade's journal when it is
    // kept in the cluster.
    if let Some(path) = &a.rollback_journal {
        let state = State::Files(path.clone());
        let engine = rollback_engine(t, &state, a.holder.clone(), &sinks)?;
        if let Some(plan) = unfinished(&engine, stored(&state, t).await?).await? {
            resuming(cli, &plan, &state);
            return run_plan(cli, &engine, sinks, &plan, a.dry_run, a.yes).await;
        }
    }
    // The upgrade being rolled back: its plan (where it started) and journal (its backups).
    let upgrade_run = RunArgs {
        journal: a.journal.clone(),
        plan: a.plan.clone(),
        ..RunArgs::default()
    };
    let upgrade = upgrade_engine(
        t,
        &upgrade_run,
        EngineOptions::default(),
        Arc::new(kup_core::NoEvents),
    )?;
    let journal = upgrade.status().await.map_err(|e| match e {
        kup_engine::Error::Kube(_) | kup_engine::Error::Api { .. } => CliError::Failed(format!(
            "cannot read the upgrade's journal from the cluster: {e}. If a rollback that \
             restores the control plane was interrupted, its API servers stay down until it \
             ends: resume it with --rollback-journal FILE (kup-rollback-{}.json beside the \
             backup)",
            kup_engine::names::label_value(t.provider.cluster_name())
        )),
        other => other.into(),
    })?;
    let upgrade_plan = match &a.plan {
        Some(path) => Some(read_plan_file(path)?),
        None => stored_plan(t, &upgrade_run)
            .await?
            .filter(|p| journal.as_ref().is_none_or(|j| j.plan_id == p.id)),
    }
    .filter(|p| p.kind == PlanKind::Upgrade);
    let backups = journal
        .as_ref()
        .map(|j| j.backups.clone())
        .unwrap_or_default();
    let backup = match &a.backup {
        Some(id) => Some(
            backups
                .iter()
                .find(|b| b.id == *id)
                .cloned()
                .ok_or_else(|| {
                    CliError::usage(
                        "--backup",
                        format!(
                            "no backup {id:?} in the upgrade's journal; it has: {}",
                            if backups.is_empty() {
                                "none".to_string()
                            } else {
                                backups
                                    .iter()
                                    .map(|b| b.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    )
                })?,
        ),
        // The first backup was taken where the upgrade started.
        None => backups.first().cloned(),
    };
    let caps = t.provider.capabilities();
    let state = match (&a.rollback_journal, &backup) {
        (Some(path), _) => State::Files(path.clone()),
        (None, Some(b))
            if caps.control_plane_rollback == kup_core::ControlPlaneRollback::RestoreBackup =>
        {
            State::Files(beside_backup(b, "rollback", t.provider.cluster_name()))
        }
        _ => State::Cluster,
    };
    let engine = rollback_engine(t, &state, a.holder.clone(), &sinks)?;
    // A rollback that was interrupted resumes with its own plan.
    let plan = match unfinished(&engine, stored(&state, t).await?).await? {
        Some(plan) => {
            resuming(cli, &plan, &state);
            plan
        }
        None => {
            let Some(upgrade_plan) = upgrade_plan else {
                return Err(CliError::usage(
                    "--plan",
                    "no upgrade plan to roll back is stored with the journal; pass the \
                     upgrade's plan file with --plan (and its journal with --journal)",
                ));
            };
            let live = t.provider.cluster().await?;
            let offer = t.provider.rollback_offer().await?;
            kup_core::plan_rollback(&RollbackRequest {
                cluster: &live,
                caps: &caps,
                offer: &offer,
                control_plane: upgrade_plan.from.clone(),
                pools: upgrade_plan.pools.clone(),
                backup,
            })?
        }
    };
    if restores(&plan) && matches!(state, State::Cluster) {
        return Err(CliError::usage(
            "--rollback-journal",
            "this rollback restores the control plane, so its journal must be a file on this \
             machine; give one with --rollback-journal",
        ));
    }
    if let State::Files(path) = &state
        && !a.dry_run
        && a.rollback_journal.is_none()
    {
        // Said before the run, when it can still be written down: after a crash mid-restore
        // the cluster cannot tell where this journal is.
        output::warn(
            cli,
            &[format!(
                "this rollback keeps its journal in {}; if it is interrupted, resume it with \
                 `kup rollback --rollback-journal {}`",
                path.display(),
                path.display()
            )],
        );
    }
    run_plan(cli, &engine, sinks, &plan, a.dry_run, a.yes).await
}

fn resuming(cli: &Cli, plan: &UpgradePlan, state: &State) {
    output::warn(
        cli,
        &[format!(
            "resuming the unfinished rollback {} recorded in {}",
            plan.id,
            engine_journal(state)
        )],
    );
}

fn engine_journal(state: &State) -> String {
    match state {
        State::Files(path) => format!("file {}", path.display()),
        State::Cluster => "the cluster's rollback ConfigMap".into(),
    }
}

/// Shows `plan`, dry-runs it or, once confirmed, runs it (resuming its journal when it holds
/// an unfinished run of it).
async fn run_plan(
    cli: &Cli,
    engine: &Engine,
    sinks: Sinks,
    plan: &UpgradePlan,
    dry_run: bool,
    yes: bool,
) -> Result<()> {
    if dry_run {
        let report = engine.dry_run(plan).await?;
        sinks.close().await;
        if matches!(cli.output, Format::Markdown | Format::Html) {
            let book = kup_engine::Runbook::for_plan(plan, None);
            return output::emit_document(
                cli.output,
                &book,
                || book.clone(),
                || book.to_markdown(),
            );
        }
        emit(cli.output, &report, || {
            format!("{plan}\n\n{}", report.to_table())
        })?;
        return if report.ok() {
            Ok(())
        } else {
            Err(CliError::Failed(report.all_problems().join("; ")))
        };
    }
    if !yes {
        if cli.output == Format::Table {
            println!("{plan}");
        }
        crate::commands::confirm_with(&format!(
            "Roll {} back to {} in {} steps{}?",
            plan.cluster,
            plan.target,
            plan.steps.len(),
            if restores(plan) {
                " (everything written to the cluster since the backup is lost)"
            } else {
                ""
            }
        ))?;
    }
    let cancel = cancel_on_ctrl_c(sinks.progress.clone());
    let result = engine.apply(plan, &cancel).await;
    sinks.close().await;
    finish_run(cli, result)
}

/// `kup restore`.
pub async fn restore(cli: &Cli, t: &Target, a: &RestoreArgs) -> Result<()> {
    let caps = t.provider.capabilities();
    if caps.control_plane_rollback != kup_core::ControlPlaneRollback::RestoreBackup {
        return Err(CliError::usage(
            "--provider",
            format!(
                "{} keeps its control plane's state itself; kup restores backups only where it \
                 takes them (kubeadm). To go back after an upgrade, see `kup rollback`",
                t.provider.kind()
            ),
        ));
    }
    let dir = a
        .backup_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("kup-backups"));
    let record_path = dir.join(format!("{}.db.json", a.backup));
    let text = std::fs::read_to_string(&record_path).map_err(|source| CliError::InputFile {
        field: "--backup".into(),
        path: record_path.display().to_string(),
        source,
    })?;
    let backup: BackupRecord = serde_json::from_str(&text).map_err(|e| {
        CliError::usage(
            "--backup",
            format!("{} is not a kup backup record: {e}", record_path.display()),
        )
    })?;
    let path = a
        .journal
        .clone()
        .unwrap_or_else(|| beside_backup(&backup, "restore", t.provider.cluster_name()));
    let state = State::Files(path);
    let sinks = Sinks::new(cli, &t.warnings)?;
    let engine = rollback_engine(t, &state, None, &sinks)?;
    let plan = match unfinished(&engine, stored(&state, t).await?).await? {
        Some(plan) => plan,
        None => {
            let live = t.provider.cluster().await?;
            let offer = kup_core::RollbackOffer::default();
            kup_core::plan_rollback(&RollbackRequest {
                cluster: &live,
                caps: &caps,
                offer: &offer,
                control_plane: backup.control_plane.clone(),
                pools: Default::default(),
                backup: Some(backup),
            })?
        }
    };
    run_plan(cli, &engine, sinks, &plan, a.dry_run, a.yes).await
}
