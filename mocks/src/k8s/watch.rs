//! Watches: chunked JSON events (`{"type":…,"object":…}` per line) from a resourceVersion,
//! synthetic ADDED events for the initial state, bookmarks, selector transitions, and the
//! `410 Expired` ERROR event when the requested resourceVersion is older than the history.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::api::{Output, Selectors, Target, out_value, page};
use super::http::{Req, Resp};
use super::resources::def;
use super::shared::SharedRef;
use super::status::ApiError;
use super::store::{Change, ChangeType, Stored};
use super::table::{self, IncludeObject};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(20);

struct Filter {
    t: Target,
    sel: Selectors,
    out: Output,
}

impl Filter {
    fn wants(&self, o: &Stored) -> bool {
        self.t.ns.as_deref().is_none_or(|ns| ns == o.meta.namespace)
            && self.sel.matches(self.t.res, o)
    }

    /// The event a change produces for this watch, if any (upstream's watch cache turns
    /// objects entering or leaving the selector into ADDED / DELETED).
    fn event_for(&self, c: &Change) -> Option<(ChangeType, Arc<Stored>)> {
        if c.res != self.t.res {
            return None;
        }
        let now = self.wants(&c.obj);
        let before = c.prev.as_ref().is_some_and(|p| self.wants(p));
        match c.kind {
            ChangeType::Added => now.then(|| (ChangeType::Added, c.obj.clone())),
            ChangeType::Deleted => before.then(|| (ChangeType::Deleted, c.obj.clone())),
            ChangeType::Modified => match (before, now) {
                (true, true) => Some((ChangeType::Modified, c.obj.clone())),
                (false, true) => Some((ChangeType::Added, c.obj.clone())),
                (true, false) => Some((ChangeType::Deleted, c.obj.clone())),
                (false, false) => None,
            },
        }
    }

    fn object(&self, o: &Stored, now: jiff::Timestamp) -> Value {
        let v = out_value(&self.t, o);
        match self.out {
            Output::Json => v,
            Output::Metadata => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
            }
            Output::Table(api) => table::table(
                self.t.res,
                &[v],
                IncludeObject::Metadata,
                json!({"resourceVersion": o.meta.rv.to_string()}),
                api,
                now,
            ),
        }
    }

    fn line(&self, kind: &str, object: Value) -> Bytes {
        let mut b =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let d = def(self.t.res);
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line("BOOKMARK", json!({"kind": d.kind, "apiVersion": d.api_version(self.t.version.version), "metadata": md}))
    }
}

/// Starts a watch; the response streams until the client goes away, `timeoutSeconds` passes or
/// the server stops.
pub(crate) fn start(sh: &SharedRef, t: &Target, req: &Req, out: Output) -> Result<Resp, ApiError> {
    let sel = Selectors::parse(t.res, req)?;
    let filter = Filter {
        t: t.clone(),
        sel,
        out,
    };
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = req.flag("sendInitialEvents");
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let rv_param = req.q("resourceVersion").unwrap_or("").to_string();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let (mut sub, last_rv) = {
        let c = sh.lock();
        let sub = c.store.subscribe();
        let now = c.now();
        let current = c.store.rv();
        let initial = rv_param.is_empty() || rv_param == "0" || send_initial;
        if initial {
            let mut q = Req::new(
                req.method.clone(),
                req.path.clone(),
                String::new(),
                req.headers.clone(),
                Bytes::new(),
            );
            q.query = req
                .query
                .iter()
                .filter(|(k, _)| k == "labelSelector" || k == "fieldSelector")
                .cloned()
                .collect();
            let p = page(&c, t, &q)?;
            for o in &p.items {
                first.push(filter.line("ADDED", filter.object(o, now)));
            }
            if send_initial && bookmarks {
                first.push(filter.bookmark(current, true));
            }
            (sub, current)
        } else {
            let from: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version {rv_param:?}"))
            })?;
            match c.store.changes_since(from) {
                Ok(changes) => {
                    for ch in &changes {
                        if let Some((kind, o)) = filter.event_for(ch) {
                            first.push(filter.line(kind.as_str(), filter.object(&o, now)));
                        }
                    }
                    (sub, current.max(from))
                }
                Err(oldest) => {
                    let e = ApiError::gone(format!("too old resource version: {from} ({oldest})"));
                    let mut body = e.body();
                    if let Some(o) = body.as_object_mut() {
                        o.remove("details");
                    }
                    first.push(filter.line("ERROR", body));
                    drop(sub);
                    let (_, closed) = broadcast::channel(1);
                    (closed, u64::MAX)
                }
            }
        }
    };
    let shutdown = sh.shutdown.clone();
    let clock_sh = sh.clone();
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if last_rv == u64::MAX {
            return;
        }
        let mut last = last_rv;
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            let sleep_until =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(sleep_until) => {
                    if deadline.is_some() { return; }
                }
                _ = tick.tick(), if bookmarks => {
                    if tx.send(filter.bookmark(last, false)).await.is_err() { return; }
                }
                msg = sub.recv() => match msg {
                    Ok(ch) => {
                        if ch.rv <= last {
                            continue;
                        }
                        last = ch.rv;
                        if let Some((kind, o)) = filter.event_for(&ch) {
                            let now = clock_sh.clock.now();
                            if tx.send(filter.line(kind.as_str(), filter.object(&o, now))).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Fell behind or the store went away: end the watch; clients re-watch.
                    Err(_) => return,
                },
            }
        }
    });
    let stream = ReceiverStream::new(rx).map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
    let body = BodyExt::boxed(StreamBody::new(stream));
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}
