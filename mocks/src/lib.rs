//! Stateful test doubles for kup: a Kubernetes API simulator that real clients (kube-rs,
//! kubectl) drive over loopback HTTP(S), and mocks of the cloud provider APIs.
//!
//! Start with [`k8s`]: build a [`k8s::Scenario`], start it with [`k8s::Simulator::start`] and
//! point clients at the returned [`k8s::SimHandle`].

pub mod aks;
pub mod eks;
pub mod error;
pub mod gke;
pub mod k8s;
pub mod releases;
pub mod standalone;

pub use error::{Error, Result};
