//! A lock that lives in this process.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{ClusterLock, LockGuard, LockInfo};
use crate::backoff::random_hex;
use crate::error::{Error, Result};

/// A process-local lock. Clones share it; each clone made with [`LocalLock::as_holder`]
/// claims it under its own identity.
#[derive(Clone, Debug)]
pub struct LocalLock {
    cluster: String,
    identity: String,
    held_by: Arc<Mutex<Option<String>>>,
}

impl LocalLock {
    /// A free lock for `cluster`, claimed as `local-<random>`.
    pub fn new(cluster: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            identity: format!("local-{}", random_hex()),
            held_by: Arc::new(Mutex::new(None)),
        }
    }

    /// The same lock, claimed under another identity (a second would-be run).
    pub fn as_holder(&self, identity: &str) -> Self {
        Self {
            identity: identity.to_string(),
            ..self.clone()
        }
    }
}

#[async_trait]
impl ClusterLock for LocalLock {
    async fn acquire(&self) -> Result<LockGuard> {
        {
            let mut held = self.held_by.lock().unwrap_or_else(|e| e.into_inner());
            match held.as_ref() {
                Some(holder) if *holder != self.identity => {
                    return Err(Error::LockHeld {
                        cluster: self.cluster.clone(),
                        holder: holder.clone(),
                        lease: self.describe(),
                        expires_at: None,
                    });
                }
                _ => *held = Some(self.identity.clone()),
            }
        }
        let held_by = self.held_by.clone();
        let identity = self.identity.clone();
        Ok(LockGuard::new(
            self.describe(),
            CancellationToken::new(),
            Arc::new(Mutex::new(None)),
            None,
            async move {
                let mut held = held_by.lock().unwrap_or_else(|e| e.into_inner());
                if held.as_deref() == Some(identity.as_str()) {
                    *held = None;
                }
                Ok(())
            },
        ))
    }

    async fn holder(&self) -> Result<Option<LockInfo>> {
        Ok(self
            .held_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(|holder| LockInfo {
                holder,
                expires_at: None,
                expired: false,
            }))
    }

    fn describe(&self) -> String {
        format!("local lock of {}", self.cluster)
    }

    fn identity(&self) -> &str {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn second_holder_is_refused_until_release() {
        let a = LocalLock::new("prod").as_holder("run-a");
        let b = a.as_holder("run-b");
        let guard = a.acquire().await.unwrap();
        let err = b.acquire().await.unwrap_err();
        assert!(
            matches!(&err, Error::LockHeld { holder, .. } if holder == "run-a"),
            "{err}"
        );
        guard.release().await.unwrap();
        let g = b.acquire().await.unwrap();
        assert_eq!(a.holder().await.unwrap().unwrap().holder, "run-b");
        g.release().await.unwrap();
        assert!(a.holder().await.unwrap().is_none());
    }
}
