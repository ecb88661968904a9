//! Fault injection: latency, error statuses (at a rate or on the Nth matching call) and
//! connection resets, per route.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[non_exhaustive]
pub enum FaultAction {
    /// Delays the answer (the request is then served normally).
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Answers with an upstream-shaped `Status` of this code instead of serving the request.
    Status {
        /// HTTP status code (e.g. 429, 500, 503, 504).
        code: u16,
        /// Message (default: upstream's text for the code).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `Retry-After` seconds (and `details.retryAfterSeconds`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u32>,
    },
    /// Drops the connection (TCP reset) without answering.
    Reset,
}

/// When a matching request triggers the fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[non_exhaustive]
pub enum FaultTrigger {
    /// Every matching request.
    Always,
    /// Each matching request with this probability (0.0–1.0; deterministic for a given seed).
    Rate {
        /// Probability.
        rate: f64,
    },
    /// Only the Nth matching request (1-based).
    Nth {
        /// Which call.
        n: u64,
    },
    /// The Nth matching request and every one after it.
    FromNth {
        /// First call that fails.
        n: u64,
    },
}

/// A fault rule: which requests (method and path pattern), what happens, and when.
///
/// Path patterns are matched against the URL path (no query): `*` matches within one segment,
/// `**` matches across segments. `/api/v1/namespaces/*/pods/*/eviction` matches every eviction;
/// `/apis/**` every group API request.
///
/// ```
/// use std::time::Duration;
/// use kup_mocks::k8s::Fault;
///
/// let f = Fault::status(503).method("GET").path("/api/v1/nodes").nth(2).times(1);
/// let slow = Fault::latency(Duration::from_millis(300)).path("/api/v1/pods");
/// let drop = Fault::reset().path("/api/v1/namespaces/*/pods/*/eviction").rate(0.5);
/// # let _ = (f, slow, drop);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// HTTP method to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path pattern (`**` = everything).
    #[serde(default = "any_path")]
    pub path: String,
    /// What happens.
    pub action: FaultAction,
    /// When it happens.
    #[serde(default = "always")]
    pub trigger: FaultTrigger,
    /// Stop after firing this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

fn any_path() -> String {
    "**".into()
}

fn always() -> FaultTrigger {
    FaultTrigger::Always
}

impl Fault {
    fn new(action: FaultAction) -> Self {
        Fault {
            method: None,
            path: any_path(),
            action,
            trigger: FaultTrigger::Always,
            times: None,
        }
    }

    /// Answer with `code` (an upstream `Status` body).
    pub fn status(code: u16) -> Self {
        Self::new(FaultAction::Status {
            code,
            message: None,
            retry_after: None,
        })
    }

    /// Delay the answer.
    pub fn latency(delay: Duration) -> Self {
        Self::new(FaultAction::Latency {
            ms: delay.as_millis() as u64,
        })
    }

    /// Reset the connection.
    pub fn reset() -> Self {
        Self::new(FaultAction::Reset)
    }

    /// Only requests with this method.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into().to_ascii_uppercase());
        self
    }

    /// Only requests whose path matches `pattern`.
    pub fn path(mut self, pattern: impl Into<String>) -> Self {
        self.path = pattern.into();
        self
    }

    /// Fire with probability `rate`.
    pub fn rate(mut self, rate: f64) -> Self {
        self.trigger = FaultTrigger::Rate { rate };
        self
    }

    /// Fire on the `n`th matching call only (1-based).
    pub fn nth(mut self, n: u64) -> Self {
        self.trigger = FaultTrigger::Nth { n };
        self
    }

    /// Fire from the `n`th matching call on.
    pub fn from_nth(mut self, n: u64) -> Self {
        self.trigger = FaultTrigger::FromNth { n };
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Sets the status message (status faults).
    pub fn message(mut self, text: impl Into<String>) -> Self {
        if let FaultAction::Status { message, .. } = &mut self.action {
            *message = Some(text.into());
        }
        self
    }

    /// Sets `Retry-After` (status faults).
    pub fn retry_after(mut self, secs: u32) -> Self {
        if let FaultAction::Status { retry_after, .. } = &mut self.action {
            *retry_after = Some(secs);
        }
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && glob(&self.path, path)
    }
}

