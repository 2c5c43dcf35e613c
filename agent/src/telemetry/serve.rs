//! Serves `/metrics` and `/-/healthy` with plain hyper; every other path is a 404 (there is
//! no endpoint that takes a probe target).
//!
//! With a web configuration (`--web.config.file`): TLS (and client certificates) per
//! `tls_server_config`, basic authentication on every path but `/-/healthy`, and the
//! configured response headers.
//!
//! Invariants:
//! - A TLS handshake has a bounded time, and a connection that fails it (plain HTTP to the
//!   TLS port, no client certificate when one is required) is closed without affecting the
//!   listener; the refusal is logged with the peer and the reason, rate-limited
//!   (`attest_web::refusal`, shared with the collector).
//! - A request without valid basic credentials gets 401 with `WWW-Authenticate` and never
//!   reaches the metrics.
//! - With `rate_limit`, a request beyond it gets 429 (with `Retry-After`) before
//!   authentication; `/-/healthy` is never limited, so a supervisor's probe never fails for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use attest_web::{BASIC_CHALLENGE, WebSecurity};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Telemetry;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A client that connects but never finishes the TLS handshake does not hold a task longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The answer of `/metrics` depends on the request's `Accept-Encoding` (for caches).
const VARY: &str = "Accept-Encoding";
/// The one path open without credentials: liveness for supervisors and load balancers.
const HEALTH: &str = "/-/healthy";

/// Serves `/metrics` and `/-/healthy` until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, telemetry, cancel).await
}

/// Serves plain HTTP without authentication on a bound listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_secured(listener, telemetry, WebSecurity::default(), cancel).await
}

/// Serves on a bound listener (the agent binds before it reports ready) with `web`'s TLS,
/// basic authentication and headers.
pub async fn serve_secured(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    web: WebSecurity,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            tls = web.tls.is_some(),
            basic_auth = web.basic.is_some(),
            "agent metrics listening"
        );
    }
    let acceptor = web.tls.clone().map(TlsAcceptor::from);
    let web = Arc::new(web);
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
            },
        };
        let (t, web, acceptor) = (telemetry.clone(), web.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor {
                None => connection(stream, t, web).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(tls, t, web).await,
                        Ok(Err(e)) => {
                            attest_web::refusal::handshake_refused("agent metrics", peer, &e);
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// HTTP/1.1 on one connection until the client closes it.
async fn connection<S>(stream: S, t: Arc<Telemetry>, web: Arc<WebSecurity>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let (t, web) = (t.clone(), web.clone());
        async move { Ok::<_, Infallible>(answer(&t, &web, &req).await) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

/// Authenticates (unless the path is `/-/healthy`), routes, and adds the configured headers.
async fn answer(
    t: &Arc<Telemetry>,
    web: &WebSecurity,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let limited = match &web.rate {
        Some(rate) if req.uri().path() != HEALTH => rate.admit().err().map(|retry| (rate, retry)),
        _ => None,
    };
    let mut resp = match (limited, &web.basic, req.uri().path()) {
        (Some((rate, retry)), _, _) => {
            let mut r = reply(StatusCode::TOO_MANY_REQUESTS, "text/plain", rate.refusal());
            if let Some(secs) = retry {
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, secs.into());
            }
            r
        }
        (None, Some(basic), path) if path != HEALTH => {
            let header = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match basic.check(header).await {
                Ok(_) => route(t, req),
                Err(why) => {
                    let mut r = reply(StatusCode::UNAUTHORIZED, "text/plain", format!("{why}\n"));
                    r.headers_mut().insert(
                        hyper::header::WWW_AUTHENTICATE,
                        hyper::header::HeaderValue::from_static(BASIC_CHALLENGE),
                    );
                    r
                }
            }
        }
        _ => route(t, req),
    };
    for (name, value) in &web.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::try_from(name.as_str()),
            hyper::header::HeaderValue::try_from(value.as_str()),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

fn reply(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn route(t: &Arc<Telemetry>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
            let om = text(hyper::header::ACCEPT)
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            let ctype = if om { OPENMETRICS } else { PROMETHEUS_TEXT };
            let body = t.render(om);
            if !attest_config::http::accepts_gzip(text(hyper::header::ACCEPT_ENCODING)) {
                let mut r = reply(StatusCode::OK, ctype, body);
                r.headers_mut().insert(
                    hyper::header::VARY,
                    hyper::header::HeaderValue::from_static(VARY),
                );
                return r;
            }
            match gzip(body.as_bytes()) {
                Ok(z) => Response::builder()
                    .status(StatusCode::OK)
                    .header(hyper::header::CONTENT_TYPE, ctype)
                    .header(hyper::header::CONTENT_ENCODING, "gzip")
                    .header(hyper::header::VARY, VARY)
                    .body(Full::new(Bytes::from(z)))
                    .unwrap_or_default(),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot compress the metrics: {e}\n"),
                ),
            }
        }
        (&hyper::Method::GET, HEALTH) => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: this agent serves /metrics and /-/healthy only\n".into(),
        ),
    }
}

/// `body` gzip-compressed at the fastest level (when the scraper sends `Accept-Encoding:
/// gzip`, as Prometheus does).
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::schedule::ScheduleStats;
    use crate::spool::SharedSpool;
    use crate::transport::TransportStats;
    use crate::transport::collectors::Collectors;

    /// One HTTP/1.1 exchange on a fresh connection: (head, body).
    async fn get(addr: SocketAddr, extra_headers: &str) -> (String, Vec<u8>) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req =
            format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra_headers}\r\n");
        s.write_all(req.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head");
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        (head, raw[end + 4..].to_vec())
    }

    #[tokio::test]
    async fn metrics_are_gzip_compressed_when_the_scraper_accepts_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool =
            crate::spool::Spool::open(dir.path(), 1 << 20, attest_config::WhenFull::DropOldest)
                .expect("spool");
        let collectors =
            Collectors::new(&["http://127.0.0.1:9".to_string()], Duration::from_secs(60))
                .expect("collectors");
        let t = Arc::new(Telemetry::new(
            Arc::new(ScheduleStats::default()),
            Arc::new(TransportStats::default()),
            Arc::new(collectors),
            SharedSpool::new(spool),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        tokio::spawn(serve_on(listener, t, cancel.clone()));

        let (head, identity) = get(addr, "").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("content-encoding"), "{head}");
        assert!(head.contains("vary: accept-encoding"), "{head}");
        let text = String::from_utf8(identity).expect("utf-8");
        assert!(text.contains("# TYPE attest_agent_"), "{text}");

        // What Prometheus sends.
        let (head, body) = get(addr, "Accept-Encoding: gzip\r\n").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(head.contains("vary: accept-encoding"), "{head}");
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut unzipped)
            .expect("a gzip stream");
        assert_eq!(unzipped, text, "the same exposition");

        // Refused or not offered: identity.
        for refusal in ["Accept-Encoding: gzip;q=0\r\n", "Accept-Encoding: br\r\n"] {
            let (head, body) = get(addr, refusal).await;
            assert!(!head.contains("content-encoding"), "{refusal}: {head}");
            assert_eq!(String::from_utf8(body).expect("utf-8"), text, "{refusal}");
        }
        cancel.cancel();
    }
}
