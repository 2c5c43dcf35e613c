//! The listener (plain TCP, or TLS with optional client-certificate verification). The TLS
//! configuration comes from `[server]` ([`tls_config`]) or from a web configuration
//! (`attest_web`); both are built by `attest_web::tls`.
//!
//! Invariants:
//! - TLS material is loaded and checked before the port is bound, so a bad file stops startup
//!   with an error naming the file, not a listener that fails every handshake.
//! - Only the ring crypto provider is used (never aws-lc-rs).
//! - Shutdown stops accepting, closes idle keep-alive connections at once (and within
//!   `SHUTDOWN_QUIET` those that have not sent a whole request), lets requests in flight
//!   finish (so a batch being committed still gets its ack), then returns; the drain
//!   lasts at most `shutdown_timeout`, after which what still runs is left to be cut off
//!   when the process exits. Long polls are not "in flight" for this: the caller's shutdown
//!   future ends them (`Fleet::stop`) before it completes.
//! - With `client_ca` set (or `RequireAndVerifyClientCert`), a connection without a client
//!   certificate signed by that CA never reaches the router.
//! - Plain HTTP and TLS share one accept loop and the same bounds: at most `max_connections`
//!   served at once (the rest wait in the kernel's queue), headers within
//!   `header_read_timeout`, and no connection idles past `idle_timeout`, so stalled or idle
//!   clients cannot pile up tasks and buffers. A request in its handler is not idle: the
//!   handler's own bound ends it (`body_read_timeout` with a 408, a long poll's `?wait=`), so
//!   a shorter `idle_timeout` never cuts an upload unanswered.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use attest_config::ServerConfig;
use attest_config::web::WebTls;
use attest_web::TlsError;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client that opens a connection but never finishes the handshake must not hold a task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, a connection with no request in its handler that moved no byte for this long
/// is closed (one that never sent its request, or sends it byte by byte); an answer still
/// being written moves bytes and is let finish.
const SHUTDOWN_QUIET: Duration = Duration::from_secs(1);
/// Back-off after an accept error that is not about one connection (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    // The io errors are part of the message, not a `source`, so `{:#}` does not repeat them.
    #[error("cannot listen on {addr}: {err}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error(
        "cannot read {what} file {path}: {err}; check the path in [server] and its permissions"
    )]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("invalid {what} file {path}: {reason}")]
    TlsPem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "[server] tls_cert {cert} and tls_key {key} do not form a usable pair: {reason}; the key must be the certificate's private key"
    )]
    TlsPair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("[server] {0}")]
    TlsSettings(String),
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

/// Loads `[server]`'s TLS material; `None` means plain HTTP. Built like a web
/// configuration's `tls_server_config` (`attest_web::tls`): `client_ca` is
/// `RequireAndVerifyClientCert`, TLS 1.2 and 1.3; errors name the `[server]` keys.
pub fn tls_config(cfg: &ServerConfig) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    let (cert_path, key_path) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) if cfg.client_ca.is_none() => return Ok(None),
        (None, None) => {
            return Err(ServerError::TlsSettings(
                "client_ca needs tls_cert and tls_key: client certificates only exist under TLS"
                    .into(),
            ));
        }
        _ => {
            return Err(ServerError::TlsSettings(
                "set both tls_cert and tls_key, or neither".into(),
            ));
        }
    };
    let tls = WebTls::from_files(cert_path.clone(), key_path.clone(), cfg.client_ca.clone());
    attest_web::tls::server_config(&tls)
        .map(Some)
        .map_err(server_error)
}

/// The same failure, named by `[server]`'s keys instead of the web configuration's.
fn server_error(e: TlsError) -> ServerError {
    let key = |what: &'static str| match what {
        "cert_file" => "tls_cert",
        "key_file" => "tls_key",
        "client_ca_file" => "client_ca",
        other => other,
    };
    match e {
        TlsError::File { what, path, err } => ServerError::TlsFile {
            what: key(what),
            path,
            err,
        },
        TlsError::Pem { what, path, reason } => ServerError::TlsPem {
            what: key(what),
            path,
            reason,
        },
        TlsError::Pair { cert, key, reason } => ServerError::TlsPair { cert, key, reason },
        TlsError::Settings(s) => ServerError::TlsSettings(s),
        inline @ TlsError::Inline { .. } => ServerError::TlsSettings(inline.to_string()),
    }
}

