//! CSV files of a monthly report (RFC 4180: comma separated, CRLF line ends, fields with a
//! comma, quote, CR or LF quoted, quotes doubled): `services.csv` (the summary), `daily.csv`,
//! `incidents.csv`, `unknown.csv`, `maintenance.csv` (excluded maintenance windows),
//! `terms.csv` (the agreed method per service), `checks.csv` (the checks per service),
//! `trend.csv` (the months before, per service), `notes.csv` (comments and actions per
//! service), `evidence.csv` and `evidence_agents.csv` (the evidence statement per service
//! and per service and agent), and
//! the per-service minute table of the bundle.
//!
//! Invariants:
//! - A cell is the JSON value's text: strings as they are, numbers in serde_json's
//!   shortest round-trip form (so parsing a cell gives the JSON's number back exactly),
//!   booleans `true`/`false`, null empty, lists joined with `;`.
//! - Column lists name every field of the row type (a test pins it), in the JSON's order.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::model::MonthlyReport;
use crate::sla::detail::{MinuteStates, minute_ts};

pub const SERVICES: &[&str] = &[
    "service",
    "time_zone",
    "period_start",
    "period_end",
    "complete",
    "target_ppm",
    "target_percent",
    "eligible_minutes",
    "good_minutes",
    "bad_minutes",
    "unknown_minutes",
    "availability",
    "availability_percent",
    "verdict",
    "verdict_decided_by",
    "verdict_reason",
    "availability_verdict",
    "downtime_minutes",
    "allowed_downtime_minutes",
    "budget_remaining_minutes",
    "budget_remaining_ratio",
    "coverage",
    "coverage_percent",
    "min_coverage_percent",
    "coverage_verdict",
    "incidents",
    "mttr_minutes",
    "mtbf_minutes",
    "mtbsi_minutes",
    "latency_objective",
    "latency_objective_met",
    "latency_within_percent",
    "latency_verdict",
    "latency_p95_seconds",
    "capacity_verdict",
    "capacity_objectives",
];
pub const DAILY: &[&str] = &[
    "date",
    "start",
    "end",
    "eligible_minutes",
    "good_minutes",
    "bad_minutes",
    "unknown_minutes",
    "availability",
    "availability_percent",
];
pub const INCIDENTS: &[&str] = &[
    "start",
    "end",
    "open_at_start",
    "open_at_end",
    "downtime_minutes",
    "agents",
    "reason",
    "reason_detail",
    "eligible_segments",
];
pub const UNKNOWN: &[&str] = &["start", "end", "minutes", "silent_agents"];
pub const TERMS: &[&str] = &[
    "description",
    "owner",
    "customer",
    "agreement",
    "time_zone",
    "target_percent",
    "quorum",
    "min_reporters",
    "min_coverage_percent",
    "latency_threshold_seconds",
    "latency_target_percent",
    "agreement_start",
    "service_hours",
    "holidays",
    "assigned_agents",
    "reporting_agents",
    "capacity_hosts",
    "capacity_objectives",
];
pub const CHECKS: &[&str] = &[
    "id",
    "kind",
    "target",
    "interval_seconds",
    "timeout_seconds",
    "defined_in",
    "assigned_agents",
];
/// `notes.csv`: the fields of `NoteItem`.
pub const DEFINITIONS: &[&str] = &["from", "sha256", "cause", "changes", "before_period"];
pub const NOTES: &[&str] = &[
    "written_at",
    "written_by",
    "cause",
    "action",
    "owner",
    "due",
];

/// `evidence.csv`: per service, the signed share (`services[].evidence`).
pub const EVIDENCE: &[&str] = &[
    "measurements",
    "signed_measurements",
    "signed_ratio",
    "signed_percent",
];
/// `evidence_agents.csv`: per service and agent, the fields of `AgentEvidence`.
pub const EVIDENCE_AGENTS: &[&str] = &[
    "agent",
    "measurements",
    "signed_measurements",
    "signed_percent",
    "chain",
    "batches",
    "seq_gaps",
    "new_chains",
    "broken_links",
    "dropped_measurements",
];

pub const TREND: &[&str] = &[
    "month",
    "availability",
    "availability_percent",
    "verdict",
    "downtime_minutes",
    "budget_remaining_minutes",
    "source",
];
pub const MAINTENANCE: &[&str] = &[
    "kind",
    "when",
    "reason",
    "source",
    "registered_at",
    "registered_by",
    "reference",
    "registered_after_start",
];

/// A field, quoted when RFC 4180 requires it.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The cell text of a JSON value.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

