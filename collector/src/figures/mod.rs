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
//!   data, so that the loop keeps to [`REFRESH_CPU_SHARE`] of a core.
//!   While a refresh runs long (a cold start), the figures computed so far are
//!   published every [`PUBLISH_EVERY`], so `/metrics` fills service by service.
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
//!   the first refresh, so a restart reads only the open minutes of each service.

pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use attest_config::{CollectorConfig, MaintenanceWindow, Service};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::changed::DataChanged;
use crate::clock::SharedClock;
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};
use crate::reject::Rejection;
use crate::sla::{
    self, CapacityFigure, ClosedMinutes, HostInput, Incremental, Month, Period, ServiceInput,
    ServiceReport,
};
use crate::store::{AgentStatus, MaintenanceRow, Store, StoreError};

/// How stale a snapshot may get without new data (burn rates move with time).
const MAX_AGE: Duration = Duration::from_secs(30);
/// After a change, how long the refresh waits for more batches to land, so a burst of
/// commits costs one refresh, not one each.
const SETTLE: Duration = Duration::from_millis(500);
/// How often the totals of past months (behind the SLO counters) are recomputed, so late
/// data for a closed month reaches the counters.
const PAST_MONTHS_EVERY: Duration = Duration::from_secs(600);
/// The share of one core the refresh loop may use while data keeps arriving: after a
/// refresh that took `t`, the next data-driven one waits `t × (1 / share − 1)` (at least
/// [`SETTLE`], at most [`MAX_AGE`]). A fleet whose refresh takes 10 ms still refreshes
/// 0.5 s after new data; one whose refresh takes 1 s refreshes every 19 s under a steady
/// stream instead of back to back (0.05 core instead of 0.65).
const REFRESH_CPU_SHARE: f64 = 0.05;
/// During a long refresh, how often the figures computed so far are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// The least time between two saves of the state file (it changes about hourly, when the
/// closed minutes move on; a save of 1,000 services is ~50 MB before compression).
const SAVE_EVERY: Duration = Duration::from_secs(300);

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
}

impl Snapshot {
    /// When `services[i]` was computed (the snapshot's time when not recorded).
    pub fn computed_of(&self, i: usize) -> Option<Timestamp> {
        self.computed.get(i).copied().or(self.computed_at)
    }
}

/// Good, bad and known minutes summed over every month since the service was first measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// Totals of complete past months per service, with the current month they precede and
/// when and at which store mark they were computed. Per service, since services in
/// different zones are in different months around midnight UTC.
#[derive(Debug, Default)]
struct PastMonths {
    totals: std::collections::BTreeMap<String, PastTotals>,
}

#[derive(Debug, Clone, Copy)]
struct PastTotals {
    current: Month,
    totals: Totals,
    at: Timestamp,
    mark: u64,
}

/// The closed minutes of one service's current month, and the store mark they are valid
/// at: reused while `Store::changed_since` says nothing of them changed after `mark`.
#[derive(Debug)]
struct Cached {
    month: Month,
    mark: u64,
    closed: ClosedMinutes,
    /// The report computed with these closed minutes, and what it was computed from
    /// beyond the journalled rows: reused while none of it changed (see [`Last::holds`]).
    /// `None` for closed minutes loaded from the state file.
    last: Option<Last>,
}

/// What a service's last report depended on besides the rows the journal tracks.
#[derive(Debug)]
struct Last {
    report: ServiceReport,
    /// The as-of minute: every figure moves with it, none moves within it.
    as_of: i64,
    maintenance: Vec<MaintenanceRow>,
}

impl Last {
    /// Whether a report computed now would equal this one apart from its as-of instant:
    /// same as-of minute, same API maintenance, no host minutes involved (they are not
    /// journalled) — the caller has checked that no row or gap of the service changed.
    fn holds(&self, svc: &Service, now: Timestamp, maintenance: &[MaintenanceRow]) -> bool {
        svc.capacity.is_empty()
            && self.as_of == sla::calendar::ceil_minute(now)
            && self.maintenance == maintenance
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
    /// Per service name: refreshes that failed since start.
    refresh_failures: Mutex<HashMap<String, u64>>,
    /// Where the closed minutes are saved and loaded from (`None`: not persisted).
    state_file: Option<PathBuf>,
    persisted: Mutex<Persisted>,
}

/// What this process did with the state file.
#[derive(Debug, Default)]
struct Persisted {
    loaded: bool,
    /// When it was last saved (the refresh's `now`).
    saved_at: Option<Timestamp>,
    /// Per service: the end of its closed minutes as last saved (or loaded).
    saved_to: HashMap<String, i64>,
}

impl Figures {
    pub fn new(cfg: Arc<CollectorConfig>, store: Arc<dyn Store>) -> Figures {
        Figures {
            cfg: RwLock::new(cfg),
            store,
            latest: Mutex::new(Arc::new(Snapshot::default())),
            past: Mutex::new(PastMonths::default()),
            closed: Mutex::new(HashMap::new()),
            refresh_failures: Mutex::new(HashMap::new()),
            state_file: None,
            persisted: Mutex::new(Persisted::default()),
        }
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
        *self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = PastMonths::default();
    }

    /// Saves each service's closed minutes to `path` and loads them at the first refresh
    /// (see [`state`]).
    pub fn with_state_file(mut self, path: PathBuf) -> Figures {
        self.state_file = Some(path);
        self
    }

    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Refreshes at once, then again [`SETTLE`] after each change signal (later when the
    /// last refresh was long: [`REFRESH_CPU_SHARE`]), or when the snapshot is [`MAX_AGE`]
    /// old; until `cancel`.
    pub async fn refresh_loop(
        self: Arc<Self>,
        changed: DataChanged,
        clock: SharedClock,
        cancel: CancellationToken,
    ) {
        loop {
            let me = self.clone();
            let now = clock.now_utc();
            let started = Instant::now();
            if let Err(e) = tokio::task::spawn_blocking(move || me.refresh(now)).await {
                tracing::error!("figures refresh failed: {e}");
            }
            let (pause, done) = (pause_after(started.elapsed()), Instant::now());
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = changed.changed() => {}
                _ = tokio::time::sleep(MAX_AGE) => {}
            }
            let settle = pause.saturating_sub(done.elapsed()).max(SETTLE);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(settle) => {}
            }
        }
    }

