//! The rules every plan obeys, checked on plans however they were made: fresh from the
//! planner, loaded from a file, or built in code. A plan whose id was recomputed after an edit
//! passes the hash check but not these.
//!
//! Walking the steps in order, with the control plane and every pool at their planned starting
//! versions:
//! - indices are 1, 2, 3… in order;
//! - a control-plane hop starts where the previous one ended (the plan's `from` first) and moves
//!   at most one minor, never back; the last hop ends at the plan's target;
//! - a pool step names a planned pool, starts where that pool stands, never moves it back,
//!   never past the control plane, and never further than the provider's jump limit;
//! - before every hop, every pool stays within the plan's kubelet skew of the new version;
//! - add-on steps are chosen for the control plane at their point of the plan; validation
//!   steps expect the control plane where it stands; pre-flight checks the target.
//!
//! [`UpgradePlan::validate_for`] adds what the provider must be able to do.

use std::collections::BTreeMap;

use super::{PlanKind, StepAction, UpgradePlan};
use crate::cluster::PoolManagement;
use crate::error::{Error, Result};
use crate::provider::{BackupSupport, Capabilities};
use crate::rollback::ControlPlaneRollback;
use crate::skew::SkewPolicy;
use crate::version::KubeVersion;

fn invalid(index: usize, message: String) -> Error {
    Error::invalid_input(
        format!("plan.steps[{index}]"),
        format!("{message}; make a new plan with `kup plan` instead of editing one"),
    )
}

/// A validation step expects the control plane where it stands and only planned pools.
pub(super) fn check_validate(
    control_plane: &KubeVersion,
    expected: &BTreeMap<String, KubeVersion>,
    cp: &KubeVersion,
    pools: &BTreeMap<&str, KubeVersion>,
) -> std::result::Result<(), String> {
    if !control_plane.same_minor(cp) {
        return Err(format!(
            "validates a control plane at {control_plane}, but it is at {cp} at this point of \
             the plan"
        ));
    }
    match expected.keys().find(|p| !pools.contains_key(p.as_str())) {
        Some(unknown) => Err(format!(
            "validates node pool {unknown}, which the plan does not list"
        )),
        None => Ok(()),
    }
}

