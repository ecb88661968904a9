//! Resume and re-run never repeat or reverse a finished step.
//!
//! The plan moves every component several times: the control plane 1.31 → 1.34 in three
//! hops, coredns twice (v1.11.3 → v1.12.0 at 1.33, → v1.12.1 at 1.34), and both pools three
//! times (the provider allows one minor per pool upgrade). A property test crashes the run at
//! a random journal write (before or after it lands) or right after a random provider call
//! returned and before the engine recorded it, then resumes with fresh engines. Whatever the
//! crash point:
//!
//! - the resume ends at the target, every pool and add-on where the plan leads;
//! - no change is ever sent to a version older than the live one (the provider records any
//!   attempt), and no operation is started twice;
//! - every change step's provider work was started exactly once over all attempts;
//! - running the finished plan again, or resuming it, is a no-op reported as already done,
//!   and even with the journal gone a re-run sends nothing.

#![allow(clippy::unwrap_used)]

use kup_tests::sim as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use kup_core::{
    AddonOptions, AddonUpgrade, AvailableVersion, BackupOptions, BackupRecord, Capabilities,
    ClusterInfo, ControlPlaneOptions, Finding, KubeVersion, NodePoolOptions, Operation,
    OperationStatus, OperationTarget, Outcome, PoolManagement, ProviderKind, StepAction,
    UpgradePlan, UpgradeProvider,
};
use kup_engine::journal::{JournalStore, MemoryJournalStore, RunState};
use kup_engine::{Engine, WouldDo};
use kup_tests::reference::SimProvider;
use proptest::prelude::*;
use support::{
    Attempt, CrashStore, How, SimCluster as Harness, attempt, fast_options, memory, standard,
};
use tokio_util::sync::CancellationToken;

/// The standard cluster with the provider limiting pool upgrades to one minor.
fn setup() -> support::Setup {
    let mut s = standard();
    s.max_jump = Some(1);
    s
}

const TARGET: &str = "1.34.2";

/// A provider that dies right after its `at`-th change call returned: the provider accepted
/// the work, the engine never recorded it.
#[derive(Debug)]
struct DiesAfterCall {
    inner: Arc<SimProvider>,
    at: usize,
    calls: AtomicUsize,
    tripped: CancellationToken,
}

impl DiesAfterCall {
    async fn after<T>(&self, result: kup_core::Result<T>) -> kup_core::Result<T> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at {
            self.tripped.cancel();
            // The process dies here, the operation started and unrecorded.
            std::future::pending::<()>().await;
        }
        result
    }
}

#[async_trait]
impl UpgradeProvider for DiesAfterCall {
    fn kind(&self) -> ProviderKind {
        self.inner.kind()
    }
    fn cluster_name(&self) -> &str {
        self.inner.cluster_name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn cluster(&self) -> kup_core::Result<ClusterInfo> {
        self.inner.cluster().await
    }
    async fn available_versions(&self) -> kup_core::Result<Vec<AvailableVersion>> {
        self.inner.available_versions().await
    }
    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        opts: &ControlPlaneOptions,
    ) -> kup_core::Result<Operation> {
        let r = self.inner.upgrade_control_plane(to, opts).await;
        self.after(r).await
    }
    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        opts: &NodePoolOptions,
    ) -> kup_core::Result<Operation> {
        let r = self.inner.upgrade_node_pool(pool, to, opts).await;
        self.after(r).await
    }
    async fn upgrade_node(
        &self,
        pool: &str,
        node: &str,
        to: &KubeVersion,
    ) -> kup_core::Result<Operation> {
        let r = self.inner.upgrade_node(pool, node, to).await;
        self.after(r).await
    }
    async fn addon_upgrades(
        &self,
        control_plane: &KubeVersion,
    ) -> kup_core::Result<Vec<AddonUpgrade>> {
        self.inner.addon_upgrades(control_plane).await
    }
    async fn upgrade_addon(
        &self,
        upgrade: &AddonUpgrade,
        opts: &AddonOptions,
    ) -> kup_core::Result<Operation> {
        let r = self.inner.upgrade_addon(upgrade, opts).await;
        self.after(r).await
    }
    async fn poll(&self, op: &Operation) -> kup_core::Result<OperationStatus> {
        self.inner.poll(op).await
    }
    async fn preflight(&self, to: &KubeVersion) -> kup_core::Result<Vec<Finding>> {
        self.inner.preflight(to).await
    }
    async fn backup(&self, opts: &BackupOptions) -> kup_core::Result<BackupRecord> {
        self.inner.backup(opts).await
    }
}

