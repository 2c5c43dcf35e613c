//! Raw measurements in blocks on PostgreSQL, as in SQLite (`store/block.rs` holds the
//! codec): compaction of raw rows into one `bytea` block per series and hour, the commit
//! path's check of late data against blocks, the reads that decode blocks and their
//! retention.
//!
//! Invariants:
//! - Compaction moves one hour per transaction (rows deleted and blocks written together),
//!   so a crash leaves rows or a block for every measurement, never both, never neither.
//! - The `raw_block_hour` meta row is above every hour that has a block. Compaction and the
//!   retention trim hold it `FOR UPDATE`; every commit holds it `FOR SHARE` for its whole
//!   transaction and checks a measurement of an hour before it against that hour's block.
//!   So a commit either finishes before a compaction reads the rows it moves, or starts
//!   after that compaction committed and sees its blocks: a measurement is never stored as
//!   a row once it is in a block, even by two collectors at once.
//! - Reads of rows and blocks run in one repeatable-read snapshot: a compaction committing
//!   between them cannot make a measurement appear twice or not at all.

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::{Client, GenericClient, Transaction};

use super::TxError;
use crate::store::block::{self, Stored};
use crate::store::keys::rebuild_measurement;

pub(super) const NS_PER_HOUR: i64 = 3_600_000_000_000;

pub(super) fn hour_of(ns: i64) -> i64 {
    ns.div_euclid(NS_PER_HOUR)
}

/// The instants held by the blocks of `keys` ((series, hour) pairs), by key.
pub(super) async fn blocked_instants(
    tx: &Transaction<'_>,
    keys: &[(i64, i64)],
) -> Result<HashMap<(i64, i64), HashSet<i64>>, TxError> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let series: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let hours: Vec<i64> = keys.iter().map(|k| k.1).collect();
    let rows = tx
        .query(
            "SELECT b.series, b.hour, b.data FROM raw_block b
             JOIN unnest($1::int8[], $2::int8[]) AS k(series, hour)
               ON b.series = k.series AND b.hour = k.hour",
            &[&series, &hours],
        )
        .await?;
    for r in rows {
        let data: &[u8] = r.try_get(2)?;
        let instants: HashSet<i64> = block::instants(data)?.into_iter().collect();
        out.insert((r.try_get(0)?, r.try_get(1)?), instants);
    }
    Ok(out)
}

/// Compacts the raw rows of the earliest hour before `before_hour` that has rows into
/// blocks, in one transaction; returns the rows moved, or `None` when no hour is left.
pub(super) async fn compact_one_hour(
    client: &mut Client,
    before_hour: i64,
) -> Result<Option<u64>, TxError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT value FROM meta WHERE key = 'raw_block_hour' FOR UPDATE",
        &[],
    )
    .await?;
    let first: Option<i64> = tx
        .query_one("SELECT min(ts_ns) FROM raw", &[])
        .await?
        .try_get(0)?;
    let Some(hour) = first.map(hour_of).filter(|h| *h < before_hour) else {
        tx.commit().await?;
        return Ok(None);
    };
    let (lo, hi) = (hour * NS_PER_HOUR, (hour + 1) * NS_PER_HOUR);
    let by_series = rows_between(&tx, lo, hi).await?;
    let ids: Vec<i64> = by_series.keys().copied().collect();
    let mut existing: HashMap<i64, Vec<u8>> = HashMap::new();
    for r in tx
        .query(
            "SELECT series, data FROM raw_block WHERE hour = $1 AND series = ANY($2)",
            &[&hour, &ids],
        )
        .await?
    {
        existing.insert(r.try_get(0)?, r.try_get(1)?);
    }
    let mut moved = 0u64;
    let mut cols = BlockColumns::default();
    for (series, (check, rows)) in by_series {
        moved += rows.len() as u64;
        let mut entries = match existing.get(&series) {
            Some(data) => block::decode(data, &check)?,
            None => Vec::new(),
        };
        let have: HashSet<i64> = entries.iter().map(|e| e.ns).collect();
        entries.extend(rows.into_iter().filter(|r| !have.contains(&r.ns)));
        cols.push(series, hour, entries)?;
    }
    cols.write(&tx).await?;
    tx.execute(
        "DELETE FROM raw WHERE ts_ns >= $1 AND ts_ns < $2",
        &[&lo, &hi],
    )
    .await?;
    tx.execute(
        "UPDATE meta SET value = greatest(value, $1) WHERE key = 'raw_block_hour'",
        &[&(hour + 1)],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(moved))
}

