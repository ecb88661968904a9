//! Authentication and RBAC: tokens name users, Roles and bindings stored in the simulator
//! decide every request, denials carry upstream's 401/403 bodies, and `kubectl auth can-i`
//! asks the same decision.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Kubectl, code, kubectl};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kup_mocks::k8s::{Anonymous, Scenario, SimConfig, SimHandle, Simulator, User};
use serde_json::{Value, json};

/// `kup` may read nodes, list pods cluster-wide and evict; in kube-system it may read and
/// update one ConfigMap by name. `dev` is in group `devs`, which may list pods in `default`.
fn scenario() -> Scenario {
    Scenario::small()
        .user(User::new("kup"))
        .user(User::new("dev").group("devs").token("dev-secret"))
        .anonymous(Anonymous::Enabled)
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                {"nonResourceURLs": ["/readyz", "/readyz/*"], "verbs": ["get"]}
            ]}))
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "kup-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kup"}]}))
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "state", "namespace": "kube-system"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                "resourceNames": ["kup-journal-prod"], "verbs": ["get", "update"]}]}))
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "kup-state", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "state"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kup"}]}))
        .object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "devs-read", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]}))
        .object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kup-journal-prod", "namespace": "kube-system"}, "data": {}}))
        .object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "other", "namespace": "kube-system"}, "data": {}}))
}

