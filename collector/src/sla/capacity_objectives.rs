//! Capacity objectives: the monthly verdict on each capacity level agreed for a service
//! (`capacity = [...]` in `[[service]]`), judged over the hosts that serve it.
//!
//! Invariants:
//! - Hosts are the service's `hosts`, or else the agents that measured its checks in the
//!   evaluated input range. Each host is judged on every resource of the objective's kind
//!   (or the one named); the objective's value is that of the worst host/resource (the
//!   constraint).
//! - Counted minutes: the period's minutes up to `as_of` (for `days_to_threshold`: the
//!   `trend_lookback` before `as_of`), minus those outside service hours when the
//!   objective asks `only_service_hours`, minus maintenance when it asks
//!   `exclude_maintenance`. Only samples of counted minutes enter a statistic.
//! - Coverage rule: a host/resource is covered when it has a value in at least
//!   `min_coverage` of the counted minutes (decided on integers). A breach already seen in
//!   `max` or `minutes_above` stands whatever the coverage (more data can only raise
//!   them); every other verdict needs coverage, else the series — and the objective — is
//!   *not determinable*. A host with no series of the kind has coverage 0.
//! - Verdicts combine breached > not determinable > met: over series to the objective,
//!   over objectives to the service. No objectives ⇒ no service verdict (`null`).
//! - Limits: `value ≤ max` meets p95/max/average; `minutes above ≤ max_minutes` meets
//!   minutes_above; a forecast meets `min_days` when it is not within the horizon or its
//!   days are at least `min_days`. "Not within horizon" is never turned into a number.

use std::collections::BTreeMap;

use attest_config::{
    CapacityConfig, CapacityObjective, CapacityRule, CapacityStatistic, MaintenanceWindow, Service,
};
use jiff::Timestamp;

use super::SlaError;
use super::calendar::{Calendar, EligibilityBasis, EligibleSince, Period, minute_start};
use super::capacity::{self, Forecast, Key, Sample, Trend};
use crate::minutes::HostMinute;

/// Host values for the capacity objectives, with the `[capacity]` settings.
#[derive(Debug, Clone, Copy)]
pub struct HostInput<'a> {
    pub config: &'a CapacityConfig,
    /// Host minutes of any agents covering at least the period and the trend look-back
    /// before `as_of`; rows of agents that are not the service's hosts are ignored.
    pub minutes: &'a [HostMinute],
}

/// One of the fixed words a result carries (a statistic, where its hosts came from). An
/// alias, so that serde reads it back through `report::known_str` instead of borrowing it
/// from the input (which would tie every report to the input's lifetime).
pub type Word = &'static str;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Verdict {
    Met,
    NotDeterminable,
    Breached,
}

/// Capacity against the agreed levels of one service for one month.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceCapacity {
    /// The hosts judged.
    pub hosts: Vec<String>,
    /// `config` (the service's `hosts`) or `checks` (the agents that measured its checks).
    #[serde(deserialize_with = "super::report::known_str")]
    pub hosts_from: Word,
    /// Worst verdict of the objectives; null when the service has none.
    pub verdict: Option<Verdict>,
    pub objectives: Vec<ObjectiveResult>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectiveResult {
    pub name: String,
    pub kind: String,
    /// The resource the objective names; null = every resource of the kind.
    pub resource: Option<String>,
    /// `p95`, `max`, `average`, `minutes_above` or `days_to_threshold`.
    #[serde(deserialize_with = "super::report::known_str")]
    pub statistic: Word,
    /// Utilisation the statistic looks at (minutes_above, days_to_threshold).
    pub threshold: Option<f64>,
    /// The agreed limit: a ratio (p95, max, average), minutes (minutes_above) or days
    /// (days_to_threshold, a minimum).
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Constraint {
    pub host: String,
    pub resource: String,
}

/// One host and resource under one objective.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// The judged span and its counted minutes, one mask byte per minute of `[from, to)`.
struct Span {
    from: i64,
    to: i64,
    mask: Vec<u8>,
}

impl Span {
    fn counted(&self) -> u64 {
        self.mask.iter().map(|&b| u64::from(b)).sum()
    }

    fn samples(&self, all: &[Sample]) -> Vec<Sample> {
        all.iter()
            .filter(|s| s.minute >= self.from && s.minute < self.to)
            .filter(|s| self.mask[(s.minute - self.from) as usize] == 1)
            .copied()
            .collect()
    }
}

/// Judges every capacity objective of `svc` over `[period start, as_of)`.
/// `extra` is maintenance registered through the API; `measured_by` the agents that
/// measured the service's checks (used when the service names no hosts).
pub fn evaluate(
    svc: &Service,
    extra: &[MaintenanceWindow],
    host: Option<HostInput<'_>>,
    period: &Period,
    as_of: i64,
    measured_by: &[String],
) -> Result<ServiceCapacity, SlaError> {
    let (hosts, hosts_from) = if svc.hosts.is_empty() {
        (measured_by.to_vec(), "checks")
    } else {
        (svc.hosts.clone(), "config")
    };
    let mut out = ServiceCapacity {
        hosts,
        hosts_from,
        verdict: None,
        objectives: Vec::new(),
    };
    if svc.capacity.is_empty() {
        return Ok(out);
    }
    let rows = host.map_or(&[][..], |h| h.minutes);
    let series = capacity::series(rows.iter().filter(|h| out.hosts.contains(&h.agent)));
    let masks = Masks::new(svc, extra)?;
    for obj in &svc.capacity {
        let span = match (obj.rule, host) {
            (CapacityRule::DaysToThreshold { .. }, Some(h)) => {
                let back = capacity::lookback_minutes(h.config);
                (as_of.saturating_sub(back), as_of)
            }
            _ => (period.start_minute, as_of),
        };
        let span = masks.span(obj, span.0, span.1)?;
        let r = objective(obj, host.map(|h| h.config), &out.hosts, &series, &span);
        out.objectives.push(r);
    }
    out.verdict = out.objectives.iter().map(|o| o.verdict).max();
    Ok(out)
}

/// The service's calendar parts, from which each objective's counted minutes are built.
struct Masks<'a> {
    svc: &'a Service,
    extra: &'a [MaintenanceWindow],
}

