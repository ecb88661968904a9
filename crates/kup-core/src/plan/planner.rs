//! The path planner: control plane one minor per hop, node pools as rarely as skew allows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{PLAN_SCHEMA_VERSION, PlanStep, PoolMoveReason, StepAction, UpgradePlan};
use crate::cluster::{AddonUpgrade, AvailableVersion, ClusterInfo, PoolManagement};
use crate::error::{PlanError, Result};
use crate::provider::{BackupSupport, Capabilities};
use crate::skew::SkewPolicy;
use crate::version::KubeVersion;

/// What the user asked for beyond the target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Move only the control plane (and pools only where skew forces it… which is refused:
    /// a control-plane-only plan never touches pools, so a hop that would break skew fails).
    #[serde(default)]
    pub control_plane_only: bool,
    /// Only these pools move; the others stay (and must stay in skew). `None`: all pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<String>>,
    /// Leave add-ons alone.
    #[serde(default)]
    pub skip_addons: bool,
}

/// Everything the planner needs, gathered beforehand (the planner does no I/O).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// The cluster as it is.
    pub cluster: ClusterInfo,
    /// The requested target (`1.33` means the newest offered build of 1.33).
    pub target: KubeVersion,
    /// What the provider offers.
    pub offered: Vec<AvailableVersion>,
    /// What the provider can do.
    pub capabilities: Capabilities,
    /// Add-on recommendations for the control-plane versions of the path (see
    /// [`control_plane_path`]); versions without recommendations get no add-on steps.
    #[serde(default)]
    pub addon_upgrades: Vec<AddonUpgrade>,
    /// The user's options.
    #[serde(default)]
    pub options: PlanOptions,
}

fn offered_list(offered: &[AvailableVersion]) -> String {
    let mut versions: Vec<&KubeVersion> = offered
        .iter()
        .filter(|o| o.for_control_plane())
        .map(|o| &o.version)
        .collect();
    versions.sort_by(|a, b| a.cmp_build(b));
    versions.dedup_by(|a, b| a.same_build(b));
    if versions.is_empty() {
        return "none".into();
    }
    versions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest offered control-plane build matching `request`.
fn newest_matching<'a>(
    offered: &'a [AvailableVersion],
    request: &KubeVersion,
    for_nodes: bool,
) -> Option<&'a KubeVersion> {
    offered
        .iter()
        .filter(|o| {
            if for_nodes {
                o.for_nodes()
            } else {
                o.for_control_plane()
            }
        })
        .map(|o| &o.version)
        .filter(|v| v.matches(request))
        .max_by(|a, b| a.cmp_build(b))
}

/// The control-plane versions from `current` (exclusive) to `target` (inclusive): one per
/// minor, the newest offered build of each intermediate minor and the target exactly.
/// An empty path means the control plane is already at the target.
pub fn control_plane_path(
    current: &KubeVersion,
    target: &KubeVersion,
    offered: &[AvailableVersion],
    capabilities: &Capabilities,
) -> Result<Vec<KubeVersion>> {
    path_for(current, target, offered, capabilities, None)
}

