//! The behaviours every [`UpgradeProvider`] must show, one function each, written against the
//! trait's contract only (start an operation, then poll it until it is terminal), so they hold
//! whether a provider finishes its work inside the start call or advances it on every poll.
//!
//! A behaviour whose capability the provider does not declare checks the other half of the
//! contract instead: the method answers [`kup_core::Error::NotSupported`] and sends nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kup_core::{
    AddonOptions, AddonUpgrade, BackupOptions, BackupSupport, ClusterInfo, ControlPlaneOptions,
    Error, ErrorCategory, KubeVersion, NodePoolOptions, Operation, OperationStatus,
    OperationTarget, PoolManagement, RollbackOption, RollbackPart, StepAction, UpgradeProvider,
};
use kup_mocks::k8s::DeletedVia;

use crate::harness::{Deviation, Harness, Mutations};
use crate::sim::BudgetWatch;

/// How long an operation may take before the suite calls it stuck: a guard, never the thing
/// asserted.
pub const GUARD: Duration = Duration::from_secs(240);

/// What a behaviour did, printed by the generated test so its output names what was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The behaviour ran and held.
    Held,
    /// The capability is not declared: the method answered `NotSupported` and sent nothing.
    NotSupported(&'static str),
    /// The harness cannot stage the situation; the reason.
    Unstaged(String),
}

/// Every behaviour, in the order [`crate::run_suite`] runs them.
pub const BEHAVIOURS: &[&str] = &[
    "versions_are_oldest_first_with_a_support_status",
    "cluster_agrees_with_the_kubernetes_side",
    "one_minor_control_plane_hop_ends_at_the_new_version",
    "two_minor_request_is_refused_before_anything_changes",
    "busy_cluster_is_reported_busy_and_nothing_is_sent",
    "injected_failure_is_operation_failed_with_provider_codes",
    "unknown_operation_is_refused_naming_it",
    "operation_round_trips_and_reattaches_after_restart",
    "pool_upgrade_moves_every_node_through_the_eviction_api",
    "undeclared_capabilities_are_not_supported_and_never_planned",
    "situations_map_to_the_same_error_category",
];

fn has(h: &impl Harness, d: Deviation) -> bool {
    h.deviations().contains(&d)
}

/// For a provider that does not move the control plane: a start to `to` answers
/// `NotSupported` and sends nothing. `None` when the provider does move it.
async fn control_plane_refused(h: &impl Harness, to: KubeVersion) -> Option<Checked> {
    let p = h.provider();
    if p.capabilities().control_plane_upgrade {
        return None;
    }
    Some(
        refuses(h, "control-plane upgrades", || {
            let (p, to) = (p.clone(), to.clone());
            async move {
                p.upgrade_control_plane(&to, &ControlPlaneOptions::default())
                    .await
                    .map(drop)
            }
        })
        .await,
    )
}

