//! What a drain may do: kubectl's drain flags, plus the bound on concurrent evictions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::selector::check_label_selector;
use crate::error::{Error, Result};

/// Options of [`Drainer::drain`](super::Drainer::drain), named after `kubectl drain`'s flags.
///
/// The default differs from kubectl in one place: `ignore_daemonsets` is **true**, because
/// every real node runs DaemonSet pods (kube-proxy, the CNI, log shippers) that a drain cannot
/// remove anyway (their controller ignores cordons), so kubectl's default would refuse every
/// upgrade drain. [`DrainOptions::kubectl`] gives kubectl's defaults exactly.
///
/// Everything that lets more pods go (`delete_emptydir_data`, `force`) or bypasses
/// PodDisruptionBudgets (`disable_eviction`) is off by default and only ever set explicitly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrainOptions {
    /// Leave DaemonSet-managed pods in place instead of refusing the drain
    /// (`--ignore-daemonsets`). Default: true (see above).
    pub ignore_daemonsets: bool,
    /// Evict pods that use `emptyDir` volumes, losing that data (`--delete-emptydir-data`).
    pub delete_emptydir_data: bool,
    /// Evict pods that declare no controller, and pods of a DaemonSet that no longer exists
    /// (`--force`). They are not recreated anywhere.
    pub force: bool,
    /// Seconds each pod gets to terminate (`--grace-period`); `None` uses the pod's own
    /// `terminationGracePeriodSeconds`. Must be zero or more.
    pub grace_period: Option<i64>,
    /// Deadline for the whole drain of this node (`--timeout`); `None` waits forever. When it
    /// passes, the drain stops with [`Error::DrainTimedOut`] and the node stays cordoned.
    pub timeout: Option<Duration>,
    /// Only drain pods matching this label selector (`--pod-selector`).
    pub pod_selector: Option<String>,
    /// Stop waiting for pods whose deletion started longer ago than this
    /// (`--skip-wait-for-delete-timeout`), such as pods on an unreachable kubelet. Must be at
    /// least one second.
    pub skip_wait_for_delete_timeout: Option<Duration>,
    /// The most eviction (or delete) requests in flight at once. kubectl has no limit; kup
    /// bounds it so a node with thousands of pods does not flood the API server. At least 1.
    pub max_concurrent_evictions: usize,
    /// Change nothing: report which pods would be evicted and which would be refused.
    pub dry_run: bool,
    /// Delete pods with plain DELETEs instead of the eviction API (`--disable-eviction`),
    /// bypassing PodDisruptionBudgets. Never chosen implicitly.
    pub disable_eviction: bool,
}

/// The default for [`DrainOptions::max_concurrent_evictions`].
pub const DEFAULT_MAX_CONCURRENT_EVICTIONS: usize = 64;

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            ignore_daemonsets: true,
            delete_emptydir_data: false,
            force: false,
            grace_period: None,
            timeout: None,
            pod_selector: None,
            skip_wait_for_delete_timeout: None,
            max_concurrent_evictions: DEFAULT_MAX_CONCURRENT_EVICTIONS,
            dry_run: false,
            disable_eviction: false,
        }
    }
}

impl DrainOptions {
    /// kubectl's defaults: like [`Default`] but `ignore_daemonsets` is false.
    pub fn kubectl() -> Self {
        Self {
            ignore_daemonsets: false,
            ..Self::default()
        }
    }

    /// Checks every field; the error names the field and what it accepts. Called by
    /// [`Drainer::drain`](super::Drainer::drain) before it sends anything.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: String| Error::InvalidInput {
            field: field.into(),
            message,
        };
        if let Some(g) = self.grace_period
            && g < 0
        {
            return Err(invalid(
                "grace_period",
                format!(
                    "{g} is negative; give zero or more seconds, or leave it unset to use each \
                     pod's own terminationGracePeriodSeconds"
                ),
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(invalid(
                "timeout",
                "0 would time out at once; give a positive duration, or leave it unset to wait \
                 without a deadline"
                    .into(),
            ));
        }
        if let Some(d) = self.skip_wait_for_delete_timeout
            && d < Duration::from_secs(1)
        {
            return Err(invalid(
                "skip_wait_for_delete_timeout",
                format!(
                    "{d:?} is less than one second; give at least 1s, or leave it unset to wait \
                     for every pod"
                ),
            ));
        }
        if self.max_concurrent_evictions == 0 {
            return Err(invalid(
                "max_concurrent_evictions",
                "0 would never evict anything; give 1 or more".into(),
            ));
        }
        if let Some(selector) = &self.pod_selector {
            check_label_selector(selector).map_err(|why| {
                invalid(
                    "pod_selector",
                    format!("{selector:?} is not a valid label selector: {why}"),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidInput { field, .. } => field,
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn defaults_are_safe_and_valid() {
        let o = DrainOptions::default();
        assert!(o.ignore_daemonsets);
        assert!(!o.delete_emptydir_data && !o.force && !o.disable_eviction && !o.dry_run);
        assert!(o.validate().is_ok());
        assert!(!DrainOptions::kubectl().ignore_daemonsets);
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |f: fn(&mut DrainOptions)| {
            let mut o = DrainOptions::default();
            f(&mut o);
            field_of(o.validate().expect_err("invalid"))
        };
        assert_eq!(bad(|o| o.grace_period = Some(-1)), "grace_period");
        assert_eq!(bad(|o| o.timeout = Some(Duration::ZERO)), "timeout");
        assert_eq!(
            bad(|o| o.skip_wait_for_delete_timeout = Some(Duration::from_millis(10))),
            "skip_wait_for_delete_timeout"
        );
        assert_eq!(
            bad(|o| o.max_concurrent_evictions = 0),
            "max_concurrent_evictions"
        );
        assert_eq!(
            bad(|o| o.pod_selector = Some("app in (web".into())),
            "pod_selector"
        );
    }

    #[test]
    fn options_deserialise_with_defaults_for_missing_fields() {
        let o: DrainOptions = serde_json::from_str(r#"{"force":true}"#).expect("json");
        assert!(o.force && o.ignore_daemonsets);
        assert_eq!(o.max_concurrent_evictions, DEFAULT_MAX_CONCURRENT_EVICTIONS);
    }
}
