//! Who may call the simulated API server: users with bearer tokens, and what a request without
//! credentials is.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The user every simulator knows: `admin` in `system:masters`, whose token is in
/// [`crate::k8s::SimHandle::kubeconfig_yaml`] and [`crate::k8s::SimHandle::client_config`].
pub const ADMIN_USER: &str = "admin";

/// The admin's bearer token (a placeholder, not a secret: the simulator is a test fixture).
pub const ADMIN_TOKEN: &str = "kup-sim-not-a-secret";

/// A user of the simulated cluster, authenticated by a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    /// The user name RBAC subjects of kind `User` match (`kup`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// Groups besides `system:authenticated`, which every authenticated user is in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The bearer token that authenticates as this user (default `<name>-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl User {
    /// A user named `name` with token `<name>-token`.
    pub fn new(name: impl Into<String>) -> Self {
        User {
            name: name.into(),
            groups: Vec::new(),
            token: None,
        }
    }

    /// Adds a group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The bearer token that authenticates as this user.
    pub fn bearer_token(&self) -> String {
        self.token
            .clone()
            .unwrap_or_else(|| format!("{}-token", self.name))
    }

    pub(crate) fn check(&self, field: &str) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::scenario(
                format!("{field}.name"),
                "a user needs a non-empty name",
            ));
        }
        if self.name == ADMIN_USER {
            return Err(Error::scenario(
                format!("{field}.name"),
                format!("{ADMIN_USER:?} is the built-in system:masters user; pick another name"),
            ));
        }
        if self.bearer_token().trim().is_empty() || self.bearer_token() == ADMIN_TOKEN {
            return Err(Error::scenario(
                format!("{field}.token"),
                "the token must be non-empty and differ from the admin's",
            ));
        }
        Ok(())
    }
}

/// What a request without credentials is treated as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Anonymous {
    /// The built-in admin: the simulator's default, so tools and tests that send no
    /// credentials keep working.
    #[default]
    Admin,
    /// `system:anonymous` in `system:unauthenticated`, as a real server with anonymous
    /// authentication enabled (it may read `/version` and health, nothing else by default).
    Enabled,
    /// Refused with 401 Unauthorized, as a real server with `--anonymous-auth=false`.
    Disabled,
}

impl Anonymous {
    pub(crate) fn is_admin(&self) -> bool {
        *self == Anonymous::Admin
    }
}
