//! The public report model: what `/api/v1/sla` and `attest-collector sla --format json`
//! print, and what later report formats (HTML, PDF, CSV) render. Every value is built from
//! the engine's results (`sla::ServiceReport`, `Incident`, `CapacityFigure`) by a `From`
//! conversion that copies, never recomputes.
//!
//! Invariants:
//! - Field names and their order are a public contract (docs/sla.md, docs/http-api.md,
//!   `tests/golden/`); rename only with an API version bump. The engine's types may change
//!   freely; a change reaches the public JSON only through an edit here.
//! - `null` means "not determinable / N/A", never zero.
//! - Every ratio has an exact twin `<name>_exact`, the string `"numerator/denominator"` of
//!   the integers the engine divided (not reduced: `"43170/43200"`), so an auditor can
//!   re-derive it and check boundaries (a burn of exactly 14.4) without floats.

use jiff::Timestamp;
use serde::Serialize;

use attest_config::units::Ppm;

use crate::sla;
use crate::sla::availability::Fraction;

/// Every SLA figure of one service for one month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceReport {
    pub service: String,
    pub period: Period,
    /// The instant the figures describe: `min(now, period end)`.
    pub as_of: Timestamp,
    /// True once `as_of` is the period end (the month is closed).
    pub complete: bool,
    /// Where eligibility begins and which rule set it; null when no minute is eligible
    /// (no `start`, never configured in this store, never measured).
    pub eligible_since: Option<EligibleSince>,
    /// Target as a ratio (0.999) and exactly in parts per million.
    pub target: f64,
    pub target_ppm: u32,
    pub min_coverage: Option<f64>,
    pub eligible_minutes: u64,
    pub good_minutes: u64,
    pub bad_minutes: u64,
    pub unknown_minutes: u64,
    /// `good + bad`.
    pub known_minutes: u64,
    /// `good / known`; null when known = 0.
    pub availability: Option<f64>,
    /// `"good/known"`.
    pub availability_exact: Option<String>,
    /// `known / eligible`; null when eligible = 0.
    pub coverage: Option<f64>,
    /// `"known/eligible"`.
    pub coverage_exact: Option<String>,
    pub bounds: Bounds,
    /// Null when not determinable: known = 0 or coverage below `min_coverage`.
    pub compliant: Option<bool>,
    pub error_budget: ErrorBudget,
    pub burn_rates: BurnRates,
    pub burn_alerts: BurnAlerts,
    pub latency: Latency,
    pub incidents: Vec<Incident>,
    pub incident_count: u64,
    /// An incident is still running at `as_of` and the month is not closed.
    pub open_incident: bool,
    pub mttr_minutes: Option<f64>,
    pub mtbf_minutes: Option<f64>,
    pub mtbsi_minutes: Option<f64>,
    /// The service's capacity objectives and their monthly verdicts.
    pub capacity: ServiceCapacity,
}

/// Where eligibility begins (JSON key `eligible_since`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EligibleSince {
    /// Start of the first eligible minute.
    pub instant: Timestamp,
    /// `start` (the configured agreement start), `first_configured` (the first time this
    /// store saw the service configured) or `first_measured` (the first measurement of any
    /// of its checks); see docs/sla.md.
    pub basis: &'static str,
}

/// The reporting period: a calendar month in the service's zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// `YYYY-MM`.
    pub month: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub time_zone: String,
    /// Minutes in the whole period (44,700 for Europe/Berlin in October 2026).
    pub minutes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bounds {
    /// `good / eligible`: unknown minutes counted as bad.
    pub pessimistic: Option<f64>,
    /// `(good + unknown) / eligible`: unknown minutes counted as good.
    pub optimistic: Option<f64>,
    /// `"good/eligible"`.
    pub pessimistic_exact: Option<String>,
    /// `"(good + unknown)/eligible"`, the numerator summed.
    pub optimistic_exact: Option<String>,
}

