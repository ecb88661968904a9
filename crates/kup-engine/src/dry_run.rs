//! Dry runs: the plan walked against the cluster as it is, every precondition checked,
//! nothing changed. Only reads are sent (to the provider and the Kubernetes API); the lock is
//! looked at, not taken, and the journal is read, not written.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kup_core::{Event, KubeVersion, Outcome, PoolManagement, SkewPolicy, StepAction, UpgradePlan};
use kup_kube::preflight::PreflightReport;
use kup_kube::validate::Expectation;
use serde::{Deserialize, Serialize};

use crate::batch::next_batch;
use crate::engine::Engine;
use crate::error::Result;
use crate::lock::LockInfo;
use crate::options::parse_max_unavailable;
use crate::versions::{kubelet_not_newer, reached};

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

/// The cluster as the plan's steps would leave it.
struct Simulated {
    control_plane: KubeVersion,
    pools: BTreeMap<String, KubeVersion>,
    addons: BTreeMap<String, String>,
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
        match self.journal.load().await {
            Ok(Some(j)) => {
                let unfinished = j.state.is_unfinished();
                report.journal = Some(format!(
                    "plan {} {}, {}/{} steps done",
                    j.plan_id,
                    j.state,
                    j.steps.iter().filter(|s| s.state.is_done()).count(),
                    j.steps.len()
                ));
                if unfinished && j.plan_id != plan.id {
                    report.problems.push(format!(
                        "{} holds an unfinished run of another plan ({}); a run would be refused",
                        self.journal.describe(),
                        j.plan_id
                    ));
                } else if unfinished {
                    report.problems.push(format!(
                        "{} holds an unfinished run of this plan; resume it instead of starting a run",
                        self.journal.describe()
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => report.problems.push(e.to_string()),
        }
        for op in &live.in_progress {
            report.problems.push(format!(
                "{op} is in progress; a run would report the cluster busy"
            ));
        }

        let caps = self.provider.capabilities();
        let policy = SkewPolicy::for_provider(&caps);
        let mut sim = Simulated {
            control_plane: live.control_plane.clone(),
            pools: live
                .node_pools
                .iter()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect(),
            addons: live
                .addons
                .iter()
                .map(|a| (a.name.clone(), a.version.clone()))
                .collect(),
        };
        for step in &plan.steps {
            let mut out = DryRunStep {
                index: step.index,
                description: step.action.to_string(),
                would: WouldDo::Run,
                details: Vec::new(),
                problems: Vec::new(),
            };
            match &step.action {
                StepAction::Preflight { target } => {
                    let input = self.preflight_input(plan, target, &live).await;
                    match self.preflight.preflight(&input).await {
                        Ok(pre) => {
                            out.details.push(pre.findings.summary());
                            out.problems.extend(
                                pre.blockers().map(|f| {
                                    format!("pre-flight blocker {}: {}", f.code, f.message)
                                }),
                            );
                            report.preflight = Some(pre);
                        }
                        Err(e) => out.problems.push(format!("pre-flight could not run: {e}")),
                    }
                }
                StepAction::Backup { control_plane } => {
                    if sim.control_plane.minor_distance(control_plane) < 0 {
                        out.would = WouldDo::Skip {
                            reason: format!("the control plane is already past {control_plane}"),
                        };
                    } else {
                        out.details.push(format!(
                            "{} would take and verify a backup of the control plane at {}",
                            self.provider.kind(),
                            sim.control_plane
                        ));
                    }
                }
                StepAction::ControlPlane { from, to } => {
                    if reached(&sim.control_plane, to) {
                        out.would = WouldDo::Skip {
                            reason: format!(
                                "the control plane is already at {}",
                                sim.control_plane
                            ),
                        };
                    } else {
                        if sim.control_plane.minor_distance(from) > 0 {
                            out.problems.push(format!(
                                "the control plane is at {}, behind this hop's start {from}",
                                sim.control_plane
                            ));
                        }
                        for (pool, version) in &sim.pools {
                            if let Some(rule) = policy.kubelet_rule_broken(version, to) {
                                out.problems.push(format!(
                                    "node pool {pool} at {version} would be out of skew ({rule})"
                                ));
                            }
                        }
                        out.details.push(format!(
                            "{} would move the control plane {} → {to}",
                            self.provider.kind(),
                            sim.control_plane
                        ));
                        sim.control_plane = to.clone();
                    }
                }
                StepAction::NodePool {
                    pool,
                    to,
                    management,
                    ..
                } => {
                    self.dry_pool(&live, &mut sim, pool, to, *management, &mut out)
                        .await;
                }
                StepAction::Addon { name, to, .. } => match sim.addons.get(name) {
                    None => out
                        .problems
                        .push(format!("the cluster has no add-on {name}")),
                    Some(have) if have == to => {
                        out.would = WouldDo::Skip {
                            reason: format!("add-on {name} is already at {to}"),
                        };
                    }
                    Some(have) => {
                        if !caps.managed_addons {
                            out.problems
                                .push(format!("{} does not manage add-ons", self.provider.kind()));
                        }
                        out.details.push(format!(
                            "{} would move add-on {name} {have} → {to}",
                            self.provider.kind()
                        ));
                        sim.addons.insert(name.clone(), to.clone());
                    }
                },
                StepAction::Validate {
                    control_plane,
                    pools,
                } => {
                    if sim.control_plane.minor_distance(control_plane) < 0 {
                        out.would = WouldDo::Skip {
                            reason: "the control plane is already past this check".into(),
                        };
                    } else {
                        match Expectation::from_step(control_plane, pools, &live.node_pools) {
                            Ok(e) => out.details.push(format!(
                                "would validate the API server at {} and {} pool(s), {} \
                                 consecutive passes",
                                e.control_plane,
                                e.pools.len(),
                                self.options.validation.passes
                            )),
                            Err(e) => out.problems.push(e.to_string()),
                        }
                    }
                }
                other => out.problems.push(format!(
                    "this kup does not know how to run a {} step",
                    other.kind()
                )),
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

    async fn dry_pool(
        &self,
        live: &kup_core::ClusterInfo,
        sim: &mut Simulated,
        pool: &str,
        to: &KubeVersion,
        planned: PoolManagement,
        out: &mut DryRunStep,
    ) {
        let caps = self.provider.capabilities();
        let Some(live_pool) = live.pool(pool) else {
            out.problems
                .push(format!("the cluster has no node pool {pool}"));
            return;
        };
        let current = sim
            .pools
            .get(pool)
            .cloned()
            .unwrap_or(live_pool.version.clone());
        if reached(&current, to) {
            out.would = WouldDo::Skip {
                reason: format!("node pool {pool} is already at {current}"),
            };
            return;
        }
        if !kubelet_not_newer(to, &sim.control_plane) {
            out.problems.push(format!(
                "{to} would be newer than the control plane at {}",
                sim.control_plane
            ));
        }
        let kup_rolled = planned == PoolManagement::Kup
            || live_pool.management == PoolManagement::Kup
            || self.options.drain_ahead.contains(pool);
        sim.pools.insert(pool.to_string(), to.clone());
        if !kup_rolled {
            if !caps.node_pool_upgrade {
                out.problems.push(format!(
                    "{} cannot upgrade node pools",
                    self.provider.kind()
                ));
            }
            out.details.push(format!(
                "{} would roll node pool {pool} {current} → {to}",
                self.provider.kind()
            ));
            return;
        }
        if !caps.node_upgrade {
            out.problems.push(format!(
                "{} cannot upgrade single nodes",
                self.provider.kind()
            ));
        }
        let nodes = match self.nodes.pool_nodes(live_pool).await {
            Ok(n) => n,
            Err(e) => {
                out.problems
                    .push(format!("could not list the pool's nodes: {e}"));
                return;
            }
        };
        let opts = self.options.pool(pool);
        let budget = match &opts.max_unavailable {
            Some(m) => {
                match parse_max_unavailable(
                    &format!("pools.{pool}.max_unavailable"),
                    m,
                    nodes.len(),
                ) {
                    Ok(b) => b,
                    Err(e) => {
                        out.problems.push(e.to_string());
                        1
                    }
                }
            }
            None => 1,
        };
        let mut pending: Vec<String> = nodes
            .iter()
            .filter(|n| !n.kubelet.as_ref().is_some_and(|k| reached(k, to)))
            .map(|n| n.name.clone())
            .collect();
        let mut canary_done = nodes.len() > pending.len();
        let mut batch_no = 0;
        while !pending.is_empty() {
            let batch = next_batch(&pending, canary_done, budget);
            batch_no += 1;
            out.details.push(format!(
                "batch {batch_no}{}: {} (cordon, drain, upgrade to {to}, wait Ready, uncordon, \
                 validate {} time(s))",
                if canary_done { "" } else { " (canary)" },
                batch.join(", "),
                self.options.gate.passes
            ));
            canary_done = true;
            pending.retain(|n| !batch.contains(n));
        }
        let drain = self.options.drain_for(pool);
        for node in nodes
            .iter()
            .filter(|n| !n.kubelet.as_ref().is_some_and(|k| reached(k, to)))
        {
            if node.cordoned {
                out.details.push(format!(
                    "node {} is cordoned now and would stay cordoned afterwards",
                    node.name
                ));
            }
            match self.nodes.drain_preview(&node.name, &drain).await {
                Ok(preview) => {
                    out.details.push(format!(
                        "node {}: would evict {} pod(s)",
                        node.name,
                        preview.pods.len()
                    ));
                    for group in &preview.refused {
                        out.problems.push(format!(
                            "node {}: the drain would refuse {}: {}",
                            node.name,
                            group
                                .pods
                                .iter()
                                .map(|p| format!("{}/{}", p.namespace, p.name))
                                .collect::<Vec<_>>()
                                .join(", "),
                            group.message
                        ));
                    }
                }
                Err(e) => out.problems.push(format!(
                    "node {}: could not preview its drain: {e}",
                    node.name
                )),
            }
        }
    }
}
