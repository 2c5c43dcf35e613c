//! TLS certificate probe against loopback TLS servers with generated chains.

mod probe_support;

use std::time::{Duration, Instant as StdInstant};

use attest_agent::probe::{ProbeReport, build};
use attest_config::wire::{FailureReason, Phase};
use attest_config::{Check, CheckSpec, TlsCheck, TlsClientOptions};
use probe_support::*;

async fn run(pki: &Pki, min_days_left: u32, verify: bool) -> ProbeReport {
    let addr = spawn_server(Some(pki.server_config()), |_s| async {}).await;
    let spec = TlsCheck {
        address: format!("127.0.0.1:{}", addr.port()),
        tls: TlsClientOptions {
            verify,
            ca_file: Some(pki.ca_file.clone()),
            ..TlsClientOptions::default()
        },
        min_days_left,
    };
    let probe = build(&Check {
        id: "cert".into(),
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Tls(spec),
    })
    .expect("check builds");
    let start = StdInstant::now();
    let report = probe.probe(deadline_in(5)).await;
    assert_phases_plausible(&report, start.elapsed());
    report
}

#[tokio::test]
async fn valid_chain_reports_days_left() {
    let pki = Pki::new();
    let report = run(&pki, 30, true).await;
    assert!(report.ok, "{report:?}");
    assert!(report.phases.contains_key(&Phase::Tls));
    let days = value(&report, "tls_cert_days_left").expect("days left");
    assert!(days > 365.0 * 50.0, "leaf expires in 2100, got {days}");
    assert_eq!(
        value(&report, "tls_earliest_cert_expiry_seconds"),
        Some(pki.leaf_not_after_unix as f64)
    );
}

#[tokio::test]
async fn too_few_days_left_is_cert_expiry() {
    let pki = Pki::new();
    // No certificate lives a million days: the threshold is always missed.
    let report = run(&pki, 1_000_000, true).await;
    assert_eq!(report.reason, Some(FailureReason::CertExpiry));
    assert_eq!(report.failed_phase, Some(Phase::Tls));
}

#[tokio::test]
async fn expired_leaf_is_cert_expiry_with_negative_days() {
    let pki = Pki::with_leaf_expiry(2001);
    for verify in [true, false] {
        let report = run(&pki, 0, verify).await;
        assert_eq!(
            report.reason,
            Some(FailureReason::CertExpiry),
            "verify={verify}"
        );
        assert!(value(&report, "tls_cert_days_left").is_some_and(|d| d < 0.0));
    }
}

#[tokio::test]
async fn untrusted_chain_is_tls() {
    let pki = Pki::new();
    let other = Pki::new();
    let addr = spawn_server(Some(pki.server_config()), |_s| async {}).await;
    let spec = TlsCheck {
        address: format!("127.0.0.1:{}", addr.port()),
        tls: TlsClientOptions {
            ca_file: Some(other.ca_file.clone()),
            ..TlsClientOptions::default()
        },
        min_days_left: 1,
    };
    let check = Check {
        id: "cert".into(),
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Tls(spec),
    };
    let report = build(&check).unwrap().probe(deadline_in(5)).await;
    assert_eq!(report.reason, Some(FailureReason::Tls));
    assert!(value(&report, "tls_cert_days_left").is_some());
}
