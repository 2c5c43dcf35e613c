//! Scenario tests of the SLA engine in the `check(input, expect)` style: a small text DSL
//! describes a service and its agents' minutes; the report is rendered as text and compared
//! with the expectation. Each case names the rule of `docs/sla.md` it pins.
//!
//! DSL, one statement per line (`#` starts a comment; times are UTC instants like
//! `2026-10-03T10:00Z`; ranges are half-open `[from, to)`):
//! - settings: `zone Z`, `month YYYY-MM`, `now T` (default: period end), `target P%`,
//!   `quorum any|majority|all|N`, `min_reporters N`, `min_coverage P%`,
//!   `hours Mon,Tue 08:00 18:00` (end `24:00` allowed), `holiday YYYY-MM-DD`,
//!   `maint FROM TO`, `maint_weekly Sun 02:00 04:00`, `start T`, `first_seen T|never`,
//!   `latency_objective 0.2 99%`
//! - data: `agents a1 a2` (these report ok every minute of the input range),
//!   `fail A FROM TO [reason]`, `silent A FROM TO`, `ok A FROM TO`, `gap A FROM TO`,
//!   `row T A |..x _x|` (one char per minute from T: `.` ok, `x` fail, `_` or space silent),
//!   `slow A FROM TO SECONDS` (successful probes of those minutes take SECONDS)
//! - output: `show FROM TO` renders the minute states (`g` good, `b` bad, `?` unknown,
//!   `-` ineligible).

use std::str::FromStr;
use std::time::Duration;

use attest_config::units::{Ppm, parse_percent};
use attest_config::{LatencyObjective, MaintenanceWindow, Quorum, Service, WeeklyWindow};
use hdrhistogram::Histogram;
use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};

use super::*;
use crate::store::{GapRow, MinuteRollup};

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Silent,
    Ok,
    Fail(usize),
}

struct Scenario {
    service: Service,
    month: Month,
    now: Option<Timestamp>,
    first_seen: Option<Option<i64>>,
    agents: Vec<String>,
    /// Per agent, one cell per minute of the input range.
    cells: Vec<Vec<Cell>>,
    slow: Vec<Vec<Option<f64>>>,
    reasons: Vec<String>,
    gaps: Vec<GapRow>,
    shows: Vec<(i64, i64)>,
    from: i64,
}

fn service() -> Service {
    Service {
        name: "web".into(),
        checks: vec!["c1".into()],
        target: Ppm(999_000),
        time_zone: "UTC".into(),
        quorum: Quorum::Majority,
        min_reporters: 1,
        min_coverage: None,
        service_hours: Vec::new(),
        holidays: Vec::new(),
        maintenance: Vec::new(),
        latency: None,
        start: None,
    }
}

fn ts(s: &str) -> Timestamp {
    Timestamp::from_str(s).unwrap_or_else(|e| panic!("bad instant {s:?}: {e}"))
}

fn minute(s: &str) -> i64 {
    calendar::floor_minute(ts(s))
}

fn time(s: &str) -> Time {
    Time::from_str(s).unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
}

fn window(days: &str, start: &str, end: &str) -> WeeklyWindow {
    let days = days
        .split(',')
        .map(|d| match d {
            "Mon" => Weekday::Monday,
            "Tue" => Weekday::Tuesday,
            "Wed" => Weekday::Wednesday,
            "Thu" => Weekday::Thursday,
            "Fri" => Weekday::Friday,
            "Sat" => Weekday::Saturday,
            "Sun" => Weekday::Sunday,
            other => panic!("bad weekday {other:?}"),
        })
        .collect();
    WeeklyWindow {
        days,
        start: time(start),
        end: (end != "24:00").then(|| time(end)),
    }
}

impl Scenario {
    fn parse(text: &str) -> Scenario {
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .collect();
        let mut s = Scenario {
            service: service(),
            month: Month::new(2026, 9).unwrap(),
            now: None,
            first_seen: None,
            agents: Vec::new(),
            cells: Vec::new(),
            slow: Vec::new(),
            reasons: Vec::new(),
            gaps: Vec::new(),
            shows: Vec::new(),
            from: 0,
        };
        for l in &lines {
            s.setting(l);
        }
        let now = s.now();
        let (from, to) = input_range(&s.service, s.month, now).unwrap();
        s.from = from;
        let len = (to - from) as usize;
        for l in &lines {
            s.data(l, len);
        }
        s
    }

    fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(|| {
            Period::month(self.month, &self.service.time_zone)
                .unwrap()
                .end
        })
    }

    fn setting(&mut self, line: &str) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let svc = &mut self.service;
        match w[0] {
            "zone" => svc.time_zone = w[1].into(),
            "month" => {
                let (y, m) = w[1].split_once('-').unwrap();
                self.month = Month::new(y.parse().unwrap(), m.parse().unwrap()).unwrap();
            }
            "now" => self.now = Some(ts(w[1])),
            "target" => svc.target = parse_percent(w[1]).unwrap(),
            "quorum" => {
                svc.quorum = match w[1] {
                    "any" => Quorum::Any,
                    "majority" => Quorum::Majority,
                    "all" => Quorum::All,
                    n => Quorum::AtLeast(n.parse().unwrap()),
                }
            }
            "min_reporters" => svc.min_reporters = w[1].parse().unwrap(),
            "min_coverage" => svc.min_coverage = Some(parse_percent(w[1]).unwrap()),
            "hours" => svc.service_hours.push(window(w[1], w[2], w[3])),
            "holiday" => svc.holidays.push(Date::from_str(w[1]).unwrap()),
            "maint" => svc.maintenance.push(MaintenanceWindow::Once {
                start: ts(w[1]),
                end: ts(w[2]),
                reason: "test".into(),
            }),
            "maint_weekly" => svc.maintenance.push(MaintenanceWindow::Weekly {
                window: window(w[1], w[2], w[3]),
                reason: "test".into(),
            }),
            "start" => svc.start = Some(ts(w[1])),
            "first_seen" => {
                self.first_seen = Some((w[1] != "never").then(|| minute(w[1])));
            }
            "latency_objective" => {
                svc.latency = Some(LatencyObjective {
                    threshold: Duration::from_secs_f64(w[1].parse().unwrap()),
                    target: parse_percent(w[2]).unwrap(),
                })
            }
            _ => {}
        }
    }

    fn agent(&mut self, name: &str, len: usize) -> usize {
        if let Some(i) = self.agents.iter().position(|a| a == name) {
            return i;
        }
        self.agents.push(name.into());
        self.cells.push(vec![Cell::Silent; len]);
        self.slow.push(vec![None; len]);
        self.agents.len() - 1
    }

    fn range(&self, a: &str, b: &str) -> std::ops::Range<usize> {
        let len = self.cells.first().map_or(0, Vec::len) as i64;
        let lo = (minute(a) - self.from).clamp(0, len);
        let hi = (minute(b) - self.from).clamp(0, len);
        lo as usize..hi as usize
    }

    fn reason(&mut self, r: &str) -> usize {
        self.reasons.iter().position(|x| x == r).unwrap_or_else(|| {
            self.reasons.push(r.into());
            self.reasons.len() - 1
        })
    }

    fn set(&mut self, agent: &str, a: &str, b: &str, len: usize, cell: Cell) {
        let i = self.agent(agent, len);
        let r = self.range(a, b);
        self.cells[i][r].fill(cell);
    }

    fn data(&mut self, line: &str, len: usize) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "agents" => {
                for a in &w[1..] {
                    let i = self.agent(a, len);
                    self.cells[i].fill(Cell::Ok);
                }
            }
            "fail" => {
                let reason = self.reason(w.get(4).copied().unwrap_or("timeout"));
                self.set(w[1], w[2], w[3], len, Cell::Fail(reason));
            }
            "silent" => self.set(w[1], w[2], w[3], len, Cell::Silent),
            "ok" => self.set(w[1], w[2], w[3], len, Cell::Ok),
            "gap" => {
                self.agent(w[1], len);
                self.gaps.push(GapRow {
                    agent: w[1].into(),
                    check: "c1".into(),
                    from_minute: minute(w[2]),
                    to_minute: minute(w[3]) - 1,
                    count: 1,
                });
            }
            "slow" => {
                let i = self.agent(w[1], len);
                let r = self.range(w[2], w[3]);
                self.slow[i][r].fill(Some(w[4].parse().unwrap()));
            }
            "row" => {
                let i = self.agent(w[2], len);
                let start = (minute(w[1]) - self.from) as usize;
                let body = line.split('|').nth(1).expect("row needs |...|");
                let fail = self.reason("timeout");
                for (k, c) in body.chars().enumerate() {
                    self.cells[i][start + k] = match c {
                        '.' => Cell::Ok,
                        'x' => Cell::Fail(fail),
                        _ => Cell::Silent,
                    };
                }
            }
            "show" => self.shows.push((minute(w[1]), minute(w[2]))),
            _ => {}
        }
    }

    fn rollups(&self) -> Vec<MinuteRollup> {
        let mut out = Vec::new();
        for (ai, agent) in self.agents.iter().enumerate() {
            for (k, cell) in self.cells[ai].iter().enumerate() {
                let (failures, reason) = match cell {
                    Cell::Silent => continue,
                    Cell::Ok => (0, None),
                    Cell::Fail(r) => (6, Some(self.reasons[*r].clone())),
                };
                // Histograms only where a case looks at latency: they are large.
                let latency = (failures == 0 && self.service.latency.is_some()).then(|| {
                    let secs = self.slow[ai][k].unwrap_or(0.05);
                    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
                    h.record_n((secs * 1e6) as u64, 6).unwrap();
                    h
                });
                out.push(MinuteRollup {
                    check: "c1".into(),
                    agent: agent.clone(),
                    minute: self.from + k as i64,
                    probes: 6,
                    failures,
                    top_reason: reason,
                    latency,
                });
            }
        }
        out
    }

    fn first_seen(&self, rollups: &[MinuteRollup]) -> Option<i64> {
        match self.first_seen {
            Some(f) => f,
            None => rollups.iter().map(|r| r.minute).min().or(Some(self.from)),
        }
    }
}

