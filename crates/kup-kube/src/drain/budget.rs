//! Waiting on a PodDisruptionBudget instead of sleeping.
//!
//! kubectl answers a 429 by sleeping a fixed 5 s and retrying, per pod. Here the first refusal
//! by a budget starts one watch on that budget (`metadata.name=<pdb>`), shared by every pod it
//! blocks, and a pod retries as soon as the budget's status allows a disruption. Pods blocked
//! by the same budget retry one at a time (a "turn"), and a status that was already used for
//! one eviction, or already answered 429, is not used again: a budget allowing one disruption
//! gets one request, not one per blocked pod. Pods of different budgets proceed in parallel.
//!
//! The watch is not trusted blindly: each turn also has a jittered fallback timer (doubling
//! from 2 s to 20 s, never shorter than the server's `Retry-After`) after which the pod retries
//! anyway, for changes the status does not show (a blocked pod that became unready, say).
//! Without `watch` permission the budget is polled with GET instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::{MutexGuard, watch};
use tokio::time::Instant;

use super::API_RETRY;
use crate::kube_error::{self, KubeErrorKind};
use crate::retry::{Backoff, jitter, retry};

const WATCH_TIMEOUT_SECS: u32 = 290;
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the drain knows of a budget's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BudgetView {
    /// A first answer (list or GET) arrived.
    pub known: bool,
    /// The budget exists.
    pub exists: bool,
    /// The resourceVersion of what we saw.
    pub resource_version: String,
    /// `status.disruptionsAllowed`.
    pub allowed: i32,
    /// `status.observedGeneration >= metadata.generation` (the server answers 429 otherwise).
    pub current: bool,
}

impl BudgetView {
    fn of(pdb: Option<&PodDisruptionBudget>) -> Self {
        let Some(pdb) = pdb else {
            return Self {
                known: true,
                ..Self::default()
            };
        };
        let status = pdb.status.clone().unwrap_or_default();
        Self {
            known: true,
            exists: true,
            resource_version: pdb.metadata.resource_version.clone().unwrap_or_default(),
            allowed: status.disruptions_allowed.unwrap_or(0),
            current: status.observed_generation.unwrap_or(0)
                >= pdb.metadata.generation.unwrap_or(0),
        }
    }
}

/// The state of the one pod whose turn it is, per budget.
#[derive(Debug)]
pub(crate) struct Turn {
    /// Disruptions already used (or known unavailable) at a resourceVersion.
    spent: Option<(String, i32)>,
    /// The fallback timer's backoff.
    fallback: Backoff,
}

impl Turn {
    fn spent_at(&self, resource_version: &str) -> i32 {
        match &self.spent {
            Some((rv, n)) if rv == resource_version => *n,
            _ => 0,
        }
    }

    /// An eviction based on `basis` succeeded: that status has one disruption fewer.
    pub(crate) fn used(&mut self, basis: Option<&str>) {
        if let Some(rv) = basis {
            let n = self.spent_at(rv).saturating_add(1);
            self.spent = Some((rv.to_string(), n));
        }
        self.fallback.reset();
    }

    /// An eviction based on `basis` was refused: that status allows nothing.
    pub(crate) fn refused(&mut self, basis: Option<&str>) {
        if let Some(rv) = basis {
            self.spent = Some((rv.to_string(), i32::MAX));
        }
    }
}

/// One watched budget.
pub(crate) struct Budget {
    rx: watch::Receiver<BudgetView>,
    turn: tokio::sync::Mutex<Turn>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Budget {
    fn start(client: Client, namespace: &str, name: &str) -> Self {
        let (tx, rx) = watch::channel(BudgetView::default());
        let api: Api<PodDisruptionBudget> = Api::namespaced(client, namespace);
        let task = tokio::spawn(track(api, name.to_string(), tx));
        Self {
            rx,
            turn: tokio::sync::Mutex::new(Turn {
                spent: None,
                fallback: Backoff::exponential(Duration::from_secs(2), Duration::from_secs(20)),
            }),
            task,
        }
    }

    /// Waits until no other pod of this budget is retrying.
    pub(crate) async fn turn(&self) -> MutexGuard<'_, Turn> {
        self.turn.lock().await
    }

    /// Waits until the budget allows a disruption not yet used, or until the fallback timer
    /// (at least `retry_after`) fires. Returns the resourceVersion the decision rests on
    /// (`None` after the timer, or when the budget is gone).
    pub(crate) async fn wait_allowed(
        &self,
        turn: &mut Turn,
        retry_after: Option<Duration>,
    ) -> Option<String> {
        let delay = turn
            .fallback
            .next_delay()
            .max(retry_after.unwrap_or_default());
        let fallback_at = Instant::now() + delay;
        let mut rx = self.rx.clone();
        loop {
            {
                let view = rx.borrow_and_update();
                if view.known && !view.exists {
                    return None;
                }
                if view.known
                    && view.current
                    && view
                        .allowed
                        .saturating_sub(turn.spent_at(&view.resource_version))
                        > 0
                {
                    return Some(view.resource_version.clone());
                }
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(fallback_at).await;
                        return None;
                    }
                }
                () = tokio::time::sleep_until(fallback_at) => return None,
            }
        }
    }
}

