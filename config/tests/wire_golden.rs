//! Pins protocol versions 1 and 2 byte for byte: a fixed `Batch` using every optional field
//! must serialize to `testdata/wire/batch-v1.json` (and, signed and chained, to
//! `batch-v2.json`), and each file must decode back to it.
//! If this fails, the wire format changed: either revert the change, or bump
//! `PROTOCOL_VERSION`, update `docs/wire.md` and regenerate the file deliberately.

use std::collections::BTreeMap;

use attest_config::wire::*;
use jiff::Timestamp;

const GOLDEN: &str = include_str!("../testdata/wire/batch-v1.json");
const GOLDEN_V2: &str = include_str!("../testdata/wire/batch-v2.json");

fn ts(s: &str) -> Timestamp {
    s.parse().expect("fixed timestamp")
}

fn batch() -> Batch {
    let failed = Measurement {
        check: "shop-home".into(),
        ts: ts("2026-03-01T10:00:00Z"),
        ok: false,
        duration_seconds: Some(0.25),
        reason: Some(FailureReason::Status),
        failed_phase: Some(Phase::Processing),
        error: Some("status 503".into()),
        phases: BTreeMap::from([
            (Phase::Resolve, 0.001),
            (Phase::Connect, 0.002),
            (Phase::Tls, 0.0125),
            (Phase::Processing, 0.2345),
        ]),
        values: vec![Value {
            name: "http_status_code".into(),
            resource: None,
            value: 503.0,
        }],
        labels: BTreeMap::from([
            ("remote_addr".into(), "192.0.2.10:443".into()),
            ("tls_version".into(), "TLSv1.3".into()),
        ]),
    };
    let mut host = Measurement::new("host", ts("2026-03-01T10:00:00.5Z"), true);
    host.duration_seconds = Some(0.003);
    host.values = vec![Value {
        name: "filesystem_utilization_ratio".into(),
        resource: Some("/var".into()),
        value: 0.8125,
    }];
    Batch {
        version: PROTOCOL_VERSION_UNSIGNED,
        agent: "web-01".into(),
        seq: 42,
        sent_at: ts("2026-03-01T10:00:01.25Z"),
        measurements: vec![failed, host],
        gaps: vec![Gap {
            check: "shop-home".into(),
            from: ts("2026-03-01T09:00:00Z"),
            to: ts("2026-03-01T09:04:30Z"),
            count: 10,
        }],
        spool: Some(SpoolStatus {
            depth_measurements: 1200,
            bytes: 262_144,
            dropped_total: 10,
            corrupt_records_total: 0,
        }),
        evidence: None,
    }
}

/// The same batch in version 2, signed by the key with seed 7,7,…,7 and chained to a
/// previous digest of 0xab bytes; the digest is the canonical form's (docs/wire.md).
fn batch_v2() -> Batch {
    use attest_config::evidence::{canonical, keys};
    let mut b = batch();
    b.version = PROTOCOL_VERSION;
    let key = keys::secret_from_seed(&[7; 32]);
    let prev = [0xab; 32];
    let header = canonical::Header {
        agent: &b.agent,
        seq: b.seq,
        prev: Some(&prev),
    };
    let digest = canonical::digest(&header, &b.measurements, &b.gaps);
    b.evidence = Some(Evidence {
        prev: Some(keys::hex(&prev)),
        digest: keys::hex(&digest),
        key: keys::public_of(&key).to_string(),
        signature: keys::signature_text(&keys::sign(&key, &digest)),
    });
    b
}

#[test]
fn signed_batch_serializes_to_the_v2_golden_file() {
    let json = serde_json::to_string_pretty(&batch_v2()).expect("serializable");
    if std::env::var_os("ATTEST_WRITE_GOLDEN").is_some() {
        std::fs::write("testdata/wire/batch-v2.json", format!("{json}\n")).expect("write");
    }
    assert_eq!(
        json.trim_end(),
        GOLDEN_V2.trim_end(),
        "wire format of a v2 Batch changed"
    );
    let decoded: Batch = serde_json::from_str(GOLDEN_V2).expect("v2 golden file decodes");
    assert_eq!(decoded, batch_v2());
}

#[test]
fn batch_serializes_to_the_golden_file() {
    let json = serde_json::to_string_pretty(&batch()).expect("serializable");
    assert_eq!(
        json.trim_end(),
        GOLDEN.trim_end(),
        "wire format of Batch changed"
    );
}

#[test]
fn golden_file_decodes_to_the_batch() {
    let decoded: Batch = serde_json::from_str(GOLDEN).expect("golden file decodes");
    assert_eq!(decoded, batch());
}

#[test]
fn unknown_fields_are_refused() {
    let with_extra = GOLDEN.replacen("\"seq\": 42,", "\"seq\": 42, \"priority\": 1,", 1);
    assert_ne!(with_extra, GOLDEN, "the replacement must apply");
    assert!(serde_json::from_str::<Batch>(&with_extra).is_err());
}

#[test]
fn minimal_batch_omits_empty_optionals() {
    let b = Batch {
        version: 1,
        agent: "a".into(),
        seq: 1,
        sent_at: ts("2026-03-01T10:00:00Z"),
        measurements: vec![Measurement::new("c", ts("2026-03-01T10:00:00Z"), true)],
        gaps: vec![],
        spool: None,
        evidence: None,
    };
    assert_eq!(
        serde_json::to_string(&b).expect("serializable"),
        r#"{"version":1,"agent":"a","seq":1,"sent_at":"2026-03-01T10:00:00Z","measurements":[{"check":"c","ts":"2026-03-01T10:00:00Z","ok":true}]}"#
    );
}

#[test]
fn ack_error_and_import_shapes() {
    let ack = Ack {
        version: 1,
        acked_seq: 42,
        duplicate: false,
        stored: 2,
    };
    assert_eq!(
        serde_json::to_string(&ack).expect("serializable"),
        r#"{"version":1,"acked_seq":42,"duplicate":false,"stored":2}"#
    );
    let err = ErrorBody {
        error: "timestamp too far in the future".into(),
        field: Some("measurements[3].ts".into()),
    };
    assert_eq!(
        serde_json::to_string(&err).expect("serializable"),
        r#"{"error":"timestamp too far in the future","field":"measurements[3].ts"}"#
    );
    let line =
        r#"{"agent":"web-01","check":"c","ts":"2026-03-01T10:00:00Z","ok":false,"reason":"other"}"#;
    let rec: ImportRecord = serde_json::from_str(line).expect("import line decodes");
    assert_eq!(rec.agent, "web-01");
    assert_eq!(rec.measurement.reason, Some(FailureReason::Other));
    assert_eq!(serde_json::to_string(&rec).expect("serializable"), line);
}