fn engine_with(
    h: &Harness,
    provider: Arc<dyn UpgradeProvider>,
    store: Arc<dyn JournalStore>,
) -> Engine {
    Engine::builder(provider)
        .kube(h.kube.clone())
        .node_ops(h.nodes.clone())
        .journal(store)
        .lock(Arc::new(h.lock("runner")))
        .options(fast_options())
        .build()
        .unwrap()
}

/// Reruns with fresh engines, as restarted processes would, until one finishes well.
async fn resume_until_done(h: &Harness, plan: &UpgradePlan, store: Arc<MemoryJournalStore>) {
    let mut errors = Vec::new();
    for _ in 0..5 {
        let engine = engine_with(h, h.provider.clone(), store.clone());
        match attempt(&engine, plan, How::Apply, &CancellationToken::new()).await {
            Attempt::Finished(Ok(_)) => return,
            Attempt::Finished(Err(e)) => errors.push(e.to_string()),
            Attempt::Crashed => unreachable!("no crash point armed"),
        }
    }
    panic!(
        "no convergence after 5 resumes: {errors:#?}\n{}",
        store.get().map(|j| j.to_table()).unwrap_or_default()
    );
}

/// Provider work the plan asks for: (target, version) of every change step, and every node
/// of kup-rolled pools once per pool step.
fn expected_starts(h: &Harness, plan: &UpgradePlan) -> Vec<(String, String)> {
    let kw_nodes: Vec<String> = h
        .kubelets()
        .into_keys()
        .filter(|n| n.starts_with("kw-"))
        .collect();
    let mut out = Vec::new();
    for step in &plan.steps {
        match &step.action {
            StepAction::ControlPlane { to, .. } => {
                out.push((OperationTarget::ControlPlane.to_string(), to.to_string()))
            }
            StepAction::Addon { name, to, .. } => out.push((
                OperationTarget::Addon {
                    addon: name.clone(),
                }
                .to_string(),
                to.clone(),
            )),
            StepAction::NodePool {
                pool,
                to,
                management: PoolManagement::Provider,
                ..
            } => out.push((
                OperationTarget::NodePool { pool: pool.clone() }.to_string(),
                to.to_string(),
            )),
            StepAction::NodePool { to, .. } => {
                for node in &kw_nodes {
                    out.push((
                        OperationTarget::Node { node: node.clone() }.to_string(),
                        to.to_string(),
                    ));
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

fn started(h: &Harness) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = h
        .provider
        .started()
        .into_iter()
        .map(|(t, v)| (t.to_string(), v))
        .collect();
    s.sort();
    s
}

/// Where a run dies.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// At the nth journal save; with `after` the save lands first.
    Save { at: usize, after: bool },
    /// Right after the nth change call to the provider returned.
    ProviderCall { at: usize },
}

/// Crashes once at `crash`, resumes to the end, and checks every invariant.
async fn crash_and_resume(crash: Crash) {
    let h = Harness::start(setup()).await;
    let plan = h.plan(TARGET).await;
    let inner = memory();
    let (engine, tripped) = match crash {
        Crash::Save { at, after } => {
            let store = Arc::new(CrashStore::new(inner.clone(), at, after));
            let tripped = store.tripped.clone();
            (engine_with(&h, h.provider.clone(), store), tripped)
        }
        Crash::ProviderCall { at } => {
            let dying = Arc::new(DiesAfterCall {
                inner: h.provider.clone(),
                at,
                calls: AtomicUsize::new(0),
                tripped: CancellationToken::new(),
            });
            let tripped = dying.tripped.clone();
            (engine_with(&h, dying, inner.clone()), tripped)
        }
    };
    match attempt(&engine, &plan, How::Run, &tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("{crash:?}: the run ended before its crash point: {r:?}"),
    }
    drop(engine);
    resume_until_done(&h, &plan, inner.clone()).await;
    h.assert_converged(&plan, inner.get()).await;
    assert_eq!(h.provider.addon("coredns").as_deref(), Some("v1.12.1"));
    assert_eq!(
        started(&h),
        expected_starts(&h, &plan),
        "{crash:?}: provider work started other than once per planned change"
    );
    h.sim.shutdown().await;
}

/// Journal saves and provider change calls of a crash-free run.
async fn clean_run_counts() -> (usize, usize) {
    let h = Harness::start(setup()).await;
    let plan = h.plan(TARGET).await;
    let counting = Arc::new(CrashStore::new(memory(), usize::MAX, false));
    let engine = engine_with(&h, h.provider.clone(), counting.clone());
    engine.run(&plan, &CancellationToken::new()).await.unwrap();
    let calls = h.provider.started().len();
    h.sim.shutdown().await;
    (counting.saves(), calls)
}

#[test]
fn the_plan_moves_every_component_several_times() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Harness::start(setup()).await;
        let plan = h.plan(TARGET).await;
        let count = |pred: &dyn Fn(&StepAction) -> bool| {
            plan.steps.iter().filter(|s| pred(&s.action)).count()
        };
        assert_eq!(count(&|a| matches!(a, StepAction::ControlPlane { .. })), 3);
        assert_eq!(
            count(&|a| matches!(a, StepAction::Addon { name, .. } if name == "coredns")),
            2,
            "{plan}"
        );
        for pool in ["kw", "mg"] {
            assert_eq!(
                count(&|a| matches!(a, StepAction::NodePool { pool: p, .. } if p == pool)),
                3,
                "{plan}"
            );
        }
        h.sim.shutdown().await;
    });
}

