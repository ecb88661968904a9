//! Long-running provider operations as values the engine can poll, journal and re-attach to.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::provider::ProviderKind;

/// What an operation changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OperationTarget {
    /// The control plane.
    ControlPlane,
    /// A node pool.
    NodePool {
        /// The pool's name.
        pool: String,
    },
    /// A single node that kup rolls itself.
    Node {
        /// The node's name.
        node: String,
    },
    /// An add-on.
    Addon {
        /// The add-on's name.
        addon: String,
    },
    /// A backup (etcd snapshot).
    Backup,
    /// A restore from a backup.
    Restore,
}

impl fmt::Display for OperationTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ControlPlane => f.write_str("control plane"),
            Self::NodePool { pool } => write!(f, "node pool {pool}"),
            Self::Node { node } => write!(f, "node {node}"),
            Self::Addon { addon } => write!(f, "add-on {addon}"),
            Self::Backup => f.write_str("backup"),
            Self::Restore => f.write_str("restore"),
        }
    }
}

/// A provider operation in flight: everything needed to poll it again after a restart.
///
/// Providers put what they need to find the operation again in `handle` (an update id, an
/// operation name, an `Azure-AsyncOperation` URL); the engine stores the whole value in its
/// journal and hands it back to [`crate::UpgradeProvider::poll`] when it resumes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The provider that started it.
    pub provider: ProviderKind,
    /// The provider's id for it.
    pub id: String,
    /// What it changes.
    pub target: OperationTarget,
    /// The version it moves the target to, when it moves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// When it started, as the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    /// Provider-specific data needed to poll it (never credentials).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handle: BTreeMap<String, String>,
}

impl Operation {
    /// A new operation record.
    pub fn new(provider: ProviderKind, id: impl Into<String>, target: OperationTarget) -> Self {
        Self {
            provider,
            id: id.into(),
            target,
            to_version: None,
            started_at: None,
            handle: BTreeMap::new(),
        }
    }

    /// Sets the version the operation moves to.
    pub fn with_version(mut self, version: impl ToString) -> Self {
        self.to_version = Some(version.to_string());
        self
    }

    /// Adds provider data needed to poll it.
    pub fn with_handle(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.handle.insert(key.into(), value.into());
        self
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} operation {} on {}",
            self.provider, self.id, self.target
        )
    }
}

/// One entry of a provider's error list, kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderErrorDetail {
    /// The provider's code (`PodEvictionFailure`, `OperationNotAllowed`, a gRPC code…).
    pub code: String,
    /// The provider's message.
    pub message: String,
    /// The resources concerned (instance ids, node names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_ids: Vec<String>,
}

impl fmt::Display for ProviderErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.resource_ids.is_empty() {
            write!(f, " (resources: {})", self.resource_ids.join(", "))?;
        }
        Ok(())
    }
}

/// Where an operation stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OperationStatus {
    /// Accepted, not started.
    Pending,
    /// Running.
    Running {
        /// Fraction done in `0.0..=1.0`, when the provider reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<f32>,
        /// The provider's status message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Finished successfully.
    Succeeded,
    /// Finished with errors.
    Failed {
        /// The provider's error list.
        errors: Vec<ProviderErrorDetail>,
    },
    /// Cancelled before it finished.
    Cancelled {
        /// The provider's error list, if it gave one.
        errors: Vec<ProviderErrorDetail>,
    },
}

impl OperationStatus {
    /// True once the operation will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed { .. } | Self::Cancelled { .. }
        )
    }

    /// Turns a terminal failure into the matching [`crate::Error`]; other states give `Ok`.
    pub fn into_result(self, operation: &Operation) -> crate::Result<Self> {
        match self {
            Self::Failed { errors } => Err(crate::Error::OperationFailed {
                operation: operation.to_string(),
                cancelled: false,
                errors,
            }),
            Self::Cancelled { errors } => Err(crate::Error::OperationFailed {
                operation: operation.to_string(),
                cancelled: true,
                errors,
            }),
            other => Ok(other),
        }
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending => f.write_str("pending"),
            Self::Running { progress, message } => {
                f.write_str("running")?;
                if let Some(p) = progress {
                    write!(f, " {:.0}%", p * 100.0)?;
                }
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            Self::Succeeded => f.write_str("succeeded"),
            Self::Failed { errors } => write!(f, "failed ({} errors)", errors.len()),
            Self::Cancelled { .. } => f.write_str("cancelled"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn operation_round_trips_through_json_for_the_journal() {
        let op = Operation::new(
            ProviderKind::Aks,
            "0b1c",
            OperationTarget::NodePool { pool: "np1".into() },
        )
        .with_version("1.31.2")
        .with_handle("asyncOperationUrl", "https://management.azure.com/x");
        let json = serde_json::to_string(&op).unwrap();
        let back: Operation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, op);
        assert!(json.contains("\"kind\":\"node_pool\""));
    }

    #[test]
    fn failed_status_becomes_error_with_all_details() {
        let op = Operation::new(ProviderKind::Eks, "u1", OperationTarget::ControlPlane);
        let status = OperationStatus::Failed {
            errors: vec![ProviderErrorDetail {
                code: "ClusterUnreachable".into(),
                message: "unreachable".into(),
                resource_ids: vec![],
            }],
        };
        assert!(status.is_terminal());
        let err = status.into_result(&op).unwrap_err();
        assert!(err.to_string().contains("ClusterUnreachable"));
        let running = OperationStatus::Running {
            progress: Some(0.5),
            message: None,
        };
        assert!(!running.is_terminal());
        assert_eq!(running.clone().into_result(&op).unwrap(), running);
    }
}