/// What one listener allows a connection: how many at once and how long a client may idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; the accept loop waits (the kernel queues) beyond it.
    pub max_connections: usize,
    /// Time to send request headers, on plain HTTP and TLS alike.
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long, with no request in its handler, is
    /// closed (after its answer in flight, if any, is written; a client that does not read
    /// its answer is cut off once no byte moved for the same time again). A request in its
    /// handler is bounded by the handler (`body_read_timeout`, a long poll's `?wait=`).
    pub idle_timeout: Duration,
    /// Once shutdown begins, how long requests in flight may still run before serving
    /// returns anyway.
    pub shutdown_timeout: Duration,
}

impl ConnectionLimits {
    pub fn of(cfg: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: cfg.max_connections,
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
            shutdown_timeout: cfg.shutdown_timeout,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: attest_config::load::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: attest_config::load::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: attest_config::load::DEFAULT_IDLE_TIMEOUT,
            shutdown_timeout: attest_config::load::DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Counts of the listener, exported as metrics (`attest_http_connections*`).
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Times the listener reached `max_connections` and stopped accepting until one closed.
    pub cap_reached: AtomicU64,
    /// Connections closed for idling past `idle_timeout` or headers past `header_read_timeout`.
    pub timed_out: AtomicU64,
    /// The configured `max_connections`, for the limit gauge.
    pub limit: AtomicU64,
}

/// The peer of a request's connection, as a request extension (for refusal logs).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Binds `[server] listen` and serves `app` until `shutdown` completes, over TLS when `tls`
/// is given (from `[server]` by [`tls_config`], or from a web configuration file).
pub async fn serve(
    cfg: &ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|err| ServerError::Bind {
            addr: cfg.listen,
            err,
        })?;
    tracing::info!(
        addr = %cfg.listen,
        tls = tls.is_some(),
        max_connections = cfg.max_connections,
        "collector listening"
    );
    crate::notify::ready();
    serve_with(
        listener,
        tls,
        app,
        ConnectionLimits::of(cfg),
        stats,
        shutdown,
    )
    .await
}

/// Serves `app` on an already bound listener with the default limits (tests bind port 0 and
/// read the address).
pub async fn serve_on(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let stats = Arc::new(ListenerStats::default());
    serve_with(
        listener,
        tls,
        app,
        ConnectionLimits::default(),
        stats,
        shutdown,
    )
    .await
}