/// The error budget; every `*_exact` ratio is in micro-minutes (minutes × 10⁶), the unit
/// the engine computes the budget in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBudget {
    /// `(1 − target) × known`.
    pub allowed_minutes: f64,
    /// `allowed − bad`; negative once the budget is exhausted.
    pub remaining_minutes: f64,
    /// `remaining / allowed`; null when nothing is allowed.
    pub remaining_ratio: Option<f64>,
    /// `"remaining/allowed"` in micro-minutes.
    pub remaining_ratio_exact: Option<String>,
    /// `(1 − target) × eligible minutes of the whole month`.
    pub planning_allowed_minutes: f64,
    /// `planning_allowed − bad`; negative once the month's budget is spent.
    pub planning_remaining_minutes: f64,
    /// `planning_remaining / planning_allowed`; null when the month allows nothing.
    pub planning_remaining_ratio: Option<f64>,
    /// `"planning_remaining/planning_allowed"` in micro-minutes.
    pub planning_remaining_ratio_exact: Option<String>,
}

/// Burn rates by window, keyed by the window's name (`5m` … `3d`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRates {
    #[serde(rename = "5m")]
    pub m5: BurnWindow,
    #[serde(rename = "30m")]
    pub m30: BurnWindow,
    #[serde(rename = "1h")]
    pub h1: BurnWindow,
    #[serde(rename = "6h")]
    pub h6: BurnWindow,
    #[serde(rename = "1d")]
    pub d1: BurnWindow,
    #[serde(rename = "3d")]
    pub d3: BurnWindow,
}

/// One burn-rate window: its counts and `rate = (bad / known) / (1 − target)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnWindow {
    /// Bad eligible minutes in the window.
    pub bad: u64,
    /// Known (good + bad) eligible minutes in the window.
    pub known: u64,
    /// Null when known = 0 or the target is 100 %.
    pub rate: Option<f64>,
    /// `"(bad × 10⁶)/(known × (10⁶ − target_ppm))"`, multiplied out.
    pub rate_exact: Option<String>,
}

/// The multiwindow alerts, overall and rule by rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BurnAlerts {
    /// `page_fast` or `page_slow`.
    pub page: bool,
    /// 3 d and 6 h burn > 1 (the rule `ticket`).
    pub ticket: bool,
    /// 1 h and 5 m burn > 14.4.
    pub page_fast: bool,
    /// 6 h and 30 m burn > 6.
    pub page_slow: bool,
}

/// The latency objective and percentiles (JSON key `latency`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Null when the service has no latency objective.
    pub threshold_seconds: Option<f64>,
    pub target: Option<f64>,
    /// `within / probes`; null without an objective or without probes.
    pub objective_ratio: Option<f64>,
    /// `"probes_within/probes"`.
    pub objective_ratio_exact: Option<String>,
    /// Null when not determinable (no objective or no probes).
    pub objective_met: Option<bool>,
    pub probes: u64,
    /// Successful probes with `duration ≤ threshold`; null without an objective.
    pub probes_within: Option<u64>,
    /// Start of the first minute judged on exact durations (µs); earlier minutes, whose raw
    /// measurements had expired when the threshold was first configured, are judged at
    /// the histogram's resolution. Null without an objective or when no minute is exact.
    pub exact_from: Option<Timestamp>,
    /// Successful probes judged at the histogram's resolution instead of exactly.
    pub histogram_resolution_probes: u64,
    /// Significant decimal digits of the percentiles below (the histogram's precision).
    pub percentile_significant_digits: u8,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// Always 0 (buckets merge by index); kept so that the format does not change.
    pub histograms_skipped: u64,
}

/// A maximal run of bad minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub start: Timestamp,
    pub end: Timestamp,
    pub open_at_start: bool,
    pub open_at_end: bool,
    /// Bad minutes inside the incident.
    pub downtime_minutes: u64,
    /// Agents whose verdict was *fail* in a bad minute of the incident, sorted.
    pub agents: Vec<String>,
    /// Most common failure reason; null when the rollups carried none.
    pub reason: Option<String>,
}

/// Utilisation of one resource of one host over the period (documented in docs/sla.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityFigure {
    pub agent: String,
    /// `cpu`, `memory`, `filesystem`, …
    pub kind: String,
    /// Mount point, interface, … (empty for whole-host values).
    pub resource: String,
    /// Minutes with a value in the period (up to `now`).
    pub minutes: u64,
    pub p95: Option<f64>,
    pub max: Option<f64>,
    pub minutes_above_warning: u64,
    pub minutes_above_critical: u64,
    /// Slope of the least-squares line, in utilisation per day.
    pub trend_per_day: Option<f64>,
    /// Days until the line reaches the critical threshold; null = not within the horizon.
    pub days_until_critical: Option<f64>,
    /// The fitted line over `[now − trend_lookback, now)`.
    pub trend: Trend,
    /// When the line reaches the critical threshold.
    pub forecast: Forecast,
}

