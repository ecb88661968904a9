//! What a provider brings to the behaviour suite: a [`Harness`] that starts its backend (a
//! mock, a lab of real processes), builds the provider under test, and stages the situations
//! the behaviours need.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kup_core::UpgradeProvider;
use kup_mocks::k8s::SimHandle;

/// A situation a harness cannot stage for its provider, with the reason; the behaviour that
/// needs it reports the reason instead of passing silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unstaged(pub String);

impl Unstaged {
    /// A reason.
    pub fn because(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for Unstaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The mutating calls the provider's backend has seen, oldest first, in the harness's own
/// words (`UpdateClusterVersion`, `cp-1: kubeadm upgrade apply v1.31.2`, `POST /api/v1/…`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mutations {
    /// Every mutating request sent, accepted or refused.
    pub sent: Vec<String>,
    /// The changes the backend accepted, each named so that the same work started twice
    /// reads the same (`ControlPlane → 1.34`, `cp-1: kubeadm upgrade apply v1.31.2`).
    pub accepted: Vec<String>,
}

impl Mutations {
    /// What happened after `before` was taken: every entry not matched by one of `before`'s
    /// (a multiset difference, so harnesses may report in any stable order).
    pub fn since(&self, before: &Mutations) -> Mutations {
        fn minus(now: &[String], then: &[String]) -> Vec<String> {
            let mut left: Vec<&String> = then.iter().collect();
            now.iter()
                .filter(|m| match left.iter().position(|t| t == m) {
                    Some(i) => {
                        left.swap_remove(i);
                        false
                    }
                    None => true,
                })
                .cloned()
                .collect()
        }
        Mutations {
            sent: minus(&self.sent, &before.sent),
            accepted: minus(&self.accepted, &before.accepted),
        }
    }

    /// Accepted changes that appear more than once (the same work started twice).
    pub fn repeated(&self) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        self.accepted
            .iter()
            .filter(|m| !seen.insert(m.as_str()))
            .cloned()
            .collect()
    }

    /// True when nothing was sent.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty() && self.accepted.is_empty()
    }
}

/// A known, documented way in which a provider departs from the suite's strict contract.
/// The suite then checks the weaker property the deviation names, and says so in its output;
/// removing the declaration makes the strict check apply again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deviation {
    /// The provider does not refuse a control-plane skip or a start while busy itself: it
    /// sends the request and maps the backend's refusal (EKS: `InvalidParameterException`,
    /// `ResourceInUseException`). The suite checks that the backend accepted nothing and
    /// that the refusal is typed, instead of checking that nothing was sent; a skip is then
    /// [`kup_core::ErrorCategory::InvalidInput`] (the backend's word) rather than
    /// [`kup_core::ErrorCategory::Precondition`].
    BackendRefuses,
}

/// A provider under test with its backend. One harness serves one behaviour: the suite
/// starts a fresh one per behaviour, so behaviours never see each other's state.
#[async_trait]
pub trait Harness: Send + Sync + Sized {
    /// Starts the backend and the provider. `None` when a real component the harness needs
    /// is missing outside CI (the harness prints why); under CI a missing component panics.
    async fn start() -> Option<Self>;

    /// The provider under test.
    fn provider(&self) -> Arc<dyn UpgradeProvider>;

    /// A fresh provider instance on the same backend and state: what a restarted kup builds
    /// from its configuration (nothing carried over in memory).
    async fn restart(&self) -> Arc<dyn UpgradeProvider>;

    /// The Kubernetes simulator the cluster's Kubernetes side runs on (its nodes, `/version`,
    /// pod deletions and request log).
    fn simulator(&self) -> &SimHandle;

    /// A Kubernetes client for the cluster.
    fn kube(&self) -> kube::Client;

    /// Whatever the provider requires before a control-plane hop (kubeadm: a verified etcd
    /// snapshot). Nothing by default.
    async fn prepare_control_plane(&self) {}

    /// Makes the cluster busy with an operation started outside the provider under test.
    async fn make_busy(&self) -> Result<(), Unstaged>;

    /// Arms a failure of the next control-plane operation; the provider's own error codes the
    /// failure must carry.
    async fn inject_failure(&self) -> Result<Vec<String>, Unstaged>;

    /// The mutating calls the backend has seen so far.
    fn mutations(&self) -> Mutations;

    /// A provider-rolled pool the suite may upgrade to the control plane's version (its nodes
    /// replaced through the eviction API). Asked only when the provider declares
    /// `node_pool_upgrade`.
    fn pool_to_roll(&self) -> Option<String> {
        None
    }

    /// Whether the provider's API offers a pool's previous version back once its upgrade has
    /// completed (AKS's `recentlyUsedVersions`); others only while it runs or soaks (GKE).
    /// Asked only when the provider declares `node_pool_rollback`.
    fn rolls_back_completed_pool_upgrades(&self) -> bool {
        false
    }

    /// Whether the provider can tell an operation it never started from one it did. Providers
    /// that derive an operation's state from the cluster (kubeadm) cannot.
    fn tracks_operations(&self) -> Result<(), Unstaged> {
        Ok(())
    }

    /// The provider's declared deviations from the strict contract.
    fn deviations(&self) -> Vec<Deviation> {
        Vec::new()
    }
}
