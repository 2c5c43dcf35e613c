//! Storage of measurements and their minute rollups behind one [`Store`] trait, with an
//! embedded SQLite backend (default) and PostgreSQL (scale-out: several collectors share one
//! database, any of them may take any batch). One contract test suite (`store::contract`)
//! runs against every backend.
//!
//! Invariants:
//! - Everything is UTC. Minutes are Unix minutes (`unix_seconds.div_euclid(60)`).
//! - `commit_batch` is atomic and durable when it returns `Ok`: the caller acks only then.
//! - A batch `(agent, seq)` and a measurement `(agent, check, ts)` are stored at most once;
//!   a resent batch is reported as a duplicate and changes nothing.
//! - Late data updates the rollups of past minutes; nothing is frozen by arrival time.
//! - Counts (`StoreCounts`) are totals ever committed; retention does not lower them.

use attest_config::wire::{Gap, Measurement, SpoolStatus};
use jiff::Timestamp;

use crate::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};

/// A batch that passed ingest validation and authentication.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub agent: String,
    pub seq: u64,
    pub received_at: Timestamp,
    /// Agent clock minus collector clock, in milliseconds, as measured at receipt.
    pub clock_offset_ms: i64,
    pub measurements: Vec<Measurement>,
    pub gaps: Vec<Gap>,
    pub spool: Option<SpoolStatus>,
    /// The batch's verified evidence; `None` for an unsigned batch (or an import).
    pub seal: Option<BatchSeal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The `(agent, seq)` had been committed before; nothing was stored.
    pub duplicate_batch: bool,
    /// Measurements newly stored.
    pub stored: u64,
    /// Measurements skipped because their `(agent, check, ts)` was already stored, or
    /// because their minute is older than the rollup retention (it was stored once and has
    /// since expired; counting it again would resurrect part of a deleted minute).
    pub duplicate_measurements: u64,
}

/// One minute of already aggregated probe results of one check and agent, for bulk loads
/// of history (`SqliteStore::load_minutes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesMinuteSummary {
    pub minute: i64,
    pub probes: u32,
    pub failures: u32,
    /// The reason of the minute's failures; `None` counts them as `other`.
    pub reason: Option<attest_config::wire::FailureReason>,
    /// Durations of the successful probes that had one, in seconds.
    pub ok_durations: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentStatus {
    pub agent: String,
    pub last_seen: Timestamp,
    pub last_seq: u64,
    pub clock_offset_ms: i64,
    pub spool: Option<SpoolStatus>,
}

/// A maintenance window registered through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceRow {
    pub id: i64,
    pub service: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub reason: String,
    pub created_at: Timestamp,
    pub cancelled_at: Option<Timestamp>,
    /// The name of the credential that registered it (never a secret); `None` for windows
    /// stored before registrants were recorded.
    pub registered_by: Option<String>,
    /// The change ticket or other reference the registrant gave, if any.
    pub reference: Option<String>,
}

/// A maintenance window to store, as the maintenance API validated it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewMaintenance<'a> {
    pub service: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
    pub reason: &'a str,
    /// The name of the credential that registered it (never a secret).
    pub registered_by: &'a str,
    /// A change ticket or other reference (a field of its own, not mixed into `reason`).
    pub reference: Option<&'a str>,
}

/// A note on one service's month ("Comments and actions" of the monthly report), as the
/// notes API or `report note` validated it. Notes are only ever added: an auditor reads
/// what was written when, so a correction is a new note, not an edit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewNote<'a> {
    /// The report month, `YYYY-MM`.
    pub month: &'a str,
    pub service: &'a str,
    /// The name of the admin credential (or `cli`) that wrote it (never a secret).
    pub written_by: &'a str,
    pub cause: &'a str,
    pub action: &'a str,
    pub owner: Option<&'a str>,
    pub due: Option<jiff::civil::Date>,
}

