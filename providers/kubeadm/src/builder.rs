//! Building a [`KubeadmProvider`]: the inventory, the cluster's Kubernetes client, where
//! versions come from (release markers, a mirror of them, or an offline list), and how
//! control-plane nodes are drained. [`KubeadmBuilder::build`] checks every setting before
//! anything runs.
//!
//! | builder | environment (read by [`KubeadmBuilder::from_env`]) | CLI |
//! |---|---|---|
//! | [`release_url`](KubeadmBuilder::release_url) | `KUP_KUBEADM_RELEASE_URL` | `--release-url` |
//! | [`packages_url`](KubeadmBuilder::packages_url) | `KUP_KUBEADM_PACKAGES_URL` | |
//! | [`versions_file`](KubeadmBuilder::versions_file) | `KUP_KUBEADM_VERSIONS_FILE` | `--versions-file` |
//! | [`drain_options`](KubeadmBuilder::drain_options) | | `--drain-timeout`, `--grace-period`, … |
//!
//! Explicit builder calls win over the environment; the specific setters win over the
//! corresponding fields of [`KubeadmBuilder::settings`].

use std::path::PathBuf;
use std::sync::Arc;

use kube::Client;
use kup_core::{EventSink, KubeVersion};
use kup_kube::drain::{DrainOptions, Drainer};

use crate::drain::{KubeDrain, NodeDrain};
use crate::error::{Error, Result};
use crate::etcd::restore::RestoreConfirmation;
use crate::inventory::Inventory;
use crate::provider::{KubeadmProvider, KubeadmSettings};
use crate::versions::load_versions_file;

/// The environment variable naming the release-marker base URL (a mirror of
/// `https://dl.k8s.io/release`).
pub const RELEASE_URL_ENV: &str = "KUP_KUBEADM_RELEASE_URL";
/// The environment variable naming the package repository base URL (a mirror of
/// `https://pkgs.k8s.io/core:/stable:`).
pub const PACKAGES_URL_ENV: &str = "KUP_KUBEADM_PACKAGES_URL";
/// The environment variable naming an offline version list file.
pub const VERSIONS_FILE_ENV: &str = "KUP_KUBEADM_VERSIONS_FILE";

/// Builds a [`KubeadmProvider`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use kup_kube::drain::DrainOptions;
/// let provider = kup_kubeadm::KubeadmBuilder::from_env()
///     .inventory_file("nodes.yaml")
///     .kube_config(kube::Config::infer().await?)
///     .release_url("https://mirror.internal/k8s-release")
///     .drain_options(DrainOptions {
///         timeout: Some(std::time::Duration::from_secs(600)),
///         ..DrainOptions::default()
///     })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct KubeadmBuilder {
    inventory: Option<Inventory>,
    inventory_file: Option<PathBuf>,
    kube: Option<Client>,
    kube_config: Option<kube::Config>,
    settings: KubeadmSettings,
    release_url: Option<String>,
    packages_url: Option<String>,
    versions_file: Option<PathBuf>,
    offline_versions: Option<Vec<KubeVersion>>,
    drain: Option<Arc<dyn NodeDrain>>,
    drain_options: Option<DrainOptions>,
    events: Option<Arc<dyn EventSink>>,
    restore: Option<RestoreConfirmation>,
}

impl std::fmt::Debug for KubeadmBuilder {
    // The kube configuration may hold credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeadmBuilder")
            .field(
                "cluster",
                &self.inventory.as_ref().map(|i| i.cluster.as_str()),
            )
            .field("inventory_file", &self.inventory_file)
            .field("release_url", &self.release_url)
            .field("packages_url", &self.packages_url)
            .field("versions_file", &self.versions_file)
            .field("drain_options", &self.drain_options)
            .finish_non_exhaustive()
    }
}

