//! The one error type of kup's domain, grouped into categories a caller can act on.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::operation::ProviderErrorDetail;
use crate::provider::ProviderKind;

/// A specialised `Result` for kup.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The underlying error an [`Error::Provider`] keeps as its source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a caller can do about an [`Error`]: the category decides exit codes, retries and
/// whether a run may be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCategory {
    /// The input (a flag, a config field, a version) is wrong; fix it and run again.
    InvalidInput,
    /// The thing named does not exist.
    NotFound,
    /// The cluster is not in a state where the step may run (pre-flight blocker, failed
    /// verification, skew); change the cluster or override explicitly.
    Precondition,
    /// Another operation holds the cluster; wait and retry.
    Busy,
    /// A concurrent writer changed the object; re-read and retry.
    Conflict,
    /// A deadline passed.
    Timeout,
    /// The credentials lack a permission.
    PermissionDenied,
    /// The provider cannot do this at all.
    NotSupported,
    /// A provider operation ran and failed.
    OperationFailed,
    /// The provider or API answered with an error not covered above.
    Provider,
    /// The run was cancelled by the caller.
    Cancelled,
}

/// Why a plan cannot be made; each says what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The target is older than the control plane.
    #[error(
        "cannot downgrade the control plane from {current} to {target}: Kubernetes does not \
         support control-plane downgrades; choose a target of {current} or newer (rollback is a \
         restore, see `kup restore` for kubeadm)"
    )]
    Downgrade {
        /// The control plane's version.
        current: String,
        /// The requested target.
        target: String,
    },
    /// The provider does not offer the target (or an intermediate minor).
    #[error(
        "version {version} is not offered by {provider}{needed_for}; offered: {offered}. \
         Choose one of the offered versions"
    )]
    NotOffered {
        /// The provider.
        provider: ProviderKind,
        /// The version that is missing.
        version: String,
        /// Context such as " (needed as an intermediate hop towards 1.33)".
        needed_for: String,
        /// The offered versions, comma separated.
        offered: String,
    },
    /// A pool's kubelets are newer than the control plane.
    #[error(
        "node pool {pool} runs {pool_version}, newer than the control plane {control_plane}; \
         the skew policy forbids kubelets newer than the API server. Upgrade the control plane \
         to {pool_version} first or replace the pool"
    )]
    PoolNewerThanControlPlane {
        /// The pool.
        pool: String,
        /// Its kubelet version.
        pool_version: String,
        /// The control-plane version.
        control_plane: String,
    },
    /// The pool is already out of skew before anything moves.
    #[error(
        "node pool {pool} at {pool_version} is already out of skew with the control plane \
         {control_plane} ({rule}); upgrade the pool to {control_plane} before planning further"
    )]
    PoolOutOfSkew {
        /// The pool.
        pool: String,
        /// Its kubelet version.
        pool_version: String,
        /// The control-plane version.
        control_plane: String,
        /// The violated rule.
        rule: String,
    },
    /// A pool named in the request does not exist.
    #[error("unknown node pool {pool:?}; the cluster has: {known}")]
    UnknownPool {
        /// The requested name.
        pool: String,
        /// The existing pools, comma separated.
        known: String,
    },
    /// The provider cannot perform a step the plan needs.
    #[error("{provider} cannot {operation}, which this plan needs; {instead}")]
    ProviderCannot {
        /// The provider.
        provider: ProviderKind,
        /// The operation.
        operation: String,
        /// What to do instead.
        instead: String,
    },
    /// The request excludes pools that must move to keep the cluster in skew.
    #[error(
        "node pool {pool} at {pool_version} would fall out of skew when the control plane \
         reaches {control_plane} ({rule}), but it is excluded from this upgrade; include it \
         (--pools) or choose a target of {max_target} or older"
    )]
    ExcludedPoolBlocks {
        /// The excluded pool.
        pool: String,
        /// Its version.
        pool_version: String,
        /// The hop that would break skew.
        control_plane: String,
        /// The skew rule.
        rule: String,
        /// The newest target that keeps the pool in skew.
        max_target: String,
    },
}

