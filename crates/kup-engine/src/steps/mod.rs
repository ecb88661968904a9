//! One rule per kind of plan step, and its execution, one file per kind.
//!
//! A rule is a pure decision — [`Decision::Skip`], [`Decision::Refuse`] or [`Decision::Run`],
//! with the reason — from three inputs: the step, the cluster as it is ([`Facts`]), and the
//! journal of this plan's runs. The run asks it before every step with the cluster just read;
//! the dry run asks it for every step with the cluster as the steps before would leave it
//! ([`walk`]). Neither has rules of its own, so they cannot drift apart.
//!
//! The rules keep these invariants, in this order of precedence:
//! 1. An operation recorded in the journal is re-attached to, never started again.
//! 2. A step the journal records as finished is not run again, whatever the cluster reports.
//! 3. A change already in place — or overtaken: a control plane, pool or add-on already *past*
//!    the step's target — is skipped. No step ever sends a version older than the live one.
//! 4. A change that would break a rule (skew, kubelet newer than the API server, a capability
//!    the provider lacks, another operation running) is refused before anything is sent.

mod addon;
mod backup;
mod control_plane;
mod node_pool;
mod preflight;
mod rollback;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

use kup_core::{
    Capabilities, ClusterInfo, ControlPlaneRollback, KubeVersion, Operation, PlanStep,
    PoolManagement, SkewPolicy, StepAction, UpgradePlan,
};

use crate::engine::{RunContext, StepOutcome};
use crate::error::{Error, Result};
use crate::journal::{Journal, NodePhase, StepState};

pub(crate) use preflight::verdict as preflight_verdict;
pub(crate) use validate::expectation as validate_expectation;

/// What a step's rule says to do now.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Nothing to do, and why.
    Skip(String),
    /// The step must not run; the run fails with this error, the dry run reports it.
    Refuse(Error),
    /// Run it (or re-attach to its recorded operation).
    Run,
}

impl Decision {
    pub(crate) fn is_skip(&self) -> bool {
        matches!(self, Self::Skip(_))
    }
}

/// A pool as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolFacts {
    /// Its oldest kubelet.
    pub(crate) version: KubeVersion,
    /// Who rolls it.
    pub(crate) management: PoolManagement,
    /// The provider release it runs within its version, when the provider names one.
    pub(crate) release: Option<String>,
}

/// The cluster as the rules see it: what the provider reports now, or, in a dry run, what the
/// steps before would leave.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    pub(crate) cluster: String,
    pub(crate) control_plane: KubeVersion,
    pub(crate) pools: BTreeMap<String, PoolFacts>,
    pub(crate) addons: BTreeMap<String, String>,
    pub(crate) in_progress: Vec<Operation>,
}

impl Facts {
    pub(crate) fn from_live(live: &ClusterInfo) -> Self {
        Self {
            cluster: live.name.clone(),
            control_plane: live.control_plane.clone(),
            pools: live
                .node_pools
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        PoolFacts {
                            version: p.version.clone(),
                            management: p.management,
                            release: p.release.clone(),
                        },
                    )
                })
                .collect(),
            addons: live
                .addons
                .iter()
                .map(|a| (a.name.clone(), a.version.clone()))
                .collect(),
            in_progress: live.in_progress.clone(),
        }
    }

    /// The cluster after `step` ran as planned (dry runs walk the plan with this).
    fn apply(&mut self, step: &PlanStep) {
        match &step.action {
            StepAction::ControlPlane { to, .. } => self.control_plane = to.clone(),
            StepAction::NodePool { pool, to, .. } => {
                if let Some(p) = self.pools.get_mut(pool) {
                    p.version = to.clone();
                }
            }
            StepAction::Addon { name, to, .. } => {
                if let Some(version) = self.addons.get_mut(name) {
                    *version = to.clone();
                }
            }
            StepAction::PoolRollback {
                pool, to, release, ..
            } => {
                if let Some(p) = self.pools.get_mut(pool) {
                    p.version = to.clone();
                    if release.is_some() {
                        p.release = release.clone();
                    }
                }
            }
            StepAction::Restore { to, pools, .. } => {
                self.control_plane = to.clone();
                for name in pools {
                    if let Some(p) = self.pools.get_mut(name) {
                        p.version = to.clone();
                    }
                }
            }
            StepAction::ControlPlaneRollback { to, .. } => self.control_plane = to.clone(),
            _ => {}
        }
    }
}

