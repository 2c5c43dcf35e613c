//! What one HTTP check costs on the agent's heap, stage by stage: its definition, its
//! probe, its place in the scheduler and its telemetry state. A measurement, not a pass/fail
//! test (ignored; glibc only):
//! `cargo test -p attest-agent --test memory_per_check -- --ignored --nocapture`.
//! `bench/agent-rss` measures the whole process; this says where its per-check part goes.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use attest_agent::clock::SystemClock;
use attest_agent::schedule::{ScheduleStats, Scheduler, Sink};
use attest_agent::spool::{SharedSpool, Spool};
use attest_agent::telemetry::Telemetry;
use attest_agent::transport::TransportStats;
use attest_agent::transport::collectors::Collectors;
use attest_config::wire::{Measurement, Phase, Value};
use tokio_util::sync::CancellationToken;

const N: usize = 1000;

/// Heap bytes in use (all arenas).
fn in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

fn per_check(what: &str, before: usize) -> usize {
    let now = in_use();
    let d = now.saturating_sub(before);
    println!("{what:<44} {:>7} B/check", d / N);
    now
}

fn checks_toml() -> String {
    (0..N)
        .map(|i| {
            format!(
                "[[check]]\nid = \"web-{i:04}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/?check={i}\"\ninterval = \"10s\"\ntimeout = \"5s\"\n\n"
            )
        })
        .collect()
}

/// A measurement as an HTTP probe reports it.
fn measurement(check: &str) -> Measurement {
    let mut m = Measurement::new(check, jiff::Timestamp::UNIX_EPOCH, true);
    m.duration_seconds = Some(0.001);
    for p in [
        Phase::Resolve,
        Phase::Connect,
        Phase::Processing,
        Phase::Transfer,
    ] {
        m.phases.insert(p, 0.0002);
    }
    for (name, v) in [
        ("http_status_code", 200.0),
        ("http_content_length_bytes", 20.0),
        ("http_redirects", 0.0),
    ] {
        m.values.push(Value {
            name: name.into(),
            resource: None,
            value: v,
        });
    }
    m
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn heap_per_http_check() {
    attest_agent::memory::tune_heap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = SharedSpool::new(
        Spool::open(dir.path(), 1 << 30, attest_config::WhenFull::DropOldest).expect("spool"),
    );
    let stats = Arc::new(ScheduleStats::default());
    let collectors = Arc::new(
        Collectors::new(&["http://127.0.0.1:9".to_string()], Duration::from_secs(60))
            .expect("collectors"),
    );
    let telemetry = Telemetry::new(
        stats.clone(),
        Arc::new(TransportStats::default()),
        collectors,
        spool,
    );
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let sink = Sink {
        tx,
        stats,
        observe: Arc::new(|_| {}),
    };
    let mut sched = Scheduler::new(
        "bench",
        Arc::new(SystemClock),
        64,
        sink,
        CancellationToken::new(),
    );
    let text = checks_toml();
    attest_agent::memory::release_free_heap();

    let start = in_use();
    drop(attest_config::parse_checks("bench", &text).expect("valid"));
    per_check("left after parsing and dropping the checks", start);
    let start = in_use();
    let defs = attest_agent::assignment::share_all(
        attest_config::parse_checks("bench", &text).expect("valid"),
    );
    per_check("definition (attest_config::Check, shared)", start);
    let at = in_use();
    let first = attest_agent::probe::build(&defs[0]).expect("builds");
    println!(
        "{:<44} {:>7} B once",
        "the first probe (TLS set up for https only)",
        in_use() - at
    );
    let at = in_use();
    let probes: Vec<Box<dyn attest_agent::probe::Probe>> = defs
        .iter()
        .map(|c| attest_agent::probe::build(c).expect("builds"))
        .collect();
    per_check("  the probe alone", at);
    drop(probes);
    drop(first);
    let at = in_use();
    let applied = sched.apply(&defs, |c| {
        attest_agent::probe::build(c).map_err(|e| e.to_string())
    });
    assert_eq!(applied.started.len(), N);
    // Let the queue take its entries.
    rt.block_on(tokio::time::sleep(Duration::from_millis(1)));
    let at = per_check("probe + scheduler (slot, queue entry, map)", at);
    telemetry.set_checks(sched.checks());
    for c in sched.checks() {
        telemetry.observe(&measurement(&c.id));
    }
    per_check("telemetry (state after one probe)", at);
    per_check("total", start);
    let cfg_path = dir.path().join("agent.toml");
    std::fs::write(
        &cfg_path,
        "[agent]\nid = \"bench\"\ncollector_url = \"http://127.0.0.1:9\"\ntoken = \"t\"\n\n[spool]\ndir = \"spool\"\n",
    )
    .expect("write");
    let cfg = attest_config::load_agent(&cfg_path).expect("valid");
    let _ = rustls::crypto::ring::default_provider().install_default();
    attest_agent::memory::release_free_heap();
    let at = in_use();
    let client = attest_agent::transport::build_client(&cfg.transport).expect("client");
    println!(
        "{:<44} {:>7} B once",
        "an HTTP client (reqwest, rustls)",
        in_use() - at
    );
    let at = in_use();
    let client2 = attest_agent::transport::build_client_for(
        &cfg.transport,
        &["http://127.0.0.1:9".to_string()],
    )
    .expect("client");
    println!(
        "{:<44} {:>7} B once",
        "  one for http:// collectors only",
        in_use() - at
    );
    drop((client, client2));
    let sizes: BTreeMap<&str, usize> = [
        ("Check", size_of::<attest_config::Check>()),
        ("HttpCheck", size_of::<attest_config::HttpCheck>()),
        ("Measurement", size_of::<Measurement>()),
    ]
    .into_iter()
    .collect();
    println!("inline sizes: {sizes:?}");
    drop(defs);
    rt.block_on(sched.stop());
}
