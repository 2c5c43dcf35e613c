//! The canonical form of a batch (version 1) and its digest: the bytes an agent signs and a
//! collector or auditor recomputes. Specified in docs/wire.md ("Canonical form"), precisely
//! enough for an independent verifier; this file is the reference implementation.
//!
//! Invariants:
//! - The form is defined over decoded values, never over bytes received: the collector
//!   recomputes it from stored rows, so anything it depends on must be stored losslessly
//!   (every measurement field is; floats by their IEEE-754 bits).
//! - Measurement order and gap order in the batch do not matter: each is encoded on its
//!   own and the encodings are sorted (unsigned bytewise). Any field change changes the
//!   bytes, hence the digest.
//! - Maps are encoded in the bytewise order of their keys' names (the stable wire strings),
//!   not in the order of any Rust type.
//! - Changing anything here is a new version of the form ([`FORM_VERSION`]), never an edit.

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::wire::{FailureReason, Gap, Measurement, Phase};

/// Version of the canonical form; written into the encoding, so two versions never collide.
pub const FORM_VERSION: u8 = 1;

/// Opens every encoding: a domain tag, so that a batch digest can never be mistaken for the
/// digest of anything else Attest signs (reports use `attest-report-v1`).
pub const DOMAIN_TAG: &[u8] = b"attest-batch\0";

/// A batch digest: SHA-256 of the canonical form.
pub type BatchDigest = [u8; 32];

/// Who sent a batch and where it sits in that agent's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub agent: &'a str,
    pub seq: u64,
    /// Digest of the agent's previous batch; `None` for the first of a chain (a fresh
    /// spool, or one whose state was lost).
    pub prev: Option<&'a BatchDigest>,
}

/// The canonical bytes of a batch: header, then measurements, then gaps (docs/wire.md).
pub fn encode(header: &Header<'_>, measurements: &[Measurement], gaps: &[Gap]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + measurements.len() * 96);
    out.extend_from_slice(DOMAIN_TAG);
    out.push(FORM_VERSION);
    put_str(&mut out, header.agent);
    out.extend_from_slice(&header.seq.to_be_bytes());
    match header.prev {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(d);
        }
    }
    put_sorted(&mut out, measurements, put_measurement);
    put_sorted(&mut out, gaps, put_gap);
    out
}

/// SHA-256 of [`encode`].
pub fn digest(header: &Header<'_>, measurements: &[Measurement], gaps: &[Gap]) -> BatchDigest {
    Sha256::digest(encode(header, measurements, gaps)).into()
}

/// The canonical bytes of one gap list alone (count, then the sorted gaps): what the
/// collector keeps of a batch's gaps, whose store rows hold only minutes.
pub fn encode_gaps(gaps: &[Gap]) -> Vec<u8> {
    let mut out = Vec::new();
    put_sorted(&mut out, gaps, put_gap);
    out
}

/// Reads back what [`encode_gaps`] wrote; `None` for bytes it cannot have written.
pub fn decode_gaps(mut bytes: &[u8]) -> Option<Vec<Gap>> {
    let n = take_u32(&mut bytes)?;
    let mut gaps = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let _len = take_u32(&mut bytes)?;
        let check = take_str(&mut bytes)?;
        let from = take_ts(&mut bytes)?;
        let to = take_ts(&mut bytes)?;
        let count = u64::from_be_bytes(take(&mut bytes, 8)?.try_into().ok()?);
        gaps.push(Gap {
            check,
            from,
            to,
            count,
        });
    }
    bytes.is_empty().then_some(gaps)
}

/// A batch read back from its canonical bytes ([`decode`]): what an offline verifier gets
/// out of an evidence export, with owned fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub agent: String,
    pub seq: u64,
    pub prev: Option<BatchDigest>,
    pub measurements: Vec<Measurement>,
    pub gaps: Vec<Gap>,
}

impl Decoded {
    /// The header the bytes were encoded under.
    pub fn header(&self) -> Header<'_> {
        Header {
            agent: &self.agent,
            seq: self.seq,
            prev: self.prev.as_ref(),
        }
    }
}

/// Reads back what [`encode`] wrote; `None` for any other bytes, including bytes that
/// decode but are not in canonical order (re-encoding must give exactly `bytes`), so a
/// verifier that accepts a decoded batch has the one encoding its digest covers.
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut rest = bytes;
    if take(&mut rest, DOMAIN_TAG.len())? != DOMAIN_TAG || take(&mut rest, 1)? != [FORM_VERSION] {
        return None;
    }
    let agent = take_str(&mut rest)?;
    let seq = take_u64(&mut rest)?;
    let prev = take_opt(&mut rest, |b| take(b, 32)?.try_into().ok())?;
    let measurements = take_list(&mut rest, take_measurement)?;
    let gaps = take_list(&mut rest, take_gap)?;
    if !rest.is_empty() {
        return None;
    }
    let d = Decoded {
        agent,
        seq,
        prev,
        measurements,
        gaps,
    };
    (encode(&d.header(), &d.measurements, &d.gaps) == bytes).then_some(d)
}

/// A list as `put_sorted` writes it; each item must fill exactly its stated length.
fn take_list<T>(bytes: &mut &[u8], item: fn(&mut &[u8]) -> Option<T>) -> Option<Vec<T>> {
    let n = take_u32(bytes)?;
    let mut out = Vec::with_capacity(n.min(4096) as usize);
    for _ in 0..n {
        let len = take_u32(bytes)? as usize;
        let mut enc = take(bytes, len)?;
        out.push(item(&mut enc)?);
        if !enc.is_empty() {
            return None;
        }
    }
    Some(out)
}