impl UpgradePlan {
    /// Checks the plan's own rules (see the module docs); the error names the step.
    pub fn validate(&self) -> Result<()> {
        if self.max_kubelet_skew == 0 {
            return Err(Error::invalid_input(
                "plan.max_kubelet_skew",
                "0 allows no kubelet skew at all; plans carry the provider's limit (1 to 3)",
            ));
        }
        let policy = SkewPolicy::for_provider(
            &Capabilities::new().with(|c| c.max_kubelet_skew = self.max_kubelet_skew),
        );
        if self.kind == PlanKind::Rollback {
            return self.validate_rollback(&policy);
        }
        let mut cp = self.from.clone();
        let mut pools: BTreeMap<&str, KubeVersion> = self
            .pools
            .iter()
            .map(|(name, version)| (name.as_str(), version.clone()))
            .collect();
        for (position, step) in self.steps.iter().enumerate() {
            let i = step.index;
            if i != position + 1 {
                return Err(Error::invalid_input(
                    "plan.steps",
                    format!(
                        "step {} stands at position {}; steps are numbered 1, 2, 3… in order",
                        i,
                        position + 1
                    ),
                ));
            }
            match &step.action {
                StepAction::Preflight { target } => {
                    if !target.same_minor(&self.target) {
                        return Err(invalid(
                            i,
                            format!(
                                "pre-flight checks for {target}, but the plan's target is {}",
                                self.target
                            ),
                        ));
                    }
                }
                StepAction::Backup { control_plane } => {
                    if !control_plane.same_minor(&cp) {
                        return Err(invalid(
                            i,
                            format!(
                                "backs up the control plane at {control_plane}, but it is at \
                                 {cp} at this point of the plan"
                            ),
                        ));
                    }
                }
                StepAction::ControlPlane { from, to } => {
                    if !from.same_minor(&cp) {
                        return Err(invalid(
                            i,
                            format!(
                                "the control-plane hop starts at {from}, but the control plane \
                                 is at {cp} at this point of the plan"
                            ),
                        ));
                    }
                    match from.minor_distance(to) {
                        0 | 1 => {}
                        d if d < 0 => {
                            return Err(invalid(
                                i,
                                format!(
                                    "the control-plane hop {from} → {to} goes back; control \
                                     planes are never downgraded"
                                ),
                            ));
                        }
                        d => {
                            return Err(invalid(
                                i,
                                format!(
                                    "the control-plane hop {from} → {to} moves {d} minors; the \
                                     control plane moves one minor at a time"
                                ),
                            ));
                        }
                    }
                    for (pool, version) in &pools {
                        if let Some(rule) = policy.kubelet_rule_broken(version, to) {
                            return Err(invalid(
                                i,
                                format!(
                                    "moving the control plane to {to} leaves node pool {pool} at \
                                     {version} out of skew ({rule})"
                                ),
                            ));
                        }
                    }
                    cp = to.clone();
                }
                StepAction::NodePool { pool, from, to, .. } => {
                    let Some(current) = pools.get_mut(pool.as_str()) else {
                        return Err(invalid(
                            i,
                            format!(
                                "moves node pool {pool}, which the plan does not list (it lists: \
                                 {})",
                                self.pools.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    };
                    if !from.same_minor(current) {
                        return Err(invalid(
                            i,
                            format!(
                                "moves node pool {pool} from {from}, but it is at {current} at \
                                 this point of the plan"
                            ),
                        ));
                    }
                    if to.minor_distance(from) > 0 {
                        return Err(invalid(
                            i,
                            format!("moves node pool {pool} back from {from} to {to}"),
                        ));
                    }
                    if to.minor_distance(&cp) < 0 {
                        return Err(invalid(
                            i,
                            format!(
                                "moves node pool {pool} to {to}, newer than the control plane \
                                 at {cp}; a kubelet is never newer than the API server"
                            ),
                        ));
                    }
                    *current = to.clone();
                }
                StepAction::Addon {
                    name,
                    control_plane,
                    ..
                } => {
                    if !control_plane.same_minor(&cp) {
                        return Err(invalid(
                            i,
                            format!(
                                "moves add-on {name} for a control plane at {control_plane}, \
                                 but it is at {cp} at this point of the plan"
                            ),
                        ));
                    }
                }
                StepAction::PoolRollback { .. }
                | StepAction::Restore { .. }
                | StepAction::ControlPlaneRollback { .. } => {
                    return Err(invalid(
                        i,
                        format!(
                            "is a {} step, which only rollback plans hold",
                            step.action.kind()
                        ),
                    ));
                }
                StepAction::Validate {
                    control_plane,
                    pools: expected,
                } => check_validate(control_plane, expected, &cp, &pools)
                    .map_err(|m| invalid(i, m))?,
            }
        }
        if !cp.same_minor(&self.target) {
            return Err(Error::invalid_input(
                "plan.target",
                format!(
                    "the plan's target is {}, but its control-plane hops end at {cp}; make a new \
                     plan with `kup plan`",
                    self.target
                ),
            ));
        }
        Ok(())
    }

    /// [`UpgradePlan::validate`], and that a provider with `caps` can do every step: the
    /// plan's skew within the provider's, pools moved the way the provider can move them and
    /// no further than its jump limit, add-ons only where it manages them, a backup before
    /// every control-plane hop where it needs one.
    pub fn validate_for(&self, caps: &Capabilities) -> Result<()> {
        self.validate()?;
        if self.max_kubelet_skew > caps.max_kubelet_skew {
            return Err(Error::invalid_input(
                "plan.max_kubelet_skew",
                format!(
                    "the plan allows kubelets {} minors behind, but {} allows {}; make a new \
                     plan for this provider",
                    self.max_kubelet_skew, self.provider, caps.max_kubelet_skew
                ),
            ));
        }
        let mut backed_up = false;
        for step in &self.steps {
            let i = step.index;
            let cannot = |what: &str| {
                invalid(
                    i,
                    format!("{} cannot {what}, which this step needs", self.provider),
                )
            };
            match &step.action {
                StepAction::Backup { .. } => backed_up = true,
                StepAction::ControlPlane { .. } => {
                    if caps.backup == BackupSupport::Required && !backed_up {
                        return Err(invalid(
                            i,
                            format!(
                                "{} needs a verified backup before every control-plane hop, and \
                                 this hop has none before it",
                                self.provider
                            ),
                        ));
                    }
                    backed_up = false;
                }
                StepAction::NodePool {
                    pool,
                    from,
                    to,
                    management,
                    ..
                } => {
                    match management {
                        PoolManagement::Provider if !caps.node_pool_upgrade => {
                            return Err(cannot(&format!("upgrade node pool {pool}")));
                        }
                        PoolManagement::Kup if !caps.node_upgrade => {
                            return Err(cannot(&format!("upgrade node pool {pool}'s nodes")));
                        }
                        PoolManagement::External => {
                            return Err(cannot(&format!(
                                "upgrade node pool {pool}, which it does not manage"
                            )));
                        }
                        _ => {}
                    }
                    if let Some(jump) = caps.max_node_pool_minor_jump
                        && from.minor_distance(to) > i64::from(jump)
                    {
                        return Err(cannot(&format!(
                            "move node pool {pool} {from} → {to} in one step (at most {jump} \
                             minor(s) at a time)"
                        )));
                    }
                }
                StepAction::Addon { name, .. } if !caps.managed_addons => {
                    return Err(cannot(&format!("upgrade add-on {name}")));
                }
                StepAction::PoolRollback {
                    pool, management, ..
                } => match management {
                    PoolManagement::Provider if !caps.node_pool_rollback => {
                        return Err(cannot(&format!("roll node pool {pool} back")));
                    }
                    PoolManagement::Kup if !caps.node_upgrade => {
                        return Err(cannot(&format!("move node pool {pool}'s nodes back")));
                    }
                    PoolManagement::External => {
                        return Err(cannot(&format!(
                            "roll node pool {pool} back, which it does not manage"
                        )));
                    }
                    _ => {}
                },
                StepAction::Restore { .. }
                    if caps.control_plane_rollback != ControlPlaneRollback::RestoreBackup =>
                {
                    return Err(cannot("restore the control plane from a backup"));
                }
                StepAction::ControlPlaneRollback { .. }
                    if caps.control_plane_rollback != ControlPlaneRollback::DuringSoak =>
                {
                    return Err(cannot("roll the control plane back"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::plan::{PLAN_SCHEMA_VERSION, PlanStep, PoolMoveReason};
    use crate::provider::ProviderKind;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn plan(actions: Vec<StepAction>) -> UpgradePlan {
        UpgradePlan {
            schema_version: PLAN_SCHEMA_VERSION,
            id: String::new(),
            kind: crate::plan::PlanKind::Upgrade,
            not_rolled_back: Vec::new(),
            provider: ProviderKind::Eks,
            cluster: "prod".into(),
            from: v("1.33"),
            target: v("1.35"),
            control_plane_only: false,
            max_kubelet_skew: 3,
            pools: [("apps".to_string(), v("1.33"))].into(),
            steps: actions
                .into_iter()
                .enumerate()
                .map(|(i, action)| PlanStep {
                    index: i + 1,
                    action,
                })
                .collect(),
        }
        .seal()
    }

    fn hop(from: &str, to: &str) -> StepAction {
        StepAction::ControlPlane {
            from: v(from),
            to: v(to),
        }
    }

    fn pool(from: &str, to: &str) -> StepAction {
        StepAction::NodePool {
            pool: "apps".into(),
            from: v(from),
            to: v(to),
            management: PoolManagement::Provider,
            reason: PoolMoveReason::Target,
        }
    }

    fn eks() -> Capabilities {
        Capabilities::new().with(|c| {
            c.node_pool_upgrade = true;
            c.managed_addons = true;
        })
    }

    #[test]
    fn a_well_formed_plan_passes() {
        let p = plan(vec![
            StepAction::Preflight { target: v("1.35") },
            hop("1.33", "1.34"),
            hop("1.34", "1.35"),
            pool("1.33", "1.35"),
        ]);
        p.validate_for(&eks()).unwrap();
    }

    #[test]
    fn a_plan_skipping_a_minor_is_refused_naming_the_step() {
        let p = plan(vec![hop("1.33", "1.35")]);
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("plan.steps[1]"), "{err}");
        assert!(err.contains("moves 2 minors"), "{err}");
    }

    #[test]
    fn broken_chains_downgrades_and_skew_are_refused() {
        let cases: Vec<(Vec<StepAction>, &str)> = vec![
            (
                vec![hop("1.33", "1.34"), hop("1.33", "1.34")],
                "starts at 1.33",
            ),
            (vec![hop("1.33", "1.32")], "goes back"),
            (
                vec![
                    hop("1.33", "1.34"),
                    pool("1.33", "1.35"),
                    hop("1.34", "1.35"),
                ],
                "newer than the control plane",
            ),
            (
                vec![
                    hop("1.33", "1.34"),
                    hop("1.34", "1.35"),
                    pool("1.34", "1.35"),
                ],
                "from 1.34",
            ),
            (vec![hop("1.33", "1.34")], "plan.target"),
            (
                vec![
                    hop("1.33", "1.34"),
                    StepAction::Validate {
                        control_plane: v("1.35"),
                        pools: BTreeMap::new(),
                    },
                    hop("1.34", "1.35"),
                ],
                "validates a control plane at 1.35",
            ),
        ];
        for (actions, expected) in cases {
            let err = plan(actions).validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
        let mut far = plan(vec![hop("1.33", "1.34"), hop("1.34", "1.35")]);
        far.pools.insert("old".into(), v("1.31"));
        far.max_kubelet_skew = 2;
        let err = far.validate().unwrap_err().to_string();
        assert!(err.contains("node pool old at 1.31 out of skew"), "{err}");
    }

    #[test]
    fn steps_the_provider_cannot_do_are_refused() {
        let p = plan(vec![
            hop("1.33", "1.34"),
            hop("1.34", "1.35"),
            pool("1.33", "1.35"),
        ]);
        let err = p
            .validate_for(&Capabilities::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot upgrade node pool apps"), "{err}");
        let jumpy = eks().with(|c| c.max_node_pool_minor_jump = Some(1));
        let err = p.validate_for(&jumpy).unwrap_err().to_string();
        assert!(err.contains("at most 1 minor"), "{err}");
        let kubeadm = Capabilities::new().with(|c| c.backup = BackupSupport::Required);
        let err = plan(vec![hop("1.33", "1.34"), hop("1.34", "1.35")])
            .validate_for(&kubeadm)
            .unwrap_err()
            .to_string();
        assert!(err.contains("verified backup"), "{err}");
        let tight = eks().with(|c| c.max_kubelet_skew = 2);
        let err = p.validate_for(&tight).unwrap_err().to_string();
        assert!(err.contains("plan.max_kubelet_skew"), "{err}");
    }
}
