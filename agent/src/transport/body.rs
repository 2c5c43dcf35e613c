//! The request body of one delivery attempt: the `wire::Batch` JSON, assembled around the
//! measurements' stored bytes instead of decoding and re-encoding them.
//!
//! Invariant: [`batch_json`] writes exactly the bytes `serde_json::to_vec(&wire::Batch)` would
//! for the same batch — field order, `skip_serializing_if` rules and escaping included — so
//! the collector's decoder and the wire golden test accept it unchanged. The tests below pin
//! this against serde's output; a field added to `wire::Batch` must be added here too.

use attest_config::wire::{self, Gap, SpoolStatus};
use jiff::Timestamp;
use serde::Serialize;

use crate::spool::{PendingBatch, StoredMeasurements};

/// What goes around the measurements in one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// `wire::PROTOCOL_VERSION` with `evidence`, or `PROTOCOL_VERSION_UNSIGNED` without.
    pub version: u32,
    pub agent: &'a str,
    pub seq: u64,
    pub sent_at: Timestamp,
    pub gaps: &'a [Gap],
    pub spool: Option<&'a SpoolStatus>,
    pub evidence: Option<&'a wire::Evidence>,
}

/// The batch as JSON (uncompressed), byte-identical to serde's encoding of `wire::Batch`.
pub fn batch_json(
    env: &Envelope<'_>,
    measurements: &StoredMeasurements,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(measurements.json_items().len() + 256);
    field(&mut out, '{', "version", &env.version)?;
    field(&mut out, ',', "agent", env.agent)?;
    field(&mut out, ',', "seq", &env.seq)?;
    field(&mut out, ',', "sent_at", &env.sent_at)?;
    out.extend_from_slice(b",\"measurements\":[");
    out.extend_from_slice(measurements.json_items());
    out.push(b']');
    if !env.gaps.is_empty() {
        field(&mut out, ',', "gaps", env.gaps)?;
    }
    if let Some(spool) = env.spool {
        field(&mut out, ',', "spool", spool)?;
    }
    if let Some(evidence) = env.evidence {
        field(&mut out, ',', "evidence", evidence)?;
    }
    out.push(b'}');
    Ok(out)
}

/// The quarantine file of a refused batch: `{"gaps","measurements","reason","seq","status"}`,
/// the measurements as stored, so an operator can re-import or inspect exactly what was sent.
pub fn quarantine_json(
    batch: &PendingBatch,
    status: u16,
    reason: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(batch.measurements.json_items().len() + 256);
    field(&mut out, '{', "gaps", &batch.gaps)?;
    out.extend_from_slice(b",\"measurements\":[");
    out.extend_from_slice(batch.measurements.json_items());
    out.push(b']');
    field(&mut out, ',', "reason", reason)?;
    field(&mut out, ',', "seq", &batch.seq)?;
    field(&mut out, ',', "status", &status)?;
    out.push(b'}');
    Ok(out)
}

/// Writes `<sep>"<name>":<value as JSON>`; `name` is a plain ASCII field name.
fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    sep: char,
    name: &str,
    value: &T,
) -> Result<(), serde_json::Error> {
    out.push(sep as u8);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(&mut *out, value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use attest_config::WhenFull;
    use attest_config::wire::{Batch, FailureReason, Measurement, Phase, Value};

    use super::*;
    use crate::spool::Spool;

    /// Measurements that exercise escaping, optional fields, maps and float formatting.
    fn varied() -> Vec<Measurement> {
        let ts = |s: i64| Timestamp::from_second(1_790_000_000 + s).unwrap();
        let mut a = Measurement::new("web \"quoted\" \u{e9}\n", ts(0), true);
        a.duration_seconds = Some(0.1 + 0.2);
        a.phases = BTreeMap::from([(Phase::Connect, 1e-7), (Phase::Tls, 12_345.678_9)]);
        a.values.push(Value {
            name: "status_code".into(),
            resource: Some("/var/\\lib".into()),
            value: -0.0,
        });
        a.labels.insert("tls_version".into(), "TLSv1.3".into());
        let mut b = Measurement::new("db", ts(1), false);
        b.reason = Some(FailureReason::ConnectRefused);
        b.failed_phase = Some(Phase::Connect);
        b.error = Some("connection refused \u{1f}".into());
        b.duration_seconds = Some(f64::MAX);
        let c = Measurement::new(
            "dns",
            Timestamp::new(1_790_000_002, 123_456_789).unwrap(),
            true,
        );
        vec![a, b, c]
    }

    fn cut(ms: &[Measurement]) -> (tempfile::TempDir, PendingBatch) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20, WhenFull::DropOldest).unwrap();
        s.append(ms).unwrap();
        if ms.is_empty() {
            s.record_lost(&[Measurement::new("lost", Timestamp::UNIX_EPOCH, true)]);
        }
        let b = s.next_batch(100).unwrap().unwrap();
        (dir, b)
    }

    /// The old path: decode the stored records and let serde encode the whole batch.
    fn old_body(env: &Envelope<'_>, b: &PendingBatch) -> (Batch, Vec<u8>) {
        let wire = Batch {
            version: env.version,
            agent: env.agent.to_string(),
            seq: env.seq,
            sent_at: env.sent_at,
            measurements: b.measurements.decode().unwrap(),
            gaps: env.gaps.to_vec(),
            spool: env.spool.cloned(),
            evidence: env.evidence.cloned(),
        };
        let bytes = serde_json::to_vec(&wire).unwrap();
        (wire, bytes)
    }

    #[test]
    fn assembled_body_is_the_batch_serde_would_write() {
        let status = SpoolStatus {
            depth_measurements: 3,
            bytes: 4096,
            dropped_total: 1,
            corrupt_records_total: 0,
        };
        let gaps = [Gap {
            check: "web".into(),
            from: Timestamp::from_second(1_789_999_000).unwrap(),
            to: Timestamp::from_second(1_789_999_060).unwrap(),
            count: 2,
        }];
        let sent_at = Timestamp::new(1_790_000_100, 5).unwrap();
        for ms in [varied(), varied()[..1].to_vec(), Vec::new()] {
            let (_dir, b) = cut(&ms);
            let evidence = wire::Evidence {
                prev: Some("ab".repeat(32)),
                digest: "cd".repeat(32),
                key: "ed25519:key".into(),
                signature: "sig/+=".into(),
            };
            for (gaps, spool, agent, evidence) in [
                (&gaps[..], Some(&status), "a1", Some(&evidence)),
                (&[][..], None, "agent \"x\"\t\u{2028}", None),
            ] {
                let env = Envelope {
                    version: if evidence.is_some() { 2 } else { 1 },
                    agent,
                    seq: b.seq,
                    sent_at,
                    gaps,
                    spool,
                    evidence,
                };
                let new = batch_json(&env, &b.measurements).unwrap();
                let (expected, old) = old_body(&env, &b);
                assert_eq!(
                    String::from_utf8_lossy(&new),
                    String::from_utf8_lossy(&old),
                    "assembled body differs from serde's"
                );
                let decoded: Batch = serde_json::from_slice(&new).unwrap();
                assert_eq!(decoded, expected);
                assert_eq!(decoded.measurements, ms);
            }
        }
    }

    #[test]
    fn stored_measurements_decode_to_what_was_appended() {
        let ms = varied();
        let (_dir, b) = cut(&ms);
        assert_eq!(b.measurements.len(), 3);
        assert_eq!(b.measurements.decode().unwrap(), ms);
    }
}