/// Polls `op` until it is terminal; retryable errors are retried, others fail the behaviour.
pub async fn until_terminal(provider: &dyn UpgradeProvider, op: &Operation) -> OperationStatus {
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut last = String::from("never polled");
    while tokio::time::Instant::now() < deadline {
        match provider.poll(op).await {
            Ok(s) if s.is_terminal() => return s,
            Ok(s) => last = s.to_string(),
            Err(e) if e.is_retryable() => last = format!("retryable error: {e}"),
            Err(e) => panic!("polling {op} failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{op} is not terminal after {GUARD:?}; last: {last}");
}

async fn cluster(provider: &dyn UpgradeProvider) -> ClusterInfo {
    provider
        .cluster()
        .await
        .unwrap_or_else(|e| panic!("cluster() failed: {e}"))
}

/// The newest offered control-plane version one minor past the control plane's.
pub async fn next_minor(provider: &dyn UpgradeProvider) -> KubeVersion {
    let cp = cluster(provider).await.control_plane;
    let offered = provider
        .available_versions()
        .await
        .unwrap_or_else(|e| panic!("available_versions() failed: {e}"));
    offered
        .iter()
        .filter(|a| a.for_control_plane() && cp.minor_distance(&a.version) == 1)
        .map(|a| a.version.clone())
        .max()
        .unwrap_or_else(|| {
            panic!(
                "the provider offers nothing one minor past the control plane {cp}: {:?}",
                offered
                    .iter()
                    .map(|a| a.version.to_string())
                    .collect::<Vec<_>>()
            )
        })
}

/// Whether a version the provider reports names the version Kubernetes reports: the same
/// minor, and the same patch when the provider names one (EKS reports minors only).
fn reports(provider_says: &KubeVersion, kubernetes_says: &KubeVersion) -> bool {
    provider_says.same_minor(kubernetes_says)
        && provider_says
            .patch()
            .is_none_or(|p| kubernetes_says.patch() == Some(p))
}

async fn api_server_version(h: &impl Harness) -> KubeVersion {
    let info = h
        .kube()
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("GET /version failed: {e}"));
    KubeVersion::parse(&info.git_version)
        .unwrap_or_else(|e| panic!("/version answered {:?}: {e}", info.git_version))
}

fn assert_category(err: &Error, expected: ErrorCategory, situation: &str) {
    assert_eq!(
        err.category(),
        expected,
        "{situation}: expected category {expected:?}, got {:?}: {err}",
        err.category()
    );
}

fn assert_nothing_sent(h: &impl Harness, before: &Mutations, situation: &str) {
    let after = h.mutations().since(before);
    assert!(
        after.accepted.is_empty(),
        "{situation}: the backend accepted changes: {:?}",
        after.accepted
    );
    if !has(h, Deviation::BackendRefuses) {
        assert!(
            after.sent.is_empty(),
            "{situation}: the provider sent mutating requests: {:?}",
            after.sent
        );
    }
}

/// `available_versions` lists versions oldest first, each once, with a support status, and
/// offers the next minor of the running control plane.
pub async fn versions_are_oldest_first_with_a_support_status(h: &impl Harness) -> Checked {
    let p = h.provider();
    let offered = p
        .available_versions()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!offered.is_empty(), "no versions offered");
    for pair in offered.windows(2) {
        assert!(
            pair[0].version.cmp_build(&pair[1].version).is_lt(),
            "not oldest first (or listed twice): {} then {}",
            pair[0].version,
            pair[1].version
        );
    }
    for a in &offered {
        // Serialising proves the status is one of the documented values, whatever it is.
        let status = serde_json::to_value(a.support).unwrap_or_default();
        assert!(status.is_string(), "{}: support {status}", a.version);
    }
    let cp = cluster(p.as_ref()).await.control_plane;
    assert!(
        offered.iter().any(|a| cp.minor_distance(&a.version) == 1),
        "nothing offered one minor past {cp}"
    );
    Checked::Held
}

/// `cluster()` says what the Kubernetes API says: the control-plane version from `/version`,
/// and for every pool with known nodes their count and the oldest kubelet.
pub async fn cluster_agrees_with_the_kubernetes_side(h: &impl Harness) -> Checked {
    let info = cluster(h.provider().as_ref()).await;
    let api = api_server_version(h).await;
    assert!(
        reports(&info.control_plane, &api),
        "provider says the control plane runs {}, /version says {api}",
        info.control_plane
    );
    let nodes: Api<Node> = Api::all(h.kube());
    let mut checked = 0;
    for pool in &info.node_pools {
        let members: Vec<Node> = if let Some(selector) = &pool.node_selector {
            nodes
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap_or_else(|e| panic!("listing nodes {selector}: {e}"))
                .items
        } else if !pool.nodes.is_empty() {
            let all = nodes
                .list(&ListParams::default())
                .await
                .unwrap_or_else(|e| panic!("listing nodes: {e}"))
                .items;
            all.into_iter()
                .filter(|n| {
                    pool.nodes
                        .iter()
                        .any(|m| Some(m.as_str()) == n.metadata.name.as_deref())
                })
                .collect()
        } else {
            continue;
        };
        checked += 1;
        if let Some(count) = pool.node_count {
            assert_eq!(
                members.len(),
                count as usize,
                "pool {}: the provider counts {count} nodes, Kubernetes has {}",
                pool.name,
                members.len()
            );
        }
        let oldest = members
            .iter()
            .filter_map(|n| n.status.as_ref()?.node_info.as_ref())
            .filter_map(|i| KubeVersion::parse(&i.kubelet_version).ok())
            .min()
            .unwrap_or_else(|| panic!("pool {}: no kubelet versions reported", pool.name));
        assert!(
            reports(&pool.version, &oldest),
            "pool {}: the provider says {}, the oldest kubelet is {oldest}",
            pool.name,
            pool.version
        );
    }
    assert!(checked > 0, "no pool could be matched to its nodes");
    Checked::Held
}

