//! One eviction (or DELETE) request and what its answer means for the drain.
//!
//! Requests are sent raw through a client without kube's automatic 429/503/504 retry: an
//! eviction's 429 is the PodDisruptionBudget's answer and the drain must see it at once; raw
//! sending also gives the `Retry-After` header. The body is a `policy/v1` `Eviction` in the
//! API's own camelCase (kube 5's `Api::evict` sends `delete_options`, which a real API server
//! ignores). Both requests carry a UID precondition, so a pod recreated under the same name is
//! never evicted by mistake (kubectl evicts the newcomer).

use std::time::Duration;

use http::{Method, Request, StatusCode};
use kube::Client;
use kube::core::Status;
use serde_json::{Value, json};

use super::report::PodRef;
use crate::kube_error;

/// The cause `reason` a PodDisruptionBudget refusal carries.
const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// The cause `reason` of a create refused in a terminating namespace.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";
/// The 500 message of the eviction subresource for a pod covered by several budgets.
const MULTIPLE_PDBS: &str = "more than one PodDisruptionBudget";

/// What the API answered, classified for the drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200/201: the pod is being removed.
    Accepted,
    /// 404: the pod is gone already.
    NotFound,
    /// 409 on the UID precondition: the name now belongs to a new pod; ours is gone.
    Replaced,
    /// 429 from a PodDisruptionBudget.
    Blocked {
        /// The budget, when the cause names it.
        pdb: Option<String>,
        /// The cause's message (`The disruption budget web needs 2 healthy pods and has 2
        /// currently`), or the status message.
        message: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 403 with cause `NamespaceTerminating`.
    NamespaceTerminating {
        /// The API's message.
        message: String,
    },
    /// 500: more than one PodDisruptionBudget selects the pod.
    MultiplePdbs {
        /// The API's message.
        message: String,
    },
    /// Overload (429 without a budget cause, 503, 504), another conflict, or a broken
    /// connection: retry later.
    Transient {
        /// The HTTP status, when one arrived.
        code: Option<u16>,
        /// What happened.
        message: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Anything else: the drain fails.
    Failed {
        /// The HTTP status.
        code: u16,
        /// The Status `reason`.
        reason: String,
        /// The Status `message`.
        message: String,
    },
}

fn delete_options(pod: &PodRef, grace_period: Option<i64>) -> Value {
    let mut opts = json!({"preconditions": {"uid": pod.uid}});
    if let Some(g) = grace_period {
        opts["gracePeriodSeconds"] = json!(g);
    }
    opts
}

/// The policy/v1 Eviction body kubectl sends (plus the UID precondition).
pub(crate) fn eviction_body(pod: &PodRef, grace_period: Option<i64>) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
        "deleteOptions": delete_options(pod, grace_period),
    })
}

/// Sends one eviction.
pub(crate) async fn evict(client: &Client, pod: &PodRef, grace_period: Option<i64>) -> Answer {
    let uri = format!(
        "/api/v1/namespaces/{}/pods/{}/eviction",
        pod.namespace, pod.name
    );
    send(client, Method::POST, uri, eviction_body(pod, grace_period)).await
}

/// Sends one DELETE (`disable_eviction` mode).
pub(crate) async fn delete(client: &Client, pod: &PodRef, grace_period: Option<i64>) -> Answer {
    let uri = format!("/api/v1/namespaces/{}/pods/{}", pod.namespace, pod.name);
    let mut body = delete_options(pod, grace_period);
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("DeleteOptions");
    send(client, Method::DELETE, uri, body).await
}

async fn send(client: &Client, method: Method, uri: String, body: Value) -> Answer {
    let bytes = match serde_json::to_vec(&body) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Answer::Failed {
                code: 0,
                reason: "Encoding".into(),
                message: e.to_string(),
            };
        }
    };
    let request = match Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(bytes))
    {
        Ok(r) => r,
        Err(e) => {
            return Answer::Failed {
                code: 0,
                reason: "BadRequest".into(),
                message: e.to_string(),
            };
        }
    };
    let response = match client.send(request).await {
        Ok(r) => r,
        Err(e) => {
            return Answer::Transient {
                code: None,
                message: e.to_string(),
                retry_after: None,
            };
        }
    };
    let code = response.status();
    let header_retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let body = match response.into_body().collect_bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Answer::Transient {
                code: Some(code.as_u16()),
                message: format!("reading the answer failed: {e}"),
                retry_after: header_retry_after,
            };
        }
    };
    classify(code, header_retry_after, &body)
}

