//! Kubernetes' protobuf request bodies, for the kinds the simulator decodes: the `k8s\0`
//! envelope (`runtime.Unknown`) and the access reviews kubectl posts as protobuf
//! (`kubectl auth can-i`). Other kinds are answered 415 by the caller.

use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf bodies.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One field's payload: length-delimited bytes, or a scalar (none of the decoded kinds
/// reads one, so its value is skipped).
enum Field<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, in order; `None` if it is not well-formed.
fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let field = match key & 7 {
            0 => {
                varint(b, &mut at)?;
                Field::Scalar
            }
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|e| *e <= b.len())?;
                let v = &b[at..end];
                at = end;
                Field::Bytes(v)
            }
            1 => {
                at = at.checked_add(8).filter(|e| *e <= b.len())?;
                Field::Scalar
            }
            5 => {
                at = at.checked_add(4).filter(|e| *e <= b.len())?;
                Field::Scalar
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn bytes_of<'a>(fs: &[(u64, Field<'a>)], n: u64) -> Option<&'a [u8]> {
    fs.iter().find_map(|(k, f)| match f {
        Field::Bytes(b) if *k == n => Some(*b),
        _ => None,
    })
}

fn text(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

/// A message of string fields as a JSON object (`names[i]` is field `i + 1`, an empty name
/// skips the field); repeated fields named in `lists` become arrays.
fn strings(b: &[u8], names: &[&str], lists: &[&str]) -> Option<Value> {
    let mut m = Map::new();
    for (k, f) in fields(b)? {
        let (Some(name), Field::Bytes(v)) = (
            usize::try_from(k)
                .ok()
                .and_then(|k| names.get(k.checked_sub(1)?))
                .filter(|n| !n.is_empty()),
            f,
        ) else {
            continue;
        };
        if lists.contains(name) {
            let list = m.entry(name.to_string()).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(text(v));
            }
        } else {
            m.insert(name.to_string(), text(v));
        }
    }
    Some(Value::Object(m))
}

const RESOURCE_ATTRIBUTES: &[&str] = &[
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
];
const NON_RESOURCE_ATTRIBUTES: &[&str] = &["path", "verb"];

/// An access review's spec: attributes (fields 1 and 2), then for the subject reviews
/// `user` (3) and `groups` (4).
fn review_spec(b: &[u8]) -> Option<Value> {
    let fs = fields(b)?;
    let mut spec = strings(b, &["", "", "user", "groups"], &["groups"])?;
    if let Some(r) = bytes_of(&fs, 1) {
        spec["resourceAttributes"] = strings(r, RESOURCE_ATTRIBUTES, &[])?;
    }
    if let Some(n) = bytes_of(&fs, 2) {
        spec["nonResourceAttributes"] = strings(n, NON_RESOURCE_ATTRIBUTES, &[])?;
    }
    Some(spec)
}

/// Decodes a protobuf body of `kind` into its JSON form; `Err` names why it cannot.
pub(crate) fn decode(body: &[u8], kind: &str) -> Result<Value, String> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with the k8s envelope")?;
    let envelope = fields(inner).ok_or("the protobuf envelope is malformed")?;
    let type_meta = bytes_of(&envelope, 1)
        .and_then(|t| strings(t, &["apiVersion", "kind"], &[]))
        .unwrap_or_else(|| json!({}));
    if type_meta["kind"] != kind {
        return Err(format!(
            "a protobuf body of kind {} where {kind} was expected",
            type_meta["kind"]
        ));
    }
    let raw = bytes_of(&envelope, 2).unwrap_or(&[]);
    let object = fields(raw).ok_or("the protobuf object is malformed")?;
    let mut out = json!({"apiVersion": type_meta["apiVersion"], "kind": kind, "metadata": {}});
    if let Some(spec) = bytes_of(&object, 2) {
        out["spec"] = review_spec(spec).ok_or("the protobuf spec is malformed")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn field(n: u64, v: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(n << 3 | 2).unwrap(),
            u8::try_from(v.len()).unwrap(),
        ];
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn decodes_an_access_review_as_kubectl_sends_it() {
        let attrs = [field(2, b"patch"), field(5, b"nodes")].concat();
        let spec = field(1, &attrs);
        let object = [field(1, &[]), field(2, &spec), field(3, &[])].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [MAGIC, &field(1, &type_meta), &field(2, &object)].concat();
        let v = decode(&body, "SelfSubjectAccessReview").unwrap();
        assert_eq!(
            v["spec"],
            json!({"resourceAttributes": {"verb": "patch", "resource": "nodes"}})
        );
        assert!(decode(&body, "Pod").unwrap_err().contains("kind"));
        assert!(decode(b"junk", "Pod").is_err());
    }
}