/// A one-minor hop is accepted, polls to `Succeeded`, and leaves the provider and `/version`
/// at the new minor.
pub async fn one_minor_control_plane_hop_ends_at_the_new_version(h: &impl Harness) -> Checked {
    if let Some(refused) = control_plane_refused(h, next_minor(h.provider().as_ref()).await).await {
        return refused;
    }
    hop(h).await;
    Checked::Held
}

/// Moves the control plane one minor and checks where it ended.
async fn hop(h: &impl Harness) {
    let p = h.provider();
    let to = next_minor(p.as_ref()).await;
    h.prepare_control_plane().await;
    let op = p
        .upgrade_control_plane(&to, &ControlPlaneOptions::default())
        .await
        .unwrap_or_else(|e| panic!("a one-minor hop to {to} was refused: {e}"));
    assert_eq!(op.target, OperationTarget::ControlPlane);
    assert_eq!(op.provider, p.kind());
    let status = until_terminal(p.as_ref(), &op).await;
    assert_eq!(status, OperationStatus::Succeeded, "{op}");
    let now = cluster(p.as_ref()).await.control_plane;
    assert!(
        now.same_minor(&to),
        "the provider reports {now} after a hop to {to}"
    );
    let api = api_server_version(h).await;
    assert!(
        api.same_minor(&to),
        "/version says {api} after a hop to {to}"
    );
}

/// Asking for two minors at once is refused, typed, and changes nothing.
pub async fn two_minor_request_is_refused_before_anything_changes(h: &impl Harness) -> Checked {
    let p = h.provider();
    let before_cp = cluster(p.as_ref()).await.control_plane;
    let skip = next_minor(p.as_ref()).await.next_minor();
    if let Some(refused) = control_plane_refused(h, skip.clone()).await {
        return refused;
    }
    h.prepare_control_plane().await;
    let before = h.mutations();
    let err = p
        .upgrade_control_plane(&skip, &ControlPlaneOptions::default())
        .await
        .err()
        .unwrap_or_else(|| panic!("a two-minor hop {before_cp} → {skip} was accepted"));
    let expected = if has(h, Deviation::BackendRefuses) {
        ErrorCategory::InvalidInput
    } else {
        ErrorCategory::Precondition
    };
    assert_category(&err, expected, "a two-minor hop");
    assert_nothing_sent(h, &before, "a two-minor hop");
    let after_cp = cluster(p.as_ref()).await.control_plane;
    assert_eq!(after_cp, before_cp, "the control plane moved");
    Checked::Held
}

/// With another operation in flight, the cluster reads busy and a start is refused with
/// [`Error::Busy`] before anything is sent.
pub async fn busy_cluster_is_reported_busy_and_nothing_is_sent(h: &impl Harness) -> Checked {
    let p = h.provider();
    let to = next_minor(p.as_ref()).await;
    if let Some(refused) = control_plane_refused(h, to.clone()).await {
        return refused;
    }
    h.prepare_control_plane().await;
    if let Err(why) = h.make_busy().await {
        return Checked::Unstaged(why.0);
    }
    let info = cluster(p.as_ref()).await;
    assert!(info.is_busy(), "the cluster does not read busy: {info:?}");
    let before = h.mutations();
    let err = match p
        .upgrade_control_plane(&to, &ControlPlaneOptions::default())
        .await
    {
        Err(e) => e,
        Ok(op) => panic!(
            "{}: a control-plane start on a busy cluster (running: {}) was accepted as {op}; \
             expected kup_core::Error::Busy and nothing sent (sent since: {:?})",
            p.kind(),
            info.in_progress
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            h.mutations().since(&before).sent
        ),
    };
    assert!(
        matches!(err, Error::Busy { .. }),
        "expected kup_core::Error::Busy, got {err:?}"
    );
    assert_category(&err, ErrorCategory::Busy, "a start while busy");
    assert!(err.is_retryable(), "busy is retryable: {err}");
    assert_nothing_sent(h, &before, "a start while busy");
    Checked::Held
}

