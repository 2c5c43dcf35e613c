//! Shared by the `prometheus_*` tests: the exported metric names read from the code, the
//! PromQL of the dashboards and rule files, and a scanner that finds the metric names a
//! PromQL expression references.
//!
//! Invariants: names come from the source files that define them (the collector's and the
//! agent's `names.rs`), so a new name is picked up without editing the tests; the scanner errs
//! on the side of failing (an identifier it cannot classify counts as a metric name).

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root above tests/")
        .to_path_buf()
}

pub fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Every string literal starting with `attest_` in `text`.
fn attest_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("attest_"))
        .map(str::to_string)
        .collect()
}

/// The agent's names file without its unit tests.
fn agent_names(src: &str) -> &str {
    src.split("#[cfg(test)]").next().unwrap_or(src)
}

/// Names as written in the code (counters without `_total`), including the host prefix.
pub struct Names {
    pub collector: BTreeSet<String>,
    pub agent: BTreeSet<String>,
    /// Literals ending in `_` are prefixes (`attest_agent_host_`), not metrics.
    pub prefixes: BTreeSet<String>,
}

impl Names {
    pub fn load() -> Names {
        let collector: BTreeSet<_> = attest_literals(&read("collector/src/metrics/names.rs"))
            .into_iter()
            .collect();
        let agent_src = read("agent/src/telemetry/names.rs");
        let all_agent: BTreeSet<_> = attest_literals(agent_names(&agent_src))
            .into_iter()
            .collect();
        let (prefixes, agent) = all_agent.into_iter().partition(|n| n.ends_with('_'));
        assert!(
            collector.len() > 30,
            "too few collector names: {collector:?}"
        );
        Names {
            collector,
            agent,
            prefixes,
        }
    }

    pub fn metrics(&self) -> BTreeSet<String> {
        self.collector.union(&self.agent).cloned().collect()
    }

    /// True if `name` is exported: as written, or a counter with the encoder's `_total`.
    pub fn exports(&self, name: &str) -> bool {
        let m = self.metrics();
        m.contains(name) || name.strip_suffix("_total").is_some_and(|n| m.contains(n))
    }
}

/// Parses a YAML file of the repository into JSON values (serde-saphyr).
pub fn yaml(rel: &str) -> serde_json::Value {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

pub const RULES: &str = "dashboards/prometheus/attest.rules.yml";
pub const RULES_TEST: &str = "dashboards/prometheus/attest.rules.test.yml";
pub const SCRAPE_CONFIG: &str = "dashboards/prometheus/prometheus.yml";
pub const DASHBOARDS: &str = "dashboards/grafana/dashboards";

/// (where, expr) of every rule, and the names the recording rules define.
pub fn rules() -> (Vec<(String, String)>, BTreeSet<String>) {
    let doc = yaml(RULES);
    let mut exprs = Vec::new();
    let mut recorded = BTreeSet::new();
    let groups = doc["groups"].as_array().expect("rule file has groups");
    for g in groups {
        for r in g["rules"].as_array().expect("group has rules") {
            let name = r["record"]
                .as_str()
                .or_else(|| r["alert"].as_str())
                .expect("rule has record or alert")
                .to_string();
            if r["record"].is_string() {
                recorded.insert(name.clone());
            }
            let expr = r["expr"].as_str().expect("rule has expr").to_string();
            exprs.push((format!("{RULES}: {name}"), expr));
        }
    }
    (exprs, recorded)
}

/// Every dashboard file: (file name, parsed JSON).
pub fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = root().join(DASHBOARDS);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dashboards dir") {
        let p = entry.expect("dir entry").path();
        if p.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", p.display()));
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 4, "expected 4 dashboards, found {}", out.len());
    out
}

/// (where, expr) of every panel target and every query variable of a dashboard; a
/// `label_values(expr, label)` variable contributes its `expr`.
pub fn dashboard_exprs(file: &str, d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((format!("{file}: panel {:?}", p["title"]), e.to_string()));
            }
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("query variable has a query");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(e, _)| e)
                .unwrap_or(q);
            out.push((
                format!("{file}: variable {:?}", v["name"]),
                inner.to_string(),
            ));
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count",
    "count_over_time",
    "delta",
    "deriv",
    "floor",
    "histogram_quantile",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "last_over_time",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "predict_linear",
    "quantile",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sort",
    "sort_desc",
    "stddev",
    "sum",
    "sum_over_time",
    "time",
    "timestamp",
    "topk",
    "bottomk",
    "vector",
];

/// Removes string literals and the insides of `{...}` and `[...]`.
fn strip(expr: &str) -> String {
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The metric names `expr` references (every identifier that is not a function, keyword,
/// grouping label or Grafana variable), or an error naming an unknown function.
pub fn metric_names(expr: &str) -> Result<Vec<String>, String> {
    let s = strip(expr);
    let b = s.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'$' || c.is_ascii_digit() || c == b'.' {
            // Grafana variable or number/duration: skip the whole token.
            i += 1;
            while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_' || c == b':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let tok = &s[start..i];
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let rest = &s[j..];
        let grouped = ["by", "without"].iter().any(|g| {
            rest.strip_prefix(g)
                .is_some_and(|r| r.trim_start().starts_with('('))
        });
        let call = (j < b.len() && b[j] == b'(') || (grouped && FUNCTIONS.contains(&tok));
        if GROUPING.contains(&tok) {
            if call {
                i = s[j..].find(')').map_or(b.len(), |k| j + k + 1);
            }
        } else if KEYWORDS.contains(&tok) {
        } else if call {
            if !FUNCTIONS.contains(&tok) {
                return Err(format!("unknown function {tok}() in {expr}"));
            }
        } else {
            names.push(tok.to_string());
        }
    }
    Ok(names)
}

/// A binary on PATH, or None (the caller skips loudly).
pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}
