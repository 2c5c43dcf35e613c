//! `/metrics` keeps its SLA series across a restart (real process, SQLite, loopback): the
//! first scrape answered after a restart already has every `attest_sla_*` series of the
//! service: the figures published before the stop are restored before the collector
//! listens (its log says so) and shown with their age until recomputed (here the first
//! refresh is quick, so the first scrape may already show recomputed ones), so an alert on
//! an absent series does not fire at a restart or an upgrade.

use std::time::Duration;

use attest_tests::fixtures::{AgentCred, Collector, ServiceDef};
use attest_tests::{sample, wait_for};

const BOUND: Duration = Duration::from_secs(30);

/// The `attest_sla_*` and `attest_slo_*` series names of `service` in an exposition.
fn sla_series(metrics: &str, service: &str) -> Vec<String> {
    let label = format!("service=\"{service}\"");
    let mut names: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("attest_sla_") || l.starts_with("attest_slo_"))
        .filter(|l| l.contains(&label))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| *n != "attest_sla_refresh_failures_total")
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_series_stay_on_metrics_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let services = [ServiceDef {
        name: "web".into(),
        checks: vec!["web-http".into()],
    }];
    let mut collector = Collector::new(dir.path(), None, &[AgentCred::new("a1")], &services);
    collector.start().await;
    let c = &collector;
    let before = wait_for("the first figures", BOUND, || async move {
        let m = c.metrics().await?;
        sample(&m, "attest_sla_target_ratio", &[("service", "web")]).map(|_| m)
    })
    .await;
    let series = sla_series(&before, "web");
    assert!(
        series.len() >= 10,
        "the service's SLA series before the restart: {series:?}"
    );

    collector.stop();
    assert!(
        collector
            .data_dir
            .join("figures-published.json.zst")
            .exists(),
        "the published figures are saved at shutdown"
    );
    let down = Duration::from_millis(1_500);
    tokio::time::sleep(down).await;
    collector.start().await;
    let first = collector
        .metrics()
        .await
        .expect("the first scrape after the restart");
    // Restored while the collector was built, before it listened: the first scrape cannot
    // miss them (here the first refresh is quick enough to have replaced them already).
    assert!(
        collector
            .log_text()
            .contains("serving the last published figures of 1 of 1 services"),
        "the restart restored the published figures:\n{}",
        collector.log_text()
    );
    assert_eq!(
        sla_series(&first, "web"),
        series,
        "the first scrape after the restart has every SLA series of before"
    );
    let restored = sample(&first, "attest_sla_figures_restored_services", &[])
        .expect("the restored count is exported");
    let age = sample(
        &first,
        "attest_sla_figures_age_seconds",
        &[("service", "web")],
    )
    .expect("the figures' age");
    if restored > 0.0 {
        assert!(
            age >= down.as_secs_f64(),
            "restored figures show their true age: {age} s"
        );
    }
    let c = &collector;
    wait_for("the restored figures recomputed", BOUND, || async move {
        let m = c.metrics().await?;
        (sample(&m, "attest_sla_figures_restored_services", &[]) == Some(0.0)).then_some(())
    })
    .await;
}