fn path_for(
    current: &KubeVersion,
    target: &KubeVersion,
    offered: &[AvailableVersion],
    capabilities: &Capabilities,
    provider: Option<&crate::ProviderKind>,
) -> Result<Vec<KubeVersion>> {
    let provider = provider
        .cloned()
        .unwrap_or_else(|| crate::ProviderKind::Other("the provider".into()));
    let distance = current.minor_distance(target);
    if distance < 0 || (distance == 0 && target.patch().is_some() && target < current) {
        return Err(PlanError::Downgrade {
            current: current.to_string(),
            target: target.to_string(),
        }
        .into());
    }
    if target.major() != current.major() {
        return Err(PlanError::ProviderCannot {
            provider,
            operation: format!("upgrade across major versions ({current} → {target})"),
            instead: "choose a target with the same major version".into(),
        }
        .into());
    }
    let not_offered = |version: &KubeVersion, needed_for: String| PlanError::NotOffered {
        provider: provider.clone(),
        version: version.to_string(),
        needed_for,
        offered: offered_list(offered),
    };
    let resolved_target = if capabilities.control_plane_patch_selectable || target.patch().is_some()
    {
        newest_matching(offered, target, false)
            .cloned()
            .ok_or_else(|| not_offered(target, String::new()))?
    } else {
        // The provider names minors only (EKS): the target is the minor it offers.
        newest_matching(offered, target, false)
            .map(KubeVersion::to_minor)
            .ok_or_else(|| not_offered(target, String::new()))?
    };

    let mut path = Vec::new();
    let mut at = current.clone();
    for _ in 0..distance {
        let minor = at.next_minor();
        if minor.same_minor(&resolved_target) {
            break;
        }
        let hop = newest_matching(offered, &minor, false).ok_or_else(|| {
            not_offered(
                &minor,
                format!(" (needed as an intermediate hop towards {resolved_target})"),
            )
        })?;
        let hop = if capabilities.control_plane_patch_selectable {
            hop.clone()
        } else {
            hop.to_minor()
        };
        path.push(hop.clone());
        at = hop;
    }
    let already_there = if resolved_target.patch().is_none() {
        current.same_minor(&resolved_target)
    } else {
        current >= &resolved_target
    };
    if !already_there {
        path.push(resolved_target);
    }
    Ok(path)
}

/// Where a pool stands while the plan is built.
struct PoolState {
    name: String,
    version: KubeVersion,
    management: PoolManagement,
    moves: bool,
}

