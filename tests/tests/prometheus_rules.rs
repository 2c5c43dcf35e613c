//! The shipped rule file and scrape config pass Prometheus' own tools: `promtool check
//! rules`, `promtool test rules` (dashboards/prometheus/attest.rules.test.yml, one firing and
//! one silent case per alert) and `promtool check config`. Skips loudly without promtool,
//! unless `ATTEST_REQUIRE_PROMETHEUS=1` makes that a failure (scripts/test installs it).

mod prometheus_support;

use std::process::Command;

use prometheus_support::{RULES, RULES_TEST, SCRAPE_CONFIG, root, which};

fn promtool() -> Option<std::path::PathBuf> {
    let found = which("promtool");
    if found.is_none() {
        assert!(
            std::env::var_os("ATTEST_REQUIRE_PROMETHEUS").is_none(),
            "promtool not on PATH but ATTEST_REQUIRE_PROMETHEUS is set: apt-get install prometheus"
        );
        eprintln!(
            "SKIPPED: promtool not on PATH (apt-get install prometheus, or run scripts/test)"
        );
    }
    found
}

/// Runs promtool in the file's directory (rule tests name their rule file relatively).
fn run(args: &[&str], file: &str) -> String {
    let Some(bin) = promtool() else {
        return String::new();
    };
    let path = root().join(file);
    let dir = path.parent().expect("file has a directory");
    let name = path.file_name().expect("file name");
    let out = Command::new(bin)
        .args(args)
        .arg(name)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?} {file} failed:\n{text}"
    );
    text
}

#[test]
fn rules_pass_promtool_check() {
    let out = run(&["check", "rules"], RULES);
    if !out.is_empty() {
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

#[test]
fn rules_pass_their_unit_tests() {
    let out = run(&["test", "rules"], RULES_TEST);
    if !out.is_empty() {
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

#[test]
fn scrape_config_example_is_valid() {
    let out = run(&["check", "config"], SCRAPE_CONFIG);
    if !out.is_empty() {
        assert!(out.contains("is valid prometheus config"), "{out}");
    }
}
