//! The JSON report contract cannot drift: every key a real report (`report::model`)
//! serialises to (at any depth) is named in docs/sla.md, the top-level keys are listed in
//! docs/http-api.md, and every `MaintenanceView` field is in docs/http-api.md, every capacity
//! figure field in docs/sla.md. The report comes from the real path (config → SQLite store →
//! figures → engine → report model), and incidents and capacity figures are converted from
//! the engine's own values the same way, so a renamed or added field fails here.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use attest_collector::clock::SystemClock;
use attest_collector::figures::Figures;
use attest_collector::maintenance::MaintenanceView;
use attest_collector::report::{self, MonthQuery, model};
use attest_collector::sla::{CapacityFigure, Incident};
use serde_json::Value;

fn read(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Words of a markdown page: runs of letters, digits and `_`.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every object key in `v`, at any depth.
fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                out.insert(k.clone());
                keys(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
        _ => {}
    }
}

/// One report of a configured service with an empty store: every field is serialised
/// (absent figures as `null`; `start` makes `eligible_since` an object), so the key set is
/// the full contract except incident entries.
fn report() -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = r#"
        [storage]
        data_dir = "data"

        [[service]]
        name = "web"
        checks = ["web-home"]
        target = "99.9%"
        min_coverage = "90%"
        latency = { threshold = "500ms", target = "95%" }
        start = 2026-09-01T00:00:00Z
        hosts = ["a1"]
        capacity = [
          { kind = "cpu", statistic = "p95", max = "70%" },
          { kind = "filesystem", resource = "/", statistic = "days_to_threshold", threshold = "90%", min_days = 30 },
        ]

        [[agent]]
        id = "a1"
        token = "token-a1-0123456789"
    "#;
    let file = dir.path().join("collector.toml");
    let cfg = attest_config::parse_collector(&file.display().to_string(), src)
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
    let store = attest_collector::store::open(&cfg.storage).expect("open SQLite store");
    let figures = Figures::new(Arc::new(cfg), store);
    let q = MonthQuery::parse("2026-09", None, Some("2026-10-01T00:00:00Z"))
        .unwrap_or_else(|r| panic!("query refused: {}", r.reason));
    let reports = report::month_reports(&figures, &q, &SystemClock)
        .unwrap_or_else(|r| panic!("month_reports refused: {}", r.reason));
    serde_json::to_value(&reports).expect("reports serialise")
}

#[test]
fn every_service_report_key_is_documented() {
    let json = report();
    let first = json.get(0).expect("one report for the one service");
    let mut all = BTreeSet::new();
    keys(first, &mut all);
    assert!(all.contains("burn_rates") && all.contains("5m"), "{all:?}");
    // The empty store yields no incident entries: add the keys of an engine incident as the
    // report shows it.
    keys(
        &serde_json::to_value(model::Incident::from(&incident())).expect("incident serialises"),
        &mut all,
    );
    assert!(all.contains("open_at_start"), "{all:?}");
    for k in [
        "counted_minutes",
        "constraint",
        "series",
        "r_squared",
        "status",
    ] {
        assert!(all.contains(k), "capacity key {k} missing from {all:?}");
    }
    let sla = words(&read("docs/sla.md"));
    let missing: Vec<_> = all.iter().filter(|k| !sla.contains(*k)).collect();
    assert!(missing.is_empty(), "docs/sla.md does not name: {missing:?}");

    let api = words(&read("docs/http-api.md"));
    let top: Vec<_> = first
        .as_object()
        .expect("a report is an object")
        .keys()
        .filter(|k| !api.contains(*k))
        .collect();
    assert!(top.is_empty(), "docs/http-api.md does not list: {top:?}");
}

fn incident() -> Incident {
    let at = "2026-09-03T10:00:00Z".parse().expect("instant");
    Incident {
        start: at,
        end: at,
        open_at_start: false,
        open_at_end: false,
        downtime_minutes: 1,
        agents: vec!["a".into()],
        reason: Some("timeout".into()),
    }
}

