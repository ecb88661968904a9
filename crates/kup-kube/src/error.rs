//! The error type of kup-kube.

use kup_core::ErrorCategory;

use crate::kube_error;
use crate::retry::{RetryHint, Retryable};

/// A specialised `Result` for kup-kube.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from Kubernetes-facing operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Kubernetes API answered with an error or could not be reached.
    #[error("Kubernetes API error: {}", kube_error::describe(.0))]
    Kube(#[from] kube::Error),
    /// An input field is wrong; nothing was sent to the cluster.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field, option or flag.
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A wait did not finish in time.
    #[error("timed out after {}s: {what}", after.as_secs())]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: std::time::Duration,
    },
    /// A local file (a manifest to scan) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The node does not exist.
    #[error("node {node:?} not found")]
    NodeNotFound {
        /// The node.
        node: String,
    },
    /// Updating the node kept answering 409 Conflict, re-read each time.
    #[error(
        "node {node:?} kept changing while kup updated it (409 Conflict {attempts} times); try again"
    )]
    NodeConflict {
        /// The node.
        node: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The drain's filters refused pods (kubectl's rules); nothing was evicted.
    #[error(
        "cannot drain node {node:?}: {}; nothing was evicted and the node stays cordoned",
        crate::drain::RefusalList(refused)
    )]
    DrainRefused {
        /// The node.
        node: String,
        /// Every refused pod, grouped by reason.
        refused: Vec<crate::drain::RefusedGroup>,
        /// The drain's report.
        report: Box<crate::drain::DrainReport>,
    },
    /// The eviction API refused a pod that several PodDisruptionBudgets select (HTTP 500).
    #[error(
        "cannot evict pod {pod} from node {:?}: it is selected by more than one \
         PodDisruptionBudget ({}), which the eviction API does not support; change the budgets \
         so that one selects it. The drain stopped and the node stays cordoned",
        report.node,
        pdbs.join(", ")
    )]
    MultiplePodDisruptionBudgets {
        /// The pod.
        pod: crate::drain::PodRef,
        /// The budgets that select it (`namespace/name`).
        pdbs: Vec<String>,
        /// The drain's report (with the node's name).
        report: Box<crate::drain::DrainReport>,
    },
    /// The drain passed its deadline. The node stays cordoned.
    #[error(
        "drain of node {node:?} timed out after {}s with {} pod(s) left: {}; the node stays cordoned",
        after.as_secs(),
        remaining.len(),
        crate::drain::StuckSummary { blocked, remaining }
    )]
    DrainTimedOut {
        /// The node.
        node: String,
        /// The deadline.
        after: std::time::Duration,
        /// Pods still held back by a PodDisruptionBudget, with the budget and its message.
        blocked: Vec<crate::drain::BlockedPod>,
        /// Pods still on the node.
        remaining: Vec<crate::drain::PodRef>,
        /// The drain's report.
        report: Box<crate::drain::DrainReport>,
    },
    /// Evicting or deleting a pod failed in a way retrying cannot fix. The node stays cordoned.
    #[error(
        "error when {} pods/{:?} -n {:?} on node {:?}: {message} (HTTP {code}); the drain \
         stopped and the node stays cordoned",
        if *method == crate::drain::DrainMethod::Delete { "deleting" } else { "evicting" },
        pod.name,
        pod.namespace,
        report.node
    )]
    PodRemovalFailed {
        /// The pod.
        pod: crate::drain::PodRef,
        /// Eviction or DELETE.
        method: crate::drain::DrainMethod,
        /// The HTTP status (0 when none arrived).
        code: u16,
        /// The API's message.
        message: String,
        /// The drain's report (with the node's name).
        report: Box<crate::drain::DrainReport>,
    },
}

impl Error {
    /// The category a caller can act on; the same as that of the [`kup_core::Error`] this
    /// converts into.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Kube(e) => kube_error::category(e),
            Error::InvalidInput { .. } | Error::ReadFile { .. } => ErrorCategory::InvalidInput,
            Error::Timeout { .. } | Error::DrainTimedOut { .. } => ErrorCategory::Timeout,
            Error::NodeNotFound { .. } => ErrorCategory::NotFound,
            Error::NodeConflict { .. } => ErrorCategory::Conflict,
            Error::DrainRefused { .. } | Error::MultiplePodDisruptionBudgets { .. } => {
                ErrorCategory::Precondition
            }
            Error::PodRemovalFailed { code, .. } => kube_error::classify_code(*code).category,
        }
    }
}

impl Retryable for Error {
    /// Kubernetes answers by the classifier; kup's own verdicts (refusals, deadlines,
    /// conflicts that were already re-read) are final.
    fn retry_hint(&self) -> RetryHint {
        match self {
            Error::Kube(e) => e.retry_hint(),
            _ => RetryHint::Stop,
        }
    }
}

