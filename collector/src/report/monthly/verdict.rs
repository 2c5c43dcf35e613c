//! The service's verdict over every agreed objective: availability against its target, the
//! coverage minimum (`min_coverage`), the latency objective and each capacity objective.
//! The worst verdict decides (breached > not determinable > met), and the report says which
//! objectives decided it and why, in words a reader can check against the figures.
//!
//! Invariants:
//! - Every verdict is the engine's (or, for availability and coverage, the engine's integer
//!   rule on the engine's counts); this module only combines and words them.
//! - Shown numbers never turn a failure into a pass: availability, coverage and latency are
//!   rounded down, a utilisation judged against a maximum is rounded up, days judged against
//!   a minimum are rounded down.

use attest_config::{CapacityRule, Service};

use super::model::{AVAILABILITY_DECIMALS, Verdict, ppm_percent};
use crate::sla::ServiceReport;
use crate::sla::availability::{floor_percent, meets_target};
use crate::sla::capacity::Forecast;
use crate::sla::capacity_objectives::{self as cap, ObjectiveResult};

/// One objective's verdict and the sentence that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// `availability`, `coverage`, `latency` or `capacity NAME`.
    pub objective: String,
    pub verdict: Verdict,
    /// `availability 99.930 % ≥ 99.9 %`, `coverage 98.88 % < minimum 99 %`, …
    pub text: String,
}

impl Verdict {
    /// Breached is worst, then not determinable, then met.
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Met => 0,
            Verdict::NotDeterminable => 1,
            Verdict::Breached => 2,
        }
    }
}

pub fn capacity_verdict(v: cap::Verdict) -> Verdict {
    match v {
        cap::Verdict::Met => Verdict::Met,
        cap::Verdict::Breached => Verdict::Breached,
        cap::Verdict::NotDeterminable => Verdict::NotDeterminable,
    }
}

/// Availability against the target, on the engine's integers (coverage aside).
pub fn availability(r: &ServiceReport) -> Judged {
    let known = r.known_minutes();
    let verdict = Verdict::of(meets_target(
        r.bad_minutes,
        known,
        attest_config::units::Ppm(r.target_ppm),
    ));
    let target = ppm_percent(r.target_ppm);
    let text = match r.availability_percent_floor(AVAILABILITY_DECIMALS) {
        None => "availability: no minute known".to_string(),
        Some(a) if verdict == Verdict::Met => format!("availability {a} % ≥ {target} %"),
        Some(a) => format!("availability {a} % < {target} %"),
    };
    Judged {
        objective: "availability".into(),
        verdict,
        text,
    }
}

/// The coverage minimum: below it the month is not determinable; `None` without one.
pub fn coverage(svc: &Service, r: &ServiceReport) -> Option<Judged> {
    let min = svc.min_coverage?;
    let known = r.known_minutes();
    let below = u128::from(known) * 1_000_000 < u128::from(min.0) * u128::from(r.eligible_minutes);
    let shown =
        floor_percent(known, r.eligible_minutes, 2).map_or("n/a".into(), |p| format!("{p} %"));
    let min_text = ppm_percent(min.0);
    let (verdict, text) = if below {
        (
            Verdict::NotDeterminable,
            format!("coverage {shown} < minimum {min_text} %"),
        )
    } else {
        (
            Verdict::Met,
            format!("coverage {shown} ≥ minimum {min_text} %"),
        )
    };
    Some(Judged {
        objective: "coverage".into(),
        verdict,
        text,
    })
}

/// The share of probes within the latency threshold, rounded down; `None` without probes
/// or objective.
pub fn latency_within_percent(r: &ServiceReport) -> Option<String> {
    let within = r.latency.probes_within?;
    floor_percent(within, r.latency.probes, AVAILABILITY_DECIMALS)
}

/// The latency objective; `None` when the service has none.
pub fn latency(svc: &Service, r: &ServiceReport) -> Option<Judged> {
    let l = svc.latency.as_ref()?;
    let verdict = Verdict::of(r.latency.objective_met);
    let secs = l.threshold.as_secs_f64();
    let target = ppm_percent(l.target.0);
    let text = match latency_within_percent(r) {
        None => format!("latency: no probe measured (objective {target} % within {secs} s)"),
        Some(p) if verdict == Verdict::Met => {
            format!("latency {p} % within {secs} s ≥ {target} %")
        }
        Some(p) => format!("latency {p} % within {secs} s < {target} %"),
    };
    Some(Judged {
        objective: "latency".into(),
        verdict,
        text,
    })
}

/// `ppm` of utilisation as a percentage (`95 %`).
fn ppm_text(p: attest_config::units::Ppm) -> String {
    format!("{} %", ppm_percent(p.0))
}

/// A ratio as a percentage rounded *up* to 3 decimals (a value judged against a maximum).
pub fn ratio_up(x: f64) -> String {
    format!("{:.3} %", (x * 100_000.0).ceil() / 1_000.0)
}

/// Days rounded *down* to one decimal (a value judged against a minimum).
pub fn days_down(x: f64) -> String {
    format!("{:.1}", (x * 10.0).floor() / 10.0)
}