/// A least-squares line through minute averages, with what a reviewer needs to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trend {
    /// The window `[from, to)` the line was fitted over.
    pub from: Timestamp,
    pub to: Timestamp,
    /// Minutes with a value in the window (the points of the fit).
    pub minutes: u64,
    /// Utilisation per day; null with fewer than two minutes.
    pub slope_per_day: Option<f64>,
    /// Coefficient of determination, 0..1; null without a fit or for a flat series.
    pub r_squared: Option<f64>,
    /// The fitted value at `to`.
    pub value_at_end: Option<f64>,
}

/// When a trend reaches a threshold: `{"status": "within_horizon", "days": …}`,
/// `{"status": "not_within_horizon"}` or `{"status": "no_trend"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Forecast {
    WithinHorizon { days: f64 },
    NotWithinHorizon,
    NoTrend,
}

/// The verdict of a capacity objective (or of all of a service's): `met`,
/// `not_determinable` or `breached`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    NotDeterminable,
    Breached,
}

/// Capacity against the agreed levels of one service for one month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceCapacity {
    /// The hosts judged.
    pub hosts: Vec<String>,
    /// `config` (the service's `hosts`) or `checks` (the agents that measured its checks).
    pub hosts_from: &'static str,
    /// Worst verdict of the objectives; null when the service has none.
    pub verdict: Option<Verdict>,
    pub objectives: Vec<ObjectiveResult>,
}

/// One capacity objective: its terms, the constraint's value and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectiveResult {
    pub name: String,
    pub kind: String,
    /// The resource the objective names; null = every resource of the kind.
    pub resource: Option<String>,
    /// `p95`, `max`, `average`, `minutes_above` or `days_to_threshold`.
    pub statistic: &'static str,
    /// Utilisation the statistic looks at (minutes_above, days_to_threshold).
    pub threshold: Option<f64>,
    /// The agreed limit: a ratio, minutes (minutes_above) or days (days_to_threshold, a minimum).
    pub limit: f64,
    /// The constraint's value in the limit's unit; null when nothing was measured or
    /// (days_to_threshold) no forecast is within the horizon — see `forecast`.
    pub value: Option<f64>,
    /// days_to_threshold only: the constraint's forecast.
    pub forecast: Option<Forecast>,
    pub verdict: Verdict,
    /// The span `[from, to)` judged.
    pub from: Timestamp,
    pub to: Timestamp,
    pub only_service_hours: bool,
    pub exclude_maintenance: bool,
    /// Minutes of the span the objective counts.
    pub counted_minutes: u64,
    pub min_coverage: f64,
    /// The host and resource that decide `value`.
    pub constraint: Option<Constraint>,
    pub series: Vec<SeriesResult>,
}

/// The host and resource that decide an objective's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    pub host: String,
    pub resource: String,
}

/// One host and resource under one objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesResult {
    pub host: String,
    pub resource: String,
    /// Counted minutes with a value.
    pub minutes: u64,
    /// `minutes / counted_minutes`; null when nothing is counted.
    pub coverage: Option<f64>,
    pub value: Option<f64>,
    /// days_to_threshold only.
    pub trend: Option<Trend>,
    pub forecast: Option<Forecast>,
    pub verdict: Verdict,
}

