//! The minute timeline of one service: folds the minute rollups of all its checks per
//! agent into an agent verdict, applies the quorum, and combines the result with the
//! eligibility mask into one state per minute.
//!
//! Invariants:
//! - An agent's verdict for a minute is *fail* if any of its probes (of any of the
//!   service's checks) failed in that minute, *ok* if it ran probes and none failed, and
//!   *silent* otherwise.
//! - An agent-minute covered by a reported gap (measurements the agent dropped) is
//!   *silent* unless it has a failure: the dropped probes might have failed, so an ok
//!   verdict cannot be trusted, while a recorded failure stays a fact.
//! - With R reporting agents of which F failed: R = 0 or R < min_reporters ⇒ unknown;
//!   otherwise the quorum rule decides bad or good.
//! - States are one byte per minute; building them allocates two vectors and does not
//!   hash in the inner loops.

use attest_config::Quorum;

use crate::store::{GapRow, MinuteRollup};

/// Minute state codes, one byte each. Ineligible minutes (outside service hours, in
/// maintenance, before the check existed, in the future) are never counted.
pub const INELIGIBLE: u8 = 0;
pub const UNKNOWN: u8 = 1;
pub const GOOD: u8 = 2;
pub const BAD: u8 = 3;

const REPORTED: u8 = 1;
const FAILED: u8 = 2;
const GAP: u8 = 4;

/// How the per-agent verdicts of a minute become the minute's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumRule {
    pub quorum: Quorum,
    /// At least this many agents must report; 0 is treated as 1 (R = 0 is always unknown).
    pub min_reporters: u32,
}

impl QuorumRule {
    /// The state of a minute with `reporting` agents of which `failed` failed.
    pub fn decide(self, reporting: u32, failed: u32) -> u8 {
        if reporting == 0 || reporting < self.min_reporters {
            return UNKNOWN;
        }
        let bad = match self.quorum {
            Quorum::Any => failed >= 1,
            Quorum::Majority => 2 * u64::from(failed) > u64::from(reporting),
            Quorum::All => failed == reporting,
            Quorum::AtLeast(n) => failed >= n.max(1),
        };
        if bad { BAD } else { GOOD }
    }
}

/// Minute states over `[from, from + states.len())`.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub from: i64,
    pub states: Vec<u8>,
    /// Agents that reported anything for the service, sorted.
    pub agents: Vec<String>,
    /// Indices (into the rollups given to `build`) of in-range rollups with failures, so that
    /// incident attribution does not scan every rollup again.
    pub failing: Vec<usize>,
}

/// Agents in order of appearance with one cell column (a byte per minute) each.
#[derive(Default)]
struct Found<'a> {
    names: Vec<&'a str>,
    cells: Vec<Vec<u8>>,
    last: usize,
}

impl<'a> Found<'a> {
    /// Index of `name`, adding it on first sight. Rollups arrive grouped, so most lookups
    /// are one string comparison.
    fn index(&mut self, name: &'a str, len: usize) -> usize {
        if self.names.get(self.last).is_some_and(|n| *n == name) {
            return self.last;
        }
        self.last = match self.names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.cells.push(vec![0; len]);
                self.names.len() - 1
            }
        };
        self.last
    }
}

