//! The one backoff and retry policy of kup: drains, the journal, the lock, node reads and
//! provider-operation polling all wait with a [`BackoffPolicy`] and repeat a failed call with
//! [`retry`], which repeats only what the error says is worth repeating ([`Retryable`]: for
//! Kubernetes answers, the [`crate::kube_error`] classifier) and honours the server's
//! `Retry-After`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::kube_error;

/// The longest a server-requested `Retry-After` is honoured for; longer values are capped so a
/// misbehaving proxy cannot park a run for hours (callers' deadlines still apply).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How delays grow between polls and retries: exponential, capped, with jitter so that many
/// runs (or many waits of one run) do not hit an API in lock-step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackoffPolicy {
    /// The first delay.
    #[serde(with = "secs")]
    pub initial: Duration,
    /// The largest delay.
    #[serde(with = "secs")]
    pub max: Duration,
    /// Growth per attempt (at least 1).
    pub multiplier: f64,
    /// Fraction of each delay replaced by randomness, `0.0..=1.0` (0.2: each delay is 80–100 %
    /// of the nominal one).
    pub jitter: f64,
    /// Retries after the first attempt of a call that keeps failing with a retryable error.
    pub max_retries: u32,
}

impl Default for BackoffPolicy {
    /// 2 s growing ×1.6 up to 30 s, 20 % jitter, 8 retries: polite to cloud APIs whose
    /// operations take minutes.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(30),
            multiplier: 1.6,
            jitter: 0.2,
            max_retries: 8,
        }
    }
}

impl BackoffPolicy {
    /// Doubling from `initial` up to `max`, 20 % jitter, `max_retries` retries.
    pub const fn exponential(initial: Duration, max: Duration, max_retries: u32) -> Self {
        Self {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.2,
            max_retries,
        }
    }

    /// A fast policy for tests and simulators: 5 ms up to 100 ms.
    pub fn fast() -> Self {
        Self::exponential(Duration::from_millis(5), Duration::from_millis(100), 8)
    }

    /// Checks the fields; the error names the field (`{field}.multiplier`).
    pub fn validate(&self, field: &str) -> Result<()> {
        let invalid = |name: &str, message: String| Error::InvalidInput {
            field: format!("{field}.{name}"),
            message,
        };
        if self.initial.is_zero() || self.max < self.initial {
            return Err(invalid(
                "initial",
                format!(
                    "{:?} must be positive and at most max ({:?})",
                    self.initial, self.max
                ),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(invalid(
                "multiplier",
                format!("{} must be a number of at least 1", self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(invalid(
                "jitter",
                format!("{} must be between 0 and 1", self.jitter),
            ));
        }
        Ok(())
    }

    /// A fresh sequence of delays.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: self.clone(),
            next: self.initial,
        }
    }
}

/// One sequence of delays from a [`BackoffPolicy`].
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
}

impl Backoff {
    /// Doubling delays from `initial` up to `max` with 20 % jitter, for wait loops that bound
    /// their attempts themselves (watches, budget waits).
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        BackoffPolicy::exponential(initial, max, 0).start()
    }

    /// The next delay: the nominal delay with jitter taken off, then the nominal delay grows.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        let grown = nominal.as_secs_f64() * self.policy.multiplier;
        self.next = Duration::from_secs_f64(grown.min(self.policy.max.as_secs_f64()));
        jitter(nominal, self.policy.jitter)
    }

    /// The next delay, or the server's `Retry-After` (capped at [`MAX_RETRY_AFTER`]) when that
    /// is longer.
    pub fn next_delay_after(&mut self, retry_after: Option<Duration>) -> Duration {
        let own = self.next_delay();
        match retry_after {
            Some(server) => own.max(server.min(MAX_RETRY_AFTER)),
            None => own,
        }
    }

    /// Starts again from the initial delay (after progress was seen).
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }
}

/// `d` with a random part of up to `fraction` of it taken off (`fraction` is clamped to
/// `0.0..=1.0`).
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let cut = d.as_secs_f64() * fraction.clamp(0.0, 1.0) * unit_random();
    Duration::from_secs_f64((d.as_secs_f64() - cut).max(0.0))
}

/// A uniformly distributed number in `[0, 1)`, different on every call. Jitter needs spread,
/// not cryptographic quality: std's randomly keyed hasher over a counter is enough.
fn unit_random() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 53 random bits make an exactly representable f64 in [0, 1).
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a failed call is worth repeating unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryHint {
    /// No: the answer will not change (or needs a fresh read first, like a 409).
    Stop,
    /// Yes, after the policy's delay.
    Retry,
    /// Yes, after at least this long (the server's `Retry-After`).
    RetryAfter(Duration),
}