impl<'a> Masks<'a> {
    fn new(svc: &'a Service, extra: &'a [MaintenanceWindow]) -> Result<Self, SlaError> {
        super::calendar::zone(&svc.time_zone)?;
        Ok(Masks { svc, extra })
    }

    /// The counted minutes of `[from, to)` for `obj`: a calendar of the service with only
    /// the parts the objective asks for (no start, no first-seen bound).
    fn span(&self, obj: &CapacityObjective, from: i64, to: i64) -> Result<Span, SlaError> {
        let mut s = self.svc.clone();
        s.start = None;
        if !obj.only_service_hours {
            s.service_hours.clear();
            s.holidays.clear();
        }
        let extra = if obj.exclude_maintenance {
            self.extra
        } else {
            s.maintenance.clear();
            &[]
        };
        let since = EligibleSince {
            minute: i64::MIN,
            basis: EligibilityBasis::Start,
        };
        let cal = Calendar::new(&s, extra, Some(since))?;
        let to = to.max(from);
        Ok(Span {
            from,
            to,
            mask: cal.eligible_mask(from, to),
        })
    }
}

fn objective(
    obj: &CapacityObjective,
    config: Option<&CapacityConfig>,
    hosts: &[String],
    series: &BTreeMap<Key, Vec<Sample>>,
    span: &Span,
) -> ObjectiveResult {
    let min_coverage = obj
        .min_coverage
        .or(config.map(|c| c.min_coverage))
        .unwrap_or(attest_config::units::Ppm::ONE);
    let counted = span.counted();
    let mut results = Vec::new();
    for h in hosts {
        let matching: Vec<(&Key, &Vec<Sample>)> = series
            .iter()
            .filter(|((a, k, r), _)| {
                a == h && *k == obj.kind && obj.resource.as_ref().is_none_or(|x| x == r)
            })
            .collect();
        if matching.is_empty() {
            let resource = obj.resource.clone().unwrap_or_default();
            results.push(judge(obj, config, h, &resource, &[], span, min_coverage.0));
        }
        for ((_, _, r), samples) in matching {
            let s = span.samples(samples);
            results.push(judge(obj, config, h, r, &s, span, min_coverage.0));
        }
    }
    let verdict = results
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::NotDeterminable);
    let worst = worst(obj, &results);
    let (statistic, threshold, limit) = describe(&obj.rule);
    ObjectiveResult {
        name: obj.name.clone(),
        kind: obj.kind.clone(),
        resource: obj.resource.clone(),
        statistic,
        threshold,
        limit,
        value: worst.and_then(|w| w.value),
        forecast: worst.and_then(|w| w.forecast),
        verdict,
        from: minute_start(span.from),
        to: minute_start(span.to),
        only_service_hours: obj.only_service_hours,
        exclude_maintenance: obj.exclude_maintenance,
        counted_minutes: counted,
        min_coverage: min_coverage.as_ratio(),
        constraint: worst.map(|w| Constraint {
            host: w.host.clone(),
            resource: w.resource.clone(),
        }),
        series: results,
    }
}

