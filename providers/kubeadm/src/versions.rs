//! Which Kubernetes builds exist: the release markers (`stable-1.X.txt` holds the newest
//! patch of minor X, `stable.txt` the newest release) and the per-minor package repositories
//! on pkgs.k8s.io. Both base URLs are settings so mirrors and tests can stand in.

use std::time::Duration;

use http::StatusCode;
use kup_core::{AvailableVersion, KubeVersion, SupportStatus};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::packages::PackageManager;

/// Where release markers and package repositories are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSettings {
    /// The release-marker base (`{base}/stable-1.31.txt`).
    pub markers_url: String,
    /// The package repository base (`{base}/v1.31/deb/`).
    pub packages_url: String,
    /// Per-request time limit.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// How many minors past the control plane's are looked up at most.
    pub max_minors_ahead: u32,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            markers_url: "https://dl.k8s.io/release".into(),
            packages_url: "https://pkgs.k8s.io/core:/stable:".into(),
            timeout: Duration::from_secs(30),
            max_minors_ahead: 6,
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Looks up release markers and package repositories.
#[derive(Clone, Debug)]
pub struct Releases {
    settings: ReleaseSettings,
    http: HttpClient,
}

impl Releases {
    /// A client for the configured endpoints.
    pub fn new(settings: ReleaseSettings) -> Result<Self> {
        for (field, url) in [
            ("settings.releases.markers_url", &settings.markers_url),
            ("settings.releases.packages_url", &settings.packages_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::invalid(
                    field,
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        let http = HttpClient::new(settings.timeout)?;
        Ok(Self { settings, http })
    }

    /// The settings.
    pub fn settings(&self) -> &ReleaseSettings {
        &self.settings
    }

    fn marker_url(&self, name: &str) -> String {
        format!("{}/{name}", self.settings.markers_url.trim_end_matches('/'))
    }

    /// Reads one marker; `None` when it does not exist (404).
    async fn marker(&self, name: &str) -> Result<Option<KubeVersion>> {
        let url = self.marker_url(name);
        let answer = self.http.get(&url).await?;
        if answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::FORBIDDEN {
            // The CDN answers 403 for objects that do not exist.
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(Error::Http {
                url,
                message: format!("HTTP {}", answer.status),
                retryable: answer.status.is_server_error(),
            });
        }
        let text = String::from_utf8_lossy(&answer.body);
        let version = KubeVersion::parse(text.trim()).map_err(|e| Error::Http {
            url: url.clone(),
            message: format!("not a version marker: {e}"),
            retryable: false,
        })?;
        Ok(Some(version))
    }

    /// The newest stable release (`stable.txt`).
    pub async fn latest_stable(&self) -> Result<KubeVersion> {
        self.marker("stable.txt").await?.ok_or_else(|| Error::Http {
            url: self.marker_url("stable.txt"),
            message: "not found".into(),
            retryable: false,
        })
    }

    /// The newest patch of `minor` (`stable-1.X.txt`); `None` when the minor has no release.
    pub async fn stable_patch(&self, minor: &KubeVersion) -> Result<Option<KubeVersion>> {
        let found = self
            .marker(&format!("stable-{}.{}.txt", minor.major(), minor.minor()))
            .await?;
        if let Some(v) = &found
            && !v.same_minor(minor)
        {
            return Err(Error::Http {
                url: self.marker_url(&format!("stable-{}.{}.txt", minor.major(), minor.minor())),
                message: format!("marker for {}.{} names {v}", minor.major(), minor.minor()),
                retryable: false,
            });
        }
        Ok(found)
    }

    /// The versions a cluster whose control plane runs `current` can move to: the newest
    /// patch of its own minor and of every newer minor up to the newest stable release.
    pub async fn available_from(&self, current: &KubeVersion) -> Result<Vec<AvailableVersion>> {
        let latest = self.latest_stable().await?;
        let mut out = Vec::new();
        let mut minor = current.to_minor();
        let mut looked = 0;
        while minor.minor_distance(&latest) >= 0 && looked <= self.settings.max_minors_ahead {
            if let Some(v) = self.stable_patch(&minor).await? {
                let support = if v.minor_distance(&latest) <= 2 {
                    SupportStatus::Standard
                } else {
                    SupportStatus::Unsupported
                };
                let mut offer = AvailableVersion::new(v, support);
                offer.default = offer.version.same_minor(&latest);
                out.push(offer);
            }
            minor = minor.next_minor();
            looked += 1;
        }
        Ok(out)
    }

    /// The repository URL of `minor` for `pm` (`…/v1.31/deb/` or `…/v1.31/rpm/`).
    pub fn repository_url(&self, minor: &KubeVersion, pm: PackageManager) -> String {
        let kind = match pm {
            PackageManager::Apt => "deb",
            PackageManager::Dnf | PackageManager::Yum => "rpm",
        };
        format!(
            "{}/v{}.{}/{kind}/",
            self.settings.packages_url.trim_end_matches('/'),
            minor.major(),
            minor.minor()
        )
    }

    /// Whether the package repository of `minor` exists for `pm` (its `Release` file for apt,
    /// `repodata/repomd.xml` for dnf/yum). Checked before any node's repository is switched.
    pub async fn repository_exists(&self, minor: &KubeVersion, pm: PackageManager) -> Result<bool> {
        let index = match pm {
            PackageManager::Apt => "Release",
            PackageManager::Dnf | PackageManager::Yum => "repodata/repomd.xml",
        };
        let url = format!("{}{index}", self.repository_url(minor, pm));
        let answer = self.http.get(&url).await?;
        if answer.status.is_success() {
            return Ok(true);
        }
        if answer.status.is_client_error() {
            return Ok(false);
        }
        Err(Error::Http {
            url,
            message: format!("HTTP {}", answer.status),
            retryable: answer.status.is_server_error(),
        })
    }
}
