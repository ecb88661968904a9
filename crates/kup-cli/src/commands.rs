//! The subcommands that work on a real (or simulated) cluster.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use kup_core::{
    Event, EventSink, KubeVersion, Outcome, PlanError, PlanOptions, StuckDrainPolicy, UpgradePlan,
    UpgradeProvider,
};
use kup_engine::events::Fanout;
use kup_engine::journal::{
    ConfigMapJournalStore, ConfigMapPlanStore, FileJournalStore, FilePlanStore, JournalStore,
    PlanStore,
};
use kup_engine::lock::{LeaseLock, LeaseSettings};
use kup_engine::{Engine, EngineOptions, KubeCluster};
use kup_kube::drain::{DrainOptions, Drainer};
use kup_kube::preflight::{Preflight, PreflightInput, PreflightReport};
use kup_kube::validate::{Expectation, ValidationOptions, Validator};
use tokio_util::sync::CancellationToken;

use crate::args::{
    Cli, DrainArgs, EventsFormat, Format, PlanArgs, PreflightArgs, ReportArgs, RunArgs,
    UpgradeArgs, ValidateArgs,
};
use crate::error::{CliError, Result};
use crate::output::{self, JsonLines, Progress, Webhook, emit, table};
use crate::target::Target;

/// Namespace of the journal, plan and lease.
pub const STATE_NAMESPACE: &str = "kube-system";

/// Parses a version flag.
pub fn version_flag(field: &str, text: &str) -> Result<KubeVersion> {
    KubeVersion::parse(text).map_err(|e| CliError::usage(field, e.to_string()))
}

/// The event sinks the flags ask for, plus progress on the terminal for `-o table`.
pub struct Sinks {
    /// All of them.
    pub fanout: Arc<Fanout>,
    /// The terminal progress display, if any.
    pub progress: Option<Arc<Progress>>,
    webhook: Option<tokio::task::JoinHandle<()>>,
}

impl Sinks {
    /// Builds the sinks. `warnings` were already shown on stderr (see [`output::warn`]); they
    /// are sent to the webhook too.
    pub fn new(cli: &Cli, warnings: &[String]) -> Result<Self> {
        let mut fanout = Fanout::new();
        let mut progress = None;
        if cli.events == Some(EventsFormat::Json) {
            fanout = fanout.with(Arc::new(JsonLines));
        } else if cli.output == Format::Table {
            let p = Arc::new(Progress::new());
            fanout = fanout.with(p.clone());
            progress = Some(p);
        }
        let mut webhook = None;
        if let Some(url) = &cli.notify_url {
            let (hook, task) = Webhook::start(url)?;
            for message in warnings {
                hook.emit(Event::Warning {
                    message: message.clone(),
                });
            }
            fanout = fanout.with(Arc::new(hook));
            webhook = Some(task);
        }
        Ok(Self {
            fanout: Arc::new(fanout),
            progress,
            webhook,
        })
    }

