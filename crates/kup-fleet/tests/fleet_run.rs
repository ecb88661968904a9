//! Fleet runs over simulated clusters with kup's reference provider: stages in order, label
//! selectors, concurrency, error budgets, approval gates, and a killed run that resumes
//! without starting any provider operation twice.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kup_core::{KubeVersion, PlanOptions, ProviderErrorDetail};
use kup_engine::journal::{JournalStore, MemoryJournalStore};
use kup_fleet::{
    ClusterOutcome, ClusterPhase, Connector, Error, FileFleetControls, FileFleetJournal,
    FleetControls, FleetEvent, FleetEventSink, FleetJournalStore, FleetPhase, FleetRunner,
    FleetSpec, Member, MemberCluster, MemoryFleetControls, MemoryFleetJournal, RunnerOptions,
    StagePhase, WaitMode,
};
use kup_tests::sim::{CrashStore, GUARD, SimCluster, fast_options, small};
use tokio_util::sync::CancellationToken;

const TARGET: &str = "1.33.2";

fn target() -> KubeVersion {
    KubeVersion::parse(TARGET).unwrap()
}

/// Simulated clusters by name, each with the engine journal that outlives a fleet run.
struct Sims {
    clusters: BTreeMap<String, Arc<SimCluster>>,
    journals: BTreeMap<String, Arc<MemoryJournalStore>>,
    /// Members whose connection fails.
    unreachable: Mutex<BTreeSet<String>>,
    /// A journal to use once instead of the cluster's own (a crash point).
    crash: Mutex<BTreeMap<String, Arc<dyn JournalStore>>>,
}

impl Sims {
    async fn start(names: &[&str]) -> Arc<Self> {
        let mut clusters = BTreeMap::new();
        let mut journals = BTreeMap::new();
        for n in names {
            clusters.insert(
                n.to_string(),
                Arc::new(SimCluster::start_named(n, small()).await),
            );
            journals.insert(n.to_string(), Arc::new(MemoryJournalStore::new()));
        }
        Arc::new(Self {
            clusters,
            journals,
            unreachable: Mutex::new(BTreeSet::new()),
            crash: Mutex::new(BTreeMap::new()),
        })
    }

    fn get(&self, name: &str) -> &SimCluster {
        &self.clusters[name]
    }

    async fn assert_all_converged(&self, run: &kup_fleet::FleetRun) {
        for (name, c) in &self.clusters {
            let plan = run.cluster(name).unwrap().plan.clone().unwrap();
            c.assert_converged(&plan, self.journals[name].get()).await;
        }
    }
}

#[async_trait]
impl Connector for Sims {
    async fn connect(&self, member: &Member) -> kup_fleet::Result<MemberCluster> {
        if self.unreachable.lock().unwrap().contains(&member.name) {
            return Err(Error::Connect {
                cluster: member.name.clone(),
                message: "no route to the API server".into(),
            });
        }
        let c = self
            .clusters
            .get(&member.name)
            .ok_or_else(|| Error::Connect {
                cluster: member.name.clone(),
                message: "no such simulated cluster".into(),
            })?;
        let journal = self
            .crash
            .lock()
            .unwrap()
            .remove(&member.name)
            .unwrap_or_else(|| self.journals[&member.name].clone());
        Ok(MemberCluster {
            provider: c.provider.clone(),
            kube: c.kube.clone(),
            node_ops: Some(c.nodes.clone()),
            journal,
            lock: Arc::new(c.lock("fleet")),
            options: fast_options(),
            plan_options: PlanOptions::default(),
        })
    }
}

/// Records fleet events (not the engines' own).
#[derive(Default)]
struct Log {
    events: Mutex<Vec<FleetEvent>>,
    /// Cancelled at the first provider operation of `cancel_on`.
    cancel: CancellationToken,
    cancel_on: Option<String>,
}