/// A failure injected in the backend surfaces as [`Error::OperationFailed`] carrying the
/// provider's own error codes, whether the start call or a later poll reports it.
pub async fn injected_failure_is_operation_failed_with_provider_codes(h: &impl Harness) -> Checked {
    let p = h.provider();
    let to = next_minor(p.as_ref()).await;
    if let Some(refused) = control_plane_refused(h, to.clone()).await {
        return refused;
    }
    h.prepare_control_plane().await;
    let codes = match h.inject_failure().await {
        Ok(codes) => codes,
        Err(why) => return Checked::Unstaged(why.0),
    };
    let err = match p
        .upgrade_control_plane(&to, &ControlPlaneOptions::default())
        .await
    {
        Err(e) => e,
        Ok(op) => match until_terminal(p.as_ref(), &op).await.into_result(&op) {
            Err(e) => e,
            Ok(s) => panic!("the injected failure did not surface: {op} ended {s}"),
        },
    };
    let Error::OperationFailed {
        errors, cancelled, ..
    } = &err
    else {
        panic!("expected kup_core::Error::OperationFailed, got {err:?}");
    };
    assert!(!cancelled, "a failure is not a cancellation: {err}");
    let got: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    for code in &codes {
        assert!(
            got.contains(&code.as_str()),
            "error code {code} missing from {got:?}: {err}"
        );
        assert!(err.to_string().contains(code.as_str()), "{err}");
    }
    assert_category(&err, ErrorCategory::OperationFailed, "an injected failure");
    Checked::Held
}

fn stranger(p: &dyn UpgradeProvider) -> Operation {
    Operation::new(
        p.kind(),
        "kup-suite-no-such-operation",
        OperationTarget::ControlPlane,
    )
    .with_handle("update_id", "kup-suite-no-such-operation")
}

/// Polling an operation the provider never started is an error that names it.
pub async fn unknown_operation_is_refused_naming_it(h: &impl Harness) -> Checked {
    if let Err(why) = h.tracks_operations() {
        return Checked::Unstaged(why.0);
    }
    let p = h.provider();
    let op = stranger(p.as_ref());
    let err = p
        .poll(&op)
        .await
        .err()
        .unwrap_or_else(|| panic!("polling an operation never started answered a status"));
    assert_category(
        &err,
        ErrorCategory::NotFound,
        "polling an unknown operation",
    );
    assert!(
        err.to_string().contains(&op.id),
        "the error does not name the operation {}: {err}",
        op.id
    );
    Checked::Held
}

/// An operation survives its journal form (JSON) and a restart: a fresh provider instance on
/// the same backend polls it to the end, and nothing is started a second time.
pub async fn operation_round_trips_and_reattaches_after_restart(h: &impl Harness) -> Checked {
    let p = h.provider();
    let to = next_minor(p.as_ref()).await;
    if let Some(refused) = control_plane_refused(h, to.clone()).await {
        return refused;
    }
    h.prepare_control_plane().await;
    let before = h.mutations();
    let op = p
        .upgrade_control_plane(&to, &ControlPlaneOptions::default())
        .await
        .unwrap_or_else(|e| panic!("a one-minor hop to {to} was refused: {e}"));
    let started = h.mutations().since(&before);
    let json = serde_json::to_string(&op).unwrap_or_else(|e| panic!("{e}"));
    let back: Operation = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(back, op, "the operation does not round-trip through {json}");
    drop(p);
    let fresh = h.restart().await;
    let status = until_terminal(fresh.as_ref(), &back).await;
    assert_eq!(
        status,
        OperationStatus::Succeeded,
        "{back} polled after a restart"
    );
    assert!(
        cluster(fresh.as_ref()).await.control_plane.same_minor(&to),
        "the restarted provider does not see the hop to {to}"
    );
    let after = h.mutations();
    let since_start = after.since(&before);
    for change in &started.accepted {
        assert!(
            since_start.accepted.contains(change),
            "{change} vanished from the backend's record"
        );
    }
    let repeated = since_start.repeated();
    assert!(
        repeated.is_empty(),
        "work started again after the restart: {repeated:?} (all: {:?})",
        since_start.accepted
    );
    Checked::Held
}

