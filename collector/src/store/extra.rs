//! The stored form of a measurement's details (the raw row's `extra` column): failed
//! phase, error text, phase durations, numeric values and labels, in a compact binary
//! encoding shared by both backends. An HTTPS probe's details (five phases, a status code,
//! the TLS version) took 193 bytes as JSON and take 67 here, most of it the names of the
//! value and the label; the raw rows are what a store holds most of (35 days by default).
//!
//! Invariants:
//! - Lossless: every number reads back bit for bit (a duration that is a whole number of
//!   nanoseconds is kept as that integer, any other number as its 8 IEEE bytes), every
//!   string byte for byte, and the order of values is kept.
//! - The column is absent (`None`) when every part is empty, as before.
//! - Rows written before this encoding hold JSON (their first byte is `{`) and still read;
//!   an encoded row starts with [`FORMAT`], so the two never collide.
//! - Phase codes are append-only: a code once written is never reused for another phase.
//! - Decoding never panics on corrupt bytes; it returns an error naming the column.

use std::collections::BTreeMap;

use attest_config::wire::{Measurement, Phase, Value};
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

use super::StoreError;
use super::codec::{self, CodecError, Reader};

/// First byte of an encoded `extra` (JSON rows start with `{`, 0x7b).
const FORMAT: u8 = 1;

const HAS_FAILED_PHASE: u8 = 1;
const HAS_ERROR: u8 = 2;
const HAS_PHASES: u8 = 4;
const HAS_VALUES: u8 = 8;
const HAS_LABELS: u8 = 16;

/// Number tags (the low two bits of a number's varint).
const NUM_NANOS: u64 = 0;
const NUM_INTEGER: u64 = 1;
const NUM_IEEE: u64 = 2;

/// The details part of a measurement, as the store keeps it.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Details {
    pub failed_phase: Option<Phase>,
    pub error: Option<String>,
    pub phases: BTreeMap<Phase, f64>,
    pub values: Vec<Value>,
    pub labels: BTreeMap<String, String>,
}

impl Details {
    /// Moves the details into `m`.
    pub fn apply(self, m: &mut Measurement) {
        m.failed_phase = self.failed_phase;
        m.error = self.error;
        m.phases = self.phases;
        m.values = self.values;
        m.labels = self.labels;
    }
}

/// The `extra` column of `m`; `None` when it has no details.
pub(super) fn encode(m: &Measurement) -> Option<Vec<u8>> {
    let flags = flag(m.failed_phase.is_some(), HAS_FAILED_PHASE)
        | flag(m.error.is_some(), HAS_ERROR)
        | flag(!m.phases.is_empty(), HAS_PHASES)
        | flag(!m.values.is_empty(), HAS_VALUES)
        | flag(!m.labels.is_empty(), HAS_LABELS);
    if flags == 0 {
        return None;
    }
    // Sized up front (an upper bound: a number takes at most 9 bytes, a length 2 for
    // texts this short): growing from two bytes cost a handful of reallocations per row.
    let texts = m.error.as_ref().map_or(0, |e| e.len() + 3)
        + m.values
            .iter()
            .map(|v| v.name.len() + v.resource.as_ref().map_or(0, |r| r.len() + 3) + 13)
            .sum::<usize>()
        + m.labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>();
    let mut out = Vec::with_capacity(16 + m.phases.len() * 10 + texts);
    out.extend_from_slice(&[FORMAT, flags]);
    if let Some(p) = m.failed_phase {
        out.push(phase_code(p));
    }
    if let Some(e) = &m.error {
        put_str(&mut out, e);
    }
    if !m.phases.is_empty() {
        codec::put_varint(&mut out, m.phases.len() as u64);
        for (&p, &d) in &m.phases {
            out.push(phase_code(p));
            put_number(&mut out, d);
        }
    }
    if !m.values.is_empty() {
        codec::put_varint(&mut out, m.values.len() as u64);
        for v in &m.values {
            put_str(&mut out, &v.name);
            match &v.resource {
                Some(r) => {
                    out.push(1);
                    put_str(&mut out, r);
                }
                None => out.push(0),
            }
            put_number(&mut out, v.value);
        }
    }
    if !m.labels.is_empty() {
        codec::put_varint(&mut out, m.labels.len() as u64);
        for (k, v) in &m.labels {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
    }
    Some(out)
}

/// Reads an `extra` column back, in either stored form.
pub(super) fn decode(bytes: &[u8]) -> Result<Details, StoreError> {
    let invalid = |why: String| {
        StoreError::Backend(format!(
            "stored measurement details are invalid: {why}; the database may be corrupt"
        ))
    };
    match bytes.first() {
        Some(&FORMAT) => decode_binary(&bytes[1..]).map_err(|e| invalid(e.to_string())),
        Some(b'{') => decode_json(bytes).map_err(|e| invalid(e.to_string())),
        _ => Err(invalid("unknown format".into())),
    }
}

fn decode_binary(bytes: &[u8]) -> Result<Details, CodecError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8()?;
    let mut d = Details::default();
    if flags & HAS_FAILED_PHASE != 0 {
        d.failed_phase = Some(phase_from(r.u8()?)?);
    }
    if flags & HAS_ERROR != 0 {
        d.error = Some(read_str(&mut r)?);
    }
    if flags & HAS_PHASES != 0 {
        for _ in 0..count(&mut r)? {
            let p = phase_from(r.u8()?)?;
            d.phases.insert(p, read_number(&mut r)?);
        }
    }
    if flags & HAS_VALUES != 0 {
        for _ in 0..count(&mut r)? {
            let name = read_str(&mut r)?;
            let resource = match r.u8()? {
                0 => None,
                1 => Some(read_str(&mut r)?),
                _ => return Err(CodecError::Malformed("bad value resource marker")),
            };
            let value = read_number(&mut r)?;
            d.values.push(Value {
                name,
                resource,
                value,
            });
        }
    }
    if flags & HAS_LABELS != 0 {
        for _ in 0..count(&mut r)? {
            let k = read_str(&mut r)?;
            d.labels.insert(k, read_str(&mut r)?);
        }
    }
    if !r.is_empty() {
        return Err(CodecError::Malformed(
            "trailing bytes after measurement details",
        ));
    }
    Ok(d)
}

