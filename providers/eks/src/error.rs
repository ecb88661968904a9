//! The crate's error type, and the one place where EKS's exceptions become kup's errors.

use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use kup_core::{BoxError, ErrorCategory, ProviderKind};
use kup_kube::kube_error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to EKS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or malformed.
    #[error("invalid {field}: {message}")]
    Config {
        /// The setting (`cluster_name`, `region`, `endpoint_url`).
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// EKS answered with an exception.
    #[error("EKS {operation}: {code}: {message}")]
    Api {
        /// The EKS operation (`UpdateClusterVersion`).
        operation: &'static str,
        /// The exception name (`ResourceInUseException`).
        code: String,
        /// EKS's message.
        message: String,
        /// The HTTP status, when a response arrived.
        status: Option<u16>,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// No answer: connection, timeout or dispatch failure.
    #[error("EKS {operation}: {message}")]
    Transport {
        /// The EKS operation.
        operation: &'static str,
        /// What happened.
        message: String,
        /// The SDK's error (its sources say which connection or timeout failed).
        #[source]
        source: BoxError,
    },
    /// No usable AWS credentials: the default chain found none, or the source it found failed.
    /// The message says how to provide them and never includes any credential.
    #[error(
        "no usable AWS credentials for EKS {operation} ({reason}): {}",
        HOW_TO_PROVIDE_CREDENTIALS
    )]
    Credentials {
        /// The EKS operation that needed them.
        operation: &'static str,
        /// Which way the chain failed (none found, the source failed, timed out…).
        reason: &'static str,
    },
    /// EKS answered without a field kup needs.
    #[error("EKS {operation}: response lacks {field}")]
    Response {
        /// The EKS operation.
        operation: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A Kubernetes API call failed (node inventory for pre-flight).
    #[error("kubernetes API: {}", kube_error::describe(.0))]
    Kube(#[from] kube::Error),
}

impl Error {
    /// Maps an SDK error for `operation`.
    pub(crate) fn sdk<E>(operation: &'static str) -> impl FnOnce(SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        move |err| {
            if let Some(reason) = credentials_failure(&err) {
                return Error::Credentials { operation, reason };
            }
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_string);
            let message = match (&code, err.message()) {
                (Some(_), Some(m)) => m.to_string(),
                (Some(_), None) => "no message".to_string(),
                (None, _) => DisplayErrorContext(&err).to_string(),
            };
            match (code, status) {
                (Some(code), _) => Error::Api {
                    operation,
                    code,
                    message,
                    status,
                    source: Box::new(err),
                },
                (None, Some(s)) => Error::Api {
                    operation,
                    code: format!("HTTP {s}"),
                    message,
                    status,
                    source: Box::new(err),
                },
                (None, None) => Error::Transport {
                    operation,
                    message,
                    source: Box::new(err),
                },
            }
        }
    }

    pub(crate) fn missing(operation: &'static str, field: &'static str) -> Error {
        Error::Response { operation, field }
    }

    /// The EKS exception name, when EKS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How an EKS answer is acted on; the one decision behind [`Error::category`] and the
/// conversion into [`kup_core::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapped {
    Busy,
    Invalid,
    Precondition,
    NotFound,
    Denied,
    Conflict,
    Provider { retryable: bool },
}

impl Mapped {
    fn category(self) -> ErrorCategory {
        match self {
            Mapped::Busy => ErrorCategory::Busy,
            Mapped::Invalid => ErrorCategory::InvalidInput,
            Mapped::Precondition => ErrorCategory::Precondition,
            Mapped::NotFound => ErrorCategory::NotFound,
            Mapped::Denied => ErrorCategory::PermissionDenied,
            Mapped::Conflict => ErrorCategory::Conflict,
            Mapped::Provider { .. } => ErrorCategory::Provider,
        }
    }
}

