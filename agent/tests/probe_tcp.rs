//! TCP probe against loopback banner servers: connect, send/expect, TLS, refusal, timeout.

mod probe_support;

use std::time::{Duration, Instant as StdInstant};

use attest_agent::probe::{ProbeReport, build};
use attest_config::wire::{FailureReason, Phase};
use attest_config::{Check, CheckSpec, IpFamily, TcpCheck, TcpStep, TlsClientOptions};
use probe_support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn tcp_check(address: String, steps: Vec<TcpStep>) -> TcpCheck {
    TcpCheck {
        address,
        tls: None,
        steps,
        ip_family: IpFamily::Any,
    }
}

async fn run_until(spec: TcpCheck, deadline: tokio::time::Instant) -> ProbeReport {
    let probe = build(&Check {
        id: "smtp".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Tcp(spec),
    })
    .expect("check builds");
    let start = StdInstant::now();
    let report = probe.probe(deadline).await;
    assert_phases_plausible(&report, start.elapsed());
    report
}

async fn run(spec: TcpCheck) -> ProbeReport {
    run_until(spec, deadline_in(5)).await
}

/// An SMTP-like server: greets, answers `EHLO` with `250`, anything else with `500`.
async fn smtp_server(tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> std::net::SocketAddr {
    spawn_server(tls, |stream| async move {
        let mut s = BufReader::new(stream);
        if s.get_mut()
            .write_all(b"220 mail.test ESMTP\r\n")
            .await
            .is_err()
        {
            return;
        }
        let _ = s.get_mut().flush().await;
        let mut line = String::new();
        for _ in 0..10 {
            line.clear();
            match s.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let reply: &[u8] = if line.starts_with("EHLO") {
                b"250-mail.test\r\n250 OK\r\n"
            } else {
                b"500 what\r\n"
            };
            let _ = s.get_mut().write_all(reply).await;
            let _ = s.get_mut().flush().await;
        }
    })
    .await
}

fn smtp_steps(reply: &str) -> Vec<TcpStep> {
    vec![
        TcpStep::Expect("^220 ".into()),
        TcpStep::Send("EHLO probe".into()),
        TcpStep::Expect(reply.into()),
    ]
}

#[tokio::test]
async fn banner_expect_ok() {
    let addr = smtp_server(None).await;
    let report = run(tcp_check(addr.to_string(), smtp_steps("^250 OK"))).await;
    assert!(report.ok, "{report:?}");
    for phase in [Phase::Resolve, Phase::Connect, Phase::Exchange] {
        assert!(report.phases.contains_key(&phase), "missing {phase:?}");
    }
}

#[tokio::test]
async fn banner_mismatch_is_expect() {
    let addr = smtp_server(None).await;
    // The server keeps the session open after answering: the mismatch shows at the deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let report = run_until(tcp_check(addr.to_string(), smtp_steps("^354")), deadline).await;
    assert_eq!(report.reason, Some(FailureReason::Expect));
    assert_eq!(report.failed_phase, Some(Phase::Exchange));
}

#[tokio::test]
async fn bare_connect_ok_and_refused() {
    let addr = smtp_server(None).await;
    assert!(run(tcp_check(addr.to_string(), vec![])).await.ok);
    let report = run(tcp_check(closed_port().to_string(), vec![])).await;
    assert_eq!(report.reason, Some(FailureReason::ConnectRefused));
    assert_eq!(report.failed_phase, Some(Phase::Connect));
}

#[tokio::test]
async fn silent_peer_times_out_in_exchange() {
    let addr = spawn_server(None, |stream| async move {
        let _held_open = stream;
        std::future::pending::<()>().await;
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let spec = tcp_check(addr.to_string(), vec![TcpStep::Expect("^SSH-2.0".into())]);
    let report = run_until(spec, deadline).await;
    assert_eq!(report.reason, Some(FailureReason::Timeout));
    assert_eq!(report.failed_phase, Some(Phase::Exchange));
}

#[tokio::test]
async fn banner_over_tls() {
    let pki = Pki::new();
    let addr = smtp_server(Some(pki.server_config())).await;
    let mut spec = tcp_check(format!("localhost:{}", addr.port()), smtp_steps("^250 OK"));
    spec.ip_family = IpFamily::Ipv4;
    spec.tls = Some(TlsClientOptions {
        ca_file: Some(pki.ca_file.clone()),
        ..TlsClientOptions::default()
    });
    let report = run(spec).await;
    assert!(report.ok, "{report:?}");
    assert!(report.phases.contains_key(&Phase::Tls));
    assert!(report.labels.contains_key("tls_version"));
    assert_eq!(
        value(&report, "tls_earliest_cert_expiry_seconds"),
        Some(pki.leaf_not_after_unix as f64)
    );
}
