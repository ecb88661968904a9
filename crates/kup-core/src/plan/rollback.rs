//! The rollback planner: from the cluster as it is, what its provider offers to move back,
//! and where an upgrade started, the plan that goes back as far as the provider allows.
//!
//! Order: pools first (a kubelet must never be newer than the API server, so pools go back
//! before the control plane does), then the control plane, then validation. What the provider
//! cannot move back stays, with its reason in the plan; a plan that would leave a kubelet
//! newer than the control plane, or one older than the skew limit allows, is refused.

use std::collections::BTreeMap;

use super::validate::check_validate;
use super::{PLAN_SCHEMA_VERSION, PlanKind, PlanStep, StepAction, UpgradePlan};
use crate::cluster::{ClusterInfo, PoolManagement};
use crate::error::{Error, Result};
use crate::provider::{BackupRecord, Capabilities};
use crate::rollback::{ControlPlaneRollback, RollbackOffer, RollbackPart, RollbackRefusal};
use crate::skew::SkewPolicy;
use crate::version::KubeVersion;

/// Where a rollback returns to, and what it may use.
#[derive(Clone, Debug)]
pub struct RollbackRequest<'a> {
    /// The cluster as it is now.
    pub cluster: &'a ClusterInfo,
    /// The provider's capabilities.
    pub caps: &'a Capabilities,
    /// What the provider offers to move back now.
    pub offer: &'a RollbackOffer,
    /// The control plane's version to return to (where the upgrade started).
    pub control_plane: KubeVersion,
    /// Each pool's version to return to; pools left out stay where they are.
    pub pools: BTreeMap<String, KubeVersion>,
    /// The verified backup to restore, for control planes that go back by restore.
    pub backup: Option<BackupRecord>,
}

/// Whether `have` is newer than `want` (a minor-only `want` matches every patch of it).
fn newer(have: &KubeVersion, want: &KubeVersion) -> bool {
    match have.minor_distance(want) {
        d if d < 0 => true,
        0 => matches!((have.patch(), want.patch()), (Some(h), Some(w)) if h > w),
        _ => false,
    }
}

/// A provider-rolled pool already at `want` whose provider names the release it runs and
/// offers an earlier release of that same version (an EKS node group's previous
/// launch-template version): the step taking it back there.
fn release_rollback(
    pool: &crate::cluster::NodePool,
    want: &KubeVersion,
    part: &RollbackPart,
    offer: &RollbackOffer,
    caps: &Capabilities,
) -> Option<StepAction> {
    if !caps.node_pool_rollback
        || pool.management != PoolManagement::Provider
        || pool.release.is_none()
        || pool.version.minor_distance(want) != 0
    {
        return None;
    }
    let option = offer.options_for(part).find(|o| {
        o.to.minor_distance(&pool.version) == 0 && o.release.is_some() && o.release != pool.release
    })?;
    Some(StepAction::PoolRollback {
        pool: pool.name.clone(),
        from: pool.version.clone(),
        to: option.to.clone(),
        management: PoolManagement::Provider,
        release: option.release.clone(),
        basis: option.basis.clone(),
    })
}

fn refusal(part: RollbackPart, reason: String) -> RollbackRefusal {
    RollbackRefusal { part, reason }
}

