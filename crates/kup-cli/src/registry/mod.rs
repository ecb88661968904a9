//! The providers this `kup` drives, one [`ProviderEntry`] each.
//!
//! An entry is everything the CLI knows about a provider: its `--provider` name, its help, the
//! settings it takes (each one both a global flag and a `kup.yaml` key), and how to build the
//! provider from them. Adding a provider to the CLI and to `kup.yaml` is adding its entry to
//! [`REGISTRY`]; the flags, the accepted `--provider` values, the config keys and the error
//! messages listing them all come from here.

#[cfg(feature = "aks")]
mod aks;
mod eks;
#[cfg(feature = "gke")]
mod gke;
mod kubeadm;
mod kubernetes;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use clap::{Arg, ArgAction, ArgMatches};
use kup_core::UpgradeProvider;

use crate::error::{CliError, Result};

/// What a setting holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingKind {
    /// Free text (`--cluster prod-1`).
    Text,
    /// A file; relative paths in `kup.yaml` resolve against the config file's directory.
    Path,
    /// A switch (`--allow-insecure-endpoint`; `true`/`false` in `kup.yaml`).
    Switch,
}

/// One provider setting: a global flag and a `kup.yaml` key.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The `kup.yaml` key (`endpoint_url`).
    pub key: &'static str,
    /// The long flag without dashes (`endpoint-url`).
    pub flag: &'static str,
    /// An environment variable the flag reads.
    pub env: Option<&'static str>,
    /// Help text (shown by `kup --help`).
    pub help: &'static str,
    /// What it holds.
    pub kind: SettingKind,
}

/// A provider the registry built, with what kup must tell the user about it.
pub struct Built {
    /// The provider, bound to its cluster.
    pub provider: Arc<dyn UpgradeProvider>,
    /// Warnings for kup's output and events (for example a cleartext endpoint).
    pub warnings: Vec<String>,
}

/// What an entry builds from.
pub struct BuildInput<'a> {
    /// Its settings, flags over `kup.yaml`.
    pub settings: &'a Settings,
    /// A client for the cluster's Kubernetes API.
    pub kube: &'a kube::Client,
    /// The configuration that client was made from (for providers that make their own
    /// clients, such as an eviction client without automatic retries).
    pub kube_config: &'a kube::Config,
    /// How nodes are drained, from the command's flags (`--drain-timeout`), for providers
    /// that drain nodes themselves.
    pub drain: &'a kup_kube::drain::DrainOptions,
    /// What a provider that drains nodes itself does with one it cannot drain
    /// (`--on-stuck-drain`); AKS takes it (a build without AKS has no provider that does).
    #[cfg_attr(not(feature = "aks"), allow(dead_code))]
    pub on_stuck_drain: kup_core::StuckDrainPolicy,
    /// Whether the command restores backups (`kup rollback`, `kup restore`); it asked the
    /// user, showing the plan, before anything runs.
    pub restore_confirmed: bool,
}

/// The future an entry's `build` returns.
pub type BuildFuture<'a> = Pin<Box<dyn Future<Output = Result<Built>> + Send + 'a>>;

/// One provider the CLI drives.
pub struct ProviderEntry {
    /// Its `--provider` value and `provider:` in `kup.yaml`.
    pub name: &'static str,
    /// One line for help and listings.
    pub help: &'static str,
    /// Its settings.
    pub settings: &'static [Setting],
    /// Builds it from resolved settings.
    pub build: for<'a> fn(BuildInput<'a>) -> BuildFuture<'a>,
}

/// Every provider this build drives.
pub const REGISTRY: &[ProviderEntry] = &[
    eks::ENTRY,
    #[cfg(feature = "aks")]
    aks::ENTRY,
    #[cfg(feature = "gke")]
    gke::ENTRY,
    kubeadm::ENTRY,
    kubernetes::ENTRY,
];

/// The provider of commands that need nothing but a kubeconfig (`preflight`, `validate`,
/// `status`, `report`) when none is named.
pub const KUBECONFIG_ONLY: &str = "kubernetes";

/// Providers this build of kup leaves out (their cargo features are off).
const LEFT_OUT: &[&str] = &[
    #[cfg(not(feature = "aks"))]
    "aks",
    #[cfg(not(feature = "gke"))]
    "gke",
];

/// The accepted `--provider` values, comma-separated.
pub fn accepted() -> String {
    REGISTRY
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The entry named `name`; errors list the accepted values.
pub fn find(name: &str) -> Result<&'static ProviderEntry> {
    if let Some(entry) = REGISTRY.iter().find(|e| e.name == name) {
        return Ok(entry);
    }
    let message = if LEFT_OUT.contains(&name) {
        format!(
            "{name} is not built into this kup (cargo feature `{name}`); available providers: {}",
            accepted()
        )
    } else {
        format!("{name:?} is not a provider; accepted: {}", accepted())
    };
    Err(CliError::usage("--provider", message))
}

/// The settings of every entry (flags are global, so shared by every subcommand).
fn all_settings() -> impl Iterator<Item = (&'static ProviderEntry, &'static Setting)> {
    REGISTRY
        .iter()
        .flat_map(|e| e.settings.iter().map(move |s| (e, s)))
}

/// Each setting once: providers may share one (`cluster`, `endpoint_url`), declared alike.
fn unique_settings() -> impl Iterator<Item = (&'static ProviderEntry, &'static Setting)> {
    let mut seen = std::collections::BTreeSet::new();
    all_settings().filter(move |(_, s)| seen.insert(s.key))
}

