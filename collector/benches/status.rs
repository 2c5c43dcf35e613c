//! The status page of 1,000 services rendered from memory (issue 22: target ≤ 100 ms): the
//! figures snapshot and the 90-day history of 10 real services (95 days of minute rows each,
//! with bad and silent stretches, computed by the real figures refresh and history pass),
//! fanned out to 1,000 services; then `status::render` of the overview, timed. Prints the
//! figure beside the target, and the page size.
//!
//! Run: `cargo bench -p attest-collector --bench status --features test-support`
//! (optimised like the other benches with `CARGO_PROFILE_DEV_OPT_LEVEL=3 … --profile dev`).
//! Knob: `STATUS_SERVICES` (1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_collector::figures::{Figures, Snapshot};
use attest_collector::status::history::{DAYS, History, first_day};
use attest_collector::status::{View, render};
use attest_collector::store::{SeriesMinuteSummary, SqliteStore, Store};

const TARGET: Duration = Duration::from_millis(100);
const DISTINCT: usize = 10;

fn config(names: impl Iterator<Item = (String, usize)>) -> attest_config::CollectorConfig {
    let mut toml = String::from("[[agent]]\nid = \"a1\"\ntoken = \"bench-token-a1-0123456789\"\n");
    for (name, set) in names {
        toml += &format!(
            "[[service]]\nname = \"{name}\"\nchecks = [\"chk-{set:02}\"]\ntarget = \"99.9%\"\n\
             time_zone = \"{}\"\n",
            if set % 2 == 0 { "Europe/Berlin" } else { "UTC" }
        );
    }
    attest_config::parse_collector("collector.toml", &toml).expect("valid config")
}

fn main() {
    let services: usize = std::env::var("STATUS_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let now = attest_collector::clock::system().now_utc();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path()).expect("store");
    seed(&sqlite, now);
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let small = Arc::new(config((0..DISTINCT).map(|s| (format!("set-{s:02}"), s))));
    let figures = Figures::new(small.clone(), store.clone());
    let t = Instant::now();
    figures.refresh(now);
    let history = History::default();
    history.refresh(&figures, store.as_ref(), now);
    eprintln!("setup: {DISTINCT} services computed in {:.1?}", t.elapsed());

    // Fan out to `services`: service i shows data set i % 10 under its own name.
    let big = config((0..services).map(|i| (format!("svc-{i:04}"), i % DISTINCT)));
    let real = figures.latest();
    let mut snap = Snapshot {
        computed_at: real.computed_at,
        ..Snapshot::default()
    };
    let fanned = History::default();
    for (i, svc) in big.services.iter().enumerate() {
        let set = i % DISTINCT;
        let mut r = real.services[set].clone();
        r.service = svc.name.clone();
        snap.services.push(r);
        snap.totals.push(real.totals[set]);
        snap.computed.push(real.computed[set]);
        let src = &small.services[set];
        let shown = history.days(&src.name, first_day(src, now).expect("first day"));
        fanned.seed(svc, shown.days, shown.maintenance_runs);
    }

    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let page = render(&big, &snap, &fanned, View::Full, None, now).expect("page");
        times.push(t.elapsed());
        size = page.len();
        assert!(page.matches("class=\"svc\"").count() == services);
    }
    times.sort();
    let median = times[times.len() / 2];
    let verdict = if median <= TARGET { "met" } else { "NOT met" };
    println!(
        "status page, {services} services × {DAYS} days, from memory: median {:.1} ms (min {:.1} ms) — target ≤ {} ms: {verdict}; page {:.0} KiB",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        TARGET.as_millis(),
        size as f64 / 1024.0
    );
}

/// 95 days up to now for every data set: a probe a minute, one set's day in 17 with five bad
/// minutes an hour for a morning, one in 23 silent for two hours.
fn seed(store: &SqliteStore, now: jiff::Timestamp) {
    let to = now.as_second().div_euclid(60);
    let from = to - 95 * 1_440;
    for set in 0..DISTINCT {
        let rows: Vec<SeriesMinuteSummary> = (from..to)
            .filter(|m| {
                let (day, hour) = (m.div_euclid(1_440), m.rem_euclid(1_440) / 60);
                !((day + set as i64) % 23 == 0 && (2..4).contains(&hour))
            })
            .map(|minute| {
                let (day, hour) = (minute.div_euclid(1_440), minute.rem_euclid(1_440) / 60);
                let bad = (day + set as i64) % 17 == 0 && hour < 6 && minute % 60 < 5;
                SeriesMinuteSummary {
                    minute,
                    probes: 1,
                    failures: u32::from(bad),
                    reason: None,
                    ok_durations: if bad { Vec::new() } else { vec![0.03] },
                }
            })
            .collect();
        store
            .load_minutes("a1", &format!("chk-{set:02}"), &rows)
            .expect("seed minutes");
    }
}
