//! Removed APIs in deployed Helm v3 releases.
//!
//! Helm's Secrets driver (`pkg/storage/driver/secrets.go`, `util.go`) stores each release
//! revision in a Secret named `sh.helm.release.v1.<release>.v<revision>`, of type
//! `helm.sh/release.v1`, labelled `owner=helm,name=<release>,status=<status>,version=<rev>`.
//! Its `release` key holds `base64(gzip(json(release)))` (gzip only when the gzip magic is
//! present, for releases older than compression), and the Secret's own encoding adds a second
//! base64 layer that the client removes. The release JSON's `manifest` is the rendered
//! multi-document YAML `helm upgrade` diffs against — it fails once the cluster no longer
//! serves an API version in it, which is why the deployed revision is the one scanned.

use std::collections::BTreeMap;
use std::io::Read as _;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kup_core::Finding;
use serde::Deserialize;

use super::manifests::{scan_text, unreadable};
use super::{ManifestUse, RemovalWindow, use_finding};
use crate::error::Result;
use crate::listing::Reader;

/// The Secret type Helm 3 writes.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";
/// The name prefix of Helm 3 release Secrets.
pub const RELEASE_SECRET_PREFIX: &str = "sh.helm.release.v1.";
/// Release Secrets can approach 1 MiB each; pages stay small to bound memory.
const PAGE_SIZE: u32 = 20;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// The fields of a Helm release kup reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HelmRelease {
    /// Release name.
    pub name: String,
    /// Release namespace.
    #[serde(default)]
    pub namespace: String,
    /// Revision.
    #[serde(default)]
    pub version: u32,
    /// The rendered manifest.
    #[serde(default)]
    pub manifest: String,
}

/// Decodes the `release` value of a Helm release Secret (after the Secret's own base64 layer,
/// which the Kubernetes client removes): base64, then gzip when the magic says so, then JSON.
pub fn decode_release(data: &[u8]) -> std::result::Result<HelmRelease, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("release is not base64: {e}"))?;
    let json = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("release is not valid gzip: {e}"))?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|e| format!("release is not Helm release JSON: {e}"))
}

/// Which template each manifest line came from (Helm writes `# Source: chart/templates/x.yaml`
/// above every document).
fn template_at(manifest: &str, line: u64) -> Option<String> {
    manifest
        .lines()
        .take(line as usize)
        .filter_map(|l| l.strip_prefix("# Source: "))
        .last()
        .map(|s| s.trim().to_string())
}

/// Scans one decoded release.
pub(crate) fn scan_release(
    release: &HelmRelease,
    window: &RemovalWindow,
    source: &str,
) -> Result<Vec<Finding>> {
    let place = format!(
        "Helm release {}/{} (revision {})",
        release.namespace, release.name, release.version
    );
    let uses = match scan_text(&release.manifest, window, Some(&release.namespace))? {
        Ok(u) => u,
        Err(e) => return Ok(vec![unreadable(&place, &e, source)]),
    };
    let mut by_api: BTreeMap<(String, String), Vec<ManifestUse>> = BTreeMap::new();
    for u in uses {
        by_api
            .entry((u.api.api_version(), u.api.kind.clone()))
            .or_default()
            .push(u);
    }
    Ok(by_api
        .values()
        .map(|uses| {
            let api = uses[0].api;
            let mut templates: Vec<String> = uses
                .iter()
                .filter_map(|u| u.line.and_then(|l| template_at(&release.manifest, l)))
                .collect();
            templates.dedup();
            let from = if templates.is_empty() {
                String::new()
            } else {
                format!(" from {}", templates.join(", "))
            };
            use_finding(
                "api.removed-in-helm-release",
                api,
                &format!("{place}{from}"),
                uses,
                format!(
                    "upgrade the release to a chart version that uses {} before upgrading the \
                     cluster; once the cluster has moved, `helm upgrade` fails on the stored \
                     manifest until it is rewritten (helm-mapkubeapis plugin)",
                    api.replacement.as_deref().unwrap_or("a supported API")
                ),
                source,
            )
        })
        .collect())
}

/// Lists deployed Helm release Secrets page by page and scans each release's manifest.
pub(crate) async fn scan_cluster(
    reader: &Reader,
    window: &RemovalWindow,
    source: &str,
) -> Result<Vec<Finding>> {
    let api: Api<Secret> = Api::all(reader.client().clone());
    let params = ListParams::default().labels("owner=helm,status=deployed");
    let mut findings: Vec<Finding> = Vec::new();
    // Small pages, each release scanned as soon as it is decoded and then dropped: a
    // cluster's release Secrets are never all in memory.
    let mut token: Option<String> = None;
    loop {
        let mut page = params.clone().limit(PAGE_SIZE);
        if let Some(t) = &token {
            page = page.continue_token(t);
        }
        reader.count();
        let list = api.list(&page).await?;
        token = list.metadata.continue_.filter(|t| !t.is_empty());
        for secret in list.items {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let namespace = secret.metadata.namespace.clone().unwrap_or_default();
            if secret.type_.as_deref() != Some(RELEASE_SECRET_TYPE)
                || !name.starts_with(RELEASE_SECRET_PREFIX)
            {
                continue;
            }
            let Some(data) = secret.data.as_ref().and_then(|d| d.get("release")) else {
                continue;
            };
            match decode_release(&data.0) {
                Ok(mut release) => {
                    if release.namespace.is_empty() {
                        release.namespace = namespace;
                    }
                    findings.extend(scan_release(&release, window, source)?);
                }
                Err(e) => findings.push(unreadable(
                    &format!("Helm release Secret {namespace}/{name}"),
                    &e,
                    source,
                )),
            }
        }
        if token.is_none() {
            return Ok(findings);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write as _;

    use kup_core::KubeVersion;

    use super::*;

    /// Encodes a release the way Helm's `encodeRelease` does.
    pub(crate) fn encode(release: &serde_json::Value) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(release.to_string().as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD
            .encode(gz.finish().unwrap())
            .into_bytes()
    }

    #[test]
    fn decodes_gzipped_and_plain_releases_and_names_the_template() {
        let manifest = "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\n\
                        kind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 1\n\
                        ---\n# Source: web/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\n\
                        metadata:\n  name: web\n";
        let json = serde_json::json!({"name": "web", "namespace": "shop", "version": 3,
            "manifest": manifest, "info": {"status": "deployed"}});
        let release = decode_release(&encode(&json)).unwrap();
        assert_eq!((release.name.as_str(), release.version), ("web", 3));
        let plain = base64::engine::general_purpose::STANDARD.encode(json.to_string());
        assert_eq!(decode_release(plain.as_bytes()).unwrap(), release);
        assert!(decode_release(b"!!!").is_err());

        let window = RemovalWindow::new(
            KubeVersion::parse("1.24").unwrap(),
            KubeVersion::parse("1.25").unwrap(),
        );
        let findings = scan_release(&release, &window, "helm").unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "api.removed-in-helm-release");
        assert!(
            findings[0].message.starts_with(
                "Helm release shop/web (revision 3) from web/templates/pdb.yaml uses policy/v1beta1 PodDisruptionBudget (shop/web (line 3))"
            ),
            "{}",
            findings[0].message
        );
    }
}