/// Adds every entry's flags to the command, and lists the providers in `--provider`'s help.
pub fn augment(command: clap::Command) -> clap::Command {
    let providers: Vec<String> = REGISTRY
        .iter()
        .map(|e| format!("{} ({})", e.name, e.help))
        .collect();
    let mut command = command.mut_arg("provider", |a| {
        a.help(format!("Provider: {}", providers.join("; ")))
    });
    for (entry, s) in unique_settings() {
        let users: Vec<&str> = all_settings()
            .filter(|(_, o)| o.key == s.key)
            .map(|(e, _)| e.name)
            .collect();
        let who = if users.len() > 1 {
            users.join(", ")
        } else {
            entry.name.to_string()
        };
        let mut arg = Arg::new(s.key)
            .long(s.flag)
            .global(true)
            .help(format!("{who}: {}", s.help));
        arg = match s.kind {
            SettingKind::Switch => arg.action(ArgAction::SetTrue),
            SettingKind::Text => arg.action(ArgAction::Set).value_name("VALUE"),
            SettingKind::Path => arg
                .action(ArgAction::Set)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf)),
        };
        if let Some(env) = s.env {
            arg = arg.env(env);
        }
        command = command.arg(arg);
    }
    command
}

/// One setting's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A file.
    Path(PathBuf),
    /// A switch.
    Switch(bool),
}

/// Settings by `kup.yaml` key.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
}

impl Settings {
    /// The provider settings given as flags.
    pub fn from_matches(matches: &ArgMatches) -> Self {
        let mut values = BTreeMap::new();
        for (_, s) in unique_settings() {
            let value = match s.kind {
                SettingKind::Switch => matches.get_flag(s.key).then_some(Value::Switch(true)),
                SettingKind::Text => matches
                    .get_one::<String>(s.key)
                    .map(|v| Value::Text(v.clone())),
                SettingKind::Path => matches
                    .get_one::<PathBuf>(s.key)
                    .map(|v| Value::Path(v.clone())),
            };
            if let Some(v) = value {
                values.insert(s.key, v);
            }
        }
        Self { values }
    }

    /// Adds `key` from a `kup.yaml` entry unless a flag already set it. Relative paths
    /// resolve against `base`.
    pub fn merge_config(
        &mut self,
        setting: &'static Setting,
        value: &serde_json::Value,
        base: &Path,
        where_: &str,
    ) -> Result<()> {
        if self.values.contains_key(setting.key) {
            return Ok(());
        }
        let wrong = |expected: &str| {
            CliError::usage(
                format!("{where_}: {}", setting.key),
                format!("{value} is not {expected}"),
            )
        };
        let parsed = match (setting.kind, value) {
            (SettingKind::Switch, serde_json::Value::Bool(b)) => Value::Switch(*b),
            (SettingKind::Switch, _) => return Err(wrong("true or false")),
            (SettingKind::Text, serde_json::Value::String(s)) => Value::Text(s.clone()),
            (SettingKind::Text, serde_json::Value::Number(n)) => Value::Text(n.to_string()),
            (SettingKind::Text, _) => return Err(wrong("a string")),
            (SettingKind::Path, serde_json::Value::String(s)) => {
                let p = PathBuf::from(s);
                Value::Path(if p.is_absolute() { p } else { base.join(p) })
            }
            (SettingKind::Path, _) => return Err(wrong("a file path")),
        };
        self.values.insert(setting.key, parsed);
        Ok(())
    }

    /// A text setting.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// A file setting.
    pub fn path(&self, key: &str) -> Option<&Path> {
        match self.values.get(key) {
            Some(Value::Path(p)) => Some(p),
            _ => None,
        }
    }

    /// A switch (off unless set).
    pub fn switch(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(Value::Switch(true)))
    }
}

/// The usage error for a setting `entry` needs: names the flag, the key and what it holds.
pub fn required(entry: &ProviderEntry, key: &str, what: &str) -> CliError {
    let flag = entry
        .settings
        .iter()
        .find(|s| s.key == key)
        .map_or(key, |s| s.flag);
    CliError::usage(
        format!("--{flag}"),
        format!(
            "is required with --provider {} ({what}); give --{flag} or `{key}:` in the kup.yaml entry",
            entry.name
        ),
    )
}

/// The setting `key` of any entry.
pub fn setting(key: &str) -> Option<(&'static ProviderEntry, &'static Setting)> {
    all_settings().find(|(_, s)| s.key == key)
}

/// The `kup.yaml` keys each provider accepts, for error messages.
pub fn config_keys() -> String {
    REGISTRY
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.name,
                e.settings
                    .iter()
                    .map(|s| s.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keys_are_unique_and_every_provider_is_listed() {
        // A key several providers share is declared alike by each.
        for (_, a) in all_settings() {
            for (_, b) in all_settings().filter(|(_, b)| b.key == a.key) {
                assert_eq!(
                    (a.flag, a.kind),
                    (b.flag, b.kind),
                    "{} declared differently",
                    a.key
                );
            }
        }
        let mut keys: Vec<&str> = unique_settings().map(|(_, s)| s.key).collect();
        let mut flags: Vec<&str> = unique_settings().map(|(_, s)| s.flag).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(keys.len(), n, "a kup.yaml key is declared twice");
        assert_eq!(flags.len(), n, "a flag is declared twice");
        assert_eq!(accepted(), "eks, aks, gke, kubeadm, kubernetes");
        assert!(config_keys().contains("aks: subscription, resource_group, cluster"));
        assert!(config_keys().contains("gke: project, location, cluster"));
        assert!(config_keys().contains("eks: cluster, region"));
        let e = find("foo").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("accepted: eks, aks, gke, kubeadm, kubernetes"),
            "{e}"
        );
        assert!(find("aks").is_ok() && find("gke").is_ok());
    }
}
