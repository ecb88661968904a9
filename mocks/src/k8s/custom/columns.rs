//! `additionalPrinterColumns`: the simple JSONPath (`.spec.target`, `.status.items[0].name`)
//! each column names, evaluated the way kube-apiserver's table convertor does for CRs.

use serde_json::Value;

use super::{CustomSpec, PrinterColumn};

/// The columns of `spec`'s storage version; upstream defaults an empty list to an Age column.
pub(crate) fn of<'a>(spec: &'a CustomSpec, version: &str) -> Option<&'a [PrinterColumn]> {
    spec.columns
        .get(version)
        .map(Vec::as_slice)
        .filter(|c| !c.is_empty())
}

/// The value at `path` in `v`, `None` when absent (the cell is then `<none>`-less empty).
pub(crate) fn eval<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        for idx in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            cur = cur.get(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

/// The cell for a column value: scalars as they are, anything else as JSON text.
pub(crate) fn cell(col: &PrinterColumn, v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(x @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            if col.kind == "string" && !x.is_string() {
                Value::String(x.to_string())
            } else {
                x.clone()
            }
        }
        Some(other) => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_with_indexes() {
        let v = json!({"spec": {"target": "1.34", "pools": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(eval(&v, ".spec.target"), Some(&json!("1.34")));
        assert_eq!(eval(&v, ".spec.pools[1].name"), Some(&json!("b")));
        assert_eq!(eval(&v, ".status.phase"), None);
    }
}
