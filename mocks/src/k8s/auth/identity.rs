//! Authentication: bearer tokens to users and groups, and what a request without credentials is.

use std::collections::BTreeMap;

use http::{HeaderMap, header};

use super::super::http::Req;
use super::super::scenario::{ADMIN_TOKEN, ADMIN_USER, Anonymous, Scenario};
use super::super::status::ApiError;

/// The group every authenticated user is in.
pub(crate) const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub(crate) const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group the API server allows everything, whatever RBAC says.
pub(crate) const MASTERS: &str = "system:masters";

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub name: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub(crate) fn admin() -> Self {
        Identity {
            name: ADMIN_USER.to_string(),
            groups: vec![MASTERS.to_string(), AUTHENTICATED.to_string()],
        }
    }

    fn anonymous() -> Self {
        Identity {
            name: "system:anonymous".to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
        }
    }

    /// In `system:masters`: allowed everything before RBAC is asked.
    pub(crate) fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// Maps credentials to identities; built once from the scenario.
#[derive(Debug)]
pub(crate) struct Authenticator {
    tokens: BTreeMap<String, Identity>,
    anonymous: Anonymous,
}

impl Authenticator {
    pub(crate) fn new(sc: &Scenario) -> Self {
        let mut tokens = BTreeMap::new();
        tokens.insert(ADMIN_TOKEN.to_string(), Identity::admin());
        for u in &sc.users {
            let mut groups = u.groups.clone();
            if !groups.iter().any(|g| g == AUTHENTICATED) {
                groups.push(AUTHENTICATED.to_string());
            }
            tokens.insert(
                u.bearer_token(),
                Identity {
                    name: u.name.clone(),
                    groups,
                },
            );
        }
        Authenticator {
            tokens,
            anonymous: sc.anonymous,
        }
    }

    /// The identity of a request: its client certificate's subject, else its bearer token's
    /// user, else the anonymous identity (upstream's order of authenticators).
    pub(crate) fn authenticate(&self, req: &Req) -> Result<Identity, ApiError> {
        if let Some((name, groups)) = &req.client_certificate {
            let mut groups = groups.clone();
            if !groups.iter().any(|g| g == AUTHENTICATED) {
                groups.push(AUTHENTICATED.to_string());
            }
            return Ok(Identity {
                name: name.clone(),
                groups,
            });
        }
        self.authenticate_headers(&req.headers)
    }

    /// A bearer token's user, else the anonymous identity. A token nobody has is refused, as
    /// upstream's token authenticator refuses it.
    fn authenticate_headers(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            })
            .filter(|t| !t.is_empty());
        match bearer {
            Some(token) => self
                .tokens
                .get(&token)
                .cloned()
                .ok_or_else(ApiError::unauthorized),
            None => match self.anonymous {
                Anonymous::Admin => Ok(Identity::admin()),
                Anonymous::Enabled => Ok(Identity::anonymous()),
                Anonymous::Disabled => Err(ApiError::unauthorized()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::super::scenario::User;
    use super::*;

    fn with_token(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn tokens_map_to_users_and_unknown_tokens_are_refused() {
        let sc = Scenario::new()
            .user(User::new("kup").group("ops"))
            .anonymous(Anonymous::Disabled);
        let a = Authenticator::new(&sc);
        let kup = a.authenticate_headers(&with_token("kup-token")).unwrap();
        assert_eq!(kup.name, "kup");
        assert_eq!(kup.groups, vec!["ops", AUTHENTICATED]);
        assert!(
            a.authenticate_headers(&with_token(ADMIN_TOKEN))
                .unwrap()
                .is_privileged()
        );
        assert_eq!(
            a.authenticate_headers(&with_token("nope"))
                .unwrap_err()
                .code,
            401
        );
        assert_eq!(
            a.authenticate_headers(&HeaderMap::new()).unwrap_err().code,
            401
        );
        let open = Authenticator::new(&Scenario::new());
        assert!(
            open.authenticate_headers(&HeaderMap::new())
                .unwrap()
                .is_privileged()
        );
    }
}
