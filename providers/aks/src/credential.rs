//! Credentials: the default chain azure_identity 1.0 leaves to its callers, and a fixed token
//! for mocks and tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_identity::{
    ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential,
    WorkloadIdentityCredential,
};

/// The default chain, in the order the other Azure SDKs use: a service principal's secret from
/// `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`, workload identity
/// (`AZURE_FEDERATED_TOKEN_FILE`), a managed identity, then the developer tools (`az`, `azd`).
/// The first source that gives a token is used from then on.
#[derive(Debug)]
pub struct DefaultChain {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    chosen: AtomicUsize,
}

impl DefaultChain {
    /// The chain for this process's environment. Nothing is contacted until a token is needed.
    pub fn from_env() -> azure_core::Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        if let (Some(tenant), Some(client), Some(secret)) = (
            var("AZURE_TENANT_ID"),
            var("AZURE_CLIENT_ID"),
            var("AZURE_CLIENT_SECRET"),
        ) {
            sources.push((
                "environment client secret",
                ClientSecretCredential::new(&tenant, client, Secret::new(secret), None)?,
            ));
        }
        if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            sources.push(("workload identity", WorkloadIdentityCredential::new(None)?));
        }
        sources.push(("managed identity", ManagedIdentityCredential::new(None)?));
        sources.push((
            "developer tools (az, azd)",
            DeveloperToolsCredential::new(None)?,
        ));
        Ok(Self {
            sources,
            chosen: AtomicUsize::new(usize::MAX),
        })
    }
}

#[async_trait]
impl TokenCredential for DefaultChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = self.chosen.load(Ordering::SeqCst);
        if let Some((_, source)) = self.sources.get(chosen) {
            return source.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, (name, source)) in self.sources.iter().enumerate() {
            match source.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    self.chosen.store(i, Ordering::SeqCst);
                    return Ok(token);
                }
                // The sources' messages say what they tried; none carries a secret.
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!("every source failed ({})", failures.join("; ")),
        ))
    }
}

/// A fixed bearer token (mocks, tests, tokens obtained elsewhere). Never printed.
pub struct StaticToken(Secret);

impl StaticToken {
    /// A credential that always answers `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::new(token.into()))
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.secret().to_string(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
