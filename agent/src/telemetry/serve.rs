//! Serves `/metrics` and `/-/healthy` with plain hyper; every other path is a 404 (there is
//! no endpoint that takes a probe target).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::Telemetry;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` and `/-/healthy` until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "agent metrics listening");
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
            },
        };
        let t = telemetry.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let t = t.clone();
                async move { Ok::<_, Infallible>(route(&t, &req)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

fn route(t: &Arc<Telemetry>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            let om = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            reply(
                StatusCode::OK,
                if om { OPENMETRICS } else { PROMETHEUS_TEXT },
                t.render(om),
            )
        }
        (&hyper::Method::GET, "/-/healthy") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: this agent serves /metrics and /-/healthy only\n".into(),
        ),
    }
}
