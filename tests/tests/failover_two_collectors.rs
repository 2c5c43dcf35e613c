//! Two collectors on one PostgreSQL database and one real `attest-agent` with both URLs
//! (`collector_urls`) under load: 40 checks every 200 ms against a loopback target. The
//! preferred collector A is first frozen (SIGSTOP: the agent's requests to it time out, and
//! a batch A may have committed is resent to B), thawed, later SIGKILLed mid-load and
//! restarted. Each time the agent fails over to B and, once A is ready again, back to A.
//!
//! Afterwards every measurement the agent spooled (the segment keeper's exact record) is
//! stored exactly once, the minute rollups count each once, no gap was reported (nothing
//! dropped), and both collectors export identical `attest_sla_*` gauges from the shared store.
//!
//! A second test takes timing out of it: a wire-level agent sends the same batches to both
//! collector processes, one after the other (a batch committed at A whose ack was lost,
//! resent to B) and at the same moment, and the same measurements under other seqs. The
//! `(agent, seq)` batch key and the `(agent, check, ts)` measurement key (`ON CONFLICT DO
//! NOTHING` in both insert paths) store each measurement once, whichever replica wins.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use attest_collector::store::postgres::PgStore;
use attest_collector::store::{InspectStore, Store};
use attest_tests::fixtures::{
    AgentCred, Collector, ServiceDef, assert_rollups_match_raw, loopback_check_ids,
    loopback_checks, metrics, ok_target, path_str, spooled_keys, stored_keys, window,
};
use attest_tests::load::{DeliveryStats, WireAgent, measurements, tally};
use attest_tests::postgres::PgDb;
use attest_tests::spool_oracle::SegmentKeeper;
use attest_tests::{Proc, free_port, sample, wait_for, wall_now};

const PAIRS: usize = 20;
const INTERVAL: &str = "200ms";
const SERVICE: &str = "failover";
/// Progress (measurements committed) waited for between two faults.
const STEP: u64 = 400;
const BOUND: Duration = Duration::from_secs(90);

/// The agent's file: both collectors, A preferred, quick timeouts and failback.
fn write_agent(
    dir: &Path,
    file: &str,
    cred: &AgentCred,
    urls: &[String],
    port: u16,
    checks: &str,
) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let s = format!(
        "[agent]\nid = {:?}\ncollector_urls = [{}]\ntoken = {:?}\nlisten = \"127.0.0.1:{port}\"\n\n\
         [spool]\ndir = {:?}\nmax_bytes = \"64MiB\"\n\n\
         [transport]\nbatch_max_age = \"200ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\n\
         request_timeout = \"1s\"\nfailback_after = \"2s\"\n\n{checks}",
        cred.id,
        urls.join(", "),
        cred.token,
        path_str(&dir.join("spool")),
    );
    let path = dir.join(file);
    std::fs::write(&path, s).expect("write agent config");
    path_str(&path)
}

/// Measurements committed to the shared store so far.
async fn stored(store: &Arc<PgStore>) -> u64 {
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.counts().map_or(0, |c| c.measurements))
        .await
        .expect("count task")
}

/// Waits until `more` measurements beyond `since` are committed; returns the count.
async fn progress(store: &Arc<PgStore>, since: u64, more: u64) -> u64 {
    wait_for(
        &format!("{more} more measurements committed (from {since})"),
        BOUND,
        || async move {
            let n = stored(store).await;
            (n >= since + more).then_some(n)
        },
    )
    .await
}

/// A sample of the agent's `/metrics` (0 when absent).
async fn agent_sample(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let m = metrics(port).await?;
    Some(sample(&m, name, labels).unwrap_or(0.0))
}

/// Waits until the agent sends to `url`.
async fn wait_active(port: u16, url: &str) {
    wait_for(
        &format!("the agent to send to {url}"),
        BOUND,
        || async move {
            let v = agent_sample(port, "attest_agent_collector_active", &[("url", url)]).await?;
            (v == 1.0).then_some(())
        },
    )
    .await;
}

/// Waits until the agent's counter `name` reaches `at_least`.
async fn wait_counter(port: u16, name: &str, at_least: f64) {
    wait_for(&format!("{name} >= {at_least}"), BOUND, || async move {
        let v = agent_sample(port, name, &[]).await?;
        (v >= at_least).then_some(())
    })
    .await;
}