impl FleetEventSink for Log {
    fn emit(&self, event: FleetEvent) {
        if let FleetEvent::Cluster { cluster, engine } = &event {
            if Some(cluster) == self.cancel_on.as_ref()
                && matches!(engine, kup_core::Event::OperationStarted { .. })
            {
                self.cancel.cancel();
            }
            return;
        }
        self.events.lock().unwrap().push(event);
    }
}

impl Log {
    fn events(&self) -> Vec<FleetEvent> {
        self.events.lock().unwrap().clone()
    }
}

fn spec(yaml: &str) -> FleetSpec {
    serde_saphyr::from_str(yaml).unwrap()
}

const THREE_STAGES: &str = r#"
members:
  - { name: dev-1, labels: { env: dev }, provider: sim }
  - { name: dev-2, labels: { env: dev }, provider: sim }
  - { name: stg-1, labels: { env: staging }, provider: sim }
  - { name: prod-1, labels: { env: prod, region: eu }, provider: sim }
  - { name: prod-2, labels: { env: prod, region: us }, provider: sim }
strategy:
  stages:
    - name: dev
      maxConcurrency: "100%"
      groups: [{ name: dev, selector: { matchLabels: { env: dev } } }]
    - name: staging
      groups: [{ name: staging, clusters: [stg-1] }]
    - name: prod
      maxConcurrency: "1"
      groups:
        - name: prod
          selector:
            matchExpressions: [{ key: env, operator: In, values: [prod] }]
"#;

fn options(wait: WaitMode) -> RunnerOptions {
    RunnerOptions {
        poll_interval: std::time::Duration::from_millis(20),
        wait,
    }
}

