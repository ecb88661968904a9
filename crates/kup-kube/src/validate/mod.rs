//! Post-upgrade validation: what makes an upgrade safe to continue.
//!
//! A round checks the API server's version and `/readyz`, every node (Ready, not under
//! pressure, network available, at its pool's expected kubelet version), system pods,
//! Deployments/StatefulSets/DaemonSets available, and pods stuck Pending because of the
//! upgrade. [`Validator::run`] repeats rounds until `passes` consecutive rounds pass (kOps:
//! 2, 10 s apart, 30 s after a failure, 15 min timeout); a failed round resets the count, so a
//! flapping cluster never validates. Each round is reported as `Event::ValidationRound`.
//!
//! [`wait_node_ready`] is the per-node wait the engine uses after replacing or upgrading a node.

mod expectation;
mod round;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use kup_core::{Event, EventSink, Finding, KubeVersion};
use serde::{Deserialize, Serialize};

pub use expectation::{Expectation, PoolExpectation};

use crate::error::{Error, Result};
use crate::listing::{DEFAULT_PAGE_SIZE, Reader};
use crate::preflight::PoolMatcher;
use crate::report::{Findings, ScanStats, validate_overrides};

/// How validation repeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationOptions {
    /// Consecutive passing rounds required.
    pub passes: u32,
    /// Wait after a passing round.
    #[serde(with = "secs")]
    pub interval: Duration,
    /// Wait after a failing round.
    #[serde(with = "secs")]
    pub failure_interval: Duration,
    /// Give up after this long.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Finding codes that do not fail a round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// List page size.
    pub page_size: u32,
}

impl Default for ValidationOptions {
    /// kOps' rolling-update validation: 2 passes, 10 s apart, 30 s after a failure, 15 min.
    fn default() -> Self {
        Self {
            passes: 2,
            interval: Duration::from_secs(10),
            failure_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(15 * 60),
            overrides: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl ValidationOptions {
    fn check(&self) -> Result<()> {
        if self.passes == 0 {
            return Err(Error::InvalidInput {
                field: "passes".into(),
                message: "must be at least 1".into(),
            });
        }
        validate_overrides(self.overrides.iter().map(String::as_str))
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// The result of validation: the last round's findings, in the pre-flight report's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// Whether the required consecutive rounds passed.
    pub passed: bool,
    /// True when validation stopped at its timeout.
    #[serde(default)]
    pub timed_out: bool,
    /// Rounds run.
    pub rounds: u32,
    /// Consecutive passing rounds at the end.
    pub consecutive: u32,
    /// Consecutive passes required.
    pub required: u32,
    /// The last round's findings and the overrides.
    #[serde(flatten)]
    pub findings: Findings,
    /// What the last round read; `api_requests` and `elapsed_ms` cover every round.
    pub stats: ScanStats,
}

impl ValidationReport {
    /// Blockers of the last round left after overrides.
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.findings.blockers()
    }

    /// True when the last round failed.
    pub fn has_blockers(&self) -> bool {
        self.findings.has_blockers()
    }

    /// Findings of the last round with this code.
    pub fn with_code<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.with_code(code)
    }

    /// The report as a plain-text table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Validation: {} after {} round(s), {}/{} consecutive passes{}\n",
            if self.passed { "passed" } else { "failed" },
            self.rounds,
            self.consecutive,
            self.required,
            if self.timed_out { " (timed out)" } else { "" }
        );
        out.push_str(&self.findings.to_table());
        out
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Validates one cluster.
#[derive(Clone)]
pub struct Validator {
    client: Client,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").finish_non_exhaustive()
    }
}

impl Validator {
    /// Validates through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// One round. `passed` is true when no blocker remains after overrides.
    pub async fn check_once(
        &self,
        expectation: &Expectation,
        options: &ValidationOptions,
    ) -> Result<ValidationReport> {
        options.check()?;
        let matcher = matcher(expectation)?;
        let reader = Reader::new(self.client.clone(), options.page_size);
        let started = std::time::Instant::now();
        let mut stats = ScanStats::default();
        let mut findings =
            Findings::new(round::run(&reader, expectation, &matcher, &mut stats).await);
        findings.override_codes(options.overrides.iter().map(String::as_str))?;
        stats.api_requests = reader.requests();
        stats.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let passed = !findings.has_blockers();
        Ok(ValidationReport {
            passed,
            timed_out: false,
            rounds: 1,
            consecutive: u32::from(passed),
            required: 1,
            findings,
            stats,
        })
    }

