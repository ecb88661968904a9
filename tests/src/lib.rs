//! kup's behaviour suite: what every [`kup_core::UpgradeProvider`] must do, checked the same
//! way for every provider, plus the reference provider and the simulated clusters the
//! cross-crate end-to-end tests run on.
//!
//! A provider joins the suite by implementing [`Harness`] (start its backend, build the
//! provider, stage busy clusters and failures, report the mutating calls its backend saw) and
//! generating one test per behaviour:
//!
//! ```text
//! struct MyHarness { /* the mock, the provider */ }
//! #[async_trait::async_trait]
//! impl kup_tests::Harness for MyHarness { /* … */ }
//!
//! kup_tests::behaviour_tests!(MyHarness);
//! ```
//!
//! Each generated `#[tokio::test]` is named after its behaviour (see [`behaviours`]), so a
//! failure says which part of the contract broke. A behaviour whose capability the provider
//! does not declare checks instead that the method answers `NotSupported` and sends nothing;
//! [`run_suite`] runs them all in one test when that suits a caller better.
//!
//! - [`behaviours`]: the suite functions.
//! - [`harness`]: the [`Harness`] trait and what it reports.
//! - [`reference`]: a provider that implements the whole contract against the simulator.
//! - [`sim`]: simulated clusters, engines and crash points for the engine's end-to-end tests.
//! - [`lab`]: real sshd and etcd processes for the kubeadm provider.
//! - [`kubeadm_lab`]: a whole kubeadm cluster on them, with the simulator as its API server.

pub mod behaviours;
pub mod harness;
pub mod kubeadm_lab;
pub mod lab;
pub mod reference;
pub mod sim;

pub use behaviours::{BEHAVIOURS, Checked};
pub use harness::{Deviation, Harness, Mutations, Unstaged};

/// Prints what a behaviour checked, in the test's output.
pub fn report(provider: &str, behaviour: &str, checked: &Checked) {
    match checked {
        Checked::Held => println!("{provider}: {behaviour}: held"),
        Checked::NotSupported(what) => {
            println!("{provider}: {behaviour}: {what} not declared; NotSupported and nothing sent")
        }
        Checked::Unstaged(why) => println!("{provider}: {behaviour}: not staged: {why}"),
    }
}

/// Runs one behaviour by name on a fresh harness; `None` when the harness could not start
/// (a component missing outside CI).
pub async fn run_behaviour<H: Harness>(behaviour: &str) -> Option<Checked> {
    let h = H::start().await?;
    let checked = match behaviour {
        "versions_are_oldest_first_with_a_support_status" => {
            behaviours::versions_are_oldest_first_with_a_support_status(&h).await
        }
        "cluster_agrees_with_the_kubernetes_side" => {
            behaviours::cluster_agrees_with_the_kubernetes_side(&h).await
        }
        "one_minor_control_plane_hop_ends_at_the_new_version" => {
            behaviours::one_minor_control_plane_hop_ends_at_the_new_version(&h).await
        }
        "two_minor_request_is_refused_before_anything_changes" => {
            behaviours::two_minor_request_is_refused_before_anything_changes(&h).await
        }
        "busy_cluster_is_reported_busy_and_nothing_is_sent" => {
            behaviours::busy_cluster_is_reported_busy_and_nothing_is_sent(&h).await
        }
        "injected_failure_is_operation_failed_with_provider_codes" => {
            behaviours::injected_failure_is_operation_failed_with_provider_codes(&h).await
        }
        "unknown_operation_is_refused_naming_it" => {
            behaviours::unknown_operation_is_refused_naming_it(&h).await
        }
        "operation_round_trips_and_reattaches_after_restart" => {
            behaviours::operation_round_trips_and_reattaches_after_restart(&h).await
        }
        "pool_upgrade_moves_every_node_through_the_eviction_api" => {
            behaviours::pool_upgrade_moves_every_node_through_the_eviction_api(&h).await
        }
        "undeclared_capabilities_are_not_supported_and_never_planned" => {
            behaviours::undeclared_capabilities_are_not_supported_and_never_planned(&h).await
        }
        "situations_map_to_the_same_error_category" => {
            behaviours::situations_map_to_the_same_error_category(&h).await
        }
        other => panic!(
            "unknown behaviour {other:?}; the suite has: {}",
            BEHAVIOURS.join(", ")
        ),
    };
    report(h.provider().kind().name(), behaviour, &checked);
    Some(checked)
}

/// Runs every behaviour, each on a fresh harness, and panics naming every one that failed.
pub async fn run_suite<H: Harness>() {
    use futures::FutureExt;
    let mut failed = Vec::new();
    for behaviour in BEHAVIOURS {
        let run = std::panic::AssertUnwindSafe(run_behaviour::<H>(behaviour)).catch_unwind();
        match run.await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(_) => failed.push(*behaviour),
        }
    }
    assert!(
        failed.is_empty(),
        "behaviours failed: {}",
        failed.join(", ")
    );
}

/// Generates one `#[tokio::test]` per behaviour for a [`Harness`] type, each named after the
/// behaviour it checks.
#[macro_export]
macro_rules! behaviour_tests {
    ($harness:ty) => {
        $crate::behaviour_tests!(@each $harness;
            versions_are_oldest_first_with_a_support_status,
            cluster_agrees_with_the_kubernetes_side,
            one_minor_control_plane_hop_ends_at_the_new_version,
            two_minor_request_is_refused_before_anything_changes,
            busy_cluster_is_reported_busy_and_nothing_is_sent,
            injected_failure_is_operation_failed_with_provider_codes,
            unknown_operation_is_refused_naming_it,
            operation_round_trips_and_reattaches_after_restart,
            pool_upgrade_moves_every_node_through_the_eviction_api,
            undeclared_capabilities_are_not_supported_and_never_planned,
            situations_map_to_the_same_error_category
        );
    };
    (@each $harness:ty; $($behaviour:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                $crate::run_behaviour::<$harness>(stringify!($behaviour)).await;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_macro_and_the_list_name_the_same_behaviours() {
        let source = include_str!("lib.rs");
        for b in super::BEHAVIOURS {
            assert_eq!(
                source.matches(&format!("\n            {b},")).count()
                    + source.matches(&format!("\n            {b}\n")).count(),
                1,
                "{b} is not generated by behaviour_tests!"
            );
        }
    }
}
