//! Planning without dl.k8s.io: release markers from a mirror (a plain HTTP file server on
//! 127.0.0.1, as an internal mirror would be), and an offline version list file, both through
//! `KubeadmBuilder` and the provider's `available_versions` against the Kubernetes simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use kup_core::{ErrorCategory, KubeVersion, UpgradeProvider};
use kup_kubeadm::KubeadmBuilder;
use kup_kubeadm::inventory::Inventory;
use kup_mocks::k8s::{Node, Scenario, SimConfig, SimHandle, Simulator};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

/// A static file server: `files` by path, 404 for anything else; every requested path is
/// recorded.
struct Mirror {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn mirror(files: &[(&str, &str)]) -> Mirror {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let files: Arc<BTreeMap<String, String>> = Arc::new(
        files
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_string()))
            .collect(),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let files = files.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_string();
                        log.lock().unwrap().push(path.clone());
                        let answer = match files.get(&path) {
                            Some(body) => Response::new(Full::new(Bytes::from(body.clone()))),
                            None => {
                                let mut r =
                                    Response::new(Full::new(Bytes::from_static(b"not found")));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        async move { Ok::<_, Infallible>(answer) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Mirror { base, seen }
}

async fn cluster() -> SimHandle {
    let scenario = Scenario::new()
        .version("v1.31.3")
        .node(Node::new("cp-1").control_plane().kubelet_version("v1.31.3"));
    Simulator::start(scenario, SimConfig::fast()).await.unwrap()
}

fn inventory() -> Inventory {
    Inventory::parse(
        "cluster: airgap\ncontrol_plane:\n  - {name: cp-1, host: cp-1}\n",
        None,
    )
    .unwrap()
}

fn shown(offers: &[kup_core::AvailableVersion]) -> Vec<String> {
    offers.iter().map(|o| o.version.to_string()).collect()
}

#[tokio::test]
async fn a_mirror_of_the_release_markers_replaces_dl_k8s_io() {
    let sim = cluster().await;
    let mirror = mirror(&[
        ("/k8s/release/stable.txt", "v1.33.4\n"),
        ("/k8s/release/stable-1.31.txt", "v1.31.12\n"),
        ("/k8s/release/stable-1.32.txt", "v1.32.8\n"),
        ("/k8s/release/stable-1.33.txt", "v1.33.4\n"),
    ])
    .await;
    let provider = KubeadmBuilder::new()
        .inventory(inventory())
        .kube_client(sim.client().unwrap())
        .release_url(format!("{}/k8s/release/", mirror.base))
        .build()
        .await
        .unwrap();
    let offers = provider.available_versions().await.unwrap();
    assert_eq!(shown(&offers), ["1.31.12", "1.32.8", "1.33.4"]);
    assert!(offers[2].default);
    assert_eq!(
        provider.resolve_target(&v("1.32")).await.unwrap(),
        v("1.32.8")
    );
    let seen = mirror.seen.lock().unwrap().clone();
    for marker in ["stable.txt", "stable-1.31.txt", "stable-1.32.txt"] {
        assert!(
            seen.contains(&format!("/k8s/release/{marker}")),
            "{marker} asked of the mirror: {seen:?}"
        );
    }

    // A mirror that lacks a minor's marker: that minor is simply not offered.
    let partial = mirror_without_1_32().await;
    let provider = KubeadmBuilder::new()
        .inventory(inventory())
        .kube_client(sim.client().unwrap())
        .release_url(format!("{}/k8s/release", partial.base))
        .build()
        .await
        .unwrap();
    let offers = provider.available_versions().await.unwrap();
    assert_eq!(shown(&offers), ["1.31.12", "1.33.4"]);

    // Not a URL: refused by the builder, naming the setting.
    let err = KubeadmBuilder::new()
        .inventory(inventory())
        .kube_client(sim.client().unwrap())
        .release_url("mirror.internal/release")
        .build()
        .await
        .unwrap_err();
    let core: kup_core::Error = err.into();
    assert_eq!(core.category(), ErrorCategory::InvalidInput);
    assert!(core.to_string().contains("release_url"), "{core}");
}

async fn mirror_without_1_32() -> Mirror {
    mirror(&[
        ("/k8s/release/stable.txt", "v1.33.4\n"),
        ("/k8s/release/stable-1.31.txt", "v1.31.12\n"),
        ("/k8s/release/stable-1.33.txt", "v1.33.4\n"),
    ])
    .await
}

#[tokio::test]
async fn an_offline_version_list_plans_without_any_release_site() {
    let sim = cluster().await;
    // The release URL points at a server that would answer, to prove it is never asked.
    let site = mirror(&[("/release/stable.txt", "v1.99.0\n")]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("versions.txt");
    std::fs::write(
        &file,
        "# releases mirrored into the air-gapped registry\n\
         v1.31.12\n1.31.9\n\n1.32.8   # the newest we carry\n1.30.14\n",
    )
    .unwrap();
    let provider = KubeadmBuilder::new()
        .inventory(inventory())
        .kube_client(sim.client().unwrap())
        .release_url(format!("{}/release", site.base))
        .versions_file(&file)
        .build()
        .await
        .unwrap();
    let offers = provider.available_versions().await.unwrap();
    assert_eq!(shown(&offers), ["1.31.12", "1.32.8"]);
    assert!(
        offers[1].default,
        "the newest listed release is the default"
    );
    assert_eq!(
        provider.resolve_target(&v("1.31")).await.unwrap(),
        v("1.31.12")
    );
    let err = provider.resolve_target(&v("1.33")).await.unwrap_err();
    assert!(err.to_string().contains("offline version list"), "{err}");
    assert!(
        site.seen.lock().unwrap().is_empty(),
        "no marker was fetched"
    );

    // The same list given in code.
    let provider = KubeadmBuilder::new()
        .inventory(inventory())
        .kube_client(sim.client().unwrap())
        .offline_versions(vec![v("1.31.12"), v("1.32.8")])
        .build()
        .await
        .unwrap();
    assert_eq!(
        shown(&provider.available_versions().await.unwrap()),
        ["1.31.12", "1.32.8"]
    );
}

#[tokio::test]
async fn a_bad_version_list_is_refused_with_its_line_and_the_accepted_form() {
    let sim = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let build = |path: std::path::PathBuf| {
        KubeadmBuilder::new()
            .inventory(inventory())
            .kube_client(sim.client().unwrap())
            .versions_file(path)
            .build()
    };
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "1.31.12\n# next minor\n1.32\n").unwrap();
    let err: kup_core::Error = build(bad.clone()).await.unwrap_err().into();
    assert_eq!(err.category(), ErrorCategory::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}, line 3", bad.display()))
            && text.contains("\"1.32\"")
            && text.contains("one full release per line, such as `1.31.2` or `v1.31.2`"),
        "{text}"
    );

    let junk = dir.path().join("junk.yaml");
    std::fs::write(&junk, "versions:\n  - 1.31.12\n").unwrap();
    let text = build(junk.clone()).await.unwrap_err().to_string();
    assert!(
        text.contains(&format!("{}, line 1", junk.display())),
        "{text}"
    );

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing mirrored yet\n\n").unwrap();
    let text = build(empty).await.unwrap_err().to_string();
    assert!(text.contains("is empty"), "{text}");

    let missing = dir.path().join("missing.txt");
    let text = build(missing.clone()).await.unwrap_err().to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");

    // A list and a file at once is ambiguous.
    let err = KubeadmBuilder::new()
        .inventory(inventory())
        .kube_client(sim.client().unwrap())
        .versions_file(dir.path().join("bad.txt"))
        .offline_versions(vec![v("1.31.12")])
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("versions_file"), "{err}");
}
