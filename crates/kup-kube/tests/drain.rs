//! The drain against the Kubernetes simulator: every drain row of faults.md (1–8, 16, 17),
//! each asserting the end state of the cluster and what the drain reported.

#![allow(clippy::unwrap_used)]

mod drain_support;

use std::time::Duration;

use drain_support::{Cluster, GUARD, NODE, Recorder, SPARE, base};
use k8s_openapi::api::core::v1::Pod as KPod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kup_core::{ErrorCategory, Event};
use kup_kube::Error;
use kup_kube::drain::{DrainMethod, DrainOptions, RefusalReason, SkipReason};
use kup_mocks::k8s::{DeletedVia, Fault, Pdb, Pod, SimConfig, Workload};

const EVICTIONS: &str = "/api/v1/namespaces/*/pods/*/eviction";

fn web(replicas: u32) -> Workload {
    Workload::deployment("shop", "web")
        .replicas(replicas)
        .pool("a")
}

/// Row 1: a budget that refuses at first but allows disruptions as replacements become Ready.
/// Every pod is evicted (never deleted), the blocked ones named with their budget, and the
/// budget is not hammered: each refusal is followed by a retry only when the budget changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_contention_resolves_and_every_pod_is_evicted() {
    let c = Cluster::start(
        base().workload(web(4)).pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .max_unavailable(1),
        ),
    )
    .await;
    c.open_spare().await;
    let events = Recorder::default();
    let opts = DrainOptions {
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c.drainer.drain(NODE, &opts, &events).await.unwrap();

    assert_eq!(report.evicted.len(), 4, "{report:?}");
    assert!(report.remaining.is_empty() && !report.timed_out);
    assert!(report.cordoned, "this drain cordoned the node");
    assert!(c.cordoned(NODE), "a drain never uncordons");
    assert!(c.pods_on_with_prefix(NODE, "web-").is_empty());
    // Three of four were held back by the budget at first, and all of them got through.
    assert!(report.blocked.len() >= 3, "{:?}", report.blocked);
    for b in &report.blocked {
        assert_eq!(b.pdb.as_deref(), Some("web"));
        assert!(
            b.message.contains("The disruption budget web needs"),
            "{}",
            b.message
        );
        assert!(b.resolved);
    }
    assert_eq!(
        events.count(|e| matches!(e, Event::PodBlocked { pdb: Some(p), .. } if p == "web")),
        report.blocked.len()
    );
    assert_eq!(events.count(|e| matches!(e, Event::PodEvicted { .. })), 4);
    assert!(matches!(
        events.events().last(),
        Some(Event::NodeDrained { evicted: 4, .. })
    ));
    // Evictions only; replacements Ready elsewhere.
    let deletions = c.sim.pod_deletions();
    assert!(
        deletions
            .iter()
            .filter(|d| d.node == NODE)
            .all(|d| d.via == DeletedVia::Eviction)
    );
    assert_eq!(c.statuses("DELETE", "/api/v1/namespaces/*/pods/*").len(), 0);
    c.sim
        .wait_for(GUARD, "4 web pods Ready on the spare", |s| {
            s.pods_on_node(SPARE)
                .iter()
                .filter(|p| {
                    p["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("web-"))
                })
                .count()
                == 4
        })
        .await
        .unwrap();
    // kubectl would retry each blocked pod every 5 s; here a refused pod is retried only
    // when its budget allows one more disruption (or a slow fallback timer fires).
    let posts = c.statuses("POST", EVICTIONS);
    let refused = posts.iter().filter(|s| **s == 429).count();
    assert!(posts.len() <= 4 + refused, "{posts:?}");
    assert!(refused <= 3 * 3, "the budget was hammered: {posts:?}");
    c.stop().await;
}

/// Rows 1 and 6: a budget at zero never allows an eviction. The drain stops at its deadline,
/// names the blocked pods and their budget with its message, keeps the node cordoned and
/// never falls back to DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_at_zero_times_out_naming_pods_and_budget_and_leaves_the_node_cordoned() {
    let c = Cluster::start(
        base().workload(web(2)).pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(2),
        ),
    )
    .await;
    let events = Recorder::default();
    let opts = DrainOptions {
        timeout: Some(Duration::from_secs(3)),
        ..DrainOptions::default()
    };
    let err = c.drainer.drain(NODE, &opts, &events).await.unwrap_err();
    let text = err.to_string();
    let Error::DrainTimedOut {
        blocked,
        remaining,
        report,
        ..
    } = &err
    else {
        panic!("expected a timeout, got {err}");
    };
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    for b in blocked {
        assert_eq!(b.pdb.as_deref(), Some("web"));
        assert_eq!(
            b.message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        assert!(!b.resolved && b.refusals >= 1);
        assert!(text.contains(&b.pod.to_string()), "{text}");
    }
    assert!(report.timed_out && report.evicted.is_empty());
    assert!(text.contains("PodDisruptionBudget shop/web"), "{text}");
    assert!(text.contains("stays cordoned"), "{text}");
    assert!(c.cordoned(NODE));
    assert_eq!(c.pods_on_with_prefix(NODE, "web-").len(), 2);
    assert!(c.sim.pod_deletions().is_empty(), "nothing may be deleted");
    assert_eq!(c.statuses("DELETE", "/api/v1/namespaces/*/pods/*").len(), 0);
    assert!(
        events
            .count(|e| matches!(e, Event::DrainTimedOut { remaining, .. } if remaining.len() == 2))
            == 1
    );
    assert!(events.count(|e| matches!(e, Event::NodeLeftCordoned { .. })) == 1);
    let core: kup_core::Error = err.into();
    assert_eq!(core.category(), ErrorCategory::Timeout);
    // Waiting on the budget instead of a clock: a few requests over three seconds, not one
    // per pod every few hundred milliseconds.
    assert!(
        c.statuses("POST", EVICTIONS).len() <= 2 * 4,
        "{:?}",
        c.statuses("POST", EVICTIONS)
    );
    c.stop().await;
}

