#![allow(clippy::unwrap_used)]
use std::collections::BTreeMap;

use jiff::Timestamp;
use kup_core::{
    BackupRecord, ClusterInfo, Event, Finding, KubeVersion, NodePool, Outcome, PoolManagement,
    PoolMoveReason, ProviderKind, Severity, StepAction, TimedEvent, UpgradePlan,
};

use super::*;
use crate::journal::tests::plan_of;
use crate::journal::{NodePhase, NodeRecord};

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

fn plan() -> UpgradePlan {
    let steps = vec![
        StepAction::Preflight {
            target: v("1.32.3"),
        },
        StepAction::Backup {
            control_plane: v("1.31.4"),
        },
        StepAction::ControlPlane {
            from: v("1.31.4"),
            to: v("1.32.3"),
        },
        StepAction::NodePool {
            pool: "workers".into(),
            from: v("1.31.4"),
            to: v("1.32.3"),
            management: PoolManagement::Kup,
            reason: PoolMoveReason::Target,
        },
        StepAction::Addon {
            name: "coredns".into(),
            from: "1.11.3".into(),
            to: "1.12.0".into(),
            control_plane: v("1.32.3"),
        },
        StepAction::Validate {
            control_plane: v("1.32.3"),
            pools: BTreeMap::new(),
        },
    ];
    let mut plan = plan_of(ProviderKind::Kubeadm, "1.31.4", "1.32.3", steps);
    plan.id = "feedc0de".into();
    plan.cluster = "prod|eu".into();
    plan
}

fn pool(name: &str, control_plane: bool, nodes: &[&str]) -> NodePool {
    let mut p: NodePool = serde_json::from_value(serde_json::json!({
        "name": name,
        "version": "1.31.4",
        "management": "kup",
        "control_plane": control_plane,
    }))
    .unwrap();
    p.nodes = nodes.iter().map(|n| n.to_string()).collect();
    p
}

fn cluster() -> ClusterInfo {
    let mut c: ClusterInfo = serde_json::from_value(serde_json::json!({
        "provider": "kubeadm",
        "name": "prod",
        "control_plane": "1.31.4",
        "node_pools": [],
    }))
    .unwrap();
    c.node_pools = vec![
        pool("control-plane", true, &["cp-1", "cp-2"]),
        pool("workers", false, &["w1", "w2"]),
    ];
    c
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + secs).unwrap()
}

fn rec(j: &mut Journal, secs: i64, event: Event) {
    j.record(1, &TimedEvent { at: t(secs), event });
}

/// A journal as a run of `plan()` leaves it: every step done, w1 held 40 s by a PDB.
fn finished_run() -> Journal {
    let plan = plan();
    let mut j = Journal::new(&plan, "kup@host");
    j.attempts = 1;
    j.started_at = t(0);
    for (i, s) in j.steps.iter_mut().enumerate() {
        s.state = StepState::Succeeded;
        s.started_at = Some(t(i as i64 * 100));
        s.finished_at = Some(t(i as i64 * 100 + 90));
        s.message = Some(format!("step {} done", s.index));
    }
    j.backups.push(BackupRecord {
        id: "etcd-1".into(),
        location: "/var/lib/kup/etcd-1.db".into(),
        taken_at: t(110),
        size_bytes: 4096,
        sha256: "ab12".into(),
        store_hash: Some(77),
        revision: Some(9),
        total_keys: Some(40),
        control_plane: v("1.31.4"),
    });
    j.set_findings(&[Finding::new(
        "drain.pdb-tight",
        Severity::Warning,
        "PDB shop/web allows no disruption",
    )]);
    rec(
        &mut j,
        300,
        Event::StepStarted {
            step: 4,
            description: "node pool workers".into(),
        },
    );
    for (node, start) in [("w1", 300), ("w2", 360)] {
        j.nodes.push(NodeRecord {
            node: node.into(),
            pool: "workers".into(),
            step: 4,
            to: v("1.32.3"),
            was_cordoned: false,
            phase: NodePhase::Cordoned,
            operation: None,
            reason: None,
            attempt: 1,
            since: t(start),
        });
        rec(
            &mut j,
            start,
            Event::NodeCordoned {
                node: node.into(),
                was_cordoned: false,
            },
        );
        rec(
            &mut j,
            start + 1,
            Event::DrainStarted {
                node: node.into(),
                pods: 3,
            },
        );
        if node == "w1" {
            for at in [302, 322, 342] {
                rec(
                    &mut j,
                    at,
                    Event::PodBlocked {
                        namespace: "shop".into(),
                        name: "web-0".into(),
                        node: node.into(),
                        pdb: Some("web".into()),
                        message: "needs 2 healthy".into(),
                        since: t(302),
                    },
                );
            }
            rec(
                &mut j,
                342,
                Event::PodEvicted {
                    namespace: "shop".into(),
                    name: "web-0".into(),
                    node: node.into(),
                },
            );
        }
        rec(
            &mut j,
            start + 45,
            Event::NodeDrained {
                node: node.into(),
                evicted: 3,
                deleted: 0,
                elapsed_ms: 44_000,
            },
        );
        rec(
            &mut j,
            start + 55,
            Event::NodeUpgraded {
                node: node.into(),
                version: "1.32.3".into(),
            },
        );
        rec(
            &mut j,
            start + 56,
            Event::NodeUncordoned { node: node.into() },
        );
        j.nodes.retain(|n| n.node != node);
    }
    rec(
        &mut j,
        420,
        Event::StepFinished {
            step: 4,
            outcome: Outcome::Succeeded,
            message: "2 nodes".into(),
        },
    );
    rec(
        &mut j,
        590,
        Event::ValidationRound {
            round: 1,
            passed: true,
            consecutive: 1,
            required: 1,
            failures: vec![],
        },
    );
    j.state = RunState::Succeeded;
    j.updated_at = t(600);
    j
}