fn check(input: &str, expect: &str) {
    let s = Scenario::parse(input);
    let rollups = s.rollups();
    let input = ServiceInput {
        service: &s.service,
        maintenance: &[],
        rollups: &rollups,
        gaps: &s.gaps,
        first_seen: s.first_seen(&rollups),
    };
    let report = evaluate(&input, s.month, s.now()).expect("evaluate");
    let mut out = render(&report);
    for &(a, b) in &s.shows {
        out.push_str(&render_states(&s, &input, a, b));
    }
    let want: String = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(out, want, "\n--- got ---\n{out}--- want ---\n{want}");
}

fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), num)
}

fn pct(num: u64, den: u64) -> String {
    availability::floor_percent(num, den, 4).map_or("n/a".into(), |p| format!("{p}%"))
}

fn yes(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

fn render(r: &ServiceReport) -> String {
    let (g, b, u, e) = (
        r.good_minutes,
        r.bad_minutes,
        r.unknown_minutes,
        r.eligible_minutes,
    );
    let mut out = format!(
        "period {} {} minutes={}\n\
         eligible={e} good={g} bad={b} unknown={u}\n\
         availability={} coverage={} bounds={}..{} compliant={}\n\
         budget allowed={} remaining={} ratio={} planning={}\n",
        r.period.month,
        r.period.time_zone,
        r.period.minutes,
        pct(g, g + b),
        pct(g + b, e),
        pct(g, e),
        pct(g + u, e),
        yes(r.compliant),
        num(r.error_budget.allowed_minutes),
        num(r.error_budget.remaining_minutes),
        opt(r.error_budget.remaining_ratio),
        num(r.error_budget.planning_allowed_minutes),
    );
    let br = &r.burn_rates;
    if [br.m5, br.m30, br.h1, br.h6, br.d1, br.d3]
        .iter()
        .any(|x| x.is_some_and(|v| v > 0.0))
    {
        out += &format!(
            "burn 5m={} 30m={} 1h={} 6h={} 1d={} 3d={} page={} ticket={}\n",
            opt(br.m5),
            opt(br.m30),
            opt(br.h1),
            opt(br.h6),
            opt(br.d1),
            opt(br.d3),
            yes(Some(r.burn_alerts.page)),
            yes(Some(r.burn_alerts.ticket)),
        );
    }
    for i in &r.incidents {
        out += &format!(
            "incident {}..{}{}{} down={} agents={} reason={}\n",
            i.start,
            i.end,
            if i.open_at_start {
                " open_at_start"
            } else {
                ""
            },
            if i.open_at_end { " open_at_end" } else { "" },
            i.downtime_minutes,
            i.agents.join(","),
            i.reason.as_deref().unwrap_or("-"),
        );
    }
    if !r.incidents.is_empty() {
        out += &format!(
            "mttr={} mtbf={} mtbsi={} open_incident={}\n",
            opt(r.mttr_minutes),
            opt(r.mtbf_minutes),
            opt(r.mtbsi_minutes),
            yes(Some(r.open_incident)),
        );
    }
    let l = &r.latency;
    if l.threshold_seconds.is_some() {
        out += &format!(
            "latency within={}/{} ratio={} met={} p50={} p95={} p99={}\n",
            l.probes_within,
            l.probes,
            opt(l.objective_ratio),
            yes(l.objective_met),
            opt(l.p50_seconds),
            opt(l.p95_seconds),
            opt(l.p99_seconds),
        );
    }
    out
}

/// The minute states of `[a, b)` as one char each, rebuilt from the engine's own pieces.
fn render_states(s: &Scenario, input: &ServiceInput<'_>, a: i64, b: i64) -> String {
    let cal = Calendar::new(&s.service, &[], input.first_seen).unwrap();
    let mask = cal.eligible_mask(a, b);
    let rule = QuorumRule {
        quorum: s.service.quorum,
        min_reporters: s.service.min_reporters,
    };
    let t = Timeline::build(a, &mask, input.rollups, input.gaps, rule);
    let states: String = t
        .states
        .iter()
        .map(|&st| match st {
            timeline::GOOD => 'g',
            timeline::BAD => 'b',
            timeline::UNKNOWN => '?',
            _ => '-',
        })
        .collect();
    format!("states |{states}|\n")
}

// ------------------------------------------------------------------ worked examples

#[test]
fn worked_example_1_thirty_bad_minutes_in_september() {
    check(
        "zone UTC
         month 2026-09
         target 99.9%
         agents a1
         fail a1 2026-09-03T10:00Z 2026-09-03T10:30Z",
        "period 2026-09 UTC minutes=43200
         eligible=43200 good=43170 bad=30 unknown=0
         availability=99.9305% coverage=100.0000% bounds=99.9305%..99.9305% compliant=yes
         budget allowed=43.2 remaining=13.2 ratio=0.3056 planning=43.2
         incident 2026-09-03T10:00:00Z..2026-09-03T10:30:00Z down=30 agents=a1 reason=timeout
         mttr=30 mtbf=43170 mtbsi=43200 open_incident=no",
    );
}

#[test]
fn worked_example_2_majority_with_a_silent_agent_is_good_any_is_bad() {
    let data = "zone UTC
         month 2026-09
         row 2026-09-03T10:00Z a1 |x|
         row 2026-09-03T10:00Z a2 |.|
         row 2026-09-03T10:00Z a3 |_|
         first_seen 2026-09-03T10:00Z
         show 2026-09-03T10:00Z 2026-09-03T10:01Z";
    let head = "period 2026-09 UTC minutes=43200";
    check(
        &format!("{data}\nquorum majority"),
        &format!(
            "{head}
             eligible=39720 good=1 bad=0 unknown=39719
             availability=100.0000% coverage=0.0025% bounds=0.0025%..100.0000% compliant=yes
             budget allowed=0.001 remaining=0.001 ratio=1 planning=39.72
             states |g|"
        ),
    );
    check(
        &format!("{data}\nquorum any"),
        &format!(
            "{head}
             eligible=39720 good=0 bad=1 unknown=39719
             availability=0.0000% coverage=0.0025% bounds=0.0000%..99.9974% compliant=no
             budget allowed=0.001 remaining=-0.999 ratio=-999 planning=39.72
             incident 2026-09-03T10:00:00Z..2026-09-03T10:01:00Z open_at_end down=1 agents=a1 reason=timeout
             mttr=1 mtbf=0 mtbsi=1 open_incident=no
             states |b|"
        ),
    );
}

#[test]
fn worked_example_3_berlin_october_has_745_hours() {
    check(
        "zone Europe/Berlin
         month 2026-10
         agents a1",
        "period 2026-10 Europe/Berlin minutes=44700
         eligible=44700 good=44700 bad=0 unknown=0
         availability=100.0000% coverage=100.0000% bounds=100.0000%..100.0000% compliant=yes
         budget allowed=44.7 remaining=44.7 ratio=1 planning=44.7",
    );
}

#[test]
fn worked_example_4_maintenance_removes_90_of_120_outage_minutes() {
    // September 2026 has 22 weekdays; 2026-09-08 is a Tuesday.
    check(
        "zone UTC
         month 2026-09
         target 99.5%
         hours Mon,Tue,Wed,Thu,Fri 08:00 18:00
         maint 2026-09-08T10:00Z 2026-09-08T11:30Z
         agents a1
         fail a1 2026-09-08T10:00Z 2026-09-08T12:00Z",
        "period 2026-09 UTC minutes=43200
         eligible=13110 good=13080 bad=30 unknown=0
         availability=99.7711% coverage=100.0000% bounds=99.7711%..99.7711% compliant=yes
         budget allowed=65.55 remaining=35.55 ratio=0.5423 planning=65.55
         incident 2026-09-08T11:30:00Z..2026-09-08T12:00:00Z down=30 agents=a1 reason=timeout
         mttr=30 mtbf=13080 mtbsi=13110 open_incident=no",
    );
}

#[test]
fn worked_example_5_a_good_minute_splits_two_incidents() {
    check(
        "zone UTC
         month 2026-09
         agents a1
         fail a1 2026-09-03T10:00Z 2026-09-03T10:05Z dns
         fail a1 2026-09-03T10:06Z 2026-09-03T10:10Z connect",
        "period 2026-09 UTC minutes=43200
         eligible=43200 good=43191 bad=9 unknown=0
         availability=99.9791% coverage=100.0000% bounds=99.9791%..99.9791% compliant=yes
         budget allowed=43.2 remaining=34.2 ratio=0.7917 planning=43.2
         incident 2026-09-03T10:00:00Z..2026-09-03T10:05:00Z down=5 agents=a1 reason=dns
         incident 2026-09-03T10:06:00Z..2026-09-03T10:10:00Z down=4 agents=a1 reason=connect
         mttr=4.5 mtbf=21595.5 mtbsi=21600 open_incident=no",
    );
}
