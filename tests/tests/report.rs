//! The run's report from its journal: a real run on the simulator, with nodes held up by a
//! PodDisruptionBudget, leaves a history from which every step and node is ticked and timed;
//! a run interrupted mid-roll and resumed reports both attempts.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kup_core::{Event, NoEvents, Outcome, StepAction};
use kup_engine::Runbook;
use kup_engine::journal::{Happening, Journal, StepState};
use kup_mocks::k8s::{IntOrPercent, Pdb, Workload};
use kup_tests::sim::{Attempt, How, SimCluster, Tripwire, attempt, fast_options, memory, small};
use tokio_util::sync::CancellationToken;

/// `small()` with `web` pinned to the kup-rolled pool: its three pods share two schedulable
/// nodes, so every drain meets the budget (minAvailable 2) until a replacement is Ready.
fn pinned() -> kup_tests::sim::Setup {
    let mut setup = small();
    setup.scenario = kup_mocks::k8s::Scenario::new()
        .version("v1.32.4")
        .pool(kup_mocks::k8s::Pool::new("kw", 2))
        .node(kup_mocks::k8s::Node::new("kw-3").pool("kw").unschedulable())
        .pool(kup_mocks::k8s::Pool::new("mg", 1))
        .workload(Workload::deployment("shop", "web").replicas(3).pool("kw"))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(IntOrPercent::Int(2)),
        )
        .workload(Workload::daemon_set("kube-system", "node-agent").tolerate_all());
    setup
}

