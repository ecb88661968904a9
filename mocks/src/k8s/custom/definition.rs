//! A CustomResourceDefinition's spec read into a [`ResourceDef`], and the status the
//! apiextensions controllers give an accepted definition.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{CustomSpec, PrinterColumn};
use crate::k8s::resources::{ResourceDef, ServedVersion};

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn leak_list(v: &Value) -> &'static [&'static str] {
    let items: Vec<&'static str> = strs(v).into_iter().map(leak).collect();
    Box::leak(items.into_boxed_slice())
}

/// `spec.versions`, or the single `spec.version` (with top-level subresources, schema and
/// columns) of a v1beta1-shaped definition.
fn versions_of(spec: &Value) -> Vec<Value> {
    if let Some(vs) = spec["versions"].as_array().filter(|v| !v.is_empty()) {
        return vs.clone();
    }
    let Some(name) = spec["version"].as_str() else {
        return Vec::new();
    };
    vec![json!({"name": name, "served": true, "storage": true,
        "subresources": spec["subresources"], "schema": {"openAPIV3Schema": spec["validation"]["openAPIV3Schema"]},
        "additionalPrinterColumns": spec["additionalPrinterColumns"]})]
}

/// The resource `crd` defines; `Err` names what is missing (the CRD's own validation).
pub(crate) fn parse(crd: &Value) -> Result<ResourceDef, String> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err("spec.group, spec.names.plural and spec.names.kind are required".into());
    }
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_string);
    let all = versions_of(spec);
    let mut served: Vec<&Value> = all
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .collect();
    // The storage version first: objects are stored (and converted) through it.
    served.sort_by_key(|v| !v["storage"].as_bool().unwrap_or(false));
    let mut versions = Vec::new();
    let mut schemas = BTreeMap::new();
    let mut columns = BTreeMap::new();
    let (mut status, mut scale) = (false, false);
    for v in &served {
        let name = v["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        versions.push(ServedVersion {
            version: leak(name),
            introduced: 0,
            deprecated: v["deprecated"].as_bool().unwrap_or(false).then_some(0),
            removed: None,
            replacement: None,
        });
        if let Some(s) = v
            .pointer("/schema/openAPIV3Schema")
            .filter(|s| s.is_object())
        {
            schemas.insert(name.to_string(), s.clone());
        }
        let cols = v["additionalPrinterColumns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        kind: c["type"].as_str().unwrap_or("string").to_string(),
                        format: c["format"].as_str().unwrap_or_default().to_string(),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        columns.insert(name.to_string(), cols);
        status |= v.pointer("/subresources/status").is_some();
        scale |= v.pointer("/subresources/scale").is_some();
    }
    if versions.is_empty() {
        return Err("spec.versions must serve at least one version".into());
    }
    let spec_out = CustomSpec { schemas, columns };
    Ok(ResourceDef {
        group: leak(group),
        plural: leak(plural),
        singular: leak(&singular),
        kind: leak(kind),
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        short_names: leak_list(&names["shortNames"]),
        categories: leak_list(&names["categories"]),
        versions: Box::leak(versions.into_boxed_slice()),
        status,
        scale,
        review: false,
        custom: Some(Box::leak(Box::new(spec_out))),
    })
}

/// `status` of an accepted, established `crd`, keeping transition times that did not change.
pub(crate) fn accepted_status(crd: &Value, now: &str) -> Value {
    let names = &crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let mut accepted = json!({
        "kind": kind,
        "listKind": names["listKind"].as_str().map_or_else(|| format!("{kind}List"), str::to_string),
        "plural": names["plural"],
        "singular": names["singular"].as_str().filter(|s| !s.is_empty())
            .map_or_else(|| kind.to_ascii_lowercase(), str::to_string),
    });
    for k in ["shortNames", "categories"] {
        if names[k].is_array() {
            accepted[k] = names[k].clone();
        }
    }
    let since = |ty: &str| {
        crd["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == "True"))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let storage: Vec<Value> = versions_of(&crd["spec"])
        .iter()
        .filter(|v| v["storage"].as_bool().unwrap_or(false))
        .map(|v| v["name"].clone())
        .collect();
    let mut stored: Vec<Value> = crd["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "storedVersions": stored,
    })
}

/// The apiextensions validation clients meet: names, group, one storage version, and a
/// metadata.name of `<plural>.<group>`. `Err` holds the 422 causes.
pub(crate) fn check(crd: &Value) -> Result<(), Vec<(String, &'static str, String)>> {
    let mut causes = Vec::new();
    let spec = &crd["spec"];
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    for (path, field) in [
        ("/spec/group", "spec.group"),
        ("/spec/names/plural", "spec.names.plural"),
        ("/spec/names/kind", "spec.names.kind"),
    ] {
        if text(path).is_empty() {
            causes.push((
                field.to_string(),
                "FieldValueRequired",
                "Required value".into(),
            ));
        }
    }
    let scope = text("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push((
            "spec.scope".into(),
            "FieldValueNotSupported",
            format!("Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
        ));
    }
    let versions = versions_of(spec);
    if versions.is_empty() {
        causes.push((
            "spec.versions".into(),
            "FieldValueInvalid",
            "Invalid value: null: must have exactly one version marked as storage version".into(),
        ));
    } else if versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count()
        != 1
    {
        causes.push((
            "spec.versions".into(),
            "FieldValueInvalid",
            "Invalid value: []apiextensions.CustomResourceDefinitionVersion{…}: must have exactly one version marked as storage version".into(),
        ));
    }
    let (plural, group) = (text("/spec/names/plural"), text("/spec/group"));
    let name = text("/metadata/name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn crd(spec: Value) -> Value {
        json!({"metadata": {"name": "fleets.kup.dev"}, "spec": spec})
    }

    #[test]
    fn storage_version_first_and_v1beta1_shape() {
        let d = parse(&crd(json!({"group": "kup.dev", "scope": "Cluster",
            "names": {"plural": "fleets", "kind": "Fleet"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true, "subresources": {"scale": {}}},
                {"name": "v0", "served": false, "storage": false}]})))
        .unwrap();
        let names: Vec<&str> = d.versions.iter().map(|v| v.version).collect();
        assert_eq!(names, ["v1", "v1alpha1"]);
        assert_eq!((d.singular, d.namespaced, d.scale), ("fleet", false, true));
        let old = crd(
            json!({"group": "kup.dev", "scope": "Namespaced", "version": "v1beta1",
            "names": {"plural": "fleets", "kind": "Fleet"}, "subresources": {"status": {}}}),
        );
        assert!(check(&old).is_ok());
        assert!(parse(&old).unwrap().status);
    }

    #[test]
    fn check_names_the_fields() {
        let bad = json!({"metadata": {"name": "fleets"}, "spec": {"group": "kup.dev",
            "scope": "Global", "names": {"plural": "fleets", "kind": "Fleet"},
            "versions": [{"name": "v1", "served": true, "storage": false}]}});
        let fields: Vec<String> = check(&bad).unwrap_err().into_iter().map(|c| c.0).collect();
        assert_eq!(fields, ["spec.scope", "spec.versions", "metadata.name"]);
    }
}
