//! Compact binary encodings for what the store keeps per minute: failure-reason counts and
//! latency buckets (the scheme of `minutes::latency`), plus the varints they are built from.
//!
//! Invariants:
//! - Every encoding is versioned by the schema (`PRAGMA user_version`); reason codes are
//!   append-only: a code once written is never reused for another reason.
//! - A latency histogram survives `encode → decode` exactly: same buckets, same counts
//!   (checked by a property test against `hdrhistogram`'s own bucketing).
//! - Decoders never panic on corrupt bytes; they return [`CodecError`].

use attest_config::wire::FailureReason;

use crate::minutes::latency::{BucketError, Buckets};

use crate::minutes::REASON_CODES as REASONS;

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

impl From<BucketError> for CodecError {
    fn from(e: BucketError) -> Self {
        CodecError::Malformed(match e {
            BucketError::OutOfRange => "latency bucket outside the tracked range",
            BucketError::OutOfOrder => "latency buckets out of order",
        })
    }
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

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self.bytes.split_first().ok_or(CodecError::Truncated)?;
        self.bytes = rest;
        Ok(b)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let (head, rest) = self
            .bytes
            .split_at_checked(n)
            .ok_or(CodecError::Truncated)?;
        self.bytes = rest;
        Ok(head)
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
    put_varint(out, b.bucket_len() as u64);
    let mut previous = 0;
    for (index, count) in b.iter() {
        put_varint(out, u64::from(index - previous));
        put_varint(out, count);
        previous = index;
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
    use crate::minutes::latency::{HIGHEST_US, new_histogram};
    use hdrhistogram::Histogram;
    use proptest::prelude::*;

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
        fn latency_roundtrips_exactly(values in proptest::collection::vec((1u64..=HIGHEST_US, 1u64..1000), 0..50)) {
            let mut h = new_histogram();
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
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_latency(&mut Reader::new(&bytes));
            let mut counters = [0; REASON_COUNT];
            let _ = decode_reasons(&mut Reader::new(&bytes), &mut counters);
        }
    }
}
