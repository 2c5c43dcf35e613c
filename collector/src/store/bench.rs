//! Measurements, not tests: ingest throughput against SQLite's append-only limit in the
//! same run, and bytes per probe result after a simulated month. Run with
//! `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo test -p attest-collector store::bench -- --ignored --nocapture`.
//!
//! Invariants: deterministic inputs (a fixed-seed generator), so sizes are reproducible;
//! only the rates depend on the machine.

use std::time::Instant;

use attest_config::wire::{FailureReason, Measurement};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use rusqlite::{Connection, params};

use super::contract::{BASE_MINUTE, batch};
use super::{InspectStore, SqliteStore, Store};

/// A small deterministic generator (xorshift) for latencies and failures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly log-normal latency around `median` seconds.
    fn latency(&mut self, median: f64) -> f64 {
        let g: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        median * (0.6 * g).exp()
    }
}

/// The `index`-th probe result of `checks` checks probed every `interval_s` seconds, in time order.
fn probes(rng: &mut Rng, checks: usize, interval_s: i64, index: usize) -> Measurement {
    let tick = (index / checks) as i64;
    let check = index % checks;
    let secs = BASE_MINUTE * 60 + tick * interval_s + check as i64 % interval_s;
    let ts = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let ok = rng.unit() > 0.001;
    let mut m = Measurement::new(format!("check-{check:03}"), ts, ok);
    m.duration_seconds = Some(rng.latency(0.02 + check as f64 * 0.001));
    if !ok {
        m.reason = Some(FailureReason::Timeout);
    }
    m
}

fn commit_all(store: &SqliteStore, checks: usize, interval_s: i64, total: usize) -> f64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seconds = 0.0;
    for (seq, start) in (0..total).step_by(1000).enumerate() {
        let ms: Vec<Measurement> = (start..(start + 1000).min(total))
            .map(|i| probes(&mut rng, checks, interval_s, i))
            .collect();
        let b = batch("agent-1", seq as u64 + 1, ms);
        let t = Instant::now();
        let out = store.commit_batch(&b).expect("commit");
        seconds += t.elapsed().as_secs_f64();
        assert_eq!(out.stored as usize, b.measurements.len());
    }
    seconds
}

