//! Minute counts and the figures derived from them: availability, coverage, bounds and
//! compliance.
//!
//! Invariants:
//! - `good + bad + unknown = eligible` always; `known = good + bad`.
//! - Compliance is decided on integers only: `bad × 10⁶ ≤ (10⁶ − target_ppm) × known`.
//!   It is `None` (not determinable) when `known = 0` or coverage is below `min_coverage`.
//! - Floats are produced only for display and JSON, from the exact integers.

use attest_config::units::Ppm;

use super::timeline::{BAD, GOOD, UNKNOWN};

/// Eligible minutes by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub eligible: u64,
    pub good: u64,
    pub bad: u64,
    pub unknown: u64,
}

impl Counts {
    /// Counts minute states (ineligible minutes are skipped).
    pub fn of(states: &[u8]) -> Counts {
        // Byte-wide counters over runs of 64 minutes vectorise; a table of counters indexed
        // by state does not (each increment waits for the last), and a month is ~45k
        // minutes counted on every evaluation (2 µs instead of 20 µs here).
        let (mut good, mut bad, mut unknown) = (0u64, 0u64, 0u64);
        let mut runs = states.chunks_exact(64);
        for run in &mut runs {
            let (mut g, mut b, mut u) = (0u8, 0u8, 0u8);
            for &s in run {
                let s = s & 3;
                g += u8::from(s == GOOD);
                b += u8::from(s == BAD);
                u += u8::from(s == UNKNOWN);
            }
            good += u64::from(g);
            bad += u64::from(b);
            unknown += u64::from(u);
        }
        for &s in runs.remainder() {
            let s = s & 3;
            good += u64::from(s == GOOD);
            bad += u64::from(s == BAD);
            unknown += u64::from(s == UNKNOWN);
        }
        Counts {
            eligible: good + bad + unknown,
            good,
            bad,
            unknown,
        }
    }

    pub fn known(&self) -> u64 {
        self.good + self.bad
    }
}

/// Counts of two disjoint ranges add up to the counts of their union.
impl std::ops::Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            eligible: self.eligible + other.eligible,
            good: self.good + other.good,
            bad: self.bad + other.bad,
            unknown: self.unknown + other.unknown,
        }
    }
}

/// `num / den` as a float, `None` when `den = 0`.
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

/// An exact ratio `num / den` as the engine decided it, not reduced, so that an auditor
/// sees the very integers behind a float (`43170/43200`). `den` is never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fraction {
    pub num: i128,
    pub den: i128,
}

impl Fraction {
    /// `None` when `den = 0` (the ratio is undefined, "N/A").
    pub fn new(num: impl Into<i128>, den: impl Into<i128>) -> Option<Fraction> {
        let (num, den) = (num.into(), den.into());
        (den != 0).then_some(Fraction { num, den })
    }

    /// The float shown beside the fraction.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// `num/den`, e.g. `43170/43200`.
impl std::fmt::Display for Fraction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// The exact ratios of the minute counts, each `None` when its denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExactRatios {
    /// `good / known`.
    pub availability: Option<Fraction>,
    /// `known / eligible`.
    pub coverage: Option<Fraction>,
    /// `good / eligible`.
    pub pessimistic: Option<Fraction>,
    /// `(good + unknown) / eligible`.
    pub optimistic: Option<Fraction>,
}

impl ExactRatios {
    pub fn of(c: &Counts) -> ExactRatios {
        ExactRatios {
            availability: Fraction::new(c.good, c.known()),
            coverage: Fraction::new(c.known(), c.eligible),
            pessimistic: Fraction::new(c.good, c.eligible),
            optimistic: Fraction::new(c.good + c.unknown, c.eligible),
        }
    }
}

/// `good / known`; `None` ("N/A") when nothing is known.
pub fn availability(c: &Counts) -> Option<f64> {
    ratio(c.good, c.known())
}

