//! Error budget: how many bad minutes the target allows, and how many are left.
//!
//! Invariants:
//! - Everything is computed in micro-minutes on integers (`(10⁶ − target_ppm) × minutes`)
//!   and converted to floats only at the end, so `remaining` is exact before rounding.
//! - With nothing known the budget is allowed 0, remaining 0, ratio `None` (N/A).

use attest_config::units::Ppm;

use super::availability::Counts;

/// The error budget of a period; `planning_allowed_minutes` is the whole-month budget,
/// the others are for the known minutes so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBudget {
    /// `(1 − target) × known`.
    pub allowed_minutes: f64,
    /// `allowed − bad`; negative once the budget is exhausted.
    pub remaining_minutes: f64,
    /// `remaining / allowed`; `None` when nothing is allowed.
    pub remaining_ratio: Option<f64>,
    /// `(1 − target) × eligible minutes of the whole month` (including those still to come).
    pub planning_allowed_minutes: f64,
}

/// Allowed bad minutes for `minutes`, in micro-minutes.
fn allowed_micro(target: Ppm, minutes: u64) -> i128 {
    i128::from(1_000_000u32.saturating_sub(target.0)) * i128::from(minutes)
}

pub fn error_budget(c: &Counts, target: Ppm, eligible_whole_month: u64) -> ErrorBudget {
    let planning = allowed_micro(target, eligible_whole_month) as f64 / 1e6;
    if c.known() == 0 {
        return ErrorBudget {
            allowed_minutes: 0.0,
            remaining_minutes: 0.0,
            remaining_ratio: None,
            planning_allowed_minutes: planning,
        };
    }
    let allowed = allowed_micro(target, c.known());
    let remaining = allowed - i128::from(c.bad) * 1_000_000;
    ErrorBudget {
        allowed_minutes: allowed as f64 / 1e6,
        remaining_minutes: remaining as f64 / 1e6,
        remaining_ratio: (allowed != 0).then(|| remaining as f64 / allowed as f64),
        planning_allowed_minutes: planning,
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
