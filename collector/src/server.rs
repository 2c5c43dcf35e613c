//! The listener (plain TCP, or TLS with optional client-certificate verification).
//!
//! Invariants:
//! - TLS material is loaded and checked before the port is bound, so a bad file stops startup
//!   with an error naming the file, not a listener that fails every handshake.
//! - Only the ring crypto provider is used (never aws-lc-rs).
//! - Shutdown stops accepting, lets requests in flight finish (so a batch being committed
//!   still gets its ack), closes idle keep-alive connections, then returns.
//! - With `client_ca` set, a connection without a client certificate signed by that CA never
//!   reaches the router.
//! - Plain HTTP and TLS share one accept loop and the same bounds: at most `max_connections`
//!   served at once (the rest wait in the kernel's queue), headers within
//!   `header_read_timeout`, and no connection idles past `idle_timeout`, so stalled or idle
//!   clients cannot pile up tasks and buffers.

use std::future::Future;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use attest_config::ServerConfig;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client that opens a connection but never finishes the handshake must not hold a task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Loads `[server]`'s TLS material; `None` means plain HTTP.
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
    let chain = load_certs("tls_cert", cert_path)?;
    let key = load_key(key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::TlsSettings(format!("TLS protocol versions: {e}")))?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let roots = load_roots(ca_path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ServerError::TlsPem {
                    what: "client_ca",
                    path: ca_path.clone(),
                    reason: format!("cannot verify client certificates with it: {e}"),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::TlsPair {
            cert: cert_path.clone(),
            key: key_path.clone(),
            reason: e.to_string(),
        })?;
    // The router speaks HTTP/1.1 only; saying so lets clients that offer h2 fall back cleanly.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|err| ServerError::TlsFile {
        what,
        path: path.to_path_buf(),
        err,
    })
}

fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem = read_file(what, path)?;
    let bad = |reason: String| ServerError::TlsPem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cannot parse PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate found; expected PEM blocks '-----BEGIN CERTIFICATE-----'".into(),
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let pem = read_file("tls_key", path)?;
    let bad = |reason: String| ServerError::TlsPem {
        what: "tls_key",
        path: path.to_path_buf(),
        reason,
    };
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_slice()))
        .map_err(|e| bad(format!("cannot parse PEM: {e}")))?
        .ok_or_else(|| {
            bad("no private key found; expected a PEM block '-----BEGIN PRIVATE KEY-----' (PKCS#8), 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'".into())
        })
}

fn load_roots(path: &Path) -> Result<RootCertStore, ServerError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("client_ca", path)? {
        roots.add(cert).map_err(|e| ServerError::TlsPem {
            what: "client_ca",
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// What one listener allows a connection: how many at once and how long a client may idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; the accept loop waits (the kernel queues) beyond it.
    pub max_connections: usize,
    /// Time to send request headers, on plain HTTP and TLS alike.
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed (after its request in
    /// flight, if any, is answered; a client that does not read its answer is cut off
    /// after the same time again).
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    pub fn of(cfg: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: cfg.max_connections,
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: attest_config::load::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: attest_config::load::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: attest_config::load::DEFAULT_IDLE_TIMEOUT,
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
    tracker.wait().await;
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
                    Some(Ok(Err(e))) => tracing::info!(%peer, "TLS handshake refused: {e}"),
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
        let app = self.app.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                let mut app = app.clone();
                async move { tower_service::Service::call(&mut app, req).await }
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
                    conn.as_mut().graceful_shutdown();
                    break conn.as_mut().await;
                }
                _ = tokio::time::sleep_until(quiet_until) => {
                    if last.get().elapsed() < idle {
                        continue;
                    }
                    self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "closing a connection idle for {idle:?}");
                    conn.as_mut().graceful_shutdown();
                    // A request in flight is still answered; a client that never reads
                    // the answer is cut off after another idle period.
                    match tokio::time::timeout(idle, conn.as_mut()).await {
                        Ok(r) => break r,
                        Err(_) => return,
                    }
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
