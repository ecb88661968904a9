//! Runs a fleet: loads or starts the fleet run, loops on [`decide`], upgrades clusters
//! concurrently with [`kup_engine::Engine::apply`] (so a cluster a killed run left running
//! resumes from its own journal and is never started twice), saves the fleet journal after
//! every change, and waits for approvals and soaks by polling the controls.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kup_core::{Event, EventSink, KubeVersion, Outcome, UpgradePlan};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connector::Connector;
use crate::controls::{Approval, FleetControls};
use crate::decide::{Decision, decide};
use crate::error::{Error, Result};
use crate::journal::FleetJournalStore;
use crate::plan::plan_changes_something;
use crate::run_state::{ClusterOutcome, FleetRun, StagePhase};
use crate::spec::{Fleet, FleetSpec, Member};

/// Something that happened in a fleet run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FleetEvent {
    /// The runner started (or resumed) the run.
    RunStarted {
        /// The target.
        target: KubeVersion,
        /// Whether a journaled run was continued.
        resumed: bool,
    },
    /// A stage started.
    StageStarted {
        /// The stage.
        stage: String,
    },
    /// A stage's clusters all finished within budget.
    StageCompleted {
        /// The stage.
        stage: String,
    },
    /// A cluster's upgrade started (or resumed, `attempt` > 1).
    ClusterStarted {
        /// Its stage.
        stage: String,
        /// The cluster.
        cluster: String,
        /// Its attempt number.
        attempt: u32,
    },
    /// A cluster's plan was stored in the fleet journal.
    ClusterPlanned {
        /// The cluster.
        cluster: String,
        /// The plan's id.
        plan_id: String,
    },
    /// A cluster's run ended.
    ClusterFinished {
        /// The cluster.
        cluster: String,
        /// How.
        outcome: ClusterOutcome,
    },
    /// An event of a cluster's engine run.
    Cluster {
        /// The cluster.
        cluster: String,
        /// The engine's event.
        engine: Event,
    },
    /// A stage waits for approval.
    WaitingForApproval {
        /// The stage.
        stage: String,
    },
    /// A completed stage soaks.
    Soaking {
        /// The stage.
        stage: String,
        /// Until.
        until: Timestamp,
    },
    /// The run halted (or is halting: no new clusters start).
    Halted {
        /// Why.
        reason: String,
    },
    /// The run stopped at a safe point on cancel; running clusters resume next time.
    Interrupted,
    /// Every stage completed.
    Completed,
}

/// Where fleet events go.
pub trait FleetEventSink: Send + Sync {
    /// Receives one event; must not block.
    fn emit(&self, event: FleetEvent);
}

/// Discards events.
#[derive(Debug, Default)]
pub struct NoFleetEvents;

impl FleetEventSink for NoFleetEvents {
    fn emit(&self, _: FleetEvent) {}
}

/// What [`FleetRunner::run`] does when the next stage needs approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WaitMode {
    /// Wait (polling the controls) until it is approved.
    #[default]
    Block,
    /// Return the run (phase `WaitingApproval`); call `run` again after approving.
    Return,
}

/// Runner settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerOptions {
    /// How often the controls are read while waiting.
    pub poll_interval: Duration,
    /// Whether an approval gate blocks or returns.
    pub wait: WaitMode,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            wait: WaitMode::Block,
        }
    }
}

/// Runs one fleet to one target.
pub struct FleetRunner {
    fleet: Fleet,
    target: KubeVersion,
    connector: Arc<dyn Connector>,
    journal: Arc<dyn FleetJournalStore>,
    controls: Arc<dyn FleetControls>,
    events: Arc<dyn FleetEventSink>,
    options: RunnerOptions,
}

impl std::fmt::Debug for FleetRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetRunner")
            .field("target", &self.target)
            .field("journal", &self.journal)
            .field("controls", &self.controls)
            .finish_non_exhaustive()
    }
}

/// A cluster task's plan, to store before anything changes.
struct Planned {
    cluster: String,
    plan: UpgradePlan,
    stored: oneshot::Sender<()>,
}

