//! The Kubernetes permissions in deploy/rbac/ are least-privilege: no wildcard groups,
//! resources or verbs, Secrets only in the opt-in Helm role, updates and deletes of ConfigMaps
//! and Leases only on kup's own objects (by name), and the `kup` role lists exactly what
//! pre-flight's removed-API scan can list (every group and resource in removed-apis.yaml).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of every file in deploy/rbac, with its file name.
fn documents() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/rbac");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in text.split("\n---\n") {
            let value: Value =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
            docs.push((name.clone(), value));
        }
    }
    assert!(docs.len() >= 4, "{docs:?}");
    docs
}

fn list(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn rules(doc: &Value) -> Vec<Value> {
    doc["rules"].as_array().cloned().unwrap_or_default()
}

#[test]
fn no_wildcards_and_secrets_only_in_the_opt_in_helm_role() {
    for (file, doc) in documents() {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        for rule in rules(&doc) {
            for key in ["apiGroups", "resources", "verbs", "nonResourceURLs"] {
                assert!(
                    !list(&rule, key).iter().any(|s| s == "*"),
                    "{file} {name}: wildcard in {key}: {rule}"
                );
            }
            if list(&rule, "resources").iter().any(|r| r == "secrets") {
                assert_eq!(
                    file, "kup-helm-clusterrole.yaml",
                    "{name} grants Secrets: {rule}"
                );
                assert_eq!(list(&rule, "verbs"), vec!["list"], "{rule}");
            }
        }
    }
}

#[test]
fn configmaps_and_leases_change_only_by_name() {
    for (file, doc) in documents() {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        for rule in rules(&doc) {
            let resources = list(&rule, "resources");
            if !resources.iter().any(|r| r == "configmaps" || r == "leases") {
                continue;
            }
            let verbs = list(&rule, "verbs");
            let writes: Vec<&String> = verbs
                .iter()
                .filter(|v| {
                    matches!(
                        v.as_str(),
                        "update" | "patch" | "delete" | "deletecollection"
                    )
                })
                .collect();
            if writes.is_empty() {
                continue;
            }
            assert_eq!(
                doc["kind"], "Role",
                "{file} {name}: cluster-wide {writes:?}: {rule}"
            );
            assert_eq!(doc["metadata"]["namespace"], "kube-system", "{file} {name}");
            let names = list(&rule, "resourceNames");
            assert!(
                !names.is_empty(),
                "{file} {name}: {writes:?} without resourceNames: {rule}"
            );
            assert!(
                names.iter().all(|n| n.starts_with("kup-")),
                "{file} {name}: {names:?}"
            );
            assert!(
                !verbs.iter().any(|v| v == "deletecollection" || v == "list"),
                "{rule}"
            );
        }
    }
    // The drain role takes no lock and touches no Lease.
    for (file, doc) in documents() {
        if file == "kup-drain-clusterrole.yaml" {
            for rule in rules(&doc) {
                assert!(
                    !list(&rule, "resources").iter().any(|r| r == "leases"),
                    "{rule}"
                );
            }
        }
    }
}

#[test]
fn the_kup_role_lists_every_resource_the_removed_api_scan_can_list() {
    #[derive(serde::Deserialize)]
    struct Row {
        group: String,
        resource: String,
        #[serde(default)]
        replacement: Option<String>,
    }
    let text =
        std::fs::read_to_string(repo().join("crates/kup-kube/data/removed-apis.yaml")).unwrap();
    let rows: Vec<Row> = serde_saphyr::from_str(&text).unwrap();
    let mut needed = BTreeSet::new();
    for row in &rows {
        needed.insert((row.group.clone(), row.resource.clone()));
        if let Some(r) = &row.replacement {
            let group = r.rsplit_once('/').map_or("", |(g, _)| g);
            needed.insert((group.to_string(), row.resource.clone()));
        }
    }
    let kup = documents()
        .into_iter()
        .find(|(_, d)| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "kup")
        .unwrap()
        .1;
    let mut granted = BTreeSet::new();
    for rule in rules(&kup) {
        if !list(&rule, "verbs").iter().any(|v| v == "list") {
            continue;
        }
        for g in list(&rule, "apiGroups") {
            for r in list(&rule, "resources") {
                granted.insert((g.clone(), r));
            }
        }
    }
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the kup ClusterRole cannot list {missing:?}"
    );
}