    /// Waits (briefly) for the webhook to deliver what is queued.
    pub async fn close(self) {
        let Self {
            fanout, webhook, ..
        } = self;
        drop(fanout);
        if let Some(task) = webhook {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// `kup versions`.
pub async fn versions(cli: &Cli, t: &Target) -> Result<()> {
    let offered = t.provider.available_versions().await?;
    let current = t.provider.cluster().await?.control_plane;
    emit(cli.output, &offered, || {
        let rows: Vec<Vec<String>> = offered
            .iter()
            .map(|v| {
                vec![
                    format!(
                        "{}{}",
                        v.version,
                        if v.version.same_minor(&current) {
                            " (current)"
                        } else {
                            ""
                        }
                    ),
                    v.support.to_string(),
                    v.end_of_standard_support
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    v.end_of_extended_support
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    if v.default {
                        "yes".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        table(
            &[
                "VERSION",
                "SUPPORT",
                "END OF STANDARD",
                "END OF EXTENDED",
                "DEFAULT",
            ],
            &rows,
        )
    })
}

/// Plans to the `--to` version: a target the provider does not offer, or a downgrade, is a
/// bad `--to` (exit 2), not a failure.
pub async fn plan_to(
    provider: &dyn UpgradeProvider,
    to: &KubeVersion,
    options: PlanOptions,
) -> Result<UpgradePlan> {
    kup_engine::planning::plan_for(provider, to, options)
        .await
        .map_err(|e| match e {
            kup_engine::Error::Core(kup_core::Error::Plan(
                p @ (PlanError::Downgrade { .. } | PlanError::NotOffered { .. }),
            )) => CliError::usage("--to", p.to_string()),
            other => other.into(),
        })
}

fn plan_options(control_plane_only: bool, pools: &[String]) -> PlanOptions {
    PlanOptions {
        control_plane_only,
        pools: (!pools.is_empty()).then(|| pools.to_vec()),
        ..PlanOptions::default()
    }
}

/// `kup plan`.
pub async fn plan(cli: &Cli, t: &Target, a: &PlanArgs) -> Result<UpgradePlan> {
    let to = version_flag("--to", &a.to)?;
    let plan = plan_to(
        t.provider.as_ref(),
        &to,
        plan_options(a.control_plane_only, &a.pools),
    )
    .await?;
    if let Some(path) = &a.save {
        std::fs::write(path, plan.to_json()).map_err(|source| CliError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    if matches!(cli.output, Format::Markdown | Format::Html) {
        // The runbook ticks node by node where kup rolls them: it needs the nodes.
        let cluster = t.provider.cluster().await?;
        output::emit_document(
            cli.output,
            &plan,
            || kup_engine::Runbook::for_plan(&plan, Some(&cluster)),
            || plan.to_string(),
        )?;
    } else {
        emit(cli.output, &plan, || plan.to_string())?;
    }
    Ok(plan)
}

/// `kup preflight`.
pub async fn preflight(cli: &Cli, t: &Target, a: &PreflightArgs) -> Result<PreflightReport> {
    let current = t.provider.cluster().await?.control_plane;
    let to = match &a.to {
        Some(v) => version_flag("--to", v)?,
        None => current.next_minor(),
    };
    let cluster = t.provider.cluster().await?;
    // A provider that does not move the control plane has no plan to check; the cluster's own
    // tool moves it straight to the target, so the checks are against the target.
    let input = if t.provider.capabilities().control_plane_upgrade {
        let plan = plan_to(t.provider.as_ref(), &to, PlanOptions::default()).await?;
        PreflightInput::for_plan(&plan)
    } else {
        if to.minor_distance(&current) > 0 || (to.patch().is_some() && to < current) {
            return Err(CliError::usage(
                "--to",
                format!("{to} is older than the control plane's {current}"),
            ));
        }
        PreflightInput::new(to.clone())
    };
    let mut input = input
        .pools(cluster.node_pools.clone())
        .manifests(a.manifests.clone());
    input.helm_releases = !a.no_helm;
    let report = Preflight::new(t.kube.clone())
        .with_provider(t.provider.clone())
        .run(&input)
        .await?;
    emit(cli.output, &report, || report.to_table())?;
    if report.has_blockers() {
        return Err(CliError::Blocked(report.blockers().count()));
    }
    Ok(report)
}

/// Where the run's plan is kept: beside the journal file with `--journal`, else in ConfigMap
/// kube-system/kup-plan-<cluster> beside the journal's ConfigMap.
fn plan_store(t: &Target, run: &RunArgs) -> Arc<dyn PlanStore> {
    match &run.journal {
        Some(path) => Arc::new(FilePlanStore::beside_journal(path)),
        None => Arc::new(ConfigMapPlanStore::new(
            t.kube.clone(),
            STATE_NAMESPACE,
            t.provider.cluster_name(),
        )),
    }
}

pub(crate) fn read_plan_file(path: &std::path::Path) -> Result<UpgradePlan> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::InputFile {
        field: "--plan".into(),
        path: path.display().to_string(),
        source,
    })?;
    UpgradePlan::from_json(&text).map_err(|e| CliError::usage("--plan", e.to_string()))
}

/// The plan the run of `run`'s journal stored, if any.
pub(crate) async fn stored_plan(t: &Target, run: &RunArgs) -> Result<Option<UpgradePlan>> {
    Ok(plan_store(t, run).load().await?)
}

/// The plan to resume: `--plan`, else the one the run stored.
async fn load_plan(t: &Target, run: &RunArgs) -> Result<UpgradePlan> {
    if let Some(path) = &run.plan {
        return read_plan_file(path);
    }
    let store = plan_store(t, run);
    store.load().await?.ok_or_else(|| {
        CliError::usage(
            "--plan",
            format!(
                "no stored plan in {}; pass the plan file with --plan",
                store.describe()
            ),
        )
    })
}

/// How nodes are drained: the engine's drain with the `--drain-timeout` of `run`; providers
/// that drain nodes themselves (kubeadm's control-plane nodes) get the same.
pub fn drain_options(run: Option<&RunArgs>) -> Result<DrainOptions> {
    let Some(run) = run else {
        return Ok(EngineOptions::default().drain);
    };
    let options = engine_options(run)?;
    let mut drain = options.drain.clone();
    drain.timeout = options.pool_defaults.drain_timeout;
    Ok(drain)
}

/// `--on-stuck-drain` (fail unless given).
pub fn stuck_drain_policy(run: Option<&RunArgs>) -> Result<StuckDrainPolicy> {
    match run.and_then(|r| r.on_stuck_drain.as_deref()) {
        None => Ok(StuckDrainPolicy::default()),
        Some(p) => p.parse::<StuckDrainPolicy>().map_err(|_| {
            CliError::usage(
                "--on-stuck-drain",
                format!("{p:?}; accepted: fail, cordon-and-continue"),
            )
        }),
    }
}

/// Engine options from run flags.
pub fn engine_options(run: &RunArgs) -> Result<EngineOptions> {
    let mut o = EngineOptions {
        overrides: run.override_findings.clone(),
        ..EngineOptions::default()
    };
    if let Some(m) = &run.max_unavailable {
        kup_engine::parse_max_unavailable("--max-unavailable", m, 100)
            .map_err(|e| CliError::usage("--max-unavailable", e.to_string()))?;
        o.pool_defaults.provider.max_unavailable = Some(m.clone());
    }
    if let Some(d) = &run.drain_timeout {
        o.pool_defaults.drain_timeout = Some(output::parse_duration("--drain-timeout", d)?);
    }
    o.pool_defaults.on_stuck_drain = stuck_drain_policy(Some(run))?;
    o.validate()
        .map_err(|e| CliError::usage("options", e.to_string()))?;
    Ok(o)
}

/// An engine on `t` with the journal and lock the flags select.
pub fn engine(
    t: &Target,
    run: &RunArgs,
    options: EngineOptions,
    events: Arc<dyn EventSink>,
) -> Result<Engine> {
    let cluster = t.provider.cluster_name().to_string();
    let journal: Arc<dyn JournalStore> = match &run.journal {
        Some(path) => Arc::new(FileJournalStore::new(path.clone())),
        None => Arc::new(ConfigMapJournalStore::new(
            t.kube.clone(),
            STATE_NAMESPACE,
            &cluster,
        )),
    };
    let lock = LeaseLock::new(
        t.kube.clone(),
        &cluster,
        LeaseSettings {
            holder: run.holder.clone(),
            ..LeaseSettings::default()
        },
    )?;
    Ok(Engine::builder(t.provider.clone())
        .kube(KubeCluster::from_config(t.kube_config.clone())?)
        .journal(journal)
        .plan_store(plan_store(t, run))
        .lock(Arc::new(lock))
        .events(events)
        .options(options)
        .build()?)
}

fn confirm(plan: &UpgradePlan) -> Result<()> {
    confirm_with(&format!(
        "Upgrade {} from {} to {} in {} steps?",
        plan.cluster,
        plan.from,
        plan.target,
        plan.steps.len()
    ))
}

/// Asks `question` on the terminal; only `yes` goes ahead. Off a terminal, `--yes` is needed.
pub(crate) fn confirm_with(question: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "--yes",
            "this command changes the cluster; pass --yes to confirm when not on a terminal",
        ));
    }
    eprint!("{question} Type 'yes' to continue: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(CliError::Declined)
    }
}

pub(crate) fn cancel_on_ctrl_c(progress: Option<Arc<Progress>>) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            if let Some(p) = progress {
                p.line("interrupted: stopping at the next safe point (the journal stays accurate)");
            }
            t.cancel();
        }
    });
    token
}

