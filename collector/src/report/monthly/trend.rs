//! The trend of each service over the twelve months before the report's month:
//! availability, verdict, downtime and error budget per month — from the archived report
//! when that month is archived (the record), else computed by the engine.
//!
//! Invariants:
//! - Months that end before the agreement's `start`, and computed months without a single
//!   eligible minute (the service did not exist yet), are not listed: a trend must not show
//!   months the agreement did not cover as "not determinable".
//! - Rows are oldest first; the source of each (`archive` or `computed`) is stated.

use attest_config::Service;

use super::model::{AVAILABILITY_DECIMALS, MonthlyReport, SummaryRow, TrendRow};
use super::verdict;
use crate::reject::Rejection;
use crate::sla::{Month, Period, ServiceReport};

/// How many months before the report's month the trend covers.
pub const MONTHS: usize = 12;

/// The months before `month` the trend of `svc` may list, oldest first: at most
/// [`MONTHS`], none that ends at or before the agreement's start.
pub fn months_before(svc: &Service, month: Month) -> Vec<Month> {
    let mut out = Vec::new();
    let mut m = month.previous();
    for _ in 0..MONTHS {
        if !covered(svc, m) {
            break;
        }
        out.push(m);
        m = m.previous();
    }
    out.reverse();
    out
}

/// Whether the agreement of `svc` covers any of `month` (always, without a `start`).
pub fn covered(svc: &Service, month: Month) -> bool {
    let Some(start) = svc.start else {
        return true;
    };
    Period::month(month, &svc.time_zone).is_ok_and(|p| p.end > start)
}

/// Whether any agreement covers `month` (always with no service): what `/reports/` lists.
pub fn any_covered(services: &[Service], month: Month) -> bool {
    services.is_empty() || services.iter().any(|s| covered(s, month))
}

/// A computed month's row; `None` when no minute of it was eligible.
pub fn computed(svc: &Service, month: Month, r: &ServiceReport) -> Option<TrendRow> {
    if r.eligible_minutes == 0 {
        return None;
    }
    let (overall, _, _) = verdict::overall(&verdict::objectives(svc, r));
    Some(TrendRow {
        month: month.to_string(),
        availability: r.availability,
        availability_percent: r.availability_percent_floor(AVAILABILITY_DECIMALS),
        verdict: overall,
        downtime_minutes: r.bad_minutes,
        budget_remaining_minutes: r.error_budget.remaining_minutes,
        source: "computed".into(),
    })
}

/// An archived month's row, from its summary line.
pub fn archived(month: Month, s: &SummaryRow) -> TrendRow {
    TrendRow {
        month: month.to_string(),
        availability: s.availability,
        availability_percent: s.availability_percent.clone(),
        verdict: s.verdict,
        downtime_minutes: s.downtime_minutes,
        budget_remaining_minutes: s.budget_remaining_minutes,
        source: "archive".into(),
    }
}

/// Fills each service's trend of `report` (for `month`); `row` gives one service's row of
/// one earlier month (archive or engine), `None` to leave the month out.
pub fn fill(
    report: &mut MonthlyReport,
    services: &[&Service],
    month: Month,
    mut row: impl FnMut(&Service, Month) -> Result<Option<TrendRow>, Rejection>,
) -> Result<(), Rejection> {
    for section in &mut report.services {
        let Some(svc) = services.iter().find(|s| s.name == section.service) else {
            continue;
        };
        let mut rows = Vec::new();
        for m in months_before(svc, month) {
            rows.extend(row(svc, m)?);
        }
        section.trend = rows;
    }
    Ok(())
}
