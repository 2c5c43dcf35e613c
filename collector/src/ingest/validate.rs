//! Field validation of a decoded batch. Everything is checked before anything is stored.
//!
//! Two passes: [`batch`] checks what holds whatever the clock says (ids, ranges, sizes);
//! [`horizon`] runs after the skew policy and checks every instant against the collector's
//! clock: nothing dated beyond `now + max_clock_skew`, nothing older than
//! `max_backfill_age`. A client mistake is always a 400 naming the field, never a 503 the
//! agent would retry forever.

use attest_config::IngestLimits;
use attest_config::wire::{Batch, Gap, IMPORT_SEQ_BIT, Measurement};
use jiff::{SignedDuration, Timestamp};

use super::Rejection;

/// Longest accepted check id or agent id, in bytes.
const MAX_ID: usize = 128;
/// Earliest and latest accepted measurement timestamps (Unix seconds): 2000-01-01 .. 2100-01-01.
const TS_RANGE: std::ops::Range<i64> = 946_684_800..4_102_444_800;

pub(crate) fn batch(b: &Batch, limits: &IngestLimits) -> Result<(), Rejection> {
    if b.seq == 0 || b.seq >= IMPORT_SEQ_BIT {
        return Err(Rejection::new(
            400,
            "seq must be in 1..2^62 (higher seqs are reserved for imports)",
        )
        .field("seq"));
    }
    if b.measurements.len() > limits.max_measurements_per_batch {
        return Err(Rejection::new(
            413,
            format!(
                "{} measurements in one batch; the limit is {}",
                b.measurements.len(),
                limits.max_measurements_per_batch
            ),
        )
        .field("measurements"));
    }
    for (i, m) in b.measurements.iter().enumerate() {
        measurement(m)
            .map_err(|(f, why)| Rejection::new(400, why).field(format!("measurements[{i}].{f}")))?;
    }
    if b.gaps.len() > limits.max_measurements_per_batch {
        return Err(Rejection::new(
            413,
            format!(
                "{} gaps in one batch; the limit is {}",
                b.gaps.len(),
                limits.max_measurements_per_batch
            ),
        )
        .field("gaps"));
    }
    for (i, g) in b.gaps.iter().enumerate() {
        let field = |f: &str| format!("gaps[{i}].{f}");
        id(&g.check).map_err(|why| Rejection::new(400, why).field(field("check")))?;
        for (name, ts) in [("from", g.from), ("to", g.to)] {
            in_range(ts).map_err(|why| Rejection::new(400, why).field(field(name)))?;
        }
        if g.to < g.from {
            return Err(Rejection::new(400, "gap ends before it starts").field(field("to")));
        }
    }
    Ok(())
}

/// Checks every instant of a batch against the collector's clock `now` (after the skew
/// policy has shifted timestamps): at most `max_clock_skew` ahead, at most
/// `max_backfill_age` behind. A measurement from 2099 would pin a check's latest result for
/// decades; a gap across years would turn history unknown.
pub(crate) fn horizon(
    measurements: &[Measurement],
    gaps: &[Gap],
    limits: &IngestLimits,
    now: Timestamp,
) -> Result<(), Rejection> {
    let (earliest, latest) = window(limits, now);
    // The field path is written only for a refusal (not once per measurement).
    let check = |ts: Timestamp, field: &dyn Fn() -> String| -> Result<(), Rejection> {
        if ts > latest {
            return Err(Rejection::new(
                400,
                format!(
                    "timestamp {ts} is in the future (the collector's clock is {now}, max_clock_skew {}); fix the agent's time sync",
                    attest_config::load::format_duration(limits.max_clock_skew)
                ),
            )
            .field(field()));
        }
        if ts < earliest {
            return Err(Rejection::new(
                400,
                format!(
                    "timestamp {ts} is older than max_backfill_age ({}) before the collector's clock {now}; load older history with attest-collector import",
                    attest_config::load::format_duration(limits.max_backfill_age)
                ),
            )
            .field(field()));
        }
        Ok(())
    };
    for (i, m) in measurements.iter().enumerate() {
        check(m.ts, &|| format!("measurements[{i}].ts"))?;
    }
    for (i, g) in gaps.iter().enumerate() {
        check(g.from, &|| format!("gaps[{i}].from"))?;
        check(g.to, &|| format!("gaps[{i}].to"))?;
    }
    Ok(())
}

/// `[now - max_backfill_age, now + max_clock_skew]`, saturating at the accepted range.
fn window(limits: &IngestLimits, now: Timestamp) -> (Timestamp, Timestamp) {
    let back = SignedDuration::try_from(limits.max_backfill_age).unwrap_or(SignedDuration::MAX);
    let ahead = SignedDuration::try_from(limits.max_clock_skew).unwrap_or(SignedDuration::MAX);
    (
        now.checked_sub(back).unwrap_or(Timestamp::MIN),
        now.checked_add(ahead).unwrap_or(Timestamp::MAX),
    )
}

/// An instant the store can hold: within 2000..2100 (what the minute keys are built for).
pub fn in_range(ts: Timestamp) -> Result<(), String> {
    if TS_RANGE.contains(&ts.as_second()) {
        Ok(())
    } else {
        Err(format!("timestamp {ts} is outside 2000..2100"))
    }
}

