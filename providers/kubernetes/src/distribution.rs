//! Which distribution runs the cluster, read from `/version` and the nodes, so that refusals
//! name the tool that does upgrade it.

use std::fmt;

use k8s_openapi::api::core::v1::Node;

/// The distribution behind a cluster, as far as its API server and nodes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Distribution {
    /// k3s (`+k3s` build suffix).
    K3s,
    /// RKE2 (`+rke2` build suffix).
    Rke2,
    /// OpenShift (`node.openshift.io/os_id` node label).
    OpenShift,
    /// Talos Linux (node OS image).
    Talos,
    /// kind (`kind://` provider IDs).
    Kind,
    /// A kubeadm-built cluster (kubeadm's node annotations).
    Kubeadm,
    /// Amazon EKS (`-eks-` build suffix).
    Eks,
    /// Google GKE (`-gke.` build suffix).
    Gke,
    /// Azure AKS (`kubernetes.azure.com/cluster` node label).
    Aks,
    /// Nothing recognisable.
    Unknown,
}

impl Distribution {
    /// Reads the distribution from the API server's `gitVersion` and the nodes.
    pub fn detect(git_version: &str, nodes: &[Node]) -> Self {
        if git_version.contains("+k3s") {
            return Self::K3s;
        }
        if git_version.contains("+rke2") {
            return Self::Rke2;
        }
        if git_version.contains("-eks-") {
            return Self::Eks;
        }
        if git_version.contains("-gke.") {
            return Self::Gke;
        }
        let has_label = |key: &str| {
            nodes.iter().any(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(key))
            })
        };
        let has_annotation = |key: &str| {
            nodes.iter().any(|n| {
                n.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(key))
            })
        };
        if has_label("node.openshift.io/os_id") {
            return Self::OpenShift;
        }
        if has_label("kubernetes.azure.com/cluster") {
            return Self::Aks;
        }
        let os_image = |prefix: &str| {
            nodes.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.node_info.as_ref())
                    .is_some_and(|i| i.os_image.starts_with(prefix))
            })
        };
        if os_image("Talos") {
            return Self::Talos;
        }
        let kind = nodes.iter().any(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .is_some_and(|p| p.starts_with("kind://"))
        });
        if kind {
            return Self::Kind;
        }
        if has_annotation("kubeadm.alpha.kubernetes.io/cri-socket") {
            return Self::Kubeadm;
        }
        Self::Unknown
    }

    /// What upgrades a cluster of this distribution, for refusals and `kup versions`.
    pub fn upgrade_tool(self) -> &'static str {
        match self {
            Self::K3s => {
                "k3s upgrades itself: rerun its install script with INSTALL_K3S_VERSION, or use \
                 Rancher's system-upgrade-controller"
            }
            Self::Rke2 => {
                "RKE2 upgrades itself: rerun its install script with INSTALL_RKE2_VERSION, or use \
                 Rancher's system-upgrade-controller"
            }
            Self::OpenShift => {
                "OpenShift upgrades through its cluster version operator: oc adm upgrade"
            }
            Self::Talos => "Talos upgrades Kubernetes with talosctl upgrade-k8s",
            Self::Kind => {
                "kind clusters are recreated on a newer node image: kind create cluster --image \
                 kindest/node:<version>"
            }
            Self::Kubeadm => "kup upgrades kubeadm clusters itself: use --provider kubeadm",
            Self::Eks => "kup upgrades EKS itself: use --provider eks",
            Self::Gke => "GKE upgrades through its API: gcloud container clusters upgrade",
            Self::Aks => "AKS upgrades through its API: az aks upgrade",
            Self::Unknown => "upgrade it with the distribution's own tool",
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::K3s => "k3s",
            Self::Rke2 => "RKE2",
            Self::OpenShift => "OpenShift",
            Self::Talos => "Talos",
            Self::Kind => "kind",
            Self::Kubeadm => "kubeadm",
            Self::Eks => "EKS",
            Self::Gke => "GKE",
            Self::Aks => "AKS",
            Self::Unknown => "an unrecognised distribution",
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn build_suffixes_and_node_marks_name_the_distribution() {
        assert_eq!(Distribution::detect("v1.30.6+k3s1", &[]), Distribution::K3s);
        assert_eq!(
            Distribution::detect("v1.30.6+rke2r1", &[]),
            Distribution::Rke2
        );
        assert_eq!(
            Distribution::detect("v1.30.6-eks-7f9249a", &[]),
            Distribution::Eks
        );
        let talos = node(serde_json::json!({"metadata": {"name": "n"},
            "status": {"nodeInfo": {"osImage": "Talos (v1.8.0)", "architecture": "amd64",
            "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
            "kubeProxyVersion": "", "kubeletVersion": "v1.31.1", "machineID": "",
            "operatingSystem": "linux", "systemUUID": ""}}}));
        assert_eq!(
            Distribution::detect("v1.31.1", &[talos]),
            Distribution::Talos
        );
        let kind = node(serde_json::json!({"metadata": {"name": "n"},
            "spec": {"providerID": "kind://docker/kind/kind-control-plane"}}));
        assert_eq!(Distribution::detect("v1.31.1", &[kind]), Distribution::Kind);
        assert_eq!(Distribution::detect("v1.31.1", &[]), Distribution::Unknown);
        assert!(
            Distribution::K3s
                .upgrade_tool()
                .contains("INSTALL_K3S_VERSION")
        );
    }
}