/// The accept loop, plain or TLS: one task per connection, at most `max_connections` at
/// once, tracked so shutdown can wait for them.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    limits: ConnectionLimits,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    stats
        .limit
        .store(limits.max_connections as u64, Ordering::Relaxed);
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting: beyond the cap, clients wait in the kernel's queue
        // instead of each holding a task and buffers here.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                stats.cap_reached.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached; new connections wait until one closes"
                );
                tokio::select! {
                    _ = &mut shutdown => break,
                    s = slots.clone().acquire_owned() => match s {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                stats.open.fetch_add(1, Ordering::Relaxed);
                let conn = Conn {
                    peer,
                    acceptor: acceptor.clone(),
                    app: app.clone(),
                    stop: stop.clone(),
                    limits,
                    stats: stats.clone(),
                };
                tracker.spawn(async move {
                    conn.run(tcp).await;
                    drop(slot);
                });
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!("connection dropped before accept: {e}");
            }
            Err(e) => {
                tracing::warn!("accept failed, pausing briefly: {e}");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
    drop(listener);
    stop.cancel();
    tracker.close();
    let drained = tokio::time::timeout(limits.shutdown_timeout, tracker.wait()).await;
    if drained.is_err() {
        tracing::warn!(
            connections = tracker.len(),
            shutdown_timeout = ?limits.shutdown_timeout,
            "shutdown_timeout reached with requests still in flight; they are cut off"
        );
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One accepted connection and what it needs to be served.
struct Conn {
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: axum::Router,
    stop: CancellationToken,
    limits: ConnectionLimits,
    stats: Arc<ListenerStats>,
}

impl Conn {
    async fn run(self, tcp: TcpStream) {
        let peer = self.peer;
        match self.acceptor.clone() {
            None => self.http(tcp).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    _ = self.stop.cancelled() => None,
                    r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => Some(r),
                };
                match handshake {
                    None => {}
                    Some(Ok(Ok(stream))) => self.http(stream).await,
                    Some(Ok(Err(e))) => {
                        attest_web::refusal::handshake_refused("collector", peer, &e);
                    }
                    Some(Err(_)) => {
                        self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            }
        }
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// HTTP/1.1 until the client closes, idles past `idle_timeout`, or `stop` asks for a
    /// graceful close (the request in flight completes; keep-alive ends).
    async fn http<S>(&self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let (io, last) = Watched::new(stream);
        let serving = Serving::default();
        let app = self.app.clone();
        let in_handler = serving.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                let mut app = app.clone();
                let busy = in_handler.enter();
                async move {
                    let _busy = busy;
                    tower_service::Service::call(&mut app, req).await
                }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(io), svc);
        let mut conn = std::pin::pin!(conn);
        let idle = self.limits.idle_timeout;
        let result = loop {
            let quiet_until = tokio::time::Instant::from_std(last.get()) + idle;
            tokio::select! {
                r = conn.as_mut() => break r,
                _ = self.stop.cancelled() => {
                    // Keep-alive ends; an idle connection closes now. One that has not sent
                    // (all of) a request yet would hold the drain until header_read_timeout,
                    // so it is cut once it is quiet with nothing in its handler.
                    conn.as_mut().graceful_shutdown();
                    break loop {
                        let quiet_until =
                            tokio::time::Instant::from_std(last.get()) + SHUTDOWN_QUIET;
                        tokio::select! {
                            r = conn.as_mut() => break r,
                            _ = tokio::time::sleep_until(quiet_until) => {
                                if last.get().elapsed() >= SHUTDOWN_QUIET && !serving.busy() {
                                    tracing::debug!(%peer, "closing a connection without a request at shutdown");
                                    return;
                                }
                            }
                        }
                    };
                }
                _ = tokio::time::sleep_until(quiet_until) => {
                    if !idle_now(&last, &serving, idle) {
                        continue;
                    }
                    self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "closing a connection idle for {idle:?}");
                    conn.as_mut().graceful_shutdown();
                    // A request in flight is still answered; a client that never reads
                    // the answer is cut off once no byte moved for another idle period.
                    last.touch();
                    break loop {
                        match tokio::time::timeout(idle, conn.as_mut()).await {
                            Ok(r) => break r,
                            Err(_) if idle_now(&last, &serving, idle) => return,
                            Err(_) => {}
                        }
                    };
                }
            }
        };
        if let Err(e) = result {
            if e.is_timeout() {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(%peer, "connection ended with an error: {e}");
        }
    }
}

/// True when no byte moved for `idle` and no request is in its handler. A request in its
/// handler is not idle however long it waits: the handler bounds its own wait
/// (`body_read_timeout` for a stalled body, which is answered 408 and releases its in-flight
/// bytes; `?wait=` for a long poll). Its wait restarts the idle clock.
fn idle_now(last: &LastActivity, serving: &Serving, idle: Duration) -> bool {
    if last.get().elapsed() < idle {
        return false;
    }
    if serving.busy() {
        last.touch();
        return false;
    }
    true
}

/// How many requests of one connection are in their handler now (HTTP/1.1: 0 or 1).
#[derive(Clone, Default)]
struct Serving(Arc<AtomicU64>);

/// One request in its handler; dropped when the handler returns its answer (or is dropped).
struct InHandler(Arc<AtomicU64>);

impl Serving {
    fn enter(&self) -> InHandler {
        self.0.fetch_add(1, Ordering::AcqRel);
        InHandler(self.0.clone())
    }
    fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

impl Drop for InHandler {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An I/O stream that notes when bytes last moved, for the idle timeout.
struct Watched<S> {
    inner: S,
    last: LastActivity,
}

/// When a [`Watched`] stream last moved a byte; shared with the connection's watchdog.
#[derive(Clone)]
struct LastActivity(Arc<std::sync::Mutex<std::time::Instant>>);

impl LastActivity {
    fn get(&self) -> std::time::Instant {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn touch(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }
}

impl<S> Watched<S> {
    fn new(inner: S) -> (Watched<S>, LastActivity) {
        let last = LastActivity(Arc::new(std::sync::Mutex::new(std::time::Instant::now())));
        (
            Watched {
                inner,
                last: last.clone(),
            },
            last,
        )
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.touch();
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.last.touch();
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
