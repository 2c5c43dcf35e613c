//! The agreed method of each service, worded from the configuration in force: which checks
//! measure it (kind, target, interval), on which agents, the quorum and minimum reporters,
//! the objectives (availability, coverage minimum, latency, capacity), the agreement's
//! start, the calendar (zone, service hours, holidays) and the parties (description, owner,
//! customer, agreement reference). An auditor compares these with the signed agreement.
//!
//! Invariants:
//! - Reads only the configuration and the list of agents that reported; derives no figure.
//! - A check defined on the agents (not a central `[[check]]`) is named with
//!   `defined_in = "agent"` and no kind, target or interval: the collector does not know
//!   them, and the report must not guess.

use attest_config::{CheckSpec, CollectorConfig, Quorum, Service, fleet};

use super::model::{CheckTerm, Terms, ppm_percent, weekly_text};
use super::verdict::capacity_rule;

/// The terms of `svc` and its checks; `reporting` = the agents that reported for it in the
/// month (sorted).
pub fn of(cfg: &CollectorConfig, svc: &Service, reporting: &[String]) -> (Terms, Vec<CheckTerm>) {
    let checks: Vec<CheckTerm> = svc.checks.iter().map(|id| check(cfg, id)).collect();
    let mut assigned: Vec<String> = checks
        .iter()
        .flat_map(|c| c.assigned_agents.iter().cloned())
        .collect();
    assigned.sort();
    assigned.dedup();
    let terms = Terms {
        description: svc.info.description.clone(),
        owner: svc.info.owner.clone(),
        customer: svc.info.customer.clone(),
        agreement: svc.info.agreement.clone(),
        time_zone: svc.time_zone.clone(),
        target_percent: ppm_percent(svc.target.0),
        quorum: quorum(svc.quorum),
        min_reporters: svc.min_reporters,
        min_coverage_percent: svc.min_coverage.map(|p| ppm_percent(p.0)),
        latency_threshold_seconds: svc.latency.as_ref().map(|l| l.threshold.as_secs_f64()),
        latency_target_percent: svc.latency.as_ref().map(|l| ppm_percent(l.target.0)),
        agreement_start: svc.start,
        service_hours: svc.service_hours.iter().map(weekly_text).collect(),
        holidays: svc.holidays.iter().map(ToString::to_string).collect(),
        assigned_agents: assigned,
        reporting_agents: reporting.to_vec(),
        capacity_hosts: svc.hosts.clone(),
        capacity_objectives: svc
            .capacity
            .iter()
            .map(|o| format!("{} {}", o.name, capacity_rule(&o.rule)))
            .collect(),
    };
    (terms, checks)
}

/// How the quorum decides a minute, in words: `majority: bad when more than half of the
/// reporting agents fail`.
pub fn quorum(q: Quorum) -> String {
    match q {
        Quorum::Any => "any: bad when at least one reporting agent fails".into(),
        Quorum::Majority => "majority: bad when more than half of the reporting agents fail".into(),
        Quorum::All => "all: bad when every reporting agent fails".into(),
        Quorum::AtLeast(n) => format!("at least {n}: bad when {n} or more reporting agents fail"),
    }
}

fn check(cfg: &CollectorConfig, id: &str) -> CheckTerm {
    let Some(central) = cfg.checks.iter().find(|c| c.check.id == id) else {
        return CheckTerm {
            id: id.to_string(),
            kind: None,
            target: None,
            interval_seconds: None,
            timeout_seconds: None,
            defined_in: "agent".into(),
            assigned_agents: Vec::new(),
        };
    };
    let c = &central.check;
    let assigned = cfg
        .agents
        .iter()
        .filter(|a| {
            cfg.assignments
                .iter()
                .any(|r| r.checks.iter().any(|x| x == id) && fleet::selects(r, a))
        })
        .map(|a| a.id.clone())
        .collect();
    CheckTerm {
        id: id.to_string(),
        kind: Some(c.spec.kind().to_string()),
        target: Some(target(&c.spec)),
        interval_seconds: Some(c.interval.as_secs_f64()),
        timeout_seconds: Some(c.timeout.as_secs_f64()),
        defined_in: "collector".into(),
        assigned_agents: assigned,
    }
}

/// What a check probes: `GET https://shop.example/health`, `db.example:5432 (TLS)`,
/// `shop.example A @192.0.2.53:53`, `the agent's host`.
pub fn target(spec: &CheckSpec) -> String {
    match spec {
        CheckSpec::Http(h) => format!("{} {}", h.method, h.url),
        CheckSpec::Tcp(t) if t.tls.is_some() => format!("{} (TLS)", t.address),
        CheckSpec::Tcp(t) => t.address.clone(),
        CheckSpec::Dns(d) => format!("{} {} @{}", d.name, d.record_type, d.server),
        CheckSpec::Icmp(i) => i.host.clone(),
        CheckSpec::Tls(t) => format!(
            "{} (certificate valid ≥ {} days)",
            t.address, t.min_days_left
        ),
        CheckSpec::Host(_) => "the agent's host".into(),
    }
}

/// One check in a sentence: `web-http: http GET https://web.example/ every 60 s on a1, a2`,
/// `erp-http: defined on the agents`.
pub fn check_text(c: &CheckTerm) -> String {
    match (&c.kind, &c.target, c.interval_seconds) {
        (Some(kind), Some(target), Some(every)) => {
            let on = if c.assigned_agents.is_empty() {
                "assigned to no agent".to_string()
            } else {
                format!("on {}", c.assigned_agents.join(", "))
            };
            format!("{}: {kind} {target} every {every} s, {on}", c.id)
        }
        _ => format!("{}: defined in the agents' configuration", c.id),
    }
}
