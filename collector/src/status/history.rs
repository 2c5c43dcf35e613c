//! The last [`DAYS`] days of every service, day by day, kept in memory for the status page:
//! the engine's per-day breakdown (`sla::detail` through `Figures::month_detail`) of each
//! month the window touches, plus the minutes of each day that maintenance took out.
//!
//! Invariants:
//! - Only the background pass ([`History::refresh`]) reads the store; the page reads
//!   [`History::days`], which is memory only. The first pass of a process starts after the
//!   figures' first refresh (`Figures::first_refresh`): it reads whole months, and beside
//!   that refresh it made a restart several times slower (fleet benchmark).
//! - A month is read again only when what it was computed from may have changed: the
//!   service's definition, its API maintenance, a late write to its closed days (the store's
//!   durable late-write log; hourly where a backend keeps none), a local day that closed
//!   since, or once when its last closed day is two hours old (writes within
//!   `store::LATE_MINUTES` of the clock are not in the late-write log). Everything else
//!   stays as computed: a day that ended before its month was computed is final.
//! - Today is never taken from here: the page takes it from the live month-to-date figures
//!   minus the final days before it (the engine's days add up to its month).
//! - A month that cannot be computed (the store is down) keeps what was computed before;
//!   a month never computed shows as pending.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use attest_config::{MaintenanceWindow, Service};
use jiff::Timestamp;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::figures::Figures;
use crate::reject::Rejection;
use crate::sla::{self, Calendar, Month, Period};
use crate::store::{LATE_MINUTES, MaintenanceRow, Store};

/// Days shown: today and the 89 before it.
pub const DAYS: usize = 90;
/// Pass interval when passes are quick; a long pass waits longer (see [`pause_after`]).
const EVERY: Duration = Duration::from_secs(60);
/// At most this long between two passes, however long the last one took.
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);
/// Share of one core the passes may use over time.
const CPU_SHARE: f64 = 0.02;
/// Without a durable late-write log, a computed month is read again after this long.
const RECHECK_WITHOUT_LOG: i64 = 3_600;

/// One local day of a service (the zone of the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: Date,
    pub start: Timestamp,
    pub end: Timestamp,
    pub eligible: u64,
    pub good: u64,
    pub bad: u64,
    pub unknown: u64,
    /// Minutes of the whole day that service hours would have counted but maintenance
    /// (configured or registered through the API) took out, planned ones of today included.
    pub maintenance: u64,
    /// The day had ended when its month was computed: its counts are final.
    pub fin: bool,
}

/// The days of one service's month as last computed.
#[derive(Debug, Clone)]
struct MonthDays {
    days: Vec<Day>,
    computed_at: Timestamp,
    /// The store's late-write mark taken before the read; `None`: the backend keeps no log.
    late_mark: Option<u64>,
    /// The API maintenance of the service when computed (cancelled ones left out).
    maintenance: Vec<MaintenanceRow>,
    /// Minute ranges `[from, to)` of maintenance in the month (for "in maintenance now").
    maintenance_runs: Vec<(i64, i64)>,
}

#[derive(Debug, Clone)]
struct ServiceDays {
    def: Service,
    months: BTreeMap<Month, MonthDays>,
}

/// What the page reads for one service.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    /// Every known day of the window, oldest first (days of months never computed absent).
    pub days: Vec<Day>,
    /// The maintenance minute ranges of the months shown.
    pub maintenance_runs: Vec<(i64, i64)>,
}

#[derive(Default)]
pub struct History {
    services: RwLock<HashMap<String, Arc<ServiceDays>>>,
}

impl History {
    /// The days of `service` from `first` on, memory only; empty before the first pass.
    pub fn days(&self, service: &str, first: Date) -> Shown {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(s) = services.get(service) else {
            return Shown::default();
        };
        let mut shown = Shown::default();
        for m in s.months.values() {
            shown
                .days
                .extend(m.days.iter().filter(|d| d.date >= first).copied());
            shown
                .maintenance_runs
                .extend(m.maintenance_runs.iter().copied());
        }
        shown
    }

