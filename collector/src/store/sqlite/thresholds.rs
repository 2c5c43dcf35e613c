//! Exact SLA inputs of the SQLite backend: the first time each service was configured, and
//! the exact latency-threshold counts (`ThresholdOver`): which thresholds are tracked per
//! check, and per minute, series and threshold the probes in the threshold's own histogram
//! bucket whose exact duration is over it.
//!
//! Invariants:
//! - A tracked threshold's counts are exact from its `exact_from_minute` on: the commit
//!   path counts every newly stored probe of the check (in the commit's transaction), and
//!   tracking recomputes the minutes whose raw measurements are all still kept.
//! - Rows exist only for a non-zero count, so the table stays tiny: only probes within one
//!   histogram bucket above a threshold (< 1 % of it) ever need one.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::blocks::{hour_of, read_blocks};
use super::error::map_err;
use super::read::{read_meta, series_of_checks};
use crate::minutes::ThresholdOver;
use crate::minutes::latency::{micros_of_seconds, over_in_threshold_bucket};
use crate::store::StoreError;
use crate::store::keys::{NS_PER_MINUTE, from_ns, minute_of, to_i64, to_u64, ts_ns};

/// Counts over thresholds, keyed `(series, threshold µs, minute)`.
pub(super) type OverCounts = BTreeMap<(i64, i64, i64), u64>;

/// Every tracked threshold, by check: what the commit path counts exactly. The writer keeps
/// it between commits ([`Tracked`]).
pub(super) fn all_tracked(tx: &Transaction<'_>) -> Result<HashMap<String, Vec<u64>>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT check_id, threshold_us FROM threshold")
        .map_err(map_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(map_err)?;
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for row in rows {
        let (check, t) = row.map_err(map_err)?;
        out.entry(check).or_default().push(to_u64(t));
    }
    Ok(out)
}

/// The writer's copy of the tracked thresholds, valid while the database's
/// `PRAGMA data_version` (which changes when another connection, such as a command-line
/// run tracking a threshold, commits) is the one it was read at, and until this process
/// tracks one itself ([`Tracked::clear`]). Read in the commit's transaction, so a threshold
/// tracked by another process is counted from the next commit on, as when every commit
/// read the table.
#[derive(Default)]
pub(super) struct Tracked {
    at: Option<(i64, HashMap<String, Vec<u64>>)>,
}

impl Tracked {
    pub(super) fn clear(&mut self) {
        self.at = None;
    }

    /// The tracked thresholds, read again when another connection committed since.
    pub(super) fn get(
        &mut self,
        tx: &Transaction<'_>,
    ) -> Result<&HashMap<String, Vec<u64>>, StoreError> {
        let version: i64 = tx
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(map_err)?;
        if self.at.as_ref().is_none_or(|(v, _)| *v != version) {
            self.at = Some((version, all_tracked(tx)?));
        }
        Ok(&self.at.get_or_insert_with(|| (version, HashMap::new())).1)
    }
}

/// Counts a newly stored successful probe of `duration_s` into `over` for every threshold
/// whose bucket it shares while exceeding it.
pub(super) fn count(
    over: &mut OverCounts,
    (series, minute): (i64, i64),
    duration_s: Option<f64>,
    thresholds: &[u64],
) {
    let Some(us) = duration_s.and_then(micros_of_seconds) else {
        return;
    };
    for &t in thresholds {
        if over_in_threshold_bucket(us, t) {
            *over.entry((series, to_i64(t), minute)).or_default() += 1;
        }
    }
}

/// Adds `over` to the stored counts.
pub(super) fn add(tx: &Transaction<'_>, over: &OverCounts) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO minute_over (series, threshold_us, minute, over) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (series, threshold_us, minute) DO UPDATE SET over = over + excluded.over",
        )
        .map_err(map_err)?;
    for (&(series, t, minute), &n) in over {
        stmt.execute(params![series, t, minute, to_i64(n)])
            .map_err(map_err)?;
    }
    Ok(())
}

/// Keeps the first instant each service was configured; later calls change nothing.
pub(super) fn note_configured(
    conn: &mut Connection,
    services: &[String],
    now: Timestamp,
) -> Result<(), StoreError> {
    let now = ts_ns(now)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO service_configured (service, first_ns) VALUES (?1, ?2)
                 ON CONFLICT (service) DO NOTHING",
            )
            .map_err(map_err)?;
        for s in services {
            stmt.execute(params![s, now]).map_err(map_err)?;
        }
    }
    tx.commit().map_err(map_err)
}

pub(super) fn first_configured(
    tx: &Transaction<'_>,
    service: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let ns: Option<i64> = tx
        .prepare_cached("SELECT first_ns FROM service_configured WHERE service = ?1")
        .and_then(|mut s| s.query_row([service], |r| r.get(0)).optional())
        .map_err(map_err)?;
    ns.map(from_ns).transpose()
}