/// A provider-rolled pool upgrade replaces every node with no pod deleted other than through
/// the eviction API and no PodDisruptionBudget ever below what it requires.
pub async fn pool_upgrade_moves_every_node_through_the_eviction_api(h: &impl Harness) -> Checked {
    let p = h.provider();
    if !p.capabilities().node_pool_upgrade {
        let pool = cluster(p.as_ref())
            .await
            .node_pools
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let cp = cluster(p.as_ref()).await.control_plane;
        return refuses(h, "node pool upgrades", || {
            let p = p.clone();
            let (pool, cp) = (pool.clone(), cp.clone());
            async move {
                p.upgrade_node_pool(&pool, &cp, &NodePoolOptions::default())
                    .await
                    .map(drop)
            }
        })
        .await;
    }
    let Some(pool) = h.pool_to_roll() else {
        return Checked::Unstaged("the harness names no pool to roll".into());
    };
    // The control plane moves first, so the pool has a version to move to whatever it ran.
    hop(h).await;
    let info = cluster(p.as_ref()).await;
    let target = info.control_plane.clone();
    let from = info.pool(&pool).map(|n| n.version.clone());
    let selector = info
        .pool(&pool)
        .and_then(|n| n.node_selector.clone())
        .unwrap_or_else(|| panic!("pool {pool} has no node selector: {info:?}"));
    let sim = h.simulator();
    let old: Vec<String> = node_names(sim, &selector);
    assert!(!old.is_empty(), "pool {pool} has no nodes");
    let deletions_before = sim.pod_deletions().len();
    let budgets = BudgetWatch::start(sim);
    let op = p
        .upgrade_node_pool(&pool, &target, &NodePoolOptions::default())
        .await
        .unwrap_or_else(|e| panic!("upgrading pool {pool} to {target} was refused: {e}"));
    let status = until_terminal(p.as_ref(), &op).await;
    let violations = budgets.finish().await;
    assert_eq!(status, OperationStatus::Succeeded, "{op}");
    let now = node_names(sim, &selector);
    for n in &old {
        assert!(
            !now.contains(n),
            "node {n} of pool {pool} was not replaced: {now:?}"
        );
    }
    assert_eq!(
        now.len(),
        old.len(),
        "pool {pool} changed size: {old:?} → {now:?}"
    );
    let deletions: Vec<_> = sim
        .pod_deletions()
        .into_iter()
        .skip(deletions_before)
        .collect();
    let evicted_from_old = deletions
        .iter()
        .filter(|d| old.contains(&d.node) && d.via == DeletedVia::Eviction)
        .count();
    assert!(
        evicted_from_old > 0,
        "no pod was evicted from the old nodes"
    );
    for d in &deletions {
        // DaemonSet pods go with their node; everything else leaves through the eviction API.
        let ok = matches!(d.via, DeletedVia::Eviction | DeletedVia::Controller)
            || (d.via == DeletedVia::NodeRemoved && d.namespace == "kube-system");
        assert!(
            ok,
            "pod {}/{} on {} deleted via {:?}",
            d.namespace, d.name, d.node, d.via
        );
    }
    assert!(violations.is_empty(), "budgets broken: {violations:?}");
    if p.capabilities().node_pool_rollback {
        pool_rollback_is_offered_or_refused(h, &pool, from).await;
    }
    Checked::Held
}

/// After a completed pool upgrade, a provider that declares pool rollbacks either offers the
/// pool's previous version back or says, in its words, why not.
async fn pool_rollback_is_offered_or_refused(
    h: &impl Harness,
    pool: &str,
    from: Option<KubeVersion>,
) {
    let offer =
        h.provider().rollback_offer().await.unwrap_or_else(|e| {
            panic!("the rollback offer after upgrading pool {pool} failed: {e}")
        });
    let part = RollbackPart::pool(pool);
    let option = offer.options_for(&part).next();
    if h.rolls_back_completed_pool_upgrades() {
        let option = option.unwrap_or_else(|| {
            panic!("pool {pool} was upgraded, yet no rollback is offered: {offer:?}")
        });
        assert_eq!(Some(&option.to), from.as_ref(), "{offer:?}");
    } else if option.is_none() {
        assert!(
            offer.refusal(&part).is_some_and(|r| !r.is_empty()),
            "pool {pool}: neither offered nor refused with a reason: {offer:?}"
        );
    }
}

