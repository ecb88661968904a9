//! Which Kubernetes builds exist: the release markers (`stable-1.X.txt` holds the newest
//! patch of minor X, `stable.txt` the newest release) and the per-minor package repositories
//! on pkgs.k8s.io. Both base URLs are settings so mirrors and tests can stand in.
//!
//! # Air-gapped clusters
//!
//! Two ways to plan without dl.k8s.io:
//!
//! * **A mirror of the markers**: [`ReleaseSettings::markers_url`] (builder
//!   [`KubeadmBuilder::release_url`](crate::KubeadmBuilder::release_url), environment
//!   `KUP_KUBEADM_RELEASE_URL`) points at any HTTP(S) server holding the same files
//!   (`{base}/stable.txt`, `{base}/stable-1.31.txt`, each one version such as `v1.31.2`).
//! * **An offline list**: [`ReleaseSettings::offline_versions`] (builder
//!   [`KubeadmBuilder::versions_file`](crate::KubeadmBuilder::versions_file) or
//!   [`KubeadmBuilder::offline_versions`](crate::KubeadmBuilder::offline_versions),
//!   environment `KUP_KUBEADM_VERSIONS_FILE`) names the releases available; no marker is
//!   fetched. The file format is plain text, one full release per line (`1.31.2` or
//!   `v1.31.2`); blank lines and everything after `#` are ignored (see
//!   [`parse_versions_list`]). The newest listed release plays `stable.txt`, the newest patch
//!   of each minor plays `stable-1.X.txt`.
//!
//! Package repositories are checked at [`ReleaseSettings::packages_url`] either way (set it
//! to the mirror of pkgs.k8s.io the nodes use).

use std::path::Path;
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
    /// The releases available, instead of reading release markers (air-gapped clusters).
    /// Every entry names a patch; the list is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_versions: Option<Vec<KubeVersion>>,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            markers_url: "https://dl.k8s.io/release".into(),
            packages_url: "https://pkgs.k8s.io/core:/stable:".into(),
            timeout: Duration::from_secs(30),
            max_minors_ahead: 6,
            offline_versions: None,
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
        if let Some(list) = &settings.offline_versions {
            check_offline_list(list)?;
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

    /// Where versions come from, for messages: the marker base or "the offline version list".
    pub fn source(&self) -> String {
        match &self.settings.offline_versions {
            Some(_) => "the offline version list".into(),
            None => self.settings.markers_url.clone(),
        }
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
        if let Some(list) = &self.settings.offline_versions {
            return list
                .iter()
                .max()
                .cloned()
                .ok_or_else(|| Error::invalid("settings.releases.offline_versions", EMPTY_LIST));
        }
        self.marker("stable.txt").await?.ok_or_else(|| Error::Http {
            url: self.marker_url("stable.txt"),
            message: "not found".into(),
            retryable: false,
        })
    }

    /// The newest patch of `minor` (`stable-1.X.txt`); `None` when the minor has no release.
    pub async fn stable_patch(&self, minor: &KubeVersion) -> Result<Option<KubeVersion>> {
        if let Some(list) = &self.settings.offline_versions {
            return Ok(list.iter().filter(|v| v.same_minor(minor)).max().cloned());
        }
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

const EMPTY_LIST: &str = "is empty; list at least one release, such as `1.31.2`";

const ACCEPTED_ENTRY: &str = "one full release per line, such as `1.31.2` or `v1.31.2` (blank \
                              lines and text after `#` are ignored)";

fn check_offline_list(list: &[KubeVersion]) -> Result<()> {
    if list.is_empty() {
        return Err(Error::invalid(
            "settings.releases.offline_versions",
            EMPTY_LIST,
        ));
    }
    if let Some((i, v)) = list
        .iter()
        .enumerate()
        .find(|(_, v)| v.patch().is_none() || v.suffix().is_some())
    {
        return Err(Error::invalid(
            format!("settings.releases.offline_versions[{i}]"),
            format!("{v} is not a release build; accepted: {ACCEPTED_ENTRY}"),
        ));
    }
    Ok(())
}

/// Parses an offline version list: one full release per line (`1.31.2` or `v1.31.2`), blank
/// lines and everything after `#` ignored. `source` names the list in errors (a file path).
/// A bad entry is rejected with its line number and the accepted form; so is a list without
/// any entry.
pub fn parse_versions_list(text: &str, source: &str) -> Result<Vec<KubeVersion>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let field = format!("versions list {source}, line {}", i + 1);
        let version = KubeVersion::parse(entry).map_err(|e| {
            Error::invalid(
                field.clone(),
                format!("{entry:?} is not a version ({e}); accepted: {ACCEPTED_ENTRY}"),
            )
        })?;
        if version.patch().is_none() || version.suffix().is_some() {
            return Err(Error::invalid(
                field,
                format!("{entry:?} is not a release build; accepted: {ACCEPTED_ENTRY}"),
            ));
        }
        out.push(version);
    }
    if out.is_empty() {
        return Err(Error::invalid(
            format!("versions list {source}"),
            EMPTY_LIST,
        ));
    }
    Ok(out)
}

/// Reads and parses an offline version list file (see [`parse_versions_list`]).
pub fn load_versions_file(path: &Path) -> Result<Vec<KubeVersion>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_versions_list(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn version_lists_take_one_release_per_line_with_comments() {
        let list = parse_versions_list(
            "# mirrored 2026-11\nv1.31.12\n\n1.32.8   # newest we carry\n1.30.14\n",
            "f",
        )
        .unwrap();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1.31.12", "1.32.8", "1.30.14"]);
    }

    #[test]
    fn bad_entries_name_their_line_and_the_accepted_form() {
        for (text, line) in [
            ("1.31.2\nlatest\n", 2),
            ("1.31.2\n\n1.32\n", 3),
            ("v1.33.0-rc.1\n", 1),
        ] {
            let err = parse_versions_list(text, "versions.txt")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("versions.txt, line {line}"))
                    && err.contains("one full release per line"),
                "{text:?}: {err}"
            );
        }
        let err = parse_versions_list("# nothing yet\n", "versions.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn offline_lists_in_settings_are_checked() {
        let settings = ReleaseSettings {
            offline_versions: Some(vec![]),
            ..ReleaseSettings::default()
        };
        let err = Releases::new(settings).unwrap_err().to_string();
        assert!(
            err.contains("offline_versions") && err.contains("empty"),
            "{err}"
        );
    }
}
