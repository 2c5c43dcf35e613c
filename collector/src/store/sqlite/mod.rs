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
//!
//! Files: `schema.rs` (migrations), `error.rs` (error mapping), `write.rs` (the commit
//! path), `packs.rs` (hourly packs: compaction and bulk loads), `read.rs` (the read path),
//! `thresholds.rs` (first-configured instants and exact latency-threshold counts),
//! `admin.rs` (maintenance windows, agents, retention), `inspect.rs` (reads only tests and
//! measurements use), `group.rs` (group commit), `late.rs` (the durable late-write log),
//! `checkpoint.rs` (WAL checkpoints off the commit path), `blocks.rs` (raw measurements of
//! older hours in raw blocks: compaction, reads, retention). This file opens the connections and maps the [`Store`] calls onto
//! them; the other files never import it.

mod admin;
mod blocks;
mod checkpoint;
mod error;
mod group;
#[cfg(any(test, feature = "test-support"))]
mod inspect;
mod late;
mod packs;
mod read;
mod schema;
mod seals;
#[cfg(test)]
mod tests;
mod thresholds;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use attest_config::wire::Measurement;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, Transaction};

#[cfg(any(test, feature = "test-support"))]
use super::InspectStore;
use super::journal::ChangeJournal;
use super::keys::{minute_of, ts_ns};
use super::{
    AgentStatus, CommitOutcome, IngestBatch, MaintenanceRow, NewMaintenance, NewNote, NoteRow,
    SeriesMinuteSummary, Store, StoreCounts, StoreError,
};
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};
use error::map_err;
use write::{IdCache, Writer};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "attest.db";

/// How long a connection waits for a lock held by another process (a backup tool, the
/// `sqlite3` shell) before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// Batches waiting for the writer: committed together (see `group`).
    group: group::Queue,
    reader: Mutex<Connection>,
    /// Which minutes of which checks changed when (see `Store::changed_since`).
    journal: Mutex<ChangeJournal>,
    /// Copies the WAL into the database file off the commit path.
    checkpointer: checkpoint::Checkpointer,
    path: PathBuf,
    /// Keeps a test's temporary directory alive as long as the store; dropped last.
    #[cfg(test)]
    _temp: Option<tempfile::TempDir>,
}

