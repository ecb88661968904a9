//! A lock kept in a file on the machine running kup, for runs that must not depend on the
//! cluster's API: a restore stops the API servers and rewinds everything stored in etcd,
//! the Lease included.
//!
//! The file is created exclusively (`O_EXCL`), so two processes never both take it. It names
//! its holder with the process id and host; a holder whose process is gone from this host
//! (a crashed run) has expired, and the next run takes the lock over, as it would an expired
//! Lease.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ClusterLock, LockGuard, LockInfo, default_holder};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    holder: String,
    pid: u32,
    host: String,
    acquired_at: jiff::Timestamp,
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

impl Holder {
    /// Whether its process is known to be gone (it ran on this host and has no /proc entry).
    fn is_gone(&self) -> bool {
        self.host == this_host()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// A lock file (`<journal>.lock` beside a journal file, say).
#[derive(Clone, Debug)]
pub struct FileLock {
    cluster: String,
    path: PathBuf,
    identity: String,
}

impl FileLock {
    /// The lock of `cluster` kept at `path`, claimed under a unique identity of this process.
    pub fn new(cluster: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            cluster: cluster.to_string(),
            path: path.into(),
            identity: default_holder(),
        }
    }

    /// The same lock, claimed under `identity`.
    pub fn as_holder(mut self, identity: &str) -> Self {
        self.identity = identity.to_string();
        self
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Journal {
            store: self.describe(),
            message: message.to_string(),
        }
    }

    fn read(&self) -> Result<Option<Holder>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.error(format!("not a kup lock file: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    fn create(&self) -> Result<bool> {
        use std::io::Write;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(self.error(e)),
        };
        let holder = Holder {
            holder: self.identity.clone(),
            pid: std::process::id(),
            host: this_host(),
            acquired_at: jiff::Timestamp::now(),
        };
        let json = serde_json::to_vec(&holder).map_err(|e| self.error(e))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.error(e))?;
        Ok(true)
    }
}

#[async_trait]
impl ClusterLock for FileLock {
    async fn acquire(&self) -> Result<LockGuard> {
        // Two tries: the second after removing a holder whose process is gone.
        for _ in 0..2 {
            if self.create()? {
                let path = self.path.clone();
                let identity = self.identity.clone();
                let me = self.clone();
                return Ok(LockGuard::new(
                    self.describe(),
                    CancellationToken::new(),
                    Arc::new(Mutex::new(None)),
                    None,
                    async move {
                        if me.read()?.is_some_and(|h| h.holder == identity) {
                            std::fs::remove_file(&path).map_err(|e| me.error(e))?;
                        }
                        Ok(())
                    },
                ));
            }
            match self.read()? {
                Some(h) if h.holder == self.identity || h.is_gone() => {
                    match std::fs::remove_file(&self.path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(self.error(e)),
                    }
                }
                Some(h) => {
                    return Err(Error::LockHeld {
                        cluster: self.cluster.clone(),
                        holder: h.holder,
                        lease: self.describe(),
                        expires_at: None,
                    });
                }
                None => {}
            }
        }
        Err(self.error("another process kept re-creating the lock file"))
    }

    async fn holder(&self) -> Result<Option<LockInfo>> {
        Ok(self.read()?.map(|h| LockInfo {
            expired: h.is_gone(),
            holder: h.holder,
            expires_at: None,
        }))
    }

    fn describe(&self) -> String {
        format!("lock file {}", self.path.display())
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
    async fn one_holder_at_a_time_and_a_dead_holder_expires() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.lock");
        let a = FileLock::new("prod", &path).as_holder("run-a");
        let b = FileLock::new("prod", &path).as_holder("run-b");
        let guard = a.acquire().await.unwrap();
        let err = b.acquire().await.unwrap_err();
        assert!(
            matches!(&err, Error::LockHeld { holder, .. } if holder == "run-a"),
            "{err}"
        );
        assert!(!b.holder().await.unwrap().unwrap().expired);
        guard.release().await.unwrap();
        assert!(b.holder().await.unwrap().is_none());

        // A holder whose process is gone from this host: taken over.
        let dead = Holder {
            holder: "crashed".into(),
            pid: u32::MAX - 1,
            host: this_host(),
            acquired_at: jiff::Timestamp::now(),
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        assert!(b.holder().await.unwrap().unwrap().expired);
        let g = b.acquire().await.unwrap();
        assert_eq!(a.holder().await.unwrap().unwrap().holder, "run-b");
        g.release().await.unwrap();
    }
}
