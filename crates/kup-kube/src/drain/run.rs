//! One drain, start to end: cordon, list, filter, evict (or delete) with bounded concurrency,
//! wait for each pod by UID, and account for every pod in the report.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kup_core::{Event, EventSink};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Drainer;
use super::budget::Budgets;
use super::cordon::{get_node, is_cordoned, set_unschedulable};
use super::evict::{self, Answer};
use super::filters::{self, DaemonSetLookup, DaemonSetTable};
use super::options::DrainOptions;
use super::pods::{NodePods, PodsView, WaitEnd, list_node_pods};
use super::report::{BlockedPod, DrainMethod, DrainReport, PodRef, SkipReason, SkippedPod};
use super::selector::pdb_selects;
use super::{API_RETRY, EVICTION_RETRY};
use crate::error::{Error, Result};
use crate::kube_error::{self, KubeErrorKind};
use crate::retry::{Backoff, retry, retry_until};

/// A pod to remove, with the labels needed to name its budgets.
struct Target {
    pod: PodRef,
    labels: BTreeMap<String, String>,
}

/// What the per-pod tasks share.
struct Ctx<'a> {
    drainer: &'a Drainer,
    node: &'a str,
    opts: &'a DrainOptions,
    events: &'a dyn EventSink,
    tracker: NodePods,
    budgets: Budgets,
    permits: Semaphore,
    progress: Mutex<DrainReport>,
}

impl Ctx<'_> {
    fn record<T>(&self, f: impl FnOnce(&mut DrainReport) -> T) -> T {
        let mut report = self
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut report)
    }

    fn snapshot(&self) -> DrainReport {
        self.record(|r| r.clone())
    }
}

/// A pod's removal stopped the drain.
enum Fatal {
    MultiplePdbs {
        pod: PodRef,
        pdbs: Vec<String>,
    },
    Removal {
        pod: PodRef,
        code: u16,
        message: String,
    },
}

