//! Burn rates over the Workbook's windows at an instant, and the multiwindow alerts.
//!
//! Invariants:
//! - Window W at instant T covers the eligible known minutes starting in `[T − W, T)`;
//!   it may reach into the previous month (the timeline covers that range).
//! - `burn = (bad / known) / (1 − target)`; `None` when known = 0 or the target is 100 %.
//! - Alert comparisons are strict `>` and decided on integers:
//!   `burn > k ⇔ bad × 10⁶ × 10 > (10 k) × (10⁶ − target_ppm) × known`.

use attest_config::units::Ppm;

use super::availability::{Counts, Fraction};
use super::timeline::Timeline;

/// Window lengths in minutes, in the order of [`BurnRates`] fields.
pub const WINDOWS: [(&str, i64); 6] = [
    ("5m", 5),
    ("30m", 30),
    ("1h", 60),
    ("6h", 360),
    ("1d", 1_440),
    ("3d", 4_320),
];

/// Longest window: how far before the period the timeline must reach.
pub const LONGEST_WINDOW_MINUTES: i64 = 4_320;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BurnRates {
    pub m5: Option<f64>,
    pub m30: Option<f64>,
    pub h1: Option<f64>,
    pub h6: Option<f64>,
    pub d1: Option<f64>,
    pub d3: Option<f64>,
    /// The counts behind each rate, in the order of [`WINDOWS`], so that every rate (and
    /// every alert) can be re-derived: `rate = (bad / known) / (1 − target)`.
    pub windows: [BurnWindow; 6],
}

/// Bad and known eligible minutes of one burn-rate window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BurnWindow {
    pub bad: u64,
    pub known: u64,
}

impl BurnWindow {
    /// The burn rate exactly: `(bad × 10⁶) / (known × (10⁶ − target_ppm))`; `None` when
    /// undefined (known = 0 or a 100 % target).
    pub fn rate_exact(&self, target: Ppm) -> Option<Fraction> {
        let budget = 1_000_000u32.saturating_sub(target.0);
        Fraction::new(
            i128::from(self.bad) * 1_000_000,
            i128::from(self.known) * i128::from(budget),
        )
    }
}

/// The multiwindow alerts (SRE Workbook table for a 30-day period), each rule by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Burn rates and alerts at minute boundary `end` (the first minute not yet started).
pub fn burn(timeline: &Timeline, end: i64, target: Ppm) -> (BurnRates, BurnAlerts) {
    let c: Vec<Counts> = WINDOWS
        .iter()
        .map(|(_, w)| Counts::of(timeline.slice(end - w, end)))
        .collect();
    let rate = |i: usize| burn_rate(&c[i], target);
    let over = |i: usize, tenths: u64| exceeds(&c[i], target, tenths);
    let window = |i: usize| BurnWindow {
        bad: c[i].bad,
        known: c[i].known(),
    };
    let rates = BurnRates {
        m5: rate(0),
        m30: rate(1),
        h1: rate(2),
        h6: rate(3),
        d1: rate(4),
        d3: rate(5),
        windows: [0, 1, 2, 3, 4, 5].map(window),
    };
    let page_fast = over(2, 144) && over(0, 144);
    let page_slow = over(3, 60) && over(1, 60);
    let alerts = BurnAlerts {
        page: page_fast || page_slow,
        ticket: over(5, 10) && over(3, 10),
        page_fast,
        page_slow,
    };
    (rates, alerts)
}

pub fn burn_rate(c: &Counts, target: Ppm) -> Option<f64> {
    let budget = 1_000_000u32.saturating_sub(target.0);
    if c.known() == 0 || budget == 0 {
        return None;
    }
    Some((c.bad as f64 / c.known() as f64) / (f64::from(budget) / 1e6))
}

/// `burn > tenths / 10`, exactly; false when the burn rate is undefined.
pub fn exceeds(c: &Counts, target: Ppm, tenths: u64) -> bool {
    let budget = 1_000_000u32.saturating_sub(target.0);
    if c.known() == 0 || budget == 0 {
        return false;
    }
    let lhs = u128::from(c.bad) * 1_000_000 * 10;
    let rhs = u128::from(tenths) * u128::from(budget) * u128::from(c.known());
    lhs > rhs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(good: u64, bad: u64) -> Counts {
        Counts {
            eligible: good + bad,
            good,
            bad,
            unknown: 0,
        }
    }

    #[test]
    fn threshold_is_strict() {
        // 99.9 %: burn 1 ⇔ 1 bad in 1000.
        assert!(!exceeds(&counts(999, 1), Ppm(999_000), 10));
        assert!(exceeds(&counts(998, 2), Ppm(999_000), 10));
        // Exactly 14.4: 144 bad in 10,000 known at 99.9 %.
        assert!(!exceeds(&counts(10_000 - 144, 144), Ppm(999_000), 144));
        assert!(exceeds(&counts(10_000 - 145, 145), Ppm(999_000), 144));
        assert!(!exceeds(&counts(0, 0), Ppm(999_000), 10));
        assert_eq!(burn_rate(&counts(0, 0), Ppm(999_000)), None);
        assert_eq!(burn_rate(&counts(5, 5), Ppm(1_000_000)), None);
    }
}
