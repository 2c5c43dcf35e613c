//! The HTML and Markdown renderers: minijinja templates over the [`MonthlyReport`], with
//! built-in defaults (`templates/report.html`, `templates/report.md`) that a user may
//! replace, and the display helpers every renderer shares.
//!
//! Invariants:
//! - Templates see the report as data plus two inline SVG charts per service and the
//!   content digest; filters only format (n/a for null, fixed decimals), never compute.
//! - HTML output is auto-escaped; the SVG charts are the only values marked safe, and they
//!   escape their own text.

use minijinja::value::{Serde, Value};
use minijinja::{Environment, context};
use serde::Serialize;

use super::model::{AVAILABILITY_DECIMALS, MonthlyReport, ServiceSection, SummaryRow, Verdict};
use super::svg;
use super::terms::check_text;

pub const HTML_TEMPLATE: &str = include_str!("templates/report.html");
pub const MD_TEMPLATE: &str = include_str!("templates/report.md");

#[derive(Debug, thiserror::Error)]
#[error("report template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

/// Template sources; `None` uses the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    pub html: Option<String>,
    pub markdown: Option<String>,
}

impl Templates {
    /// Reads `report.html` and `report.md` from `dir` where present.
    pub fn from_dir(dir: &std::path::Path) -> std::io::Result<Templates> {
        let read = |name: &str| -> std::io::Result<Option<String>> {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        Ok(Templates {
            html: read("report.html")?,
            markdown: read("report.md")?,
        })
    }

    pub fn is_default(&self) -> bool {
        self.html.is_none() && self.markdown.is_none()
    }
}

/// `99.930 %`, or `n/a`.
pub fn fmt_opt_pct(p: Option<&str>) -> String {
    p.map_or_else(|| "n/a".to_string(), |p| format!("{p} %"))
}

/// A number with `decimals` digits, or `n/a`.
pub fn fmt_num(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.decimals$}"))
}

/// A ratio as a percentage rounded down to 3 decimals, or `n/a`.
pub fn fmt_ratio(x: Option<f64>) -> String {
    x.map_or_else(
        || "n/a".to_string(),
        |x| format!("{:.3} %", (x * 100_000.0).floor() / 1_000.0),
    )
}

/// Seconds with millisecond precision, or `n/a`.
pub fn fmt_secs(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3} s"))
}

pub use super::model::local_time as fmt_local;

/// Headers of the summary's verdict table (every format shows these columns).
pub const VERDICT_HEAD: [&str; 6] = [
    "Service",
    "Verdict: decided by",
    "Availability / target",
    "Coverage / minimum",
    "Latency / objective",
    "Capacity objectives",
];

/// Headers of the summary's figures table.
pub const FIGURES_HEAD: [&str; 7] = [
    "Service",
    "Downtime (min)",
    "Allowed (min)",
    "Budget left (min)",
    "Incidents",
    "MTTR (min)",
    "Latency p95",
];

/// The cells of one summary row, worded once for HTML, Markdown and PDF alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryCells {
    pub service: String,
    /// `not determinable: coverage 98.88 % < minimum 99 %`.
    pub verdict: String,
    /// `99.930 % / 99.9 %`.
    pub availability: String,
    /// `98.88 % / 99 %`, or `100.00 % / none`.
    pub coverage: String,
    /// `98.818 % / ≤ 0.5 s for 99 %`, or `none`.
    pub latency: String,
    /// `breached (1 of 2 met)`, or `none`.
    pub capacity: String,
    pub downtime: String,
    pub allowed: String,
    pub budget_left: String,
    pub incidents: String,
    pub mttr: String,
    pub p95: String,
}

