//! Self-managed kubeadm clusters: nodes over SSH from an inventory, etcd snapshots.

use std::sync::Arc;
use std::time::Duration;

use kup_kube::drain::{DrainOptions, Drainer};

use super::{BuildFuture, BuildInput, Built, ProviderEntry, Setting, SettingKind, required};
use crate::error::CliError;

/// The kubeadm entry.
pub const ENTRY: ProviderEntry = ProviderEntry {
    name: "kubeadm",
    help: "self-managed kubeadm over SSH: --inventory",
    settings: &[Setting {
        key: "inventory",
        flag: "inventory",
        env: Some("KUP_INVENTORY"),
        help: "the inventory file of nodes and how to reach them",
        kind: SettingKind::Path,
    }],
    build,
};

fn build(input: BuildInput<'_>) -> BuildFuture<'_> {
    Box::pin(async move {
        let path = input.settings.path("inventory").ok_or_else(|| {
            required(
                &ENTRY,
                "inventory",
                "a YAML file listing the nodes and how to reach them",
            )
        })?;
        let inventory = kup_kubeadm::inventory::Inventory::load(path).map_err(CliError::from)?;
        let drain = kup_kubeadm::drain::KubeDrain::new(
            Drainer::new(input.kube.clone()),
            DrainOptions {
                timeout: Some(Duration::from_secs(900)),
                ignore_daemonsets: true,
                ..DrainOptions::default()
            },
        );
        let provider = kup_kubeadm::KubeadmProvider::new(
            inventory,
            input.kube.clone(),
            kup_kubeadm::KubeadmSettings::default(),
        )
        .map_err(CliError::from)?
        .with_drain(Arc::new(drain));
        Ok(Built {
            provider: Arc::new(provider),
            warnings: Vec::new(),
        })
    })
}
