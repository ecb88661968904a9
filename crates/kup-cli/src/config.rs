//! `kup.yaml`: clusters by name, so `kup --name prod plan --to 1.35` needs no other flag.
//!
//! ```yaml
//! clusters:
//!   - name: prod
//!     provider: eks
//!     cluster: prod-1
//!     region: us-west-2
//!     context: prod-admin
//!   - name: lab
//!     provider: kubeadm
//!     inventory: ./lab-nodes.yaml
//!     kubeconfig: ./lab.kubeconfig
//! ```
//!
//! Flags given on the command line win over the entry's values.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::ClusterArgs;
use crate::error::{CliError, Result};

/// The config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Clusters by name.
    #[serde(default)]
    pub clusters: Vec<ClusterEntry>,
}

/// One cluster.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// The name used with `--name`.
    pub name: String,
    /// eks or kubeadm.
    pub provider: String,
    /// EKS cluster name.
    #[serde(default)]
    pub cluster: Option<String>,
    /// AWS region.
    #[serde(default)]
    pub region: Option<String>,
    /// EKS endpoint override.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// kubeadm inventory (relative to the config file).
    #[serde(default)]
    pub inventory: Option<PathBuf>,
    /// Kubeconfig (relative to the config file).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[serde(default)]
    pub context: Option<String>,
}

fn default_path() -> Option<PathBuf> {
    let local = PathBuf::from("kup.yaml");
    if local.exists() {
        return Some(local);
    }
    let home = std::env::var_os("HOME")?;
    let user = Path::new(&home).join(".config/kup/kup.yaml");
    user.exists().then_some(user)
}

fn load(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| {
        CliError::usage(
            format!("config {}", path.display()),
            format!("{e} (accepted keys per cluster: name, provider, cluster, region, endpoint_url, inventory, kubeconfig, context)"),
        )
    })
}

/// Merges the `--name`d config entry under the flags.
pub fn resolve(args: &ClusterArgs) -> Result<ClusterArgs> {
    let Some(name) = &args.name else {
        return Ok(args.clone());
    };
    let path = match &args.config {
        Some(p) => p.clone(),
        None => default_path().ok_or_else(|| {
            CliError::usage(
                "--name",
                format!(
                    "cluster {name:?} needs a config file: pass --config, or create ./kup.yaml \
                     or ~/.config/kup/kup.yaml"
                ),
            )
        })?,
    };
    let file = load(&path)?;
    let entry = file
        .clusters
        .iter()
        .find(|c| &c.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = file.clusters.iter().map(|c| c.name.as_str()).collect();
            CliError::usage(
                "--name",
                format!(
                    "no cluster {name:?} in {}; it lists: {}",
                    path.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    Ok(ClusterArgs {
        provider: args.provider.clone().or(Some(entry.provider)),
        name: args.name.clone(),
        config: Some(path.clone()),
        cluster: args.cluster.clone().or(entry.cluster),
        region: args.region.clone().or(entry.region),
        endpoint_url: args.endpoint_url.clone().or(entry.endpoint_url),
        inventory: args.inventory.clone().or(entry.inventory.map(rel)),
        kubeconfig: args.kubeconfig.clone().or(entry.kubeconfig.map(rel)),
        context: args.context.clone().or(entry.context),
    })
}
