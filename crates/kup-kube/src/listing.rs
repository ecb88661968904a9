//! Reads used by the checks: paginated lists handed over page by page (so a 150,000-pod cluster
//! is never held in memory at once), raw text endpoints (`/readyz`, `/metrics`), and a count of
//! every request sent.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::error::Result;

/// kubectl's page size.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// A client plus a request counter.
pub(crate) struct Reader {
    client: Client,
    page_size: u32,
    requests: AtomicU64,
}

/// A plain HTTP answer (status and body), for endpoints that answer text.
#[derive(Debug)]
pub(crate) struct TextResponse {
    pub status: u16,
    pub body: String,
}

impl Reader {
    pub(crate) fn new(client: Client, page_size: u32) -> Self {
        Self {
            client,
            page_size: page_size.max(1),
            requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Requests sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Lists every object of `api` matching `params`, `page_size` at a time, handing each page's
    /// items to `visit` before asking for the next page. Returns how many objects were seen.
    pub(crate) async fn for_each<K>(
        &self,
        api: &Api<K>,
        params: &ListParams,
        mut visit: impl FnMut(K),
    ) -> Result<u64>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let mut token: Option<String> = None;
        let mut seen = 0u64;
        loop {
            let mut page_params = params.clone().limit(self.page_size);
            if let Some(t) = &token {
                page_params = page_params.continue_token(t);
            }
            self.count();
            let page = api.list(&page_params).await?;
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            for item in page.items {
                seen += 1;
                visit(item);
            }
            if token.is_none() {
                return Ok(seen);
            }
        }
    }

    /// GETs a path and returns status and body whatever the status (health endpoints answer
    /// 500 with a useful body).
    pub(crate) async fn get_text(&self, path: &str) -> Result<TextResponse> {
        self.count();
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "text/plain, */*")
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e)))?;
        let response = self.client.send(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(TextResponse {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The API server's `/version`.
    pub(crate) async fn version(&self) -> Result<k8s_openapi::apimachinery::pkg::version::Info> {
        self.count();
        Ok(self.client.apiserver_version().await?)
    }
}
