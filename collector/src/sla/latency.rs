//! The latency objective: which share of probes in eligible minutes completed within the
//! threshold, and percentiles from the merged per-minute HDR histograms.
//!
//! Invariants:
//! - Only minutes that are eligible and have started count (any state: a minute with
//!   too few reporters still ran probes).
//! - The denominator is every probe, the numerator the successful probes whose duration is
//!   `≤ threshold` at the histogram's resolution (values equivalent to the threshold at the
//!   recorded precision count as meeting it). A failed probe never meets it; a successful
//!   probe without a histogram cannot be shown to meet it and does not.
//! - Whether the objective is met is decided on integers:
//!   `within × 10⁶ ≥ target_ppm × probes`.

use std::time::Duration;

use attest_config::LatencyObjective;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::timeline::{INELIGIBLE, Timeline};
use crate::store::MinuteRollup;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyFigures {
    /// `None` when the service has no latency objective.
    pub threshold_seconds: Option<f64>,
    pub target: Option<f64>,
    /// `within / probes`; `None` without an objective or without probes.
    pub objective_ratio: Option<f64>,
    /// `None` when not determinable (no objective or no probes).
    pub objective_met: Option<bool>,
    pub probes: u64,
    pub probes_within: u64,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// Histograms that could not be merged (should stay 0; counted rather than hidden).
    pub histograms_skipped: u64,
}

/// Latency over the minutes `[a, b)` of `timeline` that are eligible and started.
pub fn latency(
    rollups: &[MinuteRollup],
    timeline: &Timeline,
    a: i64,
    b: i64,
    objective: Option<&LatencyObjective>,
) -> LatencyFigures {
    let threshold_us = objective.map(|o| micros(o.threshold));
    let mut probes = 0u64;
    let mut within = 0u64;
    let mut skipped = 0u64;
    let mut merged: Option<Histogram<u64>> = None;
    for r in rollups {
        if r.minute < a || r.minute >= b || timeline.state(r.minute) == INELIGIBLE {
            continue;
        }
        probes += u64::from(r.probes);
        let Some(h) = &r.latency else { continue };
        if let Some(t) = threshold_us {
            let ok = u64::from(r.probes.saturating_sub(r.failures));
            // Fast path: most minutes lie entirely under the threshold.
            let n = if h.max() <= t {
                h.len()
            } else {
                h.count_between(0, t)
            };
            within += n.min(ok);
        }
        match &mut merged {
            None => {
                let mut first = h.clone();
                first.auto(true);
                merged = Some(first);
            }
            Some(m) => {
                if m.add(h).is_err() {
                    skipped += 1;
                }
            }
        }
    }
    let pct = |q: f64| {
        merged
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| m.value_at_quantile(q) as f64 / 1e6)
    };
    let objective_ratio = objective.and_then(|_| super::availability::ratio(within, probes));
    let objective_met = objective
        .filter(|_| probes > 0)
        .map(|o| u128::from(within) * 1_000_000 >= u128::from(o.target.0) * u128::from(probes));
    LatencyFigures {
        threshold_seconds: objective.map(|o| o.threshold.as_secs_f64()),
        target: objective.map(|o| o.target.as_ratio()),
        objective_ratio,
        objective_met,
        probes,
        probes_within: within,
        p50_seconds: pct(0.50),
        p95_seconds: pct(0.95),
        p99_seconds: pct(0.99),
        histograms_skipped: skipped,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
