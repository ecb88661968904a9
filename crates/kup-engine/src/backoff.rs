//! The backoff the engine polls provider operations and retries transient errors with. It is
//! kup's one policy, [`kup_kube::retry`], shared with the drain; re-exported here so that
//! `kup_engine::backoff::BackoffPolicy` keeps naming it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use kup_kube::retry::retry;
pub use kup_kube::retry::{Backoff, BackoffPolicy, RetryHint, Retryable};

/// A short random hex string (holder ids): unique enough to tell runs apart, no more.
pub(crate) fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_suffixes_differ() {
        let ids: std::collections::BTreeSet<String> = (0..50).map(|_| random_hex()).collect();
        assert!(ids.len() > 45, "{ids:?}");
        assert!(ids.iter().all(|id| id.len() == 8));
    }
}
