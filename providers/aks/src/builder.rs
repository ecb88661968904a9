//! Building an [`AksProvider`]: the cluster's coordinates, a credential (the default chain or an
//! injected one), and the endpoint, api-version and trust overrides for tests and sovereign
//! clouds.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{
    ClientOptions, ExponentialRetryOptions, Pipeline, RetryOptions, Transport, Url,
};

use crate::arm::ArmClient;
use crate::credential::{DefaultChain, StaticToken};
use crate::error::{Error, Result};
use crate::provider::{AksProvider, AksSettings};

/// The newest stable Microsoft.ContainerService api-version kup speaks.
pub const DEFAULT_API_VERSION: &str = "2026-08-01";
/// The environment variable [`AksBuilder::from_env`] reads a bearer token from.
pub const ACCESS_TOKEN_ENV: &str = "KUP_AKS_ACCESS_TOKEN";
/// Azure public cloud's Resource Manager.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

/// Builds an [`AksProvider`]; [`AksBuilder::build`] checks every setting before any call.
#[derive(Default)]
pub struct AksBuilder {
    subscription: Option<String>,
    resource_group: Option<String>,
    cluster: Option<String>,
    endpoint: Option<String>,
    api_version: Option<String>,
    credential: Option<Arc<dyn TokenCredential>>,
    ca_pem: Option<String>,
    retries: Option<u32>,
    kube: Option<kube::Client>,
    settings: AksSettings,
    from_env: bool,
}

impl std::fmt::Debug for AksBuilder {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AksBuilder")
            .field("subscription", &self.subscription)
            .field("resource_group", &self.resource_group)
            .field("cluster", &self.cluster)
            .field("endpoint", &self.endpoint)
            .field("api_version", &self.api_version)
            .field("from_env", &self.from_env)
            .finish_non_exhaustive()
    }
}

impl AksBuilder {
    /// The subscription from `AZURE_SUBSCRIPTION_ID`, and credentials from the default chain
    /// ([`DefaultChain`]), or the bearer token in `KUP_AKS_ACCESS_TOKEN` when set (one obtained
    /// elsewhere, e.g. `az account get-access-token --query accessToken -o tsv`), unless set
    /// otherwise.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
        let credential = var(ACCESS_TOKEN_ENV)
            .map(|t| Arc::new(StaticToken::new(t)) as Arc<dyn TokenCredential>);
        Self {
            subscription: var("AZURE_SUBSCRIPTION_ID"),
            credential,
            from_env: true,
            ..Self::default()
        }
    }

    /// Everything from this builder's settings; no environment is read.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subscription id (a GUID).
    pub fn subscription(mut self, id: impl Into<String>) -> Self {
        self.subscription = Some(id.into());
        self
    }

    /// The resource group holding the cluster.
    pub fn resource_group(mut self, name: impl Into<String>) -> Self {
        self.resource_group = Some(name.into());
        self
    }

    /// The managed cluster's name.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// Resource Manager's endpoint (a mock, a sovereign cloud); `https://` only, since every
    /// request carries a bearer token.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The Microsoft.ContainerService api-version (default [`DEFAULT_API_VERSION`]).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Uses this credential instead of the default chain.
    pub fn credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Uses a fixed bearer token (mocks and tests).
    pub fn static_token(self, token: impl Into<String>) -> Self {
        self.credential(Arc::new(StaticToken::new(token)))
    }

    /// Trusts this CA (PEM) in addition to the system's roots (a mock, a TLS-inspecting proxy).
    pub fn ca_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// How many times a 408/429/5xx answer or a dropped connection is retried (azure_core's
    /// exponential policy, honouring `Retry-After`); 8 by default, 0 turns retries off.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// A client for the cluster's Kubernetes API: pre-flight reads the API server's
    /// deprecated-API metric to report AKS's removed-API block before any upgrade is sent.
    pub fn kube_client(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// Pool-upgrade and polling settings.
    pub fn settings(mut self, settings: AksSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Checks the settings and builds the provider. Nothing is contacted.
    pub fn build(self) -> Result<AksProvider> {
        let subscription = self.subscription.clone().ok_or(Error::Config {
            field: "subscription",
            message: "is required (the subscription id, e.g. --subscription \
                      00000000-0000-0000-0000-000000000000, or AZURE_SUBSCRIPTION_ID)"
                .into(),
        })?;
        validate_guid(&subscription)?;
        let resource_group = self.resource_group.clone().ok_or(Error::Config {
            field: "resource_group",
            message: "is required (the cluster's resource group, e.g. --resource-group rg-prod)"
                .into(),
        })?;
        validate_resource_group(&resource_group)?;
        let cluster = self.cluster.clone().ok_or(Error::Config {
            field: "cluster",
            message: "is required (the managed cluster's name, e.g. --cluster prod-1)".into(),
        })?;
        validate_cluster(&cluster)?;
        let api_version = self
            .api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_API_VERSION.into());
        validate_api_version(&api_version)?;
        let endpoint_text = self
            .endpoint
            .clone()
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let endpoint = Url::parse(&endpoint_text).map_err(|e| Error::Config {
            field: "endpoint",
            message: format!("{endpoint_text:?} is not a URL ({e}); expected https://host[:port]"),
        })?;
        if endpoint.scheme() != "https" || endpoint.host_str().is_none() {
            return Err(Error::Config {
                field: "endpoint",
                message: format!(
                    "{endpoint_text:?} must be an https:// URL: every request carries a bearer \
                     token"
                ),
            });
        }
        let credential: Arc<dyn TokenCredential> = match self.credential {
            Some(c) => c,
            None => Arc::new(DefaultChain::from_env().map_err(|e| Error::Config {
                field: "credential",
                message: format!("the default credential chain cannot be built: {e}"),
            })?),
        };
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(pem) = &self.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                Error::Config {
                    field: "ca_certificate_pem",
                    message: format!("is not a PEM certificate bundle: {e}"),
                }
            })?;
            if certs.is_empty() {
                return Err(Error::Config {
                    field: "ca_certificate_pem",
                    message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                });
            }
            http = http.tls_certs_merge(certs);
        }
        let http = http.build().map_err(|e| Error::Config {
            field: "endpoint",
            message: format!("the HTTPS client cannot be built: {e}"),
        })?;
        let retry = match self.retries {
            Some(0) => RetryOptions::none(),
            Some(n) => RetryOptions::exponential(ExponentialRetryOptions {
                max_retries: n,
                ..Default::default()
            }),
            None => RetryOptions::default(),
        };
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry,
            ..Default::default()
        };
        let scope = format!(
            "{}://{}/.default",
            endpoint.scheme(),
            endpoint.host_str().unwrap_or("management.azure.com")
        );
        // Resource Manager's token audience is the public endpoint's, whatever host serves it
        // in a sovereign cloud's own form; a mock accepts any.
        let scope = if endpoint_text == DEFAULT_ENDPOINT {
            "https://management.azure.com/.default".to_string()
        } else {
            scope
        };
        let auth: Arc<dyn Policy> =
            Arc::new(BearerTokenAuthorizationPolicy::new(credential, [scope]));
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        let arm = ArmClient::new(
            pipeline,
            endpoint,
            api_version,
            subscription.clone(),
            resource_group.clone(),
            cluster.clone(),
        );
        Ok(AksProvider::new(
            arm,
            subscription,
            resource_group,
            cluster,
            self.settings,
            self.kube,
        ))
    }
}

