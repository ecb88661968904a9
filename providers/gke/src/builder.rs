//! Building a [`GkeProvider`]: credentials from Application Default Credentials, or injected
//! (tests, mocks, embedders with their own credential handling).

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_gax::retry_policy::NeverRetry;

use crate::error::{Error, Result};
use crate::provider::{GkeProvider, GkeSettings};

/// Builds a [`GkeProvider`]; [`GkeBuilder::build`] checks every setting before any call.
#[derive(Default)]
pub struct GkeBuilder {
    project: Option<String>,
    location: Option<String>,
    cluster: Option<String>,
    endpoint: Option<String>,
    credentials: Option<Credentials>,
    kube: Option<kube::Client>,
    settings: GkeSettings,
    from_env: bool,
    allow_insecure_endpoint: bool,
}

impl std::fmt::Debug for GkeBuilder {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GkeBuilder")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("cluster", &self.cluster)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials.as_ref().map(|_| "(set)"))
            .field("from_env", &self.from_env)
            .finish_non_exhaustive()
    }
}

impl GkeBuilder {
    /// Credentials from Application Default Credentials (`gcloud auth application-default
    /// login`, `GOOGLE_APPLICATION_CREDENTIALS`, the metadata server), loaded at
    /// [`GkeBuilder::build`]; the project from `GOOGLE_CLOUD_PROJECT` (or
    /// `CLOUDSDK_CORE_PROJECT`) unless set here.
    pub fn from_env() -> Self {
        let project = ["GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        Self {
            from_env: true,
            project,
            ..Self::default()
        }
    }

    /// Everything from this builder's settings; no environment is read, and credentials
    /// must be given ([`GkeBuilder::credentials`] or [`GkeBuilder::anonymous_credentials`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The Google Cloud project id (`my-project-123`).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The cluster's location: a region (`us-central1`) or a zone (`us-central1-a`).
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The cluster to upgrade.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// Sends every call to this endpoint instead of `https://container.googleapis.com` (a
    /// mock, a Private Service Connect endpoint).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Allows an `http://` endpoint on a host other than loopback: requests, and their
    /// bearer tokens, then travel in cleartext. Off by default.
    pub fn allow_insecure_endpoint(mut self, allow: bool) -> Self {
        self.allow_insecure_endpoint = allow;
        self
    }

    /// The warning to show when the endpoint is `http://`, `None` otherwise.
    pub fn cleartext_warning(&self) -> Option<String> {
        let url = self.endpoint.as_deref()?;
        let host = cleartext_host(url)?;
        Some(format!(
            "GKE endpoint {url} is plain HTTP: every request, with its bearer token, travels unencrypted{}",
            if is_loopback(host) {
                " (accepted because the host is loopback)"
            } else {
                ""
            }
        ))
    }

    /// Uses these credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sends no credentials (mocks and tests).
    pub fn anonymous_credentials(self) -> Self {
        self.credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
    }

    /// A client for the cluster's Kubernetes API, used by pre-flight to find the
    /// PodDisruptionBudgets GKE gives up on after an hour.
    pub fn kube_client(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// Upgrade and timing settings.
    pub fn settings(mut self, settings: GkeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Checks the settings, loads credentials when asked, and builds the provider.
    pub async fn build(self) -> Result<GkeProvider> {
        let project = self.project.clone().ok_or(Error::Config {
            field: "project",
            message: "is required (the Google Cloud project id, e.g. --project my-project-123, \
                      or GOOGLE_CLOUD_PROJECT)"
                .into(),
        })?;
        validate_project(&project)?;
        let location = self.location.clone().ok_or(Error::Config {
            field: "location",
            message: "is required (a region such as us-central1 or a zone such as \
                      us-central1-a, e.g. --location us-central1)"
                .into(),
        })?;
        validate_location(&location)?;
        let cluster = self.cluster.clone().ok_or(Error::Config {
            field: "cluster",
            message: "is required (the GKE cluster's name, e.g. --cluster prod-1)".into(),
        })?;
        validate_cluster(&cluster)?;
        validate_soaks(&self.settings)?;
        if let Some(url) = &self.endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Config {
                    field: "endpoint",
                    message: format!("{url:?} must start with http:// or https://"),
                });
            }
            if let Some(host) = cleartext_host(url) {
                if !is_loopback(host) && !self.allow_insecure_endpoint {
                    return Err(Error::Config {
                        field: "endpoint",
                        message: format!(
                            "{url} is plain HTTP to {host}, which is not loopback: bearer tokens \
                             would travel in cleartext; use https://, or allow it explicitly \
                             (allow_insecure_endpoint: --allow-insecure-endpoint, kup.yaml \
                             `allow_insecure_endpoint: true`)"
                        ),
                    });
                }
                if let Some(w) = self.cleartext_warning() {
                    tracing::warn!("{w}");
                }
            }
        }
        let credentials = match (self.credentials, self.from_env) {
            (Some(c), _) => c,
            (None, true) => google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| Error::Credentials {
                    call: "client",
                    reason: e.to_string(),
                })?,
            (None, false) => {
                return Err(Error::Config {
                    field: "credentials",
                    message: "are not set: use GkeBuilder::from_env() for Application Default \
                              Credentials, or give credentials explicitly"
                        .into(),
                });
            }
        };
        let mut builder = ClusterManager::builder()
            .with_credentials(credentials)
            // kup's engine retries what the error mapping calls retryable, with one policy for
            // every provider; a second retry loop here would multiply waits.
            .with_retry_policy(NeverRetry);
        if let Some(url) = &self.endpoint {
            builder = builder.with_endpoint(url.trim_end_matches('/'));
        }
        let client = builder.build().await.map_err(|e| Error::Config {
            field: "endpoint",
            message: format!("the GKE client could not be built: {e}"),
        })?;
        Ok(GkeProvider::new(
            client,
            project,
            location,
            cluster,
            self.kube,
            self.settings,
        ))
    }
}

