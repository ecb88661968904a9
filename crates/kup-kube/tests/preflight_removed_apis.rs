//! Removed APIs against the simulator: each of the three sources finds a planted use, says
//! where it saw it, and reports it once.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write as _;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kup_core::{Finding, KubeVersion, Severity};
use kup_kube::preflight::{Preflight, PreflightInput, PreflightReport};
use kup_mocks::k8s::{Node, Scenario, SimConfig, SimHandle, Simulator, Workload};
use serde_json::json;

fn v(s: &str) -> KubeVersion {
    KubeVersion::parse(s).unwrap()
}

fn cluster_1_24() -> Scenario {
    Scenario::new()
        .version("v1.24.17")
        .node(Node::new("n1"))
        .workload(Workload::deployment("shop", "web").replicas(2))
}

async fn start(scenario: Scenario) -> SimHandle {
    Simulator::start(scenario, SimConfig::fast()).await.unwrap()
}

async fn preflight(sim: &SimHandle, input: &PreflightInput) -> PreflightReport {
    let report = Preflight::new(sim.client().unwrap())
        .run(input)
        .await
        .unwrap();
    // Every code kup reports is one of the documented ones.
    for f in &report.findings.findings {
        assert!(
            kup_kube::report::code_info(&f.code).is_some(),
            "undocumented code {}",
            f.code
        );
    }
    report
}

fn with_code<'a>(report: &'a PreflightReport, code: &'a str) -> Vec<&'a Finding> {
    report.with_code(code).collect()
}

fn object_names(f: &Finding) -> BTreeSet<String> {
    f.objects.iter().map(|o| o.name.clone()).collect()
}

/// What `kubectl apply` leaves on an object: the applied manifest, apiVersion included.
fn applied(manifest: &serde_json::Value) -> String {
    manifest.to_string()
}

/// (a) Stored objects: the PDB last applied through policy/v1beta1 and the PodSecurityPolicy
/// (no other version serves it) are found, with how; a PDB applied through policy/v1 is not.
/// The scan lists PDBs through policy/v1, so it never adds to the deprecated-API metric for
/// them; PSPs can only be listed through policy/v1beta1, and a second run says so instead of
/// blaming a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_objects_under_removed_versions() {
    let legacy = json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "legacy", "namespace": "shop"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let mut legacy_stored = legacy.clone();
    legacy_stored["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": applied(&legacy)});
    let modern = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "modern", "namespace": "shop"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "other"}}}});
    let mut modern_stored = modern.clone();
    modern_stored["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": applied(&modern)});
    let psp = json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
        "metadata": {"name": "restricted"},
        "spec": {"privileged": false, "seLinux": {"rule": "RunAsAny"},
                 "runAsUser": {"rule": "MustRunAsNonRoot"}, "supplementalGroups": {"rule": "RunAsAny"},
                 "fsGroup": {"rule": "RunAsAny"}, "volumes": ["configMap", "secret"]}});
    let sim = start(
        cluster_1_24()
            .object(legacy_stored)
            .object(modern_stored)
            .object(psp),
    )
    .await;

    let report = preflight(&sim, &PreflightInput::new(v("1.25"))).await;
    let stored = with_code(&report, "api.removed-in-use");
    assert_eq!(stored.len(), 2, "{}", report.to_table());
    let pdb = stored
        .iter()
        .find(|f| f.message.contains("PodDisruptionBudget"))
        .unwrap();
    assert_eq!(object_names(pdb), BTreeSet::from(["legacy".to_string()]));
    assert!(
        pdb.message
            .contains("policy/v1beta1, which Kubernetes 1.25 removes"),
        "{}",
        pdb.message
    );
    assert!(
        pdb.message.contains("last-applied-configuration"),
        "{}",
        pdb.message
    );
    assert!(pdb.message.contains("use policy/v1 PodDisruptionBudget"));
    let psp = stored
        .iter()
        .find(|f| f.message.contains("PodSecurityPolicy"))
        .unwrap();
    assert_eq!(
        object_names(psp),
        BTreeSet::from(["restricted".to_string()])
    );
    assert!(
        psp.message
            .contains("no other version serves PodSecurityPolicy")
    );
    assert!(
        psp.remediation
            .as_ref()
            .unwrap()
            .contains("has no replacement")
    );
    assert!(
        with_code(&report, "api.removed-requested").is_empty(),
        "{}",
        report.to_table()
    );
    // The PDB scan went through policy/v1 only.
    assert_eq!(
        sim.requests()
            .count("GET", "/apis/policy/v1beta1/poddisruptionbudgets"),
        0
    );

    let again = preflight(&sim, &PreflightInput::new(v("1.25"))).await;
    let requested = with_code(&again, "api.removed-requested");
    assert_eq!(requested.len(), 1, "{}", again.to_table());
    assert_eq!(requested[0].severity, Severity::Warning);
    assert!(
        requested[0].message.contains("kup's own pre-flight"),
        "{}",
        requested[0].message
    );
    assert_eq!(with_code(&again, "api.removed-in-use").len(), 2);

    // Nothing is removed between 1.24 and 1.24: nothing to report.
    let same = preflight(&sim, &PreflightInput::new(v("1.24"))).await;
    assert!(
        same.findings
            .findings
            .iter()
            .all(|f| !f.code.starts_with("api.")),
        "{}",
        same.to_table()
    );
    sim.shutdown().await;
}

