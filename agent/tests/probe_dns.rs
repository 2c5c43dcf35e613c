//! DNS probe against a tiny loopback DNS server (UDP and TCP) built with hickory-proto.

mod probe_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as StdInstant};

use attest_agent::probe::{ProbeReport, build};
use attest_config::wire::{FailureReason, Phase};
use attest_config::{Check, CheckSpec, DnsCheck, DnsTransport};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record};
use probe_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// `www.test.` → A 192.0.2.1 and 192.0.2.2 (authoritative); anything else → NXDOMAIN.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut reply = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    reply.metadata.authoritative = true;
    let question = q.queries.first()?.clone();
    let name = question.name().clone();
    reply.add_query(question);
    if name == Name::from_ascii("www.test.").ok()? {
        for last in [1, 2] {
            let rdata = RData::A(A(Ipv4Addr::new(192, 0, 2, last)));
            reply.add_answer(Record::from_rdata(name.clone(), 60, rdata));
        }
    } else {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.to_vec().ok()
}

async fn udp_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = answer(&buf[..n]) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

async fn tcp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).await.is_err() {
                    return;
                }
                if let Some(reply) = answer(&q) {
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = s.write_all(&framed).await;
                }
            });
        }
    });
    addr
}

fn dns_check(server: SocketAddr, name: &str, transport: DnsTransport) -> DnsCheck {
    DnsCheck {
        server: server.to_string(),
        name: name.into(),
        record_type: "A".into(),
        transport,
        expect_rcode: "NOERROR".into(),
        expect_answers: vec![],
        expect_answer_regex: vec![],
        expect_authoritative: None,
    }
}

async fn run_until(spec: DnsCheck, deadline: tokio::time::Instant) -> ProbeReport {
    let probe = build(&Check {
        id: "dns".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Dns(spec),
    })
    .expect("check builds");
    let start = StdInstant::now();
    let report = probe.probe(deadline).await;
    assert_phases_plausible(&report, start.elapsed());
    report
}

async fn run(spec: DnsCheck) -> ProbeReport {
    run_until(spec, deadline_in(5)).await
}

#[tokio::test]
async fn udp_answers_match() {
    let server = udp_server().await;
    let mut spec = dns_check(server, "www.test", DnsTransport::Udp);
    spec.expect_answers = vec!["192.0.2.2".into()];
    spec.expect_answer_regex = vec![r"^192\.0\.2\.1$".into()];
    spec.expect_authoritative = Some(true);
    let report = run(spec).await;
    assert!(report.ok, "{report:?}");
    assert!(report.phases.contains_key(&Phase::Query));
    assert_eq!(value(&report, "dns_answers"), Some(2.0));
    assert_eq!(
        report.labels.get("rcode").map(String::as_str),
        Some("NOERROR")
    );
}

#[tokio::test]
async fn tcp_answers_match() {
    let server = tcp_server().await;
    let mut spec = dns_check(server, "www.test.", DnsTransport::Tcp);
    spec.expect_answers = vec!["192.0.2.1".into()];
    let report = run(spec).await;
    assert!(report.ok, "{report:?}");
    assert!(report.phases.contains_key(&Phase::Connect));
    assert!(report.phases.contains_key(&Phase::Query));
}

#[tokio::test]
async fn wrong_rcode_answer_or_flag_is_dns_answer() {
    let server = udp_server().await;
    let report = run(dns_check(server, "missing.test", DnsTransport::Udp)).await;
    assert_eq!(report.reason, Some(FailureReason::DnsAnswer));
    assert_eq!(value(&report, "dns_rcode"), Some(3.0));

    let mut spec = dns_check(server, "missing.test", DnsTransport::Udp);
    spec.expect_rcode = "NXDOMAIN".into();
    assert!(run(spec).await.ok);

    let mut spec = dns_check(server, "www.test", DnsTransport::Udp);
    spec.expect_answers = vec!["192.0.2.9".into()];
    assert_eq!(run(spec).await.reason, Some(FailureReason::DnsAnswer));

    let mut spec = dns_check(server, "www.test", DnsTransport::Udp);
    spec.expect_authoritative = Some(false);
    assert_eq!(run(spec).await.reason, Some(FailureReason::DnsAnswer));
}

#[tokio::test]
async fn silent_server_times_out_in_query() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let spec = dns_check(silent.local_addr().unwrap(), "www.test", DnsTransport::Udp);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let report = run_until(spec, deadline).await;
    assert_eq!(report.reason, Some(FailureReason::Timeout));
    assert_eq!(report.failed_phase, Some(Phase::Query));
    drop(silent);
}

#[tokio::test]
async fn tcp_refused_is_connect_refused() {
    let report = run(dns_check(closed_port(), "www.test", DnsTransport::Tcp)).await;
    assert_eq!(report.reason, Some(FailureReason::ConnectRefused));
    assert_eq!(report.failed_phase, Some(Phase::Connect));
}