pub(super) async fn drain(
    drainer: &Drainer,
    node: &str,
    opts: &DrainOptions,
    events: &dyn EventSink,
) -> Result<DrainReport> {
    opts.validate()?;
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| started + t);
    let method = if opts.disable_eviction {
        DrainMethod::Delete
    } else {
        DrainMethod::Eviction
    };
    let mut report = DrainReport {
        node: node.to_string(),
        dry_run: opts.dry_run,
        method,
        ..DrainReport::default()
    };

    // Cordon first, as kubectl does, so nothing new lands while the pods are listed.
    let nodes: Api<Node> = Api::all(drainer.client.clone());
    let node_obj = get_node(&nodes, node, deadline).await?;
    if !opts.dry_run && !is_cordoned(&node_obj) {
        report.cordoned = set_unschedulable(&nodes, node, true, Some(node_obj), deadline).await?;
        if report.cordoned {
            events.emit(Event::NodeCordoned {
                node: node.to_string(),
                was_cordoned: false,
            });
        }
    }

    let pods_api: Api<Pod> = Api::all(drainer.client.clone());
    let selector = opts.pod_selector.clone().filter(|s| !s.trim().is_empty());
    let (listed, resource_version) =
        list_node_pods(&pods_api, node, selector.as_deref(), deadline).await?;
    let now = jiff::Timestamp::now();
    let daemonsets = look_up_daemonsets(drainer, &listed, opts, now, deadline).await;
    // The tracker starts from the very list the filters see, so no deletion is missed.
    let listed_view = PodsView::from_pods(&listed);
    let filtered = filters::filter_pods(listed, opts, &daemonsets, now);
    report.pods = filtered.remove.iter().map(PodRef::of).collect();
    report.refused = filtered.refused;
    report.skipped = filtered.skipped;
    report.warnings = filtered.warnings;
    for warning in &report.warnings {
        events.emit(Event::Warning {
            message: warning.clone(),
        });
    }
    for group in &report.refused {
        for pod in &group.pods {
            events.emit(Event::PodRefused {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                reason: group.message.clone(),
            });
        }
    }
    if opts.dry_run {
        // The report says what would be evicted and what would be refused.
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    if !report.refused.is_empty() {
        report.elapsed = started.elapsed();
        report.remaining = report.pods.clone();
        return Err(Error::DrainRefused {
            node: node.to_string(),
            refused: report.refused.clone(),
            report: Box::new(report),
        });
    }
    let tracker = NodePods::start(
        pods_api.clone(),
        node.to_string(),
        selector.clone(),
        listed_view,
        resource_version,
    );

    events.emit(Event::DrainStarted {
        node: node.to_string(),
        pods: report.pods.len(),
    });
    let targets: Vec<Target> = filtered
        .remove
        .iter()
        .map(|p| Target {
            pod: PodRef::of(p),
            labels: filters::labels_of(p),
        })
        .collect();
    let selected = report.pods.clone();
    let ctx = Ctx {
        drainer,
        node,
        opts,
        events,
        tracker,
        budgets: Budgets::new(drainer.client.clone()),
        permits: Semaphore::new(opts.max_concurrent_evictions),
        progress: Mutex::new(report),
    };

    let all = async {
        let mut tasks: FuturesUnordered<_> = targets
            .iter()
            .map(|t| async {
                match method {
                    DrainMethod::Eviction => evict_pod(&ctx, t).await,
                    DrainMethod::Delete => delete_pod(&ctx, t).await,
                }
            })
            .collect();
        while let Some(result) = tasks.next().await {
            result?;
        }
        Ok::<(), Fatal>(())
    };
    let outcome = match deadline {
        Some(d) => tokio::time::timeout_at(d, all).await.ok(),
        None => Some(all.await),
    };

    let mut report = ctx.snapshot();
    report.elapsed = started.elapsed();
    report.remaining = ctx.tracker.still_present(&selected);
    // Pods no longer waited for are not "remaining".
    report
        .remaining
        .retain(|p| !report.skipped.iter().any(|s| &s.pod == p));
    let node_name = node.to_string();
    match outcome {
        Some(Ok(())) => {
            events.emit(Event::NodeDrained {
                node: node_name,
                evicted: report.evicted.len(),
                deleted: report.deleted.len(),
                elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            });
            Ok(report)
        }
        None => {
            report.timed_out = true;
            events.emit(Event::DrainTimedOut {
                node: node_name.clone(),
                remaining: report.remaining.iter().map(ToString::to_string).collect(),
            });
            events.emit(Event::NodeLeftCordoned {
                node: node_name.clone(),
                reason: "the drain timed out; pods remain on the node".into(),
            });
            let blocked: Vec<BlockedPod> = report
                .blocked
                .iter()
                .filter(|b| !b.resolved && report.remaining.contains(&b.pod))
                .cloned()
                .collect();
            Err(Error::DrainTimedOut {
                node: node_name,
                after: opts.timeout.unwrap_or_default(),
                blocked,
                remaining: report.remaining.clone(),
                report: Box::new(report),
            })
        }
        Some(Err(fatal)) => {
            events.emit(Event::NodeLeftCordoned {
                node: node_name.clone(),
                reason: "the drain failed; pods remain on the node".into(),
            });
            Err(match fatal {
                Fatal::MultiplePdbs { pod, pdbs } => Error::MultiplePodDisruptionBudgets {
                    pod,
                    pdbs,
                    report: Box::new(report),
                },
                Fatal::Removal { pod, code, message } => Error::PodRemovalFailed {
                    pod,
                    method,
                    code,
                    message,
                    report: Box::new(report),
                },
            })
        }
    }
}

/// GETs each DaemonSet the filters ask about, once, concurrently.
async fn look_up_daemonsets(
    drainer: &Drainer,
    pods: &[Pod],
    opts: &DrainOptions,
    now: jiff::Timestamp,
    deadline: Option<Instant>,
) -> DaemonSetTable {
    let wanted = filters::daemonsets_to_look_up(pods, opts, now);
    let lookups = wanted.into_iter().map(|(ns, name)| async move {
        let api: Api<DaemonSet> = Api::namespaced(drainer.client.clone(), &ns);
        let found = match retry_until(&API_RETRY, deadline, || api.get(&name)).await {
            Ok(_) => DaemonSetLookup::Exists,
            Err(kube::Error::Api(status))
                if kube_error::classify_status(&status).kind == KubeErrorKind::NotFound =>
            {
                let message = if status.message.is_empty() {
                    format!("daemonsets.apps {name:?} not found")
                } else {
                    status.message.clone()
                };
                DaemonSetLookup::NotFound(message)
            }
            Err(kube::Error::Api(status)) => DaemonSetLookup::Failed(status.message.clone()),
            Err(e) => DaemonSetLookup::Failed(e.to_string()),
        };
        ((ns, name), found)
    });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .collect()
}

/// The budgets in the pod's namespace that select it (`namespace/name`).
async fn budgets_selecting(ctx: &Ctx<'_>, target: &Target) -> Result<Vec<String>, kube::Error> {
    let api: Api<PodDisruptionBudget> =
        Api::namespaced(ctx.drainer.client.clone(), &target.pod.namespace);
    let params = kube::api::ListParams::default();
    let list = retry(&API_RETRY, || api.list(&params)).await?;
    Ok(list
        .items
        .iter()
        .filter(|pdb| pdb_selects(pdb, &target.labels))
        .filter_map(|pdb| pdb.metadata.name.clone())
        .map(|name| format!("{}/{name}", target.pod.namespace))
        .collect())
}

