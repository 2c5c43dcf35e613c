//! The live status page (`GET /status`, `/status/{service}`): every service's current
//! state, its month so far against the target, the error budget left, an open incident and
//! the last 90 days as daily bars, as one server-rendered HTML page (inline CSS and SVG, no
//! script, no external reference; it reloads itself every minute).
//!
//! Invariants:
//! - Renders from memory only: the figures snapshot (month to date, burn windows,
//!   incidents) and the day history ([`history`]); a request never reads the store. The
//!   history's background pass is the only store reader here.
//! - Shows the engine's figures, never recomputes them. The state is read off the engine's
//!   5-minute burn window (bad and known minutes); today's bar is the month so far minus
//!   the final days before today (the engine's days add up to its month).
//! - Without credentials (`[status] public = true`) only the services of
//!   `[status] services` appear, in that order; a read credential shows every service.

pub mod history;
mod html;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use attest_config::units::Ppm;
use attest_config::{CollectorConfig, Service};
use jiff::Timestamp;
use jiff::civil::Date;

use crate::clock::SharedClock;
use crate::figures::{Figures, Snapshot};
use crate::reject::Rejection;
use crate::sla::{self, Counts, ServiceReport};
use history::{DAYS, Day, History};

/// Figures older than this make a service's state unknown (its refresh is failing).
pub const STALE_SECONDS: i64 = 300;
/// How often the page reloads itself (meta refresh).
pub const RELOAD_SECONDS: u32 = 60;

/// Which services a request may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// No credential on a public page: `[status] services` only.
    Public,
    /// A read credential (or a collector without read protection): every service.
    Full,
}

/// A service's state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Known minutes in the last 5, none bad.
    Up,
    /// Some of the known minutes of the last 5 bad.
    Degraded,
    /// Every known minute of the last 5 bad.
    Down,
    /// Nothing known in the last 5 minutes and the service is in maintenance now.
    Maintenance,
    /// Nothing known in the last 5 minutes, figures not computed yet, or stale.
    Unknown,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Maintenance => "maintenance",
            State::Unknown => "unknown",
        }
    }
}

/// How a day's bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayClass {
    /// Known minutes, none bad.
    Good,
    /// Bad minutes, the day still at or above the target.
    Degraded,
    /// The day below the target.
    Bad,
    /// Eligible minutes, none known.
    Unknown,
    /// Nothing eligible because maintenance took the day's counted time.
    Maintenance,
    /// Nothing eligible: outside service hours, a holiday, before the service started.
    NotCounted,
    /// Not computed yet (the history's first pass is still running).
    Pending,
}

impl DayClass {
    /// The CSS class.
    pub fn css(self) -> &'static str {
        match self {
            DayClass::Good => "g",
            DayClass::Degraded => "d",
            DayClass::Bad => "b",
            DayClass::Unknown => "u",
            DayClass::Maintenance => "m",
            DayClass::NotCounted => "n",
            DayClass::Pending => "p",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DayClass::Good => "no bad minute",
            DayClass::Degraded => "bad minutes, within target",
            DayClass::Bad => "below target",
            DayClass::Unknown => "unknown (nothing measured)",
            DayClass::Maintenance => "maintenance",
            DayClass::NotCounted => "not counted (outside service hours)",
            DayClass::Pending => "not computed yet",
        }
    }
}

/// One bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub date: Date,
    pub class: DayClass,
    pub good: u64,
    pub bad: u64,
    pub unknown: u64,
    pub maintenance: u64,
    /// `good / known` rounded down to 3 decimals, percent.
    pub availability: Option<String>,
}

/// An incident still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub start: Timestamp,
    pub downtime_minutes: u64,
    pub reason: Option<String>,
}

/// Everything the page shows of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub state: State,
    /// Why the state, in a few words.
    pub why: String,
    /// Month to date, percent rounded down to 3 decimals.
    pub availability: Option<String>,
    pub target: Ppm,
    pub compliant: Option<bool>,
    /// `YYYY-MM` of the month shown.
    pub month: Option<String>,
    /// (planning remaining, planning allowed) minutes of the month's error budget.
    pub budget: Option<(f64, f64)>,
    pub incident: Option<OpenIncident>,
    /// Incidents of the month so far (the one-service page lists them).
    pub incidents: Vec<sla::Incident>,
    /// [`DAYS`] bars, oldest first, today last.
    pub bars: Vec<Bar>,
}

/// What a page shows: the rows, and when the figures were computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub title: String,
    pub now: Timestamp,
    pub computed_at: Option<Timestamp>,
    pub rows: Vec<Row>,
}

/// The status page of one collector.
pub struct StatusBoard {
    figures: Arc<Figures>,
    history: Arc<History>,
    clock: SharedClock,
}

