//! Incidents: maximal runs of bad minutes within a report period, with the agents that saw
//! them, their most common failure reason, and the MTTR/MTBF/MTBSI figures.
//!
//! Invariants:
//! - Only a good minute ends an incident. Unknown and ineligible minutes inside a run
//!   neither end it nor count as downtime.
//! - An incident starts at its first bad minute and ends at the end of its last bad
//!   minute; trailing unknown minutes before the ending good minute are not part of it.
//! - Incidents are clipped to the period: one already running at the period start (the
//!   last good-or-bad minute before the start, within the timeline, was bad) starts at the
//!   period start with `open_at_start`; one not ended by a good minute before the end of
//!   the evaluated range is `open_at_end`.
//! - Reason weight: each failing agent-minute adds its failure count to its minute's top
//!   reason (the rollup keeps only the top reason); ties go to the smallest name.

use attest_config::wire::FailureReason;
use jiff::Timestamp;

use super::timeline::{BAD, GOOD, Timeline};
use crate::minutes::SeriesMinutes;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    pub start: Timestamp,
    pub end: Timestamp,
    pub open_at_start: bool,
    pub open_at_end: bool,
    /// Bad minutes inside the incident.
    pub downtime_minutes: u64,
    /// Agents whose verdict was *fail* in a bad minute of the incident, sorted.
    pub agents: Vec<String>,
    /// Most common failure reason; `None` when the rollups carried none.
    pub reason: Option<String>,
}

/// A run found in the states, before enrichment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: i64,
    /// Last bad minute + 1.
    end: i64,
    open_at_start: bool,
    open_at_end: bool,
    downtime: u64,
}

/// Incidents of the minutes `[a, b)` of `timeline` (`a` is the period start, `b` the period
/// end or, for a month in progress, the first minute not yet started). `rollups` must be the
/// rows the timeline was built from (its `failing` indices point into them).
pub fn incidents(timeline: &Timeline, rollups: &SeriesMinutes, a: i64, b: i64) -> Vec<Incident> {
    let runs = runs(timeline, a, b);
    let mut agent_hits = vec![vec![false; rollups.agents.len()]; runs.len()];
    let mut reasons: Vec<Vec<(FailureReason, u64)>> = vec![Vec::new(); runs.len()];
    for r in timeline.failing.iter().filter_map(|&k| rollups.rows.get(k)) {
        if r.failures == 0 || timeline.state(r.minute) != BAD {
            continue;
        }
        let Some(i) = run_of(&runs, r.minute) else {
            continue;
        };
        if let Some(hit) = agent_hits[i].get_mut(r.agent as usize) {
            *hit = true;
        }
        if let Some(reason) = r.reason {
            tally(&mut reasons[i], reason, u64::from(r.failures));
        }
    }
    runs.iter()
        .zip(agent_hits)
        .zip(reasons)
        .map(|((run, hits), reasons)| Incident {
            start: ts(run.start),
            end: ts(run.end),
            open_at_start: run.open_at_start,
            open_at_end: run.open_at_end,
            downtime_minutes: run.downtime,
            // `rollups.agents` is sorted, so the hit names come out sorted.
            agents: rollups
                .agents
                .iter()
                .zip(hits)
                .filter(|(_, hit)| *hit)
                .map(|(a, _)| a.clone())
                .collect(),
            reason: top(reasons),
        })
        .collect()
}

fn runs(timeline: &Timeline, a: i64, b: i64) -> Vec<Run> {
    let mut out = Vec::new();
    let mut open: Option<Run> = None;
    if last_known_before(timeline, a) == Some(BAD) {
        open = Some(Run {
            start: a,
            end: a,
            open_at_start: true,
            open_at_end: false,
            downtime: 0,
        });
    }
    // Jumps between state changes instead of matching minute by minute: a month is ~45k
    // minutes and almost all of them extend the current stretch.
    let states = timeline.slice(a, b);
    let base = a.max(timeline.from);
    let mut i = 0;
    while i < states.len() {
        if open.is_none() {
            let Some(p) = states[i..].iter().position(|&s| s == BAD) else {
                break;
            };
            i += p;
            open = Some(Run {
                start: base + i as i64,
                end: base + i as i64,
                open_at_start: false,
                open_at_end: false,
                downtime: 0,
            });
        }
        let rest = &states[i..];
        let close = rest.iter().position(|&s| s == GOOD).unwrap_or(rest.len());
        let stretch = &rest[..close];
        if let (Some(run), Some(last)) = (open.as_mut(), stretch.iter().rposition(|&s| s == BAD)) {
            run.end = base + (i + last) as i64 + 1;
            run.downtime += stretch.iter().filter(|&&s| s == BAD).count() as u64;
        }
        i += close;
        if close < rest.len() {
            if let Some(run) = open.take().filter(|r| r.downtime > 0) {
                out.push(run);
            }
            i += 1;
        }
    }
    if let Some(mut run) = open.filter(|r| r.downtime > 0) {
        run.open_at_end = true;
        out.push(run);
    }
    out
}

