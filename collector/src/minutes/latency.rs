//! The latency-bucket scheme shared by the store and the SLA engine: `hdrhistogram`'s
//! bucketing with a lowest value of 1 µs, a highest of one hour and two significant digits,
//! kept as sparse `(bucket index, count)` lists instead of 24 KiB counts arrays.
//!
//! Invariants:
//! - [`bucket_index`] is exactly `hdrhistogram`'s bucket of a value for these bounds
//!   (checked by a property test), so sparse buckets merge and compare like histograms and
//!   [`Buckets::to_histogram`] gives the same percentiles as recording the values directly.
//! - A [`Buckets`] list is sorted by index, without duplicates, and within
//!   `0..=max_bucket_index()`; [`Buckets::push`] refuses anything else.

use hdrhistogram::Histogram;

/// Lowest latency tracked, in microseconds.
pub const LOWEST_US: u64 = 1;
/// Highest latency tracked (one hour), in microseconds; longer durations are clamped.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Two significant digits: 1 % resolution is finer than any SLA latency threshold needs.
pub const SIGFIG: u8 = 2;

/// `hdrhistogram` layout for 2 significant digits and a lowest value of 1:
/// 256 sub-buckets per bucket, the upper half of each bucket after the first is distinct.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 7;
const SUB_BUCKET_MASK: u64 = 255;

/// One bucket of recorded latencies: bucket index and probe count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyBucket {
    pub index: u32,
    pub count: u32,
}

/// Why a bucket cannot be appended to a [`Buckets`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    #[error("latency bucket outside the tracked range")]
    OutOfRange,
    #[error("latency buckets out of order")]
    OutOfOrder,
}

/// An empty latency histogram with the scheme's bounds.
pub fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
        .expect("constant histogram bounds are valid (covered by a unit test)")
}

/// Latency of successful probes as sparse buckets: `(bucket index, count)` sorted by index.
/// Same bucketing as [`new_histogram`], but a few bytes instead of a 24 KiB counts array,
/// so ingest and merges stay cheap; a `Histogram` is built only when one is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets(Vec<(u32, u64)>);

impl Buckets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of distinct buckets.
    pub fn bucket_len(&self) -> usize {
        self.0.len()
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
        let us = if us < LOWEST_US as f64 {
            LOWEST_US
        } else if us > HIGHEST_US as f64 {
            HIGHEST_US
        } else {
            us as u64
        };
        self.add(bucket_index(us) as u32, 1);
    }

    /// `(bucket index, count)` in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Appends a bucket above every bucket so far; rejects what a valid list never holds.
    pub fn push(&mut self, index: u64, count: u64) -> Result<(), BucketError> {
        if index > max_bucket_index() {
            return Err(BucketError::OutOfRange);
        }
        if self
            .0
            .last()
            .is_some_and(|(last, _)| u64::from(*last) >= index)
        {
            return Err(BucketError::OutOfOrder);
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
        // bucketing (lowest value, precision) is the same as `new_histogram`.
        let top = self
            .0
            .last()
            .map_or(2, |(i, _)| bucket_value(u64::from(*i)));
        let mut h = Histogram::new_with_bounds(LOWEST_US, top.saturating_mul(2).max(2), SIGFIG)
            .unwrap_or_else(|_| new_histogram());
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
fn bucket_index(value: u64) -> u64 {
    let bucket = 64 - u64::from((value | SUB_BUCKET_MASK).leading_zeros()) - 8;
    let sub = value >> bucket;
    ((bucket + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub - (1 << SUB_BUCKET_HALF_MAGNITUDE)
}

/// Highest valid bucket index: the bucket of [`HIGHEST_US`].
pub fn max_bucket_index() -> u64 {
    bucket_index(HIGHEST_US)
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

/// The bucket holding a latency of `us` microseconds (clamped to the tracked range).
pub fn bucket_of(us: u64) -> u32 {
    let us = us.clamp(LOWEST_US, HIGHEST_US);
    u32::try_from(bucket_index(us)).unwrap_or(u32::MAX)
}

/// Number of distinct buckets: a dense counts array of this length holds any histogram.
pub fn bucket_count() -> usize {
    max_bucket_index() as usize + 1
}

/// A histogram of dense per-bucket counts (index = bucket), for percentiles with the exact
/// semantics of `hdrhistogram`; `None` when every count is 0.
pub fn histogram_of_dense(counts: &[u64]) -> Option<Histogram<u64>> {
    let mut b = Buckets::default();
    for (index, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        // Indices come from the enumeration in ascending order, within the dense range.
        if b.push(index as u64, *count).is_err() {
            break;
        }
    }
    b.to_histogram()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    #[test]
    fn bounds_are_valid() {
        let h = new_histogram();
        assert_eq!(h.high(), HIGHEST_US);
        assert_eq!(h.sigfig(), SIGFIG);
    }

    #[test]
    fn dense_histogram_matches_direct_recording() {
        let values = [1u64, 37, 999, 1000, 1001, 123_456, 3_000_000];
        let mut dense = vec![0u64; bucket_count()];
        let mut direct = new_histogram();
        for v in values {
            dense[bucket_of(v) as usize] += 2;
            direct.record_n(v, 2).expect("in range");
        }
        let h = histogram_of_dense(&dense).expect("not empty");
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(h.value_at_quantile(q), direct.value_at_quantile(q), "q={q}");
        }
        assert!(histogram_of_dense(&[0, 0]).is_none());
    }

    proptest! {
        #[test]
        fn bucketing_matches_hdrhistogram(us in 1u64..=HIGHEST_US) {
            let mut h = new_histogram();
            h.record(us).expect("in range");
            let mut b = Buckets::default();
            b.record_seconds(us as f64 / 1e6);
            let mine = b.to_histogram().expect("one value");
            prop_assert_eq!(recorded(&mine), recorded(&h));
        }
    }
}