impl StatusBoard {
    pub fn new(figures: Arc<Figures>, history: Arc<History>, clock: SharedClock) -> StatusBoard {
        StatusBoard {
            figures,
            history,
            clock,
        }
    }

    pub fn history(&self) -> Arc<History> {
        self.history.clone()
    }

    /// Whether requests without credentials may read the page (`[status] public`; follows
    /// a reload).
    pub fn public(&self) -> bool {
        self.figures.config().status.public
    }

    /// The page of every service the view may see (`service = None`) or of one.
    pub fn page(&self, view: View, service: Option<&str>) -> Result<String, Rejection> {
        let cfg = self.figures.config();
        let snap = self.figures.latest();
        render(
            &cfg,
            &snap,
            &self.history,
            view,
            service,
            self.clock.now_utc(),
        )
    }
}

/// The page from memory: configuration, snapshot, history and `now`.
pub fn render(
    cfg: &CollectorConfig,
    snap: &Snapshot,
    history: &History,
    view: View,
    service: Option<&str>,
    now: Timestamp,
) -> Result<String, Rejection> {
    let board = board(cfg, snap, history, view, service, now)?;
    Ok(match service {
        None => html::overview(&board),
        Some(_) => html::one(&board),
    })
}

/// The services a view shows, in order.
fn shown(cfg: &CollectorConfig, view: View) -> Vec<&Service> {
    match view {
        View::Full => cfg.services.iter().collect(),
        View::Public => cfg
            .status
            .services
            .iter()
            .filter_map(|n| cfg.services.iter().find(|s| &s.name == n))
            .collect(),
    }
}

/// The board from memory: configuration, snapshot, history, `now`.
pub fn board(
    cfg: &CollectorConfig,
    snap: &Snapshot,
    history: &History,
    view: View,
    service: Option<&str>,
    now: Timestamp,
) -> Result<Board, Rejection> {
    let mut services = shown(cfg, view);
    if let Some(name) = service {
        services.retain(|s| s.name == name);
        if services.is_empty() {
            let why = match view {
                View::Full => format!("no service named {name:?} in the collector config"),
                View::Public => format!(
                    "no service named {name:?} on the public status page; a read credential shows every service"
                ),
            };
            return Err(Rejection::new(404, why));
        }
    }
    let index: HashMap<&str, usize> = snap
        .services
        .iter()
        .enumerate()
        .map(|(i, r)| (r.service.as_str(), i))
        .collect();
    let rows = services
        .into_iter()
        .map(|svc| {
            let i = index.get(svc.name.as_str()).copied();
            let report = i.map(|i| &snap.services[i]);
            let computed = i.and_then(|i| snap.computed_of(i));
            row(svc, report, computed, history, now, service.is_some())
        })
        .collect();
    let title = if cfg.report.organisation.is_empty() {
        "Service status".to_string()
    } else {
        format!("{} service status", cfg.report.organisation)
    };
    Ok(Board {
        title,
        now,
        computed_at: snap.computed_at,
        rows,
    })
}

fn row(
    svc: &Service,
    report: Option<&ServiceReport>,
    computed: Option<Timestamp>,
    history: &History,
    now: Timestamp,
    with_incidents: bool,
) -> Row {
    let first = history::first_day(svc, now).ok();
    let shown = first
        .map(|f| history.days(&svc.name, f))
        .unwrap_or_default();
    let now_minute = now.as_second().div_euclid(60);
    let in_maintenance = shown
        .maintenance_runs
        .iter()
        .any(|&(a, b)| a <= now_minute && now_minute < b);
    let (state, why) = state(report, computed, in_maintenance, now);
    let bars = first.map_or_else(Vec::new, |f| bars(svc, f, &shown.days, report));
    let Some(r) = report else {
        return Row {
            name: svc.name.clone(),
            state,
            why,
            availability: None,
            target: svc.target,
            compliant: None,
            month: None,
            budget: None,
            incident: None,
            incidents: Vec::new(),
            bars,
        };
    };
    let incident = r
        .incidents
        .last()
        .filter(|_| r.open_incident)
        .map(|i| OpenIncident {
            start: i.start,
            downtime_minutes: i.downtime_minutes,
            reason: i.reason.clone(),
        });
    Row {
        name: svc.name.clone(),
        state,
        why,
        availability: r.availability_percent_floor(3),
        target: svc.target,
        compliant: r.compliant,
        month: Some(r.period.month.clone()),
        budget: Some((
            r.error_budget.planning_remaining_minutes,
            r.error_budget.planning_allowed_minutes,
        )),
        incident,
        // Only the one-service page lists them; the overview of 1,000 services does not copy them.
        incidents: if with_incidents {
            r.incidents.clone()
        } else {
            Vec::new()
        },
        bars,
    }
}

