//! The one backoff the engine uses for polling provider operations and retrying transient
//! errors: exponential, capped, with jitter so that many runs (or many polls of one run) do
//! not hit an API in lock-step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How delays grow between polls and retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackoffPolicy {
    /// The first delay.
    #[serde(with = "crate::serde_secs")]
    pub initial: Duration,
    /// The largest delay.
    #[serde(with = "crate::serde_secs")]
    pub max: Duration,
    /// Growth per attempt (at least 1).
    pub multiplier: f64,
    /// Fraction of each delay replaced by randomness, `0.0..=1.0` (0.2: each delay is 80–100 %
    /// of the nominal one).
    pub jitter: f64,
    /// Attempts at a read that keeps failing with a transient error before giving up.
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
    /// A fast policy for tests and simulators: 5 ms up to 100 ms.
    pub fn fast() -> Self {
        Self {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(100),
            multiplier: 2.0,
            jitter: 0.2,
            max_retries: 8,
        }
    }

    /// Checks the fields; the error names the field.
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.initial.is_zero() || self.max < self.initial {
            return Err(Error::invalid_input(
                format!("{field}.initial"),
                format!(
                    "{:?} must be positive and at most max ({:?})",
                    self.initial, self.max
                ),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(Error::invalid_input(
                format!("{field}.multiplier"),
                format!("{} must be a number of at least 1", self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::invalid_input(
                format!("{field}.jitter"),
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
            rng: Rng::seeded(),
        }
    }
}

/// One sequence of delays from a [`BackoffPolicy`].
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
    rng: Rng,
}

impl Backoff {
    /// The next delay: the nominal delay with jitter taken off, then the nominal delay grows.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        let grown = nominal.as_secs_f64() * self.policy.multiplier;
        self.next = Duration::from_secs_f64(grown.min(self.policy.max.as_secs_f64()));
        let cut = nominal.as_secs_f64() * self.policy.jitter * self.rng.unit();
        Duration::from_secs_f64((nominal.as_secs_f64() - cut).max(0.0))
    }

    /// Starts again from the initial delay (after progress was seen).
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }
}

/// Calls `f` until it succeeds, fails with an error that is not transient (see
/// [`Error::is_transient`]), or has failed `policy.max_retries + 1` times, sleeping the
/// policy's delays in between.
pub(crate) async fn retry<T, F, Fut>(policy: &BackoffPolicy, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = policy.start();
    let mut failures = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && failures < policy.max_retries => {
                failures += 1;
                tracing::debug!(error = %e, failures, "transient error; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A small splitmix64 generator: jitter needs spread, not cryptographic quality.
#[derive(Debug)]
struct Rng(u64);

static SEED_COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

impl Rng {
    fn seeded() -> Self {
        let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
        let bump = SEED_COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        Self(nanos ^ bump ^ u64::from(std::process::id()).rotate_left(32))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0.0..1.0`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A short random hex string (holder ids).
pub(crate) fn random_hex() -> String {
    let mut rng = Rng::seeded();
    format!("{:08x}", rng.next_u64() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let nominal = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0];
        for n in nominal {
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
    }
}