impl From<&sla::ServiceReport> for ServiceReport {
    fn from(r: &sla::ServiceReport) -> Self {
        ServiceReport {
            service: r.service.clone(),
            period: Period::from(&r.period),
            as_of: r.as_of,
            complete: r.complete,
            eligible_since: r.eligible_since.map(|e| EligibleSince {
                instant: minute_start(e.minute),
                basis: e.basis.as_str(),
            }),
            target: r.target,
            target_ppm: r.target_ppm,
            min_coverage: r.min_coverage,
            eligible_minutes: r.eligible_minutes,
            good_minutes: r.good_minutes,
            bad_minutes: r.bad_minutes,
            unknown_minutes: r.unknown_minutes,
            known_minutes: r.known_minutes(),
            availability: r.availability,
            availability_exact: exact(r.exact.availability),
            coverage: r.coverage,
            coverage_exact: exact(r.exact.coverage),
            bounds: Bounds {
                pessimistic: r.bounds.pessimistic,
                optimistic: r.bounds.optimistic,
                pessimistic_exact: exact(r.exact.pessimistic),
                optimistic_exact: exact(r.exact.optimistic),
            },
            compliant: r.compliant,
            error_budget: ErrorBudget::from(&r.error_budget),
            burn_rates: BurnRates::of(&r.burn_rates, Ppm(r.target_ppm)),
            burn_alerts: BurnAlerts::from(&r.burn_alerts),
            latency: Latency::from(&r.latency),
            incidents: r.incidents.iter().map(Incident::from).collect(),
            incident_count: r.incident_count,
            open_incident: r.open_incident,
            mttr_minutes: r.mttr_minutes,
            mtbf_minutes: r.mtbf_minutes,
            mtbsi_minutes: r.mtbsi_minutes,
            capacity: ServiceCapacity::from(&r.capacity),
        }
    }
}

impl From<&sla::report::PeriodReport> for Period {
    fn from(p: &sla::report::PeriodReport) -> Self {
        Period {
            month: p.month.clone(),
            start: p.start,
            end: p.end,
            time_zone: p.time_zone.clone(),
            minutes: p.minutes,
        }
    }
}

impl From<&sla::budget::ErrorBudget> for ErrorBudget {
    fn from(b: &sla::budget::ErrorBudget) -> Self {
        ErrorBudget {
            allowed_minutes: b.allowed_minutes,
            remaining_minutes: b.remaining_minutes,
            remaining_ratio: b.remaining_ratio,
            remaining_ratio_exact: exact(b.remaining_ratio_exact()),
            planning_allowed_minutes: b.planning_allowed_minutes,
            planning_remaining_minutes: b.planning_remaining_minutes,
            planning_remaining_ratio: b.planning_remaining_ratio,
            planning_remaining_ratio_exact: exact(b.planning_remaining_ratio_exact()),
        }
    }
}

impl BurnRates {
    /// The engine's rates with the counts behind them; `target` makes the exact form.
    fn of(b: &sla::burn::BurnRates, target: Ppm) -> Self {
        let w = |i: usize, rate: Option<f64>| {
            let c = b.windows[i];
            BurnWindow {
                bad: c.bad,
                known: c.known,
                rate,
                rate_exact: exact(rate.and(c.rate_exact(target))),
            }
        };
        BurnRates {
            m5: w(0, b.m5),
            m30: w(1, b.m30),
            h1: w(2, b.h1),
            h6: w(3, b.h6),
            d1: w(4, b.d1),
            d3: w(5, b.d3),
        }
    }
}

impl From<&sla::burn::BurnAlerts> for BurnAlerts {
    fn from(a: &sla::burn::BurnAlerts) -> Self {
        BurnAlerts {
            page: a.page,
            ticket: a.ticket,
            page_fast: a.page_fast,
            page_slow: a.page_slow,
        }
    }
}

impl From<&sla::latency::LatencyFigures> for Latency {
    fn from(l: &sla::latency::LatencyFigures) -> Self {
        Latency {
            threshold_seconds: l.threshold_seconds,
            target: l.target,
            objective_ratio: l.objective_ratio,
            objective_ratio_exact: exact(l.objective_ratio_exact),
            objective_met: l.objective_met,
            probes: l.probes,
            probes_within: l.probes_within,
            exact_from: l.exact_from.map(minute_start),
            histogram_resolution_probes: l.histogram_resolution_probes,
            percentile_significant_digits: l.percentile_significant_digits,
            p50_seconds: l.p50_seconds,
            p95_seconds: l.p95_seconds,
            p99_seconds: l.p99_seconds,
            histograms_skipped: l.histograms_skipped,
        }
    }
}

/// The exact form of a ratio: `"num/den"`.
fn exact(f: Option<Fraction>) -> Option<String> {
    f.map(|f| f.to_string())
}

