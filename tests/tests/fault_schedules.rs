//! A property test over random fault schedules: API errors on chosen routes, a node slow to
//! become Ready, a drain stuck on a pod that will not terminate for a while, provider polls
//! that fail, and a crash at a random journal write. Whatever the schedule, rerunning after
//! every failure or crash converges, and throughout:
//!
//! - at most `max_unavailable` nodes of a pool are cordoned by kup at once;
//! - no PodDisruptionBudget ever has fewer healthy pods than it requires (nothing is evicted
//!   while its budget allows none);
//! - no kubelet is ever moved past the control plane (the provider records any attempt);
//! - no pod is deleted outside the eviction API, no node is left cordoned that was not
//!   cordoned before, and no operation is started twice.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;
use std::time::Duration;

use kup_core::{NodePoolOptions, PoolManagement};
use kup_engine::PoolOptions;
use kup_engine::journal::{ConfigMapJournalStore, JournalStore};
use kup_mocks::k8s::{Fault, IntOrPercent, Node, Pdb, Pool, Scenario, Workload};
use proptest::prelude::*;
use support::{
    Attempt, BudgetWatch, CrashStore, How, Setup, SimCluster, attempt, fast_options, sim_config,
};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
struct ApiFault {
    method: &'static str,
    path: &'static str,
    code: u16,
    rate: f64,
    times: u64,
}

#[derive(Clone, Debug)]
struct Schedule {
    api: Vec<ApiFault>,
    /// Node index (kw-1..kw-3) whose kubelet restart stays NotReady, healed after ms.
    slow_node: Option<(usize, u64)>,
    /// A web pod on kw-2 stuck terminating, healed after ms.
    stuck_pod: Option<u64>,
    poll_errors: u32,
    crash_at: Option<(usize, bool)>,
    max_unavailable: usize,
}

