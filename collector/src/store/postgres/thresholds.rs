//! Exact SLA inputs of the PostgreSQL backend (same design as SQLite's `thresholds.rs`):
//! the first time each service was configured, and the exact latency-threshold counts.
//!
//! Invariants:
//! - Tracking a threshold locks the rollup-horizon row `FOR UPDATE`, which every commit
//!   share-locks: commits in flight finish first, later ones see the new threshold row, so
//!   the recompute from raw and the commits never miss or double-count a probe.
//! - Rows exist only for non-zero counts; they are added in key order (deadlocks retry).

use std::collections::{BTreeMap, HashMap};

use attest_config::wire::Measurement;
use jiff::Timestamp;
use tokio_postgres::{Client, Transaction};

use super::TxError;
use super::blocks::{hour_of, read_blocks};
use crate::minutes::ThresholdOver;
use crate::minutes::latency::{micros_of_seconds, over_in_threshold_bucket};
use crate::store::keys::{NS_PER_MINUTE, from_ns, minute_of, to_i64, to_u64, ts_ns};

/// Counts over thresholds, keyed `(series, threshold µs, minute)`.
pub(super) type OverCounts = BTreeMap<(i64, i64, i64), i64>;

/// The thresholds tracked for `checks`.
pub(super) async fn tracked(
    tx: &Transaction<'_>,
    checks: &[&str],
) -> Result<HashMap<String, Vec<u64>>, TxError> {
    let rows = tx
        .query(
            "SELECT check_id, threshold_us FROM threshold WHERE check_id = ANY($1)",
            &[&checks],
        )
        .await?;
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for r in rows {
        let (check, t): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        out.entry(check).or_default().push(to_u64(t));
    }
    Ok(out)
}

/// Counts a newly stored probe into `over` for every tracked threshold whose bucket it
/// shares while exceeding it.
pub(super) fn count(
    over: &mut OverCounts,
    (series, minute): (i64, i64),
    m: &Measurement,
    ts: &[u64],
) {
    let Some(us) = m
        .duration_seconds
        .filter(|_| m.ok)
        .and_then(micros_of_seconds)
    else {
        return;
    };
    for &t in ts {
        if over_in_threshold_bucket(us, t) {
            *over.entry((series, to_i64(t), minute)).or_default() += 1;
        }
    }
}

/// Adds `over` to the stored counts, in key order.
pub(super) async fn add(tx: &Transaction<'_>, over: &OverCounts) -> Result<(), TxError> {
    if over.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&(i64, i64, i64)) -> i64| over.keys().map(f).collect::<Vec<i64>>();
    let (series, ts, minutes) = (col(|k| k.0), col(|k| k.1), col(|k| k.2));
    let counts: Vec<i64> = over.values().copied().collect();
    tx.execute(
        "INSERT INTO minute_over (series, threshold_us, minute, over)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])
         ON CONFLICT (series, threshold_us, minute) DO UPDATE
           SET over = minute_over.over + excluded.over",
        &[&series, &ts, &minutes, &counts],
    )
    .await?;
    Ok(())
}

pub(super) async fn note_configured(
    client: &mut Client,
    services: &[String],
    now: Timestamp,
) -> Result<(), TxError> {
    let now = ts_ns(now)?;
    client
        .execute(
            "INSERT INTO service_configured (service, first_ns)
             SELECT s, $2 FROM unnest($1::text[]) AS s ORDER BY s ON CONFLICT DO NOTHING",
            &[&services, &now],
        )
        .await?;
    Ok(())
}

pub(super) async fn first_configured(
    client: &mut Client,
    service: &str,
) -> Result<Option<Timestamp>, TxError> {
    let row = client
        .query_opt(
            "SELECT first_ns FROM service_configured WHERE service = $1",
            &[&service],
        )
        .await?;
    match row {
        Some(r) => Ok(Some(from_ns(r.try_get(0)?)?)),
        None => Ok(None),
    }
}