    /// Passes until `cancel`: the first at once, then every [`EVERY`] (longer after a
    /// long pass, so that the passes keep to [`CPU_SHARE`] of a core).
    pub async fn refresh_loop(
        self: Arc<Self>,
        figures: Arc<Figures>,
        store: Arc<dyn Store>,
        clock: SharedClock,
        cancel: CancellationToken,
    ) {
        // The first pass reads every month of the window in full: it waits until the
        // figures on `/metrics` are fresh, so that it does not slow the start down.
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = figures.first_refresh() => {}
        }
        loop {
            let (me, f, s, now) = (
                self.clone(),
                figures.clone(),
                store.clone(),
                clock.now_utc(),
            );
            let started = Instant::now();
            if let Err(e) =
                tokio::task::spawn_blocking(move || me.refresh(&f, s.as_ref(), now)).await
            {
                tracing::error!("status history pass failed: {e}");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause_after(started.elapsed())) => {}
            }
        }
    }

    /// One pass as of `now`: every configured service's months in the window, read again
    /// where they may have changed (see the module invariants); services no longer
    /// configured are dropped.
    pub fn refresh(&self, figures: &Figures, store: &dyn Store, now: Timestamp) {
        let cfg = figures.config();
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|name, _| cfg.services.iter().any(|s| &s.name == name));
        // The current month of every service first: it is what the page shows first.
        for current_first in [true, false] {
            for svc in &cfg.services {
                if let Err(e) = self.refresh_service(figures, store, svc, now, current_first) {
                    tracing::warn!(service = %svc.name, "status history not updated: {}", e.reason);
                }
            }
        }
    }

    fn refresh_service(
        &self,
        figures: &Figures,
        store: &dyn Store,
        svc: &Service,
        now: Timestamp,
        current_only: bool,
    ) -> Result<(), Rejection> {
        let months = window_months(svc, now)?;
        let current = *months
            .last()
            .unwrap_or(&Month::containing(now, &svc.time_zone).map_err(engine)?);
        let prior = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&svc.name)
            .cloned()
            .filter(|p| p.def == *svc);
        let api = api_maintenance(store, &svc.name)?;
        let mut next = ServiceDays {
            def: svc.clone(),
            months: BTreeMap::new(),
        };
        let mut changed = prior.is_none();
        for month in months {
            let kept = prior.as_ref().and_then(|p| p.months.get(&month));
            let due = (month == current) == current_only;
            let fresh = match kept {
                Some(k) if !due || !stale(store, svc, month, k, &api, now) => None,
                _ if !due => None,
                _ => match compute(figures, store, svc, month, now) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(service = %svc.name, %month, "status days not computed: {}", e.reason);
                        None
                    }
                },
            };
            changed |= fresh.is_some();
            if let Some(m) = fresh.or_else(|| kept.cloned()) {
                next.months.insert(month, m);
            }
        }
        if changed {
            self.services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(svc.name.clone(), Arc::new(next));
        }
        Ok(())
    }
}

/// The months of the service's zone that the window of [`DAYS`] days ending today touches,
/// oldest first.
fn window_months(svc: &Service, now: Timestamp) -> Result<Vec<Month>, Rejection> {
    let first = first_day(svc, now)?;
    let tz = sla::calendar::zone(&svc.time_zone).map_err(engine)?;
    let today = tz.to_datetime(now).date();
    let mut m = Month::new(first.year(), first.month()).map_err(engine)?;
    let last = Month::new(today.year(), today.month()).map_err(engine)?;
    let mut out = vec![m];
    while m < last {
        m = m.next();
        out.push(m);
    }
    Ok(out)
}

/// The first local date of the window of `svc` as of `now`.
pub fn first_day(svc: &Service, now: Timestamp) -> Result<Date, Rejection> {
    let tz = sla::calendar::zone(&svc.time_zone).map_err(engine)?;
    let today = tz.to_datetime(now).date();
    today
        .checked_sub(jiff::Span::new().days(DAYS as i64 - 1))
        .map_err(|e| Rejection::new(500, e.to_string()))
}

/// Whether a computed month may no longer hold (see the module invariants).
fn stale(
    store: &dyn Store,
    svc: &Service,
    month: Month,
    m: &MonthDays,
    api: &[MaintenanceRow],
    now: Timestamp,
) -> bool {
    if m.maintenance != api {
        return true;
    }
    // A day that ended since the month was computed is not final there yet.
    let closed_end = m.days.iter().filter(|d| d.end <= now).map(|d| d.end).max();
    let Some(closed_end) = closed_end else {
        return false;
    };
    if m.days.iter().any(|d| !d.fin && d.end <= now) {
        return true;
    }
    // Once more when its last closed day is past the late-write horizon (twice over).
    let settled = closed_end + jiff::SignedDuration::from_mins(2 * LATE_MINUTES);
    if m.computed_at < settled && now >= settled {
        return true;
    }
    let Ok(period) = Period::month(month, &svc.time_zone) else {
        return true;
    };
    match m.late_mark {
        Some(mark) => store
            .changed_late_since(
                &svc.checks,
                mark,
                period.start_minute,
                sla::calendar::ceil_minute(closed_end),
            )
            .unwrap_or(true),
        None => now.duration_since(m.computed_at).as_secs() >= RECHECK_WITHOUT_LOG,
    }
}

