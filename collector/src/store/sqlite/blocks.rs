//! Raw measurements in blocks: compaction of raw rows older than the recent hours into one
//! lossless block per series and hour (`store::block`), the reads that decode blocks, and
//! their retention.
//!
//! Invariants:
//! - Compaction moves one hour per transaction: the hour's rows are deleted and its blocks
//!   written (merged with a block already there) in the same transaction, so a crash leaves
//!   rows or a block for every measurement, never both and never neither.
//! - `raw_block_hour` (meta, and the writer's copy) is above every hour that has a block.
//!   The writer checks a measurement of an earlier hour against that hour's block before
//!   inserting its row, so a measurement already in a block is a duplicate, as one already
//!   in a row is; the row of a new one (late data) is merged into the block by the next
//!   compaction. Reads merge rows and blocks; no instant is in both.
//! - Retention deletes whole blocks before the cut-off hour and trims the block of the
//!   hour the cut-off falls in.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::map_err;
use super::read::read_meta;
use crate::store::StoreError;
use crate::store::block::{self, Stored};
use crate::store::keys::{rebuild_measurement, to_u64};

pub(super) const NS_PER_HOUR: i64 = 3_600_000_000_000;

/// The hour key of an instant in stored nanoseconds.
pub(super) fn hour_of(ns: i64) -> i64 {
    ns.div_euclid(NS_PER_HOUR)
}

/// The hour before which compaction has run (every hour with a block is below it).
pub(super) fn blocked_hour(conn: &Connection) -> Result<i64, StoreError> {
    Ok(read_meta(conn, "raw_block_hour")?.unwrap_or(i64::MIN))
}

/// Instants already in the blocks the writer checked in this transaction, by (series, hour).
#[derive(Default)]
pub(super) struct BlockedInstants {
    seen: HashMap<(i64, i64), HashSet<i64>>,
}

impl BlockedInstants {
    /// Whether the block of (`series`, hour of `ns`) holds instant `ns`.
    pub(super) fn contains(
        &mut self,
        tx: &Transaction<'_>,
        series: i64,
        ns: i64,
    ) -> Result<bool, StoreError> {
        let key = (series, hour_of(ns));
        let instants = match self.seen.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let data = block_of(tx, key.0, key.1)?;
                v.insert(match data {
                    Some(d) => block::instants(&d)?.into_iter().collect(),
                    None => HashSet::new(),
                })
            }
        };
        Ok(instants.contains(&ns))
    }
}

/// Compacts the raw rows of the earliest hour before `before_hour` that has rows (late data
/// into an hour already compacted included) into blocks; one transaction. Returns the rows
/// moved and the hour, or `None` when no such hour is left.
pub(super) fn compact_one_hour(
    conn: &mut Connection,
    before_hour: i64,
) -> Result<Option<(u64, i64)>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let first: Option<i64> = tx
        .query_row("SELECT min(ts_ns) FROM raw", [], |r| r.get(0))
        .map_err(map_err)?;
    let Some(hour) = first.map(hour_of).filter(|h| *h < before_hour) else {
        return Ok(None);
    };
    let (lo, hi) = (hour * NS_PER_HOUR, (hour + 1) * NS_PER_HOUR);
    let by_series = rows_between(&tx, lo, hi)?;
    let mut moved = 0u64;
    for (series, (check, rows)) in by_series {
        moved += rows.len() as u64;
        let mut entries = match block_of(&tx, series, hour)? {
            Some(data) => block::decode(&data, &check)?,
            None => Vec::new(),
        };
        let have: HashSet<i64> = entries.iter().map(|e| e.ns).collect();
        entries.extend(rows.into_iter().filter(|r| !have.contains(&r.ns)));
        write_block(&tx, series, hour, entries)?;
    }
    tx.execute(
        "DELETE FROM raw WHERE ts_ns >= ?1 AND ts_ns < ?2",
        params![lo, hi],
    )
    .map_err(map_err)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('raw_block_hour', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [hour + 1],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)?;
    Ok(Some((moved, hour)))
}