fn line(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let cells: Vec<String> = cells.into_iter().map(|c| field(&c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

/// A table of `rows` (each with the owning service when `service` is given) over `cols`.
fn table<T: Serialize>(cols: &[&str], rows: &[(Option<&str>, &T)]) -> String {
    let mut out = String::new();
    let with_service = rows.iter().any(|(s, _)| s.is_some());
    let head = with_service.then(|| "service".to_string());
    line(
        &mut out,
        head.into_iter()
            .chain(cols.iter().map(std::string::ToString::to_string)),
    );
    for (svc, row) in rows {
        let v = serde_json::to_value(row).unwrap_or(Value::Null);
        let first = svc.map(str::to_string);
        line(
            &mut out,
            first
                .into_iter()
                .chain(cols.iter().map(|c| v.get(*c).map(cell).unwrap_or_default())),
        );
    }
    out
}

pub fn services(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r.summary.iter().map(|s| (None, s)).collect();
    table(SERVICES, &rows)
}

pub fn daily(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| s.daily.iter().map(move |d| (Some(s.service.as_str()), d)))
        .collect();
    with_header(DAILY, table(DAILY, &rows))
}

pub fn incidents(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| {
            s.incidents
                .iter()
                .map(move |i| (Some(s.service.as_str()), i))
        })
        .collect();
    with_header(INCIDENTS, table(INCIDENTS, &rows))
}

pub fn unknown(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| s.unknown.iter().map(move |u| (Some(s.service.as_str()), u)))
        .collect();
    with_header(UNKNOWN, table(UNKNOWN, &rows))
}

pub fn maintenance(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| {
            s.excluded
                .maintenance
                .iter()
                .map(move |m| (Some(s.service.as_str()), m))
        })
        .collect();
    with_header(MAINTENANCE, table(MAINTENANCE, &rows))
}

/// The agreed method: one row per service.
pub fn terms(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .map(|s| (Some(s.service.as_str()), &s.terms))
        .collect();
    with_header(TERMS, table(TERMS, &rows))
}

/// The checks that measure each service: one row per service and check.
pub fn checks(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| s.checks.iter().map(move |c| (Some(s.service.as_str()), c)))
        .collect();
    with_header(CHECKS, table(CHECKS, &rows))
}

/// Report notes: one row per service and note, in the order written.
pub fn notes(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| s.notes.iter().map(move |n| (Some(s.service.as_str()), n)))
        .collect();
    with_header(NOTES, table(NOTES, &rows))
}

/// The definition history: one row per service and definition in force.
pub fn definitions(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| {
            s.definitions
                .iter()
                .map(move |d| (Some(s.service.as_str()), d))
        })
        .collect();
    with_header(DEFINITIONS, table(DEFINITIONS, &rows))
}

/// The evidence statement: one row per service.
pub fn evidence(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .map(|s| (Some(s.service.as_str()), &s.evidence))
        .collect();
    with_header(EVIDENCE, table(EVIDENCE, &rows))
}

/// The evidence statement's agents: one row per service and agent.
pub fn evidence_agents(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| {
            s.evidence
                .agents
                .iter()
                .map(move |a| (Some(s.service.as_str()), a))
        })
        .collect();
    with_header(EVIDENCE_AGENTS, table(EVIDENCE_AGENTS, &rows))
}

/// The months before: one row per service and earlier month.
pub fn trend(r: &MonthlyReport) -> String {
    let rows: Vec<_> = r
        .services
        .iter()
        .flat_map(|s| s.trend.iter().map(move |t| (Some(s.service.as_str()), t)))
        .collect();
    with_header(TREND, table(TREND, &rows))
}

/// An empty table still gets its header with the service column.
fn with_header(cols: &[&str], t: String) -> String {
    if t.lines().count() > 1 {
        return t;
    }
    let mut out = String::new();
    line(
        &mut out,
        std::iter::once("service".to_string())
            .chain(cols.iter().map(std::string::ToString::to_string)),
    );
    out
}

/// The minute table of one service: one row per minute of the period.
pub fn minutes(m: &MinuteStates) -> String {
    let mut out = String::with_capacity(m.states.len() * 40);
    out.push_str("minute_start,state,agents_reporting,agents_failing\r\n");
    for (i, &s) in m.states.iter().enumerate() {
        let _ = write!(
            out,
            "{},{},{},{}\r\n",
            minute_ts(m.from + i as i64),
            MinuteStates::state_name(s),
            m.reporting[i],
            m.failing[i]
        );
    }
    out
}

/// Parses RFC 4180 text into rows of fields (for tests and `report verify`).
pub fn parse(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut f = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    f.push('"');
                }
                '"' => quoted = false,
                c => f.push(c),
            }
            continue;
        }
        match c {
            '"' if f.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut f)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut f));
                rows.push(std::mem::take(&mut row));
            }
            '\r' | '\n' => return Err(format!("bare line break in row {}", rows.len() + 1)),
            c => f.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    if !f.is_empty() || !row.is_empty() {
        row.push(f);
        rows.push(row);
    }
    Ok(rows)
}
