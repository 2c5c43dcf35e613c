//! The metric contract cannot drift: every exported name is documented in docs/metrics.md and
//! the page documents nothing else; every dashboard is valid Classic Grafana JSON with a fixed
//! uid and a `datasource` variable; every PromQL expression in dashboards and rules references
//! only metrics the collector or agent export (or the rule file records). No binaries needed.

mod prometheus_support;

use std::collections::BTreeSet;

use prometheus_support::{Names, dashboard_exprs, dashboards, metric_names, read, rules};

/// Tokens of docs/metrics.md that name a metric or rule: start with `attest_`, or contain
/// `attest` and a colon (recording rules).
fn doc_tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|t| t.trim_matches(':'))
        .filter(|t| t.starts_with("attest_") || (t.contains(':') && t.contains("attest")))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_exported_name_is_documented_and_nothing_else() {
    let names = Names::load();
    let (_, recorded) = rules();
    let docs = read("docs/metrics.md");
    let tokens = doc_tokens(&docs);
    let documented =
        |n: &String| tokens.contains(n.as_str()) || tokens.contains(&format!("{n}_total"));
    let missing: Vec<_> = names
        .metrics()
        .into_iter()
        .chain(names.prefixes.iter().cloned())
        .filter(|n| !documented(n))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/metrics.md does not document: {missing:?}"
    );
    let unknown: Vec<_> = tokens
        .iter()
        // `attest_sla_*` style prefixes in prose end in `_` and name no single metric.
        .filter(|t| !t.ends_with('_') && !names.exports(t) && !recorded.contains(*t))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/metrics.md names metrics that are neither exported nor recorded: {unknown:?}"
    );
    for r in &recorded {
        assert!(tokens.contains(r), "recording rule {r} is not documented");
    }
}

#[test]
fn scanner_finds_metrics_and_skips_the_rest() {
    let e = r#"max without (window) (attest_sla_burn_rate{window="1h", x=~"a|b"} > 14.4
        and ignoring (window) rate(attest_x_total[$__rate_interval] offset 5m)) or vector(0)
        / on (job) group_left agent:attest_agent_last_seen:age_seconds{agent=~"$agent"}"#;
    assert_eq!(
        metric_names(e).expect("known functions"),
        vec![
            "attest_sla_burn_rate",
            "attest_x_total",
            "agent:attest_agent_last_seen:age_seconds"
        ]
    );
    assert!(metric_names("ratee(attest_x[5m])").is_err());
    assert_eq!(metric_names("up == 0").expect("no functions"), vec!["up"]);
}

#[test]
fn every_promql_expression_references_exported_metrics_only() {
    let names = Names::load();
    let (mut exprs, recorded) = rules();
    for (file, d) in dashboards() {
        exprs.extend(dashboard_exprs(&file, &d));
    }
    assert!(
        exprs.len() > 60,
        "too few expressions found: {}",
        exprs.len()
    );
    let mut bad = Vec::new();
    for (at, e) in &exprs {
        match metric_names(e) {
            Err(err) => bad.push(format!("{at}: {err}")),
            Ok(ms) => {
                assert!(!ms.is_empty(), "{at}: no metric in {e}");
                for m in ms {
                    if !(names.exports(&m) || recorded.contains(&m) || m == "up") {
                        bad.push(format!("{at}: {m} is not exported"));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn dashboards_are_classic_json_with_fixed_uid_and_datasource_variable() {
    let mut uids = BTreeSet::new();
    let want = [
        "attest-sla-overview",
        "attest-service-detail",
        "attest-capacity",
        "attest-fleet",
    ];
    for (file, d) in dashboards() {
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(uids.insert(uid.to_string()), "{file}: uid {uid} used twice");
        assert!(
            d["schemaVersion"].as_u64().is_some(),
            "{file}: no schemaVersion"
        );
        assert!(
            d.get("__inputs").is_none(),
            "{file}: __inputs belongs only in the UI-import copy"
        );
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{file}: no `datasource` variable of type prometheus"
        );
        let mut ids = BTreeSet::new();
        let panels = d["panels"].as_array().expect("panels");
        for p in panels {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].is_u64(), "{file}: panel {id} gridPos.{k}");
            }
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: panel {id} must use the datasource variable, not a fixed uid"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: panel {id} has no query");
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{file}: panel {id} target"
                );
            }
        }
    }
    for w in want {
        assert!(uids.contains(w), "dashboard {w} missing; found {uids:?}");
    }
}

#[test]
fn provisioning_files_point_at_the_dashboards() {
    let p = prometheus_support::yaml("dashboards/grafana/provisioning/dashboards/attest.yml");
    assert_eq!(p["apiVersion"], 1);
    let prov = &p["providers"][0];
    assert_eq!(prov["type"], "file");
    assert!(
        prov["options"]["path"]
            .as_str()
            .is_some_and(|s| s.ends_with("/dashboards"))
    );
    let ds = prometheus_support::yaml("dashboards/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
}
