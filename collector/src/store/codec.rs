//! Compact binary encodings for what the store keeps per minute: failure-reason counts and
//! latency histograms, plus the varints they are built from.
//!
//! Invariants:
//! - Every encoding is versioned by the schema (`PRAGMA user_version`); reason codes are
//!   append-only: a code once written is never reused for another reason.
//! - A latency histogram survives `encode → decode` exactly: same buckets, same counts
//!   (checked by a property test against `hdrhistogram`'s own bucketing).
//! - Decoders never panic on corrupt bytes; they return [`CodecError`].

use attest_config::wire::FailureReason;
use hdrhistogram::Histogram;

/// Lowest latency tracked, in microseconds.
pub const LATENCY_LOWEST_US: u64 = 1;
/// Highest latency tracked (one hour), in microseconds; longer durations are clamped.
pub const LATENCY_HIGHEST_US: u64 = 3_600_000_000;
/// Two significant digits: 1 % resolution is finer than any SLA latency threshold needs.
pub const LATENCY_SIGFIG: u8 = 2;

/// `hdrhistogram` layout for 2 significant digits and a lowest value of 1:
/// 256 sub-buckets per bucket, the upper half of each bucket after the first is distinct.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 7;
const SUB_BUCKET_MASK: u64 = 255;

/// Reason codes as stored on disk. Append-only: new reasons go at the end.
const REASONS: [FailureReason; 17] = [
    FailureReason::Dns,
    FailureReason::ConnectRefused,
    FailureReason::Connect,
    FailureReason::Timeout,
    FailureReason::Tls,
    FailureReason::CertExpiry,
    FailureReason::Status,
    FailureReason::Body,
    FailureReason::Header,
    FailureReason::Expect,
    FailureReason::DnsAnswer,
    FailureReason::NoReply,
    FailureReason::Threshold,
    FailureReason::Protocol,
    FailureReason::Redirects,
    FailureReason::Agent,
    FailureReason::Other,
];

/// Number of distinct reason codes; sizes the per-minute reason counters.
pub const REASON_COUNT: usize = REASONS.len();

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("stored rollup data is truncated; the database may be corrupt (restore from backup)")]
    Truncated,
    #[error("stored rollup data has unknown reason code {0}; a newer collector wrote it")]
    UnknownReason(u64),
    #[error("stored rollup data is malformed: {0}; the database may be corrupt")]
    Malformed(&'static str),
}

/// The stable code of a failure reason.
pub fn reason_code(reason: FailureReason) -> u8 {
    // The table covers every variant, so the fallback is never taken; `Other` keeps it total.
    REASONS
        .iter()
        .position(|r| *r == reason)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(16)
}

/// The reason a stored code stands for.
pub fn reason_from_code(code: u64) -> Result<FailureReason, CodecError> {
    usize::try_from(code)
        .ok()
        .and_then(|c| REASONS.get(c).copied())
        .ok_or(CodecError::UnknownReason(code))
}

/// An empty latency histogram with the store's bounds.
pub fn new_latency_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid (covered by a unit test)")
}

/// Latency of successful probes as sparse `hdrhistogram` buckets: `(bucket index, count)`
/// sorted by index. Same bucketing as [`new_latency_histogram`], but a few bytes instead
/// of a 24 KiB counts array, so ingest and merges stay cheap; a `Histogram` is built only
/// when a rollup is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets(Vec<(u32, u64)>);

