//! [`Engine`]: executes an [`UpgradePlan`] through an [`UpgradeProvider`] and the cluster
//! operations, journaled, locked and observable.

mod context;
mod journal_handle;
pub(crate) mod operation;
mod resume;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use kup_core::{
    BackupRecord, ClusterInfo, Event, EventSink, NoEvents, Outcome, PoolManagement, SkewPolicy,
    StepAction, UpgradePlan, UpgradeProvider,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub(crate) use context::RunContext;

/// How a step ended when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    /// It changed or checked something.
    Done(String),
    /// Nothing needed doing.
    Skipped(String),
}

use self::context::PreflightPassed;
use self::journal_handle::JournalHandle;
use crate::backoff::retry;
use crate::error::{Error, Result};
use crate::journal::{
    Journal, JournalStore, NodePhase, NodeRecord, PlanStore, RunState, StepState, short,
};
use crate::lock::{ClusterLock, LockWatch};
use crate::ops::{ClusterValidator, KubeCluster, NodeOps, PreflightRunner};
use crate::options::EngineOptions;
use crate::steps::{self, Decision, Facts, RuleInputs};

/// How one step of a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Its index in the plan.
    pub index: usize,
    /// What it does.
    pub description: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What it did or why it was skipped.
    pub message: String,
}

/// What a finished run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The plan's id.
    pub plan_id: String,
    /// The cluster.
    pub cluster: String,
    /// `Succeeded`, or `Skipped` when a resumed journal had already finished.
    pub outcome: Outcome,
    /// Runs of this journal so far, this one included.
    pub attempts: u32,
    /// Every step of this run.
    pub steps: Vec<StepReport>,
    /// Backups taken by this journal's runs.
    pub backups: Vec<BackupRecord>,
    /// Nodes left cordoned on purpose after stuck drains (not upgraded).
    pub left_cordoned: Vec<NodeRecord>,
}

/// Whether a run starts afresh or continues a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Fresh,
    Resume,
    /// Resume an unfinished run of the same plan, else start afresh.
    Apply,
}

