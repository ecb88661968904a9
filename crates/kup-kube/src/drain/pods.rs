//! The pods on the node being drained: listed once (paged like kubectl), then kept current
//! with one watch on `spec.nodeName=<node>`, so waiting for sixty deletions costs one request
//! instead of kubectl's GET per pod per second. Pods are tracked by UID: a pod recreated under
//! the same name is a different pod, and the one we evicted counts as gone.
//!
//! A watch that breaks resumes from the last resourceVersion; a 410 Gone re-lists. If watching
//! is forbidden (a ClusterRole without `watch` on pods), the view falls back to re-listing the
//! node's pods every second (still one request for all pods).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio::time::Instant;

use super::API_RETRY;
use super::filters::deletion_started;
use super::report::PodRef;
use crate::kube_error::{self, KubeErrorKind};
use crate::retry::{Backoff, jitter, retry_until};

/// kubectl's page size.
const PAGE_SIZE: u32 = 500;
/// How long the server keeps one watch open (kube caps it below 295 s).
const WATCH_TIMEOUT_SECS: u32 = 290;
/// How often the fallback re-lists when watching is not allowed.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the drain needs to know of a pod that is still there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodState {
    /// When its deletion started, if it did.
    pub deleting_since: Option<jiff::Timestamp>,
}

/// The node's pods by UID.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodsView {
    pub pods: HashMap<String, PodState>,
}

impl PodsView {
    /// The view of a list of pods.
    pub(crate) fn from_pods(pods: &[Pod]) -> Self {
        Self {
            pods: pods.iter().filter_map(entry).collect(),
        }
    }
}

fn entry(pod: &Pod) -> Option<(String, PodState)> {
    Some((
        pod.metadata.uid.clone()?,
        PodState {
            deleting_since: deletion_started(pod),
        },
    ))
}

/// Lists the pods on `node` (optionally filtered by a label selector), following `continue`
/// tokens. Returns them with the list's resourceVersion.
pub(crate) async fn list_node_pods(
    api: &Api<Pod>,
    node: &str,
    label_selector: Option<&str>,
    deadline: Option<Instant>,
) -> Result<(Vec<Pod>, String), kube::Error> {
    let mut params = ListParams::default()
        .fields(&format!("spec.nodeName={node}"))
        .limit(PAGE_SIZE);
    if let Some(sel) = label_selector.filter(|s| !s.trim().is_empty()) {
        params = params.labels(sel);
    }
    let mut pods = Vec::new();
    let mut continue_token: Option<String> = None;
    loop {
        let mut page_params = params.clone();
        page_params.continue_token = continue_token.clone();
        let page = retry_until(&API_RETRY, deadline, || api.list(&page_params)).await?;
        pods.extend(page.items);
        continue_token = page.metadata.continue_.filter(|c| !c.is_empty());
        if continue_token.is_none() {
            return Ok((pods, page.metadata.resource_version.unwrap_or_default()));
        }
    }
}

/// A live view of the node's pods, kept by a background task that stops when this is dropped.
pub(crate) struct NodePods {
    rx: watch::Receiver<PodsView>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NodePods {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a wait for one pod ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// The pod (this UID) is gone.
    Gone,
    /// Its deletion started longer ago than the skip age.
    TerminatingTooLong(jiff::Timestamp),
}

impl NodePods {
    /// Starts tracking from a list the caller just made.
    pub(crate) fn start(
        api: Api<Pod>,
        node: String,
        label_selector: Option<String>,
        listed: PodsView,
        resource_version: String,
    ) -> Self {
        let (tx, rx) = watch::channel(listed);
        let task = tokio::spawn(track(api, node, label_selector, resource_version, tx));
        Self { rx, task }
    }

    /// The current state of a pod, `None` once it is gone.
    pub(crate) fn state(&self, uid: &str) -> Option<PodState> {
        self.rx.borrow().pods.get(uid).cloned()
    }

    /// A receiver that wakes on every change of the view.
    pub(crate) fn subscribe(&self) -> watch::Receiver<PodsView> {
        self.rx.clone()
    }

