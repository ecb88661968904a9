//! Upstream-shaped `Status` bodies (`k8s.io/apimachinery/pkg/api/errors`).

use serde_json::{Map, Value, json};

use super::auth::Attributes;
use super::resources::ResourceDef;

/// An API error answered as a `Status` object.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: Option<&'static str>,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u32>,
}

fn details(def: &ResourceDef, name: &str) -> Map<String, Value> {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !def.group.is_empty() {
        d.insert("group".into(), json!(def.group));
    }
    d.insert("kind".into(), json!(def.plural));
    d
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: Some(reason),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub(crate) fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.details = Some(Value::Object(details));
        self
    }

    pub(crate) fn not_found(def: &ResourceDef, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", def.qualified()),
        )
        .with_details(details(def, name))
    }

    /// The answer for a path that names no served resource.
    pub(crate) fn no_route() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(Map::new())
    }

    pub(crate) fn already_exists(def: &ResourceDef, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", def.qualified()),
        )
        .with_details(details(def, name))
    }

    pub(crate) fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                def.qualified()
            ),
        )
        .with_details(details(def, name))
    }

    pub(crate) fn stale(def: &ResourceDef, name: &str) -> Self {
        ApiError::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per `(field, reason, message)`.
    pub(crate) fn invalid(def: &ResourceDef, name: &str, errs: &[(&str, &str, String)]) -> Self {
        ApiError::invalid_kind(def.kind, def.group, name, errs)
    }

    /// 422 for `kind` of `group` (`ListOptions` of `meta.k8s.io`…), as `NewInvalid` words it.
    pub(crate) fn invalid_kind(
        kind: &str,
        group: &str,
        name: &str,
        errs: &[(&str, &str, String)],
    ) -> Self {
        let texts: Vec<String> = errs.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
        let joined = if texts.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        d.insert(
            "causes".into(),
            Value::Array(
                errs.iter()
                    .map(|(f, r, m)| json!({"reason": r, "message": m, "field": f}))
                    .collect(),
            ),
        );
        ApiError::new(
            422,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {joined}"),
        )
        .with_details(d)
    }

    /// 401 as upstream's authentication filter answers it.
    pub(crate) fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 for `user` denied `attrs`, worded as upstream's `forbiddenMessage` and
    /// `NewForbidden` word it.
    pub(crate) fn forbidden(user: &str, attrs: &Attributes) -> Self {
        let verb = &attrs.verb;
        let Some(r) = &attrs.resource else {
            return ApiError::new(
                403,
                "Forbidden",
                format!(
                    "forbidden: User {user:?} cannot {verb} path {:?}",
                    attrs.path
                ),
            )
            .with_details(Map::new());
        };
        let scope = if r.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", r.namespace)
        };
        let why = format!(
            "User {user:?} cannot {verb} resource {:?} in API group {:?} {scope}",
            r.combined(),
            r.group
        );
        let message = if r.name.is_empty() {
            format!("{} is forbidden: {why}", r.qualified())
        } else {
            format!("{} {:?} is forbidden: {why}", r.qualified(), r.name)
        };
        let mut d = Map::new();
        if !r.name.is_empty() {
            d.insert("name".into(), json!(r.name));
        }
        if !r.group.is_empty() {
            d.insert("group".into(), json!(r.group));
        }
        d.insert("kind".into(), json!(r.resource));
        ApiError::new(403, "Forbidden", message).with_details(d)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub(crate) fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(Map::new())
    }

    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    pub(crate) fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        ApiError {
            code: 422,
            reason: None,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// A plain status for an injected fault with the reason upstream uses for that code.
    pub(crate) fn for_code(code: u16, message: Option<String>) -> Self {
        let (reason, default) = match code {
            400 => (
                "BadRequest",
                "the server rejected our request for an unknown reason",
            ),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden"),
            404 => (
                "NotFound",
                "the server could not find the requested resource",
            ),
            405 => (
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
            409 => ("Conflict", "the server reported a conflict"),
            410 => ("Expired", "the resource version is too old"),
            422 => (
                "Invalid",
                "the server rejected our request due to an error in our request",
            ),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => (
                "InternalError",
                "an error on the server (\"\") has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
            _ => ("Unknown", "the server responded with an unexpected status"),
        };
        ApiError {
            code,
            reason: Some(reason),
            message: message.unwrap_or_else(|| default.to_string()),
            details: None,
            retry_after: None,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        if let Some(r) = self.reason {
            m.insert("reason".into(), json!(r));
        }
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            if let Some(o) = d.as_object_mut() {
                o.insert("retryAfterSeconds".into(), json!(secs));
            }
        }
        if let Some(d) = details {
            m.insert("details".into(), d);
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }
}

/// `{"kind":"Status",…,"status":"Success"}` with an optional code and details.
pub(crate) fn success(code: Option<u16>, details: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Success"));
    if let Some(d) = details {
        m.insert("details".into(), d);
    }
    if let Some(c) = code {
        m.insert("code".into(), json!(c));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::super::resources::{def, ids};
    use super::*;

    #[test]
    fn bodies_match_upstream_shapes() {
        let nf = ApiError::not_found(def(ids::PODS), "web-1").body();
        assert_eq!(nf["message"], "pods \"web-1\" not found");
        assert_eq!(nf["details"], json!({"name": "web-1", "kind": "pods"}));
        assert_eq!(nf["code"], 404);
        let c = ApiError::stale(def(ids::DEPLOYMENTS), "web").body();
        assert_eq!(
            c["message"],
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(c["details"]["group"], "apps");
        let mut tmr = ApiError::new(429, "TooManyRequests", "x");
        tmr.retry_after = Some(10);
        assert_eq!(tmr.body()["details"]["retryAfterSeconds"], 10);
        let inv = ApiError::invalid(
            def(ids::PODS),
            "p",
            &[(
                "metadata.name",
                "FieldValueRequired",
                "Required value".into(),
            )],
        )
        .body();
        assert_eq!(
            inv["message"],
            "Pod \"p\" is invalid: metadata.name: Required value"
        );
        assert_eq!(success(Some(201), None)["code"], 201);
    }
}