/// Row 6 (finalizer): a pod that never finishes terminating is named as not gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_never_terminates_times_out_as_not_gone() {
    let c = Cluster::start(base().workload(web(2))).await;
    c.open_spare().await;
    let (stuck, _) = c.pod_on(NODE, "web-");
    c.sim
        .set_pod_stuck_terminating("shop", &stuck, true)
        .unwrap();
    let opts = DrainOptions {
        timeout: Some(Duration::from_secs(2)),
        ..DrainOptions::default()
    };
    let err = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap_err();
    let Error::DrainTimedOut {
        blocked,
        remaining,
        report,
        ..
    } = &err
    else {
        panic!("expected a timeout, got {err}");
    };
    assert!(blocked.is_empty());
    assert_eq!(
        remaining
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        [stuck.as_str()]
    );
    assert_eq!(report.evicted.len(), 2, "both were evicted; one never went");
    assert!(
        err.to_string()
            .contains(&format!("not gone yet: shop/{stuck}")),
        "{err}"
    );
    assert!(c.cordoned(NODE));
    c.stop().await;
}

/// Row 2: two budgets select the pod; the eviction API answers 500 and the drain fails at
/// once, naming the pod and both budgets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_budgets_fail_the_node_at_once_naming_the_pod_and_both_budgets() {
    let c = Cluster::start(
        base()
            .workload(web(1))
            .pdb(
                Pdb::new("shop", "web-a")
                    .match_label("app", "web")
                    .max_unavailable(1),
            )
            .pdb(
                Pdb::new("shop", "web-b")
                    .match_label("app", "web")
                    .max_unavailable(1),
            ),
    )
    .await;
    c.open_spare().await;
    let (pod, _) = c.pod_on(NODE, "web-");
    let opts = DrainOptions {
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let err = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap_err();
    let Error::MultiplePodDisruptionBudgets {
        pod: p,
        pdbs,
        report,
    } = &err
    else {
        panic!("expected the two-budget error, got {err}");
    };
    assert_eq!(p.name, pod);
    assert_eq!(pdbs, &["shop/web-a".to_string(), "shop/web-b".to_string()]);
    assert!(!report.timed_out);
    assert!(err.to_string().contains("shop/web-a, shop/web-b"), "{err}");
    assert_eq!(
        c.statuses("POST", EVICTIONS),
        [500],
        "failed at the first answer"
    );
    assert!(c.cordoned(NODE));
    assert_eq!(c.pods_on_with_prefix(NODE, "web-"), [pod]);
    let core: kup_core::Error = err.into();
    assert_eq!(core.category(), ErrorCategory::Precondition);
    c.stop().await;
}