/// Classifies an answer from its status code, `Retry-After` header and body.
pub(crate) fn classify(
    code: StatusCode,
    header_retry_after: Option<Duration>,
    body: &[u8],
) -> Answer {
    if code.is_success() {
        return Answer::Accepted;
    }
    let status: Status = serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        Status::failure(
            text.trim().chars().take(500).collect::<String>().as_str(),
            "",
        )
    });
    let retry_after = header_retry_after.or_else(|| {
        status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s)))
    });
    let cause = |reason: &str| {
        status
            .details
            .as_ref()
            .and_then(|d| d.causes.iter().find(|c| c.reason == reason))
    };
    let message = if status.message.is_empty() {
        code.canonical_reason().unwrap_or("error").to_string()
    } else {
        status.message.clone()
    };
    match code.as_u16() {
        404 => Answer::NotFound,
        // Our UID precondition failed: the name belongs to a newer pod. Other conflicts (the
        // server racing with itself) are worth another try.
        409 if message.contains("UID in precondition") => Answer::Replaced,
        409 => Answer::Transient {
            code: Some(409),
            message,
            retry_after,
        },
        429 => {
            let budget_cause = cause(DISRUPTION_BUDGET_CAUSE);
            if budget_cause.is_some() || message.contains("disruption budget") {
                let cause_message = budget_cause.map(|c| c.message.clone());
                Answer::Blocked {
                    pdb: cause_message.as_deref().and_then(budget_name),
                    message: cause_message.unwrap_or(message),
                    retry_after,
                }
            } else {
                Answer::Transient {
                    code: Some(429),
                    message,
                    retry_after,
                }
            }
        }
        403 if cause(NAMESPACE_TERMINATING_CAUSE).is_some() => {
            Answer::NamespaceTerminating { message }
        }
        500 if message.contains(MULTIPLE_PDBS) => Answer::MultiplePdbs { message },
        // Everything else as for any other request: overload and server errors are retried,
        // the rest fails the pod.
        other => {
            let mut answered = status.clone();
            answered.code = other;
            let class = kube_error::classify_status(&answered);
            if class.retryable {
                Answer::Transient {
                    code: Some(other),
                    message,
                    retry_after: retry_after.or(class.retry_after),
                }
            } else {
                Answer::Failed {
                    code: other,
                    reason: status.reason.clone(),
                    message,
                }
            }
        }
    }
}

/// The budget's name from a cause such as `The disruption budget web needs 2 healthy pods
/// and has 2 currently` or `The disruption budget web is still being processed by the
/// server.` (names cannot contain spaces).
fn budget_name(cause: &str) -> Option<String> {
    let rest = cause.strip_prefix("The disruption budget ")?;
    let name = rest.split_whitespace().next()?.trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn eviction_body_is_policy_v1_in_camel_case() {
        let body = eviction_body(&pod(), Some(30));
        assert_eq!(
            body,
            json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": "web-1", "namespace": "shop"},
                "deleteOptions": {"gracePeriodSeconds": 30, "preconditions": {"uid": "u-1"}},
            })
        );
        assert!(
            eviction_body(&pod(), None)["deleteOptions"]
                .get("gracePeriodSeconds")
                .is_none()
        );
    }

    #[test]
    fn a_budget_refusal_names_the_budget() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Cannot evict pod as it would violate the pod's disruption budget.",
            "reason":"TooManyRequests",
            "details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web needs 2 healthy pods and has 2 currently"}]},
            "code":429}"#;
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, None, body),
            Answer::Blocked {
                pdb: Some("web".into()),
                message: "The disruption budget web needs 2 healthy pods and has 2 currently"
                    .into(),
                retry_after: None,
            }
        );
        let stale = br#"{"kind":"Status","status":"Failure","reason":"TooManyRequests","code":429,
            "message":"Cannot evict pod as it would violate the pod's disruption budget.",
            "details":{"retryAfterSeconds":10,"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web is still being processed by the server."}]}}"#;
        match classify(StatusCode::TOO_MANY_REQUESTS, None, stale) {
            Answer::Blocked {
                pdb, retry_after, ..
            } => {
                assert_eq!(pdb.as_deref(), Some("web"));
                assert_eq!(retry_after, Some(Duration::from_secs(10)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overload_is_transient_and_keeps_retry_after() {
        let body = br#"{"kind":"Status","status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","code":429}"#;
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(2)),
                body
            ),
            Answer::Transient {
                code: Some(429),
                message: "Too many requests, please try again later.".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        assert!(matches!(
            classify(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                b"upstream connect error"
            ),
            Answer::Transient {
                code: Some(503),
                ..
            }
        ));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                b"etcdserver: leader changed"
            ),
            Answer::Transient {
                code: Some(500),
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, None, b"bad grace period"),
            Answer::Failed { code: 400, .. }
        ));
        assert!(matches!(
            classify(StatusCode::GATEWAY_TIMEOUT, None, b""),
            Answer::Transient {
                code: Some(504),
                ..
            }
        ));
    }

    #[test]
    fn the_other_answers_the_reference_names() {
        assert_eq!(classify(StatusCode::CREATED, None, b"{}"), Answer::Accepted);
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None, b"{}"),
            Answer::NotFound
        );
        let terminating = br#"{"kind":"Status","status":"Failure","code":403,"reason":"Forbidden",
            "message":"pods \"web-1\" is forbidden: unable to create new content in namespace shop because it is being terminated",
            "details":{"causes":[{"reason":"NamespaceTerminating","message":"namespace shop is being terminated","field":"metadata.namespace"}]}}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, None, terminating),
            Answer::NamespaceTerminating { .. }
        ));
        let forbidden = br#"{"kind":"Status","status":"Failure","code":403,"reason":"Forbidden","message":"no RBAC"}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, None, forbidden),
            Answer::Failed { code: 403, .. }
        ));
        let two = br#"{"kind":"Status","status":"Failure","code":500,"message":"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}"#;
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, None, two),
            Answer::MultiplePdbs { .. }
        ));
        let conflict = br#"{"kind":"Status","status":"Failure","code":409,"reason":"Conflict","message":"Precondition failed: UID in precondition: u-1, UID in object meta: u-2"}"#;
        assert_eq!(
            classify(StatusCode::CONFLICT, None, conflict),
            Answer::Replaced
        );
    }
}
