//! The monthly report document: every value the HTML, PDF, CSV, Markdown and JSON renderers
//! show, built once from the engine's results (`sla::ServiceReport`, `sla::MonthDetail`)
//! and the configuration, never recomputed.
//!
//! Invariants:
//! - Building formats numbers for display (percentages rounded *down*, so a breach never
//!   shows as a pass) but derives no figure: every count and ratio is the engine's.
//! - The value is plain data with stable serde names ([`SCHEMA`]): the JSON format is this
//!   value, and every other format can be rendered again from the JSON alone (which is how
//!   `report verify` shows what changed in a bundle).
//! - No clock: the generation instant is an input ([`Meta::generated_at`]).

use attest_config::{MaintenanceWindow, Service};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use super::redundancy::Redundancy;
use super::verdict;
use crate::sla::detail::{MinuteStates, minute_ts};
use crate::sla::timeline::INELIGIBLE;
use crate::sla::{self, CapacityFigure, MonthDetail, ServiceReport};

/// The JSON schema name and version; bump the version on any incompatible change.
pub const SCHEMA: &str = "attest.monthly-report/v2";

/// Decimals of the availability percentages shown beside targets.
pub const AVAILABILITY_DECIMALS: u32 = 3;

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReport {
    pub schema: String,
    pub cover: Cover,
    pub summary: Vec<SummaryRow>,
    pub services: Vec<ServiceSection>,
    pub method: Vec<MethodItem>,
    /// Later differences from an archived month (late data after close), dated.
    pub addenda: Vec<Addendum>,
    /// Who prepared, approved and receives the report (`[report]`); rendered with empty
    /// signature and date lines, since a signature is given on paper or in a document
    /// system, not by the collector.
    #[serde(default)]
    pub sign_off: SignOff,
}

impl MonthlyReport {
    /// The part of this (whole-month) report about one service: its summary row, section,
    /// party and addenda, under a cover naming it. `None` when the report has no such
    /// service. How an archived month serves a service's page without running the engine:
    /// every figure is the archived one.
    pub fn only_service(&self, service: &str) -> Option<MonthlyReport> {
        let section = self.services.iter().find(|s| s.service == service)?.clone();
        let mut cover = self.cover.clone();
        cover.service = Some(service.to_string());
        cover.time_zones = vec![section.time_zone.clone()];
        cover.parties.retain(|p| p.service == service);
        Some(MonthlyReport {
            schema: self.schema.clone(),
            cover,
            summary: self
                .summary
                .iter()
                .filter(|s| s.service == service)
                .cloned()
                .collect(),
            services: vec![section],
            method: self.method.clone(),
            addenda: self
                .addenda
                .iter()
                .filter(|a| a.service == service)
                .cloned()
                .collect(),
            sign_off: self.sign_off.clone(),
        })
    }
}

/// `[report] prepared_by`, `approved_by`, `distribution`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignOff {
    pub prepared_by: Option<String>,
    pub approved_by: Option<String>,
    pub distribution: Vec<String>,
}

