//! The embedded SQLite backend of [`Store`]: one writer connection behind a mutex, one
//! reader connection so that `/metrics` scrapes and reports never wait for ingest.
//!
//! Invariants:
//! - `commit_batch` is one `IMMEDIATE` transaction on a WAL database with
//!   `synchronous=FULL`: when it returns `Ok`, the batch survives power loss.
//! - Only measurements whose raw row was newly inserted update rollups, so a measurement
//!   counts once however often it is sent.
//! - Rollups live in two tiers: hot per-minute rows written at ingest, and compressed
//!   hourly packs written by compaction (in `apply_retention`, for minutes past raw
//!   retention). A minute may have data in both tiers (late data after compaction);
//!   reads merge them, and compaction moves hot rows into the pack in one transaction.
//! - Reads run inside one read transaction, so they see one snapshot across tiers.
//! - Id caches are only trusted after a commit; any failed transaction clears them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use attest_config::wire::{FailureReason, Measurement, SpoolStatus};
use jiff::Timestamp;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::codec::{self, CodecError};
use super::journal::ChangeJournal;
use super::keys::{
    batches_before, encode_extra, from_ns, gap_span, host_avg, minute_of, rebuild_measurement,
    to_i64, to_u64, ts_ns,
};
use super::rollup::{self, PackDecoder, SeriesMinuteAgg};
use super::schema;
use super::{
    AgentStatus, CommitOutcome, IngestBatch, MaintenanceRow, SeriesMinuteSummary, Store,
    StoreCounts, StoreError,
};
use crate::minutes::{GapSpan, HostMinute, SeriesMinuteDetail, SeriesMinutes};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "attest.db";
/// How long a connection waits for a lock held by another process (a backup tool, the
/// `sqlite3` shell) before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Maps SQLite errors to store errors; a full disk or database becomes [`StoreError::Full`].
pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::DiskFull
    {
        return StoreError::Full(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

fn corrupt(what: &str, e: CodecError) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

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
struct IdCache {
    agents: HashMap<String, i64>,
    /// agent id → check → (series id, first minute measured).
    series: HashMap<i64, HashMap<String, (i64, Option<i64>)>>,
    /// agent id → value name → resource → host series id.
    host: HashMap<i64, HashMap<String, HashMap<String, i64>>>,
}

struct Writer {
    conn: Connection,
    ids: IdCache,
    /// Minutes before this were dropped by retention; measurements for them are skipped
    /// so a replay cannot resurrect part of a deleted minute.
    rollup_horizon: i64,
}

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    /// Which minutes of which checks changed when (see `Store::changed_since`).
    journal: Mutex<ChangeJournal>,
    path: PathBuf,
    /// Keeps a test's temporary directory alive as long as the store; dropped last.
    #[cfg(test)]
    _temp: Option<tempfile::TempDir>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock unwound through a `Transaction`, which rolled back;
    // the connection is usable. Writer caches are cleared by the caller on errors.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// Opens (creating on first start) `<data_dir>/attest.db` and migrates it.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            let msg = format!(
                "cannot create data directory {}: {e}; check the path and its permissions",
                data_dir.display()
            );
            if e.kind() == std::io::ErrorKind::StorageFull {
                StoreError::Full(msg)
            } else {
                StoreError::Backend(msg)
            }
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(|e| {
            StoreError::Backend(format!(
                "cannot open database {}: {e}; check permissions",
                path.display()
            ))
        })?;
        configure_writer(&conn)?;
        schema::migrate(&mut conn)?;
        let rollup_horizon = read_meta(&conn, "rollup_horizon_minute")?.unwrap_or(i64::MIN);
        let reader = open_reader(&path)?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                conn,
                ids: IdCache::default(),
                rollup_horizon,
            }),
            reader: Mutex::new(reader),
            journal: Mutex::new(ChangeJournal::default()),
            path,
            #[cfg(test)]
            _temp: None,
        })
    }

    /// A store in a fresh temporary directory that is removed when the store is dropped.
    #[cfg(test)]
    pub fn open_temp() -> Result<SqliteStore, StoreError> {
        let dir = tempfile::tempdir()
            .map_err(|e| StoreError::Backend(format!("cannot create a temp dir: {e}")))?;
        let mut store = SqliteStore::open(dir.path())?;
        store._temp = Some(dir);
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Caps the database size in pages; lets tests provoke `SQLITE_FULL` without filling a disk.
    #[cfg(test)]
    pub(crate) fn set_max_page_count(&self, pages: u64) -> Result<(), StoreError> {
        let w = lock(&self.writer);
        w.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(map_err)
    }

    /// Bytes used by each table and index (needs SQLite's `dbstat`), for the size report.
    pub fn table_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
            .map_err(map_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(map_err)?;
        rows.map(|r| r.map(|(n, s)| (n, to_u64(s))).map_err(map_err))
            .collect()
    }

    /// Moves hot minute rows before `before_minute` into hourly packs, one hour per
    /// transaction so ingest can interleave. Returns the number of hot rows moved.
    pub fn compact_before(&self, before_minute: i64) -> Result<u64, StoreError> {
        let mut moved = 0;
        loop {
            let mut w = lock(&self.writer);
            let step = compact_one_hour(&mut w.conn, before_minute);
            match step {
                Ok(Some(n)) => moved += n,
                Ok(None) => return Ok(moved),
                Err(e) => return Err(e),
            }
        }
    }

    /// Loads already aggregated minutes of one check and agent straight into hourly packs
    /// (merging with what is there), in one transaction: for importing history from another
    /// system and for benchmarks, where replaying every probe result would take hours.
    /// No raw rows are written and nothing is deduplicated: loading the same minutes twice
    /// counts them twice. Minutes behind the rollup horizon are skipped. Returns the minutes
    /// loaded.
    pub fn load_minutes(
        &self,
        agent: &str,
        check: &str,
        minutes: &[SeriesMinuteSummary],
    ) -> Result<u64, StoreError> {
        let mut w = lock(&self.writer);
        let out = w.load_minutes(agent, check, minutes);
        if out.is_err() {
            w.ids = IdCache::default();
        }
        let lo = minutes.iter().map(|m| m.minute).min();
        let hi = minutes.iter().map(|m| m.minute).max();
        if let (Ok(_), Some(lo), Some(hi)) = (&out, lo, hi) {
            lock(&self.journal).record(check, lo, hi.saturating_add(1));
        }
        out
    }

    /// Decodes every pack cell in a range without building histograms (bench only).
    #[cfg(test)]
    pub(crate) fn month_cells_for_bench(&self, from: i64, to: i64) -> usize {
        self.read(|tx| {
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM series")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(map_err)?;
            let wanted = ids
                .into_iter()
                .map(|i| (i, (String::new(), String::new())))
                .collect();
            let mut cells = BTreeMap::new();
            packed_cells(tx, &wanted, from, to, &mut cells)?;
            Ok(cells.len())
        })
        .unwrap_or(0)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction().map_err(map_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(map_err)?;
        Ok(out)
    }
}

fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the database refused WAL mode (got {mode}); put the data directory on a local disk"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;",
    )
    .map_err(map_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        StoreError::Backend(format!(
            "cannot open database {} for reading: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    conn.execute_batch("PRAGMA cache_size = -16384;")
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn read_meta(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(map_err)
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

fn ensure_agent(
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
fn ensure_series(
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
}

impl Writer {
    fn commit(&mut self, b: &IngestBatch) -> Result<CommitOutcome, StoreError> {
        let received_ns = ts_ns(b.received_at)?;
        let seq = i64::try_from(b.seq).map_err(|_| {
            StoreError::Backend(format!("batch seq {} exceeds the storable range", b.seq))
        })?;
        let horizon = self.rollup_horizon;
        let ids = &mut self.ids;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let agent = ensure_agent(&tx, &mut ids.agents, &b.agent)?;
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
            // Nothing was written (the agent row predates the batch row), so committing is
            // free and keeps the id cache valid without reasoning about rollback.
            tx.commit().map_err(map_err)?;
            return Ok(out);
        }
        let pending = insert_raw(&tx, ids, agent, horizon, &b.measurements, &mut out)?;
        upsert_cells(&tx, &pending.cells)?;
        upsert_hosts(&tx, &pending.hosts)?;
        insert_gaps(&tx, ids, agent, horizon, b)?;
        update_agent(
            &tx,
            agent,
            seq,
            received_ns,
            b.clock_offset_ms,
            b.spool.as_ref(),
        )?;
        add_meta(&tx, "batches_total", 1)?;
        add_meta(&tx, "measurements_total", to_i64(out.stored))?;
        tx.commit().map_err(map_err)?;
        Ok(out)
    }
}

impl Writer {
    fn load_minutes(
        &mut self,
        agent: &str,
        check: &str,
        minutes: &[SeriesMinuteSummary],
    ) -> Result<u64, StoreError> {
        let horizon = self.rollup_horizon;
        let mut hours: BTreeMap<i64, BTreeMap<u8, SeriesMinuteAgg>> = BTreeMap::new();
        for m in minutes.iter().filter(|m| m.minute >= horizon) {
            let offset = u8::try_from(m.minute.rem_euclid(60)).unwrap_or(0);
            let cell = hours
                .entry(m.minute.div_euclid(60))
                .or_default()
                .entry(offset)
                .or_default();
            cell.merge(&summary_cell(m));
        }
        let Some(first) = hours
            .iter()
            .next()
            .and_then(|(h, cells)| Some(h * 60 + i64::from(*cells.keys().next()?)))
        else {
            return Ok(0);
        };
        let ids = &mut self.ids;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let agent_id = ensure_agent(&tx, &mut ids.agents, agent)?;
        let series = ensure_series(&tx, &mut ids.series, agent_id, check, Some(first))?;
        let mut loaded = 0u64;
        for (hour, cells) in hours {
            loaded += cells.len() as u64;
            merge_into_pack(&tx, hour, series, cells)?;
        }
        tx.commit().map_err(map_err)?;
        Ok(loaded)
    }
}

fn summary_cell(m: &SeriesMinuteSummary) -> SeriesMinuteAgg {
    let mut cell = SeriesMinuteAgg {
        probes: u64::from(m.probes),
        failures: u64::from(m.failures),
        ..SeriesMinuteAgg::default()
    };
    if m.failures > 0 {
        let code = codec::reason_code(m.reason.unwrap_or(FailureReason::Other));
        if let Some(slot) = cell.reasons.get_mut(usize::from(code)) {
            *slot = u64::from(m.failures);
        }
    }
    for d in &m.ok_durations {
        cell.latency.record_seconds(*d);
    }
    cell
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
        let extra = encode_extra(m)?;
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
) -> Result<(), StoreError> {
    for g in &b.gaps {
        let Some((from, to)) = gap_span(g, horizon)? else {
            continue;
        };
        let series = ensure_series(tx, &mut ids.series, agent, &g.check, Some(from))?;
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

/// Packs the hot rows of the earliest hour that has any before `before_minute`.
/// `Ok(None)` when nothing is left to compact.
fn compact_one_hour(conn: &mut Connection, before_minute: i64) -> Result<Option<u64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let first: Option<i64> = tx
        .query_row("SELECT min(minute) FROM minute_rollup", [], |r| r.get(0))
        .map_err(map_err)?;
    let Some(first) = first.filter(|m| *m < before_minute) else {
        return Ok(None);
    };
    let hour = first.div_euclid(60);
    let end = ((hour + 1) * 60).min(before_minute);
    let mut by_series: BTreeMap<i64, BTreeMap<u8, SeriesMinuteAgg>> = BTreeMap::new();
    let mut moved = 0u64;
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT minute, series, probes, failures, reasons, latency FROM minute_rollup
                 WHERE minute >= ?1 AND minute < ?2",
            )
            .map_err(map_err)?;
        let mut rows = stmt.query(params![first, end]).map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            let minute: i64 = r.get(0).map_err(map_err)?;
            let series: i64 = r.get(1).map_err(map_err)?;
            let cell = cell_at(r, 2)?;
            let offset = u8::try_from(minute - hour * 60).unwrap_or(0);
            by_series.entry(series).or_default().insert(offset, cell);
            moved += 1;
        }
    }
    for (series, cells) in by_series {
        merge_into_pack(&tx, hour, series, cells)?;
    }
    tx.execute(
        "DELETE FROM minute_rollup WHERE minute >= ?1 AND minute < ?2",
        params![first, end],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)?;
    Ok(Some(moved))
}

fn map_err_fs(e: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Backend(format!("unexpected column type: {e}"))
}

/// The minute-rollup cell stored in columns `start..start + 4` (probes, failures,
/// reasons, latency); bytes that do not decode are reported as corruption.
fn cell_at(r: &rusqlite::Row<'_>, start: usize) -> Result<SeriesMinuteAgg, StoreError> {
    let blob = |i: usize| -> Result<Option<&[u8]>, StoreError> {
        r.get_ref(i)
            .map_err(map_err)?
            .as_blob_or_null()
            .map_err(map_err_fs)
    };
    SeriesMinuteAgg::from_row(
        to_u64(r.get(start).map_err(map_err)?),
        to_u64(r.get(start + 1).map_err(map_err)?),
        blob(start + 2)?,
        blob(start + 3)?,
    )
    .map_err(|e| corrupt("minute rollup", e))
}

fn load_pack(
    tx: &Transaction<'_>,
    hour: i64,
    series: i64,
) -> Result<BTreeMap<u8, SeriesMinuteAgg>, StoreError> {
    let data: Option<Vec<u8>> = tx
        .prepare_cached("SELECT data FROM hour_pack WHERE hour = ?1 AND series = ?2")
        .and_then(|mut s| s.query_row(params![hour, series], |r| r.get(0)).optional())
        .map_err(map_err)?;
    match data {
        Some(d) => rollup::decode_pack(&d).map_err(|e| corrupt("hour pack", e)),
        None => Ok(BTreeMap::new()),
    }
}

fn store_pack(
    tx: &Transaction<'_>,
    hour: i64,
    series: i64,
    cells: &BTreeMap<u8, SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    if cells.is_empty() {
        tx.prepare_cached("DELETE FROM hour_pack WHERE hour = ?1 AND series = ?2")
            .and_then(|mut s| s.execute(params![hour, series]))
            .map_err(map_err)?;
        return Ok(());
    }
    let data = rollup::encode_pack(cells).map_err(|e| corrupt("hour pack", e))?;
    tx.prepare_cached("INSERT OR REPLACE INTO hour_pack (hour, series, data) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![hour, series, data]))
        .map_err(map_err)?;
    Ok(())
}

fn merge_into_pack(
    tx: &Transaction<'_>,
    hour: i64,
    series: i64,
    cells: BTreeMap<u8, SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut pack = load_pack(tx, hour, series)?;
    for (offset, cell) in cells {
        match pack.get_mut(&offset) {
            Some(existing) => existing.merge(&cell),
            None => {
                pack.insert(offset, cell);
            }
        }
    }
    store_pack(tx, hour, series, &pack)
}

/// Drops the minutes before `before_minute` from the packs of the hour containing it.
fn trim_boundary_packs(tx: &Transaction<'_>, before_minute: i64) -> Result<(), StoreError> {
    let hour = before_minute.div_euclid(60);
    let keep_from = u8::try_from(before_minute - hour * 60).unwrap_or(0);
    if keep_from == 0 {
        return Ok(());
    }
    let series: Vec<i64> = {
        let mut stmt = tx
            .prepare_cached("SELECT series FROM hour_pack WHERE hour = ?1")
            .map_err(map_err)?;
        let rows = stmt.query_map([hour], |r| r.get(0)).map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    for s in series {
        let mut pack = load_pack(tx, hour, s)?;
        pack.retain(|offset, _| *offset >= keep_from);
        store_pack(tx, hour, s, &pack)?;
    }
    Ok(())
}

/// Checks by series id: `series id → (check, agent)`.
fn series_of_checks(
    tx: &Transaction<'_>,
    checks: &[String],
) -> Result<HashMap<i64, (String, String)>, StoreError> {
    let mut out = HashMap::new();
    let mut stmt = tx
        .prepare_cached(
            "SELECT s.id, a.name FROM series s JOIN agents a ON a.id = s.agent_id
             WHERE s.check_id = ?1",
        )
        .map_err(map_err)?;
    let unique: HashSet<&String> = checks.iter().collect();
    for check in unique {
        let rows = stmt
            .query_map([check], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(map_err)?;
        for row in rows {
            let (id, agent) = row.map_err(map_err)?;
            out.insert(id, (check.clone(), agent));
        }
    }
    Ok(out)
}

fn hot_cells(
    tx: &Transaction<'_>,
    wanted: &HashMap<i64, (String, String)>,
    from: i64,
    to: i64,
    into: &mut BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT minute, series, probes, failures, reasons, latency FROM minute_rollup
             WHERE minute >= ?1 AND minute < ?2",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query(params![from, to]).map_err(map_err)?;
    while let Some(r) = rows.next().map_err(map_err)? {
        let series: i64 = r.get(1).map_err(map_err)?;
        if !wanted.contains_key(&series) {
            continue;
        }
        let minute: i64 = r.get(0).map_err(map_err)?;
        let cell = cell_at(r, 2)?;
        merge_cell(into, (series, minute), cell);
    }
    Ok(())
}

fn packed_cells(
    tx: &Transaction<'_>,
    wanted: &HashMap<i64, (String, String)>,
    from: i64,
    to: i64,
    into: &mut BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT hour, data FROM hour_pack WHERE series = ?1 AND hour >= ?2 AND hour <= ?3",
        )
        .map_err(map_err)?;
    for series in wanted.keys() {
        for_each_pack(&mut stmt, *series, (from, to), |hour, data| {
            let pack = rollup::decode_pack(data).map_err(|e| corrupt("hour pack", e))?;
            for (offset, cell) in pack {
                let minute = hour * 60 + i64::from(offset);
                if minute >= from && minute < to {
                    merge_cell(into, (*series, minute), cell);
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Calls `f(hour, pack bytes)` for each hour pack of `series` that overlaps minutes
/// `[from, to)`; `stmt` is the `hour_pack` select by series and hour range.
fn for_each_pack(
    stmt: &mut rusqlite::CachedStatement<'_>,
    series: i64,
    (from, to): (i64, i64),
    mut f: impl FnMut(i64, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut rows = stmt
        .query(params![
            series,
            from.div_euclid(60),
            (to - 1).div_euclid(60)
        ])
        .map_err(map_err)?;
    while let Some(r) = rows.next().map_err(map_err)? {
        let hour: i64 = r.get(0).map_err(map_err)?;
        let data = r
            .get_ref(1)
            .map_err(map_err)?
            .as_blob()
            .map_err(map_err_fs)?;
        f(hour, data)?;
    }
    Ok(())
}

/// Hot cells of `series` with minutes in `[from, to)`, by series and minute.
///
/// The hot table is minute-led (ingest appends at its right edge), so filtering it by series
/// would scan every series' rows; instead this finds the hot span inside the range and seeks
/// each (minute, series) key in it. After compaction the span is about two hours.
fn hot_cells_by_series(
    tx: &Transaction<'_>,
    series: &[i64],
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, BTreeMap<i64, SeriesMinuteAgg>>, StoreError> {
    let mut out = BTreeMap::new();
    let edge = |sql: &str| -> Result<Option<i64>, StoreError> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.query_row(params![from, to], |r| r.get(0)).optional())
            .map_err(map_err)
    };
    let first = edge(
        "SELECT minute FROM minute_rollup WHERE minute >= ?1 AND minute < ?2
         ORDER BY minute LIMIT 1",
    )?;
    let last = edge(
        "SELECT minute FROM minute_rollup WHERE minute >= ?1 AND minute < ?2
         ORDER BY minute DESC LIMIT 1",
    )?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(out);
    };
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE m(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM m WHERE x < ?2)
             SELECT m.x, r.probes, r.failures, r.reasons, r.latency
             FROM m JOIN minute_rollup r ON r.minute = m.x AND r.series = ?3",
        )
        .map_err(map_err)?;
    for id in series {
        let mut rows = stmt.query(params![first, last, id]).map_err(map_err)?;
        let mut mine = BTreeMap::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let minute: i64 = r.get(0).map_err(map_err)?;
            let cell = cell_at(r, 1)?;
            mine.insert(minute, cell);
        }
        if !mine.is_empty() {
            out.insert(*id, mine);
        }
    }
    Ok(out)
}

fn push_cell(out: &mut SeriesMinutes, minute: i64, agent: u32, cell: &SeriesMinuteAgg) {
    out.push(
        minute,
        agent,
        u32::try_from(cell.probes).unwrap_or(u32::MAX),
        u32::try_from(cell.failures).unwrap_or(u32::MAX),
        cell.top_reason(),
        &cell.latency,
    );
}

/// Appends one series' rows in `[from, to)`: packs decoded straight into rows, except the
/// hours that also have hot cells (late data after compaction), which are merged cell by
/// cell first; hot cells of hours without a pack come last.
fn compact_series(
    stmt: &mut rusqlite::CachedStatement<'_>,
    decoder: &mut PackDecoder,
    (series, agent): (i64, u32),
    (from, to): (i64, i64),
    mut hot: BTreeMap<i64, SeriesMinuteAgg>,
    out: &mut SeriesMinutes,
) -> Result<(), StoreError> {
    let start = out.rows.len();
    for_each_pack(stmt, series, (from, to), |hour, data| {
        let late: Vec<i64> = hot
            .range(hour * 60..hour * 60 + 60)
            .map(|(m, _)| *m)
            .collect();
        if late.is_empty() {
            return decoder
                .decode_compact(data, hour, (from, to), agent, out)
                .map_err(|e| corrupt("hour pack", e));
        }
        let mut pack = rollup::decode_pack(data).map_err(|e| corrupt("hour pack", e))?;
        for minute in late {
            if let Some(cell) = hot.remove(&minute) {
                let offset = u8::try_from(minute - hour * 60).unwrap_or(0);
                pack.entry(offset).or_default().merge(&cell);
            }
        }
        for (offset, cell) in &pack {
            let minute = hour * 60 + i64::from(*offset);
            if minute >= from && minute < to {
                push_cell(out, minute, agent, cell);
            }
        }
        Ok(())
    })?;
    let unsorted = !hot.is_empty();
    for (minute, cell) in &hot {
        push_cell(out, *minute, agent, cell);
    }
    if unsorted && let Some(rows) = out.rows.get_mut(start..) {
        rows.sort_by_key(|r| r.minute);
    }
    Ok(())
}

fn merge_cell(
    into: &mut BTreeMap<(i64, i64), SeriesMinuteAgg>,
    key: (i64, i64),
    cell: SeriesMinuteAgg,
) {
    match into.get_mut(&key) {
        Some(existing) => existing.merge(&cell),
        None => {
            into.insert(key, cell);
        }
    }
}

fn to_rollup(check: &str, agent: &str, minute: i64, cell: SeriesMinuteAgg) -> SeriesMinuteDetail {
    SeriesMinuteDetail {
        check: check.to_owned(),
        agent: agent.to_owned(),
        minute,
        probes: u32::try_from(cell.probes).unwrap_or(u32::MAX),
        failures: u32::try_from(cell.failures).unwrap_or(u32::MAX),
        top_reason: cell.top_reason().map(|r| r.as_str().to_owned()),
        latency: cell.latency.to_histogram(),
    }
}

/// id, service, start, end, reason, created, cancelled (timestamps in ns).
type MaintenanceColumns = (i64, String, i64, i64, String, i64, Option<i64>);
/// ts, agent, ok, duration, reason code, extra JSON.
type RawColumns = (i64, String, bool, Option<f64>, Option<i64>, Option<Vec<u8>>);

fn maintenance_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MaintenanceColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Journals the minutes a committed batch touched, per check: its measurements' minutes
/// and its gaps' minutes (a resent batch is journaled too; that only costs a recompute).
fn record_batch(journal: &mut ChangeJournal, batch: &IngestBatch) {
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
    for (check, (lo, hi)) in touched {
        journal.record(check, lo, hi.saturating_add(1));
    }
}

impl Store for SqliteStore {
    fn commit_batch(&self, batch: &IngestBatch) -> Result<CommitOutcome, StoreError> {
        let mut w = lock(&self.writer);
        let out = w.commit(batch);
        if out.is_err() {
            w.ids = IdCache::default();
        }
        if out.is_ok() {
            record_batch(&mut lock(&self.journal), batch);
        }
        out
    }

    fn series_minute_details(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<SeriesMinuteDetail>, StoreError> {
        if to_minute <= from_minute {
            return Ok(Vec::new());
        }
        self.read(|tx| {
            let wanted = series_of_checks(tx, checks)?;
            if wanted.is_empty() {
                return Ok(Vec::new());
            }
            let mut cells = BTreeMap::new();
            hot_cells(tx, &wanted, from_minute, to_minute, &mut cells)?;
            packed_cells(tx, &wanted, from_minute, to_minute, &mut cells)?;
            let mut out: Vec<SeriesMinuteDetail> = cells
                .into_iter()
                .filter_map(|((series, minute), cell)| {
                    let (check, agent) = wanted.get(&series)?;
                    Some(to_rollup(check, agent, minute, cell))
                })
                .collect();
            out.sort_by(|a, b| (&a.check, &a.agent, a.minute).cmp(&(&b.check, &b.agent, b.minute)));
            Ok(out)
        })
    }

    fn series_minutes(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<SeriesMinutes, StoreError> {
        if to_minute <= from_minute {
            return Ok(SeriesMinutes::default());
        }
        self.read(|tx| {
            let wanted = series_of_checks(tx, checks)?;
            let mut series: Vec<(i64, &String, &String)> =
                wanted.iter().map(|(id, (c, a))| (*id, c, a)).collect();
            series.sort_by(|x, y| (x.1, x.2).cmp(&(y.1, y.2)));
            let mut agents: Vec<String> = series.iter().map(|s| s.2.clone()).collect();
            agents.sort_unstable();
            agents.dedup();
            let mut out = SeriesMinutes {
                agents,
                ..SeriesMinutes::default()
            };
            let ids: Vec<i64> = series.iter().map(|s| s.0).collect();
            let mut hot = hot_cells_by_series(tx, &ids, from_minute, to_minute)?;
            let mut decoder = PackDecoder::new().map_err(|e| corrupt("hour pack", e))?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT hour, data FROM hour_pack
                     WHERE series = ?1 AND hour >= ?2 AND hour <= ?3 ORDER BY hour",
                )
                .map_err(map_err)?;
            for (id, _, agent) in series {
                let a = out.agents.binary_search(agent).map_or(0, |i| i as u32);
                let mine = hot.remove(&id).unwrap_or_default();
                compact_series(
                    &mut stmt,
                    &mut decoder,
                    (id, a),
                    (from_minute, to_minute),
                    mine,
                    &mut out,
                )?;
            }
            Ok(out)
        })
    }

    fn gaps(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<GapSpan>, StoreError> {
        self.read(|tx| {
            let wanted = series_of_checks(tx, checks)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT from_minute, to_minute, count FROM gaps
                     WHERE series = ?1 AND from_minute < ?3 AND to_minute >= ?2",
                )
                .map_err(map_err)?;
            let mut out = Vec::new();
            for (series, (check, agent)) in &wanted {
                let rows = stmt
                    .query_map(params![series, from_minute, to_minute], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })
                    .map_err(map_err)?;
                for row in rows {
                    let (from, to, count) = row.map_err(map_err)?;
                    out.push(GapSpan {
                        agent: agent.clone(),
                        check: check.clone(),
                        from_minute: from,
                        to_minute: to,
                        count: to_u64(count),
                    });
                }
            }
            out.sort_by(|a, b| {
                (&a.check, &a.agent, a.from_minute).cmp(&(&b.check, &b.agent, b.from_minute))
            });
            Ok(out)
        })
    }

    fn host_minutes(
        &self,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<HostMinute>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT a.name, s.name, s.resource, h.minute, h.count, h.sum, h.min, h.max
                     FROM host_minute h JOIN host_series s ON s.id = h.hseries
                     JOIN agents a ON a.id = s.agent_id
                     WHERE h.minute >= ?1 AND h.minute < ?2
                     ORDER BY a.name, s.name, s.resource, h.minute",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![from_minute, to_minute], |r| {
                    let count: i64 = r.get(4)?;
                    let sum: f64 = r.get(5)?;
                    Ok(HostMinute {
                        agent: r.get(0)?,
                        name: r.get(1)?,
                        resource: r.get(2)?,
                        minute: r.get(3)?,
                        min: r.get(6)?,
                        avg: host_avg(sum, count),
                        max: r.get(7)?,
                    })
                })
                .map_err(map_err)?;
            rows.collect::<Result<_, _>>().map_err(map_err)
        })
    }

    fn first_seen(&self, checks: &[String]) -> Result<Option<i64>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached("SELECT min(first_minute) FROM series WHERE check_id = ?1")
                .map_err(map_err)?;
            let mut first: Option<i64> = None;
            for check in checks {
                let m: Option<i64> = stmt.query_row([check], |r| r.get(0)).map_err(map_err)?;
                first = match (first, m) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok(first)
        })
    }

    fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT name, last_seen_ns, last_seq, clock_offset_ms, spool_depth,
                            spool_bytes, spool_dropped, spool_corrupt
                     FROM agents WHERE last_seen_ns IS NOT NULL ORDER BY name",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        [
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, Option<i64>>(5)?,
                            r.get::<_, Option<i64>>(6)?,
                            r.get::<_, Option<i64>>(7)?,
                        ],
                    ))
                })
                .map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (agent, seen, seq, offset, spool) = row.map_err(map_err)?;
                let spool = match spool {
                    [Some(d), Some(b), Some(x), Some(c)] => Some(SpoolStatus {
                        depth_measurements: to_u64(d),
                        bytes: to_u64(b),
                        dropped_total: to_u64(x),
                        corrupt_records_total: to_u64(c),
                    }),
                    _ => None,
                };
                out.push(AgentStatus {
                    agent,
                    last_seen: from_ns(seen)?,
                    last_seq: seq.map(to_u64).unwrap_or(0),
                    clock_offset_ms: offset.unwrap_or(0),
                    spool,
                });
            }
            Ok(out)
        })
    }

    fn add_maintenance(
        &self,
        service: &str,
        start: Timestamp,
        end: Timestamp,
        reason: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let (s, e, n) = (ts_ns(start)?, ts_ns(end)?, ts_ns(now)?);
        let w = lock(&self.writer);
        w.conn
            .prepare_cached(
                "INSERT INTO maintenance (service, start_ns, end_ns, reason, created_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut stmt| stmt.execute(params![service, s, e, reason, n]))
            .map_err(map_err)?;
        Ok(w.conn.last_insert_rowid())
    }

    /// Cancelling twice keeps the first cancellation time.
    fn cancel_maintenance(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let n = ts_ns(now)?;
        let w = lock(&self.writer);
        let changed = w
            .conn
            .prepare_cached(
                "UPDATE maintenance SET cancelled_ns = coalesce(cancelled_ns, ?2) WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id, n]))
            .map_err(map_err)?;
        if changed == 0 {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
    }

    fn list_maintenance(&self, service: Option<&str>) -> Result<Vec<MaintenanceRow>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, service, start_ns, end_ns, reason, created_ns, cancelled_ns
                     FROM maintenance WHERE ?1 IS NULL OR service = ?1
                     ORDER BY start_ns, id",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map([service], maintenance_row)
                .map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, service, start, end, reason, created, cancelled) = row.map_err(map_err)?;
                out.push(MaintenanceRow {
                    id,
                    service,
                    start: from_ns(start)?,
                    end: from_ns(end)?,
                    reason,
                    created_at: from_ns(created)?,
                    cancelled_at: cancelled.map(from_ns).transpose()?,
                });
            }
            Ok(out)
        })
    }

    fn raw_measurements(
        &self,
        check: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Measurement)>, StoreError> {
        let (from, to) = (ts_ns(from)?, ts_ns(to)?);
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT r.ts_ns, a.name, r.ok, r.duration_s, r.reason, r.extra
                     FROM raw r JOIN series s ON s.id = r.series JOIN agents a ON a.id = s.agent_id
                     WHERE r.ts_ns >= ?1 AND r.ts_ns < ?2 AND s.check_id = ?3
                     ORDER BY r.ts_ns, a.name",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![from, to, check], raw_row)
                .map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (ts, agent, ok, duration, reason, extra) = row.map_err(map_err)?;
                out.push((
                    agent,
                    rebuild_measurement(
                        check,
                        ts,
                        ok,
                        duration,
                        reason.map(to_u64),
                        extra.as_deref(),
                    )?,
                ));
            }
            Ok(out)
        })
    }

    fn apply_retention(
        &self,
        raw_before: Timestamp,
        rollups_before: Timestamp,
    ) -> Result<(), StoreError> {
        let raw_ns = ts_ns(raw_before)?;
        let roll_ns = ts_ns(rollups_before)?;
        let roll_minute = minute_of(roll_ns);
        {
            let mut w = lock(&self.writer);
            let horizon = roll_minute.max(w.rollup_horizon);
            delete_expired(&mut w.conn, raw_ns, roll_ns, horizon)?;
            w.rollup_horizon = horizon;
            lock(&self.journal).record_all(i64::MIN, horizon);
        }
        self.compact_before(minute_of(raw_ns))?;
        Ok(())
    }

    fn compact(&self, before_minute: i64) -> Result<u64, StoreError> {
        self.compact_before(before_minute)
    }

    fn change_mark(&self) -> u64 {
        lock(&self.journal).mark()
    }

    fn changed_since(
        &self,
        checks: &[String],
        mark: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<bool, StoreError> {
        Ok(lock(&self.journal).changed(checks, mark, from_minute, to_minute))
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.read(|tx| {
            Ok(StoreCounts {
                batches: read_meta(tx, "batches_total")?.map(to_u64).unwrap_or(0),
                measurements: read_meta(tx, "measurements_total")?
                    .map(to_u64)
                    .unwrap_or(0),
            })
        })
    }
}

