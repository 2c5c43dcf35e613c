//! The durable log of late writes: which checks' minutes were written while they were
//! already more than [`LATE_MINUTES`] behind the collector's clock (late data, replayed
//! gaps, bulk loads, retention). A reader that persisted results of old minutes together
//! with a mark from [`mark`] asks [`changed`] after a restart whether any of them may have
//! changed since, instead of trusting an in-memory journal that a restart empties.
//!
//! Invariants:
//! - Rows are written inside the same transaction as the data they describe, so a
//!   committed late write always has its row, with a larger `seq` than any mark read before
//!   it committed (SQLite has one writer: commit order is `seq` order).
//! - Pruning raises a floor kept in `meta` (`late_changes_floor`); a mark below it is
//!   answered "changed" (conservative, never a wrong "unchanged").
//! - Writes of recent minutes (within [`LATE_MINUTES`]) are not logged: readers only
//!   persist minutes older than twice that (the figures' closed minutes are two hours back).

use rusqlite::{OptionalExtension, Transaction, params};

use super::error::map_err;
use crate::store::{IngestBatch, LATE_MINUTES, StoreError};

/// Every check (retention): matches any check in [`changed`].
const ALL: &str = "*";

/// Logs `[from, to)` of `check` (or [`ALL`]) as written at `now_minute`.
pub(super) fn log(
    tx: &Transaction<'_>,
    check: &str,
    from: i64,
    to: i64,
    now_minute: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO late_changes (check_id, from_minute, to_minute, logged_minute)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![check, from, to, now_minute]))
    .map(|_| ())
    .map_err(map_err)
}

/// Logs the checks of `batch` whose touched minutes reach further back than
/// [`LATE_MINUTES`] before its receipt.
pub(super) fn log_batch(tx: &Transaction<'_>, batch: &IngestBatch) -> Result<(), StoreError> {
    let now = batch.received_at.as_second().div_euclid(60);
    // The common case (nothing late) costs one pass over timestamps, no grouping by name.
    let earliest = batch
        .measurements
        .iter()
        .map(|m| m.ts)
        .chain(batch.gaps.iter().flat_map(|g| [g.from, g.to]))
        .min();
    if earliest.is_none_or(|t| t.as_second().div_euclid(60) >= now - LATE_MINUTES) {
        return Ok(());
    }
    for (check, (lo, hi)) in super::write::touched(batch) {
        if lo < now - LATE_MINUTES {
            log(tx, check, lo, hi.saturating_add(1), now)?;
        }
    }
    Ok(())
}

/// Logs retention (every check, minutes before `horizon`) and prunes rows logged before
/// `prune_before_minute`, raising the floor past them.
///
/// The retention rows of earlier passes are dropped without raising the floor: the new row
/// covers every check and reaches at least as far (its end is the furthest horizon logged
/// so far), so any mark they would answer "changed" for, it answers too. Raising the floor
/// for them instead made every result saved before the last pass untrusted after the next
/// one (a restart within the hour after a start read everything again).
pub(super) fn retention(
    tx: &Transaction<'_>,
    horizon: i64,
    now_minute: i64,
    prune_before_minute: i64,
) -> Result<(), StoreError> {
    let furthest: Option<i64> = tx
        .query_row(
            "SELECT max(to_minute) FROM late_changes WHERE check_id = ?1",
            [ALL],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    log(
        tx,
        ALL,
        i64::MIN,
        horizon.max(furthest.unwrap_or(i64::MIN)),
        now_minute,
    )?;
    tx.execute(
        "DELETE FROM late_changes WHERE check_id = ?1 AND seq < ?2",
        params![ALL, tx.last_insert_rowid()],
    )
    .map_err(map_err)?;
    let floor: Option<i64> = tx
        .query_row(
            "SELECT max(seq) FROM late_changes WHERE logged_minute < ?1 AND check_id <> ?2",
            params![prune_before_minute, ALL],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    if let Some(floor) = floor {
        tx.execute("DELETE FROM late_changes WHERE seq <= ?1", [floor])
            .map_err(map_err)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('late_changes_floor', ?1)
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [floor],
        )
        .map_err(map_err)?;
    }
    Ok(())
}

/// The newest logged change (0 when none).
pub(super) fn mark(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let seq: Option<i64> = tx
        .query_row("SELECT max(seq) FROM late_changes", [], |r| r.get(0))
        .map_err(map_err)?;
    let floor = super::read::read_meta(tx, "late_changes_floor")?.unwrap_or(0);
    Ok(seq.unwrap_or(0).max(floor).max(0) as u64)
}

/// Whether a late write to `checks` (or retention) in `[from, to)` was logged after `mark`.
pub(super) fn changed(
    tx: &Transaction<'_>,
    checks: &[String],
    mark: u64,
    from: i64,
    to: i64,
) -> Result<bool, StoreError> {
    let floor = super::read::read_meta(tx, "late_changes_floor")?.unwrap_or(0);
    let mark = i64::try_from(mark).unwrap_or(i64::MAX);
    if mark < floor {
        return Ok(true);
    }
    let mut stmt = tx
        .prepare_cached(
            "SELECT 1 FROM late_changes WHERE seq > ?1 AND (check_id = ?2 OR check_id = '*')
             AND from_minute < ?4 AND to_minute > ?3 LIMIT 1",
        )
        .map_err(map_err)?;
    for check in checks {
        let hit = stmt
            .query_row(params![mark, check, from, to], |_| Ok(()))
            .optional()
            .map_err(map_err)?;
        if hit.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
