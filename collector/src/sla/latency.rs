//! The latency objective: which share of probes in eligible minutes completed within the
//! threshold, and percentiles from the merged per-minute HDR histogram buckets. The sums
//! are taken while the timeline is built (`Timeline::build_with_latency`); this module
//! picks the window and turns the sums into figures.
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

use super::timeline::{LatencyTally, LatencyWindow};
use crate::minutes::latency::{bucket_of, histogram_of_dense};

#[derive(Debug, Clone, PartialEq)]
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
    /// Histograms that could not be merged; always 0 since buckets are merged by index
    /// (kept so that the report format does not change).
    pub histograms_skipped: u64,
}

/// The window to tally while building the timeline: minutes `[a, b)` against `objective`.
pub fn window(a: i64, b: i64, objective: Option<&LatencyObjective>) -> LatencyWindow {
    LatencyWindow {
        from: a,
        to: b,
        within_below: objective.map(|o| within_below(micros(o.threshold))),
    }
}

/// Buckets below the returned index hold only durations `≤ threshold` at the recorded
/// precision (the threshold's own bucket included); a 0 µs threshold admits nothing.
fn within_below(threshold_us: u64) -> u32 {
    if threshold_us == 0 {
        0
    } else {
        bucket_of(threshold_us).saturating_add(1)
    }
}

/// The latency figures of a tally made with [`window`] and the same `objective`.
pub fn figures(tally: &LatencyTally, objective: Option<&LatencyObjective>) -> LatencyFigures {
    let (probes, within) = (tally.probes, tally.within);
    let merged = histogram_of_dense(&tally.merged);
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
        histograms_skipped: 0,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attest_config::units::Ppm;

    #[test]
    fn threshold_bucket_includes_equivalent_values_only() {
        let t = 200_000;
        let limit = within_below(t);
        assert!(bucket_of(t) < limit);
        assert!(bucket_of(t + t / 50) >= limit, "2 % above is outside");
        assert_eq!(within_below(0), 0);
    }

    #[test]
    fn figures_decide_on_integers_and_take_percentiles_from_buckets() {
        let mut merged = vec![0u64; crate::minutes::latency::bucket_count()];
        merged[bucket_of(10_000) as usize] = 99;
        merged[bucket_of(2_000_000) as usize] = 1;
        let tally = LatencyTally {
            probes: 100,
            within: 99,
            merged,
        };
        let objective = LatencyObjective {
            threshold: Duration::from_millis(200),
            target: Ppm(990_000),
        };
        let f = figures(&tally, Some(&objective));
        assert_eq!(f.objective_met, Some(true));
        assert_eq!(f.probes_within, 99);
        let p50 = f.p50_seconds.expect("p50");
        assert!((0.0099..0.0101).contains(&p50), "{p50}");
        let p99 = f.p99_seconds.expect("p99");
        assert!(
            (0.0099..0.0101).contains(&p99),
            "99th of 100 is still fast: {p99}"
        );
        let none = figures(&LatencyTally::default(), None);
        assert_eq!((none.objective_met, none.p50_seconds), (None, None));
    }
}
