//! Upgrades fleets of Kubernetes clusters with kup's engine, modelled on AKS Fleet update runs
//! and GKE rollout sequencing: stages run in order; a stage's groups of clusters upgrade at
//! most `maxConcurrency` at once; a stage may need approval before it starts and may soak
//! after it completes; an error budget halts the fleet run when too many clusters of a stage
//! failed. The fleet run is journaled, so a killed run resumes where it stood, and every
//! cluster's own run resumes from its engine journal.
//!
//! - [`spec`]: the fleet spec ([`FleetSpec`]) and its validation into a [`Fleet`].
//! - [`plan`]: [`plan_fleet`], every member planned and dry-run side by side.
//! - [`run_state`] and [`decide`]: the journaled run and the pure wave decision.
//! - [`journal`] and [`controls`]: where the run, approvals and halt requests are kept.
//! - [`runner`]: [`FleetRunner`], which runs the waves.

pub mod connector;
pub mod controls;
pub mod decide;
pub mod error;
pub mod journal;
pub mod plan;
pub mod run_state;
pub mod runner;
pub mod spec;

pub use connector::{Connector, MemberCluster};
pub use controls::{
    Approval, ControlState, FileFleetControls, FleetControls, HaltRequest, MemoryFleetControls,
};
pub use decide::{Decision, decide};
pub use error::{Error, Result, SpecProblem};
pub use journal::{FileFleetJournal, FleetJournalStore, MemoryFleetJournal};
pub use plan::{ClusterPlan, FleetPlan, plan_fleet};
pub use run_state::{
    ClusterOutcome, ClusterPhase, ClusterRun, FleetPhase, FleetRun, Halt, StagePhase, StageRun,
};
pub use runner::{FleetEvent, FleetEventSink, FleetRunner, NoFleetEvents, RunnerOptions, WaitMode};
pub use spec::{
    Concurrency, ConcurrencyLimit, ErrorBudget, Fleet, FleetSpec, FleetStage, Group, LabelSelector,
    LabelSelectorRequirement, Member, Operator, SpecDuration, Stage, Strategy,
};
