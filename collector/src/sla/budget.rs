//! Error budget: how many bad minutes the target allows, and how many are left.
//!
//! Invariants:
//! - Everything is computed in micro-minutes on integers (`(10⁶ − target_ppm) × minutes`)
//!   and converted to floats only at the end, so `remaining` is exact before rounding.
//! - With nothing known the budget is allowed 0, remaining 0, ratio `None` (N/A).

use attest_config::units::Ppm;

use super::availability::{Counts, Fraction};

/// The error budget of a period; `planning_*` is the whole-month budget, the others are
/// for the known minutes so far. The `*_micro` integers are the exact values (micro-minutes)
/// the floats are converted from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBudget {
    /// `(1 − target) × known`.
    pub allowed_minutes: f64,
    /// `allowed − bad`; negative once the budget is exhausted.
    pub remaining_minutes: f64,
    /// `remaining / allowed`; `None` when nothing is allowed.
    pub remaining_ratio: Option<f64>,
    /// `(1 − target) × eligible minutes of the whole month` (including those still to come).
    pub planning_allowed_minutes: f64,
    /// `planning_allowed − bad`; negative once the month's budget is spent.
    pub planning_remaining_minutes: f64,
    /// `planning_remaining / planning_allowed`; `None` when the month allows nothing.
    pub planning_remaining_ratio: Option<f64>,
    /// Exact values in micro-minutes (minutes × 10⁶).
    pub allowed_micro: i128,
    pub remaining_micro: i128,
    pub planning_allowed_micro: i128,
    pub planning_remaining_micro: i128,
}

impl ErrorBudget {
    /// `remaining / allowed` exactly, in micro-minutes.
    pub fn remaining_ratio_exact(&self) -> Option<Fraction> {
        Fraction::new(self.remaining_micro, self.allowed_micro)
    }

    /// `planning_remaining / planning_allowed` exactly, in micro-minutes.
    pub fn planning_remaining_ratio_exact(&self) -> Option<Fraction> {
        Fraction::new(self.planning_remaining_micro, self.planning_allowed_micro)
    }
}

/// Allowed bad minutes for `minutes`, in micro-minutes.
fn allowed_micro(target: Ppm, minutes: u64) -> i128 {
    i128::from(1_000_000u32.saturating_sub(target.0)) * i128::from(minutes)
}

fn minutes(micro: i128) -> f64 {
    micro as f64 / 1e6
}

pub fn error_budget(c: &Counts, target: Ppm, eligible_whole_month: u64) -> ErrorBudget {
    let bad = i128::from(c.bad) * 1_000_000;
    let planning = allowed_micro(target, eligible_whole_month);
    let planning_remaining = planning - bad;
    // With nothing known the budget so far is allowed 0, remaining 0, ratio N/A.
    let (allowed, remaining) = if c.known() == 0 {
        (0, 0)
    } else {
        let allowed = allowed_micro(target, c.known());
        (allowed, allowed - bad)
    };
    let ratio = |num: i128, den: i128| Fraction::new(num, den).map(Fraction::to_f64);
    ErrorBudget {
        allowed_minutes: minutes(allowed),
        remaining_minutes: minutes(remaining),
        remaining_ratio: ratio(remaining, allowed),
        planning_allowed_minutes: minutes(planning),
        planning_remaining_minutes: minutes(planning_remaining),
        planning_remaining_ratio: ratio(planning_remaining, planning),
        allowed_micro: allowed,
        remaining_micro: remaining,
        planning_allowed_micro: planning,
        planning_remaining_micro: planning_remaining,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_budget_goes_negative() {
        let c = Counts {
            eligible: 1_000,
            good: 997,
            bad: 3,
            unknown: 0,
        };
        let b = error_budget(&c, Ppm(999_000), 2_000);
        assert_eq!(b.allowed_minutes, 1.0);
        assert_eq!(b.remaining_minutes, -2.0);
        assert_eq!(b.remaining_ratio, Some(-2.0));
        assert_eq!(b.planning_allowed_minutes, 2.0);
        assert_eq!(b.planning_remaining_minutes, -1.0);
        assert_eq!(b.planning_remaining_ratio, Some(-0.5));
        assert_eq!(
            b.remaining_ratio_exact().map(|f| f.to_string()).as_deref(),
            Some("-2000000/1000000")
        );
    }

    #[test]
    fn hundred_percent_target_has_no_ratio() {
        let c = Counts {
            eligible: 10,
            good: 10,
            bad: 0,
            unknown: 0,
        };
        let b = error_budget(&c, Ppm(1_000_000), 10);
        assert_eq!(b.allowed_minutes, 0.0);
        assert_eq!(b.remaining_ratio, None);
    }
}