/// What the rules know besides the cluster: the plan, the provider, the user's options and
/// what this process did.
pub(crate) struct RuleInputs<'a> {
    pub(crate) plan: &'a UpgradePlan,
    pub(crate) provider: kup_core::ProviderKind,
    pub(crate) caps: Capabilities,
    pub(crate) policy: SkewPolicy,
    /// Provider-rolled pools kup drains ahead node by node.
    pub(crate) drain_ahead: &'a BTreeSet<String>,
    /// Backup steps whose backup this engine took (a provider trusts only its own).
    pub(crate) backups_taken: BTreeSet<usize>,
}

/// A step's lines in the journal, as the rules read them.
pub(crate) struct Record<'j> {
    pub(crate) state: StepState,
    pub(crate) operation: Option<&'j Operation>,
    /// Nodes of this step kup took down and has not finished with.
    pub(crate) nodes_in_flight: bool,
}

impl<'j> Record<'j> {
    pub(crate) fn of(journal: &'j Journal, index: usize) -> Self {
        let step = journal.step(index);
        Self {
            state: step.map_or(StepState::Pending, |s| s.state),
            operation: step.and_then(|s| s.operation.as_ref()),
            nodes_in_flight: journal
                .nodes
                .iter()
                .any(|n| n.step == index && n.phase != NodePhase::LeftCordoned),
        }
    }

    /// The precedence every change step shares (invariants 1 and 2).
    fn settled(&self) -> Option<Decision> {
        if self.operation.is_some() {
            return Some(Decision::Run);
        }
        if self.state.is_done() {
            return Some(Decision::Skip(format!(
                "{} in an earlier run of this plan",
                if self.state == StepState::Succeeded {
                    "done"
                } else {
                    "found done"
                }
            )));
        }
        None
    }
}

/// Operation ids the journal knows (recorded by this plan's runs).
pub(crate) fn known_operations(journal: &Journal) -> BTreeSet<&str> {
    journal
        .steps
        .iter()
        .filter_map(|s| s.operation.as_ref())
        .chain(journal.nodes.iter().filter_map(|n| n.operation.as_ref()))
        .map(|o| o.id.as_str())
        .collect()
}

/// The rule for `step`. `changes_left` says whether any change step after a pre-flight step
/// still has work (see [`walk`]); only pre-flight rules read it.
pub(crate) fn decide(
    step: &PlanStep,
    facts: &Facts,
    journal: &Journal,
    inputs: &RuleInputs<'_>,
    changes_left: bool,
) -> Decision {
    let record = Record::of(journal, step.index);
    match &step.action {
        StepAction::Preflight { .. } => preflight::rule(facts, journal, &record, changes_left),
        StepAction::Backup { control_plane } => {
            backup::rule(step.index, control_plane, facts, journal, &record, inputs)
        }
        StepAction::ControlPlane { from, to } => {
            control_plane::rule(from, to, facts, journal, &record, inputs)
        }
        StepAction::NodePool {
            pool,
            to,
            management,
            ..
        } => node_pool::rule(pool, to, *management, facts, journal, &record, inputs),
        StepAction::Addon { name, to, .. } => {
            addon::rule(name, to, facts, journal, &record, inputs)
        }
        StepAction::PoolRollback {
            pool,
            to,
            management,
            release,
            ..
        } => rollback::pool_rule(
            pool,
            (to, release.as_deref()),
            *management,
            facts,
            journal,
            &record,
            inputs,
        ),
        StepAction::Restore { to, pools, .. } => rollback::control_plane_rule(
            to,
            pools,
            ControlPlaneRollback::RestoreBackup,
            facts,
            journal,
            &record,
            inputs,
        ),
        StepAction::ControlPlaneRollback { to, .. } => rollback::control_plane_rule(
            to,
            &[],
            ControlPlaneRollback::DuringSoak,
            facts,
            journal,
            &record,
            inputs,
        ),
        StepAction::Validate { control_plane, .. } => validate::rule(control_plane, facts, &record),
        _ => Decision::Refuse(unknown_kind(step)),
    }
}

