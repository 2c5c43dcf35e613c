//! The service report: every SLA figure of one service for one month, as a plain value.
//! Metrics render this value and the report room (`report::model` in this crate) converts it into
//! the public JSON; neither recomputes it.
//!
//! Invariants:
//! - This is the engine's vocabulary, not a public format: the JSON field names live in
//!   `report::model`, so a change here is not an API change.
//! - `None` means "not determinable / N/A", never zero.
//! - It serializes (serde) only so that the collector can keep its last published figures
//!   across a restart (`figures::published`); that form is not a public format either.

use jiff::Timestamp;

use super::availability::{ExactRatios, floor_percent};
use super::budget::ErrorBudget;
use super::burn::{BurnAlerts, BurnRates};
use super::calendar::EligibleSince;
use super::capacity_objectives::ServiceCapacity;
use super::incidents::Incident;
use super::latency::LatencyFigures;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeriodReport {
    /// `YYYY-MM`.
    pub month: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub time_zone: String,
    /// Minutes in the whole period (44,700 for Europe/Berlin in October 2026).
    pub minutes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bounds {
    /// `good / eligible`: unknown minutes counted as bad.
    pub pessimistic: Option<f64>,
    /// `(good + unknown) / eligible`: unknown minutes counted as good.
    pub optimistic: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceReport {
    pub service: String,
    pub period: PeriodReport,
    /// The instant the figures describe: `min(now, period end)`.
    pub as_of: Timestamp,
    /// True once `as_of` is the period end (the month is closed).
    pub complete: bool,
    /// Where eligibility begins and by which rule; `None`: no minute is eligible (no
    /// `start`, never configured in this store, never measured).
    pub eligible_since: Option<EligibleSince>,
    /// Target as a ratio (0.999) and exactly in parts per million.
    pub target: f64,
    pub target_ppm: u32,
    pub min_coverage: Option<f64>,
    pub eligible_minutes: u64,
    pub good_minutes: u64,
    pub bad_minutes: u64,
    pub unknown_minutes: u64,
    /// Availability, coverage and bounds as exact fractions of the counts above.
    pub exact: ExactRatios,
    /// `good / known`; null when known = 0.
    pub availability: Option<f64>,
    /// `known / eligible`; null when eligible = 0.
    pub coverage: Option<f64>,
    pub bounds: Bounds,
    /// Null when not determinable: known = 0 or coverage below `min_coverage`.
    pub compliant: Option<bool>,
    pub error_budget: ErrorBudget,
    pub burn_rates: BurnRates,
    pub burn_alerts: BurnAlerts,
    pub latency: LatencyFigures,
    pub incidents: Vec<Incident>,
    pub incident_count: u64,
    /// An incident is still running at `as_of` and the month is not closed.
    pub open_incident: bool,
    pub mttr_minutes: Option<f64>,
    pub mtbf_minutes: Option<f64>,
    pub mtbsi_minutes: Option<f64>,
    /// The service's capacity objectives and their monthly verdicts.
    pub capacity: ServiceCapacity,
}

impl ServiceReport {
    /// The same report as of `now`: valid only when `now` falls in the as-of minute the
    /// report was computed for and none of its inputs changed (every figure is a function
    /// of the as-of minute; only the instant shown moves within it).
    #[must_use]
    pub fn restamped(mut self, now: Timestamp) -> ServiceReport {
        self.as_of = now.clamp(self.period.start, self.period.end);
        self
    }

    pub fn known_minutes(&self) -> u64 {
        self.good_minutes + self.bad_minutes
    }

    /// Availability as a percentage rounded down to `decimals`, for display beside the
    /// target; `None` when N/A.
    pub fn availability_percent_floor(&self, decimals: u32) -> Option<String> {
        floor_percent(self.good_minutes, self.known_minutes(), decimals)
    }
}

/// The `&'static str` words of a report (capacity objectives' statistic, where their hosts
/// came from) read back: one of the words the engine writes, anything else refused.
pub(crate) fn known_str<'de, D>(d: D) -> Result<&'static str, D::Error>
where
    D: serde::Deserializer<'de>,
{
    const KNOWN: [&str; 7] = [
        "checks",
        "config",
        "p95",
        "max",
        "average",
        "minutes_above",
        "days_to_threshold",
    ];
    let word = <String as serde::Deserialize>::deserialize(d)?;
    KNOWN
        .iter()
        .copied()
        .find(|k| *k == word)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown word {word:?}")))
}