/// (b) The API server's own record: a client still listing batch/v1beta1 CronJobs is found
/// through `apiserver_requested_deprecated_apis`, once, and only when the upgrade passes the
/// removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_calling_removed_versions() {
    let sim = start(cluster_1_24()).await;
    let client = sim.client().unwrap();
    // An old client: lists CronJobs and HPAs through removed versions, twice.
    for path in [
        "/apis/batch/v1beta1/cronjobs",
        "/apis/batch/v1beta1/namespaces/shop/cronjobs",
        "/apis/autoscaling/v2beta2/horizontalpodautoscalers",
    ] {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        client.request_text(request).await.unwrap();
    }

    let report = preflight(&sim, &PreflightInput::new(v("1.25"))).await;
    let requested = with_code(&report, "api.removed-requested");
    assert_eq!(requested.len(), 1, "{}", report.to_table());
    let cron = requested[0];
    assert_eq!(cron.severity, Severity::Blocker);
    assert_eq!(
        object_names(cron),
        BTreeSet::from(["cronjobs.v1beta1.batch".to_string()])
    );
    assert!(cron.message.contains("apiserver_requested_deprecated_apis"));
    assert!(cron.message.contains("use batch/v1 CronJob"));
    assert!(cron.remediation.as_ref().unwrap().contains("audit log"));

    // Through 1.26 the HPA's autoscaling/v2beta2 removal counts too.
    let report = preflight(&sim, &PreflightInput::new(v("1.26"))).await;
    let names: BTreeSet<String> = with_code(&report, "api.removed-requested")
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .flat_map(|f| object_names(f))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "cronjobs.v1beta1.batch".to_string(),
            "horizontalpodautoscalers.v2beta2.autoscaling".to_string()
        ])
    );
    sim.shutdown().await;
}

/// Helm's encoding of a release record: JSON, gzip, base64 (the Secret adds its own base64).
fn helm_release(name: &str, namespace: &str, revision: u32, manifest: &str) -> Vec<u8> {
    let json = json!({"name": name, "namespace": namespace, "version": revision,
        "manifest": manifest, "info": {"status": "deployed"}, "chart": {"metadata": {"name": name}}});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(json.to_string().as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(gz.finish().unwrap())
        .into_bytes()
}

fn release_secret(name: &str, revision: u32, status: &str, data: Vec<u8>, type_: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("sh.helm.release.v1.{name}.v{revision}"), "namespace": "shop",
            "labels": {"owner": "helm", "name": name, "status": status, "version": revision.to_string()}},
        "type": type_,
    }))
    .map(|mut s: Secret| {
        s.data = Some([("release".to_string(), ByteString(data))].into());
        s
    })
    .unwrap()
}