/// EKS's exception names first; an exception kup does not know by name is read by its HTTP
/// status with the same rules as a Kubernetes API answer (403 denied, 404 not found, 429 and
/// 5xx retryable).
fn map_api(code: &str, status: Option<u16>) -> Mapped {
    match code {
        "ResourceInUseException" => Mapped::Busy,
        "InvalidParameterException" | "InvalidRequestException" => Mapped::Invalid,
        "InvalidStateException" => Mapped::Precondition,
        "ResourceNotFoundException" | "NotFoundException" => Mapped::NotFound,
        "AccessDeniedException" | "UnauthorizedException" => Mapped::Denied,
        _ if code.contains("Throttl")
            || code == "TooManyRequestsException"
            || code == "ServerException"
            || code == "ServiceUnavailableException" =>
        {
            Mapped::Provider { retryable: true }
        }
        _ => {
            let class = status.map(kube_error::classify_code);
            match class.map(|c| (c.category, c.retryable)) {
                Some((ErrorCategory::PermissionDenied, _)) => Mapped::Denied,
                Some((ErrorCategory::NotFound, _)) => Mapped::NotFound,
                Some((ErrorCategory::InvalidInput, _)) => Mapped::Invalid,
                Some((ErrorCategory::Conflict, _)) => Mapped::Conflict,
                Some((_, retryable)) => Mapped::Provider { retryable },
                None => Mapped::Provider { retryable: false },
            }
        }
    }
}

impl Error {
    /// The category a caller can act on; the same as that of the [`kup_core::Error`] this
    /// converts into.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Config { .. } | Error::Credentials { .. } => ErrorCategory::InvalidInput,
            Error::Api { code, status, .. } => map_api(code, *status).category(),
            Error::Transport { .. } | Error::Response { .. } => ErrorCategory::Provider,
            Error::Kube(e) => kube_error::category(e),
        }
    }
}

/// How to give kup AWS credentials, in one sentence (no values, only where they come from).
const HOW_TO_PROVIDE_CREDENTIALS: &str = "provide them with AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary ones), a profile (AWS_PROFILE in \
    ~/.aws/config or ~/.aws/credentials), SSO (`aws sso login --profile NAME`), or web identity \
    (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN)";

/// Why the SDK could not sign the request, when it was for lack of usable credentials.
fn credentials_failure<E>(err: &SdkError<E>) -> Option<&'static str>
where
    E: std::error::Error + 'static,
{
    use aws_credential_types::provider::error::CredentialsError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::CredentialsNotLoaded(_) => "none found",
                CredentialsError::ProviderTimedOut(_) => "the credential source timed out",
                CredentialsError::InvalidConfiguration(_) => {
                    "the credential configuration is invalid"
                }
                CredentialsError::ProviderError(_) => "the credential source failed",
                _ => "the credential source failed",
            });
        }
        cause = e.source();
    }
    None
}

