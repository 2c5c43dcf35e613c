//! Bytes per raw measurement, agent-shaped, before and after compaction into raw blocks
//! (issue 20: ≤ 12 B per measurement kept bit-exact), on SQLite and PostgreSQL.
//!
//! The measurements come from the agent-shaped generator of the ingest benchmark
//! (`bench/src/shape.rs`, included as is: recorded real-agent measurements varied per check
//! and probe; check 0 of every agent is its host check, the others HTTP(S) probes with
//! phases, values and labels, 3 % failures with reasons and error texts). Every agent probes
//! every check every 10 s for `BLOCKS_HOURS` hours; batches of 1,000 in time order.
//!
//! Printed (sizes only; they do not depend on the machine or the build profile):
//! - `*.rows_bytes_per_measurement`: the raw table while measurements are rows (SQLite: its
//!   pages from `dbstat`; PostgreSQL: `pg_total_relation_size` of its partitions, indexes
//!   included);
//! - `*.blocks_bytes_per_measurement`: the `raw_block` table after every hour was compacted
//!   (same measures), beside the 12 B target;
//! - `*.block_payload_bytes_per_measurement`: the blocks' bytes alone.
//!
//! Before printing, the bench checks that every check's raw measurements read back the same
//! after compaction (the contract tests check it bit for bit on small data).
//!
//! Run: `cargo bench -p attest-collector --features test-support --bench raw_blocks --profile ci`
//! (knobs `BLOCKS_AGENTS` = 2, `BLOCKS_CHECKS` = 100, `BLOCKS_HOURS` = 3). PostgreSQL runs
//! when the test server is reachable (as the store tests find it); otherwise it says so.

#[allow(dead_code)]
#[path = "../../bench/src/shape.rs"]
mod shape;

use attest_collector::store::postgres::test_db::{TestDb, admin_count};
use attest_collector::store::{IngestBatch, SqliteStore, Store};
use attest_config::wire::Measurement;
use jiff::{SignedDuration, Timestamp};

/// The target of issue 20.
const TARGET_BYTES: f64 = 12.0;
/// A fixed hour (2026-03-01T00:00:00Z): sizes are reproducible.
const BASE_SECOND: i64 = 1_772_323_200;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every batch of the run, agent by agent, in time order.
fn batches(agents: usize, checks: usize, hours: usize) -> Vec<IngestBatch> {
    let fixture = shape::Fixture::load().expect("fixture");
    let base = Timestamp::from_second(BASE_SECOND).expect("base");
    let ticks = (hours * 360) as u64;
    let mut out = Vec::new();
    for a in 0..agents {
        let all: Vec<Measurement> = (0..ticks)
            .flat_map(|tick| (0..checks).map(move |c| (tick, c)))
            .map(|(tick, c)| {
                let ts = shape::probe_ts(base, SignedDuration::from_secs(10), c, tick);
                fixture.measurement(a, c, tick, ts)
            })
            .collect();
        for (i, chunk) in all.chunks(1000).enumerate() {
            out.push(IngestBatch {
                agent: format!("agent-{a:03}"),
                seq: i as u64 + 1,
                received_at: base,
                clock_offset_ms: 0,
                measurements: chunk.to_vec(),
                gaps: Vec::new(),
                spool: None,
                seal: None,
            });
        }
    }
    out
}

fn commit_all(store: &dyn Store, batches: &[IngestBatch]) -> u64 {
    let mut stored = 0;
    for b in batches {
        stored += store.commit_batch(b).expect("commit").stored;
    }
    stored
}

/// Every check's raw measurements over the whole run, for the before/after comparison.
fn read_all(store: &dyn Store, checks: &[String], hours: usize) -> Vec<(String, Measurement)> {
    let from = Timestamp::from_second(BASE_SECOND - 3600).expect("from");
    let to = Timestamp::from_second(BASE_SECOND + (hours as i64 + 1) * 3600).expect("to");
    checks
        .iter()
        .flat_map(|c| store.raw_measurements(c, from, to).expect("raw"))
        .collect()
}