impl Buckets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Total number of recorded probes.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(_, c)| *c).fold(0, u64::saturating_add)
    }

    /// Records a probe duration (seconds), clamped to the tracked range.
    pub fn record_seconds(&mut self, seconds: f64) {
        if !seconds.is_finite() {
            return;
        }
        let us = (seconds * 1e6).round();
        let us = if us < LATENCY_LOWEST_US as f64 {
            LATENCY_LOWEST_US
        } else if us > LATENCY_HIGHEST_US as f64 {
            LATENCY_HIGHEST_US
        } else {
            us as u64
        };
        self.add(bucket_index(us) as u32, 1);
    }

    /// `(bucket index, count)` in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Appends a bucket above every bucket so far; rejects what a valid encoder never writes.
    pub fn push(&mut self, index: u64, count: u64) -> Result<(), CodecError> {
        if index > max_bucket_index() {
            return Err(CodecError::Malformed(
                "latency bucket outside the tracked range",
            ));
        }
        if self
            .0
            .last()
            .is_some_and(|(last, _)| u64::from(*last) >= index)
        {
            return Err(CodecError::Malformed("latency buckets out of order"));
        }
        self.0.push((index as u32, count));
        Ok(())
    }

    fn add(&mut self, index: u32, count: u64) {
        match self.0.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(pos) => {
                if let Some(slot) = self.0.get_mut(pos) {
                    slot.1 = slot.1.saturating_add(count);
                }
            }
            Err(pos) => self.0.insert(pos, (index, count)),
        }
    }

    pub fn merge(&mut self, other: &Buckets) {
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        for (index, count) in &other.0 {
            self.add(*index, *count);
        }
    }

    /// The `hdrhistogram` these buckets stand for; `None` when empty.
    pub fn to_histogram(&self) -> Option<Histogram<u64>> {
        if self.0.is_empty() {
            return None;
        }
        // Sized to the largest bucket (a month of minutes of full-range histograms would
        // need 24 KiB each); auto-resize keeps merges with wider histograms working, and the
        // bucketing (lowest value, precision) is the same as `new_latency_histogram`.
        let top = self
            .0
            .last()
            .map_or(2, |(i, _)| bucket_value(u64::from(*i)));
        let mut h = Histogram::new_with_bounds(
            LATENCY_LOWEST_US,
            top.saturating_mul(2).max(2),
            LATENCY_SIGFIG,
        )
        .unwrap_or_else(|_| new_latency_histogram());
        h.auto(true);
        for (index, count) in &self.0 {
            h.saturating_record_n(bucket_value(u64::from(*index)), *count);
        }
        Some(h)
    }

    /// Buckets of an existing histogram (for callers holding one).
    pub fn from_histogram(h: &Histogram<u64>) -> Buckets {
        let mut b = Buckets::default();
        for v in h.iter_recorded() {
            b.add(
                bucket_index(v.value_iterated_to()) as u32,
                v.count_at_value(),
            );
        }
        b
    }
}

/// The index of the `hdrhistogram` bucket holding `value` (same layout as the crate).
pub fn bucket_index(value: u64) -> u64 {
    let bucket = 64 - u64::from((value | SUB_BUCKET_MASK).leading_zeros()) - 8;
    let sub = value >> bucket;
    ((bucket + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub - (1 << SUB_BUCKET_HALF_MAGNITUDE)
}

/// Highest valid bucket index: the bucket of [`LATENCY_HIGHEST_US`].
fn max_bucket_index() -> u64 {
    bucket_index(LATENCY_HIGHEST_US)
}

/// The lowest value of the bucket at `index` (≤ [`max_bucket_index`]); recording it lands
/// in that bucket again.
fn bucket_value(index: u64) -> u64 {
    let index = index.min(max_bucket_index());
    let bucket = (index >> SUB_BUCKET_HALF_MAGNITUDE).saturating_sub(1);
    let mut sub =
        (index & ((1 << SUB_BUCKET_HALF_MAGNITUDE) - 1)) + (1 << SUB_BUCKET_HALF_MAGNITUDE);
    if index >> SUB_BUCKET_HALF_MAGNITUDE == 0 {
        sub -= 1 << SUB_BUCKET_HALF_MAGNITUDE;
    }
    sub << bucket
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over encoded bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first().ok_or(CodecError::Truncated)?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Malformed("varint longer than 10 bytes"))
    }

    pub fn u64_le(&mut self) -> Result<u64, CodecError> {
        let (head, rest) = self
            .bytes
            .split_at_checked(8)
            .ok_or(CodecError::Truncated)?;
        self.bytes = rest;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(head);
        Ok(u64::from_le_bytes(buf))
    }
}

/// Appends `n, (index delta, count)*` for the buckets.
pub fn encode_latency(out: &mut Vec<u8>, b: &Buckets) {
    put_varint(out, b.0.len() as u64);
    let mut previous = 0;
    for (index, count) in &b.0 {
        put_varint(out, u64::from(index - previous));
        put_varint(out, *count);
        previous = *index;
    }
}

