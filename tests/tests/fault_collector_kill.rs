//! The collector is SIGKILLed and restarted five times while several agents deliver: three
//! wire-level agents (known keys, resending until acked) and one real `attest-agent` whose
//! spool is watched by the segment keeper. Afterwards every produced key is stored exactly
//! once, and the minute rollups count each stored measurement once.
//!
//! The same scenario runs on both store backends: SQLite in the collector's data directory,
//! and a throwaway PostgreSQL database (skipped without a server unless
//! `ATTEST_REQUIRE_POSTGRES=1`), where a kill cuts the collector's connections mid-transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use attest_tests::fixtures::{
    AgentCred, AgentSetup, Collector, ServiceDef, assert_rollups_match_raw, loopback_check_ids,
    loopback_checks, ok_target, spooled_keys, stored_keys,
};
use attest_tests::free_port;
use attest_tests::load::{DeliveryStats, LoadPlan, Produced, WireAgent, steady_load, tally};
use attest_tests::postgres::PgDb;
use attest_tests::spool_oracle::SegmentKeeper;

const KILLS: u32 = 5;
/// Measurements per wire batch: 2 checks × 10.
const PER_BATCH: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_five_times_under_load_loses_and_duplicates_nothing() {
    killed_under_load(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_on_postgres_killed_five_times_under_load_loses_and_duplicates_nothing() {
    let Some(db) = PgDb::create() else { return };
    killed_under_load(Some(&db.url)).await;
}

/// The scenario on SQLite (`None`) or on the PostgreSQL database at `postgres_url`.
async fn killed_under_load(postgres_url: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = ok_target().await;
    let wire_creds: Vec<AgentCred> = (1..=3)
        .map(|i| AgentCred::new(&format!("wire-{i}")))
        .collect();
    let real = AgentCred::new("real-1");
    let wire_checks = vec!["wire-a".to_string(), "wire-b".to_string()];
    let real_checks = loopback_check_ids("ck", 2);
    let mut all_checks = wire_checks.clone();
    all_checks.extend(real_checks.iter().cloned());
    let mut creds = wire_creds.clone();
    creds.push(real.clone());
    let services = [
        ServiceDef {
            name: "wire".into(),
            checks: wire_checks.clone(),
        },
        ServiceDef {
            name: "real".into(),
            checks: real_checks.clone(),
        },
    ];
    let mut collector = Collector::on_backend(dir.path(), postgres_url, &creds, &services);
    collector.start().await;
    let reader = tokio::task::block_in_place(|| collector.reader());

    let setup = AgentSetup {
        cred: real.clone(),
        collector_port: collector.port,
        listen_port: free_port(),
        spool_dir: dir.path().join("spool-real"),
        max_bytes: "256KiB".into(),
        checks_toml: loopback_checks("ck", target, 2, "200ms"),
    };
    let keeper = SegmentKeeper::start(&setup.spool_dir, &dir.path().join("kept"));
    let mut agent = setup.spawn(dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Produced::default();
    let loads: Vec<_> = wire_creds
        .iter()
        .map(|c| {
            let plan = LoadPlan {
                checks: wire_checks.clone(),
                per_check: 10,
                pace: Duration::from_millis(40),
                ack_bound: Duration::from_secs(60),
            };
            tokio::spawn(steady_load(
                WireAgent::new(&collector.url(), &c.id, &c.token),
                plan,
                produced.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut seen = reader.committed_async().await;
    for round in 0..KILLS {
        // Kill only once the load is flowing again, so each kill cuts into live traffic.
        seen = reader
            .wait_committed(seen, 400, Duration::from_secs(60))
            .await;
        collector.kill();
        // The outage itself is the fault being injected: a fixed, growing stretch down.
        tokio::time::sleep(Duration::from_millis(200 + 150 * u64::from(round))).await;
        collector.start().await;
    }
    reader
        .wait_committed(seen, 400, Duration::from_secs(60))
        .await;
    stop.store(true, Ordering::SeqCst);
    let mut wire_stats = DeliveryStats::default();
    for l in loads {
        let s = l
            .await
            .expect("load task")
            .unwrap_or_else(|e| panic!("wire load failed: {e}\n{}", collector.log_text()));
        wire_stats.batches_acked += s.batches_acked;
        wire_stats.duplicate_acks += s.duplicate_acks;
        wire_stats.retries += s.retries;
        wire_stats.stored += s.stored;
    }
    setup
        .drain(&mut agent, dir.path(), Duration::from_secs(60))
        .await;

    let spooled = keeper.spooled().expect("spool oracle");
    let mut all_produced = produced.keys();
    all_produced.extend(spooled_keys(&real.id, &spooled));
    let (stored, counts) = tokio::task::spawn_blocking({
        let checks = all_checks.clone();
        move || {
            let store = reader.open().expect("open the store");
            let stored = stored_keys(store.as_ref(), &checks);
            assert_rollups_match_raw(store.as_ref(), &checks, &stored);
            (stored, store.counts().expect("counts"))
        }
    })
    .await
    .expect("store task");
    let t = tally(&all_produced, &stored);
    eprintln!(
        "{} collector kills: {KILLS}; wire: {wire_stats:?}; real agent spooled {}; {t}",
        if postgres_url.is_some() {
            "PostgreSQL:"
        } else {
            "SQLite:"
        },
        spooled.len()
    );
    assert!(t.exact(), "{t}");
    // A batch whose first ack was lost to a kill is answered `duplicate` with stored 0 on
    // resend; every other batch reports all its measurements as newly stored.
    assert_eq!(
        wire_stats.stored + wire_stats.duplicate_acks * PER_BATCH,
        produced.keys().len() as u64,
        "acks' `stored` plus duplicate batches must add up to the wire keys produced"
    );
    assert!(
        spooled.len() > 50,
        "the real agent barely produced anything"
    );
    assert_eq!(counts.measurements, stored.len() as u64);
}
