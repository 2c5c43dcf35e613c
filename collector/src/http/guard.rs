//! What the HTTP layer bounds before a handler sees a body: the body read (size, time,
//! bytes in flight over all connections) and the log of refusals.
//!
//! Invariants:
//! - A body is read only after its request passed authentication; the bytes it may take
//!   are reserved first (its `Content-Length`, or the route's limit when unknown) and
//!   released when the request ends, so the sum of bodies held never exceeds
//!   `[ingest] max_inflight_body_bytes`.
//! - Every refusal is logged with status, agent, peer and reason, at most
//!   [`LOG_BURST`] lines per second; the rest are counted and the count is reported on the
//!   next line that is logged, so a flood costs a counter increment each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use crate::reject::Rejection;

/// Lines of refusal log per second at most.
pub const LOG_BURST: u32 = 20;

/// Limits and shared counters of the HTTP layer; one per collector.
pub struct HttpGuard {
    pub max_body_bytes: u64,
    pub body_read_timeout: Duration,
    inflight: Arc<Inflight>,
    log: Mutex<LogWindow>,
}

struct Inflight {
    limit: u64,
    used: AtomicU64,
}

#[derive(Default)]
struct LogWindow {
    start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

/// Bytes reserved for one body; released on drop.
pub struct Reservation {
    inflight: Arc<Inflight>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inflight.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl HttpGuard {
    pub fn new(max_body_bytes: u64, body_read_timeout: Duration, max_inflight: u64) -> HttpGuard {
        HttpGuard {
            max_body_bytes,
            body_read_timeout,
            inflight: Arc::new(Inflight {
                limit: max_inflight,
                used: AtomicU64::new(0),
            }),
            log: Mutex::new(LogWindow::default()),
        }
    }

    /// Bytes of request bodies being read now, over all connections.
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight.used.load(Ordering::Acquire)
    }

    /// Reserves room for a body of at most `limit` bytes (the declared `Content-Length`
    /// when smaller), refusing a declared length over `limit` (413) and a reservation that
    /// would exceed the in-flight cap (503, retry shortly).
    pub fn reserve(&self, headers: &HeaderMap, limit: u64) -> Result<Reservation, Rejection> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared
            && n > limit
        {
            return Err(too_large(limit));
        }
        let bytes = declared.unwrap_or(limit);
        let inf = &self.inflight;
        let mut used = inf.used.load(Ordering::Acquire);
        loop {
            if used.saturating_add(bytes) > inf.limit {
                return Err(Rejection::new(
                    503,
                    format!(
                        "the collector is receiving {used} bytes of request bodies at once ([ingest] max_inflight_body_bytes = {}); retry shortly",
                        inf.limit
                    ),
                )
                .retry_after(1));
            }
            match inf.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        inflight: inf.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    /// Reads the body: at most `limit` bytes (413 beyond) within `body_read_timeout`
    /// (408 when the client is too slow).
    pub async fn read_body(&self, body: Body, limit: u64) -> Result<Bytes, Rejection> {
        let read = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX));
        match tokio::time::timeout(self.body_read_timeout, read).await {
            Err(_) => Err(Rejection::new(
                408,
                format!(
                    "the request body did not arrive within {} ([server] body_read_timeout)",
                    attest_config::load::format_duration(self.body_read_timeout)
                ),
            )),
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => {
                let over = std::error::Error::source(&e)
                    .is_some_and(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>);
                if over {
                    Err(too_large(limit))
                } else {
                    Err(Rejection::new(400, format!("cannot read the body: {e}")))
                }
            }
        }
    }

    /// Logs one refusal, unless this second's budget of lines is spent (then counts it).
    pub fn log_refusal(
        &self,
        route: &str,
        peer: Option<SocketAddr>,
        agent: Option<&str>,
        r: &Rejection,
    ) {
        let suppressed = {
            let mut w = self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            if w.start
                .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
            {
                w.start = Some(now);
                w.lines = 0;
            }
            if w.lines >= LOG_BURST {
                w.suppressed += 1;
                return;
            }
            w.lines += 1;
            std::mem::take(&mut w.suppressed)
        };
        let peer = peer.map_or_else(|| "-".to_string(), |p| p.to_string());
        tracing::warn!(
            status = r.status,
            route,
            agent = agent.unwrap_or("-"),
            %peer,
            field = r.field.as_deref().unwrap_or("-"),
            suppressed_before = suppressed,
            "request refused: {}",
            r.reason
        );
    }
}

fn too_large(limit: u64) -> Rejection {
    Rejection::new(
        413,
        format!("request body larger than {limit} bytes; send smaller batches"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_length(n: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.into());
        h
    }

    #[test]
    fn reservations_are_bounded_and_released() {
        let g = HttpGuard::new(100, Duration::from_secs(1), 150);
        let a = g.reserve(&with_length(100), 100).unwrap();
        assert_eq!(g.inflight_bytes(), 100);
        let e = g.reserve(&with_length(60), 100).err().unwrap();
        assert_eq!((e.status, e.retry_after), (503, Some(1)));
        assert_eq!(g.reserve(&with_length(101), 100).err().unwrap().status, 413);
        let b = g.reserve(&with_length(50), 100).unwrap();
        drop(a);
        let c = g.reserve(&HeaderMap::new(), 100).unwrap();
        assert_eq!(g.inflight_bytes(), 150, "unknown length reserves the limit");
        drop((b, c));
        assert_eq!(g.inflight_bytes(), 0);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_413_and_a_slow_one_408() {
        let g = HttpGuard::new(4, Duration::from_millis(50), 100);
        assert_eq!(
            &g.read_body(Body::from("abcd"), 4).await.unwrap()[..],
            b"abcd"
        );
        assert_eq!(
            g.read_body(Body::from("abcde"), 4)
                .await
                .unwrap_err()
                .status,
            413
        );
        let stalled = Body::new(Stalled);
        assert_eq!(g.read_body(stalled, 4).await.unwrap_err().status, 408);
    }

    /// A body whose next chunk never comes.
    struct Stalled;

    impl axum::body::HttpBody for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }
}
