//! The crate's error type.

use std::time::Duration;

/// Result alias used across `kup-mocks`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while setting up or driving a mock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario (builder or YAML file) is malformed; `field` names the offending path.
    #[error("scenario: {field}: {message}")]
    Scenario {
        /// Path of the offending field, e.g. `workloads[2].replicas`.
        field: String,
        /// What is wrong and which values are accepted.
        message: String,
    },
    /// An argument to a control call is invalid.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The argument or field at fault.
        field: String,
        /// What is wrong and which values are accepted.
        message: String,
    },
    /// A control call named an object that does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// Kind or resource of the missing object.
        kind: String,
        /// Name (`namespace/name` for namespaced objects).
        name: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating certificates or configuring TLS failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Building a kube client failed.
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    /// A wait helper gave up.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// How long was waited.
        after: Duration,
        /// What was waited for.
        what: String,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn scenario(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Scenario {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind: kind.into(),
            name: name.into(),
        }
    }
}