fn record_gone(ctx: &Ctx<'_>, pod: &PodRef) {
    ctx.record(|r| {
        if !r.evicted.contains(pod) && !r.deleted.contains(pod) && !r.already_gone.contains(pod) {
            r.already_gone.push(pod.clone());
        }
        for b in r.blocked.iter_mut().filter(|b| &b.pod == pod) {
            b.resolved = true;
        }
    });
}

/// Records a budget refusal; emits `PodBlocked` the first time.
fn record_blocked(ctx: &Ctx<'_>, pod: &PodRef, pdb: Option<&str>, message: &str) {
    let first = ctx.record(|r| match r.blocked.iter_mut().find(|b| &b.pod == pod) {
        Some(b) => {
            b.refusals += 1;
            b.message = message.to_string();
            if pdb.is_some() {
                b.pdb = pdb.map(str::to_string);
            }
            None
        }
        None => {
            let since = jiff::Timestamp::now();
            r.blocked.push(BlockedPod {
                pod: pod.clone(),
                pdb: pdb.map(str::to_string),
                message: message.to_string(),
                since,
                refusals: 1,
                resolved: false,
            });
            Some(since)
        }
    });
    if let Some(since) = first {
        ctx.events.emit(Event::PodBlocked {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            node: ctx.node.to_string(),
            pdb: pdb.map(str::to_string),
            message: message.to_string(),
            since,
        });
    }
}

/// Evicts one pod, retrying as its budget allows, then waits until it is gone.
async fn evict_pod(ctx: &Ctx<'_>, target: &Target) -> Result<(), Fatal> {
    let pod = &target.pod;
    let client = &ctx.drainer.eviction_client;
    let mut overload = EVICTION_RETRY.start();
    let mut overloads = 0;
    let mut namespace_wait = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(5));
    // The budget that refused the last attempt, with its Retry-After.
    let mut budget: Option<(std::sync::Arc<super::budget::Budget>, Option<Duration>)> = None;
    // Set when the namespace's deletion removes the pod rather than our eviction.
    let mut namespace_removes_it = false;
    loop {
        if ctx.tracker.state(&pod.uid).is_none() {
            record_gone(ctx, pod);
            return Ok(());
        }
        // The guard below borrows this copy, so `budget` stays free to change.
        let current = budget.clone();
        let (answer, turn) = match &current {
            Some((b, retry_after)) => {
                let mut turn = b.turn().await;
                let basis = b.wait_allowed(&mut turn, *retry_after).await;
                if ctx.tracker.state(&pod.uid).is_none() {
                    record_gone(ctx, pod);
                    return Ok(());
                }
                let answer = {
                    let _permit = ctx.permits.acquire().await;
                    evict::evict(client, pod, ctx.opts.grace_period).await
                };
                (answer, Some((turn, basis)))
            }
            None => {
                let _permit = ctx.permits.acquire().await;
                (evict::evict(client, pod, ctx.opts.grace_period).await, None)
            }
        };
        if !matches!(answer, Answer::Transient { .. }) {
            overloads = 0;
            overload.reset();
        }
        match answer {
            Answer::Accepted => {
                if let Some((mut turn, basis)) = turn {
                    turn.used(basis.as_deref());
                }
                ctx.record(|r| {
                    r.evicted.push(pod.clone());
                    for b in r.blocked.iter_mut().filter(|b| &b.pod == pod) {
                        b.resolved = true;
                    }
                });
                ctx.events.emit(Event::PodEvicted {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    node: ctx.node.to_string(),
                });
                break;
            }
            Answer::NotFound | Answer::Replaced => {
                record_gone(ctx, pod);
                return Ok(());
            }
            Answer::Blocked {
                pdb,
                message,
                retry_after,
            } => {
                if let Some((mut turn, basis)) = turn {
                    turn.refused(basis.as_deref());
                }
                let pdb = match pdb {
                    Some(name) => Some(name),
                    // The answer did not name the budget: find the one that selects the pod.
                    None => match budgets_selecting(ctx, target).await {
                        Ok(names) if names.len() == 1 => {
                            names[0].split_once('/').map(|(_, name)| name.to_string())
                        }
                        _ => None,
                    },
                };
                record_blocked(ctx, pod, pdb.as_deref(), &message);
                match pdb {
                    Some(name) => {
                        budget = Some((ctx.budgets.get(&pod.namespace, &name), retry_after));
                    }
                    None => {
                        budget = None;
                        tokio::time::sleep(namespace_wait.next_delay_after(retry_after)).await;
                    }
                }
            }
            Answer::NamespaceTerminating { message } => {
                drop(turn);
                // kubectl: a pod already terminating is waited for; otherwise retry later.
                if ctx
                    .tracker
                    .state(&pod.uid)
                    .is_some_and(|s| s.deleting_since.is_some())
                {
                    tracing::debug!(pod = %pod, "namespace terminating and pod deleting: waiting");
                    namespace_removes_it = true;
                    break;
                }
                tracing::debug!(pod = %pod, message, "namespace terminating; will retry");
                let mut changes = ctx.tracker.subscribe();
                tokio::select! {
                    _ = changes.changed() => {}
                    () = tokio::time::sleep(namespace_wait.next_delay()) => {}
                }
            }
            Answer::MultiplePdbs { message } => {
                let pdbs = budgets_selecting(ctx, target).await.unwrap_or_default();
                tracing::debug!(pod = %pod, message, ?pdbs, "pod has several budgets");
                return Err(Fatal::MultiplePdbs {
                    pod: pod.clone(),
                    pdbs,
                });
            }
            Answer::Transient {
                code,
                message,
                retry_after,
            } => {
                drop(turn);
                overloads += 1;
                if overloads > EVICTION_RETRY.max_retries {
                    return Err(Fatal::Removal {
                        pod: pod.clone(),
                        code: code.unwrap_or(0),
                        message: format!("{message} (still failing after {overloads} attempts)"),
                    });
                }
                tokio::time::sleep(overload.next_delay_after(retry_after)).await;
            }
            Answer::Failed {
                code,
                reason,
                message,
            } => {
                tracing::debug!(pod = %pod, code, reason, message, "pod removal failed");
                return Err(Fatal::Removal {
                    pod: pod.clone(),
                    code,
                    message,
                });
            }
        }
    }
    if wait_gone(ctx, pod).await && namespace_removes_it {
        record_gone(ctx, pod);
    }
    Ok(())
}

