//! `SelfSubjectAccessReview`, `SubjectAccessReview` and `LocalSubjectAccessReview`: asked of
//! the same RBAC decision every request gets (this is what `kubectl auth can-i` posts).

use serde_json::{Value, json};

use super::super::cluster::Cluster;
use super::super::objects::s;
use super::super::resources::ResourceDef;
use super::super::status::ApiError;
use super::attributes::{Attributes, ResourceAttrs};
use super::identity::Identity;
use super::rbac;

/// Answers a review of kind `d` posted by `who` (in namespace `ns` for the local review).
pub(crate) fn answer(
    c: &Cluster,
    d: &ResourceDef,
    ns: &str,
    who: &Identity,
    mut body: Value,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let invalid = |field: &str, value: &str, msg: &str| {
        ApiError::invalid(
            d,
            "",
            &[(
                field,
                "FieldValueInvalid",
                format!("Invalid value: {value:?}: {msg}"),
            )],
        )
    };
    let res = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_res = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let attrs = match (res, non_res) {
        (Some(r), None) => {
            let mut namespace = s(r, "namespace").to_string();
            if d.namespaced {
                if !namespace.is_empty() && namespace != ns {
                    return Err(invalid(
                        "spec.resourceAttributes.namespace",
                        &namespace,
                        "must match metadata.namespace",
                    ));
                }
                namespace = ns.to_string();
            }
            Attributes {
                verb: s(r, "verb").to_string(),
                resource: Some(ResourceAttrs {
                    group: s(r, "group").to_string(),
                    resource: s(r, "resource").to_string(),
                    subresource: s(r, "subresource").to_string(),
                    namespace,
                    name: s(r, "name").to_string(),
                }),
                path: String::new(),
            }
        }
        (None, Some(n)) if !d.namespaced => Attributes {
            verb: s(n, "verb").to_string(),
            resource: None,
            path: s(n, "path").to_string(),
        },
        _ => {
            return Err(invalid(
                "spec.resourceAttributes",
                "null",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let subject = if d.kind == "SelfSubjectAccessReview" {
        who.clone()
    } else {
        let groups = rbac::strings(&spec, "groups");
        let user = s(&spec, "user").to_string();
        if user.is_empty() && groups.is_empty() {
            return Err(invalid(
                "spec.user",
                "",
                "at least one of user or group must be specified",
            ));
        }
        Identity { name: user, groups }
    };
    let decision = rbac::authorize(c, &subject, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    body["status"] = status;
    if body.get("metadata").is_none_or(|m| !m.is_object()) {
        body["metadata"] = json!({});
    }
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("creationTimestamp");
    }
    Ok(body)
}
