//! Add-on steps: an add-on moved to the version chosen for the control plane at that point.

use std::cmp::Ordering;

use kup_core::{AddonUpgrade, ClusterInfo, Event, KubeVersion, OperationTarget, addon_version_cmp};

use super::{Decision, Facts, Record, RuleInputs, busy, not_found, precondition};
use crate::engine::operation::{OpRequest, OpSlot};
use crate::engine::{RunContext, StepOutcome};
use crate::error::Result;
use crate::journal::Journal;

/// Recorded operation → re-attach; finished in the journal → skip; gone → refuse; at `to`
/// → skip; already *past* `to` (a later step of this plan, or someone else, moved it on) →
/// skip, never moving an add-on back; a provider that manages no add-ons, or another
/// operation running → refuse.
pub(super) fn rule(
    name: &str,
    to: &str,
    facts: &Facts,
    journal: &Journal,
    record: &Record<'_>,
    inputs: &RuleInputs<'_>,
) -> Decision {
    if let Some(settled) = record.settled() {
        return settled;
    }
    let Some(have) = facts.addons.get(name) else {
        return Decision::Refuse(not_found("add-on", name, &facts.cluster));
    };
    if have == to {
        return Decision::Skip(format!("add-on {name} is already at {to}"));
    }
    if addon_version_cmp(have, to) == Some(Ordering::Greater) {
        return Decision::Skip(format!(
            "add-on {name} is at {have}, past {to}; kup never moves an add-on back"
        ));
    }
    if !inputs.caps.managed_addons {
        return Decision::Refuse(
            kup_core::Error::not_supported(
                inputs.provider.clone(),
                format!("add-on upgrades (add-on {name})"),
            )
            .into(),
        );
    }
    let target = OperationTarget::Addon {
        addon: name.to_string(),
    };
    busy(facts, journal, &target, None).unwrap_or(Decision::Run)
}

impl RunContext<'_> {
    pub(super) async fn run_addon(
        &self,
        index: usize,
        name: &str,
        from: &str,
        to: &str,
        control_plane: &KubeVersion,
        live: &ClusterInfo,
    ) -> Result<StepOutcome> {
        let engine = self.engine;
        let Some(addon) = live.addons.iter().find(|a| a.name == name) else {
            return Err(not_found("add-on", name, &live.name));
        };
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
            return Err(precondition(format!(
                "the provider reported add-on {name}'s upgrade to {to} done, but it is at {now}"
            )));
        }
        Ok(StepOutcome::Done(format!("add-on {name} at {to}")))
    }
}
