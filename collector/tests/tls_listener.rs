//! The collector's TLS listener in-process: HTTPS with the configured certificate, mutual TLS
//! refusing clients without a certificate from `client_ca`, startup errors naming the bad
//! file, and graceful shutdown letting a request in flight finish under TLS.

mod support;

use std::sync::Arc;

use attest_collector::server::{self, ServerError};
use attest_config::ServerConfig;
use support::{BOUND, Collector, Pki, config};
use tokio::sync::{Notify, oneshot};

fn collector_toml(pki: &Pki, mtls: bool) -> String {
    format!("[server]\n{}", pki.server_toml(mtls))
}

#[tokio::test]
async fn https_serves_with_the_configured_certificate() {
    let pki = Pki::new();
    let c = Collector::start(config(&collector_toml(&pki, false))).await;
    let r = pki
        .client(false)
        .get(c.url("/-/healthy"))
        .send()
        .await
        .expect("https request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok\n");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = support::client()
        .get(format!("http://{}/-/healthy", c.addr))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain HTTP must not be served on the TLS port"
    );
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_client_ca() {
    let pki = Pki::new();
    let c = Collector::start(config(&collector_toml(&pki, true))).await;
    let ok = pki
        .client(true)
        .get(c.url("/-/ready"))
        .send()
        .await
        .expect("request with client certificate");
    assert_eq!(ok.status(), 200);

    let refused = pki.client(false).get(c.url("/-/ready")).send().await;
    assert!(
        refused.is_err(),
        "a client without a certificate got {:?}",
        refused.map(|r| r.status())
    );

    // A certificate from another CA is refused too.
    let other = Pki::new();
    let mut pem = support::read(&other.client_cert);
    pem.extend_from_slice(&support::read(&other.client_key));
    let foreign = reqwest::Client::builder()
        .timeout(BOUND)
        .tls_certs_only([reqwest::Certificate::from_pem(&support::read(&pki.ca)).expect("ca")])
        .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
        .build()
        .expect("client");
    let refused = foreign.get(c.url("/-/ready")).send().await;
    assert!(
        refused.is_err(),
        "a client certificate from a foreign CA got {:?}",
        refused.map(|r| r.status())
    );
}

fn server_cfg(pki: &Pki) -> ServerConfig {
    config(&collector_toml(pki, true)).server
}

fn expect_err(cfg: &ServerConfig) -> ServerError {
    match server::tls_config(cfg) {
        Ok(_) => panic!("tls_config accepted a broken setup"),
        Err(e) => e,
    }
}

#[test]
fn missing_tls_file_is_named() {
    let pki = Pki::new();
    let mut cfg = server_cfg(&pki);
    let missing = pki.dir.path().join("nope.pem");
    cfg.tls_cert = Some(missing.clone());
    let e = expect_err(&cfg).to_string();
    assert!(
        e.contains("tls_cert") && e.contains(&missing.display().to_string()),
        "{e}"
    );
}

#[test]
fn file_without_certificate_is_named() {
    let pki = Pki::new();
    let mut cfg = server_cfg(&pki);
    cfg.tls_cert = Some(pki.server_key.clone());
    let e = expect_err(&cfg).to_string();
    assert!(
        e.contains(&pki.server_key.display().to_string()) && e.contains("no certificate"),
        "{e}"
    );
}

#[test]
fn file_without_key_is_named() {
    let pki = Pki::new();
    let mut cfg = server_cfg(&pki);
    cfg.tls_key = Some(pki.server_cert.clone());
    let e = expect_err(&cfg).to_string();
    assert!(
        e.contains(&pki.server_cert.display().to_string()) && e.contains("no private key"),
        "{e}"
    );
}

#[test]
fn garbage_client_ca_is_named() {
    let pki = Pki::new();
    let mut cfg = server_cfg(&pki);
    let junk = pki.dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    cfg.client_ca = Some(junk.clone());
    let e = expect_err(&cfg).to_string();
    assert!(
        e.contains("client_ca") && e.contains(&junk.display().to_string()),
        "{e}"
    );
}

#[test]
fn key_of_another_certificate_is_refused() {
    let pki = Pki::new();
    let mut cfg = server_cfg(&pki);
    cfg.tls_key = Some(pki.client_key.clone());
    let e = expect_err(&cfg).to_string();
    assert!(
        e.contains(&pki.server_cert.display().to_string())
            && e.contains(&pki.client_key.display().to_string()),
        "{e}"
    );
}

#[test]
fn no_tls_without_certificate() {
    let cfg = config("").server;
    assert!(server::tls_config(&cfg).expect("plain").is_none());
}

/// Shutdown under TLS: the request in flight is answered, new connections are refused,
/// and the server returns once the request is done.
#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let pki = Pki::new();
    let cfg = config(&collector_toml(&pki, false));
    let entered = Arc::new(Notify::new());
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let app = {
        let entered = entered.clone();
        axum::Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let entered = entered.clone();
                let release_rx = release_rx.clone();
                async move {
                    entered.notify_one();
                    if let Some(rx) = release_rx.lock().await.take() {
                        let _ = rx.await;
                    }
                    "finished"
                }
            }),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn attest_collector::store::Store> = Arc::new(
        attest_collector::store::sqlite::SqliteStore::open(&dir.path().join("d")).expect("store"),
    );
    let tls = server::tls_config(&cfg.server).expect("tls");
    let wiring = attest_collector::app::build(cfg.clone(), store);
    let mut c = Collector::serve(app, tls, wiring, dir, true).await;

    let client = pki.client(false);
    let in_flight = tokio::spawn(client.get(c.url("/slow")).send());
    tokio::time::timeout(BOUND, entered.notified())
        .await
        .expect("the slow handler was never entered");
    c.stop.cancel();

    // New connections are refused once the listener is closed.
    let addr = c.addr;
    let mut refused = false;
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(refused, "the listener still accepts after shutdown");
    assert!(
        !c.task.is_finished(),
        "the server returned with a request in flight"
    );

    release_tx.send(()).expect("handler waiting");
    let resp = tokio::time::timeout(BOUND, in_flight)
        .await
        .expect("in-flight request hung")
        .expect("join")
        .expect("the in-flight request failed during shutdown");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "finished");
    let served = tokio::time::timeout(BOUND, &mut c.task)
        .await
        .expect("server did not return after the last request")
        .expect("join");
    assert!(served.is_ok(), "{served:?}");
}
