//! The SLA engine: turns a service's configuration, its minute rollups, gaps and first-seen
//! minute into every SLA figure of a calendar month, as defined in `docs/sla.md`.
//!
//! Invariants:
//! - Pure: no I/O, no clock of its own (`now` is passed in), no store access. The same
//!   input always gives the same [`ServiceReport`].
//! - Only [`calendar`] applies time zones; everything else works on UTC Unix minutes.
//! - Compliance, burn-rate alerts and the latency verdict are decided on integers.
//! - Cost is linear in minutes and rollups, with no hashing in the per-minute loops.

pub mod availability;
pub mod budget;
pub mod burn;
pub mod calendar;
pub mod capacity;
pub mod capacity_objectives;
pub mod closed;
mod closed_codec;
pub mod detail;
pub mod incidents;
pub mod latency;
pub mod report;
pub mod timeline;

#[cfg(test)]
mod capacity_tests;
#[cfg(test)]
mod tests;

use attest_config::{MaintenanceWindow, Service};
use jiff::Timestamp;

use crate::minutes::{GapSpan, SeriesMinutes, ThresholdOver};

pub use availability::Counts;
pub use calendar::{Calendar, EligibilityBasis, EligibleSince, Month, Period};
pub use capacity::{CapacityFigure, capacity};
pub use capacity_objectives::{HostInput, ServiceCapacity};
pub use closed::ClosedMinutes;
pub use detail::{DayFigure, MonthDetail, UnknownInterval, detail};
pub use incidents::Incident;
pub use report::ServiceReport;
pub use timeline::{QuorumRule, Timeline};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    #[error(
        "unknown time zone {zone:?} ({detail}); use an IANA name such as \"Europe/Berlin\" and make sure the tz database is installed"
    )]
    UnknownZone { zone: String, detail: String },
    #[error("month {year}-{month:02} is out of range; use a month 1-12 of a year 1-9998")]
    BadMonth { year: i16, month: i8 },
    #[error("date arithmetic failed ({0}); the period is outside the supported range")]
    Time(String),
}

/// Everything the engine needs about one service, as plain values read from config and store.
#[derive(Debug, Clone, Copy)]
pub struct ServiceInput<'a> {
    pub service: &'a Service,
    /// Maintenance registered through the API, as `MaintenanceWindow::Once` values
    /// (cancelled rows left out by the caller).
    pub maintenance: &'a [MaintenanceWindow],
    /// Rollups of the service's checks covering at least [`input_range`], in the compact
    /// form (`Store::series_minutes`).
    pub rollups: &'a SeriesMinutes,
    /// Gaps of the service's checks covering at least [`input_range`].
    pub gaps: &'a [GapSpan],
    /// Earliest minute any of the service's checks was measured; `None` = never.
    pub first_seen: Option<i64>,
    /// The first time this store saw the service configured (`Store::first_configured`);
    /// `None` = unknown. Used only when the service has no `start`.
    pub first_configured: Option<Timestamp>,
    /// The store's exact counts for the latency objective's threshold
    /// (`Store::threshold_over`) covering at least the period; `None` = none (every minute
    /// is then judged at the histogram's resolution).
    pub exact: Option<&'a ThresholdOver>,
    /// Host values for the capacity objectives; `None` leaves every objective not
    /// determinable (no host data given).
    pub host: Option<HostInput<'a>>,
}

/// The minutes `[from, to)` whose rollups and gaps [`evaluate`] reads: the period plus the
/// longest burn-rate window (3 days) before the period start and before `as_of`.
pub fn input_range(
    service: &Service,
    month: Month,
    now: Timestamp,
) -> Result<(i64, i64), SlaError> {
    let period = Period::month(month, &service.time_zone)?;
    Ok(range(&period, now))
}

/// Always reaches `LONGEST_WINDOW` before the period start too, so that an incident
/// running into the period is seen as open at its start.
fn range(period: &Period, now: Timestamp) -> (i64, i64) {
    let back = burn::LONGEST_WINDOW_MINUTES;
    let from = (period.start_minute - back).min(as_of_minute(period, now) - back);
    (from, period.end_minute)
}

/// The first minute that has not started at `min(now, period end)`, within the period.
fn as_of_minute(period: &Period, now: Timestamp) -> i64 {
    calendar::ceil_minute(now).clamp(period.start_minute, period.end_minute)
}

/// Computes every figure of `input.service` for `month` as of `now`.
pub fn evaluate(
    input: &ServiceInput<'_>,
    month: Month,
    now: Timestamp,
) -> Result<ServiceReport, SlaError> {
    match evaluate_incremental(input, month, now, None)? {
        Incremental::Done(done) => Ok(done.0),
        // Unreachable without a prior; an empty report would be wrong, so say so.
        Incremental::NeedsAllRows => Err(SlaError::Time(
            "internal: a full evaluation asked for more rows".into(),
        )),
    }
}

