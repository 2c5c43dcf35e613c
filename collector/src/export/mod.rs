//! SLO specifications for the tools teams already run, written from the configuration:
//! OpenSLO v1 (`Service`, `SLI`, `SLO` with Attest's calendar month), Sloth `prometheus/v1`
//! and Pyrra `ServiceLevelObjective` (both rolling 30 days: neither has calendar windows).
//! Every query reads Attest's own SLO counters (`attest_slo_*_minutes_total`), so these
//! tools see the engine's minute verdicts, not a second opinion. Documented in
//! docs/metrics.md and docs/cli.md.
//!
//! Invariants:
//! - Built from the configuration only (no store, no clock): the same file gives the same
//!   bytes, so the output can live in a repository.
//! - Object names follow the strictest rule of the three (RFC 1123 labels, at most 63
//!   characters); a service name that does not fit is mapped and suffixed with a hash of
//!   the original, which every query still selects exactly (`service="…"`).
//! - Only the availability objective is exported: the latency objective has no counter
//!   (its monthly ratio is a gauge), and capacity objectives are monthly verdicts.

mod openslo;
mod pyrra;
mod sloth;

use std::fmt::Write;

use attest_config::{CollectorConfig, Service};
use serde::Serialize;

use crate::metrics::names;

/// The formats `attest-collector export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenSlo,
    Sloth,
    Pyrra,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenSlo => "openslo",
            Format::Sloth => "sloth",
            Format::Pyrra => "pyrra",
        }
    }
}

/// Options of an export.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kubernetes namespace of the Pyrra objects.
    pub namespace: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            namespace: "monitoring".into(),
        }
    }
}

/// One service's file: its name and its YAML (one or more documents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub yaml: String,
}

/// One file per service (or only `service`), in configuration order.
pub fn export(
    cfg: &CollectorConfig,
    format: Format,
    service: Option<&str>,
    options: &Options,
) -> Result<Vec<File>, String> {
    let services: Vec<&Service> = cfg
        .services
        .iter()
        .filter(|s| service.is_none_or(|n| n == s.name))
        .collect();
    if let Some(n) = service
        && services.is_empty()
    {
        return Err(format!("no service named {n:?} in the collector config"));
    }
    services
        .into_iter()
        .map(|svc| {
            let yaml = match format {
                Format::OpenSlo => openslo::documents(svc),
                Format::Sloth => sloth::document(svc),
                Format::Pyrra => pyrra::document(svc, options),
            }
            .map_err(|e| format!("service {:?}: cannot write YAML: {e}", svc.name))?;
            Ok(File {
                name: format!("{}.yaml", object_name(&svc.name, "")),
                yaml,
            })
        })
        .collect()
}

/// Several documents as one YAML stream.
fn stream(docs: &[String]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(d.strip_prefix("---\n").unwrap_or(d));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn yaml<T: Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}

/// An RFC 1123 label of at most 63 characters for `service` followed by `suffix`: the name
/// lowercased, other characters as `-`; a name that changed (or was cut) gets 8 hex digits
/// of a hash of the original, so that two services never share an object name.
pub fn object_name(service: &str, suffix: &str) -> String {
    let mut base = String::with_capacity(service.len());
    for c in service.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let base = base.trim_matches('-');
    let room = 63 - suffix.len();
    let exact = base == service && base.len() <= room;
    let mut name = if exact {
        base.to_string()
    } else {
        let keep = room.saturating_sub(9).min(base.len());
        let head = base[..keep].trim_end_matches('-');
        let hash = fnv1a(service.as_bytes());
        if head.is_empty() {
            format!("s{:07x}", hash & 0x0fff_ffff)
        } else {
            format!("{head}-{hash:08x}")
        }
    };
    name.push_str(suffix);
    name
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `name{service="…"}` with the service name as a PromQL string.
pub fn selector(metric: &str, service: &str) -> String {
    let mut s = String::with_capacity(metric.len() + service.len() + 16);
    let _ = write!(s, "{metric}_total{{service=\"");
    for c in service.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push_str("\"}");
    s
}

/// The three counters' selectors for one service.
pub struct Counters {
    pub good: String,
    pub bad: String,
    pub known: String,
}

pub fn counters(service: &str) -> Counters {
    Counters {
        good: selector(names::SLO_GOOD_MINUTES, service),
        bad: selector(names::SLO_BAD_MINUTES, service),
        known: selector(names::SLO_ELIGIBLE_KNOWN_MINUTES, service),
    }
}

/// The target as a percentage without a unit: `"99.9"`, `"100"`.
pub fn percent(svc: &Service) -> String {
    svc.target.to_string().trim_end_matches('%').to_string()
}

/// What the objective measures, for the description fields (at most 1,050 characters).
pub fn description(svc: &Service) -> String {
    let mut d = format!(
        "Availability of {:?} as Attest measures it: good minutes / known (good + bad) minutes \
         of eligible time (service hours, holidays and maintenance applied; unknown minutes \
         count neither way). Attest's agreed figure is the calendar month in {}.",
        svc.name, svc.time_zone
    );
    if d.chars().count() > 1_050 {
        d = d.chars().take(1_049).collect::<String>() + "…";
    }
    d
}

#[cfg(test)]
mod tests;
