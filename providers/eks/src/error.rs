//! The crate's error type, and the one place where EKS's exceptions become kup's errors.

use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use kup_core::ProviderKind;

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
    },
    /// No answer: connection, timeout or dispatch failure.
    #[error("EKS {operation}: {message}")]
    Transport {
        /// The EKS operation.
        operation: &'static str,
        /// What happened.
        message: String,
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
    #[error("kubernetes API: {0}")]
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
            match err.code() {
                Some(code) => Error::Api {
                    operation,
                    code: code.to_string(),
                    message: err.message().unwrap_or("no message").to_string(),
                    status,
                },
                None if status.is_some() => Error::Api {
                    operation,
                    code: format!("HTTP {}", status.unwrap_or_default()),
                    message: DisplayErrorContext(&err).to_string(),
                    status,
                },
                None => Error::Transport {
                    operation,
                    message: DisplayErrorContext(&err).to_string(),
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
            } => match code.as_str() {
                "ResourceInUseException" => kup_core::Error::Busy {
                    message: format!("{operation}: {message}"),
                    operation: None,
                },
                "InvalidParameterException" | "InvalidRequestException" => {
                    kup_core::Error::invalid_input(operation, message)
                }
                "InvalidStateException" => kup_core::Error::precondition(format!(
                    "{operation}: {message} (EKS upgrade insights report errors; fix them, or \
                     force the control-plane update)"
                )),
                "ResourceNotFoundException" | "NotFoundException" => kup_core::Error::NotFound {
                    kind: "EKS resource".into(),
                    name: message,
                    scope: Some(operation.into()),
                },
                "AccessDeniedException" | "UnauthorizedException" => {
                    kup_core::Error::PermissionDenied {
                        message: format!("{operation}: {message}"),
                    }
                }
                _ => kup_core::Error::Provider {
                    provider: ProviderKind::Eks,
                    retryable: code.contains("Throttl")
                        || code == "TooManyRequestsException"
                        || code == "ServerException"
                        || code == "ServiceUnavailableException"
                        || status.is_some_and(|s| s == 429 || s >= 500),
                    code: Some(code),
                    message: format!("{operation}: {message}"),
                },
            },
            Error::Transport { .. } => kup_core::Error::Provider {
                provider: ProviderKind::Eks,
                code: None,
                message: text,
                retryable: true,
            },
            Error::Response { .. } | Error::Kube(_) => kup_core::Error::Provider {
                provider: ProviderKind::Eks,
                code: None,
                message: text,
                retryable: false,
            },
        }
    }
}
