//! The crate's one error type.

use std::fmt;

/// One thing wrong with a fleet spec: where (the field path) and what.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecProblem {
    /// The field path, e.g. `strategy.stages[1].groups[0].selector.matchExpressions[0].operator`.
    pub path: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn list(problems: &[SpecProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  - {p}"))
        .collect::<String>()
}

/// Errors of fleet planning and runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fleet spec is invalid; nothing ran.
    #[error("the fleet spec is invalid (nothing was changed); fix these fields:{}", list(.0))]
    InvalidSpec(Vec<SpecProblem>),

    /// A fleet run journal exists for another target or another assignment of clusters.
    #[error(
        "the fleet journal at {journal} holds a run that does not match this one: {reason}; \
         finish that run with its own spec and target, or remove the journal to start over"
    )]
    RunMismatch {
        /// Where the journal is.
        journal: String,
        /// What differs.
        reason: String,
    },

    /// Connecting to a member cluster failed.
    #[error(
        "cannot connect to cluster {cluster}: {message}; check its connection fields (provider, kubeconfig, context, region ...)"
    )]
    Connect {
        /// The member.
        cluster: String,
        /// Why.
        message: String,
    },

    /// The engine failed for a member cluster.
    #[error("cluster {cluster}: {source}")]
    Engine {
        /// The member.
        cluster: String,
        /// The engine's error.
        #[source]
        source: Box<kup_engine::Error>,
    },

    /// Reading or writing the fleet journal or the controls failed.
    #[error("{action} {path}: {source}; check that the directory exists and is writable")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A stored fleet journal or control file cannot be read as JSON.
    #[error("{path} is not a valid kup fleet file: {source}; remove or repair it")]
    Corrupt {
        /// The file.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A control request names something the fleet does not have.
    #[error("{what}: {message}")]
    InvalidRequest {
        /// The argument.
        what: String,
        /// What is wrong and what is accepted.
        message: String,
    },
}

impl Error {
    /// A spec error with one problem.
    pub fn spec(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidSpec(vec![SpecProblem {
            path: path.into(),
            message: message.into(),
        }])
    }

    /// The spec problems, when this is [`Error::InvalidSpec`].
    pub fn spec_problems(&self) -> &[SpecProblem] {
        match self {
            Self::InvalidSpec(p) => p,
            _ => &[],
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
