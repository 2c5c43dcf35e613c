//! The durable log of late writes on PostgreSQL, as SQLite keeps it (`sqlite/late.rs`):
//! which series' minutes were written while already more than
//! [`LATE_MINUTES`](crate::store::LATE_MINUTES) behind the receipt of the batch that wrote
//! them (late data, replayed gaps), and retention (every series). The figures save their
//! closed minutes with a mark from [`mark`] and, after a restart, trust them only when
//! [`changed`] finds no write to them after that mark: without this log a restart on
//! PostgreSQL recomputed every service.
//!
//! Marks are `late_changes.seq` values. A sequence alone does not order commits (two
//! collectors, or two connections of one, may commit out of seq order), so:
//! - a commit that logs takes the shared advisory lock [`LOCK`] as its last step before
//!   committing, and only then draws its seq (the row's insert);
//! - [`mark`] takes the same lock exclusively in its own transaction, which waits for every
//!   logging commit in flight to finish, and reads the largest seq after that.
//!
//! Invariants:
//! - A committed late write has its row, committed in the same transaction, with a seq
//!   larger than every mark read before it committed (it drew its seq after any such mark
//!   released the lock, or the mark waited for its commit and saw it).
//! - Rows are only pruned with the floor (`late_changes_floor` in `meta`) raised past
//!   them; a mark at or below the floor is answered "changed".
//! - The shared lock is taken after every row lock of the commit, so a mark waiting for
//!   it never closes a cycle with row locks (no deadlock through the log).

use std::collections::HashSet;

use tokio_postgres::{Client, Transaction};

use super::TxError;
use crate::store::StoreError;
use crate::store::late::{LateGroup, holds_any};

/// Advisory lock key of the log and of the change journal's rows (`journal.rs`): "late"
/// in ASCII, beside the migration lock "attest".
pub(super) const LOCK: i64 = 0x0000_0000_6c61_7465;

/// Logs the late writes of a commit as one row, the last statements before its commit
/// (nothing when it wrote none late).
pub(super) async fn log(tx: &Transaction<'_>, group: LateGroup) -> Result<(), TxError> {
    let Some((from, to, logged, series)) = group.into_row() else {
        return Ok(());
    };
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&LOCK])
        .await?;
    tx.execute(
        "INSERT INTO late_changes (from_minute, to_minute, logged_minute, series)
         VALUES ($1, $2, $3, $4)",
        &[&from, &to, &logged, &series],
    )
    .await?;
    Ok(())
}

/// Logs retention (every series, minutes before `horizon`) in its own transaction, and
/// prunes rows logged before `prune_before_minute`, raising the floor past them. Earlier
/// retention rows are dropped without raising the floor: the new one covers every series
/// and reaches as far as any of them.
pub(super) async fn retention(
    client: &mut Client,
    horizon: i64,
    now_minute: i64,
    prune_before_minute: i64,
) -> Result<(), TxError> {
    let tx = client.transaction().await?;
    let furthest: Option<i64> = tx
        .query_one(
            "SELECT max(to_minute) FROM late_changes WHERE series IS NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&LOCK])
        .await?;
    let seq: i64 = tx
        .query_one(
            "INSERT INTO late_changes (from_minute, to_minute, logged_minute, series)
             VALUES ($1, $2, $3, NULL) RETURNING seq",
            &[
                &i64::MIN,
                &horizon.max(furthest.unwrap_or(i64::MIN)),
                &now_minute,
            ],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "DELETE FROM late_changes WHERE series IS NULL AND seq < $1",
        &[&seq],
    )
    .await?;
    let floor: Option<i64> = tx
        .query_one(
            "SELECT max(seq) FROM late_changes WHERE logged_minute < $1 AND series IS NOT NULL",
            &[&prune_before_minute],
        )
        .await?
        .try_get(0)?;
    if let Some(floor) = floor {
        tx.execute(
            "DELETE FROM late_changes WHERE seq <= $1 AND series IS NOT NULL",
            &[&floor],
        )
        .await?;
        tx.execute(
            "UPDATE meta SET value = greatest(value, $1) WHERE key = 'late_changes_floor'",
            &[&floor],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The newest logged change (0 when none): waits for the logging commits in flight.
pub(super) async fn mark(client: &mut Client) -> Result<u64, TxError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    let mark: i64 = tx
        .query_one(
            "SELECT greatest(coalesce((SELECT max(seq) FROM late_changes), 0),
                             (SELECT value FROM meta WHERE key = 'late_changes_floor'), 0)",
            &[],
        )
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(u64::try_from(mark).unwrap_or(0))
}

/// Whether a late write to the series of `checks` (or retention) in `[from, to)` was logged
/// after `mark`.
pub(super) async fn changed(
    client: &Client,
    checks: &[String],
    mark: u64,
    from: i64,
    to: i64,
) -> Result<bool, TxError> {
    let mark = i64::try_from(mark).unwrap_or(i64::MAX);
    let floor: i64 = client
        .query_one(
            "SELECT value FROM meta WHERE key = 'late_changes_floor'",
            &[],
        )
        .await?
        .try_get(0)?;
    if mark < floor {
        return Ok(true);
    }
    let rows = client
        .query(
            "SELECT series FROM late_changes
             WHERE seq > $1 AND from_minute < $3 AND to_minute > $2",
            &[&mark, &from, &to],
        )
        .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let wanted: HashSet<i64> = client
        .query("SELECT id FROM series WHERE check_id = ANY($1)", &[&checks])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for r in rows {
        let Some(series): Option<Vec<u8>> = r.try_get(0)? else {
            return Ok(true);
        };
        let holds = holds_any(&series, &wanted)
            .map_err(|e| StoreError::Backend(format!("late-write log: {e}")))?;
        if holds {
            return Ok(true);
        }
    }
    Ok(false)
}