/// The state of the last good-or-bad minute before `a` in the timeline, if any.
fn last_known_before(timeline: &Timeline, a: i64) -> Option<u8> {
    timeline
        .slice(timeline.from, a)
        .iter()
        .rev()
        .copied()
        .find(|&s| s == GOOD || s == BAD)
}

fn run_of(runs: &[Run], minute: i64) -> Option<usize> {
    let i = runs.partition_point(|r| r.end <= minute);
    runs.get(i).filter(|r| r.start <= minute).map(|_| i)
}

fn tally(counts: &mut Vec<(FailureReason, u64)>, reason: FailureReason, n: u64) {
    match counts.iter_mut().find(|(r, _)| *r == reason) {
        Some((_, c)) => *c += n,
        None => counts.push((reason, n)),
    }
}

fn top(mut counts: Vec<(FailureReason, u64)>) -> Option<String> {
    counts.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.as_str().cmp(y.0.as_str())));
    counts
        .into_iter()
        .next()
        .map(|(r, _)| r.as_str().to_owned())
}

fn ts(minute: i64) -> Timestamp {
    Timestamp::from_second(minute.saturating_mul(60)).unwrap_or(Timestamp::MAX)
}

/// MTTR, MTBF and MTBSI in minutes; `None` when there are no incidents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reliability {
    /// `counted downtime / incidents`.
    pub mttr_minutes: Option<f64>,
    /// `good minutes / incidents`.
    pub mtbf_minutes: Option<f64>,
    /// `known minutes / incidents`.
    pub mtbsi_minutes: Option<f64>,
}

pub fn reliability(incidents: &[Incident], good: u64, known: u64) -> Reliability {
    let n = incidents.len() as f64;
    let per = |x: u64| (!incidents.is_empty()).then(|| x as f64 / n);
    let downtime: u64 = incidents.iter().map(|i| i.downtime_minutes).sum();
    Reliability {
        mttr_minutes: per(downtime),
        mtbf_minutes: per(good),
        mtbsi_minutes: per(known),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::timeline::{BAD, GOOD, INELIGIBLE, Timeline, UNKNOWN};
    use super::{Run, runs};

    /// The rule stated minute by minute: a bad minute opens or extends a run, a good minute
    /// closes it, any other state leaves it as it is.
    fn reference(timeline: &Timeline, a: i64, b: i64) -> Vec<Run> {
        let mut out = Vec::new();
        let mut open = (super::last_known_before(timeline, a) == Some(BAD)).then_some(Run {
            start: a,
            end: a,
            open_at_start: true,
            open_at_end: false,
            downtime: 0,
        });
        for m in a.max(timeline.from)..b.min(timeline.from + timeline.states.len() as i64) {
            match timeline.state(m) {
                BAD => {
                    let run = open.get_or_insert(Run {
                        start: m,
                        end: m,
                        open_at_start: false,
                        open_at_end: false,
                        downtime: 0,
                    });
                    run.end = m + 1;
                    run.downtime += 1;
                }
                GOOD => out.extend(open.take().filter(|r| r.downtime > 0)),
                _ => {}
            }
        }
        if let Some(mut run) = open.filter(|r| r.downtime > 0) {
            run.open_at_end = true;
            out.push(run);
        }
        out
    }

    proptest! {
        #[test]
        fn runs_match_the_minute_by_minute_rule(
            states in proptest::collection::vec(
                prop_oneof![Just(INELIGIBLE), Just(UNKNOWN), Just(GOOD), Just(BAD)], 0..200),
            a in 0i64..220,
            len in 0i64..220,
        ) {
            let timeline = Timeline { from: 10, states, agents: Vec::new(), failing: Vec::new() };
            prop_assert_eq!(runs(&timeline, a, a + len), reference(&timeline, a, a + len));
        }
    }
}
