//! The terminal table of `attest-collector sla` (the default `--format table`): one line
//! of headline figures per service, N/A spelled `n/a`, availability rounded down so a
//! displayed value never looks better than the figure.

use attest_config::units::Ppm;

use super::model::ServiceReport;
use crate::sla::availability::floor_percent;

/// A fixed-width table of the headline figures, with a header line.
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
    ]);
    for r in reports {
        out.push_str(&line(row(r).each_ref().map(String::as_str)));
    }
    out
}

fn row(r: &ServiceReport) -> [String; 11] {
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
    ]
}

fn line(c: [&str; 11]) -> String {
    format!(
        "{:<24} {:<8} {:>9} {:>13} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}\n",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
    )
}