/// The instant a Unix minute starts (clamped to the representable range).
fn minute_start(minute: i64) -> Timestamp {
    Timestamp::from_second(minute.saturating_mul(60)).unwrap_or(if minute < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

impl From<&sla::Incident> for Incident {
    fn from(i: &sla::Incident) -> Self {
        Incident {
            start: i.start,
            end: i.end,
            open_at_start: i.open_at_start,
            open_at_end: i.open_at_end,
            downtime_minutes: i.downtime_minutes,
            agents: i.agents.clone(),
            reason: i.reason.clone(),
        }
    }
}

impl From<&sla::CapacityFigure> for CapacityFigure {
    fn from(c: &sla::CapacityFigure) -> Self {
        CapacityFigure {
            agent: c.agent.clone(),
            kind: c.kind.clone(),
            resource: c.resource.clone(),
            minutes: c.minutes,
            p95: c.p95,
            max: c.max,
            minutes_above_warning: c.minutes_above_warning,
            minutes_above_critical: c.minutes_above_critical,
            trend_per_day: c.trend_per_day,
            days_until_critical: c.days_until_critical,
            trend: Trend::from(&c.trend),
            forecast: Forecast::from(c.forecast),
        }
    }
}

impl From<&sla::capacity::Trend> for Trend {
    fn from(t: &sla::capacity::Trend) -> Self {
        Trend {
            from: t.from,
            to: t.to,
            minutes: t.minutes,
            slope_per_day: t.slope_per_day,
            r_squared: t.r_squared,
            value_at_end: t.value_at_end,
        }
    }
}

impl From<sla::capacity::Forecast> for Forecast {
    fn from(f: sla::capacity::Forecast) -> Self {
        use sla::capacity::Forecast as F;
        match f {
            F::WithinHorizon { days } => Forecast::WithinHorizon { days },
            F::NotWithinHorizon => Forecast::NotWithinHorizon,
            F::NoTrend => Forecast::NoTrend,
        }
    }
}

impl From<sla::capacity_objectives::Verdict> for Verdict {
    fn from(v: sla::capacity_objectives::Verdict) -> Self {
        use sla::capacity_objectives::Verdict as V;
        match v {
            V::Met => Verdict::Met,
            V::NotDeterminable => Verdict::NotDeterminable,
            V::Breached => Verdict::Breached,
        }
    }
}

impl From<&sla::ServiceCapacity> for ServiceCapacity {
    fn from(c: &sla::ServiceCapacity) -> Self {
        ServiceCapacity {
            hosts: c.hosts.clone(),
            hosts_from: c.hosts_from,
            verdict: c.verdict.map(Verdict::from),
            objectives: c.objectives.iter().map(ObjectiveResult::from).collect(),
        }
    }
}

impl From<&sla::capacity_objectives::ObjectiveResult> for ObjectiveResult {
    fn from(o: &sla::capacity_objectives::ObjectiveResult) -> Self {
        ObjectiveResult {
            name: o.name.clone(),
            kind: o.kind.clone(),
            resource: o.resource.clone(),
            statistic: o.statistic,
            threshold: o.threshold,
            limit: o.limit,
            value: o.value,
            forecast: o.forecast.map(Forecast::from),
            verdict: Verdict::from(o.verdict),
            from: o.from,
            to: o.to,
            only_service_hours: o.only_service_hours,
            exclude_maintenance: o.exclude_maintenance,
            counted_minutes: o.counted_minutes,
            min_coverage: o.min_coverage,
            constraint: o.constraint.as_ref().map(Constraint::from),
            series: o.series.iter().map(SeriesResult::from).collect(),
        }
    }
}

impl From<&sla::capacity_objectives::Constraint> for Constraint {
    fn from(c: &sla::capacity_objectives::Constraint) -> Self {
        Constraint {
            host: c.host.clone(),
            resource: c.resource.clone(),
        }
    }
}

impl From<&sla::capacity_objectives::SeriesResult> for SeriesResult {
    fn from(s: &sla::capacity_objectives::SeriesResult) -> Self {
        SeriesResult {
            host: s.host.clone(),
            resource: s.resource.clone(),
            minutes: s.minutes,
            coverage: s.coverage,
            value: s.value,
            trend: s.trend.as_ref().map(Trend::from),
            forecast: s.forecast.map(Forecast::from),
            verdict: Verdict::from(s.verdict),
        }
    }
}
