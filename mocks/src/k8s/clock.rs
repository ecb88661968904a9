//! The simulated clock that drives controllers, timestamps and PDB expiry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// Simulated time: starts at the real current time and runs `scale` simulated seconds per real
/// second; [`SimClock::advance`] jumps it forward at once.
///
/// Every delay in [`super::SimConfig`] and every timestamp the simulator writes into objects
/// (creation, deletion, condition transitions, `disruptedPods`) is in simulated time. With a
/// scale above 1 those timestamps run ahead of the real clock, which matters only to clients that
/// compare them with their own clock (e.g. `kubectl drain --skip-wait-for-delete-timeout`).
#[derive(Clone, Debug)]
pub struct SimClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    scale: f64,
    start_real: Instant,
    start_sim: Timestamp,
    jumped: Mutex<SignedDuration>,
}

impl SimClock {
    pub(crate) fn new(scale: f64) -> Self {
        SimClock {
            inner: Arc::new(ClockInner {
                scale,
                start_real: Instant::now(),
                start_sim: Timestamp::now(),
                jumped: Mutex::new(SignedDuration::ZERO),
            }),
        }
    }

    /// Simulated seconds per real second.
    pub fn scale(&self) -> f64 {
        self.inner.scale
    }

    /// The current simulated time.
    pub fn now(&self) -> Timestamp {
        let real = self.inner.start_real.elapsed().as_secs_f64() * self.inner.scale;
        let jumped = *self.inner.jumped.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = SignedDuration::try_from_secs_f64(real).unwrap_or(SignedDuration::MAX);
        self.inner
            .start_sim
            .saturating_add(elapsed.saturating_add(jumped))
            .unwrap_or(self.inner.start_sim)
    }

    /// Moves simulated time forward by `by` at once; controllers act on it right away.
    pub fn advance(&self, by: Duration) {
        let mut j = self.inner.jumped.lock().unwrap_or_else(|e| e.into_inner());
        *j = j.saturating_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX));
    }

    /// How long, in real time, a simulated duration takes.
    pub fn to_real(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64(sim.as_secs_f64() / self.inner.scale)
    }
}

/// Kubernetes' wire format for times (`metav1.Time`): RFC 3339, whole seconds, UTC.
pub(crate) fn rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a `metav1.Time` (or `MicroTime`) value.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// `now + secs` (clamped), for deadlines.
pub(crate) fn plus(ts: Timestamp, d: Duration) -> Timestamp {
    ts.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_time_and_scale_converts() {
        let c = SimClock::new(10.0);
        let before = c.now();
        c.advance(Duration::from_secs(120));
        let moved = c.now().duration_since(before);
        assert!(moved >= SignedDuration::from_secs(120));
        assert_eq!(c.to_real(Duration::from_secs(10)), Duration::from_secs(1));
        assert!(rfc3339(before).ends_with('Z'));
    }
}
