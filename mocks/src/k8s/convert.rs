//! Conversion between a stored object and the group-version a client reads or writes it in.
//!
//! Objects are stored once per resource (so one PDB is served as both policy/v1 and
//! policy/v1beta1); conversion rewrites `apiVersion` and, for PDBs, translates the empty
//! selector, whose meaning differs between the two versions exactly as upstream does it.

use serde_json::{Value, json};

use super::resources::{ResId, def, ids};

/// Upstream's marker key for empty v1beta1 selectors (`policy.V1beta1MatchNoneSelector`).
const MARKER: &str = "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match";

fn is_empty_selector(sel: &Value) -> bool {
    let empty = |k: &str| {
        sel.get(k).is_none_or(|v| {
            v.is_null()
                || v.as_object().is_some_and(|m| m.is_empty())
                || v.as_array().is_some_and(|a| a.is_empty())
        })
    };
    sel.is_object() && empty("matchLabels") && empty("matchExpressions")
}

fn marker(sel: &Value) -> Option<&str> {
    let exprs = sel.get("matchExpressions")?.as_array()?;
    if exprs.len() != 1
        || sel
            .get("matchLabels")
            .is_some_and(|m| m.as_object().is_some_and(|m| !m.is_empty()))
    {
        return None;
    }
    let e = &exprs[0];
    (e.get("key")?.as_str()? == MARKER)
        .then(|| e.get("operator").and_then(Value::as_str).unwrap_or(""))
}

/// Converts an incoming object written in `version` to its stored form.
pub(crate) fn to_storage(res: ResId, version: &str, v: &mut Value) {
    if res == ids::PDBS
        && version == "v1beta1"
        && let Some(sel) = v.pointer_mut("/spec/selector")
        && is_empty_selector(sel)
    {
        *sel = json!({"matchExpressions": [{"key": MARKER, "operator": "Exists"}]});
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(def(res).storage_api_version()));
    }
}

/// Converts a stored object to how it reads in `version`.
pub(crate) fn from_storage(res: ResId, version: &str, v: &mut Value) {
    let d = def(res);
    if res == ids::PDBS
        && version == "v1beta1"
        && let Some(sel) = v.pointer_mut("/spec/selector")
    {
        if marker(sel) == Some("Exists") {
            *sel = json!({});
        } else if is_empty_selector(sel) {
            *sel = json!({"matchExpressions": [{"key": MARKER, "operator": "DoesNotExist"}]});
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(d.api_version(version)));
    }
}

/// `true` when reading `res` in `version` needs more than the stored bytes.
pub(crate) fn needs_conversion(res: ResId, version: &str) -> bool {
    def(res).versions[0].version != version
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::selector::LabelSelector;

    #[test]
    fn v1beta1_empty_selector_matches_nothing() {
        let mut pdb = json!({"apiVersion": "policy/v1beta1", "spec": {"selector": {}}});
        to_storage(ids::PDBS, "v1beta1", &mut pdb);
        assert_eq!(pdb["apiVersion"], "policy/v1");
        let sel = LabelSelector::from_object(&pdb["spec"]["selector"]).expect("selector");
        assert!(!sel.matches(&[("app".into(), "x".into())]));
        let mut back = pdb.clone();
        from_storage(ids::PDBS, "v1beta1", &mut back);
        assert_eq!(back["spec"]["selector"], json!({}));
        let mut v1_empty = json!({"spec": {"selector": {}}});
        from_storage(ids::PDBS, "v1beta1", &mut v1_empty);
        assert_eq!(
            v1_empty["spec"]["selector"]["matchExpressions"][0]["operator"],
            "DoesNotExist"
        );
    }
}
