//! The latency objective: which share of probes in eligible minutes completed within the
//! threshold, and percentiles from the merged per-minute HDR histogram buckets. The sums
//! are taken while the timeline is built (`Timeline::build_with_latency`); this module
//! picks the window and turns the sums into figures.
//!
//! Invariants:
//! - Only minutes that are eligible and have started count (any state: a minute with
//!   too few reporters still ran probes).
//! - The denominator is every probe, the numerator the successful probes whose duration is
//!   `≤ threshold`: on the exact duration in µs wherever the store has exact counts for the
//!   threshold (`ThresholdOver`), else at the histogram's resolution (values equivalent to
//!   the threshold at the recorded precision count as meeting it); the report says how
//!   many probes were judged that way. A failed probe never meets it; a successful probe
//!   without a histogram cannot be shown to meet it and does not.
//! - Whether the objective is met is decided on integers:
//!   `within × 10⁶ ≥ target_ppm × probes`.

use std::time::Duration;

use attest_config::LatencyObjective;

use super::availability::Fraction;
use super::timeline::{LatencyTally, LatencyWindow};
use crate::minutes::ThresholdOver;
use crate::minutes::latency::{SIGFIG, histogram_of_dense};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencyFigures {
    /// `None` when the service has no latency objective.
    pub threshold_seconds: Option<f64>,
    pub target: Option<f64>,
    /// `within / probes`; `None` without an objective or without probes.
    pub objective_ratio: Option<f64>,
    /// The same ratio exactly.
    pub objective_ratio_exact: Option<Fraction>,
    /// `None` when not determinable (no objective or no probes).
    pub objective_met: Option<bool>,
    pub probes: u64,
    /// `None` without a latency objective (nothing to be within).
    pub probes_within: Option<u64>,
    /// First minute of the period judged on exact durations (the period start when every
    /// minute is; `None`: none is, or no objective).
    pub exact_from: Option<i64>,
    /// Successful probes judged at the histogram's resolution instead (minutes before
    /// `exact_from`, whose raw measurements had expired when the threshold was set).
    pub histogram_resolution_probes: u64,
    /// Significant decimal digits of the percentiles (the histogram's precision).
    pub percentile_significant_digits: u8,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// Histograms that could not be merged; always 0 since buckets are merged by index
    /// (kept so that the report format does not change).
    pub histograms_skipped: u64,
}

/// The window to tally while building the timeline: minutes `[a, b)` against `objective`,
/// using the store's exact counts `exact` where they are for the objective's threshold.
pub fn window<'a>(
    a: i64,
    b: i64,
    objective: Option<&LatencyObjective>,
    exact: Option<&'a ThresholdOver>,
) -> LatencyWindow<'a> {
    LatencyWindow {
        from: a,
        to: b,
        threshold_us: objective.map(|o| micros(o.threshold)),
        exact,
    }
}

/// The latency figures of a tally made with [`window`] and the same `objective`.
pub fn figures(
    tally: &LatencyTally,
    objective: Option<&LatencyObjective>,
    exact_from: Option<i64>,
) -> LatencyFigures {
    let (probes, within) = (tally.probes, tally.within);
    let merged = histogram_of_dense(&tally.merged);
    let pct = |q: f64| {
        merged
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| m.value_at_quantile(q) as f64 / 1e6)
    };
    let objective_ratio_exact = objective.and_then(|_| Fraction::new(within, probes));
    let objective_met = objective
        .filter(|_| probes > 0)
        .map(|o| u128::from(within) * 1_000_000 >= u128::from(o.target.0) * u128::from(probes));
    LatencyFigures {
        threshold_seconds: objective.map(|o| o.threshold.as_secs_f64()),
        target: objective.map(|o| o.target.as_ratio()),
        objective_ratio: objective_ratio_exact.map(Fraction::to_f64),
        objective_ratio_exact,
        objective_met,
        probes,
        probes_within: objective.map(|_| within),
        exact_from: objective.and(exact_from),
        histogram_resolution_probes: tally.histogram_probes,
        percentile_significant_digits: SIGFIG,
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
    use crate::minutes::latency::bucket_of;
    use attest_config::units::Ppm;

    #[test]
    fn figures_decide_on_integers_and_take_percentiles_from_buckets() {
        let mut merged = vec![0u64; crate::minutes::latency::bucket_count()];
        merged[bucket_of(10_000) as usize] = 99;
        merged[bucket_of(2_000_000) as usize] = 1;
        let tally = LatencyTally {
            probes: 100,
            within: 99,
            histogram_probes: 0,
            merged,
        };
        let objective = LatencyObjective {
            threshold: Duration::from_millis(200),
            target: Ppm(990_000),
        };
        let f = figures(&tally, Some(&objective), None);
        assert_eq!(f.objective_met, Some(true));
        assert_eq!(f.probes_within, Some(99));
        let p50 = f.p50_seconds.expect("p50");
        assert!((0.0099..0.0101).contains(&p50), "{p50}");
        let p99 = f.p99_seconds.expect("p99");
        assert!(
            (0.0099..0.0101).contains(&p99),
            "99th of 100 is still fast: {p99}"
        );
        let none = figures(&LatencyTally::default(), None, None);
        assert_eq!((none.objective_met, none.p50_seconds), (None, None));
        assert_eq!(none.probes_within, None);
    }
}
