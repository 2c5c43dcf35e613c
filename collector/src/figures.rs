//! Figures: the one place that feeds the pure SLA engine. For a service and month it reads
//! the rows the engine needs from the store (rollups, gaps, first seen, API maintenance),
//! runs `sla::evaluate`, and keeps the latest month-to-date results for `/metrics` in a
//! [`Snapshot`], beside the fleet state `/metrics` shows (agent status, store counts).
//!
//! Invariants:
//! - Every figure shown anywhere (`/metrics`, `/api/v1/sla`, `attest-collector sla`) comes
//!   from `sla::evaluate` through this module; nothing downstream recomputes a figure.
//! - A scrape never computes and never reads the store: it renders the latest snapshot,
//!   which a background loop refreshes within about a second of a [`DataChanged`] signal
//!   (ingest sends one per commit) and at least every 30 s, since burn rates move with time
//!   alone.
//! - A refresh reuses each service's closed minutes (`sla::ClosedMinutes`, everything
//!   about two hours behind now) from the previous refresh only while the store's change
//!   journal (`Store::changed_since`) reports no rollup or gap of them changed; late data,
//!   gaps and retention drop them and the service is read in full once. Past months and
//!   API reports always evaluate from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_config::{CollectorConfig, MaintenanceWindow, Service};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::changed::DataChanged;
use crate::clock::SharedClock;
use crate::minutes::HostMinute;
use crate::reject::Rejection;
use crate::sla::{
    self, CapacityFigure, ClosedMinutes, HostInput, Incremental, Month, Period, ServiceInput,
    ServiceReport,
};
use crate::store::{AgentStatus, Store, StoreError};

/// How stale a snapshot may get without new data (burn rates move with time).
const MAX_AGE: Duration = Duration::from_secs(30);
/// After a change, how long the refresh waits for more batches to land, so a burst of
/// commits costs one refresh, not one each.
const SETTLE: Duration = Duration::from_millis(500);
/// How often the totals of past months (behind the SLO counters) are recomputed, so late
/// data for a closed month reaches the counters.
const PAST_MONTHS_EVERY: Duration = Duration::from_secs(600);

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
}

pub struct Figures {
    cfg: Arc<CollectorConfig>,
    store: Arc<dyn Store>,
    latest: Mutex<Arc<Snapshot>>,
    past: Mutex<PastMonths>,
    /// Per service name: the engine's closed minutes from the last refresh (about 50 KiB
    /// per service for a month: a state byte and a mask bit per minute plus failing rows).
    closed: Mutex<HashMap<String, Cached>>,
}

impl Figures {
    pub fn new(cfg: Arc<CollectorConfig>, store: Arc<dyn Store>) -> Figures {
        Figures {
            cfg,
            store,
            latest: Mutex::new(Arc::new(Snapshot::default())),
            past: Mutex::new(PastMonths::default()),
            closed: Mutex::new(HashMap::new()),
        }
    }

    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Refreshes at once, then again [`SETTLE`] after each change signal, or when the
    /// snapshot is [`MAX_AGE`] old; until `cancel`.
    pub async fn refresh_loop(
        self: Arc<Self>,
        changed: DataChanged,
        clock: SharedClock,
        cancel: CancellationToken,
    ) {
        loop {
            let me = self.clone();
            let now = clock.now_utc();
            if let Err(e) = tokio::task::spawn_blocking(move || me.refresh(now)).await {
                tracing::error!("figures refresh failed: {e}");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = changed.changed() => {}
                _ = tokio::time::sleep(MAX_AGE) => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(SETTLE) => {}
            }
        }
    }