impl SummaryCells {
    pub fn of(s: &SummaryRow) -> SummaryCells {
        let in_progress = if s.complete {
            ""
        } else {
            " (month in progress)"
        };
        let latency = match &s.latency_objective {
            None => "none".to_string(),
            Some(o) => format!("{} / {o}", fmt_opt_pct(s.latency_within_percent.as_deref())),
        };
        let capacity = match s.capacity_verdict {
            None => "none".to_string(),
            Some(v) => {
                let met = s
                    .capacity_objectives
                    .iter()
                    .filter(|o| o.ends_with(": met"))
                    .count();
                format!(
                    "{} ({met} of {} met)",
                    v.label(),
                    s.capacity_objectives.len()
                )
            }
        };
        SummaryCells {
            service: format!("{}{in_progress}", s.service),
            verdict: s.verdict_reason.clone(),
            availability: format!(
                "{} / {} %",
                fmt_opt_pct(s.availability_percent.as_deref()),
                s.target_percent
            ),
            coverage: format!(
                "{} / {}",
                fmt_opt_pct(s.coverage_percent.as_deref()),
                s.min_coverage_percent
                    .as_deref()
                    .map_or_else(|| "none".to_string(), |m| format!("{m} %"))
            ),
            latency,
            capacity,
            downtime: s.downtime_minutes.to_string(),
            allowed: fmt_num(Some(s.allowed_downtime_minutes), 1),
            budget_left: fmt_num(Some(s.budget_remaining_minutes), 1),
            incidents: s.incidents.to_string(),
            mttr: fmt_num(s.mttr_minutes, 1),
            p95: fmt_secs(s.latency_p95_seconds),
        }
    }

    /// The verdict table's cells, in [`VERDICT_HEAD`] order.
    pub fn verdict_row(&self) -> Vec<String> {
        vec![
            self.service.clone(),
            self.verdict.clone(),
            self.availability.clone(),
            self.coverage.clone(),
            self.latency.clone(),
            self.capacity.clone(),
        ]
    }

    /// The figures table's cells, in [`FIGURES_HEAD`] order.
    pub fn figures_row(&self) -> Vec<String> {
        vec![
            self.service.clone(),
            self.downtime.clone(),
            self.allowed.clone(),
            self.budget_left.clone(),
            self.incidents.clone(),
            self.mttr.clone(),
            self.p95.clone(),
        ]
    }
}

/// The agreed method of a service as (label, text) rows, worded once for HTML, Markdown
/// and PDF alike; every row is present (`not stated`, `none agreed`) so that a missing
/// term is visible rather than silently left out.
pub fn terms_rows(s: &ServiceSection) -> Vec<(String, String)> {
    let t = &s.terms;
    let stated = |v: &Option<String>| v.clone().unwrap_or_else(|| "not stated".into());
    let list = |v: &[String], none: &str| {
        if v.is_empty() {
            none.to_string()
        } else {
            v.join(", ")
        }
    };
    let checks: Vec<String> = s.checks.iter().map(check_text).collect();
    let start = t.agreement_start.map_or_else(
        || "not set: minutes count from the first measurement or configuration".to_string(),
        |s| fmt_local(s, &t.time_zone),
    );
    let agents = format!(
        "assigned: {}; reported in the month: {}",
        list(&t.assigned_agents, "none (checks defined on the agents)"),
        list(&t.reporting_agents, "none")
    );
    let capacity = if t.capacity_objectives.is_empty() {
        "none agreed".to_string()
    } else {
        format!(
            "{} on {}",
            t.capacity_objectives.join("; "),
            list(&t.capacity_hosts, "the reporting agents' hosts")
        )
    };
    let calendar = format!(
        "{}; service hours {}; holidays {}",
        t.time_zone,
        if t.service_hours.is_empty() {
            "24x7".to_string()
        } else {
            format!("{} (local time)", t.service_hours.join("; "))
        },
        list(&t.holidays, "none")
    );
    let latency = match (t.latency_threshold_seconds, &t.latency_target_percent) {
        (Some(s), Some(p)) => format!("{p} % of probes ≤ {s} s"),
        _ => "none agreed".to_string(),
    };
    vec![
        ("Description".into(), stated(&t.description)),
        ("Customer".into(), stated(&t.customer)),
        ("Agreement".into(), stated(&t.agreement)),
        ("Service owner".into(), stated(&t.owner)),
        ("Agreement start".into(), start),
        ("Checks".into(), checks.join("; ")),
        ("Agents".into(), agents),
        (
            "Quorum".into(),
            format!(
                "{}; a minute with fewer than min_reporters = {} reporting agents is unknown",
                t.quorum, t.min_reporters
            ),
        ),
        (
            "Availability target".into(),
            format!("{} % of known minutes", t.target_percent),
        ),
        (
            "Coverage minimum".into(),
            t.min_coverage_percent.as_ref().map_or_else(
                || "none agreed".to_string(),
                |m| format!("{m} % of eligible minutes known"),
            ),
        ),
        ("Latency objective".into(), latency),
        ("Capacity objectives".into(), capacity),
        ("Calendar".into(), calendar),
    ]
}

