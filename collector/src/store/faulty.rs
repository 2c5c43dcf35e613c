//! A [`Store`] wrapper that fails every call while switched off, for tests of what the
//! product does when its database is unreachable (figures kept, failures counted). It
//! wraps a real backend, so everything it answers while on is the backend's own answer.
//!
//! Invariant: while failing, no call reaches the inner store (nothing is read or written);
//! `change_mark` still answers, as the real backends' in-memory journal does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use attest_config::wire::Measurement;
use jiff::Timestamp;

use super::{
    AgentStatus, CommitOutcome, IngestBatch, MaintenanceRow, NewMaintenance, Store, StoreCounts,
    StoreError,
};
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    /// Calls refused while failing.
    pub refused: AtomicU64,
    /// The earliest minute `series_minutes` was asked for (`i64::MAX` before any call):
    /// shows whether a reader re-read old minutes or reused results of them.
    pub earliest_read: AtomicI64,
    /// `series_minutes` calls so far: shows whether a reader read rows at all.
    pub rollup_reads: AtomicU64,
    /// Rows `series_minutes` returned so far: what a reader's cost is proportional to.
    pub rows_read: AtomicU64,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            failing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            earliest_read: AtomicI64::new(i64::MAX),
            rollup_reads: AtomicU64::new(0),
            rows_read: AtomicU64::new(0),
        }
    }

    /// From now on every call fails (`true`) or reaches the inner store (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn up(&self) -> Result<&dyn Store, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Backend(
                "connection refused (injected by FaultyStore)".into(),
            ));
        }
        Ok(self.inner.as_ref())
    }
}

impl Store for FaultyStore {
    fn commit_batch(&self, batch: &IngestBatch) -> Result<CommitOutcome, StoreError> {
        self.up()?.commit_batch(batch)
    }
    fn series_minutes(
        &self,
        c: &[String],
        from: i64,
        to: i64,
    ) -> Result<SeriesMinutes, StoreError> {
        self.earliest_read.fetch_min(from, Ordering::SeqCst);
        self.rollup_reads.fetch_add(1, Ordering::SeqCst);
        let rows = self.up()?.series_minutes(c, from, to)?;
        self.rows_read
            .fetch_add(rows.rows.len() as u64, Ordering::SeqCst);
        Ok(rows)
    }
    fn gaps(&self, c: &[String], from: i64, to: i64) -> Result<Vec<GapSpan>, StoreError> {
        self.up()?.gaps(c, from, to)
    }
    fn host_minutes(&self, from: i64, to: i64) -> Result<Vec<HostMinute>, StoreError> {
        self.up()?.host_minutes(from, to)
    }
    fn first_seen(&self, c: &[String]) -> Result<Option<i64>, StoreError> {
        self.up()?.first_seen(c)
    }
    fn note_configured(&self, services: &[String], now: Timestamp) -> Result<(), StoreError> {
        self.up()?.note_configured(services, now)
    }
    fn first_configured(&self, service: &str) -> Result<Option<Timestamp>, StoreError> {
        self.up()?.first_configured(service)
    }
    fn track_threshold(&self, check: &str, threshold_us: u64) -> Result<(), StoreError> {
        self.up()?.track_threshold(check, threshold_us)
    }
    fn threshold_over(
        &self,
        c: &[String],
        threshold_us: u64,
        from: i64,
        to: i64,
    ) -> Result<ThresholdOver, StoreError> {
        self.up()?.threshold_over(c, threshold_us, from, to)
    }
    fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.up()?.agents()
    }
    fn agent_checks(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.up()?.agent_checks()
    }
    fn add_maintenance(&self, w: &NewMaintenance<'_>, now: Timestamp) -> Result<i64, StoreError> {
        self.up()?.add_maintenance(w, now)
    }
    fn cancel_maintenance(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.up()?.cancel_maintenance(id, now)
    }
    fn list_maintenance(&self, service: Option<&str>) -> Result<Vec<MaintenanceRow>, StoreError> {
        self.up()?.list_maintenance(service)
    }
    fn record_definition(&self, d: &crate::store::DefinitionRow) -> Result<bool, StoreError> {
        self.up()?.record_definition(d)
    }
    fn definitions(
        &self,
        service: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::store::DefinitionRow>, StoreError> {
        self.up()?.definitions(service, from, to)
    }
    fn add_report_note(
        &self,
        n: &crate::store::NewNote<'_>,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        self.up()?.add_report_note(n, now)
    }
    fn report_notes(
        &self,
        month: &str,
        service: Option<&str>,
    ) -> Result<Vec<crate::store::NoteRow>, StoreError> {
        self.up()?.report_notes(month, service)
    }
    fn batch_measurements(&self, agent: &str, seq: u64) -> Result<Vec<Measurement>, StoreError> {
        self.up()?.batch_measurements(agent, seq)
    }
    fn seal_links(&self, agent: &str, seq: u64) -> Result<Vec<crate::store::Link>, StoreError> {
        self.up()?.seal_links(agent, seq)
    }
    fn agent_keys(&self) -> Result<Vec<crate::store::AgentKeyRow>, StoreError> {
        self.up()?.agent_keys()
    }
    fn batch_seals(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::store::StoredSeal>, StoreError> {
        self.up()?.batch_seals(from, to)
    }

    fn raw_measurements(
        &self,
        check: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Measurement)>, StoreError> {
        self.up()?.raw_measurements(check, from, to)
    }
    fn apply_retention(&self, raw: Timestamp, rollups: Timestamp) -> Result<(), StoreError> {
        self.up()?.apply_retention(raw, rollups)
    }
    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.up()?.counts()
    }
    fn compact(&self, before_minute: i64) -> Result<u64, StoreError> {
        self.up()?.compact(before_minute)
    }
    fn change_mark(&self) -> u64 {
        self.inner.change_mark()
    }
    fn changed_since(
        &self,
        c: &[String],
        mark: u64,
        from: i64,
        to: i64,
    ) -> Result<bool, StoreError> {
        self.up()?.changed_since(c, mark, from, to)
    }
    fn late_mark(&self) -> Result<Option<u64>, StoreError> {
        self.up()?.late_mark()
    }
    fn changed_late_since(
        &self,
        c: &[String],
        mark: u64,
        from: i64,
        to: i64,
    ) -> Result<bool, StoreError> {
        self.up()?.changed_late_since(c, mark, from, to)
    }
}