#[test]
fn every_capacity_figure_field_is_documented() {
    let figure = CapacityFigure {
        agent: "a".into(),
        kind: "cpu".into(),
        resource: String::new(),
        minutes: 1,
        p95: Some(0.5),
        max: Some(0.5),
        minutes_above_warning: 0,
        minutes_above_critical: 0,
        trend_per_day: Some(0.01),
        days_until_critical: Some(3.0),
        trend: attest_collector::sla::capacity::Trend {
            from: "2026-09-03T10:00:00Z".parse().expect("instant"),
            to: "2026-09-10T10:00:00Z".parse().expect("instant"),
            minutes: 2,
            slope_per_day: Some(0.01),
            r_squared: Some(1.0),
            value_at_end: Some(0.87),
        },
        forecast: attest_collector::sla::capacity::Forecast::WithinHorizon { days: 3.0 },
    };
    let mut all = BTreeSet::new();
    keys(
        &serde_json::to_value(model::CapacityFigure::from(&figure)).expect("figure serialises"),
        &mut all,
    );
    assert_eq!(all.len(), 19, "{all:?}");
    let sla = words(&read("docs/sla.md"));
    let missing: Vec<_> = all.iter().filter(|k| !sla.contains(*k)).collect();
    assert!(missing.is_empty(), "docs/sla.md does not name: {missing:?}");
}

#[test]
fn every_maintenance_view_field_is_documented() {
    let at = "2026-09-03T10:00:00Z".parse().expect("instant");
    let view = MaintenanceView {
        id: 1,
        service: "web".into(),
        start: at,
        end: at,
        reason: "CHG-42".into(),
        created_at: at,
        cancelled_at: Some(at),
        registered_by: Some("admin".into()),
        reference: Some("CHG-42".into()),
        registered_after_start_seconds: Some(60),
    };
    let mut all = BTreeSet::new();
    keys(
        &serde_json::to_value(&view).expect("view serialises"),
        &mut all,
    );
    assert_eq!(all.len(), 10, "{all:?}");
    let api = words(&read("docs/http-api.md"));
    let missing: Vec<_> = all.iter().filter(|k| !api.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "docs/http-api.md does not name: {missing:?}"
    );
}

#[test]
fn word_split_keeps_snake_case_and_window_names() {
    let w = words("`burn_rates {\"5m\",\"30m\"}` and `as_of`.");
    for k in ["burn_rates", "5m", "30m", "as_of"] {
        assert!(w.contains(k), "{k} missing from {w:?}");
    }
    assert!(!w.contains("burn"));
}

/// The rules issue 9 made part of the contract are stated where users read them: each
/// eligibility basis the report can name, each alert rule, the exact threshold rule, the
/// exact-fraction form, and the exit code of `sla --fail-on-breach`.
#[test]
fn eligibility_exactness_and_breach_exit_are_documented() {
    use attest_collector::sla::EligibilityBasis;
    let sla_text = read("docs/sla.md");
    let sla = words(&sla_text);
    for b in [
        EligibilityBasis::Start,
        EligibilityBasis::FirstConfigured,
        EligibilityBasis::FirstMeasured,
    ] {
        assert!(
            sla.contains(b.as_str()),
            "docs/sla.md does not name {}",
            b.as_str()
        );
    }
    for rule in ["page_fast", "page_slow", "ticket", "eligible_since"] {
        assert!(sla.contains(rule), "docs/sla.md does not name {rule}");
    }
    assert!(
        sla_text.contains("exact duration") && sla_text.contains("`≤ threshold`"),
        "docs/sla.md must state the exact threshold rule"
    );
    assert!(
        sla_text.contains("\"43170/43200\""),
        "the exact-fraction example"
    );
    let cli = read("docs/cli.md");
    assert!(
        cli.contains("| 3 |") && cli.contains("--fail-on-breach"),
        "docs/cli.md must list exit code 3 of sla --fail-on-breach"
    );
    let config = read("docs/config.md");
    assert!(
        config.contains("check-config` warns"),
        "docs/config.md: start warning"
    );
}