/// What the agreement requires of one capacity objective, with unit and direction:
/// `≤ 70 %`, `≤ 60 min above 90 %`, `≥ 30 days to 95 %`.
pub fn capacity_rule(rule: &CapacityRule) -> String {
    match rule {
        CapacityRule::Level { max, .. } => format!("≤ {}", ppm_text(*max)),
        CapacityRule::MinutesAbove {
            threshold,
            max_minutes,
        } => format!("≤ {max_minutes} min above {}", ppm_text(*threshold)),
        CapacityRule::DaysToThreshold {
            threshold,
            min_days,
        } => format!("≥ {min_days} days to {}", ppm_text(*threshold)),
    }
}

/// The measured side of a capacity objective in the rule's unit: `48.000 %`,
/// `12 min above 90 %`, `22.5 days to 95 %`, `no crossing of 95 % within the forecast
/// horizon`; `None` when nothing was measured.
pub fn capacity_measured(o: &ObjectiveResult, rule: &CapacityRule) -> Option<String> {
    match rule {
        CapacityRule::Level { .. } => o.value.map(ratio_up),
        CapacityRule::MinutesAbove { threshold, .. } => o
            .value
            .map(|v| format!("{v:.0} min above {}", ppm_text(*threshold))),
        CapacityRule::DaysToThreshold { threshold, .. } => match o.forecast {
            Some(Forecast::WithinHorizon { days }) => Some(format!(
                "{} days to {}",
                days_down(days),
                ppm_text(*threshold)
            )),
            Some(Forecast::NotWithinHorizon) => Some(format!(
                "no crossing of {} within the forecast horizon",
                ppm_text(*threshold)
            )),
            Some(Forecast::NoTrend) | None => None,
        },
    }
}

/// The limit alone, in the unit of the measured side: `≤ 70 %`, `≤ 60 min`, `≥ 30 days`.
pub fn capacity_limit(rule: &CapacityRule) -> String {
    match rule {
        CapacityRule::Level { max, .. } => format!("≤ {}", ppm_text(*max)),
        CapacityRule::MinutesAbove { max_minutes, .. } => format!("≤ {max_minutes} min"),
        CapacityRule::DaysToThreshold { min_days, .. } => format!("≥ {min_days} days"),
    }
}

/// `cpu:p95 48.000 % ≤ 70 %: met`, `disk:days 22.5 days to 95 % ≥ 30 days: breached`.
pub fn capacity_text(o: &ObjectiveResult, rule: Option<&CapacityRule>) -> String {
    let verdict = capacity_verdict(o.verdict).label();
    let Some(rule) = rule else {
        return format!("{}: {verdict}", o.name);
    };
    match capacity_measured(o, rule) {
        Some(m) => format!("{} {m} {}: {verdict}", o.name, capacity_limit(rule)),
        None => format!(
            "{} no host data (agreed {}): {verdict}",
            o.name,
            capacity_rule(rule)
        ),
    }
}

/// `capacity memory:max 95.000 % (agreed ≤ 90 %)`: the measured side and the agreement,
/// for the verdict's reason (which states the verdict itself).
fn capacity_reason(o: &ObjectiveResult, rule: Option<&CapacityRule>) -> String {
    let Some(rule) = rule else {
        return format!("capacity {}", o.name);
    };
    let measured = capacity_measured(o, rule).unwrap_or_else(|| "no host data".into());
    format!(
        "capacity {} {measured} (agreed {})",
        o.name,
        capacity_limit(rule)
    )
}

/// The rule configured for the objective named `name` of `svc`.
pub fn rule_of<'a>(svc: &'a Service, name: &str) -> Option<&'a CapacityRule> {
    svc.capacity
        .iter()
        .find(|c| c.name == name)
        .map(|c| &c.rule)
}

/// Every capacity objective of the service.
pub fn capacity(svc: &Service, r: &ServiceReport) -> Vec<Judged> {
    r.capacity
        .objectives
        .iter()
        .map(|o| Judged {
            objective: format!("capacity {}", o.name),
            verdict: capacity_verdict(o.verdict),
            text: capacity_reason(o, rule_of(svc, &o.name)),
        })
        .collect()
}

/// Every objective of the service, availability first.
pub fn objectives(svc: &Service, r: &ServiceReport) -> Vec<Judged> {
    let mut out = vec![availability(r)];
    out.extend(coverage(svc, r));
    out.extend(latency(svc, r));
    out.extend(capacity(svc, r));
    out
}

/// The overall verdict: the worst, the objectives that have it, and why.
pub fn overall(judged: &[Judged]) -> (Verdict, Vec<String>, String) {
    let worst = judged
        .iter()
        .map(|j| j.verdict)
        .max_by_key(|v| v.severity())
        .unwrap_or(Verdict::NotDeterminable);
    let deciding: Vec<&Judged> = judged.iter().filter(|j| j.verdict == worst).collect();
    let names = deciding.iter().map(|j| j.objective.clone()).collect();
    let why = if worst == Verdict::Met {
        let list: Vec<&str> = deciding.iter().map(|j| j.objective.as_str()).collect();
        format!("met: every objective met ({})", list.join(", "))
    } else {
        let texts: Vec<&str> = deciding.iter().map(|j| j.text.as_str()).collect();
        format!("{}: {}", worst.label(), texts.join("; "))
    };
    (worst, names, why)
}