/// The state from the engine's 5-minute burn window; stale or missing figures are unknown.
pub fn state(
    report: Option<&ServiceReport>,
    computed: Option<Timestamp>,
    in_maintenance: bool,
    now: Timestamp,
) -> (State, String) {
    let Some(r) = report else {
        return (State::Unknown, "figures not computed yet".into());
    };
    if let Some(at) = computed {
        let age = now.duration_since(at).as_secs();
        if age > STALE_SECONDS {
            return (
                State::Unknown,
                format!("figures {} min old: their refresh is failing", age / 60),
            );
        }
    }
    let w = r.burn_rates.windows[0];
    match (w.known, w.bad) {
        (0, _) if in_maintenance => (State::Maintenance, "in maintenance".into()),
        (0, _) => (
            State::Unknown,
            "no verdict in the last 5 minutes (no agent reported, or outside service hours)".into(),
        ),
        (k, 0) => (State::Up, format!("{k} of the last {k} known minutes good")),
        (k, b) if b == k => (
            State::Down,
            format!("{b} of the last {k} known minutes bad"),
        ),
        (k, b) => (
            State::Degraded,
            format!("{b} of the last {k} known minutes bad"),
        ),
    }
}

/// [`DAYS`] bars from `first` to today: final days from the history, today from the month
/// so far minus the final days of the month before it.
fn bars(svc: &Service, first: Date, days: &[Day], report: Option<&ServiceReport>) -> Vec<Bar> {
    // `days` is sorted by date: walk it beside the window instead of indexing it.
    let mut known = days.iter().peekable();
    let today = first
        .checked_add(jiff::Span::new().days(DAYS as i64 - 1))
        .unwrap_or(first);
    let mut out = Vec::with_capacity(DAYS);
    let mut date = first;
    while date < today {
        while known.next_if(|d| d.date < date).is_some() {}
        let bar = match known.peek() {
            Some(d) if d.date == date && d.fin => {
                bar_of(svc.target, d.date, counts_of(d), d.maintenance)
            }
            _ => pending(date),
        };
        out.push(bar);
        let Ok(next) = date.tomorrow() else { break };
        date = next;
    }
    out.push(today_bar(svc, today, days, report));
    out
}

fn today_bar(svc: &Service, today: Date, days: &[Day], report: Option<&ServiceReport>) -> Bar {
    let Some(r) = report else {
        return pending(today);
    };
    let month = format!("{:04}-{:02}", today.year(), today.month());
    if r.period.month != month {
        return pending(today);
    }
    let before: Vec<&Day> = days
        .iter()
        .filter(|d| {
            d.date < today && d.date.year() == today.year() && d.date.month() == today.month()
        })
        .collect();
    // Every day of the month before today must be final, or the difference holds some of them.
    if before.len() != usize::from(today.day().unsigned_abs()) - 1 || before.iter().any(|d| !d.fin)
    {
        return pending(today);
    }
    let sum = before.iter().fold(Counts::default(), |mut c, d| {
        c.eligible += d.eligible;
        c.good += d.good;
        c.bad += d.bad;
        c.unknown += d.unknown;
        c
    });
    let c = Counts {
        eligible: r.eligible_minutes.saturating_sub(sum.eligible),
        good: r.good_minutes.saturating_sub(sum.good),
        bad: r.bad_minutes.saturating_sub(sum.bad),
        unknown: r.unknown_minutes.saturating_sub(sum.unknown),
    };
    let maintenance = days
        .iter()
        .find(|d| d.date == today)
        .map_or(0, |d| d.maintenance);
    bar_of(svc.target, today, c, maintenance)
}

fn counts_of(d: &Day) -> Counts {
    Counts {
        eligible: d.eligible,
        good: d.good,
        bad: d.bad,
        unknown: d.unknown,
    }
}

fn pending(date: Date) -> Bar {
    Bar {
        date,
        class: DayClass::Pending,
        good: 0,
        bad: 0,
        unknown: 0,
        maintenance: 0,
        availability: None,
    }
}

/// A day's bar; below target is decided on integers as the engine decides compliance.
fn bar_of(target: Ppm, date: Date, c: Counts, maintenance: u64) -> Bar {
    let class = if c.eligible == 0 {
        if maintenance > 0 {
            DayClass::Maintenance
        } else {
            DayClass::NotCounted
        }
    } else if c.known() == 0 {
        DayClass::Unknown
    } else if c.bad == 0 {
        DayClass::Good
    } else if sla::availability::compliance(&c, target, None) == Some(true) {
        DayClass::Degraded
    } else {
        DayClass::Bad
    };
    Bar {
        date,
        class,
        good: c.good,
        bad: c.bad,
        unknown: c.unknown,
        maintenance,
        availability: sla::availability::floor_percent(c.good, c.known(), 3),
    }
}
