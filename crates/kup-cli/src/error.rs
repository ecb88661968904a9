//! The CLI's error type and its exit codes.

use kup_core::ErrorCategory;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the operation failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad flags or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: pre-flight found blockers.
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
    /// A domain error.
    #[error(transparent)]
    Core(#[from] kup_core::Error),
    /// An engine error.
    #[error(transparent)]
    Engine(#[from] kup_engine::Error),
    /// A Kubernetes-side error.
    #[error(transparent)]
    Kube(#[from] kup_kube::Error),
    /// The EKS provider.
    #[error(transparent)]
    Eks(#[from] kup_eks::Error),
    /// The kubeadm provider.
    #[error(transparent)]
    Kubeadm(#[from] kup_kubeadm::Error),
    /// The simulator and mocks of `kup demo`.
    #[error("demo: {0}")]
    Mocks(#[from] kup_mocks::Error),
    /// A kubeconfig or client problem.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// Reading or writing a file.
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

impl CliError {
    /// A usage error.
    pub fn usage(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Usage {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        let category = match self {
            Self::Usage { .. } => return EXIT_USAGE,
            Self::Blocked(_) => return EXIT_BLOCKED,
            Self::Declined => return EXIT_FAILED,
            Self::Engine(kup_engine::Error::PreflightBlocked { .. }) => return EXIT_BLOCKED,
            Self::Kubeconfig(_) => return EXIT_USAGE,
            Self::Core(e) => e.category(),
            Self::Engine(e) => e.category(),
            Self::Eks(kup_eks::Error::Config { .. }) => return EXIT_USAGE,
            Self::Eks(_) | Self::Kubeadm(_) | Self::Kube(_) | Self::Mocks(_) => {
                return EXIT_FAILED;
            }
            Self::Io { .. } | Self::Failed(_) => return EXIT_FAILED,
        };
        match category {
            ErrorCategory::InvalidInput => EXIT_USAGE,
            ErrorCategory::Busy => EXIT_BUSY,
            _ => EXIT_FAILED,
        }
    }
}

/// Result alias.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
