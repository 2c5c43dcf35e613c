//! The PostgreSQL backend of [`Store`], for scale-out: several collectors share one
//! database and any of them may take any batch.
//!
//! Threading design: the [`Store`] trait is synchronous and is called from tokio's blocking
//! pool (and from plain threads in tests). A `block_on` there could panic or deadlock when
//! the caller's thread belongs to another runtime, so the store owns a small dedicated
//! runtime (two worker threads) that runs the connections and every query. A call hands an
//! owned job to that runtime and waits on a std channel for the answer: this works from
//! any thread that may block, and never nests runtimes. Dropping the store shuts the
//! runtime down in the background, so dropping it inside async code is fine too.
//! Do not call the store on an async worker thread (it blocks, like the SQLite backend).
//!
//! Invariants:
//! - `commit_batch` is one READ COMMITTED transaction: the batch row is inserted with
//!   `ON CONFLICT DO NOTHING` (a concurrent twin waits on the unique index, then sees a
//!   duplicate and writes nothing else); raw rows are inserted with `ON CONFLICT DO
//!   NOTHING RETURNING`, and only the returned (new) rows update rollups, so a measurement
//!   counts once however many collectors receive it.
//! - Rollup rows are merged under row locks taken in (series, minute) order; deadlocks and
//!   serialization failures roll back and retry the whole transaction (bounded).
//! - Multi-statement reads run in one REPEATABLE READ, READ ONLY transaction (one snapshot).
//! - Every connection is made with the configured TLS (`tls.rs`: libpq's `sslmode` on
//!   rustls with ring); the default `prefer` encrypts when the server offers it.

mod blocks;
mod ingest;
mod journal;
mod late;
mod partitions;
mod read;
mod retention;
mod schema;
mod seals;
#[cfg(any(test, feature = "test-support"))]
pub mod test_db;
#[cfg(test)]
pub(crate) mod tests;
mod thresholds;
mod tls;
#[cfg(test)]
mod tls_tests;

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::runtime::Runtime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
#[cfg(test)]
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use attest_config::PostgresTls;

use attest_config::wire::Measurement;

use super::keys::{to_u64, ts_ns};
use super::{
    AgentStatus, CommitOutcome, IngestBatch, MaintenanceRow, NewMaintenance, NewNote, NoteRow,
    Store, StoreCounts, StoreError,
};
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};

pub use schema::SCHEMA_VERSION;

/// Connections per store: enough for ingest and reads to overlap without crowding a
/// shared server when several collectors run.
const MAX_CONNECTIONS: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a transaction that PostgreSQL aborted to break a deadlock or a
/// serialization conflict with another collector.
const MAX_ATTEMPTS: u32 = 8;

/// An error inside a job: a PostgreSQL error keeps its SQLSTATE until it is known whether
/// to retry; everything else is already a [`StoreError`].
#[derive(Debug)]
pub enum TxError {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl TxError {
    /// Whether PostgreSQL aborted the transaction only to resolve a conflict with a
    /// concurrent one; running it again is then correct.
    fn is_retryable(&self) -> bool {
        matches!(self, TxError::Pg(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }

    fn into_store(self) -> StoreError {
        match self {
            TxError::Store(e) => e,
            TxError::Pg(e) => map_pg(&e),
        }
    }
}

/// Maps a PostgreSQL error; a full disk (SQLSTATE 53100) becomes [`StoreError::Full`].
fn map_pg(e: &tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::DISK_FULL) {
        return StoreError::Full(describe(e));
    }
    StoreError::Backend(describe(e))
}

/// The server's own message and SQLSTATE when there is one, else the error chain.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "PostgreSQL {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        );
    }
    let mut msg = format!("PostgreSQL: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    if e.is_closed() {
        msg.push_str("; the connection was lost, check that the server is up");
    }
    msg
}

