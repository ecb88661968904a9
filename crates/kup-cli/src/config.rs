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
//! Every entry takes `name`, `provider`, `kubeconfig` and `context`, plus the settings of its
//! provider as the registry declares them (the same names as the flags, with `_` for `-`).
//! Flags given on the command line win over the entry's values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::args::ClusterArgs;
use crate::error::{CliError, Result};
use crate::registry;

/// Keys every entry takes, whatever its provider.
const COMMON_KEYS: &[&str] = &["name", "provider", "kubeconfig", "context"];

/// The config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Clusters by name; each checked against the registry.
    #[serde(default)]
    clusters: Vec<BTreeMap<String, serde_json::Value>>,
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

fn accepted_keys() -> String {
    format!(
        "{}, and per provider: {}",
        COMMON_KEYS.join(", "),
        registry::config_keys()
    )
}

fn load(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::InputFile {
        field: "--config".into(),
        path: path.display().to_string(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| {
        CliError::usage(
            format!("config {}", path.display()),
            format!("{e} (it holds `clusters:`, a list of entries)"),
        )
    })
}

fn text(
    entry: &BTreeMap<String, serde_json::Value>,
    key: &str,
    at: &str,
) -> Result<Option<String>> {
    match entry.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CliError::usage(
            format!("{at}: {key}"),
            format!("{other} is not a string"),
        )),
    }
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
    let at = |i: usize| format!("config {} clusters[{i}]", path.display());
    let mut names = Vec::new();
    let mut found = None;
    for (i, entry) in file.clusters.iter().enumerate() {
        let entry_name = text(entry, "name", &at(i))?
            .ok_or_else(|| CliError::usage(format!("{}: name", at(i)), "is required"))?;
        if &entry_name == name {
            found = Some((i, entry));
        }
        names.push(entry_name);
    }
    let Some((i, entry)) = found else {
        return Err(CliError::usage(
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
        ));
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut resolved = from_entry(entry, &at(i), &base, args)?;
    resolved.config = Some(path.clone());
    Ok(resolved)
}

/// The cluster an entry describes (a `kup.yaml` entry, or a fleet member), with the flags in
/// `args` over its values; `at` names the entry in errors, and relative paths resolve against
/// `base`.
pub fn from_entry(
    entry: &BTreeMap<String, serde_json::Value>,
    at: &str,
    base: &Path,
    args: &ClusterArgs,
) -> Result<ClusterArgs> {
    // Unknown keys first: a misspelt `provider` is reported as what it is.
    let provider = args.provider.clone().or(text(entry, "provider", at)?);
    let own = provider.as_deref().and_then(|p| registry::find(p).ok());
    for key in entry.keys() {
        let known = COMMON_KEYS.contains(&key.as_str())
            || match own {
                Some(e) => e.settings.iter().any(|s| s.key == key),
                None => registry::setting(key).is_some(),
            };
        if !known {
            return Err(CliError::usage(
                format!("{at}: {key}"),
                format!("unknown key; accepted keys: {}", accepted_keys()),
            ));
        }
    }
    let provider = provider.ok_or_else(|| {
        CliError::usage(
            format!("{at}: provider"),
            format!("is required (one of: {})", registry::accepted()),
        )
    })?;
    let rel = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { base.join(p) }
    };
    let mut settings = args.settings.clone();
    for (key, value) in entry {
        if let Some((_, setting)) = registry::setting(key) {
            settings.merge_config(setting, value, base, at)?;
        }
    }
    Ok(ClusterArgs {
        provider: Some(provider),
        name: args.name.clone(),
        config: args.config.clone(),
        kubeconfig: args
            .kubeconfig
            .clone()
            .or(text(entry, "kubeconfig", at)?.map(rel)),
        context: args.context.clone().or(text(entry, "context", at)?),
        settings,
    })
}