/// One incident as every format prints it: local times with their UTC offset, and the
/// downtime with the segments of eligible time it fell in when the incident was merged
/// across ineligible time (`20 min within service hours over 2 segments`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentCells {
    pub start: String,
    pub end: String,
    pub downtime: String,
    pub agents: String,
    pub reason: String,
    /// Each eligible segment in local time, when there is more than one.
    pub segments: Vec<String>,
}

pub fn incident_cells(s: &ServiceSection) -> Vec<IncidentCells> {
    let zone = s.time_zone.as_str();
    let within = if s.excluded.service_hours.is_empty() {
        "eligible time"
    } else {
        "service hours"
    };
    s.incidents
        .iter()
        .map(|i| {
            let n = i.eligible_segments.len();
            let segments: Vec<String> = if n > 1 {
                i.eligible_segments
                    .iter()
                    .map(|seg| local_interval(seg, zone))
                    .collect()
            } else {
                Vec::new()
            };
            IncidentCells {
                start: format!(
                    "{}{}",
                    fmt_local(i.start, zone),
                    if i.open_at_start {
                        " (open at start)"
                    } else {
                        ""
                    }
                ),
                end: format!(
                    "{}{}",
                    fmt_local(i.end, zone),
                    if i.open_at_end { " (open at end)" } else { "" }
                ),
                downtime: if n > 1 {
                    format!(
                        "{} min within {within} over {n} segments",
                        i.downtime_minutes
                    )
                } else {
                    format!("{} min", i.downtime_minutes)
                },
                agents: i.agents.join(", "),
                reason: reason_text(i.reason.as_deref(), i.reason_detail.as_deref()),
                segments,
            }
        })
        .collect()
}

/// The reason code with the probes' own words beside it: `status (status 503)`; the code
/// alone when the detail says nothing more than it.
pub fn reason_text(code: Option<&str>, detail: Option<&str>) -> String {
    match (code, detail) {
        (None, None) => "n/a".into(),
        (Some(c), None) => c.to_string(),
        (None, Some(d)) => d.to_string(),
        (Some(c), Some(d)) if c == d => c.to_string(),
        (Some(c), Some(d)) => format!("{c} ({d})"),
    }
}

/// `START/END` (RFC 3339) as local `START – END`.
fn local_interval(seg: &str, zone: &str) -> String {
    let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
    match seg.split_once('/').map(|(a, b)| (parse(a), parse(b))) {
        Some((Some(a), Some(b))) => super::model::local_span(a, b, zone),
        _ => seg.to_string(),
    }
}

/// One unknown interval as every format prints it (local times with their UTC offset).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownCells {
    pub start: String,
    pub end: String,
    pub minutes: String,
    pub silent_agents: String,
}

pub fn unknown_cells(s: &ServiceSection) -> Vec<UnknownCells> {
    s.unknown
        .iter()
        .map(|u| UnknownCells {
            start: fmt_local(u.start, &s.time_zone),
            end: fmt_local(u.end, &s.time_zone),
            minutes: u.minutes.to_string(),
            silent_agents: if u.silent_agents.is_empty() {
                "n/a".into()
            } else {
                u.silent_agents.join(", ")
            },
        })
        .collect()
}

/// One report note as every format prints it (local time with its UTC offset); `addendum`
/// is set for a note written after the report's generation instant — on an archived month,
/// one added after the report was archived (the archive itself is never rewritten).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoteCells {
    pub date: String,
    pub by: String,
    pub cause: String,
    pub action: String,
    pub owner: String,
    pub due: String,
    pub addendum: Option<String>,
}