/// Row 3: a pod deleted by someone else while its eviction is in flight answers 404 and
/// counts as gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_mid_drain_answers_404_and_counts_as_gone() {
    let c = Cluster::start(base().workload(web(2))).await;
    c.open_spare().await;
    let (victim, _) = c.pod_on(NODE, "web-");
    let slow = c.sim.faults().add(
        Fault::latency(Duration::from_millis(1500))
            .method("POST")
            .path(format!("/api/v1/namespaces/shop/pods/{victim}/eviction")),
    );
    let pods: Api<KPod> = Api::namespaced(c.client.clone(), "shop");
    let sim = c.sim.clone();
    let deleter = {
        let victim = victim.clone();
        tokio::spawn(async move {
            // Once the eviction has reached the server, delete the pod under it.
            sim.wait_for(GUARD, "eviction in flight", |s| s.faults().fired(slow) >= 1)
                .await
                .unwrap();
            pods.delete(&victim, &DeleteParams::default().grace_period(0))
                .await
                .unwrap();
        })
    };
    let opts = DrainOptions {
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    deleter.await.unwrap();
    assert_eq!(
        report
            .already_gone
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        [victim.as_str()]
    );
    assert_eq!(report.evicted.len(), 1);
    assert_eq!(
        c.statuses(
            "POST",
            &format!("/api/v1/namespaces/shop/pods/{victim}/eviction")
        ),
        [404]
    );
    assert!(c.pods_on_with_prefix(NODE, "web-").is_empty());
    c.stop().await;
}

/// Row 3: a StatefulSet pod recreated under the same name (new UID) while its eviction is in
/// flight counts as gone, and the new pod is not evicted (the eviction carries the UID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_recreated_with_a_new_uid_counts_as_gone_and_the_new_one_is_left_alone() {
    let c =
        Cluster::start(base().workload(Workload::stateful_set("shop", "db").replicas(1).pool("a")))
            .await;
    c.open_spare().await;
    let (name, old_uid) = c.pod_on(NODE, "db-");
    let slow = c.sim.faults().add(
        Fault::latency(Duration::from_millis(1500))
            .method("POST")
            .path(format!("/api/v1/namespaces/shop/pods/{name}/eviction")),
    );
    let pods: Api<KPod> = Api::namespaced(c.client.clone(), "shop");
    let sim = c.sim.clone();
    let recreate = {
        let name = name.clone();
        let old_uid = old_uid.clone();
        tokio::spawn(async move {
            sim.wait_for(GUARD, "eviction in flight", |s| s.faults().fired(slow) >= 1)
                .await
                .unwrap();
            pods.delete(&name, &DeleteParams::default().grace_period(0))
                .await
                .unwrap();
            sim.wait_for(GUARD, "the StatefulSet recreated its pod", |s| {
                s.get("pods", Some("shop"), &name)
                    .is_some_and(|p| p["metadata"]["uid"].as_str() != Some(old_uid.as_str()))
            })
            .await
            .unwrap();
        })
    };
    let opts = DrainOptions {
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    recreate.await.unwrap();
    assert_eq!(report.already_gone.len(), 1);
    assert_eq!(report.already_gone[0].uid, old_uid);
    assert!(report.evicted.is_empty());
    // The eviction reached the new pod's name and was refused by the UID precondition.
    assert_eq!(
        c.statuses(
            "POST",
            &format!("/api/v1/namespaces/shop/pods/{name}/eviction")
        ),
        [409]
    );
    let new = c.sim.get("pods", Some("shop"), &name).unwrap();
    assert_ne!(new["metadata"]["uid"].as_str(), Some(old_uid.as_str()));
    assert!(
        new["metadata"]["deletionTimestamp"].is_null(),
        "the new pod was not evicted"
    );
    assert!(
        c.sim
            .pod_deletions()
            .iter()
            .all(|d| d.via != DeletedVia::Eviction),
        "{:?}",
        c.sim.pod_deletions()
    );
    c.stop().await;
}

