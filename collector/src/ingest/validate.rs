//! Field validation of a decoded batch. Everything is checked before anything is stored.

use attest_config::IngestLimits;
use attest_config::wire::{Batch, IMPORT_SEQ_BIT, Measurement};

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
    for (i, g) in b.gaps.iter().enumerate() {
        let field = |f: &str| format!("gaps[{i}].{f}");
        id(&g.check).map_err(|why| Rejection::new(400, why).field(field("check")))?;
        if g.to < g.from {
            return Err(Rejection::new(400, "gap ends before it starts").field(field("to")));
        }
    }
    Ok(())
}

/// Checks one measurement; returns (field, reason) on failure.
pub fn measurement(m: &Measurement) -> Result<(), (&'static str, String)> {
    id(&m.check).map_err(|w| ("check", w))?;
    if !TS_RANGE.contains(&m.ts.as_second()) {
        return Err(("ts", format!("timestamp {} is outside 2000..2100", m.ts)));
    }
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

fn id(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_ID || s.chars().any(char::is_control) {
        return Err(format!(
            "id {s:?} must be 1..{MAX_ID} bytes without control characters"
        ));
    }
    Ok(())
}
