//! A real Prometheus scrapes the real collector and agent: both targets are `up`, the SLA
//! figures Prometheus stored equal what `/metrics` serves, the shipped rules load and evaluate
//! healthy against real series, and every dashboard query is valid PromQL. `promtool check
//! metrics` lints a scrape of both endpoints — the collector's with a rising capacity trend, so
//! the forecast series is in it; only the documented `_minutes` findings are accepted
//! (docs/metrics.md, "Minutes as a unit").
//!
//! Skips loudly when `prometheus`/`promtool` are not installed, unless
//! `ATTEST_REQUIRE_PROMETHEUS=1` makes that a failure (scripts/test installs them).

mod prometheus_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use attest_tests::{Proc, free_port, get, sample, wait_for};
use prometheus_support::{RULES, dashboard_exprs, dashboards, root, which};
use serde_json::Value;

const BOUND: Duration = Duration::from_secs(90);
/// Metrics whose `_minutes` unit promtool questions; kept on purpose (docs/metrics.md).
const MINUTE_METRICS: &[&str] = &[
    "attest_capacity_minutes_above",
    "attest_sla_error_budget_allowed_minutes",
    "attest_sla_error_budget_planning_minutes",
    "attest_sla_error_budget_remaining_minutes",
    "attest_sla_minutes",
    "attest_slo_bad_minutes_total",
    "attest_slo_good_minutes_total",
    "attest_slo_known_minutes_total",
];

fn tool(name: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        assert!(
            std::env::var_os("ATTEST_REQUIRE_PROMETHEUS").is_none(),
            "{name} not on PATH but ATTEST_REQUIRE_PROMETHEUS is set: apt-get install prometheus"
        );
        eprintln!("SKIPPED: {name} not on PATH (apt-get install prometheus, or run scripts/test)");
    }
    found
}

/// A Prometheus server killed on drop; its output goes to a log for post-mortems.
struct Prometheus {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, collector: u16, agent: u16) -> Prometheus {
        let port = free_port();
        let rules = root().join(RULES);
        let config = format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: attest-collector
    static_configs:
      - targets: ["127.0.0.1:{collector}"]
  - job_name: attest-agent
    static_configs:
      - targets: ["127.0.0.1:{agent}"]
"#,
            rules = rules.display()
        );
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let f = std::fs::File::create(&log).expect("prometheus log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, log, port }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/api/v1/<path>?query=<q>` as JSON, None while unreachable.
    async fn api(&self, path: &str, q: Option<&str>) -> Option<Value> {
        let mut url = format!("http://127.0.0.1:{}/api/v1/{path}", self.port);
        if let Some(q) = q {
            url.push_str("?query=");
            url.push_str(&encode(q));
        }
        let (_, body) = get(&url).await?;
        serde_json::from_str(&body).ok()
    }

    /// Instant query: label set -> value; None unless the query succeeded.
    async fn query(&self, q: &str) -> Option<Vec<(BTreeMap<String, String>, f64)>> {
        let v = self.api("query", Some(q)).await?;
        if v["status"] != "success" {
            return None;
        }
        let rows = v["data"]["result"].as_array()?;
        rows.iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect::<Option<BTreeMap<_, _>>>()?;
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((labels, value))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn write_configs(dir: &Path, collector: u16, agent: u16) -> (String, String) {
    let c = format!(
        r#"
[server]
listen = "127.0.0.1:{collector}"

[storage]
backend = "sqlite"
data_dir = "data"

[[agent]]
id = "prom-agent"
token = "prom-secret-token"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
capacity = [{{ kind = "cpu", statistic = "p95", max = "90%" }}]
"#
    );
    let a = format!(
        r#"
[agent]
id = "prom-agent"
collector_url = "http://127.0.0.1:{collector}"
token = "prom-secret-token"
listen = "127.0.0.1:{agent}"

[spool]
dir = "spool"

[transport]
batch_max_age = "200ms"
backoff_initial = "100ms"
backoff_max = "1s"

[[check]]
id = "web"
kind = "tcp"
address = "127.0.0.1:{collector}"
interval = "1s"
timeout = "800ms"
"#
    );
    let (cp, ap) = (dir.join("collector.toml"), dir.join("agent.toml"));
    std::fs::write(&cp, c).expect("write collector config");
    std::fs::write(&ap, a).expect("write agent config");
    (cp.display().to_string(), ap.display().to_string())
}

async fn metrics(port: u16) -> Option<String> {
    get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
}

/// Findings of `promtool check metrics` on one exposition, minus the accepted ones.
fn lint(promtool: &Path, exposition: &str) -> Vec<String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool check metrics");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !MINUTE_METRICS.iter().any(|m| {
                l.strip_prefix(m)
                    .is_some_and(|r| r.trim() == r#"use base unit "seconds" instead of "minutes""#)
            })
        })
        .map(str::to_string)
        .collect()
}

