//! Building an [`EksProvider`]: credentials from aws-config's default chain, or an injected
//! SDK configuration (tests, mocks, embedders with their own credential handling).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_eks::config::{Credentials, Region};

use crate::error::{Error, Result};
use crate::provider::{EksProvider, EksSettings};

/// Builds an [`EksProvider`]; [`EksBuilder::build`] checks every setting before any call.
#[derive(Default)]
pub struct EksBuilder {
    cluster: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    sdk_config: Option<aws_config::SdkConfig>,
    static_credentials: Option<(String, String)>,
    kube: Option<kube::Client>,
    settings: EksSettings,
    from_env: bool,
    allow_insecure_endpoint: bool,
}

impl std::fmt::Debug for EksBuilder {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksBuilder")
            .field("cluster", &self.cluster)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("from_env", &self.from_env)
            .field("allow_insecure_endpoint", &self.allow_insecure_endpoint)
            .finish_non_exhaustive()
    }
}

impl EksBuilder {
    /// Credentials and region from aws-config's default chain (environment, profile, SSO,
    /// web identity, instance metadata), loaded at [`EksBuilder::build`].
    pub fn from_env() -> Self {
        Self {
            from_env: true,
            ..Self::default()
        }
    }

    /// Everything from this builder's settings; no environment is read.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cluster to upgrade.
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// The AWS region (`us-west-2`); overrides the environment's.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends every call to this endpoint instead of EKS's (a mock, a VPC endpoint).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Allows an `http://` endpoint on a host other than loopback. Signed requests then carry
    /// the access key id, the signature and the session token in cleartext; off by default.
    pub fn allow_insecure_endpoint(mut self, allow: bool) -> Self {
        self.allow_insecure_endpoint = allow;
        self
    }

    /// The warning to show when the endpoint is `http://` (requests and credentials in
    /// cleartext), `None` for https or the default endpoint. Callers show it in their own
    /// output; [`EksBuilder::build`] also logs it.
    pub fn cleartext_warning(&self) -> Option<String> {
        let url = self.endpoint.as_deref()?;
        let host = cleartext_host(url)?;
        Some(format!(
            "EKS endpoint_url {url} is plain HTTP: every signed request, with its session token, travels unencrypted{}",
            if is_loopback(host) {
                " (accepted because the host is loopback)"
            } else {
                ""
            }
        ))
    }

    /// Uses this SDK configuration (credentials, retries, timeouts) as the base.
    pub fn sdk_config(mut self, config: aws_config::SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// Uses fixed credentials (mocks and tests); real deployments use the default chain.
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.static_credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// A client for the cluster's Kubernetes API, used by pre-flight to find nodes outside
    /// managed node groups.
    pub fn kube_client(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// Polling and timing settings.
    pub fn settings(mut self, settings: EksSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Checks the settings, loads credentials when asked, and builds the provider.
    pub async fn build(self) -> Result<EksProvider> {
        let cluster = self.cluster.clone().ok_or(Error::Config {
            field: "cluster_name",
            message: "is required (the EKS cluster's name, e.g. --cluster prod-1)".into(),
        })?;
        validate_cluster_name(&cluster)?;
        if let Some(region) = &self.region {
            validate_region(region)?;
        }
        if let Some(url) = &self.endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::Config {
                field: "endpoint_url",
                message: format!("{url:?} must start with http:// or https://"),
            });
        }
        if let Some(url) = &self.endpoint
            && let Some(host) = cleartext_host(url)
        {
            if !is_loopback(host) && !self.allow_insecure_endpoint {
                return Err(Error::Config {
                    field: "endpoint_url",
                    message: format!(
                        "{url} is plain HTTP to {host}, which is not loopback: signed requests \
                         and the session token would travel in cleartext; use https://, or allow \
                         it explicitly (allow_insecure_endpoint: --allow-insecure-endpoint, \
                         kup.yaml `allow_insecure_endpoint: true`)"
                    ),
                });
            }
            if let Some(w) = self.cleartext_warning() {
                tracing::warn!("{w}");
            }
        }
        let base = match (self.sdk_config, self.from_env) {
            (Some(c), _) => c,
            (None, true) => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(r) = &self.region {
                    loader = loader.region(Region::new(r.clone()));
                }
                loader.load().await
            }
            (None, false) => aws_config::SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        };
        let mut config = aws_sdk_eks::config::Builder::from(&base).timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
        if let Some(r) = &self.region {
            config = config.region(Region::new(r.clone()));
        }
        if let Some(url) = &self.endpoint {
            config = config.endpoint_url(url.clone());
        }
        if let Some((id, secret)) = self.static_credentials {
            config = config.credentials_provider(Credentials::new(id, secret, None, None, "kup"));
        }
        let config = config.build();
        let region = match config.region() {
            Some(r) => r.to_string(),
            None => {
                return Err(Error::Config {
                    field: "region",
                    message: "is not set: pass --region (e.g. us-west-2) or set AWS_REGION".into(),
                });
            }
        };
        validate_region(&region)?;
        Ok(EksProvider::new(
            aws_sdk_eks::Client::from_conf(config),
            cluster,
            region,
            self.kube,
            self.settings,
        ))
    }
}

