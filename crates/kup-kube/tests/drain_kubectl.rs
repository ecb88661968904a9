//! The same scenario drained by kup and by the real `kubectl drain` (found through
//! `KUP_KUBECTL`, else PATH) ends in the same state: the same pods evicted, the same pods left
//! on the node, the node cordoned, the same replacements; and a drain kubectl refuses is
//! refused by kup with kubectl's own words.

#![allow(clippy::unwrap_used)]

mod drain_support;

use std::path::PathBuf;
use std::process::Command;

use drain_support::{Cluster, GUARD, NODE, Recorder, SPARE, base};
use kup_kube::Error;
use kup_kube::drain::DrainOptions;
use kup_mocks::k8s::{DeletedVia, Pdb, Pod, Scenario, Workload};

/// The kubectl to compare with: `KUP_KUBECTL`, else `kubectl` on PATH. Missing: fail under
/// CI, skip (with the reason) otherwise.
fn kubectl() -> Option<PathBuf> {
    let from_env = std::env::var_os("KUP_KUBECTL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let found = from_env.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("kubectl"))
                .find(|candidate| candidate.is_file())
        })
    });
    match found {
        Some(path) if path.is_file() => Some(path),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "kubectl not found (set KUP_KUBECTL or run scripts/test, which installs it)"
            );
            eprintln!("skipping: kubectl not found (set KUP_KUBECTL or run scripts/test)");
            None
        }
    }
}

/// Runs `kubectl drain NODE <args>` against `cluster`; returns (success, stderr).
fn kubectl_drain(kubectl: &PathBuf, cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    cluster.sim.write_kubeconfig(&kubeconfig).unwrap();
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["drain", NODE])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn contended() -> Scenario {
    base()
        .workload(Workload::deployment("shop", "web").replicas(3).pool("a"))
        .pdb(
            Pdb::new("shop", "web")
                .match_label("app", "web")
                .max_unavailable(1),
        )
        .workload(Workload::stateful_set("shop", "db").replicas(2).pool("a"))
        .workload(Workload::daemon_set("kube-system", "agent").tolerate_all())
        .pod(
            Pod::new("kube-system", "kube-apiserver-a-1")
                .node(NODE)
                .mirror(),
        )
        .pod(Pod::new("shop", "done").node(NODE).phase("Succeeded"))
}

/// What a drain's outcome looks like from the cluster's side.
#[derive(Debug, PartialEq, Eq)]
struct EndState {
    cordoned: bool,
    on_node: Vec<String>,
    evicted: Vec<String>,
    deleted_otherwise: Vec<String>,
    ready_elsewhere: Vec<(String, usize)>,
}

async fn end_state(c: &Cluster) -> EndState {
    // Replacements settle: the Deployment's and StatefulSet's pods Ready on the spare.
    c.sim
        .wait_for(GUARD, "replacements Ready on the spare", |s| {
            let ready = |prefix: &str| {
                s.pods_on_node(SPARE)
                    .iter()
                    .filter(|p| {
                        p["metadata"]["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with(prefix))
                            && p["status"]["conditions"].as_array().is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                    })
                    .count()
            };
            ready("web-") == 3 && ready("db-") == 2
        })
        .await
        .unwrap();
    let deletions = c.sim.pod_deletions();
    let names = |via: fn(DeletedVia) -> bool| {
        let mut v: Vec<String> = deletions
            .iter()
            .filter(|d| d.node == NODE && via(d.via))
            .map(|d| format!("{}/{}", d.namespace, d.name))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut ready_elsewhere: Vec<(String, usize)> = ["web-", "db-", "agent-"]
        .iter()
        .map(|p| (p.to_string(), c.pods_on_with_prefix(SPARE, p).len()))
        .collect();
    ready_elsewhere.sort();
    EndState {
        cordoned: c.cordoned(NODE),
        on_node: c.pods_on(NODE),
        evicted: names(|v| v == DeletedVia::Eviction),
        deleted_otherwise: names(|v| v != DeletedVia::Eviction && v != DeletedVia::Controller),
        ready_elsewhere,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kup_and_kubectl_leave_the_same_end_state() {
    let Some(kubectl) = kubectl() else { return };
    let with_kup = Cluster::start(contended()).await;
    let with_kubectl = Cluster::start(contended()).await;
    with_kup.open_spare().await;
    with_kubectl.open_spare().await;
    assert_eq!(
        with_kup.pods_on(NODE),
        with_kubectl.pods_on(NODE),
        "identical scenarios"
    );

    let opts = DrainOptions {
        ignore_daemonsets: true,
        timeout: Some(GUARD),
        ..DrainOptions::kubectl()
    };
    let report = with_kup
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    let (ok, stderr) = tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        let c = Cluster {
            sim: with_kubectl.sim.clone(),
            drainer: with_kubectl.drainer.clone(),
            client: with_kubectl.client.clone(),
        };
        move || kubectl_drain(&kubectl, &c, &["--ignore-daemonsets", "--timeout=120s"])
    })
    .await
    .unwrap();
    assert!(ok, "kubectl drain failed: {stderr}");

    let ours = end_state(&with_kup).await;
    let theirs = end_state(&with_kubectl).await;
    assert_eq!(ours, theirs);
    // And the state is the one expected: the DaemonSet and mirror pods stay, the rest went
    // through the eviction API.
    assert!(ours.cordoned);
    assert_eq!(ours.on_node.len(), 2, "{:?}", ours.on_node);
    assert_eq!(ours.evicted.len(), 6, "{:?}", ours.evicted);
    assert!(ours.deleted_otherwise.is_empty());
    assert_eq!(report.evicted.len(), 6);
    with_kup.stop().await;
    with_kubectl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kup_refuses_what_kubectl_refuses_in_kubectls_words() {
    let Some(kubectl) = kubectl() else { return };
    let scenario = || {
        base()
            .workload(
                Workload::deployment("shop", "cache")
                    .replicas(2)
                    .pool("a")
                    .empty_dir(),
            )
            .workload(Workload::daemon_set("kube-system", "agent").tolerate_all())
            .pod(Pod::new("shop", "naked").node(NODE))
            .pod(Pod::new("shop", "naked-too").node(NODE))
    };
    let with_kup = Cluster::start(scenario()).await;
    let with_kubectl = Cluster::start(scenario()).await;

    let err = with_kup
        .drainer
        .drain(NODE, &DrainOptions::kubectl(), &Recorder::default())
        .await
        .unwrap_err();
    let Error::DrainRefused { refused, .. } = &err else {
        panic!("expected a refusal, got {err}");
    };
    let (ok, stderr) = tokio::task::spawn_blocking({
        let c = Cluster {
            sim: with_kubectl.sim.clone(),
            drainer: with_kubectl.drainer.clone(),
            client: with_kubectl.client.clone(),
        };
        move || kubectl_drain(&kubectl, &c, &["--timeout=60s"])
    })
    .await
    .unwrap();
    assert!(!ok, "kubectl should refuse: {stderr}");
    assert_eq!(refused.len(), 3, "{refused:?}");
    for group in refused {
        // kubectl prints each group as `cannot delete <reason>: ns/a, ns/b`.
        assert!(
            stderr.contains(&group.to_string()),
            "kubectl did not say {:?}; it said: {stderr}",
            group.to_string()
        );
    }
    for c in [&with_kup, &with_kubectl] {
        assert!(c.cordoned(NODE));
        assert!(c.sim.pod_deletions().is_empty(), "nothing evicted");
    }
    assert_eq!(with_kup.pods_on(NODE), with_kubectl.pods_on(NODE));
    with_kup.stop().await;
    with_kubectl.stop().await;
}
