//! Self-managed kubeadm clusters: nodes over SSH from an inventory, etcd snapshots.

use std::sync::Arc;

use super::{BuildFuture, BuildInput, Built, ProviderEntry, Setting, SettingKind, required};
use crate::error::CliError;

/// The kubeadm entry.
pub const ENTRY: ProviderEntry = ProviderEntry {
    name: "kubeadm",
    help: "self-managed kubeadm over SSH: --inventory",
    settings: &[
        Setting {
            key: "inventory",
            flag: "inventory",
            env: Some("KUP_INVENTORY"),
            help: "the inventory file of nodes and how to reach them",
            kind: SettingKind::Path,
        },
        Setting {
            key: "release_url",
            flag: "release-url",
            env: Some("KUP_KUBEADM_RELEASE_URL"),
            help: "a mirror of the Kubernetes release markers (stable-1.N.txt), for clusters \
                   that cannot reach the public release site",
            kind: SettingKind::Text,
        },
        Setting {
            key: "versions_file",
            flag: "versions-file",
            env: Some("KUP_KUBEADM_VERSIONS_FILE"),
            help: "an offline list of the releases on offer, one per line (1.31.2); no \
                   release marker is fetched",
            kind: SettingKind::Path,
        },
    ],
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
        // Control-plane nodes are drained by the provider with the user's drain settings.
        let mut builder = kup_kubeadm::KubeadmBuilder::from_env()
            .inventory_file(path)
            .kube_config(input.kube_config.clone())
            .drain_options(input.drain.clone());
        if let Some(url) = input.settings.text("release_url") {
            builder = builder.release_url(url);
        }
        if let Some(file) = input.settings.path("versions_file") {
            builder = builder.versions_file(file);
        }
        let mut provider = builder.build().await.map_err(CliError::from)?;
        if input.restore_confirmed {
            provider = provider.confirm_restore(
                kup_kubeadm::etcd::restore::RestoreConfirmation::i_understand_all_changes_since_the_snapshot_are_lost(),
            );
        }
        Ok(Built {
            provider: Arc::new(provider),
            warnings: Vec::new(),
        })
    })
}