/// Raw rows with instants in `[lo, hi)`, by series: (check, entries).
async fn rows_between(
    tx: &Transaction<'_>,
    lo: i64,
    hi: i64,
) -> Result<BTreeMap<i64, (String, Vec<Stored>)>, TxError> {
    let rows = tx
        .query(
            "SELECT r.series, s.check_id, r.ts_ns, r.ok, r.duration_s, r.reason, r.extra, r.seq
             FROM raw r JOIN series s ON s.id = r.series
             WHERE r.ts_ns >= $1 AND r.ts_ns < $2",
            &[&lo, &hi],
        )
        .await?;
    let mut out: BTreeMap<i64, (String, Vec<Stored>)> = BTreeMap::new();
    for r in &rows {
        let series: i64 = r.try_get(0)?;
        let check: String = r.try_get(1)?;
        let ns: i64 = r.try_get(2)?;
        let reason: Option<i16> = r.try_get(5)?;
        let m = rebuild_measurement(
            &check,
            ns,
            r.try_get(3)?,
            r.try_get(4)?,
            reason.map(|c| u64::try_from(c).unwrap_or(u64::MAX)),
            r.try_get(6)?,
        )?;
        out.entry(series)
            .or_insert_with(|| (check, Vec::new()))
            .1
            .push(Stored {
                ns,
                seq: r.try_get(7)?,
                m,
            });
    }
    Ok(out)
}

/// Blocks to write, as `unnest` arrays; an empty entry list deletes its block.
#[derive(Default)]
struct BlockColumns {
    series: Vec<i64>,
    hour: Vec<i64>,
    count: Vec<i64>,
    seq_lo: Vec<Option<i64>>,
    seq_hi: Vec<Option<i64>>,
    data: Vec<Vec<u8>>,
    gone: Vec<(i64, i64)>,
}

impl BlockColumns {
    fn push(&mut self, series: i64, hour: i64, entries: Vec<Stored>) -> Result<(), TxError> {
        if entries.is_empty() {
            self.gone.push((series, hour));
            return Ok(());
        }
        let seqs = entries.iter().filter_map(|e| e.seq);
        self.seq_lo.push(seqs.clone().min());
        self.seq_hi.push(seqs.max());
        self.series.push(series);
        self.hour.push(hour);
        self.count.push(entries.len() as i64);
        self.data.push(block::encode(entries)?);
        Ok(())
    }

    async fn write(self, tx: &Transaction<'_>) -> Result<(), TxError> {
        if !self.series.is_empty() {
            tx.execute(
                "INSERT INTO raw_block (series, hour, count, seq_lo, seq_hi, data)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[],
                                      $5::int8[], $6::bytea[])
                 ON CONFLICT (series, hour) DO UPDATE SET count = excluded.count,
                   seq_lo = excluded.seq_lo, seq_hi = excluded.seq_hi, data = excluded.data",
                &[
                    &self.series,
                    &self.hour,
                    &self.count,
                    &self.seq_lo,
                    &self.seq_hi,
                    &self.data,
                ],
            )
            .await?;
        }
        for (series, hour) in self.gone {
            tx.execute(
                "DELETE FROM raw_block WHERE series = $1 AND hour = $2",
                &[&series, &hour],
            )
            .await?;
        }
        Ok(())
    }
}

/// Entries of the blocks of `series` (id → check) in hours `[from_hour, to_hour]` whose seq
/// range may hold `seq` (any when `None`), with their series.
pub(super) async fn read_blocks<C: GenericClient>(
    client: &C,
    series: &HashMap<i64, String>,
    (from_hour, to_hour): (i64, i64),
    seq: Option<i64>,
) -> Result<Vec<(i64, Stored)>, TxError> {
    let ids: Vec<i64> = series.keys().copied().collect();
    let rows = client
        .query(
            "SELECT series, data FROM raw_block
             WHERE series = ANY($1) AND hour >= $2 AND hour <= $3
               AND ($4::int8 IS NULL OR (seq_lo <= $4 AND seq_hi >= $4))",
            &[&ids, &from_hour, &to_hour, &seq],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let data: &[u8] = r.try_get(1)?;
        let Some(check) = series.get(&id) else {
            continue;
        };
        out.extend(block::decode(data, check)?.into_iter().map(|e| (id, e)));
    }
    Ok(out)
}

/// Retention of blocks: blocks of hours before the one `raw_ns` falls in go; the blocks of
/// that hour keep only instants from `raw_ns` on. One transaction holding the compaction
/// lock, so it never races a compaction of the same blocks.
pub(super) async fn delete_expired(client: &mut Client, raw_ns: i64) -> Result<u64, TxError> {
    let hour = hour_of(raw_ns);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT value FROM meta WHERE key = 'raw_block_hour' FOR UPDATE",
        &[],
    )
    .await?;
    let mut deleted = tx
        .execute("DELETE FROM raw_block WHERE hour < $1", &[&hour])
        .await?;
    if raw_ns != hour * NS_PER_HOUR {
        let rows = tx
            .query(
                "SELECT b.series, s.check_id, b.data FROM raw_block b
                 JOIN series s ON s.id = b.series WHERE b.hour = $1",
                &[&hour],
            )
            .await?;
        let mut cols = BlockColumns::default();
        for r in &rows {
            let check: &str = r.try_get(1)?;
            let data: &[u8] = r.try_get(2)?;
            let all = block::decode(data, check)?;
            let before = all.len();
            let kept: Vec<Stored> = all.into_iter().filter(|e| e.ns >= raw_ns).collect();
            deleted += (before - kept.len()) as u64;
            if kept.len() != before {
                cols.push(r.try_get(0)?, hour, kept)?;
            }
        }
        cols.write(&tx).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}
