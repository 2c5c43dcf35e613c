//! Capacity: per host (agent) and resource, utilisation p95 and max over the period,
//! minutes above the warning and critical thresholds, and a linear trend with the days
//! until the critical threshold is reached.
//!
//! Invariants:
//! - Utilisation is a ratio 0..1, derived from host values by name:
//!   `<kind>_utilization_ratio` is taken as is (kind `cpu` from `cpu_utilization_ratio`);
//!   `<kind>_used_bytes ÷ <kind>_total_bytes` of the same agent, resource and minute gives
//!   kind `memory`, `filesystem`, …; a minute missing either value, or with total ≤ 0,
//!   contributes nothing. Other values (raw network byte counters, load) are not
//!   utilisation and are ignored.
//! - A minute's utilisation is its average (`avg`, or `used.avg ÷ total.avg`); its peak is
//!   `max` (or `used.max ÷ total.avg`). p95 (nearest rank) and "minutes above" use the
//!   average, the period max uses the peak. "Above" is strict `>`.
//! - The trend is an ordinary least-squares line over the minutes in `[now − lookback, now)`;
//!   days until critical are `None` when the line does not reach it within the horizon
//!   (or has no positive slope, or fewer than two distinct minutes); 0 when the fitted value
//!   at `now` is already at or above it.

use std::collections::BTreeMap;

use attest_config::CapacityConfig;
use jiff::Timestamp;

use super::calendar::{Period, ceil_minute};
use crate::minutes::HostMinute;

#[derive(Debug, Clone, PartialEq)]
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
    /// Days from `now` until the line reaches the critical threshold; `None` = not within
    /// the forecast horizon.
    pub days_until_critical: Option<f64>,
}

/// One utilisation sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    minute: i64,
    avg: f64,
    peak: f64,
}

type Key = (String, String, String);

/// Capacity figures for every host series in `host`, for `period` up to `now`.
pub fn capacity(
    host: &[HostMinute],
    config: &CapacityConfig,
    period: &Period,
    now: Timestamp,
) -> Vec<CapacityFigure> {
    let now_minute = ceil_minute(now);
    let mut out = Vec::new();
    for ((agent, kind, resource), mut samples) in series(host) {
        samples.sort_by_key(|s| s.minute);
        samples.dedup_by_key(|s| s.minute);
        let end = now_minute.min(period.end_minute);
        let in_period: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.minute >= period.start_minute && s.minute < end)
            .collect();
        let lookback = i64::try_from(config.trend_lookback.as_secs() / 60).unwrap_or(i64::MAX);
        let recent: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.minute >= now_minute.saturating_sub(lookback) && s.minute < now_minute)
            .collect();
        let (slope, days) = forecast(&recent, now_minute, config);
        out.push(CapacityFigure {
            agent,
            kind,
            resource,
            minutes: in_period.len() as u64,
            p95: p95(&in_period),
            max: in_period.iter().map(|s| s.peak).reduce(f64::max),
            minutes_above_warning: above(&in_period, config.warning.as_ratio()),
            minutes_above_critical: above(&in_period, config.critical.as_ratio()),
            trend_per_day: slope,
            days_until_critical: days,
        });
    }
    out
}

/// Groups host values into utilisation series keyed by (agent, kind, resource).
fn series(host: &[HostMinute]) -> BTreeMap<Key, Vec<Sample>> {
    let mut out: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let mut used: BTreeMap<(Key, i64), (f64, f64)> = BTreeMap::new();
    let mut total: BTreeMap<(Key, i64), f64> = BTreeMap::new();
    for h in host {
        let key = |kind: &str| (h.agent.clone(), kind.to_string(), h.resource.clone());
        if let Some(kind) = h.name.strip_suffix("_utilization_ratio") {
            if h.avg.is_finite() && h.max.is_finite() {
                out.entry(key(kind)).or_default().push(Sample {
                    minute: h.minute,
                    avg: h.avg,
                    peak: h.max,
                });
            }
        } else if let Some(kind) = h.name.strip_suffix("_used_bytes") {
            used.insert((key(kind), h.minute), (h.avg, h.max));
        } else if let Some(kind) = h.name.strip_suffix("_total_bytes") {
            total.insert((key(kind), h.minute), h.avg);
        }
    }
    for ((key, minute), (avg, max)) in used {
        let Some(&t) = total.get(&(key.clone(), minute)) else {
            continue;
        };
        if t > 0.0 && avg.is_finite() && max.is_finite() {
            out.entry(key).or_default().push(Sample {
                minute,
                avg: avg / t,
                peak: max / t,
            });
        }
    }
    out
}

