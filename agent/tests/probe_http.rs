//! HTTP probe against real loopback servers: status, refusal, timeouts per phase, body
//! and header checks, redirects, and TLS verification on and off.

mod probe_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant as StdInstant};

use attest_agent::probe::{Probe, ProbeReport, build};
use attest_config::wire::{FailureReason, Phase};
use attest_config::{Check, CheckSpec, HttpCheck, IpFamily, StatusRange, TlsClientOptions};
use probe_support::*;

fn http_check(url: String) -> HttpCheck {
    HttpCheck {
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
    }
}

fn probe_of(spec: HttpCheck) -> Box<dyn Probe> {
    build(&Check {
        id: "web".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Http(spec),
    })
    .expect("check builds")
}

/// Runs the probe with a deadline `secs` away and checks the phase invariants.
async fn run(spec: HttpCheck, secs: u64) -> ProbeReport {
    let probe = probe_of(spec);
    let start = StdInstant::now();
    let report = probe.probe(deadline_in(secs)).await;
    assert_phases_plausible(&report, start.elapsed());
    report
}

fn routes(path: &str) -> Option<String> {
    match path {
        "/ok" => Some(response("200 OK", "X-Build: v42\r\n", "hello attest")),
        "/fail" => Some(response("500 Internal Server Error", "", "boom")),
        "/slow" => None,
        "/r1" => Some(response("302 Found", "Location: /r2\r\n", "")),
        "/r2" => Some(response("301 Moved", "Location: r3\r\n", "")),
        "/r3" => Some(response("307 Temporary Redirect", "Location: /ok\r\n", "")),
        "/loop" => Some(response("302 Found", "Location: /loop\r\n", "")),
        "/big" => Some(response("200 OK", "", &"x".repeat(4096))),
        _ => Some(response("404 Not Found", "", "")),
    }
}

#[tokio::test]
async fn ok_200_reports_phases_and_values() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/ok"));
    spec.body_contains = vec!["attest".into()];
    spec.body_regex = vec!["^hello".into()];
    spec.body_not_regex = vec!["error".into()];
    spec.header_match
        .insert("x-build".into(), "^v[0-9]+$".into());
    let report = run(spec, 5).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.reason, None);
    for phase in [
        Phase::Resolve,
        Phase::Connect,
        Phase::Processing,
        Phase::Transfer,
    ] {
        assert!(report.phases.contains_key(&phase), "missing {phase:?}");
    }
    assert!(!report.phases.contains_key(&Phase::Tls));
    assert_eq!(value(&report, "http_status_code"), Some(200.0));
    assert_eq!(value(&report, "http_content_length_bytes"), Some(12.0));
    assert_eq!(value(&report, "http_redirects"), Some(0.0));
    assert_eq!(report.labels.get("address"), Some(&addr.to_string()));
}

#[tokio::test]
async fn status_500_fails_with_status() {
    let addr = spawn_http(None, routes).await;
    let report = run(http_check(format!("http://{addr}/fail")), 5).await;
    assert!(!report.ok);
    assert_eq!(report.reason, Some(FailureReason::Status));
    assert_eq!(value(&report, "http_status_code"), Some(500.0));
}

#[tokio::test]
async fn expected_status_ranges_accept_500() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/fail"));
    spec.expect_status = vec![StatusRange { lo: 500, hi: 503 }];
    assert!(run(spec, 5).await.ok);
}

#[tokio::test]
async fn refused_port_is_connect_refused() {
    let report = run(http_check(format!("http://{}/", closed_port())), 5).await;
    assert_eq!(report.reason, Some(FailureReason::ConnectRefused));
    assert_eq!(report.failed_phase, Some(Phase::Connect));
}

#[tokio::test]
async fn silent_server_times_out_in_processing() {
    let addr = spawn_http(None, routes).await;
    let probe = probe_of(http_check(format!("http://{addr}/slow")));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let report = probe.probe(deadline).await;
    assert_eq!(report.reason, Some(FailureReason::Timeout));
    assert_eq!(report.failed_phase, Some(Phase::Processing));
    assert!(tokio::time::Instant::now() >= deadline);
}

#[tokio::test]
async fn body_regex_mismatch_is_body() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/ok"));
    spec.body_regex = vec!["^goodbye".into()];
    let report = run(spec, 5).await;
    assert_eq!(report.reason, Some(FailureReason::Body));
    let mut spec = http_check(format!("http://{addr}/ok"));
    spec.body_not_regex = vec!["hello".into()];
    assert_eq!(run(spec, 5).await.reason, Some(FailureReason::Body));
}

#[tokio::test]
async fn header_mismatch_is_header() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/ok"));
    spec.header_match.insert("x-build".into(), "^v1$".into());
    assert_eq!(run(spec, 5).await.reason, Some(FailureReason::Header));
}

