//! The error type of kup-kubeadm, and its mapping into [`kup_core::Error`].

use std::path::PathBuf;
use std::time::Duration;

use kup_core::{ErrorCategory, ProviderKind};
use kup_kube::kube_error;

/// A specialised `Result` for kup-kubeadm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while driving kubeadm nodes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting or inventory field is wrong.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field (`control_plane[1].port`, `settings.etcd.endpoint`…).
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The inventory file could not be read or parsed.
    #[error("cannot read inventory {path}: {message}")]
    InventoryFile {
        /// The file.
        path: PathBuf,
        /// The reader's or parser's message (with line and column when it gave them).
        message: String,
    },
    /// The SSH connection to a node failed.
    #[error("cannot reach node {node} over SSH ({destination}): {message}")]
    Connect {
        /// The Kubernetes node name.
        node: String,
        /// The SSH destination.
        destination: String,
        /// The ssh client's message.
        message: String,
    },
    /// A command could not be started or its output not collected.
    #[error("cannot run `{command}` on {node}: {message}")]
    Spawn {
        /// The node.
        node: String,
        /// The command, shell-escaped.
        command: String,
        /// Why.
        message: String,
    },
    /// A command ran and exited with a failure.
    #[error(
        "`{command}` failed on {node} ({}){}",
        status.map_or_else(|| "killed by a signal".to_string(), |s| format!("exit status {s}")),
        if stderr.trim().is_empty() { String::new() } else { format!(": {}", stderr.trim()) }
    )]
    CommandFailed {
        /// The node.
        node: String,
        /// The command, shell-escaped.
        command: String,
        /// The exit status, `None` when a signal ended it.
        status: Option<i32>,
        /// The tail of its standard error.
        stderr: String,
    },
    /// A command did not finish in time.
    #[error("`{command}` on {node} did not finish within {}s", after.as_secs())]
    CommandTimeout {
        /// The node.
        node: String,
        /// The command, shell-escaped.
        command: String,
        /// The limit.
        after: Duration,
    },
    /// Copying a file off or onto a node failed.
    #[error("cannot copy {remote} on {node} to/from {local}: {message}")]
    Copy {
        /// The node.
        node: String,
        /// The path on the node.
        remote: String,
        /// The local path.
        local: PathBuf,
        /// Why.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An HTTP request (release markers, package repositories) failed.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        message: String,
        /// Whether retrying may help (connection errors, 5xx).
        retryable: bool,
    },
    /// A node or tool answered something kup cannot read.
    #[error("unexpected output from {what} on {node}: {message}")]
    UnexpectedOutput {
        /// The node.
        node: String,
        /// The command or file.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// An etcd snapshot failed verification; the control plane is not touched.
    #[error("etcd snapshot {path} failed verification: {message}")]
    SnapshotVerification {
        /// The snapshot file.
        path: PathBuf,
        /// What did not match.
        message: String,
    },
    /// The cluster is not in a state where the step may run.
    #[error("{0}")]
    Precondition(String),
    /// A node did not reach the expected state in time.
    #[error("timed out after {}s waiting for {what}", after.as_secs())]
    WaitTimeout {
        /// What was waited for.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// A restore was asked for without the explicit confirmation.
    #[error(
        "restoring etcd replaces the cluster's entire state with the snapshot taken at {taken_at} \
         (revision {revision}); every change since is lost. Re-run with the confirmation \
         (`RestoreConfirmation::i_understand_all_changes_since_the_snapshot_are_lost`, CLI \
         `--yes-restore-etcd`) to proceed"
    )]
    RestoreNotConfirmed {
        /// When the snapshot was taken.
        taken_at: String,
        /// Its revision.
        revision: String,
    },
    /// A control-plane node's upgrade failed; the snapshot taken before it can be restored.
    #[error(
        "upgrading the {step} of control-plane node {node} failed: {source}. kubeadm puts the \
         node's previous static pod manifests back when `kubeadm upgrade` fails. The verified \
         etcd snapshot {} (revision {}, control plane {}) can be restored on every \
         control-plane node (kup restore / KubeadmProvider::restore_snapshot); fix the cause and \
         re-run to resume instead when the cluster is healthy",
        backup.location,
        backup.revision.map_or_else(|| "unknown".to_string(), |r| r.to_string()),
        backup.control_plane
    )]
    ControlPlaneFailed {
        /// The node.
        node: String,
        /// What was being upgraded (control-plane components, kubelet).
        step: String,
        /// What failed.
        source: Box<Error>,
        /// The snapshot that can be restored.
        backup: Box<kup_core::BackupRecord>,
    },
    /// The Kubernetes API answered with an error.
    #[error("Kubernetes API: {}", kube_error::describe(.0))]
    Kube(#[from] kube::Error),
    /// A drain failed (the node stays cordoned; the error names the pods and budgets).
    #[error(transparent)]
    Drain(#[from] kup_kube::Error),
    /// An error from kup's domain (version parsing, not-supported…).
    #[error(transparent)]
    Core(#[from] kup_core::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The provider code reported for this error in an operation's error list
    /// ([`kup_core::ProviderErrorDetail::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } | Error::InventoryFile { .. } => "InvalidInput",
            Error::Connect { .. } | Error::Spawn { .. } | Error::Copy { .. } => "NodeUnreachable",
            Error::CommandFailed { .. } => "CommandFailed",
            Error::CommandTimeout { .. } => "CommandTimeout",
            Error::Io { .. } => "LocalIo",
            Error::Http { .. } => "Http",
            Error::UnexpectedOutput { .. } => "UnexpectedOutput",
            Error::SnapshotVerification { .. } => "SnapshotVerification",
            Error::Precondition(_) => "Precondition",
            Error::WaitTimeout { .. } => "NodeNotReady",
            Error::RestoreNotConfirmed { .. } => "RestoreNotConfirmed",
            Error::ControlPlaneFailed { .. } => "KubeadmUpgradeFailed",
            Error::Kube(_) => "KubernetesApi",
            Error::Drain(_) => "DrainFailed",
            Error::Core(_) => "Kup",
        }
    }

    /// The error as an operation's error list: for a failed control-plane node, the node's
    /// own error (its code, the node as resource) and the snapshot that can be restored.
    pub fn details(&self) -> Vec<kup_core::ProviderErrorDetail> {
        match self {
            Error::ControlPlaneFailed {
                node,
                step,
                source,
                backup,
            } => vec![
                kup_core::ProviderErrorDetail {
                    code: source.code().into(),
                    message: format!(
                        "upgrading the {step} of control-plane node {node} failed: {source}"
                    ),
                    resource_ids: vec![node.clone()],
                },
                kup_core::ProviderErrorDetail {
                    code: "EtcdSnapshotAvailable".into(),
                    message: format!(
                        "verified etcd snapshot {} (id {}, revision {}, control plane {}) can \
                         be restored",
                        backup.location,
                        backup.id,
                        backup
                            .revision
                            .map_or_else(|| "unknown".to_string(), |r| r.to_string()),
                        backup.control_plane
                    ),
                    resource_ids: vec![backup.location.clone()],
                },
            ],
            other => vec![kup_core::ProviderErrorDetail {
                code: other.code().into(),
                message: other.to_string(),
                resource_ids: Vec::new(),
            }],
        }
    }

    /// The category a caller can act on; the same as that of the [`kup_core::Error`] this
    /// converts into.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::InvalidInput { .. } | Error::InventoryFile { .. } => ErrorCategory::InvalidInput,
            Error::Core(e) => e.category(),
            Error::Drain(e) => e.category(),
            Error::Kube(e) => kube_error::category(e),
            Error::ControlPlaneFailed { .. } => ErrorCategory::OperationFailed,
            Error::Precondition(_)
            | Error::SnapshotVerification { .. }
            | Error::RestoreNotConfirmed { .. } => ErrorCategory::Precondition,
            Error::CommandTimeout { .. } | Error::WaitTimeout { .. } => ErrorCategory::Timeout,
            Error::CommandFailed { .. }
            | Error::Connect { .. }
            | Error::Spawn { .. }
            | Error::Copy { .. }
            | Error::Http { .. }
            | Error::Io { .. }
            | Error::UnexpectedOutput { .. } => ErrorCategory::Provider,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for kup_core::Error {
    fn from(err: Error) -> Self {
        let provider = ProviderKind::Kubeadm;
        match err {
            Error::InvalidInput { field, message } => {
                kup_core::Error::InvalidInput { field, message }
            }
            Error::InventoryFile { path, message } => kup_core::Error::InvalidInput {
                field: format!("inventory ({})", path.display()),
                message,
            },
            Error::Core(e) => e,
            e @ Error::ControlPlaneFailed { .. } => kup_core::Error::OperationFailed {
                operation: match &e {
                    Error::ControlPlaneFailed { node, step, .. } => {
                        format!("kubeadm control-plane upgrade ({step} of {node})")
                    }
                    _ => "kubeadm control-plane upgrade".into(),
                },
                cancelled: false,
                errors: e.details(),
            },
            Error::Drain(e) => e.into(),
            Error::Precondition(message) => kup_core::Error::Precondition { message },
            e @ Error::SnapshotVerification { .. } => kup_core::Error::Precondition {
                message: e.to_string(),
            },
            e @ Error::RestoreNotConfirmed { .. } => kup_core::Error::Precondition {
                message: e.to_string(),
            },
            Error::CommandTimeout {
                node,
                command,
                after,
            } => kup_core::Error::Timeout {
                what: format!("`{command}` on {node}"),
                after,
            },
            Error::WaitTimeout { what, after } => kup_core::Error::Timeout { what, after },
            // Provider errors keep the kubeadm error as their source, so its own sources
            // (the I/O error, the SSH client's message) stay reachable.
            e @ Error::CommandFailed { .. } => kup_core::Error::provider(
                provider,
                Some("CommandFailed".into()),
                e.to_string(),
                false,
            )
            .with_source(e),
            e @ (Error::Connect { .. } | Error::Spawn { .. } | Error::Copy { .. }) => {
                kup_core::Error::provider(
                    provider,
                    Some("NodeUnreachable".into()),
                    e.to_string(),
                    true,
                )
                .with_source(e)
            }
            e @ Error::Http { retryable, .. } => {
                kup_core::Error::provider(provider, Some("Http".into()), e.to_string(), retryable)
                    .with_source(e)
            }
            Error::Kube(e) => kube_error::to_core_error(e),
            e @ (Error::Io { .. } | Error::UnexpectedOutput { .. }) => {
                kup_core::Error::provider(provider, None, e.to_string(), false).with_source(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_commands_name_node_command_status_and_stderr() {
        let err = Error::CommandFailed {
            node: "cp-2".into(),
            command: "kubeadm upgrade node".into(),
            status: Some(1),
            stderr: "[upgrade] FATAL: couldn't upgrade control plane\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "`kubeadm upgrade node` failed on cp-2 (exit status 1): [upgrade] FATAL: couldn't \
             upgrade control plane"
        );
        let core: kup_core::Error = err.into();
        assert_eq!(core.category(), kup_core::ErrorCategory::Provider);
    }

    #[test]
    fn verification_failures_are_preconditions() {
        let err = Error::SnapshotVerification {
            path: "/b/s.db".into(),
            message: "size differs".into(),
        };
        let core: kup_core::Error = err.into();
        assert_eq!(core.category(), kup_core::ErrorCategory::Precondition);
        assert!(core.to_string().contains("size differs"));
    }

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
            for err in [
                Error::Kube(kube_api(code, reason)),
                Error::Drain(kup_kube::Error::Kube(kube_api(code, reason))),
            ] {
                assert_eq!(err.category(), category, "{code}");
                assert_eq!(kup_core::Error::from(err).category(), category, "{code}");
            }
        }
    }

    #[test]
    fn every_variant_converts_into_its_own_category_and_keeps_its_source() {
        let backup = kup_core::BackupRecord {
            id: "b1".into(),
            location: "/b/s.db".into(),
            taken_at: jiff::Timestamp::UNIX_EPOCH,
            size_bytes: 1,
            sha256: "00".into(),
            store_hash: None,
            revision: Some(7),
            total_keys: None,
            control_plane: kup_core::KubeVersion::parse("1.33.2").expect("version"),
        };
        let variants = vec![
            Error::invalid("port", "0"),
            Error::InventoryFile {
                path: "nodes.yaml".into(),
                message: "line 3".into(),
            },
            Error::Connect {
                node: "cp-1".into(),
                destination: "root@cp-1".into(),
                message: "refused".into(),
            },
            Error::Spawn {
                node: "cp-1".into(),
                command: "kubeadm".into(),
                message: "broken pipe".into(),
            },
            Error::CommandTimeout {
                node: "cp-1".into(),
                command: "kubeadm".into(),
                after: Duration::from_secs(5),
            },
            Error::Copy {
                node: "cp-1".into(),
                remote: "/var/s.db".into(),
                local: "/b/s.db".into(),
                message: "no space".into(),
            },
            Error::io("/b/s.db", std::io::Error::other("disk full")),
            Error::Http {
                url: "https://dl.k8s.io/release/stable.txt".into(),
                message: "503".into(),
                retryable: true,
            },
            Error::UnexpectedOutput {
                node: "cp-1".into(),
                what: "kubeadm version".into(),
                message: "empty".into(),
            },
            Error::Precondition("etcd unhealthy".into()),
            Error::WaitTimeout {
                what: "node Ready".into(),
                after: Duration::from_secs(5),
            },
            Error::RestoreNotConfirmed {
                taken_at: "then".into(),
                revision: "7".into(),
            },
            Error::ControlPlaneFailed {
                node: "cp-1".into(),
                step: "control-plane components".into(),
                source: Box::new(Error::Precondition("x".into())),
                backup: Box::new(backup),
            },
            Error::Core(kup_core::Error::Busy {
                message: "m".into(),
                operation: None,
            }),
        ];
        for err in variants {
            let text = err.to_string();
            let category = err.category();
            let had_source = std::error::Error::source(&err).is_some();
            let core = kup_core::Error::from(err);
            assert_eq!(core.category(), category, "{text}");
            if had_source && matches!(core, kup_core::Error::Provider { .. }) {
                let mut depth = 0;
                let mut next = std::error::Error::source(&core);
                while let Some(e) = next {
                    depth += 1;
                    next = e.source();
                }
                assert!(depth >= 2, "{text}: the underlying error is reachable");
            }
        }
    }
}
