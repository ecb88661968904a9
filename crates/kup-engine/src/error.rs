//! The error type of kup-engine.

use std::fmt;

use kup_core::{ErrorCategory, Finding};
use kup_kube::kube_error;
use kup_kube::retry::{RetryHint, Retryable};

/// A specialised `Result` for kup-engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a run, a resume or a dry run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A provider or domain error (provider operations, skew, busy answers, timeouts).
    #[error(transparent)]
    Core(#[from] kup_core::Error),
    /// A Kubernetes-facing error (drain, cordon, validation input).
    #[error(transparent)]
    Kube(#[from] kup_kube::Error),
    /// The Kubernetes API answered with an error or could not be reached.
    #[error(
        "Kubernetes API error while {action}: {}",
        kube_error::describe(source)
    )]
    Api {
        /// What the engine was doing.
        action: String,
        /// The client's error.
        source: kube::Error,
    },
    /// An option is wrong; nothing was changed.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The option, field or flag.
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// Pre-flight found blockers the user did not override; nothing was changed.
    #[error(
        "pre-flight found {} blocker(s), nothing was changed: {}; fix them or override their \
         codes explicitly",
        blockers.len(),
        FindingList(blockers)
    )]
    PreflightBlocked {
        /// Every blocker left after overrides.
        blockers: Vec<Finding>,
    },
    /// Another run holds the cluster's lock.
    #[error(
        "cluster {cluster} is being upgraded by {holder} (lease {lease}{}); wait for that run \
         to finish, or for its lease to expire if it crashed",
        expires_at.map(|t| format!(", held until {t} unless renewed")).unwrap_or_default()
    )]
    LockHeld {
        /// The cluster.
        cluster: String,
        /// The holder identity written in the lease.
        holder: String,
        /// `namespace/name` of the lease.
        lease: String,
        /// When the lease expires unless renewed.
        expires_at: Option<jiff::Timestamp>,
    },
    /// The run lost its lock (another run took the lease over); it stopped at a safe point.
    #[error("lost the cluster lock {lease}: {reason}; the run stopped at a safe point")]
    LockLost {
        /// `namespace/name` of the lease.
        lease: String,
        /// What happened.
        reason: String,
    },
    /// The journal cannot be resumed with this plan or in the cluster's current state.
    #[error("cannot resume: {reason}")]
    ResumeRefused {
        /// Why, and what to do.
        reason: String,
    },
    /// A journal of an unfinished run exists; a new run would lose its records.
    #[error(
        "an unfinished run of plan {plan_id} is recorded in {store} ({state}); resume it, or \
         clear the journal after checking the nodes it lists"
    )]
    UnfinishedRun {
        /// The plan of the unfinished run.
        plan_id: String,
        /// Its recorded state.
        state: String,
        /// Where the journal is kept.
        store: String,
    },
    /// The journal could not be read or written.
    #[error("journal {store}: {message}")]
    Journal {
        /// Where the journal is kept.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// Someone else wrote the journal while this run held it.
    #[error(
        "journal {store} was changed by another writer; another run may be active, so this one \
         stopped"
    )]
    JournalConflict {
        /// Where the journal is kept.
        store: String,
    },
    /// Validation did not pass; no further node was touched.
    #[error(
        "validation {} at step {step}{}: {}",
        if *timed_out { "timed out" } else { "failed" },
        node.as_ref().map(|n| format!(" after node {n}")).unwrap_or_default(),
        failures.join("; ")
    )]
    ValidationFailed {
        /// The plan step.
        step: usize,
        /// The last node upgraded before the gate, for gates between batches.
        node: Option<String>,
        /// What failed in the last round.
        failures: Vec<String>,
        /// Whether the gate ran out of time.
        timed_out: bool,
    },
    /// A node's drain did not finish and the stuck-drain policy is `fail`.
    #[error(
        "{message}; node {node} is recorded in the journal: resume once the blocking pods \
         can go, or choose the cordon-and-continue policy"
    )]
    DrainStuck {
        /// The node.
        node: String,
        /// The drain's account of what blocks it.
        message: String,
    },
    /// The run was cancelled and stopped at a safe point; the journal says where.
    #[error("cancelled during {at}; the journal records where the run stopped")]
    Cancelled {
        /// Where it stopped.
        at: String,
    },
}

impl Error {
    /// The category a caller can act on (exit codes, retries, whether to resume).
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Core(e) => e.category(),
            Self::Kube(e) => e.category(),
            Self::Api { source, .. } => kube_error::category(source),
            Self::InvalidInput { .. } => ErrorCategory::InvalidInput,
            Self::PreflightBlocked { .. }
            | Self::ResumeRefused { .. }
            | Self::UnfinishedRun { .. }
            | Self::ValidationFailed { .. } => ErrorCategory::Precondition,
            Self::LockHeld { .. } => ErrorCategory::Busy,
            Self::LockLost { .. } | Self::JournalConflict { .. } => ErrorCategory::Conflict,
            Self::Journal { .. } => ErrorCategory::Provider,
            Self::DrainStuck { .. } => ErrorCategory::Timeout,
            Self::Cancelled { .. } => ErrorCategory::Cancelled,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn journal(store: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Journal {
            store: store.into(),
            message: message.into(),
        }
    }
}

