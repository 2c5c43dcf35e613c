//! The collector's cost of the evidence chain (issue 21), each beside its target:
//!
//! 1. **Ingest CPU per measurement, verified vs unsigned** (target ≤ 1.10×): 4 agents ×
//!    1,000 checks, batches of 1,000 (`EVIDENCE_BATCHES` per agent, default 40: 160,000
//!    measurements a run), the same measurements sent once as version 1 (unsigned) and once
//!    as signed, chained version 2 batches through `Ingest::handle_admitted` (decode,
//!    validation, digest, signature, chain link, SQLite commit) into a fresh store per run.
//!    `EVIDENCE_PAIRS` pairs of runs (default 7), the side that goes first alternating;
//!    each run's CPU is this process's (every thread: the store's writer too) from
//!    `/proc/self/stat`, so other load on the shared machine barely moves it. Printed: each
//!    side's median, the median of the per-pair ratios and the ratio of the medians.
//! 2. **`audit` of a month of 1,000 services × 3 agents at 10 s** (target ≤ 60 s). A
//!    literal month is 803.5 million measurements (31 days); this bench stores
//!    `AUDIT_HOURS` hours of it (default 1: 1.08 million measurements, signed, chained,
//!    1,000 per batch: one batch per agent and tick) through the store API, audits that
//!    hour as rows, compacts it into raw blocks (what a month is after two hours) and
//!    audits it again, then extrapolates linearly to the month. Left out, and said so in
//!    the output: the month's real size on disk and in the page cache, retention and
//!    partitions, PostgreSQL; the measurements are light (duration and two phases), so
//!    the digest's share is smaller than with agent-shaped details.
//!
//! Run (figures only from an optimised build; the machine is shared, so the ratios taken
//! in one run are the figures, not the absolute times):
//! `cargo bench -p attest-collector --bench evidence --profile profiling`
//! (`EVIDENCE_ONLY=ingest` or `=audit` runs one part.)

use std::sync::Arc;
use std::time::Instant;

use attest_collector::audit;
use attest_collector::changed::DataChanged;
use attest_collector::ingest::Ingest;
use attest_collector::store::{BatchSeal, IngestBatch, SqliteStore, Store};
use attest_config::evidence::canonical::{self, Header};
use attest_config::evidence::keys;
use attest_config::wire::{Batch, Evidence, Measurement, Phase};
use jiff::Timestamp;

const AGENTS: usize = 4;
const CHECKS: usize = 1000;
/// 2026-09-21T13:46:40Z: the ingest runs' collector clock.
const NOW: i64 = 1_790_000_000;
/// 2026-03-01T00:00:00Z: the audited hour starts here.
const AUDIT_BASE: i64 = 1_772_323_200;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of this process so far (user + system, every thread, exited ones too).
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One probe: a light HTTP measurement (duration and two phases; every 37th fails).
fn measurement(check: usize, ts: Timestamp) -> Measurement {
    let mut m = Measurement::new(format!("check-{check:04}"), ts, !check.is_multiple_of(37));
    m.duration_seconds = Some(0.01 + check as f64 * 1e-5);
    m.phases.insert(Phase::Connect, 0.002);
    m.phases.insert(Phase::Processing, 0.007);
    m
}

/// Digest and signature of a batch, and the digest for the next one's `prev`.
fn seal(
    agent: &str,
    seq: u64,
    prev: Option<[u8; 32]>,
    ms: &[Measurement],
    key: &keys::SecretKey,
) -> BatchSeal {
    let digest = canonical::digest(
        &Header {
            agent,
            seq,
            prev: prev.as_ref(),
        },
        ms,
        &[],
    );
    BatchSeal {
        digest,
        prev,
        signature: keys::sign(key, &digest),
        key: *keys::public_of(key).as_bytes(),
        ts_shift_ms: 0,
        gaps: None,
    }
}

/// Bodies of every ingest batch, in the order sent: (agent, JSON).
fn bodies(signed: bool, batches: u64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for a in 0..AGENTS {
        let agent = format!("agent-{a}");
        let key = keys::secret_from_seed(&[a as u8 + 1; 32]);
        let mut prev: Option<[u8; 32]> = None;
        for seq in 1..=batches {
            let ts = Timestamp::from_second(NOW - 30 * 60 + seq as i64 * 10).expect("ts");
            let ms: Vec<Measurement> = (0..CHECKS).map(|c| measurement(c, ts)).collect();
            let mut b = Batch {
                version: 1,
                agent: agent.clone(),
                seq,
                sent_at: Timestamp::from_second(NOW).expect("ts"),
                measurements: ms,
                gaps: vec![],
                spool: None,
                evidence: None,
            };
            if signed {
                let s = seal(&agent, seq, prev, &b.measurements, &key);
                b.version = 2;
                b.evidence = Some(Evidence {
                    prev: prev.map(|p| keys::hex(&p)),
                    digest: keys::hex(&s.digest),
                    key: keys::public_of(&key).to_string(),
                    signature: keys::signature_text(&s.signature),
                });
                prev = Some(s.digest);
            }
            out.push((agent.clone(), serde_json::to_vec(&b).expect("json")));
        }
    }
    out
}

/// CPU seconds to ingest `bodies` into a fresh store (opening and dropping it not counted).
fn ingest_run(bodies: &[(String, Vec<u8>)]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let limits = attest_config::parse_collector("c.toml", "")
        .expect("defaults")
        .ingest;
    let ingest = Ingest::new(store, &[], limits, DataChanged::new());
    let now = Timestamp::from_second(NOW).expect("ts");
    let start = cpu();
    for (agent, body) in bodies {
        ingest
            .handle_admitted(agent, None, body, now)
            .expect("accepted");
    }
    cpu() - start
}

