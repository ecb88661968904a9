//! The crate's error type, and the one place where GKE's answers become kup's errors.

use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use kup_core::{BoxError, ErrorCategory, ProviderKind};
use kup_kube::kube_error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to GKE.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or malformed.
    #[error("invalid {field}: {message}")]
    Config {
        /// The setting (`project`, `location`, `cluster`, `endpoint`, `credentials`).
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// GKE answered with a `google.rpc.Status`.
    #[error("GKE {call} {kind} {name}: {code}: {message}")]
    Api {
        /// The call (`updateMaster`).
        call: &'static str,
        /// What it was about (`cluster`, `node pool`, `operation`).
        kind: &'static str,
        /// Its name.
        name: String,
        /// The canonical code (`FAILED_PRECONDITION`).
        code: String,
        /// GKE's message.
        message: String,
        /// The HTTP status, when one arrived.
        http: Option<u16>,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// No answer: connection, timeout, or a body the client could not read.
    #[error("GKE {call}: {message}")]
    Transport {
        /// The call.
        call: &'static str,
        /// What happened.
        message: String,
        /// Whether trying again may help (connection and timeout failures).
        retryable: bool,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// No usable Google credentials (never includes any credential).
    #[error(
        "no usable Google credentials for GKE {call}: {reason}; {}",
        HOW_TO_PROVIDE_CREDENTIALS
    )]
    Credentials {
        /// The call that needed them (or `client` while building).
        call: &'static str,
        /// Why (the credential source's own words, without secrets).
        reason: String,
    },
    /// GKE answered without a field kup needs, or with one it cannot read.
    #[error("GKE {call}: {problem}")]
    Response {
        /// The call.
        call: &'static str,
        /// What is missing or unreadable.
        problem: String,
    },
    /// A Kubernetes API call failed (PodDisruptionBudgets for pre-flight).
    #[error("kubernetes API: {}", kube_error::describe(.0))]
    Kube(#[from] kube::Error),
}

/// How to give kup Google credentials, in one sentence (only where they come from).
pub(crate) const HOW_TO_PROVIDE_CREDENTIALS: &str = "provide Application Default Credentials: \
    `gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS naming a service \
    account or workload identity federation file, or the metadata server on GCE/GKE";

impl Error {
    /// Maps a client error for `call` on the `kind` named `name`.
    pub(crate) fn gax(
        call: &'static str,
        kind: &'static str,
        name: impl Into<String>,
    ) -> impl FnOnce(GaxError) -> Error {
        let name = name.into();
        move |err| {
            if err.is_authentication() {
                return Error::Credentials {
                    call,
                    reason: err.to_string(),
                };
            }
            if let Some(status) = err.status() {
                return Error::Api {
                    call,
                    kind,
                    name,
                    code: status.code.name().to_string(),
                    message: status.message.clone(),
                    http: err.http_status_code(),
                    source: Box::new(err),
                };
            }
            if let Some(http) = err.http_status_code() {
                // An HTTP error without a google.rpc.Status body (a proxy, a load balancer).
                return Error::Api {
                    call,
                    kind,
                    name,
                    code: format!("HTTP {http}"),
                    message: err.to_string(),
                    http: Some(http),
                    source: Box::new(err),
                };
            }
            let retryable =
                err.is_timeout() || err.is_connect() || err.is_io() || err.is_transport();
            Error::Transport {
                call,
                message: err.to_string(),
                retryable,
                source: Box::new(err),
            }
        }
    }

    pub(crate) fn response(call: &'static str, problem: impl Into<String>) -> Error {
        Error::Response {
            call,
            problem: problem.into(),
        }
    }

    /// The canonical code, when GKE answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The category a caller can act on; the same as that of the [`kup_core::Error`] this
    /// converts into.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Config { .. } | Error::Credentials { .. } => ErrorCategory::InvalidInput,
            Error::Api {
                code,
                message,
                http,
                ..
            } => map_api(code, message, *http).category(),
            Error::Transport { .. } | Error::Response { .. } => ErrorCategory::Provider,
            Error::Kube(e) => kube_error::category(e),
        }
    }
}

/// How a GKE answer is acted on; the one decision behind [`Error::category`] and the
/// conversion into [`kup_core::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapped {
    Busy,
    Precondition,
    Invalid,
    NotFound,
    Denied,
    Conflict,
    Provider { retryable: bool },
}

impl Mapped {
    fn category(self) -> ErrorCategory {
        match self {
            Mapped::Busy => ErrorCategory::Busy,
            Mapped::Precondition => ErrorCategory::Precondition,
            Mapped::Invalid => ErrorCategory::InvalidInput,
            Mapped::NotFound => ErrorCategory::NotFound,
            Mapped::Denied => ErrorCategory::PermissionDenied,
            Mapped::Conflict => ErrorCategory::Conflict,
            Mapped::Provider { .. } => ErrorCategory::Provider,
        }
    }
}

