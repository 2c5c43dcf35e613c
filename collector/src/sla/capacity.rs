//! Capacity: per host (agent) and resource, utilisation p95 and max over the period,
//! minutes above the warning and critical thresholds, and a linear trend with the days
//! until the critical threshold is reached.
//!
//! Invariants:
//! - Utilisation is a ratio 0..1, derived from host values by name:
//!   `<kind>_utilization_ratio` is taken as is (kind `cpu` from `cpu_utilization_ratio`);
//!   `<kind>_used_bytes ÷ <kind>_total_bytes` of the same agent, resource and minute gives
//!   kind `memory`, `filesystem`, …; a minute missing either value, or with total ≤ 0,
//!   contributes nothing. Kind `network` (per interface) comes from the byte counters
//!   and the link speed, see [`network`]. Other values (load, errors) are not
//!   utilisation and are ignored.
//! - A minute's utilisation is its average (`avg`, or `used.avg ÷ total.avg`); its peak is
//!   `max` (or `used.max ÷ total.avg`). p95 (nearest rank) and "minutes above" use the
//!   average, the period max uses the peak. "Above" is strict `>`.
//! - The trend is an ordinary least-squares line over the minutes in `[now − lookback, now)`;
//!   it reports its window, the minutes it used, its slope per day and R². The forecast is
//!   a distinct answer, never a bare number: `within_horizon` with the days until the line
//!   reaches the threshold (0 when the fitted value at `now` is already at or above it),
//!   `not_within_horizon` (no positive slope, or the crossing lies beyond the horizon), or
//!   `no_trend` (fewer than two minutes).

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
    /// the forecast horizon (or no trend: see `forecast`).
    pub days_until_critical: Option<f64>,
    /// The fitted line over `[now − trend_lookback, now)`.
    pub trend: Trend,
    /// When the line reaches the critical threshold.
    pub forecast: Forecast,
}

/// A least-squares line through minute averages, with what a reviewer needs to trust it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trend {
    /// The window `[from, to)` the line was fitted over.
    pub from: Timestamp,
    pub to: Timestamp,
    /// Minutes with a value in the window (the points of the fit).
    pub minutes: u64,
    /// Utilisation per day; null with fewer than two minutes.
    pub slope_per_day: Option<f64>,
    /// Coefficient of determination of the fit, 0..1; null when there is no fit or every
    /// point has the same value (a flat series is fitted exactly but explains nothing).
    pub r_squared: Option<f64>,
    /// The fitted value at `to`.
    pub value_at_end: Option<f64>,
}

/// When a trend reaches a threshold. "Not within horizon" is an answer of its own.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Forecast {
    /// The line reaches the threshold this many days after the window's end (0: already).
    WithinHorizon { days: f64 },
    /// The slope is not positive, or the crossing lies beyond the forecast horizon.
    NotWithinHorizon,
    /// Fewer than two minutes in the window: no line.
    NoTrend,
}

impl Forecast {
    pub fn days(self) -> Option<f64> {
        match self {
            Forecast::WithinHorizon { days } => Some(days),
            _ => None,
        }
    }
}

/// One utilisation sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub minute: i64,
    pub avg: f64,
    pub peak: f64,
}

/// (agent, kind, resource).
pub(crate) type Key = (String, String, String);

/// Capacity figures for every host series in `host`, for `period` up to `now`.
pub fn capacity(
    host: &[HostMinute],
    config: &CapacityConfig,
    period: &Period,
    now: Timestamp,
) -> Vec<CapacityFigure> {
    let now_minute = ceil_minute(now);
    let lookback = lookback_minutes(config);
    let mut out = Vec::new();
    for ((agent, kind, resource), samples) in series(host) {
        let end = now_minute.min(period.end_minute);
        let in_period: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.minute >= period.start_minute && s.minute < end)
            .collect();
        let from = now_minute.saturating_sub(lookback);
        let recent: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.minute >= from && s.minute < now_minute)
            .collect();
        let trend = fit(&recent, from, now_minute);
        let forecast = forecast(&trend, config.critical.as_ratio(), config.forecast_horizon);
        out.push(CapacityFigure {
            agent,
            kind,
            resource,
            minutes: in_period.len() as u64,
            p95: p95(&in_period),
            max: in_period.iter().map(|s| s.peak).reduce(f64::max),
            minutes_above_warning: above(&in_period, config.warning.as_ratio()),
            minutes_above_critical: above(&in_period, config.critical.as_ratio()),
            trend_per_day: trend.slope_per_day,
            days_until_critical: forecast.days(),
            trend,
            forecast,
        });
    }
    out
}

pub(crate) fn lookback_minutes(config: &CapacityConfig) -> i64 {
    i64::try_from(config.trend_lookback.as_secs() / 60).unwrap_or(i64::MAX)
}

/// Groups host values into utilisation series keyed by (agent, kind, resource), each
/// sorted by minute with one sample per minute.
pub(crate) fn series<'a>(
    host: impl IntoIterator<Item = &'a HostMinute>,
) -> BTreeMap<Key, Vec<Sample>> {
    let mut out: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let mut used: BTreeMap<(Key, i64), (f64, f64)> = BTreeMap::new();
    let mut total: BTreeMap<(Key, i64), f64> = BTreeMap::new();
    let mut net = Network::default();
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
        } else {
            net.add(h);
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
    for (iface, samples) in net.utilization() {
        out.entry(iface).or_default().extend(samples);
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.minute);
        samples.dedup_by_key(|s| s.minute);
    }
    out
}