/// Reads what [`encode_latency`] wrote, rejecting unsorted or out-of-range buckets.
pub fn decode_latency(r: &mut Reader<'_>) -> Result<Buckets, CodecError> {
    let n = r.varint()?;
    let mut out = Buckets::default();
    let mut index = 0u64;
    for _ in 0..n {
        index = index
            .checked_add(r.varint()?)
            .ok_or(CodecError::Malformed("latency bucket index overflows"))?;
        out.push(index, r.varint()?)?;
    }
    Ok(out)
}

/// Appends `count, (code, count)*` for the non-zero reason counters.
pub fn encode_reasons(out: &mut Vec<u8>, reasons: &[u64; REASON_COUNT]) {
    let present = reasons.iter().filter(|c| **c > 0).count();
    put_varint(out, present as u64);
    for (code, count) in reasons.iter().enumerate().filter(|(_, c)| **c > 0) {
        put_varint(out, code as u64);
        put_varint(out, *count);
    }
}

/// Adds what [`encode_reasons`] wrote to `into`.
pub fn decode_reasons(
    r: &mut Reader<'_>,
    into: &mut [u64; REASON_COUNT],
) -> Result<(), CodecError> {
    let n = r.varint()?;
    for _ in 0..n {
        let code = r.varint()?;
        reason_from_code(code)?;
        let count = r.varint()?;
        let slot = usize::try_from(code)
            .ok()
            .and_then(|c| into.get_mut(c))
            .ok_or(CodecError::UnknownReason(code))?;
        *slot = slot.saturating_add(count);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_valid() {
        let h = new_latency_histogram();
        assert_eq!(h.high(), LATENCY_HIGHEST_US);
        assert_eq!(h.sigfig(), LATENCY_SIGFIG);
    }

    #[test]
    fn every_reason_has_a_distinct_code() {
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(usize::from(reason_code(*r)), i);
            assert_eq!(reason_from_code(i as u64), Ok(*r));
        }
        assert_eq!(
            reason_from_code(REASON_COUNT as u64),
            Err(CodecError::UnknownReason(17))
        );
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        for bytes in [
            &[0x80u8][..],
            &[2, 5],
            &[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1,
            ],
        ] {
            assert!(
                decode_latency(&mut Reader::new(bytes)).is_err(),
                "{bytes:?}"
            );
        }
        let mut counters = [0; REASON_COUNT];
        assert!(decode_reasons(&mut Reader::new(&[1, 40, 1]), &mut counters).is_err());
    }

    fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    proptest! {
        #[test]
        fn latency_roundtrips_exactly(values in proptest::collection::vec((1u64..=LATENCY_HIGHEST_US, 1u64..1000), 0..50)) {
            let mut h = new_latency_histogram();
            for (v, n) in &values {
                h.record_n(*v, *n).expect("in range");
            }
            let buckets = Buckets::from_histogram(&h);
            prop_assert_eq!(buckets.len(), h.len());
            let mut bytes = Vec::new();
            encode_latency(&mut bytes, &buckets);
            let decoded = decode_latency(&mut Reader::new(&bytes)).expect("decode");
            prop_assert_eq!(&decoded, &buckets);
            match decoded.to_histogram() {
                None => prop_assert!(values.is_empty()),
                Some(d) => prop_assert_eq!(recorded(&d), recorded(&h)),
            }
        }

        #[test]
        fn bucketing_matches_hdrhistogram(us in 1u64..=LATENCY_HIGHEST_US) {
            let mut h = new_latency_histogram();
            h.record(us).expect("in range");
            let mut b = Buckets::default();
            b.record_seconds(us as f64 / 1e6);
            let mine = b.to_histogram().expect("one value");
            prop_assert_eq!(recorded(&mine), recorded(&h));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_latency(&mut Reader::new(&bytes));
            let mut counters = [0; REASON_COUNT];
            let _ = decode_reasons(&mut Reader::new(&bytes), &mut counters);
        }
    }
}