/// Starts tracking `threshold_us` for `check`, recomputing its counts from the raw rows of
/// the minutes whose raw rows are all kept; one transaction.
pub(super) async fn track(
    client: &mut Client,
    check: &str,
    threshold_us: u64,
) -> Result<(), TxError> {
    let t = to_i64(threshold_us);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT value FROM meta WHERE key = 'rollup_horizon_minute' FOR UPDATE",
        &[],
    )
    .await?;
    let known = tx
        .query_opt(
            "SELECT 1 FROM threshold WHERE check_id = $1 AND threshold_us = $2",
            &[&check, &t],
        )
        .await?;
    if known.is_some() {
        tx.commit().await?;
        return Ok(());
    }
    let exact_from: i64 = match tx
        .query_opt(
            "SELECT value FROM meta WHERE key = 'raw_horizon_minute'",
            &[],
        )
        .await?
    {
        Some(r) => r.try_get(0)?,
        None => i64::MIN,
    };
    tx.execute(
        "INSERT INTO threshold (check_id, threshold_us, exact_from_minute) VALUES ($1, $2, $3)",
        &[&check, &t, &exact_from],
    )
    .await?;
    tx.execute(
        "DELETE FROM minute_over WHERE threshold_us = $2
           AND series IN (SELECT id FROM series WHERE check_id = $1)",
        &[&check, &t],
    )
    .await?;
    // Only durations near the threshold can share its bucket: the bounds narrow the scan.
    let lo = threshold_us as f64 / 1e6;
    let hi = (threshold_us as f64 * 2.0 + 2.0) / 1e6;
    let rows = tx
        .query(
            "SELECT r.series, r.ts_ns, r.duration_s FROM raw r JOIN series s ON s.id = r.series
             WHERE s.check_id = $1 AND r.ok AND r.duration_s >= $2 AND r.duration_s <= $3",
            &[&check, &lo, &hi],
        )
        .await?;
    let mut over = OverCounts::new();
    for r in rows {
        let (series, ns, d): (i64, i64, f64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        let minute = minute_of(ns);
        let Some(us) = micros_of_seconds(d) else {
            continue;
        };
        if minute >= exact_from && over_in_threshold_bucket(us, threshold_us) {
            *over.entry((series, t, minute)).or_default() += 1;
        }
    }
    // Older hours are in raw blocks: the same filter over their measurements.
    let series: HashMap<i64, String> = tx
        .query(
            "SELECT id, check_id FROM series WHERE check_id = $1",
            &[&check],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, TxError>>()?;
    let from_hour = hour_of(exact_from.saturating_mul(NS_PER_MINUTE));
    for (id, e) in read_blocks(&tx, &series, (from_hour, i64::MAX), None).await? {
        let minute = minute_of(e.ns);
        let Some(us) =
            e.m.duration_seconds
                .filter(|d| e.m.ok && *d >= lo && *d <= hi)
                .and_then(micros_of_seconds)
        else {
            continue;
        };
        if minute >= exact_from && over_in_threshold_bucket(us, threshold_us) {
            *over.entry((id, t, minute)).or_default() += 1;
        }
    }
    add(&tx, &over).await?;
    tx.commit().await?;
    Ok(())
}

/// The first minute all of whose raw rows are kept after rows before `raw_ns` went.
pub(super) fn raw_horizon_minute(raw_ns: i64) -> i64 {
    raw_ns.div_euclid(NS_PER_MINUTE) + i64::from(raw_ns.rem_euclid(NS_PER_MINUTE) != 0)
}

pub(super) async fn threshold_over(
    client: &mut Client,
    checks: &[String],
    threshold_us: u64,
    (from_minute, to_minute): (i64, i64),
) -> Result<ThresholdOver, TxError> {
    let t = to_i64(threshold_us);
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut unique: Vec<&String> = checks.iter().collect();
    unique.sort_unstable();
    unique.dedup();
    let row = tx
        .query_one(
            "SELECT count(*), max(exact_from_minute) FROM threshold
             WHERE check_id = ANY($1) AND threshold_us = $2",
            &[&unique, &t],
        )
        .await?;
    let (tracked, max_from): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    let exact_from = max_from.filter(|_| tracked as usize == unique.len());
    let rows = tx
        .query(
            "SELECT o.minute, sum(o.over)::int8 FROM minute_over o JOIN series s ON s.id = o.series
             WHERE s.check_id = ANY($1) AND o.threshold_us = $2
               AND o.minute >= $3 AND o.minute < $4
             GROUP BY o.minute ORDER BY o.minute",
            &[&unique, &t, &from_minute, &to_minute],
        )
        .await?;
    let mut over = Vec::with_capacity(rows.len());
    for r in rows {
        let (m, n): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        over.push((m, to_u64(n)));
    }
    tx.commit().await?;
    Ok(ThresholdOver {
        threshold_us,
        exact_from: exact_from.filter(|_| !unique.is_empty()),
        over,
    })
}
