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

use std::collections::{BTreeMap, HashMap};

use attest_config::wire::{Measurement, SpoolStatus};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::{corrupt, map_err};
use super::late::LateGroup;
use super::thresholds;
use crate::store::journal::ChangeJournal;
use crate::store::keys::{gap_span, minute_of, to_i64, to_u64, ts_ns};
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
    /// Minutes before this were dropped by retention; measurements for them are skipped
    /// so a replay cannot resurrect part of a deleted minute.
    pub(super) rollup_horizon: i64,
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
    pub(super) fn new(conn: Connection, rollup_horizon: i64) -> Writer {
        Writer {
            conn,
            ids: IdCache::default(),
            rollup_horizon,
        }
    }
}

impl Writer {
    /// Commits `batches` in one transaction (one durable commit for the group), each
    /// inside its own savepoint, so that a batch that fails is rolled back alone and the
    /// others stay in. Returns each batch's outcome, in order; when the transaction itself
    /// cannot begin or commit, every batch fails with that error.
    pub(super) fn commit_group(
        &mut self,
        batches: &[IngestBatch],
    ) -> Vec<Result<CommitOutcome, StoreError>> {
        match self.try_group(batches) {
            Ok(results) => results,
            Err(e) => {
                // Ids cached during the rolled-back transaction may not exist.
                self.ids = IdCache::default();
                batches.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    fn try_group(
        &mut self,
        batches: &[IngestBatch],
    ) -> Result<Vec<Result<CommitOutcome, StoreError>>, StoreError> {
        let horizon = self.rollup_horizon;
        let ids = &mut self.ids;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let mut results = Vec::with_capacity(batches.len());
        let mut late = LateGroup::default();
        for b in batches {
            tx.execute_batch("SAVEPOINT batch").map_err(map_err)?;
            let mut mine = LateGroup::default();
            let out = write_batch(&tx, ids, horizon, b, &mut mine);
            match &out {
                Ok(_) => {
                    tx.execute_batch("RELEASE batch").map_err(map_err)?;
                    late.absorb(mine);
                }
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

/// Writes one batch inside the group's transaction: the batch row (which makes a resent
/// batch a no-op), raw rows, rollups, gaps and the agent's status; notes its late writes in
/// `late` (logged once for the group).
fn write_batch(
    tx: &Transaction<'_>,
    ids: &mut IdCache,
    horizon: i64,
    b: &IngestBatch,
    late: &mut LateGroup,
) -> Result<CommitOutcome, StoreError> {
    let received_ns = ts_ns(b.received_at)?;
    let seq = i64::try_from(b.seq).map_err(|_| {
        StoreError::Backend(format!("batch seq {} exceeds the storable range", b.seq))
    })?;
    let agent = ensure_agent(tx, &mut ids.agents, &b.agent)?;
    let fresh = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO batches (agent_id, seq, received_ns) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![agent, seq, received_ns]))
        .map_err(map_err)?;
    let mut out = CommitOutcome {
        duplicate_batch: fresh == 0,
        stored: 0,
        duplicate_measurements: 0,
    };
    if out.duplicate_batch {
        return Ok(out);
    }
    let received_minute = b.received_at.as_second().div_euclid(60);
    let pending = insert_raw(tx, ids, agent, horizon, &b.measurements, &mut out)?;
    for &(minute, series) in pending.cells.keys() {
        late.note(series, minute, minute + 1, received_minute);
    }
    upsert_cells(tx, &pending.cells)?;
    upsert_hosts(tx, &pending.hosts)?;
    thresholds::add(tx, &pending.over)?;
    insert_gaps(tx, ids, agent, horizon, b, late)?;
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

/// Inserts raw rows; only the newly inserted ones are added to `Pending`.
fn insert_raw(
    tx: &Transaction<'_>,
    ids: &mut IdCache,
    agent: i64,
    horizon: i64,
    measurements: &[Measurement],
    out: &mut CommitOutcome,
) -> Result<Pending, StoreError> {
    let mut pending = Pending::default();
    let tracked = thresholds::tracked(tx, measurements.iter().map(|m| m.check.as_str()))?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO raw (ts_ns, series, ok, duration_s, reason, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(map_err)?;
    for m in measurements {
        let ns = ts_ns(m.ts)?;
        let minute = minute_of(ns);
        if minute < horizon {
            // Its minute was deleted by retention: counting it now would resurrect a
            // fraction of that minute. Reported as a duplicate: it was stored once.
            out.duplicate_measurements += 1;
            continue;
        }
        let series = ensure_series(tx, &mut ids.series, agent, &m.check, Some(minute))?;
        let extra = crate::store::extra::encode(m);
        let reason = m.reason.map(codec::reason_code);
        let inserted = stmt
            .execute(params![ns, series, m.ok, m.duration_seconds, reason, extra])
            .map_err(map_err)?;
        if inserted == 0 {
            out.duplicate_measurements += 1;
            continue;
        }
        out.stored += 1;
        pending
            .cells
            .entry((minute, series))
            .or_default()
            .add_measurement(m);
        if let (true, Some(ts)) = (m.ok, tracked.get(&m.check)) {
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

/// Inserts new minute rows; only minutes that already have a row (late data, or a batch
/// boundary inside a minute) pay for a read-merge-write.
fn upsert_cells(
    tx: &Transaction<'_>,
    cells: &BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO minute_rollup (minute, series, probes, failures, reasons, latency)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (minute, series) DO NOTHING",
        )
        .map_err(map_err)?;
    let mut get = tx
        .prepare_cached(
            "SELECT probes, failures, reasons, latency FROM minute_rollup
             WHERE minute = ?1 AND series = ?2",
        )
        .map_err(map_err)?;
    let mut update = tx
        .prepare_cached(
            "UPDATE minute_rollup SET probes = ?3, failures = ?4, reasons = ?5, latency = ?6
             WHERE minute = ?1 AND series = ?2",
        )
        .map_err(map_err)?;
    for ((minute, series), cell) in cells {
        let row = |c: &SeriesMinuteAgg| {
            (
                to_i64(c.probes),
                to_i64(c.failures),
                c.reasons_blob(),
                c.latency_blob(),
            )
        };
        let (p, f, r, l) = row(cell);
        if insert
            .execute(params![minute, series, p, f, r, l])
            .map_err(map_err)?
            == 1
        {
            continue;
        }
        let mut merged = get
            .query_row(params![minute, series], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })
            .map_err(map_err)
            .and_then(|(p, f, reasons, latency)| {
                SeriesMinuteAgg::from_row(
                    to_u64(p),
                    to_u64(f),
                    reasons.as_deref(),
                    latency.as_deref(),
                )
                .map_err(|e| corrupt("minute rollup", e))
            })?;
        merged.merge(cell);
        let (p, f, r, l) = row(&merged);
        update
            .execute(params![minute, series, p, f, r, l])
            .map_err(map_err)?;
    }
    Ok(())
}

fn upsert_hosts(
    tx: &Transaction<'_>,
    hosts: &BTreeMap<(i64, i64), HostAgg>,
) -> Result<(), StoreError> {
    let mut put = tx
        .prepare_cached(
            "INSERT INTO host_minute (minute, hseries, count, sum, min, max)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (minute, hseries) DO UPDATE SET
               count = count + excluded.count, sum = sum + excluded.sum,
               min = min(min, excluded.min), max = max(max, excluded.max)",
        )
        .map_err(map_err)?;
    for ((minute, h), a) in hosts {
        put.execute(params![minute, h, to_i64(a.count), a.sum, a.min, a.max])
            .map_err(map_err)?;
    }
    Ok(())
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

/// The minutes a batch touches, per check: its measurements' minutes and its gaps'
/// minutes, as `(lowest, highest)`.
pub(super) fn touched(batch: &IngestBatch) -> BTreeMap<&str, (i64, i64)> {
    let mut touched: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let minutes = batch
        .measurements
        .iter()
        .map(|m| {
            let minute = m.ts.as_second().div_euclid(60);
            (m.check.as_str(), minute, minute)
        })
        .chain(batch.gaps.iter().map(|g| {
            let (a, z) = (
                g.from.as_second().div_euclid(60),
                g.to.as_second().div_euclid(60),
            );
            (g.check.as_str(), a.min(z), a.max(z))
        }));
    for (check, lo, hi) in minutes {
        let e = touched.entry(check).or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }
    touched
}

/// Journals the minutes a committed batch touched (a resent batch is journaled too; that
/// only costs a recompute).
pub(super) fn record_batch(journal: &mut ChangeJournal, batch: &IngestBatch) {
    for (check, (lo, hi)) in touched(batch) {
        journal.record(check, lo, hi.saturating_add(1));
    }
}
