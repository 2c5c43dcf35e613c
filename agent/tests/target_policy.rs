//! `[agent] allow_targets` / `deny_targets` against real loopback listeners: a refused
//! target fails the probe with reason `agent` and receives no connection at all; an allowed
//! one is probed as usual; a redirect cannot lead the probe out of the allowed networks.

use std::collections::BTreeMap;
use std::time::Duration;

use attest_agent::probe::{Targets, build_with};
use attest_config::units::parse_cidr;
use attest_config::wire::{FailureReason, Phase};
use attest_config::{Check, CheckSpec, HttpCheck, IpFamily, TcpCheck, TlsClientOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn check(spec: CheckSpec) -> Check {
    Check {
        id: "c".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec,
    }
}

fn http(url: String) -> CheckSpec {
    CheckSpec::Http(HttpCheck {
        url,
        method: "GET".into(),
        headers: BTreeMap::new(),
        body: None,
        expect_status: vec![],
        body_contains: vec![],
        body_regex: vec![],
        body_not_regex: vec![],
        header_match: BTreeMap::new(),
        follow_redirects: true,
        max_redirects: 5,
        tls: TlsClientOptions::default(),
        ip_family: IpFamily::Any,
        max_body_bytes: 1 << 20,
    })
}

fn targets(allow: &[&str], deny: &[&str]) -> Targets {
    let p = |v: &[&str]| v.iter().map(|s| parse_cidr(s).unwrap()).collect::<Vec<_>>();
    Targets::new(&p(allow), &p(deny))
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(5)
}

/// A listener that answers every request with `answer` and counts connections.
async fn server(answer: String) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = n.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, n)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

#[tokio::test]
async fn denied_target_gets_no_connection_and_the_probe_fails_with_reason_agent() {
    let (port, conns) = server(OK.into()).await;
    let probe = build_with(
        &check(http(format!("http://127.0.0.1:{port}/"))),
        &targets(&[], &["127.0.0.0/8"]),
    )
    .unwrap();
    let r = probe.probe(deadline()).await;
    assert!(!r.ok);
    assert_eq!(r.reason, Some(FailureReason::Agent));
    assert_eq!(r.failed_phase, Some(Phase::Resolve));
    let tcp = build_with(
        &check(CheckSpec::Tcp(TcpCheck {
            address: format!("127.0.0.1:{port}"),
            tls: None,
            steps: vec![],
            ip_family: IpFamily::Any,
        })),
        &targets(&["10.0.0.0/8"], &[]),
    )
    .unwrap();
    assert_eq!(
        tcp.probe(deadline()).await.reason,
        Some(FailureReason::Agent)
    );
    assert_eq!(
        conns.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was sent"
    );
}

#[tokio::test]
async fn allowed_target_is_probed() {
    let (port, conns) = server(OK.into()).await;
    let probe = build_with(
        &check(http(format!("http://127.0.0.1:{port}/"))),
        &targets(&["127.0.0.1/32"], &["127.0.0.2"]),
    )
    .unwrap();
    let r = probe.probe(deadline()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_cannot_lead_out_of_the_allowed_networks() {
    let (denied_port, denied_conns) = server(OK.into()).await;
    let hop = format!(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:{denied_port}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (port, _) = server(hop).await;
    let probe = build_with(
        &check(http(format!("http://127.0.0.1:{port}/"))),
        &targets(&["127.0.0.1/32"], &[]),
    )
    .unwrap();
    let r = probe.probe(deadline()).await;
    assert_eq!(r.reason, Some(FailureReason::Agent), "{r:?}");
    assert_eq!(denied_conns.load(std::sync::atomic::Ordering::SeqCst), 0);
}
