//! Property tests of the planner's invariants over random clusters, targets and skew limits.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use kup_core::{
    AvailableVersion, Capabilities, ClusterInfo, KubeVersion, NodePool, PlanOptions, PlanRequest,
    ProviderKind, SkewPolicy, StepAction, SupportStatus, UpgradePlan, plan,
};
use proptest::prelude::*;

fn offered() -> Vec<AvailableVersion> {
    let mut all = Vec::new();
    for minor in 20..=37 {
        for patch in [0, 2, 5] {
            all.push(AvailableVersion::new(
                KubeVersion::new(1, minor, patch),
                SupportStatus::Standard,
            ));
        }
    }
    all
}

#[derive(Debug, Clone)]
struct Case {
    cp_minor: u32,
    cp_patch: u32,
    pool_lags: Vec<u32>,
    target_minor: u32,
    target_patch: u32,
    skew: u32,
    control_plane_only: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (25u32..=34, prop::sample::select(vec![0u32, 2, 5]), 2u32..=3)
        .prop_flat_map(|(cp_minor, cp_patch, skew)| {
            (
                Just(cp_minor),
                Just(cp_patch),
                prop::collection::vec(0u32..=skew, 0..4),
                cp_minor..=(cp_minor + 6).min(37),
                prop::sample::select(vec![0u32, 2, 5]),
                Just(skew),
                prop::bool::weighted(0.15),
            )
        })
        .prop_map(
            |(cp_minor, cp_patch, pool_lags, target_minor, target_patch, skew, cpo)| Case {
                cp_minor,
                cp_patch,
                // Start from a cluster in skew: kubelets older than 1.25 may lag only 2 minors.
                pool_lags: pool_lags
                    .into_iter()
                    .map(|lag| if cp_minor - lag < 25 { lag.min(2) } else { lag })
                    .collect(),
                target_minor,
                // A same-minor target must not be older than the control plane.
                target_patch: if target_minor == cp_minor {
                    target_patch.max(cp_patch)
                } else {
                    target_patch
                },
                skew,
                control_plane_only: cpo,
            },
        )
}

fn request(case: &Case) -> PlanRequest {
    let cp = KubeVersion::new(1, case.cp_minor, case.cp_patch);
    PlanRequest {
        cluster: ClusterInfo {
            provider: ProviderKind::Gke,
            name: "prop".into(),
            control_plane: cp,
            api_servers: vec![],
            node_pools: case
                .pool_lags
                .iter()
                .enumerate()
                .map(|(i, lag)| {
                    NodePool::managed(
                        format!("pool-{i}"),
                        KubeVersion::new(1, case.cp_minor - lag, 0),
                    )
                })
                .collect(),
            addons: vec![],
            in_progress: vec![],
            status: None,
        },
        target: KubeVersion::new(1, case.target_minor, case.target_patch),
        offered: offered(),
        capabilities: Capabilities::new().with(|c| {
            c.max_kubelet_skew = case.skew;
            c.node_pool_upgrade = true;
        }),
        addon_upgrades: vec![],
        options: PlanOptions {
            control_plane_only: case.control_plane_only,
            ..PlanOptions::default()
        },
    }
}

/// The fewest pool upgrades that keep a pool starting at minor `start` in skew through the
/// control-plane minors `cps` (cps[0] is the current one) and end at the last, computed by
/// exhaustive search, independently of the planner.
fn minimal_pool_upgrades(start: u32, cps: &[u32], policy: &SkewPolicy) -> Option<u32> {
    let fits = |pool: u32, cp: u32| {
        policy.kubelet_fits(
            &KubeVersion::minor_version(1, pool),
            &KubeVersion::minor_version(1, cp),
        )
    };
    // best[p] = fewest upgrades to have the pool at minor p at the current stage.
    let mut best: BTreeMap<u32, u32> = BTreeMap::from([(start, 0)]);
    for stage in 0..cps.len() {
        let cp_now = cps[stage];
        // Before the next hop (or at the end) the pool may move once to any minor up to cp_now.
        let mut next = best.clone();
        for (&p, &n) in &best {
            for m in (p + 1)..=cp_now {
                let entry = next.entry(m).or_insert(u32::MAX);
                *entry = (*entry).min(n + 1);
            }
        }
        if let Some(&cp_next) = cps.get(stage + 1) {
            next.retain(|&p, _| fits(p, cp_next));
        }
        best = next;
    }
    best.get(cps.last()?).copied()
}