/// The outcome of [`evaluate_incremental`].
#[derive(Debug)]
pub enum Incremental {
    /// The report, and the closed minutes to pass to the next call.
    Done(Box<(ServiceReport, ClosedMinutes)>),
    /// `prior` no longer applies (the calendar mask, quorum or latency objective changed,
    /// or it reaches past the closed minutes): call again without it and with every row.
    NeedsAllRows,
}

/// [`evaluate`], reusing `prior` (the [`ClosedMinutes`] of an earlier call for the same
/// service and month) when it still applies; then `input.rollups` need only cover the
/// minutes from `prior.to()` on. Also returns the closed minutes of this call, to pass to
/// the next one. The caller must drop `prior` when the store reports rows or gaps of its
/// minutes changed; everything else it depends on is checked here
/// ([`Incremental::NeedsAllRows`]).
pub fn evaluate_incremental(
    input: &ServiceInput<'_>,
    month: Month,
    now: Timestamp,
    prior: Option<&ClosedMinutes>,
) -> Result<Incremental, SlaError> {
    let svc = input.service;
    let since = calendar::eligible_since(svc, input.first_seen, input.first_configured);
    let cal = Calendar::new(svc, input.maintenance, since)?;
    let period = Period::month_in(month, &svc.time_zone, cal.time_zone())?;
    let as_of = as_of_minute(&period, now);
    let (from, to) = range(&period, now);
    let mut mask = cal.eligible_mask(from, to);
    let planning_eligible = count_ones(&mask[(period.start_minute - from) as usize..]);
    mask[(as_of - from) as usize..].fill(0);
    let rule = QuorumRule {
        quorum: svc.quorum,
        min_reporters: svc.min_reporters,
    };
    let window = latency::window(
        period.start_minute,
        as_of,
        svc.latency.as_ref(),
        input.exact,
    );
    let split = closed::split(from, as_of);
    let Some(folded) = closed::fold(
        from,
        &mask,
        split,
        (input.rollups, input.gaps),
        rule,
        window,
        prior,
    ) else {
        return Ok(Incremental::NeedsAllRows);
    };
    let timeline = &folded.timeline;
    let counts = Counts::of(timeline.slice(period.start_minute, as_of));
    let incidents = incidents::incidents(timeline, &folded.failing, period.start_minute, as_of);
    let exact_from = window.exact_from().map(|f| f.max(period.start_minute));
    let latency = latency::figures(&folded.tally, svc.latency.as_ref(), exact_from);
    let capacity = capacity_objectives::evaluate(
        svc,
        input.maintenance,
        input.host,
        &period,
        as_of,
        &timeline.agents,
    )?;
    let mut report = assemble(
        svc,
        &period,
        timeline,
        counts,
        incidents,
        latency,
        (as_of, since),
        planning_eligible,
        now,
    );
    report.capacity = capacity;
    Ok(Incremental::Done(Box::new((report, folded.closed))))
}

fn count_ones(mask: &[u8]) -> u64 {
    mask.iter().filter(|&&b| b != 0).count() as u64
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    svc: &Service,
    period: &Period,
    timeline: &Timeline,
    counts: Counts,
    incidents: Vec<Incident>,
    latency: latency::LatencyFigures,
    (as_of, since): (i64, Option<EligibleSince>),
    planning_eligible: u64,
    now: Timestamp,
) -> ServiceReport {
    use availability as av;
    let (burn_rates, burn_alerts) = burn::burn(timeline, as_of, svc.target);
    let rel = incidents::reliability(&incidents, counts.good, counts.known());
    let complete = as_of == period.end_minute;
    let as_of_ts = if now >= period.end {
        period.end
    } else if now <= period.start {
        period.start
    } else {
        now
    };
    ServiceReport {
        service: svc.name.clone(),
        period: report::PeriodReport {
            month: period.month.to_string(),
            start: period.start,
            end: period.end,
            time_zone: period.time_zone.clone(),
            minutes: period.minutes(),
        },
        as_of: as_of_ts,
        complete,
        eligible_since: since,
        target: svc.target.as_ratio(),
        target_ppm: svc.target.0,
        min_coverage: svc.min_coverage.map(attest_config::units::Ppm::as_ratio),
        eligible_minutes: counts.eligible,
        good_minutes: counts.good,
        bad_minutes: counts.bad,
        unknown_minutes: counts.unknown,
        exact: av::ExactRatios::of(&counts),
        availability: av::availability(&counts),
        coverage: av::coverage(&counts),
        bounds: report::Bounds {
            pessimistic: av::pessimistic(&counts),
            optimistic: av::optimistic(&counts),
        },
        compliant: av::compliance(&counts, svc.target, svc.min_coverage),
        error_budget: budget::error_budget(&counts, svc.target, planning_eligible),
        burn_rates,
        burn_alerts,
        latency,
        incident_count: incidents.len() as u64,
        open_incident: !complete && incidents.last().is_some_and(|i| i.open_at_end),
        incidents,
        mttr_minutes: rel.mttr_minutes,
        mtbf_minutes: rel.mtbf_minutes,
        mtbsi_minutes: rel.mtbsi_minutes,
        capacity: ServiceCapacity::default(),
    }
}