/// Reads and computes one month of one service as of `now`.
fn compute(
    figures: &Figures,
    store: &dyn Store,
    svc: &Service,
    month: Month,
    now: Timestamp,
) -> Result<MonthDays, Rejection> {
    let late_mark = store.late_mark().ok().flatten();
    let api = api_maintenance(store, &svc.name)?;
    let (report, detail, _) = figures.month_detail(svc, month, now)?;
    let period = Period::month(month, &svc.time_zone).map_err(engine)?;
    let maintenance_mask = maintenance_mask(svc, &api, report.eligible_since, &period)?;
    let runs = runs(&maintenance_mask, period.start_minute);
    let days = detail
        .days
        .iter()
        .map(|d| {
            let lo = (sla::calendar::ceil_minute(d.start) - period.start_minute).max(0) as usize;
            let hi = (sla::calendar::ceil_minute(d.end) - period.start_minute).max(0) as usize;
            let hi = hi.min(maintenance_mask.len());
            let maintenance = maintenance_mask[lo.min(hi)..hi]
                .iter()
                .filter(|&&b| b != 0)
                .count() as u64;
            Day {
                date: d.date,
                start: d.start,
                end: d.end,
                eligible: d.eligible_minutes,
                good: d.good_minutes,
                bad: d.bad_minutes,
                unknown: d.unknown_minutes,
                maintenance,
                fin: d.end <= now,
            }
        })
        .collect();
    Ok(MonthDays {
        days,
        computed_at: now,
        late_mark,
        maintenance: api,
        maintenance_runs: runs,
    })
}

/// 1 for each minute of the period that the service's hours would count (from where its
/// eligibility begins) but its maintenance (configured or API) takes out.
fn maintenance_mask(
    svc: &Service,
    api: &[MaintenanceRow],
    since: Option<sla::EligibleSince>,
    period: &Period,
) -> Result<Vec<u8>, Rejection> {
    let windows: Vec<MaintenanceWindow> = api
        .iter()
        .map(|r| MaintenanceWindow::Once {
            start: r.start,
            end: r.end,
            reason: r.reason.clone(),
        })
        .collect();
    let mut bare = svc.clone();
    bare.maintenance.clear();
    let without = Calendar::new(&bare, &[], since).map_err(engine)?;
    let with = Calendar::new(svc, &windows, since).map_err(engine)?;
    let a = without.eligible_mask(period.start_minute, period.end_minute);
    let b = with.eligible_mask(period.start_minute, period.end_minute);
    Ok(a.iter()
        .zip(&b)
        .map(|(&x, &y)| u8::from(x != 0 && y == 0))
        .collect())
}

/// The `[from, to)` minute ranges where `mask` is set.
fn runs(mask: &[u8], from: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < mask.len() {
        if mask[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < mask.len() && mask[i] != 0 {
            i += 1;
        }
        out.push((from + start as i64, from + i as i64));
    }
    out
}

fn api_maintenance(store: &dyn Store, service: &str) -> Result<Vec<MaintenanceRow>, Rejection> {
    let rows = store
        .list_maintenance(Some(service))
        .map_err(|e| Rejection::new(503, e.to_string()))?;
    Ok(rows
        .into_iter()
        .filter(|r| r.cancelled_at.is_none())
        .collect())
}

fn engine(e: sla::SlaError) -> Rejection {
    Rejection::new(400, e.to_string())
}

/// The pause after a pass that took `took`: [`EVERY`] at least, in proportion to the pass
/// beyond that (so passes keep to [`CPU_SHARE`]), [`MAX_PAUSE`] at most.
pub fn pause_after(took: Duration) -> Duration {
    took.mul_f64(1.0 / CPU_SHARE - 1.0).clamp(EVERY, MAX_PAUSE)
}

#[cfg(any(test, feature = "test-support"))]
impl History {
    /// Seeds the days of one service (unit tests of the page, the status benchmark).
    pub fn seed(&self, svc: &Service, days: Vec<Day>, maintenance_runs: Vec<(i64, i64)>) {
        let mut months = BTreeMap::new();
        for d in days {
            let m = Month::new(d.date.year(), d.date.month()).expect("month");
            months
                .entry(m)
                .or_insert_with(|| MonthDays {
                    days: Vec::new(),
                    computed_at: Timestamp::UNIX_EPOCH,
                    late_mark: None,
                    maintenance: Vec::new(),
                    maintenance_runs: maintenance_runs.clone(),
                })
                .days
                .push(d);
        }
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                svc.name.clone(),
                Arc::new(ServiceDays {
                    def: svc.clone(),
                    months,
                }),
            );
    }
}
