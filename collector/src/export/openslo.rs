//! OpenSLO v1: per service a `Service`, an `SLI` (a ratio of Attest's good and known
//! minute counters) and an `SLO` on it: occurrences (the events are classified minutes),
//! the calendar month of the service's zone, the configured target.

use std::collections::BTreeMap;

use attest_config::Service;
use serde::Serialize;

use super::{counters, description, object_name, stream, yaml};

const API_VERSION: &str = "openslo/v1";
/// Any first of a month anchors a monthly calendar window; a fixed one keeps the output
/// byte-stable from one export to the next.
const CALENDAR_START: &str = "2000-01-01 00:00:00";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    display_name: String,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct ServiceSpec {
    description: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SliSpec {
    description: String,
    ratio_metric: RatioMetric,
}

#[derive(Serialize)]
struct RatioMetric {
    counter: bool,
    good: Source,
    total: Source,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    metric_source: MetricSource,
}

#[derive(Serialize)]
struct MetricSource {
    #[serde(rename = "type")]
    kind: &'static str,
    spec: QuerySpec,
}

#[derive(Serialize)]
struct QuerySpec {
    query: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SloSpec {
    description: String,
    service: String,
    indicator_ref: String,
    budgeting_method: &'static str,
    time_window: Vec<TimeWindow>,
    objectives: Vec<Objective>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TimeWindow {
    duration: &'static str,
    is_rolling: bool,
    calendar: Calendar,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Calendar {
    start_time: &'static str,
    time_zone: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Objective {
    display_name: String,
    target: f64,
}

fn metadata(svc: &Service, suffix: &str, display: String) -> Metadata {
    Metadata {
        name: object_name(&svc.name, suffix),
        display_name: display,
        annotations: BTreeMap::from([("attest.dev/service", svc.name.clone())]),
    }
}

/// The three documents of one service.
pub fn documents(svc: &Service) -> Result<String, String> {
    let c = counters(&svc.name);
    let prometheus = |query: String| Source {
        metric_source: MetricSource {
            kind: "Prometheus",
            spec: QuerySpec { query },
        },
    };
    let service = Object {
        api_version: API_VERSION,
        kind: "Service",
        metadata: metadata(svc, "", svc.name.clone()),
        spec: ServiceSpec {
            description: format!(
                "Service {:?} measured by Attest (checks: {}).",
                svc.name,
                svc.checks.join(", ")
            ),
        },
    };
    let sli = Object {
        api_version: API_VERSION,
        kind: "SLI",
        metadata: metadata(svc, "-availability", format!("{} availability", svc.name)),
        spec: SliSpec {
            description: description(svc),
            ratio_metric: RatioMetric {
                counter: true,
                good: prometheus(c.good),
                total: prometheus(c.known),
            },
        },
    };
    // The target in [0, 1): a 100 % target is the largest ratio below 1 (OpenSLO has none
    // equal to 1; Attest allows no bad minute at all then).
    let target = svc.target.as_ratio().min(0.999_999);
    let slo = Object {
        api_version: API_VERSION,
        kind: "SLO",
        metadata: metadata(svc, "-availability", format!("{} availability", svc.name)),
        spec: SloSpec {
            description: description(svc),
            service: object_name(&svc.name, ""),
            indicator_ref: object_name(&svc.name, "-availability"),
            budgeting_method: "Occurrences",
            time_window: vec![TimeWindow {
                duration: "1M",
                is_rolling: false,
                calendar: Calendar {
                    start_time: CALENDAR_START,
                    time_zone: svc.time_zone.clone(),
                },
            }],
            objectives: vec![Objective {
                display_name: format!("{} of known minutes good", svc.target),
                target,
            }],
        },
    };
    Ok(stream(&[yaml(&service)?, yaml(&sli)?, yaml(&slo)?]))
}