impl SignOff {
    pub fn is_empty(&self) -> bool {
        self.prepared_by.is_none() && self.approved_by.is_none() && self.distribution.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cover {
    pub organisation: String,
    pub title: String,
    /// `YYYY-MM`.
    pub month: String,
    /// `None`: every configured service; else the one service the report is about.
    pub service: Option<String>,
    /// The zones of the services' periods (sorted, deduplicated).
    pub time_zones: Vec<String>,
    pub generated_at: Timestamp,
    pub attest_version: String,
    /// Version of the tz database the periods were computed with (`unknown` if not found).
    pub tzdb_version: String,
    /// SHA-256 of the service definitions in force (their canonical JSON), hex.
    pub definitions_sha256: String,
    /// The customer, agreement and owner of each service that names any (config order).
    #[serde(default)]
    pub parties: Vec<CoverParty>,
}

/// Whose service a report covers and under which agreement (`[[service]]` `customer`,
/// `agreement`, `owner`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverParty {
    pub service: String,
    pub customer: Option<String>,
    pub agreement: Option<String>,
    pub owner: Option<String>,
}

/// The agreed method of one service as configured when the report was made (see
/// `terms.rs`): flat, so that `terms.csv` has one row per service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Terms {
    pub description: Option<String>,
    pub owner: Option<String>,
    pub customer: Option<String>,
    /// The agreement's reference (contract or SLA document).
    pub agreement: Option<String>,
    pub time_zone: String,
    /// The availability target as an exact percentage (`99.9`).
    pub target_percent: String,
    /// The quorum and what it means: `majority: bad when more than half of the reporting
    /// agents fail`.
    pub quorum: String,
    pub min_reporters: u32,
    pub min_coverage_percent: Option<String>,
    pub latency_threshold_seconds: Option<f64>,
    pub latency_target_percent: Option<String>,
    /// `[[service]] start`: minutes from it on are eligible, measured or not.
    pub agreement_start: Option<Timestamp>,
    /// Local weekly windows (`Mon,Tue 08:00-18:00`); empty = 24x7.
    pub service_hours: Vec<String>,
    pub holidays: Vec<String>,
    /// Agents the collector assigns the service's central checks to.
    pub assigned_agents: Vec<String>,
    /// Agents that reported for the service during the month.
    pub reporting_agents: Vec<String>,
    /// `[[service]] hosts` (with `hosts_match` resolved); empty = the reporting agents.
    pub capacity_hosts: Vec<String>,
    /// Each capacity objective as agreed: `cpu:p95 ≤ 70 %`.
    pub capacity_objectives: Vec<String>,
}

/// One earlier month of a service (see `trend.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRow {
    /// `YYYY-MM`.
    pub month: String,
    pub availability: Option<f64>,
    /// Rounded down to [`AVAILABILITY_DECIMALS`].
    pub availability_percent: Option<String>,
    /// The verdict over every objective, as in that month's summary.
    pub verdict: Verdict,
    pub downtime_minutes: u64,
    pub budget_remaining_minutes: f64,
    /// `archive` (the archived report of that month) or `computed` (the engine, now).
    pub source: String,
}

/// One check that measures a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckTerm {
    pub id: String,
    /// `http`, `tcp`, `dns`, `icmp`, `tls`, `host`; null when defined on the agents.
    pub kind: Option<String>,
    /// What it probes: `GET https://…`, `host:port`, `name TYPE @server`.
    pub target: Option<String>,
    pub interval_seconds: Option<f64>,
    pub timeout_seconds: Option<f64>,
    /// `collector` (a central `[[check]]`) or `agent` (the agents' own configuration,
    /// which the collector does not know).
    pub defined_in: String,
    /// Agents the collector assigns it to (central checks only).
    pub assigned_agents: Vec<String>,
}

/// Met, breached, or not determinable (nothing known, or coverage below the minimum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Breached,
    NotDeterminable,
}