/// A step kind this kup was built without (plans from a newer kup).
fn unknown_kind(step: &PlanStep) -> Error {
    Error::invalid_input(
        format!("plan.steps[{}]", step.index),
        format!(
            "this kup does not know how to run a {} step; use the kup that made the plan",
            step.action.kind()
        ),
    )
}

impl RunContext<'_> {
    /// Runs one step: reads the cluster, asks the step's rule, and does what it says.
    pub(crate) async fn execute(&self, step: &PlanStep) -> Result<StepOutcome> {
        if let Some((index, summary, _)) = &self.preflight_passed
            && *index == step.index
        {
            // Checked moments ago, before this run wrote anything (see `Engine::execute`).
            return Ok(StepOutcome::Done(summary.clone()));
        }
        if let Some(outcome) = self.while_restoring(step).await? {
            return Ok(outcome);
        }
        let engine = self.engine;
        let live = self.cluster().await?;
        let journal = self.journal.snapshot().await;
        let inputs = engine.rule_inputs(self.plan);
        match decide_in_plan(self.plan, step, &Facts::from_live(&live), &journal, &inputs) {
            Decision::Skip(reason) => return Ok(StepOutcome::Skipped(reason)),
            Decision::Refuse(e) => return Err(e),
            Decision::Run => {}
        }
        let i = step.index;
        match &step.action {
            StepAction::Preflight { target } => {
                let report = self
                    .cancellable(
                        "pre-flight",
                        engine.run_preflight(self.plan, target, &live, &journal),
                    )
                    .await?;
                let findings = &report.findings.findings;
                self.journal.update(|j| j.set_findings(findings)).await?;
                preflight::verdict(&report).map(StepOutcome::Done)
            }
            StepAction::Backup { .. } => self.run_backup(i).await,
            StepAction::ControlPlane { to, .. } => self.run_control_plane(i, to, &live).await,
            StepAction::NodePool {
                pool,
                to,
                management,
                ..
            } => self.run_pool(i, pool, to, *management, &live).await,
            StepAction::Addon {
                name,
                from,
                to,
                control_plane,
            } => {
                self.run_addon(i, name, from, to, control_plane, &live)
                    .await
            }
            StepAction::PoolRollback {
                pool,
                to,
                management,
                release,
                basis,
                ..
            } => {
                let back = rollback::PoolBack {
                    pool,
                    to,
                    management: *management,
                    release: release.as_deref(),
                    basis,
                };
                self.run_pool_rollback(i, back, &live).await
            }
            StepAction::Restore { to, backup, .. } => self.run_restore(i, to, backup).await,
            StepAction::ControlPlaneRollback { to, basis, .. } => {
                self.run_control_plane_rollback(i, to, basis, &live).await
            }
            StepAction::Validate {
                control_plane,
                pools,
            } => self.run_validate(i, control_plane, pools, &live).await,
            _ => Err(unknown_kind(step)),
        }
    }
}

