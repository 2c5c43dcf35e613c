//! The public SLA JSON is pinned byte for byte: `/api/v1/sla` (compact) and
//! `attest-collector sla --format json` (pretty) over a fixed month of data — incidents,
//! maintenance, a gap, latency, an open incident and a service with nothing measured — must
//! print exactly the files in `tests/golden/`. They were written by the code in which the
//! engine's own types were the JSON, so the report DTOs built from engine results cannot
//! drift from the published format unnoticed. Regenerated deliberately for issue 9 (exact
//! fractions, `known_minutes`, planning remaining, burn-window counts, named alert rules,
//! `eligible_since`, exact latency fields) and for issue 14 (the `capacity` object of each
//! report): a change to the published bytes is made by running with `ATTEST_BLESS=1`, which
//! rewrites the files, and reviewing their diff.

mod support;

use attest_collector::report::{self, MonthQuery};
use attest_collector::store::{IngestBatch, NewMaintenance, Store};
use attest_config::wire::{FailureReason, Measurement};
use jiff::Timestamp;
use support::{Collector, Refresh, config};

const TOML: &str = r#"
[server]
admin_token = "admin-secret"

[[agent]]
id = "a1"
token = "token-a1"

[[agent]]
id = "a2"
token = "token-a2"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
min_coverage = "90%"
time_zone = "UTC"
latency = { threshold = "250ms", target = "99%" }

[[service]]
name = "api"
checks = ["api"]
target = "99.5%"
time_zone = "Europe/Berlin"
"#;

/// Complete month and a month in progress (an incident open at `at`).
const QUERIES: [(&str, &str); 2] = [
    ("complete", "month=2026-09&at=2026-10-01T00:00:00Z"),
    (
        "in-progress",
        "month=2026-09&service=web&at=2026-09-10T12:00:00Z",
    ),
];

fn ts(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

/// The measurement of `agent` for minute `m` after 2026-09-01T00:00Z.
fn measurement(agent: &str, m: i64) -> Measurement {
    let at = ts("2026-09-01T00:00:00Z")
        .checked_add(jiff::SignedDuration::from_mins(m))
        .expect("in range");
    let (day, minute_of_day) = (m / 1440, m % 1440);
    let failing = match agent {
        // 3 September 10:00–10:29: both agents time out.
        _ if day == 2 && (600..630).contains(&minute_of_day) => Some(FailureReason::Timeout),
        // 5 September 12:00–12:04: only a1 is refused.
        "a1" if day == 4 && (720..725).contains(&minute_of_day) => {
            Some(FailureReason::ConnectRefused)
        }
        // 10 September from 11:50 on: both fail (open at the in-progress instant).
        _ if day == 9 && minute_of_day >= 710 => Some(FailureReason::Status),
        _ => None,
    };
    let mut ms = Measurement::new("web", at, failing.is_none());
    ms.reason = failing;
    ms.duration_seconds = Some(0.05 + (m % 11) as f64 * 0.03);
    ms
}

fn load(store: &dyn Store) {
    let received_at = ts("2026-09-10T12:00:00Z");
    let minutes: Vec<i64> = (0..9 * 1440 + 720).collect();
    let mut seq = 0;
    for agent in ["a1", "a2"] {
        for chunk in minutes.chunks(1000) {
            seq += 1;
            let mut measurements: Vec<Measurement> =
                chunk.iter().map(|&m| measurement(agent, m)).collect();
            // a1 lost 7 September 00:00–00:59 (spool full): reported as a gap.
            let mut gaps = Vec::new();
            if agent == "a1" {
                measurements.retain(|m| {
                    !(m.ts >= ts("2026-09-07T00:00:00Z") && m.ts < ts("2026-09-07T01:00:00Z"))
                });
                if chunk.contains(&(6 * 1440)) {
                    gaps.push(attest_config::wire::Gap {
                        check: "web".into(),
                        from: ts("2026-09-07T00:00:00Z"),
                        to: ts("2026-09-07T00:59:00Z"),
                        count: 60,
                    });
                }
            }
            store
                .commit_batch(&IngestBatch {
                    agent: agent.into(),
                    seq,
                    received_at,
                    clock_offset_ms: 0,
                    measurements,
                    gaps,
                    spool: None,
                    seal: None,
                })
                .expect("commit");
        }
    }
    store
        .add_maintenance(
            &NewMaintenance {
                service: "web",
                start: ts("2026-09-03T10:10:00Z"),
                end: ts("2026-09-03T10:20:00Z"),
                reason: "CHG-1",
                registered_by: "admin",
                reference: None,
            },
            received_at,
        )
        .expect("maintenance");
}

fn golden_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The pinned bytes of `name`; with `ATTEST_BLESS=1`, first rewrites the file with `got`.
fn golden(name: &str, got: &str) -> String {
    let p = golden_path(name);
    if std::env::var("ATTEST_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&p, got).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    }
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[tokio::test]
async fn api_and_cli_json_match_the_published_bytes() {
    let cfg = config(TOML);
    let dir = tempfile::tempdir().expect("tempdir");
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        attest_collector::store::SqliteStore::open(&dir.path().join("data")).expect("store"),
    );
    // "api" has been configured since 1 September and never measured: every minute since
    // is unknown. "web" is configured at start-up (now), after its first measurement.
    store
        .note_configured(&["api".to_owned()], ts("2026-09-01T00:00:00Z"))
        .expect("note api");
    let c = Collector::start_on(cfg.clone(), store, dir, Refresh::Loop).await;
    load(c.store.as_ref());
    let http = support::client();
    for (name, query) in QUERIES {
        let r = http
            .get(c.url(&format!("/api/v1/sla?{query}")))
            .send()
            .await
            .expect("sla");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let api = r.text().await.expect("body");
        assert_eq!(
            api,
            golden(&format!("sla-{name}.json"), &api),
            "API bytes of {name}"
        );
        let cli = cli_json(&cfg, c.store.clone(), query);
        assert_eq!(
            cli,
            golden(&format!("sla-{name}.pretty.json"), &cli),
            "CLI bytes of {name}"
        );
    }
}

/// What `attest-collector sla --format json` prints (without the trailing newline).
fn cli_json(
    cfg: &attest_config::CollectorConfig,
    store: std::sync::Arc<dyn Store>,
    query: &str,
) -> String {
    let arg = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
    };
    let figures = attest_collector::figures::Figures::new(std::sync::Arc::new(cfg.clone()), store);
    let q = MonthQuery::parse(arg("month").expect("month"), arg("service"), arg("at"))
        .unwrap_or_else(|r| panic!("refused: {}", r.reason));
    let reports = report::month_reports(&figures, &q, &attest_collector::clock::SystemClock)
        .unwrap_or_else(|r| panic!("refused: {}", r.reason));
    report::json::pretty(&reports).expect("json")
}
