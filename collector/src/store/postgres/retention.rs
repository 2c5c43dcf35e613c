//! Retention of the PostgreSQL store: deletes what expired in bounded chunks, each chunk
//! one statement in its own short transaction, so that a large delete holds no lock that
//! ingest waits on and no transaction that runs for minutes.
//!
//! Invariants:
//! - The horizons are raised first, in one short transaction. Updating the rollup-horizon
//!   row waits for the commits in flight (each share-locks it) and every later commit reads
//!   the new value, so once that transaction committed no commit writes a minute behind the
//!   horizon: the rows behind it are deleted afterwards without any lock ingest needs.
//! - The raw horizon is raised before raw rows go: a threshold tracked meanwhile starts its
//!   exact counts at a minute whose raw rows this pass keeps.
//! - What goes is what the single-transaction delete removed: raw rows before `raw_ns`;
//!   rollups, host minutes, threshold counts before the horizon; gaps ending before it;
//!   batch rows received before [`batches_before`]. Per-agent totals are not touched.
//! - Every chunk is idempotent: a pass that stops midway (error, kill) leaves only rows the
//!   next pass deletes. A table is done when a chunk finds nothing left, so two collectors
//!   running retention at once both finish with everything deleted.

use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::{TxError, thresholds};
use crate::store::keys::{batches_before, minute_of};

/// How a retention pass cuts its deletes.
#[derive(Clone)]
pub struct Chunks {
    /// Rows deleted per statement at most.
    pub rows: i64,
    /// Series per statement on the tables keyed by series first (their primary key leads
    /// with the series, so a statement over a few series walks only their old rows).
    pub series: usize,
    /// Called after every chunk (tests pause a pass here); `None` in the product.
    pub after_chunk: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for Chunks {
    /// Small enough that a chunk commits in tens of milliseconds on a modest server.
    fn default() -> Self {
        Chunks {
            rows: 5_000,
            series: 256,
            after_chunk: None,
        }
    }
}

/// Tables keyed by series first, and which of their rows expire: `$2` is the raw cut-off
/// (ns) for `raw`, else the rollup horizon (minute).
const BY_SERIES: [(&str, &str, Bound); 4] = [
    ("raw", "ts_ns < $2", Bound::Raw),
    ("minute_rollup", "minute < $2", Bound::Horizon),
    ("minute_over", "minute < $2", Bound::Horizon),
    ("gaps", "to_minute < $2", Bound::Horizon),
];

#[derive(Clone, Copy)]
enum Bound {
    Raw,
    Horizon,
}

/// Deletes what retention expired (see the module header); returns the rows deleted.
pub(super) async fn delete_expired(
    client: &mut Client,
    raw_ns: i64,
    roll_ns: i64,
    chunks: &Chunks,
) -> Result<u64, TxError> {
    let horizon = raise_horizons(client, raw_ns, roll_ns).await?;
    // Logged before the deletes and again after them: a mark taken while they run is
    // answered "changed" by the second row (`late.rs`).
    let raw_minute = minute_of(raw_ns);
    super::late::retention(client, horizon, raw_minute, raw_minute).await?;
    super::journal::log_all(client, (i64::MIN, horizon), raw_minute).await?;
    // Whole days behind the cut-offs go as partitions; the rest row by row below.
    for (table, _, per_day) in super::partitions::TABLES {
        let cut = match table {
            "raw" => raw_ns,
            "raw_block" => raw_ns.div_euclid(super::blocks::NS_PER_HOUR),
            _ => horizon,
        };
        super::partitions::drop_before(client, table, per_day, cut).await?;
    }
    let series: Vec<i64> = client
        .query("SELECT id FROM series ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut deleted = 0;
    for group in series.chunks(chunks.series.max(1)) {
        let ids = group.to_vec();
        for (table, expired, bound) in BY_SERIES {
            let cut = match bound {
                Bound::Raw => raw_ns,
                Bound::Horizon => horizon,
            };
            // The outer condition repeats the inner one: on a partitioned table a ctid is
            // unique only within its partition, so a row of another partition with the same
            // ctid must not go unless it expired too.
            let sql = format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM {table} WHERE series = ANY($1) AND {expired} LIMIT $3))
                 AND series = ANY($1) AND {expired}"
            );
            deleted += until_done(client, &sql, &[&ids, &cut, &chunks.rows], chunks).await?;
        }
    }
    for (table, column, cut) in [
        ("host_minute", "minute", horizon),
        ("batches", "received_ns", batches_before(roll_ns)),
    ] {
        let sql = format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM {table} WHERE {column} < $1 ORDER BY {column} LIMIT $2))"
        );
        deleted += until_done(client, &sql, &[&cut, &chunks.rows], chunks).await?;
    }
    deleted += super::blocks::delete_expired(client, raw_ns).await?;
    super::late::retention(client, horizon, raw_minute, raw_minute).await?;
    super::journal::log_all(client, (i64::MIN, horizon), raw_minute).await?;
    Ok(deleted)
}

/// Raises the rollup horizon to the minute of `roll_ns` and the raw horizon to the first
/// minute kept whole by `raw_ns` (neither ever goes back); answers the rollup horizon.
async fn raise_horizons(client: &mut Client, raw_ns: i64, roll_ns: i64) -> Result<i64, TxError> {
    let tx = client.transaction().await?;
    let horizon: i64 = tx
        .query_one(
            "UPDATE meta SET value = greatest(value, $1)
             WHERE key = 'rollup_horizon_minute' RETURNING value",
            &[&minute_of(roll_ns)],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('raw_horizon_minute', $1)
         ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value, excluded.value)",
        &[&thresholds::raw_horizon_minute(raw_ns)],
    )
    .await?;
    tx.commit().await?;
    Ok(horizon)
}

/// Runs the chunk statement `sql` until a run deletes nothing; answers the rows deleted.
async fn until_done(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    chunks: &Chunks,
) -> Result<u64, TxError> {
    let statement = client.prepare(sql).await?;
    let mut total = 0;
    loop {
        let n = client.execute(&statement, params).await?;
        if let Some(pause) = &chunks.after_chunk {
            pause();
        }
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}
