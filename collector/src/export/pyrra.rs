//! Pyrra `pyrra.dev/v1alpha1` `ServiceLevelObjective`: one per service, a ratio indicator
//! of Attest's bad and known minute counters (Pyrra takes plain selectors and applies
//! `increase` itself), the configured target, a rolling 30-day window.

use std::collections::BTreeMap;

use attest_config::Service;
use serde::Serialize;

use super::{Options, counters, description, object_name, percent, yaml};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    namespace: String,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Spec {
    description: String,
    target: String,
    window: &'static str,
    indicator: Indicator,
}

#[derive(Serialize)]
struct Indicator {
    ratio: Ratio,
}

#[derive(Serialize)]
struct Ratio {
    errors: Query,
    total: Query,
}

#[derive(Serialize)]
struct Query {
    metric: String,
}

pub fn document(svc: &Service, options: &Options) -> Result<String, String> {
    let c = counters(&svc.name);
    let slo = Object {
        api_version: "pyrra.dev/v1alpha1",
        kind: "ServiceLevelObjective",
        metadata: Metadata {
            name: object_name(&svc.name, "-availability"),
            namespace: options.namespace.clone(),
            annotations: BTreeMap::from([("attest.dev/service", svc.name.clone())]),
        },
        spec: Spec {
            description: description(svc),
            target: percent(svc),
            window: "30d",
            indicator: Indicator {
                ratio: Ratio {
                    errors: Query { metric: c.bad },
                    total: Query { metric: c.known },
                },
            },
        },
    };
    Ok(format!("---\n{}", yaml(&slo)?))
}