    /// Computes month-to-date figures of every service as of `now` and publishes them.
    pub fn refresh(&self, now: Timestamp) {
        let mut snap = Snapshot {
            computed_at: Some(now),
            ..Snapshot::default()
        };
        let host = match self.recent_host_minutes(now) {
            Ok(h) => Some(h),
            Err(e) => {
                snap.failures.push(("capacity".into(), e.reason));
                None
            }
        };
        for svc in &self.cfg.services {
            let month = match current_month(svc, now) {
                Ok(m) => m,
                Err(e) => {
                    snap.failures.push((svc.name.clone(), e.reason));
                    continue;
                }
            };
            match self.evaluate_cached(svc, month, now, host.as_deref()) {
                Ok(r) => {
                    snap.totals.push(self.past_totals(svc, month, now).add(&r));
                    snap.services.push(r);
                }
                Err(e) => {
                    tracing::warn!(service = %svc.name, "cannot compute figures: {}", e.reason);
                    snap.failures.push((svc.name.clone(), e.reason));
                }
            }
        }
        if let Some(host) = &host {
            match self.capacity(now, host) {
                Ok(c) => snap.capacity = c,
                Err(e) => snap.failures.push(("capacity".into(), e.reason)),
            }
        }
        self.fleet(&mut snap);
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snap);
    }

    /// Agent status and store counts, read here so that `/metrics` renders them from memory.
    /// A failure leaves them empty / absent (and is logged), as a failed scrape read did.
    fn fleet(&self, snap: &mut Snapshot) {
        snap.agents = self.store.agents().unwrap_or_else(|e| {
            tracing::warn!("cannot read agent status for /metrics: {e}");
            Vec::new()
        });
        snap.stored_measurements = match self.store.counts() {
            Ok(c) => Some(c.measurements),
            Err(e) => {
                tracing::warn!("cannot read store counts for /metrics: {e}");
                None
            }
        };
    }

    /// Sum over the complete months before `current` since the service's first measurement;
    /// cached, rechecked every [`PAST_MONTHS_EVERY`] and recomputed then only when the
    /// store's journal shows a change before `current` (and always when the month turns).
    fn past_totals(&self, svc: &Service, current: Month, now: Timestamp) -> Totals {
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
                return entry.totals;
            }
        }
        let mark = self.store.change_mark();
        let mut total = Totals::default();
        let first = self.store.first_seen(&svc.checks).ok().flatten();
        let first_month = first
            .and_then(|m| Timestamp::from_second(m * 60).ok())
            .and_then(|t| Month::containing(t, &svc.time_zone).ok());
        if let Some(mut month) = first_month {
            while month < current {
                match self
                    .evaluate_from(svc, month, now, None, None)
                    .and_then(completed)
                {
                    Ok((r, _)) => total = total.add(&r),
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
        total
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
        let prior = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&svc.name)
            .filter(|c| c.month == month);
        let prior = match prior {
            Some(c) if !self.unchanged(svc, &c)? => None,
            other => other.map(|c| c.closed),
        };
        let mut outcome = self.evaluate_from(svc, month, now, prior.as_ref(), host)?;
        if let Incremental::NeedsAllRows = outcome {
            outcome = self.evaluate_from(svc, month, now, None, host)?;
        }
        let (report, closed) = completed(outcome)?;
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                svc.name.clone(),
                Cached {
                    month,
                    mark,
                    closed,
                },
            );
        Ok(report)
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
    /// `host` (covering the period and the trend look-back) feeds the capacity objectives.
    fn evaluate_from(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
        prior: Option<&ClosedMinutes>,
        host: Option<&[HostMinute]>,
    ) -> Result<Incremental, Rejection> {
        let (from, to) =
            sla::input_range(svc, month, now).map_err(|e| Rejection::new(400, e.to_string()))?;
        let read_from = prior.map_or(from, |c| c.to().max(from));
        let rollups = self
            .store
            .series_minutes(&svc.checks, read_from, to)
            .map_err(store_err)?;
        let gaps = self.store.gaps(&svc.checks, from, to).map_err(store_err)?;
        let first_seen = self.store.first_seen(&svc.checks).map_err(store_err)?;
        let maintenance = self.api_maintenance(&svc.name)?;
        let input = ServiceInput {
            service: svc,
            maintenance: &maintenance,
            rollups: &rollups,
            gaps: &gaps,
            first_seen,
            host: host.map(|minutes| HostInput {
                config: &self.cfg.capacity,
                minutes,
            }),
        };
        sla::evaluate_incremental(&input, month, now, prior)
            .map_err(|e| Rejection::new(400, e.to_string()))
    }

    /// Figures of one service for one month as of `now`, from every row of the period.
    pub fn evaluate(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
    ) -> Result<ServiceReport, Rejection> {
        let period =
            Period::month(month, &svc.time_zone).map_err(|e| Rejection::new(400, e.to_string()))?;
        let lookback = sla::capacity::lookback_minutes(&self.cfg.capacity);
        let host = if svc.capacity.is_empty() {
            Vec::new()
        } else {
            let from = period.start_minute.saturating_sub(lookback);
            self.store
                .host_minutes(from, period.end_minute)
                .map_err(store_err)?
        };
        Ok(completed(self.evaluate_from(svc, month, now, None, Some(&host))?)?.0)
    }

    fn api_maintenance(&self, service: &str) -> Result<Vec<MaintenanceWindow>, Rejection> {
        let rows = self
            .store
            .list_maintenance(Some(service))
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.cancelled_at.is_none())
            .map(|r| MaintenanceWindow::Once {
                start: r.start,
                end: r.end,
                reason: r.reason,
            })
            .collect())
    }

    /// Host minutes of every agent from before the earliest month start of any zone
    /// (32 days) minus the trend look-back, up to `now`: one read per refresh serves the
    /// per-host figures and every service's capacity objectives.
    fn recent_host_minutes(&self, now: Timestamp) -> Result<Vec<HostMinute>, Rejection> {
        let lookback = sla::capacity::lookback_minutes(&self.cfg.capacity);
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
        Ok(sla::capacity(host, &self.cfg.capacity, &period, now))
    }

    /// Every configured service (or the one named) for `month` as of `now`, evaluated from
    /// the store: what `/api/v1/sla` and `attest-collector sla` report (see `report`).
    pub fn month_reports(
        &self,
        month: Month,
        service: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<ServiceReport>, Rejection> {
        let services: Vec<&Service> = self
            .cfg
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

/// The store could not answer: retry later (a 503 for the API).
fn store_err(e: StoreError) -> Rejection {
    Rejection::new(503, e.to_string()).retry_after(5)
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
        let toml = "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
             data_dir = \"/nonexistent\"\n\
             [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
             [[agent]]\nid = \"a2\"\ntoken = \"test-token-a2-0123456789\"\n\
             [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"99.9%\"\n\
             quorum = \"any\"\nlatency = { threshold = \"250ms\", target = \"99%\" }\n";
        Arc::new(attest_config::parse_collector("t.toml", toml).expect("valid config"))
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