async fn run_to_end(runner: &FleetRunner) -> kup_fleet::FleetRun {
    tokio::time::timeout(GUARD, runner.run(&CancellationToken::new()))
        .await
        .expect("the fleet run did not finish within the guard")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_stages_upgrade_every_cluster_in_order() {
    let sims = Sims::start(&["dev-1", "dev-2", "stg-1", "prod-1", "prod-2"]).await;
    let log = Arc::new(Log::default());
    let journal = Arc::new(MemoryFleetJournal::new());
    let runner = FleetRunner::new(
        &spec(THREE_STAGES),
        target(),
        sims.clone(),
        journal.clone(),
        Arc::new(MemoryFleetControls::new()),
        log.clone(),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    assert!(
        run.stages.iter().all(|s| s.phase == StagePhase::Completed),
        "{}",
        run.to_table()
    );
    sims.assert_all_converged(&run).await;
    assert_eq!(journal.load().await.unwrap().unwrap(), run);

    // Stage order: no cluster of a stage starts before every cluster of the one before
    // finished; prod runs one at a time.
    let events = log.events();
    let pos = |f: &dyn Fn(&FleetEvent) -> bool| events.iter().position(f).unwrap();
    let started = |name: &'static str| move |e: &FleetEvent| matches!(e, FleetEvent::ClusterStarted { cluster, .. } if cluster == name);
    let finished = |name: &'static str| move |e: &FleetEvent| matches!(e, FleetEvent::ClusterFinished { cluster, .. } if cluster == name);
    assert!(pos(&finished("dev-1")) < pos(&started("stg-1")));
    assert!(pos(&finished("dev-2")) < pos(&started("stg-1")));
    assert!(pos(&finished("stg-1")) < pos(&started("prod-1")));
    assert!(pos(&finished("prod-1")) < pos(&started("prod-2")));
    // dev ran both at once: both started before either finished.
    assert!(pos(&started("dev-2")) < pos(&finished("dev-1")));
    assert!(matches!(events.last(), Some(FleetEvent::Completed)));
    for c in run.stages.iter().flat_map(|s| s.clusters.values()) {
        assert_eq!(c.phase, ClusterPhase::Succeeded);
        assert_eq!(c.attempts, 1);
    }

    // A second run of the completed fleet changes nothing.
    let before: usize = sims
        .clusters
        .values()
        .map(|c| c.provider.started().len())
        .sum();
    let again = run_to_end(&runner).await;
    assert_eq!(again.phase, FleetPhase::Completed);
    let after: usize = sims
        .clusters
        .values()
        .map(|c| c.provider.started().len())
        .sum();
    assert_eq!(before, after);
}

const TWO_STAGES: &str = r#"
members:
  - { name: a-1, labels: { ring: "0" }, provider: sim }
  - { name: a-2, labels: { ring: "0" }, provider: sim }
  - { name: b-1, labels: { ring: "1" }, provider: sim }
strategy:
  stages:
    - name: ring0
      maxConcurrency: "2"
      groups: [{ name: ring0, selector: { matchLabels: { ring: "0" } } }]
      BUDGET
    - name: ring1
      APPROVAL
      groups: [{ name: ring1, clusters: [b-1] }]
"#;

fn two_stages(budget: &str, approval: bool) -> FleetSpec {
    spec(
        &TWO_STAGES
            .replace("BUDGET", budget)
            .replace("APPROVAL", if approval { "approval: true" } else { "" }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_over_budget_halts_before_the_next_stage_and_resume_retries_it() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    sims.get("a-2").provider.set_faults(|f| {
        f.fail_control_plane = Some(vec![ProviderErrorDetail {
            code: "UpgradeFailed".into(),
            message: "the control plane did not come back".into(),
            resource_ids: vec![],
        }])
    });
    let log = Arc::new(Log::default());
    let runner = FleetRunner::new(
        &two_stages("", false),
        target(),
        sims.clone(),
        Arc::new(MemoryFleetJournal::new()),
        Arc::new(MemoryFleetControls::new()),
        log.clone(),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Halted, "{}", run.to_table());
    let halt = run.halted.clone().unwrap();
    assert!(halt.reason.contains("a-2"), "{}", halt.reason);
    assert!(
        halt.reason.contains("no failures allowed"),
        "{}",
        halt.reason
    );
    assert_eq!(run.stage("ring0").unwrap().phase, StagePhase::Failed);
    assert!(matches!(
        run.cluster("a-2").unwrap().phase,
        ClusterPhase::Failed { ref message } if message.contains("UpgradeFailed")
    ));
    assert_eq!(run.cluster("a-1").unwrap().phase, ClusterPhase::Succeeded);
    assert_eq!(run.cluster("b-1").unwrap().phase, ClusterPhase::Pending);
    assert!(sims.get("b-1").provider.started().is_empty());
    assert!(
        log.events()
            .iter()
            .any(|e| matches!(e, FleetEvent::Halted { .. }))
    );

    // The fault is gone (it fired once); resume retries a-2 from its journal and goes on.
    let run = tokio::time::timeout(GUARD, runner.resume(&CancellationToken::new()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    assert_eq!(run.cluster("a-2").unwrap().attempts, 2);
    sims.assert_all_converged(&run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_within_budget_lets_the_next_stage_run() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    sims.unreachable.lock().unwrap().insert("a-1".into());
    let runner = FleetRunner::new(
        &two_stages("errorBudget: { maxFailed: 1 }", false),
        target(),
        sims.clone(),
        Arc::new(MemoryFleetJournal::new()),
        Arc::new(MemoryFleetControls::new()),
        Arc::new(Log::default()),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    assert!(matches!(
        run.cluster("a-1").unwrap().phase,
        ClusterPhase::Failed { ref message } if message.contains("no route")
    ));
    assert_eq!(run.cluster("a-2").unwrap().phase, ClusterPhase::Succeeded);
    assert_eq!(run.cluster("b-1").unwrap().phase, ClusterPhase::Succeeded);
    assert!(sims.get("a-1").provider.started().is_empty());
    for name in ["a-2", "b-1"] {
        let plan = run.cluster(name).unwrap().plan.clone().unwrap();
        sims.get(name)
            .assert_converged(&plan, sims.journals[name].get())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_gate_holds_the_stage_until_approved_through_the_controls() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let controls = Arc::new(FileFleetControls::new(dir.path()));
    let journal = Arc::new(FileFleetJournal::new(dir.path()));
    let log = Arc::new(Log::default());
    let runner = FleetRunner::new(
        &two_stages("", true),
        target(),
        sims.clone(),
        journal.clone(),
        controls.clone(),
        log.clone(),
    )
    .unwrap()
    .with_options(options(WaitMode::Return));
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::WaitingApproval, "{}", run.to_table());
    assert_eq!(run.stage("ring0").unwrap().phase, StagePhase::Completed);
    assert_eq!(
        run.stage("ring1").unwrap().phase,
        StagePhase::WaitingApproval
    );
    assert!(sims.get("b-1").provider.started().is_empty());
    assert!(
        log.events()
            .iter()
            .any(|e| matches!(e, FleetEvent::WaitingForApproval { stage } if stage == "ring1"))
    );
    // Running again without approval still waits.
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::WaitingApproval);

    // Another process approves (a separate file, not the journal); the run goes on.
    assert!(runner.approve("ring9", "alice").await.is_err());
    FileFleetControls::new(dir.path())
        .approve("ring1", "alice")
        .await
        .unwrap();
    assert!(dir.path().join("approve-ring1.json").exists());
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    assert_eq!(journal.load().await.unwrap().unwrap(), run);
    sims.assert_all_converged(&run).await;
    let state = controls.state().await.unwrap();
    assert_eq!(state.approvals["ring1"].by, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_wait_ends_when_another_task_approves() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    let controls = Arc::new(MemoryFleetControls::new());
    let log = Arc::new(Log::default());
    let runner = Arc::new(
        FleetRunner::new(
            &two_stages("", true),
            target(),
            sims.clone(),
            Arc::new(MemoryFleetJournal::new()),
            controls.clone(),
            log.clone(),
        )
        .unwrap()
        .with_options(options(WaitMode::Block)),
    );
    let handle = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run(&CancellationToken::new()).await }
    });
    // Approve once the run says it waits.
    tokio::time::timeout(GUARD, async {
        while !log
            .events()
            .iter()
            .any(|e| matches!(e, FleetEvent::WaitingForApproval { .. }))
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(sims.get("b-1").provider.started().is_empty());
    controls.approve("ring1", "bob").await.unwrap();
    let run = tokio::time::timeout(GUARD, handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    sims.assert_all_converged(&run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_resumes_its_running_cluster_without_a_second_operation() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    let journal = Arc::new(MemoryFleetJournal::new());
    let log = Arc::new(Log {
        cancel_on: Some("b-1".into()),
        ..Log::default()
    });
    let runner = FleetRunner::new(
        &two_stages("", false),
        target(),
        sims.clone(),
        journal.clone(),
        Arc::new(MemoryFleetControls::new()),
        log.clone(),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    let run = tokio::time::timeout(GUARD, runner.run(&log.cancel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.cluster("b-1").unwrap().phase, ClusterPhase::Running);
    assert!(
        log.events()
            .iter()
            .any(|e| matches!(e, FleetEvent::Interrupted))
    );
    let ops_before = sims.get("b-1").provider.started().len();
    assert!(ops_before >= 1);

    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    assert_eq!(run.cluster("b-1").unwrap().attempts, 2);
    sims.assert_all_converged(&run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_from_the_member_journal_without_a_second_operation() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    // a-1's engine dies at its fourth journal save (after it lands), mid-upgrade.
    let crash = Arc::new(CrashStore::new(sims.journals["a-1"].clone(), 4, true));
    sims.crash
        .lock()
        .unwrap()
        .insert("a-1".into(), crash.clone());
    let dir = tempfile::tempdir().unwrap();
    let runner = FleetRunner::new(
        &two_stages("", false),
        target(),
        sims.clone(),
        Arc::new(FileFleetJournal::new(dir.path())),
        Arc::new(FileFleetControls::new(dir.path())),
        Arc::new(Log::default()),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    // The process dies: the run future is dropped at the crash point.
    let never = CancellationToken::new();
    tokio::select! {
        _ = crash.tripped.cancelled() => {}
        r = runner.run(&never) => panic!("the run ended before the crash: {r:?}"),
    }
    let stored = FileFleetJournal::new(dir.path())
        .load()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.cluster("a-1").unwrap().phase, ClusterPhase::Running);
    let plan_id = stored.cluster("a-1").unwrap().plan.clone().unwrap().id;
    let started_before = sims.get("a-1").provider.started();

    // A new process, a new runner on the same files.
    let runner = FleetRunner::new(
        &two_stages("", false),
        target(),
        sims.clone(),
        Arc::new(FileFleetJournal::new(dir.path())),
        Arc::new(FileFleetControls::new(dir.path())),
        Arc::new(Log::default()),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    let a1 = run.cluster("a-1").unwrap();
    assert_eq!(a1.plan.as_ref().unwrap().id, plan_id, "the stored plan ran");
    assert_eq!(a1.attempts, 2);
    // Everything started before the crash is still there once; nothing started twice.
    let started_after = sims.get("a-1").provider.started();
    assert!(started_after.starts_with(&started_before));
    sims.assert_all_converged(&run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_request_stops_new_clusters_and_resume_continues() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    let controls = Arc::new(MemoryFleetControls::new());
    controls.request_halt("carol", "incident 42").await.unwrap();
    let runner = FleetRunner::new(
        &two_stages("", false),
        target(),
        sims.clone(),
        Arc::new(MemoryFleetJournal::new()),
        controls.clone(),
        Arc::new(Log::default()),
    )
    .unwrap()
    .with_options(options(WaitMode::Block));
    let run = run_to_end(&runner).await;
    assert_eq!(run.phase, FleetPhase::Halted);
    assert!(run.halted.unwrap().reason.contains("incident 42"));
    for c in sims.clusters.values() {
        assert!(c.provider.started().is_empty());
    }
    let run = tokio::time::timeout(GUARD, runner.resume(&CancellationToken::new()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.phase, FleetPhase::Completed, "{}", run.to_table());
    sims.assert_all_converged(&run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_plan_shows_every_cluster_and_keeps_an_unreachable_one_on_its_row() {
    let sims = Sims::start(&["a-1", "a-2", "b-1"]).await;
    sims.unreachable.lock().unwrap().insert("a-2".into());
    sims.get("b-1").provider.set_faults(|f| {
        f.findings = vec![kup_core::Finding::new(
            "sim.insight-addon-version",
            kup_core::Severity::Blocker,
            "coredns too old for 1.33",
        )]
    });
    let plan = kup_fleet::plan_fleet(&two_stages("", false), &target(), sims.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(
        plan.clusters
            .iter()
            .map(|c| c.cluster.as_str())
            .collect::<Vec<_>>(),
        ["a-1", "a-2", "b-1"]
    );
    let a1 = &plan.clusters[0];
    assert!(a1.ready(), "{a1:?}");
    assert_eq!(a1.current, Some(KubeVersion::parse("1.32.4").unwrap()));
    assert!(
        plan.clusters[1]
            .error
            .as_ref()
            .unwrap()
            .contains("no route")
    );
    assert!(
        plan.clusters[2]
            .blockers
            .iter()
            .any(|b| b.contains("coredns too old")),
        "{:?}",
        plan.clusters[2]
    );
    assert!(!plan.ready());
    let table = plan.to_table();
    assert!(table.contains("1.32.4 → 1.33.2"), "{table}");
    assert!(table.contains("not planned"), "{table}");
    let json: kup_fleet::FleetPlan = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(json, plan);
    // Nothing changed.
    for c in sims.clusters.values() {
        assert!(c.provider.started().is_empty());
    }
    let _ = ClusterOutcome::Succeeded;
}
