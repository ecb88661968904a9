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
        }
    }
}
