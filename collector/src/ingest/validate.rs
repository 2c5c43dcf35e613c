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
/// Longest accepted text of a measurement (`error`, a label value, a value's `resource`), in
/// bytes: an agent's facts are short (a TLS version, an address, a mount point); docs/wire.md.
const MAX_TEXT: usize = attest_config::wire::MAX_TEXT_BYTES;
/// Most labels one measurement may carry (agents send one or two).
const MAX_LABELS: usize = attest_config::wire::MAX_LABELS;
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
pub fn measurement(m: &Measurement) -> Result<(), (String, String)> {
    let at = |f: &str| f.to_string();
    id(&m.check).map_err(|w| (at("check"), w))?;
    in_range(m.ts).map_err(|w| (at("ts"), w))?;
    if let Some(d) = m.duration_seconds
        && (!d.is_finite() || !(0.0..=86_400.0).contains(&d))
    {
        return Err((
            at("duration_seconds"),
            format!("duration {d} must be a finite number of seconds in 0..86400"),
        ));
    }
    if m.ok && m.reason.is_some() {
        return Err((
            at("reason"),
            "a successful measurement has no failure reason".into(),
        ));
    }
    if m.phases.values().any(|v| !v.is_finite() || *v < 0.0) {
        return Err((
            at("phases"),
            "phase durations must be finite and non-negative".into(),
        ));
    }
    if let Some(v) = m
        .values
        .iter()
        .find(|v| !v.value.is_finite() || v.name.is_empty() || v.name.len() > MAX_ID)
    {
        return Err((
            at("values"),
            format!(
                "value {:?} must have a name of 1..{MAX_ID} bytes and a finite number",
                short(&v.name)
            ),
        ));
    }
    if let Some((i, v)) = m
        .values
        .iter()
        .enumerate()
        .find(|(_, v)| v.resource.as_ref().is_some_and(|r| r.len() > MAX_TEXT))
    {
        return Err((
            format!("values[{i}].resource"),
            format!(
                "resource of value {:?} is {} bytes; the limit is {MAX_TEXT}",
                short(&v.name),
                v.resource.as_ref().map_or(0, String::len)
            ),
        ));
    }
    if m.error.as_ref().is_some_and(|e| e.len() > MAX_TEXT) {
        return Err((
            at("error"),
            format!("error text longer than {MAX_TEXT} bytes"),
        ));
    }
    labels(m).map_err(|(f, why)| (format!("labels{f}"), why))
}

/// At most [`MAX_LABELS`] labels, each named 1..[`MAX_ID`] bytes with a value of at most
/// [`MAX_TEXT`] bytes; the field is `.name` of the label at fault.
fn labels(m: &Measurement) -> Result<(), (String, String)> {
    if m.labels.len() > MAX_LABELS {
        return Err((
            String::new(),
            format!("{} labels; the limit is {MAX_LABELS}", m.labels.len()),
        ));
    }
    for (k, v) in &m.labels {
        if k.is_empty() || k.len() > MAX_ID {
            return Err((
                String::new(),
                format!("label name {:?} must be 1..{MAX_ID} bytes", short(k)),
            ));
        }
        if v.len() > MAX_TEXT {
            return Err((
                format!(".{k}"),
                format!("label value is {} bytes; the limit is {MAX_TEXT}", v.len()),
            ));
        }
    }
    Ok(())
}

/// The start of a client's text, for an error message that must not echo megabytes.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_ID + 8).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
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
    fn labels_and_resources_have_a_size_limit_naming_the_field() {
        let m = |extra: serde_json::Value| {
            let mut m = serde_json::json!({"check": "c", "ts": NOW, "ok": true});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            batch_json(serde_json::json!({ "measurements": [m] }))
        };
        let at_limit = "x".repeat(MAX_TEXT);
        let ok = m(serde_json::json!({
            "labels": {"tls_version": "TLSv1.3", "address": at_limit},
            "values": [{"name": "used", "resource": at_limit, "value": 1.0}],
        }));
        assert!(batch(&ok, &limits()).is_ok());
        let over = "x".repeat(MAX_TEXT + 1);
        let long_value = m(serde_json::json!({"labels": {"address": over}}));
        assert_eq!(
            field(batch(&long_value, &limits())),
            (400, "measurements[0].labels.address".into())
        );
        // What was stored before this limit: a 4 MiB label value.
        let huge = m(serde_json::json!({"labels": {"address": "x".repeat(4 << 20)}}));
        let e = batch(&huge, &limits()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("measurements[0].labels.address"));
        assert!(
            e.reason.len() < 200,
            "the value is not echoed: {}",
            e.reason
        );
        let long_name = m(serde_json::json!({"labels": {"x".repeat(MAX_ID + 1): "v"}}));
        assert_eq!(
            field(batch(&long_name, &limits())),
            (400, "measurements[0].labels".into())
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), serde_json::json!("v")))
            .collect();
        let too_many = m(serde_json::json!({ "labels": many }));
        assert_eq!(
            field(batch(&too_many, &limits())),
            (400, "measurements[0].labels".into())
        );
        let resource = m(serde_json::json!({
            "values": [{"name": "a", "value": 1.0}, {"name": "used", "resource": over, "value": 1.0}],
        }));
        assert_eq!(
            field(batch(&resource, &limits())),
            (400, "measurements[0].values[1].resource".into())
        );
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
