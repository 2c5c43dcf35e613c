//! `attest-collector export openslo|sloth|pyrra` through the real binary: files per service,
//! stdout, an unknown service refused; and the Sloth spec's queries, rendered as Sloth renders
//! them (`(error_query)\n/\n(total_query)\n` with `{{.window}}` replaced), evaluated by
//! promtool beside Attest's own recording rules on the same series: Sloth's error ratio is one
//! minus `service:attest_slo_availability:ratio_rate1h`/`1d`/`30d`. Skips loudly without
//! promtool unless `ATTEST_REQUIRE_PROMETHEUS=1` (scripts/test installs it).

mod prometheus_support;

use std::path::Path;
use std::process::{Command, Output};

use attest_tests::bin;
use prometheus_support::{RULES, root, which};

const CONFIG: &str = r#"
[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "Europe/Berlin"

[[service]]
name = "Shop \"EU\""
checks = ["shop"]
target = "99.5%"
"#;

fn run(args: &[&str]) -> Output {
    Command::new(bin("attest-collector"))
        .args(args)
        .env("ATTEST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run attest-collector: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn config(dir: &Path) -> String {
    let p = dir.join("collector.toml");
    std::fs::write(&p, CONFIG).expect("config");
    p.display().to_string()
}

#[test]
fn export_writes_one_file_per_service_or_a_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    for format in ["openslo", "sloth", "pyrra"] {
        let out_dir = dir.path().join(format);
        let out = run(&[
            "export",
            format,
            "--config",
            &cfg,
            "--output",
            &out_dir.display().to_string(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            text(&out.stderr)
        );
        let mut names: Vec<String> = std::fs::read_dir(&out_dir)
            .expect("output dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"web.yaml".to_string()), "{names:?}");
        let web = std::fs::read_to_string(out_dir.join("web.yaml")).expect("web.yaml");
        assert!(web.contains("attest_slo_"), "{web}");
        let stream = run(&["export", format, "--config", &cfg, "--service", "web"]);
        assert_eq!(stream.status.code(), Some(0));
        assert_eq!(text(&stream.stdout), web, "stdout is the same documents");
    }
    let out = run(&["export", "sloth", "--config", &cfg, "--service", "nope"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        text(&out.stderr).contains("no service named \"nope\""),
        "{}",
        text(&out.stderr)
    );
    let shop = run(&[
        "export",
        "pyrra",
        "--config",
        &cfg,
        "--service",
        "Shop \"EU\"",
    ]);
    assert!(
        text(&shop.stdout).contains(r#"service=\"Shop \\\"EU\\\"\"}"#)
            || text(&shop.stdout).contains(r#"service="Shop \"EU\""}"#),
        "the exact name is selected: {}",
        text(&shop.stdout)
    );
}

/// Sloth's SLI recording rule for one window, as its `eventsSLIRecordGenerator` renders it.
fn sloth_expr(error: &str, total: &str, window: &str) -> String {
    format!("({error})\n/\n({total})\n").replace("{{.window}}", window)
}

#[test]
fn sloth_queries_match_attests_recording_rules_in_promtool() {
    let Some(promtool) = which("promtool") else {
        assert!(
            std::env::var_os("ATTEST_REQUIRE_PROMETHEUS").is_none(),
            "promtool not on PATH but ATTEST_REQUIRE_PROMETHEUS is set: apt-get install prometheus"
        );
        eprintln!(
            "SKIPPED: promtool not on PATH (apt-get install prometheus, or run scripts/test)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let out = run(&["export", "sloth", "--config", &cfg, "--service", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spec: serde_json::Value =
        serde_saphyr::from_str(text(&out.stdout).trim_start_matches("---\n")).expect("sloth yaml");
    let events = &spec["slos"][0]["sli"]["events"];
    let (error, total) = (
        events["error_query"].as_str().expect("error_query"),
        events["total_query"].as_str().expect("total_query"),
    );
    let mut rules =
        String::from("groups:\n  - name: sloth-slo-sli-recordings-web-availability\n    rules:\n");
    for w in ["1h", "1d", "30d"] {
        let expr = sloth_expr(error, total, w);
        rules += &format!(
            "      - record: slo:sli_error:ratio_rate{w}\n        expr: |\n{}        labels:\n          sloth_service: web\n          sloth_slo: availability\n          sloth_window: {w}\n",
            expr.lines()
                .map(|l| format!("          {l}\n"))
                .collect::<String>()
        );
    }
    std::fs::write(dir.path().join("sloth.rules.yml"), rules).expect("sloth rules");
    std::fs::copy(root().join(RULES), dir.path().join("attest.rules.yml")).expect("attest rules");
    // Per minute: a day of 10 good minutes a scrape, then an hour with 4 of 10 bad, then an
    // hour all good; evaluated at the end of each stretch.
    let mut test = String::from(
        "rule_files: [attest.rules.yml, sloth.rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (series, a, b) in [
        ("attest_slo_good_minutes_total", 10, 6),
        ("attest_slo_bad_minutes_total", 0, 4),
        ("attest_slo_known_minutes_total", 10, 10),
    ] {
        let after_day = a * 1_440;
        let after_bad = after_day + b * 60;
        test += &format!(
            "      - series: '{series}{{service=\"web\"}}'\n        values: '0+{a}x1440 {}+{b}x59 {}+{a}x120'\n",
            after_day + b,
            after_bad + a
        );
    }
    test += "    promql_expr_test:\n";
    for at in ["1500m", "1620m"] {
        for w in ["1h", "1d", "30d"] {
            test += &format!(
                "      - expr: 'count(abs(slo:sli_error:ratio_rate{w} - on() (1 - service:attest_slo_availability:ratio_rate{w}{{service=\"web\"}})) < 1e-9)'\n        eval_time: {at}\n        exp_samples:\n          - labels: '{{}}'\n            value: 1\n"
            );
        }
    }
    // And the figures are not trivially equal: 40 % of the last hour was bad at 1500m.
    test += "      - expr: 'count(slo:sli_error:ratio_rate1h > 0.39 < 0.41)'\n        eval_time: 1500m\n        exp_samples:\n          - labels: '{}'\n            value: 1\n";
    std::fs::write(dir.path().join("sloth.test.yml"), &test).expect("test file");
    let out = Command::new(promtool)
        .args(["test", "rules", "sloth.test.yml"])
        .current_dir(dir.path())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}\n--- test file ---\n{test}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = Command::new(which("promtool").expect("promtool"))
        .args(["check", "rules", "sloth.rules.yml"])
        .current_dir(dir.path())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