/// Deletes what retention expired, in one transaction.
///
/// Dedup after retention: batch rows are kept for as long as rollups (plus a day), so a
/// replayed batch is recognised as long as any minute it touched still exists; a replay
/// older than that finds its minutes behind the rollup horizon and is skipped anyway.
fn delete_expired(
    conn: &mut Connection,
    raw_ns: i64,
    roll_ns: i64,
    horizon: i64,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let run = |sql: &str, p: i64| tx.execute(sql, [p]).map(|_| ()).map_err(map_err);
    run("DELETE FROM raw WHERE ts_ns < ?1", raw_ns)?;
    run("DELETE FROM minute_rollup WHERE minute < ?1", horizon)?;
    run(
        "DELETE FROM hour_pack WHERE hour < ?1",
        horizon.div_euclid(60),
    )?;
    trim_boundary_packs(&tx, horizon)?;
    run("DELETE FROM host_minute WHERE minute < ?1", horizon)?;
    run("DELETE FROM gaps WHERE to_minute < ?1", horizon)?;
    run(
        "DELETE FROM batches WHERE received_ns < ?1",
        batches_before(roll_ns),
    )?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('rollup_horizon_minute', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [horizon],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{self, at, batch, ok};

    fn temp_store() -> Box<dyn Store> {
        Box::new(SqliteStore::open_temp().expect("open temp store"))
    }

    contract::contract_tests!(temp_store);

    #[test]
    fn run_all_runs_every_case() {
        contract::run_all(&temp_store);
    }

    fn count(store: &SqliteStore, sql: &str) -> i64 {
        let w = lock(&store.writer);
        w.conn.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    #[test]
    fn compaction_moves_hot_rows_into_hour_packs() {
        let store = SqliteStore::open_temp().expect("open");
        let ms: Vec<Measurement> = (0..150).map(|m| ok("web", m, 0, 0.01)).collect();
        store.commit_batch(&batch("a1", 1, ms)).expect("commit");
        assert_eq!(count(&store, "SELECT count(*) FROM minute_rollup"), 150);
        store
            .apply_retention(at(125, 0), at(0, 0))
            .expect("retention");
        assert_eq!(
            count(&store, "SELECT count(*) FROM minute_rollup"),
            25,
            "minutes 125.. stay hot"
        );
        assert_eq!(
            count(&store, "SELECT count(*) FROM hour_pack"),
            3,
            "hours 0, 1 and part of 2"
        );
        assert_eq!(count(&store, "SELECT count(*) FROM raw"), 25);
        let rows = store
            .series_minute_details(
                &["web".to_owned()],
                contract::BASE_MINUTE,
                contract::BASE_MINUTE + 200,
            )
            .expect("rollups");
        assert_eq!(rows.len(), 150);
        assert!(rows.iter().all(|r| r.probes == 1));
    }

    #[test]
    fn loaded_minutes_read_back_like_ingested_ones() {
        let store = SqliteStore::open_temp().expect("open");
        let minutes: Vec<SeriesMinuteSummary> = (0..90)
            .map(|m| SeriesMinuteSummary {
                minute: contract::BASE_MINUTE + m,
                probes: 6,
                failures: u32::from(m == 70),
                reason: (m == 70).then_some(FailureReason::Dns),
                ok_durations: vec![0.02; if m == 70 { 5 } else { 6 }],
            })
            .collect();
        assert_eq!(store.load_minutes("a1", "web", &minutes).expect("load"), 90);
        let web = ["web".to_owned()];
        let rows = store
            .series_minute_details(&web, contract::BASE_MINUTE, contract::BASE_MINUTE + 90)
            .expect("rollups");
        assert_eq!(rows.len(), 90);
        assert_eq!(rows[70].top_reason.as_deref(), Some("dns"));
        assert_eq!(rows[70].latency.as_ref().map(|h| h.len()), Some(5));
        assert_eq!(
            store.first_seen(&web).expect("first seen"),
            Some(contract::BASE_MINUTE)
        );
        assert_eq!(count(&store, "SELECT count(*) FROM hour_pack"), 2);
        let compact = store
            .series_minutes(&web, contract::BASE_MINUTE, contract::BASE_MINUTE + 90)
            .expect("compact");
        assert_eq!(compact, SeriesMinutes::from_details(&rows));
    }

    #[test]
    fn committed_batches_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("nested/data");
        {
            let store = SqliteStore::open(&data).expect("open");
            store
                .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
                .expect("commit");
        }
        let store = SqliteStore::open(&data).expect("reopen");
        assert!(data.join(DB_FILE).exists());
        assert_eq!(store.counts().expect("counts").measurements, 1);
        let again = store
            .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
            .expect("resend");
        assert!(
            again.duplicate_batch,
            "dedup state must be durable, not cached"
        );
    }

    #[test]
    fn full_database_is_reported_and_rolled_back() {
        let store = SqliteStore::open_temp().expect("open");
        store
            .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
            .expect("first");
        let pages: i64 = {
            let w = lock(&store.writer);
            w.conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .expect("page_count")
        };
        store.set_max_page_count(pages as u64).expect("cap");
        let big: Vec<Measurement> = (0..20_000)
            .map(|i| ok("web", 1 + i / 6, (i % 6) * 10, 0.01))
            .collect();
        let err = store
            .commit_batch(&batch("a1", 2, big))
            .expect_err("must not fit");
        assert!(matches!(err, StoreError::Full(_)), "{err:?}");
        assert_eq!(
            store.counts().expect("counts").measurements,
            1,
            "rolled back"
        );
        store.set_max_page_count(1 << 30).expect("uncap");
        let out = store
            .commit_batch(&batch("a1", 2, vec![ok("web", 1, 0, 0.01)]))
            .expect("after space freed");
        assert_eq!(
            (out.duplicate_batch, out.stored),
            (false, 1),
            "the failed seq was not recorded"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteStore::open(dir.path()).expect("create"));
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
        conn.pragma_update(None, "user_version", schema::SCHEMA_VERSION + 1)
            .expect("bump");
        drop(conn);
        let err = SqliteStore::open(dir.path()).err().expect("must refuse");
        assert!(err.to_string().contains("newer collector"), "{err}");
    }

    #[test]
    fn retention_horizon_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            store
                .apply_retention(at(100, 0), at(100, 0))
                .expect("retention");
        }
        let store = SqliteStore::open(dir.path()).expect("reopen");
        let out = store
            .commit_batch(&batch("a1", 1, vec![ok("web", 50, 0, 0.01)]))
            .expect("old data");
        assert_eq!((out.stored, out.duplicate_measurements), (0, 1));
    }

    #[test]
    fn reads_do_not_wait_for_an_open_write_transaction() {
        let store = SqliteStore::open_temp().expect("open");
        store
            .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
            .expect("commit");
        let mut w = lock(&store.writer);
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("hold writer");
        tx.execute("DELETE FROM minute_rollup", [])
            .expect("uncommitted delete");
        // The reader sees the last committed snapshot while the writer holds its lock.
        assert_eq!(store.counts().expect("counts").batches, 1);
        let rows = store
            .series_minute_details(
                &["web".to_owned()],
                contract::BASE_MINUTE,
                contract::BASE_MINUTE + 1,
            )
            .expect("rollups");
        assert_eq!(rows.len(), 1);
        drop(tx);
    }
}