/// Deletes one pod (`disable_eviction`), then waits until it is gone.
async fn delete_pod(ctx: &Ctx<'_>, target: &Target) -> Result<(), Fatal> {
    let pod = &target.pod;
    let mut overload = EVICTION_RETRY.start();
    let mut overloads = 0;
    loop {
        if ctx.tracker.state(&pod.uid).is_none() {
            record_gone(ctx, pod);
            return Ok(());
        }
        let answer = {
            let _permit = ctx.permits.acquire().await;
            evict::delete(&ctx.drainer.eviction_client, pod, ctx.opts.grace_period).await
        };
        match answer {
            Answer::Accepted => {
                ctx.record(|r| r.deleted.push(pod.clone()));
                ctx.events.emit(Event::PodDeleted {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    node: ctx.node.to_string(),
                });
                break;
            }
            Answer::NotFound | Answer::Replaced => {
                record_gone(ctx, pod);
                return Ok(());
            }
            Answer::Transient {
                code,
                message,
                retry_after,
            } => {
                overloads += 1;
                if overloads > EVICTION_RETRY.max_retries {
                    return Err(Fatal::Removal {
                        pod: pod.clone(),
                        code: code.unwrap_or(0),
                        message: format!("{message} (still failing after {overloads} attempts)"),
                    });
                }
                tokio::time::sleep(overload.next_delay_after(retry_after)).await;
            }
            Answer::Blocked { message, .. }
            | Answer::NamespaceTerminating { message }
            | Answer::MultiplePdbs { message } => {
                return Err(Fatal::Removal {
                    pod: pod.clone(),
                    code: 0,
                    message,
                });
            }
            Answer::Failed {
                code,
                reason,
                message,
            } => {
                tracing::debug!(pod = %pod, code, reason, message, "pod removal failed");
                return Err(Fatal::Removal {
                    pod: pod.clone(),
                    code,
                    message,
                });
            }
        }
    }
    wait_gone(ctx, pod).await;
    Ok(())
}

/// Waits until the pod (by UID) is gone (true), or its termination outlasts the skip age
/// (false, recorded as skipped).
async fn wait_gone(ctx: &Ctx<'_>, pod: &PodRef) -> bool {
    match ctx
        .tracker
        .wait_gone(&pod.uid, ctx.opts.skip_wait_for_delete_timeout)
        .await
    {
        WaitEnd::Gone => true,
        WaitEnd::TerminatingTooLong(since) => {
            tracing::info!(pod = %pod, %since, "pod terminating for too long; no longer waiting");
            ctx.record(|r| {
                r.skipped.push(SkippedPod {
                    pod: pod.clone(),
                    reason: SkipReason::TerminatingTooLong { since },
                })
            });
            false
        }
    }
}
