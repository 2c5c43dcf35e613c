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

use std::future::Future;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use attest_config::ServerConfig;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client that opens a connection but never finishes the handshake must not hold a task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Same for a client that never finishes sending its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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

/// Binds `[server] listen` and serves `app` until `shutdown` completes.
pub async fn serve(
    cfg: &ServerConfig,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tls = tls_config(cfg)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|err| ServerError::Bind {
            addr: cfg.listen,
            err,
        })?;
    tracing::info!(
        addr = %cfg.listen,
        tls = tls.is_some(),
        client_certificates = cfg.client_ca.is_some(),
        "collector listening"
    );
    serve_on(listener, tls, app, shutdown).await
}

/// Serves `app` on an already bound listener (tests bind port 0 and read the address).
pub async fn serve_on(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve),
        Some(tls) => {
            serve_tls(listener, TlsAcceptor::from(tls), app, shutdown).await;
            Ok(())
        }
    }
}

/// Accept loop for TLS: one task per connection, tracked so shutdown can wait for them.
async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                tracker.spawn(connection(
                    tcp,
                    peer,
                    acceptor.clone(),
                    app.clone(),
                    stop.clone(),
                ));
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
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Handshake, then HTTP/1.1 until the client closes or `stop` asks for a graceful close
/// (the request in flight completes; keep-alive ends).
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    stop: CancellationToken,
) {
    let handshake = tokio::select! {
        _ = stop.cancelled() => return,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
    };
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake refused: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.cancelled() => None,
    };
    let result = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}
