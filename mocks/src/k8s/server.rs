//! The HTTP(S) server: accepts loopback connections, applies injected faults, logs requests and
//! hands them to the API.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::api;
use super::http::{self as h, Req, Resp};
use super::requests::RequestRecord;
use super::shared::SharedRef;
use super::status::ApiError;
use super::tls;

/// A TCP stream that can be made to end with a reset (RST) instead of a clean close.
struct ResettableTcp {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableTcp {
    fn check(&self) -> std::io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by fault injection",
            ));
        }
        Ok(())
    }
}

impl Drop for ResettableTcp {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Zero linger makes the close send RST.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Accepts connections until shutdown.
pub(crate) async fn serve(listener: TcpListener, sh: SharedRef, tls: Option<TlsAcceptor>) {
    loop {
        let accepted = tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let sh = sh.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let reset = Arc::new(AtomicBool::new(false));
            let io = ResettableTcp {
                inner: stream,
                reset: reset.clone(),
            };
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(io).await {
                        // The verifier accepted only certificates of the simulator's CA.
                        let peer = s
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| tls::subject_of(c));
                        connection(TokioIo::new(s), sh, reset, peer).await;
                    }
                }
                None => connection(TokioIo::new(io), sh, reset, None).await,
            }
        });
    }
}

async fn connection<I>(
    io: I,
    sh: SharedRef,
    reset: Arc<AtomicBool>,
    peer: Option<(String, Vec<String>)>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let shutdown = sh.shutdown.clone();
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let sh = sh.clone();
        let reset = reset.clone();
        let peer = peer.clone();
        async move { serve_one(sh, reset, req, peer).await }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn).await;
        }
    }
}

async fn serve_one(
    sh: SharedRef,
    reset: Arc<AtomicBool>,
    req: hyper::Request<Incoming>,
    peer: Option<(String, Vec<String>)>,
) -> Result<Resp, std::io::Error> {
    let started = Instant::now();
    let at = jiff::Timestamp::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let method = parts.method.clone();
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let control = path.starts_with("/_sim/") || path == "/_sim";
    let record = |status: u16| RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        status,
        at,
        duration: started.elapsed(),
        user_agent: user_agent.clone(),
    };
    if !control {
        let verdict = sh.faults.judge(method.as_str(), &path);
        if !verdict.delay.is_zero() {
            tokio::time::sleep(verdict.delay).await;
        }
        if verdict.reset {
            sh.requests.record(record(0));
            reset.store(true, Ordering::SeqCst);
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault injection: connection reset",
            ));
        }
        if let Some((code, message, retry_after)) = verdict.status {
            let mut e = ApiError::for_code(code, message);
            e.retry_after = retry_after;
            sh.requests.record(record(code));
            return Ok(h::error(&e));
        }
    }
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(h::error(&ApiError::bad_request(
                "could not read the request body",
            )));
        }
    };
    let mut req = Req::new(
        parts.method,
        path.clone(),
        raw_query.clone(),
        parts.headers,
        bytes,
    );
    req.client_certificate = peer;
    let resp = api::handle(&sh, &req);
    if !control {
        sh.requests.record(record(resp.status().as_u16()));
    }
    Ok(resp)
}