impl Verdict {
    pub fn of(compliant: Option<bool>) -> Verdict {
        match compliant {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Breached,
            None => Verdict::NotDeterminable,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Breached => "breached",
            Verdict::NotDeterminable => "not determinable",
        }
    }
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub service: String,
    pub time_zone: String,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    /// True once the whole month is evaluated.
    pub complete: bool,
    pub target_ppm: u32,
    /// The target as a percentage, exact (`99.9`).
    pub target_percent: String,
    pub eligible_minutes: u64,
    pub good_minutes: u64,
    pub bad_minutes: u64,
    pub unknown_minutes: u64,
    /// `good / known`, null when nothing is known.
    pub availability: Option<f64>,
    /// The same, as a percentage rounded down to [`AVAILABILITY_DECIMALS`].
    pub availability_percent: Option<String>,
    /// The service's verdict over every objective (availability, coverage minimum, latency,
    /// capacity): the worst of them (breached > not determinable > met).
    pub verdict: Verdict,
    /// The objectives whose verdict is `verdict`: `availability`, `coverage`, `latency`,
    /// `capacity NAME`.
    pub verdict_decided_by: Vec<String>,
    /// Why, in words: `not determinable: coverage 98.88 % < minimum 99 %`.
    pub verdict_reason: String,
    /// Availability against the target alone (`good / known` on integers).
    pub availability_verdict: Verdict,
    /// Downtime = bad minutes.
    pub downtime_minutes: u64,
    /// `(1 − target) × known`.
    pub allowed_downtime_minutes: f64,
    pub budget_remaining_minutes: f64,
    pub budget_remaining_ratio: Option<f64>,
    pub coverage: Option<f64>,
    /// Coverage rounded down to 2 decimals.
    pub coverage_percent: Option<String>,
    /// The agreed minimum coverage (`min_coverage`) as a percentage; null when none.
    pub min_coverage_percent: Option<String>,
    /// `met` or `not_determinable` (coverage below the minimum); null without a minimum.
    pub coverage_verdict: Option<Verdict>,
    pub incidents: u64,
    pub mttr_minutes: Option<f64>,
    pub mtbf_minutes: Option<f64>,
    pub mtbsi_minutes: Option<f64>,
    /// `≤ 0.5 s for 99 %` when the service has a latency objective.
    pub latency_objective: Option<String>,
    pub latency_objective_met: Option<bool>,
    /// Probes within the threshold as a percentage rounded down; null without objective
    /// or probes.
    pub latency_within_percent: Option<String>,
    /// Null without a latency objective.
    pub latency_verdict: Option<Verdict>,
    pub latency_p95_seconds: Option<f64>,
    /// Worst verdict of the capacity objectives; null without any.
    pub capacity_verdict: Option<Verdict>,
    /// Each capacity objective with its measured value, limit and verdict:
    /// `cpu:p95 48.000 % ≤ 70 %: met`.
    pub capacity_objectives: Vec<String>,
}

/// Everything about one service beyond its summary line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSection {
    pub service: String,
    pub time_zone: String,
    /// The agreed method and parties, from the configuration in force.
    #[serde(default)]
    pub terms: Terms,
    /// The checks that measure the service.
    #[serde(default)]
    pub checks: Vec<CheckTerm>,
    /// The months before this one (at most 12, none before the agreement), oldest first.
    #[serde(default)]
    pub trend: Vec<TrendRow>,
    /// Minutes with fewer reporting agents than expected and failures the quorum outvoted.
    #[serde(default)]
    pub redundancy: Redundancy,
    pub pessimistic: Option<f64>,
    pub optimistic: Option<f64>,
    pub daily: Vec<Day>,
    pub incidents: Vec<IncidentRow>,
    pub unknown: Vec<UnknownRow>,
    pub excluded: Excluded,
    pub latency: Latency,
    pub capacity: Vec<CapacityRow>,
    /// Worst verdict of the service's capacity objectives (`met`, `breached`,
    /// `not determinable`); null when it has none.
    pub capacity_verdict: Option<String>,
    pub capacity_objectives: Vec<CapacityObjectiveRow>,
    /// Comments and actions on the service's month, in the order written (report notes).
    /// Default: archives written before notes existed still read.
    #[serde(default)]
    pub notes: Vec<NoteItem>,
    /// The share of the service's measurements signed by their agents and each agent's
    /// chain state (`evidence.rs`). Default: archives written before it still read.
    #[serde(default)]
    pub evidence: Evidence,
    /// The service's definitions in force during the period, oldest first (the definition
    /// history); empty when none was recorded. Default: archives written before it existed.
    #[serde(default)]
    pub definitions: Vec<DefinitionItem>,
}

/// One service definition in force during the period (see `crate::definitions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionItem {
    /// When it took effect; before the period start for the one in force at the start.
    pub from: Timestamp,
    /// Hex SHA-256 of the definition (the `definitions_sha256` of this one service).
    pub sha256: String,
    /// What made the collector record it: `start` or `reload`.
    pub cause: String,
    /// What differs from the definition before it (`target_ppm: 999000 → 995000`); empty
    /// for the first one listed.
    pub changes: Vec<String>,
    /// Whether it took effect before the period started (the one in force at its start).
    pub before_period: bool,
}