fn node_names(sim: &kup_mocks::k8s::SimHandle, selector: &str) -> Vec<String> {
    let (key, value) = selector.split_once('=').unwrap_or((selector, ""));
    let mut names: Vec<String> = sim
        .nodes()
        .iter()
        .filter(|n| n["metadata"]["labels"][key] == value)
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

async fn refuses<H, F, Fut>(h: &H, what: &'static str, call: F) -> Checked
where
    H: Harness,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = kup_core::Result<()>>,
{
    let before = h.mutations();
    let err = call()
        .await
        .err()
        .unwrap_or_else(|| panic!("{what} are not declared, yet the call succeeded"));
    assert!(
        matches!(err, Error::NotSupported { .. }),
        "{what} are not declared: expected kup_core::Error::NotSupported, got {err:?}"
    );
    assert_category(&err, ErrorCategory::NotSupported, what);
    let after = h.mutations().since(&before);
    assert!(after.is_empty(), "{what}: refused, yet sent {after:?}");
    Checked::NotSupported(what)
}

/// Every capability the provider does not declare: its method answers `NotSupported` and sends
/// nothing, and a plan to the next minor never contains a step that needs it.
pub async fn undeclared_capabilities_are_not_supported_and_never_planned(
    h: &impl Harness,
) -> Checked {
    let p = h.provider();
    let caps = p.capabilities();
    let info = cluster(p.as_ref()).await;
    let pool = info.node_pools.first().cloned();
    let cp = info.control_plane.clone();
    let mut refused = Vec::new();
    if !caps.node_pool_upgrade {
        let name = pool.as_ref().map(|n| n.name.clone()).unwrap_or_default();
        refused.push(
            refuses(h, "node pool upgrades", || {
                let (p, name, cp) = (p.clone(), name.clone(), cp.clone());
                async move {
                    p.upgrade_node_pool(&name, &cp, &NodePoolOptions::default())
                        .await
                        .map(drop)
                }
            })
            .await,
        );
    }
    if !caps.node_pool_rollback {
        let name = pool.as_ref().map(|n| n.name.clone()).unwrap_or_default();
        let back = RollbackOption {
            part: RollbackPart::pool(name.clone()),
            to: cp.clone(),
            release: None,
            basis: "the behaviour suite".into(),
        };
        refused.push(
            refuses(h, "node pool rollbacks", || {
                let (p, name, back) = (p.clone(), name.clone(), back.clone());
                async move {
                    p.rollback_node_pool(&name, &back, &NodePoolOptions::default())
                        .await
                        .map(drop)
                }
            })
            .await,
        );
    }
    if !caps.node_upgrade {
        let (name, node) = pool
            .as_ref()
            .map(|n| (n.name.clone(), n.nodes.first().cloned().unwrap_or_default()))
            .unwrap_or_default();
        refused.push(
            refuses(h, "single-node upgrades", || {
                let (p, name, node, cp) = (p.clone(), name.clone(), node.clone(), cp.clone());
                async move { p.upgrade_node(&name, &node, &cp).await.map(drop) }
            })
            .await,
        );
    }
    if !caps.managed_addons {
        let upgrade = AddonUpgrade {
            name: "coredns".into(),
            from: "v1.11.3".into(),
            to: "v1.12.0".into(),
            control_plane: cp.clone(),
            current_compatible: true,
        };
        refused.push(
            refuses(h, "add-on upgrades", || {
                let (p, upgrade) = (p.clone(), upgrade.clone());
                async move {
                    p.upgrade_addon(&upgrade, &AddonOptions::default())
                        .await
                        .map(drop)
                }
            })
            .await,
        );
    }
    if caps.backup != BackupSupport::Required {
        refused.push(
            refuses(h, "backups", || {
                let p = p.clone();
                async move { p.backup(&BackupOptions::default()).await.map(drop) }
            })
            .await,
        );
    }
    let target = next_minor(p.as_ref()).await;
    if !caps.control_plane_upgrade {
        control_plane_refused(h, target.clone()).await;
        // A plan that would move the control plane is refused, naming what does move it.
        let err = kup_engine::planning::plan_for(p.as_ref(), &target, Default::default())
            .await
            .err()
            .unwrap_or_else(|| {
                panic!("a plan {cp} → {target} was made without control-plane upgrades")
            });
        let kup_engine::Error::Core(err) = err else {
            panic!("planning {cp} → {target}: expected a kup_core::Error, got {err:?}");
        };
        assert_category(
            &err,
            ErrorCategory::NotSupported,
            "planning a control-plane move",
        );
        return Checked::NotSupported("every undeclared capability");
    }
    let plan = kup_engine::planning::plan_for(p.as_ref(), &target, Default::default())
        .await
        .unwrap_or_else(|e| panic!("planning {cp} → {target} failed: {e}"));
    for step in &plan.steps {
        let needs = match &step.action {
            StepAction::NodePool {
                management: PoolManagement::Provider,
                ..
            } => Some(("node_pool_upgrade", caps.node_pool_upgrade)),
            StepAction::NodePool {
                management: PoolManagement::Kup,
                ..
            } => Some(("node_upgrade", caps.node_upgrade)),
            StepAction::Addon { .. } => Some(("managed_addons", caps.managed_addons)),
            StepAction::Backup { .. } => Some(("backup", caps.backup == BackupSupport::Required)),
            _ => None,
        };
        if let Some((capability, declared)) = needs {
            assert!(
                declared,
                "step {} needs {capability}, which the provider does not declare:\n{plan}",
                step.index
            );
        }
    }
    if refused.is_empty() {
        Checked::Held
    } else {
        Checked::NotSupported("every undeclared capability")
    }
}

/// The same situation gives the same [`ErrorCategory`] from every provider: the table below is
/// the contract, checked here for one provider at a time.
pub async fn situations_map_to_the_same_error_category(h: &impl Harness) -> Checked {
    let p = h.provider();
    let mut table: BTreeMap<&str, (ErrorCategory, Option<Error>)> = BTreeMap::new();
    let skip = next_minor(p.as_ref()).await.next_minor();
    h.prepare_control_plane().await;
    let skip_expected = if !p.capabilities().control_plane_upgrade {
        ErrorCategory::NotSupported
    } else if has(h, Deviation::BackendRefuses) {
        ErrorCategory::InvalidInput
    } else {
        ErrorCategory::Precondition
    };
    table.insert(
        "control plane asked to skip a minor",
        (
            skip_expected,
            p.upgrade_control_plane(&skip, &ControlPlaneOptions::default())
                .await
                .err(),
        ),
    );
    let older = KubeVersion::minor_version(1, cluster(p.as_ref()).await.control_plane.minor() - 1);
    table.insert(
        "control plane asked to go back a minor",
        (
            skip_expected,
            p.upgrade_control_plane(&older, &ControlPlaneOptions::default())
                .await
                .err(),
        ),
    );
    if h.tracks_operations().is_ok() {
        table.insert(
            "an operation never started is polled",
            (
                ErrorCategory::NotFound,
                p.poll(&stranger(p.as_ref())).await.err(),
            ),
        );
    }
    let caps = p.capabilities();
    if !caps.node_pool_upgrade {
        let cp = cluster(p.as_ref()).await.control_plane;
        table.insert(
            "an undeclared capability is used",
            (
                ErrorCategory::NotSupported,
                p.upgrade_node_pool("any", &cp, &NodePoolOptions::default())
                    .await
                    .err(),
            ),
        );
    } else if !caps.node_upgrade {
        let cp = cluster(p.as_ref()).await.control_plane;
        table.insert(
            "an undeclared capability is used",
            (
                ErrorCategory::NotSupported,
                p.upgrade_node("any", "any", &cp).await.err(),
            ),
        );
    }
    let cp = cluster(p.as_ref()).await.control_plane;
    if caps.node_pool_upgrade {
        table.insert(
            "a pool the cluster does not have is upgraded",
            (
                ErrorCategory::NotFound,
                p.upgrade_node_pool("no-such-pool", &cp, &NodePoolOptions::default())
                    .await
                    .err(),
            ),
        );
    }
    if caps.node_upgrade {
        table.insert(
            "a node the cluster does not have is upgraded",
            (
                ErrorCategory::NotFound,
                p.upgrade_node("no-such-pool", "no-such-node", &cp)
                    .await
                    .err(),
            ),
        );
    }
    let mut wrong = Vec::new();
    for (situation, (expected, got)) in &table {
        match got {
            Some(e) if e.category() == *expected => {}
            Some(e) => wrong.push(format!(
                "{situation}: expected {expected:?}, got {:?} ({e})",
                e.category()
            )),
            None => wrong.push(format!("{situation}: expected {expected:?}, got success")),
        }
    }
    assert!(
        wrong.is_empty(),
        "categories differ from the contract:\n  {}",
        wrong.join("\n  ")
    );
    Checked::Held
}