impl From<Error> for kup_core::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Kube(e) => kube_error::to_core_error(e),
            Error::InvalidInput { field, message } => {
                kup_core::Error::InvalidInput { field, message }
            }
            Error::Timeout { what, after } => kup_core::Error::Timeout { what, after },
            Error::ReadFile { path, source } => kup_core::Error::InvalidInput {
                field: path.display().to_string(),
                message: source.to_string(),
            },
            Error::NodeNotFound { node } => kup_core::Error::NotFound {
                kind: "node".into(),
                name: node,
                scope: None,
            },
            e @ Error::NodeConflict { .. } => kup_core::Error::Conflict {
                message: e.to_string(),
            },
            e @ (Error::DrainRefused { .. } | Error::MultiplePodDisruptionBudgets { .. }) => {
                kup_core::Error::Precondition {
                    message: e.to_string(),
                }
            }
            e @ Error::DrainTimedOut { after, .. } => {
                let what = e.to_string();
                kup_core::Error::Timeout { what, after }
            }
            e @ Error::PodRemovalFailed { code, .. } => {
                let class = kube_error::classify_code(code);
                let pod = match &e {
                    Error::PodRemovalFailed { pod, .. } => {
                        format!("{}/{}", pod.namespace, pod.name)
                    }
                    _ => String::new(),
                };
                let message = e.to_string();
                match class.category {
                    ErrorCategory::PermissionDenied => {
                        kup_core::Error::PermissionDenied { message }
                    }
                    ErrorCategory::InvalidInput => kup_core::Error::InvalidInput {
                        field: "pod removal".into(),
                        message,
                    },
                    ErrorCategory::NotFound => kup_core::Error::NotFound {
                        kind: "pod".into(),
                        name: pod,
                        scope: None,
                    },
                    ErrorCategory::Conflict => kup_core::Error::Conflict { message },
                    _ => kup_core::Error::provider(
                        kube_error::kubernetes_provider(),
                        (code > 0).then(|| format!("HTTP {code}")),
                        message,
                        class.retryable,
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::core::Status;

    use super::*;
    use crate::drain::{DrainMethod, DrainReport, PodRef};

    fn api(code: u16, reason: &str) -> kube::Error {
        let mut status = Status::failure("answer", reason);
        status.code = code;
        kube::Error::Api(status.boxed())
    }

    /// The situations every Kubernetes-facing crate must classify alike.
    const SITUATIONS: [(u16, &str, ErrorCategory); 5] = [
        (404, "NotFound", ErrorCategory::NotFound),
        (409, "Conflict", ErrorCategory::Conflict),
        (429, "TooManyRequests", ErrorCategory::Provider),
        (503, "ServiceUnavailable", ErrorCategory::Provider),
        (403, "Forbidden", ErrorCategory::PermissionDenied),
    ];

    #[test]
    fn api_answers_keep_the_classifiers_category() {
        for (code, reason, category) in SITUATIONS {
            let err = Error::Kube(api(code, reason));
            assert_eq!(err.category(), category, "{code}");
            assert_eq!(
                err.retry_hint().is_retryable(),
                matches!(code, 429 | 503),
                "{code}"
            );
            assert_eq!(kup_core::Error::from(err).category(), category, "{code}");
        }
    }

    fn pod() -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
        }
    }

    fn removal(code: u16) -> Error {
        Error::PodRemovalFailed {
            pod: pod(),
            method: DrainMethod::Eviction,
            code,
            message: "no".into(),
            report: Box::default(),
        }
    }

    #[test]
    fn every_variant_converts_into_its_own_category() {
        let variants = [
            Error::Kube(api(422, "Invalid")),
            Error::InvalidInput {
                field: "timeout".into(),
                message: "negative".into(),
            },
            Error::Timeout {
                what: "node Ready".into(),
                after: Duration::from_secs(1),
            },
            Error::ReadFile {
                path: "m.yaml".into(),
                source: std::io::Error::other("gone"),
            },
            Error::NodeNotFound { node: "n".into() },
            Error::NodeConflict {
                node: "n".into(),
                attempts: 5,
            },
            Error::DrainRefused {
                node: "n".into(),
                refused: Vec::new(),
                report: Box::default(),
            },
            Error::MultiplePodDisruptionBudgets {
                pod: pod(),
                pdbs: vec!["shop/a".into(), "shop/b".into()],
                report: Box::<DrainReport>::default(),
            },
            Error::DrainTimedOut {
                node: "n".into(),
                after: Duration::from_secs(60),
                blocked: Vec::new(),
                remaining: vec![pod()],
                report: Box::default(),
            },
            removal(0),
            removal(400),
            removal(403),
            removal(404),
            removal(409),
            removal(429),
            removal(500),
        ];
        let expected = [
            ErrorCategory::InvalidInput,
            ErrorCategory::InvalidInput,
            ErrorCategory::Timeout,
            ErrorCategory::InvalidInput,
            ErrorCategory::NotFound,
            ErrorCategory::Conflict,
            ErrorCategory::Precondition,
            ErrorCategory::Precondition,
            ErrorCategory::Timeout,
            ErrorCategory::Provider,
            ErrorCategory::InvalidInput,
            ErrorCategory::PermissionDenied,
            ErrorCategory::NotFound,
            ErrorCategory::Conflict,
            ErrorCategory::Provider,
            ErrorCategory::Provider,
        ];
        for (err, want) in variants.into_iter().zip(expected) {
            let text = err.to_string();
            assert_eq!(err.category(), want, "{text}");
            assert_eq!(kup_core::Error::from(err).category(), want, "{text}");
        }
        let core = kup_core::Error::from(removal(0));
        assert!(
            core.is_retryable(),
            "no answer at all may succeed next time"
        );
        assert!(!kup_core::Error::from(removal(400)).is_retryable());
    }
}
