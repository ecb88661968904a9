//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch for the
//! fields clients touch (merge keys as in the upstream API types), and server-side apply
//! (approximated as a strategic merge of the applied configuration).

use serde_json::{Map, Value};

use super::status::ApiError;

/// The patch types the API accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub(crate) fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Parses a patch body (JSON, or YAML for apply).
pub(crate) fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the patch body is not UTF-8"))?;
    if kind == PatchType::Apply {
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies `patch` of type `kind` to `current`.
pub(crate) fn apply(kind: PatchType, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            // Upstream's JSON patch lets `test` of `null` pass on a missing path (kube-runtime's
            // finalizer helper relies on it to add the first finalizer).
            let p = json_patch::Patch(
                p.0.into_iter()
                    .filter(|op| match op {
                        json_patch::PatchOperation::Test(t) => {
                            !(t.value.is_null() && doc.pointer(t.path.as_str()).is_none())
                        }
                        _ => true,
                    })
                    .collect(),
            );
            json_patch::patch(&mut doc, &p).map_err(|e| {
                ApiError::unprocessable(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchType::Strategic | PatchType::Apply => {
            let Some(p) = patch.as_object() else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            merge_object(&mut doc, p, "")?;
        }
    }
    Ok(doc)
}

/// How a list field merges (from the `patchStrategy`/`patchMergeKey` tags of the API types).
enum ListStrategy {
    Key(&'static str),
    Primitive,
    Replace,
}

fn strategy(parent: &str, field: &str) -> ListStrategy {
    match (parent, field) {
        (
            _,
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets"
            | "env",
        ) => ListStrategy::Key("name"),
        (_, "ports") if parent != "spec" => ListStrategy::Key("containerPort"),
        (_, "volumeMounts") => ListStrategy::Key("mountPath"),
        (_, "volumeDevices") => ListStrategy::Key("devicePath"),
        ("spec", "taints") => ListStrategy::Key("key"),
        (_, "conditions") => ListStrategy::Key("type"),
        ("status", "addresses") => ListStrategy::Key("type"),
        ("metadata", "ownerReferences") => ListStrategy::Key("uid"),
        ("metadata", "finalizers") => ListStrategy::Primitive,
        ("spec", "hostAliases") => ListStrategy::Key("ip"),
        ("spec", "topologySpreadConstraints") => ListStrategy::Key("topologyKey"),
        _ => ListStrategy::Replace,
    }
}

fn merge_object(
    target: &mut Value,
    patch: &Map<String, Value>,
    path: &str,
) -> Result<(), ApiError> {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return Ok(());
    };
    let parent = path.rsplit('.').next().unwrap_or("");
    for (k, pv) in patch {
        if k == "$patch" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (t.get_mut(field), pv.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        match pv {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(po) => {
                if po.get("$patch").and_then(Value::as_str) == Some("delete") {
                    t.remove(k);
                    continue;
                }
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                merge_object(entry, po, &child)?;
            }
            Value::Array(pl) => match strategy(parent_or_root(parent, path), k) {
                ListStrategy::Replace => {
                    t.insert(k.clone(), Value::Array(strip_directives(pl)));
                }
                ListStrategy::Primitive => {
                    let list = t
                        .entry(k.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(l) = list {
                        for x in pl {
                            if !l.contains(x) {
                                l.push(x.clone());
                            }
                        }
                    } else {
                        *list = Value::Array(pl.clone());
                    }
                }
                ListStrategy::Key(key) => {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let list = t
                        .entry(k.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !list.is_array() {
                        *list = Value::Array(Vec::new());
                    }
                    if let Value::Array(l) = list {
                        merge_keyed_list(l, pl, key, &child)?;
                    }
                }
            },
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    // `$retainKeys`: keep only the listed keys (used with union fields such as strategy).
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn parent_or_root<'a>(parent: &'a str, path: &'a str) -> &'a str {
    if path.is_empty() { "" } else { parent }
}

fn strip_directives(list: &[Value]) -> Vec<Value> {
    list.iter()
        .filter(|x| x.get("$patch").is_none())
        .cloned()
        .collect()
}

fn merge_keyed_list(
    target: &mut Vec<Value>,
    patch: &[Value],
    key: &str,
    path: &str,
) -> Result<(), ApiError> {
    for pe in patch {
        let Some(po) = pe.as_object() else {
            return Err(ApiError::bad_request(format!(
                "unable to find api field in struct for list {path}: elements must be objects with {key:?}"
            )));
        };
        let directive = po.get("$patch").and_then(Value::as_str);
        if directive == Some("replace") {
            *target = strip_directives(patch);
            return Ok(());
        }
        let Some(kv) = po.get(key) else {
            return Err(ApiError::bad_request(format!(
                "map: {pe} does not contain declared merge key: {key}"
            )));
        };
        let pos = target.iter().position(|t| t.get(key) == Some(kv));
        match (directive, pos) {
            (Some("delete"), Some(i)) => {
                target.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => merge_object(&mut target[i], po, path)?,
            (_, None) => {
                let mut fresh = Value::Object(Map::new());
                merge_object(&mut fresh, po, path)?;
                target.push(fresh);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_of_null_passes_on_a_missing_path() {
        let doc = json!({"metadata": {"name": "a"}});
        let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]);
        let out = apply(PatchType::Json, &doc, &p).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["x"]));
        let p = json!([{"op": "test", "path": "/metadata/name", "value": null}]);
        assert!(apply(PatchType::Json, &doc, &p).is_err());
    }

    #[test]
    fn strategic_merge_follows_merge_keys() {
        let cur = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"unschedulable": true, "taints": [{"key": "k1", "effect": "NoSchedule"}],
                "containers": [{"name": "app", "image": "v1"}, {"name": "side", "image": "s"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}});
        let p = json!({"metadata": {"labels": {"b": "2", "a": null}, "finalizers": ["y"]},
            "spec": {"unschedulable": null, "taints": [{"key": "k2", "effect": "NoExecute"}],
                "containers": [{"name": "app", "image": "v2"}, {"name": "side", "$patch": "delete"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let out = apply(PatchType::Strategic, &cur, &p).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert!(out["spec"].get("unschedulable").is_none());
        assert_eq!(out["spec"]["taints"].as_array().unwrap().len(), 2);
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "app", "image": "v2"}])
        );
        assert_eq!(out["status"]["conditions"][0]["status"], "False");
        assert_eq!(out["status"]["conditions"][1]["type"], "X");
    }

    #[test]
    fn merge_and_json_patches() {
        let cur = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "metadata": {"labels": {"x": "1"}}});
        let m = apply(
            PatchType::Merge,
            &cur,
            &json!({"spec": {"containers": [{"name": "c"}]}}),
        )
        .unwrap();
        assert_eq!(
            m["spec"]["containers"],
            json!([{"name": "c"}]),
            "merge patch replaces lists"
        );
        let j = apply(
            PatchType::Json,
            &cur,
            &json!([{"op": "replace", "path": "/metadata/labels/x", "value": "2"},
            {"op": "add", "path": "/metadata/labels/y", "value": "3"}]),
        )
        .unwrap();
        assert_eq!(j["metadata"]["labels"], json!({"x": "2", "y": "3"}));
        let bad = apply(
            PatchType::Json,
            &cur,
            &json!([{"op": "test", "path": "/metadata/labels/x", "value": "9"}]),
        );
        assert_eq!(bad.unwrap_err().code, 422);
        assert_eq!(
            apply(PatchType::Json, &cur, &json!({"op": "nope"}))
                .unwrap_err()
                .code,
            400
        );
    }
}
