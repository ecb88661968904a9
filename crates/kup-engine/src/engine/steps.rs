//! One function per kind of plan step. Each re-reads the cluster first and skips what is
//! already done.

use std::collections::BTreeMap;

use kup_core::{
    AddonUpgrade, ClusterInfo, Event, Finding, KubeVersion, OperationTarget, PlanStep,
    PoolManagement, Severity, SkewPolicy, StepAction, UpgradePlan,
};
use kup_kube::preflight::{DrainAllowances, PreflightInput};
use kup_kube::validate::Expectation;

use super::Engine;
use super::context::RunContext;
use super::operation::{OpRequest, OpSlot};
use crate::error::{Error, Result};
use crate::journal::StepState;
use crate::versions::{kubelet_not_newer, reached};

/// How a step ended when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    /// It changed or checked something.
    Done(String),
    /// Nothing needed doing.
    Skipped(String),
}

fn not_found(kind: &str, name: &str, cluster: &str) -> Error {
    kup_core::Error::NotFound {
        kind: kind.into(),
        name: name.into(),
        scope: Some(format!("cluster {cluster}")),
    }
    .into()
}

/// The part of `plan` the cluster has not done yet: steps whose change is already in place
/// (a re-executed or partly applied plan) are dropped, so that pre-flight checks what is left.
pub(crate) fn remaining_plan(plan: &UpgradePlan, live: &ClusterInfo) -> UpgradePlan {
    let cp = &live.control_plane;
    let mut remaining = plan.clone();
    // The walk starts from where the cluster is, not from where it was when planned.
    remaining.from = cp.clone();
    for pool in &live.node_pools {
        if let Some(version) = remaining.pools.get_mut(&pool.name) {
            *version = pool.version.clone();
        }
    }
    remaining.steps.retain(|s| match &s.action {
        StepAction::ControlPlane { to, .. } => !reached(cp, to),
        StepAction::NodePool { pool, to, .. } => {
            live.pool(pool).is_none_or(|p| !reached(&p.version, to))
        }
        StepAction::Addon { name, to, .. } => live
            .addons
            .iter()
            .find(|a| a.name == *name)
            .is_none_or(|a| a.version != *to),
        StepAction::Backup { control_plane } | StepAction::Validate { control_plane, .. } => {
            cp.minor_distance(control_plane) >= 0
        }
        _ => true,
    });
    remaining
}

impl Engine {
    /// The pre-flight input for `plan` in the cluster as it is: the provider's skew policy,
    /// the pools, the drain's allowances, the provider's own findings, the user's overrides.
    pub(crate) async fn preflight_input(
        &self,
        plan: &UpgradePlan,
        target: &KubeVersion,
        live: &ClusterInfo,
    ) -> PreflightInput {
        let provider_findings = match self.provider.preflight(target).await {
            Ok(found) => found
                .into_iter()
                .map(|mut f| {
                    if f.source.is_empty() {
                        f.source = self.provider.kind().name().to_string();
                    }
                    f
                })
                .collect(),
            Err(e) => vec![
                Finding::new(
                    "preflight.check-failed",
                    Severity::Blocker,
                    format!(
                        "the {} provider's pre-flight could not run: {e}",
                        self.provider.kind()
                    ),
                )
                .remediation("fix the provider error and run again, or override this code")
                .source(self.provider.kind().name().to_string()),
            ],
        };
        let opts = &self.options;
        let remaining = remaining_plan(plan, live);
        let mut input = PreflightInput::for_plan(&remaining)
            .skew_policy(SkewPolicy::for_provider(&self.provider.capabilities()))
            .pools(live.node_pools.clone())
            .manifests(opts.manifests.iter().cloned())
            .drain(DrainAllowances {
                force: opts.drain.force,
                delete_emptydir_data: opts.drain.delete_emptydir_data,
            })
            .provider_findings(provider_findings)
            .overrides(opts.overrides.iter().cloned());
        input.helm_releases = opts.helm_releases;
        input
    }
}