fn api_fault() -> impl Strategy<Value = ApiFault> {
    let routes = prop_oneof![
        Just(("PATCH", "/api/v1/nodes/*", 500u16)),
        Just(("PATCH", "/api/v1/nodes/*", 503)),
        Just(("GET", "/api/v1/nodes", 503)),
        Just(("POST", "/api/v1/namespaces/*/pods/*/eviction", 503)),
        Just(("POST", "/api/v1/namespaces/*/pods/*/eviction", 500)),
        Just(("GET", "/api/v1/pods", 500)),
        Just(("PUT", "/api/v1/namespaces/kube-system/configmaps/*", 503)),
        Just((
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/*",
            503
        )),
    ];
    (routes, 0.05f64..0.4, 1u64..6).prop_map(|((method, path, code), rate, times)| ApiFault {
        method,
        path,
        code,
        rate,
        times,
    })
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        proptest::collection::vec(api_fault(), 0..3),
        proptest::option::of((1usize..=3, 300u64..2500)),
        proptest::option::of(300u64..2500),
        0u32..4,
        proptest::option::of((3usize..45, any::<bool>())),
        1usize..=2,
    )
        .prop_map(
            |(api, slow_node, stuck_pod, poll_errors, crash_at, max_unavailable)| Schedule {
                api,
                slow_node,
                stuck_pod,
                poll_errors,
                crash_at,
                max_unavailable,
            },
        )
}

fn setup() -> Setup {
    let scenario = Scenario::new()
        .version("v1.32.4")
        .pool(Pool::new("kw", 3))
        .node(Node::new("kw-4").pool("kw").unschedulable())
        .pool(Pool::new("mg", 1))
        .workload(Workload::deployment("shop", "web").replicas(3))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(IntOrPercent::Int(2)),
        )
        .workload(Workload::deployment("shop", "api").replicas(2))
        .pdb(
            Pdb::new("shop", "api")
                .match_label("app", "api")
                .max_unavailable(IntOrPercent::Int(1)),
        )
        .workload(Workload::daemon_set("kube-system", "node-agent").tolerate_all());
    Setup {
        scenario,
        pools: vec![
            ("kw", PoolManagement::Kup),
            ("mg", PoolManagement::Provider),
        ],
        addons: vec![("coredns", "v1.11.3")],
        max_jump: None,
        config: sim_config(),
    }
}

async fn run_schedule(s: Schedule) {
    let h = SimCluster::start(setup()).await;
    let plan = h.plan("1.33.2").await;
    for f in &s.api {
        h.sim.faults().add(
            Fault::status(f.code)
                .method(f.method)
                .path(f.path)
                .rate(f.rate)
                .times(f.times),
        );
    }
    let mut heals = Vec::new();
    if let Some((i, after)) = s.slow_node {
        let node = format!("kw-{i}");
        h.sim.set_node_never_ready(&node, true).unwrap();
        let sim = h.sim.clone();
        heals.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            sim.set_node_never_ready(&node, false).unwrap();
            sim.set_node_condition(&node, "Ready", "True").unwrap();
        }));
    }
    if let Some(after) = s.stuck_pod {
        let pod = h
            .sim
            .pods_on_node("kw-2")
            .into_iter()
            .find(|p| p["metadata"]["namespace"] == "shop")
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string());
        if let Some(pod) = pod {
            h.sim.set_pod_stuck_terminating("shop", &pod, true).unwrap();
            let sim = h.sim.clone();
            heals.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after)).await;
                sim.set_pod_stuck_terminating("shop", &pod, false).unwrap();
            }));
        }
    }
    h.provider.set_faults(|f| f.poll_errors = s.poll_errors);

    let mut options = fast_options();
    options.pools.insert(
        "kw".into(),
        PoolOptions {
            provider: NodePoolOptions {
                max_unavailable: Some(s.max_unavailable.to_string()),
                ..NodePoolOptions::default()
            },
            drain_timeout: Some(Duration::from_secs(1)),
            ..PoolOptions::default()
        },
    );
    options.timeouts.node_upgrade = Duration::from_secs(2);
    options.timeouts.node_ready = Duration::from_secs(2);
    options.gate.timeout = Duration::from_secs(10);
    options.validation.timeout = Duration::from_secs(10);

    let budgets = BudgetWatch::start(&h.sim);
    let store = || -> Arc<dyn JournalStore> {
        Arc::new(
            ConfigMapJournalStore::new(h.sim.client().unwrap(), "kube-system", "prod")
                .with_retry(kup_engine::backoff::BackoffPolicy::fast()),
        )
    };
    let mut errors = Vec::new();
    let mut converged = false;
    for n in 0..15 {
        let (engine_store, crash) = match (n, s.crash_at) {
            (0, Some((at, after))) => {
                let c = Arc::new(CrashStore::new(store(), at, after));
                let token = c.tripped.clone();
                (c as Arc<dyn JournalStore>, token)
            }
            _ => (store(), CancellationToken::new()),
        };
        let engine = h.engine(
            engine_store,
            "runner",
            Arc::new(kup_core::NoEvents),
            options.clone(),
        );
        match attempt(&engine, &plan, How::Apply, &crash).await {
            Attempt::Crashed => errors.push("crash".to_string()),
            Attempt::Finished(Ok(_)) => {
                converged = true;
                break;
            }
            Attempt::Finished(Err(e)) => {
                errors.push(e.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    for heal in heals {
        heal.await.unwrap();
    }
    assert!(converged, "no convergence for {s:?}; errors: {errors:#?}");
    h.sim.faults().clear();
    let journal = store().load().await.unwrap();
    h.assert_converged(&plan, journal).await;
    assert!(
        h.nodes.max_cordoned("kw") <= s.max_unavailable,
        "{} nodes of kw cordoned at once, max_unavailable {}",
        h.nodes.max_cordoned("kw"),
        s.max_unavailable
    );
    assert_eq!(budgets.finish().await, Vec::<String>::new(), "{s:?}");
    h.sim.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 8,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_fault_schedule_converges_with_the_invariants_kept(s in schedule()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run_schedule(s));
    }
}
