//! Builds the monthly report of a month from the collector's figures: for each service one
//! read of its rows runs the engine (figures and month detail); the capacity of its hosts
//! (`hosts`, else the agents that measure it) over its local month is added; the cover gets the versions and the definitions digest.
//!
//! Invariants: every figure comes from `Figures` (the engine); the instant `at` is both the
//! "as of" of the figures and the report's generation instant, so the same store, config
//! and `at` give the same report.

use std::collections::{BTreeMap, BTreeSet};

use attest_config::{CollectorConfig, ReportConfig, Service};
use jiff::Timestamp;

use super::archive::Archive;
use super::evidence::{self, Evidence};
use super::model::TrendRow;
use super::model::{
    ApiMaintenance, Meta, MonthlyReport, NoteItem, ServiceParts, SignOff, definitions_sha256,
};
use super::{method, terms, trend};
use crate::figures::Figures;
use crate::reject::Rejection;
use crate::sla::detail::MinuteStates;
use crate::sla::{CapacityFigure, Month, MonthDetail, ServiceReport};

/// Report-wide settings from the `[report]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub organisation: String,
    pub title: String,
    pub sign_off: SignOff,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            organisation: String::new(),
            title: "Monthly availability report".into(),
            sign_off: SignOff::default(),
        }
    }
}

impl Settings {
    pub fn from_config(r: &ReportConfig) -> Settings {
        Settings {
            organisation: r.organisation.clone(),
            title: r.title.clone(),
            sign_off: SignOff {
                prepared_by: r.prepared_by.clone(),
                approved_by: r.approved_by.clone(),
                distribution: r.distribution.clone(),
            },
        }
    }
}

/// The tz database version of the zoneinfo files jiff reads (`TZDIR` or
/// `/usr/share/zoneinfo`), from `tzdata.zi` or `+VERSION`; `unknown` when neither exists.
pub fn tzdb_version() -> String {
    let dir = std::env::var_os("TZDIR")
        .map_or_else(|| "/usr/share/zoneinfo".into(), std::path::PathBuf::from);
    if let Ok(s) = std::fs::read_to_string(dir.join("+VERSION")) {
        return s.trim().to_string();
    }
    std::fs::read_to_string(dir.join("tzdata.zi"))
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.strip_prefix("# version "))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The per-host capacity of each service over its own local month: the hosts it names
/// (`hosts`, with `hosts_match` resolved) or, without any, the agents that measured it.
/// One computation per distinct zone.
fn service_capacity(
    figures: &Figures,
    services: &[&Service],
    results: &[(ServiceReport, MonthDetail, Vec<ApiMaintenance>)],
    month: Month,
    at: Timestamp,
) -> Result<Vec<Vec<CapacityFigure>>, Rejection> {
    let mut by_zone: BTreeMap<&str, Vec<CapacityFigure>> = BTreeMap::new();
    let mut out = Vec::with_capacity(services.len());
    for (svc, (_, detail, _)) in services.iter().zip(results) {
        let zone = svc.time_zone.as_str();
        if !by_zone.contains_key(zone) {
            by_zone.insert(zone, figures.month_capacity(month, zone, at)?);
        }
        let hosts = capacity_hosts(svc, &detail.agents);
        out.push(
            by_zone[zone]
                .iter()
                .filter(|c| hosts.contains(&c.agent))
                .cloned()
                .collect(),
        );
    }
    Ok(out)
}

/// The hosts whose capacity a service's report shows: its `hosts` (with `hosts_match`
/// resolved), else the agents that reported for it (`reporting`).
pub fn capacity_hosts<'a>(svc: &'a Service, reporting: &'a [String]) -> &'a [String] {
    if svc.hosts.is_empty() {
        reporting
    } else {
        &svc.hosts
    }
}

/// The evidence statement of each service over its own period up to `at`: the seals and
/// counts are read once per distinct span (services of one zone share it).
fn service_evidence(
    figures: &Figures,
    services: &[&Service],
    results: &[(ServiceReport, MonthDetail, Vec<ApiMaintenance>)],
    at: Timestamp,
) -> Result<Vec<Evidence>, Rejection> {
    let span = |r: &ServiceReport| (r.period.start, r.period.end.min(at));
    let mut checks: BTreeMap<(Timestamp, Timestamp), BTreeSet<String>> = BTreeMap::new();
    for (svc, (r, _, _)) in services.iter().zip(results) {
        checks
            .entry(span(r))
            .or_default()
            .extend(svc.checks.iter().cloned());
    }
    let mut read = BTreeMap::new();
    for (s, c) in &checks {
        let rows = figures.evidence(c, *s)?;
        read.insert(*s, (evidence::chains(&rows.seals), rows.counts));
    }
    Ok(services
        .iter()
        .zip(results)
        .map(|(svc, (r, _, _))| {
            let (chains, counts) = &read[&span(r)];
            evidence::of(&svc.checks, counts, chains)
        })
        .collect())
}