/// The JSON form rows were written in before [`FORMAT`] 1 (written only by tests now).
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Serialize))]
struct Json {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    phases: BTreeMap<Phase, f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

fn decode_json(bytes: &[u8]) -> Result<Details, serde_json::Error> {
    let j: Json = serde_json::from_slice(bytes)?;
    Ok(Details {
        failed_phase: j.failed_phase,
        error: j.error,
        phases: j.phases,
        values: j.values,
        labels: j.labels,
    })
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

/// The stable code of a phase (append-only, see the module invariants).
pub(super) fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Resolve => 0,
        Phase::Connect => 1,
        Phase::Tls => 2,
        Phase::Processing => 3,
        Phase::Transfer => 4,
        Phase::Exchange => 5,
        Phase::Query => 6,
        Phase::Rtt => 7,
        Phase::Collect => 8,
    }
}

pub(super) fn phase_from(code: u8) -> Result<Phase, CodecError> {
    Ok(match code {
        0 => Phase::Resolve,
        1 => Phase::Connect,
        2 => Phase::Tls,
        3 => Phase::Processing,
        4 => Phase::Transfer,
        5 => Phase::Exchange,
        6 => Phase::Query,
        7 => Phase::Rtt,
        8 => Phase::Collect,
        _ => return Err(CodecError::Malformed("unknown phase code")),
    })
}