impl Retryable for Error {
    /// Kubernetes answers by kup-kube's classifier, provider errors by their retryable bit;
    /// the engine's own verdicts (lock held, journal conflict, blockers) are final.
    fn retry_hint(&self) -> RetryHint {
        match self {
            Self::Core(e) => e.retry_hint(),
            Self::Api { source, .. } => source.retry_hint(),
            Self::Kube(e) => e.retry_hint(),
            _ => RetryHint::Stop,
        }
    }
}

/// Provider errors worth retrying on reads and polls: throttling, 5xx, timeouts of one call.
/// Busy and Conflict are answers to act on, not noise, so they are not retried here. Kept
/// for the operation poller; the rule itself is `Retryable for kup_core::Error`.
pub(crate) fn core_transient(e: &kup_core::Error) -> bool {
    e.retry_hint().is_retryable()
}

struct FindingList<'a>(&'a [Finding]);

impl fmt::Display for FindingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, finding) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", finding.code, finding.message)?;
            if !finding.objects.is_empty() {
                let names: Vec<String> = finding.objects.iter().map(ToString::to_string).collect();
                write!(f, " ({})", names.join(", "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kup_core::{ObjectRef, Severity};

    use super::*;

    #[test]
    fn blockers_are_listed_with_their_objects() {
        let err = Error::PreflightBlocked {
            blockers: vec![
                Finding::new(
                    "pdb.max-unavailable-zero",
                    Severity::Blocker,
                    "never evicts",
                )
                .object(ObjectRef::namespaced(
                    "PodDisruptionBudget",
                    "shop",
                    "web",
                )),
                Finding::new("node.pressure", Severity::Blocker, "DiskPressure"),
            ],
        };
        let text = err.to_string();
        assert!(text.contains("2 blocker(s)"), "{text}");
        assert!(text.contains("PodDisruptionBudget/shop/web"), "{text}");
        assert!(text.contains("node.pressure: DiskPressure"), "{text}");
        assert_eq!(err.category(), ErrorCategory::Precondition);
    }

    #[test]
    fn a_held_lock_is_busy_and_names_the_holder() {
        let err = Error::LockHeld {
            cluster: "prod".into(),
            holder: "kup@ci-7".into(),
            lease: "kube-system/kup-upgrade-prod".into(),
            expires_at: None,
        };
        assert_eq!(err.category(), ErrorCategory::Busy);
        assert!(err.to_string().contains("kup@ci-7"));
    }

    #[test]
    fn busy_provider_answers_keep_their_category() {
        let err = Error::from(kup_core::Error::Busy {
            message: "update abc in progress".into(),
            operation: Some("abc".into()),
        });
        assert_eq!(err.category(), ErrorCategory::Busy);
        assert_eq!(err.retry_hint(), RetryHint::Stop);
    }

    fn api(code: u16, reason: &str) -> kube::Error {
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
    fn api_answers_have_the_classifiers_category_however_they_arrive() {
        for (code, reason, category) in SITUATIONS {
            let retryable = matches!(code, 429 | 503);
            let direct = Error::api("reading lease", api(code, reason));
            let via_kube = Error::from(kup_kube::Error::Kube(api(code, reason)));
            let via_core = Error::from(kup_kube::kube_error::to_core_error(api(code, reason)));
            for err in [direct, via_kube, via_core] {
                assert_eq!(err.category(), category, "{code}: {err}");
                assert_eq!(err.retry_hint().is_retryable(), retryable, "{code}: {err}");
            }
        }
    }

    #[test]
    fn the_engines_own_verdicts_are_not_retried() {
        let conflict = Error::JournalConflict {
            store: "configmap kube-system/kup-journal-prod".into(),
        };
        assert_eq!(conflict.category(), ErrorCategory::Conflict);
        assert_eq!(conflict.retry_hint(), RetryHint::Stop);
        let lost = Error::LockLost {
            lease: "kube-system/kup-upgrade-prod".into(),
            reason: "taken over".into(),
        };
        assert_eq!(lost.category(), ErrorCategory::Conflict);
        assert_eq!(lost.retry_hint(), RetryHint::Stop);
        let throttled = Error::from(kup_core::Error::provider(
            kup_core::ProviderKind::Eks,
            Some("ThrottlingException".into()),
            "Rate exceeded",
            true,
        ));
        assert!(core_transient(&kup_core::Error::Timeout {
            what: "poll".into(),
            after: std::time::Duration::from_secs(1),
        }));
        assert_eq!(throttled.retry_hint(), RetryHint::Retry);
    }
}