/// Batches a collector accepted since it (re)started.
async fn accepted(c: &Collector) -> f64 {
    let m = c.metrics().await.unwrap_or_default();
    sample(&m, "attest_ingest_batches_total", &[("result", "accepted")]).unwrap_or(0.0)
}

/// Waits until collector `c` accepted `at_least` batches since it (re)started.
async fn wait_accepted(c: &Collector, at_least: f64) {
    wait_for(
        &format!("{at_least} batches accepted by {}", c.url()),
        BOUND,
        || async move { (accepted(c).await >= at_least).then_some(()) },
    )
    .await;
}

/// The `attest_sla_*` series of a scrape (name and labels → value), without those that say
/// when or how often this replica computed (they differ by design).
fn sla_gauges(exposition: &str) -> BTreeMap<String, String> {
    const PER_REPLICA: [&str; 4] = [
        "attest_sla_computed_timestamp_seconds",
        "attest_sla_figures_age_seconds",
        "attest_sla_figures_restored_services",
        "attest_sla_refresh_failures",
    ];
    exposition
        .lines()
        .filter(|l| l.starts_with("attest_sla_"))
        .filter(|l| !PER_REPLICA.iter().any(|p| l.starts_with(p)))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_string(), value.to_string()))
        .collect()
}

/// Both collectors' SLA gauges once both computed them after `since` (Unix s) in the same
/// minute, so from the same data as of the same minute.
async fn sla_gauges_of_both(
    a: &Collector,
    b: &Collector,
    since: f64,
) -> [BTreeMap<String, String>; 2] {
    wait_for(
        "both collectors to compute the figures from the final data in the same minute",
        Duration::from_secs(150),
        || async move {
            let (ma, mb) = (a.metrics().await?, b.metrics().await?);
            let ta = sample(&ma, "attest_sla_computed_timestamp_seconds", &[])?;
            let tb = sample(&mb, "attest_sla_computed_timestamp_seconds", &[])?;
            let same_minute = (ta / 60.0).ceil() == (tb / 60.0).ceil();
            (ta >= since && tb >= since && same_minute).then(|| [sla_gauges(&ma), sla_gauges(&mb)])
        },
    )
    .await
}