/// Makes a plan. Rejections say what to do instead.
pub fn plan(request: &PlanRequest) -> Result<UpgradePlan> {
    let cluster = &request.cluster;
    let caps = &request.capabilities;
    let opts = &request.options;
    let policy = SkewPolicy::for_provider(caps);
    let provider = cluster.provider.clone();
    let current = &cluster.control_plane;

    // Validate the pool selection before anything else.
    if let Some(selected) = &opts.pools {
        let known: BTreeSet<&str> = cluster.node_pools.iter().map(|p| p.name.as_str()).collect();
        for name in selected {
            if !known.contains(name.as_str()) {
                return Err(PlanError::UnknownPool {
                    pool: name.clone(),
                    known: known.iter().copied().collect::<Vec<_>>().join(", "),
                }
                .into());
            }
        }
    }
    for pool in &cluster.node_pools {
        if pool.version.minor_distance(current) < 0 {
            return Err(PlanError::PoolNewerThanControlPlane {
                pool: pool.name.clone(),
                pool_version: pool.version.to_string(),
                control_plane: current.to_string(),
            }
            .into());
        }
    }

    let path = path_for(
        current,
        &request.target,
        &request.offered,
        caps,
        Some(&provider),
    )?;
    if !path.is_empty() && !caps.control_plane_upgrade {
        return Err(PlanError::ProviderCannot {
            provider: provider.clone(),
            operation: format!("upgrade the control plane ({current} → {})", request.target),
            instead: caps.upgrade_tool.clone().unwrap_or_else(|| {
                "upgrade it with the cluster's own tool; kup checks before (kup preflight) \
                 and validates after (kup validate)"
                    .into()
            }),
        }
        .into());
    }
    let final_cp = path.last().cloned().unwrap_or_else(|| current.clone());

    let mut pools: Vec<PoolState> = cluster
        .node_pools
        .iter()
        .map(|p| PoolState {
            name: p.name.clone(),
            version: p.version.clone(),
            management: p.management,
            moves: !opts.control_plane_only
                && p.management != PoolManagement::External
                && opts
                    .pools
                    .as_ref()
                    .is_none_or(|sel| sel.iter().any(|s| s == &p.name)),
        })
        .collect();

    // Pools that stay must stay in skew for the whole path.
    for pool in pools.iter().filter(|p| !p.moves) {
        let Some(breaking) = path
            .iter()
            .find(|hop| !policy.kubelet_fits(&pool.version, hop))
        else {
            continue;
        };
        let rule = policy
            .kubelet_rule_broken(&pool.version, breaking)
            .map(|r| r.to_string())
            .unwrap_or_default();
        let max_target = max_target_for(&pool.version, &policy, current, &path);
        if pool.management == PoolManagement::External {
            return Err(PlanError::ProviderCannot {
                provider: provider.clone(),
                operation: format!(
                    "upgrade node pool {} ({}, not managed by {provider})",
                    pool.name, pool.version
                ),
                instead: format!(
                    "it would fall out of skew when the control plane reaches {breaking} \
                     ({rule}); upgrade or replace those nodes first, or choose a target of \
                     {max_target} or older"
                ),
            }
            .into());
        }
        return Err(PlanError::ExcludedPoolBlocks {
            pool: pool.name.clone(),
            pool_version: pool.version.to_string(),
            control_plane: breaking.to_string(),
            rule,
            max_target,
        }
        .into());
    }

    // Pools that move need the provider to be able to move them.
    for pool in pools.iter().filter(|p| p.moves) {
        let needs_move = !at_target(&pool.version, &final_cp)
            || path
                .iter()
                .any(|hop| !policy.kubelet_fits(&pool.version, hop));
        if !needs_move {
            continue;
        }
        let able = match pool.management {
            PoolManagement::Provider => caps.node_pool_upgrade,
            PoolManagement::Kup => caps.node_upgrade,
            PoolManagement::External => false,
        };
        if !able {
            return Err(PlanError::ProviderCannot {
                provider: provider.clone(),
                operation: format!("upgrade node pool {}", pool.name),
                instead: "upgrade it outside kup, or plan with --control-plane-only".into(),
            }
            .into());
        }
    }

    let ctx = MoveContext {
        provider: &provider,
        caps,
        path: &path,
        start: current,
        offered: &request.offered,
    };
    let mut steps: Vec<StepAction> = vec![StepAction::Preflight {
        target: final_cp.clone(),
    }];
    let mut addons: BTreeMap<String, String> = cluster
        .addons
        .iter()
        .filter(|a| a.managed)
        .map(|a| (a.name.clone(), a.version.clone()))
        .collect();
    let plan_addons = caps.managed_addons && !opts.skip_addons;

    // Pools already out of skew move first.
    for pool in pools.iter_mut().filter(|p| p.moves) {
        if !policy.kubelet_fits(&pool.version, current) {
            move_pool(
                &ctx,
                pool,
                current,
                PoolMoveReason::AlreadyOutOfSkew,
                &mut steps,
            )?;
        }
    }

    let mut cp = current.clone();
    for hop in &path {
        for pool in pools.iter_mut().filter(|p| p.moves) {
            if !policy.kubelet_fits(&pool.version, hop) {
                move_pool(
                    &ctx,
                    pool,
                    &cp,
                    PoolMoveReason::Skew {
                        before_control_plane: hop.clone(),
                    },
                    &mut steps,
                )?;
            }
        }
        if caps.backup == BackupSupport::Required {
            steps.push(StepAction::Backup {
                control_plane: cp.clone(),
            });
        }
        steps.push(StepAction::ControlPlane {
            from: cp.clone(),
            to: hop.clone(),
        });
        cp = hop.clone();
        if plan_addons {
            for rec in request
                .addon_upgrades
                .iter()
                .filter(|r| r.control_plane.same_minor(hop))
            {
                let Some(installed) = addons.get_mut(&rec.name) else {
                    continue;
                };
                if !addon_works(rec, installed) && *installed != rec.to {
                    steps.push(StepAction::Addon {
                        name: rec.name.clone(),
                        from: installed.clone(),
                        to: rec.to.clone(),
                        control_plane: hop.clone(),
                    });
                    *installed = rec.to.clone();
                }
            }
        }
        let is_last = Some(hop) == path.last();
        if !is_last {
            steps.push(validate_step(&cp, &pools));
        }
    }

    for pool in pools.iter_mut().filter(|p| p.moves) {
        if !at_target(&pool.version, &final_cp) {
            move_pool(&ctx, pool, &final_cp, PoolMoveReason::Target, &mut steps)?;
        }
    }
    if plan_addons {
        for rec in request
            .addon_upgrades
            .iter()
            .filter(|r| r.control_plane.same_minor(&final_cp))
        {
            if let Some(installed) = addons.get_mut(&rec.name)
                && *installed != rec.to
                && newer_addon(&rec.to, installed)
            {
                steps.push(StepAction::Addon {
                    name: rec.name.clone(),
                    from: installed.clone(),
                    to: rec.to.clone(),
                    control_plane: final_cp.clone(),
                });
                *installed = rec.to.clone();
            }
        }
    }
    steps.push(validate_step(&final_cp, &pools));

    let plan = UpgradePlan {
        schema_version: PLAN_SCHEMA_VERSION,
        id: String::new(),
        kind: super::PlanKind::Upgrade,
        not_rolled_back: Vec::new(),
        provider,
        cluster: cluster.name.clone(),
        from: current.clone(),
        target: final_cp,
        control_plane_only: opts.control_plane_only,
        max_kubelet_skew: policy.kubelet_max_minors,
        pools: cluster.pool_versions(),
        steps: PlanStep::numbered(steps),
    }
    .seal();
    // The same rules a loaded plan must pass: a planner bug surfaces here, not in a run.
    plan.validate_for(caps)?;
    Ok(plan)
}