/// Checks one measurement; returns (field, reason) on failure.
pub fn measurement(m: &Measurement) -> Result<(), (&'static str, String)> {
    id(&m.check).map_err(|w| ("check", w))?;
    in_range(m.ts).map_err(|w| ("ts", w))?;
    if let Some(d) = m.duration_seconds
        && (!d.is_finite() || !(0.0..=86_400.0).contains(&d))
    {
        return Err((
            "duration_seconds",
            format!("duration {d} must be a finite number of seconds in 0..86400"),
        ));
    }
    if m.ok && m.reason.is_some() {
        return Err((
            "reason",
            "a successful measurement has no failure reason".into(),
        ));
    }
    if m.phases.values().any(|v| !v.is_finite() || *v < 0.0) {
        return Err((
            "phases",
            "phase durations must be finite and non-negative".into(),
        ));
    }
    if let Some(v) = m
        .values
        .iter()
        .find(|v| !v.value.is_finite() || v.name.is_empty() || v.name.len() > MAX_ID)
    {
        return Err((
            "values",
            format!(
                "value {:?} must have a name of 1..{MAX_ID} bytes and a finite number",
                v.name
            ),
        ));
    }
    if m.error.as_ref().is_some_and(|e| e.len() > 1024) {
        return Err(("error", "error text longer than 1024 bytes".into()));
    }
    Ok(())
}

/// The id rule of the configuration files (docs/config.md), so every id the collector
/// stores could also have been configured.
fn id(s: &str) -> Result<(), String> {
    if attest_config::units::is_valid_id(s) {
        Ok(())
    } else {
        Err(format!(
            "check id {:?} is not valid: expected {}",
            s.chars().take(MAX_ID + 8).collect::<String>(),
            attest_config::units::ID_RULE
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IngestLimits {
        attest_config::parse_collector("c.toml", "[ingest]\nmax_backfill_age = \"2d\"\n")
            .unwrap()
            .ingest
    }

    fn batch_json(extra: serde_json::Value) -> Batch {
        let mut b = serde_json::json!({"version": 1, "agent": "a", "seq": 1, "sent_at": "2026-10-01T00:00:00Z"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(b).unwrap()
    }

    fn field(r: Result<(), Rejection>) -> (u16, String) {
        let e = r.unwrap_err();
        (e.status, e.field.unwrap_or_default())
    }

    const NOW: &str = "2026-10-01T00:00:00Z";

    fn horizon_of(b: &Batch) -> Result<(), Rejection> {
        horizon(&b.measurements, &b.gaps, &limits(), NOW.parse().unwrap())
    }

    #[test]
    fn future_and_stale_timestamps_name_the_field() {
        let ok = batch_json(serde_json::json!({"measurements": [
            {"check": "c", "ts": "2026-10-01T00:00:29Z", "ok": true},
            {"check": "c", "ts": "2026-09-29T00:00:01Z", "ok": true}]}));
        assert!(
            horizon_of(&ok).is_ok(),
            "within skew ahead and backfill behind"
        );
        let future = batch_json(serde_json::json!({"measurements": [
            {"check": "c", "ts": "2026-10-01T00:00:00Z", "ok": true},
            {"check": "c", "ts": "2099-01-01T00:00:00Z", "ok": true}]}));
        assert_eq!(
            field(horizon_of(&future)),
            (400, "measurements[1].ts".into())
        );
        let stale = batch_json(serde_json::json!({"measurements": [
            {"check": "c", "ts": "2026-09-28T23:59:59Z", "ok": true}]}));
        assert_eq!(
            field(horizon_of(&stale)),
            (400, "measurements[0].ts".into())
        );
        let long_gap = batch_json(serde_json::json!({"gaps": [
            {"check": "c", "from": "2000-01-01T00:00:00Z", "to": "2026-10-01T00:00:00Z", "count": 1}]}));
        assert_eq!(field(horizon_of(&long_gap)), (400, "gaps[0].from".into()));
        let future_gap = batch_json(serde_json::json!({"gaps": [
            {"check": "c", "from": "2026-10-01T00:00:00Z", "to": "2099-12-31T00:00:00Z", "count": 1}]}));
        assert_eq!(field(horizon_of(&future_gap)), (400, "gaps[0].to".into()));
    }

    #[test]
    fn gap_years_out_of_range_are_400_not_503() {
        for (from, to, f) in [
            ("2026-10-01T00:00:00Z", "9999-01-01T00:00:00Z", "gaps[0].to"),
            (
                "1500-01-01T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "gaps[0].from",
            ),
        ] {
            let b = batch_json(
                serde_json::json!({"gaps": [{"check": "c", "from": from, "to": to, "count": 3}]}),
            );
            assert_eq!(field(batch(&b, &limits())), (400, f.into()));
        }
    }

    #[test]
    fn ids_follow_the_config_rule() {
        for bad in ["../../etc/passwd", "a//b", "web 01", "/root"] {
            let b = batch_json(
                serde_json::json!({"measurements": [{"check": bad, "ts": NOW, "ok": true}]}),
            );
            assert_eq!(
                field(batch(&b, &limits())),
                (400, "measurements[0].check".into()),
                "{bad}"
            );
        }
        let b = batch_json(
            serde_json::json!({"measurements": [{"check": "dc1/web:443", "ts": NOW, "ok": true}]}),
        );
        assert!(batch(&b, &limits()).is_ok());
    }

    #[test]
    fn too_many_gaps_is_413() {
        let mut l = limits();
        l.max_measurements_per_batch = 2;
        let g = serde_json::json!({"check": "c", "from": NOW, "to": NOW, "count": 1});
        let b = batch_json(serde_json::json!({"gaps": [g.clone(), g.clone(), g]}));
        assert_eq!(field(batch(&b, &l)), (413, "gaps".into()));
    }
}
