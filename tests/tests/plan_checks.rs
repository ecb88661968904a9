//! Plans and options are checked before anything is read or written: a plan that breaks the
//! plan rules (here one edited to skip a minor) and a pool option the provider cannot honour
//! are refused with an error naming the field, and the refused run leaves no journal, no
//! Lease, no provider operation and no mutating request behind.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;

use kup_core::{ErrorCategory, NodePoolOptions, StepAction, UpgradePlan};
use kup_engine::PoolOptions;
use support::{SimCluster, fast_options, memory, standard};
use tokio_util::sync::CancellationToken;

fn mutating(h: &SimCluster) -> Vec<String> {
    h.sim
        .requests()
        .entries()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// `plan` with its first control-plane hop dropped and the next one stretched over both
/// minors, steps renumbered: what a hand edit that "saves a hop" produces.
fn skipping(plan: &UpgradePlan) -> UpgradePlan {
    let mut edited = plan.clone();
    let first = edited
        .steps
        .iter()
        .position(|s| matches!(s.action, StepAction::ControlPlane { .. }))
        .unwrap();
    let StepAction::ControlPlane { from, .. } = edited.steps.remove(first).action else {
        unreachable!()
    };
    for step in edited.steps.iter_mut() {
        if let StepAction::ControlPlane { from: f, .. } = &mut step.action {
            *f = from;
            break;
        }
    }
    edited.steps.retain(|s| {
        !matches!(
            s.action,
            StepAction::Validate { .. } | StepAction::Backup { .. }
        )
    });
    for (i, step) in edited.steps.iter_mut().enumerate() {
        step.index = i + 1;
    }
    edited
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_edited_to_skip_a_minor_is_refused_before_anything_is_written() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    assert_eq!(plan.control_plane_hops().count(), 2, "{plan}");
    let edited = skipping(&plan);
    let store = memory();
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(kup_core::NoEvents),
        fast_options(),
    );
    h.sim.requests().clear();
    for err in [
        engine
            .run(&edited, &CancellationToken::new())
            .await
            .unwrap_err(),
        engine.dry_run(&edited).await.unwrap_err(),
    ] {
        assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
        let text = err.to_string();
        assert!(text.contains("plan.steps["), "{text}");
        assert!(text.contains("moves 2 minors"), "{text}");
    }
    assert_eq!(mutating(&h), Vec::<String>::new());
    assert_eq!(
        h.sim.requests().total(),
        0,
        "nothing is read before the plan passes"
    );
    assert!(store.get().is_none(), "no journal written");
    assert!(h.provider.started().is_empty(), "no provider operation");
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_option_the_provider_cannot_honour_is_refused_by_name() {
    let h = SimCluster::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let mut options = fast_options();
    // The provider-rolled pool `mg` gets a surge; the reference provider takes none.
    options.pools.insert(
        "mg".into(),
        PoolOptions {
            provider: NodePoolOptions {
                max_surge: Some("1".into()),
                ..NodePoolOptions::default()
            },
            ..PoolOptions::default()
        },
    );
    let engine = h.engine(
        store.clone(),
        "runner",
        Arc::new(kup_core::NoEvents),
        options,
    );
    h.sim.requests().clear();
    let err = engine
        .run(&plan, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::InvalidInput, "{err}");
    assert!(err.to_string().contains("pools.mg.max_surge"), "{err}");
    assert_eq!(mutating(&h), Vec::<String>::new());
    assert!(store.get().is_none());
    assert!(h.provider.started().is_empty());
    h.sim.shutdown().await;
}
