//! Dry runs: the plan walked against the cluster as it is, every precondition checked,
//! nothing changed. Only reads are sent (to the provider and the Kubernetes API); the lock is
//! looked at, not taken, and the journal is read, not written.

use std::fmt::Write as _;

use kup_core::{ClusterInfo, Event, Outcome, PlanStep, StepAction, UpgradePlan};
use kup_kube::preflight::PreflightReport;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Mode};
use crate::error::Result;
use crate::journal::Journal;
use crate::lock::LockInfo;
use crate::steps::{self, Decision, Facts};

/// What a step would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "would", rename_all = "snake_case")]
pub enum WouldDo {
    /// It would run.
    Run,
    /// It would be skipped.
    Skip {
        /// Why.
        reason: String,
    },
}

/// One step of a dry run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunStep {
    /// Its index in the plan.
    pub index: usize,
    /// What it does.
    pub description: String,
    /// Whether it would run.
    #[serde(flatten)]
    pub would: WouldDo,
    /// What exactly it would do (batches, nodes, operations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Preconditions that fail: the real run would stop here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What a run of the plan would do now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunReport {
    /// The plan's id.
    pub plan_id: String,
    /// The cluster.
    pub cluster: String,
    /// Who holds the cluster's lock, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockInfo>,
    /// What the journal holds, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The pre-flight report, when the plan has a pre-flight step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<PreflightReport>,
    /// Every step.
    pub steps: Vec<DryRunStep>,
    /// Problems outside any step (lock, journal, provider busy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl DryRunReport {
    /// True when a real run could start and no step's precondition fails.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.steps.iter().all(|s| s.problems.is_empty())
    }

    /// Every problem, step problems prefixed with their step.
    pub fn all_problems(&self) -> Vec<String> {
        self.problems
            .iter()
            .cloned()
            .chain(self.steps.iter().flat_map(|s| {
                s.problems
                    .iter()
                    .map(move |p| format!("step {}: {p}", s.index))
            }))
            .collect()
    }

    /// The report as a plain-text table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Dry run of plan {} on cluster {}: {}\n",
            self.plan_id,
            self.cluster,
            if self.ok() { "ready" } else { "would stop" }
        );
        for p in &self.problems {
            let _ = writeln!(out, "  ! {p}");
        }
        for step in &self.steps {
            let what = match &step.would {
                WouldDo::Run => "run".to_string(),
                WouldDo::Skip { reason } => format!("skip ({reason})"),
            };
            let _ = writeln!(out, "  {:>3}  {:<40} {what}", step.index, step.description);
            for d in &step.details {
                let _ = writeln!(out, "         - {d}");
            }
            for p in &step.problems {
                let _ = writeln!(out, "         ! {p}");
            }
        }
        out
    }

    /// The report as pretty JSON, with a top-level `ok`.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("ok".into(), self.ok().into());
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

impl Engine {
    /// Walks `plan` against the cluster as it is and reports what a run would do, checking
    /// every precondition; sends nothing that changes anything.
    pub async fn dry_run(&self, plan: &UpgradePlan) -> Result<DryRunReport> {
        self.check_plan(plan)?;
        self.events.emit(Event::RunStarted {
            plan_id: plan.id.clone(),
            cluster: plan.cluster.clone(),
            dry_run: true,
        });
        let live = self.read_cluster().await?;
        let mut report = DryRunReport {
            plan_id: plan.id.clone(),
            cluster: plan.cluster.clone(),
            lock: None,
            journal: None,
            preflight: None,
            steps: Vec::new(),
            problems: Vec::new(),
        };
        match self.lock.holder().await {
            Ok(Some(info)) => {
                if !info.expired && info.holder != self.lock.identity() {
                    report.problems.push(format!(
                        "{} is held by {}; a run would be refused",
                        self.lock.describe(),
                        info.holder
                    ));
                }
                report.lock = Some(info);
            }
            Ok(None) => {}
            Err(e) => report
                .problems
                .push(format!("could not read {}: {e}", self.lock.describe())),
        }
        let stored = match self.journal.load().await {
            Ok(stored) => stored,
            Err(e) => {
                report.problems.push(e.to_string());
                None
            }
        };
        if let Some(j) = &stored {
            report.journal = Some(format!(
                "plan {} {}, {}/{} steps done",
                j.plan_id,
                j.state,
                j.steps.iter().filter(|s| s.state.is_done()).count(),
                j.steps.len()
            ));
        }
        if stored.as_ref().is_some_and(|j| j.completes(plan)) {
            for step in &plan.steps {
                report.steps.push(DryRunStep {
                    index: step.index,
                    description: step.action.to_string(),
                    would: WouldDo::Skip {
                        reason: "the plan already succeeded on this cluster; a run does nothing"
                            .into(),
                    },
                    details: Vec::new(),
                    problems: Vec::new(),
                });
            }
            return Ok(report);
        }
        // The journal a run would write, or why a run would be refused (the run's own check).
        let journal = match self.prepare(plan, stored.clone(), Mode::Fresh, Some(&live)) {
            Ok(j) => j,
            Err(e) => {
                report.problems.push(format!("a run would be refused: {e}"));
                steps::journal_or_fresh(stored.as_ref(), plan)
            }
        };
        let inputs = self.rule_inputs(plan);
        let walked = steps::walk(plan, &Facts::from_live(&live), &journal, &inputs);
        for (step, (decision, seen)) in plan.steps.iter().zip(walked) {
            let mut out = DryRunStep {
                index: step.index,
                description: step.action.to_string(),
                would: WouldDo::Run,
                details: Vec::new(),
                problems: Vec::new(),
            };
            match decision {
                Decision::Skip(reason) => out.would = WouldDo::Skip { reason },
                Decision::Refuse(e) => out.problems.push(e.to_string()),
                Decision::Run => {
                    self.preview(plan, step, &seen, &live, &journal, &mut out, &mut report)
                        .await;
                }
            }
            self.events.emit(Event::StepFinished {
                step: step.index,
                outcome: Outcome::Skipped,
                message: match &out.would {
                    WouldDo::Run => format!("dry run: would {}", out.description),
                    WouldDo::Skip { reason } => format!("dry run: would skip ({reason})"),
                },
            });
            report.steps.push(out);
        }
        self.events.emit(Event::RunFinished {
            outcome: Outcome::Skipped,
            message: if report.ok() {
                "dry run: a run would proceed".into()
            } else {
                format!(
                    "dry run: a run would stop: {}",
                    report.all_problems().join("; ")
                )
            },
        });
        Ok(report)
    }