/// Plans the way back (see the module docs). Errors name what blocks it; a cluster already
/// where the request points gets a precondition error saying so.
pub fn plan_rollback(request: &RollbackRequest<'_>) -> Result<UpgradePlan> {
    let RollbackRequest {
        cluster,
        caps,
        offer,
        ..
    } = request;
    let provider = cluster.provider.clone();
    let policy = SkewPolicy::for_provider(caps);
    let mut steps = Vec::new();
    let mut refused = Vec::new();
    let mut finals: BTreeMap<String, KubeVersion> = BTreeMap::new();

    for pool in &cluster.node_pools {
        finals.insert(pool.name.clone(), pool.version.clone());
        // A kubeadm control-plane pool's kubelets go back with the control plane's restore.
        if pool.control_plane {
            continue;
        }
        let Some(want) = request.pools.get(&pool.name) else {
            continue;
        };
        let part = RollbackPart::pool(&pool.name);
        if !newer(&pool.version, want) {
            if let Some(step) = release_rollback(pool, want, &part, offer, caps) {
                steps.push(step);
            }
            continue;
        }
        match pool.management {
            PoolManagement::Kup if caps.node_upgrade => {
                steps.push(StepAction::PoolRollback {
                    pool: pool.name.clone(),
                    from: pool.version.clone(),
                    to: want.clone(),
                    management: PoolManagement::Kup,
                    release: None,
                    basis: "kup drains each node and installs the earlier packages".into(),
                });
                finals.insert(pool.name.clone(), want.clone());
            }
            PoolManagement::Provider if caps.node_pool_rollback => {
                match offer
                    .options_for(&part)
                    .find(|o| o.to.matches(want) || want.matches(&o.to))
                {
                    Some(option) => {
                        steps.push(StepAction::PoolRollback {
                            pool: pool.name.clone(),
                            from: pool.version.clone(),
                            to: option.to.clone(),
                            management: PoolManagement::Provider,
                            release: option.release.clone(),
                            basis: option.basis.clone(),
                        });
                        finals.insert(pool.name.clone(), option.to.clone());
                    }
                    None => {
                        let offered: Vec<String> =
                            offer.options_for(&part).map(|o| o.to.to_string()).collect();
                        let reason =
                            offer.refusal(&part).map(str::to_string).unwrap_or_else(|| {
                                if offered.is_empty() {
                                    format!("{provider} offers no way back for this pool now")
                                } else {
                                    format!(
                                        "{provider} offers only {} for this pool, not {want}",
                                        offered.join(", ")
                                    )
                                }
                            });
                        refused.push(refusal(part.clone(), reason));
                    }
                }
            }
            PoolManagement::External => refused.push(refusal(
                part,
                format!(
                    "neither {provider} nor kup manages this pool; roll it back with the tool \
                     that does"
                ),
            )),
            _ => refused.push(refusal(
                part.clone(),
                offer.refusal(&part).map(str::to_string).unwrap_or_else(|| {
                    format!("{provider} cannot move this pool back to an earlier version")
                }),
            )),
        }
    }

    let mut final_cp = cluster.control_plane.clone();
    let want_cp = &request.control_plane;
    if newer(&cluster.control_plane, want_cp) {
        let part = RollbackPart::ControlPlane;
        match caps.control_plane_rollback {
            ControlPlaneRollback::RestoreBackup => {
                let Some(backup) = &request.backup else {
                    return Err(Error::invalid_input(
                        "backup",
                        format!(
                            "the {provider} control plane goes back to {want_cp} by restoring \
                             a verified backup taken at {want_cp}, and none was given; name one \
                             (`kup rollback --backup ID`; the run's journal lists them)"
                        ),
                    ));
                };
                if !(backup.control_plane.matches(want_cp)
                    || want_cp.matches(&backup.control_plane))
                {
                    return Err(Error::invalid_input(
                        "backup",
                        format!(
                            "backup {} was taken at {}, not at {want_cp}; restore a backup \
                             taken where the upgrade started",
                            backup.id, backup.control_plane
                        ),
                    ));
                }
                steps.push(StepAction::Restore {
                    from: cluster.control_plane.clone(),
                    to: backup.control_plane.clone(),
                    backup: backup.clone(),
                    pools: cluster
                        .node_pools
                        .iter()
                        .filter(|p| p.control_plane)
                        .map(|p| p.name.clone())
                        .collect(),
                });
                final_cp = backup.control_plane.clone();
            }
            ControlPlaneRollback::DuringSoak => {
                match offer
                    .options_for(&part)
                    .find(|o| o.to.matches(want_cp) || want_cp.matches(&o.to))
                {
                    Some(option) => {
                        steps.push(StepAction::ControlPlaneRollback {
                            from: cluster.control_plane.clone(),
                            to: option.to.clone(),
                            basis: option.basis.clone(),
                        });
                        final_cp = option.to.clone();
                    }
                    None => refused.push(refusal(
                        part.clone(),
                        offer.refusal(&part).map(str::to_string).unwrap_or_else(|| {
                            format!(
                                "{provider} rolls a control plane back only within the window \
                                 it keeps after an upgrade, and it offers none now"
                            )
                        }),
                    )),
                }
            }
            ControlPlaneRollback::Unsupported => refused.push(refusal(
                part.clone(),
                offer.refusal(&part).map(str::to_string).unwrap_or_else(|| {
                    format!("{provider} cannot downgrade a control plane; it is fixed forward")
                }),
            )),
        }
    }

    // Every kubelet must end within skew of where the control plane ends.
    let mut problems = Vec::new();
    for pool in &cluster.node_pools {
        let version = if pool.control_plane {
            &final_cp
        } else {
            finals.get(&pool.name).unwrap_or(&pool.version)
        };
        if let Some(rule) = policy.kubelet_rule_broken(version, &final_cp) {
            problems.push(format!(
                "node pool {} would end at {version} with the control plane at {final_cp} \
                 ({rule})",
                pool.name
            ));
        }
    }
    if !problems.is_empty() {
        let why: Vec<String> = refused
            .iter()
            .map(|r| format!("{}: {}", r.part, r.reason))
            .collect();
        return Err(Error::precondition(format!(
            "this rollback would break the kubelet skew policy: {}{}",
            problems.join("; "),
            if why.is_empty() {
                String::new()
            } else {
                format!(" (not rolled back: {})", why.join("; "))
            }
        )));
    }
    if steps.is_empty() {
        if refused.is_empty() {
            return Err(Error::precondition(format!(
                "nothing to roll back: cluster {} is at {} with every pool at or before the \
                 versions asked for",
                cluster.name, cluster.control_plane
            )));
        }
        return Err(Error::not_supported(
            provider,
            format!(
                "rolling back cluster {}: {}",
                cluster.name,
                refused
                    .iter()
                    .map(|r| format!("{}: {}", r.part, r.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    let pools_after: BTreeMap<String, KubeVersion> = cluster
        .node_pools
        .iter()
        .map(|p| {
            let v = if p.control_plane {
                final_cp.clone()
            } else {
                finals.get(&p.name).cloned().unwrap_or(p.version.clone())
            };
            (p.name.clone(), v)
        })
        .collect();
    steps.push(StepAction::Validate {
        control_plane: final_cp.clone(),
        pools: pools_after,
    });
    let plan = UpgradePlan {
        schema_version: PLAN_SCHEMA_VERSION,
        id: String::new(),
        kind: PlanKind::Rollback,
        provider,
        cluster: cluster.name.clone(),
        from: cluster.control_plane.clone(),
        target: final_cp,
        control_plane_only: false,
        max_kubelet_skew: policy.kubelet_max_minors,
        pools: cluster.pool_versions(),
        steps: PlanStep::numbered(steps),
        not_rolled_back: refused,
    }
    .seal();
    plan.validate_for(caps)?;
    Ok(plan)
}

impl UpgradePlan {
    /// The rules of a rollback plan, walking its steps with the control plane and every pool
    /// at their planned starting versions: pools go back (never forward, never below the
    /// skew limit of the control plane at that point), the control plane goes back once
    /// (never leaving a kubelet newer than it), validation expects the control plane where it
    /// stands, and the last control-plane version is the plan's target.
    pub(super) fn validate_rollback(&self, policy: &SkewPolicy) -> Result<()> {
        let invalid = |index: usize, message: String| {
            Error::invalid_input(
                format!("plan.steps[{index}]"),
                format!("{message}; make a new plan with `kup rollback` instead of editing one"),
            )
        };
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
                        "step {i} stands at position {}; steps are numbered 1, 2, 3… in order",
                        position + 1
                    ),
                ));
            }
            match &step.action {
                StepAction::PoolRollback { pool, from, to, .. } => {
                    let Some(current) = pools.get_mut(pool.as_str()) else {
                        return Err(invalid(
                            i,
                            format!("rolls back node pool {pool}, which the plan does not list"),
                        ));
                    };
                    if !from.same_minor(current) {
                        return Err(invalid(
                            i,
                            format!(
                                "rolls node pool {pool} back from {from}, but it is at \
                                 {current} at this point of the plan"
                            ),
                        ));
                    }
                    if newer(to, from) {
                        return Err(invalid(
                            i,
                            format!("moves node pool {pool} forward from {from} to {to}"),
                        ));
                    }
                    if let Some(rule) = policy.kubelet_rule_broken(to, &cp) {
                        return Err(invalid(
                            i,
                            format!(
                                "moves node pool {pool} back to {to}, out of skew with the \
                                 control plane at {cp} ({rule})"
                            ),
                        ));
                    }
                    *current = to.clone();
                }
                StepAction::Restore { from, to, .. }
                | StepAction::ControlPlaneRollback { from, to, .. } => {
                    if let StepAction::Restore { pools: moved, .. } = &step.action {
                        for name in moved {
                            match pools.get_mut(name.as_str()) {
                                Some(version) => *version = to.clone(),
                                None => {
                                    return Err(invalid(
                                        i,
                                        format!(
                                            "restores node pool {name}, which the plan does not \
                                             list"
                                        ),
                                    ));
                                }
                            }
                        }
                    }
                    if !from.same_minor(&cp) {
                        return Err(invalid(
                            i,
                            format!(
                                "takes the control plane back from {from}, but it is at {cp} \
                                 at this point of the plan"
                            ),
                        ));
                    }
                    if !newer(from, to) {
                        return Err(invalid(
                            i,
                            format!("takes the control plane from {from} to {to}, not back"),
                        ));
                    }
                    for (pool, version) in &pools {
                        if let Some(rule) = policy.kubelet_rule_broken(version, to) {
                            return Err(invalid(
                                i,
                                format!(
                                    "takes the control plane back to {to} with node pool {pool} \
                                     at {version} ({rule}); roll the pool back first"
                                ),
                            ));
                        }
                    }
                    cp = to.clone();
                }
                StepAction::Validate {
                    control_plane,
                    pools: expected,
                } => check_validate(control_plane, expected, &cp, &pools)
                    .map_err(|m| invalid(i, m))?,
                other => {
                    return Err(invalid(
                        i,
                        format!(
                            "is a {} step, which rollback plans never hold",
                            other.kind()
                        ),
                    ));
                }
            }
        }
        if !cp.same_minor(&self.target) {
            return Err(Error::invalid_input(
                "plan.target",
                format!(
                    "the plan's target is {}, but its steps leave the control plane at {cp}",
                    self.target
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cluster::NodePool;
    use crate::provider::ProviderKind;
    use crate::rollback::RollbackOption;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn pool(name: &str, version: &str, management: PoolManagement, cp: bool) -> NodePool {
        NodePool {
            name: name.into(),
            version: v(version),
            node_count: Some(2),
            management,
            control_plane: cp,
            status: None,
            node_selector: None,
            nodes: Vec::new(),
            release: None,
        }
    }

    fn cluster(provider: ProviderKind, cp: &str, pools: Vec<NodePool>) -> ClusterInfo {
        ClusterInfo {
            provider,
            name: "prod".into(),
            control_plane: v(cp),
            api_servers: Vec::new(),
            node_pools: pools,
            addons: Vec::new(),
            in_progress: Vec::new(),
            status: None,
        }
    }

    fn backup(at: &str) -> BackupRecord {
        BackupRecord {
            id: "etcd-prod-1".into(),
            location: "/var/lib/kup/backups/etcd-prod-1.db".into(),
            taken_at: jiff::Timestamp::UNIX_EPOCH,
            size_bytes: 4096,
            sha256: "ab".repeat(32),
            store_hash: Some(7),
            revision: Some(42),
            total_keys: Some(10),
            control_plane: v(at),
        }
    }

    fn kubeadm_caps() -> Capabilities {
        Capabilities::new().with(|c| {
            c.node_upgrade = true;
            c.control_plane_rollback = ControlPlaneRollback::RestoreBackup;
        })
    }

    /// Plans going back to `to` for the control plane and every pool in `pools`.
    fn back_to(
        live: &ClusterInfo,
        caps: &Capabilities,
        offer: &RollbackOffer,
        to: &str,
        pools: &[&str],
        backup_at: Option<&str>,
    ) -> Result<UpgradePlan> {
        plan_rollback(&RollbackRequest {
            cluster: live,
            caps,
            offer,
            control_plane: v(to),
            pools: pools.iter().map(|p| (p.to_string(), v(to))).collect(),
            backup: backup_at.map(backup),
        })
    }

    /// A kubeadm cluster at `at` with its control-plane pool and a `workers` pool.
    fn kubeadm_with_workers(at: &str) -> ClusterInfo {
        cluster(
            ProviderKind::Kubeadm,
            at,
            vec![
                pool("control-plane", at, PoolManagement::Kup, true),
                pool("workers", at, PoolManagement::Kup, false),
            ],
        )
    }

    #[test]
    fn kubeadm_rolls_workers_back_before_restoring_the_control_plane() {
        let live = kubeadm_with_workers("1.32.3");
        let caps = kubeadm_caps();
        let offer = RollbackOffer::default();
        let plan = back_to(&live, &caps, &offer, "1.30.6", &["workers"], Some("1.30.6")).unwrap();
        assert_eq!(plan.kind, PlanKind::Rollback);
        let kinds: Vec<&str> = plan.steps.iter().map(|s| s.action.kind()).collect();
        assert_eq!(kinds, ["pool-rollback", "restore", "validate"]);
        assert_eq!(plan.target, v("1.30.6"));
        let text = plan.to_json();
        assert_eq!(UpgradePlan::from_json(&text).unwrap(), plan);
    }

    #[test]
    fn a_restore_needs_a_backup_taken_where_the_upgrade_started() {
        let live = cluster(
            ProviderKind::Kubeadm,
            "1.32.3",
            vec![pool("control-plane", "1.32.3", PoolManagement::Kup, true)],
        );
        let caps = kubeadm_caps();
        let offer = RollbackOffer::default();
        let mut request = RollbackRequest {
            cluster: &live,
            caps: &caps,
            offer: &offer,
            control_plane: v("1.30.6"),
            pools: BTreeMap::new(),
            backup: None,
        };
        let err = plan_rollback(&request).unwrap_err().to_string();
        assert!(err.contains("backup") && err.contains("--backup"), "{err}");
        request.backup = Some(backup("1.31.2"));
        let err = plan_rollback(&request).unwrap_err().to_string();
        assert!(err.contains("taken at 1.31.2"), "{err}");
    }

    #[test]
    fn managed_control_planes_stay_with_the_providers_reason_and_pools_go_back() {
        let live = cluster(
            ProviderKind::Aks,
            "1.34.1",
            vec![pool("system", "1.34.1", PoolManagement::Provider, false)],
        );
        let caps = Capabilities::new().with(|c| {
            c.node_pool_upgrade = true;
            c.node_pool_rollback = true;
        });
        let offer = RollbackOffer::default()
            .offer(RollbackOption {
                part: RollbackPart::pool("system"),
                to: v("1.33.4"),
                release: Some("AKSUbuntu-2204gen2-202611.01.0".into()),
                basis: "recentlyUsedVersions entry".into(),
            })
            .refuse(
                RollbackPart::ControlPlane,
                "AKS does not support downgrading a cluster's Kubernetes version",
            );
        let plan = back_to(&live, &caps, &offer, "1.33.4", &["system"], None).unwrap();
        let kinds: Vec<&str> = plan.steps.iter().map(|s| s.action.kind()).collect();
        assert_eq!(kinds, ["pool-rollback", "validate"]);
        assert_eq!(plan.target, v("1.34.1"));
        assert_eq!(plan.not_rolled_back.len(), 1);
        assert!(
            plan.not_rolled_back[0]
                .reason
                .contains("AKS does not support")
        );
    }

    #[test]
    fn a_pool_at_its_version_goes_back_to_an_earlier_release_the_provider_offers() {
        let mut apps = pool("apps", "1.34", PoolManagement::Provider, false);
        apps.release = Some("launch template apps-lt version 6".into());
        let plain = pool("system", "1.34", PoolManagement::Provider, false);
        let live = cluster(ProviderKind::Eks, "1.34", vec![apps, plain]);
        let caps = Capabilities::new().with(|c| {
            c.node_pool_upgrade = true;
            c.node_pool_rollback = true;
        });
        let back = RollbackOption {
            part: RollbackPart::pool("apps"),
            to: v("1.34"),
            release: Some("launch template apps-lt version 5".into()),
            basis: "update history".into(),
        };
        let offer = RollbackOffer::default().offer(back.clone());
        let plan = back_to(&live, &caps, &offer, "1.34", &["apps", "system"], None).unwrap();
        let kinds: Vec<&str> = plan.steps.iter().map(|s| s.action.kind()).collect();
        assert_eq!(kinds, ["pool-rollback", "validate"]);
        assert!(matches!(
            &plan.steps[0].action,
            StepAction::PoolRollback { pool, from, to, release, .. }
                if pool == "apps" && *from == v("1.34") && *to == v("1.34")
                    && *release == back.release
        ));
        // The release it already runs, or a pool that names none, is nothing to do.
        let same = RollbackOffer::default().offer(RollbackOption {
            release: Some("launch template apps-lt version 6".into()),
            ..back.clone()
        });
        let err = back_to(&live, &caps, &same, "1.34", &["apps"], None).unwrap_err();
        assert!(err.to_string().contains("nothing to roll back"), "{err}");
        let no_caps = Capabilities::new().with(|c| c.node_pool_upgrade = true);
        let err = back_to(&live, &no_caps, &offer, "1.34", &["apps"], None).unwrap_err();
        assert!(err.to_string().contains("nothing to roll back"), "{err}");
    }

    #[test]
    fn nothing_the_provider_can_move_back_is_refused_in_its_words() {
        let live = cluster(
            ProviderKind::Eks,
            "1.35",
            vec![pool("apps", "1.35", PoolManagement::Provider, false)],
        );
        let caps = Capabilities::new().with(|c| c.node_pool_upgrade = true);
        let offer = RollbackOffer::default().refuse(
            RollbackPart::ControlPlane,
            "Amazon EKS does not support downgrading a cluster",
        );
        let err = back_to(&live, &caps, &offer, "1.33", &["apps"], None).unwrap_err();
        assert_eq!(err.category(), crate::ErrorCategory::NotSupported);
        let text = err.to_string();
        assert!(text.contains("Amazon EKS does not support"), "{text}");
        assert!(text.contains("node pool apps"), "{text}");
    }

    #[test]
    fn a_pool_left_newer_than_the_restored_control_plane_is_refused() {
        let live = cluster(
            ProviderKind::Kubeadm,
            "1.31.2",
            vec![
                pool("control-plane", "1.31.2", PoolManagement::Kup, true),
                pool("edge", "1.31.2", PoolManagement::External, false),
            ],
        );
        let caps = kubeadm_caps();
        let offer = RollbackOffer::default();
        let err = back_to(&live, &caps, &offer, "1.30.6", &["edge"], Some("1.30.6"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node pool edge") && err.contains("skew"),
            "{err}"
        );
    }

    #[test]
    fn edited_rollback_plans_are_refused_naming_the_step() {
        let live = kubeadm_with_workers("1.32.3");
        let caps = kubeadm_caps();
        let offer = RollbackOffer::default();
        let mut plan =
            back_to(&live, &caps, &offer, "1.30.6", &["workers"], Some("1.30.6")).unwrap();
        // The restore before the workers: their kubelets would be newer than the API server.
        plan.steps.swap(0, 1);
        plan.steps[0].index = 1;
        plan.steps[1].index = 2;
        let err = plan.validate().unwrap_err().to_string();
        assert!(
            err.contains("plan.steps[1]") && err.contains("roll the pool back first"),
            "{err}"
        );
        // Rollback steps are refused in upgrade plans.
        plan.kind = PlanKind::Upgrade;
        let err = plan.validate().unwrap_err().to_string();
        assert!(err.contains("only rollback plans hold"), "{err}");
    }
}
