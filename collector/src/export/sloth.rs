//! Sloth `prometheus/v1`: one spec per service with one SLO, `availability`, whose events
//! are Attest's classified minutes: errors = bad minutes, total = known minutes. Sloth
//! renders `(error_query) / (total_query)` per window, which is one minus Attest's own
//! `service:attest_slo_availability:ratio_rate*` recording rules (a test checks both in
//! promtool).

use std::collections::BTreeMap;

use attest_config::Service;
use serde::Serialize;

use super::{counters, description, object_name, yaml};

#[derive(Serialize)]
struct Spec {
    version: &'static str,
    service: String,
    labels: BTreeMap<&'static str, String>,
    slos: Vec<Slo>,
}

#[derive(Serialize)]
struct Slo {
    name: &'static str,
    objective: f64,
    description: String,
    sli: Sli,
    alerting: Alerting,
}

#[derive(Serialize)]
struct Sli {
    events: Events,
}

#[derive(Serialize)]
struct Events {
    error_query: String,
    total_query: String,
}

#[derive(Serialize)]
struct Alerting {
    name: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
    page_alert: Alert,
    ticket_alert: Alert,
}

#[derive(Serialize)]
struct Alert {
    labels: BTreeMap<&'static str, &'static str>,
}

/// Sloth's window variable.
pub const WINDOW: &str = "{{.window}}";

/// The error and total queries of one service, with Sloth's `{{.window}}`.
pub fn queries(service: &str) -> (String, String) {
    let c = counters(service);
    (
        format!("sum(increase({}[{WINDOW}]))", c.bad),
        format!("sum(increase({}[{WINDOW}]))", c.known),
    )
}

pub fn document(svc: &Service) -> Result<String, String> {
    let (error_query, total_query) = queries(&svc.name);
    let spec = Spec {
        version: "prometheus/v1",
        service: object_name(&svc.name, ""),
        labels: BTreeMap::from([("attest_service", svc.name.clone())]),
        slos: vec![Slo {
            name: "availability",
            objective: f64::from(svc.target.0) / 1e4,
            description: description(svc),
            sli: Sli {
                events: Events {
                    error_query,
                    total_query,
                },
            },
            alerting: Alerting {
                name: "AttestAvailabilityBudgetBurn",
                labels: BTreeMap::from([("category", "availability")]),
                page_alert: Alert {
                    labels: BTreeMap::from([("severity", "page")]),
                },
                ticket_alert: Alert {
                    labels: BTreeMap::from([("severity", "ticket")]),
                },
            },
        }],
    };
    Ok(format!("---\n{}", yaml(&spec)?))
}