/// `kup upgrade`.
pub async fn upgrade(cli: &Cli, t: &Target, a: &UpgradeArgs) -> Result<()> {
    let options = engine_options(&a.run)?;
    upgrade_with(cli, t, a, options).await
}

/// `kup upgrade` with engine options already built.
pub async fn upgrade_with(
    cli: &Cli,
    t: &Target,
    a: &UpgradeArgs,
    options: EngineOptions,
) -> Result<()> {
    let plan = match (&a.run.plan, &a.to) {
        (Some(path), _) => read_plan_file(path)?,
        (None, Some(to)) => {
            let to = version_flag("--to", to)?;
            plan_to(
                t.provider.as_ref(),
                &to,
                plan_options(a.control_plane_only, &a.pools),
            )
            .await?
        }
        (None, None) => return Err(CliError::usage("--to", "is required (or --plan FILE)")),
    };
    let sinks = Sinks::new(cli, &t.warnings)?;
    let engine = engine(t, &a.run, options, sinks.fanout.clone())?;
    if a.dry_run {
        let report = engine.dry_run(&plan).await?;
        sinks.close().await;
        emit(cli.output, &report, || report.to_table())?;
        return if report.ok() {
            Ok(())
        } else {
            Err(CliError::Failed(report.all_problems().join("; ")))
        };
    }
    if !a.yes {
        if cli.output == Format::Table {
            println!("{plan}");
        }
        confirm(&plan)?;
    }
    // The engine stores the plan once it holds the lock and the journal lets the run start.
    let cancel = cancel_on_ctrl_c(sinks.progress.clone());
    let result = engine.run(&plan, &cancel).await;
    sinks.close().await;
    finish_run(cli, result)
}