/// The words that mark a note written after the report.
pub const NOTE_ADDENDUM: &str = "added after the report was archived";

pub fn note_cells(s: &ServiceSection, generated_at: jiff::Timestamp) -> Vec<NoteCells> {
    s.notes
        .iter()
        .map(|n| NoteCells {
            date: super::model::local_time(n.written_at, &s.time_zone),
            by: n.written_by.clone(),
            cause: n.cause.clone(),
            action: n.action.clone(),
            owner: n.owner.clone().unwrap_or_else(|| "n/a".into()),
            due: n.due.clone().unwrap_or_else(|| "n/a".into()),
            addendum: (n.written_at > generated_at).then(|| NOTE_ADDENDUM.to_string()),
        })
        .collect()
}

/// The definition history of a service as sentences, local times with their offset.
pub fn definition_lines(s: &ServiceSection) -> Vec<String> {
    if s.definitions.is_empty() {
        return vec!["No definition history was recorded for this period (a running collector records each distinct definition at start and at every configuration reload).".into()];
    }
    s.definitions
        .iter()
        .map(|d| {
            let when = super::model::local_time(d.from, &s.time_zone);
            let short: String = d.sha256.chars().take(16).collect();
            let what = if d.before_period {
                "in force at the start of the period".to_string()
            } else if d.changes.is_empty() {
                "first recorded".to_string()
            } else {
                format!("changed {}", d.changes.join("; "))
            };
            format!(
                "From {when} (recorded at {}): definition {short}…, {what}.",
                cause_text(&d.cause)
            )
        })
        .collect()
}

fn cause_text(cause: &str) -> &'static str {
    match cause {
        "start" => "the collector's start",
        "reload" => "a configuration reload",
        _ => "an unknown event",
    }
}

/// The measurement redundancy of a service in sentences, local times with their offset.
pub fn redundancy_lines(s: &ServiceSection) -> Vec<String> {
    let r = &s.redundancy;
    let zone = s.time_zone.as_str();
    let mut out = vec![format!(
        "Expected reporting agents per minute: {}. Eligible minutes with fewer (but at least one): {}.",
        r.expected_agents, r.reduced_minutes
    )];
    if let Some(run) = &r.longest_reduced {
        out.push(format!(
            "Longest such stretch: {} ({} min).",
            local_interval(run, zone),
            r.longest_reduced_minutes
        ));
    }
    if r.outvoted_failure_minutes == 0 {
        out.push("No failure was outvoted by the quorum.".into());
    } else {
        let listed: Vec<String> = r
            .outvoted_failures
            .iter()
            .map(|i| local_interval(i, zone))
            .collect();
        out.push(format!(
            "Minutes judged good although an agent failed (seen by fewer agents than the quorum needs; not counted as bad): {}: {}.",
            r.outvoted_failure_minutes,
            listed.join("; ")
        ));
    }
    out
}

/// The evidence statement as HTML, Markdown and PDF print it: one sentence, then one row
/// per agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceCells {
    pub line: String,
    pub agents: Vec<EvidenceAgentCells>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceAgentCells {
    pub agent: String,
    /// `N of M (P %)`.
    pub signed: String,
    /// The chain state in words ([`super::evidence::chain_words`]).
    pub chain: String,
    /// Batches, missing seqs, new chains, broken links and dropped measurements.
    pub details: String,
}