/// The error type of kup's domain and of every [`crate::UpgradeProvider`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A version string could not be parsed.
    #[error("invalid Kubernetes version \"{input}\": expected {expected}")]
    InvalidVersion {
        /// The input, verbatim.
        input: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// An input field is wrong.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field, flag or config key.
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The plan cannot be made.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Something named does not exist.
    #[error("{kind} {name:?} not found{}", scope.as_ref().map(|s| format!(" in {s}")).unwrap_or_default())]
    NotFound {
        /// What kind of thing (cluster, node pool, node, add-on, operation).
        kind: String,
        /// Its name.
        name: String,
        /// Where it was looked for.
        scope: Option<String>,
    },
    /// The cluster is not in a state where this may run.
    #[error("precondition failed: {message}")]
    Precondition {
        /// What is wrong and how to get past it.
        message: String,
    },
    /// Another operation is running on the cluster.
    #[error("cluster is busy: {message}")]
    Busy {
        /// What holds it.
        message: String,
        /// The running operation's id, when the provider says.
        operation: Option<String>,
    },
    /// A concurrent writer won.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },
    /// A deadline passed.
    #[error("timed out after {}: {what}", HumanDuration(*after))]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
    },
    /// A permission is missing.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// The provider's message (never credentials).
        message: String,
    },
    /// The provider cannot do this operation.
    #[error("{provider} does not support {operation}")]
    NotSupported {
        /// The provider.
        provider: ProviderKind,
        /// The operation.
        operation: String,
    },
    /// A provider operation ended in failure or cancellation.
    #[error("{operation} {}: {}", if *cancelled { "was cancelled" } else { "failed" }, DetailList(errors))]
    OperationFailed {
        /// The operation (kind and id).
        operation: String,
        /// True when it was cancelled rather than failed.
        cancelled: bool,
        /// The provider's own error list, every entry kept.
        errors: Vec<ProviderErrorDetail>,
    },
    /// Any other provider or API error.
    #[error("{provider} error{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Provider {
        /// The provider.
        provider: ProviderKind,
        /// The provider's error code, if any.
        code: Option<String>,
        /// The message (never credentials).
        message: String,
        /// Whether retrying the same call may succeed (throttling, 5xx, connection reset).
        retryable: bool,
        /// The SDK's, client's or transport's own error, kept so that
        /// [`std::error::Error::source`] walks down to the root cause.
        #[source]
        source: Option<BoxError>,
    },
    /// The run was cancelled.
    #[error("cancelled: {reason}")]
    Cancelled {
        /// Why (signal, token, user).
        reason: String,
    },
}