fn validate_soaks(s: &GkeSettings) -> Result<()> {
    const MAX: Duration = Duration::from_secs(7 * 24 * 3600);
    for (field, d) in [
        ("blue_green_batch_soak", s.batch_soak),
        ("blue_green_node_pool_soak", s.node_pool_soak),
    ] {
        if let Some(d) = d
            && d > MAX
        {
            return Err(Error::Config {
                field,
                message: format!(
                    "{}s is longer than GKE accepts (at most 7 days, 604800s)",
                    d.as_secs()
                ),
            });
        }
    }
    if let Some(d) = s.control_plane_soak
        && !(Duration::from_secs(6 * 3600)..=MAX).contains(&d)
    {
        return Err(Error::Config {
            field: "control_plane_soak",
            message: format!(
                "{}s is outside what GKE accepts for a rollback-safe upgrade's soak (6 hours to \
                 7 days, 21600s to 604800s)",
                d.as_secs()
            ),
        });
    }
    Ok(())
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

fn lower_dashed(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn validate_project(p: &str) -> Result<()> {
    let ok = (6..=30).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && !p.ends_with('-')
        && lower_dashed(p);
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "project",
            message: format!(
                "{p:?} is not a Google Cloud project id: 6-30 lowercase letters, digits or '-', \
                 starting with a letter (e.g. my-project-123)"
            ),
        })
    }
}

fn validate_location(l: &str) -> Result<()> {
    let parts: Vec<&str> = l.split('-').collect();
    let region_ok = |parts: &[&str]| {
        parts.len() == 2
            && parts[0].chars().all(|c| c.is_ascii_lowercase())
            && !parts[0].is_empty()
            && parts[1].starts_with(|c: char| c.is_ascii_lowercase())
            && parts[1].ends_with(|c: char| c.is_ascii_digit())
            && lower_dashed(parts[1])
    };
    let ok = region_ok(&parts)
        || (parts.len() == 3
            && region_ok(&parts[..2])
            && parts[2].len() == 1
            && parts[2].chars().all(|c| c.is_ascii_lowercase()));
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "location",
            message: format!(
                "{l:?} is not a GCP region or zone; expected a form like us-central1 or \
                 us-central1-a"
            ),
        })
    }
}

fn validate_cluster(c: &str) -> Result<()> {
    let ok = (1..=40).contains(&c.len())
        && c.starts_with(|ch: char| ch.is_ascii_lowercase())
        && !c.ends_with('-')
        && lower_dashed(c);
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field: "cluster",
            message: format!(
                "{c:?} is not a GKE cluster name: 1-40 lowercase letters, digits or '-', \
                 starting with a letter and not ending with '-'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn good() -> GkeBuilder {
        GkeBuilder::new()
            .project("demo-project")
            .location("us-central1")
            .cluster("demo")
            .anonymous_credentials()
    }

    #[tokio::test]
    async fn bad_settings_name_the_field_and_the_accepted_form() {
        let cases = [
            (
                GkeBuilder::new().location("us-central1").cluster("demo"),
                "project",
            ),
            (good().project("Bad_Project"), "6-30 lowercase"),
            (good().location("Iowa"), "us-central1-a"),
            (good().cluster("-x"), "GKE cluster name"),
            (good().endpoint("127.0.0.1:1"), "endpoint"),
            (
                GkeBuilder::new()
                    .project("demo-project")
                    .location("us-central1")
                    .cluster("demo"),
                "credentials",
            ),
            (
                good().settings(GkeSettings {
                    node_pool_soak: Some(Duration::from_secs(30 * 24 * 3600)),
                    ..GkeSettings::default()
                }),
                "blue_green_node_pool_soak",
            ),
        ];
        for (builder, expect) in cases {
            let e = builder.build().await.unwrap_err().to_string();
            assert!(e.contains(expect), "{expect}: {e}");
        }
        assert!(good().location("europe-west4-b").build().await.is_ok());
    }

    #[tokio::test]
    async fn cleartext_endpoints_are_refused_off_loopback_unless_allowed() {
        let e = good()
            .endpoint("http://10.0.0.5:8080")
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("endpoint") && e.contains("allow_insecure_endpoint"),
            "{e}"
        );
        assert!(
            good()
                .endpoint("http://gke.internal/")
                .allow_insecure_endpoint(true)
                .build()
                .await
                .is_ok()
        );
        let b = good().endpoint("http://127.0.0.1:9");
        assert!(b.cleartext_warning().unwrap().contains("loopback"));
        assert!(b.build().await.is_ok());
        assert!(
            good()
                .endpoint("https://10.0.0.5")
                .cleartext_warning()
                .is_none()
        );
    }

    #[test]
    fn debug_output_never_shows_credentials() {
        let text = format!("{:?}", good());
        assert!(
            text.contains("(set)") && !text.contains("Anonymous"),
            "{text}"
        );
    }
}