#[test]
fn a_plan_becomes_a_checklist_with_a_box_per_node_and_its_rollback() {
    let book = Runbook::for_plan(&plan(), Some(&cluster()));
    let md = book.to_markdown();
    assert!(
        md.starts_with("# Upgrade runbook: kubeadm cluster prod\\|eu"),
        "{md}"
    );
    assert!(
        md.contains("- [ ] etcd snapshot taken and verified"),
        "{md}"
    );
    assert!(
        md.contains("- [ ] Change window approved (approved by: \\_\\_"),
        "{md}"
    );
    assert!(
        md.contains("Release notes and removed APIs reviewed for 1.32"),
        "{md}"
    );
    // The hop lists the control-plane nodes, the pool its workers, in order.
    let cp = md.find("**3.** control plane 1.31.4 → 1.32.3").unwrap();
    let cp1 = md.find("  - [ ] node cp-1").unwrap();
    let cp2 = md.find("  - [ ] node cp-2").unwrap();
    let pool = md.find("**4.** node pool workers").unwrap();
    let w1 = md.find("  - [ ] node w1").unwrap();
    assert!(cp < cp1 && cp1 < cp2 && cp2 < pool && pool < w1, "{md}");
    assert!(!md.contains("[x]"), "nothing is done before the run: {md}");
    assert!(
        md.contains("restore the run's verified etcd snapshot"),
        "{md}"
    );
    assert!(md.contains("coredns 1.11.3"), "{md}");
}

#[test]
fn a_run_ticks_and_times_every_step_and_node_and_names_the_pdb_wait() {
    let journal = finished_run();
    let book = Runbook::for_run(&journal, Some(&plan()));
    assert!(book.steps.iter().all(|s| s.check.done));
    let w1 = book.nodes.iter().find(|n| n.node == "w1").unwrap();
    assert_eq!(w1.pool.as_deref(), Some("workers"));
    assert_eq!(w1.step, Some(4));
    assert_eq!(w1.blocks.len(), 1);
    assert_eq!(w1.blocks[0].seconds(), 40);
    assert_eq!(w1.blocks[0].pdb.as_deref(), Some("shop/web"));
    let md = book.to_markdown();
    assert!(md.starts_with("# Upgrade report"), "{md}");
    assert!(md.contains("- Outcome: succeeded"), "{md}");
    let w1_line = md
        .lines()
        .find(|l| l.contains("node w1 upgraded to 1.32.3"))
        .unwrap();
    assert!(w1_line.starts_with("  - [x]"), "{w1_line}");
    assert!(w1_line.contains(&clock(t(355))), "{w1_line}");
    assert!(w1_line.contains("drain took 44 s"), "{w1_line}");
    assert_eq!(duration(4_240), "4.2 s");
    assert_eq!(duration(754_000), "12 min 34 s");
    assert!(
        w1_line.contains("blocked by PDB shop/web for 40 s"),
        "{w1_line}"
    );
    assert!(
        md.contains(&format!(
            "- [x] etcd snapshot taken and verified (the plan's backup step) — {}",
            clock(t(110))
        )),
        "{md}"
    );
    assert!(md.contains("etcd-1 (sha256 ab12)"), "{md}");
    assert!(md.contains("| etcd-1 |"), "{md}");
    assert!(
        md.contains("**warning** drain.pdb-tight: PDB shop/web"),
        "{md}"
    );
    assert!(md.contains("round 1: passed (1/1 consecutive)"), "{md}");
    // The operator's attestations stay open: the journal cannot know them.
    assert!(
        md.contains("- [ ] Upgrade rehearsed on a staging cluster"),
        "{md}"
    );
}

