//! Everything kup does through the Kubernetes API: cordon and drain, pre-flight checks and
//! post-upgrade validation. Shared by every provider.

pub mod drain;
pub mod error;
pub mod kube_error;
mod listing;
pub mod preflight;
pub mod report;
pub mod retry;
pub mod validate;

pub use error::{Error, Result};