/// The counts of a clean run, measured once for every case.
fn counts() -> (usize, usize) {
    static COUNTS: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *COUNTS.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(clean_run_counts())
    })
}

fn crash_point() -> impl Strategy<Value = Crash> {
    let (saves, calls) = counts();
    prop_oneof![
        (1..=saves, any::<bool>()).prop_map(|(at, after)| Crash::Save { at, after }),
        (1..=calls).prop_map(|at| Crash::ProviderCall { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 4,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_crash_anywhere_resumes_without_repeating_or_reversing_a_step(crash in crash_point()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(crash_and_resume(crash));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_second_addon_move_does_not_move_it_back() {
    // The fourth change call of the run is the second coredns move (hop, hop + coredns, hop
    // + coredns: CP 1.32, CP 1.33, coredns v1.12.0, CP 1.34, coredns v1.12.1).
    let h = Harness::start(setup()).await;
    let plan = h.plan(TARGET).await;
    let calls: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action.changes_cluster())
        .map(|s| s.action.to_string())
        .collect();
    let second_addon = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("add-on coredns"))
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap();
    assert!(
        calls[..second_addon]
            .iter()
            .all(|c| !c.starts_with("node pool"))
    );
    drop(h);
    crash_and_resume(Crash::ProviderCall { at: second_addon }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_a_finished_plan_again_is_a_no_op_reported_as_already_done() {
    let h = Harness::start(setup()).await;
    let plan = h.plan(TARGET).await;
    let store = memory();
    let engine = engine_with(&h, h.provider.clone(), store.clone());
    let first = engine.run(&plan, &CancellationToken::new()).await.unwrap();
    assert_eq!(first.outcome, Outcome::Succeeded);
    let journal = store.get().unwrap();
    let after_first = h.provider.started();
    let lease_writes = || {
        h.sim
            .requests()
            .entries()
            .iter()
            .filter(|r| r.method != "GET" && r.path.contains("/leases"))
            .count()
    };
    let leases_before = lease_writes();

    for how in [How::Run, How::Apply, How::Resume] {
        let engine = engine_with(&h, h.provider.clone(), store.clone());
        let again = match attempt(&engine, &plan, how, &CancellationToken::new()).await {
            Attempt::Finished(r) => r.unwrap(),
            Attempt::Crashed => unreachable!(),
        };
        assert_eq!(again.outcome, Outcome::Skipped, "{how:?}");
        assert!(again.steps.is_empty(), "{how:?}: {:?}", again.steps);
        assert_eq!(store.get().unwrap(), journal, "{how:?} rewrote the journal");
        assert_eq!(h.provider.started(), after_first, "{how:?} sent changes");
    }
    assert_eq!(lease_writes(), leases_before, "a no-op run took the lock");

    let dry = engine.dry_run(&plan).await.unwrap();
    assert!(dry.ok(), "{}", dry.to_table());
    assert!(
        dry.steps.iter().all(
            |s| matches!(&s.would, WouldDo::Skip { reason } if reason.contains("already succeeded"))
        ),
        "{}",
        dry.to_table()
    );

    // With the journal gone, a fresh run of the same plan finds everything done: every change
    // step is skipped, coredns is not moved back to v1.12.0. The dry run says the same, from
    // the same rules.
    store.clear().await.unwrap();
    let dry = engine.dry_run(&plan).await.unwrap();
    for step in &dry.steps {
        if plan
            .step(step.index)
            .is_some_and(|p| p.action.changes_cluster())
        {
            assert!(
                matches!(step.would, WouldDo::Skip { .. }),
                "{}",
                dry.to_table()
            );
        }
    }
    assert!(
        dry.steps.iter().any(|s| matches!(&s.would,
            WouldDo::Skip { reason } if reason.contains("v1.12.1, past v1.12.0"))),
        "{}",
        dry.to_table()
    );
    let fresh = engine.run(&plan, &CancellationToken::new()).await.unwrap();
    assert_eq!(fresh.outcome, Outcome::Succeeded);
    for step in fresh.steps.iter().filter(|s| {
        plan.step(s.index)
            .is_some_and(|p| p.action.changes_cluster())
    }) {
        assert_eq!(step.outcome, Outcome::Skipped, "{step:?}");
    }
    assert_eq!(h.provider.started(), after_first);
    assert_eq!(h.provider.addon("coredns").as_deref(), Some("v1.12.1"));
    assert!(
        h.provider.violations().is_empty(),
        "{:?}",
        h.provider.violations()
    );
    assert_eq!(store.get().unwrap().state, RunState::Succeeded);
    h.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_s_progress_is_kept_in_its_journal_record() {
    // The provider rolls pool `mg` node by node and says so; the journal holds the latest
    // word at every moment, so a crash leaves `kup status` showing where the step stood.
    let h = Harness::start(standard()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let wire = Arc::new(support::Tripwire::new(1, |e| {
        matches!(e, kup_core::Event::OperationProgress {
            status: OperationStatus::Running { message: Some(m), .. }, ..
        } if m.contains("replaced by"))
    }));
    let engine = h.engine(store.clone(), "runner", wire.clone(), fast_options());
    match attempt(&engine, &plan, How::Run, &wire.tripped).await {
        Attempt::Crashed => {}
        Attempt::Finished(r) => panic!("the run ended before the pool reported progress: {r:?}"),
    }
    let journal = store.get().unwrap();
    let mg = plan
        .steps
        .iter()
        .find(|s| matches!(&s.action, StepAction::NodePool { pool, .. } if pool == "mg"))
        .unwrap();
    let record = journal.step(mg.index).unwrap();
    assert!(record.operation.is_some(), "{}", journal.to_table());
    assert!(
        record
            .message
            .as_deref()
            .is_some_and(|m| m.contains("replaced by")),
        "{}",
        journal.to_table()
    );
    h.sim.shutdown().await;
}