    /// Computes month-to-date figures of every service as of `now` and publishes them. A
    /// service (or capacity, or the fleet state) whose figures cannot be computed keeps its
    /// last good ones from the previous snapshot; see the module invariants.
    pub fn refresh(&self, now: Timestamp) {
        let late_mark = self.store.late_mark().ok().flatten();
        self.load_state_once(now);
        let prev = self.latest();
        let mut snap = Snapshot {
            computed_at: Some(now),
            ..Snapshot::default()
        };
        let host = self.recent_host_minutes(now);
        let mut published = Instant::now();
        let cfg = self.config();
        for (i, svc) in cfg.services.iter().enumerate() {
            match self.service_figures(svc, now, &host) {
                Ok((report, totals)) => {
                    snap.services.push(report);
                    snap.totals.push(totals);
                    snap.computed.push(now);
                }
                Err(e) => {
                    tracing::warn!(service = %svc.name, "cannot compute figures: {}", e.reason);
                    self.count_failure(&svc.name);
                    snap.failures.push((svc.name.clone(), e.reason));
                    keep_last_good(&prev, &svc.name, &mut snap);
                }
            }
            if published.elapsed() >= PUBLISH_EVERY {
                self.publish_partial(&prev, &snap, &cfg.services[i + 1..]);
                published = Instant::now();
            }
        }
        match host.and_then(|h| self.capacity(now, &h)) {
            Ok(c) => snap.capacity = c,
            Err(e) => {
                tracing::warn!("cannot compute capacity figures: {}", e.reason);
                snap.failures.push(("capacity".into(), e.reason));
                snap.capacity = prev.capacity.clone();
            }
        }
        self.fleet(&prev, &mut snap);
        snap.refresh_failures = self.failure_counts();
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snap);
        if let Some(mark) = late_mark {
            self.save_state_if_due(mark, now);
        }
    }

    /// Publishes the figures computed so far in this refresh, with the previous snapshot's
    /// figures of the services still to come.
    fn publish_partial(&self, prev: &Snapshot, done: &Snapshot, rest: &[Service]) {
        let mut partial = Snapshot {
            computed_at: prev.computed_at.or(done.computed_at),
            services: done.services.clone(),
            totals: done.totals.clone(),
            computed: done.computed.clone(),
            capacity: prev.capacity.clone(),
            failures: done.failures.clone(),
            agents: prev.agents.clone(),
            stored_measurements: prev.stored_measurements,
            refresh_failures: self.failure_counts(),
        };
        for svc in rest {
            keep_last_good(prev, &svc.name, &mut partial);
        }
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(partial);
    }

    /// At the first refresh: loads the state file and seeds the closed-minute and
    /// past-month caches with every entry that may be trusted (see [`state`]).
    fn load_state_once(&self, now: Timestamp) {
        let Some(path) = &self.state_file else {
            return;
        };
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if std::mem::replace(&mut persisted.loaded, true) {
            return;
        }
        let saved = match state::load(path) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(why) => {
                tracing::warn!("ignoring the saved figures state: {why}");
                return;
            }
        };
        let mark = self.store.change_mark();
        let cfg = self.config();
        let by_name: HashMap<&str, &Service> =
            cfg.services.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut used = 0;
        for entry in &saved.services {
            let Some(svc) = by_name.get(entry.name.as_str()) else {
                continue;
            };
            if entry.fingerprint != state::fingerprint(svc) {
                tracing::debug!(service = %entry.name, "saved state not used: the definition changed");
                continue;
            }
            if self.trust_closed(svc, &saved, entry) {
                persisted
                    .saved_to
                    .insert(entry.name.clone(), entry.closed.to());
                self.closed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        entry.name.clone(),
                        Cached {
                            month: entry.month,
                            mark,
                            closed: entry.closed.clone(),
                            last: None,
                        },
                    );
                used += 1;
            }
            if let Some((current, totals)) = entry.past
                && self.trust_past(svc, &saved, current)
            {
                let past = PastTotals {
                    current,
                    totals,
                    at: now,
                    mark,
                };
                self.past
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .totals
                    .insert(entry.name.clone(), past);
            }
        }
        persisted.saved_at = Some(saved.saved_at);
        tracing::info!(
            "loaded saved closed minutes of {used} of {} services ({} saved) from {}",
            self.config().services.len(),
            saved.services.len(),
            path.display()
        );
    }

    /// Whether a saved entry's closed minutes are still what the store holds.
    fn trust_closed(&self, svc: &Service, saved: &state::Saved, e: &state::SavedService) -> bool {
        let c = &e.closed;
        if !saved.covers(c.to()) {
            tracing::debug!(service = %e.name, "saved closed minutes not used: too recent");
            return false;
        }
        let changed = self
            .store
            .changed_late_since(&svc.checks, saved.late_mark, c.from(), c.to());
        if !changed.as_ref().is_ok_and(|changed| !changed) {
            tracing::debug!(service = %e.name, "saved closed minutes not used: written since ({changed:?})");
            return false;
        }
        true
    }

    /// Whether saved past-month totals (of the months before `current`) still hold.
    fn trust_past(&self, svc: &Service, saved: &state::Saved, current: Month) -> bool {
        let Ok(period) = Period::month(current, &svc.time_zone) else {
            return false;
        };
        saved.covers(period.start_minute)
            && self
                .store
                .changed_late_since(&svc.checks, saved.late_mark, i64::MIN, period.start_minute)
                .is_ok_and(|changed| !changed)
    }

    /// Whether cached past totals still match the store (they are rechecked only every
    /// [`PAST_MONTHS_EVERY`], so they may lag a late write; such totals are not saved).
    fn past_still_valid(&self, svc: &Service, p: &PastTotals) -> bool {
        let Ok(period) = Period::month(p.current, &svc.time_zone) else {
            return false;
        };
        self.store
            .changed_since(&svc.checks, p.mark, i64::MIN, period.start_minute)
            .is_ok_and(|changed| !changed)
    }

    /// Saves the state file when any service's closed minutes moved on since the last save
    /// and the last save is [`SAVE_EVERY`] old. `late_mark` was taken before this refresh
    /// read anything, so every entry saved is valid as of it.
    fn save_state_if_due(&self, late_mark: u64, now: Timestamp) {
        let Some(path) = &self.state_file else {
            return;
        };
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = persisted
            .saved_at
            .is_some_and(|t| now.duration_since(t).as_secs() < SAVE_EVERY.as_secs() as i64);
        let closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let moved = closed
            .iter()
            .any(|(name, c)| persisted.saved_to.get(name) != Some(&c.closed.to()));
        if recent || !moved {
            return;
        }
        let past = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cfg = self.config();
        let services: Vec<state::SavedService> = cfg
            .services
            .iter()
            .filter_map(|svc| {
                let c = closed.get(&svc.name)?;
                Some(state::SavedService {
                    name: svc.name.clone(),
                    fingerprint: state::fingerprint(svc),
                    month: c.month,
                    closed: c.closed.clone(),
                    past: past
                        .totals
                        .get(&svc.name)
                        .filter(|p| self.past_still_valid(svc, p))
                        .map(|p| (p.current, p.totals)),
                })
            })
            .collect();
        drop(past);
        let saved_to = services
            .iter()
            .map(|s| (s.name.clone(), s.closed.to()))
            .collect();
        drop(closed);
        let saved = state::Saved {
            late_mark,
            saved_at: now,
            services,
        };
        match state::save(path, &saved) {
            Ok(bytes) => {
                tracing::debug!("saved figures state: {bytes} bytes to {}", path.display());
                persisted.saved_at = Some(now);
                persisted.saved_to = saved_to;
            }
            Err(e) => tracing::warn!("cannot save the figures state to {}: {e}", path.display()),
        }
    }

    /// One service's month-to-date report and its totals since first measured. A service
    /// with capacity objectives fails (keeps its last good figures) when the refresh's host
    /// minutes could not be read; one without does not depend on them.
    fn service_figures(
        &self,
        svc: &Service,
        now: Timestamp,
        host: &Result<Vec<HostMinute>, Rejection>,
    ) -> Result<(ServiceReport, Totals), Rejection> {
        let month = current_month(svc, now)?;
        let host = match host {
            Ok(h) => Some(h.as_slice()),
            Err(e) if !svc.capacity.is_empty() => return Err(e.clone()),
            Err(_) => None,
        };
        let report = self.evaluate_cached(svc, month, now, host)?;
        let totals = self.past_totals(svc, month, now)?.add(&report);
        Ok((report, totals))
    }

    fn count_failure(&self, service: &str) {
        let mut counts = self
            .refresh_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(service.to_owned()).or_default() += 1;
    }

    /// Every configured service's failure count, in configuration order.
    fn failure_counts(&self) -> Vec<(String, u64)> {
        let counts = self
            .refresh_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.config()
            .services
            .iter()
            .map(|s| (s.name.clone(), counts.get(&s.name).copied().unwrap_or(0)))
            .collect()
    }

    /// Agent status and store counts, read here so that `/metrics` renders them from memory.
    /// A failed read keeps the previous snapshot's values (and is logged).
    fn fleet(&self, prev: &Snapshot, snap: &mut Snapshot) {
        snap.agents = self.store.agents().unwrap_or_else(|e| {
            tracing::warn!("cannot read agent status for /metrics: {e}");
            prev.agents.clone()
        });
        snap.stored_measurements = match self.store.counts() {
            Ok(c) => Some(c.measurements),
            Err(e) => {
                tracing::warn!("cannot read store counts for /metrics: {e}");
                prev.stored_measurements
            }
        };
    }

    /// Sum over the complete months before `current` since the service's first measurement;
    /// cached, rechecked every [`PAST_MONTHS_EVERY`] and recomputed then only when the
    /// store's journal shows a change before `current` (and always when the month turns).
    /// A store failure fails the whole sum (never a smaller total: the SLO counters would
    /// read it as a reset); a month the engine refuses for another reason is logged and
    /// left out, as before.
    fn past_totals(
        &self,
        svc: &Service,
        current: Month,
        now: Timestamp,
    ) -> Result<Totals, Rejection> {
        let mut past = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = Period::month(current, &svc.time_zone).map_or(i64::MAX, |p| p.start_minute);
        if let Some(entry) = past
            .totals
            .get_mut(&svc.name)
            .filter(|e| e.current == current)
        {
            let young = now.duration_since(entry.at).as_secs() < PAST_MONTHS_EVERY.as_secs() as i64;
            let unchanged = || {
                self.store
                    .changed_since(&svc.checks, entry.mark, i64::MIN, before)
                    .is_ok_and(|changed| !changed)
            };
            if young || unchanged() {
                entry.at = if young { entry.at } else { now };
                return Ok(entry.totals);
            }
        }
        let mark = self.store.change_mark();
        let mut total = Totals::default();
        let first = self.store.first_seen(&svc.checks).map_err(store_err)?;
        let first_month = first
            .and_then(|m| Timestamp::from_second(m * 60).ok())
            .and_then(|t| Month::containing(t, &svc.time_zone).ok());
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        if let Some(mut month) = first_month {
            while month < current {
                match self
                    .evaluate_from(svc, month, now, None, (&maintenance, None))
                    .and_then(completed)
                {
                    Ok((r, _)) => total = total.add(&r),
                    Err(e) if e.status == STORE_UNAVAILABLE => return Err(e),
                    Err(e) => {
                        tracing::warn!(service = %svc.name, %month, "cannot compute a past month: {}", e.reason);
                    }
                }
                month = month.next();
            }
        }
        let entry = PastTotals {
            current,
            totals: total,
            at: now,
            mark,
        };
        past.totals.insert(svc.name.clone(), entry);
        Ok(total)
    }

    /// [`Figures::evaluate`] reusing the service's closed minutes from the last refresh when
    /// the store says none of them changed since: then only the minutes after them are read.
    fn evaluate_cached(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
        host: Option<&[HostMinute]>,
    ) -> Result<ServiceReport, Rejection> {
        let mark = self.store.change_mark();
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        let mut prior = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&svc.name)
            .filter(|c| c.month == month);
        let reusable = match &prior {
            Some(c) => match c.last.as_ref().filter(|l| l.holds(svc, now, &maintenance)) {
                Some(last) if self.untouched(svc, c)? => Some(last.report.clone()),
                _ => None,
            },
            None => None,
        };
        if let Some(report) = reusable
            && let Some(c) = prior.take()
        {
            self.keep(svc, Cached { mark, ..c });
            return Ok(report.restamped(now));
        }
        let prior = match prior {
            Some(c) if !self.unchanged(svc, &c)? => None,
            other => other.map(|c| c.closed),
        };
        let windows = (maintenance.as_slice(), host);
        let mut outcome = self.evaluate_from(svc, month, now, prior.as_ref(), windows)?;
        if let Incremental::NeedsAllRows = outcome {
            outcome = self.evaluate_from(svc, month, now, None, windows)?;
        }
        let (report, closed) = completed(outcome)?;
        let last = Last {
            report: report.clone(),
            as_of: sla::calendar::ceil_minute(now),
            maintenance,
        };
        self.keep(
            svc,
            Cached {
                month,
                mark,
                closed,
                last: Some(last),
            },
        );
        Ok(report)
    }

    fn keep(&self, svc: &Service, cached: Cached) {
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(svc.name.clone(), cached);
    }

    /// Whether no row or gap of the service changed at all since `cached` was computed.
    fn untouched(&self, svc: &Service, cached: &Cached) -> Result<bool, Rejection> {
        let changed = self
            .store
            .changed_since(&svc.checks, cached.mark, i64::MIN, i64::MAX)
            .map_err(store_err)?;
        Ok(!changed)
    }

    /// Whether nothing `cached` was built from changed in the store since its mark.
    fn unchanged(&self, svc: &Service, cached: &Cached) -> Result<bool, Rejection> {
        let c = &cached.closed;
        let changed = self
            .store
            .changed_since(&svc.checks, cached.mark, c.from(), c.to())
            .map_err(store_err)?;
        Ok(!changed)
    }

    /// One engine run reading rows from the end of `prior` (or the whole range) on;
    /// `maintenance` is the service's API maintenance (read once by the caller), `host`
    /// (covering the period and the trend look-back) feeds the capacity objectives.
    fn evaluate_from(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
        prior: Option<&ClosedMinutes>,
        (maintenance, host): (&[MaintenanceRow], Option<&[HostMinute]>),
    ) -> Result<Incremental, Rejection> {
        let (from, to) = sla::input_range(svc, month, now).map_err(engine_err)?;
        let read_from = prior.map_or(from, |c| c.to().max(from));
        let rows = self.read_rows(svc, (from, to), read_from, maintenance.to_vec())?;
        let maintenance = windows(&rows.maintenance);
        let cfg = self.config();
        let host = host.map(|minutes| HostInput {
            config: &cfg.capacity,
            minutes,
        });
        let input = rows.input(svc, &maintenance, host);
        sla::evaluate_incremental(&input, month, now, prior).map_err(engine_err)
    }

    /// Everything the engine reads for `svc` over `[from, to)`, the rollups only from
    /// `read_from` on (the closed minutes before it are reused), with the API maintenance
    /// the caller read.
    fn read_rows(
        &self,
        svc: &Service,
        (from, to): (i64, i64),
        read_from: i64,
        maintenance: Vec<MaintenanceRow>,
    ) -> Result<Rows, Rejection> {
        let exact = match &svc.latency {
            Some(objective) => {
                let t = u64::try_from(objective.threshold.as_micros()).unwrap_or(u64::MAX);
                let over = self.store.threshold_over(&svc.checks, t, from, to);
                Some(over.map_err(store_err)?)
            }
            None => None,
        };
        Ok(Rows {
            rollups: self
                .store
                .series_minutes(&svc.checks, read_from, to)
                .map_err(store_err)?,
            gaps: self.store.gaps(&svc.checks, from, to).map_err(store_err)?,
            first_seen: self.store.first_seen(&svc.checks).map_err(store_err)?,
            first_configured: self.store.first_configured(&svc.name).map_err(store_err)?,
            exact,
            maintenance,
        })
    }

    /// Host minutes covering `month` of `svc` and the trend look-back before it; none
    /// (no read) when the service has no capacity objectives.
    fn month_host_minutes(
        &self,
        svc: &Service,
        month: Month,
    ) -> Result<Vec<HostMinute>, Rejection> {
        if svc.capacity.is_empty() {
            return Ok(Vec::new());
        }
        let period = Period::month(month, &svc.time_zone).map_err(engine_err)?;
        let lookback = sla::capacity::lookback_minutes(&self.config().capacity);
        let from = period.start_minute.saturating_sub(lookback);
        self.store
            .host_minutes(from, period.end_minute)
            .map_err(store_err)
    }

    /// Figures of one service for one month as of `now`, from every row of the period.
    pub fn evaluate(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
    ) -> Result<ServiceReport, Rejection> {
        let host = self.month_host_minutes(svc, month)?;
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        let outcome = self.evaluate_from(svc, month, now, None, (&maintenance, Some(&host)))?;
        Ok(completed(outcome)?.0)
    }

    /// The monthly report's inputs for one service from one read of its rows: the engine's
    /// figures, the month in detail (days, unknown intervals, minute states), and the API
    /// maintenance windows overlapping the period (cancelled ones left out).
    pub fn month_detail(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
    ) -> Result<(ServiceReport, sla::MonthDetail, Vec<MaintenanceRow>), Rejection> {
        let (from, to) = sla::input_range(svc, month, now).map_err(engine_err)?;
        let period = Period::month(month, &svc.time_zone).map_err(engine_err)?;
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        let rows = self.read_rows(svc, (from, to), from, maintenance)?;
        let host = self.month_host_minutes(svc, month)?;
        let maintenance = windows(&rows.maintenance);
        let cfg = self.config();
        let host = HostInput {
            config: &cfg.capacity,
            minutes: &host,
        };
        let input = rows.input(svc, &maintenance, Some(host));
        let report = sla::evaluate(&input, month, now).map_err(engine_err)?;
        let detail = sla::detail(&input, month, now).map_err(engine_err)?;
        let overlapping = rows
            .maintenance
            .into_iter()
            .filter(|r| r.start < period.end && r.end > period.start)
            .collect();
        Ok((report, detail, overlapping))
    }

    /// Capacity figures of every host for `month` (UTC calendar month) as of `now`.
    pub fn month_capacity(
        &self,
        month: Month,
        now: Timestamp,
    ) -> Result<Vec<CapacityFigure>, Rejection> {
        let period = Period::month(month, "UTC").map_err(|e| Rejection::new(500, e.to_string()))?;
        let end = now.min(period.end);
        let lookback = sla::capacity::lookback_minutes(&self.config().capacity);
        let end_min = end.as_second().div_euclid(60);
        let from = period.start_minute.min(end_min - lookback);
        let host = self
            .store
            .host_minutes(from, end_min + 1)
            .map_err(store_err)?;
        Ok(sla::capacity(&host, &self.config().capacity, &period, end))
    }

    /// The service's maintenance windows registered through the API (cancelled ones left out).
    fn api_maintenance_rows(&self, service: &str) -> Result<Vec<MaintenanceRow>, Rejection> {
        let rows = self
            .store
            .list_maintenance(Some(service))
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.cancelled_at.is_none())
            .collect())
    }

    /// Host minutes of every agent from before the earliest month start of any zone
    /// (32 days) minus the trend look-back, up to `now`: one read per refresh serves the
    /// per-host figures and every service's capacity objectives.
    fn recent_host_minutes(&self, now: Timestamp) -> Result<Vec<HostMinute>, Rejection> {
        let lookback = sla::capacity::lookback_minutes(&self.config().capacity);
        let now_min = now.as_second().div_euclid(60);
        let from = now_min.saturating_sub(32 * 1_440).saturating_sub(lookback);
        self.store
            .host_minutes(from, now_min + 1)
            .map_err(store_err)
    }

    fn capacity(
        &self,
        now: Timestamp,
        host: &[HostMinute],
    ) -> Result<Vec<CapacityFigure>, Rejection> {
        let month =
            Month::containing(now, "UTC").map_err(|e| Rejection::new(500, e.to_string()))?;
        let period = Period::month(month, "UTC").map_err(|e| Rejection::new(500, e.to_string()))?;
        Ok(sla::capacity(host, &self.config().capacity, &period, now))
    }

    /// Every configured service (or the one named) for `month` as of `now`, evaluated from
    /// the store: what `/api/v1/sla` and `attest-collector sla` report (see `report`).
    pub fn month_reports(
        &self,
        month: Month,
        service: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<ServiceReport>, Rejection> {
        let cfg = self.config();
        let services: Vec<&Service> = cfg
            .services
            .iter()
            .filter(|s| service.is_none_or(|n| n == s.name))
            .collect();
        if let Some(name) = service
            && services.is_empty()
        {
            return Err(Rejection::new(
                404,
                format!("no service named {name:?} in the collector config"),
            )
            .field("service"));
        }
        services
            .into_iter()
            .map(|s| self.evaluate(s, month, now))
            .collect()
    }
}

