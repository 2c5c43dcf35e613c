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
//! - States are one byte per minute; building them allocates a column per agent and does
//!   not hash or compare strings in the inner loops (rows carry agent indices).
//! - The latency of eligible, started minutes is tallied in the same pass over the rows;
//!   within the threshold means `duration ≤ threshold` on the exact duration wherever the
//!   store has exact counts ([`ThresholdOver`]), else at the histogram's resolution.

use attest_config::Quorum;

use crate::minutes::latency::{bucket_count, bucket_of};
use crate::minutes::{GapSpan, LatencyBucket, SeriesMinute, SeriesMinutes, ThresholdOver};

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
    /// Indices (into the rows given to `build`) of in-range rows with failures, so that
    /// incident attribution does not scan every row again.
    pub failing: Vec<usize>,
}

/// One cell column (a byte per minute) per agent, allocated when the agent first shows up:
/// compact rollup agents by index, then agents known only from gaps.
struct Columns<'a> {
    len: usize,
    known: &'a [String],
    cells: Vec<Option<Vec<u8>>>,
    extra: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn new(known: &'a [String], len: usize) -> Self {
        Columns {
            len,
            known,
            cells: vec![None; known.len()],
            extra: Vec::new(),
        }
    }

    fn column(&mut self, slot: usize) -> &mut Vec<u8> {
        let len = self.len;
        if slot >= self.cells.len() {
            self.cells.resize(slot + 1, None);
        }
        self.cells[slot].get_or_insert_with(|| vec![0; len])
    }

    /// The slot of a gap's agent (gaps name agents; rollups index them).
    fn slot_of(&mut self, name: &'a str) -> usize {
        if let Ok(i) = self.known.binary_search_by(|a| a.as_str().cmp(name)) {
            return i;
        }
        let extra = match self.extra.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.extra.push(name);
                self.extra.len() - 1
            }
        };
        self.known.len() + extra
    }

    fn present(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.cells.iter().flatten()
    }

    /// Names of the agents that have a column, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .filter_map(|(i, _)| {
                self.known
                    .get(i)
                    .map(String::as_str)
                    .or_else(|| self.extra.get(i - self.known.len()).copied())
            })
            .map(str::to_string)
            .collect();
        names.sort_unstable();
        names
    }
}

/// Which minutes' latency to tally while building a timeline: eligible, started minutes of
/// `[from, to)` (the report period up to `as_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyWindow<'a> {
    pub from: i64,
    pub to: i64,
    /// The latency objective's threshold in µs; `None` without an objective.
    pub threshold_us: Option<u64>,
    /// The store's exact counts for that threshold; minutes they do not cover are judged
    /// at the histogram's resolution.
    pub exact: Option<&'a ThresholdOver>,
}

impl LatencyWindow<'_> {
    /// First minute judged exactly (`None`: none is).
    pub fn exact_from(&self) -> Option<i64> {
        self.exact
            .filter(|e| Some(e.threshold_us) == self.threshold_us)
            .and_then(|e| e.exact_from)
    }
}

/// Latency of the minutes of a [`LatencyWindow`], summed while the timeline is built so
/// that the rollups are walked once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyTally {
    pub probes: u64,
    pub within: u64,
    /// Successful probes with a duration in minutes judged at the histogram's resolution
    /// (not exactly), when there is a threshold.
    pub histogram_probes: u64,
    /// Dense per-bucket probe counts (index = `hdrhistogram` bucket); empty when no
    /// window was asked for.
    pub merged: Vec<u64>,
}

/// Buckets at or below the returned index hold durations `≤ threshold` at the histogram's
/// resolution (the threshold's own bucket included); `None` for a 0 µs threshold, which
/// nothing meets at that resolution.
fn last_within_bucket(threshold_us: u64) -> Option<u32> {
    (threshold_us > 0).then(|| bucket_of(threshold_us))
}

