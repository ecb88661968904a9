//! Pre-flight steps: the checks for the target, run before anything changes. A blocker stops
//! the run here unless its code is overridden.

use kup_core::{ClusterInfo, Event, Finding, KubeVersion, Severity, SkewPolicy, UpgradePlan};
use kup_kube::preflight::{DrainAllowances, PreflightInput, PreflightReport};

use super::{Decision, Facts, Record, known_operations, remaining_plan};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::journal::{Journal, StepState};

/// Passed before → skip; another operation running that this plan's runs did not start →
/// busy; nothing left to change → skip; else run the checks.
pub(super) fn rule(
    facts: &Facts,
    journal: &Journal,
    record: &Record<'_>,
    changes_left: bool,
) -> Decision {
    if record.state == StepState::Succeeded {
        return Decision::Skip("passed in an earlier run".into());
    }
    let known = known_operations(journal);
    if let Some(op) = facts
        .in_progress
        .iter()
        .find(|o| !known.contains(o.id.as_str()))
    {
        return Decision::Refuse(
            kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; kup starts nothing while another operation runs"
                ),
                operation: Some(op.id.clone()),
            }
            .into(),
        );
    }
    if !changes_left {
        return Decision::Skip(
            "the cluster is already where the plan leads; nothing to check".into(),
        );
    }
    Decision::Run
}

impl Engine {
    /// The pre-flight input for what is left of `plan` in the cluster as it is: the
    /// provider's skew policy, the pools, the drain's allowances, the provider's own
    /// findings, the user's overrides.
    pub(crate) async fn preflight_input(
        &self,
        plan: &UpgradePlan,
        target: &KubeVersion,
        live: &ClusterInfo,
        journal: &Journal,
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
        let remaining = remaining_plan(
            plan,
            &Facts::from_live(live),
            journal,
            &self.rule_inputs(plan),
        );
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

    /// Runs the checks; their findings go to the events.
    pub(crate) async fn run_preflight(
        &self,
        plan: &UpgradePlan,
        target: &KubeVersion,
        live: &ClusterInfo,
        journal: &Journal,
    ) -> Result<PreflightReport> {
        let input = self.preflight_input(plan, target, live, journal).await;
        let report = self.preflight.preflight(&input).await?;
        for finding in &report.findings.findings {
            self.events.emit(Event::Finding {
                finding: finding.clone(),
            });
        }
        Ok(report)
    }
}

/// What a run makes of a pre-flight report: blockers stop it ([`Error::PreflightBlocked`]),
/// otherwise a one-line summary for the journal.
pub(crate) fn verdict(report: &PreflightReport) -> Result<String> {
    let blockers: Vec<Finding> = report.blockers().cloned().collect();
    if !blockers.is_empty() {
        return Err(Error::PreflightBlocked { blockers });
    }
    let overridden = &report.findings.overridden;
    Ok(format!(
        "{} finding(s), no blocker{}",
        report.findings.findings.len(),
        if overridden.is_empty() {
            String::new()
        } else {
            format!(
                " after overriding {}",
                overridden.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    ))
}
