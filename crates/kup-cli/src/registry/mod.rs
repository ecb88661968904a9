//! The providers this `kup` drives, one [`ProviderEntry`] each.
//!
//! An entry is everything the CLI knows about a provider: its `--provider` name, its help, the
//! settings it takes (each one both a global flag and a `kup.yaml` key), and how to build the
//! provider from them. Adding a provider to the CLI and to `kup.yaml` is adding its entry to
//! [`REGISTRY`]; the flags, the accepted `--provider` values, the config keys and the error
//! messages listing them all come from here.

mod aks;
mod eks;
mod kubeadm;

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
    /// (`--on-stuck-drain`).
    pub on_stuck_drain: kup_core::StuckDrainPolicy,
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
pub const REGISTRY: &[ProviderEntry] = &[eks::ENTRY, kubeadm::ENTRY, aks::ENTRY];

/// Providers kup knows of but this release does not drive, with what to say.
pub const NOT_IN_THIS_RELEASE: &[&str] = &["gke"];

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
    let message = if NOT_IN_THIS_RELEASE.contains(&name) {
        format!(
            "{name} is not available in this release; available providers: {}",
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

/// Adds every entry's flags to the command, and lists the providers in `--provider`'s help.
pub fn augment(command: clap::Command) -> clap::Command {
    let providers: Vec<String> = REGISTRY
        .iter()
        .map(|e| format!("{} ({})", e.name, e.help))
        .collect();
    let mut command = command.mut_arg("provider", |a| {
        a.help(format!(
            "Provider: {}. gke is not in this release",
            providers.join("; ")
        ))
    });
    let mut added: Vec<&str> = Vec::new();
    for (_, s) in all_settings() {
        // A setting several providers take (`cluster`) is one flag, its help naming each.
        if added.contains(&s.key) {
            continue;
        }
        added.push(s.key);
        let help: Vec<String> = all_settings()
            .filter(|(_, o)| o.key == s.key)
            .map(|(e, o)| format!("{}: {}", e.name, o.help))
            .collect();
        let mut arg = Arg::new(s.key)
            .long(s.flag)
            .global(true)
            .help(help.join("; "));
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
        for (_, s) in all_settings() {
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
        // A key several providers share has one flag and one kind; otherwise keys and flags
        // are unique.
        let mut pairs: Vec<(&str, &str, bool)> = all_settings()
            .map(|(_, s)| (s.key, s.flag, s.kind == SettingKind::Switch))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut keys: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        let mut flags: Vec<&str> = pairs.iter().map(|p| p.1).collect();
        let n = pairs.len();
        keys.sort_unstable();
        keys.dedup();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(
            keys.len(),
            n,
            "a kup.yaml key is declared twice, differently"
        );
        assert_eq!(flags.len(), n, "a flag is declared twice, differently");
        assert_eq!(accepted(), "eks, kubeadm, aks");
        assert!(config_keys().contains("aks: subscription, resource_group, cluster"));
        assert!(config_keys().contains("eks: cluster, region"));
        let e = find("foo").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("accepted: eks, kubeadm, aks"), "{e}");
        let e = find("gke").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("not available in this release"), "{e}");
    }
}