    /// Rounds until `options.passes` consecutive rounds pass or `options.timeout` passes. A
    /// failing round resets the count. Errors only for bad input; a cluster that does not
    /// validate in time gives a report with `passed: false` and `timed_out: true`.
    pub async fn run(
        &self,
        expectation: &Expectation,
        options: &ValidationOptions,
        events: &dyn EventSink,
    ) -> Result<ValidationReport> {
        options.check()?;
        let matcher = matcher(expectation)?;
        let reader = Reader::new(self.client.clone(), options.page_size);
        let started = tokio::time::Instant::now();
        let deadline = started + options.timeout;
        let mut round = 0u32;
        let mut consecutive = 0u32;
        loop {
            round += 1;
            let mut stats = ScanStats::default();
            let mut findings =
                Findings::new(round::run(&reader, expectation, &matcher, &mut stats).await);
            findings.override_codes(options.overrides.iter().map(String::as_str))?;
            let passed = !findings.has_blockers();
            consecutive = if passed { consecutive + 1 } else { 0 };
            events.emit(Event::ValidationRound {
                round,
                passed,
                consecutive,
                required: options.passes,
                failures: findings
                    .blockers()
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .collect(),
            });
            let wait = if passed {
                options.interval
            } else {
                options.failure_interval
            };
            let done = consecutive >= options.passes;
            let timed_out = !done && tokio::time::Instant::now() + wait > deadline;
            if done || timed_out {
                stats.api_requests = reader.requests();
                stats.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Ok(ValidationReport {
                    passed: done,
                    timed_out,
                    rounds: round,
                    consecutive,
                    required: options.passes,
                    findings,
                    stats,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn matcher(expectation: &Expectation) -> Result<PoolMatcher> {
    let pools: Vec<_> = expectation
        .pools
        .iter()
        .map(PoolExpectation::as_pool)
        .collect();
    PoolMatcher::new(&pools)
}

/// How often [`wait_node_ready`] looks.
const NODE_POLL: Duration = Duration::from_secs(1);

/// Waits until node `node` is Ready with its kubelet at `version` (`1.31` accepts any patch).
/// A node that is missing (being replaced, not registered yet) is waited for too. Fails with
/// [`Error::Timeout`] naming what was last seen.
pub async fn wait_node_ready(
    client: &Client,
    node: &str,
    version: &KubeVersion,
    timeout: Duration,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last_seen = match api.get_opt(node).await {
            Ok(Some(n)) => {
                let ready = crate::preflight::node_problems(&n)
                    .iter()
                    .find(|(code, _)| *code == "node.not-ready")
                    .map(|(_, d)| d.clone());
                let kubelet = n
                    .status
                    .as_ref()
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| i.kubelet_version.clone())
                    .unwrap_or_default();
                let at_version = KubeVersion::parse(&kubelet).is_ok_and(|k| k.matches(version));
                if ready.is_none() && at_version {
                    return Ok(());
                }
                format!(
                    "{}, kubelet {kubelet}",
                    ready.unwrap_or_else(|| "Ready=True".to_string())
                )
            }
            Ok(None) => "not found".to_string(),
            // Transient API errors (an API server restarting mid-upgrade) are waited out.
            Err(e) => format!("API error: {e}"),
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: format!(
                    "node {node} to be Ready at kubelet {version} (last seen: {last_seen})"
                ),
                after: timeout,
            });
        }
        tokio::time::sleep(NODE_POLL.min(deadline - now)).await;
    }
}
