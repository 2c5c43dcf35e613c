//! The durable log of late writes: which checks' minutes were written while they were
//! already more than [`LATE_MINUTES`] behind the collector's clock (late data, replayed
//! gaps, bulk loads, retention). A reader that persisted results of old minutes together
//! with a mark from [`mark`] asks [`changed`] after a restart whether any of them may have
//! changed since, instead of trusting an in-memory journal that a restart empties.
//!
//! Ingest logs **one row per group commit** ([`LateGroup`], `check_id` [`GROUP`]): the union
//! of the late minutes the group wrote and the sorted ids of the series it wrote them to
//! (delta varints in `series`). One row per check and batch, as before, wrote as many rows
//! as a backlog batch has checks, each into its own place of the check index: when a fleet
//! drains its spools after an outage (every batch late, one measurement per check), that was
//! one more indexed row per measurement and a fifth of the collector's CPU (perf, issue 20),
//! and the log grew as fast as the raw table. Bulk loads still log one row per
//! check, and retention one row for every check ([`ALL`]); rows of both kinds, and per-check
//! rows written by earlier versions, are read alike.
//!
//! Invariants:
//! - Rows are written inside the same transaction as the data they describe, so a
//!   committed late write always has its row, with a larger `seq` than any mark read before
//!   it committed (SQLite has one writer: commit order is `seq` order).
//! - A group row covers every late write of its group: its range is the union of their
//!   minutes and its series every series they wrote, so [`changed`] may answer "changed"
//!   for a minute of the union that was not written (conservative), never "unchanged" for
//!   one that was. A batch rolled back inside the group adds nothing to it.
//! - Pruning raises a floor kept in `meta` (`late_changes_floor`); a mark below it is
//!   answered "changed" (conservative, never a wrong "unchanged").
//! - Writes of recent minutes (within [`LATE_MINUTES`]) are not logged: readers only
//!   persist minutes older than twice that (the figures' closed minutes are two hours back).

use std::collections::HashSet;

use rusqlite::{OptionalExtension, Transaction, params};

use super::error::map_err;
use crate::store::StoreError;
pub(super) use crate::store::late::LateGroup;
use crate::store::late::holds_any;

/// Every check (retention): matches any check in [`changed`].
const ALL: &str = "*";

/// A group commit's row: the series it wrote late are in the `series` column.
const GROUP: &str = "#";

/// Logs the late writes of a group commit as one row (nothing when it wrote none late).
pub(super) fn log_group(tx: &Transaction<'_>, group: LateGroup) -> Result<(), StoreError> {
    let Some((from, to, logged, series)) = group.into_row() else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT INTO late_changes (check_id, from_minute, to_minute, logged_minute, series)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![GROUP, from, to, logged, series]))
    .map(|_| ())
    .map_err(map_err)
}

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
    let mut ids = tx
        .prepare_cached("SELECT id FROM series WHERE check_id = ?1")
        .map_err(map_err)?;
    let mut wanted = HashSet::new();
    for check in checks {
        let hit = stmt
            .query_row(params![mark, check, from, to], |_| Ok(()))
            .optional()
            .map_err(map_err)?;
        if hit.is_some() {
            return Ok(true);
        }
        let rows = ids
            .query_map([check], |r| r.get::<_, i64>(0))
            .map_err(map_err)?;
        for id in rows {
            wanted.insert(id.map_err(map_err)?);
        }
    }
    if wanted.is_empty() {
        return Ok(false);
    }
    let mut groups = tx
        .prepare_cached(
            "SELECT series FROM late_changes WHERE check_id = ?1 AND seq > ?2
             AND from_minute < ?4 AND to_minute > ?3",
        )
        .map_err(map_err)?;
    let mut rows = groups
        .query(params![GROUP, mark, from, to])
        .map_err(map_err)?;
    while let Some(row) = rows.next().map_err(map_err)? {
        let bytes: Option<Vec<u8>> = row.get(0).map_err(map_err)?;
        if holds_any(bytes.as_deref().unwrap_or_default(), &wanted)
            .map_err(|e| super::error::corrupt("late-write log", e))?
        {
            return Ok(true);
        }
    }
    Ok(false)
}
