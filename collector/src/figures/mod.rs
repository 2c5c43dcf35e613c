//! Figures: the one place that feeds the pure SLA engine. For a service and month it reads
//! the rows the engine needs from the store (rollups, gaps, first seen, first configured,
//! exact latency-threshold counts, API maintenance),
//! runs `sla::evaluate`, and keeps the latest month-to-date results for `/metrics` in a
//! [`Snapshot`], beside the fleet state `/metrics` shows (agent status, store counts).
//!
//! Invariants:
//! - Every figure shown anywhere (`/metrics`, `/api/v1/sla`, `attest-collector sla`) comes
//!   from `sla::evaluate` through this module; nothing downstream recomputes a figure.
//! - A scrape never computes and never reads the store: it renders the latest snapshot,
//!   which a background loop refreshes within about a second of a [`DataChanged`] signal
//!   (ingest sends one per commit) and at least every 30 s, since burn rates move with time
//!   alone. A fleet whose refresh takes long refreshes less often under a steady stream of
//!   data, so that the loop keeps to [`refresh::REFRESH_CPU_SHARE`] of a core.
//!   While a refresh runs long (a cold start), the figures computed so far are
//!   published every [`refresh::PUBLISH_EVERY`], so `/metrics` fills service by service.
//! - Within one as-of minute, a service whose rows, gaps and API maintenance did not change
//!   since its last refresh (and that has no capacity objectives) reuses its last report
//!   with the new instant: every figure is a function of the as-of minute.
//! - A refresh reuses each service's closed minutes (`sla::ClosedMinutes`, everything
//!   about two hours behind now) from the previous refresh only while the store's change
//!   journal (`Store::changed_since`) reports no rollup or gap of them changed; late data,
//!   gaps and retention drop them and the service is read in full once. Past months and
//!   API reports always evaluate from the store.
//! - A failed refresh never takes figures away: a service whose figures cannot be computed
//!   (the store is down, a read failed) keeps its last good report, totals and computation
//!   time in the next snapshot, and its failure is counted; capacity, agent status and
//!   store counts likewise keep their last good values. `/metrics` shows how old each
//!   service's figures are, so a stale figure is visible instead of silently absent.
//! - With a state file (`with_state_file`), each service's closed minutes and past-month
//!   totals are saved (see [`state`] for when a saved entry may be trusted) and loaded at
//!   the first refresh, so a restart reads only what changed since the save (and, after a
//!   month turned, the new month's look-back). The file is saved when the closed minutes
//!   moved on (at most every 5 minutes), at once when a month turned, and at shutdown.
//! - The last published figures are saved beside it ([`published`]) and served from the
//!   start of the next run, marked restored and with their age, until the first refresh
//!   replaces them: `/metrics` never loses a service's series across a restart.
//!
//! One file per job: `refresh.rs` the refresh loop and the snapshot it publishes;
//! `current.rs` the current month, reusing closed minutes and the last report; `rows.rs`
//! one engine run from the store's rows; `past.rs` the totals of past months behind the SLO
//! counters; `trust.rs` loading, trusting and saving the state file (whose format is
//! `state.rs`); `published.rs` the last published figures kept across a restart;
//! `capacity.rs` the host-minute reads of capacity figures; `month.rs` the month reports of
//! the API, the CLI and the monthly report; `complete.rs` the reports of complete months
//! those reuse while nothing they were computed from changed.

mod capacity;
mod complete;
mod current;
mod definitions;
mod evidence;
mod failures;
pub use evidence::{Count as EvidenceCount, EvidenceRows};
mod month;
mod past;
pub mod published;
mod refresh;
mod rows;
pub mod state;
mod trust;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use attest_config::{CollectorConfig, Service};
use jiff::Timestamp;

use crate::reject::Rejection;
use crate::sla::{self, CapacityFigure, ClosedMinutes, Incremental, Month, ServiceReport};
use crate::store::{AgentStatus, Store, StoreError};

use current::Cached;
pub use month::select_services;
use past::PastMonths;
pub use refresh::pause_after;
use trust::Persisted;

/// Month-to-date results of every service, plus capacity, as of `computed_at`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub computed_at: Option<Timestamp>,
    pub services: Vec<ServiceReport>,
    pub capacity: Vec<CapacityFigure>,
    /// Services whose figures could not be computed, with the reason (logged, exported).
    pub failures: Vec<(String, String)>,
    /// Per service (same order as `services`): minutes since the service was first measured,
    /// for the monotonically increasing SLO counters.
    pub totals: Vec<Totals>,
    /// Every agent's last committed batch (last seen, clock offset, spool), as of the refresh.
    pub agents: Vec<AgentStatus>,
    /// Raw measurements ever stored; `None` when the store could not say.
    pub stored_measurements: Option<u64>,
    /// Per service (same order as `services`): when its figures were computed. Equal to
    /// `computed_at` unless its latest refresh failed and its last good figures are kept.
    pub computed: Vec<Timestamp>,
    /// Every configured service with the number of its refreshes that failed since start
    /// (a counter: it never goes down while the process runs).
    pub refresh_failures: Vec<(String, u64)>,
    /// Per service (same order as `services`): whether its figures are the ones published
    /// before the last start (see [`published`]), not yet recomputed by this process.
    pub restored: Vec<bool>,
}

impl Snapshot {
    /// Services whose figures were restored from before the last start and not yet
    /// recomputed.
    pub fn restored_count(&self) -> usize {
        self.restored.iter().filter(|r| **r).count()
    }