/// The budgets one drain waits on, each watched once.
pub(crate) struct Budgets {
    client: Client,
    watched: Mutex<HashMap<(String, String), Arc<Budget>>>,
}

impl Budgets {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            watched: Mutex::new(HashMap::new()),
        }
    }

    /// The budget `namespace/name`, watched from now on.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Arc<Budget> {
        let mut watched = self
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        watched
            .entry((namespace.to_string(), name.to_string()))
            .or_insert_with(|| Arc::new(Budget::start(self.client.clone(), namespace, name)))
            .clone()
    }
}

async fn track(api: Api<PodDisruptionBudget>, name: String, tx: watch::Sender<BudgetView>) {
    let selector = format!("metadata.name={name}");
    let list_params = ListParams::default().fields(&selector);
    let watch_params = WatchParams::default()
        .fields(&selector)
        .timeout(WATCH_TIMEOUT_SECS);
    let mut backoff = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(10));
    'relist: loop {
        let mut resource_version = match retry(&API_RETRY, || api.list(&list_params)).await {
            Ok(list) => {
                tx.send_replace(BudgetView::of(list.items.first()));
                list.metadata.resource_version.unwrap_or_default()
            }
            Err(e) if kube_error::classify(&e).kind == KubeErrorKind::Forbidden => {
                tracing::info!(
                    pdb = name,
                    "not allowed to list PodDisruptionBudgets; polling it"
                );
                return poll(&api, &name, &tx).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, pdb = name, "listing the budget failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue 'relist;
            }
        };
        loop {
            let stream = match api.watch(&watch_params, &resource_version).await {
                Ok(stream) => stream,
                Err(e) if kube_error::classify(&e).kind == KubeErrorKind::Forbidden => {
                    tracing::info!(
                        pdb = name,
                        "not allowed to watch PodDisruptionBudgets; polling it"
                    );
                    return poll(&api, &name, &tx).await;
                }
                Err(e) if kube_error::classify(&e).kind == KubeErrorKind::Gone => continue 'relist,
                Err(e) => {
                    tracing::debug!(error = %e, pdb = name, "watching the budget failed");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue 'relist;
                }
            };
            futures::pin_mut!(stream);
            let opened = Instant::now();
            let mut events = 0u32;
            while let Some(event) = stream.next().await {
                events += 1;
                match event {
                    Ok(WatchEvent::Added(pdb) | WatchEvent::Modified(pdb)) => {
                        backoff.reset();
                        resource_version =
                            pdb.metadata.resource_version.clone().unwrap_or_default();
                        tx.send_replace(BudgetView::of(Some(&pdb)));
                    }
                    Ok(WatchEvent::Deleted(pdb)) => {
                        resource_version =
                            pdb.metadata.resource_version.clone().unwrap_or_default();
                        tx.send_replace(BudgetView::of(None));
                    }
                    Ok(WatchEvent::Bookmark(b)) => resource_version = b.metadata.resource_version,
                    Ok(WatchEvent::Error(status))
                        if kube_error::classify_status(&status).kind == KubeErrorKind::Gone =>
                    {
                        continue 'relist;
                    }
                    Ok(WatchEvent::Error(status)) => {
                        tracing::debug!(?status, pdb = name, "budget watch answered an error");
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue 'relist;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, pdb = name, "budget watch broke; resuming");
                        break;
                    }
                }
            }
            if events == 0 && opened.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// GETs the budget every second, for clusters that do not allow watching budgets.
async fn poll(api: &Api<PodDisruptionBudget>, name: &str, tx: &watch::Sender<BudgetView>) {
    loop {
        match api.get_opt(name).await {
            Ok(pdb) => {
                let view = BudgetView::of(pdb.as_ref());
                tx.send_if_modified(|old| {
                    let changed = *old != view;
                    *old = view;
                    changed
                });
            }
            Err(e) => tracing::debug!(error = %e, pdb = name, "polling the budget failed"),
        }
        tokio::time::sleep(jitter(POLL_INTERVAL, 0.2)).await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pdb(rv: &str, generation: i64, observed: i64, allowed: i32) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("web".into()),
                resource_version: Some(rv.into()),
                generation: Some(generation),
                ..Default::default()
            },
            status: Some(PodDisruptionBudgetStatus {
                observed_generation: Some(observed),
                disruptions_allowed: Some(allowed),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn views_read_allowance_and_staleness() {
        let v = BudgetView::of(Some(&pdb("7", 2, 2, 1)));
        assert!(v.known && v.exists && v.current);
        assert_eq!((v.allowed, v.resource_version.as_str()), (1, "7"));
        assert!(!BudgetView::of(Some(&pdb("8", 3, 2, 1))).current);
        let gone = BudgetView::of(None);
        assert!(gone.known && !gone.exists);
    }

    #[test]
    fn a_status_is_used_once_per_allowed_disruption() {
        let mut turn = Turn {
            spent: None,
            fallback: Backoff::exponential(Duration::from_secs(2), Duration::from_secs(20)),
        };
        turn.used(Some("7"));
        assert_eq!(turn.spent_at("7"), 1);
        turn.used(Some("7"));
        assert_eq!(turn.spent_at("7"), 2);
        assert_eq!(turn.spent_at("8"), 0, "a newer status starts afresh");
        turn.refused(Some("8"));
        assert_eq!(turn.spent_at("8"), i32::MAX);
    }
}
