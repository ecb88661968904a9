//! kup on any conformant Kubernetes cluster.
//!
//! [`KubernetesProvider`] is the provider for clusters kup does not upgrade itself (k3s, RKE2,
//! kind, OpenShift, Talos, Rancher, or any other distribution): it reads the versions from the
//! API server and the nodes, so every Kubernetes-level pre-flight check, validation, drain and
//! uncordon works, and it declares control-plane and pool upgrades unsupported, naming the
//! distribution's own tool. The careful sequence is then: `kup preflight`, the distribution's
//! upgrade, `kup validate`, with `kup drain`/`kup uncordon` for nodes moved by hand.
//!
//! ```text
//! let client = kube::Client::try_default().await?;
//! let provider = kup_kubernetes::KubernetesProvider::connect(client, "prod").await?;
//! println!("{}", provider.capabilities().upgrade_tool.unwrap_or_default());
//! ```

mod distribution;
mod nodes;
mod provider;

pub use distribution::Distribution;
pub use provider::{DEFAULT_CLUSTER_NAME, KubernetesProvider};