/// A number in the shortest exact form: whole nanoseconds (durations in seconds), a whole
/// number (status codes, days, bytes), or its 8 IEEE bytes.
fn put_number(out: &mut Vec<u8>, v: f64) {
    let nanos = (v * 1e9).round();
    if v.is_sign_positive() && nanos < 2f64.powi(60) && (nanos / 1e9).to_bits() == v.to_bits() {
        codec::put_varint(out, ((nanos as u64) << 2) | NUM_NANOS);
    } else if v.is_sign_positive() && v < 2f64.powi(60) && v.fract() == 0.0 {
        codec::put_varint(out, ((v as u64) << 2) | NUM_INTEGER);
    } else {
        codec::put_varint(out, NUM_IEEE);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn read_number(r: &mut Reader<'_>) -> Result<f64, CodecError> {
    let tagged = r.varint()?;
    match tagged & 3 {
        NUM_NANOS => Ok((tagged >> 2) as f64 / 1e9),
        NUM_INTEGER => Ok((tagged >> 2) as f64),
        NUM_IEEE => Ok(f64::from_bits(r.u64_le()?)),
        _ => Err(CodecError::Malformed("unknown number tag")),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    codec::put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn read_str(r: &mut Reader<'_>) -> Result<String, CodecError> {
    let len = usize::try_from(r.varint()?).map_err(|_| CodecError::Truncated)?;
    let bytes = r.take(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Malformed("text is not UTF-8"))
}

/// An element count, bounded by the bytes left (each element takes at least one byte), so
/// a corrupt count cannot make the decoder loop or allocate without end.
fn count(r: &mut Reader<'_>) -> Result<u64, CodecError> {
    let n = r.varint()?;
    if n > r.remaining() as u64 {
        return Err(CodecError::Truncated);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use proptest::prelude::*;

    fn http_probe() -> Measurement {
        let mut m = Measurement::new("web", Timestamp::UNIX_EPOCH, true);
        m.phases.insert(Phase::Resolve, 0.000_012_345);
        m.phases.insert(Phase::Connect, 0.000_231_5);
        m.phases.insert(Phase::Tls, 0.003_104_211);
        m.phases.insert(Phase::Processing, 0.012_5);
        m.phases.insert(Phase::Transfer, 0.000_8);
        m.values.push(Value {
            name: "http_status".into(),
            resource: None,
            value: 200.0,
        });
        m.labels.insert("tls_version".into(), "TLS 1.3".into());
        m
    }

    fn details_of(m: &Measurement) -> Details {
        Details {
            failed_phase: m.failed_phase,
            error: m.error.clone(),
            phases: m.phases.clone(),
            values: m.values.clone(),
            labels: m.labels.clone(),
        }
    }

    #[test]
    fn a_probe_without_details_stores_nothing() {
        assert_eq!(
            encode(&Measurement::new("c", Timestamp::UNIX_EPOCH, true)),
            None
        );
    }

    #[test]
    fn probes_are_a_fraction_of_their_json() {
        let m = http_probe();
        let bytes = encode(&m).expect("details");
        let json = serde_json::to_vec(&Json {
            phases: m.phases.clone(),
            values: m.values.clone(),
            labels: m.labels.clone(),
            ..Json::default()
        })
        .expect("json");
        assert_eq!(decode(&bytes).expect("decode"), details_of(&m));
        assert_eq!(
            (bytes.len(), json.len()),
            (67, 193),
            "documented in docs/wire.md"
        );
        let mut two = Measurement::new("web", Timestamp::UNIX_EPOCH, true);
        two.phases.insert(Phase::Connect, 0.001);
        two.phases.insert(Phase::Processing, 0.005);
        let json = serde_json::to_vec(&Json {
            phases: two.phases.clone(),
            ..Json::default()
        })
        .expect("json");
        let bytes = encode(&two).expect("details");
        assert_eq!(
            (bytes.len(), json.len()),
            (13, 47),
            "documented in docs/wire.md"
        );
    }

    #[test]
    fn rows_written_as_json_still_read() {
        let json =
            br#"{"failed_phase":"connect","error":"connect timeout","phases":{"resolve":0.001}}"#;
        let d = decode(json).expect("legacy row");
        assert_eq!(d.failed_phase, Some(Phase::Connect));
        assert_eq!(d.error.as_deref(), Some("connect timeout"));
        assert_eq!(d.phases.get(&Phase::Resolve), Some(&0.001));
    }

    #[test]
    fn corrupt_details_are_errors_not_panics() {
        let good = encode(&http_probe()).expect("details");
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(
            decode(&[FORMAT, HAS_PHASES, 200]).is_err(),
            "count beyond the bytes"
        );
        assert!(
            decode(&[FORMAT, HAS_FAILED_PHASE, 99]).is_err(),
            "unknown phase"
        );
        assert!(decode(&[7, 0]).is_err(), "unknown format");
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err(), "trailing bytes");
    }

    fn phase() -> impl Strategy<Value = Phase> {
        prop_oneof![
            Just(Phase::Resolve),
            Just(Phase::Connect),
            Just(Phase::Tls),
            Just(Phase::Processing),
            Just(Phase::Transfer),
            Just(Phase::Exchange),
            Just(Phase::Query),
            Just(Phase::Rtt),
            Just(Phase::Collect),
        ]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..10_000_000_000).prop_map(|ns| ns as f64 / 1e9),
            (0u64..100_000).prop_map(|n| n as f64),
            any::<f64>().prop_filter("NaN has many encodings", |v| !v.is_nan()),
        ]
    }

    proptest! {
        /// Every detail reads back exactly (numbers bit for bit).
        #[test]
        fn details_round_trip_exactly(
            failed_phase in proptest::option::of(phase()),
            error in proptest::option::of(".{0,40}"),
            phases in proptest::collection::btree_map(phase(), number(), 0..9),
            values in proptest::collection::vec(
                (".{0,12}", proptest::option::of(".{0,8}"), number()), 0..5),
            labels in proptest::collection::btree_map(".{0,10}", ".{0,20}", 0..4),
        ) {
            let mut m = Measurement::new("c", Timestamp::UNIX_EPOCH, false);
            m.failed_phase = failed_phase;
            m.error = error;
            m.phases = phases;
            m.values = values
                .into_iter()
                .map(|(name, resource, value)| Value { name, resource, value })
                .collect();
            m.labels = labels;
            match encode(&m) {
                None => prop_assert_eq!(details_of(&m), Details::default()),
                Some(bytes) => {
                    let d = decode(&bytes).expect("decode");
                    let bits = |p: &BTreeMap<Phase, f64>| -> Vec<(Phase, u64)> {
                        p.iter().map(|(k, v)| (*k, v.to_bits())).collect()
                    };
                    prop_assert_eq!(bits(&d.phases), bits(&m.phases));
                    let vbits: Vec<u64> = d.values.iter().map(|v| v.value.to_bits()).collect();
                    let want: Vec<u64> = m.values.iter().map(|v| v.value.to_bits()).collect();
                    prop_assert_eq!(vbits, want);
                    prop_assert_eq!(d, details_of(&m));
                }
            }
        }
    }
}