/// Nearest-rank p95 of the minute averages.
fn p95(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|s| s.avg).collect();
    v.sort_by(f64::total_cmp);
    let rank = (v.len() * 95).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

fn above(samples: &[Sample], threshold: f64) -> u64 {
    samples.iter().filter(|s| s.avg > threshold).count() as u64
}

/// Least-squares slope (per day) and days until the critical threshold.
fn forecast(
    samples: &[Sample],
    now_minute: i64,
    config: &CapacityConfig,
) -> (Option<f64>, Option<f64>) {
    if samples.len() < 2 {
        return (None, None);
    }
    // x in days relative to now keeps the sums well conditioned.
    let n = samples.len() as f64;
    let xs = samples
        .iter()
        .map(|s| (s.minute - now_minute) as f64 / 1_440.0);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.avg).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, s) in xs.zip(samples) {
        sxy += (x - mean_x) * (s.avg - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx <= 0.0 {
        return (None, None);
    }
    let slope = sxy / sxx;
    let at_now = mean_y - slope * mean_x;
    let critical = config.critical.as_ratio();
    let horizon_days = config.forecast_horizon.as_secs_f64() / 86_400.0;
    let days = if at_now >= critical {
        Some(0.0)
    } else if slope > 0.0 {
        Some((critical - at_now) / slope).filter(|d| *d <= horizon_days)
    } else {
        None
    };
    (Some(slope), days)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use attest_config::units::Ppm;

    use super::*;
    use crate::sla::Month;

    fn hm(name: &str, resource: &str, minute: i64, avg: f64, max: f64) -> HostMinute {
        HostMinute {
            agent: "h1".into(),
            name: name.into(),
            resource: resource.into(),
            minute,
            min: avg,
            avg,
            max,
        }
    }

    fn config() -> CapacityConfig {
        CapacityConfig {
            warning: Ppm(800_000),
            critical: Ppm(900_000),
            trend_lookback: Duration::from_secs(7 * 86_400),
            forecast_horizon: Duration::from_secs(60 * 86_400),
        }
    }

    fn render(figs: &[CapacityFigure]) -> Vec<String> {
        let o = |x: Option<f64>| x.map_or("none".to_string(), |v| format!("{v:.3}"));
        figs.iter()
            .map(|f| {
                format!(
                    "{}/{}/{} n={} p95={} max={} warn={} crit={} slope={} days={}",
                    f.agent,
                    f.kind,
                    f.resource,
                    f.minutes,
                    o(f.p95),
                    o(f.max),
                    f.minutes_above_warning,
                    f.minutes_above_critical,
                    o(f.trend_per_day),
                    o(f.days_until_critical)
                )
            })
            .collect()
    }

    #[test]
    fn ratios_pairs_thresholds_and_trend() {
        let period = Period::month(Month::new(2026, 9).unwrap(), "UTC").unwrap();
        let p0 = period.start_minute;
        let now: Timestamp = "2026-09-11T00:00:00Z".parse().unwrap();
        let mut host = Vec::new();
        // CPU: 100 minutes at 0.5 with peaks of 0.95, then 5 minutes at 0.85, 2 at 0.92.
        for i in 0..100 {
            host.push(hm("cpu_utilization_ratio", "", p0 + i, 0.5, 0.95));
        }
        for i in 100..105 {
            host.push(hm("cpu_utilization_ratio", "", p0 + i, 0.85, 0.9));
        }
        for i in 105..107 {
            host.push(hm("cpu_utilization_ratio", "", p0 + i, 0.92, 0.93));
        }
        // Filesystem "/" grows by 0.01 of 1000 bytes per day for 10 days, from 0.5.
        for d in 0..10 {
            let m = p0 + d * 1_440;
            let used = 500.0 + 10.0 * d as f64;
            host.push(hm("filesystem_used_bytes", "/", m, used, used + 5.0));
            host.push(hm("filesystem_total_bytes", "/", m, 1000.0, 1000.0));
        }
        // A used value without its total is skipped; load is not utilisation.
        host.push(hm("memory_used_bytes", "", p0, 1.0, 1.0));
        host.push(hm("load1", "", p0, 3.0, 3.0));
        let got = render(&capacity(&host, &config(), &period, now));
        assert_eq!(
            got,
            [
                // CPU has no minute in the 7-day look-back: no trend.
                "h1/cpu/ n=107 p95=0.850 max=0.950 warn=7 crit=2 slope=none days=none",
                // 0.60 at `now`, +0.01 a day: 0.90 in 30 days.
                "h1/filesystem// n=10 p95=0.590 max=0.595 warn=0 crit=0 slope=0.010 days=30.000",
            ]
        );
    }
}