impl From<Error> for kup_core::Error {
    fn from(e: Error) -> Self {
        let text = e.to_string();
        match e {
            Error::Config { field, message } => kup_core::Error::invalid_input(field, message),
            Error::Credentials { operation, reason } => kup_core::Error::invalid_input(
                "AWS credentials",
                format!("none usable for EKS {operation} ({reason}): {HOW_TO_PROVIDE_CREDENTIALS}"),
            ),
            Error::Api {
                code,
                message,
                status,
                operation,
                source,
            } => match map_api(&code, status) {
                Mapped::Busy => kup_core::Error::Busy {
                    message: format!("{operation}: {message}"),
                    operation: None,
                },
                Mapped::Invalid => kup_core::Error::invalid_input(operation, message),
                Mapped::Precondition => kup_core::Error::precondition(format!(
                    "{operation}: {message} (EKS upgrade insights report errors; fix them, or \
                     force the control-plane update)"
                )),
                Mapped::NotFound => kup_core::Error::NotFound {
                    kind: "EKS resource".into(),
                    name: message,
                    scope: Some(operation.into()),
                },
                Mapped::Denied => kup_core::Error::PermissionDenied {
                    message: format!("{operation}: {message}"),
                },
                Mapped::Conflict => kup_core::Error::Conflict {
                    message: format!("{operation}: {message}"),
                },
                Mapped::Provider { retryable } => kup_core::Error::provider(
                    ProviderKind::Eks,
                    Some(code),
                    format!("{operation}: {message}"),
                    retryable,
                )
                .with_source(source),
            },
            Error::Transport { source, .. } => {
                kup_core::Error::provider(ProviderKind::Eks, None, text, true).with_source(source)
            }
            e @ Error::Response { .. } => {
                kup_core::Error::provider(ProviderKind::Eks, None, text, false).with_source(e)
            }
            Error::Kube(e) => kube_error::to_core_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;

    use super::*;

    fn kube_api(code: u16, reason: &str) -> kube::Error {
        let mut status = kube::core::Status::failure("answer", reason);
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
    fn kubernetes_answers_keep_the_classifiers_category() {
        for (code, reason, category) in SITUATIONS {
            let err = Error::Kube(kube_api(code, reason));
            assert_eq!(err.category(), category, "{code}");
            let core = kup_core::Error::from(err);
            assert_eq!(core.category(), category, "{code}");
            assert_eq!(
                core.is_retryable(),
                matches!(code, 409 | 429 | 503),
                "{code}"
            );
        }
    }

    fn api(code: &str, status: Option<u16>) -> Error {
        Error::Api {
            operation: "UpdateClusterVersion",
            code: code.into(),
            message: "EKS says".into(),
            status,
            source: Box::new(std::io::Error::other("sdk")),
        }
    }

    #[test]
    fn eks_answers_map_by_name_then_by_status() {
        let cases = [
            ("ResourceInUseException", Some(409), ErrorCategory::Busy),
            (
                "InvalidParameterException",
                Some(400),
                ErrorCategory::InvalidInput,
            ),
            (
                "InvalidRequestException",
                Some(400),
                ErrorCategory::InvalidInput,
            ),
            (
                "InvalidStateException",
                Some(400),
                ErrorCategory::Precondition,
            ),
            (
                "ResourceNotFoundException",
                Some(404),
                ErrorCategory::NotFound,
            ),
            (
                "AccessDeniedException",
                Some(403),
                ErrorCategory::PermissionDenied,
            ),
            ("ThrottlingException", Some(429), ErrorCategory::Provider),
            ("ServerException", Some(500), ErrorCategory::Provider),
            // Unknown names: the status decides, as for a Kubernetes answer.
            ("HTTP 403", Some(403), ErrorCategory::PermissionDenied),
            ("HTTP 404", Some(404), ErrorCategory::NotFound),
            ("HTTP 409", Some(409), ErrorCategory::Conflict),
            ("HTTP 429", Some(429), ErrorCategory::Provider),
            ("HTTP 503", Some(503), ErrorCategory::Provider),
            ("SomethingNewException", None, ErrorCategory::Provider),
        ];
        for (code, status, category) in cases {
            let err = api(code, status);
            assert_eq!(err.category(), category, "{code}");
            assert_eq!(kup_core::Error::from(err).category(), category, "{code}");
        }
        for retryable in [
            "ThrottlingException",
            "ServerException",
            "HTTP 429",
            "HTTP 503",
        ] {
            let status = retryable.strip_prefix("HTTP ").and_then(|s| s.parse().ok());
            assert!(
                kup_core::Error::from(api(retryable, status)).is_retryable(),
                "{retryable}"
            );
        }
        assert!(!kup_core::Error::from(api("SomethingNewException", None)).is_retryable());
    }

    #[test]
    fn sdk_failures_keep_their_source() {
        let sdk: SdkError<DescribeClusterError> = SdkError::construction_failure(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"),
        );
        let err = Error::sdk("DescribeCluster")(sdk);
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert_eq!(err.category(), ErrorCategory::Provider);
        assert!(err.source().is_some());
        let core = kup_core::Error::from(err);
        assert!(core.is_retryable());
        let mut chain = Vec::new();
        let mut next = core.source();
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        assert!(
            chain.iter().any(|e| e.contains("connection refused")),
            "{chain:?}"
        );
        for err in [
            Error::Config {
                field: "region",
                message: "empty".into(),
            },
            Error::missing("DescribeCluster", "cluster.version"),
        ] {
            let category = err.category();
            assert_eq!(kup_core::Error::from(err).category(), category);
        }
    }
}
