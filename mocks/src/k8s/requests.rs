//! The request log: every API request with its method, path, query, status and timing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::faults::glob;

/// One served request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Status code answered (0 when the connection was reset).
    pub status: u16,
    /// Wall-clock time the request arrived.
    pub at: Timestamp,
    /// Time to the response head (watches: to the start of the stream).
    pub duration: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
}

#[derive(Debug, Default)]
struct LogState {
    entries: Vec<RequestRecord>,
    dropped: u64,
    by_method_status: BTreeMap<(String, u16), u64>,
}

/// The request log of one simulator (cheap to clone; clones share it).
#[derive(Debug, Clone)]
pub struct RequestLog {
    inner: Arc<Mutex<LogState>>,
    limit: usize,
}

impl RequestLog {
    pub(crate) fn new(limit: usize) -> Self {
        RequestLog {
            inner: Arc::new(Mutex::new(LogState::default())),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        let mut s = self.lock();
        *s.by_method_status
            .entry((r.method.clone(), r.status))
            .or_default() += 1;
        if s.entries.len() >= self.limit {
            s.dropped += 1;
        } else {
            s.entries.push(r);
        }
    }

    /// Every recorded request, oldest first (up to the configured limit).
    pub fn entries(&self) -> Vec<RequestRecord> {
        self.lock().entries.clone()
    }

    /// Requests with `method` (any when empty) whose path matches `path_glob`
    /// (`*` within a segment, `**` across segments).
    pub fn matching(&self, method: &str, path_glob: &str) -> Vec<RequestRecord> {
        self.lock()
            .entries
            .iter()
            .filter(|r| {
                (method.is_empty() || r.method.eq_ignore_ascii_case(method))
                    && glob(path_glob, &r.path)
            })
            .cloned()
            .collect()
    }

    /// How many requests match (see [`RequestLog::matching`]).
    pub fn count(&self, method: &str, path_glob: &str) -> usize {
        self.matching(method, path_glob).len()
    }

    /// Total requests served (including those past the entry limit).
    pub fn total(&self) -> u64 {
        self.lock().by_method_status.values().sum()
    }

    /// Counters by `(method, status)`, including requests past the entry limit.
    pub fn counters(&self) -> BTreeMap<(String, u16), u64> {
        self.lock().by_method_status.clone()
    }

    /// Requests answered with `status`.
    pub fn count_status(&self, status: u16) -> u64 {
        self.lock()
            .by_method_status
            .iter()
            .filter(|((_, s), _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        *self.lock() = LogState::default();
    }
}
