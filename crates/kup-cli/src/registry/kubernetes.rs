//! Any conformant cluster (k3s, RKE2, kind, OpenShift, Talos, Rancher, ...): versions from the
//! API server and nodes, every pre-flight and validation check, drains; the cluster's own tool
//! moves its versions. The provider when only a kubeconfig is given to the commands that need
//! no other.

use std::sync::Arc;

use super::{BuildFuture, BuildInput, Built, ProviderEntry, Setting, SettingKind};
use crate::error::CliError;

/// The kubernetes entry.
pub const ENTRY: ProviderEntry = ProviderEntry {
    name: "kubernetes",
    help: "any cluster through its kubeconfig alone: checks, validation, drains (its own tool \
           upgrades it)",
    settings: &[
        Setting {
            key: "cluster_name",
            flag: "cluster-name",
            env: Some("KUP_KUBERNETES_CLUSTER_NAME"),
            help: "the name runs are recorded under in the cluster (default: kubernetes)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "pool_label",
            flag: "pool-label",
            env: Some("KUP_KUBERNETES_POOL_LABEL"),
            help: "the node label naming each worker's pool (default: one pool, workers)",
            kind: SettingKind::Text,
        },
    ],
    build,
};

fn build(input: BuildInput<'_>) -> BuildFuture<'_> {
    Box::pin(async move {
        let s = input.settings;
        let name = s
            .text("cluster_name")
            .unwrap_or(kup_kubernetes::DEFAULT_CLUSTER_NAME);
        let mut provider = kup_kubernetes::KubernetesProvider::connect(input.kube.clone(), name)
            .await
            .map_err(CliError::from)?;
        if let Some(label) = s.text("pool_label") {
            provider = provider.with_pool_label(label);
        }
        Ok(Built {
            provider: Arc::new(provider),
            warnings: Vec::new(),
        })
    })
}
