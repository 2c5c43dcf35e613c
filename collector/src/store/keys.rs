//! How domain values become stored keys and columns, shared by the SQLite and PostgreSQL
//! backends so that both store (and read back) exactly the same numbers and bytes.
//!
//! Invariants:
//! - Instants are stored as signed nanoseconds since the Unix epoch; an instant outside
//!   the `i64` range is an error, never a silently clamped value.
//! - A minute key is `floor(ns / 60 s)`, so instants before 1970 land in the minute that
//!   contains them.
//! - Counters cross the `u64`/`i64` boundary saturating: a count never wraps negative.
//! - The measurement details column (`extra`) is encoded by [`super::extra`] (compact,
//!   lossless, absent when every part is empty).

use attest_config::wire::{Gap, Measurement};
use jiff::Timestamp;

use super::StoreError;
use super::codec;

pub(super) const NS_PER_MINUTE: i64 = 60_000_000_000;
/// Batch rows outlive the rollups by this margin, so a replayed batch whose rows were
/// pruned cannot reach past the rollup horizon even from an agent whose clock ran ahead.
const BATCH_KEEP_MARGIN_NS: i64 = 24 * 60 * NS_PER_MINUTE;

/// The stored form of an instant.
pub(super) fn ts_ns(ts: Timestamp) -> Result<i64, StoreError> {
    i64::try_from(ts.as_nanosecond()).map_err(|_| {
        StoreError::Backend(format!(
            "timestamp {ts} is outside the storable range 1677..2262; reject it at ingest"
        ))
    })
}

/// An instant read back from its stored form.
pub(super) fn from_ns(ns: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_nanosecond(i128::from(ns))
        .map_err(|e| StoreError::Backend(format!("stored timestamp {ns} is invalid: {e}")))
}

/// The minute key of an instant in stored nanoseconds.
pub(super) fn minute_of(ns: i64) -> i64 {
    ns.div_euclid(NS_PER_MINUTE)
}

/// A counter as a database integer; saturates instead of wrapping negative.
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A database integer as a counter; a negative (corrupt) value reads as zero.
pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The mean of a host minute from its stored sum and count; an empty minute reads as 0.
pub(super) fn host_avg(sum: f64, count: i64) -> f64 {
    if count > 0 { sum / count as f64 } else { 0.0 }
}

/// Batch rows received before this instant may be deleted once rollups before `roll_ns`
/// are: see [`BATCH_KEEP_MARGIN_NS`].
pub(super) fn batches_before(roll_ns: i64) -> i64 {
    roll_ns.saturating_sub(BATCH_KEEP_MARGIN_NS)
}

/// The minute span `(from, to)` a gap covers, ordered even when the agent sent it
/// reversed; `None` when it ends behind the rollup horizon (its minutes were deleted by
/// retention, so adding it would resurrect part of them).
pub(super) fn gap_span(g: &Gap, horizon: i64) -> Result<Option<(i64, i64)>, StoreError> {
    let a = minute_of(ts_ns(g.from)?);
    let z = minute_of(ts_ns(g.to)?);
    let (from, to) = (a.min(z), a.max(z));
    Ok((to >= horizon).then_some((from, to)))
}

/// The span `(first, last)` of a batch's measurement instants in stored nanoseconds, kept
/// with the batch row so that its measurements are found by a range scan of the raw rows
/// (`Store::batch_measurements`); `(None, None)` for a batch without measurements.
pub(super) fn batch_span(ms: &[Measurement]) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let mut span: Option<(i64, i64)> = None;
    for m in ms {
        let ns = ts_ns(m.ts)?;
        span = Some(span.map_or((ns, ns), |(a, z)| (a.min(ns), z.max(ns))));
    }
    Ok((span.map(|s| s.0), span.map(|s| s.1)))
}

/// Rebuilds a raw measurement from its columns. `reason` is the stored reason code, already
/// widened by the backend (each backend keeps its own rule for out-of-range codes).
pub(super) fn rebuild_measurement(
    check: &str,
    ts: i64,
    ok: bool,
    duration: Option<f64>,
    reason: Option<u64>,
    extra: Option<&[u8]>,
) -> Result<Measurement, StoreError> {
    let mut m = Measurement::new(check, from_ns(ts)?, ok);
    m.duration_seconds = duration;
    m.reason = reason
        .map(codec::reason_from_code)
        .transpose()
        .map_err(|e| StoreError::Backend(format!("raw measurement: {e}")))?;
    if let Some(bytes) = extra {
        super::extra::decode(bytes)?.apply(&mut m);
    }
    Ok(m)
}

/// A stored due date; only validated dates are ever written.
pub(crate) fn parse_due(s: &str) -> Result<jiff::civil::Date, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Backend(format!("stored report note due date {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_before_the_epoch_floor() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(NS_PER_MINUTE - 1), 0);
        assert_eq!(minute_of(-1), -1);
        assert_eq!(minute_of(-NS_PER_MINUTE), -1);
        assert_eq!(minute_of(-NS_PER_MINUTE - 1), -2);
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(7), 7);
        assert_eq!(to_u64(-5), 0);
        assert_eq!(to_u64(7), 7);
        assert_eq!(batches_before(i64::MIN), i64::MIN);
        assert_eq!(host_avg(6.0, 4), 1.5);
        assert_eq!(host_avg(6.0, 0), 0.0);
    }

    #[test]
    fn instants_round_trip_and_out_of_range_is_an_error() {
        let ts: Timestamp = "2026-03-01T12:34:56.789Z".parse().expect("valid instant");
        let ns = ts_ns(ts).expect("in range");
        assert_eq!(from_ns(ns).expect("valid"), ts);
        let far: Timestamp = "2300-01-01T00:00:00Z".parse().expect("valid instant");
        assert!(ts_ns(far).is_err());
    }

    #[test]
    fn gap_span_orders_its_ends_and_drops_gaps_behind_the_horizon() {
        let at = |s: &str| s.parse::<Timestamp>().expect("valid instant");
        let g = Gap {
            check: "c".into(),
            from: at("1970-01-01T00:05:30Z"),
            to: at("1970-01-01T00:02:00Z"),
            count: 3,
        };
        assert_eq!(gap_span(&g, i64::MIN).expect("in range"), Some((2, 5)));
        assert_eq!(gap_span(&g, 5).expect("in range"), Some((2, 5)));
        assert_eq!(gap_span(&g, 6).expect("in range"), None);
    }

    #[test]
    fn plain_measurements_have_no_extra_and_details_round_trip() {
        let ts: Timestamp = "2026-03-01T00:00:00Z".parse().expect("valid instant");
        let plain = Measurement::new("c", ts, true);
        assert_eq!(super::super::extra::encode(&plain), None);
        let mut m = Measurement::new("c", ts, false);
        m.error = Some("refused".into());
        m.labels.insert("k".into(), "v".into());
        let bytes = super::super::extra::encode(&m).expect("has details");
        let back = rebuild_measurement(
            "c",
            ts_ns(ts).expect("in range"),
            false,
            None,
            None,
            Some(&bytes),
        )
        .expect("decodes");
        assert_eq!(back.error.as_deref(), Some("refused"));
        assert_eq!(back.labels, m.labels);
        assert!(rebuild_measurement("c", 0, true, None, None, Some(b"{")).is_err());
    }
}
