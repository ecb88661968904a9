//! Cordon and uncordon (kubectl `pkg/drain/cordon.go`): read the node, and only when
//! `spec.unschedulable` differs send a strategic-merge PATCH of that one field. A 409 Conflict
//! is answered by reading the node again and deciding afresh, never by overwriting.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::API_RETRY;
use crate::error::{Error, Result};
use crate::kube_error::{self, KubeErrorKind};
use crate::retry::{Backoff, retry_until};

/// Attempts at a node update that keeps answering 409 before giving up.
const MAX_CONFLICT_ATTEMPTS: u32 = 5;

/// What [`Drainer::cordon`](super::Drainer::cordon) found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CordonOutcome {
    /// The node was already unschedulable before this call (nothing was sent). A node cordoned
    /// before an upgrade must stay cordoned after it: callers skip the uncordon.
    pub was_cordoned: bool,
}

/// Whether the node is cordoned.
pub(crate) fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

pub(crate) async fn get_node(
    api: &Api<Node>,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Node> {
    match retry_until(&API_RETRY, deadline, || api.get(name)).await {
        Ok(node) => Ok(node),
        Err(e) if kube_error::classify(&e).kind == KubeErrorKind::NotFound => {
            Err(Error::NodeNotFound {
                node: name.to_string(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets `spec.unschedulable` to `desired`; returns whether anything was sent. `known` is a
/// copy of the node read just before, to spare a GET.
pub(crate) async fn set_unschedulable(
    api: &Api<Node>,
    name: &str,
    desired: bool,
    mut known: Option<Node>,
    deadline: Option<Instant>,
) -> Result<bool> {
    let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));
    for attempt in 1..=MAX_CONFLICT_ATTEMPTS {
        let node = match known.take() {
            Some(node) => node,
            None => get_node(api, name, deadline).await?,
        };
        if is_cordoned(&node) == desired {
            // After a conflict this means someone else made the change: ours did not apply,
            // so report it as not ours (a cordon then counts as pre-existing and is kept).
            return Ok(false);
        }
        // kubectl's two-way strategic merge patch: `true`, or `null` to clear the field.
        let value = if desired { json!(true) } else { json!(null) };
        let body = json!({"spec": {"unschedulable": value}});
        let params = PatchParams::default();
        let patch = Patch::Strategic(&body);
        let sent = retry_until(&API_RETRY, deadline, || api.patch(name, &params, &patch)).await;
        match sent {
            Ok(_) => return Ok(true),
            Err(e) if kube_error::classify(&e).kind == KubeErrorKind::NotFound => {
                return Err(Error::NodeNotFound {
                    node: name.to_string(),
                });
            }
            Err(e) if kube_error::classify(&e).kind == KubeErrorKind::Conflict => {
                tracing::debug!(
                    node = name,
                    attempt,
                    "node update conflicted; reading it again"
                );
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::NodeConflict {
        node: name.to_string(),
        attempts: MAX_CONFLICT_ATTEMPTS,
    })
}
