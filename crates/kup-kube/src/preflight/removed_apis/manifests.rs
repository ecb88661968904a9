//! Removed APIs in manifests on disk: files and directories (searched recursively for
//! `.yaml`, `.yml` and `.json`) of multi-document YAML, `kind: List` documents included.
//! Each use is reported with its file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kup_core::{Finding, ObjectRef, Severity};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ManifestUse, RemovalWindow, use_finding};
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
struct Doc {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<Spanned<String>>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<DocMeta>,
    #[serde(default)]
    items: Option<Vec<Doc>>,
}

#[derive(Debug, Deserialize)]
struct DocMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

fn collect(
    doc: Doc,
    window: &RemovalWindow,
    namespace: Option<&str>,
    out: &mut Vec<ManifestUse>,
) -> Result<()> {
    if let (Some(api_version), Some(kind)) = (&doc.api_version, &doc.kind)
        && let Some(api) = window.lookup(&api_version.value, kind)?
    {
        let meta = doc.metadata.as_ref();
        let name = meta
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| "(unnamed)".to_string());
        let ns = meta
            .and_then(|m| m.namespace.clone())
            .or_else(|| namespace.map(String::from));
        let object = match ns {
            Some(ns) => ObjectRef::namespaced(kind, ns, name),
            None => ObjectRef::cluster(kind, name),
        };
        let line = api_version.referenced.line();
        out.push(ManifestUse {
            api,
            object,
            line: (line > 0).then_some(line),
        });
    }
    for item in doc.items.into_iter().flatten() {
        collect(item, window, namespace, out)?;
    }
    Ok(())
}

/// The uses of APIs removed during the upgrade in a multi-document YAML text. `namespace` is
/// the namespace objects without one land in (a Helm release's). The error is the parser's.
pub(crate) fn scan_text(
    text: &str,
    window: &RemovalWindow,
    namespace: Option<&str>,
) -> Result<std::result::Result<Vec<ManifestUse>, String>> {
    let docs: Vec<Doc> = match serde_saphyr::from_multiple(text) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut out = Vec::new();
    for doc in docs {
        collect(doc, window, namespace, &mut out)?;
    }
    Ok(Ok(out))
}

/// Checks that every path exists before anything is sent to the cluster.
pub(crate) fn validate_paths(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        if !p.exists() {
            return Err(Error::InvalidInput {
                field: "manifests".into(),
                message: format!(
                    "{} does not exist; give files or directories of YAML manifests",
                    p.display()
                ),
            });
        }
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every manifest file under `paths` (files as given; directories searched recursively), in a
/// stable order.
fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = pending.pop() {
        if p.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(|source| Error::ReadFile {
                path: p.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| Error::ReadFile {
                    path: p.clone(),
                    source,
                })?;
                let path = entry.path();
                if path.is_dir() || is_manifest(&path) {
                    pending.push(path);
                }
            }
        } else {
            files.push(p);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Scans manifests on disk: one finding per file and removed API, and one warning per file
/// that cannot be read or parsed.
pub fn scan_paths(paths: &[PathBuf], window: &RemovalWindow, source: &str) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for file in manifest_files(paths)? {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                findings.push(unreadable(&shown, &e.to_string(), source));
                continue;
            }
        };
        let uses = match scan_text(&text, window, None)? {
            Ok(u) => u,
            Err(e) => {
                let hint = if text.contains("{{") {
                    " (Helm chart templates must be rendered first, e.g. with `helm template`)"
                } else {
                    ""
                };
                findings.push(unreadable(&shown, &format!("{e}{hint}"), source));
                continue;
            }
        };
        let mut by_api: BTreeMap<(String, String), Vec<ManifestUse>> = BTreeMap::new();
        for u in uses {
            by_api
                .entry((u.api.api_version(), u.api.kind.clone()))
                .or_default()
                .push(u);
        }
        for uses in by_api.values() {
            let api = uses[0].api;
            findings.push(use_finding(
                "api.removed-in-manifest",
                api,
                &format!("manifest {shown}"),
                uses,
                format!(
                    "change these documents to {} before applying them again (field changes: \
                     {})",
                    api.replacement.as_deref().unwrap_or("a supported API"),
                    api.source
                ),
                source,
            ));
        }
    }
    Ok(findings)
}

pub(crate) fn unreadable(place: &str, error: &str, source: &str) -> Finding {
    Finding::new(
        "api.manifest-unreadable",
        Severity::Warning,
        format!("{place} was not scanned for removed APIs: {error}"),
    )
    .remediation("fix or render it and run again if it holds manifests you deploy")
    .source(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kup_core::KubeVersion;

    use super::*;

    fn window() -> RemovalWindow {
        RemovalWindow::new(
            KubeVersion::parse("1.24").unwrap(),
            KubeVersion::parse("1.26").unwrap(),
        )
    }

    const MULTI: &str = "\
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: shop
spec:
  maxUnavailable: 1
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
---
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1beta1
    kind: CronJob
    metadata:
      name: nightly
  - apiVersion: policy/v1beta1
    kind: PodDisruptionBudget
    metadata:
      name: db
";

    #[test]
    fn finds_each_use_with_its_line() {
        let uses = scan_text(MULTI, &window(), None).unwrap().unwrap();
        let got: Vec<(String, Option<u64>)> = uses
            .iter()
            .map(|u| (u.object.to_string(), u.line))
            .collect();
        assert_eq!(
            got,
            [
                ("PodDisruptionBudget/shop/web".to_string(), Some(1)),
                ("CronJob/nightly".to_string(), Some(18)),
                ("PodDisruptionBudget/db".to_string(), Some(22)),
            ]
        );
    }

    #[test]
    fn files_and_directories_are_scanned_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("apps");
        std::fs::create_dir(&nested).unwrap();
        std::fs::write(nested.join("all.yaml"), MULTI).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "apiVersion: policy/v1beta1").unwrap();
        std::fs::write(dir.path().join("chart.yaml"), "a: {{ .Values.x }\n  b: [").unwrap();
        let paths = vec![dir.path().to_path_buf(), nested.join("all.yaml")];
        let findings = scan_paths(&paths, &window(), "manifests").unwrap();
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "api.removed-in-manifest",
                "api.removed-in-manifest",
                "api.manifest-unreadable"
            ]
        );
        let pdb = findings
            .iter()
            .find(|f| f.message.contains("PodDisruptionBudget"))
            .unwrap();
        assert!(
            pdb.message
                .contains("all.yaml uses policy/v1beta1 PodDisruptionBudget")
        );
        assert!(pdb.message.contains("shop/web (line 1), db (line 22)"));
        assert_eq!(pdb.objects.len(), 2);
        assert!(findings[2].message.contains("helm template"));
        let missing = validate_paths(&[dir.path().join("nope")]).unwrap_err();
        assert!(missing.to_string().contains("manifests"));
    }
}
