//! Jittered exponential backoff and the bounded retry of transient API answers (429/503/504
//! without a disruption-budget cause, dropped connections), honouring the server's
//! `Retry-After`.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive transient failures of one request before the drain gives up on it.
pub(crate) const MAX_TRANSIENT_ATTEMPTS: u32 = 8;

/// The longest a server-requested `Retry-After` is honoured for; longer values are capped so a
/// misbehaving proxy cannot park the drain for hours (the drain deadline still applies).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A uniformly distributed number in `[0, 1)`, different on every call. Jitter needs no
/// cryptographic quality: std's randomly keyed hasher over a counter is enough.
pub(crate) fn unit_random() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 53 random bits make an exactly representable f64 in [0, 1).
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `d` scaled by a random factor in `[1 - spread, 1 + spread)`.
pub(crate) fn jitter(d: Duration, spread: f64) -> Duration {
    d.mul_f64(1.0 - spread + 2.0 * spread * unit_random())
}

/// Exponential backoff with ±20% jitter so that many waiters do not retry in lockstep.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; doubles up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        jitter(delay, 0.2)
    }

    /// Back to the initial delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Whether an error from kube is worth retrying unchanged: overload (429/503/504) or a
/// connection that broke before an answer arrived.
pub(crate) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The server's `retryAfterSeconds`, when an API error carries one.
pub(crate) fn retry_after_of(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// The delay to wait before retrying: the backoff's, or the server's `Retry-After` when longer.
pub(crate) fn delay_honouring(backoff: &mut Backoff, retry_after: Option<Duration>) -> Duration {
    let own = backoff.next_delay();
    match retry_after {
        Some(server) => own.max(server.min(MAX_RETRY_AFTER)),
        None => own,
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, fails transiently
/// [`MAX_TRANSIENT_ATTEMPTS`] times in a row, or the next attempt would start after `deadline`.
///
/// kube's own client retry (on by default) may already have retried the same request; this
/// bound keeps the total finite either way.
pub(crate) async fn retry_transient<T, F, Fut>(
    deadline: Option<Instant>,
    mut op: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if is_transient(&err) && attempt < MAX_TRANSIENT_ATTEMPTS => {
                let delay = delay_honouring(&mut backoff, retry_after_of(&err));
                if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                    return Err(err);
                }
                tracing::debug!(error = %err, ?delay, attempt, "transient API error, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_spread() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(10), 0.2);
            assert!(
                d >= Duration::from_secs(8) && d < Duration::from_secs(12),
                "{d:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_secs_f64()).collect();
        let expected = [1.0, 2.0, 4.0, 4.0, 4.0];
        for (got, want) in delays.iter().zip(expected) {
            assert!((got - want).abs() <= want * 0.2 + 1e-9, "{delays:?}");
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(1201));
    }

    #[test]
    fn server_retry_after_wins_when_longer_but_is_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d = delay_honouring(&mut b, Some(Duration::from_secs(10)));
        assert_eq!(d, Duration::from_secs(10));
        let d = delay_honouring(&mut b, Some(Duration::from_secs(3600)));
        assert_eq!(d, MAX_RETRY_AFTER);
        let d = delay_honouring(&mut b, None);
        assert!(d < Duration::from_secs(2));
    }

    fn api_error(code: u16, retry_after: u32) -> kube::Error {
        let mut status = kube::core::Status::failure("overloaded", "TooManyRequests");
        status.code = code;
        status.details = Some(kube::core::response::StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: retry_after,
        });
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn only_overload_and_broken_connections_are_transient() {
        assert!(is_transient(&api_error(429, 0)));
        assert!(is_transient(&api_error(503, 0)));
        assert!(is_transient(&api_error(504, 0)));
        assert!(!is_transient(&api_error(500, 0)));
        assert!(!is_transient(&api_error(404, 0)));
        assert_eq!(
            retry_after_of(&api_error(429, 3)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after_of(&api_error(429, 0)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_a_bounded_number_of_times() {
        let mut calls = 0;
        let result: Result<(), _> = retry_transient(None, || {
            calls += 1;
            async { Err(api_error(503, 0)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, MAX_TRANSIENT_ATTEMPTS);

        let mut calls = 0;
        let result = retry_transient(None, || {
            calls += 1;
            let fail = calls < 3;
            async move { if fail { Err(api_error(429, 1)) } else { Ok(7) } }
        })
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<(), _> = retry_transient(None, || {
            calls += 1;
            async { Err(api_error(500, 0)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a 500 is not retried");
    }
}