/// Starts tracking `threshold_us` for `check` and recomputes its counts from the raw
/// measurements of the minutes whose raw rows are all kept, in one transaction (no commit
/// interleaves, so no probe is missed or counted twice).
pub(super) fn track(
    conn: &mut Connection,
    check: &str,
    threshold_us: u64,
) -> Result<(), StoreError> {
    let t = to_i64(threshold_us);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let known: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM threshold WHERE check_id = ?1 AND threshold_us = ?2")
        .and_then(|mut s| s.query_row(params![check, t], |r| r.get(0)).optional())
        .map_err(map_err)?;
    if known.is_some() {
        return tx.commit().map_err(map_err);
    }
    let exact_from = read_meta(&tx, "raw_horizon_minute")?.unwrap_or(i64::MIN);
    tx.execute(
        "INSERT INTO threshold (check_id, threshold_us, exact_from_minute) VALUES (?1, ?2, ?3)",
        params![check, t, exact_from],
    )
    .map_err(map_err)?;
    let series = series_of_checks(&tx, &[check.to_owned()])?;
    let mut over = OverCounts::new();
    {
        // Only durations near the threshold can share its bucket (buckets are < 1 % wide
        // there, and exact below 256 µs): the bounds just narrow the scan.
        let mut stmt = tx
            .prepare_cached(
                "SELECT ts_ns, series, duration_s FROM raw
                 WHERE ok = 1 AND duration_s >= ?1 AND duration_s <= ?2",
            )
            .map_err(map_err)?;
        let lo = threshold_us as f64 / 1e6;
        let hi = (threshold_us as f64 * 2.0 + 2.0) / 1e6;
        let rows = stmt
            .query_map(params![lo, hi], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            })
            .map_err(map_err)?;
        for row in rows {
            let (ns, id, d) = row.map_err(map_err)?;
            let minute = minute_of(ns);
            if series.contains_key(&id) && minute >= exact_from {
                count(&mut over, (id, minute), Some(d), &[threshold_us]);
            }
        }
        // Older hours are in raw blocks: the same filter over their measurements.
        let checks = series.iter().map(|(id, (c, _))| (*id, c.clone())).collect();
        let from_hour = hour_of(exact_from.saturating_mul(NS_PER_MINUTE));
        for (id, e) in read_blocks(&tx, &checks, (from_hour, i64::MAX), None)? {
            let minute = minute_of(e.ns);
            if let Some(d) = e.m.duration_seconds.filter(|d| *d >= lo && *d <= hi)
                && e.m.ok
                && minute >= exact_from
            {
                count(&mut over, (id, minute), Some(d), &[threshold_us]);
            }
        }
    }
    for id in series.keys() {
        tx.execute(
            "DELETE FROM minute_over WHERE series = ?1 AND threshold_us = ?2",
            params![id, t],
        )
        .map_err(map_err)?;
    }
    add(&tx, &over)?;
    tx.commit().map_err(map_err)
}

/// The raw horizon after raw rows before `raw_ns` were deleted: the first minute all of
/// whose raw rows are kept.
pub(super) fn raw_horizon_minute(raw_ns: i64) -> i64 {
    raw_ns.div_euclid(NS_PER_MINUTE) + i64::from(raw_ns.rem_euclid(NS_PER_MINUTE) != 0)
}

pub(super) fn threshold_over(
    tx: &Transaction<'_>,
    checks: &[String],
    threshold_us: u64,
    from_minute: i64,
    to_minute: i64,
) -> Result<ThresholdOver, StoreError> {
    let t = to_i64(threshold_us);
    let mut exact_from: Option<i64> = None;
    let mut stmt = tx
        .prepare_cached(
            "SELECT exact_from_minute FROM threshold WHERE check_id = ?1 AND threshold_us = ?2",
        )
        .map_err(map_err)?;
    for (i, check) in checks.iter().enumerate() {
        let f: Option<i64> = stmt
            .query_row(params![check, t], |r| r.get(0))
            .optional()
            .map_err(map_err)?;
        exact_from = match (i, f) {
            (_, None) => return Ok(untracked(threshold_us)),
            (0, Some(f)) => Some(f),
            (_, Some(f)) => exact_from.map(|e| e.max(f)),
        };
    }
    let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
    let mut stmt = tx
        .prepare_cached(
            "SELECT minute, over FROM minute_over
             WHERE series = ?1 AND threshold_us = ?2 AND minute >= ?3 AND minute < ?4",
        )
        .map_err(map_err)?;
    for id in series_of_checks(tx, checks)?.keys() {
        let rows = stmt
            .query_map(params![id, t, from_minute, to_minute], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(map_err)?;
        for row in rows {
            let (minute, n) = row.map_err(map_err)?;
            *per_minute.entry(minute).or_default() += to_u64(n);
        }
    }
    Ok(ThresholdOver {
        threshold_us,
        exact_from,
        over: per_minute.into_iter().collect(),
    })
}

fn untracked(threshold_us: u64) -> ThresholdOver {
    ThresholdOver {
        threshold_us,
        exact_from: None,
        over: Vec::new(),
    }
}