/// `known / eligible`.
pub fn coverage(c: &Counts) -> Option<f64> {
    ratio(c.known(), c.eligible)
}

/// Pessimistic bound `good / eligible` (unknown counted bad).
pub fn pessimistic(c: &Counts) -> Option<f64> {
    ratio(c.good, c.eligible)
}

/// Optimistic bound `(good + unknown) / eligible` (unknown counted good).
pub fn optimistic(c: &Counts) -> Option<f64> {
    ratio(c.good + c.unknown, c.eligible)
}

/// The exact integer rule, `None` when `known = 0`.
pub fn meets_target(bad: u64, known: u64, target: Ppm) -> Option<bool> {
    if known == 0 {
        return None;
    }
    let lhs = u128::from(bad) * 1_000_000;
    let rhs = u128::from(1_000_000u32.saturating_sub(target.0)) * u128::from(known);
    Some(lhs <= rhs)
}

/// `known / eligible < min_coverage`, decided on integers.
pub fn below_min_coverage(c: &Counts, min_coverage: Option<Ppm>) -> bool {
    match min_coverage {
        None => false,
        Some(min) => u128::from(c.known()) * 1_000_000 < u128::from(min.0) * u128::from(c.eligible),
    }
}

/// Compliance as reported: `None` when not determinable (nothing known, or coverage below
/// the configured minimum), never "met" by default.
pub fn compliance(c: &Counts, target: Ppm, min_coverage: Option<Ppm>) -> Option<bool> {
    if below_min_coverage(c, min_coverage) {
        return None;
    }
    meets_target(c.bad, c.known(), target)
}

/// `num / den` as a percentage with `decimals` digits, rounded DOWN, so that display never
/// turns a breach into a pass (99.8999 % shows as "99.89" with two decimals, not "99.90").
/// `None` when `den = 0`.
pub fn floor_percent(num: u64, den: u64, decimals: u32) -> Option<String> {
    if den == 0 {
        return None;
    }
    let scale = 10u128.pow(decimals.min(12));
    let scaled = u128::from(num) * 100 * scale / u128::from(den);
    let whole = scaled / scale;
    if decimals == 0 {
        return Some(whole.to_string());
    }
    let frac = scaled % scale;
    Some(format!(
        "{whole}.{frac:0width$}",
        width = decimals.min(12) as usize
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_percent_never_rounds_up() {
        assert_eq!(
            floor_percent(998_999, 1_000_000, 2).as_deref(),
            Some("99.89")
        );
        assert_eq!(floor_percent(43_170, 43_200, 4).as_deref(), Some("99.9305"));
        assert_eq!(floor_percent(1, 1, 2).as_deref(), Some("100.00"));
        assert_eq!(floor_percent(2, 3, 0).as_deref(), Some("66"));
        assert_eq!(floor_percent(1, 0, 2), None);
    }

    #[test]
    fn compliance_boundary_is_inclusive() {
        // 99.9 % of 1,000 known minutes allows exactly 1 bad minute.
        assert_eq!(meets_target(1, 1_000, Ppm(999_000)), Some(true));
        assert_eq!(meets_target(2, 1_000, Ppm(999_000)), Some(false));
        assert_eq!(meets_target(0, 0, Ppm(999_000)), None);
        assert_eq!(meets_target(0, 5, Ppm(1_000_000)), Some(true));
        assert_eq!(meets_target(1, 5, Ppm(1_000_000)), Some(false));
    }

    #[test]
    fn min_coverage_makes_it_not_determinable() {
        let c = Counts {
            eligible: 100,
            good: 89,
            bad: 0,
            unknown: 11,
        };
        assert_eq!(compliance(&c, Ppm(990_000), Some(Ppm(900_000))), None);
        assert_eq!(compliance(&c, Ppm(990_000), Some(Ppm(890_000))), Some(true));
        assert_eq!(compliance(&c, Ppm(990_000), None), Some(true));
    }
}