pub fn evidence_cells(s: &ServiceSection) -> EvidenceCells {
    let e = &s.evidence;
    EvidenceCells {
        line: super::evidence::summary_line(e),
        agents: e
            .agents
            .iter()
            .map(|a| EvidenceAgentCells {
                agent: a.agent.clone(),
                signed: format!(
                    "{} of {} ({})",
                    a.signed_measurements,
                    a.measurements,
                    fmt_opt_pct(a.signed_percent.as_deref())
                ),
                chain: super::evidence::chain_words(&a.chain).to_string(),
                details: format!(
                    "{} signed batches; {} seq gaps; {} new chains; {} broken links; {} dropped measurements declared",
                    a.batches, a.seq_gaps, a.new_chains, a.broken_links, a.dropped_measurements
                ),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct Charts {
    daily: Value,
    timeline: Value,
    trend: Value,
}

fn environment<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.add_filter("pct", |p: Option<String>| fmt_opt_pct(p.as_deref()));
    env.add_filter("num", |x: Option<f64>, d: Option<usize>| {
        fmt_num(x, d.unwrap_or(1))
    });
    env.add_filter("ratio", fmt_ratio);
    env.add_filter("secs", fmt_secs);
    env.add_filter("na", |v: Value| {
        if v.is_none() || v.is_undefined() || v.as_str() == Some("") {
            Value::from("n/a")
        } else {
            v
        }
    });
    env.add_filter("verdict", |v: Option<String>| match v.as_deref() {
        None => "n/a",
        Some("met") => Verdict::Met.label(),
        Some("breached") => Verdict::Breached.label(),
        Some(_) => Verdict::NotDeterminable.label(),
    });
    // Markdown table cells: a `|` would end the cell, a newline the row.
    env.add_filter("cell", |s: String| s.replace('|', "\\|").replace('\n', " "));
    env
}

fn charts(r: &MonthlyReport) -> Vec<Charts> {
    r.services
        .iter()
        .zip(&r.summary)
        .map(|(s, sum)| Charts {
            daily: Value::from_safe_string(svg::daily_chart(
                &s.daily,
                f64::from(sum.target_ppm) / 1e6,
            )),
            trend: Value::from_safe_string(svg::trend_chart(
                &s.trend,
                f64::from(sum.target_ppm) / 1e6,
            )),
            timeline: Value::from_safe_string(svg::incident_timeline(
                (sum.period_start, sum.period_end),
                &s.time_zone,
                &s.daily,
                &s.incidents,
            )),
        })
        .collect()
}

fn render(
    name: &str,
    source: &str,
    r: &MonthlyReport,
    (digest, signed): (&str, &str),
) -> Result<String, TemplateError> {
    let err = |e: minijinja::Error| TemplateError {
        name: name.to_string(),
        detail: format!("{e:#}"),
    };
    let mut env = environment();
    env.add_template(name, source).map_err(err)?;
    let tmpl = env.get_template(name).map_err(err)?;
    tmpl.render(context! {
        r => Value::from(Serde(r)),
        charts => Value::from(Serde(charts(r))),
        cells => Value::from(Serde(r.summary.iter().map(SummaryCells::of).collect::<Vec<_>>())),
        terms => Value::from(Serde(r.services.iter().map(terms_rows).collect::<Vec<_>>())),
        incidents => Value::from(Serde(r.services.iter().map(incident_cells).collect::<Vec<_>>())),
        unknown => Value::from(Serde(r.services.iter().map(unknown_cells).collect::<Vec<_>>())),
        redundancy => Value::from(Serde(r.services.iter().map(redundancy_lines).collect::<Vec<_>>())),
        notes => Value::from(Serde(r.services.iter().map(|s| note_cells(s, r.cover.generated_at)).collect::<Vec<_>>())),
        definitions => Value::from(Serde(r.services.iter().map(definition_lines).collect::<Vec<_>>())),
        evidence => Value::from(Serde(r.services.iter().map(evidence_cells).collect::<Vec<_>>())),
        content_sha256 => digest,
        signed => signed,
        decimals => AVAILABILITY_DECIMALS,
    })
    .map_err(err)
}

/// The self-contained HTML document (no trailer yet); `signed` is the cover's signature
/// statement ([`super::integrity::signature_statement`]).
pub fn html(
    r: &MonthlyReport,
    (digest, signed): (&str, &str),
    t: &Templates,
) -> Result<String, TemplateError> {
    render(
        "report.html",
        t.html.as_deref().unwrap_or(HTML_TEMPLATE),
        r,
        (digest, signed),
    )
}

/// The Markdown document (no trailer yet).
pub fn markdown(
    r: &MonthlyReport,
    (digest, signed): (&str, &str),
    t: &Templates,
) -> Result<String, TemplateError> {
    render(
        "report.md",
        t.markdown.as_deref().unwrap_or(MD_TEMPLATE),
        r,
        (digest, signed),
    )
}