/// Row 4: evictions in a terminating namespace answer 403 NamespaceTerminating; the drain
/// waits for the namespace's deletion to remove the pods instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_namespace_is_waited_out() {
    let c = Cluster::start(
        base().workload(Workload::deployment("legacy", "old").replicas(2).pool("a")),
    )
    .await;
    // Pods that take their time: the namespace is terminating while they are still there.
    let names = c.pods_on_with_prefix(NODE, "old-");
    for n in &names {
        c.sim.set_pod_stuck_terminating("legacy", n, true).unwrap();
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
    namespaces
        .delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    let sim = c.sim.clone();
    let release = {
        let names = names.clone();
        tokio::spawn(async move {
            // Once the drain has met the 403s, let the namespace's deletion finish.
            sim.wait_for(GUARD, "403 NamespaceTerminating answered", |s| {
                s.requests()
                    .matching("POST", "/api/v1/namespaces/legacy/pods/*/eviction")
                    .iter()
                    .filter(|r| r.status == 403)
                    .count()
                    >= names.len()
            })
            .await
            .unwrap();
            for n in &names {
                sim.set_pod_stuck_terminating("legacy", n, false).unwrap();
            }
        })
    };
    let opts = DrainOptions {
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    release.await.unwrap();
    assert!(report.remaining.is_empty());
    assert!(c.pods_on_with_prefix(NODE, "old-").is_empty());
    assert!(
        c.statuses("POST", "/api/v1/namespaces/legacy/pods/*/eviction")
            .iter()
            .all(|s| *s == 403)
    );
    assert!(
        c.sim
            .pod_deletions()
            .iter()
            .filter(|d| d.namespace == "legacy")
            .all(|d| d.via == DeletedVia::NamespaceDeletion)
    );
    c.stop().await;
}

fn mixed_node() -> kup_mocks::k8s::Scenario {
    base()
        .workload(web(1))
        .workload(
            Workload::deployment("shop", "cache")
                .replicas(1)
                .pool("a")
                .empty_dir(),
        )
        .workload(Workload::daemon_set("kube-system", "agent").tolerate_all())
        .pod(Pod::new("shop", "naked").node(NODE))
        .pod(
            Pod::new("kube-system", "old-agent-x")
                .node(NODE)
                .orphan_of("DaemonSet/old-agent"),
        )
        .pod(
            Pod::new("kube-system", "kube-apiserver-a-1")
                .node(NODE)
                .mirror(),
        )
}

/// Row 5: with kubectl's defaults, unmanaged, emptyDir, DaemonSet and orphaned DaemonSet pods
/// are refused, every one named and grouped by reason, and nothing is evicted; a dry run
/// reports the same without changing anything; the explicit options let them go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pods_are_listed_by_reason_and_only_explicit_options_let_them_go() {
    let c = Cluster::start(mixed_node()).await;
    c.open_spare().await;
    let cache = c.pod_on(NODE, "cache-").0;
    let agent = c.pod_on(NODE, "agent-").0;

    // Dry run: nothing changes, the report says what would happen.
    let dry = DrainOptions {
        dry_run: true,
        ..DrainOptions::kubectl()
    };
    let report = c
        .drainer
        .drain(NODE, &dry, &Recorder::default())
        .await
        .unwrap();
    assert!(report.dry_run);
    assert!(!c.cordoned(NODE), "a dry run does not cordon");
    assert_eq!(
        report.pods.len(),
        1,
        "only web would be evicted: {:?}",
        report.pods
    );
    assert_eq!(report.refused_pods().count(), 4);

    let events = Recorder::default();
    let err = c
        .drainer
        .drain(NODE, &DrainOptions::kubectl(), &events)
        .await
        .unwrap_err();
    let Error::DrainRefused { refused, .. } = &err else {
        panic!("expected a refusal, got {err}");
    };
    let by_reason = |r: RefusalReason| -> Vec<String> {
        refused
            .iter()
            .filter(|g| g.reason == r)
            .flat_map(|g| g.pods.iter().map(ToString::to_string))
            .collect()
    };
    assert_eq!(by_reason(RefusalReason::Unmanaged), ["shop/naked"]);
    assert_eq!(
        by_reason(RefusalReason::LocalStorage),
        [format!("shop/{cache}")]
    );
    assert_eq!(
        by_reason(RefusalReason::DaemonSet),
        [format!("kube-system/{agent}")]
    );
    assert_eq!(
        by_reason(RefusalReason::OrphanedDaemonSet),
        ["kube-system/old-agent-x"]
    );
    let text = err.to_string();
    for line in [
        "cannot delete Pods that declare no controller (use --force to override): shop/naked",
        "cannot delete Pods with local storage (use --delete-emptydir-data to override)",
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)",
        "cannot delete daemonsets.apps \"old-agent\" not found: kube-system/old-agent-x",
    ] {
        assert!(text.contains(line), "{line:?} missing from {text}");
    }
    assert_eq!(events.count(|e| matches!(e, Event::PodRefused { .. })), 4);
    assert_eq!(c.statuses("POST", EVICTIONS).len(), 0, "nothing evicted");
    assert!(c.sim.pod_deletions().is_empty());
    assert!(c.cordoned(NODE), "kubectl leaves the node cordoned too");
    let core: kup_core::Error = err.into();
    assert_eq!(core.category(), ErrorCategory::Precondition);

    // The options, explicitly.
    let opts = DrainOptions {
        force: true,
        delete_emptydir_data: true,
        ignore_daemonsets: true,
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    let mut evicted: Vec<String> = report.evicted.iter().map(ToString::to_string).collect();
    evicted.sort();
    let web_pod = report
        .evicted
        .iter()
        .find(|p| p.name.starts_with("web-"))
        .unwrap()
        .to_string();
    let mut expected = vec![
        format!("shop/{cache}"),
        "shop/naked".to_string(),
        "kube-system/old-agent-x".to_string(),
        web_pod,
    ];
    expected.sort();
    assert_eq!(evicted, expected);
    assert_eq!(
        c.pods_on(NODE),
        [
            format!("kube-system/{agent}"),
            "kube-system/kube-apiserver-a-1".to_string()
        ],
        "DaemonSet and mirror pods stay"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.reason == SkipReason::MirrorPod)
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.reason == SkipReason::DaemonSetIgnored)
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("ignoring DaemonSet-managed Pods"))
    );
    c.stop().await;
}