fn per(bytes: u64, n: u64) -> f64 {
    bytes as f64 / n.max(1) as f64
}

fn sqlite(batches: &[IngestBatch], checks: &[String], hours: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let n = commit_all(&store, batches);
    let table = |store: &SqliteStore, name: &str| {
        store
            .table_sizes()
            .expect("dbstat")
            .into_iter()
            .filter(|(t, _)| t == name)
            .map(|(_, b)| b)
            .sum::<u64>()
    };
    let rows = table(&store, "raw");
    let before = read_all(&store, checks, hours);
    let end_minute = BASE_SECOND / 60 + hours as i64 * 60 + 1;
    store.compact(end_minute).expect("compact");
    assert!(
        read_all(&store, checks, hours) == before,
        "blocks read back differently"
    );
    let blocks = table(&store, "raw_block");
    let conn = rusqlite::Connection::open(store.path()).expect("open copy");
    let (held, payload): (i64, i64) = conn
        .query_row(
            "SELECT coalesce(sum(count), 0), coalesce(sum(length(data)), 0) FROM raw_block",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("payload");
    assert_eq!(held as u64, n, "every measurement is in a block");
    print_sizes("sqlite", n, rows, blocks, payload as u64);
}

fn postgres(batches: &[IngestBatch], checks: &[String], hours: usize) {
    let Some(db) = TestDb::create() else {
        println!("postgres: skipped (no server reachable)");
        return;
    };
    let store = db.store();
    let n = commit_all(&store, batches);
    let size = |sql: &str| admin_count(&db.url, sql) as u64;
    // Partitioned tables keep no storage of their own: their partitions' sizes, summed.
    let total = |table: &str| {
        size(&format!(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8 FROM pg_inherits
             WHERE inhparent = '{table}'::regclass"
        ))
    };
    let rows = total("raw");
    let before = read_all(&store, checks, hours);
    let end_minute = BASE_SECOND / 60 + hours as i64 * 60 + 1;
    store.compact(end_minute).expect("compact");
    assert!(
        read_all(&store, checks, hours) == before,
        "blocks read back differently"
    );
    let blocks = total("raw_block");
    let payload = size("SELECT coalesce(sum(length(data)), 0)::int8 FROM raw_block");
    assert_eq!(
        size("SELECT coalesce(sum(count), 0)::int8 FROM raw_block"),
        n,
        "every measurement is in a block"
    );
    print_sizes("postgres", n, rows, blocks, payload);
}

fn print_sizes(p: &str, n: u64, rows: u64, blocks: u64, payload: u64) {
    println!(
        "{p}.measurements={n}\n\
         {p}.rows_bytes_per_measurement={:.1}\n\
         {p}.blocks_bytes_per_measurement={:.2} (target <= {TARGET_BYTES}: {})\n\
         {p}.block_payload_bytes_per_measurement={:.2}",
        per(rows, n),
        per(blocks, n),
        if per(blocks, n) <= TARGET_BYTES {
            "met"
        } else {
            "NOT met"
        },
        per(payload, n),
    );
}

fn main() {
    let (agents, checks, hours) = (
        knob("BLOCKS_AGENTS", 2),
        knob("BLOCKS_CHECKS", 100),
        knob("BLOCKS_HOURS", 3),
    );
    let all = batches(agents, checks, hours);
    let fixture = shape::Fixture::load().expect("fixture");
    let names: Vec<String> = (0..checks).map(|c| fixture.check_id(c)).collect();
    println!(
        "shape: {agents} agents x {checks} checks (check 0 the host check) every 10 s for \
         {hours} h: {} measurements in {} batches",
        all.iter().map(|b| b.measurements.len()).sum::<usize>(),
        all.len()
    );
    sqlite(&all, &names, hours);
    postgres(&all, &names, hours);
}
