//! State shared by the server's connections, the controller loop and [`super::SimHandle`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::auth::Authenticator;
use super::clock::SimClock;
use super::cluster::Cluster;
use super::faults::Faults;
use super::requests::RequestLog;

/// Labels of `apiserver_request_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RequestKey {
    pub verb: &'static str,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: &'static str,
    pub code: u16,
}

pub(crate) struct Shared {
    pub cluster: Mutex<Cluster>,
    pub clock: SimClock,
    pub faults: Faults,
    pub requests: RequestLog,
    pub request_totals: Mutex<BTreeMap<RequestKey, u64>>,
    pub address: SocketAddr,
    pub https: bool,
    pub shutdown: CancellationToken,
    pub wake: Arc<Notify>,
    pub auth: Authenticator,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn count_request(&self, key: RequestKey) {
        *self
            .request_totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }
}

/// Shared handle type.
pub(crate) type SharedRef = Arc<Shared>;
