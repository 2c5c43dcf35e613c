//! A real agent is SIGKILLed and restarted five times while it probes a loopback target
//! every 200 ms and delivers to a real collector. The segment keeper records every
//! measurement the agent spooled; after a final drain, the store holds exactly those keys:
//! none missing, none twice, none that the agent never produced.

use std::time::Duration;

use attest_tests::fixtures::{
    LoopbackRig, LoopbackSpec, assert_rollups_match_raw, spooled_keys, stored_count, stored_keys,
    wait_progress,
};
use attest_tests::load::tally;
use attest_tests::sample;

const KILLS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_five_times_delivers_everything_it_spooled_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let LoopbackRig {
        cred,
        checks,
        collector,
        setup,
        keeper,
    } = LoopbackRig::start(
        dir.path(),
        LoopbackSpec {
            agent: "crashy",
            service: "crashy",
            prefix: "ak",
            pairs: 3,
            // Small segments (8 KiB) rotate and get deleted during the run: the keeper must
            // catch each one.
            max_bytes: "256KiB",
        },
    )
    .await;

    let mut seen = stored_count(&collector.data_dir);
    let mut agent = setup.spawn(dir.path());
    for round in 0..KILLS {
        // Deliveries are flowing (the agent is mid-stream), then the kill lands at a
        // different offset each round, so it hits different points of a send/ack cycle.
        seen = wait_progress(&collector.data_dir, seen, 30, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(37 * round)).await;
        agent.signal_and_wait("KILL", Duration::from_secs(10));
        agent = setup.spawn(dir.path());
    }
    wait_progress(&collector.data_dir, seen, 30, Duration::from_secs(60)).await;
    setup
        .drain(&mut agent, dir.path(), Duration::from_secs(60))
        .await;

    let spooled = keeper.spooled().expect("spool oracle");
    let produced = spooled_keys(&cred.id, &spooled);
    let store = collector.store();
    let stored = stored_keys(&store, &checks);
    let t = tally(&produced, &stored);
    let m = collector.metrics().await.unwrap_or_default();
    let dup_batches = sample(
        &m,
        "attest_ingest_batches_total",
        &[("result", "duplicate")],
    );
    let live = std::fs::read_dir(&setup.spool_dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .count()
    });
    eprintln!(
        "agent kills: {KILLS}; segments kept {} (live at end {live}); duplicate batches at the collector: {dup_batches:?}; {t}",
        keeper.kept_files()
    );
    assert!(
        keeper.kept_files() > live,
        "no segment was deleted during the run: the keeper was not exercised"
    );
    assert!(t.exact(), "{t}");
    assert!(
        produced.len() as u64 >= 30 * (KILLS + 1),
        "too little was produced to judge"
    );
    assert_rollups_match_raw(&store, &checks, &stored);
}
