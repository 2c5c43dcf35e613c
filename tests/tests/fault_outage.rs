//! The collector is unreachable for 20 s of real time while a real agent probes every
//! 200 ms. The spool holds everything (nothing dropped, well within its cap), the agent's
//! resident memory stays bounded while it waits and retries, and after recovery the spool
//! drains: the store holds exactly what the agent spooled.

use std::time::{Duration, Instant};

use attest_tests::fixtures::{
    LoopbackRig, LoopbackSpec, assert_rollups_match_raw, metrics, rss_kib, spooled_keys,
    stored_keys, wait_progress,
};
use attest_tests::load::tally;
use attest_tests::{sample, wait_for};

const OUTAGE: Duration = Duration::from_secs(20);
/// Generous ceiling for the agent's RSS (a debug build); the design target is 64 MB.
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_spooled_within_cap_with_bounded_memory_and_drains_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let LoopbackRig {
        cred,
        checks,
        mut collector,
        setup,
        keeper,
    } = LoopbackRig::start(
        dir.path(),
        LoopbackSpec {
            agent: "patient",
            service: "patient",
            prefix: "ok",
            pairs: 2,
            max_bytes: "4MiB",
        },
    )
    .await;
    let mut agent = setup.spawn(dir.path());
    let seen = wait_progress(&collector.data_dir, 0, 20, Duration::from_secs(60)).await;

    collector.kill();
    let down_at = Instant::now();
    let (mut rss_max, mut rss_first) = (0u64, None);
    while down_at.elapsed() < OUTAGE {
        let rss = rss_kib(agent.pid()).expect("agent RSS from /proc");
        rss_first.get_or_insert(rss);
        rss_max = rss_max.max(rss);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let port = setup.listen_port;
    let m = metrics(port)
        .await
        .expect("agent metrics during the outage");
    let depth = sample(&m, "attest_agent_spool_depth_measurements", &[]).unwrap_or(0.0);
    let dropped = sample(&m, "attest_agent_spool_dropped_measurements_total", &[]);
    let errors = sample(&m, "attest_agent_send_errors_total", &[]).unwrap_or(0.0);
    // 4 checks at 5/s for 20 s is 400 probes; allow for a loaded machine skipping ticks.
    assert!(
        depth >= 100.0,
        "spool depth {depth} after a {OUTAGE:?} outage"
    );
    assert_eq!(dropped, Some(0.0), "the spool dropped within its cap");
    assert!(
        errors >= 3.0,
        "the agent did not keep retrying: {errors} send errors"
    );

    collector.start().await;
    wait_for(
        "the spool to drain after recovery",
        Duration::from_secs(60),
        || async move {
            let m = metrics(port).await?;
            let d = sample(&m, "attest_agent_spool_depth_measurements", &[])?;
            (d < 20.0).then_some(())
        },
    )
    .await;
    let rss_after = rss_kib(agent.pid()).unwrap_or(0);
    setup
        .drain(&mut agent, dir.path(), Duration::from_secs(60))
        .await;

    let spooled = keeper.spooled().expect("spool oracle");
    let produced = spooled_keys(&cred.id, &spooled);
    let store = collector.store();
    let stored = stored_keys(&store, &checks);
    let t = tally(&produced, &stored);
    eprintln!(
        "outage {OUTAGE:?}: depth at end {depth}, send errors {errors}, stored before {seen}; \
         agent RSS first {rss_first:?} KiB, max {rss_max} KiB, after drain {rss_after} KiB; {t}"
    );
    assert!(t.exact(), "{t}");
    assert!(
        rss_max < RSS_BOUND_KIB,
        "agent RSS reached {rss_max} KiB during the outage (bound {RSS_BOUND_KIB} KiB)"
    );
    assert_rollups_match_raw(&store, &checks, &stored);
}
