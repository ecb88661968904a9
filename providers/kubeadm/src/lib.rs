//! The kubeadm provider for kup.

pub mod cluster_state;
pub mod drain;
pub mod error;
pub mod etcd;
pub mod exec;
pub mod http;
pub mod inventory;
pub mod kubeadm;
pub mod packages;
pub mod provider;
pub mod versions;

pub use error::{Error, Result};
pub use provider::{KubeadmProvider, KubeadmSettings};
