//! A SIGHUP reload of the collector applies services and `[capacity]` without a restart
//! (real process, SQLite, loopback): a changed target shows on `/metrics` at once, a new
//! service gets figures and a removed one disappears. An invalid file changes nothing. The
//! definition history records the start and the reload: this month's report of `web` lists
//! both definitions, the second with its changed target.

use std::time::Duration;

use attest_tests::fixtures::{AgentCred, Collector, ServiceDef, path_str};
use attest_tests::{Proc, get, wait_for};

const BOUND: Duration = Duration::from_secs(30);

/// The value of `attest_sla_target_ratio{service="<name>"}`, if exported.
fn target_of(metrics: &str, name: &str) -> Option<f64> {
    let prefix = format!("attest_sla_target_ratio{{service=\"{name}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn metrics(url: &str) -> String {
    get(&format!("{url}/metrics"))
        .await
        .map(|r| r.1)
        .unwrap_or_default()
}

fn signal(p: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &p.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_services_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let services = [
        ServiceDef {
            name: "web".into(),
            checks: vec!["web-http".into()],
        },
        ServiceDef {
            name: "old".into(),
            checks: vec!["old-http".into()],
        },
    ];
    let collector = Collector::new(dir.path(), None, &[AgentCred::new("a1")], &services);
    let cfg = path_str(&collector.config);
    let mut proc = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "-c", &cfg],
        dir.path(),
    );
    let url = collector.url();
    wait_for("the first figures", BOUND, || async {
        target_of(&metrics(&url).await, "web").filter(|t| (t - 0.999).abs() < 1e-9)
    })
    .await;

    let good = std::fs::read_to_string(&collector.config).expect("read");
    // Invalid: nothing changes.
    std::fs::write(&collector.config, good.replace("99.9%", "99.9 percent")).expect("write");
    signal(&proc, "HUP");
    wait_for("the refused reload in the log", BOUND, || async {
        proc.log_text().contains("reload refused").then_some(())
    })
    .await;
    assert_eq!(target_of(&metrics(&url).await, "web"), Some(0.999));

    // Valid: web's target changes, "old" goes, "api" arrives.
    let changed = good
        .replacen("target = \"99.9%\"", "target = \"99.5%\"", 1)
        .replace("name = \"old\"", "name = \"api\"")
        .replace("checks = [\"old-http\"]", "checks = [\"api-http\"]");
    assert_ne!(changed, good, "the fixture's config has the expected shape");
    std::fs::write(&collector.config, changed).expect("write");
    signal(&proc, "HUP");
    let text = wait_for("the reloaded services on /metrics", BOUND, || async {
        let m = metrics(&url).await;
        let web = target_of(&m, "web").is_some_and(|t| (t - 0.995).abs() < 1e-9);
        let api = target_of(&m, "api").is_some();
        (web && api).then_some(m)
    })
    .await;
    assert_eq!(target_of(&text, "old"), None, "a removed service is gone");
    let log = proc.log_text();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        !log.contains("take effect only after a restart"),
        "services need no restart: {log}"
    );

    // The report of the month lists the definition in force since the start and the one
    // the reload brought (recorded by a background task: waited for, bounded).
    let month = attest_tests::wall_now().strftime("%Y-%m").to_string();
    let report = format!("{url}/api/v1/reports/{month}?format=json&service=web");
    let defs = wait_for("both definitions in the report", BOUND, || async {
        let (status, body) = get(&report).await?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let defs = v["services"][0]["definitions"].as_array()?.clone();
        (status == 200 && defs.len() == 2).then_some(defs)
    })
    .await;
    assert_eq!(defs[0]["cause"], "start", "{defs:?}");
    assert_eq!(defs[1]["cause"], "reload", "{defs:?}");
    assert_eq!(
        defs[1]["changes"],
        serde_json::json!(["target: 99.9 % → 99.5 %"]),
        "{defs:?}"
    );
    assert_ne!(defs[0]["sha256"], defs[1]["sha256"]);

    signal(&proc, "TERM");
    let exit = proc.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}