    /// What a step the rules would run would do, in detail (reads only).
    #[allow(clippy::too_many_arguments)]
    async fn preview(
        &self,
        plan: &UpgradePlan,
        step: &PlanStep,
        seen: &Facts,
        live: &ClusterInfo,
        journal: &Journal,
        out: &mut DryRunStep,
        report: &mut DryRunReport,
    ) {
        let kind = self.provider.kind();
        let recorded = journal.step(step.index).and_then(|s| s.operation.as_ref());
        if let Some(op) = recorded {
            out.details.push(format!(
                "would re-attach to {op}, recorded by an earlier run"
            ));
            return;
        }
        match &step.action {
            StepAction::Preflight { target } => {
                match self.run_preflight(plan, target, live, journal).await {
                    Ok(pre) => {
                        out.details.push(pre.findings.summary());
                        out.problems.extend(
                            pre.blockers()
                                .map(|f| format!("pre-flight blocker {}: {}", f.code, f.message)),
                        );
                        report.preflight = Some(pre);
                    }
                    Err(e) => out.problems.push(format!("pre-flight could not run: {e}")),
                }
            }
            StepAction::Backup { .. } => out.details.push(format!(
                "{kind} would take and verify a backup of the control plane at {}",
                seen.control_plane
            )),
            StepAction::ControlPlane { to, .. } => out.details.push(format!(
                "{kind} would move the control plane {} → {to}",
                seen.control_plane
            )),
            StepAction::NodePool {
                pool,
                to,
                management,
                ..
            } => {
                let (details, problems) = self
                    .preview_pool(plan, live, seen, pool, to, *management)
                    .await;
                out.details.extend(details);
                out.problems.extend(problems);
            }
            StepAction::Addon { name, to, .. } => out.details.push(format!(
                "{kind} would move add-on {name} {} → {to}",
                seen.addons.get(name).map_or("?", String::as_str)
            )),
            StepAction::PoolRollback {
                pool,
                to,
                management,
                release,
                ..
            } => {
                if *management == kup_core::PoolManagement::Provider {
                    out.details.push(format!(
                        "{kind} would roll node pool {pool} back {} → {to}{}",
                        seen.pools
                            .get(pool)
                            .map_or("?".into(), |p| p.version.to_string()),
                        release
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ));
                } else {
                    let (details, problems) = self
                        .preview_pool(plan, live, seen, pool, to, *management)
                        .await;
                    out.details.extend(details);
                    out.problems.extend(problems);
                }
            }
            StepAction::Restore { to, backup, .. } => out.details.push(format!(
                "{kind} would stop the API servers and etcd on every control-plane node, \
                 restore backup {} ({} bytes, sha256 {}) and reinstall {to}; everything written \
                 since {} would be lost",
                backup.id, backup.size_bytes, backup.sha256, backup.taken_at
            )),
            StepAction::ControlPlaneRollback { to, .. } => out.details.push(format!(
                "{kind} would roll the control plane back {} → {to}",
                seen.control_plane
            )),
            StepAction::Validate {
                control_plane,
                pools,
            } => match steps::validate_expectation(control_plane, pools, live, plan.kind) {
                Ok(e) => out.details.push(format!(
                    "would validate the API server at {} and {} pool(s), {} consecutive passes",
                    e.control_plane,
                    e.pools.len(),
                    self.options.validation.passes
                )),
                Err(e) => out.problems.push(e.to_string()),
            },
            _ => {}
        }
    }
}