#[tokio::test]
async fn body_over_cap_fails() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/big"));
    spec.max_body_bytes = 1000;
    assert_eq!(run(spec, 5).await.reason, Some(FailureReason::Body));
}

#[tokio::test]
async fn redirect_chain_is_followed_and_summed() {
    let addr = spawn_http(None, routes).await;
    let report = run(http_check(format!("http://{addr}/r1")), 5).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(value(&report, "http_redirects"), Some(3.0));
    assert_eq!(value(&report, "http_status_code"), Some(200.0));
}

#[tokio::test]
async fn redirect_limit_is_redirects() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/loop"));
    spec.max_redirects = 3;
    let report = run(spec, 5).await;
    assert_eq!(report.reason, Some(FailureReason::Redirects));
    assert_eq!(value(&report, "http_redirects"), Some(3.0));
}

#[tokio::test]
async fn redirect_not_followed_is_status() {
    let addr = spawn_http(None, routes).await;
    let mut spec = http_check(format!("http://{addr}/r1"));
    spec.follow_redirects = false;
    let report = run(spec, 5).await;
    assert_eq!(report.reason, Some(FailureReason::Status));
    assert_eq!(value(&report, "http_status_code"), Some(302.0));
}

#[tokio::test]
async fn https_with_ca_file_reports_tls_facts() {
    let pki = Pki::new();
    let addr = spawn_http(Some(pki.server_config()), routes).await;
    let mut spec = http_check(format!("https://localhost:{}/ok", addr.port()));
    spec.tls.ca_file = Some(pki.ca_file.clone());
    spec.ip_family = IpFamily::Ipv4;
    let report = run(spec, 5).await;
    assert!(report.ok, "{report:?}");
    assert!(report.phases.contains_key(&Phase::Tls));
    assert_eq!(
        report.labels.get("tls_version").map(String::as_str),
        Some("TLSv1_3")
    );
    assert_eq!(
        value(&report, "tls_earliest_cert_expiry_seconds"),
        Some(pki.leaf_not_after_unix as f64)
    );
}

#[tokio::test]
async fn https_untrusted_fails_tls_unless_verify_off() {
    let pki = Pki::new();
    let other = Pki::new();
    let addr = spawn_http(Some(pki.server_config()), routes).await;
    let mut spec = http_check(format!("https://127.0.0.1:{}/ok", addr.port()));
    spec.tls.ca_file = Some(other.ca_file.clone());
    let report = run(spec.clone(), 5).await;
    assert_eq!(report.reason, Some(FailureReason::Tls));
    assert_eq!(report.failed_phase, Some(Phase::Tls));
    assert!(value(&report, "tls_earliest_cert_expiry_seconds").is_some());

    spec.tls.verify = false;
    let report = run(spec, 5).await;
    assert!(report.ok, "{report:?}");
}

/// `/to-https/<port>` redirects to `https://127.0.0.1:<port>/ok`.
fn to_https(path: &str) -> Option<String> {
    let Some(port) = path.strip_prefix("/to-https/") else {
        return Some(response("404 Not Found", "", ""));
    };
    let location = format!("Location: https://127.0.0.1:{port}/ok\r\n");
    Some(response("302 Found", &location, ""))
}

#[tokio::test]
async fn http_redirected_to_https_sets_up_tls_on_demand() {
    let pki = Pki::new();
    let tls_addr = spawn_http(Some(pki.server_config()), routes).await;
    let addr = spawn_http(None, to_https).await;
    let mut spec = http_check(format!("http://{addr}/to-https/{}", tls_addr.port()));
    // The system roots do not trust the test CA: verified like any https check.
    let report = run(spec.clone(), 5).await;
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.failed_phase, Some(Phase::Tls));

    spec.tls.verify = false;
    let report = run(spec, 5).await;
    assert!(report.ok, "{report:?}");
    assert!(report.phases.contains_key(&Phase::Tls));
    assert_eq!(value(&report, "http_redirects"), Some(1.0));
    assert_eq!(
        value(&report, "tls_earliest_cert_expiry_seconds"),
        Some(pki.leaf_not_after_unix as f64)
    );
}

#[test]
fn bad_regex_and_missing_ca_are_build_errors() {
    let mut spec = http_check("http://127.0.0.1:1/".into());
    spec.body_regex = vec!["(unclosed".into()];
    let check = |spec| Check {
        id: "web".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        spec: CheckSpec::Http(spec),
    };
    let err = build(&check(spec)).err().expect("bad regex rejected");
    assert!(err.to_string().contains("(unclosed"), "{err}");
    let mut spec = http_check("https://127.0.0.1:1/".into());
    spec.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let err = build(&check(spec)).err().expect("missing CA rejected");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