/// Row 7: pods stuck terminating (an unreachable kubelet) are no longer waited for once their
/// deletion is older than the set age; later drains skip them up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_stuck_terminating_are_skipped_after_the_set_age() {
    // Real-time clock: deletion timestamps are compared with this machine's clock.
    let c = Cluster::start_with(
        base().workload(web(2)),
        SimConfig::default()
            .pod_start_delay(Duration::ZERO)
            .pod_ready_delay(Duration::ZERO),
    )
    .await;
    c.open_spare().await;
    let (stuck, _) = c.pod_on(NODE, "web-");
    c.sim
        .set_pod_stuck_terminating("shop", &stuck, true)
        .unwrap();
    // The deletion timestamp is when the grace period ends; one second keeps the test short.
    let opts = DrainOptions {
        skip_wait_for_delete_timeout: Some(Duration::from_secs(1)),
        grace_period: Some(1),
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(report.evicted.len(), 2);
    assert!(report.remaining.is_empty());
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::TerminatingTooLong { .. }))
        .map(|s| s.pod.name.clone())
        .collect();
    assert_eq!(skipped, [stuck.as_str()]);
    assert_eq!(
        c.pods_on_with_prefix(NODE, "web-"),
        [stuck.as_str()],
        "it is still there"
    );

    // A second drain skips it before evicting anything.
    c.sim.requests().clear();
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    assert!(report.pods.is_empty());
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(c.statuses("POST", EVICTIONS).len(), 0);
    c.stop().await;
}

