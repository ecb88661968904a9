//! A small typed client for the Microsoft.ContainerService calls upgrades need, on azure_core's
//! pipeline (bearer token, retries with `Retry-After`, user agent, request ids).
//!
//! Answers are checked here rather than by azure_core: its error keeps the code but drops
//! AKS's `subcode` and the error details, which kup reports.

use std::time::Duration;

use azure_core::http::headers::HeaderName;
use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, Request, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{self, Error, Result};

/// Where an operation's state is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lro {
    /// `Azure-AsyncOperation`: a status resource (`status`, `error`).
    AsyncOperation(String),
    /// `Location` on 202: 202 while running, 200/204 once done.
    Location(String),
}

/// A raw answer: status, the poll hints, the body.
pub(crate) struct Answer {
    pub status: u16,
    pub lro: Option<Lro>,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self, operation: &'static str) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::response(operation, format!("unreadable body: {e}")))
    }
}

/// The cluster's resource paths and the pipeline that reaches them.
#[derive(Clone, Debug)]
pub(crate) struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
    api_version: String,
    subscription: String,
    resource_group: String,
    cluster: String,
}

const ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
const LOCATION: HeaderName = HeaderName::from_static("location");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

impl ArmClient {
    pub(crate) fn new(
        pipeline: Pipeline,
        endpoint: Url,
        api_version: String,
        subscription: String,
        resource_group: String,
        cluster: String,
    ) -> Self {
        Self {
            pipeline,
            endpoint,
            api_version,
            subscription,
            resource_group,
            cluster,
        }
    }

    /// `https://host[:port]` of the endpoint.
    pub(crate) fn origin(&self) -> String {
        self.endpoint.origin().ascii_serialization()
    }

    pub(crate) fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}`.
    pub(crate) fn cluster_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.subscription, self.resource_group, self.cluster
        )
    }

    pub(crate) fn pool_path(&self, pool: &str) -> String {
        format!("{}/agentPools/{pool}", self.cluster_path())
    }

    pub(crate) fn location_path(&self, location: &str) -> String {
        format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}",
            self.subscription
        )
    }

    fn url(&self, path: &str) -> Result<Url> {
        let mut url = self
            .endpoint
            .join(path)
            .map_err(|e| Error::response("building a URL", format!("{path}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        Ok(url)
    }

    /// Sends one call; a non-2xx answer becomes [`Error::Api`] with ARM's body.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer> {
        // An LRO URL ARM gave must point at the endpoint kup was configured with: the bearer
        // token goes wherever the URL says.
        if url.origin() != self.endpoint.origin() {
            return Err(Error::response(
                operation,
                format!(
                    "ARM pointed at {} outside the configured endpoint {}",
                    url.origin().ascii_serialization(),
                    self.endpoint.origin().ascii_serialization()
                ),
            ));
        }
        let mut request = Request::new(url, method);
        request.insert_header("accept", "application/json");
        if let Some(b) = body {
            request.insert_header("content-type", "application/json");
            request.set_body(b.to_string());
        }
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(Error::core(operation))?;
        let status = u16::from(response.status());
        let headers = response.headers().clone();
        let body = response.into_body().to_vec();
        if !(200..300).contains(&status) {
            return Err(error::from_response(operation, status, &body));
        }
        let header = |name: &HeaderName| headers.get_optional_str(name).map(str::to_string);
        let lro = match (header(&ASYNC_OPERATION), header(&LOCATION)) {
            (Some(a), _) => Some(Lro::AsyncOperation(a)),
            (None, Some(l)) if status == 202 => Some(Lro::Location(l)),
            _ => None,
        };
        let retry_after = header(&RETRY_AFTER_MS)
            .or_else(|| header(&X_MS_RETRY_AFTER_MS))
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .or_else(|| {
                header(&RETRY_AFTER)
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
            });
        Ok(Answer {
            status,
            lro,
            retry_after,
            body,
        })
    }

    pub(crate) async fn get_path(&self, operation: &'static str, path: &str) -> Result<Answer> {
        self.send(operation, Method::Get, self.url(path)?, None)
            .await
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
    ) -> Result<T> {
        self.get_path(operation, path).await?.json(operation)
    }

    pub(crate) async fn put(
        &self,
        operation: &'static str,
        path: &str,
        body: &Value,
    ) -> Result<Answer> {
        self.send(operation, Method::Put, self.url(path)?, Some(body))
            .await
    }

    pub(crate) async fn post(&self, operation: &'static str, path: &str) -> Result<Answer> {
        self.send(operation, Method::Post, self.url(path)?, None)
            .await
    }

    /// GETs a URL ARM returned (an LRO URL carries its own api-version).
    pub(crate) async fn get_url(&self, operation: &'static str, url: &str) -> Result<Answer> {
        let url = Url::parse(url)
            .map_err(|e| Error::response(operation, format!("bad URL {url:?}: {e}")))?;
        self.send(operation, Method::Get, url, None).await
    }

    /// Every agent pool, following `nextLink`.
    pub(crate) async fn agent_pools(&self) -> Result<Vec<crate::models::AgentPool>> {
        const OP: &str = "GET agentPools";
        let mut page: crate::models::AgentPoolList = self
            .get_json(OP, &format!("{}/agentPools", self.cluster_path()))
            .await?;
        let mut out = std::mem::take(&mut page.value);
        while let Some(next) = page.next_link.take().filter(|n| !n.is_empty()) {
            page = self.get_url(OP, &next).await?.json(OP)?;
            out.append(&mut page.value);
        }
        Ok(out)
    }
}