/// SQLite's ceiling on this machine now: plain appends, same pragmas, 1,000 rows per commit.
fn append_only_rate(total: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::open(dir.path().join("anchor.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (ts INTEGER, series INTEGER, ok INTEGER, d REAL);",
    )
    .expect("schema");
    let t = Instant::now();
    for start in (0..total).step_by(1000) {
        let tx = conn.unchecked_transaction().expect("tx");
        {
            let mut s = tx
                .prepare_cached("INSERT INTO t VALUES (?1, ?2, ?3, ?4)")
                .expect("stmt");
            for i in start..(start + 1000).min(total) {
                s.execute(params![i as i64 * 1_000_000_000, (i % 100) as i64, 1, 0.02])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    total as f64 / t.elapsed().as_secs_f64()
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture and an optimised build"]
fn ingest_throughput() {
    let total = 300_000;
    let anchor = append_only_rate(total);
    let store = SqliteStore::open_temp().expect("open");
    // 100 checks every 10 s: each minute of each check gets 6 probes over several batches.
    let seconds = commit_all(&store, 100, 10, total);
    let rate = total as f64 / seconds;
    let anchor_after = append_only_rate(total);
    println!(
        "ingest: {total} measurements, 1,000 per batch: {rate:.0}/s; append-only anchor \
         {anchor:.0}/s before, {anchor_after:.0}/s after; ratio {:.2}",
        rate / ((anchor + anchor_after) / 2.0)
    );
}

fn v2_deflate_bytes(store: &SqliteStore, checks: &[String], from: i64, to: i64) -> (usize, u64) {
    let mut serializer = V2DeflateSerializer::new();
    let mut bytes = 0usize;
    let mut probes = 0u64;
    for r in store
        .series_minute_details(checks, from, to)
        .expect("rollups")
    {
        probes += u64::from(r.probes);
        if let Some(h) = r.latency {
            let mut buf = Vec::new();
            serializer.serialize(&h, &mut buf).expect("serialize");
            bytes += buf.len();
        }
    }
    (bytes, probes)
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture and an optimised build"]
fn month_of_rollups_size() {
    let checks = 10usize;
    let interval_s = 10;
    let days = 30;
    let total = checks * (days * 86_400 / interval_s) as usize;
    let store = SqliteStore::open_temp().expect("open");
    // Exact latency-threshold counts at each check's median latency: the worst case, where
    // the most probes land in the threshold's own bucket.
    for c in 0..checks {
        let median_us = 20_000 + c as u64 * 1_000;
        store
            .track_threshold(&format!("check-{c:03}"), median_us)
            .expect("track");
    }
    let seconds = commit_all(&store, checks, interval_s, total);
    let sizes =
        |store: &SqliteStore| -> Vec<(String, u64)> { store.table_sizes().expect("dbstat") };
    let get =
        |v: &[(String, u64)], name: &str| v.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
    let hot = sizes(&store);
    let names: Vec<String> = (0..checks).map(|c| format!("check-{c:03}")).collect();
    let day = BASE_MINUTE..BASE_MINUTE + 1440;
    let (deflate_day, probes_day) = v2_deflate_bytes(&store, &names, day.start, day.end);
    let end = jiff::Timestamp::from_second((BASE_MINUTE + days * 1440 + 1) * 60).expect("end");
    let t = Instant::now();
    store
        .apply_retention(end, jiff::Timestamp::UNIX_EPOCH)
        .expect("compact");
    let compact_s = t.elapsed().as_secs_f64();
    let cold = sizes(&store);
    let per = |bytes: u64| bytes as f64 / total as f64;
    println!(
        "month: {checks} checks x 10 s x {days} days = {total} probe results, ingest {:.0}/s",
        total as f64 / seconds
    );
    println!(
        "  hot minute rows (minute_rollup): {:.2} B/probe",
        per(get(&hot, "minute_rollup"))
    );
    println!("  raw rows: {:.2} B/probe", per(get(&hot, "raw")));
    println!(
        "  exact threshold counts at the median (minute_over, worst case): {:.3} B/probe",
        per(get(&hot, "minute_over"))
    );
    println!(
        "  per-minute V2+DEFLATE histograms alone would be {:.2} B/probe",
        deflate_day as f64 / probes_day as f64
    );
    println!(
        "  long-term hour packs: {:.3} B/probe (compaction {compact_s:.1} s)",
        per(get(&cold, "hour_pack"))
    );
    let all: u64 = cold.iter().map(|(_, s)| *s).sum();
    println!(
        "  all tables after raw retention (pages incl. free space): {:.3} B/probe",
        per(all)
    );
    for (name, bytes) in cold.iter().filter(|(_, b)| *b > 0) {
        println!("    {name}: {bytes} B");
    }
    let t = Instant::now();
    let month_cells = store.month_cells_for_bench(BASE_MINUTE, BASE_MINUTE + days * 1440);
    println!(
        "  decoding a month of packs (all checks, no histograms): {month_cells} cells in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let month = store
        .series_minute_details(&names[..1], BASE_MINUTE, BASE_MINUTE + days * 1440)
        .expect("month of one check");
    println!(
        "  reading a month of one check from packs: {} minutes in {:.1} ms",
        month.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let rows = store
        .series_minute_details(&names, BASE_MINUTE, BASE_MINUTE + 60)
        .expect("read back");
    assert_eq!(
        rows.iter().map(|r| u64::from(r.probes)).sum::<u64>(),
        10 * 360
    );
}

/// Batches and measurements per batch of [`seal_bytes_per_measurement`].
const SEAL_BATCHES: u64 = 200;
const SEAL_BATCH_SIZE: usize = 1000;

/// A seal with incompressible bytes, as real digests and signatures are.
fn bench_seal(rng: &mut Rng, seq: u64) -> super::BatchSeal {
    let mut bytes = |n: usize| (0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>();
    super::BatchSeal {
        digest: bytes(32).try_into().expect("32"),
        prev: (seq > 1).then(|| bytes(32).try_into().expect("32")),
        signature: bytes(64).try_into().expect("64"),
        key: [7; 32],
        ts_shift_ms: 0,
        gaps: None,
    }
}

/// The same batches of 1,000 measurements committed with and without their seals; the
/// difference of the stores' sizes over the measurements is what the evidence adds
/// (issue 21 target: at most 0.5 B per measurement). SQLite: the database file after a
/// WAL checkpoint; PostgreSQL (when reachable): `pg_total_relation_size` of the two tables.
#[test]
#[ignore = "measurement"]
fn seal_bytes_per_measurement() {
    let make_range = |sealed: bool, store: &dyn Store, seqs: std::ops::RangeInclusive<u64>| {
        let mut rng = Rng(0x5eed ^ seqs.start());
        for seq in seqs {
            let ms = (0..SEAL_BATCH_SIZE)
                .map(|i| probes(&mut rng, 100, 10, (seq as usize - 1) * SEAL_BATCH_SIZE + i))
                .collect();
            let seal = bench_seal(&mut rng, seq);
            let mut b = batch("a1", seq, ms);
            b.seal = sealed.then_some(seal);
            store.commit_batch(&b).expect("commit");
        }
    };
    let make = |sealed: bool, store: &dyn Store| make_range(sealed, store, 1..=SEAL_BATCHES);
    let measurements = (SEAL_BATCHES as usize * SEAL_BATCH_SIZE) as f64;
    let mut sizes = Vec::new();
    for sealed in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        make(sealed, &SqliteStore::open(dir.path()).expect("open"));
        let path = dir.path().join(super::sqlite::DB_FILE);
        let conn = Connection::open(&path).expect("reopen");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
            .expect("checkpoint");
        sizes.push(std::fs::metadata(&path).expect("size").len() as f64);
    }
    eprintln!(
        "SQLite: {} batches of {SEAL_BATCH_SIZE}: {:.0} B without seals, {:.0} B with: {:.3} B per measurement added (target 0.5)",
        SEAL_BATCHES,
        sizes[0],
        sizes[1],
        (sizes[1] - sizes[0]) / measurements
    );
    if let Some(db) = super::postgres::test_db::TestDb::create() {
        // Marginal: the growth from the first half to all, so the tables' fixed first
        // pages (one key row, empty index pages) do not count as per-measurement cost.
        let store = db.store();
        let size = || {
            super::postgres::test_db::admin_count(
                &db.url,
                "SELECT pg_total_relation_size('batch_seal') + pg_total_relation_size('agent_key')",
            ) as f64
        };
        let half = SEAL_BATCHES / 2;
        make_range(true, &store, 1..=half);
        let first = size();
        make_range(true, &store, half + 1..=SEAL_BATCHES);
        let all = size();
        eprintln!(
            "PostgreSQL: batch_seal + agent_key {first:.0} B after {half} batches, {all:.0} B after {SEAL_BATCHES}: {:.3} B per measurement added (target 0.5)",
            (all - first) / (measurements / 2.0)
        );
    }
}