/// `(statistic, threshold, limit)` as shown.
fn describe(rule: &CapacityRule) -> (&'static str, Option<f64>, f64) {
    match *rule {
        CapacityRule::Level { max, .. } => (rule.statistic(), None, max.as_ratio()),
        CapacityRule::MinutesAbove {
            threshold,
            max_minutes,
        } => (
            rule.statistic(),
            Some(threshold.as_ratio()),
            max_minutes as f64,
        ),
        CapacityRule::DaysToThreshold {
            threshold,
            min_days,
        } => (
            rule.statistic(),
            Some(threshold.as_ratio()),
            f64::from(min_days),
        ),
    }
}

/// The series that decides the objective's value: the highest value, or for forecasts
/// the fewest days (a series within the horizon before one that is not).
fn worst<'r>(obj: &CapacityObjective, results: &'r [SeriesResult]) -> Option<&'r SeriesResult> {
    let measured = results.iter().filter(|r| r.minutes > 0);
    match obj.rule {
        CapacityRule::DaysToThreshold { .. } => {
            let days = |r: &SeriesResult| r.forecast.and_then(Forecast::days);
            measured
                .filter(|r| r.forecast.is_some_and(|f| f != Forecast::NoTrend))
                .min_by(|a, b| match (days(a), days(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
        }
        // The first (in host order) of the highest values.
        _ => measured.fold(None, |best: Option<&SeriesResult>, r| {
            match (best, r.value) {
                (_, None) => best,
                (Some(b), Some(v)) if b.value.is_some_and(|bv| bv >= v) => best,
                _ => Some(r),
            }
        }),
    }
}

/// One host/resource: its value under the rule and its verdict under the coverage rule.
fn judge(
    obj: &CapacityObjective,
    config: Option<&CapacityConfig>,
    host: &str,
    resource: &str,
    samples: &[Sample],
    span: &Span,
    min_coverage_ppm: u32,
) -> SeriesResult {
    let counted = span.counted();
    let minutes = samples.len() as u64;
    let covered = counted > 0
        && u128::from(minutes) * 1_000_000 >= u128::from(min_coverage_ppm) * u128::from(counted);
    let mut r = SeriesResult {
        host: host.to_string(),
        resource: resource.to_string(),
        minutes,
        coverage: (counted > 0).then(|| minutes as f64 / counted as f64),
        value: None,
        trend: None,
        forecast: None,
        verdict: Verdict::NotDeterminable,
    };
    let (seen_breach, monotone) = match obj.rule {
        CapacityRule::Level { statistic, max } => {
            r.value = level(statistic, samples);
            let monotone = statistic == CapacityStatistic::Max;
            (r.value.is_some_and(|v| v > max.as_ratio()), monotone)
        }
        CapacityRule::MinutesAbove {
            threshold,
            max_minutes,
        } => {
            let n = capacity::above(samples, threshold.as_ratio());
            r.value = (minutes > 0).then_some(n as f64);
            (n > max_minutes, true)
        }
        CapacityRule::DaysToThreshold {
            threshold,
            min_days,
        } => {
            let trend = capacity::fit(samples, span.from, span.to);
            let horizon = config.map_or(std::time::Duration::ZERO, |c| c.forecast_horizon);
            let forecast = capacity::forecast(&trend, threshold.as_ratio(), horizon);
            r.value = forecast.days();
            r.trend = Some(trend);
            r.forecast = Some(forecast);
            let short = forecast.days().is_some_and(|d| d < f64::from(min_days));
            if covered && forecast == Forecast::NoTrend {
                return r;
            }
            (short, false)
        }
    };
    r.verdict = if seen_breach && (monotone || covered) {
        Verdict::Breached
    } else if !covered {
        Verdict::NotDeterminable
    } else {
        Verdict::Met
    };
    r
}

/// p95 (nearest rank) or mean of the minute averages, or the highest minute peak.
fn level(statistic: CapacityStatistic, samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    match statistic {
        CapacityStatistic::P95 => capacity::p95(samples),
        CapacityStatistic::Max => samples.iter().map(|s| s.peak).reduce(f64::max),
        CapacityStatistic::Average => {
            Some(samples.iter().map(|s| s.avg).sum::<f64>() / samples.len() as f64)
        }
    }
}