/// The metric that exists only for a rising trend; the lint must see it.
const TREND_METRIC: &str = "attest_capacity_time_to_critical_seconds";

/// Imports an hour of CPU utilisation of the agent's host rising from 50 % to 80 % (below
/// the 90 % critical threshold, so no alert), ending now: the trend reaches critical within
/// the forecast horizon, so the capacity forecast series exists when promtool lints.
fn import_rising_cpu(dir: &Path, ccfg: &str) {
    let now = attest_tests::wall_now();
    let month_start: jiff::Timestamp = now
        .strftime("%Y-%m-01T00:00:00Z")
        .to_string()
        .parse()
        .expect("month start");
    let mut lines = String::new();
    for i in 0..60i64 {
        let ts = now - jiff::SignedDuration::from_mins(60 - i);
        if ts < month_start {
            continue;
        }
        let cpu = 0.5 + 0.3 * i as f64 / 59.0;
        lines.push_str(&format!(
            "{{\"agent\":\"prom-agent\",\"check\":\"host\",\"ts\":\"{ts}\",\"ok\":true,\"values\":[{{\"name\":\"cpu_utilization_ratio\",\"value\":{cpu}}}]}}\n"
        ));
    }
    let input = dir.join("rising-cpu.jsonl");
    std::fs::write(&input, lines).expect("write import");
    let out = Command::new(attest_tests::bin("attest-collector"))
        .args(["import", "--config", ccfg, "--input"])
        .arg(&input)
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn start_stack(dir: &Path) -> (Proc, Proc, u16, u16) {
    let (collector_port, agent_port) = (free_port(), free_port());
    let (ccfg, acfg) = write_configs(dir, collector_port, agent_port);
    import_rising_cpu(dir, &ccfg);
    let collector = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &ccfg],
        dir,
    );
    wait_for("collector ready", BOUND, || async {
        get(&format!("http://127.0.0.1:{collector_port}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let agent = Proc::spawn("agent", "attest-agent", &["run", "--config", &acfg], dir);
    wait_for("SLA figures for service web on /metrics", BOUND, || async {
        let m = metrics(collector_port).await?;
        sample(&m, "attest_sla_availability_ratio", &[("service", "web")])
    })
    .await;
    (collector, agent, collector_port, agent_port)
}

/// Figures compared between Prometheus and `/metrics` (name, labels).
const COMPARED: &[(&str, &[(&str, &str)])] = &[
    ("attest_sla_availability_ratio", &[("service", "web")]),
    ("attest_sla_target_ratio", &[("service", "web")]),
    (
        "attest_sla_error_budget_planning_minutes",
        &[("service", "web")],
    ),
    (
        "attest_sla_period_start_timestamp_seconds",
        &[("service", "web")],
    ),
    (
        "attest_sla_minutes",
        &[("service", "web"), ("state", "good")],
    ),
    ("attest_sla_computed_timestamp_seconds", &[]),
];

fn selector(name: &str, labels: &[(&str, &str)]) -> String {
    let l: Vec<_> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", l.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_collector_and_agent_and_sees_the_same_figures() {
    let (Some(prom_bin), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (collector, agent, cport, aport) = start_stack(dir.path()).await;
    let prom = &Prometheus::start(&prom_bin, dir.path(), cport, aport);
    let fail = |what: &str| {
        format!(
            "{what}\n--- prometheus log:\n{}\n--- collector log:\n{}\n--- agent log:\n{}",
            prom.log_text(),
            collector.log_text(),
            agent.log_text()
        )
    };

    // Both targets up.
    let ups = wait_for("up == 1 for both targets", BOUND, move || async move {
        let rows = prom.query("up == 1").await?;
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let jobs: Vec<_> = ups.iter().map(|(l, _)| l["job"].clone()).collect();
    assert!(
        jobs.contains(&"attest-collector".to_string())
            && jobs.contains(&"attest-agent".to_string()),
        "{}",
        fail(&format!("up jobs: {jobs:?}"))
    );

    // Prometheus holds the same SLA figures as /metrics: wait until its newest scrape and a
    // fresh /metrics read describe the same engine computation, then compare every figure.
    let (exposition, stored) = wait_for(
        "Prometheus and /metrics on the same SLA computation",
        BOUND,
        move || async move {
            let m = metrics(cport).await?;
            let mut stored = Vec::new();
            for (name, labels) in COMPARED {
                let rows = prom.query(&selector(name, labels)).await?;
                let [(_, v)] = rows.as_slice() else {
                    return None;
                };
                stored.push(*v);
            }
            let served = sample(&m, "attest_sla_computed_timestamp_seconds", &[])?;
            (stored.last() == Some(&served)).then_some((m, stored))
        },
    )
    .await;
    for ((name, labels), got) in COMPARED.iter().zip(&stored) {
        let want = sample(&exposition, name, labels)
            .unwrap_or_else(|| panic!("{}", fail(&format!("{name} missing on /metrics"))));
        assert_eq!(
            *got, want,
            "Prometheus stored {got} for {name}{labels:?}, /metrics serves {want}"
        );
    }
    let availability = stored[0];
    assert!(
        (0.0..=1.0).contains(&availability),
        "availability {availability} outside 0..1"
    );

    // The agent's own series arrive too, labelled by Prometheus, not by the agent.
    let probes = wait_for(
        "agent probe counter in Prometheus",
        BOUND,
        move || async move {
            let rows = prom
                .query(r#"attest_agent_probes_total{job="attest-agent",check="web"}"#)
                .await?;
            rows.first().map(|(_, v)| *v).filter(|v| *v > 0.0)
        },
    )
    .await;
    assert!(probes >= 1.0);

    // The shipped rules load and evaluate without error against these series.
    let rules = wait_for(
        "every rule evaluated at least once",
        BOUND,
        move || async move {
            let v = prom.api("rules", None).await?;
            let rules: Vec<Value> = v["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = rules.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
            (evaluated && !rules.is_empty()).then_some(rules)
        },
    )
    .await;
    for r in &rules {
        assert_eq!(
            r["health"],
            "ok",
            "{}",
            fail(&format!("rule {} unhealthy: {}", r["name"], r["lastError"]))
        );
    }
    // A fresh, healthy stack raises no alert.
    let firing = prom.query(r#"ALERTS{alertstate="firing"}"#).await;
    assert_eq!(
        firing.as_deref().map(<[_]>::len),
        Some(0),
        "alerts fire on a healthy stack: {firing:?}"
    );

    // Every dashboard query parses and runs (variables replaced by matching values).
    for (file, d) in dashboards() {
        for (at, expr) in dashboard_exprs(&file, &d) {
            let q = expr
                .replace("$__rate_interval", "1m")
                .replace("$service", "web")
                .replace("$agent", ".+")
                .replace("$resource_kind", ".+");
            let v = prom.api("query", Some(&q)).await.expect("query answered");
            assert_eq!(v["status"], "success", "{at}: {q}\n{v}");
        }
    }

    // promtool's lint on a scrape of both endpoints (text format), the collector's with the
    // capacity forecast of the rising trend in it.
    wait_for("the capacity forecast on /metrics", BOUND, || async {
        let m = metrics(cport).await?;
        sample(
            &m,
            TREND_METRIC,
            &[("agent", "prom-agent"), ("resource_kind", "cpu")],
        )
    })
    .await;
    for (what, port) in [("collector", cport), ("agent", aport)] {
        let m = metrics(port).await.expect("scrape");
        if what == "collector" {
            assert!(m.contains(TREND_METRIC), "{}", fail("no forecast to lint"));
        }
        let findings = lint(&promtool, &m);
        assert!(
            findings.is_empty(),
            "promtool check metrics flags the {what}:\n{}",
            findings.join("\n")
        );
    }
}