/// Canonical codes first. GKE answers FAILED_PRECONDITION both while another operation runs
/// ("Cluster is running incompatible operation …", busy) and for a state that will not pass
/// by waiting (nothing to roll back, not soaking): the message tells them apart.
fn map_api(code: &str, message: &str, http: Option<u16>) -> Mapped {
    let c = Code::try_from(code).unwrap_or(Code::Unknown);
    match c {
        Code::FailedPrecondition if is_busy_message(message) => Mapped::Busy,
        Code::FailedPrecondition => Mapped::Precondition,
        Code::InvalidArgument | Code::OutOfRange => Mapped::Invalid,
        Code::NotFound => Mapped::NotFound,
        Code::PermissionDenied | Code::Unauthenticated => Mapped::Denied,
        Code::AlreadyExists | Code::Aborted => Mapped::Conflict,
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded => {
            Mapped::Provider { retryable: true }
        }
        _ => match http {
            Some(401 | 403) => Mapped::Denied,
            Some(404) => Mapped::NotFound,
            Some(429 | 502 | 503 | 504) => Mapped::Provider { retryable: true },
            _ => Mapped::Provider { retryable: false },
        },
    }
}

fn is_busy_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("incompatible operation") || m.contains("operation") && m.contains("in progress")
}

impl From<Error> for kup_core::Error {
    fn from(e: Error) -> Self {
        let text = e.to_string();
        match e {
            Error::Config { field, message } => kup_core::Error::invalid_input(field, message),
            Error::Credentials { call, reason } => kup_core::Error::invalid_input(
                "Google credentials",
                format!("none usable for GKE {call} ({reason}): {HOW_TO_PROVIDE_CREDENTIALS}"),
            ),
            Error::Api {
                call,
                kind,
                name,
                code,
                message,
                http,
                source,
            } => match map_api(&code, &message, http) {
                Mapped::Busy => kup_core::Error::Busy {
                    operation: running_operation(&message),
                    message: format!("GKE {call}: {message}"),
                },
                Mapped::Precondition => {
                    kup_core::Error::precondition(format!("GKE {call}: {message}"))
                }
                Mapped::Invalid => kup_core::Error::invalid_input(call, message),
                Mapped::NotFound => kup_core::Error::NotFound {
                    kind: kind.to_string(),
                    name,
                    scope: Some(format!("GKE ({message})")),
                },
                Mapped::Denied => kup_core::Error::PermissionDenied {
                    message: format!("GKE {call}: {code}: {message}"),
                },
                Mapped::Conflict => kup_core::Error::Conflict { message: text },
                Mapped::Provider { retryable } => {
                    kup_core::Error::provider(ProviderKind::Gke, Some(code), text, retryable)
                        .with_source(source)
                }
            },
            Error::Transport {
                retryable, source, ..
            } => kup_core::Error::provider(ProviderKind::Gke, None, text, retryable)
                .with_source(source),
            Error::Response { .. } => {
                kup_core::Error::provider(ProviderKind::Gke, None, text, false)
            }
            Error::Kube(e) => kube_error::to_core_error(e),
        }
    }
}

/// The operation named in "Cluster is running incompatible operation operation-…".
fn running_operation(message: &str) -> Option<String> {
    message
        .split_whitespace()
        .find(|w| w.starts_with("operation-"))
        .map(|w| w.trim_end_matches(['.', ',', ';']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, message: &str, http: u16) -> Error {
        Error::Api {
            call: "updateMaster",
            kind: "cluster",
            name: "demo".into(),
            code: code.into(),
            message: message.into(),
            http: Some(http),
            source: "test".into(),
        }
    }

    #[test]
    fn every_canonical_code_maps_to_its_category() {
        let cases = [
            (
                "FAILED_PRECONDITION",
                "Cluster is running incompatible operation operation-17.",
                400,
                ErrorCategory::Busy,
            ),
            (
                "FAILED_PRECONDITION",
                "Node pool has no upgrade to roll back.",
                400,
                ErrorCategory::Precondition,
            ),
            (
                "INVALID_ARGUMENT",
                "bad version",
                400,
                ErrorCategory::InvalidInput,
            ),
            ("NOT_FOUND", "no cluster", 404, ErrorCategory::NotFound),
            (
                "PERMISSION_DENIED",
                "no",
                403,
                ErrorCategory::PermissionDenied,
            ),
            (
                "UNAUTHENTICATED",
                "no",
                401,
                ErrorCategory::PermissionDenied,
            ),
            ("UNAVAILABLE", "later", 503, ErrorCategory::Provider),
            ("RESOURCE_EXHAUSTED", "quota", 429, ErrorCategory::Provider),
            ("INTERNAL", "oops", 500, ErrorCategory::Provider),
        ];
        for (code, message, http, category) in cases {
            let e = api(code, message, http);
            assert_eq!(e.category(), category, "{code}");
            let core: kup_core::Error = e.into();
            assert_eq!(core.category(), category, "{code}");
            let retryable = matches!(code, "UNAVAILABLE" | "RESOURCE_EXHAUSTED")
                || category == ErrorCategory::Busy;
            assert_eq!(core.is_retryable(), retryable, "{code}: {core}");
        }
    }

    #[test]
    fn busy_names_the_running_operation() {
        let core: kup_core::Error = api(
            "FAILED_PRECONDITION",
            "Cluster is running incompatible operation operation-1764-abc.",
            400,
        )
        .into();
        match core {
            kup_core::Error::Busy { operation, .. } => {
                assert_eq!(operation.as_deref(), Some("operation-1764-abc"));
            }
            other => panic!("{other:?}"),
        }
    }
}