impl RetryHint {
    /// From a retryable bit and the server's delay.
    pub fn from_parts(retryable: bool, retry_after: Option<Duration>) -> Self {
        match (retryable, retry_after) {
            (false, _) => Self::Stop,
            (true, None) => Self::Retry,
            (true, Some(after)) => Self::RetryAfter(after),
        }
    }

    /// Whether to retry at all.
    pub fn is_retryable(self) -> bool {
        self != Self::Stop
    }

    fn retry_after(self) -> Option<Duration> {
        match self {
            Self::RetryAfter(after) => Some(after),
            _ => None,
        }
    }
}

/// An error that says whether the call that failed is worth repeating.
pub trait Retryable {
    /// Whether to repeat the call, and how long the server asked to wait.
    fn retry_hint(&self) -> RetryHint;
}

impl Retryable for kube::Error {
    fn retry_hint(&self) -> RetryHint {
        let class = kube_error::classify(self);
        RetryHint::from_parts(class.retryable, class.retry_after)
    }
}

impl Retryable for kup_core::Error {
    /// Provider errors marked retryable (throttling, 5xx, unreachable) and timeouts of one
    /// call. Busy and Conflict are answers to act on, not noise, so they are not repeated.
    fn retry_hint(&self) -> RetryHint {
        let retryable = match self {
            kup_core::Error::Provider { retryable, .. } => *retryable,
            kup_core::Error::Timeout { .. } => true,
            _ => false,
        };
        RetryHint::from_parts(retryable, None)
    }
}

impl<E: Retryable + ?Sized> Retryable for &E {
    fn retry_hint(&self) -> RetryHint {
        (**self).retry_hint()
    }
}

/// Calls `op` until it succeeds, fails with an error that is not [`Retryable`], or has failed
/// `policy.max_retries + 1` times, sleeping the policy's delays (or the server's
/// `Retry-After`, when longer) in between.
pub async fn retry<T, E, F, Fut>(policy: &BackoffPolicy, op: F) -> std::result::Result<T, E>
where
    E: Retryable + fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    retry_until(policy, None, op).await
}