/// The store rows one engine run reads for a service (see [`Figures::read_rows`]).
struct Rows {
    rollups: SeriesMinutes,
    gaps: Vec<GapSpan>,
    first_seen: Option<i64>,
    first_configured: Option<Timestamp>,
    exact: Option<ThresholdOver>,
    maintenance: Vec<MaintenanceRow>,
}

impl Rows {
    fn input<'a>(
        &'a self,
        service: &'a Service,
        maintenance: &'a [MaintenanceWindow],
        host: Option<HostInput<'a>>,
    ) -> ServiceInput<'a> {
        ServiceInput {
            service,
            maintenance,
            rollups: &self.rollups,
            gaps: &self.gaps,
            first_seen: self.first_seen,
            first_configured: self.first_configured,
            exact: self.exact.as_ref(),
            host,
        }
    }
}

/// API maintenance rows as the engine's windows.
/// How long the refresh loop waits after a refresh that took `took` before starting the
/// next one on new data (see [`REFRESH_CPU_SHARE`]); public for the fleet benchmark.
pub fn pause_after(took: Duration) -> Duration {
    took.mul_f64(1.0 / REFRESH_CPU_SHARE - 1.0)
        .clamp(SETTLE, MAX_AGE)
}

fn windows(rows: &[MaintenanceRow]) -> Vec<MaintenanceWindow> {
    rows.iter()
        .map(|r| MaintenanceWindow::Once {
            start: r.start,
            end: r.end,
            reason: r.reason.clone(),
        })
        .collect()
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

/// Carries `service`'s last good report, totals and computation time from `prev` into
/// `snap` (nothing when it never had figures).
fn keep_last_good(prev: &Snapshot, service: &str, snap: &mut Snapshot) {
    let Some(i) = prev.services.iter().position(|r| r.service == service) else {
        return;
    };
    let (Some(totals), Some(computed)) = (prev.totals.get(i), prev.computed_of(i)) else {
        return;
    };
    snap.services.push(prev.services[i].clone());
    snap.totals.push(*totals);
    snap.computed.push(computed);
}

/// The calendar month containing `now` in the service's zone.
fn current_month(svc: &Service, now: Timestamp) -> Result<Month, Rejection> {
    Month::containing(now, &svc.time_zone).map_err(|e| Rejection::new(500, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use crate::store::contract::{BASE_MINUTE, at, batch, fail, ok};

    fn config() -> Arc<CollectorConfig> {
        config_with_target("99.9%")
    }

    fn config_with_target(target: &str) -> Arc<CollectorConfig> {
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
             data_dir = \"/nonexistent\"\n\
             [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
             [[agent]]\nid = \"a2\"\ntoken = \"test-token-a2-0123456789\"\n\
             [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"{target}\"\n\
             quorum = \"any\"\nlatency = {{ threshold = \"250ms\", target = \"99%\" }}\n"
        );
        Arc::new(attest_config::parse_collector("t.toml", &toml).expect("valid config"))
    }

    /// What a fresh `Figures` (nothing cached) computes from the same store.
    fn fresh(
        cfg: &Arc<CollectorConfig>,
        store: &Arc<dyn Store>,
        now: Timestamp,
    ) -> Vec<ServiceReport> {
        let f = Figures::new(cfg.clone(), store.clone());
        f.refresh(now);
        f.latest().services.clone()
    }

    /// The cached refresh equals a from-scratch one: unchanged, one day later (closed
    /// minutes extended), after late data into an old (compacted) minute, and after a gap.
    #[test]
    fn cached_refresh_matches_a_fresh_one_through_late_data() {
        let cfg = config();
        let sqlite = Arc::new(SqliteStore::open_temp().expect("store"));
        let store: Arc<dyn Store> = sqlite.clone();
        let mut seq = 0;
        let mut commit = |agent: &str, ms| {
            seq += 1;
            store.commit_batch(&batch(agent, seq, ms)).expect("commit");
        };
        for m in 0..3000 {
            commit("a1", vec![ok("web", m, 0, 0.01 + (m % 7) as f64 * 0.05)]);
        }
        let figures = Figures::new(cfg.clone(), store.clone());
        let mut now = at(2000, 0);
        let check = |figures: &Figures, now: Timestamp, what: &str| {
            figures.refresh(now);
            let got = figures.latest().services.clone();
            assert_eq!(got, fresh(&cfg, &store, now), "{what}");
            got
        };
        let first = check(&figures, now, "first refresh");
        assert!(figures.closed.lock().expect("lock").contains_key("web"));
        check(&figures, now, "unchanged");
        now = at(2999, 0);
        check(&figures, now, "later: closed minutes extended");
        store.compact(BASE_MINUTE + 2800).expect("compact");
        commit("a2", vec![fail("web", 100, 30, None)]);
        let late = check(&figures, now, "late failure into a compacted minute");
        assert_eq!(late[0].bad_minutes, first[0].bad_minutes + 1);
        let mut b = batch("a1", 10_000, Vec::new());
        b.gaps.push(attest_config::wire::Gap {
            check: "web".into(),
            from: at(200, 0),
            to: at(209, 0),
            count: 10,
        });
        store.commit_batch(&b).expect("gap");
        let gapped = check(&figures, now, "gap");
        assert_eq!(gapped[0].unknown_minutes, late[0].unknown_minutes + 10);
    }

    /// A store that stops answering does not take figures away: every series the last good
    /// refresh had stays (same values, same totals), its age grows and each failed refresh
    /// is counted; once the store answers again the figures are fresh and equal to a
    /// from-scratch computation.
    pub(crate) fn figures_survive_an_outage(inner: Arc<dyn Store>) {
        use crate::clock::FixedClock;
        use crate::ingest::{IngestStats, LatestResults};
        use crate::metrics::Exporter;
        use crate::store::faulty::FaultyStore;

        let cfg = config();
        let mut seq = 0;
        let mut commit = |agent: &str, ms| {
            seq += 1;
            inner.commit_batch(&batch(agent, seq, ms)).expect("commit");
        };
        for m in 0..600 {
            commit("a1", vec![ok("web", m, 0, 0.05)]);
        }
        commit("a2", vec![fail("web", 300, 10, None)]);
        let faulty = Arc::new(FaultyStore::new(inner.clone()));
        let store: Arc<dyn Store> = faulty.clone();
        let figures = Arc::new(Figures::new(cfg.clone(), store));
        let t0 = at(700, 0);
        figures.refresh(t0);
        let good = figures.latest();
        assert_eq!(good.services.len(), 1, "failures: {:?}", good.failures);
        assert!(good.failures.is_empty(), "{:?}", good.failures);
        assert_eq!(good.refresh_failures, vec![("web".to_owned(), 0)]);
        assert_eq!(good.agents.len(), 2);

        faulty.set_failing(true);
        let t1 = at(705, 0);
        figures.refresh(t1);
        figures.refresh(at(706, 0));
        let kept = figures.latest();
        assert!(faulty.refused.load(std::sync::atomic::Ordering::Relaxed) > 0);
        assert_eq!(kept.computed_at, Some(at(706, 0)));
        assert_eq!(kept.services, good.services, "the last good report is kept");
        assert_eq!(
            kept.totals, good.totals,
            "the SLO counters do not step down"
        );
        assert_eq!(
            kept.computed,
            vec![t0],
            "the kept report keeps its own time"
        );
        assert_eq!(kept.refresh_failures, vec![("web".to_owned(), 2)]);
        assert!(kept.failures.iter().any(|(s, _)| s == "web"));
        assert_eq!(kept.agents, good.agents, "agent status is kept");
        assert_eq!(kept.stored_measurements, good.stored_measurements);

        let exporter = Exporter::new(
            cfg.clone(),
            figures.clone(),
            Arc::new(IngestStats::default()),
            Arc::new(LatestResults::default()),
            Arc::new(FixedClock(at(706, 30))),
        );
        let (_, body) = exporter.render(false);
        for line in [
            "attest_sla_target_ratio{service=\"web\"} 0.999",
            "attest_sla_figures_age_seconds{service=\"web\"} 390",
            "attest_sla_refresh_failures_total{service=\"web\"} 2",
            "attest_agent_last_seen_timestamp_seconds{agent=\"a1\"}",
        ] {
            assert!(body.contains(line), "{line} missing from:\n{body}");
        }
        assert!(body.contains("attest_slo_good_minutes_total{service=\"web\"}"));

        faulty.set_failing(false);
        commit("a2", vec![fail("web", 650, 10, None)]);
        let t2 = at(710, 0);
        figures.refresh(t2);
        let back = figures.latest();
        assert!(back.failures.is_empty(), "{:?}", back.failures);
        assert_eq!(back.computed, vec![t2]);
        assert_eq!(back.refresh_failures, vec![("web".to_owned(), 2)]);
        assert_eq!(back.services, fresh(&cfg, &inner, t2), "fresh again");
        assert_eq!(
            back.services[0].bad_minutes,
            good.services[0].bad_minutes + 1
        );
    }

    #[test]
    fn figures_survive_an_sqlite_outage() {
        let store = Arc::new(SqliteStore::open_temp().expect("store"));
        figures_survive_an_outage(store);
    }

    #[test]
    fn figures_survive_a_postgres_outage() {
        let Some(db) = crate::store::postgres::tests::TestDb::create() else {
            return;
        };
        figures_survive_an_outage(Arc::new(db.store()));
    }

    /// Within one as-of minute, a service none of whose rows, gaps or API maintenance
    /// changed reuses its last report (no rollup read, the same figures with the new
    /// instant); new data, a maintenance window or the next minute recompute it.
    #[test]
    fn an_untouched_service_costs_no_read_within_its_minute() {
        use crate::store::faulty::FaultyStore;
        use std::sync::atomic::Ordering::SeqCst;
        let cfg = config();
        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
        let faulty = Arc::new(FaultyStore::new(sqlite.clone()));
        for m in 0..300 {
            let b = batch("a1", m as u64 + 1, vec![ok("web", m, 0, 0.1)]);
            faulty.commit_batch(&b).expect("commit");
        }
        let figures = Figures::new(cfg.clone(), faulty.clone());
        let reads = || faulty.rollup_reads.load(SeqCst);
        figures.refresh(at(299, 20));
        let (first, before) = (figures.latest().services[0].clone(), reads());
        figures.refresh(at(299, 50));
        let again = figures.latest().services[0].clone();
        assert_eq!(reads(), before, "untouched within the minute: nothing read");
        assert_eq!(again.as_of, at(299, 50));
        assert_eq!(again.clone().restamped(first.as_of), first);
        assert_eq!(again, fresh(&cfg, &sqlite, at(299, 50))[0]);

        let b = batch("a1", 1_000, vec![fail("web", 299, 30, None)]);
        faulty.commit_batch(&b).expect("commit");
        figures.refresh(at(299, 55));
        let failed = figures.latest().services[0].clone();
        assert!(reads() > before, "new data is read");
        assert_eq!(failed.bad_minutes, first.bad_minutes + 1);
        assert_eq!(failed, fresh(&cfg, &sqlite, at(299, 55))[0]);

        let before = reads();
        let window = crate::store::NewMaintenance {
            service: "web",
            start: at(10, 0),
            end: at(20, 0),
            reason: "test",
            registered_by: "test",
        };
        faulty
            .add_maintenance(&window, at(299, 56))
            .expect("maintenance");
        figures.refresh(at(299, 57));
        assert!(reads() > before, "a maintenance window recomputes");
        let maintained = figures.latest().services[0].clone();
        assert_eq!(maintained.eligible_minutes, failed.eligible_minutes - 10);

        let before = reads();
        figures.refresh(at(300, 10));
        assert!(reads() > before, "the next minute recomputes");
        assert_eq!(
            figures.latest().services[0],
            fresh(&cfg, &sqlite, at(300, 10))[0]
        );
    }

    /// The refresh loop's pause keeps it to its share of a core, between the settle time
    /// and the snapshot's maximum age.
    #[test]
    fn a_long_refresh_pauses_in_proportion() {
        assert_eq!(pause_after(Duration::from_millis(10)), SETTLE);
        assert_eq!(pause_after(Duration::from_secs(1)), Duration::from_secs(19));
        assert_eq!(pause_after(Duration::from_secs(5)), MAX_AGE);
    }

    /// Before any good refresh there is nothing to keep: the service is absent (documented),
    /// its failure counted.
    #[test]
    fn a_failure_before_any_figures_counts_and_shows_nothing() {
        use crate::store::faulty::FaultyStore;
        let faulty = Arc::new(FaultyStore::new(Arc::new(
            SqliteStore::open_temp().expect("store"),
        )));
        faulty.set_failing(true);
        let figures = Figures::new(config(), faulty);
        figures.refresh(at(10, 0));
        let snap = figures.latest();
        assert!(snap.services.is_empty());
        assert!(snap.computed.is_empty());
        assert_eq!(snap.refresh_failures, vec![("web".to_owned(), 1)]);
        assert_eq!(snap.stored_measurements, None);
    }

    /// A restart loads the saved closed minutes and reads only the open ones, with figures
    /// equal to a from-scratch computation; a late write after the save, or a changed
    /// service definition, makes the saved entry untrusted (read in full again).
    #[test]
    fn a_restart_reuses_saved_closed_minutes_only_while_they_hold() {
        use crate::store::faulty::FaultyStore;
        use std::sync::atomic::Ordering;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(state::FILE_NAME);
        let now = at(3000, 0);
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            for m in 0..3000 {
                let mut b = batch(
                    "a1",
                    m as u64 + 1,
                    vec![ok("web", m, 0, 0.01 + (m % 5) as f64 * 0.1)],
                );
                if m % 97 == 0 {
                    b.measurements.push(fail("web", m, 30, None));
                }
                b.received_at = at(m, 5);
                store.commit_batch(&b).expect("commit");
            }
            let f = Figures::new(config(), Arc::new(store)).with_state_file(path.clone());
            f.refresh(now);
            assert!(path.exists(), "the first refresh saves the state");
        }
        let restart = |cfg: Arc<CollectorConfig>| {
            let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("reopen"));
            let counted = Arc::new(FaultyStore::new(inner.clone()));
            let f = Figures::new(cfg.clone(), counted.clone()).with_state_file(path.clone());
            f.refresh(now);
            let got = f.latest().services.clone();
            assert_eq!(
                got,
                fresh(&cfg, &inner, now),
                "same figures as from scratch"
            );
            (counted.earliest_read.load(Ordering::SeqCst), inner)
        };
        let (from, _) = sla::input_range(
            &config().services[0],
            current_month(&config().services[0], now).expect("month"),
            now,
        )
        .expect("range");
        {
            // Two retention passes since the save (as a restart's startup pass and the
            // hourly one), far behind the saved minutes: the saved state still holds.
            let store = SqliteStore::open(dir.path()).expect("reopen");
            for days in [400, 399] {
                let before = now - jiff::SignedDuration::from_hours(24 * days);
                store.apply_retention(before, before).expect("retention");
            }
        }
        let (earliest, inner) = restart(config());
        assert!(
            earliest >= sla::closed::split(from, now.as_second() / 60) - 60,
            "only the open minutes are read after a restart (read from {earliest}, range from {from})"
        );
        drop(inner);
        let (earliest, inner) = restart(config_with_target("99.5%"));
        assert_eq!(earliest, from, "a changed definition: read in full");
        let mut late = batch("a2", 1, vec![fail("web", 500, 0, None)]);
        late.received_at = at(3001, 0);
        inner.commit_batch(&late).expect("late write");
        drop(inner);
        let (earliest, _) = restart(config());
        assert_eq!(earliest, from, "a late write after the save: read in full");
    }

    /// The store's exact threshold counts and first-configured instant reach the report:
    /// 0.25 s meets a 250 ms threshold, 0.250001 s and 0.251 s do not (the histogram's
    /// bucket holds all three); a service configured before its first probe is eligible
    /// from the configured instant.
    #[test]
    fn exact_threshold_and_first_configured_reach_the_report() {
        let cfg = config();
        let sqlite = Arc::new(SqliteStore::open_temp().expect("store"));
        let store: Arc<dyn Store> = sqlite.clone();
        crate::store::note_config(store.as_ref(), &cfg, at(-30, 0)).expect("note config");
        let probes = vec![
            ok("web", 0, 0, 0.25),
            ok("web", 0, 10, 0.250001),
            ok("web", 0, 20, 0.251),
            ok("web", 0, 30, 0.1),
        ];
        store.commit_batch(&batch("a1", 1, probes)).expect("commit");
        let f = Figures::new(cfg.clone(), store.clone());
        let now = at(1, 0);
        f.refresh(now);
        let r = f.latest().services[0].clone();
        assert_eq!((r.latency.probes, r.latency.probes_within), (4, Some(2)));
        assert_eq!(r.latency.histogram_resolution_probes, 0);
        let since = r.eligible_since.expect("eligible");
        assert_eq!(since.basis, sla::EligibilityBasis::FirstConfigured);
        assert_eq!(since.minute, BASE_MINUTE - 30);
        assert_eq!((r.good_minutes, r.unknown_minutes), (1, 30));
    }

    /// Capacity objectives run on every refresh from the store's host minutes of the
    /// agents measuring the service, and the month report of the API gives the same
    /// verdicts: a peak above `max` breaches even at low coverage, p95 is not determinable.
    #[test]
    fn refresh_and_month_reports_judge_capacity_objectives_from_the_store() {
        let toml = "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
             data_dir = \"/nonexistent\"\n\
             [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
             [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"99.9%\"\n\
             capacity = [{ kind = \"cpu\", statistic = \"max\", max = \"50%\" },\
             { kind = \"cpu\", statistic = \"p95\", max = \"50%\" }]\n";
        let cfg = Arc::new(attest_config::parse_collector("t.toml", toml).expect("valid config"));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
        let mut ms = Vec::new();
        for m in 0..600 {
            ms.push(ok("web", m, 0, 0.01));
            let mut h = attest_config::wire::Measurement::new("host", at(m, 1), true);
            h.values.push(attest_config::wire::Value {
                name: "cpu_utilization_ratio".into(),
                resource: None,
                value: if m == 100 { 0.7 } else { 0.3 },
            });
            ms.push(h);
        }
        store.commit_batch(&batch("a1", 1, ms)).expect("commit");
        let now = at(600, 0);
        let figures = Figures::new(cfg, store);
        figures.refresh(now);
        let snap = figures.latest();
        let cap = &snap.services[0].capacity;
        let got: Vec<(&str, Verdict, Option<f64>)> = cap
            .objectives
            .iter()
            .map(|o| (o.name.as_str(), o.verdict, o.value))
            .collect();
        use sla::capacity_objectives::Verdict;
        assert_eq!(cap.hosts, ["a1"]);
        assert_eq!(
            got,
            [
                ("cpu:max", Verdict::Breached, Some(0.7)),
                ("cpu:p95", Verdict::NotDeterminable, Some(0.3)),
            ]
        );
        assert_eq!(cap.verdict, Some(Verdict::Breached));
        let month = crate::report::parse_month("2026-06").expect("month");
        let api = figures
            .month_reports(month, None, now)
            .expect("month report");
        assert_eq!(&api[0].capacity, cap);
        let public: Vec<crate::report::model::ServiceReport> = api
            .iter()
            .map(crate::report::model::ServiceReport::from)
            .collect();
        let json = serde_json::to_value(&public[0]).expect("json");
        assert_eq!(json["capacity"]["objectives"][0]["verdict"], "breached");
        assert_eq!(json["capacity"]["verdict"], "breached");
        let text = crate::report::table::render(&public);
        assert!(
            text.contains("cpu:max") && text.contains("BREACHED"),
            "{text}"
        );
    }
}
