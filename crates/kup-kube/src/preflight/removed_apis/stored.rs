//! Objects in the cluster tied to an API version a minor of the upgrade removes.
//!
//! The API server stores one copy of each object and converts it to whichever served version
//! a client asks for, so the objects survive a removal; what breaks is every writer still using
//! the removed version. The object records its writers: each `metadata.managedFields` entry
//! names the `apiVersion` its manager used, and `kubectl apply` leaves the applied
//! `apiVersion` in the `kubectl.kubernetes.io/last-applied-configuration` annotation. When no
//! other version serves the kind yet (or ever, like PodSecurityPolicy), every object exists
//! only through the removed version.
//!
//! Discovery first (`/apis`, then the resources of the group-versions that matter), then one
//! paginated list per resource — through the replacement version when it is served, so the
//! scan itself does not add requests to the deprecated-API metric.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kup_core::{Finding, ObjectRef, Severity};

use super::{RemovalWindow, RemovedApi};
use crate::error::Result;
use crate::listing::Reader;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How an object is tied to a removed version.
fn evidence(
    object: &DynamicObject,
    api: &RemovedApi,
    listed_through_removed: bool,
) -> Option<String> {
    let removed = api.api_version();
    if listed_through_removed {
        return Some(format!("no other version serves {} yet", api.kind));
    }
    let mut found = Vec::new();
    for entry in object.metadata.managed_fields.iter().flatten() {
        if entry.api_version.as_deref() == Some(removed.as_str()) {
            found.push(format!(
                "managedFields: {} ({})",
                entry.manager.as_deref().unwrap_or("unknown manager"),
                entry.operation.as_deref().unwrap_or("unknown operation")
            ));
        }
    }
    let applied = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    if applied
        .as_ref()
        .and_then(|v| v.get("apiVersion"))
        .and_then(|v| v.as_str())
        == Some(removed.as_str())
    {
        found.push("last-applied-configuration (kubectl apply)".to_string());
    }
    (!found.is_empty()).then(|| found.join(", "))
}

/// The resource serving `kind` in a group-version's discovery document.
fn resource_for(resources: &[(String, String)], kind: &str) -> Option<String> {
    resources
        .iter()
        .find(|(plural, k)| k == kind && !plural.contains('/'))
        .map(|(plural, _)| plural.clone())
}

/// What the stored-object scan will list, found through discovery.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    /// (group-version listed, plural) → the rows it answers for.
    lists: BTreeMap<(String, String), Vec<&'static RemovedApi>>,
}

impl Targets {
    /// `(group, version, resource)` of removed versions that must be listed through
    /// themselves because nothing else serves their kind: the scan's own list then counts in
    /// the deprecated-API metric.
    pub(crate) fn listed_through_removed(&self) -> Vec<(String, String, String)> {
        self.lists
            .iter()
            .flat_map(|((gv, plural), rows)| {
                rows.iter()
                    .filter(move |r| r.api_version() == *gv)
                    .map(move |r| (r.group.clone(), r.version.clone(), plural.clone()))
            })
            .collect()
    }
}

/// Discovery: `/apis`, then the resources of each removed group-version still served and of
/// its replacement. Discovery requests do not count in the deprecated-API metric.
pub(crate) async fn discover(reader: &Reader, window: &RemovalWindow) -> Result<Targets> {
    let rows = window.removals()?;
    let mut targets = Targets::default();
    if rows.is_empty() {
        return Ok(targets);
    }
    reader.count();
    let groups = reader.client().list_api_groups().await?;
    let served: BTreeSet<String> = groups
        .groups
        .iter()
        .flat_map(|g| g.versions.iter().map(|v| v.group_version.clone()))
        .collect();
    let mut discovered: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in rows {
        let removed_gv = row.api_version();
        if !served.contains(&removed_gv) {
            continue;
        }
        // Through the replacement when it serves the kind, so the scan itself does not call
        // the removed version.
        let mut candidates = Vec::new();
        if let Some(r) = row.replacement.as_ref().filter(|r| served.contains(*r)) {
            candidates.push(r.clone());
        }
        candidates.push(removed_gv);
        for gv in candidates {
            if !discovered.contains_key(&gv) {
                reader.count();
                let list = reader.client().list_api_group_resources(&gv).await?;
                discovered.insert(
                    gv.clone(),
                    list.resources
                        .into_iter()
                        .map(|r| (r.name, r.kind))
                        .collect(),
                );
            }
            if let Some(plural) = discovered
                .get(&gv)
                .and_then(|rs| resource_for(rs, &row.kind))
            {
                targets.lists.entry((gv, plural)).or_default().push(row);
                break;
            }
        }
    }
    Ok(targets)
}

