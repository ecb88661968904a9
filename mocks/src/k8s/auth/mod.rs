//! Authentication and authorization: bearer tokens name users and groups, RBAC objects decide
//! every request, and access reviews answer what a subject may do.

mod attributes;
pub(crate) mod bootstrap;
mod identity;
mod rbac;
pub(crate) mod review;

pub(crate) use attributes::Attributes;
pub(crate) use identity::{Authenticator, Identity};

use super::http::Req;
use super::shared::Shared;
use super::status::ApiError;

/// Authenticates `req` and authorizes what it asks: the identity, or the 401/403 to answer.
pub(crate) fn admit(sh: &Shared, req: &Req) -> Result<Identity, ApiError> {
    let who = impersonate(sh, req, sh.auth.authenticate(req)?)?;
    if who.is_privileged() {
        return Ok(who);
    }
    let attrs = Attributes::of(req);
    if rbac::authorize(&sh.lock(), &who, &attrs).allowed {
        Ok(who)
    } else {
        Err(ApiError::forbidden(&who.name, &attrs))
    }
}

/// `Impersonate-User`/`Impersonate-Group` (kubectl `--as`/`--as-group`): allowed when the
/// caller may `impersonate` each `users` and `groups` name, as upstream's filter checks.
fn impersonate(sh: &Shared, req: &Req, who: Identity) -> Result<Identity, ApiError> {
    let values = |name: &str| -> Vec<String> {
        req.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(String::from)
            .collect()
    };
    let users = values("impersonate-user");
    let groups = values("impersonate-group");
    let Some(user) = users.first() else {
        if groups.is_empty() {
            return Ok(who);
        }
        return Err(ApiError::bad_request(
            "requested [{Group}] without impersonating a user",
        ));
    };
    let wanted = std::iter::once(("users", user.clone()))
        .chain(groups.iter().map(|g| ("groups", g.clone())));
    for (resource, name) in wanted {
        let attrs = Attributes {
            verb: "impersonate".into(),
            resource: Some(attributes::ResourceAttrs {
                resource: resource.into(),
                name,
                ..Default::default()
            }),
            path: req.path.clone(),
        };
        if !who.is_privileged() && !rbac::authorize(&sh.lock(), &who, &attrs).allowed {
            return Err(ApiError::forbidden(&who.name, &attrs));
        }
    }
    let mut groups = groups;
    if !groups.iter().any(|g| g == identity::AUTHENTICATED) {
        groups.push(identity::AUTHENTICATED.to_string());
    }
    Ok(Identity {
        name: user.clone(),
        groups,
    })
}
