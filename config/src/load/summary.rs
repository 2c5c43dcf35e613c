//! One-line summaries of a loaded configuration, printed by `check-config` and at
//! startup so that an operator sees at a glance what a file amounts to.
//!
//! Invariant: a summary is a single line and depends only on the configuration; warnings
//! are lines of their own about a valid file that will probably not do what is meant.

use std::collections::BTreeMap;

use super::values::{format_bytes, format_duration};
use crate::model::{AgentConfig, CollectorConfig, StorageBackend};

/// `agent "web-01": 5 checks (http 2, tcp 1, dns 1, host 1) → https://collector:9850, spool ./spool (256 MiB)`
pub fn summary_agent(cfg: &AgentConfig) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cfg.checks {
        *kinds.entry(c.spec.kind()).or_default() += 1;
    }
    // Fixed kind order reads better than alphabetical.
    let order = ["http", "tcp", "dns", "icmp", "tls", "host"];
    let by_kind: Vec<String> = order
        .iter()
        .filter_map(|k| kinds.get(k).map(|n| format!("{k} {n}")))
        .collect();
    let n = cfg.checks.len();
    // Every agent also runs what the collector assigns it; one without own checks runs
    // only that, which "0 checks" would hide.
    let own = if n == 0 {
        "no own checks (runs the checks the collector assigns)".to_string()
    } else {
        format!("{n} check{}", plural(n))
    };
    let kinds = if by_kind.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_kind.join(", "))
    };
    format!(
        "agent {:?}: {own}{kinds} → {}, spool {} ({})",
        cfg.agent.id,
        collectors(&cfg.agent.collector_urls),
        cfg.spool.dir.display(),
        format_bytes(cfg.spool.max_bytes),
    )
}

/// `collector on 127.0.0.1:9850 (sqlite in ./data, raw 35d, rollups 400d): 1 agent, 2 services (web 99.9%, api 99.5%)`
pub fn summary_collector(cfg: &CollectorConfig) -> String {
    let backend = match &cfg.storage.backend {
        StorageBackend::Sqlite => format!("sqlite in {}", cfg.storage.data_dir.display()),
        StorageBackend::Postgres { .. } => "postgres".to_string(),
    };
    let tls = if cfg.server.tls_cert.is_some() {
        " with TLS"
    } else {
        ""
    };
    let services: Vec<String> = cfg
        .services
        .iter()
        .map(|s| format!("{} {}", s.name, s.target))
        .collect();
    let services = if services.is_empty() {
        String::new()
    } else {
        format!(" ({})", services.join(", "))
    };
    format!(
        "collector on {}{tls} ({backend}, raw {}, rollups {}): {} agent{}, {} service{}{services}",
        cfg.server.listen,
        format_duration(cfg.storage.raw_retention),
        format_duration(cfg.storage.rollup_retention),
        cfg.agents.len(),
        plural(cfg.agents.len()),
        cfg.services.len(),
        plural(cfg.services.len()),
    )
}

/// The preferred collector, then the failover order: `https://a:9850 (failover https://b:9850)`.
fn collectors(urls: &[String]) -> String {
    match urls {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (failover {})", rest.join(", ")),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Warnings about a valid collector configuration, one line each (`check-config` prints
/// them on stderr and still exits 0). A service without `start` is eligible only from the
/// earlier of its first measurement and the first time the store saw it configured, so
/// time without evidence before that is not reported as unknown.
pub fn warnings_collector(cfg: &CollectorConfig) -> Vec<String> {
    cfg.services
        .iter()
        .filter(|s| s.start.is_none())
        .map(|s| {
            format!(
                "warning: service {:?} has no start: its minutes count only from the earlier of                  its first measurement and the first time the collector saw it configured; set                  start = <the agreement's start, e.g. 2026-01-01T00:00:00Z> so that time without                  measurements counts as unknown",
                s.name
            )
        })
        .collect()
}