    /// Waits until the pod with `uid` is gone, or (with `skip`) until its deletion is older
    /// than `skip`.
    pub(crate) async fn wait_gone(&self, uid: &str, skip: Option<Duration>) -> WaitEnd {
        let mut rx = self.rx.clone();
        loop {
            let since = {
                let view = rx.borrow_and_update();
                match view.pods.get(uid) {
                    None => return WaitEnd::Gone,
                    Some(state) => state.deleting_since,
                }
            };
            let now = jiff::Timestamp::now();
            if super::filters::terminating_too_long(since, skip, now)
                && let Some(since) = since
            {
                return WaitEnd::TerminatingTooLong(since);
            }
            // Wake when the view changes, or when the pod crosses the skip age.
            let wake = match (since, skip) {
                (Some(since), Some(skip)) => {
                    // The age is negative while the grace period runs (the deletion timestamp
                    // is when it ends). kubectl compares whole seconds, so the age surely
                    // exceeds `skip` one second after it reaches it.
                    let age = now.duration_since(since).as_secs_f64();
                    let until = skip.as_secs_f64() + 1.0 - age;
                    Some(Instant::now() + Duration::from_secs_f64(until.max(0.05)))
                }
                _ => None,
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        changed = rx.changed() => if changed.is_err() { return WaitEnd::Gone },
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => {
                    if rx.changed().await.is_err() {
                        // The tracker stopped; only happens when the drain is being dropped.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// UIDs of `pods` still present.
    pub(crate) fn still_present<'a>(
        &self,
        pods: impl IntoIterator<Item = &'a PodRef>,
    ) -> Vec<PodRef> {
        let view = self.rx.borrow();
        pods.into_iter()
            .filter(|p| view.pods.contains_key(&p.uid))
            .cloned()
            .collect()
    }
}

async fn track(
    api: Api<Pod>,
    node: String,
    label_selector: Option<String>,
    mut resource_version: String,
    tx: watch::Sender<PodsView>,
) {
    let mut params = WatchParams::default()
        .fields(&format!("spec.nodeName={node}"))
        .timeout(WATCH_TIMEOUT_SECS);
    if let Some(sel) = label_selector.as_deref().filter(|s| !s.trim().is_empty()) {
        params = params.labels(sel);
    }
    let mut backoff = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(10));
    let mut relist = false;
    loop {
        if relist {
            match list_node_pods(&api, &node, label_selector.as_deref(), None).await {
                Ok((pods, rv)) => {
                    tx.send_replace(PodsView::from_pods(&pods));
                    resource_version = rv;
                    relist = false;
                }
                Err(e) => {
                    tracing::debug!(error = %e, node, "re-listing the node's pods failed");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            }
        }
        let stream = match api.watch(&params, &resource_version).await {
            Ok(stream) => stream,
            Err(e) if kube_error::classify(&e).kind == KubeErrorKind::Forbidden => {
                tracing::info!(
                    node,
                    "not allowed to watch pods; polling the node's pods instead"
                );
                poll(&api, &node, label_selector.as_deref(), &tx).await;
                return;
            }
            Err(e) if kube_error::classify(&e).kind == KubeErrorKind::Gone => {
                relist = true;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, node, "watching the node's pods failed");
                tokio::time::sleep(backoff.next_delay()).await;
                relist = true;
                continue;
            }
        };
        futures::pin_mut!(stream);
        let opened = Instant::now();
        let mut events = 0u32;
        while let Some(event) = stream.next().await {
            events += 1;
            match event {
                Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                    backoff.reset();
                    if let Some(rv) = pod.metadata.resource_version.clone() {
                        resource_version = rv;
                    }
                    if let Some((uid, state)) = entry(&pod) {
                        tx.send_if_modified(|view| {
                            let changed = view.pods.get(&uid) != Some(&state);
                            view.pods.insert(uid, state);
                            changed
                        });
                    }
                }
                Ok(WatchEvent::Deleted(pod)) => {
                    if let Some(rv) = pod.metadata.resource_version.clone() {
                        resource_version = rv;
                    }
                    if let Some(uid) = pod.metadata.uid {
                        tx.send_if_modified(|view| view.pods.remove(&uid).is_some());
                    }
                }
                Ok(WatchEvent::Bookmark(b)) => resource_version = b.metadata.resource_version,
                Ok(WatchEvent::Error(status)) => {
                    if kube_error::classify_status(&status).kind == KubeErrorKind::Gone {
                        relist = true;
                    } else {
                        tracing::debug!(?status, node, "pod watch answered an error");
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, node, "pod watch broke; resuming");
                    break;
                }
            }
        }
        // A server that closes watches at once must not make this loop spin.
        if events == 0 && opened.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// Re-lists the node's pods every second, for clusters that do not allow watching pods.
async fn poll(
    api: &Api<Pod>,
    node: &str,
    label_selector: Option<&str>,
    tx: &watch::Sender<PodsView>,
) {
    loop {
        tokio::time::sleep(jitter(POLL_INTERVAL, 0.1)).await;
        match list_node_pods(api, node, label_selector, None).await {
            Ok((pods, _)) => {
                let fresh = PodsView::from_pods(&pods);
                tx.send_if_modified(|view| {
                    let changed = view.pods != fresh.pods;
                    *view = fresh;
                    changed
                });
            }
            Err(e) => tracing::debug!(error = %e, node, "polling the node's pods failed"),
        }
    }
}
