//! Reports: the public, rendered form of the engine's results. `model` holds the report
//! types (built from `sla` results by conversion, never recomputed), `json` and `table` the
//! formats `/api/v1/sla` and `attest-collector sla` print, `query` the question asked.
//! `monthly` is the monthly availability report (HTML, PDF, CSV, JSON, Markdown, bundle).
//!
//! Invariants:
//! - Every number in a report comes from `figures` (the engine); a renderer formats only.
//! - The engine's types are not the public format: a change there reaches a report only
//!   through `model`'s conversions.

pub mod json;
pub mod model;
pub mod monthly;
mod query;
pub mod table;

pub use query::{MonthQuery, parse_month};

use crate::clock::Clock;
use crate::figures::Figures;
use crate::reject::Rejection;

/// The reports answering `q`, as of `q.at` or else the clock's now.
pub fn month_reports(
    figures: &Figures,
    q: &MonthQuery,
    clock: &dyn Clock,
) -> Result<Vec<model::ServiceReport>, Rejection> {
    let now = q.at.unwrap_or_else(|| clock.now_utc());
    let reports = figures.month_reports(q.month, q.service.as_deref(), now)?;
    Ok(reports.iter().map(model::ServiceReport::from).collect())
}