/// Two collectors on `db`, config and logs in `<dir>/a` and `<dir>/b`, both started (A first:
/// it creates the schema), and the test's own connection to the database.
async fn two_collectors(
    dir: &Path,
    db: &PgDb,
    cred: &AgentCred,
    services: &[ServiceDef],
) -> (Collector, Collector, Arc<PgStore>) {
    let creds = std::slice::from_ref(cred);
    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&dir_a).expect("dir a");
    std::fs::create_dir_all(&dir_b).expect("dir b");
    let mut a = Collector::on_postgres(&dir_a, &db.url, creds, services);
    let mut b = Collector::on_postgres(&dir_b, &db.url, creds, services);
    a.start().await;
    b.start().await;
    let url = db.url.clone();
    let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
        .await
        .expect("connect task")
        .expect("connect to the test database");
    (a, b, Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_collector_frozen_and_killed_under_load_loses_and_duplicates_nothing() {
    let Some(db) = PgDb::create() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ok_target().await;
    let cred = AgentCred::new("fo-1");
    let checks = loopback_check_ids("fo", PAIRS);
    let services = [ServiceDef {
        name: SERVICE.into(),
        checks: checks.clone(),
    }];
    let (mut a, b, store) = two_collectors(dir.path(), &db, &cred, &services).await;

    let keeper = SegmentKeeper::start(&dir.path().join("spool"), &dir.path().join("kept"));
    let port = free_port();
    let urls = [a.url(), b.url()];
    let checks_toml = loopback_checks("fo", target, PAIRS, INTERVAL);
    let cfg = write_agent(dir.path(), "agent.toml", &cred, &urls, port, &checks_toml);
    let mut agent = Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "--config", &cfg],
        dir.path(),
    );

    // Sticky preference: everything goes to A while A is well.
    let mut seen = progress(&store, 0, STEP).await;
    wait_active(port, &urls[0]).await;
    assert_eq!(accepted(&b).await, 0.0, "B got traffic while A was well");

    // Frozen A: requests to it time out; the agent fails over to B.
    a.signal("STOP");
    wait_counter(port, "attest_agent_collector_failovers_total", 1.0).await;
    a.signal("CONT");
    wait_active(port, &urls[0]).await;
    seen = progress(&store, seen, STEP).await;

    // Killed A mid-load: B takes over.
    let b_before = accepted(&b).await;
    a.kill();
    wait_active(port, &urls[1]).await;
    seen = progress(&store, seen, STEP).await;
    wait_accepted(&b, b_before + 5.0).await;

    // Restarted A: the agent returns to it once A was ready for failback_after.
    a.start().await;
    wait_active(port, &urls[0]).await;
    wait_accepted(&a, 5.0).await;
    progress(&store, seen, STEP).await;
    // At least the kill failed over; the freeze did too. The way back after the freeze may
    // have been a failover from B (timing out on a row A's frozen transaction held) rather
    // than a failback, so only the last return is sure to be a failback.
    wait_counter(port, "attest_agent_collector_failovers_total", 2.0).await;
    wait_counter(port, "attest_agent_collector_failbacks_total", 1.0).await;

    // Stop measuring, then deliver what the spool still holds (both collectors up).
    let exit = agent.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(exit.success(), "agent exit {exit:?}:\n{}", agent.log_text());
    let drain = write_agent(dir.path(), "drain.toml", &cred, &urls, port, "");
    let mut drainer = Proc::spawn(
        "drainer",
        "attest-agent",
        &["run", "--config", &drain],
        dir.path(),
    );
    wait_for("the spool to drain", BOUND, || async move {
        let depth = agent_sample(port, "attest_agent_spool_depth_measurements", &[]).await?;
        (depth == 0.0).then_some(())
    })
    .await;
    let quarantined = agent_sample(port, "attest_agent_batches_quarantined_total", &[]).await;
    assert_eq!(quarantined, Some(0.0), "no batch may be refused");
    let exit = drainer.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(
        exit.success(),
        "drainer exit {exit:?}:\n{}",
        drainer.log_text()
    );
    // Every commit happened before its ack, so before this instant (ms: a refresh earlier
    // in the same second may predate the last commit).
    let done = wall_now().as_millisecond() as f64 / 1000.0;

    // Every spooled measurement stored exactly once, counted once, nothing dropped.
    let spooled = keeper.spooled().expect("spool oracle");
    let produced = spooled_keys(&cred.id, &spooled);
    let s = store.clone();
    let (in_store, gaps, counts) = tokio::task::spawn_blocking({
        let checks = checks.clone();
        move || {
            let keys = stored_keys(s.as_ref() as &dyn InspectStore, &checks);
            let (from, to) = window();
            let gaps = s
                .gaps(&checks, from.as_second() / 60, to.as_second() / 60 + 1)
                .expect("gaps");
            assert_rollups_match_raw(s.as_ref(), &checks, &keys);
            (keys, gaps, s.counts().expect("counts"))
        }
    })
    .await
    .expect("store task");
    let t = tally(&produced, &in_store);
    eprintln!(
        "two collectors: agent spooled {}, A accepted {} batches since its restart, B accepted {} \
         (and answered {} resent batches as duplicates); {t}",
        spooled.len(),
        accepted(&a).await,
        accepted(&b).await,
        sample(
            &b.metrics().await.unwrap_or_default(),
            "attest_ingest_batches_total",
            &[("result", "duplicate")]
        )
        .unwrap_or(0.0),
    );
    assert!(t.exact(), "{t}");
    assert!(
        spooled.len() as u64 >= 3 * STEP,
        "the agent barely produced anything"
    );
    assert!(
        gaps.is_empty(),
        "nothing was dropped, yet gaps were stored: {gaps:?}"
    );
    assert_eq!(counts.measurements, in_store.len() as u64);

    // Both replicas compute the same figures from the shared store.
    let [ga, gb] = sla_gauges_of_both(&a, &b, done).await;
    assert!(
        ga.keys()
            .any(|k| k.starts_with("attest_sla_availability_ratio")),
        "no SLA gauges exported: {ga:?}"
    );
    assert_eq!(ga, gb, "the two collectors disagree on the SLA gauges");
    eprintln!(
        "{} attest_sla_* series identical on both collectors",
        ga.len()
    );
}

/// Measurements of batch `k`: 10 per check, distinct keys per `k`.
fn batch_measurements(checks: &[String], k: u64) -> Vec<attest_config::wire::Measurement> {
    let start = wall_now()
        .checked_sub(jiff::SignedDuration::from_mins(30))
        .expect("now - 30 min")
        .checked_add(jiff::SignedDuration::from_secs(k as i64))
        .expect("a few seconds on");
    checks
        .iter()
        .flat_map(|c| measurements(c, start, 10, 1_000))
        .collect()
}