/// [`retry`], giving up early with the last error when the next attempt would start after
/// `deadline`.
pub async fn retry_until<T, E, F, Fut>(
    policy: &BackoffPolicy,
    deadline: Option<Instant>,
    mut op: F,
) -> std::result::Result<T, E>
where
    E: Retryable + fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let mut backoff = policy.start();
    let mut failures = 0u32;
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let hint = err.retry_hint();
        if !hint.is_retryable() || failures >= policy.max_retries {
            return Err(err);
        }
        let delay = backoff.next_delay_after(hint.retry_after());
        if deadline.is_some_and(|d| Instant::now() + delay >= d) {
            return Err(err);
        }
        failures += 1;
        tracing::debug!(error = %err, ?delay, failures, "retryable error; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// Durations as (fractional) seconds in JSON, like every duration in kup's options.
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kube::core::Status;
    use kube::core::response::StatusDetails;

    use super::*;

    fn no_details() -> StatusDetails {
        StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        }
    }

    fn api_error(code: u16, retry_after: u32) -> kube::Error {
        let mut status = Status::failure("answer", "");
        status.code = code;
        status.details = Some(StatusDetails {
            retry_after_seconds: retry_after,
            ..no_details()
        });
        kube::Error::Api(status.boxed())
    }

    /// Exact delays: 1 s doubling to 4 s, no jitter.
    fn exact(max_retries: u32) -> BackoffPolicy {
        BackoffPolicy {
            jitter: 0.0,
            ..BackoffPolicy::exponential(
                Duration::from_secs(1),
                Duration::from_secs(4),
                max_retries,
            )
        }
    }

    /// Runs `retry` over `answers` (in order; `Ok(())` ends it) and returns the result and
    /// the paused clock's time of every attempt, relative to the first.
    async fn attempts(
        policy: &BackoffPolicy,
        deadline: Option<Instant>,
        answers: Vec<std::result::Result<(), kube::Error>>,
    ) -> (std::result::Result<(), kube::Error>, Vec<Duration>) {
        let start = Instant::now();
        let seen = Mutex::new(Vec::new());
        let answers = Mutex::new(answers.into_iter());
        let result = retry_until(policy, deadline, || {
            seen.lock().map(|mut s| s.push(start.elapsed())).ok();
            let next = answers.lock().ok().and_then(|mut a| a.next());
            async move { next.unwrap_or(Ok(())) }
        })
        .await;
        (result, seen.into_inner().unwrap_or_default())
    }

    fn secs(list: &[f64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_up_to_the_limit_with_growing_delays() {
        let answers = (0..10).map(|_| Err(api_error(503, 0))).collect();
        let (result, at) = attempts(&exact(4), None, answers).await;
        assert!(result.is_err(), "gives up after the limit");
        // 1 + 4 retries, 1 s, 2 s, 4 s, 4 s apart.
        assert_eq!(at, secs(&[0.0, 1.0, 3.0, 7.0, 11.0]));

        let answers = vec![Err(api_error(429, 0)), Err(api_error(504, 0)), Ok(())];
        let (result, at) = attempts(&exact(4), None, answers).await;
        assert!(result.is_ok());
        assert_eq!(at, secs(&[0.0, 1.0, 3.0]));
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_stop_at_once() {
        for code in [400, 403, 404, 409, 410, 422] {
            let answers = vec![Err(api_error(code, 0)), Ok(())];
            let (result, at) = attempts(&exact(4), None, answers).await;
            assert!(result.is_err(), "{code}");
            assert_eq!(at.len(), 1, "{code} is not retried");
        }
        let tls = kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        )));
        let (result, at) = attempts(&exact(4), None, vec![Err(tls), Ok(())]).await;
        assert!(result.is_err());
        assert_eq!(at.len(), 1, "a certificate problem is not retried");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_capped() {
        let answers = vec![Err(api_error(429, 10)), Err(api_error(429, 3600)), Ok(())];
        let (result, at) = attempts(&exact(4), None, answers).await;
        assert!(result.is_ok());
        // 10 s as asked (longer than the 1 s backoff), then 60 s instead of an hour.
        assert_eq!(at, secs(&[0.0, 10.0, 70.0]));
        // A Retry-After shorter than the backoff does not shorten it.
        let answers = vec![Err(api_error(503, 1)), Err(api_error(503, 1)), Ok(())];
        let (_, at) = attempts(&exact(4), None, answers).await;
        assert_eq!(at, secs(&[0.0, 1.0, 3.0]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_ends_the_retries_early() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let answers = (0..10).map(|_| Err(api_error(503, 0))).collect();
        let (result, at) = attempts(&exact(8), Some(deadline), answers).await;
        assert!(result.is_err());
        // The third retry would start at 7 s, past the deadline.
        assert_eq!(at, secs(&[0.0, 1.0, 3.0]));
    }

    #[tokio::test(start_paused = true)]
    async fn domain_errors_retry_only_provider_noise_and_timeouts() {
        let throttled = kup_core::Error::provider(
            kup_core::ProviderKind::Eks,
            Some("ThrottlingException".into()),
            "Rate exceeded",
            true,
        );
        assert_eq!(throttled.retry_hint(), RetryHint::Retry);
        let busy = kup_core::Error::Busy {
            message: "update in progress".into(),
            operation: None,
        };
        assert_eq!(busy.retry_hint(), RetryHint::Stop);
        let conflict = kup_core::Error::Conflict {
            message: "changed".into(),
        };
        assert_eq!(conflict.retry_hint(), RetryHint::Stop);
        let mut calls = 0;
        let result: std::result::Result<(), kup_core::Error> = retry(&exact(2), || {
            calls += 1;
            async {
                Err(kup_core::Error::provider(
                    kup_core::ProviderKind::Eks,
                    None,
                    "unreachable",
                    true,
                ))
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 3);
    }

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_jitter() {
        let policy = BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            multiplier: 2.0,
            jitter: 0.25,
            max_retries: 3,
        };
        let mut b = policy.start();
        for n in [1.0, 2.0, 4.0, 8.0, 8.0, 8.0] {
            let d = b.next_delay().as_secs_f64();
            assert!(d <= n && d >= n * 0.75, "{d} not within 75-100% of {n}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = BackoffPolicy {
            jitter: 1.0,
            ..BackoffPolicy::default()
        };
        let firsts: std::collections::BTreeSet<u128> = (0..20)
            .map(|_| policy.start().next_delay().as_micros())
            .collect();
        assert!(firsts.len() > 10, "{firsts:?}");
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(10), 0.2);
            assert!(
                d > Duration::from_secs(8) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = BackoffPolicy {
            multiplier: 0.5,
            ..BackoffPolicy::default()
        };
        let err = bad.validate("polling").expect_err("invalid").to_string();
        assert!(err.contains("polling.multiplier"), "{err}");
        let bad = BackoffPolicy {
            initial: Duration::ZERO,
            ..BackoffPolicy::default()
        };
        assert!(bad.validate("polling").is_err());
        let bad = BackoffPolicy {
            jitter: 1.5,
            ..BackoffPolicy::default()
        };
        let err = bad.validate("polling").expect_err("invalid").to_string();
        assert!(err.contains("polling.jitter"), "{err}");
    }

    #[test]
    fn the_policy_reads_and_writes_seconds() {
        let json = serde_json::to_value(BackoffPolicy::fast()).expect("encode");
        assert_eq!(json["initial"], serde_json::json!(0.005));
        let back: BackoffPolicy =
            serde_json::from_value(serde_json::json!({"max_retries": 2})).expect("decode");
        assert_eq!(back.max_retries, 2);
        assert_eq!(back.initial, BackoffPolicy::default().initial);
    }
}