impl LatencyTally {
    fn add(&mut self, r: &SeriesMinute, buckets: &[LatencyBucket], w: &LatencyWindow<'_>) {
        self.probes += u64::from(r.probes);
        if buckets.is_empty() {
            return;
        }
        if let Some(t) = w.threshold_us {
            let n: u64 = match last_within_bucket(t) {
                Some(last) => buckets
                    .iter()
                    .take_while(|b| b.index <= last)
                    .map(|b| u64::from(b.count))
                    .sum(),
                None => 0,
            };
            // A minute's histogram holds only successful probes; the clamp keeps a corrupt
            // row from counting more probes within the threshold than succeeded.
            self.within += n.min(u64::from(r.probes.saturating_sub(r.failures)));
            if w.exact_from().is_none_or(|f| r.minute < f) {
                self.histogram_probes += buckets.iter().map(|b| u64::from(b.count)).sum::<u64>();
            }
        }
        for b in buckets {
            if let Some(slot) = self.merged.get_mut(b.index as usize) {
                *slot += u64::from(b.count);
            }
        }
    }

    /// Takes the exact corrections of the eligible window minutes in `[from, to)` off the
    /// histogram-resolution count: probes in the threshold's bucket but over it.
    fn correct(&mut self, from: i64, eligible: &[u8], w: &LatencyWindow<'_>) {
        let (Some(exact), Some(exact_from)) = (w.exact, w.exact_from()) else {
            return;
        };
        let to = from + eligible.len() as i64;
        let lo = from.max(w.from).max(exact_from);
        let hi = to.min(w.to);
        let start = exact.over.partition_point(|(m, _)| *m < lo);
        for &(m, n) in exact.over[start..].iter().take_while(|(m, _)| *m < hi) {
            if eligible[(m - from) as usize] != 0 {
                self.within = self.within.saturating_sub(n);
            }
        }
    }
}

impl Timeline {
    /// Builds the timeline of `[from, from + eligible.len())`. Rollups and gaps outside the
    /// range are ignored; `eligible` is the calendar mask with future minutes cleared.
    pub fn build(
        from: i64,
        eligible: &[u8],
        rollups: &SeriesMinutes,
        gaps: &[GapSpan],
        rule: QuorumRule,
    ) -> Timeline {
        Self::build_with_latency(from, eligible, rollups, gaps, rule, None).0
    }