/// A service definition as recorded: in force from `first_seen` until the next one of the
/// same service. The definition history a report lists (ISO/IEC 20000-1 asks what the
/// agreement measured when, not only what it measures now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionRow {
    pub service: String,
    /// Hex SHA-256 of `[definition]` (the report's `definitions_sha256` of this service).
    pub sha256: String,
    pub first_seen: Timestamp,
    /// The canonical JSON object the digest is over (written by the definition history).
    pub definition: String,
    /// What made the collector record it: `start` or `reload`.
    pub cause: String,
}

/// A stored report note.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteRow {
    pub id: i64,
    pub month: String,
    pub service: String,
    pub written_at: Timestamp,
    pub written_by: String,
    pub cause: String,
    pub action: String,
    pub owner: Option<String>,
    pub due: Option<jiff::civil::Date>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    pub batches: u64,
    pub measurements: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database is full or the disk has no space left; free space and the agents will resend: {0}"
    )]
    Full(String),
    #[error("database error: {0}")]
    Backend(String),
    #[error("no such maintenance window: {0}")]
    NotFound(i64),
}

/// Writes of minutes further than this behind the collector's clock at commit are "late":
/// a backend with a durable late-write log ([`Store::late_mark`]) records them, so that
/// results of older minutes persisted by a reader can be trusted after a restart.
pub const LATE_MINUTES: i64 = 60;