/// Row 8: a node cordoned before the upgrade reports so, and a drain neither re-cordons nor
/// uncordons it; cordon and uncordon are idempotent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cordoned_before_stays_cordoned_and_cordon_is_idempotent() {
    let c = Cluster::start(base().workload(web(1))).await;
    c.open_spare().await;
    // Someone cordons the node before kup comes along.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    nodes
        .patch(
            NODE,
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    c.sim.requests().clear();
    let outcome = c.drainer.cordon(NODE).await.unwrap();
    assert!(outcome.was_cordoned);
    let events = Recorder::default();
    let report = c
        .drainer
        .drain(NODE, &DrainOptions::default(), &events)
        .await
        .unwrap();
    assert!(!report.cordoned);
    assert_eq!(events.count(|e| matches!(e, Event::NodeCordoned { .. })), 0);
    assert_eq!(
        c.statuses("PATCH", "/api/v1/nodes/*").len(),
        0,
        "nothing sent"
    );
    assert!(c.cordoned(NODE));

    // The spare: cordon, cordon again, uncordon, uncordon again.
    assert!(!c.drainer.cordon(SPARE).await.unwrap().was_cordoned);
    assert!(c.drainer.cordon(SPARE).await.unwrap().was_cordoned);
    assert!(c.cordoned(SPARE));
    assert!(c.drainer.uncordon(SPARE).await.unwrap());
    assert!(!c.drainer.uncordon(SPARE).await.unwrap());
    assert!(!c.cordoned(SPARE));
    let err = c.drainer.cordon("nope").await.unwrap_err();
    assert!(matches!(err, Error::NodeNotFound { .. }));
    let core: kup_core::Error = err.into();
    assert_eq!(core.category(), ErrorCategory::NotFound);
    c.stop().await;
}

/// Row 16: overload answers (429 without a budget cause, 503, a reset connection) on
/// evictions and reads are retried with backoff honouring Retry-After; a watch answered 410
/// re-lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_are_retried_with_backoff_honouring_retry_after() {
    let c = Cluster::start(base().workload(web(3))).await;
    c.open_spare().await;
    let faults = c.sim.faults();
    let throttled = faults.add(
        Fault::status(429)
            .method("POST")
            .path(EVICTIONS)
            .retry_after(1)
            .times(2),
    );
    let unavailable = faults.add(Fault::status(503).method("POST").path(EVICTIONS).times(1));
    let reset = faults.add(Fault::reset().method("POST").path(EVICTIONS).times(1));
    let list = faults.add(Fault::status(503).method("GET").path("/api/v1/pods").nth(1));
    let gone = faults.add(Fault::status(410).method("GET").path("/api/v1/pods").nth(3));
    let opts = DrainOptions {
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(report.evicted.len(), 3);
    assert!(
        report.blocked.is_empty(),
        "overload is not a budget: {:?}",
        report.blocked
    );
    assert!(c.pods_on_with_prefix(NODE, "web-").is_empty());
    for id in [throttled, unavailable, reset, list, gone] {
        assert!(faults.fired(id) >= 1, "fault {id:?} never fired");
    }
    assert_eq!(faults.fired(throttled), 2);
    // Retry-After: 1 was honoured: every retry after a throttled eviction of the same pod
    // came at least about a second later.
    let posts = c.sim.requests().matching("POST", EVICTIONS);
    for (i, r) in posts.iter().enumerate().filter(|(_, r)| r.status == 429) {
        let next = posts[i + 1..].iter().find(|n| n.path == r.path).unwrap();
        let gap = next.at.duration_since(r.at);
        assert!(
            gap >= jiff::SignedDuration::from_millis(900),
            "retried after {gap:?}"
        );
    }
    c.stop().await;
}

