//! What a run may do and how long it may wait: [`EngineOptions`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use kup_core::{
    AddonOptions, BackupOptions, ControlPlaneOptions, NodePoolOptions, StuckDrainPolicy,
};
use kup_kube::drain::DrainOptions;
use kup_kube::validate::ValidationOptions;
use serde::{Deserialize, Serialize};

use crate::backoff::BackoffPolicy;
use crate::error::{Error, Result};

/// Per-step time limits. A limit that passes fails the step with a timeout; the journal keeps
/// any operation still running so that a resume polls it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepTimeouts {
    /// A control-plane hop (EKS takes 10–25 min per minor).
    #[serde(with = "crate::serde_secs")]
    pub control_plane: Duration,
    /// A provider-rolled pool upgrade.
    #[serde(with = "crate::serde_secs")]
    pub node_pool: Duration,
    /// One node's upgrade through the provider (kup-rolled pools).
    #[serde(with = "crate::serde_secs")]
    pub node_upgrade: Duration,
    /// One node becoming Ready at its new version.
    #[serde(with = "crate::serde_secs")]
    pub node_ready: Duration,
    /// An add-on upgrade.
    #[serde(with = "crate::serde_secs")]
    pub addon: Duration,
}

impl Default for StepTimeouts {
    fn default() -> Self {
        Self {
            control_plane: Duration::from_secs(60 * 60),
            node_pool: Duration::from_secs(3 * 60 * 60),
            node_upgrade: Duration::from_secs(30 * 60),
            node_ready: Duration::from_secs(15 * 60),
            addon: Duration::from_secs(30 * 60),
        }
    }
}

/// One pool's settings: what the provider receives for a pool it rolls, and what kup does
/// around a pool's nodes (drain timeout, stuck drains).
///
/// `provider.max_unavailable` is the batch size of pools kup rolls; for pools the provider
/// rolls it is passed on, and refused when the provider cannot honour it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolOptions {
    /// What the provider receives for its pool upgrades.
    #[serde(flatten)]
    pub provider: NodePoolOptions,
    /// Per-node drain timeout (nodes kup drains).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_opt_secs"
    )]
    pub drain_timeout: Option<Duration>,
    /// What to do with a node whose drain does not finish.
    pub on_stuck_drain: StuckDrainPolicy,
}

/// Everything a run needs besides the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineOptions {
    /// Finding codes whose blockers the user chose to proceed past (pre-flight and
    /// validation).
    pub overrides: Vec<String>,
    /// Manifest files or directories pre-flight scans for removed APIs.
    pub manifests: Vec<PathBuf>,
    /// Whether pre-flight scans Helm releases.
    pub helm_releases: bool,
    /// How kup drains nodes (timeouts per pool come from the pool options).
    pub drain: DrainOptions,
    /// Pool options for every pool (`max_unavailable`, `drain_timeout`, `on_stuck_drain`…).
    pub pool_defaults: PoolOptions,
    /// Pool options for named pools, replacing `pool_defaults` for them.
    pub pools: BTreeMap<String, PoolOptions>,
    /// Provider-rolled pools that kup drains itself, node by node, ahead of the provider
    /// (the provider must be able to upgrade single nodes).
    pub drain_ahead: BTreeSet<String>,
    /// Control-plane options.
    pub control_plane: ControlPlaneOptions,
    /// Add-on options.
    pub addons: AddonOptions,
    /// Backup options.
    pub backup: BackupOptions,
    /// Validation for the plan's validate steps.
    pub validation: ValidationOptions,
    /// Validation between node batches (the gate: N consecutive passes).
    pub gate: ValidationOptions,
    /// Polling of provider operations and retries of transient errors.
    pub polling: BackoffPolicy,
    /// Per-step time limits.
    pub timeouts: StepTimeouts,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            overrides: Vec::new(),
            manifests: Vec::new(),
            helm_releases: true,
            drain: DrainOptions::default(),
            pool_defaults: PoolOptions::default(),
            pools: BTreeMap::new(),
            drain_ahead: BTreeSet::new(),
            control_plane: ControlPlaneOptions::default(),
            addons: AddonOptions::default(),
            backup: BackupOptions::default(),
            validation: ValidationOptions::default(),
            gate: ValidationOptions::default(),
            polling: BackoffPolicy::default(),
            timeouts: StepTimeouts::default(),
        }
    }
}