/// The host of an `http://` URL (`None` for other schemes).
fn cleartext_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    Some(match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn validate_cluster_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "cluster_name",
            message: format!(
                "{name:?} is not an EKS cluster name: 1-100 letters, digits, '-' or '_', \
                 starting with a letter or digit"
            ),
        })
    }
}

fn validate_region(region: &str) -> Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "region",
            message: format!("{region:?} is not an AWS region; expected a form like us-west-2"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn bad_settings_name_the_field_and_the_accepted_form() {
        let e = EksBuilder::new()
            .region("us-west-2")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cluster_name"), "{e}");
        let e = EksBuilder::new()
            .cluster_name("-bad name")
            .region("us-west-2")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("letters, digits"), "{e}");
        let e = EksBuilder::new()
            .cluster_name("prod")
            .region("Oregon")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("us-west-2"), "{e}");
        let e = EksBuilder::new()
            .cluster_name("prod")
            .region("us-west-2")
            .endpoint_url("127.0.0.1:1")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("endpoint_url"), "{e}");
        let e = EksBuilder::new()
            .cluster_name("prod")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("region"), "{e}");
    }

    #[tokio::test]
    async fn cleartext_endpoints_are_refused_off_loopback_unless_allowed() {
        let b = |url: &str| {
            EksBuilder::new()
                .cluster_name("prod")
                .region("us-west-2")
                .endpoint_url(url)
        };
        let e = b("http://10.0.0.5:8080").build().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("endpoint_url") && text.contains("allow_insecure_endpoint"),
            "{text}"
        );
        assert!(
            b("http://eks.internal/")
                .allow_insecure_endpoint(true)
                .build()
                .await
                .is_ok()
        );
        for ok in ["http://127.0.0.1:1", "http://[::1]:9/", "http://localhost"] {
            let builder = b(ok);
            let warning = builder.cleartext_warning().unwrap();
            assert!(warning.contains("loopback"), "{warning}");
            assert!(builder.build().await.is_ok(), "{ok}");
        }
        assert!(b("https://10.0.0.5").cleartext_warning().is_none());
        assert!(
            b("http://10.0.0.5")
                .cleartext_warning()
                .unwrap()
                .contains("session token")
        );
    }

    #[test]
    fn debug_output_never_shows_credentials() {
        let b = EksBuilder::new()
            .cluster_name("prod")
            .static_credentials("AKIDSECRETID", "very-secret-key");
        let text = format!("{b:?}");
        assert!(
            !text.contains("very-secret-key") && !text.contains("AKIDSECRETID"),
            "{text}"
        );
    }
}
