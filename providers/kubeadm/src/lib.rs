//! The kubeadm provider for kup: nodes reached over SSH (listed in an [`inventory`]),
//! verified etcd snapshots before every control-plane hop, the control-plane hop as an
//! operation polled node by node, and workers upgraded in place after the engine drained them.
//!
//! Build one with [`KubeadmBuilder`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kup_kube::drain::DrainOptions;
//!
//! let provider = kup_kubeadm::KubeadmBuilder::from_env()
//!     .inventory_file("nodes.yaml")
//!     .kube_config(kube::Config::infer().await?)
//!     // Air-gapped: a mirror of dl.k8s.io's release markers, or an offline list.
//!     .versions_file("/etc/kup/versions.txt")
//!     // Control-plane nodes are drained by the provider with these options.
//!     .drain_options(DrainOptions {
//!         timeout: Some(std::time::Duration::from_secs(600)),
//!         ..DrainOptions::default()
//!     })
//!     .build()
//!     .await?;
//! # let _ = provider; Ok(()) }
//! ```
//!
//! Who drains what: control-plane nodes are cordoned, drained and uncordoned by the provider
//! inside [`UpgradeProvider::upgrade_control_plane`](kup_core::UpgradeProvider::upgrade_control_plane)'s
//! operation (one node per step, see [`provider::hop`]); workers are drained by kup's
//! engine and upgraded with
//! [`UpgradeProvider::upgrade_node`](kup_core::UpgradeProvider::upgrade_node).
//!
//! Versions come from the release markers at [`versions::ReleaseSettings::markers_url`]
//! (default `https://dl.k8s.io/release`), a mirror of them, or an offline list (see
//! [`versions`]).

pub mod builder;
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

pub use builder::KubeadmBuilder;
pub use error::{Error, Result};
pub use provider::{KubeadmProvider, KubeadmSettings};