/// Delivers `batch` through `agent` (resending on 5xx or no answer), bounded.
async fn ack(
    agent: &WireAgent,
    batch: &attest_config::wire::Batch,
    stats: &mut DeliveryStats,
) -> attest_config::wire::Ack {
    agent
        .deliver(batch, Duration::from_secs(30), stats)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Delivers two batches at the same moment, each through its agent; both acks.
async fn at_once(
    (x, bx): (&WireAgent, &attest_config::wire::Batch),
    (y, by): (&WireAgent, &attest_config::wire::Batch),
) -> (attest_config::wire::Ack, attest_config::wire::Ack) {
    let (mut sx, mut sy) = (DeliveryStats::default(), DeliveryStats::default());
    tokio::join!(ack(x, bx, &mut sx), ack(y, by, &mut sy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_batch_at_both_collectors_is_stored_once_by_either_key() {
    let Some(db) = PgDb::create() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let cred = AgentCred::new("wire-fo");
    let checks = vec!["wire-a".to_string(), "wire-b".to_string()];
    let services = [ServiceDef {
        name: "wire".into(),
        checks: checks.clone(),
    }];
    let (a, b, store) = two_collectors(dir.path(), &db, &cred, &services).await;
    let (to_a, to_b) = (
        WireAgent::new(&a.url(), &cred.id, &cred.token),
        WireAgent::new(&b.url(), &cred.id, &cred.token),
    );
    let mut produced = Vec::new();
    let mut stats = DeliveryStats::default();

    // Committed at A, ack lost, resent to B: the (agent, seq) key answers "duplicate".
    for k in 1..=10 {
        let ms = batch_measurements(&checks, k);
        produced.extend(ms.iter().map(|m| attest_tests::load::key(&cred.id, m)));
        let batch = to_a.batch(k, ms.clone(), vec![]);
        let first = ack(&to_a, &batch, &mut stats).await;
        assert_eq!((first.duplicate, first.stored), (false, 20), "seq {k} at A");
        let again = ack(&to_b, &batch, &mut stats).await;
        assert_eq!(
            (again.duplicate, again.stored),
            (true, 0),
            "seq {k} resent to B"
        );
        // The same measurements in another batch: the (agent, check, ts) key stores none.
        let other = to_b.batch(100 + k, ms, vec![]);
        let renumbered = ack(&to_b, &other, &mut stats).await;
        assert_eq!(
            (renumbered.duplicate, renumbered.stored),
            (false, 0),
            "seq {} at B",
            100 + k
        );
    }

    // At the same moment at both replicas: the same batch, and the same measurements under
    // two seqs. Exactly one commit takes each batch and each measurement.
    for k in 11..=40 {
        let ms = batch_measurements(&checks, k);
        produced.extend(ms.iter().map(|m| attest_tests::load::key(&cred.id, m)));
        let same = to_a.batch(k, ms.clone(), vec![]);
        let (ra, rb) = at_once((&to_a, &same), (&to_b, &same)).await;
        assert!(
            ra.duplicate != rb.duplicate,
            "seq {k}: one replica commits, the other sees it: {ra:?} {rb:?}"
        );
        assert_eq!(ra.stored + rb.stored, 20, "seq {k}");
        let (pa, pb) = (
            to_a.batch(1000 + k, ms.clone(), vec![]),
            to_b.batch(2000 + k, ms, vec![]),
        );
        let (ra, rb) = at_once((&to_a, &pa), (&to_b, &pb)).await;
        assert!(
            !ra.duplicate && !rb.duplicate,
            "seq {k}: new seqs are new batches"
        );
        assert_eq!(
            ra.stored + rb.stored,
            0,
            "seq {k}: the measurements were stored already"
        );
    }

    let s = store.clone();
    let (in_store, counts) = tokio::task::spawn_blocking(move || {
        let keys = stored_keys(s.as_ref() as &dyn InspectStore, &checks);
        assert_rollups_match_raw(s.as_ref(), &checks, &keys);
        (keys, s.counts().expect("counts"))
    })
    .await
    .expect("store task");
    let t = tally(&produced, &in_store);
    assert!(t.exact(), "{t}");
    // seqs 1–40, 101–110, 1011–1040 and 2011–2040.
    assert_eq!(counts.batches, 40 + 10 + 30 + 30);
    assert_eq!(counts.measurements, 40 * 20);
    assert_eq!(stats.duplicate_acks, 10);
}
