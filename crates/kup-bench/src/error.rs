//! The one error type of the bench.

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// The simulator could not start or answer.
    #[error("simulator: {0}")]
    Sim(#[from] kup_mocks::Error),
    /// kup's drain failed.
    #[error("kup drain: {0}")]
    Drain(#[from] kup_kube::Error),
    /// kubectl could not be run.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A temporary directory or file could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A run did not end in the state it should have.
    #[error("{0}")]
    Check(String),
}