impl EngineOptions {
    /// Every pool setting with the field path messages name it by: `pool_defaults` and
    /// `pools.<name>`.
    pub(crate) fn all_pools(&self) -> impl Iterator<Item = (String, &PoolOptions)> {
        std::iter::once(("pool_defaults".to_string(), &self.pool_defaults))
            .chain(self.pools.iter().map(|(n, o)| (format!("pools.{n}"), o)))
    }

    /// The options of one pool.
    pub fn pool(&self, name: &str) -> &PoolOptions {
        self.pools.get(name).unwrap_or(&self.pool_defaults)
    }

    /// The drain options for one pool's nodes.
    pub(crate) fn drain_for(&self, pool: &str) -> DrainOptions {
        let mut drain = self.drain.clone();
        if let Some(t) = self.pool(pool).drain_timeout {
            drain.timeout = Some(t);
        }
        drain
    }

    /// Checks every field before anything runs; the error names the field.
    pub fn validate(&self) -> Result<()> {
        kup_kube::report::validate_overrides(self.overrides.iter().map(String::as_str))?;
        self.drain.validate()?;
        for (field, opts) in self.all_pools() {
            if let Some(m) = &opts.provider.max_unavailable {
                parse_max_unavailable(&format!("{field}.max_unavailable"), m, 10)?;
            }
            if opts.drain_timeout == Some(Duration::ZERO) {
                return Err(Error::invalid_input(
                    format!("{field}.drain_timeout"),
                    "0 would time out at once; give a positive duration or leave it unset",
                ));
            }
        }
        for (field, v) in [("validation", &self.validation), ("gate", &self.gate)] {
            if v.passes == 0 {
                return Err(Error::invalid_input(
                    format!("{field}.passes"),
                    "must be at least 1",
                ));
            }
            if v.timeout.is_zero() {
                return Err(Error::invalid_input(
                    format!("{field}.timeout"),
                    "must be positive",
                ));
            }
        }
        self.polling.validate("polling")?;
        let t = &self.timeouts;
        for (field, d) in [
            ("timeouts.control_plane", t.control_plane),
            ("timeouts.node_pool", t.node_pool),
            ("timeouts.node_upgrade", t.node_upgrade),
            ("timeouts.node_ready", t.node_ready),
            ("timeouts.addon", t.addon),
        ] {
            if d.is_zero() {
                return Err(Error::invalid_input(field, "must be positive"));
            }
        }
        Ok(())
    }
}

/// Resolves `max_unavailable` (`"2"` or `"25%"`) against a pool of `nodes` nodes: percentages
/// round down like Kubernetes' `maxUnavailable`, and the result is at least 1.
pub fn parse_max_unavailable(field: &str, value: &str, nodes: usize) -> Result<usize> {
    let text = value.trim();
    let bad = || {
        Error::invalid_input(
            field,
            format!(
                "{value:?} is not a node count or percentage; accepted: a whole number of at \
                 least 1 (\"2\") or a percentage from 1% to 100% (\"25%\")"
            ),
        )
    };
    if let Some(pct) = text.strip_suffix('%') {
        let pct: usize = pct.trim().parse().map_err(|_| bad())?;
        if !(1..=100).contains(&pct) {
            return Err(bad());
        }
        Ok((nodes * pct / 100).max(1))
    } else {
        let n: usize = text.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unavailable_counts_and_percentages() {
        assert_eq!(parse_max_unavailable("f", "3", 10).ok(), Some(3));
        assert_eq!(parse_max_unavailable("f", "25%", 10).ok(), Some(2));
        assert_eq!(parse_max_unavailable("f", "10%", 3).ok(), Some(1));
        for bad in ["0", "-1", "x", "0%", "150%", ""] {
            let err = parse_max_unavailable("pools.a.max_unavailable", bad, 10)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("pools.a.max_unavailable"), "{err}");
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        let mut o = EngineOptions::default();
        o.pools.insert(
            "gpu".into(),
            PoolOptions {
                provider: NodePoolOptions {
                    max_unavailable: Some("lots".into()),
                    ..NodePoolOptions::default()
                },
                ..PoolOptions::default()
            },
        );
        let err = o.validate().expect_err("invalid").to_string();
        assert!(err.contains("pools.gpu.max_unavailable"), "{err}");
        let o = EngineOptions {
            overrides: vec!["pdb.not-a-code".into()],
            ..EngineOptions::default()
        };
        assert!(
            o.validate()
                .expect_err("invalid")
                .to_string()
                .contains("overrides")
        );
        let mut o = EngineOptions::default();
        o.gate.passes = 0;
        assert!(
            o.validate()
                .expect_err("invalid")
                .to_string()
                .contains("gate.passes")
        );
        assert!(EngineOptions::default().validate().is_ok());
    }
}