#[test]
fn an_interrupted_run_says_so_and_shows_the_node_still_cordoned() {
    let mut journal = finished_run();
    journal.state = RunState::Running;
    journal.step_mut(5).unwrap().state = StepState::Pending;
    journal.step_mut(5).unwrap().finished_at = None;
    journal.step_mut(6).unwrap().state = StepState::Pending;
    journal.nodes.push(NodeRecord {
        node: "w3".into(),
        pool: "workers".into(),
        step: 4,
        to: v("1.32.3"),
        was_cordoned: false,
        phase: NodePhase::Drained,
        operation: None,
        reason: None,
        attempt: 1,
        since: t(500),
    });
    let md = Runbook::for_run(&journal, Some(&plan())).to_markdown();
    assert!(md.contains("interrupted or still running"), "{md}");
    assert!(md.contains("- [ ] **5.** add-on coredns"), "{md}");
    assert!(md.contains("## Still cordoned"), "{md}");
    assert!(md.contains("w3 (pool workers, Drained)"), "{md}");
}

#[test]
fn the_html_is_one_balanced_file_with_a_timeline_showing_the_pdb_wait() {
    let book = Runbook::for_run(&finished_run(), Some(&plan()));
    let html = book.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("src="), "no external resources");
    assert!(html.contains("prod|eu"), "the name is shown as text");
    for tag in ["html", "body", "svg", "table", "ol", "ul", "li", "tr"] {
        let open =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let close = html.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "<{tag}> balanced");
    }
    assert!(html.contains("class=\"bar pdb\""), "the PDB wait is drawn");
    assert!(
        html.contains("shop/web-0 held by PDB shop/web for 40 s"),
        "{html}"
    );
    assert_eq!(
        html.matches("class=\"bar node\"").count(),
        3,
        "two nodes and the legend"
    );
}

#[test]
fn text_from_the_cluster_cannot_inject_markup() {
    let mut journal = finished_run();
    journal.step_mut(3).unwrap().message = Some("<img src=x onerror=alert(1)>\n# heading".into());
    let book = Runbook::for_run(&journal, Some(&plan()));
    let html = book.to_html();
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x"));
    let md = book.to_markdown();
    assert!(
        md.contains("\\<img src=x onerror=alert(1)\\> \\# heading"),
        "{md}"
    );
    assert!(!md.contains("\n# heading"));
}

#[test]
fn the_runbook_round_trips_as_json() {
    let book = Runbook::for_run(&finished_run(), Some(&plan()));
    let json = serde_json::to_string(&book).unwrap();
    let back: Runbook = serde_json::from_str(&json).unwrap();
    assert_eq!(back, book);
}

#[test]
fn managed_providers_say_what_cannot_be_undone() {
    for (kind, says) in [
        (ProviderKind::Eks, "EKS cannot downgrade"),
        (ProviderKind::Aks, "recentlyUsedVersions"),
        (ProviderKind::Gke, "rollback-safe upgrade"),
    ] {
        let mut p = plan();
        p.provider = kind;
        p.steps
            .retain(|s| !matches!(s.action, StepAction::Backup { .. }));
        let md = Runbook::for_plan(&p, None).to_markdown();
        assert!(md.contains(says), "{md}");
        assert!(md.contains("there is no etcd snapshot to take"), "{md}");
    }
}