impl KubeadmBuilder {
    /// Nothing but this builder's own settings; no environment is read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`KubeadmBuilder::new`], then `KUP_KUBEADM_RELEASE_URL`,
    /// `KUP_KUBEADM_PACKAGES_URL` and `KUP_KUBEADM_VERSIONS_FILE` when set and not empty.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Self {
            release_url: get(RELEASE_URL_ENV),
            packages_url: get(PACKAGES_URL_ENV),
            versions_file: get(VERSIONS_FILE_ENV).map(PathBuf::from),
            ..Self::default()
        }
    }

    /// The inventory (nodes and how to reach them).
    pub fn inventory(mut self, inventory: Inventory) -> Self {
        self.inventory = Some(inventory);
        self
    }

    /// Reads the inventory from a YAML file at [`KubeadmBuilder::build`].
    pub fn inventory_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.inventory_file = Some(path.into());
        self
    }

    /// The cluster's Kubernetes client.
    pub fn kube_client(mut self, client: Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// The cluster's Kubernetes configuration; preferred over [`KubeadmBuilder::kube_client`]
    /// because the drain then gets its own eviction client without kube's automatic 429
    /// retry (a PodDisruptionBudget's answer reaches the drain at once).
    pub fn kube_config(mut self, config: kube::Config) -> Self {
        self.kube_config = Some(config);
        self
    }

    /// Every setting at once (the setters below override their fields).
    pub fn settings(mut self, settings: KubeadmSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The release-marker base URL (default `https://dl.k8s.io/release`): a mirror serving
    /// `stable.txt` and `stable-1.X.txt`.
    pub fn release_url(mut self, url: impl Into<String>) -> Self {
        self.release_url = Some(url.into());
        self
    }

    /// The package repository base URL (default `https://pkgs.k8s.io/core:/stable:`), whose
    /// per-minor repositories are checked before nodes switch to them.
    pub fn packages_url(mut self, url: impl Into<String>) -> Self {
        self.packages_url = Some(url.into());
        self
    }

    /// Versions from an offline list file instead of release markers (see
    /// [`crate::versions::parse_versions_list`] for the format), read at
    /// [`KubeadmBuilder::build`].
    pub fn versions_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.versions_file = Some(path.into());
        self
    }

    /// Versions from this list instead of release markers; each names a patch.
    pub fn offline_versions(mut self, versions: Vec<KubeVersion>) -> Self {
        self.offline_versions = Some(versions);
        self
    }

    /// How control-plane nodes are drained (kup-kube's drain with these options: deadline,
    /// grace period, force, emptyDir data…). Without it, and without
    /// [`KubeadmBuilder::drain`], [`DrainOptions::default`] applies (no deadline).
    pub fn drain_options(mut self, options: DrainOptions) -> Self {
        self.drain_options = Some(options);
        self
    }

    /// Drains control-plane nodes with an embedder's own [`NodeDrain`].
    pub fn drain(mut self, drain: Arc<dyn NodeDrain>) -> Self {
        self.drain = Some(drain);
        self
    }

    /// Sends progress events (cordons, drains, node upgrades) to `events`.
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// Allows restores (see [`KubeadmProvider::confirm_restore`]).
    pub fn confirm_restore(mut self, confirmation: RestoreConfirmation) -> Self {
        self.restore = Some(confirmation);
        self
    }

    /// Checks every setting and builds the provider. Nothing is sent to the cluster or the
    /// nodes.
    pub async fn build(self) -> Result<KubeadmProvider> {
        let inventory = match (self.inventory, &self.inventory_file) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "inventory",
                    "give either an inventory or an inventory file, not both",
                ));
            }
            (Some(i), None) => i,
            (None, Some(path)) => Inventory::load(path)?,
            (None, None) => {
                return Err(Error::invalid(
                    "inventory",
                    "is required (KubeadmBuilder::inventory or ::inventory_file)",
                ));
            }
        };
        let mut settings = self.settings;
        for (field, url, target) in [
            (
                "release_url",
                self.release_url,
                &mut settings.releases.markers_url,
            ),
            (
                "packages_url",
                self.packages_url,
                &mut settings.releases.packages_url,
            ),
        ] {
            if let Some(url) = url {
                check_url(field, &url)?;
                *target = url.trim_end_matches('/').to_string();
            }
        }
        match (self.versions_file, self.offline_versions) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "versions_file",
                    "give either a versions file or an offline version list, not both",
                ));
            }
            (Some(path), None) => {
                settings.releases.offline_versions = Some(load_versions_file(&path)?);
            }
            (None, Some(list)) => settings.releases.offline_versions = Some(list),
            (None, None) => {}
        }
        let (client, drainer) = match (self.kube_config, self.kube) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "kube_client",
                    "give either a Kubernetes client or a configuration, not both",
                ));
            }
            (Some(config), None) => {
                let drainer = Drainer::from_config(config.clone())?;
                (Client::try_from(config)?, drainer)
            }
            (None, Some(client)) => (client.clone(), Drainer::new(client)),
            (None, None) => {
                return Err(Error::invalid(
                    "kube_client",
                    "is required (KubeadmBuilder::kube_config or ::kube_client)",
                ));
            }
        };
        let drain: Arc<dyn NodeDrain> = match (self.drain, self.drain_options) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "drain_options",
                    "give either drain options or a custom drain, not both",
                ));
            }
            (Some(drain), None) => drain,
            (None, options) => {
                let options = options.unwrap_or_default();
                options
                    .validate()
                    .map_err(|e| Error::invalid("drain_options", e.to_string()))?;
                Arc::new(KubeDrain::new(drainer, options))
            }
        };
        let mut provider = KubeadmProvider::new(inventory, client, settings)?.with_drain(drain);
        if let Some(events) = self.events {
            provider = provider.with_events(events);
        }
        if let Some(confirmation) = self.restore {
            provider = provider.confirm_restore(confirmation);
        }
        Ok(provider)
    }
}

fn check_url(field: &str, url: &str) -> Result<()> {
    let ok = ["http://", "https://"]
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{url:?} is not an http(s) URL; accepted: http://host/path or https://host/path"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    #[test]
    fn the_environment_names_mirrors_and_offline_lists() {
        let env = |k: &str| match k {
            RELEASE_URL_ENV => Some("http://mirror.internal/release".to_string()),
            VERSIONS_FILE_ENV => Some("/etc/kup/versions.txt".to_string()),
            PACKAGES_URL_ENV => Some("  ".to_string()),
            _ => None,
        };
        let b = KubeadmBuilder::from_lookup(env);
        assert_eq!(
            b.release_url.as_deref(),
            Some("http://mirror.internal/release")
        );
        assert_eq!(
            b.versions_file.as_deref(),
            Some(Path::new("/etc/kup/versions.txt"))
        );
        assert_eq!(b.packages_url, None, "blank values are ignored");
        // Explicit calls win.
        let b = b.release_url("https://other/release");
        assert_eq!(b.release_url.as_deref(), Some("https://other/release"));
    }

    #[test]
    fn urls_must_be_http() {
        assert!(check_url("release_url", "https://dl.k8s.io/release").is_ok());
        let err = check_url("release_url", "dl.k8s.io/release")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("release_url") && err.contains("accepted"),
            "{err}"
        );
        assert!(check_url("release_url", "http://").is_err());
    }
}
