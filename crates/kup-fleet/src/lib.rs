//! Upgrades fleets of Kubernetes clusters with kup's engine, modelled on AKS Fleet update runs
//! and GKE rollout sequencing: stages run in order; a stage's groups of clusters upgrade at
//! most `maxConcurrency` at once; a stage may need approval before it starts and may soak
//! after it completes; an error budget halts the fleet run when too many clusters of a stage
//! failed. The fleet run is journaled, so a killed run resumes where it stood, and every
//! cluster's own run resumes from its engine journal.
//!
//! - [`spec`]: the fleet spec ([`FleetSpec`]) and its validation into a [`Fleet`].

pub mod error;
pub mod spec;

pub use error::{Error, Result, SpecProblem};
pub use spec::{
    Concurrency, ConcurrencyLimit, ErrorBudget, Fleet, FleetSpec, FleetStage, Group, LabelSelector,
    LabelSelectorRequirement, Member, Operator, SpecDuration, Stage, Strategy,
};