/// A small connection pool: at most [`MAX_CONNECTIONS`] clients, reused while open.
struct Pool {
    config: Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The configured `postgres_sslmode`, named in connection errors.
    sslmode: &'static str,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// A checked-out client; goes back to the pool on drop unless its connection closed.
struct Pooled {
    client: Option<Client>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Backend("pooled PostgreSQL client already returned".into()))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            let mut idle = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.push(c);
        }
    }
}

impl Pool {
    async fn get(self: &Arc<Self>) -> Result<Pooled, TxError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            StoreError::Backend("the PostgreSQL connection pool is shut down".into())
        })?;
        let reused = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Pooled {
            client: Some(client),
            pool: self.clone(),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client, TxError> {
        let tls = self.tls.clone();
        let (client, conn) = self.config.connect(tls).await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot connect to PostgreSQL with postgres_sslmode = {:?} ({}); check \
                 postgres_url, that the server is up, that pg_hba.conf admits this host and \
                 user with this TLS setting, and for verify-ca/verify-full that \
                 postgres_sslrootcert holds the CA of the server's certificate",
                self.sslmode,
                describe(&e)
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %map_pg(&e), "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    runtime: Option<Runtime>,
    pool: Arc<Pool>,
    /// How retention cuts its deletes (`retention.rs`).
    retention: retention::Chunks,
    /// The change journal, fed from the database's log of commits (`journal.rs`).
    feed: Arc<Mutex<journal::Feed>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or a key=value string) with the default TLS
    /// (`prefer`) and migrates the schema; see [`PgStore::connect_with`].
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, &PostgresTls::default())
    }

    /// Connects to `url` with the configured TLS and migrates the schema. The URL is never
    /// echoed in errors: it may hold a password.
    pub fn connect_with(url: &str, tls_config: &PostgresTls) -> Result<PgStore, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| {
            StoreError::Backend(format!(
                "postgres_url is not a valid PostgreSQL connection URL ({e}); \
                 expected postgres://user:password@host:5432/database"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("attest-collector");
        let tls =
            tls::setup(tls_config, &mut config).map_err(|e| StoreError::Backend(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("attest-pg")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the PostgreSQL worker threads: {e}"))
            })?;
        let store = PgStore {
            runtime: Some(runtime),
            pool: Arc::new(Pool {
                config,
                tls,
                sslmode: tls_config.mode.as_str(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            }),
            retention: retention::Chunks::default(),
            feed: Arc::default(),
        };
        store.run(|pool| async move {
            let mut c = pool.get().await?;
            schema::migrate(c.client()?).await
        })?;
        Ok(store)
    }

    /// The change journal of this process (`journal.rs`).
    fn feed(&self) -> std::sync::MutexGuard<'_, journal::Feed> {
        self.feed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The same store with retention cut into `chunks` (tests: tiny chunks, pauses).
    #[cfg(test)]
    fn with_retention_chunks(mut self, chunks: retention::Chunks) -> PgStore {
        self.retention = chunks;
        self
    }

    /// Runs a job on the store's runtime and waits for its answer (see the module header).
    fn run<T, F, Fut>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Pool>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, TxError>> + Send + 'static,
    {
        let Some(rt) = self.runtime.as_ref() else {
            return Err(StoreError::Backend(
                "the PostgreSQL store is shut down".into(),
            ));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let pool = self.pool.clone();
        rt.spawn(async move {
            let out = job(pool).await.map_err(TxError::into_store);
            // The caller may be gone only if it panicked; nobody is left to tell.
            let _ = tx.send(out);
        });
        rx.recv().map_err(|_| {
            StoreError::Backend(
                "a PostgreSQL job ended without an answer (it panicked); see the log".into(),
            )
        })?
    }

    /// Runs `job` in a fresh transaction on a pooled connection, again if PostgreSQL
    /// aborted it to resolve a conflict with another collector.
    fn run_retrying<T, F, Fut>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(Pooled) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, TxError>> + Send + 'static,
    {
        self.run(move |pool| async move {
            let mut attempt = 1;
            loop {
                let conn = pool.get().await?;
                match job(conn).await {
                    Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => attempt += 1,
                    other => return other,
                }
            }
        })
    }
}

impl Store for PgStore {
    fn commit_batch(&self, batch: &IngestBatch) -> Result<CommitOutcome, StoreError> {
        let batch = Arc::new(batch.clone());
        let out = self.run_retrying({
            let batch = batch.clone();
            move |mut c| {
                let batch = batch.clone();
                async move { ingest::commit(c.client()?, &batch).await }
            }
        })?;
        // Seen at once by this process; other collectors read it from the log.
        self.feed().journal.record_batch(&batch);
        Ok(out)
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
        let checks = checks.to_vec();
        self.run_retrying(move |mut c| {
            let checks = checks.clone();
            async move { read::series_minutes(c.client()?, &checks, from_minute, to_minute).await }
        })
    }

    fn gaps(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<GapSpan>, StoreError> {
        let checks = checks.to_vec();
        self.run(move |pool| async move {
            read::gaps(pool.get().await?.client()?, &checks, from_minute, to_minute).await
        })
    }

    fn host_minutes(
        &self,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<HostMinute>, StoreError> {
        self.run(move |pool| async move {
            read::host_minutes(pool.get().await?.client()?, from_minute, to_minute).await
        })
    }

    fn first_seen(&self, checks: &[String]) -> Result<Option<i64>, StoreError> {
        let checks = checks.to_vec();
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            let row = c
                .client()?
                .query_one(
                    "SELECT min(first_minute) FROM series WHERE check_id = ANY($1)",
                    &[&checks],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn note_configured(&self, services: &[String], now: Timestamp) -> Result<(), StoreError> {
        let services = services.to_vec();
        self.run_retrying(move |mut c| {
            let services = services.clone();
            async move { thresholds::note_configured(c.client()?, &services, now).await }
        })
    }

    fn first_configured(&self, service: &str) -> Result<Option<Timestamp>, StoreError> {
        let service = service.to_owned();
        self.run(move |pool| async move {
            thresholds::first_configured(pool.get().await?.client()?, &service).await
        })
    }

    fn track_threshold(&self, check: &str, threshold_us: u64) -> Result<(), StoreError> {
        let check = check.to_owned();
        self.run_retrying({
            let check = check.clone();
            move |mut c| {
                let check = check.clone();
                async move { thresholds::track(c.client()?, &check, threshold_us).await }
            }
        })?;
        // The recomputed counts may change the figures of any kept minute of the check.
        self.feed().journal.record(&check, i64::MIN, i64::MAX);
        Ok(())
    }

    fn threshold_over(
        &self,
        checks: &[String],
        threshold_us: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<ThresholdOver, StoreError> {
        let checks = checks.to_vec();
        self.run_retrying(move |mut c| {
            let checks = checks.clone();
            async move {
                let range = (from_minute, to_minute);
                thresholds::threshold_over(c.client()?, &checks, threshold_us, range).await
            }
        })
    }

    fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.run(|pool| async move { read::agents(pool.get().await?.client()?).await })
    }

    fn agent_checks(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            let rows = c
                .client()?
                .query(
                    "SELECT a.name, s.check_id FROM series s JOIN agents a ON a.id = s.agent_id
                     ORDER BY a.name, s.check_id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    fn add_maintenance(&self, w: &NewMaintenance<'_>, now: Timestamp) -> Result<i64, StoreError> {
        let (s, e, n) = (ts_ns(w.start)?, ts_ns(w.end)?, ts_ns(now)?);
        let (service, reason) = (w.service.to_owned(), w.reason.to_owned());
        let by = w.registered_by.to_owned();
        let reference = w.reference.map(str::to_owned);
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            let row = c
                .client()?
                .query_one(
                    "INSERT INTO maintenance
                       (service, start_ns, end_ns, reason, created_ns, registered_by, reference)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[&service, &s, &e, &reason, &n, &by, &reference],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    /// Cancelling twice keeps the first cancellation time.
    fn cancel_maintenance(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let n = ts_ns(now)?;
        let changed = self.run(move |pool| async move {
            let mut c = pool.get().await?;
            Ok(c.client()?
                .execute(
                    "UPDATE maintenance SET cancelled_ns = coalesce(cancelled_ns, $2) WHERE id = $1",
                    &[&id, &n],
                )
                .await?)
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound(id));
        }
        Ok(())
    }

    fn list_maintenance(&self, service: Option<&str>) -> Result<Vec<MaintenanceRow>, StoreError> {
        let service = service.map(str::to_owned);
        self.run(move |pool| async move {
            read::maintenance(pool.get().await?.client()?, service.as_deref()).await
        })
    }

    fn add_report_note(&self, n: &NewNote<'_>, now: Timestamp) -> Result<i64, StoreError> {
        let at = ts_ns(now)?;
        let (month, service) = (n.month.to_owned(), n.service.to_owned());
        let (by, cause, action) = (
            n.written_by.to_owned(),
            n.cause.to_owned(),
            n.action.to_owned(),
        );
        let owner = n.owner.map(str::to_owned);
        let due = n.due.map(|d| d.to_string());
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            let row = c
                .client()?
                .query_one(
                    "INSERT INTO report_note
                       (month, service, written_ns, written_by, cause, action, owner, due)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    &[&month, &service, &at, &by, &cause, &action, &owner, &due],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn record_definition(&self, d: &super::DefinitionRow) -> Result<bool, StoreError> {
        let at = ts_ns(d.first_seen)?;
        let d = d.clone();
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            // Two collectors recording at once may both insert the same digest: harmless (the
            // report shows the earlier), and no lock is worth holding for it.
            let n = c
                .client()?
                .execute(
                    "INSERT INTO service_definition (service, sha256, first_seen_ns, definition, cause)
                     SELECT $1, $2, $3, $4, $5
                     WHERE NOT EXISTS (
                       SELECT 1 FROM (SELECT sha256 FROM service_definition WHERE service = $1
                                      ORDER BY first_seen_ns DESC, id DESC LIMIT 1) AS latest
                       WHERE latest.sha256 = $2)",
                    &[&d.service, &d.sha256, &at, &d.definition, &d.cause],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn definitions(
        &self,
        service: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<super::DefinitionRow>, StoreError> {
        let (service, from, to) = (service.to_owned(), ts_ns(from)?, ts_ns(to)?);
        self.run(move |pool| async move {
            read::definitions(pool.get().await?.client()?, &service, (from, to)).await
        })
    }

    fn report_notes(&self, month: &str, service: Option<&str>) -> Result<Vec<NoteRow>, StoreError> {
        let (month, service) = (month.to_owned(), service.map(str::to_owned));
        self.run(move |pool| async move {
            read::report_notes(pool.get().await?.client()?, &month, service.as_deref()).await
        })
    }

    fn raw_measurements(
        &self,
        check: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Measurement)>, StoreError> {
        let (from, to) = (ts_ns(from)?, ts_ns(to)?);
        let check = check.to_owned();
        self.run(move |pool| async move {
            read::raw(pool.get().await?.client()?, &check, from, to).await
        })
    }

    fn seal_links(&self, agent: &str, seq: u64) -> Result<Vec<crate::store::Link>, StoreError> {
        let agent = agent.to_owned();
        self.run(
            move |pool| async move { seals::links(pool.get().await?.client()?, &agent, seq).await },
        )
    }

    fn agent_keys(&self) -> Result<Vec<crate::store::AgentKeyRow>, StoreError> {
        self.run(|pool| async move { seals::keys(pool.get().await?.client()?).await })
    }

    fn batch_seals(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::store::StoredSeal>, StoreError> {
        self.run(
            move |pool| async move { seals::in_range(pool.get().await?.client()?, from, to).await },
        )
    }

    fn batch_measurements(&self, agent: &str, seq: u64) -> Result<Vec<Measurement>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(Vec::new());
        };
        let agent = agent.to_owned();
        self.run(
            move |pool| async move { read::batch(pool.get().await?.client()?, &agent, seq).await },
        )
    }

    /// Compacts raw rows of the hours that end by `before_minute` into raw blocks
    /// (`blocks`), a chunk of series of one hour per transaction; returns the rows moved.
    fn compact(&self, before_minute: i64) -> Result<u64, StoreError> {
        // The pass runs `COMPACT_LAG_MINUTES` behind its clock: partitions for its days.
        let now_minute = before_minute.saturating_add(crate::store::retention::COMPACT_LAG_MINUTES);
        self.run_retrying(move |mut c| async move {
            partitions::ensure_around(c.client()?, now_minute).await
        })?;
        let before_hour = before_minute.div_euclid(60);
        let mut moved = 0;
        loop {
            let step = self.run_retrying(move |mut c| async move {
                blocks::compact_one_chunk(c.client()?, before_hour, blocks::CHUNK_SERIES).await
            })?;
            match step {
                Some(n) => moved += n,
                None => return Ok(moved),
            }
        }
    }

    fn apply_retention(
        &self,
        raw_before: Timestamp,
        rollups_before: Timestamp,
    ) -> Result<(), StoreError> {
        let raw_ns = ts_ns(raw_before)?;
        let roll_ns = ts_ns(rollups_before)?;
        let chunks = self.retention.clone();
        let deleted = self.run_retrying(move |mut c| {
            let chunks = chunks.clone();
            async move { retention::delete_expired(c.client()?, raw_ns, roll_ns, &chunks).await }
        })?;
        tracing::debug!(deleted, "PostgreSQL retention done");
        // Seen at once by this process (a later pass may have deleted less: the earlier
        // ones were recorded when they ran); other collectors read it from the log.
        self.feed()
            .journal
            .record_all(i64::MIN, super::keys::minute_of(roll_ns));
        Ok(())
    }

    /// Reads the commits every collector logged since the last mark into this process's
    /// journal first (`journal.rs`); when that fails, everything counts as changed.
    fn change_mark(&self) -> u64 {
        if !self.feed().due() {
            return self.feed().journal.mark();
        }
        let feed = self.feed.clone();
        let caught_up = self.run(move |pool| async move {
            journal::catch_up(pool.get().await?.client()?, &feed).await
        });
        let mut f = self.feed();
        if let Err(e) = caught_up {
            tracing::warn!("change journal not read (everything counts as changed): {e}");
            f.journal.record_all(i64::MIN, i64::MAX);
        }
        f.journal.mark()
    }

    fn changed_since(
        &self,
        checks: &[String],
        mark: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .feed()
            .journal
            .changed(checks, mark, from_minute, to_minute))
    }

    /// A mark of the durable late-write log (`late.rs`): it waits for the logging commits
    /// in flight, of this collector and any other on the database.
    fn late_mark(&self) -> Result<Option<u64>, StoreError> {
        self.run(|pool| async move { late::mark(pool.get().await?.client()?).await })
            .map(Some)
    }

    fn changed_late_since(
        &self,
        checks: &[String],
        mark: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<bool, StoreError> {
        let checks = checks.to_vec();
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            late::changed(c.client()?, &checks, mark, from_minute, to_minute).await
        })
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            let row = c
                .client()?
                .query_one(
                    "SELECT coalesce(sum(batches_total), 0)::int8,
                            coalesce(sum(measurements_total), 0)::int8 FROM agents",
                    &[],
                )
                .await?;
            Ok(StoreCounts {
                batches: to_u64(row.try_get(0)?),
                measurements: to_u64(row.try_get(1)?),
            })
        })
    }
}

#[cfg(any(test, feature = "test-support"))]
impl super::InspectStore for PgStore {
    fn series_minute_details(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<crate::minutes::SeriesMinuteDetail>, StoreError> {
        if to_minute <= from_minute {
            return Ok(Vec::new());
        }
        let checks = checks.to_vec();
        self.run_retrying(move |mut c| {
            let checks = checks.clone();
            async move {
                read::series_minute_details(c.client()?, &checks, from_minute, to_minute).await
            }
        })
    }
}
