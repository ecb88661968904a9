//! Release markers and package repositories served by wiremock, as dl.k8s.io and
//! pkgs.k8s.io serve them (with the redirects to their CDNs).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kup_core::{KubeVersion, SupportStatus};
use kup_kubeadm::packages::PackageManager;
use kup_kubeadm::versions::{ReleaseSettings, Releases};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    // dl.k8s.io redirects every object to its CDN.
    for (marker, body) in [
        ("stable.txt", "v1.33.4\n"),
        ("stable-1.30.txt", "v1.30.14\n"),
        ("stable-1.31.txt", "v1.31.12\n"),
        ("stable-1.32.txt", "v1.32.8\n"),
        ("stable-1.33.txt", "v1.33.4\n"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/release/{marker}")))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("Location", format!("/cdn/release/{marker}")),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/cdn/release/{marker}")))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&server)
            .await;
    }
    for minor in ["v1.31", "v1.32"] {
        Mock::given(method("GET"))
            .and(path(format!("/core:/stable:/{minor}/deb/Release")))
            .respond_with(
                ResponseTemplate::new(200).set_body_string("Origin: obs://build.opensuse.org\n"),
            )
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/core:/stable:/v1.31/rpm/repodata/repomd.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<repomd/>"))
        .mount(&server)
        .await;
    server
}

fn releases(server: &MockServer) -> Releases {
    Releases::new(ReleaseSettings {
        markers_url: format!("{}/release", server.uri()),
        packages_url: format!("{}/core:/stable:", server.uri()),
        timeout: Duration::from_secs(10),
        max_minors_ahead: 6,
        ..ReleaseSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn markers_give_the_newest_patch_of_each_minor_following_redirects() {
    let server = server().await;
    let r = releases(&server);
    assert_eq!(r.latest_stable().await.unwrap(), v("1.33.4"));
    assert_eq!(
        r.stable_patch(&v("1.31")).await.unwrap(),
        Some(v("1.31.12"))
    );
    // A minor without a marker (not released) is None, not an error.
    assert_eq!(r.stable_patch(&v("1.39")).await.unwrap(), None);
    let offered = r.available_from(&v("1.30.2")).await.unwrap();
    let versions: Vec<String> = offered.iter().map(|o| o.version.to_string()).collect();
    assert_eq!(versions, vec!["1.30.14", "1.31.12", "1.32.8", "1.33.4"]);
    assert_eq!(offered[0].support, SupportStatus::Unsupported);
    assert_eq!(offered[1].support, SupportStatus::Standard);
    assert!(offered[3].default);
}

#[tokio::test]
async fn repositories_are_checked_per_minor_and_package_manager() {
    let server = server().await;
    let r = releases(&server);
    assert!(
        r.repository_exists(&v("1.31.12"), PackageManager::Apt)
            .await
            .unwrap()
    );
    assert!(
        r.repository_exists(&v("1.31"), PackageManager::Dnf)
            .await
            .unwrap()
    );
    assert!(
        !r.repository_exists(&v("1.32"), PackageManager::Yum)
            .await
            .unwrap()
    );
    assert!(
        !r.repository_exists(&v("1.34"), PackageManager::Apt)
            .await
            .unwrap()
    );
    assert_eq!(
        r.repository_url(&v("1.32.1"), PackageManager::Apt),
        format!("{}/core:/stable:/v1.32/deb/", server.uri())
    );
}

#[tokio::test]
async fn server_errors_and_bad_markers_are_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/release/stable-1.31.txt"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/release/stable-1.32.txt"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;
    let r = releases(&server);
    let err = r.stable_patch(&v("1.31")).await.unwrap_err();
    assert!(
        matches!(
            err,
            kup_kubeadm::Error::Http {
                retryable: true,
                ..
            }
        ),
        "{err}"
    );
    let err = r.stable_patch(&v("1.32")).await.unwrap_err();
    assert!(err.to_string().contains("not a version marker"), "{err}");
    let bad = Releases::new(ReleaseSettings {
        markers_url: "ftp://example".into(),
        ..ReleaseSettings::default()
    })
    .unwrap_err();
    assert!(
        bad.to_string().contains("settings.releases.markers_url"),
        "{bad}"
    );
}