fn take_measurement(b: &mut &[u8]) -> Option<Measurement> {
    let mut m = Measurement::new(take_str(b)?, take_ts(b)?, false);
    m.ok = match take(b, 1)? {
        [0] => false,
        [1] => true,
        _ => return None,
    };
    m.duration_seconds = take_opt(b, take_f64)?;
    m.reason = take_opt(b, |b| wire_name(&take_str(b)?))?;
    m.failed_phase = take_opt(b, |b| wire_name(&take_str(b)?))?;
    m.error = take_opt(b, take_str)?;
    for _ in 0..take_u32(b)? {
        let phase: Phase = wire_name(&take_str(b)?)?;
        m.phases.insert(phase, take_f64(b)?);
    }
    for _ in 0..take_u32(b)? {
        m.values.push(crate::wire::Value {
            name: take_str(b)?,
            resource: take_opt(b, take_str)?,
            value: take_f64(b)?,
        });
    }
    for _ in 0..take_u32(b)? {
        let k = take_str(b)?;
        m.labels.insert(k, take_str(b)?);
    }
    Some(m)
}

fn take_gap(b: &mut &[u8]) -> Option<Gap> {
    Some(Gap {
        check: take_str(b)?,
        from: take_ts(b)?,
        to: take_ts(b)?,
        count: take_u64(b)?,
    })
}

/// A phase or failure reason from its stable wire string.
fn wire_name<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn take_opt<T>(b: &mut &[u8], inner: impl FnOnce(&mut &[u8]) -> Option<T>) -> Option<Option<T>> {
    match take(b, 1)? {
        [0] => Some(None),
        [1] => inner(b).map(Some),
        _ => None,
    }
}

fn take_u64(b: &mut &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(take(b, 8)?.try_into().ok()?))
}

fn take_f64(b: &mut &[u8]) -> Option<f64> {
    take_u64(b).map(f64::from_bits)
}

/// Count (u32), then each item as u32 length + its encoding, items sorted by encoding.
fn put_sorted<T>(out: &mut Vec<u8>, items: &[T], put: fn(&mut Vec<u8>, &T)) {
    let mut buf = Vec::with_capacity(items.len() * 96);
    let mut spans = Vec::with_capacity(items.len());
    for item in items {
        let start = buf.len();
        put(&mut buf, item);
        spans.push(start..buf.len());
    }
    spans.sort_unstable_by(|a, b| buf[a.clone()].cmp(&buf[b.clone()]));
    put_len(out, items.len());
    for s in spans {
        put_len(out, s.len());
        out.extend_from_slice(&buf[s]);
    }
}

fn put_measurement(out: &mut Vec<u8>, m: &Measurement) {
    put_str(out, &m.check);
    put_ts(out, m.ts);
    out.push(u8::from(m.ok));
    put_opt(out, m.duration_seconds, put_f64);
    put_opt(out, m.reason.map(FailureReason::as_str), put_str);
    put_opt(out, m.failed_phase.map(Phase::as_str), put_str);
    put_opt(out, m.error.as_deref(), put_str);
    let mut phases: Vec<(&str, f64)> = m.phases.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    phases.sort_unstable_by(|a, b| a.0.cmp(b.0));
    put_len(out, phases.len());
    for (name, secs) in phases {
        put_str(out, name);
        put_f64(out, secs);
    }
    put_len(out, m.values.len());
    for v in &m.values {
        put_str(out, &v.name);
        put_opt(out, v.resource.as_deref(), put_str);
        put_f64(out, v.value);
    }
    // A BTreeMap<String, _> iterates in bytewise key order already.
    put_len(out, m.labels.len());
    for (k, v) in &m.labels {
        put_str(out, k);
        put_str(out, v);
    }
}

fn put_gap(out: &mut Vec<u8>, g: &Gap) {
    put_str(out, &g.check);
    put_ts(out, g.from);
    put_ts(out, g.to);
    out.extend_from_slice(&g.count.to_be_bytes());
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: fn(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

/// Lengths and counts are u32 big-endian; a batch's parts are far below 4 GiB (the
/// collector's body limits), so saturating is only a guard.
fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Seconds since the Unix epoch (i64 big-endian, two's complement) and the nanoseconds
/// within the second (u32 big-endian, 0..1e9): the instant exactly, before or after 1970.
fn put_ts(out: &mut Vec<u8>, ts: Timestamp) {
    let ns = ts.as_nanosecond();
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let sub = ns.rem_euclid(1_000_000_000) as u32;
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&sub.to_be_bytes());
}

/// The IEEE-754 binary64 bits, big-endian: `0.0` and `-0.0` differ, as they do on the wire.
fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(take(bytes, 4)?.try_into().ok()?))
}

fn take_str(bytes: &mut &[u8]) -> Option<String> {
    let n = take_u32(bytes)? as usize;
    String::from_utf8(take(bytes, n)?.to_vec()).ok()
}

fn take_ts(bytes: &mut &[u8]) -> Option<Timestamp> {
    let secs = i64::from_be_bytes(take(bytes, 8)?.try_into().ok()?);
    let sub = u32::from_be_bytes(take(bytes, 4)?.try_into().ok()?);
    if sub >= 1_000_000_000 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(secs) * 1_000_000_000 + i128::from(sub)).ok()
}

#[cfg(test)]
mod tests;
