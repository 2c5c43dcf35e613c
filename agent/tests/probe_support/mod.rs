//! Loopback servers and certificates shared by the probe tests. Every server listens on
//! 127.0.0.1 with an OS-assigned port and lives until the test's runtime ends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use attest_agent::probe::ProbeReport;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// A CA, a leaf for `localhost`/127.0.0.1 signed by it, and the CA written as PEM.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub leaf_not_after_unix: i64,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::with_leaf_expiry(2100)
    }

    /// Leaf expires 1 Jan of `year` (00:00 UTC).
    pub fn with_leaf_expiry(year: i32) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.not_after = rcgen::date_time_ymd(2200, 1, 1);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf_params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let not_after = format!("{year}-01-01T00:00:00Z")
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        Pki {
            dir,
            ca_file,
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            leaf_not_after_unix: not_after,
        }
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .unwrap();
        Arc::new(cfg)
    }
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Accepts connections forever, optionally wrapping them in TLS, and hands each to `serve`.
pub async fn spawn_server<F, Fut>(tls: Option<Arc<ServerConfig>>, serve: F) -> SocketAddr
where
    F: Fn(Box<dyn Stream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let serve = serve.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let stream: Box<dyn Stream> = match tls {
                    None => Box::new(tcp),
                    Some(cfg) => match TlsAcceptor::from(cfg).accept(tcp).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                };
                serve(stream).await;
            });
        }
    });
    addr
}

/// What the HTTP test server answers for a path; `None` never answers.
pub type Route = fn(&str) -> Option<String>;

/// A minimal HTTP/1.1 server: reads the request head, answers per `route`, closes.
pub async fn spawn_http(tls: Option<Arc<ServerConfig>>, route: Route) -> SocketAddr {
    spawn_server(tls, move |stream| async move {
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        if reader.read_line(&mut first).await.is_err() {
            return;
        }
        let mut line = String::new();
        for _ in 0..100 {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(n) if n > 0 && line != "\r\n" => continue,
                _ => break,
            }
        }
        let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
        match route(&path) {
            Some(resp) => {
                let _ = reader.get_mut().write_all(resp.as_bytes()).await;
                let _ = reader.get_mut().shutdown().await;
            }
            None => std::future::pending::<()>().await,
        }
    })
    .await
}

pub fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// A port with nothing listening (bound once, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn deadline_in(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Phases are non-negative and sum to at most the measured total.
pub fn assert_phases_plausible(report: &ProbeReport, total: Duration) {
    let mut sum = 0.0;
    for (phase, secs) in &report.phases {
        assert!(*secs >= 0.0, "phase {phase:?} negative: {secs}");
        sum += secs;
    }
    assert!(
        sum <= total.as_secs_f64() + 1e-6,
        "phases sum {sum} exceed total {total:?}: {:?}",
        report.phases
    );
}

pub fn value(report: &ProbeReport, name: &str) -> Option<f64> {
    report
        .values
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.value)
}
