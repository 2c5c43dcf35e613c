//! Shared harness of the collector's HTTP integration tests: an in-process collector wired by
//! the real `app::build` (router, ingest, figures and its refresh loop, maintenance, exporter)
//! over a temporary SQLite store, served on a loopback port by the real listener, plus a
//! throwaway PKI for TLS tests.
//!
//! Invariants: every server listens on 127.0.0.1 with an OS-assigned port; dropping a
//! [`Collector`] stops its server; every wait is bounded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use attest_collector::app::{self, App};
use attest_collector::server;
use attest_collector::store::sqlite::SqliteStore;
use attest_collector::store::{Store, StoreCounts};
use attest_config::CollectorConfig;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_util::sync::CancellationToken;

/// Whether the figures refresh loop runs (as in production) or the test refreshes by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Loop,
    Manual,
}

/// Upper bound of every wait in these tests.
pub const BOUND: Duration = Duration::from_secs(20);

pub fn config(toml: &str) -> CollectorConfig {
    attest_config::parse_collector("collector.toml", toml)
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}"))
}

/// A running in-process collector.
pub struct Collector {
    pub addr: SocketAddr,
    pub base: String,
    pub store: Arc<dyn Store>,
    pub app: App,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Serves the real wiring for `cfg` over plain HTTP, or TLS when `[server] tls_*` is set,
    /// on a fresh SQLite store, with the figures refresh loop running.
    pub async fn start(cfg: CollectorConfig) -> Collector {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("data")).expect("open store"));
        Self::start_on(cfg, store, dir, Refresh::Loop).await
    }

    /// Serves the real wiring for `cfg` on `store` (kept in `dir`); with [`Refresh::Manual`]
    /// figures refresh only when the test calls `c.app.figures.refresh(now)`.
    pub async fn start_on(
        cfg: CollectorConfig,
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
        refresh: Refresh,
    ) -> Collector {
        let tls = server::tls_config(&cfg.server).expect("tls config");
        let https = cfg.server.tls_cert.is_some();
        let app = app::build(cfg, store);
        let router = app.router();
        let c = Self::serve(router, tls, app, dir, https).await;
        if refresh == Refresh::Loop {
            c.app.spawn_background(c.stop.clone());
        }
        c
    }

    /// Serves any router (tests that need a handler of their own) with the given TLS setup;
    /// `app` is the wiring the collector would have (its store is `c.store`).
    pub async fn serve(
        router: axum::Router,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: App,
        dir: tempfile::TempDir,
        https: bool,
    ) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::serve_on(
            listener,
            tls,
            router,
            stop.clone().cancelled_owned(),
        ));
        let scheme = if https { "https" } else { "http" };
        Collector {
            addr,
            base: format!("{scheme}://127.0.0.1:{}", addr.port()),
            store: app.store.clone(),
            app,
            stop,
            task,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn counts(&self) -> StoreCounts {
        self.store.counts().expect("counts")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A plain client (installs ring as the process's rustls provider).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(BOUND)
        .build()
        .expect("client")
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed
/// by the CA and written as PEM files into a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let server_key = KeyPair::generate().expect("key");
        let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("params")
            .signed_by(&server_key, &ca)
            .expect("server cert");
        let client_key = KeyPair::generate().expect("key");
        let client = CertificateParams::new(vec!["agent-a".into()])
            .expect("params")
            .signed_by(&client_key, &ca)
            .expect("client cert");
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        Pki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            dir,
        }
    }

    /// A client trusting only this CA, optionally presenting the client certificate.
    pub fn client(&self, with_cert: bool) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = reqwest::Certificate::from_pem(&read(&self.ca)).expect("ca pem");
        let mut b = reqwest::Client::builder()
            .timeout(BOUND)
            .tls_certs_only([ca]);
        if with_cert {
            let mut pem = read(&self.client_cert);
            pem.extend_from_slice(&read(&self.client_key));
            b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        b.build().expect("client")
    }

    /// `[server]` lines for this PKI.
    pub fn server_toml(&self, mtls: bool) -> String {
        let mut s = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            self.server_cert.display().to_string(),
            self.server_key.display().to_string()
        );
        if mtls {
            s.push_str(&format!(
                "client_ca = {:?}\n",
                self.ca.display().to_string()
            ));
        }
        s
    }
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read pem")
}