impl Error {
    /// The category a caller can act on.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::InvalidVersion { .. } | Self::InvalidInput { .. } => ErrorCategory::InvalidInput,
            Self::Plan(PlanError::UnknownPool { .. }) => ErrorCategory::InvalidInput,
            Self::Plan(PlanError::ProviderCannot { .. }) => ErrorCategory::NotSupported,
            Self::Plan(_) | Self::Precondition { .. } => ErrorCategory::Precondition,
            Self::NotFound { .. } => ErrorCategory::NotFound,
            Self::Busy { .. } => ErrorCategory::Busy,
            Self::Conflict { .. } => ErrorCategory::Conflict,
            Self::Timeout { .. } => ErrorCategory::Timeout,
            Self::PermissionDenied { .. } => ErrorCategory::PermissionDenied,
            Self::NotSupported { .. } => ErrorCategory::NotSupported,
            Self::OperationFailed { .. } => ErrorCategory::OperationFailed,
            Self::Provider { .. } => ErrorCategory::Provider,
            Self::Cancelled { .. } => ErrorCategory::Cancelled,
        }
    }

    /// Whether repeating the same call later may succeed without any change by the user.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Provider { retryable, .. } => *retryable,
            Self::Busy { .. } | Self::Conflict { .. } | Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::NotSupported`].
    pub fn not_supported(provider: ProviderKind, operation: impl Into<String>) -> Self {
        Self::NotSupported {
            provider,
            operation: operation.into(),
        }
    }

    /// Shorthand for [`Error::Provider`] without a source (add one with
    /// [`Error::with_source`]).
    pub fn provider(
        provider: ProviderKind,
        code: Option<String>,
        message: impl Into<String>,
        retryable: bool,
    ) -> Self {
        Self::Provider {
            provider,
            code,
            message: message.into(),
            retryable,
            source: None,
        }
    }

    /// Keeps `cause` as the source of an [`Error::Provider`]; other variants are returned
    /// unchanged (their messages already say what happened).
    pub fn with_source(self, cause: impl Into<BoxError>) -> Self {
        match self {
            Self::Provider {
                provider,
                code,
                message,
                retryable,
                ..
            } => Self::Provider {
                provider,
                code,
                message,
                retryable,
                source: Some(cause.into()),
            },
            other => other,
        }
    }

    /// Shorthand for [`Error::Precondition`].
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::Precondition {
            message: message.into(),
        }
    }
}

/// Formats a duration as `90s`, `15m`, `1h30m` for messages.
pub(crate) struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        if total == 0 {
            return write!(f, "{}ms", self.0.as_millis());
        }
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || total == 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

struct DetailList<'a>(&'a [ProviderErrorDetail]);

impl fmt::Display for DetailList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the provider gave no error details");
        }
        for (i, detail) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_failure_lists_every_error() {
        let err = Error::OperationFailed {
            operation: "node pool ng-1 update 7d1c".into(),
            cancelled: false,
            errors: vec![
                ProviderErrorDetail {
                    code: "PodEvictionFailure".into(),
                    message: "Reached max retries while trying to evict pods".into(),
                    resource_ids: vec!["i-0abc".into(), "i-0def".into()],
                },
                ProviderErrorDetail {
                    code: "NodeCreationFailure".into(),
                    message: "Instances failed to join".into(),
                    resource_ids: vec![],
                },
            ],
        };
        let text = err.to_string();
        assert!(text.contains("failed"));
        assert!(text.contains("PodEvictionFailure"));
        assert!(text.contains("i-0abc, i-0def"));
        assert!(text.contains("NodeCreationFailure: Instances failed to join"));
        assert_eq!(err.category(), ErrorCategory::OperationFailed);
        assert!(!err.is_retryable());
    }

    #[test]
    fn categories_and_retryability() {
        let busy = Error::Busy {
            message: "update 1 in progress".into(),
            operation: Some("1".into()),
        };
        assert_eq!(busy.category(), ErrorCategory::Busy);
        assert!(busy.is_retryable());
        let throttled = Error::Provider {
            provider: ProviderKind::Eks,
            code: Some("ThrottlingException".into()),
            message: "Rate exceeded".into(),
            retryable: true,
            source: None,
        };
        assert!(throttled.is_retryable());
        assert_eq!(
            throttled.to_string(),
            "EKS error ThrottlingException: Rate exceeded"
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let wrapped = Error::provider(ProviderKind::Kubeadm, None, "ssh", true).with_source(io);
        let source = std::error::Error::source(&wrapped).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("reset by peer"));
        let unknown = Error::Plan(PlanError::UnknownPool {
            pool: "gpu".into(),
            known: "a, b".into(),
        });
        assert_eq!(unknown.category(), ErrorCategory::InvalidInput);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(HumanDuration(Duration::from_secs(3600)).to_string(), "1h");
        assert_eq!(
            HumanDuration(Duration::from_millis(250)).to_string(),
            "250ms"
        );
    }
}
