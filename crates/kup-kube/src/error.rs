//! The error type of kup-kube.

/// A specialised `Result` for kup-kube.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from Kubernetes-facing operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Kubernetes API answered with an error or could not be reached.
    #[error("Kubernetes API error: {0}")]
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
}

impl From<Error> for kup_core::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Kube(e) => kup_core::Error::Provider {
                provider: kup_core::ProviderKind::Other("kubernetes".into()),
                code: None,
                message: e.to_string(),
                retryable: false,
            },
            Error::InvalidInput { field, message } => {
                kup_core::Error::InvalidInput { field, message }
            }
            Error::Timeout { what, after } => kup_core::Error::Timeout { what, after },
            Error::ReadFile { path, source } => kup_core::Error::InvalidInput {
                field: path.display().to_string(),
                message: source.to_string(),
            },
        }
    }
}
