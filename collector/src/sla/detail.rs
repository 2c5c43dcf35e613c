//! The month in detail, for the monthly report: a per-local-day breakdown, the unknown
//! time as intervals with the agents that were silent, and the state of every minute with
//! the agents reporting and failing (the minute table an auditor recomputes figures from).
//!
//! Invariants:
//! - Same rows, calendar and quorum as [`super::evaluate`]: the days' counts add up to the
//!   month's counts, and every minute's state equals the engine timeline's state.
//! - A day is a local calendar day of the service's zone, `[local 00:00, next local 00:00)`
//!   (23 or 25 hours on a DST change day); minutes are judged by their start instant.
//! - An unknown interval is a maximal run of unknown minutes; ineligible minutes end it.
//!   Its silent agents are those with no counted verdict (nothing reported, or only an ok
//!   under a gap) in at least one of its minutes.
//! - Pure: no I/O and no clock; `now` is passed in.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use super::availability::{self as av, Counts};
use super::calendar::{self, Calendar, Month, Period};
use super::timeline::{AgentGrid, GOOD, INELIGIBLE, QuorumRule, UNKNOWN};
use super::{ServiceInput, SlaError};

/// One local day of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayFigure {
    /// The local date, `YYYY-MM-DD`.
    pub date: Date,
    pub start: Timestamp,
    pub end: Timestamp,
    pub eligible_minutes: u64,
    pub good_minutes: u64,
    pub bad_minutes: u64,
    pub unknown_minutes: u64,
    /// `good / known`; null when nothing of the day is known.
    pub availability: Option<f64>,
}

/// A maximal run of unknown minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownInterval {
    pub start: Timestamp,
    /// End of the last unknown minute of the run.
    pub end: Timestamp,
    pub minutes: u64,
    /// Agents without a counted verdict in at least one minute of the run, sorted; empty
    /// when no agent has ever reported for the service.
    pub silent_agents: Vec<String>,
}

/// Every minute of the period: its state and the agents reporting and failing.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteStates {
    pub from: i64,
    /// Timeline state codes (`INELIGIBLE`, `UNKNOWN`, `GOOD`, `BAD`).
    pub states: Vec<u8>,
    pub reporting: Vec<u32>,
    pub failing: Vec<u32>,
}

/// The month in detail; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthDetail {
    /// Agents that reported anything for the service in the period, sorted.
    pub agents: Vec<String>,
    pub days: Vec<DayFigure>,
    pub unknown: Vec<UnknownInterval>,
    pub minutes: MinuteStates,
}

/// The detail of `input.service` for `month` as of `now` (minutes from `now` on are
/// ineligible, as in [`super::evaluate`]).
pub fn detail(
    input: &ServiceInput<'_>,
    month: Month,
    now: Timestamp,
) -> Result<MonthDetail, SlaError> {
    let svc = input.service;
    let since = super::calendar::eligible_since(svc, input.first_seen, input.first_configured);
    let cal = Calendar::new(svc, input.maintenance, since)?;
    let period = Period::month_in(month, &svc.time_zone, cal.time_zone())?;
    let as_of = super::as_of_minute(&period, now);
    let (from, to) = (period.start_minute, period.end_minute);
    let mut mask = cal.eligible_mask(from, to);
    mask[(as_of - from) as usize..].fill(0);
    let grid = AgentGrid::build(from, mask.len(), input.rollups, input.gaps);
    let rule = QuorumRule {
        quorum: svc.quorum,
        min_reporters: svc.min_reporters,
    };
    let minutes = minute_states(&grid, &mask, rule);
    let days = days(&cal, &period, &minutes)?;
    let unknown = unknown_intervals(&grid, &minutes);
    Ok(MonthDetail {
        agents: grid.agents.clone(),
        days,
        unknown,
        minutes,
    })
}

fn minute_states(grid: &AgentGrid, mask: &[u8], rule: QuorumRule) -> MinuteStates {
    let len = mask.len();
    let mut m = MinuteStates {
        from: grid.from,
        states: vec![INELIGIBLE; len],
        reporting: vec![0; len],
        failing: vec![0; len],
    };
    for (i, &eligible) in mask.iter().enumerate() {
        let (r, f) = grid.counts(grid.from + i as i64);
        m.reporting[i] = r;
        m.failing[i] = f;
        if eligible != 0 {
            m.states[i] = rule.decide(r, f);
        }
    }
    m
}

fn days(cal: &Calendar, period: &Period, m: &MinuteStates) -> Result<Vec<DayFigure>, SlaError> {
    let tz = cal.time_zone();
    let first = Date::new(period.month.year(), period.month.month(), 1)
        .map_err(|e| SlaError::Time(e.to_string()))?;
    let mut out = Vec::with_capacity(31);
    let mut date = first;
    while date.month() == first.month() {
        let next = date.tomorrow().map_err(|e| SlaError::Time(e.to_string()))?;
        let start = calendar::local_midnight(tz, date)?;
        let end = calendar::local_midnight(tz, next)?;
        let (a, b) = (calendar::ceil_minute(start), calendar::ceil_minute(end));
        let lo = (a - m.from).clamp(0, m.states.len() as i64) as usize;
        let hi = (b - m.from).clamp(0, m.states.len() as i64) as usize;
        let c = Counts::of(&m.states[lo..hi.max(lo)]);
        out.push(DayFigure {
            date,
            start,
            end,
            eligible_minutes: c.eligible,
            good_minutes: c.good,
            bad_minutes: c.bad,
            unknown_minutes: c.unknown,
            availability: av::availability(&c),
        });
        date = next;
    }
    Ok(out)
}

fn unknown_intervals(grid: &AgentGrid, m: &MinuteStates) -> Vec<UnknownInterval> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < m.states.len() {
        if m.states[i] != UNKNOWN {
            i += 1;
            continue;
        }
        let start = i;
        while i < m.states.len() && m.states[i] == UNKNOWN {
            i += 1;
        }
        let (a, b) = (m.from + start as i64, m.from + i as i64);
        let silent_agents = (0..grid.agents.len())
            .filter(|&k| (a..b).any(|min| grid.silent(k, min)))
            .map(|k| grid.agents[k].clone())
            .collect();
        out.push(UnknownInterval {
            start: minute_ts(a),
            end: minute_ts(b),
            minutes: (i - start) as u64,
            silent_agents,
        });
    }
    out
}

/// The start instant of a Unix minute.
pub fn minute_ts(minute: i64) -> Timestamp {
    Timestamp::from_second(minute * 60).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl MinuteStates {
    /// The state's name as the minute table prints it.
    pub fn state_name(code: u8) -> &'static str {
        match code {
            UNKNOWN => "unknown",
            GOOD => "good",
            INELIGIBLE => "ineligible",
            _ => "bad",
        }
    }
}
