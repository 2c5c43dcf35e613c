//! The command-line contract of both binaries, as real processes:
//! - `check-config`: valid example files exit 0 with a one-line summary; invalid files exit 78
//!   and print every error as `file:line:column: error: ...`.
//! - `attest-collector import` + `sla` + the running collector's `/api/v1/sla` and `/metrics`
//!   agree on worked example 1 of the SLA model (September UTC, one 30-minute outage:
//!   43170 / 43200, compliant with 99.9 %); re-importing stores nothing; a bad line exits 65
//!   naming file:line and field and stores nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use attest_collector::store::{Store, sqlite::SqliteStore};
use attest_tests::{Proc, bin, free_port, sample, wait_for};
use serde_json::Value;

const EXIT_DATA: i32 = 65;
const EXIT_CONFIG: i32 = 78;
const AT: &str = "2026-10-01T00:00:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run(bin_name: &str, args: &[&str]) -> Output {
    Command::new(bin(bin_name))
        .args(args)
        .env("ATTEST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin_name}: {e}"))
}

/// GET with a generous bound: a month's figures take seconds in a debug build.
async fn get(url: &str) -> Option<(u16, String)> {
    let r = attest_tests::client()
        .get(url)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check_config(bin_name: &str, file: &Path) -> Output {
    run(
        bin_name,
        &["check-config", "--config", &file.display().to_string()],
    )
}

#[test]
fn check_config_accepts_the_examples_with_a_one_line_summary() {
    let cases = [
        (
            "attest-collector",
            "config/examples/collector.toml",
            "collector on 127.0.0.1:9850",
        ),
        (
            "attest-collector",
            "config/testdata/valid/collector-postgres.toml",
            "collector on",
        ),
        (
            "attest-agent",
            "config/examples/agent.toml",
            "agent \"local\"",
        ),
    ];
    for (bin_name, file, prefix) in cases {
        let out = check_config(bin_name, &repo().join(file));
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{bin_name} {file}: {}",
            text(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "{bin_name} {file}: {stdout}");
        assert!(stdout.starts_with(prefix), "{bin_name} {file}: {stdout}");
    }
    // A service without `start` is warned about (its unmeasured time would not count as
    // unknown); one with `start` is not. Warnings keep exit 0.
    let file = repo().join("config/examples/collector.toml");
    let out = check_config("attest-collector", &file);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warned = |name: &str| {
        stderr.lines().any(|l| {
            l.starts_with(&format!(
                "{}: warning: service \"{name}\" has no start",
                file.display()
            ))
        })
    };
    assert!(warned("collector-office-hours"), "{stderr}");
    assert!(!warned("collector-http"), "{stderr}");
}

#[test]
fn check_config_prints_every_error_with_its_position() {
    let file = repo().join("config/testdata/agent-many-errors.toml");
    let out = check_config("attest-agent", &file);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG));
    let stderr = text(&out.stderr);
    let f = file.display().to_string();
    for pos in ["3:17", "4:9", "7:13", "13:1", "19:12", "22:6"] {
        assert!(
            stderr.contains(&format!("{f}:{pos}: error: ")),
            "missing error at {pos}:\n{stderr}"
        );
    }
    assert!(out.stdout.is_empty(), "no summary for an invalid file");

    for (name, pos, words) in [
        ("collector-unknown-key.toml", "3:1", "listen_addr"),
        ("collector-bad-target.toml", "5:10", "99.9"),
        ("collector-tls-key-without-cert.toml", "", "tls_cert"),
    ] {
        let file = repo().join("config/testdata").join(name);
        let out = check_config("attest-collector", &file);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{}:{pos}", file.display())) && stderr.contains(words),
            "{name}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// A collector config with one agent and one 24x7 UTC service at 99.9 %.
fn write_config(dir: &Path, port: u16) -> String {
    let cfg = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[storage]
data_dir = "data"
raw_retention = "400d"

[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
"#
    );
    let p = dir.join("collector.toml");
    std::fs::write(&p, cfg).expect("write config");
    p.display().to_string()
}

/// One probe a minute through September 2026; 3 Sep 10:00–10:29 failing.
fn write_september(path: &Path) {
    let start: jiff::Timestamp = "2026-09-01T00:00:00Z".parse().expect("ts");
    let outage: jiff::Timestamp = "2026-09-03T10:00:00Z".parse().expect("ts");
    let mut out = String::with_capacity(43_200 * 80);
    for minute in 0..43_200i64 {
        let ts = start
            .checked_add(jiff::SignedDuration::from_mins(minute))
            .expect("ts");
        let since = ts.duration_since(outage).as_mins();
        let line = if (0..30).contains(&since) {
            format!(
                "{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"{ts}\",\"ok\":false,\"reason\":\"status\",\"error\":\"status 503\"}}\n"
            )
        } else {
            format!("{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"{ts}\",\"ok\":true}}\n")
        };
        out.push_str(&line);
    }
    std::fs::write(path, out).expect("write jsonl");
}

fn measurements(dir: &Path) -> u64 {
    SqliteStore::open(&dir.join("data"))
        .expect("open store")
        .counts()
        .expect("counts")
        .measurements
}

fn sla_cli(cfg: &str, extra: &[&str]) -> Output {
    let mut args = vec!["sla", "--config", cfg, "--month", "2026-09", "--at", AT];
    args.extend_from_slice(extra);
    run("attest-collector", &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_cli_api_and_metrics_agree_on_worked_example_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = write_config(dir.path(), port);
    let jsonl = dir.path().join("september.jsonl");
    write_september(&jsonl);
    let input = jsonl.display().to_string();

    let out = run(
        "attest-collector",
        &["import", "--config", &cfg, "--input", &input],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 43200 lines: 43200 measurements stored, 0 already present"
    );
    assert_eq!(measurements(dir.path()), 43_200);

    // Re-importing the same file stores nothing new. Not a terminal: progress goes to the
    // log (at info), structured, ending at the total.
    let out = Command::new(bin("attest-collector"))
        .args(["import", "--config", &cfg, "--input", &input])
        .env("ATTEST_LOG", "info")
        .output()
        .expect("run import");
    let log = text(&out.stderr);
    assert!(
        log.contains("import: every line is valid; storing measurements=43200")
            && log.contains("import progress done=43200 total=43200"),
        "{log}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "imported 43200 lines: 0 measurements stored, 43200 already present"
    );
    assert_eq!(measurements(dir.path()), 43_200);

    // A bad line anywhere: exit 65 naming file:line and field; nothing of the file stored.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"2026-10-01T00:00:00Z\",\"ok\":true}\n\
         {\"agent\":\"a\",\"check\":\"web\",\"ts\":\"2026-10-01T00:01:00Z\",\"ok\":true}\n\
         {\"agent\":\"a\",\"check\":\"web\",\"ts\":\"first of october\",\"ok\":true}\n",
    )
    .expect("write bad");
    let out = run(
        "attest-collector",
        &[
            "import",
            "--config",
            &cfg,
            "--input",
            &bad.display().to_string(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_DATA), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", bad.display())) && stderr.contains("field ts"),
        "{stderr}"
    );
    assert_eq!(measurements(dir.path()), 43_200);

    // The CLI's figures: worked example 1.
    let out = sla_cli(&cfg, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("sla json");
    let web = &cli[0];
    assert_eq!(web["service"], "web");
    assert_eq!(web["eligible_minutes"], 43_200);
    assert_eq!(web["good_minutes"], 43_170);
    assert_eq!(web["bad_minutes"], 30);
    assert_eq!(web["unknown_minutes"], 0);
    assert_eq!(web["availability"].as_f64(), Some(43_170.0 / 43_200.0));
    assert_eq!(web["compliant"], true);
    assert_eq!(web["complete"], true);
    let budget = &web["error_budget"];
    let close = |v: &Value, want: f64| v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9);
    assert!(close(&budget["allowed_minutes"], 43.2), "{budget}");
    assert!(close(&budget["remaining_minutes"], 13.2), "{budget}");
    // Re-derivable: exact fractions beside the floats, and the eligibility rule. The service
    // has no `start` and was first configured (by `import`, now) after its first probe.
    assert_eq!(web["known_minutes"], 43_200);
    assert_eq!(web["availability_exact"], "43170/43200");
    assert_eq!(budget["remaining_ratio_exact"], "13200000/43200000");
    assert_eq!(web["eligible_since"]["basis"], "first_measured");
    assert_eq!(web["eligible_since"]["instant"], "2026-09-01T00:00:00Z");

    // --fail-on-breach: exit 0 for a compliant month, 3 (after printing) for a breach.
    let out = sla_cli(&cfg, &["--fail-on-breach"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(
        "attest-collector",
        &[
            "sla",
            "--config",
            &cfg,
            "--month",
            "2026-09",
            "--at",
            "2026-09-03T10:30:00Z",
            "--fail-on-breach",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(" NO "), "{}", text(&out.stdout));

    let out = sla_cli(&cfg, &["--format", "table"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("no row for web:\n{table}"));
    for cell in [
        "2026-09", "99.9%", "99.9305%", "yes", "43200", "43170", "30",
    ] {
        assert!(
            row.split_whitespace().any(|c| c == cell),
            "{cell} not in {row}"
        );
    }

    let out = sla_cli(&cfg, &["--service", "nope"]);
    assert_eq!(out.status.code(), Some(EXIT_DATA));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));

    // The running collector serves the same figures.
    let collector = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &cfg],
        dir.path(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("collector ready", Duration::from_secs(20), || async {
        get(&format!("{base}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let (status, body) = get(&format!("{base}/api/v1/sla?month=2026-09&at={AT}"))
        .await
        .unwrap_or_else(|| panic!("GET /api/v1/sla failed; log:\n{}", collector.log_text()));
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).expect("api json");
    assert_eq!(api, cli, "the API and the CLI disagree");
    let (status, body) = get(&format!("{base}/api/v1/sla?month=2026-09&service=nope"))
        .await
        .expect("api sla");
    assert_eq!(status, 404, "{body}");

    // /metrics: the SLO counters sum every month since the first measurement; only September
    // has data, so they carry September's figures.
    let metrics = wait_for(
        "SLO counters in /metrics",
        Duration::from_secs(20),
        || async {
            let (s, m) = get(&format!("{base}/metrics")).await?;
            (s == 200
                && sample(&m, "attest_slo_good_minutes_total", &[("service", "web")]).is_some())
            .then_some(m)
        },
    )
    .await;
    let svc = [("service", "web")];
    assert_eq!(
        sample(&metrics, "attest_slo_good_minutes_total", &svc),
        Some(43_170.0)
    );
    assert_eq!(
        sample(&metrics, "attest_slo_known_minutes_total", &svc),
        Some(43_200.0)
    );
    assert_eq!(
        sample(&metrics, "attest_slo_bad_minutes_total", &svc),
        Some(30.0)
    );
    assert_eq!(
        sample(&metrics, "attest_slo_down_seconds_total", &svc),
        Some(30.0 * 60.0)
    );
}

#[test]
fn agent_check_config_checks_the_transport_tls_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        r#"
[agent]
id = "a1"
collector_url = "https://127.0.0.1:9850"
token = "t"

[transport]
ca_file = "missing-ca.pem"
"#,
    )
    .expect("write config");
    let out = check_config("attest-agent", &file);
    assert_eq!(
        out.status.code(),
        Some(EXIT_CONFIG),
        "{}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("[transport]") && stderr.contains("missing-ca.pem"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
