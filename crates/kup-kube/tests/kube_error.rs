//! The classifier and the retry helper over real kube-rs clients against the simulator:
//! real Status answers, a real TLS handshake against an untrusted CA, a refused connection,
//! and injected server errors.

#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kup_core::ErrorCategory;
use kup_kube::kube_error::{self, CaBundle, KubeErrorKind};
use kup_kube::retry::{BackoffPolicy, retry};
use kup_mocks::k8s::{Fault, Scenario, SimConfig, SimHandle, Simulator};

async fn sim(tls: bool) -> SimHandle {
    Simulator::start(Scenario::new(), SimConfig::fast().tls(tls))
        .await
        .unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn real_answers_are_classified_by_code_and_reason() {
    let sim = sim(false).await;
    let client = sim.client().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let missing = nodes.get("no-such-node").await.unwrap_err();
    let class = kube_error::classify(&missing);
    assert_eq!(class.kind, KubeErrorKind::NotFound, "{missing}");
    assert_eq!(class.category, ErrorCategory::NotFound);
    assert!(!class.retryable);
    let core = kube_error::to_core_error(missing);
    assert!(core.to_string().contains("no-such-node"), "{core}");

    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    maps.create(&PostParams::default(), &config_map("once"))
        .await
        .unwrap();
    let twice = maps
        .create(&PostParams::default(), &config_map("once"))
        .await
        .unwrap_err();
    assert_eq!(
        kube_error::classify(&twice).kind,
        KubeErrorKind::AlreadyExists,
        "{twice}"
    );
    assert_eq!(kube_error::category(&twice), ErrorCategory::Conflict);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_a_certificate_problem_naming_the_bundle() {
    let server = sim(true).await;
    let other = sim(true).await;
    // The other simulator's CA does not sign this server's certificate.
    let mut config = server.client_config();
    config.root_cert = other.client_config().root_cert;
    let client = kube::Client::try_from(config.clone()).unwrap();
    let nodes: Api<Node> = Api::all(client);
    let err = nodes.list(&ListParams::default()).await.unwrap_err();
    let class = kube_error::classify(&err);
    assert_eq!(class.kind, KubeErrorKind::Certificate, "{err:?}");
    assert!(!class.retryable);
    assert!(!kube_error::is_retryable(&err));
    let text = kube_error::to_core_error_with_ca(err, &CaBundle::from_config(&config)).to_string();
    assert!(text.contains("TLS certificate problem"), "{text}");
    assert!(
        text.contains("certificate authority from the kubeconfig (1 certificate(s))"),
        "{text}"
    );

    // The trusted CA works, so the failure above was the certificate's.
    let trusted: Api<Node> = Api::all(server.client().unwrap());
    trusted.list(&ListParams::default()).await.unwrap();
    server.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let nodes: Api<Node> = Api::all(kube::Client::try_from(config).unwrap());
    let err = nodes.list(&ListParams::default()).await.unwrap_err();
    let class = kube_error::classify(&err);
    assert_eq!(class.kind, KubeErrorKind::Connection, "{err:?}");
    assert!(class.retryable);
    assert_eq!(class.category, ErrorCategory::Provider);
}

#[tokio::test]
async fn retry_repeats_server_errors_and_stops_at_a_refusal() {
    let sim = sim(false).await;
    let nodes: Api<Node> = Api::all(sim.client().unwrap());
    let faults = sim.faults();
    // kube's own client retries 429/503/504; a 500 reaches kup's retry.
    let flaky = faults.add(
        Fault::status(500)
            .method("GET")
            .path("/api/v1/nodes")
            .times(2),
    );
    let params = ListParams::default();
    retry(&BackoffPolicy::fast(), || nodes.list(&params))
        .await
        .unwrap();
    assert_eq!(faults.fired(flaky), 2);

    let denied = faults.add(
        Fault::status(403)
            .method("GET")
            .path("/api/v1/nodes")
            .times(5),
    );
    let err = retry(&BackoffPolicy::fast(), || nodes.list(&params))
        .await
        .unwrap_err();
    assert_eq!(kube_error::category(&err), ErrorCategory::PermissionDenied);
    assert_eq!(faults.fired(denied), 1, "a 403 is not repeated");
    sim.shutdown().await;
}