    /// When `services[i]` was computed (the snapshot's time when not recorded).
    pub fn computed_of(&self, i: usize) -> Option<Timestamp> {
        self.computed.get(i).copied().or(self.computed_at)
    }
}

/// Good, bad and known minutes summed over every month since the service was first measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub good: u64,
    pub bad: u64,
    pub known: u64,
}

impl Totals {
    fn add(self, r: &ServiceReport) -> Totals {
        Totals {
            good: self.good + r.good_minutes,
            bad: self.bad + r.bad_minutes,
            known: self.known + r.known_minutes(),
        }
    }
}

pub struct Figures {
    /// The running configuration; replaced whole by a reload ([`Figures::replace_config`]).
    cfg: RwLock<Arc<CollectorConfig>>,
    store: Arc<dyn Store>,
    latest: Mutex<Arc<Snapshot>>,
    past: Mutex<PastMonths>,
    /// Per service name: the engine's closed minutes from the last refresh (about 50 KiB
    /// per service for a month: a state byte and a mask bit per minute plus failing rows).
    closed: Mutex<HashMap<String, Cached>>,
    /// Per service, for the first hours of a month: the closed minutes of the month that
    /// just closed and the past totals before it, saved instead of the new month's totals
    /// until the save covers the new month's start (see `trust.rs`).
    closing: Mutex<HashMap<String, (Cached, past::PastTotals)>>,
    /// Reports of complete months, reused by month reports while they hold (see
    /// [`complete`]).
    complete: Mutex<complete::CompleteMonths>,
    /// Per service name: refreshes that failed since start.
    refresh_failures: Mutex<HashMap<String, u64>>,
    /// Where the closed minutes are saved and loaded from (`None`: not persisted).
    state_file: Option<PathBuf>,
    persisted: Mutex<Persisted>,
    /// Set once the first refresh of this process has published every service's figures:
    /// what background readers of whole months wait for (see [`Figures::first_refresh`]).
    refreshed: tokio::sync::watch::Sender<bool>,
}

impl Figures {
    pub fn new(cfg: Arc<CollectorConfig>, store: Arc<dyn Store>) -> Figures {
        Figures {
            cfg: RwLock::new(cfg),
            store,
            latest: Mutex::new(Arc::new(Snapshot::default())),
            past: Mutex::new(PastMonths::default()),
            closed: Mutex::new(HashMap::new()),
            closing: Mutex::new(HashMap::new()),
            complete: Mutex::new(complete::CompleteMonths::default()),
            refresh_failures: Mutex::new(HashMap::new()),
            state_file: None,
            persisted: Mutex::new(Persisted::default()),
            refreshed: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Resolves once the first refresh of this process has completed (at once after it).
    /// Why: at a start the first refresh is what puts fresh figures on `/metrics`; a
    /// background pass that reads whole months (the status page's day history) started
    /// beside it would share the store's one read connection and the cores with it and
    /// multiply the restart time, so such passes wait for this.
    pub async fn first_refresh(&self) {
        let mut rx = self.refreshed.subscribe();
        // `wait_for` only fails when the sender is dropped, i.e. never while `self` lives.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The configuration the next refresh uses.
    pub fn config(&self) -> Arc<CollectorConfig> {
        self.cfg
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies a reloaded configuration (services, `[capacity]`) from the next refresh on.
    /// The cached closed minutes and past-month totals are dropped, since a changed
    /// definition (target, quorum, hours) changes what they hold; the next refresh reads
    /// every service in full once (the saved state stays keyed by each definition's
    /// fingerprint, so a restart still trusts only entries of unchanged services).
    pub fn replace_config(&self, cfg: Arc<CollectorConfig>) {
        *self
            .cfg
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cfg;
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.closing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        *self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = PastMonths::default();
        self.forget_complete_months();
    }

    /// Saves each service's closed minutes to `path` and loads them at the first refresh
    /// (see [`state`]).
    /// Also serves the figures last published before a restart (beside `path`, see
    /// [`published`]) until the first refresh replaces them.
    pub fn with_state_file(mut self, path: PathBuf) -> Figures {
        let published = path.with_file_name(published::FILE_NAME);
        if let Some(snap) = published::load(&published, &self.config().services) {
            self.latest = Mutex::new(Arc::new(snap));
        }
        self.state_file = Some(path);
        self
    }

    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn engine_err(e: sla::SlaError) -> Rejection {
    Rejection::new(400, e.to_string())
}

/// The report of an engine run that had every row it needs (no prior, or a prior it accepted).
fn completed(outcome: Incremental) -> Result<(ServiceReport, ClosedMinutes), Rejection> {
    match outcome {
        Incremental::Done(done) => Ok(*done),
        Incremental::NeedsAllRows => Err(Rejection::new(
            500,
            "internal: the SLA engine refused a full evaluation; report this as a bug",
        )),
    }
}

/// The status of a [`Rejection`] made from a store error.
const STORE_UNAVAILABLE: u16 = 503;

/// The store could not answer: retry later (a 503 for the API).
fn store_err(e: StoreError) -> Rejection {
    Rejection::new(STORE_UNAVAILABLE, e.to_string()).retry_after(5)
}

/// The calendar month containing `now` in the service's zone.
fn current_month(svc: &Service, now: Timestamp) -> Result<Month, Rejection> {
    Month::containing(now, &svc.time_zone).map_err(|e| Rejection::new(500, e.to_string()))
}

#[cfg(test)]
mod tests;