/// A report note: why something happened and what is done about it, dated and attributed
/// (notes are only ever added, so the date and writer are part of the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteItem {
    pub written_at: Timestamp,
    /// The admin credential's name, or `cli`.
    pub written_by: String,
    pub cause: String,
    pub action: String,
    pub owner: Option<String>,
    /// `YYYY-MM-DD`.
    pub due: Option<String>,
}

impl From<crate::store::NoteRow> for NoteItem {
    fn from(n: crate::store::NoteRow) -> Self {
        NoteItem {
            written_at: n.written_at,
            written_by: n.written_by,
            cause: n.cause,
            action: n.action,
            owner: n.owner,
            due: n.due.map(|d| d.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// Local date `YYYY-MM-DD` in the service's zone.
    pub date: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub eligible_minutes: u64,
    pub good_minutes: u64,
    pub bad_minutes: u64,
    pub unknown_minutes: u64,
    pub availability: Option<f64>,
    pub availability_percent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRow {
    pub start: Timestamp,
    pub end: Timestamp,
    pub open_at_start: bool,
    pub open_at_end: bool,
    pub downtime_minutes: u64,
    pub agents: Vec<String>,
    pub reason: Option<String>,
    /// What the probes said about that reason (`status 503`, `connect timeout`): the most
    /// common failure text of the incident's first hour; `None` when none was kept.
    #[serde(default)]
    pub reason_detail: Option<String>,
    /// The runs of eligible minutes inside `[start, end)` as ISO 8601 intervals
    /// (`START/END`, UTC): an incident merged across ineligible time (an evening, a weekend,
    /// maintenance) has several; only these count and only these are drawn.
    #[serde(default)]
    pub eligible_segments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownRow {
    pub start: Timestamp,
    pub end: Timestamp,
    pub minutes: u64,
    pub silent_agents: Vec<String>,
}

/// Time that does not count: outside service hours, holidays, maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    /// Weekly service hours in local time (`Mon-Fri 08:00-18:00`); empty = 24x7.
    pub service_hours: Vec<String>,
    pub holidays: Vec<String>,
    pub maintenance: Vec<MaintenanceRow>,
    /// Minutes of the period that were not eligible (outside hours, holidays, maintenance,
    /// before the service or its checks existed, not yet elapsed).
    pub ineligible_minutes: u64,
    /// Minutes of the period inside maintenance windows registered after their start
    /// (the windows' own span, before service hours apply), counted apart so that a reader
    /// sees how much excluded time was decided after the fact.
    #[serde(default)]
    pub after_the_fact_minutes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceRow {
    /// `once` or `weekly`.
    pub kind: String,
    /// One-off windows: start – end in the service's local time with the UTC offset;
    /// weekly ones: local days and times.
    pub when: String,
    pub reason: String,
    /// `config` or `api`.
    pub source: String,
    /// When an API window was registered.
    pub registered_at: Option<Timestamp>,
    /// Who registered an API window: the admin credential's name (null for config windows
    /// and for API windows stored before registrants were recorded).
    pub registered_by: Option<String>,
    /// The change ticket or other reference given at registration.
    #[serde(default)]
    pub reference: Option<String>,
    /// For an API window registered after its start: how long after, e.g. `16 d 2 h`
    /// (null otherwise). Reports mark such windows "registered after the fact".
    #[serde(default)]
    pub registered_after_start: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub threshold_seconds: Option<f64>,
    pub target: Option<f64>,
    pub objective_ratio: Option<f64>,
    pub objective_met: Option<bool>,
    pub probes: u64,
    pub probes_within: Option<u64>,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityRow {
    pub agent: String,
    pub kind: String,
    pub resource: String,
    pub p95: Option<f64>,
    pub max: Option<f64>,
    pub minutes_above_warning: u64,
    pub minutes_above_critical: u64,
    pub days_until_critical: Option<f64>,
}

/// The monthly verdict of one agreed capacity objective (docs/sla.md, capacity objectives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityObjectiveRow {
    pub name: String,
    /// `p95`, `max`, `average`, `minutes_above` or `days_to_threshold`.
    pub statistic: String,
    /// The agreed limit: a ratio (p95, max, average), minutes or days (a minimum).
    pub limit: f64,
    /// The measured value in the limit's unit; null when not determinable.
    pub value: Option<f64>,
    pub verdict: String,
    /// The host and resource that decide `value`.
    pub host: Option<String>,
    pub resource: Option<String>,
    pub counted_minutes: u64,
    /// What the agreement requires, with threshold, unit and direction: `≤ 70 %`,
    /// `≤ 60 min above 90 %`, `≥ 30 days to 95 %`.
    #[serde(default)]
    pub agreed: String,
    /// The measured side in the same unit: `48.000 %`, `22.5 days to 95 %`; null when
    /// nothing was measured.
    #[serde(default)]
    pub measured: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodItem {
    pub title: String,
    pub text: String,
}

/// A difference found after a month was archived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Addendum {
    pub month: String,
    pub found_at: Timestamp,
    pub service: String,
    pub field: String,
    pub archived: String,
    pub now: String,
}

/// Report-wide values that do not come from the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub organisation: String,
    pub title: String,
    pub month: String,
    pub service: Option<String>,
    pub generated_at: Timestamp,
    pub attest_version: String,
    pub tzdb_version: String,
    pub definitions_sha256: String,
    pub sign_off: SignOff,
}

/// A maintenance window registered through the API, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiMaintenance {
    pub start: Timestamp,
    pub end: Timestamp,
    pub reason: String,
    pub registered_at: Timestamp,
    /// The registering credential's name; `None` when the store has none.
    pub registered_by: Option<String>,
    /// The change ticket or other reference given at registration.
    pub reference: Option<String>,
}

/// What one service contributes: its definition and the engine's results.
pub struct ServiceParts<'a> {
    pub service: &'a Service,
    pub report: &'a ServiceReport,
    pub detail: &'a MonthDetail,
    /// API maintenance overlapping the period (cancelled windows left out).
    pub api_maintenance: &'a [ApiMaintenance],
    /// Capacity of the hosts whose agents measure the service.
    pub capacity: &'a [CapacityFigure],
    /// The agreed method (`terms::of`).
    pub terms: Terms,
    pub checks: Vec<CheckTerm>,
    /// The service's report notes of the month, in the order written.
    pub notes: Vec<NoteItem>,
    /// The definition history of the period (`Store::definitions`), oldest first.
    pub definitions: Vec<crate::store::DefinitionRow>,
    /// Each incident's failure detail (`Figures::failure_detail`), in incident order;
    /// shorter than the incidents when not read (the rest have none).
    pub incident_details: Vec<Option<String>>,
    /// The evidence statement (`evidence::of`).
    pub evidence: Evidence,
}

impl MonthlyReport {
    /// Assembles the document; `method` is the method section (see `method.rs`).
    pub fn build(meta: Meta, parts: &[ServiceParts<'_>], method: Vec<MethodItem>) -> MonthlyReport {
        let mut zones: Vec<String> = parts.iter().map(|p| p.service.time_zone.clone()).collect();
        zones.sort();
        zones.dedup();
        MonthlyReport {
            schema: SCHEMA.to_string(),
            cover: Cover {
                organisation: meta.organisation,
                title: meta.title,
                month: meta.month,
                service: meta.service,
                time_zones: zones,
                generated_at: meta.generated_at,
                attest_version: meta.attest_version,
                tzdb_version: meta.tzdb_version,
                definitions_sha256: meta.definitions_sha256,
                parties: parts
                    .iter()
                    .filter_map(|p| party(&p.service.name, &p.terms))
                    .collect(),
            },
            summary: parts.iter().map(|p| summary(p.service, p.report)).collect(),
            services: parts.iter().map(section).collect(),
            method,
            addenda: Vec::new(),
            sign_off: meta.sign_off,
        }
    }
}

/// The cover's line for a service that names any party; `None` when it names none.
fn party(service: &str, t: &Terms) -> Option<CoverParty> {
    let any = t.customer.is_some() || t.agreement.is_some() || t.owner.is_some();
    any.then(|| CoverParty {
        service: service.to_string(),
        customer: t.customer.clone(),
        agreement: t.agreement.clone(),
        owner: t.owner.clone(),
    })
}

/// `ppm` as an exact percentage: 999000 → "99.9", 995000 → "99.5", 1000000 → "100".
pub fn ppm_percent(ppm: u32) -> String {
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:04}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn summary(svc: &Service, r: &ServiceReport) -> SummaryRow {
    let known = r.known_minutes();
    let judged = verdict::objectives(svc, r);
    let (overall, decided_by, reason) = verdict::overall(&judged);
    SummaryRow {
        service: r.service.clone(),
        time_zone: r.period.time_zone.clone(),
        period_start: r.period.start,
        period_end: r.period.end,
        complete: r.complete,
        target_ppm: r.target_ppm,
        target_percent: ppm_percent(r.target_ppm),
        eligible_minutes: r.eligible_minutes,
        good_minutes: r.good_minutes,
        bad_minutes: r.bad_minutes,
        unknown_minutes: r.unknown_minutes,
        availability: r.availability,
        availability_percent: r.availability_percent_floor(AVAILABILITY_DECIMALS),
        verdict: overall,
        verdict_decided_by: decided_by,
        verdict_reason: reason,
        availability_verdict: verdict::availability(r).verdict,
        downtime_minutes: r.bad_minutes,
        allowed_downtime_minutes: r.error_budget.allowed_minutes,
        budget_remaining_minutes: r.error_budget.remaining_minutes,
        budget_remaining_ratio: r.error_budget.remaining_ratio,
        coverage: r.coverage,
        coverage_percent: sla::availability::floor_percent(known, r.eligible_minutes, 2),
        min_coverage_percent: svc.min_coverage.map(|p| ppm_percent(p.0)),
        coverage_verdict: verdict::coverage(svc, r).map(|j| j.verdict),
        incidents: r.incident_count,
        mttr_minutes: r.mttr_minutes,
        mtbf_minutes: r.mtbf_minutes,
        mtbsi_minutes: r.mtbsi_minutes,
        latency_objective: svc.latency.as_ref().map(|l| {
            format!(
                "≤ {} s for {} %",
                l.threshold.as_secs_f64(),
                ppm_percent(l.target.0)
            )
        }),
        latency_objective_met: r.latency.objective_met,
        latency_within_percent: verdict::latency_within_percent(r),
        latency_verdict: verdict::latency(svc, r).map(|j| j.verdict),
        latency_p95_seconds: r.latency.p95_seconds,
        capacity_verdict: r.capacity.verdict.map(verdict::capacity_verdict),
        capacity_objectives: r
            .capacity
            .objectives
            .iter()
            .map(|o| verdict::capacity_text(o, verdict::rule_of(svc, &o.name)))
            .collect(),
    }
}

fn section(p: &ServiceParts<'_>) -> ServiceSection {
    let r = p.report;
    let l = &r.latency;
    ServiceSection {
        service: r.service.clone(),
        time_zone: r.period.time_zone.clone(),
        terms: p.terms.clone(),
        checks: p.checks.clone(),
        trend: Vec::new(),
        redundancy: super::redundancy::of(&p.detail.minutes, expected_agents(p)),
        pessimistic: r.bounds.pessimistic,
        optimistic: r.bounds.optimistic,
        daily: p.detail.days.iter().map(day).collect(),
        incidents: r
            .incidents
            .iter()
            .enumerate()
            .map(|(k, i)| IncidentRow {
                start: i.start,
                end: i.end,
                open_at_start: i.open_at_start,
                open_at_end: i.open_at_end,
                downtime_minutes: i.downtime_minutes,
                agents: i.agents.clone(),
                reason: i.reason.clone(),
                reason_detail: p.incident_details.get(k).cloned().flatten(),
                eligible_segments: eligible_segments(&p.detail.minutes, i.start, i.end),
            })
            .collect(),
        unknown: p
            .detail
            .unknown
            .iter()
            .map(|u| UnknownRow {
                start: u.start,
                end: u.end,
                minutes: u.minutes,
                silent_agents: u.silent_agents.clone(),
            })
            .collect(),
        excluded: excluded(p),
        latency: Latency {
            threshold_seconds: l.threshold_seconds,
            target: l.target,
            objective_ratio: l.objective_ratio,
            objective_met: l.objective_met,
            probes: l.probes,
            probes_within: l.probes_within,
            p50_seconds: l.p50_seconds,
            p95_seconds: l.p95_seconds,
            p99_seconds: l.p99_seconds,
        },
        capacity: p
            .capacity
            .iter()
            .map(|c| CapacityRow {
                agent: c.agent.clone(),
                kind: c.kind.clone(),
                resource: c.resource.clone(),
                p95: c.p95,
                max: c.max,
                minutes_above_warning: c.minutes_above_warning,
                minutes_above_critical: c.minutes_above_critical,
                days_until_critical: c.days_until_critical,
            })
            .collect(),
        capacity_verdict: r.capacity.verdict.map(|v| verdict_word(v).to_string()),
        capacity_objectives: r
            .capacity
            .objectives
            .iter()
            .map(|o| CapacityObjectiveRow {
                name: o.name.clone(),
                statistic: o.statistic.to_string(),
                limit: o.limit,
                value: o.value,
                verdict: verdict_word(o.verdict).to_string(),
                host: o.constraint.as_ref().map(|c| c.host.clone()),
                resource: o.constraint.as_ref().map(|c| c.resource.clone()),
                counted_minutes: o.counted_minutes,
                agreed: verdict::rule_of(p.service, &o.name)
                    .map(verdict::capacity_rule)
                    .unwrap_or_default(),
                measured: verdict::rule_of(p.service, &o.name)
                    .and_then(|rule| verdict::capacity_measured(o, rule)),
            })
            .collect(),
        notes: p.notes.clone(),
        definitions: definition_items(&p.definitions, r.period.start),
        evidence: p.evidence.clone(),
    }
}

/// Agents expected each minute: those the central checks are assigned to, else those that
/// reported in the month.
fn expected_agents(p: &ServiceParts<'_>) -> u32 {
    let n = if p.terms.assigned_agents.is_empty() {
        p.detail.agents.len()
    } else {
        p.terms.assigned_agents.len()
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The runs of eligible minutes of `m` in `[start, end)`, as `START/END` (UTC).
fn eligible_segments(m: &MinuteStates, start: Timestamp, end: Timestamp) -> Vec<String> {
    let minute = |t: Timestamp| t.as_second().div_euclid(60) - m.from;
    let len = m.states.len() as i64;
    let (a, b) = (minute(start).clamp(0, len), minute(end).clamp(0, len));
    let mut out = Vec::new();
    let mut run: Option<i64> = None;
    for i in a..=b {
        let eligible = i < b && m.states[i as usize] != INELIGIBLE;
        match (eligible, run) {
            (true, None) => run = Some(i),
            (false, Some(r)) => {
                out.push(format!(
                    "{}/{}",
                    minute_ts(m.from + r),
                    minute_ts(m.from + i)
                ));
                run = None;
            }
            _ => {}
        }
    }
    out
}

fn verdict_word(v: sla::capacity_objectives::Verdict) -> &'static str {
    use sla::capacity_objectives::Verdict as V;
    match v {
        V::Met => "met",
        V::Breached => "breached",
        V::NotDeterminable => "not determinable",
    }
}

fn day(d: &sla::DayFigure) -> Day {
    Day {
        date: d.date.to_string(),
        start: d.start,
        end: d.end,
        eligible_minutes: d.eligible_minutes,
        good_minutes: d.good_minutes,
        bad_minutes: d.bad_minutes,
        unknown_minutes: d.unknown_minutes,
        availability: d.availability,
        availability_percent: sla::availability::floor_percent(
            d.good_minutes,
            d.good_minutes + d.bad_minutes,
            AVAILABILITY_DECIMALS,
        ),
    }
}

/// `Mon,Tue 08:00-18:00`.
pub use crate::definitions::weekly_text;

/// The recorded definitions as the report lists them, each with what changed since the one
/// before it.
fn definition_items(
    rows: &[crate::store::DefinitionRow],
    period_start: Timestamp,
) -> Vec<DefinitionItem> {
    rows.iter()
        .enumerate()
        .map(|(k, d)| DefinitionItem {
            from: d.first_seen,
            sha256: d.sha256.clone(),
            cause: d.cause.clone(),
            changes: k
                .checked_sub(1)
                .map(|j| crate::definitions::changes(&rows[j].definition, &d.definition))
                .unwrap_or_default(),
            before_period: d.first_seen <= period_start,
        })
        .collect()
}

fn excluded(p: &ServiceParts<'_>) -> Excluded {
    let svc = p.service;
    let mut maintenance: Vec<MaintenanceRow> = svc
        .maintenance
        .iter()
        .map(|m| match m {
            MaintenanceWindow::Once { start, end, reason } => MaintenanceRow {
                kind: "once".into(),
                when: local_span(*start, *end, &svc.time_zone),
                reason: reason.clone(),
                source: "config".into(),
                registered_at: None,
                registered_by: None,
                reference: None,
                registered_after_start: None,
            },
            MaintenanceWindow::Weekly { window, reason } => MaintenanceRow {
                kind: "weekly".into(),
                when: format!("{} (local time)", weekly_text(window)),
                reason: reason.clone(),
                source: "config".into(),
                registered_at: None,
                registered_by: None,
                reference: None,
                registered_after_start: None,
            },
        })
        .collect();
    maintenance.extend(p.api_maintenance.iter().map(|m| {
        MaintenanceRow {
            kind: "once".into(),
            when: local_span(m.start, m.end, &svc.time_zone),
            reason: m.reason.clone(),
            source: "api".into(),
            registered_at: Some(m.registered_at),
            registered_by: m.registered_by.clone(),
            reference: m.reference.clone(),
            registered_after_start: (m.registered_at > m.start)
                .then(|| late_by(m.registered_at.as_second() - m.start.as_second())),
        }
    }));
    let period = p.report.period.minutes.max(0) as u64;
    let (from, to) = (p.report.period.start, p.report.period.end);
    let after_the_fact_minutes = p
        .api_maintenance
        .iter()
        .filter(|m| m.registered_at > m.start)
        .map(|m| {
            let (s, e) = (m.start.max(from), m.end.min(to));
            u64::try_from((e.as_second() - s.as_second()) / 60).unwrap_or(0)
        })
        .sum();
    Excluded {
        service_hours: svc.service_hours.iter().map(weekly_text).collect(),
        holidays: svc
            .holidays
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        maintenance,
        ineligible_minutes: period.saturating_sub(p.report.eligible_minutes),
        after_the_fact_minutes,
    }
}

/// `16 d 2 h`, `3 h 5 min`, `40 min`: how long after its start a window was registered.
fn late_by(seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// `2026-10-21 00:00 +02:00 – 2026-10-21 01:00 +02:00`: a window in the service's local
/// time with its UTC offset (a reader compares it with local change records).
pub fn local_span(start: Timestamp, end: Timestamp, zone: &str) -> String {
    format!("{} – {}", local_time(start, zone), local_time(end, zone))
}

/// An instant as local wall-clock time of `zone` with its UTC offset:
/// `2026-10-25 02:50 +02:00`; RFC 3339 UTC for an unknown zone (a validated configuration
/// has none).
pub fn local_time(t: Timestamp, zone: &str) -> String {
    match t.in_tz(zone) {
        Ok(z) => z.strftime("%Y-%m-%d %H:%M %:z").to_string(),
        Err(_) => t.to_string(),
    }
}

/// SHA-256 of the service definitions in force: a JSON list of each service's name, checks,
/// target, zone, quorum, minimum reporters and coverage, hours, holidays, maintenance,
/// latency objective and start, in config order.
pub fn definitions_sha256(services: &[&Service]) -> String {
    let list: Vec<serde_json::Value> = services
        .iter()
        .map(|s| crate::definitions::json(s))
        .collect();
    super::digest::sha256_hex(&serde_json::to_vec(&list).unwrap_or_default())
}