/// `*` matches within a segment, `**` across segments.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| go(&p[2..], &t[i..])),
            Some(b'*') => {
                let mut i = 0;
                loop {
                    if go(&p[1..], &t[i..]) {
                        return true;
                    }
                    if i == t.len() || t[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Identifies an installed fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FaultId(pub u64);

#[derive(Debug)]
struct Rule {
    id: FaultId,
    fault: Fault,
    matched: u64,
    fired: u64,
}

#[derive(Debug)]
struct State {
    rules: Vec<Rule>,
    next: u64,
    rng: Rng,
}

/// The installed faults of one simulator (cheap to clone; all clones share the rules).
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Mutex<State>>,
}

/// What the server must do to one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub delay: Duration,
    pub status: Option<(u16, Option<String>, Option<u32>)>,
    pub reset: bool,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Faults {
            inner: Arc::new(Mutex::new(State {
                rules: Vec::new(),
                next: 1,
                rng: Rng::new(seed ^ 0xfa17),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a fault; rules are checked in installation order.
    pub fn add(&self, fault: Fault) -> FaultId {
        let mut s = self.lock();
        let id = FaultId(s.next);
        s.next += 1;
        s.rules.push(Rule {
            id,
            fault,
            matched: 0,
            fired: 0,
        });
        id
    }

    /// Removes one fault.
    pub fn remove(&self, id: FaultId) -> bool {
        let mut s = self.lock();
        let before = s.rules.len();
        s.rules.retain(|r| r.id != id);
        s.rules.len() != before
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many times a fault fired.
    pub fn fired(&self, id: FaultId) -> u64 {
        self.lock()
            .rules
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.fired)
    }

    /// Installed faults with their ids and fire counts.
    pub fn list(&self) -> Vec<(FaultId, Fault, u64)> {
        self.lock()
            .rules
            .iter()
            .map(|r| (r.id, r.fault.clone(), r.fired))
            .collect()
    }

    /// Decides what happens to a request: latencies add up, the first firing status or reset wins.
    pub(crate) fn judge(&self, method: &str, path: &str) -> Verdict {
        let mut s = self.lock();
        let State { rules, rng, .. } = &mut *s;
        let mut v = Verdict::default();
        for r in rules.iter_mut() {
            if !r.fault.matches(method, path) {
                continue;
            }
            r.matched += 1;
            if r.fault.times.is_some_and(|t| r.fired >= t) {
                continue;
            }
            let fire = match r.fault.trigger {
                FaultTrigger::Always => true,
                FaultTrigger::Rate { rate } => rng.next_f64() < rate,
                FaultTrigger::Nth { n } => r.matched == n,
                FaultTrigger::FromNth { n } => r.matched >= n,
            };
            if !fire {
                continue;
            }
            match &r.fault.action {
                FaultAction::Latency { ms } => {
                    r.fired += 1;
                    v.delay += Duration::from_millis(*ms);
                }
                FaultAction::Status {
                    code,
                    message,
                    retry_after,
                } if v.status.is_none() && !v.reset => {
                    r.fired += 1;
                    v.status = Some((*code, message.clone(), *retry_after));
                }
                FaultAction::Reset if v.status.is_none() && !v.reset => {
                    r.fired += 1;
                    v.reset = true;
                }
                _ => {}
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "/api/v1/namespaces/*/pods/*/eviction",
            "/api/v1/namespaces/a/pods/b/eviction"
        ));
        assert!(!glob(
            "/api/v1/namespaces/*/pods",
            "/api/v1/namespaces/a/b/pods"
        ));
        assert!(glob("/apis/**", "/apis/apps/v1/deployments"));
        assert!(glob("**", "/anything"));
        assert!(!glob("/api/v1/nodes", "/api/v1/nodes/x"));
    }

    #[test]
    fn triggers_and_limits() {
        let f = Faults::new(1);
        let nth = f.add(Fault::status(500).path("/x").nth(2));
        assert!(f.judge("GET", "/x").status.is_none());
        assert_eq!(f.judge("GET", "/x").status.map(|s| s.0), Some(500));
        assert!(f.judge("GET", "/x").status.is_none());
        assert_eq!(f.fired(nth), 1);
        f.clear();
        let lim = f.add(Fault::reset().method("post").times(2));
        assert!(!f.judge("GET", "/y").reset);
        assert!(f.judge("POST", "/y").reset && f.judge("POST", "/y").reset);
        assert!(!f.judge("POST", "/y").reset);
        assert_eq!(f.fired(lim), 2);
        f.clear();
        f.add(Fault::status(503).rate(0.5));
        let hits = (0..1000)
            .filter(|_| f.judge("GET", "/z").status.is_some())
            .count();
        assert!((400..600).contains(&hits), "{hits}");
        f.clear();
        f.add(Fault::latency(Duration::from_millis(5)));
        f.add(Fault::latency(Duration::from_millis(7)));
        assert_eq!(f.judge("GET", "/").delay, Duration::from_millis(12));
    }
}