fn ingest_part() {
    let batches = knob("EVIDENCE_BATCHES", 40) as u64;
    let pairs = knob("EVIDENCE_PAIRS", 7);
    let (plain, signed) = (bodies(false, batches), bodies(true, batches));
    let n = (AGENTS * CHECKS) as f64 * batches as f64;
    ingest_run(&plain); // warm the allocator and the page cache, not counted
    let (mut ps, mut ss, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..pairs {
        let (p, s) = if k % 2 == 0 {
            let p = ingest_run(&plain);
            (p, ingest_run(&signed))
        } else {
            let s = ingest_run(&signed);
            (ingest_run(&plain), s)
        };
        println!(
            "ingest pair {}: unsigned {:.2} µs, signed {:.2} µs per measurement ({:.3}×)",
            k + 1,
            p / n * 1e6,
            s / n * 1e6,
            s / p
        );
        ps.push(p);
        ss.push(s);
        ratios.push(s / p);
    }
    let (mp, ms, mr) = (median(&mut ps), median(&mut ss), median(&mut ratios));
    println!(
        "ingest.cpu_us_per_measurement: unsigned {:.2}, verified {:.2} (medians of {pairs} alternating runs of {n} measurements each, process CPU)",
        mp / n * 1e6,
        ms / n * 1e6
    );
    println!(
        "ingest.ratio: {:.3} (median of the pairs' ratios; ratio of the medians {:.3}); target ≤ 1.10: {}",
        mr,
        ms / mp,
        if mr <= 1.10 { "met" } else { "NOT met" }
    );
}

/// Stores `hours` of `services` checks on `agents` agents at 10 s, signed and chained,
/// through `Store::commit_batch`; answers the measurements stored.
fn seed(store: &SqliteStore, services: usize, agents: usize, hours: usize) -> u64 {
    let mut stored = 0;
    for a in 0..agents {
        let agent = format!("agent-{a}");
        let key = keys::secret_from_seed(&[a as u8 + 11; 32]);
        let mut prev = None;
        for tick in 0..(hours * 360) as u64 {
            let ts = Timestamp::from_second(AUDIT_BASE + tick as i64 * 10).expect("ts");
            let ms: Vec<Measurement> = (0..services).map(|c| measurement(c, ts)).collect();
            let seq = tick + 1;
            let s = seal(&agent, seq, prev, &ms, &key);
            prev = Some(s.digest);
            let out = store
                .commit_batch(&IngestBatch {
                    agent: agent.clone(),
                    seq,
                    received_at: ts,
                    clock_offset_ms: 0,
                    measurements: ms,
                    gaps: vec![],
                    spool: None,
                    seal: Some(s),
                })
                .expect("commit");
            stored += out.stored;
        }
    }
    stored
}

/// (wall seconds, CPU seconds, measurements audited, findings) of one audit of March 2026.
fn audit_once(store: &SqliteStore) -> (f64, f64, u64, usize) {
    let cfg = attest_config::parse_collector("c.toml", "").expect("defaults");
    let (from, to) = audit::month_bounds("2026-03").expect("month");
    let (t0, c0) = (Instant::now(), cpu());
    let r = audit::audit(store, &cfg, from, to).expect("audit");
    (
        t0.elapsed().as_secs_f64(),
        cpu() - c0,
        r.measurements,
        r.findings.len(),
    )
}

fn audit_part() {
    let services = knob("AUDIT_SERVICES", 1000);
    let agents = knob("AUDIT_AGENTS", 3);
    let hours = knob("AUDIT_HOURS", 1);
    let month = (services * agents * 8640 * 31) as f64;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("store");
    let t0 = Instant::now();
    let stored = seed(&store, services, agents, hours);
    println!(
        "audit: stored {stored} measurements ({services} services × {agents} agents every 10 s for {hours} h, one batch per agent and tick) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let report = |what: &str, (wall, cpu, n, findings): (f64, f64, u64, usize)| {
        assert_eq!(findings, 0, "an untouched store audits clean");
        assert_eq!(n, stored, "every stored measurement is in a signed batch");
        let (month_wall, month_cpu) = (wall / n as f64 * month, cpu / n as f64 * month);
        println!(
            "audit.{what}: {wall:.2} s wall, {cpu:.2} s CPU for {n} measurements ({:.2} µs CPU each); \
             a month of {month:.0} measurements extrapolated linearly: {month_wall:.0} s wall ({month_cpu:.0} s CPU); \
             target ≤ 60 s: {}",
            cpu / n as f64 * 1e6,
            if month_wall.max(month_cpu) <= 60.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    };
    report("rows", audit_once(&store));
    let end_minute = (AUDIT_BASE + hours as i64 * 3600) / 60 + 180;
    let moved = store.compact(end_minute).expect("compact");
    println!(
        "audit: compaction moved {moved} rows (raw rows into raw blocks, minutes into packs): a month's store is blocks but for its last two hours"
    );
    report("blocks", audit_once(&store));
    println!(
        "audit: left out: a real month's size on disk and in the page cache (the extrapolation assumes the same cost per measurement), \
         retention and PostgreSQL; light measurements (an agent-shaped one costs more to digest)"
    );
}

fn main() {
    let only = std::env::var("EVIDENCE_ONLY").unwrap_or_default();
    if only.is_empty() || only == "ingest" {
        ingest_part();
    }
    if only.is_empty() || only == "audit" {
        audit_part();
    }
}