/// A pool is at the target when it matches it (a minor-only target matches every patch).
fn at_target(pool: &KubeVersion, target: &KubeVersion) -> bool {
    pool.matches(target) || (target.patch().is_some() && pool == target)
}

fn addon_works(rec: &AddonUpgrade, installed: &str) -> bool {
    if installed == rec.from {
        rec.current_compatible
    } else {
        // The installed version was chosen by an earlier step for an older control plane.
        // Treat it as compatible only when it is at least the recommendation's version.
        !newer_addon(&rec.to, installed)
    }
}

/// Whether add-on version `a` is newer than `b` (semver after an optional `v`; falling back to
/// a plain comparison when either is not semver).
fn newer_addon(a: &str, b: &str) -> bool {
    crate::cluster::addon_version_cmp(a, b).map_or(a != b, |o| o.is_gt())
}

/// What pool moves need to know about the plan being built.
struct MoveContext<'a> {
    provider: &'a crate::ProviderKind,
    caps: &'a Capabilities,
    path: &'a [KubeVersion],
    start: &'a KubeVersion,
    offered: &'a [AvailableVersion],
}

fn move_pool(
    ctx: &MoveContext<'_>,
    pool: &mut PoolState,
    to: &KubeVersion,
    reason: PoolMoveReason,
    steps: &mut Vec<StepAction>,
) -> Result<()> {
    let MoveContext {
        provider,
        caps,
        path,
        start,
        offered,
    } = *ctx;
    // With a jump limit, pass through intermediate minors: the control plane's own hop
    // versions where the path has them, else the newest build offered for nodes.
    while !at_target(&pool.version, to) {
        let remaining = pool.version.minor_distance(to);
        let next = match caps.max_node_pool_minor_jump {
            Some(jump) if remaining > i64::from(jump) => {
                let minor = KubeVersion::minor_version(
                    pool.version.major(),
                    pool.version.minor() + jump.max(1),
                );
                path.iter()
                    .chain(std::iter::once(start))
                    .find(|v| v.same_minor(&minor))
                    .cloned()
                    .or_else(|| newest_matching(offered, &minor, true).cloned())
                    .ok_or_else(|| PlanError::NotOffered {
                        provider: provider.clone(),
                        version: minor.to_string(),
                        needed_for: format!(
                            " (needed to move node pool {} one step at a time)",
                            pool.name
                        ),
                        offered: offered_list(offered),
                    })?
            }
            _ => to.clone(),
        };
        steps.push(StepAction::NodePool {
            pool: pool.name.clone(),
            from: pool.version.clone(),
            to: next.clone(),
            management: pool.management,
            reason: reason.clone(),
        });
        pool.version = next;
    }
    Ok(())
}

fn validate_step(cp: &KubeVersion, pools: &[PoolState]) -> StepAction {
    StepAction::Validate {
        control_plane: cp.clone(),
        pools: pools
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect(),
    }
}