pub(crate) fn finish_run(
    cli: &Cli,
    result: kup_engine::Result<kup_engine::RunReport>,
) -> Result<()> {
    let report = result?;
    let outcome = report.outcome;
    emit(cli.output, &report, || {
        let rows: Vec<Vec<String>> = report
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.index.to_string(),
                    format!("{:?}", s.outcome),
                    s.message.clone(),
                ]
            })
            .collect();
        let mut t = table(&["STEP", "OUTCOME", "MESSAGE"], &rows);
        for n in &report.left_cordoned {
            t.push_str(&format!(
                "\nleft cordoned: {} ({})",
                n.node,
                n.reason.clone().unwrap_or_default()
            ));
        }
        t
    })?;
    match outcome {
        Outcome::Succeeded | Outcome::Skipped => Ok(()),
        other => Err(CliError::Failed(format!(
            "the run ended {other:?}; `kup status` shows where"
        ))),
    }
}

/// `kup resume`.
pub async fn resume(cli: &Cli, t: &Target, run: &RunArgs) -> Result<()> {
    let plan = load_plan(t, run).await?;
    let sinks = Sinks::new(cli, &t.warnings)?;
    let engine = engine(t, run, engine_options(run)?, sinks.fanout.clone())?;
    let cancel = cancel_on_ctrl_c(sinks.progress.clone());
    let result = engine.resume(&plan, &cancel).await;
    sinks.close().await;
    finish_run(cli, result)
}

/// `kup status`.
pub async fn status(cli: &Cli, t: &Target) -> Result<()> {
    let run = RunArgs::default();
    let engine = engine(
        t,
        &run,
        EngineOptions::default(),
        Arc::new(kup_core::NoEvents),
    )?;
    match engine.status().await? {
        None => {
            let empty: BTreeMap<String, String> = BTreeMap::new();
            emit(cli.output, &empty, || {
                format!("no upgrade recorded for {}", t.provider.cluster_name())
            })
        }
        Some(journal) => emit(cli.output, &journal, || journal.to_table()),
    }
}

