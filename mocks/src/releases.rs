//! Kubernetes release markers and package repositories on loopback: what the kubeadm provider
//! reads from dl.k8s.io (`stable-1.N.txt`) and pkgs.k8s.io (`…/v1.N/deb/Release`), for the
//! releases given.
//!
//! ```no_run
//! # async fn demo() -> kup_mocks::Result<()> {
//! let releases = kup_mocks::releases::ReleaseMock::start(&["1.33.5", "1.34.2"]).await?;
//! println!("{} {}", releases.markers_url(), releases.packages_url());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::k8s::KubeVersion;
use crate::{Error, Result};

/// Release markers and package repositories for a fixed set of releases.
#[derive(Debug)]
pub struct ReleaseMock {
    server: MockServer,
}

impl ReleaseMock {
    /// Serves `stable-1.N.txt` (the newest patch of each minor), `stable.txt` (the newest
    /// release) and an apt and an rpm repository index per minor. Anything else is a 404, as
    /// for a minor not released.
    pub async fn start(releases: &[&str]) -> Result<Self> {
        let mut newest: BTreeMap<(u32, u32), KubeVersion> = BTreeMap::new();
        for r in releases {
            let v = KubeVersion::parse(r)?;
            let slot = newest
                .entry((v.major, v.minor))
                .or_insert_with(|| v.clone());
            if v.patch > slot.patch {
                *slot = v;
            }
        }
        let Some(latest) = newest.values().last().cloned() else {
            return Err(Error::invalid(
                "releases",
                "is empty; list at least one, such as 1.33.5",
            ));
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
            context: "binding the release mock to 127.0.0.1".into(),
            source,
        })?;
        let server = MockServer::builder().listener(listener).start().await;
        let marker = |v: &KubeVersion| format!("v{}.{}.{}", v.major, v.minor, v.patch);
        Mock::given(method("GET"))
            .and(path("/release/stable.txt"))
            .respond_with(ResponseTemplate::new(200).set_body_string(marker(&latest)))
            .mount(&server)
            .await;
        for ((major, minor), v) in &newest {
            Mock::given(method("GET"))
                .and(path(format!("/release/stable-{major}.{minor}.txt")))
                .respond_with(ResponseTemplate::new(200).set_body_string(marker(v)))
                .mount(&server)
                .await;
            for index in ["deb/Release", "rpm/repodata/repomd.xml"] {
                Mock::given(method("GET"))
                    .and(path(format!("/core:/stable:/v{major}.{minor}/{index}")))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_string(format!("Origin: obs://build.opensuse.org/isv:kubernetes:core:stable:v{major}.{minor}\n")),
                    )
                    .mount(&server)
                    .await;
            }
        }
        Ok(Self { server })
    }

    /// The release-marker base (`…/release`).
    pub fn markers_url(&self) -> String {
        format!("{}/release", self.server.uri())
    }

    /// The package repository base (`…/core:/stable:`).
    pub fn packages_url(&self) -> String {
        format!("{}/core:/stable:", self.server.uri())
    }
}