/// One earlier month of `svc`: from the archived report of `m` when there is one (read
/// once per month into `cache`), else computed by the engine as of `at`.
fn trend_row(
    figures: &Figures,
    (archive, cache): (
        Option<&Archive>,
        &mut BTreeMap<Month, Option<MonthlyReport>>,
    ),
    svc: &Service,
    m: Month,
    at: Timestamp,
) -> Result<Option<TrendRow>, Rejection> {
    if let Some(a) = archive {
        let old = match cache.entry(m) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(
                a.archived(&m.to_string())
                    .map_err(|e| Rejection::new(500, e.to_string()))?,
            ),
        };
        let row = old
            .as_ref()
            .and_then(|r| r.summary.iter().find(|s| s.service == svc.name));
        if let Some(s) = row {
            return Ok(Some(trend::archived(m, s)));
        }
    }
    let r = figures.evaluate(svc, m, at)?;
    Ok(trend::computed(svc, m, &r))
}

/// The report of `month` for every service (or the one named) as of `at`, with each
/// service's minute states for the bundle.
pub fn assemble(
    figures: &Figures,
    cfg: &CollectorConfig,
    settings: &Settings,
    (month, service): (Month, Option<&str>),
    at: Timestamp,
    archive: Option<&Archive>,
) -> Result<(MonthlyReport, Vec<(String, MinuteStates)>), Rejection> {
    let services = crate::figures::select_services(cfg, service)?;
    let mut results: Vec<(ServiceReport, MonthDetail, Vec<ApiMaintenance>)> = Vec::new();
    for svc in &services {
        let (report, detail, rows) = figures.month_detail(svc, month, at)?;
        let api = rows
            .into_iter()
            .map(|r| ApiMaintenance {
                start: r.start,
                end: r.end,
                reason: r.reason,
                registered_at: r.created_at,
                registered_by: r.registered_by,
                reference: r.reference,
            })
            .collect();
        results.push((report, detail, api));
    }
    let per_service = service_capacity(figures, &services, &results, month, at)?;
    let statements = service_evidence(figures, &services, &results, at)?;
    let parts: Vec<ServiceParts<'_>> = services
        .iter()
        .zip(&results)
        .zip(per_service.iter().zip(statements))
        .map(|((svc, (report, detail, api)), (cap, evidence))| {
            let (terms, checks) = terms::of(cfg, svc, &detail.agents);
            let notes = figures
                .report_notes(&month.to_string(), &svc.name)?
                .into_iter()
                .map(NoteItem::from)
                .collect();
            let incident_details = report
                .incidents
                .iter()
                .map(|i| figures.failure_detail(&svc.checks, (i.start, i.end), i.reason.as_deref()))
                .collect::<Result<_, Rejection>>()?;
            let definitions =
                figures.definitions(&svc.name, (report.period.start, report.period.end))?;
            Ok(ServiceParts {
                service: svc,
                report,
                detail,
                api_maintenance: api,
                capacity: cap,
                terms,
                checks,
                notes,
                definitions,
                incident_details,
                evidence,
            })
        })
        .collect::<Result<_, Rejection>>()?;
    let meta = Meta {
        organisation: settings.organisation.clone(),
        title: settings.title.clone(),
        month: month.to_string(),
        service: service.map(str::to_string),
        generated_at: at,
        attest_version: env!("CARGO_PKG_VERSION").to_string(),
        tzdb_version: tzdb_version(),
        definitions_sha256: definitions_sha256(&services),
        sign_off: settings.sign_off.clone(),
    };
    let mut report = MonthlyReport::build(meta, &parts, method::items());
    let mut archived: BTreeMap<Month, Option<MonthlyReport>> = BTreeMap::new();
    trend::fill(&mut report, &services, month, |svc, m| {
        trend_row(figures, (archive, &mut archived), svc, m, at)
    })?;
    let minutes = services
        .iter()
        .zip(results)
        .map(|(s, (_, d, _))| (s.name.clone(), d.minutes))
        .collect();
    Ok((report, minutes))
}