fn as_user(sim: &SimHandle, user: &str) -> kube::Client {
    let mut cfg = sim.client_config_as(user).unwrap();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

/// The raw Status body of a request made with `token` (none: anonymous).
async fn status_of(sim: &SimHandle, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut cfg = sim.client_config();
    cfg.auth_info.token = token.map(|t| t.to_string().into());
    common::get_json(cfg, path).await
}

/// Cordons `pool-a-1` through `nodes`.
async fn cordon(nodes: &Api<Node>) -> kube::Result<Node> {
    nodes
        .patch(
            "pool-a-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_decides_every_request_with_upstream_status_bodies() {
    let sim = Simulator::start(scenario(), SimConfig::fast())
        .await
        .unwrap();
    let kup = as_user(&sim, "kup");
    let nodes: Api<Node> = Api::all(kup.clone());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        9
    );

    let denied = cordon(&nodes).await.unwrap_err();
    let s = api_status(denied);
    assert_eq!(s.code, 403);
    assert_eq!(s.reason, "Forbidden");
    assert_eq!(
        s.message,
        "nodes \"pool-a-1\" is forbidden: User \"kup\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let d = s.details.unwrap();
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("pool-a-1", "nodes"));
    assert!(
        sim.get("nodes", None, "pool-a-1").unwrap()["spec"]
            .get("unschedulable")
            .is_none(),
        "a denied request changes nothing"
    );

    // resourceNames: the named ConfigMap only; create and other names are denied.
    let cms: Api<ConfigMap> = Api::namespaced(kup.clone(), "kube-system");
    assert!(cms.get("kup-journal-prod").await.is_ok());
    let other = api_status(cms.get("other").await.unwrap_err());
    assert_eq!(
        other.message,
        "configmaps \"other\" is forbidden: User \"kup\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""
    );
    let create = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("new".into()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_status(create).message,
        "configmaps is forbidden: User \"kup\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""
    );

    // A subresource is its own permission: eviction is allowed, deleting the pod is not.
    let victim = sim.pods_on_node("pool-a-1")[0]["metadata"].clone();
    let (ns, name) = (
        victim["namespace"].as_str().unwrap(),
        victim["name"].as_str().unwrap(),
    );
    let pods: Api<Pod> = Api::namespaced(kup.clone(), ns);
    let del = pods.delete(name, &Default::default()).await.unwrap_err();
    assert_eq!(code(&kube::Error::Api(Box::new(api_status(del)))), 403);
    let evicted = pods.evict(name, &Default::default()).await;
    assert!(
        evicted.is_ok() || matches!(&evicted, Err(kube::Error::Api(s)) if s.code == 429),
        "{evicted:?}"
    );

    // Groups, and a ClusterRole bound in one namespace only.
    let dev: Api<Pod> = Api::namespaced(as_user(&sim, "dev"), "default");
    assert!(dev.list(&ListParams::default()).await.is_ok());
    let elsewhere: Api<Pod> = Api::namespaced(as_user(&sim, "dev"), "kube-system");
    assert_eq!(
        api_status(elsewhere.list(&ListParams::default()).await.unwrap_err()).message,
        "pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
    );

    // Non-resource URLs: kup's rule allows /readyz/*, not /metrics.
    assert_eq!(
        status_of(&sim, Some("kup-token"), "/readyz/etcd").await.0,
        200
    );
    let (c, body) = status_of(&sim, Some("kup-token"), "/metrics").await;
    assert_eq!(c, 403);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "forbidden: User \"kup\" cannot get path \"/metrics\"",
            "reason": "Forbidden", "details": {}, "code": 403})
    );

    // Anonymous: public info only. A token nobody has: 401.
    assert_eq!(status_of(&sim, None, "/version").await.0, 200);
    let (c, body) = status_of(&sim, None, "/api/v1/nodes").await;
    assert_eq!(c, 403);
    assert_eq!(
        body["message"],
        "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let (c, body) = status_of(&sim, Some("stolen"), "/api/v1/nodes").await;
    assert_eq!(c, 401);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );

    // Bindings created through the API take effect at once; the admin may do anything.
    let admin = sim.client().unwrap();
    let crbs: Api<kube::api::DynamicObject> = Api::all_with(
        admin,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
            ),
            "clusterrolebindings",
        ),
    );
    crbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "kup-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "kup"}]}))
        .unwrap(),
    )
    .await
    .unwrap();
    cordon(&nodes).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_can_be_refused() {
    let sim = Simulator::start(
        Scenario::small().anonymous(Anonymous::Disabled),
        SimConfig::fast(),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&sim, None, "/version").await.0, 401);
    assert_eq!(
        status_of(&sim, Some(kup_mocks::k8s::ADMIN_TOKEN), "/version")
            .await
            .0,
        200
    );
    assert!(sim.client_config_as("nobody").is_err());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_asks_the_same_decision() {
    let Some(bin) = kubectl() else { return };
    let sim = Simulator::start(scenario(), SimConfig::fast().tls(true))
        .await
        .unwrap();
    let kup = Kubectl::new_as(bin.clone(), &sim, "kup");
    let can_i = |args: &'static [&'static str]| {
        let kup = &kup;
        async move {
            let mut all = vec!["auth", "can-i"];
            all.extend_from_slice(args);
            let out = kup.run(&all).await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )
        }
    };
    assert_eq!(can_i(&["list", "nodes"]).await, (Some(0), "yes".into()));
    assert_eq!(can_i(&["patch", "nodes"]).await, (Some(1), "no".into()));
    assert_eq!(
        can_i(&["create", "pods", "--subresource=eviction", "-n", "shop"]).await,
        (Some(0), "yes".into())
    );
    assert_eq!(
        can_i(&["get", "configmaps/kup-journal-prod", "-n", "kube-system"]).await,
        (Some(0), "yes".into())
    );
    assert_eq!(
        can_i(&["get", "configmaps/other", "-n", "kube-system"]).await,
        (Some(1), "no".into())
    );
    assert_eq!(can_i(&["get", "/readyz"]).await, (Some(0), "yes".into()));
    assert_eq!(can_i(&["get", "/metrics"]).await, (Some(1), "no".into()));

    // The denial kubectl prints is the server's message (kubectl cordon exits 0 even so).
    let out = kup.run(&["cordon", "pool-a-1"]).await;
    assert!(
        sim.get("nodes", None, "pool-a-1").unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nodes \"pool-a-1\" is forbidden: User \"kup\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );
    let admin = Kubectl::new(bin, &sim);
    assert_eq!(admin.ok(&["auth", "can-i", "*", "*"]).await.trim(), "yes");
    // Impersonation: the admin may act as kup, and is then only kup.
    let as_kup = admin
        .run(&["auth", "can-i", "patch", "nodes", "--as=kup"])
        .await;
    assert_eq!(
        (
            as_kup.status.code(),
            String::from_utf8_lossy(&as_kup.stdout).trim()
        ),
        (Some(1), "no")
    );
    let denied = kup.run(&["get", "nodes", "--as=admin"]).await;
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains(
            "users \"admin\" is forbidden: User \"kup\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{denied:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_authenticate_as_their_subject() {
    let sim = Simulator::start(scenario(), SimConfig::fast().tls(true))
        .await
        .unwrap();
    let mut cfg = sim.client_config_with_certificate("kup").unwrap();
    cfg.default_retry = false;
    let kup = kube::Client::try_from(cfg).unwrap();
    let nodes: Api<Node> = Api::all(kup);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        9
    );
    let denied = cordon(&nodes).await.unwrap_err();
    assert!(
        api_status(denied)
            .message
            .contains("User \"kup\" cannot patch resource \"nodes\""),
    );
    // The admin's certificate is in system:masters (O), as kubeadm's admin.conf is.
    let admin =
        kube::Client::try_from(sim.client_config_with_certificate("admin").unwrap()).unwrap();
    cordon(&Api::<Node>::all(admin)).await.unwrap();
    // Over plain HTTP there are no certificates to give.
    let plain = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    assert!(plain.client_certificate_as("admin").is_err());

    if let Some(bin) = kubectl() {
        let k = Kubectl::new(bin, &sim);
        std::fs::write(
            k.kubeconfig(),
            sim.kubeconfig_yaml_with_certificate("dev").unwrap(),
        )
        .unwrap();
        assert_eq!(
            k.ok(&["auth", "can-i", "list", "pods", "-n", "default"])
                .await
                .trim(),
            "yes"
        );
        let out = k.run(&["get", "pods", "-n", "kube-system"]).await;
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
            ),
            "{out:?}"
        );
    }
    plain.shutdown().await;
    sim.shutdown().await;
}