/// Byte counters and link speeds per (agent, interface), by minute.
#[derive(Default)]
struct Network {
    /// (agent, interface) → minute → (rx max, tx max); NaN = not reported that minute.
    counters: BTreeMap<(String, String), BTreeMap<i64, (f64, f64)>>,
    speeds: BTreeMap<(String, String), BTreeMap<i64, f64>>,
}

impl Network {
    fn add(&mut self, h: &HostMinute) {
        let key = || (h.agent.clone(), h.resource.clone());
        match h.name.as_str() {
            "network_rx_bytes" | "network_tx_bytes" => {
                let slot = self
                    .counters
                    .entry(key())
                    .or_default()
                    .entry(h.minute)
                    .or_insert((f64::NAN, f64::NAN));
                if h.name == "network_rx_bytes" {
                    slot.0 = h.max;
                } else {
                    slot.1 = h.max;
                }
            }
            "network_speed_bytes_per_second" if h.avg.is_finite() && h.avg > 0.0 => {
                self.speeds
                    .entry(key())
                    .or_default()
                    .insert(h.minute, h.avg);
            }
            _ => {}
        }
    }

    /// Utilisation per interface minute; see [`network`].
    fn utilization(&self) -> impl Iterator<Item = (Key, Vec<Sample>)> + '_ {
        self.counters
            .iter()
            .filter_map(|((agent, iface), counters)| {
                let speeds = self.speeds.get(&(agent.clone(), iface.clone()))?;
                let samples = network(counters, speeds);
                let key = (agent.clone(), "network".to_string(), iface.clone());
                Some((key, samples))
            })
    }
}

/// Network utilisation of one interface: for each minute `m` whose previous minute `m − 1`
/// also has the counter, the increase is `last(m) − last(m − 1)` (a minute's last value is
/// its `max`: counters only grow), or `last(m)` when the counter went down (a reset: it
/// restarted from 0, Prometheus' rule). Utilisation is
/// `max(rx increase, tx increase) / (60 s × link speed)` — each direction of a full-duplex
/// link carries the link speed. The speed is the latest reported at or before `m`; an
/// interface without one yields nothing. A minute after a missing minute yields nothing.
pub(crate) fn network(
    counters: &BTreeMap<i64, (f64, f64)>,
    speeds: &BTreeMap<i64, f64>,
) -> Vec<Sample> {
    let increase = |prev: f64, cur: f64| match (prev.is_finite(), cur.is_finite()) {
        (true, true) if cur >= prev => Some(cur - prev),
        (true, true) => Some(cur),
        _ => None,
    };
    let mut out = Vec::new();
    let mut prev: Option<(i64, (f64, f64))> = None;
    for (&m, &(rx, tx)) in counters {
        if let Some((pm, (prx, ptx))) = prev
            && pm == m - 1
            && let Some((_, &speed)) = speeds.range(..=m).next_back()
        {
            let bytes = match (increase(prx, rx), increase(ptx, tx)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(bytes) = bytes {
                let ratio = bytes / (60.0 * speed);
                out.push(Sample {
                    minute: m,
                    avg: ratio,
                    peak: ratio,
                });
            }
        }
        prev = Some((m, (rx, tx)));
    }
    out
}

/// Nearest-rank p95 of the minute averages.
pub(crate) fn p95(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|s| s.avg).collect();
    v.sort_by(f64::total_cmp);
    let rank = (v.len() * 95).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

pub(crate) fn above(samples: &[Sample], threshold: f64) -> u64 {
    samples.iter().filter(|s| s.avg > threshold).count() as u64
}

/// The least-squares line through `samples` (minutes in `[from, to)`), x in days before `to`.
pub(crate) fn fit(samples: &[Sample], from: i64, to: i64) -> Trend {
    let mut trend = Trend {
        from: super::calendar::minute_start(from),
        to: super::calendar::minute_start(to),
        minutes: samples.len() as u64,
        slope_per_day: None,
        r_squared: None,
        value_at_end: None,
    };
    if samples.len() < 2 {
        return trend;
    }
    // x in days relative to `to` keeps the sums well conditioned.
    let n = samples.len() as f64;
    let x = |s: &Sample| (s.minute - to) as f64 / 1_440.0;
    let mean_x = samples.iter().map(x).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.avg).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for s in samples {
        let (dx, dy) = (x(s) - mean_x, s.avg - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return trend;
    }
    let slope = sxy / sxx;
    trend.slope_per_day = Some(slope);
    trend.value_at_end = Some(mean_y - slope * mean_x);
    // Exactly equal values leave only rounding noise in `syy`: R² is undefined there.
    let flat = samples.iter().all(|s| s.avg == samples[0].avg);
    trend.r_squared = (!flat && syy > 0.0).then(|| ((sxy * sxy) / (sxx * syy)).clamp(0.0, 1.0));
    trend
}

/// When `trend` reaches `threshold`, looking no further than `horizon` past its end.
pub(crate) fn forecast(trend: &Trend, threshold: f64, horizon: std::time::Duration) -> Forecast {
    let (Some(slope), Some(at_end)) = (trend.slope_per_day, trend.value_at_end) else {
        return Forecast::NoTrend;
    };
    let horizon_days = horizon.as_secs_f64() / 86_400.0;
    if at_end >= threshold {
        Forecast::WithinHorizon { days: 0.0 }
    } else if slope > 0.0 && (threshold - at_end) / slope <= horizon_days {
        Forecast::WithinHorizon {
            days: (threshold - at_end) / slope,
        }
    } else {
        Forecast::NotWithinHorizon
    }
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
            min_coverage: Ppm(900_000),
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
