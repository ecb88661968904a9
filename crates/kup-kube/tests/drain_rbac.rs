//! The drain needs nothing beyond `deploy/rbac/kup-drain-clusterrole.yaml`: every request a
//! drain sends (seen in the simulator's request log) maps to a verb on a resource that one of
//! the role's rules allows.

#![allow(clippy::unwrap_used)]

mod drain_support;

use std::collections::BTreeSet;
use std::time::Duration;

use drain_support::{Cluster, GUARD, NODE, Recorder, SPARE, base};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kup_kube::drain::DrainOptions;
use kup_mocks::k8s::{Pdb, Pod, RequestRecord, Workload};

/// `(verb, apiGroup, resource[/subresource])` of one API request, as the API server's
/// authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    verb: String,
    group: String,
    resource: String,
}

fn access_of(r: &RequestRecord) -> Option<Access> {
    let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None, // discovery, /version, health: non-resource URLs
    };
    let rest: Vec<&str> = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail.to_vec(),
        other => other.to_vec(),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [res] => (*res, None, None),
        [res, name] => (*res, Some(*name), None),
        [res, name, sub] => (*res, Some(*name), Some(*sub)),
        _ => return None,
    };
    let watching = r
        .query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (r.method.as_str(), name) {
        ("GET", _) if watching => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => return None,
    };
    Some(Access {
        verb: verb.into(),
        group: group.into(),
        resource: match sub {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.into(),
        },
    })
}

fn allows(rule: &PolicyRule, a: &Access) -> bool {
    let has = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == "*" || x == v))
    };
    has(&rule.api_groups, &a.group)
        && has(&rule.resources, &a.resource)
        && rule.verbs.iter().any(|v| v == "*" || *v == a.verb)
}

fn role() -> ClusterRole {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/rbac/kup-drain-clusterrole.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn accesses(c: &Cluster) -> BTreeSet<Access> {
    let log = c.sim.requests().entries();
    let mapped: Vec<Access> = log.iter().filter_map(access_of).collect();
    assert_eq!(mapped.len(), log.len(), "only resource requests: {log:?}");
    mapped.into_iter().collect()
}

#[test]
fn the_mapping_reads_requests_like_the_authorizer() {
    let rec = |method: &str, path: &str, query: &str| RequestRecord {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        status: 200,
        at: jiff::Timestamp::UNIX_EPOCH,
        duration: Duration::ZERO,
        user_agent: String::new(),
    };
    let a = |verb: &str, group: &str, resource: &str| {
        Some(Access {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
        })
    };
    assert_eq!(
        access_of(&rec(
            "POST",
            "/api/v1/namespaces/shop/pods/web-1/eviction",
            ""
        )),
        a("create", "", "pods/eviction")
    );
    assert_eq!(
        access_of(&rec(
            "GET",
            "/api/v1/pods",
            "fieldSelector=spec.nodeName%3Da-1&watch=true"
        )),
        a("watch", "", "pods")
    );
    assert_eq!(
        access_of(&rec(
            "GET",
            "/apis/policy/v1/namespaces/shop/poddisruptionbudgets",
            "limit=500"
        )),
        a("list", "policy", "poddisruptionbudgets")
    );
    assert_eq!(
        access_of(&rec("PATCH", "/api/v1/nodes/a-1", "")),
        a("patch", "", "nodes")
    );
    assert_eq!(access_of(&rec("GET", "/api/v1", "")), None);
}

/// A drain that meets every code path a default drain has (DaemonSet lookups, a budget that
/// blocks and is watched, evictions, the pod watch, cordon), then uncordon, stays within the
/// role; the explicit DELETE mode needs exactly the one extra rule the manifest marks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_drain_request_is_allowed_by_the_shipped_cluster_role() {
    let c = Cluster::start(
        base()
            .workload(Workload::deployment("shop", "web").replicas(3).pool("a"))
            .pdb(
                Pdb::new("shop", "web")
                    .match_label("app", "web")
                    .max_unavailable(1),
            )
            .workload(Workload::daemon_set("kube-system", "agent").tolerate_all())
            .workload(Workload::deployment("shop", "api").replicas(2).pool("a"))
            .pod(
                Pod::new("kube-system", "kube-apiserver-a-1")
                    .node(NODE)
                    .mirror(),
            )
            .pod(
                Pod::new("kube-system", "old-agent-x")
                    .node(NODE)
                    .orphan_of("DaemonSet/old-agent"),
            ),
    )
    .await;
    c.open_spare().await;
    c.sim.requests().clear();
    let role = role();
    let rules = role.rules.clone().unwrap_or_default();

    let opts = DrainOptions {
        force: true,
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    let report = c
        .drainer
        .drain(NODE, &opts, &Recorder::default())
        .await
        .unwrap();
    assert!(!report.blocked.is_empty(), "the budget path was exercised");
    c.drainer.uncordon(NODE).await.unwrap();
    let used = accesses(&c);
    for a in &used {
        assert!(
            rules.iter().any(|r| allows(r, a)),
            "{a:?} is not allowed by {}",
            role.metadata.name.clone().unwrap_or_default()
        );
    }
    let needed = |verb: &str, group: &str, resource: &str| Access {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
    };
    for expected in [
        needed("get", "", "nodes"),
        needed("patch", "", "nodes"),
        needed("list", "", "pods"),
        needed("watch", "", "pods"),
        needed("create", "", "pods/eviction"),
        needed("get", "apps", "daemonsets"),
        needed("watch", "policy", "poddisruptionbudgets"),
    ] {
        assert!(
            used.contains(&expected),
            "{expected:?} not exercised: {used:?}"
        );
    }
    assert!(
        !used.iter().any(|a| a.verb == "delete"),
        "a default drain deletes nothing: {used:?}"
    );

    // The explicit no-eviction mode, on the spare (where the pods went).
    c.sim.requests().clear();
    let opts = DrainOptions {
        disable_eviction: true,
        timeout: Some(GUARD),
        ..DrainOptions::default()
    };
    c.drainer
        .drain(SPARE, &opts, &Recorder::default())
        .await
        .unwrap();
    let used = accesses(&c);
    assert!(used.contains(&needed("delete", "", "pods")));
    for a in &used {
        assert!(rules.iter().any(|r| allows(r, a)), "{a:?} is not allowed");
    }
    c.stop().await;
}
