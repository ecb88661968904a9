//! Request/response plumbing shared by the API, health, metrics and control handlers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::Value;

use super::status::ApiError;

/// Response body: a full buffer or a stream (watches).
pub(crate) type Body = BoxBody<Bytes, Infallible>;
/// A response.
pub(crate) type Resp = Response<Body>;

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

pub(crate) fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub(crate) fn json(code: u16, v: &Value) -> Resp {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

pub(crate) fn text(code: u16, t: impl Into<String>) -> Resp {
    respond(code, "text/plain; charset=utf-8", t.into())
}

pub(crate) fn error(e: &ApiError) -> Resp {
    let mut r = json(e.code, &e.body());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A fully read request.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The user (CN) and groups (O) of the connection's verified client certificate.
    pub client_certificate: Option<(String, Vec<String>)>,
}

impl Req {
    pub(crate) fn new(
        method: Method,
        path: String,
        raw_query: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> Req {
        let query = raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Req {
            method,
            path: decode_path(&path),
            query,
            headers,
            body,
            client_certificate: None,
        }
    }

    /// First value of a query parameter.
    pub(crate) fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Boolean query parameter (`true`/`1`).
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1" | "True"))
    }

    pub(crate) fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a * 16 + b);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a query-string component.
pub(crate) fn decode(s: &str) -> String {
    percent_decode(s, true)
}

fn decode_path(s: &str) -> String {
    percent_decode(s, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let r = Req::new(
            Method::GET,
            "/api/v1/pods".into(),
            "labelSelector=app%3Dweb%2Ctier+in+(a%2Cb)&limit=500&watch".into(),
            HeaderMap::new(),
            Bytes::new(),
        );
        assert_eq!(r.q("labelSelector"), Some("app=web,tier in (a,b)"));
        assert_eq!(r.q("limit"), Some("500"));
        assert_eq!(r.q("watch"), Some(""));
        assert_eq!(decode("100%"), "100%");
    }
}