/// Synchronous on purpose: SQLite has one writer; callers run it on a blocking thread.
pub trait Store: Send + Sync + 'static {
    fn commit_batch(&self, batch: &IngestBatch) -> Result<CommitOutcome, StoreError>;
    /// [`Store::commit_batch`] of a batch the caller shares: a backend that hands batches to
    /// another thread (SQLite's group commit) keeps this one instead of copying it.
    fn commit_shared(
        &self,
        batch: std::sync::Arc<IngestBatch>,
    ) -> Result<CommitOutcome, StoreError> {
        self.commit_batch(&batch)
    }
    /// The minutes of the series of `checks` with minutes in `[from_minute, to_minute)`,
    /// in the compact form the SLA engine reads (see [`SeriesMinutes`]).
    fn series_minutes(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<SeriesMinutes, StoreError>;
    fn gaps(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<GapSpan>, StoreError>;
    fn host_minutes(&self, from_minute: i64, to_minute: i64)
    -> Result<Vec<HostMinute>, StoreError>;
    /// Earliest minute any of the checks was measured.
    fn first_seen(&self, checks: &[String]) -> Result<Option<i64>, StoreError>;
    /// Remembers `now` as the first time this store saw each of `services` configured,
    /// for those it has not seen before (an instant once stored never changes). The SLA
    /// engine starts a service without `start` at the earlier of this and its first
    /// measurement (docs/sla.md).
    fn note_configured(&self, services: &[String], now: Timestamp) -> Result<(), StoreError>;
    /// The first time this store saw `service` configured; `None` = never.
    fn first_configured(&self, service: &str) -> Result<Option<Timestamp>, StoreError>;
    /// Counts, from now on at every commit, which probes of `check` exceed `threshold_us`
    /// on their exact duration although their histogram bucket holds the threshold
    /// ([`ThresholdOver`]). A threshold tracked for the first time is recomputed from the
    /// raw measurements still kept; its exact counts start at the first minute whose raw
    /// measurements are all kept. Tracking a threshold again changes nothing.
    fn track_threshold(&self, check: &str, threshold_us: u64) -> Result<(), StoreError>;
    /// The exact counts of `threshold_us` over the series of `checks` in minutes
    /// `[from_minute, to_minute)`; `exact_from` is `None` unless every check tracks it.
    fn threshold_over(
        &self,
        checks: &[String],
        threshold_us: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<ThresholdOver, StoreError>;
    fn agents(&self) -> Result<Vec<AgentStatus>, StoreError>;
    /// Every distinct (agent, check) pair stored, for `[ingest] max_checks_per_agent`
    /// across restarts. The default knows none (the cap then counts from startup).
    fn agent_checks(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
    /// Stores window `w`, registered at `now`; answers its id.
    fn add_maintenance(&self, w: &NewMaintenance<'_>, now: Timestamp) -> Result<i64, StoreError>;
    fn cancel_maintenance(&self, id: i64, now: Timestamp) -> Result<(), StoreError>;
    fn list_maintenance(&self, service: Option<&str>) -> Result<Vec<MaintenanceRow>, StoreError>;
    /// Stores report note `n`, written at `now`; answers its id.
    fn add_report_note(&self, n: &NewNote<'_>, now: Timestamp) -> Result<i64, StoreError>;
    /// The notes of `month` (`YYYY-MM`), of one service or all, ordered by (written_at, id):
    /// the order the report shows them in.
    fn report_notes(&self, month: &str, service: Option<&str>) -> Result<Vec<NoteRow>, StoreError>;
    /// Records `d` unless the latest definition recorded for its service has the same digest;
    /// answers whether it was recorded. Added only, never edited.
    fn record_definition(&self, d: &DefinitionRow) -> Result<bool, StoreError>;
    /// The definitions of `service` in force during `[from, to)`, oldest first: the last one
    /// recorded before `from` and every one recorded in the span.
    fn definitions(
        &self,
        service: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<DefinitionRow>, StoreError>;
    /// Raw measurements of one check in `[from, to)`, for incident drill-down.
    fn raw_measurements(
        &self,
        check: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Measurement)>, StoreError>;
    /// The measurements stored from batch `seq` of `agent` (those its commit newly stored;
    /// one it repeated belongs to the batch that stored it first), ordered by (check, ts);
    /// empty for a batch never stored or whose raw measurements retention removed. Bulk
    /// imports are batches too, under their import seq.
    fn batch_measurements(&self, agent: &str, seq: u64) -> Result<Vec<Measurement>, StoreError>;
    /// The chain links stored for `agent` at seqs `seq - 1`, `seq` and `seq + 1`, in seq
    /// order: what ingest checks a signed batch's link against.
    fn seal_links(&self, agent: &str, seq: u64) -> Result<Vec<Link>, StoreError>;
    /// Every key any agent's batches were stored under, in the order first seen.
    fn agent_keys(&self) -> Result<Vec<AgentKeyRow>, StoreError>;
    /// The seals of batches whose measurement instants (or, with none, receipt) overlap
    /// `[from, to)`, by agent and seq: what `audit` checks.
    fn batch_seals(&self, from: Timestamp, to: Timestamp) -> Result<Vec<StoredSeal>, StoreError>;
    /// Deletes raw measurements older than `raw_before` and rollups older than `rollups_before`.
    /// Figures read afterwards are unchanged for every minute kept (a backend may compact
    /// rollups here), and a batch replayed after retention is still counted at most once.
    fn apply_retention(
        &self,
        raw_before: Timestamp,
        rollups_before: Timestamp,
    ) -> Result<(), StoreError>;
    fn counts(&self) -> Result<StoreCounts, StoreError>;
    /// Moves rollups of minutes before `before_minute` into the backend's long-term form,
    /// if it has one, and raw measurements of the hours that ended by then into raw blocks
    /// (`block`); figures and raw reads afterwards are unchanged. Returns the rows moved.
    /// Called hourly with a lag of two hours, so that late data of the last hours stays
    /// cheap to merge and month reads stay fast.
    fn compact(&self, before_minute: i64) -> Result<u64, StoreError> {
        let _ = before_minute;
        Ok(0)
    }
    /// A point in this store's write history, for [`Store::changed_since`]. Take it before
    /// reading, so that a write racing the read shows up as a change afterwards.
    fn change_mark(&self) -> u64 {
        0
    }
    /// Whether rollups or gaps of `checks` in minutes `[from_minute, to_minute)` may have
    /// changed since `mark` (from [`Store::change_mark`]). May answer `true` when unsure
    /// (the default, for backends without a journal), never `false` after a change.
    fn changed_since(
        &self,
        checks: &[String],
        mark: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<bool, StoreError> {
        let _ = (checks, mark, from_minute, to_minute);
        Ok(true)
    }
    /// A durable point in the store's log of late writes (writes of minutes more than
    /// [`LATE_MINUTES`] behind the collector's clock at commit, bulk loads and retention),
    /// for [`Store::changed_late_since`]; unlike [`Store::change_mark`] it means the same
    /// after a restart. `None` when the backend keeps no such log.
    fn late_mark(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Whether a late write to `checks` in minutes `[from_minute, to_minute)` (or retention)
    /// was committed after `mark` (from [`Store::late_mark`], possibly of an earlier
    /// process). May answer `true` when unsure (the default), never `false` after one.
    fn changed_late_since(
        &self,
        checks: &[String],
        mark: u64,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<bool, StoreError> {
        let _ = (checks, mark, from_minute, to_minute);
        Ok(true)
    }
}

/// Reads that only tests and measurements use, kept off the product's [`Store`] (and out
/// of the product's build: compiled for unit tests and with the `test-support` feature,
/// which the end-to-end test crate enables).
#[cfg(any(test, feature = "test-support"))]
pub trait InspectStore: Store {
    /// Minutes of the series of `checks` in `[from_minute, to_minute)` with names and full
    /// histograms, ordered by check, agent and minute; the same figures as
    /// [`Store::series_minutes`] (checked by the contract suite).
    fn series_minute_details(
        &self,
        checks: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<crate::minutes::SeriesMinuteDetail>, StoreError>;
}

#[cfg(test)]
mod bench;
mod block;
mod codec;
#[cfg(test)]
pub(crate) mod contract;
mod extra;
#[cfg(test)]
pub(crate) mod faulty;
mod journal;
mod keys;
mod late;
pub mod postgres;
pub mod retention;
mod rollup;
pub mod seals;
pub mod sqlite;

pub use seals::{AgentKeyRow, BatchSeal, Link, StoredSeal};

pub use sqlite::SqliteStore;

/// Records what a loaded configuration tells the store: every service it names (first
/// configured instant, `now`) and every latency threshold of every check a service with a
/// latency objective uses (counted exactly from now on). Called when the collector starts
/// and when `import` loads a configuration.
pub fn note_config(
    store: &dyn Store,
    cfg: &attest_config::CollectorConfig,
    now: Timestamp,
) -> Result<(), StoreError> {
    let names: Vec<String> = cfg.services.iter().map(|s| s.name.clone()).collect();
    store.note_configured(&names, now)?;
    for (check, threshold_us) in tracked_thresholds(cfg) {
        store.track_threshold(&check, threshold_us)?;
    }
    Ok(())
}

/// `(check, threshold µs)` of every check of every service with a latency objective,
/// sorted and unique.
pub fn tracked_thresholds(cfg: &attest_config::CollectorConfig) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = cfg
        .services
        .iter()
        .filter_map(|s| s.latency.as_ref().map(|l| (s, l)))
        .flat_map(|(s, l)| {
            let t = u64::try_from(l.threshold.as_micros()).unwrap_or(u64::MAX);
            s.checks.iter().map(move |c| (c.clone(), t))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Opens the configured backend.
pub fn open(cfg: &attest_config::StorageConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match &cfg.backend {
        attest_config::StorageBackend::Sqlite => Ok(std::sync::Arc::new(
            sqlite::SqliteStore::open(&cfg.data_dir)?,
        )),
        attest_config::StorageBackend::Postgres { url, tls } => Ok(std::sync::Arc::new(
            postgres::PgStore::connect_with(url, tls)?,
        )),
    }
}