fn validate_guid(id: &str) -> Result<()> {
    let parts: Vec<&str> = id.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "subscription",
            message: format!(
                "{id:?} is not a subscription id; expected a GUID such as \
                 00000000-0000-0000-0000-000000000000"
            ),
        })
    }
}

fn validate_resource_group(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "resource_group",
            message: format!(
                "{name:?} is not a resource group name: 1-90 letters, digits, '-', '_', '.', \
                 '(' or ')', not ending in '.'"
            ),
        })
    }
}

fn validate_cluster(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "cluster",
            message: format!(
                "{name:?} is not an AKS cluster name: 1-63 letters, digits, '-' or '_', starting \
                 and ending with a letter or digit"
            ),
        })
    }
}

fn validate_api_version(v: &str) -> Result<()> {
    let (date, preview) = match v.strip_suffix("-preview") {
        Some(d) => (d, true),
        None => (v, false),
    };
    let ok = jiff::civil::Date::strptime("%Y-%m-%d", date).is_ok() && date.len() == 10;
    if !ok {
        return Err(Error::Config {
            field: "api_version",
            message: format!(
                "{v:?} is not an ARM api-version; expected a date such as {DEFAULT_API_VERSION}"
            ),
        });
    }
    if preview {
        return Err(Error::Config {
            field: "api_version",
            message: format!(
                "{v:?} is a preview api-version, which AKS retires after about a year; use a \
                 stable one such as {DEFAULT_API_VERSION}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SUB: &str = "3f2c9a1e-5b7d-4c8e-9f0a-1b2c3d4e5f60";

    fn full() -> AksBuilder {
        AksBuilder::new()
            .subscription(SUB)
            .resource_group("rg-prod")
            .cluster("prod-1")
            .static_token("t")
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        let cases = [
            (
                AksBuilder::new().resource_group("rg").cluster("c"),
                "subscription",
            ),
            (full().subscription("not-a-guid"), "subscription"),
            (
                AksBuilder::new().subscription(SUB).cluster("c"),
                "resource_group",
            ),
            (full().resource_group("bad/rg"), "resource_group"),
            (
                AksBuilder::new().subscription(SUB).resource_group("rg"),
                "cluster",
            ),
            (full().cluster("-bad"), "cluster"),
            (full().endpoint("http://127.0.0.1:8080"), "endpoint"),
            (full().endpoint("not a url"), "endpoint"),
            (full().api_version("2026-13-45"), "api_version"),
            (full().api_version("2023-01-02-preview"), "api_version"),
            (full().ca_certificate_pem("garbage"), "ca_certificate_pem"),
        ];
        for (builder, field) in cases {
            let err = builder.build().unwrap_err();
            assert!(
                matches!(&err, Error::Config { field: f, .. } if *f == field),
                "{field}: {err}"
            );
        }
        assert!(full().build().is_ok());
        assert!(full().endpoint("https://127.0.0.1:9").build().is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let text = format!("{:?}", full().static_token("very-secret-token"));
        assert!(!text.contains("very-secret-token"), "{text}");
        let p = full().static_token("very-secret-token").build().unwrap();
        assert!(!format!("{p:?}").contains("very-secret-token"));
    }
}
