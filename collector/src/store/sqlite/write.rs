//! The commit path: one `IMMEDIATE` transaction per group of batches (`group`) that interns
//! names, inserts raw rows, merges only the newly inserted measurements into the minute
//! rollups, and logs the group's late writes once.
//!
//! Invariants:
//! - Only measurements whose raw row was newly inserted update rollups (and the exact
//!   latency-threshold counts), so a measurement counts once however often it is sent.
//! - Measurements and gaps of minutes behind the rollup horizon are skipped (reported as
//!   duplicates): they were stored once and retention has since deleted their minute.
//! - Id caches are only trusted after a commit; the caller clears them after any failure.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};

use attest_config::wire::{Measurement, SpoolStatus};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSql, ValueRef};
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter,
};

use super::blocks::{BlockedInstants, hour_of};
use super::error::{corrupt, map_err};
use super::late::LateGroup;
use super::thresholds;
use crate::store::codec::Reader;
use crate::store::keys::{gap_span, minute_of, to_i64, ts_ns};
use crate::store::rollup::SeriesMinuteAgg;
use crate::store::{CommitOutcome, IngestBatch, StoreError, codec};

/// Per-minute aggregate of one host value; sum and count keep merges exact.
#[derive(Debug, Clone, Copy)]
struct HostAgg {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl HostAgg {
    fn new(v: f64) -> Self {
        HostAgg {
            count: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// Interned ids, valid only while they match committed rows (cleared on any failure).
#[derive(Default)]
pub(super) struct IdCache {
    pub(super) agents: HashMap<String, i64>,
    /// agent id → check → (series id, first minute measured).
    pub(super) series: HashMap<i64, HashMap<String, (i64, Option<i64>)>>,
    /// agent id → value name → resource → host series id.
    host: HashMap<i64, HashMap<String, HashMap<String, i64>>>,
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) ids: IdCache,
    /// The tracked latency thresholds (cleared with `ids` on any failure, and by tracking).
    pub(super) tracked: thresholds::Tracked,
    /// Minutes before this were dropped by retention; measurements for them are skipped
    /// so a replay cannot resurrect part of a deleted minute.
    pub(super) rollup_horizon: i64,
    /// Hours before this may have raw blocks (`blocks`): a measurement of such an hour is
    /// checked against its block before its row is inserted.
    pub(super) raw_block_hour: i64,
}

fn add_meta(tx: &Transaction<'_>, key: &str, delta: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
    )
    .and_then(|mut s| s.execute(params![key, delta]))
    .map(|_| ())
    .map_err(map_err)
}

pub(super) fn ensure_agent(
    tx: &Transaction<'_>,
    cache: &mut HashMap<String, i64>,
    name: &str,
) -> Result<i64, StoreError> {
    if let Some(id) = cache.get(name) {
        return Ok(*id);
    }
    let found: Option<i64> = tx
        .prepare_cached("SELECT id FROM agents WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(map_err)?;
    let id = match found {
        Some(id) => id,
        None => {
            tx.prepare_cached("INSERT INTO agents (name) VALUES (?1)")
                .and_then(|mut s| s.execute([name]))
                .map_err(map_err)?;
            tx.last_insert_rowid()
        }
    };
    cache.insert(name.to_owned(), id);
    Ok(id)
}

/// The series id of `(agent, check)`, lowering its first measured minute to `minute`.
pub(super) fn ensure_series(
    tx: &Transaction<'_>,
    cache: &mut HashMap<i64, HashMap<String, (i64, Option<i64>)>>,
    agent: i64,
    check: &str,
    minute: Option<i64>,
) -> Result<i64, StoreError> {
    let per_agent = cache.entry(agent).or_default();
    let entry = match per_agent.get_mut(check) {
        Some(e) => e,
        None => {
            let found: Option<(i64, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT id, first_minute FROM series WHERE check_id = ?1 AND agent_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![check, agent], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(map_err)?;
            let e = match found {
                Some(e) => e,
                None => {
                    tx.prepare_cached("INSERT INTO series (agent_id, check_id) VALUES (?1, ?2)")
                        .and_then(|mut s| s.execute(params![agent, check]))
                        .map_err(map_err)?;
                    (tx.last_insert_rowid(), None)
                }
            };
            per_agent.entry(check.to_owned()).or_insert(e)
        }
    };
    if let Some(m) = minute
        && entry.1.is_none_or(|first| m < first)
    {
        tx.prepare_cached("UPDATE series SET first_minute = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![entry.0, m]))
            .map_err(map_err)?;
        entry.1 = Some(m);
    }
    Ok(entry.0)
}

fn ensure_host_series(
    tx: &Transaction<'_>,
    cache: &mut HashMap<i64, HashMap<String, HashMap<String, i64>>>,
    agent: i64,
    name: &str,
    resource: &str,
) -> Result<i64, StoreError> {
    let by_name = cache.entry(agent).or_default();
    if let Some(id) = by_name.get(name).and_then(|r| r.get(resource)) {
        return Ok(*id);
    }
    let found: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM host_series WHERE agent_id = ?1 AND name = ?2 AND resource = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![agent, name, resource], |r| r.get(0))
                .optional()
        })
        .map_err(map_err)?;
    let id = match found {
        Some(id) => id,
        None => {
            tx.prepare_cached(
                "INSERT INTO host_series (agent_id, name, resource) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![agent, name, resource]))
            .map_err(map_err)?;
            tx.last_insert_rowid()
        }
    };
    by_name
        .entry(name.to_owned())
        .or_default()
        .insert(resource.to_owned(), id);
    Ok(id)
}

/// What one batch adds, grouped before touching the rollup tables.
#[derive(Default)]
struct Pending {
    cells: BTreeMap<(i64, i64), SeriesMinuteAgg>,
    hosts: BTreeMap<(i64, i64), HostAgg>,
    /// Exact latency-threshold counts of the new probes (`thresholds`).
    over: thresholds::OverCounts,
}

impl Writer {
    pub(super) fn new(conn: Connection, rollup_horizon: i64, raw_block_hour: i64) -> Writer {
        Writer {
            conn,
            ids: IdCache::default(),
            tracked: thresholds::Tracked::default(),
            rollup_horizon,
            raw_block_hour,
        }
    }
}

impl Writer {
    /// Commits `batches` in one transaction (one durable commit for the group). A batch
    /// that fails is rolled back alone and the others stay in. Returns each batch's outcome,
    /// in order; when the transaction itself cannot begin or commit, every batch fails with
    /// that error.
    ///
    /// The group is first written without savepoints: a savepoint per batch makes SQLite
    /// copy every page the batch touches first into a statement journal, which cost about a
    /// tenth of the commit path, and batches almost never fail once validated. Only when one
    /// fails is the whole transaction rolled back and the group written again with a
    /// savepoint per batch.
    pub(super) fn commit_group<B: Borrow<IngestBatch>>(
        &mut self,
        batches: &[B],
    ) -> Vec<Result<CommitOutcome, StoreError>> {
        let first = self.try_group(batches, false);
        let second = match first {
            Ok(results) => return results,
            // One batch: its failure is the group's, nothing to isolate.
            Err(e) if batches.len() == 1 => Err(e),
            Err(_) => {
                self.forget();
                self.try_group(batches, true)
            }
        };
        match second {
            Ok(results) => results,
            Err(e) => {
                self.forget();
                batches.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    /// Drops what was cached during a rolled-back transaction: ids it inserted are gone.
    fn forget(&mut self) {
        self.ids = IdCache::default();
        self.tracked.clear();
    }

    /// Writes the group in one transaction. Without `savepoints`, the first failing batch
    /// fails the whole transaction (the caller writes the group again with them); with
    /// them, it is rolled back alone.
    fn try_group<B: Borrow<IngestBatch>>(
        &mut self,
        batches: &[B],
        savepoints: bool,
    ) -> Result<Vec<Result<CommitOutcome, StoreError>>, StoreError> {
        let horizon = Horizons {
            rollups: self.rollup_horizon,
            blocks: self.raw_block_hour,
        };
        let ids = &mut self.ids;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let tracked = self.tracked.get(&tx)?;
        let mut results = Vec::with_capacity(batches.len());
        let mut late = LateGroup::default();
        for b in batches {
            if savepoints {
                tx.execute_batch("SAVEPOINT batch").map_err(map_err)?;
            }
            let mut mine = LateGroup::default();
            let out = write_batch(&tx, ids, tracked, horizon, b.borrow(), &mut mine);
            match &out {
                Ok(_) => {
                    if savepoints {
                        tx.execute_batch("RELEASE batch").map_err(map_err)?;
                    }
                    late.absorb(mine);
                }
                Err(e) if !savepoints => return Err(e.clone()),
                // SQLite rolls the whole transaction back by itself on some errors (a
                // full disk): then every batch of the group fails with this error.
                Err(e) if tx.is_autocommit() => return Err(e.clone()),
                Err(_) => {
                    tx.execute_batch("ROLLBACK TO batch; RELEASE batch")
                        .map_err(map_err)?;
                    // Ids this batch inserted are gone with it.
                    *ids = IdCache::default();
                }
            }
            results.push(out);
        }
        // One row for the whole group's late writes, in its transaction.
        super::late::log_group(&tx, late)?;
        tx.commit().map_err(map_err)?;
        Ok(results)
    }
}

/// The writer's horizons, copied into a group's transaction.
#[derive(Clone, Copy)]
struct Horizons {
    /// Minutes before this were deleted by retention.
    rollups: i64,
    /// Hours before this may have raw blocks.
    blocks: i64,
}

/// Writes one batch inside the group's transaction: the batch row (which makes a resent
/// batch a no-op), raw rows, rollups, gaps and the agent's status; notes its late writes in
/// `late` (logged once for the group).
fn write_batch(
    tx: &Transaction<'_>,
    ids: &mut IdCache,
    tracked: &HashMap<String, Vec<u64>>,
    horizon: Horizons,
    b: &IngestBatch,
    late: &mut LateGroup,
) -> Result<CommitOutcome, StoreError> {
    let received_ns = ts_ns(b.received_at)?;
    let seq = i64::try_from(b.seq).map_err(|_| {
        StoreError::Backend(format!("batch seq {} exceeds the storable range", b.seq))
    })?;
    let agent = ensure_agent(tx, &mut ids.agents, &b.agent)?;
    let (first_ns, last_ns) = crate::store::keys::batch_span(&b.measurements)?;
    let fresh = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO batches (agent_id, seq, received_ns, first_ns, last_ns)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| s.execute(params![agent, seq, received_ns, first_ns, last_ns]))
        .map_err(map_err)?;
    let mut out = CommitOutcome {
        duplicate_batch: fresh == 0,
        stored: 0,
        duplicate_measurements: 0,
    };
    if out.duplicate_batch {
        return Ok(out);
    }
    if let Some(seal) = &b.seal {
        super::seals::insert(tx, agent, seq, received_ns, seal)?;
    }
    let received_minute = b.received_at.as_second().div_euclid(60);
    let pending = insert_raw(
        tx,
        ids,
        tracked,
        (agent, seq),
        horizon,
        &b.measurements,
        &mut out,
    )?;
    for &(minute, series) in pending.cells.keys() {
        late.note(series, minute, minute + 1, received_minute);
    }
    upsert_cells(tx, &pending.cells)?;
    upsert_hosts(tx, &pending.hosts)?;
    thresholds::add(tx, &pending.over)?;
    insert_gaps(tx, ids, agent, horizon.rollups, b, late)?;
    update_agent(
        tx,
        agent,
        seq,
        received_ns,
        b.clock_offset_ms,
        b.spool.as_ref(),
    )?;
    add_meta(tx, "batches_total", 1)?;
    add_meta(tx, "measurements_total", to_i64(out.stored))?;
    Ok(out)
}

/// A raw row ready to insert, with the measurement it holds.
struct RawRow<'a> {
    m: &'a Measurement,
    ns: i64,
    minute: i64,
    series: i64,
    reason: Option<u8>,
    extra: Option<Vec<u8>>,
}

/// Rows per multi-row statement, largest first: a batch's rows go in as few statements as
/// these sizes allow, because every statement costs SQLite its own setup, statement
/// journal and halt whatever its size (a tenth of the commit path when each row was one).
const CHUNKS: [usize; 3] = [128, 16, 1];

/// `(start, len)` of the chunks that cover `n` rows.
fn chunks(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for size in CHUNKS {
        while n - at >= size {
            out.push((at, size));
            at += size;
        }
    }
    out
}

/// `{head} VALUES (?, ..), .. {tail}` for `rows` rows of `width` parameters.
fn values_sql(head: &str, width: usize, rows: usize, tail: &str) -> String {
    let one = format!("({})", vec!["?"; width].join(","));
    format!("{head} VALUES {}{tail}", vec![one.as_str(); rows].join(","))
}

/// Inserts raw rows, many per statement; only the newly inserted ones (`RETURNING`) are
/// added to `Pending`. Of two measurements with one key in a batch the first is stored, as
/// SQLite inserts a statement's rows in order.
fn insert_raw(
    tx: &Transaction<'_>,
    ids: &mut IdCache,
    tracked: &HashMap<String, Vec<u64>>,
    (agent, seq): (i64, i64),
    horizon: Horizons,
    measurements: &[Measurement],
    out: &mut CommitOutcome,
) -> Result<Pending, StoreError> {
    let mut pending = Pending::default();
    let mut rows = Vec::with_capacity(measurements.len());
    let mut blocked = BlockedInstants::default();
    for m in measurements {
        let ns = ts_ns(m.ts)?;
        let minute = minute_of(ns);
        if minute < horizon.rollups {
            // Its minute was deleted by retention: counting it now would resurrect a
            // fraction of that minute. Reported as a duplicate: it was stored once.
            out.duplicate_measurements += 1;
            continue;
        }
        let series = ensure_series(tx, &mut ids.series, agent, &m.check, Some(minute))?;
        if hour_of(ns) < horizon.blocks && blocked.contains(tx, series, ns)? {
            // Already stored, and since compacted into its hour's block.
            out.duplicate_measurements += 1;
            continue;
        }
        rows.push(RawRow {
            m,
            ns,
            minute,
            series,
            reason: m.reason.map(codec::reason_code),
            extra: crate::store::extra::encode(m),
        });
    }
    // Whether each row was newly inserted. A statement that returns as many keys as it
    // had rows stored them all; otherwise its returned keys are matched to its rows in
    // order, each taken once (a key repeated in the statement was stored by its first row;
    // one stored by an earlier statement or batch is not returned).
    let mut stored = vec![false; rows.len()];
    for (start, len) in chunks(rows.len()) {
        let sql = values_sql(
            "INSERT OR IGNORE INTO raw (ts_ns, series, ok, duration_s, reason, extra, seq)",
            7,
            len,
            " RETURNING ts_ns, series",
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(len * 7);
        for r in &rows[start..start + len] {
            params.extend([
                &r.ns as &dyn ToSql,
                &r.series,
                &r.m.ok,
                &r.m.duration_seconds,
                &r.reason,
                &r.extra,
                &seq,
            ]);
        }
        let mut returned: Vec<(i64, i64)> = Vec::with_capacity(len);
        let mut q = stmt.query(params_from_iter(params)).map_err(map_err)?;
        while let Some(row) = q.next().map_err(map_err)? {
            returned.push((row.get(0).map_err(map_err)?, row.get(1).map_err(map_err)?));
        }
        let flags = &mut stored[start..start + len];
        if returned.len() == len {
            flags.fill(true);
        } else {
            let mut keys: HashSet<(i64, i64)> = returned.into_iter().collect();
            for (flag, r) in flags.iter_mut().zip(&rows[start..start + len]) {
                *flag = keys.remove(&(r.ns, r.series));
            }
        }
    }
    for (r, stored) in rows.into_iter().zip(stored) {
        if !stored {
            out.duplicate_measurements += 1;
            continue;
        }
        let (m, minute, series) = (r.m, r.minute, r.series);
        out.stored += 1;
        pending
            .cells
            .entry((minute, series))
            .or_default()
            .add_measurement(m);
        if m.ok
            && !tracked.is_empty()
            && let Some(ts) = tracked.get(&m.check)
        {
            thresholds::count(&mut pending.over, (series, minute), m.duration_seconds, ts);
        }
        for v in m.values.iter().filter(|v| v.value.is_finite()) {
            let resource = v.resource.as_deref().unwrap_or("");
            let h = ensure_host_series(tx, &mut ids.host, agent, &v.name, resource)?;
            pending
                .hosts
                .entry((minute, h))
                .and_modify(|a| a.add(v.value))
                .or_insert_with(|| HostAgg::new(v.value));
        }
    }
    Ok(pending)
}

/// Writes the batch's minute cells, many per statement: an `INSERT .. ON CONFLICT DO
/// UPDATE` merges a cell that already has a row (late data, or a batch boundary inside a
/// minute: most cells, since an agent sends each check's minute in several batches) inside
/// SQLite with the [`register_functions`] merges, instead of an insert attempt, a read and
/// an update per cell.
fn upsert_cells(
    tx: &Transaction<'_>,
    cells: &BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = cells
        .iter()
        .map(|(&(minute, series), c)| {
            (
                minute,
                series,
                to_i64(c.probes),
                to_i64(c.failures),
                c.reasons_blob(),
                c.latency_blob(),
            )
        })
        .collect();
    for (start, len) in chunks(rows.len()) {
        let sql = values_sql(
            "INSERT INTO minute_rollup (minute, series, probes, failures, reasons, latency)",
            6,
            len,
            " ON CONFLICT (minute, series) DO UPDATE SET
               probes = probes + excluded.probes, failures = failures + excluded.failures,
               reasons = attest_merge_reasons(reasons, excluded.reasons),
               latency = attest_merge_latency(latency, excluded.latency)",
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(len * 6);
        for r in &rows[start..start + len] {
            params.extend([&r.0 as &dyn ToSql, &r.1, &r.2, &r.3, &r.4, &r.5]);
        }
        stmt.execute(params_from_iter(params)).map_err(map_err)?;
    }
    Ok(())
}

fn upsert_hosts(
    tx: &Transaction<'_>,
    hosts: &BTreeMap<(i64, i64), HostAgg>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = hosts
        .iter()
        .map(|(&(minute, h), a)| (minute, h, to_i64(a.count), a.sum, a.min, a.max))
        .collect();
    for (start, len) in chunks(rows.len()) {
        let sql = values_sql(
            "INSERT INTO host_minute (minute, hseries, count, sum, min, max)",
            6,
            len,
            " ON CONFLICT (minute, hseries) DO UPDATE SET
               count = count + excluded.count, sum = sum + excluded.sum,
               min = min(min, excluded.min), max = max(max, excluded.max)",
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(len * 6);
        for r in &rows[start..start + len] {
            params.extend([&r.0 as &dyn ToSql, &r.1, &r.2, &r.3, &r.4, &r.5]);
        }
        stmt.execute(params_from_iter(params)).map_err(map_err)?;
    }
    Ok(())
}

/// Registers on the writer's connection the SQL functions that merge two cells' encoded
/// reason counters (`attest_merge_reasons`) and latency buckets (`attest_merge_latency`),
/// exactly as [`SeriesMinuteAgg::merge`] does (NULL is an empty part). Bytes that do not
/// decode fail the statement, as corruption.
pub(super) fn register_functions(conn: &Connection) -> Result<(), StoreError> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("attest_merge_reasons", 2, flags, |ctx| {
        merge_parts(ctx, |a, b| {
            let mut reasons = [0; codec::REASON_COUNT];
            codec::decode_reasons(&mut Reader::new(a), &mut reasons)?;
            codec::decode_reasons(&mut Reader::new(b), &mut reasons)?;
            let mut out = Vec::with_capacity(8);
            codec::encode_reasons(&mut out, &reasons);
            Ok(out)
        })
    })
    .map_err(map_err)?;
    conn.create_scalar_function("attest_merge_latency", 2, flags, |ctx| {
        merge_parts(ctx, |a, b| {
            let mut latency = codec::decode_latency(&mut Reader::new(a))?;
            latency.merge(&codec::decode_latency(&mut Reader::new(b))?);
            let mut out = Vec::with_capacity(16);
            codec::encode_latency(&mut out, &latency);
            Ok(out)
        })
    })
    .map_err(map_err)
}

/// Applies `merge` to a function's two blob arguments; NULL is an empty part.
fn merge_parts(
    ctx: &Context<'_>,
    merge: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>, codec::CodecError>,
) -> rusqlite::Result<Option<Vec<u8>>> {
    let part = |i: usize| match ctx.get_raw(i) {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => Ok(Some(b)),
        _ => Err(rusqlite::Error::UserFunctionError(
            "minute rollup: a cell part is not a blob".into(),
        )),
    };
    match (part(0)?, part(1)?) {
        (None, None) => Ok(None),
        (Some(a), None) | (None, Some(a)) => Ok(Some(a.to_vec())),
        (Some(a), Some(b)) => merge(a, b).map(Some).map_err(|e| {
            rusqlite::Error::UserFunctionError(corrupt("minute rollup", e).to_string().into())
        }),
    }
}

fn insert_gaps(
    tx: &Transaction<'_>,
    ids: &mut IdCache,
    agent: i64,
    horizon: i64,
    b: &IngestBatch,
    late: &mut LateGroup,
) -> Result<(), StoreError> {
    let received_minute = b.received_at.as_second().div_euclid(60);
    for g in &b.gaps {
        let Some((from, to)) = gap_span(g, horizon)? else {
            continue;
        };
        let series = ensure_series(tx, &mut ids.series, agent, &g.check, Some(from))?;
        late.note(series, from, to.saturating_add(1), received_minute);
        tx.prepare_cached(
            "INSERT INTO gaps (series, from_minute, to_minute, count) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (series, from_minute, to_minute) DO UPDATE SET count = count + excluded.count",
        )
        .and_then(|mut s| s.execute(params![series, from, to, to_i64(g.count)]))
        .map_err(map_err)?;
    }
    Ok(())
}

/// `last_seq` only grows; the rest follows the most recently received batch.
fn update_agent(
    tx: &Transaction<'_>,
    agent: i64,
    seq: i64,
    received_ns: i64,
    clock_offset_ms: i64,
    spool: Option<&SpoolStatus>,
) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE agents SET last_seq = max(coalesce(last_seq, 0), ?2) WHERE id = ?1")
        .and_then(|mut s| s.execute(params![agent, seq]))
        .map_err(map_err)?;
    tx.prepare_cached(
        "UPDATE agents SET last_seen_ns = ?2, clock_offset_ms = ?3,
           spool_depth = coalesce(?4, spool_depth), spool_bytes = coalesce(?5, spool_bytes),
           spool_dropped = coalesce(?6, spool_dropped), spool_corrupt = coalesce(?7, spool_corrupt)
         WHERE id = ?1 AND (last_seen_ns IS NULL OR last_seen_ns <= ?2)",
    )
    .and_then(|mut s| {
        s.execute(params![
            agent,
            received_ns,
            clock_offset_ms,
            spool.map(|s| to_i64(s.depth_measurements)),
            spool.map(|s| to_i64(s.bytes)),
            spool.map(|s| to_i64(s.dropped_total)),
            spool.map(|s| to_i64(s.corrupt_records_total)),
        ])
    })
    .map_err(map_err)?;
    Ok(())
}
