//! Walking skeleton, end to end: a real collector and a real agent as child processes on
//! loopback, the agent probing a loopback HTTP target that the test switches between 200
//! and 500. Asserts that `/metrics` shows the check's success flipping and that the
//! service's availability equals the count of good minutes over known minutes, recomputed
//! here from the stored measurements.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use attest_collector::store::{Store, sqlite::SqliteStore};
use attest_tests::fixtures::switchable_target;
use attest_tests::{Proc, free_port, get, sample, wait_for};

fn write_configs(dir: &std::path::Path, collector_port: u16, target_port: u16) -> (String, String) {
    let collector = format!(
        r#"
[server]
listen = "127.0.0.1:{collector_port}"

[storage]
backend = "sqlite"
data_dir = "data"

[[agent]]
id = "e2e-agent"
token = "e2e-secret-token"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
quorum = "majority"
"#
    );
    let agent = format!(
        r#"
[agent]
id = "e2e-agent"
collector_url = "http://127.0.0.1:{collector_port}"
token = "e2e-secret-token"

[spool]
dir = "spool"

[transport]
batch_max_age = "200ms"
backoff_initial = "100ms"
backoff_max = "1s"

[[check]]
id = "web"
kind = "http"
url = "http://127.0.0.1:{target_port}/"
interval = "1s"
timeout = "800ms"

[[check]]
id = "port"
kind = "tcp"
address = "127.0.0.1:{target_port}"
interval = "1s"
timeout = "800ms"
"#
    );
    let c = dir.join("collector.toml");
    let a = dir.join("agent.toml");
    std::fs::write(&c, collector).expect("write collector config");
    std::fs::write(&a, agent).expect("write agent config");
    (c.display().to_string(), a.display().to_string())
}

async fn metrics(port: u16) -> Option<String> {
    get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
}

async fn wait_check_success(port: u16, want: f64) {
    wait_for(
        &format!("attest_check_success{{check=\"web\"}} == {want}"),
        Duration::from_secs(30),
        || async move {
            let m = metrics(port).await?;
            (sample(
                &m,
                "attest_check_success",
                &[("check", "web"), ("agent", "e2e-agent")],
            ) == Some(want))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_flips_and_availability_matches_failing_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Arc::new(AtomicU16::new(200));
    let target_port = switchable_target(status.clone()).await;
    let collector_port = free_port();
    let (collector_cfg, agent_cfg) = write_configs(dir.path(), collector_port, target_port);

    let _collector = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &collector_cfg],
        dir.path(),
    );
    wait_for("collector ready", Duration::from_secs(20), || async {
        get(&format!("http://127.0.0.1:{collector_port}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let mut agent = Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "--config", &agent_cfg],
        dir.path(),
    );

    wait_check_success(collector_port, 1.0).await;
    status.store(500, Ordering::SeqCst);
    wait_check_success(collector_port, 0.0).await;
    status.store(200, Ordering::SeqCst);
    wait_check_success(collector_port, 1.0).await;

    // Stop the agent cleanly and wait until the collector holds everything it spooled.
    let exit = agent.signal_and_wait("TERM", Duration::from_secs(15));
    assert!(
        exit.success(),
        "agent exit {exit:?}; log:\n{}",
        agent.log_text()
    );

    let store = SqliteStore::open(&dir.path().join("data")).expect("open store read side");
    let from = attest_tests::wall_now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .expect("ts");
    let to = attest_tests::wall_now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .expect("ts");
    let raw = store.raw_measurements("web", from, to).expect("raw");
    assert!(
        raw.iter().any(|(_, m)| !m.ok),
        "no failing probe was stored"
    );
    let mut minute_failed: BTreeMap<i64, bool> = BTreeMap::new();
    for (_, m) in &raw {
        *minute_failed
            .entry(m.ts.as_second().div_euclid(60))
            .or_default() |= !m.ok;
    }
    let bad = minute_failed.values().filter(|f| **f).count() as f64;
    let known = minute_failed.len() as f64;
    let expected = (known - bad) / known;

    let m = metrics(collector_port).await.expect("metrics");
    let availability = sample(&m, "attest_sla_availability_ratio", &[("service", "web")])
        .expect("availability sample");
    assert!(
        (availability - expected).abs() < 1e-9,
        "availability {availability} != {expected} ({bad} bad of {known} minutes)\n{m}"
    );
    let bad_metric = sample(
        &m,
        "attest_sla_minutes",
        &[("service", "web"), ("state", "bad")],
    )
    .expect("bad minutes");
    assert_eq!(bad_metric, bad);
}