/// Passes a cluster's engine events on as fleet events.
struct ClusterEvents {
    cluster: String,
    sink: Arc<dyn FleetEventSink>,
}

impl EventSink for ClusterEvents {
    fn emit(&self, event: Event) {
        self.sink.emit(FleetEvent::Cluster {
            cluster: self.cluster.clone(),
            engine: event,
        });
    }
}

impl FleetRunner {
    /// A runner for `spec` (validated here; errors name the fields) to `target`.
    pub fn new(
        spec: &FleetSpec,
        target: KubeVersion,
        connector: Arc<dyn Connector>,
        journal: Arc<dyn FleetJournalStore>,
        controls: Arc<dyn FleetControls>,
        events: Arc<dyn FleetEventSink>,
    ) -> Result<Self> {
        Ok(Self {
            fleet: spec.validate()?,
            target,
            connector,
            journal,
            controls,
            events,
            options: RunnerOptions::default(),
        })
    }

    /// With `options`.
    pub fn with_options(mut self, options: RunnerOptions) -> Self {
        self.options = options;
        self
    }

    /// The validated fleet.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The journaled run, `None` before the first run.
    pub async fn status(&self) -> Result<Option<FleetRun>> {
        self.journal.load().await
    }

    /// Approves `stage` (which must be a stage of the fleet) as `by`.
    pub async fn approve(&self, stage: &str, by: &str) -> Result<Approval> {
        if self.fleet.stage(stage).is_none() {
            return Err(Error::InvalidRequest {
                what: "stage".into(),
                message: format!(
                    "{stage:?} is not a stage of the fleet; accepted: {}",
                    self.fleet
                        .stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        self.controls.approve(stage, by).await
    }

    /// Asks the run to halt: no new cluster starts; running ones finish.
    pub async fn halt(&self, by: &str, reason: &str) -> Result<()> {
        self.controls.request_halt(by, reason).await.map(|_| ())
    }

    /// Clears the halt (the request and the journaled halt; failed clusters are retried)
    /// and runs again.
    pub async fn resume(&self, cancel: &CancellationToken) -> Result<FleetRun> {
        self.controls.clear_halt().await?;
        if let Some(mut run) = self.journal.load().await?
            && run.halted.is_some()
        {
            run.clear_halt(Timestamp::now());
            self.journal.save(&run).await?;
        }
        self.run(cancel).await
    }

    /// Runs until the fleet completed or halted, or (with [`WaitMode::Return`]) a stage
    /// waits for approval, or `cancel` stops it at a safe point (running clusters stay
    /// running in the journal; the next run resumes them).
    pub async fn run(&self, cancel: &CancellationToken) -> Result<FleetRun> {
        let (mut run, resumed) = match self.journal.load().await? {
            Some(run) => {
                if let Some(reason) = run.mismatch(&self.fleet, &self.target) {
                    return Err(Error::RunMismatch {
                        journal: self.journal.describe(),
                        reason,
                    });
                }
                (run, true)
            }
            None => (
                FleetRun::new(&self.fleet, &self.target, Timestamp::now()),
                false,
            ),
        };
        self.journal.save(&run).await?;
        self.events.emit(FleetEvent::RunStarted {
            target: self.target.clone(),
            resumed,
        });

        let clusters_cancel = cancel.child_token();
        let mut tasks: JoinSet<(String, ClusterOutcome)> = JoinSet::new();
        let (planned_tx, mut planned_rx) = mpsc::unbounded_channel::<Planned>();

        // Clusters a killed run left running resume first (unless the run is halted: then
        // they wait for the resume).
        let controls = self.controls.state().await?;
        if run.halted.is_none() && controls.halt.is_none() {
            let names = run.resume_interrupted(Timestamp::now());
            if !names.is_empty() {
                self.journal.save(&run).await?;
            }
            for name in names {
                self.spawn(&run, &name, &mut tasks, &planned_tx, &clusters_cancel);
            }
        }

        let mut announced: Option<Decision> = None;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let controls = self.controls.state().await?;
            let now = Timestamp::now();
            let decision = decide(&self.fleet, &run, &controls, now);
            let stage_was_running = match &decision {
                Decision::Start { stage, .. } => run
                    .stage(stage)
                    .is_some_and(|s| s.phase == StagePhase::Running),
                _ => false,
            };
            if run.apply(&decision, now) {
                self.journal.save(&run).await?;
            }
            let mut wait_for = Some(self.options.poll_interval);
            match &decision {
                Decision::Start { stage, clusters } => {
                    announced = None;
                    if !stage_was_running {
                        self.events.emit(FleetEvent::StageStarted {
                            stage: stage.clone(),
                        });
                    }
                    for name in clusters {
                        self.spawn(&run, name, &mut tasks, &planned_tx, &clusters_cancel);
                    }
                    continue;
                }
                Decision::FinishStage { stage, .. } => {
                    self.events.emit(FleetEvent::StageCompleted {
                        stage: stage.clone(),
                    });
                    continue;
                }
                Decision::Complete => {
                    self.events.emit(FleetEvent::Completed);
                    return Ok(run);
                }
                Decision::Halt { reason, .. } => {
                    if announced.as_ref() != Some(&decision) {
                        self.events.emit(FleetEvent::Halted {
                            reason: reason.clone(),
                        });
                        announced = Some(decision.clone());
                    }
                    if tasks.is_empty() {
                        return Ok(run);
                    }
                    wait_for = None;
                }
                Decision::AwaitApproval { stage } => {
                    if announced.as_ref() != Some(&decision) {
                        self.events.emit(FleetEvent::WaitingForApproval {
                            stage: stage.clone(),
                        });
                        announced = Some(decision.clone());
                    }
                    if self.options.wait == WaitMode::Return && tasks.is_empty() {
                        return Ok(run);
                    }
                }
                Decision::Soak { stage, until } => {
                    if announced.as_ref() != Some(&decision) {
                        self.events.emit(FleetEvent::Soaking {
                            stage: stage.clone(),
                            until: *until,
                        });
                        announced = Some(decision.clone());
                    }
                    let left = until.duration_since(now).unsigned_abs();
                    wait_for = Some(left.min(self.options.poll_interval));
                }
                Decision::Wait => wait_for = None,
            }
            self.wait_once(&mut run, &mut tasks, &mut planned_rx, cancel, wait_for)
                .await?;
        }

        // Cancelled: the clusters' engines stop at their next safe point; their journals
        // and this one keep them running, to resume.
        clusters_cancel.cancel();
        while !tasks.is_empty() {
            self.wait_once(
                &mut run,
                &mut tasks,
                &mut planned_rx,
                &CancellationToken::new(),
                None,
            )
            .await?;
        }
        self.events.emit(FleetEvent::Interrupted);
        Ok(run)
    }

    /// Waits for one thing: a cluster's plan to store, a cluster to finish, `cancel`, or
    /// (with `timeout`) the time to look at the controls again.
    async fn wait_once(
        &self,
        run: &mut FleetRun,
        tasks: &mut JoinSet<(String, ClusterOutcome)>,
        planned: &mut mpsc::UnboundedReceiver<Planned>,
        cancel: &CancellationToken,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let idle = tasks.is_empty();
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None if idle => tokio::time::sleep(self.options.poll_interval).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            Some(p) = planned.recv() => {
                let id = p.plan.id.clone();
                run.record_plan(&p.cluster, p.plan, Timestamp::now());
                self.journal.save(run).await?;
                self.events.emit(FleetEvent::ClusterPlanned { cluster: p.cluster, plan_id: id });
                // The task may have been cancelled meanwhile; then nobody waits for this.
                let _ = p.stored.send(());
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let (cluster, outcome) = match joined {
                    Ok(r) => r,
                    Err(e) => {
                        // A panicked cluster task: its cluster stays running in the journal
                        // (the next run resumes it), and the error is reported.
                        tracing::error!("a cluster task ended abnormally: {e}");
                        return Ok(());
                    }
                };
                run.record_outcome(&cluster, &outcome, Timestamp::now());
                self.journal.save(run).await?;
                self.events.emit(FleetEvent::ClusterFinished { cluster, outcome });
            }
            _ = sleep => {}
        }
        Ok(())
    }

    fn spawn(
        &self,
        run: &FleetRun,
        name: &str,
        tasks: &mut JoinSet<(String, ClusterOutcome)>,
        planned: &mpsc::UnboundedSender<Planned>,
        cancel: &CancellationToken,
    ) {
        let Some(cluster) = run.cluster(name) else {
            return;
        };
        let stage = self
            .fleet
            .placement(name)
            .map(|(s, _)| s.to_string())
            .unwrap_or_default();
        self.events.emit(FleetEvent::ClusterStarted {
            stage,
            cluster: name.to_string(),
            attempt: cluster.attempts,
        });
        let task = ClusterTask {
            name: name.to_string(),
            member: self.fleet.member(name).cloned(),
            target: self.target.clone(),
            stored_plan: cluster.plan.clone(),
            connector: self.connector.clone(),
            events: self.events.clone(),
            planned: planned.clone(),
            cancel: cancel.clone(),
        };
        tasks.spawn(async move {
            let name = task.name.clone();
            (name, task.run().await)
        });
    }
}

/// One cluster's upgrade.
struct ClusterTask {
    name: String,
    member: Option<Member>,
    target: KubeVersion,
    stored_plan: Option<UpgradePlan>,
    connector: Arc<dyn Connector>,
    events: Arc<dyn FleetEventSink>,
    planned: mpsc::UnboundedSender<Planned>,
    cancel: CancellationToken,
}

impl ClusterTask {
    async fn run(self) -> ClusterOutcome {
        let failed = |message: String| ClusterOutcome::Failed { message };
        let Some(member) = &self.member else {
            return failed("not a member of the fleet".into());
        };
        let mc = match self.connector.connect(member).await {
            Ok(mc) => mc,
            Err(e) => return failed(e.to_string()),
        };
        let plan = match self.stored_plan {
            Some(plan) => plan,
            None => {
                let plan = match kup_engine::planning::plan_for(
                    mc.provider.as_ref(),
                    &self.target,
                    mc.plan_options.clone(),
                )
                .await
                {
                    Ok(p) => p,
                    Err(e) => return failed(format!("cannot plan: {e}")),
                };
                if !plan_changes_something(&plan) {
                    return ClusterOutcome::Skipped {
                        reason: format!("already at {}", self.target),
                    };
                }
                // The plan is journaled before anything changes, so a resume runs this plan.
                let (stored, wait) = oneshot::channel();
                let sent = self.planned.send(Planned {
                    cluster: self.name.clone(),
                    plan: plan.clone(),
                    stored,
                });
                if sent.is_err() || wait.await.is_err() {
                    return ClusterOutcome::Interrupted;
                }
                plan
            }
        };
        let engine = match mc.engine(
            &self.name,
            Arc::new(ClusterEvents {
                cluster: self.name.clone(),
                sink: self.events.clone(),
            }),
        ) {
            Ok(e) => e,
            Err(e) => return failed(e.to_string()),
        };
        if self.cancel.is_cancelled() {
            return ClusterOutcome::Interrupted;
        }
        match engine.apply(&plan, &self.cancel).await {
            Ok(report) => match report.outcome {
                Outcome::Succeeded | Outcome::Skipped => ClusterOutcome::Succeeded,
                Outcome::Cancelled => ClusterOutcome::Interrupted,
                Outcome::Failed => failed(
                    report
                        .steps
                        .iter()
                        .rev()
                        .find(|s| s.outcome == Outcome::Failed)
                        .map(|s| format!("step {} ({}): {}", s.index, s.description, s.message))
                        .unwrap_or_else(|| "the engine run failed".into()),
                ),
            },
            Err(kup_engine::Error::Cancelled { .. }) if self.cancel.is_cancelled() => {
                ClusterOutcome::Interrupted
            }
            Err(e) => failed(e.to_string()),
        }
    }
}