/// Row 17: a 409 on the node update is answered by reading the node again and retrying; a
/// node that keeps conflicting ends in a Conflict error, not a blind overwrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_on_cordon_are_reread_and_retried() {
    let c = Cluster::start(base()).await;
    let faults = c.sim.faults();
    let conflict = faults.add(
        Fault::status(409)
            .method("PATCH")
            .path(format!("/api/v1/nodes/{NODE}"))
            .times(2),
    );
    let outcome = c.drainer.cordon(NODE).await.unwrap();
    assert!(!outcome.was_cordoned);
    assert!(c.cordoned(NODE));
    assert_eq!(faults.fired(conflict), 2);
    assert_eq!(
        c.statuses("PATCH", &format!("/api/v1/nodes/{NODE}")),
        [409, 409, 200]
    );
    // A GET before each PATCH: the node is re-read after every conflict.
    let log: Vec<String> = c
        .sim
        .requests()
        .matching("", &format!("/api/v1/nodes/{NODE}"))
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(log, ["GET", "PATCH", "GET", "PATCH", "GET", "PATCH"]);

    faults.add(
        Fault::status(409)
            .method("PATCH")
            .path(format!("/api/v1/nodes/{SPARE}")),
    );
    let err = c.drainer.uncordon(SPARE).await.unwrap_err();
    assert!(matches!(err, Error::NodeConflict { .. }), "{err}");
    assert!(c.cordoned(SPARE), "left as it was");
    let core: kup_core::Error = err.into();
    assert_eq!(core.category(), ErrorCategory::Conflict);
    c.stop().await;
}

/// Concurrency is bounded: the server never sees more evictions at once than allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_concurrency_is_bounded() {
    let c = Cluster::start(base().workload(web(6))).await;
    c.open_spare().await;
    c.sim.faults().add(
        Fault::latency(Duration::from_millis(150))
            .method("POST")
            .path(EVICTIONS),
    );
    let opts = DrainOptions {
        max_concurrent_evictions: 2,
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(report.evicted.len(), 6);
    let posts = c.sim.requests().matching("POST", EVICTIONS);
    let spans: Vec<(jiff::Timestamp, jiff::Timestamp)> = posts
        .iter()
        .map(|r| {
            let end = r.at + jiff::SignedDuration::try_from(r.duration).unwrap();
            (r.at, end)
        })
        .collect();
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= 2, "{most} evictions in flight at once");
    c.stop().await;
}

/// The explicit no-eviction mode deletes pods with DELETE, bypassing the budget; it is never
/// chosen by default (see the timeout test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_eviction_deletes_with_delete_and_bypasses_budgets() {
    let c = Cluster::start(
        base().workload(web(2)).pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .min_available(2),
        ),
    )
    .await;
    c.open_spare().await;
    let events = Recorder::default();
    let opts = DrainOptions {
        disable_eviction: true,
        grace_period: Some(0),
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c.drainer.drain(NODE, &opts, &events).await.unwrap();
    assert_eq!(report.method, DrainMethod::Delete);
    assert_eq!(report.deleted.len(), 2);
    assert!(report.evicted.is_empty());
    assert_eq!(events.count(|e| matches!(e, Event::PodDeleted { .. })), 2);
    assert_eq!(c.statuses("POST", EVICTIONS).len(), 0);
    assert!(
        c.sim
            .pod_deletions()
            .iter()
            .filter(|d| d.node == NODE)
            .all(|d| d.via == DeletedVia::Delete)
    );
    assert!(c.pods_on_with_prefix(NODE, "web-").is_empty());
    c.stop().await;
}

/// The pod selector limits the drain; bad options and unknown nodes fail before anything is
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_limit_the_drain_and_bad_input_changes_nothing() {
    let c = Cluster::start(
        base()
            .workload(web(2))
            .workload(Workload::deployment("shop", "api").replicas(2).pool("a")),
    )
    .await;
    c.open_spare().await;
    c.sim.requests().clear();
    let bad = DrainOptions {
        pod_selector: Some("app in (web".into()),
        ..DrainOptions::default()
    };
    let err = c
        .drainer
        .drain(NODE, &bad, &Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "pod_selector"),
        "{err}"
    );
    assert_eq!(c.sim.requests().total(), 0, "nothing was sent");
    let err = c
        .drainer
        .drain("nope", &DrainOptions::default(), &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NodeNotFound { .. }));

    let only_web = DrainOptions {
        pod_selector: Some("app=web".into()),
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &only_web, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(report.evicted.len(), 2);
    assert!(report.evicted.iter().all(|p| p.name.starts_with("web-")));
    assert!(c.pods_on_with_prefix(NODE, "web-").is_empty());
    assert_eq!(c.pods_on_with_prefix(NODE, "api-").len(), 2);
    c.stop().await;
}