fn kw_step(plan: &kup_core::UpgradePlan) -> usize {
    plan.steps
        .iter()
        .find(|s| matches!(&s.action, StepAction::NodePool { pool, .. } if pool == "kw"))
        .unwrap()
        .index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_reports_every_step_and_node_ticked_timed_and_its_pdb_waits() {
    let h = SimCluster::start(pinned()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let engine = h.engine(store.clone(), "runner", Arc::new(NoEvents), fast_options());
    let report = engine.run(&plan, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let journal = store.get().unwrap();
    let book = Runbook::for_run(&journal, Some(&plan));

    // Every step of the plan is ticked, with the time it finished.
    assert_eq!(book.steps.len(), plan.steps.len());
    for step in &book.steps {
        assert!(step.check.done, "step {} not ticked", step.index);
        assert!(step.check.at.is_some(), "step {} has no time", step.index);
    }
    // Every kup-rolled node is under the pool's step, upgraded, with its drain measured.
    let kw = kw_step(&plan);
    let kw_nodes: Vec<&str> = book
        .nodes
        .iter()
        .filter(|n| n.step == Some(kw))
        .map(|n| n.node.as_str())
        .collect();
    let mut sorted = kw_nodes.clone();
    sorted.sort();
    assert_eq!(sorted, ["kw-1", "kw-2", "kw-3"], "{:#?}", book.nodes);
    for n in book.nodes.iter().filter(|n| n.step == Some(kw)) {
        assert_eq!(n.pool.as_deref(), Some("kw"));
        assert_eq!(n.version.as_deref(), Some("1.33.2"), "{n:?}");
        let (cordoned, upgraded) = (n.cordoned_at.unwrap(), n.upgraded_at.unwrap());
        assert!(cordoned <= upgraded, "{n:?}");
        assert!(n.drain_ms.is_some(), "{n:?}");
        // kw-3 was cordoned before the upgrade and stays so: never uncordoned by kup.
        assert_eq!(n.uncordoned_at.is_some(), n.node != "kw-3", "{n:?}");
    }
    // The budget held up evictions, and the report names it with how long.
    let waits: Vec<_> = book.nodes.iter().flat_map(|n| &n.blocks).collect();
    assert!(
        !waits.is_empty(),
        "no PDB wait recorded: {:#?}",
        journal.history
    );
    assert!(
        waits.iter().all(|w| w.pdb.as_deref() == Some("shop/web")),
        "{waits:?}"
    );
    assert!(
        waits.iter().all(|w| w.evicted && w.until >= w.from),
        "{waits:?}"
    );
    assert!(!book.validations.is_empty());
    assert!(book.validations.iter().any(|v| v.passed));
    assert_eq!(book.backups.len(), journal.backups.len());
    assert!(!book.backups.is_empty());

    let md = book.to_markdown();
    for step in &plan.steps {
        let line = md
            .lines()
            .find(|l| l.contains(&format!("**{}.**", step.index)))
            .unwrap_or_else(|| panic!("step {} missing:\n{md}", step.index));
        assert!(line.starts_with("- [x]"), "{line}");
    }
    for node in ["kw-1", "kw-2", "kw-3"] {
        let line = md
            .lines()
            .find(|l| l.contains(&format!("node {node} upgraded to 1.33.2")))
            .unwrap_or_else(|| panic!("{node} missing:\n{md}"));
        assert!(line.starts_with("  - [x]"), "{line}");
        assert!(line.contains("drain took"), "{line}");
    }
    assert!(md.contains("blocked by PDB shop/web for"), "{md}");
    assert!(md.contains(&journal.backups[0].sha256), "{md}");

    let html = book.to_html();
    assert_eq!(
        html.matches("<rect class=\"bar node\"").count(),
        book.nodes.len() + 1
    );
    assert!(html.contains("<rect class=\"bar pdb\""));
    rendered_by_a_browser(&html, &book);
    let back: Runbook = serde_json::from_str(&serde_json::to_string(&book).unwrap()).unwrap();
    assert_eq!(back, book);
    h.sim.shutdown().await;
}

/// Loads the report in headless Chromium (`KUP_CHROMIUM`, installed by scripts/test) and
/// checks the DOM it built: the browser parsed the file as HTML, the checklist and the
/// timeline's shapes are elements, and a screenshot was painted.
fn rendered_by_a_browser(html: &str, book: &Runbook) {
    let Some(chromium) = kup_tests::lab::binary("KUP_CHROMIUM", "chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let url = format!("file://{}", page.display());
    let browser = |extra: &[&str]| {
        let out = std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1100,900",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = browser(&["--dump-dom"]);
    // The browser's serialisation of what it parsed, not the input echoed back.
    assert!(dom.contains("<svg class=\"timeline\""), "{dom}");
    assert_eq!(
        dom.matches("class=\"bar node\"").count(),
        book.nodes.len() + 1,
        "{dom}"
    );
    assert!(dom.contains("class=\"bar pdb\""), "{dom}");
    assert_eq!(
        dom.matches("<li class=\"done\">").count(),
        book.prerequisites.iter().filter(|p| p.done).count()
            + book
                .steps
                .iter()
                .flat_map(|s| &s.items)
                .filter(|i| i.done)
                .count(),
        "{dom}"
    );
    let shot = dir.path().join("report.png");
    browser(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG was painted");
    assert!(
        png.len() > 20_000,
        "the page painted more than a blank ({} bytes)",
        png.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_mid_roll_and_resumed_reports_both_attempts() {
    let h = SimCluster::start(pinned()).await;
    let plan = h.plan("1.33.2").await;
    let store = memory();
    let kw = kw_step(&plan);
    // The process dies when the second node's drain begins.
    let wire = Arc::new(Tripwire::new(2, |e| {
        matches!(e, Event::DrainStarted { .. })
    }));
    let engine = h.engine(store.clone(), "runner", wire.clone(), fast_options());
    let first = attempt(&engine, &plan, How::Run, &wire.tripped).await;
    assert!(
        matches!(first, Attempt::Crashed),
        "the first attempt must stop at the crash"
    );
    let interrupted = store.get().unwrap();
    assert!(interrupted.state.is_unfinished());
    let md = Runbook::for_run(&interrupted, Some(&plan)).to_markdown();
    assert!(md.contains("interrupted or still running"), "{md}");
    assert!(
        md.lines()
            .any(|l| l.starts_with("- [ ]") && l.contains("**")),
        "{md}"
    );

    let engine = h.engine(store.clone(), "runner", Arc::new(NoEvents), fast_options());
    engine
        .resume(&plan, &CancellationToken::new())
        .await
        .unwrap();
    let journal: Journal = store.get().unwrap();
    assert_eq!(journal.attempts, 2);
    let attempts: std::collections::BTreeSet<u32> =
        journal.history.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts.into_iter().collect::<Vec<_>>(), [1, 2]);
    assert!(
        journal
            .history
            .iter()
            .any(|e| matches!(e.what, Happening::StepFinished { step, .. } if step == kw))
    );
    let book = Runbook::for_run(&journal, Some(&plan));
    assert!(
        book.steps
            .iter()
            .all(|s| s.state == Some(StepState::Succeeded) || s.state == Some(StepState::Skipped))
    );
    assert!(book.to_markdown().contains("(2 attempts)"));
    h.sim.shutdown().await;
}
