//! The CLI's error type, and the one place where errors become exit codes.
//!
//! Every error has a [`kup_core::ErrorCategory`] (the crates' own `category()`, or the category
//! of the [`kup_core::Error`] a provider's error becomes); [`CliError::exit_code`] maps
//! categories to the codes documented in docs/cli-output.md.

use kup_core::ErrorCategory;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the operation failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad flags or configuration; nothing was changed.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: pre-flight found blockers; nothing was changed.
pub const EXIT_BLOCKED: u8 = 3;
/// Exit code: the cluster is busy (another run or provider operation).
pub const EXIT_BUSY: u8 = 4;

/// Everything that can end a kup command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag, environment variable or config entry is wrong.
    #[error("invalid {field}: {message}")]
    Usage {
        /// The flag or key.
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// Pre-flight found blockers; nothing was changed.
    #[error("pre-flight found {0} blocker(s); nothing was changed")]
    Blocked(usize),
    /// The user declined the confirmation.
    #[error("aborted: nothing was changed")]
    Declined,
    /// A domain or provider error.
    #[error(transparent)]
    Core(#[from] kup_core::Error),
    /// An engine error (Kubernetes-side errors arrive wrapped in it).
    #[error(transparent)]
    Engine(#[from] kup_engine::Error),
    /// A fleet's spec, journal or controls.
    #[error(transparent)]
    Fleet(#[from] kup_fleet::Error),
    /// A provider crate's own error, with the category of the [`kup_core::Error`] it maps to.
    #[error("{message}")]
    Provider {
        /// Its category.
        category: ErrorCategory,
        /// Its message.
        message: String,
    },
    /// The simulator and mocks of `kup demo`.
    #[cfg(feature = "demo")]
    #[error("demo: {0}")]
    Mocks(#[from] kup_mocks::Error),
    /// A kubeconfig problem.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The API server's certificate is not trusted by the CA kup used.
    #[error(
        "TLS: the certificate of the Kubernetes API server {server} is not trusted by {ca} \
         ({reason}); this is a certificate problem, not a network one: fix the kubeconfig's \
         certificate-authority(-data) for this cluster, or choose the right --context"
    )]
    Certificate {
        /// The API server's URL.
        server: String,
        /// Which CA was used (the kubeconfig's, or the system's roots).
        ca: String,
        /// What rustls said.
        reason: String,
    },
    /// A file the flags name cannot be read (it is a usage error: nothing was changed).
    #[error("{field} {path}: {source}")]
    InputFile {
        /// The flag or key naming it.
        field: String,
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The run ended without succeeding.
    #[error("{0}")]
    Failed(String),
}

impl From<kup_kube::Error> for CliError {
    fn from(e: kup_kube::Error) -> Self {
        // The engine's error holds the Kubernetes-side categories.
        Self::Engine(kup_engine::Error::Kube(e))
    }
}

impl From<kup_eks::Error> for CliError {
    fn from(e: kup_eks::Error) -> Self {
        let message = e.to_string();
        let category = kup_core::Error::from(e).category();
        Self::Provider { category, message }
    }
}

#[cfg(feature = "aks")]
impl From<kup_aks::Error> for CliError {
    fn from(e: kup_aks::Error) -> Self {
        let message = e.to_string();
        let category = kup_core::Error::from(e).category();
        Self::Provider { category, message }
    }
}

impl From<kup_kubeadm::Error> for CliError {
    fn from(e: kup_kubeadm::Error) -> Self {
        let message = e.to_string();
        let category = kup_core::Error::from(e).category();
        Self::Provider { category, message }
    }
}

impl CliError {
    /// A usage error.
    pub fn usage(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Usage {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether this is pre-flight refusing the upgrade.
    fn blocked(&self) -> bool {
        matches!(
            self,
            Self::Blocked(_) | Self::Engine(kup_engine::Error::PreflightBlocked { .. })
        )
    }

    /// What kind of error this is.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Usage { .. }
            | Self::Kubeconfig(_)
            | Self::Certificate { .. }
            | Self::InputFile { .. } => ErrorCategory::InvalidInput,
            Self::Blocked(_) => ErrorCategory::Precondition,
            Self::Declined => ErrorCategory::Cancelled,
            Self::Core(e) => e.category(),
            Self::Engine(e) => e.category(),
            Self::Provider { category, .. } => *category,
            Self::Fleet(e) => fleet_category(e),
            #[cfg(feature = "demo")]
            Self::Mocks(_) => ErrorCategory::Provider,
            Self::Io { .. } | Self::Failed(_) => ErrorCategory::OperationFailed,
        }
    }

    /// The process exit code (docs/cli-output.md): the one place errors become codes.
    pub fn exit_code(&self) -> u8 {
        if self.blocked() {
            return EXIT_BLOCKED;
        }
        match self.category() {
            ErrorCategory::InvalidInput => EXIT_USAGE,
            ErrorCategory::Busy => EXIT_BUSY,
            _ => EXIT_FAILED,
        }
    }
}

/// What kind of fleet error `e` is.
fn fleet_category(e: &kup_fleet::Error) -> ErrorCategory {
    match e {
        kup_fleet::Error::InvalidSpec(_)
        | kup_fleet::Error::InvalidRequest { .. }
        | kup_fleet::Error::RunMismatch { .. }
        | kup_fleet::Error::Corrupt { .. } => ErrorCategory::InvalidInput,
        kup_fleet::Error::Engine { source, .. } => source.category(),
        _ => ErrorCategory::OperationFailed,
    }
}

/// Result alias.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
