//! Structural-schema checks for custom objects: pruning of unknown fields, then types,
//! `required` and `enum`, answered as upstream's 422 causes naming the field path.

use serde_json::{Map, Value};

use crate::k8s::resources::ResourceDef;
use crate::k8s::status::ApiError;

type Cause = (String, &'static str, String);

/// Prunes and validates `v` (stored form) against the schema of `version` of `d`.
pub(crate) fn admit(
    d: &ResourceDef,
    version: &str,
    v: &mut Value,
    name: &str,
) -> Result<(), ApiError> {
    let Some(spec) = d.custom else {
        return Ok(());
    };
    let Some(schema) = spec.schemas.get(version) else {
        return Ok(());
    };
    let mut causes = Vec::new();
    if let (Some(obj), Some(props)) = (
        v.as_object_mut(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for (k, child) in obj.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = props.get(k) {
                check(s, child, k, &mut causes);
            }
        }
        if !preserves(schema) {
            obj.retain(|k, _| {
                matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || props.contains_key(k)
            });
        }
        required(schema, obj, "", &mut causes);
    }
    if causes.is_empty() {
        return Ok(());
    }
    let errs: Vec<(&str, &str, String)> = causes
        .iter()
        .map(|(f, r, m)| (f.as_str(), *r, m.clone()))
        .collect();
    Err(ApiError::invalid(d, name, &errs))
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn required(schema: &Value, obj: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for r in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !obj.contains_key(r) {
            causes.push((join(path, r), "FieldValueRequired", "Required value".into()));
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, got: &Value) -> bool {
    match want {
        "" => true,
        "number" => got.is_number(),
        other => type_name(got) == other,
    }
}

/// Checks `v` at `path` against `schema`, pruning unknown fields of objects below it.
fn check(schema: &Value, v: &mut Value, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() && schema["nullable"].as_bool() == Some(true) {
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"].as_bool() == Some(true);
    let want = schema["type"].as_str().unwrap_or_default();
    let ok = if int_or_string {
        v.is_string() || type_name(v) == "integer"
    } else {
        type_ok(want, v)
    };
    if !ok {
        causes.push((
            path.to_string(),
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {want}: \"{}\"",
                type_name(v),
                type_name(v)
            ),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        causes.push((
            path.to_string(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::Object(obj) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in obj.iter_mut() {
                let sub = props.and_then(|p| p.get(k)).or(additional);
                if let Some(s) = sub {
                    check(s, child, &join(path, k), causes);
                }
            }
            if !preserves(schema) && additional.is_none() {
                obj.retain(|k, _| props.is_some_and(|p| p.contains_key(k)));
            }
            required(schema, obj, path, causes);
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(s, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_and_reports_paths() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "required": ["size"],
            "properties": {"size": {"type": "integer"}, "mode": {"type": "string", "enum": ["a", "b"]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
        let mut causes = Vec::new();
        let mut v = json!({"size": "x", "mode": "c", "junk": 1, "free": {"k": 1}});
        check(&schema["properties"]["spec"], &mut v, "spec", &mut causes);
        let fields: Vec<&str> = causes.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(fields, vec!["spec.mode", "spec.size"]);
        assert!(v.get("junk").is_none());
        assert_eq!(v["free"]["k"], 1);
        let mut causes = Vec::new();
        check(
            &schema["properties"]["spec"],
            &mut json!({}),
            "spec",
            &mut causes,
        );
        assert_eq!(causes[0].1, "FieldValueRequired");
    }
}
