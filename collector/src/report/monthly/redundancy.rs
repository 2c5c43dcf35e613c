//! Measurement redundancy of a service over its month, from the engine's minute states:
//! how often fewer agents reported than expected, the longest such stretch, and the
//! failures the quorum did not count (seen by too few agents). Reduced redundancy does not
//! change a figure, but an auditor must see when one agent alone decided a minute and when
//! a failure was outvoted.
//!
//! Invariants: counts only eligible minutes; derives nothing the engine decides (a minute's
//! state is the engine's); intervals are ISO 8601 `START/END` in UTC.

use serde::{Deserialize, Serialize};

use crate::sla::detail::{MinuteStates, minute_ts};
use crate::sla::timeline::{GOOD, INELIGIBLE};

/// At most this many intervals of outvoted failures are listed (the count covers all).
pub const MAX_LISTED: usize = 20;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Redundancy {
    /// Agents expected to report each minute: those the service's central checks are
    /// assigned to, else those that reported during the month.
    pub expected_agents: u32,
    /// Eligible minutes in which at least one but fewer than `expected_agents` reported.
    pub reduced_minutes: u64,
    /// The longest run of such minutes (`START/END`), with its length in minutes.
    pub longest_reduced: Option<String>,
    pub longest_reduced_minutes: u64,
    /// Eligible minutes judged good although an agent failed: failures seen by fewer agents
    /// than the quorum needs; not counted as bad.
    pub outvoted_failure_minutes: u64,
    /// Those minutes as intervals (the first [`MAX_LISTED`]).
    pub outvoted_failures: Vec<String>,
}

/// The redundancy of `m` with `expected` agents per minute.
pub fn of(m: &MinuteStates, expected: u32) -> Redundancy {
    let eligible = |i: usize| m.states[i] != INELIGIBLE;
    let reduced = |i: usize| eligible(i) && m.reporting[i] > 0 && m.reporting[i] < expected;
    let outvoted = |i: usize| m.states[i] == GOOD && m.failing[i] > 0;
    let n = m.states.len();
    let longest = runs(n, reduced)
        .into_iter()
        .max_by_key(|(a, b)| (b - a, usize::MAX - a));
    let outvoted_runs = runs(n, outvoted);
    Redundancy {
        expected_agents: expected,
        reduced_minutes: (0..n).filter(|&i| reduced(i)).count() as u64,
        longest_reduced: longest.map(|r| interval(m, r)),
        longest_reduced_minutes: longest.map_or(0, |(a, b)| (b - a) as u64),
        outvoted_failure_minutes: (0..n).filter(|&i| outvoted(i)).count() as u64,
        outvoted_failures: outvoted_runs
            .into_iter()
            .take(MAX_LISTED)
            .map(|r| interval(m, r))
            .collect(),
    }
}

/// Maximal runs `[a, b)` of indexes where `hit` holds.
fn runs(n: usize, hit: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for i in 0..=n {
        match (i < n && hit(i), start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                out.push((a, i));
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn interval(m: &MinuteStates, (a, b): (usize, usize)) -> String {
    format!(
        "{}/{}",
        minute_ts(m.from + a as i64),
        minute_ts(m.from + b as i64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::timeline::{BAD, UNKNOWN};

    #[test]
    fn counts_reduced_minutes_the_longest_run_and_outvoted_failures() {
        let m = MinuteStates {
            from: 0,
            states: vec![GOOD, GOOD, GOOD, INELIGIBLE, GOOD, BAD, UNKNOWN, GOOD],
            reporting: vec![2, 1, 1, 1, 1, 2, 0, 2],
            failing: vec![0, 0, 1, 0, 0, 2, 0, 1],
        };
        let r = of(&m, 2);
        // Minutes 1, 2 and 4 (3 is ineligible, 6 has nobody reporting: unknown time).
        assert_eq!(r.reduced_minutes, 3);
        assert_eq!(r.longest_reduced_minutes, 2);
        assert_eq!(
            r.longest_reduced.as_deref(),
            Some("1970-01-01T00:01:00Z/1970-01-01T00:03:00Z")
        );
        // Minutes 2 and 7: a failure the quorum did not count; minute 5 was bad.
        assert_eq!(r.outvoted_failure_minutes, 2);
        assert_eq!(r.outvoted_failures.len(), 2);
    }
}