impl RunContext<'_> {
    /// A run resumed while its restore is in flight cannot read the cluster until the restore
    /// ends: the steps before it are settled by the journal alone, and the restore runs again
    /// from its start (each of its stages finds what an interrupted attempt did). `None` when
    /// the step goes the usual way.
    async fn while_restoring(&self, step: &PlanStep) -> Result<Option<StepOutcome>> {
        let Some(restoring) = self.restoring else {
            return Ok(None);
        };
        if step.index > restoring {
            return Ok(None);
        }
        let journal = self.journal.snapshot().await;
        if step.index < restoring {
            return Ok(match Record::of(&journal, step.index).settled() {
                Some(Decision::Skip(reason)) => Some(StepOutcome::Skipped(reason)),
                _ => None,
            });
        }
        match &step.action {
            StepAction::Restore { to, backup, .. } => {
                self.run_restore(step.index, to, backup).await.map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// [`decide`] for a step of `plan`, working out what a pre-flight step needs to know.
pub(crate) fn decide_in_plan(
    plan: &UpgradePlan,
    step: &PlanStep,
    facts: &Facts,
    journal: &Journal,
    inputs: &RuleInputs<'_>,
) -> Decision {
    let changes_left = matches!(step.action, StepAction::Preflight { .. })
        && changes_left_after(plan, step.index, facts, journal, inputs);
    decide(step, facts, journal, inputs, changes_left)
}

/// Every step's decision from `facts` on, each step seeing the cluster as the steps before it
/// would leave it (a refused step counts as done, so one problem does not hide the next).
pub(crate) fn walk(
    plan: &UpgradePlan,
    facts: &Facts,
    journal: &Journal,
    inputs: &RuleInputs<'_>,
) -> Vec<(Decision, Facts)> {
    let mut current = facts.clone();
    let mut out = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let decision = decide_in_plan(plan, step, &current, journal, inputs);
        let seen = current.clone();
        if !decision.is_skip() {
            current.apply(step);
        }
        out.push((decision, seen));
    }
    out
}

/// Whether a change step after step `after` still has work, walking the plan from there
/// with pre-flight steps left out.
fn changes_left_after(
    plan: &UpgradePlan,
    after: usize,
    facts: &Facts,
    journal: &Journal,
    inputs: &RuleInputs<'_>,
) -> bool {
    let mut facts = facts.clone();
    for step in plan.steps.iter().filter(|s| s.index > after) {
        if matches!(step.action, StepAction::Preflight { .. }) {
            continue;
        }
        let decision = decide(step, &facts, journal, inputs, false);
        if !decision.is_skip() {
            if step.action.changes_cluster() {
                return true;
            }
            facts.apply(step);
        }
    }
    false
}

/// The part of `plan` the cluster has not done yet, starting where the cluster stands: what
/// pre-flight checks. Steps whose rules say skip are dropped.
pub(crate) fn remaining_plan(
    plan: &UpgradePlan,
    facts: &Facts,
    journal: &Journal,
    inputs: &RuleInputs<'_>,
) -> UpgradePlan {
    let mut remaining = plan.clone();
    remaining.from = facts.control_plane.clone();
    for (name, version) in remaining.pools.iter_mut() {
        if let Some(p) = facts.pools.get(name) {
            *version = p.version.clone();
        }
    }
    let mut walked = facts.clone();
    remaining.steps.retain(|step| {
        if matches!(step.action, StepAction::Preflight { .. }) {
            return false;
        }
        let keep = !decide(step, &walked, journal, inputs, false).is_skip();
        if keep {
            walked.apply(step);
        }
        keep
    });
    remaining
}

/// A `NotFound` for something the plan names that the cluster does not have.
fn not_found(kind: &str, name: &str, cluster: &str) -> Error {
    kup_core::Error::NotFound {
        kind: kind.into(),
        name: name.into(),
        scope: Some(format!("cluster {cluster}")),
    }
    .into()
}

fn precondition(message: String) -> Error {
    Error::Core(kup_core::Error::precondition(message))
}

/// An operation running in the provider that the journal does not know and that does other
/// work than `target` → refused as busy; one doing the same work is adopted by the run.
fn busy(
    facts: &Facts,
    journal: &Journal,
    target: &kup_core::OperationTarget,
    to: Option<&KubeVersion>,
) -> Option<Decision> {
    let known = known_operations(journal);
    crate::engine::operation::blocking(&facts.in_progress, target, to, |o| {
        known.contains(o.id.as_str())
    })
    .map(|other| {
        Decision::Refuse(
            kup_core::Error::Busy {
                message: format!(
                    "{other} is in progress; kup sends nothing for the {target} until it ends"
                ),
                operation: Some(other.id.clone()),
            }
            .into(),
        )
    })
}

/// Reads the journal once for a rule outside a run (dry runs, the pre-run gate).
pub(crate) fn journal_or_fresh(journal: Option<&Journal>, plan: &UpgradePlan) -> Journal {
    match journal {
        Some(j) if j.plan_id == plan.id && j.state.is_unfinished() => j.clone(),
        _ => Journal::new(plan, "dry-run"),
    }
}