/// The newest hop of `path` a pool at `version` can stay in skew with.
fn max_target_for(
    version: &KubeVersion,
    policy: &SkewPolicy,
    current: &KubeVersion,
    path: &[KubeVersion],
) -> String {
    let mut best = current.clone();
    for hop in path {
        if !policy.kubelet_fits(version, hop) {
            break;
        }
        best = hop.clone();
    }
    best.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cluster::{Addon, AvailableVersion, NodePool, SupportStatus};
    use crate::error::Error;
    use crate::provider::ProviderKind;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn offered(versions: &[&str]) -> Vec<AvailableVersion> {
        versions
            .iter()
            .map(|s| AvailableVersion::new(v(s), SupportStatus::Standard))
            .collect()
    }

    fn caps() -> Capabilities {
        Capabilities {
            node_pool_upgrade: true,
            ..Capabilities::default()
        }
    }

    fn cluster(cp: &str, pools: &[(&str, &str)]) -> ClusterInfo {
        ClusterInfo {
            provider: ProviderKind::Gke,
            name: "prod".into(),
            control_plane: v(cp),
            api_servers: vec![],
            node_pools: pools
                .iter()
                .map(|(n, ver)| NodePool::managed(*n, v(ver)))
                .collect(),
            addons: vec![],
            in_progress: vec![],
            status: None,
        }
    }

    fn every_patch() -> Vec<AvailableVersion> {
        let mut all = Vec::new();
        for minor in 24..=37 {
            for patch in [0, 3, 7] {
                all.push(AvailableVersion::new(
                    KubeVersion::new(1, minor, patch),
                    SupportStatus::Standard,
                ));
            }
        }
        all
    }

    fn request(cluster: ClusterInfo, target: &str) -> PlanRequest {
        PlanRequest {
            cluster,
            target: v(target),
            offered: every_patch(),
            capabilities: caps(),
            addon_upgrades: vec![],
            options: PlanOptions::default(),
        }
    }

    /// The plan as compact lines, e.g. `cp 1.30.0>1.31.7`, `pool a 1.30.0>1.31.7 skew`.
    fn lines(plan: &UpgradePlan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| match &s.action {
                StepAction::Preflight { target } => format!("preflight {target}"),
                StepAction::Backup { control_plane } => format!("backup {control_plane}"),
                StepAction::ControlPlane { from, to } => format!("cp {from}>{to}"),
                StepAction::NodePool {
                    pool,
                    from,
                    to,
                    reason,
                    ..
                } => {
                    let why = match reason {
                        PoolMoveReason::Skew { .. } => "skew",
                        PoolMoveReason::AlreadyOutOfSkew => "fix",
                        PoolMoveReason::Target => "target",
                    };
                    format!("pool {pool} {from}>{to} {why}")
                }
                StepAction::Addon { name, from, to, .. } => format!("addon {name} {from}>{to}"),
                StepAction::Validate { control_plane, .. } => format!("validate {control_plane}"),
                other => format!("{} {other}", other.kind()),
            })
            .collect()
    }

    #[test]
    fn one_minor() {
        let plan = plan(&request(cluster("1.30.3", &[("a", "1.30.3")]), "1.31.7")).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.31.7",
                "cp 1.30.3>1.31.7",
                "pool a 1.30.3>1.31.7 target",
                "validate 1.31.7"
            ]
        );
        assert_eq!(plan.target, v("1.31.7"));
    }

    #[test]
    fn minor_only_target_picks_newest_patch_and_intermediates_use_newest_patch() {
        let plan = plan(&request(cluster("1.30.3", &[("a", "1.30.3")]), "1.32")).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.32.7",
                "cp 1.30.3>1.31.7",
                "validate 1.31.7",
                "cp 1.31.7>1.32.7",
                "pool a 1.30.3>1.32.7 target",
                "validate 1.32.7"
            ]
        );
    }

    #[test]
    fn several_minors_with_exact_target_patch() {
        let plan = plan(&request(cluster("1.30.3", &[("a", "1.30.3")]), "1.33.3")).unwrap();
        let hops: Vec<String> = plan
            .control_plane_hops()
            .map(|s| s.action.to_string())
            .collect();
        assert_eq!(
            hops,
            [
                "control plane 1.30.3 → 1.31.7",
                "control plane 1.31.7 → 1.32.7",
                "control plane 1.32.7 → 1.33.3"
            ]
        );
        // Pool at 1.30 stays in skew up to 1.33 (3 minors): one upgrade, at the end.
        assert_eq!(plan.pool_upgrades().count(), 1);
    }

    #[test]
    fn mixed_pools_thirty_to_thirty_seven() {
        // The worked example: CP 1.30, pools 1.30 and 1.29, target 1.37, kubelet skew 3.
        let plan = plan(&request(
            cluster("1.30.0", &[("new", "1.30.0"), ("old", "1.29.0")]),
            "1.37.0",
        ))
        .unwrap();
        let l = lines(&plan);
        let idx = |needle: &str| l.iter().position(|x| x == needle).unwrap();
        // old (1.29) must move before the hop to 1.33, to the CP's version then (1.32.7).
        assert!(idx("pool old 1.29.0>1.32.7 skew") < idx("cp 1.32.7>1.33.7"));
        assert!(idx("cp 1.31.7>1.32.7") < idx("pool old 1.29.0>1.32.7 skew"));
        // new (1.30) before the hop to 1.34.
        assert!(idx("pool new 1.30.0>1.33.7 skew") < idx("cp 1.33.7>1.34.7"));
        assert!(idx("pool old 1.32.7>1.35.7 skew") < idx("cp 1.35.7>1.36.7"));
        assert!(idx("pool new 1.33.7>1.36.7 skew") < idx("cp 1.36.7>1.37.0"));
        assert!(l.contains(&"pool old 1.35.7>1.37.0 target".to_string()));
        assert!(l.contains(&"pool new 1.36.7>1.37.0 target".to_string()));
        assert_eq!(plan.pool_upgrades().count(), 6);
        assert_eq!(plan.control_plane_hops().count(), 7);
    }

    #[test]
    fn control_plane_only_leaves_pools() {
        let mut req = request(cluster("1.30.3", &[("a", "1.30.3")]), "1.32.7");
        req.options.control_plane_only = true;
        let plan = plan(&req).unwrap();
        assert_eq!(plan.pool_upgrades().count(), 0);
        assert!(plan.control_plane_only);
        // ...and refuses a target that would leave the pool out of skew.
        req.target = v("1.34.0");
        let err = super::plan(&req).unwrap_err();
        assert!(matches!(
            err,
            Error::Plan(PlanError::ExcludedPoolBlocks { .. })
        ));
        let text = err.to_string();
        assert!(
            text.contains("1.34.0") && text.contains("1.33.7 or older"),
            "{text}"
        );
    }

    #[test]
    fn selected_pools_only() {
        let mut req = request(
            cluster("1.30.3", &[("a", "1.30.3"), ("b", "1.30.3")]),
            "1.31.7",
        );
        req.options.pools = Some(vec!["b".into()]);
        let plan = plan(&req).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.31.7",
                "cp 1.30.3>1.31.7",
                "pool b 1.30.3>1.31.7 target",
                "validate 1.31.7"
            ]
        );
    }

    #[test]
    fn rejections_say_what_to_do() {
        // downgrade
        let err = plan(&request(cluster("1.31.3", &[]), "1.30.7")).unwrap_err();
        assert!(matches!(err, Error::Plan(PlanError::Downgrade { .. })));
        assert!(
            err.to_string()
                .contains("choose a target of 1.31.3 or newer")
        );
        let err = plan(&request(cluster("1.31.7", &[]), "1.31.3")).unwrap_err();
        assert!(matches!(err, Error::Plan(PlanError::Downgrade { .. })));
        // target not offered
        let err = plan(&request(cluster("1.30.3", &[]), "1.31.5")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Plan(PlanError::NotOffered { .. })));
        assert!(text.contains("1.31.5") && text.contains("1.31.7"), "{text}");
        // intermediate minor not offered
        let mut req = request(cluster("1.30.3", &[]), "1.32.0");
        req.offered = offered(&["1.30.3", "1.32.0"]);
        let text = plan(&req).unwrap_err().to_string();
        assert!(
            text.contains("1.31") && text.contains("intermediate hop"),
            "{text}"
        );
        // pool newer than control plane
        let err = plan(&request(cluster("1.30.3", &[("a", "1.31.0")]), "1.31.7")).unwrap_err();
        assert!(matches!(
            err,
            Error::Plan(PlanError::PoolNewerThanControlPlane { .. })
        ));
        assert!(
            err.to_string()
                .contains("Upgrade the control plane to 1.31.0 first")
        );
        // unknown pool
        let mut req = request(cluster("1.30.3", &[("a", "1.30.3")]), "1.31.7");
        req.options.pools = Some(vec!["gpu".into()]);
        let text = plan(&req).unwrap_err().to_string();
        assert!(
            text.contains("\"gpu\"") && text.contains("the cluster has: a"),
            "{text}"
        );
        // provider cannot move pools
        let mut req = request(cluster("1.30.3", &[("a", "1.30.3")]), "1.31.7");
        req.capabilities.node_pool_upgrade = false;
        let err = plan(&req).unwrap_err();
        assert!(matches!(err, Error::Plan(PlanError::ProviderCannot { .. })));
        // provider that does not move the control plane names the tool that does
        let mut req = request(cluster("1.30.3", &[("a", "1.30.3")]), "1.31.7");
        req.capabilities.control_plane_upgrade = false;
        req.capabilities.upgrade_tool = Some("k3s's installer upgrades k3s".into());
        let err = plan(&req).unwrap_err();
        assert_eq!(err.category(), crate::ErrorCategory::NotSupported);
        let text = err.to_string();
        assert!(
            text.contains("upgrade the control plane (1.30.3 → 1.31.7)")
                && text.contains("k3s's installer"),
            "{text}"
        );
        // external pool that would fall out of skew
        let mut c = cluster("1.30.3", &[("karpenter", "1.30.3")]);
        c.node_pools[0].management = PoolManagement::External;
        let text = plan(&request(c, "1.34.0")).unwrap_err().to_string();
        assert!(
            text.contains("not managed by GKE") && text.contains("1.33.7 or older"),
            "{text}"
        );
    }

    #[test]
    fn pools_already_out_of_skew_move_first() {
        let plan = plan(&request(cluster("1.30.3", &[("a", "1.26.0")]), "1.31.7")).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.31.7",
                "pool a 1.26.0>1.30.3 fix",
                "cp 1.30.3>1.31.7",
                "pool a 1.30.3>1.31.7 target",
                "validate 1.31.7"
            ]
        );
    }

    #[test]
    fn minor_only_provider_keeps_minors_and_matches_kubelet_builds() {
        let mut req = request(cluster("1.30", &[("ng", "1.30.4-eks-a1b2c3")]), "1.32");
        req.cluster.provider = ProviderKind::Eks;
        req.offered = offered(&["1.30", "1.31", "1.32", "1.33"]);
        req.capabilities.control_plane_patch_selectable = false;
        let plan = plan(&req).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.32",
                "cp 1.30>1.31",
                "validate 1.31",
                "cp 1.31>1.32",
                "pool ng 1.30.4-eks-a1b2c3>1.32 target",
                "validate 1.32"
            ]
        );
        // Already there: nothing but checks.
        let mut req2 = req.clone();
        req2.cluster.control_plane = v("1.32");
        req2.cluster.node_pools[0].version = v("1.32.1-eks-ffff");
        let plan = super::plan(&req2).unwrap();
        assert_eq!(lines(&plan), ["preflight 1.32", "validate 1.32"]);
    }

    #[test]
    fn backups_precede_every_control_plane_hop_when_required() {
        let mut req = request(cluster("1.30.3", &[]), "1.32.0");
        req.capabilities.backup = BackupSupport::Required;
        let plan = plan(&req).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.32.0",
                "backup 1.30.3",
                "cp 1.30.3>1.31.7",
                "validate 1.31.7",
                "backup 1.31.7",
                "cp 1.31.7>1.32.0",
                "validate 1.32.0"
            ]
        );
    }

    #[test]
    fn jump_limit_moves_pools_one_minor_at_a_time() {
        let mut req = request(cluster("1.30.3", &[("w", "1.29.0")]), "1.32.0");
        req.capabilities.max_node_pool_minor_jump = Some(1);
        req.capabilities.node_upgrade = true;
        req.cluster.node_pools[0].management = PoolManagement::Kup;
        let plan = plan(&req).unwrap();
        let pools: Vec<String> = lines(&plan)
            .into_iter()
            .filter(|l| l.starts_with("pool"))
            .collect();
        assert_eq!(
            pools,
            [
                "pool w 1.29.0>1.30.3 target",
                "pool w 1.30.3>1.31.7 target",
                "pool w 1.31.7>1.32.0 target"
            ]
        );
    }

    #[test]
    fn addons_follow_the_hop_that_needs_them_and_end_at_the_recommendation() {
        let mut req = request(cluster("1.30", &[]), "1.32");
        req.cluster.provider = ProviderKind::Eks;
        req.offered = offered(&["1.30", "1.31", "1.32"]);
        req.capabilities.control_plane_patch_selectable = false;
        req.capabilities.managed_addons = true;
        req.cluster.addons = vec![
            Addon {
                name: "kube-proxy".into(),
                version: "v1.30.0-eksbuild.3".into(),
                managed: true,
            },
            Addon {
                name: "coredns".into(),
                version: "v1.11.1-eksbuild.9".into(),
                managed: true,
            },
        ];
        let rec = |name: &str, from: &str, to: &str, cp: &str, ok: bool| AddonUpgrade {
            name: name.into(),
            from: from.into(),
            to: to.into(),
            control_plane: v(cp),
            current_compatible: ok,
        };
        req.addon_upgrades = vec![
            rec(
                "kube-proxy",
                "v1.30.0-eksbuild.3",
                "v1.31.2-eksbuild.3",
                "1.31",
                false,
            ),
            rec(
                "coredns",
                "v1.11.1-eksbuild.9",
                "v1.11.3-eksbuild.1",
                "1.31",
                true,
            ),
            rec(
                "kube-proxy",
                "v1.30.0-eksbuild.3",
                "v1.32.0-eksbuild.2",
                "1.32",
                false,
            ),
            rec(
                "coredns",
                "v1.11.1-eksbuild.9",
                "v1.11.4-eksbuild.2",
                "1.32",
                true,
            ),
        ];
        let plan = plan(&req).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "preflight 1.32",
                "cp 1.30>1.31",
                "addon kube-proxy v1.30.0-eksbuild.3>v1.31.2-eksbuild.3",
                "validate 1.31",
                "cp 1.31>1.32",
                "addon kube-proxy v1.31.2-eksbuild.3>v1.32.0-eksbuild.2",
                "addon coredns v1.11.1-eksbuild.9>v1.11.4-eksbuild.2",
                "validate 1.32"
            ]
        );
        req.options.skip_addons = true;
        assert!(
            !lines(&super::plan(&req).unwrap())
                .iter()
                .any(|l| l.starts_with("addon"))
        );
    }

    #[test]
    fn plan_json_round_trips_and_detects_edits() {
        let plan = plan(&request(cluster("1.30.3", &[("a", "1.29.0")]), "1.33.0")).unwrap();
        assert_eq!(plan.id.len(), 16);
        let json = plan.to_json();
        let back = UpgradePlan::from_json(&json).unwrap();
        assert_eq!(back, plan);
        let edited = json.replace("1.33.0", "1.33.3");
        let err = UpgradePlan::from_json(&edited).unwrap_err().to_string();
        assert!(err.contains("edited"), "{err}");
        let wrong_schema = json.replace("\"schema_version\": 1", "\"schema_version\": 9");
        let err = UpgradePlan::from_json(&wrong_schema)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 9"), "{err}");
        // Same input, same id.
        let again = super::plan(&request(cluster("1.30.3", &[("a", "1.29.0")]), "1.33.0")).unwrap();
        assert_eq!(again.id, plan.id);
    }
}
