//! What a request asks to do, in the terms authorizers decide on (upstream's `RequestInfo`):
//! a verb on a resource (group, resource, subresource, namespace, name) or on a URL path.

use http::Method;

use super::super::http::Req;

/// A resource request's target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ResourceAttrs {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceAttrs {
    /// `pods/eviction`, or `pods` without a subresource.
    pub(crate) fn combined(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// `pods` or `deployments.apps`, as Forbidden messages qualify it.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// A request as an authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub verb: String,
    /// `None` for a non-resource request (`/version`, `/readyz`, `/apis`…).
    pub resource: Option<ResourceAttrs>,
    pub path: String,
}

/// Namespace subresources: `/api/v1/namespaces/x/status` is the namespace's, not a resource
/// called `status` in namespace `x`.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

impl Attributes {
    pub(crate) fn of(req: &Req) -> Attributes {
        let path = req.path.clone();
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => {
                return Attributes {
                    verb: req.method.as_str().to_ascii_lowercase(),
                    resource: None,
                    path,
                };
            }
        };
        let mut rest: Vec<&str> = rest.to_vec();
        let mut watch_path = false;
        if rest.first() == Some(&"watch") {
            watch_path = true;
            rest.remove(0);
        }
        let mut r = ResourceAttrs {
            group: group.to_string(),
            ..ResourceAttrs::default()
        };
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            r.namespace = rest[1].to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest.drain(..2);
            }
        }
        r.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
        r.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        r.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        let verb = match req.method {
            Method::GET | Method::HEAD if watch_path => "watch",
            Method::GET | Method::HEAD if r.name.is_empty() => {
                if req.flag("watch") {
                    "watch"
                } else {
                    "list"
                }
            }
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if r.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        // A list or watch narrowed to one name is authorized as that name, as upstream does.
        if matches!(verb, "list" | "watch")
            && let Some(name) = req
                .q("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name="))
                .filter(|n| !n.contains(','))
        {
            r.name = name.to_string();
        }
        Attributes {
            verb: verb.to_string(),
            resource: Some(r),
            path,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn of(method: Method, path: &str, query: &str) -> Attributes {
        Attributes::of(&Req::new(
            method,
            path.into(),
            query.into(),
            HeaderMap::new(),
            Bytes::new(),
        ))
    }

    #[test]
    fn resource_requests() {
        let a = of(
            Method::POST,
            "/api/v1/namespaces/shop/pods/web-1/eviction",
            "",
        );
        assert_eq!(a.verb, "create");
        let r = a.resource.unwrap();
        assert_eq!(
            (r.combined().as_str(), r.namespace.as_str(), r.name.as_str()),
            ("pods/eviction", "shop", "web-1")
        );
        let w = of(Method::GET, "/apis/apps/v1/deployments", "watch=true");
        assert_eq!(w.verb, "watch");
        assert_eq!(w.resource.unwrap().qualified(), "deployments.apps");
        let ns = of(Method::GET, "/api/v1/namespaces/shop", "");
        let r = ns.resource.unwrap();
        assert_eq!(
            (r.resource.as_str(), r.namespace.as_str()),
            ("namespaces", "shop")
        );
        let one = of(
            Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
            "fieldSelector=metadata.name%3Dkup-upgrade-prod",
        );
        assert_eq!(one.verb, "list");
        assert_eq!(one.resource.unwrap().name, "kup-upgrade-prod");
        assert_eq!(
            of(Method::DELETE, "/api/v1/namespaces/a/pods", "").verb,
            "deletecollection"
        );
    }

    #[test]
    fn non_resource_requests() {
        for p in [
            "/version",
            "/readyz/etcd",
            "/apis",
            "/api/v1",
            "/apis/apps/v1",
        ] {
            let a = of(Method::GET, p, "");
            assert_eq!(
                (a.verb.as_str(), a.resource.is_none()),
                ("get", true),
                "{p}"
            );
        }
    }
}