/// Lists every target page by page and reports the objects tied to a removed version.
pub(crate) async fn scan(reader: &Reader, targets: &Targets, source: &str) -> Result<Vec<Finding>> {
    // row (by api version + kind) → objects with their evidence
    type Uses = (&'static RemovedApi, Vec<(ObjectRef, String)>);
    let mut found: BTreeMap<(String, String), Uses> = BTreeMap::new();
    for ((gv, plural), rows) in &targets.lists {
        let (group, version) = gv.split_once('/').unwrap_or(("", gv.as_str()));
        let resource = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: gv.clone(),
            kind: rows[0].kind.clone(),
            plural: plural.clone(),
        };
        let api: Api<DynamicObject> = Api::all_with(reader.client().clone(), &resource);
        reader
            .for_each(&api, &ListParams::default(), |object| {
                for row in rows {
                    let through_removed = *gv == row.api_version();
                    if let Some(why) = evidence(&object, row, through_removed) {
                        let name = object.metadata.name.clone().unwrap_or_default();
                        let obj = match &object.metadata.namespace {
                            Some(ns) => ObjectRef::namespaced(&row.kind, ns, name),
                            None => ObjectRef::cluster(&row.kind, name),
                        };
                        found
                            .entry((row.api_version(), row.kind.clone()))
                            .or_insert_with(|| (row, Vec::new()))
                            .1
                            .push((obj, why));
                    }
                }
            })
            .await?;
    }

    Ok(found
        .into_values()
        .map(|(api, objects)| {
            let shown: Vec<String> = objects
                .iter()
                .take(10)
                .map(|(o, why)| {
                    let name = match &o.namespace {
                        Some(ns) => format!("{ns}/{}", o.name),
                        None => o.name.clone(),
                    };
                    format!("{name} [{why}]")
                })
                .collect();
            let more = objects.len().saturating_sub(10);
            let fix = match &api.replacement {
                Some(r) => format!(
                    "move every writer named here (manifests, charts, controllers, CI) to {r} \
                     and re-apply; the stored objects are converted by the API server ({})",
                    api.source
                ),
                None => format!(
                    "{} has no replacement: migrate off it (see {}) and delete these objects \
                     before the upgrade",
                    api.kind, api.source
                ),
            };
            Finding::new(
                "api.removed-in-use",
                Severity::Blocker,
                format!(
                    "{} {} object(s) in the cluster are tied to {}, which Kubernetes {} \
                     removes ({}): {}{}",
                    objects.len(),
                    api.kind,
                    api.api_version(),
                    api.removed_in,
                    api.instead(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
            .remediation(fix)
            .objects(objects.into_iter().map(|(o, _)| o))
            .source(source)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kup_core::KubeVersion;

    use super::*;

    fn pdb_row() -> &'static RemovedApi {
        let window = RemovalWindow::new(
            KubeVersion::parse("1.24").unwrap(),
            KubeVersion::parse("1.25").unwrap(),
        );
        window
            .lookup("policy/v1beta1", "PodDisruptionBudget")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn managed_fields_name_the_manager_that_used_the_removed_version() {
        // The API server records the apiVersion each manager wrote with; the simulator drops
        // managedFields, so this path is exercised here.
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop", "managedFields": [
                {"manager": "helm", "operation": "Update", "apiVersion": "policy/v1beta1"},
                {"manager": "kube-controller-manager", "operation": "Update",
                 "apiVersion": "policy/v1", "subresource": "status"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            evidence(&object, pdb_row(), false).as_deref(),
            Some("managedFields: helm (Update)")
        );
        let clean: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop", "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "policy/v1"}
            ]}
        }))
        .unwrap();
        assert_eq!(evidence(&clean, pdb_row(), false), None);
        assert!(evidence(&clean, pdb_row(), true).is_some());
    }
}