impl Timeline {
    /// Builds the timeline of `[from, from + eligible.len())`. Rollups and gaps outside the
    /// range are ignored; `eligible` is the calendar mask with future minutes cleared.
    pub fn build(
        from: i64,
        eligible: &[u8],
        rollups: &[MinuteRollup],
        gaps: &[GapRow],
        rule: QuorumRule,
    ) -> Timeline {
        let len = eligible.len();
        let to = from + len as i64;
        // One pass over the rollups (they are large rows: every pass costs memory bandwidth).
        let mut found = Found::default();
        let mut failing = Vec::new();
        for (k, r) in rollups.iter().enumerate() {
            if r.minute < from || r.minute >= to || r.probes == 0 && r.failures == 0 {
                continue;
            }
            let a = found.index(&r.agent, len);
            let cell = &mut found.cells[a][(r.minute - from) as usize];
            *cell |= REPORTED;
            if r.failures > 0 {
                *cell |= FAILED;
                failing.push(k);
            }
        }
        for g in gaps {
            let a = found.index(&g.agent, len);
            let lo = g.from_minute.max(from);
            let hi = g.to_minute.saturating_add(1).min(to);
            for m in lo..hi {
                found.cells[a][(m - from) as usize] |= GAP;
            }
        }
        let mut states = vec![INELIGIBLE; len];
        for (i, state) in states.iter_mut().enumerate() {
            if eligible[i] == 0 {
                continue;
            }
            let (mut r, mut f) = (0u32, 0u32);
            for col in &found.cells {
                let c = col[i];
                if c & FAILED != 0 {
                    r += 1;
                    f += 1;
                } else if c & REPORTED != 0 && c & GAP == 0 {
                    r += 1;
                }
            }
            *state = rule.decide(r, f);
        }
        let mut agents: Vec<String> = found.names.into_iter().map(str::to_string).collect();
        agents.sort_unstable();
        Timeline {
            from,
            states,
            agents,
            failing,
        }
    }

    pub fn to(&self) -> i64 {
        self.from + self.states.len() as i64
    }

    /// States of the minutes in `[a, b)` clipped to the timeline.
    pub fn slice(&self, a: i64, b: i64) -> &[u8] {
        let len = self.states.len() as i64;
        let lo = (a - self.from).clamp(0, len) as usize;
        let hi = (b - self.from).clamp(0, len) as usize;
        &self.states[lo..hi.max(lo)]
    }

    pub fn state(&self, minute: i64) -> u8 {
        let i = minute - self.from;
        if i < 0 || i >= self.states.len() as i64 {
            INELIGIBLE
        } else {
            self.states[i as usize]
        }
    }
}

/// Maps agent names to indices, remembering the last hit: rollups arrive grouped, so
/// most lookups are one string comparison.
pub(crate) struct AgentIndex<'a> {
    agents: &'a [String],
    last: usize,
}

impl<'a> AgentIndex<'a> {
    pub(crate) fn new(agents: &'a [String]) -> Self {
        AgentIndex { agents, last: 0 }
    }

    pub(crate) fn find(&mut self, name: &str) -> Option<usize> {
        if self.agents.get(self.last).is_some_and(|a| a == name) {
            return Some(self.last);
        }
        let i = self.agents.iter().position(|a| a == name)?;
        self.last = i;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truth table: (quorum, R, F) → state, written out so each rule is visible.
    #[test]
    fn quorum_truth_table() {
        let rule = |quorum, min_reporters| QuorumRule {
            quorum,
            min_reporters,
        };
        let cases = [
            (Quorum::Majority, 1, 0, 0, UNKNOWN),
            (Quorum::Majority, 1, 2, 1, GOOD),
            (Quorum::Majority, 1, 3, 2, BAD),
            (Quorum::Majority, 1, 1, 1, BAD),
            (Quorum::Majority, 1, 4, 2, GOOD),
            (Quorum::Any, 1, 2, 1, BAD),
            (Quorum::Any, 1, 3, 0, GOOD),
            (Quorum::All, 1, 3, 2, GOOD),
            (Quorum::All, 1, 2, 2, BAD),
            (Quorum::AtLeast(2), 1, 3, 1, GOOD),
            (Quorum::AtLeast(2), 1, 3, 2, BAD),
            (Quorum::AtLeast(2), 1, 1, 1, GOOD),
            (Quorum::Any, 2, 1, 1, UNKNOWN),
            (Quorum::Any, 2, 2, 1, BAD),
            (Quorum::Any, 0, 0, 0, UNKNOWN),
        ];
        for (quorum, min, r, f, want) in cases {
            assert_eq!(
                rule(quorum, min).decide(r, f),
                want,
                "{quorum:?} min_reporters={min} R={r} F={f}"
            );
        }
    }
}
