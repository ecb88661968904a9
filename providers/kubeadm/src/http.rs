//! A small HTTPS GET client for release markers and package repositories: hyper-util's client
//! with rustls (aws-lc-rs) and the platform's trust store, the same stack kube already pulls
//! in. dl.k8s.io and pkgs.k8s.io answer with redirects to their CDNs, so redirects are
//! followed (a few hops, http and https only).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result};

const MAX_REDIRECTS: usize = 5;
const MAX_BODY: usize = 1 << 20;

/// A GET-only HTTP client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

/// An answer: the status and body of the last response after redirects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The body (at most 1 MiB is read).
    pub body: Bytes,
}

impl HttpClient {
    /// A client whose requests each end after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| Error::Http {
                url: String::new(),
                message: format!("cannot set up TLS: {e}"),
                retryable: false,
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { client, timeout })
    }

    /// GETs `url`, following redirects. Any status is an `Ok` answer; transport failures and
    /// timeouts are errors.
    pub async fn get(&self, url: &str) -> Result<HttpResponse> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let err = |message: String, retryable: bool| Error::Http {
                url: current.clone(),
                message,
                retryable,
            };
            let uri: Uri = current
                .parse()
                .map_err(|e| err(format!("not a URL: {e}"), false))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(err("only http and https URLs are fetched".into(), false));
            }
            let request = Request::get(uri.clone())
                .header(
                    header::USER_AGENT,
                    concat!("kup/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::<Bytes>::new())
                .map_err(|e| err(e.to_string(), false))?;
            let response = tokio::time::timeout(self.timeout, self.client.request(request))
                .await
                .map_err(|_| {
                    err(
                        format!("no answer within {}s", self.timeout.as_secs()),
                        true,
                    )
                })?
                .map_err(|e| err(e.to_string(), true))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(header::LOCATION)
            {
                let location = location
                    .to_str()
                    .map_err(|_| err("redirect Location is not text".into(), false))?;
                current = resolve_location(&uri, location);
                continue;
            }
            let body = tokio::time::timeout(
                self.timeout,
                Limited::new(response.into_body(), MAX_BODY).collect(),
            )
            .await
            .map_err(|_| err("body not received in time".into(), true))?
            .map_err(|e| err(format!("reading body: {e}"), true))?
            .to_bytes();
            return Ok(HttpResponse { status, body });
        }
        Err(Error::Http {
            url: url.to_string(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
            retryable: false,
        })
    }
}

/// An absolute URL for a `Location` header, which may be relative to the request.
fn resolve_location(base: &Uri, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = base.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    format!("{scheme}://{authority}{dir}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_redirects_resolve_against_the_request() {
        let base: Uri = "https://dl.k8s.io/release/stable-1.31.txt"
            .parse()
            .unwrap_or_default();
        assert_eq!(
            resolve_location(&base, "https://cdn.dl.k8s.io/release/stable-1.31.txt"),
            "https://cdn.dl.k8s.io/release/stable-1.31.txt"
        );
        assert_eq!(resolve_location(&base, "/x"), "https://dl.k8s.io/x");
        assert_eq!(
            resolve_location(&base, "y.txt"),
            "https://dl.k8s.io/release/y.txt"
        );
    }
}