/// Makes the database file (created empty if missing: SQLite then takes it as a new
/// database) and any WAL/shm files 0600, and a directory this store created 0700. SQLite
/// creates its WAL and shm files with the database file's permissions, so they follow.
fn owner_only(dir: &Path, db: &Path, dir_created: bool) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |what: &Path, e: std::io::Error| {
        StoreError::Backend(format!(
            "cannot restrict permissions of {}: {e}; check that the collector owns it",
            what.display()
        ))
    };
    if dir_created {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)
        .map_err(|e| fail(db, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(&p, e))?;
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock unwound through a `Transaction`, which rolled back;
    // the connection is usable. Writer caches are cleared by the caller on errors.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (creating on first start) `<data_dir>/attest.db` and migrates it. The database
    /// and its WAL and shared-memory files are readable by the owner only (0600), and a data
    /// directory created here is 0700, whatever the umask: they hold every measurement.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let created = !data_dir.exists();
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
        owner_only(data_dir, &path, created)?;
        let mut conn = Connection::open(&path).map_err(|e| {
            StoreError::Backend(format!(
                "cannot open database {}: {e}; check permissions",
                path.display()
            ))
        })?;
        configure_writer(&conn)?;
        schema::migrate(&mut conn)?;
        let rollup_horizon = read::read_meta(&conn, "rollup_horizon_minute")?.unwrap_or(i64::MIN);
        let blocked = blocks::blocked_hour(&conn)?;
        let reader = open_reader(&path)?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer::new(conn, rollup_horizon, blocked)),
            group: group::Queue::default(),
            reader: Mutex::new(reader),
            journal: Mutex::new(ChangeJournal::default()),
            checkpointer: checkpoint::Checkpointer::start(&path),
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

    /// Moves hot minute rows before `before_minute` into hourly packs, and raw rows of the
    /// hours that end by then into raw blocks, in short transactions so ingest can
    /// interleave. Returns the number of hot and raw rows moved.
    pub fn compact_before(&self, before_minute: i64) -> Result<u64, StoreError> {
        let mut moved = self.compact_raw_before(before_minute.div_euclid(60))?;
        loop {
            let mut w = lock(&self.writer);
            let step = packs::compact_one_hour(&mut w.conn, before_minute);
            match step {
                Ok(Some(n)) => {
                    moved += n;
                    self.checkpointer.committed();
                }
                Ok(None) => return Ok(moved),
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the raw rows of hours before `before_hour` into raw blocks (late data into an
    /// hour already compacted is merged into its block), a chunk of series of one hour per
    /// transaction (the writer is released between chunks, so ingest interleaves).
    fn compact_raw_before(&self, before_hour: i64) -> Result<u64, StoreError> {
        let mut moved = 0;
        loop {
            let mut w = lock(&self.writer);
            match blocks::compact_one_chunk(&mut w.conn, before_hour, blocks::CHUNK_SERIES)? {
                Some((n, hour)) => {
                    moved += n;
                    w.raw_block_hour = w.raw_block_hour.max(hour + 1);
                    self.checkpointer.committed();
                }
                None => return Ok(moved),
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
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;
         PRAGMA wal_autocheckpoint = {};",
        checkpoint::WRITER_AUTOCHECKPOINT_PAGES
    ))
    .map_err(map_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    write::register_functions(conn)
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

impl Store for SqliteStore {
    /// Group commit (see `group`): the batch waits for the writer with any others that
    /// arrive meanwhile, and the holder of the writer commits them all at once.
    fn commit_batch(&self, batch: &IngestBatch) -> Result<CommitOutcome, StoreError> {
        self.commit_shared(Arc::new(batch.clone()))
    }

    fn commit_shared(&self, batch: Arc<IngestBatch>) -> Result<CommitOutcome, StoreError> {
        let ticket = self.group.enqueue(batch);
        let mut w = lock(&self.writer);
        if let Some(outcome) = self.group.take(ticket) {
            return outcome;
        }
        let (tickets, batches): (Vec<u64>, Vec<Arc<IngestBatch>>) =
            self.group.drain().into_iter().unzip();
        let outcomes = w.commit_group(&batches);
        let mut journal = lock(&self.journal);
        for (b, out) in batches.iter().zip(&outcomes) {
            if out.is_ok() {
                journal.record_batch(b);
            }
        }
        drop(journal);
        self.checkpointer.committed();
        self.group.post(tickets.into_iter().zip(outcomes));
        let mine = self.group.take(ticket);
        drop(w);
        mine.unwrap_or_else(|| {
            Err(StoreError::Backend(
                "a batch left the commit queue without an outcome; resend it".into(),
            ))
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
        self.read(|tx| read::series_minutes(tx, checks, from_minute, to_minute))
    }

    fn gaps(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<GapSpan>, StoreError> {
        self.read(|tx| read::gaps(tx, checks, from_minute, to_minute))
    }

    fn host_minutes(
        &self,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<HostMinute>, StoreError> {
        self.read(|tx| read::host_minutes(tx, from_minute, to_minute))
    }

    fn first_seen(&self, checks: &[String]) -> Result<Option<i64>, StoreError> {
        self.read(|tx| read::first_seen(tx, checks))
    }

    fn note_configured(&self, services: &[String], now: Timestamp) -> Result<(), StoreError> {
        let mut w = lock(&self.writer);
        thresholds::note_configured(&mut w.conn, services, now)
    }

    fn first_configured(&self, service: &str) -> Result<Option<Timestamp>, StoreError> {
        self.read(|tx| thresholds::first_configured(tx, service))
    }

    fn track_threshold(&self, check: &str, threshold_us: u64) -> Result<(), StoreError> {
        let mut w = lock(&self.writer);
        w.tracked.clear();
        thresholds::track(&mut w.conn, check, threshold_us)?;
        // The recomputed counts may change the figures of any kept minute of the check.
        lock(&self.journal).record(check, i64::MIN, i64::MAX);
        Ok(())
    }

    fn threshold_over(
        &self,
        checks: &[String],
        threshold_us: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<ThresholdOver, StoreError> {
        self.read(|tx| thresholds::threshold_over(tx, checks, threshold_us, from_minute, to_minute))
    }

    fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.read(admin::agents)
    }

    fn agent_checks(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(admin::agent_checks)
    }

    fn add_maintenance(&self, w: &NewMaintenance<'_>, now: Timestamp) -> Result<i64, StoreError> {
        admin::add_maintenance(&lock(&self.writer).conn, w, now)
    }

    /// Cancelling twice keeps the first cancellation time.
    fn cancel_maintenance(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let w = lock(&self.writer);
        admin::cancel_maintenance(&w.conn, id, now)
    }

    fn list_maintenance(&self, service: Option<&str>) -> Result<Vec<MaintenanceRow>, StoreError> {
        self.read(|tx| admin::list_maintenance(tx, service))
    }

    fn add_report_note(&self, n: &NewNote<'_>, now: Timestamp) -> Result<i64, StoreError> {
        admin::add_report_note(&lock(&self.writer).conn, n, now)
    }

    fn record_definition(&self, d: &super::DefinitionRow) -> Result<bool, StoreError> {
        admin::record_definition(&lock(&self.writer).conn, d)
    }

    fn definitions(
        &self,
        service: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<super::DefinitionRow>, StoreError> {
        self.read(|tx| admin::definitions(tx, service, (from, to)))
    }

    fn report_notes(&self, month: &str, service: Option<&str>) -> Result<Vec<NoteRow>, StoreError> {
        self.read(|tx| admin::report_notes(tx, month, service))
    }

    fn raw_measurements(
        &self,
        check: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Measurement)>, StoreError> {
        self.read(|tx| read::raw_measurements(tx, check, from, to))
    }

    fn batch_measurements(&self, agent: &str, seq: u64) -> Result<Vec<Measurement>, StoreError> {
        self.read(|tx| read::batch_measurements(tx, agent, seq))
    }

    fn seal_links(&self, agent: &str, seq: u64) -> Result<Vec<crate::store::Link>, StoreError> {
        self.read(|tx| seals::links(tx, agent, seq))
    }

    fn agent_keys(&self) -> Result<Vec<crate::store::AgentKeyRow>, StoreError> {
        self.read(seals::keys)
    }

    fn batch_seals(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::store::StoredSeal>, StoreError> {
        self.read(|tx| seals::in_range(tx, from, to))
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
            admin::delete_expired(&mut w.conn, raw_ns, roll_ns, horizon)?;
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

    /// Read while holding the writer, so that every commit the mark covers has also been
    /// recorded in the in-memory journal (`commit_batch` journals before releasing the
    /// writer): a reader that validates cached results against the journal after taking
    /// this mark has seen every change the mark covers.
    fn late_mark(&self) -> Result<Option<u64>, StoreError> {
        let _writer = lock(&self.writer);
        self.read(late::mark).map(Some)
    }

    fn changed_late_since(
        &self,
        checks: &[String],
        mark: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<bool, StoreError> {
        self.read(|tx| late::changed(tx, checks, mark, from_minute, to_minute))
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.read(read::counts)
    }
}

#[cfg(any(test, feature = "test-support"))]
impl InspectStore for SqliteStore {
    fn series_minute_details(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<crate::minutes::SeriesMinuteDetail>, StoreError> {
        self.read(|tx| inspect::series_minute_details(tx, checks, from_minute, to_minute))
    }
}

/// Measurements of the backend itself (`store::bench`).
#[cfg(any(test, feature = "test-support"))]
impl SqliteStore {
    /// Bytes used by each table and index (needs SQLite's `dbstat`), for the size report.
    pub fn table_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
            .map_err(map_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(map_err)?;
        rows.map(|r| r.map(|(n, s)| (n, super::keys::to_u64(s))).map_err(map_err))
            .collect()
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
            let mut cells = std::collections::BTreeMap::new();
            inspect::packed_cells(tx, &wanted, from, to, &mut cells)?;
            Ok(cells.len())
        })
        .unwrap_or(0)
    }
}