impl RunContext<'_> {
    /// Runs one step; `recorded` is its state in the journal before this attempt.
    pub(crate) async fn execute(
        &self,
        step: &PlanStep,
        recorded: StepState,
    ) -> Result<StepOutcome> {
        let i = step.index;
        match &step.action {
            StepAction::Preflight { target } => self.preflight_step(target, recorded).await,
            StepAction::Backup { control_plane } => {
                self.backup_step(i, control_plane, recorded).await
            }
            StepAction::ControlPlane { from, to } => self.control_plane_step(i, from, to).await,
            StepAction::NodePool {
                pool,
                to,
                management,
                ..
            } => self.pool_step(i, pool, to, *management).await,
            StepAction::Addon {
                name,
                from,
                to,
                control_plane,
            } => self.addon_step(i, name, from, to, control_plane).await,
            StepAction::Validate {
                control_plane,
                pools,
            } => self.validate_step(i, control_plane, pools, recorded).await,
            other => Err(Error::invalid_input(
                format!("plan.steps[{i}]"),
                format!(
                    "this kup does not know how to run a {} step; use the kup that made the plan",
                    other.kind()
                ),
            )),
        }
    }

    async fn preflight_step(
        &self,
        target: &KubeVersion,
        recorded: StepState,
    ) -> Result<StepOutcome> {
        if recorded == StepState::Succeeded {
            return Ok(StepOutcome::Skipped("passed in an earlier run".into()));
        }
        let engine = self.engine;
        let live = self.cluster().await?;
        let known: Vec<String> = self
            .journal
            .read(|j| {
                j.steps
                    .iter()
                    .filter_map(|s| s.operation.as_ref().map(|o| o.id.clone()))
                    .chain(
                        j.nodes
                            .iter()
                            .filter_map(|n| n.operation.as_ref().map(|o| o.id.clone())),
                    )
                    .collect()
            })
            .await;
        if let Some(op) = live.in_progress.iter().find(|o| !known.contains(&o.id)) {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; kup starts nothing while another operation runs"
                ),
                operation: Some(op.id.clone()),
            }
            .into());
        }
        if !remaining_plan(self.plan, &live)
            .steps
            .iter()
            .any(|s| s.action.changes_cluster())
        {
            return Ok(StepOutcome::Skipped(
                "the cluster is already where the plan leads; nothing to check".into(),
            ));
        }
        let input = engine.preflight_input(self.plan, target, &live).await;
        let report = self
            .cancellable("pre-flight", engine.preflight.preflight(&input))
            .await?;
        for finding in &report.findings.findings {
            self.emit(Event::Finding {
                finding: finding.clone(),
            });
        }
        let blockers: Vec<Finding> = report.blockers().cloned().collect();
        if !blockers.is_empty() {
            return Err(Error::PreflightBlocked { blockers });
        }
        Ok(StepOutcome::Done(format!(
            "{} finding(s), no blocker{}",
            report.findings.findings.len(),
            if report.findings.overridden.is_empty() {
                String::new()
            } else {
                format!(
                    " after overriding {}",
                    report
                        .findings
                        .overridden
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )))
    }

    /// The control-plane hop this backup protects: the first control-plane step after it.
    fn protected_hop(&self, index: usize) -> Option<&PlanStep> {
        self.plan
            .steps
            .iter()
            .filter(|s| s.index > index)
            .find(|s| matches!(s.action, StepAction::ControlPlane { .. }))
    }

    async fn backup_step(
        &self,
        index: usize,
        control_plane: &KubeVersion,
        recorded: StepState,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let key = (self.plan.id.clone(), index);
        if recorded.is_done() && engine.took_backup(&key) {
            return Ok(StepOutcome::Skipped("taken earlier in this process".into()));
        }
        let live = self.cluster().await?;
        if live.control_plane.minor_distance(control_plane) < 0 {
            return Ok(StepOutcome::Skipped(format!(
                "the control plane is already at {}, past {control_plane}",
                live.control_plane
            )));
        }
        if let Some(hop) = self.protected_hop(index) {
            let started = self
                .journal
                .read(|j| {
                    j.step(hop.index)
                        .is_some_and(|s| s.state.is_done() || s.operation.is_some())
                })
                .await;
            if started {
                return Ok(StepOutcome::Skipped(format!(
                    "the control-plane hop it protects (step {}) has started",
                    hop.index
                )));
            }
        }
        // A provider may only trust backups it verified itself (kubeadm keeps that in
        // memory), so a resumed run in a new process takes a fresh one.
        let record = engine.provider.backup(&engine.options.backup).await?;
        self.journal
            .update(|j| j.backups.push(record.clone()))
            .await?;
        engine.remember_backup(key);
        self.emit(Event::BackupVerified {
            backup: record.clone(),
        });
        Ok(StepOutcome::Done(format!(
            "backup {} at {} ({} bytes, sha256 {})",
            record.id, record.location, record.size_bytes, record.sha256
        )))
    }

    async fn control_plane_step(
        &self,
        index: usize,
        from: &KubeVersion,
        to: &KubeVersion,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let live = self.cluster().await?;
        let recorded = self
            .journal
            .read(|j| j.step(index).and_then(|s| s.operation.clone()))
            .await;
        if reached(&live.control_plane, to) && recorded.is_none() {
            return Ok(StepOutcome::Skipped(format!(
                "the control plane is already at {}",
                live.control_plane
            )));
        }
        if live.control_plane.minor_distance(from) > 0 {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "the control plane is at {}, behind this hop's start {from}; was it restored? \
                 Make a new plan",
                live.control_plane
            ))));
        }
        let policy = SkewPolicy::for_provider(&engine.provider.capabilities());
        let out_of_skew: Vec<String> = live
            .node_pools
            .iter()
            .filter_map(|p| {
                policy
                    .kubelet_rule_broken(&p.version, to)
                    .map(|rule| format!("node pool {} at {} ({rule})", p.name, p.version))
            })
            .collect();
        if !out_of_skew.is_empty() {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "moving the control plane to {to} would leave kubelets out of skew: {}; \
                 upgrade those nodes first (nodes left cordoned by a stuck drain count too)",
                out_of_skew.join(", ")
            ))));
        }
        let opts = engine.options.control_plane.clone();
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::ControlPlane,
                to: Some(to),
                timeout: engine.options.timeouts.control_plane,
                in_progress: Some(&live.in_progress),
            },
            || async move { engine.provider.upgrade_control_plane(to, &opts).await },
        )
        .await?;
        let after = self.cluster().await?;
        if !reached(&after.control_plane, to) {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "the provider reported the control-plane upgrade to {to} done, but the control \
                 plane reports {}",
                after.control_plane
            ))));
        }
        Ok(StepOutcome::Done(format!(
            "control plane at {}",
            after.control_plane
        )))
    }

    async fn pool_step(
        &self,
        index: usize,
        pool: &str,
        to: &KubeVersion,
        planned: PoolManagement,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let live = self.cluster().await?;
        let Some(live_pool) = live.pool(pool).cloned() else {
            return Err(not_found("node pool", pool, &live.name));
        };
        if !kubelet_not_newer(to, &live.control_plane) {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "node pool {pool} cannot move to {to}: the control plane is at {}, and a \
                 kubelet must never be newer than the API server",
                live.control_plane
            ))));
        }
        let kup_rolled = planned == PoolManagement::Kup
            || live_pool.management == PoolManagement::Kup
            || engine.options.drain_ahead.contains(pool);
        if kup_rolled {
            return self
                .roll_pool(index, &live_pool, to, &live.control_plane)
                .await;
        }
        if live_pool.management == PoolManagement::External {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "node pool {pool} is not managed by {} or kup; upgrade it outside kup",
                live.provider
            ))));
        }
        let recorded = self
            .journal
            .read(|j| j.step(index).and_then(|s| s.operation.clone()))
            .await;
        if reached(&live_pool.version, to) && recorded.is_none() {
            return Ok(StepOutcome::Skipped(format!(
                "node pool {pool} is already at {}",
                live_pool.version
            )));
        }
        let opts = engine.options.pool(pool).clone();
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::NodePool {
                    pool: pool.to_string(),
                },
                to: Some(to),
                timeout: engine.options.timeouts.node_pool,
                in_progress: Some(&live.in_progress),
            },
            || async move { engine.provider.upgrade_node_pool(pool, to, &opts).await },
        )
        .await?;
        let after = self.cluster().await?;
        let version = after
            .pool(pool)
            .map(|p| p.version.clone())
            .ok_or_else(|| not_found("node pool", pool, &after.name))?;
        if !reached(&version, to) {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "the provider reported node pool {pool}'s upgrade to {to} done, but its oldest \
                 kubelet is at {version}"
            ))));
        }
        Ok(StepOutcome::Done(format!("node pool {pool} at {version}")))
    }

    async fn addon_step(
        &self,
        index: usize,
        name: &str,
        from: &str,
        to: &str,
        control_plane: &KubeVersion,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let live = self.cluster().await?;
        let Some(addon) = live.addons.iter().find(|a| a.name == name) else {
            return Err(not_found("add-on", name, &live.name));
        };
        let recorded = self
            .journal
            .read(|j| j.step(index).and_then(|s| s.operation.clone()))
            .await;
        if addon.version == to && recorded.is_none() {
            return Ok(StepOutcome::Skipped(format!(
                "add-on {name} is already at {to}"
            )));
        }
        let upgrade = AddonUpgrade {
            name: name.to_string(),
            from: if addon.version.is_empty() {
                from.to_string()
            } else {
                addon.version.clone()
            },
            to: to.to_string(),
            control_plane: control_plane.clone(),
            current_compatible: false,
        };
        self.emit(Event::AddonUpgrading {
            upgrade: upgrade.clone(),
        });
        let opts = engine.options.addons.clone();
        self.drive_operation(
            OpRequest {
                slot: OpSlot::Step(index),
                target: OperationTarget::Addon {
                    addon: name.to_string(),
                },
                to: None,
                timeout: engine.options.timeouts.addon,
                in_progress: Some(&live.in_progress),
            },
            || async move { engine.provider.upgrade_addon(&upgrade, &opts).await },
        )
        .await?;
        let after = self.cluster().await?;
        let now = after
            .addons
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.version.clone())
            .unwrap_or_default();
        if now != to {
            return Err(Error::Core(kup_core::Error::precondition(format!(
                "the provider reported add-on {name}'s upgrade to {to} done, but it is at {now}"
            ))));
        }
        Ok(StepOutcome::Done(format!("add-on {name} at {to}")))
    }

    async fn validate_step(
        &self,
        index: usize,
        control_plane: &KubeVersion,
        pools: &BTreeMap<String, KubeVersion>,
        recorded: StepState,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        if recorded == StepState::Succeeded {
            return Ok(StepOutcome::Skipped("passed in an earlier run".into()));
        }
        let live = self.cluster().await?;
        if live.control_plane.minor_distance(control_plane) < 0 {
            return Ok(StepOutcome::Skipped(format!(
                "the control plane is already at {}, past this check",
                live.control_plane
            )));
        }
        // Pools already past what this step expects are held to where they are.
        let expected: BTreeMap<String, KubeVersion> = pools
            .iter()
            .map(|(name, want)| {
                let have = live.pool(name).map(|p| &p.version);
                let want = match have {
                    Some(have) if have.minor_distance(want) < 0 => have.to_minor(),
                    _ => want.clone(),
                };
                (name.clone(), want)
            })
            .collect();
        let mut expectation =
            Expectation::from_step(control_plane, &expected, &live.node_pools)?.since(self.started);
        let left: Vec<(String, String)> = self
            .journal
            .read(|j| {
                j.left_cordoned()
                    .map(|n| (n.pool.clone(), n.node.clone()))
                    .collect()
            })
            .await;
        for pool in expectation.pools.iter_mut() {
            let skipped: Vec<&String> = left
                .iter()
                .filter(|(p, _)| *p == pool.name)
                .map(|(_, n)| n)
                .collect();
            if skipped.is_empty() {
                continue;
            }
            // Nodes left cordoned by a stuck drain were not upgraded: they are reported, not
            // validated against the pool's new version.
            let Some(live_pool) = live.pool(&pool.name) else {
                continue;
            };
            let members = engine.nodes.pool_nodes(live_pool).await?;
            pool.nodes = members
                .into_iter()
                .map(|n| n.name)
                .filter(|n| !skipped.contains(&n))
                .collect();
            pool.node_selector = None;
        }
        let report = self
            .cancellable(
                "validation",
                engine.validator.validate(
                    &expectation,
                    &engine.options.validation,
                    &*engine.events,
                ),
            )
            .await?;
        if !report.passed {
            return Err(Error::ValidationFailed {
                step: index,
                node: None,
                failures: report
                    .blockers()
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .collect(),
                timed_out: report.timed_out,
            });
        }
        let mut message = format!(
            "{} consecutive passes in {} round(s)",
            report.consecutive, report.rounds
        );
        if !left.is_empty() {
            message.push_str(&format!(
                "; not upgraded, left cordoned: {}",
                left.iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(StepOutcome::Done(message))
    }
}
