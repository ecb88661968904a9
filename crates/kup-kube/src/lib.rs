//! Everything kup does through the Kubernetes API: cordon and drain, pre-flight checks and
//! post-upgrade validation. Shared by every provider.

pub mod error;

pub use error::{Error, Result};
