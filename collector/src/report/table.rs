//! The terminal table of `attest-collector sla` (the default `--format table`): one line
//! of headline figures per service, N/A spelled `n/a`, availability rounded down so a
//! displayed value never looks better than the figure; then, when any service has capacity
//! objectives, one line per objective.

use std::fmt::Write as _;

use attest_config::units::Ppm;

use super::model::{Forecast, ObjectiveResult, ServiceReport, Verdict};
use crate::sla::availability::floor_percent;

/// A fixed-width table of the headline figures, with a header line, followed by the
/// capacity objectives (if any).
pub fn render(reports: &[ServiceReport]) -> String {
    let mut out = line([
        "service",
        "month",
        "target",
        "availability",
        "compliant",
        "eligible",
        "good",
        "bad",
        "unknown",
        "coverage",
        "budget",
        "capacity",
    ]);
    for r in reports {
        out.push_str(&line(row(r).each_ref().map(String::as_str)));
    }
    out.push_str(&capacity_table(reports));
    out
}

fn row(r: &ServiceReport) -> [String; 12] {
    let opt = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |x| format!("{x:.d$}"));
    let compliant = match r.compliant {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    };
    let availability = floor_percent(r.good_minutes, r.good_minutes + r.bad_minutes, 4)
        .map_or("n/a".into(), |p| format!("{p}%"));
    [
        r.service.clone(),
        r.period.month.clone(),
        Ppm(r.target_ppm).to_string(),
        availability,
        compliant.to_string(),
        r.eligible_minutes.to_string(),
        r.good_minutes.to_string(),
        r.bad_minutes.to_string(),
        r.unknown_minutes.to_string(),
        opt(r.coverage.map(|c| c * 100.0), 2),
        opt(r.error_budget.remaining_ratio.map(|c| c * 100.0), 1),
        r.capacity.verdict.map_or("n/a", verdict_word).to_string(),
    ]
}

fn line(c: [&str; 12]) -> String {
    format!(
        "{:<24} {:<8} {:>9} {:>13} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>16}\n",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]
    )
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Breached => "BREACHED",
        Verdict::NotDeterminable => "not determinable",
    }
}

/// One line per capacity objective (none when no service has one): verdict, the
/// constraint's value against the limit, and the host/resource that decides it.
fn capacity_table(reports: &[ServiceReport]) -> String {
    let rows: Vec<(&ServiceReport, &ObjectiveResult)> = reports
        .iter()
        .flat_map(|r| r.capacity.objectives.iter().map(move |o| (r, o)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{:<24} {:<32} {:>16} {:>12} {:>12}  {}\n",
        "service", "capacity objective", "verdict", "value", "limit", "constraint"
    );
    for (r, o) in rows {
        let (value, limit, by) = objective_cells(o);
        let _ = writeln!(
            out,
            "{:<24} {:<32} {:>16} {:>12} {:>12}  {}",
            r.service,
            o.name,
            verdict_word(o.verdict),
            value,
            limit,
            by
        );
    }
    out
}

/// The value, limit and constraint cells of one objective, in the limit's unit.
fn objective_cells(o: &ObjectiveResult) -> (String, String, String) {
    let shown = |v: f64| match o.statistic {
        "minutes_above" => format!("{v:.0} min"),
        "days_to_threshold" => format!("{v:.1} d"),
        _ => format!("{:.2}%", v * 100.0),
    };
    let value = match (o.value, o.forecast) {
        (Some(v), _) => shown(v),
        (None, Some(Forecast::NotWithinHorizon)) => "beyond horizon".into(),
        _ => "n/a".into(),
    };
    let limit = match o.statistic {
        "days_to_threshold" => format!(">= {}", shown(o.limit)),
        _ => format!("<= {}", shown(o.limit)),
    };
    let by = o
        .constraint
        .as_ref()
        .map_or("-".into(), |c| match c.resource.as_str() {
            "" => c.host.clone(),
            res => format!("{} {res}", c.host),
        });
    (value, limit, by)
}