    /// [`Timeline::build`], tallying the latency of `window` in the same pass over the rows.
    pub fn build_with_latency(
        from: i64,
        eligible: &[u8],
        rollups: &SeriesMinutes,
        gaps: &[GapSpan],
        rule: QuorumRule,
        window: Option<LatencyWindow<'_>>,
    ) -> (Timeline, LatencyTally) {
        let len = eligible.len();
        let to = from + len as i64;
        let mut cols = Columns::new(&rollups.agents, len);
        let mut tally = LatencyTally::default();
        if window.is_some() {
            tally.merged = vec![0; bucket_count()];
        }
        let mut failing = Vec::new();
        for (k, r) in rollups.rows.iter().enumerate() {
            if r.minute < from || r.minute >= to {
                continue;
            }
            let i = (r.minute - from) as usize;
            if let Some(w) = &window
                && r.minute >= w.from
                && r.minute < w.to
                && eligible[i] != 0
            {
                tally.add(r, rollups.buckets(r), w);
            }
            if r.probes == 0 && r.failures == 0 {
                continue;
            }
            let cell = &mut cols.column(r.agent as usize)[i];
            *cell |= REPORTED;
            if r.failures > 0 {
                *cell |= FAILED;
                failing.push(k);
            }
        }
        if let Some(w) = &window {
            tally.correct(from, eligible, w);
        }
        for g in gaps {
            let slot = cols.slot_of(&g.agent);
            let column = cols.column(slot);
            let lo = g.from_minute.max(from);
            let hi = g.to_minute.saturating_add(1).min(to);
            for m in lo..hi {
                column[(m - from) as usize] |= GAP;
            }
        }
        let states = decide_states(eligible, &cols, rule);
        let timeline = Timeline {
            from,
            states,
            agents: cols.names(),
            failing,
        };
        (timeline, tally)
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

/// Each agent's verdict per minute of a range, kept (unlike [`Timeline`], which keeps only
/// the decided state) for the monthly report's minute table and its unknown intervals.
#[derive(Debug, Clone)]
pub struct AgentGrid {
    pub from: i64,
    /// Agents with a column, sorted; `cells[k]` belongs to `agents[k]`.
    pub agents: Vec<String>,
    cells: Vec<Vec<u8>>,
}

impl AgentGrid {
    /// The grid of `[from, from + len)` from the same rows and gaps [`Timeline::build`] reads.
    pub fn build(from: i64, len: usize, rollups: &SeriesMinutes, gaps: &[GapSpan]) -> AgentGrid {
        let to = from + len as i64;
        let mut cols = Columns::new(&rollups.agents, len);
        for r in &rollups.rows {
            if r.minute < from || r.minute >= to || (r.probes == 0 && r.failures == 0) {
                continue;
            }
            let cell = &mut cols.column(r.agent as usize)[(r.minute - from) as usize];
            *cell |= REPORTED;
            if r.failures > 0 {
                *cell |= FAILED;
            }
        }
        for g in gaps {
            let slot = cols.slot_of(&g.agent);
            let column = cols.column(slot);
            for m in g.from_minute.max(from)..g.to_minute.saturating_add(1).min(to) {
                column[(m - from) as usize] |= GAP;
            }
        }
        let names = cols.names();
        let mut named: Vec<(String, Vec<u8>)> = cols
            .cells
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let name = cols
                    .known
                    .get(i)
                    .map(String::as_str)
                    .or_else(|| cols.extra.get(i - cols.known.len()).copied())?;
                Some((name.to_string(), c?))
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        debug_assert!(named.iter().map(|n| &n.0).eq(names.iter()));
        let (agents, cells) = named.into_iter().unzip();
        AgentGrid {
            from,
            agents,
            cells,
        }
    }

    /// (R, F) of the minute: agents whose verdict counts, and of them those that failed.
    /// Same rule as the timeline: a failure always counts; an ok under a gap does not.
    pub fn counts(&self, minute: i64) -> (u32, u32) {
        let i = (minute - self.from) as usize;
        let (mut r, mut f) = (0, 0);
        for col in &self.cells {
            match verdict(col[i]) {
                Verdict::Failed => {
                    r += 1;
                    f += 1;
                }
                Verdict::Ok => r += 1,
                Verdict::Silent => {}
            }
        }
        (r, f)
    }

    /// Whether `agent` (an index into `agents`) gave no counted verdict in `minute`.
    pub fn silent(&self, agent: usize, minute: i64) -> bool {
        let i = (minute - self.from) as usize;
        verdict(self.cells[agent][i]) == Verdict::Silent
    }
}

#[derive(PartialEq, Eq)]
enum Verdict {
    Failed,
    Ok,
    Silent,
}

fn verdict(c: u8) -> Verdict {
    if c & FAILED != 0 {
        Verdict::Failed
    } else if c & REPORTED != 0 && c & GAP == 0 {
        Verdict::Ok
    } else {
        Verdict::Silent
    }
}

/// One state per minute from the agents' cell columns.
fn decide_states(eligible: &[u8], cols: &Columns<'_>, rule: QuorumRule) -> Vec<u8> {
    let present: Vec<&Vec<u8>> = cols.present().collect();
    let mut states = vec![INELIGIBLE; eligible.len()];
    for (i, state) in states.iter_mut().enumerate() {
        if eligible[i] == 0 {
            continue;
        }
        let (mut r, mut f) = (0u32, 0u32);
        for col in &present {
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
    states
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