/// Raw rows with instants in `[lo, hi)`, by series: (check, entries).
fn rows_between(
    tx: &Transaction<'_>,
    lo: i64,
    hi: i64,
) -> Result<BTreeMap<i64, (String, Vec<Stored>)>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT r.series, s.check_id, r.ts_ns, r.ok, r.duration_s, r.reason, r.extra, r.seq
             FROM raw r CROSS JOIN series s ON s.id = r.series
             WHERE r.ts_ns >= ?1 AND r.ts_ns < ?2",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query(params![lo, hi]).map_err(map_err)?;
    let mut out: BTreeMap<i64, (String, Vec<Stored>)> = BTreeMap::new();
    while let Some(r) = rows.next().map_err(map_err)? {
        let series: i64 = r.get(0).map_err(map_err)?;
        let check: String = r.get(1).map_err(map_err)?;
        let ns: i64 = r.get(2).map_err(map_err)?;
        let reason: Option<i64> = r.get(5).map_err(map_err)?;
        let extra: Option<Vec<u8>> = r.get(6).map_err(map_err)?;
        let m = rebuild_measurement(
            &check,
            ns,
            r.get(3).map_err(map_err)?,
            r.get(4).map_err(map_err)?,
            reason.map(to_u64),
            extra.as_deref(),
        )?;
        let seq: Option<i64> = r.get(7).map_err(map_err)?;
        out.entry(series)
            .or_insert_with(|| (check, Vec::new()))
            .1
            .push(Stored { ns, seq, m });
    }
    Ok(out)
}

fn block_of(tx: &Transaction<'_>, series: i64, hour: i64) -> Result<Option<Vec<u8>>, StoreError> {
    tx.prepare_cached("SELECT data FROM raw_block WHERE series = ?1 AND hour = ?2")
        .and_then(|mut s| s.query_row(params![series, hour], |r| r.get(0)).optional())
        .map_err(map_err)
}

/// Writes (or replaces) the block of (`series`, `hour`); deletes it when `entries` is empty.
fn write_block(
    tx: &Transaction<'_>,
    series: i64,
    hour: i64,
    entries: Vec<Stored>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        tx.prepare_cached("DELETE FROM raw_block WHERE series = ?1 AND hour = ?2")
            .and_then(|mut s| s.execute(params![series, hour]))
            .map_err(map_err)?;
        return Ok(());
    }
    let seqs = entries.iter().filter_map(|e| e.seq);
    let (lo, hi) = (seqs.clone().min(), seqs.max());
    let count = entries.len() as i64;
    let data = block::encode(entries)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO raw_block (series, hour, count, seq_lo, seq_hi, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| s.execute(params![series, hour, count, lo, hi, data]))
    .map_err(map_err)?;
    Ok(())
}

/// Entries of the blocks of `series` (id → check) in hours `[from_hour, to_hour]` whose
/// seq range may hold `seq` (any when `None`), by series.
pub(super) fn read_blocks(
    tx: &Transaction<'_>,
    series: &HashMap<i64, String>,
    (from_hour, to_hour): (i64, i64),
    seq: Option<i64>,
) -> Result<Vec<(i64, Stored)>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT data FROM raw_block WHERE series = ?1 AND hour >= ?2 AND hour <= ?3
             AND (?4 IS NULL OR (seq_lo <= ?4 AND seq_hi >= ?4)) ORDER BY hour",
        )
        .map_err(map_err)?;
    let mut out = Vec::new();
    for (&id, check) in series {
        let mut rows = stmt
            .query(params![id, from_hour, to_hour, seq])
            .map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            let data: Vec<u8> = r.get(0).map_err(map_err)?;
            out.extend(block::decode(&data, check)?.into_iter().map(|e| (id, e)));
        }
    }
    Ok(out)
}

/// Retention of blocks: every block of an hour before the one `raw_ns` falls in goes; the
/// blocks of that hour keep only instants from `raw_ns` on.
pub(super) fn delete_expired(tx: &Transaction<'_>, raw_ns: i64) -> Result<(), StoreError> {
    let hour = hour_of(raw_ns);
    tx.execute("DELETE FROM raw_block WHERE hour < ?1", [hour])
        .map_err(map_err)?;
    if raw_ns == hour * NS_PER_HOUR {
        return Ok(());
    }
    let blocks: Vec<(i64, String, Vec<u8>)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT b.series, s.check_id, b.data FROM raw_block b
                 JOIN series s ON s.id = b.series WHERE b.hour = ?1",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map([hour], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    for (series, check, data) in blocks {
        let kept: Vec<Stored> = block::decode(&data, &check)?
            .into_iter()
            .filter(|e| e.ns >= raw_ns)
            .collect();
        write_block(tx, series, hour, kept)?;
    }
    Ok(())
}