fn cp_after_each_step(plan: &UpgradePlan) -> Vec<(KubeVersion, BTreeMap<String, KubeVersion>)> {
    let mut cp = plan.from.clone();
    let mut pools = plan.pools.clone();
    let mut states = Vec::new();
    for step in &plan.steps {
        match &step.action {
            StepAction::ControlPlane { from, to } => {
                assert_eq!(from, &cp, "hop starts where the control plane is");
                cp = to.clone();
            }
            StepAction::NodePool { pool, from, to, .. } => {
                assert!(
                    from.same_build(&pools[pool]),
                    "pool step starts where the pool is"
                );
                pools.insert(pool.clone(), to.clone());
            }
            _ => {}
        }
        states.push((cp.clone(), pools.clone()));
    }
    states
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn planner_invariants(case in cases()) {
        let req = request(&case);
        let policy = SkewPolicy::for_provider(&req.capabilities);
        let plan = match plan(&req) {
            Ok(plan) => plan,
            Err(err) => {
                // Only a control-plane-only request may be refused here, and only because a
                // pool would fall out of skew.
                prop_assert!(case.control_plane_only, "unexpected refusal: {err}");
                prop_assert!(err.to_string().contains("out of skew"), "{err}");
                return Ok(());
            }
        };

        // Every control-plane hop is exactly +1 minor (or a patch step within the minor).
        for step in plan.control_plane_hops() {
            if let StepAction::ControlPlane { from, to } = &step.action {
                let d = from.minor_distance(to);
                prop_assert!(d == 1 || (d == 0 && to > from), "hop {from} -> {to}");
            }
        }

        // After every step no pool is newer than the control plane or out of skew.
        for (cp, pools) in cp_after_each_step(&plan) {
            for (name, version) in &pools {
                prop_assert!(
                    policy.kubelet_fits(version, &cp),
                    "pool {name} at {version} out of skew with {cp} in plan\n{plan}"
                );
            }
        }

        let (final_cp, final_pools) = cp_after_each_step(&plan).pop().unwrap();
        prop_assert_eq!(final_cp.minor(), case.target_minor);
        prop_assert_eq!(&final_cp, &plan.target);

        if !case.control_plane_only {
            // Every pool ends at the target.
            for (name, version) in &final_pools {
                prop_assert!(version.same_build(&plan.target), "pool {name} ends at {version}");
            }
            // The number of pool upgrades is minimal for the skew limit.
            let mut cps = vec![case.cp_minor];
            for step in plan.control_plane_hops() {
                if let StepAction::ControlPlane { to, .. } = &step.action
                    && Some(&to.minor()) != cps.last()
                {
                    cps.push(to.minor());
                }
            }
            for (i, lag) in case.pool_lags.iter().enumerate() {
                let name = format!("pool-{i}");
                let planned = plan
                    .pool_upgrades()
                    .filter(|s| matches!(&s.action, StepAction::NodePool { pool, .. } if *pool == name))
                    .count() as u32;
                let start = case.cp_minor - lag;
                let minimal = minimal_pool_upgrades(start, &cps, &policy).unwrap();
                // A pool already at the target minor still moves once for a newer target patch.
                let patch_only = u32::from(minimal == 0 && !KubeVersion::new(1, start, 0).same_build(&plan.target));
                prop_assert_eq!(planned, minimal + patch_only, "pool {} from 1.{}", name, start);
            }
        } else {
            prop_assert_eq!(plan.pool_upgrades().count(), 0);
        }

        // Plans survive a JSON round trip with their id.
        prop_assert_eq!(UpgradePlan::from_json(&plan.to_json()).unwrap(), plan);
    }

    #[test]
    fn one_minor_jump_limit_moves_pools_through_every_minor(case in cases()) {
        prop_assume!(!case.control_plane_only);
        let mut req = request(&case);
        req.capabilities.max_node_pool_minor_jump = Some(1);
        let policy = SkewPolicy::for_provider(&req.capabilities);
        let plan = plan(&req).unwrap();
        for step in plan.pool_upgrades() {
            if let StepAction::NodePool { from, to, .. } = &step.action {
                prop_assert!(from.minor_distance(to) <= 1, "{from} -> {to}");
            }
        }
        for (cp, pools) in cp_after_each_step(&plan) {
            for version in pools.values() {
                prop_assert!(policy.kubelet_fits(version, &cp));
            }
        }
    }
}