const OLD_CHART: &str = "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app: web\n---\n# Source: web/templates/cron.yaml\napiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: web-cleanup\nspec:\n  schedule: \"0 3 * * *\"\n---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

const NEW_CHART: &str = "---\n# Source: api/templates/pdb.yaml\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: api\nspec:\n  maxUnavailable: 1\n";

/// (c) Manifests on disk and deployed Helm releases: every use named with its file and line or
/// its release, revision and template; superseded revisions and other Secrets are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_and_helm_releases() {
    let sim = start(cluster_1_24()).await;
    let secrets: Api<Secret> = Api::namespaced(sim.client().unwrap(), "shop");
    let pp = PostParams::default();
    for secret in [
        release_secret(
            "web",
            1,
            "superseded",
            helm_release("web", "shop", 1, OLD_CHART),
            "helm.sh/release.v1",
        ),
        release_secret(
            "web",
            2,
            "deployed",
            helm_release("web", "shop", 2, OLD_CHART),
            "helm.sh/release.v1",
        ),
        release_secret(
            "api",
            4,
            "deployed",
            helm_release("api", "shop", 4, NEW_CHART),
            "helm.sh/release.v1",
        ),
        // Labelled like a release but not one.
        release_secret("fake", 1, "deployed", b"not a release".to_vec(), "Opaque"),
    ] {
        secrets.create(&pp, &secret).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    std::fs::write(
        dir.path().join("apps/ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ok\n---\n\
         apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: from-disk\n  namespace: shop\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "apiVersion: policy/v1beta1").unwrap();

    let input = PreflightInput::new(v("1.25")).manifests([dir.path()]);
    let report = preflight(&sim, &input).await;

    let on_disk = with_code(&report, "api.removed-in-manifest");
    assert_eq!(on_disk.len(), 1, "{}", report.to_table());
    assert!(
        on_disk[0].message.contains(
            "apps/ingress.yaml uses policy/v1beta1 PodDisruptionBudget (shop/from-disk (line 6))"
        ),
        "{}",
        on_disk[0].message
    );

    let helm = with_code(&report, "api.removed-in-helm-release");
    assert_eq!(helm.len(), 2, "{}", report.to_table());
    let messages: Vec<&str> = helm.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .all(|m| m.starts_with("Helm release shop/web (revision 2)")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| {
        m.contains("from web/templates/pdb.yaml uses policy/v1beta1 PodDisruptionBudget")
    }));
    assert!(
        messages
            .iter()
            .any(|m| m.contains("from web/templates/cron.yaml uses batch/v1beta1 CronJob"))
    );
    assert!(
        helm[0]
            .remediation
            .as_ref()
            .unwrap()
            .contains("mapkubeapis")
    );
    assert!(
        with_code(&report, "api.manifest-unreadable").is_empty(),
        "{}",
        report.to_table()
    );
    // The Secrets were read in small pages, by label.
    let lists = sim.requests().matching("GET", "/api/v1/secrets");
    assert!(!lists.is_empty());
    assert!(
        lists.iter().all(|r| r
            .query
            .contains("labelSelector=owner%3Dhelm%2Cstatus%3Ddeployed")),
        "{lists:?}"
    );
    sim.shutdown().await;
}

/// A missing manifest path is bad input: refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_manifest_path_is_refused_first() {
    let sim = start(cluster_1_24()).await;
    let err = Preflight::new(sim.client().unwrap())
        .run(&PreflightInput::new(v("1.25")).manifests(["/nonexistent/manifests"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid manifests: /nonexistent/manifests does not exist"),
        "{err}"
    );
    assert_eq!(sim.requests().total(), 0);
    sim.shutdown().await;
}