/// `kup report`: the last run as the change-review document. Markdown unless `-o` says
/// otherwise (`table` is the Markdown document too).
pub async fn report(cli: &Cli, t: &Target, a: &ReportArgs) -> Result<()> {
    let run = RunArgs {
        journal: a.journal.clone(),
        plan: a.plan.clone(),
        ..RunArgs::default()
    };
    let engine = engine(
        t,
        &run,
        EngineOptions::default(),
        Arc::new(kup_core::NoEvents),
    )?;
    let Some(journal) = engine.status().await? else {
        return Err(CliError::usage(
            "--journal",
            format!(
                "no upgrade recorded for {}; a report is made from a run's journal",
                t.provider.cluster_name()
            ),
        ));
    };
    // The plan adds the rollback steps and the backup prerequisite; a run whose plan is gone
    // is still reported from the journal alone.
    let plan = match &a.plan {
        Some(path) => Some(read_plan_file(path)?),
        None => plan_store(t, &run)
            .load()
            .await?
            .filter(|p| p.id == journal.plan_id),
    };
    let book = kup_engine::Runbook::for_run(&journal, plan.as_ref());
    let format = match cli.output {
        Format::Table => Format::Markdown,
        other => other,
    };
    output::emit_document(format, &book, || book.clone(), || book.to_markdown())
}

/// `kup drain`.
pub async fn drain(cli: &Cli, kube: kube::Client, a: &DrainArgs) -> Result<()> {
    let opts = DrainOptions {
        ignore_daemonsets: a.ignore_daemonsets,
        delete_emptydir_data: a.delete_emptydir_data,
        force: a.force,
        grace_period: a.grace_period,
        timeout: a
            .timeout
            .as_deref()
            .map(|t| output::parse_duration("--timeout", t))
            .transpose()?,
        pod_selector: a.pod_selector.clone(),
        dry_run: a.dry_run,
        disable_eviction: a.disable_eviction,
        ..DrainOptions::default()
    };
    let progress = (cli.output == Format::Table).then(|| Arc::new(Progress::new()));
    let sink: Arc<dyn EventSink> = match (&progress, cli.events) {
        (_, Some(EventsFormat::Json)) => Arc::new(JsonLines),
        (Some(p), None) => p.clone(),
        (None, None) => Arc::new(kup_core::NoEvents),
    };
    let report = Drainer::new(kube)
        .drain(&a.node, &opts, sink.as_ref())
        .await;
    if let Some(p) = &progress {
        p.finish();
    }
    let report = report?;
    emit(cli.output, &report, || format!("node/{} drained", a.node))
}

/// `kup uncordon`.
pub async fn uncordon(cli: &Cli, kube: kube::Client, node: &str) -> Result<()> {
    let changed = Drainer::new(kube).uncordon(node).await?;
    let value = serde_json::json!({ "node": node, "changed": changed });
    emit(cli.output, &value, || {
        if changed {
            format!("node/{node} uncordoned")
        } else {
            format!("node/{node} already schedulable")
        }
    })
}

/// `kup validate`.
pub async fn validate(cli: &Cli, t: &Target, a: &ValidateArgs) -> Result<()> {
    let cluster = t.provider.cluster().await?;
    let mut expectation = Expectation::new(cluster.control_plane.clone());
    for pool in &cluster.node_pools {
        expectation = expectation.pool(pool, pool.version.clone());
    }
    let options = ValidationOptions {
        passes: a.passes.max(1),
        timeout: output::parse_duration("--timeout", &a.timeout)?,
        ..ValidationOptions::default()
    };
    let progress = Progress::new();
    let report = Validator::new(t.kube.clone())
        .run(&expectation, &options, &progress)
        .await?;
    progress.finish();
    emit(cli.output, &report, || report.to_table())?;
    if report.passed {
        Ok(())
    } else {
        Err(CliError::Failed("validation failed".into()))
    }
}

/// `kup backup` (kubeadm).
pub async fn backup(
    cli: &Cli,
    provider: &dyn UpgradeProvider,
    destination: Option<std::path::PathBuf>,
) -> Result<()> {
    let record = provider
        .backup(&kup_core::BackupOptions { destination })
        .await?;
    emit(cli.output, &record, || {
        format!(
            "backup {} verified: {} ({} bytes)",
            record.id, record.location, record.size_bytes
        )
    })
}