/// Executes upgrade plans against one cluster. Build one with [`Engine::builder`].
pub struct Engine {
    pub(crate) provider: Arc<dyn UpgradeProvider>,
    pub(crate) nodes: Arc<dyn NodeOps>,
    pub(crate) validator: Arc<dyn ClusterValidator>,
    pub(crate) preflight: Arc<dyn PreflightRunner>,
    pub(crate) journal: Arc<dyn JournalStore>,
    pub(crate) plan_store: Option<Arc<dyn PlanStore>>,
    pub(crate) lock: Arc<dyn ClusterLock>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) options: EngineOptions,
    /// Backups this value took, by plan and step: a provider trusts only its own (see the
    /// backup step).
    backups_taken: Mutex<BTreeSet<(String, usize)>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("provider", &self.provider)
            .field("journal", &self.journal)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    provider: Arc<dyn UpgradeProvider>,
    nodes: Option<Arc<dyn NodeOps>>,
    validator: Option<Arc<dyn ClusterValidator>>,
    preflight: Option<Arc<dyn PreflightRunner>>,
    journal: Option<Arc<dyn JournalStore>>,
    plan_store: Option<Arc<dyn PlanStore>>,
    lock: Option<Arc<dyn ClusterLock>>,
    events: Arc<dyn EventSink>,
    options: EngineOptions,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Node operations, validation and pre-flight through the Kubernetes API.
    pub fn kube(self, cluster: KubeCluster) -> Self {
        let cluster = Arc::new(cluster);
        self.node_ops(cluster.clone())
            .validator(cluster.clone())
            .preflight(cluster)
    }

    /// Node operations.
    pub fn node_ops(mut self, nodes: Arc<dyn NodeOps>) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// Validation.
    pub fn validator(mut self, validator: Arc<dyn ClusterValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Pre-flight checks.
    pub fn preflight(mut self, preflight: Arc<dyn PreflightRunner>) -> Self {
        self.preflight = Some(preflight);
        self
    }

    /// Where the journal is kept.
    pub fn journal(mut self, store: Arc<dyn JournalStore>) -> Self {
        self.journal = Some(store);
        self
    }

    /// Where the run's plan is kept for a later resume (optional). The plan is saved only
    /// once the run holds the lock and the journal lets it start, right before the run's first
    /// journal write, so a refused run never replaces the plan of an unfinished one.
    pub fn plan_store(mut self, store: Arc<dyn PlanStore>) -> Self {
        self.plan_store = Some(store);
        self
    }

    /// The cluster lock.
    pub fn lock(mut self, lock: Arc<dyn ClusterLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Where events go (default: nowhere).
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Options.
    pub fn options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks the options and that every part is set; errors name what is missing or wrong.
    pub fn build(self) -> Result<Engine> {
        let missing = |what: &str, how: &str| {
            Error::invalid_input(what, format!("not set; give one with EngineBuilder::{how}"))
        };
        self.options.validate()?;
        let caps = self.provider.capabilities();
        if !self.options.drain_ahead.is_empty() && !caps.node_upgrade {
            return Err(Error::invalid_input(
                "drain_ahead",
                format!(
                    "{} cannot upgrade single nodes, so kup cannot drain its pools ahead of it; \
                     leave drain_ahead empty for this provider",
                    self.provider.kind()
                ),
            ));
        }
        Ok(Engine {
            nodes: self
                .nodes
                .ok_or_else(|| missing("node_ops", "kube or node_ops"))?,
            validator: self
                .validator
                .ok_or_else(|| missing("validator", "kube or validator"))?,
            preflight: self
                .preflight
                .ok_or_else(|| missing("preflight", "kube or preflight"))?,
            journal: self.journal.ok_or_else(|| missing("journal", "journal"))?,
            plan_store: self.plan_store,
            lock: self.lock.ok_or_else(|| missing("lock", "lock"))?,
            provider: self.provider,
            events: self.events,
            options: self.options,
            backups_taken: Mutex::new(BTreeSet::new()),
        })
    }
}

impl Engine {
    /// Starts building an engine for the cluster `provider` is bound to.
    pub fn builder(provider: Arc<dyn UpgradeProvider>) -> EngineBuilder {
        EngineBuilder {
            provider,
            nodes: None,
            validator: None,
            preflight: None,
            journal: None,
            plan_store: None,
            lock: None,
            events: Arc::new(NoEvents),
            options: EngineOptions::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The journal as stored (`kup status`), `None` when there is none.
    pub async fn status(&self) -> Result<Option<Journal>> {
        self.journal.load().await
    }

    /// Executes `plan` from its first step, under the cluster lock, with a new journal.
    ///
    /// Refuses at once when another run holds the lock ([`Error::LockHeld`], naming the
    /// holder) or when the journal holds an unfinished run that changed something
    /// ([`Error::UnfinishedRun`]; resume it instead). A run that pre-flight stopped changed
    /// nothing and is simply replaced. Stops at the next safe point when `cancel` is cancelled.
    pub async fn run(&self, plan: &UpgradePlan, cancel: &CancellationToken) -> Result<RunReport> {
        self.execute(plan, cancel, Mode::Fresh).await
    }

    /// Continues the run recorded in the journal: finished steps are skipped, operations in
    /// flight are polled again, nodes kup cordoned are taken up where they stood. Refuses,
    /// saying why, when the journal belongs to another plan or the cluster moved in a way
    /// the journal cannot account for ([`Error::ResumeRefused`]).
    pub async fn resume(
        &self,
        plan: &UpgradePlan,
        cancel: &CancellationToken,
    ) -> Result<RunReport> {
        self.execute(plan, cancel, Mode::Resume).await
    }

    /// Resumes the journal when it holds an unfinished run of this plan, else starts a run:
    /// what a rerun after a crash should call (a crash can come before the first journal
    /// write). An unfinished run of another plan is refused as by [`Engine::run`].
    pub async fn apply(&self, plan: &UpgradePlan, cancel: &CancellationToken) -> Result<RunReport> {
        self.execute(plan, cancel, Mode::Apply).await
    }

    /// The cluster as the provider reports it, or `None` when it cannot be read because
    /// the journal's restore is in flight: the restore stopped the API servers and only
    /// running it to its end brings them back. Other failures to read are errors.
    async fn live_unless_restoring(
        &self,
        plan: &UpgradePlan,
        journal: Option<&Journal>,
    ) -> Result<Option<ClusterInfo>> {
        let Some(restoring) = journal.and_then(|j| j.restore_in_flight(plan)) else {
            return self.read_cluster().await.map(Some);
        };
        // One try: the API servers are down for as long as the restore is unfinished, so
        // retrying would only wait for nothing.
        match self.provider.cluster().await {
            Ok(live) => Ok(Some(live)),
            Err(e) if crate::error::core_transient(&e) => {
                tracing::warn!(
                    error = %e,
                    step = restoring,
                    "the cluster cannot be read while the interrupted restore is unfinished; \
                     resuming the restore from the journal"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn read_cluster(&self) -> Result<ClusterInfo> {
        retry(&self.options.polling, || async {
            self.provider.cluster().await.map_err(Error::from)
        })
        .await
    }

    pub(crate) fn remember_backup(&self, plan_id: &str, index: usize) {
        self.backups_taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((plan_id.to_string(), index));
    }

    /// What the step rules know besides the cluster and the journal.
    pub(crate) fn rule_inputs<'a>(&'a self, plan: &'a UpgradePlan) -> RuleInputs<'a> {
        let caps = self.provider.capabilities();
        RuleInputs {
            plan,
            provider: self.provider.kind(),
            policy: SkewPolicy::for_provider(&caps),
            caps,
            drain_ahead: &self.options.drain_ahead,
            backups_taken: self
                .backups_taken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(id, _)| *id == plan.id)
                .map(|(_, index)| *index)
                .collect(),
        }
    }

    /// Checks that the plan is for this provider's cluster, keeps the plan rules (however it
    /// was made: planned, loaded or built in code), and asks only what the provider can do,
    /// with pool options it can honour. Nothing is read or written before this passes.
    pub(crate) fn check_plan(&self, plan: &UpgradePlan) -> Result<()> {
        let caps = self.provider.capabilities();
        plan.validate_for(&caps)?;
        if plan.provider != self.provider.kind() {
            return Err(Error::invalid_input(
                "plan.provider",
                format!(
                    "the plan is for {}, but the engine drives {}",
                    plan.provider,
                    self.provider.kind()
                ),
            ));
        }
        if plan.cluster != self.provider.cluster_name() {
            return Err(Error::invalid_input(
                "plan.cluster",
                format!(
                    "the plan is for cluster {:?}, but the provider is bound to {:?}",
                    plan.cluster,
                    self.provider.cluster_name()
                ),
            ));
        }
        if plan
            .steps
            .iter()
            .any(|s| matches!(s.action, StepAction::Restore { .. }))
        {
            // A restore stops the API servers and puts back etcd as it was at the backup:
            // a journal or lock kept in the cluster would be lost mid-step, then rewound.
            if self.journal.in_cluster() {
                return Err(Error::invalid_input(
                    "journal",
                    format!(
                        "this plan restores the control plane, which rewinds everything stored \
                         in the cluster, {} included; keep the journal outside the cluster (a \
                         journal file: FileJournalStore, `--journal FILE`)",
                        self.journal.describe()
                    ),
                ));
            }
            if self.lock.in_cluster() {
                return Err(Error::invalid_input(
                    "lock",
                    format!(
                        "this plan restores the control plane, which stops the API servers that \
                         keep {}; use a lock outside the cluster (FileLock)",
                        self.lock.describe()
                    ),
                ));
            }
        }
        let planned: BTreeSet<&str> = plan.pools.keys().map(String::as_str).collect();
        for pool in &self.options.drain_ahead {
            if !planned.contains(pool.as_str()) {
                return Err(Error::invalid_input(
                    "drain_ahead",
                    format!(
                        "unknown node pool {pool:?}; the plan's pools are: {}",
                        planned.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        for pool in self.options.pools.keys() {
            if !planned.contains(pool.as_str()) {
                return Err(Error::invalid_input(
                    format!("pools.{pool}"),
                    format!(
                        "unknown node pool {pool:?}; the plan's pools are: {}",
                        planned.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        // Pools the provider rolls get the provider-facing options: refuse what it cannot
        // honour, naming the option (`pools.apps.max_surge`, or `pool_defaults…`).
        for step in plan.pool_upgrades() {
            let StepAction::NodePool {
                pool, management, ..
            } = &step.action
            else {
                continue;
            };
            if *management != PoolManagement::Provider || self.options.drain_ahead.contains(pool) {
                continue;
            }
            let field = if self.options.pools.contains_key(pool) {
                format!("pools.{pool}")
            } else {
                "pool_defaults".to_string()
            };
            caps.check_pool_options(
                &self.provider.kind(),
                &field,
                &self.options.pool(pool).provider,
            )?;
        }
        Ok(())
    }

    async fn execute(
        &self,
        plan: &UpgradePlan,
        cancel: &CancellationToken,
        mode: Mode,
    ) -> Result<RunReport> {
        self.check_plan(plan)?;
        // Read-only until the run is known to go ahead: a run refused for any reason (done
        // already, lock held, journal of another run, provider busy, pre-flight blockers)
        // writes nothing — no journal, no stored plan, no Lease.
        let existing = self.journal.load().await?;
        if let Some(done) = existing.as_ref().filter(|j| j.completes(plan)) {
            return Ok(self.already_done(done));
        }
        if let Some(info) = self.lock.holder().await?
            && !info.expired
            && info.holder != self.lock.identity()
        {
            return Err(self.lock.held_error(&plan.cluster, info));
        }
        let live = self.live_unless_restoring(plan, existing.as_ref()).await?;
        let prepared = self.prepare(plan, existing.clone(), mode, live.as_ref())?;
        self.events.emit(Event::RunStarted {
            plan_id: plan.id.clone(),
            cluster: plan.cluster.clone(),
            dry_run: false,
        });
        let gate = match self
            .preflight_gate(plan, &prepared, live.as_ref(), cancel)
            .await
        {
            Ok(gate) => gate,
            Err(e) => {
                self.events.emit(Event::RunFinished {
                    outcome: if matches!(e, Error::Cancelled { .. }) {
                        Outcome::Cancelled
                    } else {
                        Outcome::Failed
                    },
                    message: e.to_string(),
                });
                return Err(e);
            }
        };
        let guard = self.lock.acquire().await?;
        let result = self
            .execute_locked(plan, cancel, mode, guard.watch(), existing, gate)
            .await;
        match &result {
            // Not ours any more (or someone else writes): leave the lease alone.
            Err(Error::LockLost { .. } | Error::JournalConflict { .. }) => drop(guard),
            _ => {
                if let Err(e) = guard.release().await {
                    tracing::warn!(error = %e, "could not release the cluster lock; it expires on its own");
                }
            }
        }
        result
    }

    /// The report for a plan whose journal says it succeeded: nothing to do, nothing written.
    fn already_done(&self, journal: &Journal) -> RunReport {
        self.events.emit(Event::RunFinished {
            outcome: Outcome::Skipped,
            message: format!(
                "plan {} already done on cluster {} (journal in {}); nothing to do",
                journal.plan_id,
                journal.cluster,
                self.journal.describe()
            ),
        });
        RunReport {
            plan_id: journal.plan_id.clone(),
            cluster: journal.cluster.clone(),
            outcome: Outcome::Skipped,
            attempts: journal.attempts,
            steps: Vec::new(),
            backups: journal.backups.clone(),
            left_cordoned: journal.left_cordoned().cloned().collect(),
        }
    }

    /// The journal this run continues or starts, from the stored one: refuses a fresh run
    /// over an unfinished one that changed something, and a resume the journal cannot
    /// account for (only its plan and cluster when `live` is `None`: the cluster could not be
    /// read during a restore). Pure: nothing is written.
    pub(crate) fn prepare(
        &self,
        plan: &UpgradePlan,
        existing: Option<Journal>,
        mode: Mode,
        live: Option<&ClusterInfo>,
    ) -> Result<Journal> {
        let mode = match (mode, &existing) {
            (Mode::Apply, Some(j))
                if j.state.is_unfinished() && j.has_progress() && j.plan_id == plan.id =>
            {
                Mode::Resume
            }
            (Mode::Apply, _) => Mode::Fresh,
            (m, _) => m,
        };
        let identity = self.lock.identity();
        match mode {
            Mode::Fresh => match existing {
                Some(j) if j.state.is_unfinished() && j.has_progress() => {
                    Err(Error::UnfinishedRun {
                        plan_id: j.plan_id,
                        state: j.state.to_string(),
                        store: self.journal.describe(),
                    })
                }
                previous => {
                    let mut j = Journal::new(plan, identity);
                    // Nodes an earlier run left cordoned on purpose keep their record of
                    // whether they were cordoned before; this run retries them.
                    if let Some(previous) = previous.filter(|p| p.cluster == plan.cluster) {
                        j.nodes = previous
                            .nodes
                            .into_iter()
                            .filter(|n| n.phase == NodePhase::LeftCordoned)
                            .map(|mut n| {
                                n.attempt = 0;
                                n
                            })
                            .collect();
                    }
                    Ok(j)
                }
            },
            Mode::Resume | Mode::Apply => {
                let Some(j) = existing else {
                    return Err(Error::ResumeRefused {
                        reason: format!(
                            "there is no journal in {}; nothing to resume (start a run instead)",
                            self.journal.describe()
                        ),
                    });
                };
                match live {
                    Some(live) => resume::check_resume(&j, plan, live)?,
                    None => resume::check_same_run(&j, plan)?,
                }
                Ok(j)
            }
        }
    }

    /// Runs the plan's leading pre-flight step before anything is written, so that blockers
    /// and a busy provider refuse the run with nothing changed. Returns the step and its
    /// summary when it ran and passed, for the run to record. Without the cluster (a restore
    /// in flight) there is nothing to check it against: the step runs in order.
    async fn preflight_gate(
        &self,
        plan: &UpgradePlan,
        journal: &Journal,
        live: Option<&ClusterInfo>,
        cancel: &CancellationToken,
    ) -> Result<Option<PreflightPassed>> {
        let Some(live) = live else {
            return Ok(None);
        };
        let Some(step) = plan
            .steps
            .first()
            .filter(|s| matches!(s.action, StepAction::Preflight { .. }))
        else {
            return Ok(None);
        };
        let StepAction::Preflight { target } = &step.action else {
            return Ok(None);
        };
        let inputs = self.rule_inputs(plan);
        match steps::decide_in_plan(plan, step, &Facts::from_live(live), journal, &inputs) {
            Decision::Skip(_) => Ok(None),
            Decision::Refuse(e) => Err(e),
            Decision::Run => {
                let report = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        return Err(Error::Cancelled { at: "pre-flight".into() });
                    }
                    report = self.run_preflight(plan, target, live, journal) => report?,
                };
                let findings = report.findings.findings.clone();
                Ok(Some((
                    step.index,
                    steps::preflight_verdict(&report)?,
                    findings,
                )))
            }
        }
    }

    async fn execute_locked(
        &self,
        plan: &UpgradePlan,
        cancel: &CancellationToken,
        mode: Mode,
        lock: LockWatch,
        before: Option<Journal>,
        gate: Option<PreflightPassed>,
    ) -> Result<RunReport> {
        // Read again under the lock: another run may have written between the first read
        // and the lock. Then the gate's verdict is stale and the step runs in order.
        let existing = self.journal.load().await?;
        let gate = gate.filter(|_| existing == before);
        let live = self.live_unless_restoring(plan, existing.as_ref()).await?;
        if let Some(done) = existing.as_ref().filter(|j| j.completes(plan)) {
            return Ok(self.already_done(done));
        }
        let restoring = match live {
            None => existing.as_ref().and_then(|j| j.restore_in_flight(plan)),
            Some(_) => None,
        };
        let mut journal = self.prepare(plan, existing, mode, live.as_ref())?;
        journal.attempts += 1;
        journal.state = RunState::Running;
        journal.holder = self.lock.identity().to_string();
        if let Some((_, _, findings)) = &gate {
            journal.set_findings(findings);
        }
        let attempt = journal.attempts;
        // The plan is stored only now that the lock is held and the journal checks passed.
        if let Some(store) = &self.plan_store {
            store.save(plan).await?;
        }
        let handle = JournalHandle::new(self.journal.clone(), journal);
        handle.update(|_| ()).await?;
        let ctx = RunContext {
            engine: self,
            plan,
            events: handle.recording(self.events.clone()),
            journal: handle,
            cancel: cancel.clone(),
            lock,
            attempt,
            started: jiff::Timestamp::now(),
            preflight_passed: gate,
            restoring,
        };
        let result = self.run_steps(&ctx).await;
        self.finish(&ctx, result).await
    }

    async fn run_steps(&self, ctx: &RunContext<'_>) -> Result<Vec<StepReport>> {
        let mut reports = Vec::new();
        for step in &ctx.plan.steps {
            ctx.checkpoint(&format!("before step {}", step.index))?;
            let recorded = ctx
                .journal
                .read(|j| j.step(step.index).map(|s| s.state))
                .await
                .unwrap_or(StepState::Pending);
            let description = step.action.to_string();
            ctx.emit(Event::StepStarted {
                step: step.index,
                description: description.clone(),
            });
            if !recorded.is_done() {
                ctx.journal
                    .update(|j| {
                        if let Some(s) = j.step_mut(step.index) {
                            s.state = StepState::Running;
                            s.started_at = Some(jiff::Timestamp::now());
                            s.finished_at = None;
                        }
                    })
                    .await?;
            }
            let result = ctx.execute(step).await;
            let (state, outcome, message) = match result {
                Ok(StepOutcome::Done(m)) => (StepState::Succeeded, Outcome::Succeeded, m),
                Ok(StepOutcome::Skipped(m)) => {
                    let state = if recorded == StepState::Succeeded {
                        StepState::Succeeded
                    } else {
                        StepState::Skipped
                    };
                    (state, Outcome::Skipped, m)
                }
                Err(e) => {
                    let stopped = matches!(e, Error::Cancelled { .. } | Error::LockLost { .. });
                    let writable =
                        !matches!(e, Error::LockLost { .. } | Error::JournalConflict { .. });
                    if writable {
                        let message = short(e.to_string());
                        let write = ctx
                            .journal
                            .update(|j| {
                                if let Some(s) = j.step_mut(step.index) {
                                    // A cancelled step is still in progress: resume continues it.
                                    s.state = if stopped {
                                        StepState::Running
                                    } else {
                                        StepState::Failed
                                    };
                                    s.message = Some(message);
                                }
                            })
                            .await;
                        if let Err(w) = write {
                            tracing::warn!(error = %w, "could not record the step's failure");
                        }
                    }
                    ctx.emit(Event::StepFinished {
                        step: step.index,
                        outcome: if stopped {
                            Outcome::Cancelled
                        } else {
                            Outcome::Failed
                        },
                        message: e.to_string(),
                    });
                    return Err(e);
                }
            };
            let short_message = short(message.clone());
            ctx.journal
                .update(|j| {
                    if let Some(s) = j.step_mut(step.index) {
                        s.state = state;
                        s.finished_at = Some(jiff::Timestamp::now());
                        s.message = Some(short_message);
                    }
                })
                .await?;
            ctx.emit(Event::StepFinished {
                step: step.index,
                outcome,
                message: message.clone(),
            });
            reports.push(StepReport {
                index: step.index,
                description,
                outcome,
                message,
            });
        }
        Ok(reports)
    }

    async fn finish(
        &self,
        ctx: &RunContext<'_>,
        result: Result<Vec<StepReport>>,
    ) -> Result<RunReport> {
        match result {
            Ok(steps) => {
                ctx.journal
                    .update(|j| j.state = RunState::Succeeded)
                    .await?;
                let journal = ctx.journal.snapshot().await;
                let left: Vec<NodeRecord> = journal.left_cordoned().cloned().collect();
                let changed = steps
                    .iter()
                    .filter(|s| s.outcome == Outcome::Succeeded)
                    .filter(|s| {
                        ctx.plan
                            .step(s.index)
                            .is_some_and(|p| p.action.changes_cluster())
                    })
                    .count();
                let mut message = format!(
                    "cluster {} at {}: {changed} change step(s) done, {} skipped",
                    ctx.plan.cluster,
                    ctx.plan.target,
                    steps
                        .iter()
                        .filter(|s| s.outcome == Outcome::Skipped)
                        .count()
                );
                if !left.is_empty() {
                    message.push_str(&format!(
                        "; left cordoned and not upgraded: {}",
                        left.iter()
                            .map(|n| n.node.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                ctx.emit(Event::RunFinished {
                    outcome: Outcome::Succeeded,
                    message,
                });
                Ok(RunReport {
                    plan_id: journal.plan_id.clone(),
                    cluster: journal.cluster.clone(),
                    outcome: Outcome::Succeeded,
                    attempts: journal.attempts,
                    steps,
                    backups: journal.backups.clone(),
                    left_cordoned: left,
                })
            }
            Err(e) => {
                let state = match &e {
                    Error::Cancelled { at } => RunState::Cancelled {
                        message: format!("stopped {at}"),
                    },
                    other => RunState::Failed {
                        category: other.category(),
                        message: short(other.to_string()),
                    },
                };
                if !matches!(e, Error::LockLost { .. } | Error::JournalConflict { .. })
                    && let Err(w) = ctx.journal.update(|j| j.state = state).await
                {
                    tracing::warn!(error = %w, "could not record the run's end in the journal");
                }
                ctx.emit(Event::RunFinished {
                    outcome: if matches!(e, Error::Cancelled { .. }) {
                        Outcome::Cancelled
                    } else {
                        Outcome::Failed
                    },
                    message: e.to_string(),
                });
                Err(e)
            }
        }
    }
}
