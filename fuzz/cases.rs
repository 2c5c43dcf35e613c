//! One function per fuzz target: feeds one input to a parser that reads untrusted bytes and
//! checks what must hold for every input (no panic; invariants stated per case).
//!
//! Shared by the cargo-fuzz targets in `fuzz/fuzz_targets/` and by the plain test
//! `tests/tests/fuzz_corpus.rs`, which replays `fuzz/corpus/` and `fuzz/regressions/` on
//! stable Rust so CI runs every committed input even without a nightly toolchain.

#![allow(dead_code)]

use std::io::Cursor;

/// One fuzz input in, a panic out if an invariant breaks.
pub type Case = fn(&[u8]);

/// The targets, by directory name under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: &[(&str, Case)] = &[
    ("ingest_body", ingest_body),
    ("config_agent", config_agent),
    ("config_collector", config_collector),
    ("spool_recovery", spool_recovery),
    ("import_lines", import_lines),
];

/// Batch decoder: zstd + JSON + validation. The first byte picks the `Content-Encoding`
/// (0 identity, 1 zstd, 2 absent, else an unsupported one); the rest is the body.
/// Invariant: a refusal is a 4xx, and an accepted batch re-validates.
pub fn ingest_body(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let encoding = match sel {
        0 => Some("identity"),
        1 => Some("zstd"),
        2 => None,
        _ => Some("br"),
    };
    let limits = limits();
    let now: jiff::Timestamp = "2026-03-01T10:00:00Z".parse().expect("instant");
    match attest_collector::ingest::decode_and_validate(body, encoding, &limits, now) {
        Ok(batch) => {
            let json = serde_json::to_vec(&batch).expect("a batch serializes");
            attest_collector::ingest::decode_and_validate(&json, None, &limits, now)
                .expect("a re-encoded accepted batch is accepted again");
        }
        Err(r) => assert!((400..500).contains(&r.status), "status {r:?}"),
    }
}

fn limits() -> attest_config::IngestLimits {
    let mut l = attest_config::parse_collector("fuzz.toml", "")
        .expect("defaults")
        .ingest;
    // Small enough that fuzzing finds the edges, large enough for the seeds.
    l.max_decompressed_bytes = 1 << 20;
    l.max_measurements_per_batch = 100;
    l
}

/// Config loader, agent file. Invariant: an error renders with a position in the file.
pub fn config_agent(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = attest_config::parse_agent("/nonexistent/fuzz/agent.toml", src) {
        assert!(!e.to_string().is_empty());
    }
}

/// Config loader, collector file.
pub fn config_collector(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = attest_config::parse_collector("/nonexistent/fuzz/collector.toml", src) {
        assert!(!e.to_string().is_empty());
    }
}

/// Spool record recovery: `data` is the first segment file of a spool directory. Opening
/// it must cut a torn or corrupt tail, never fail on content, and every batch it then hands
/// out must ack. Invariant: the spool drains to empty.
pub fn spool_recovery(data: &[u8]) {
    use attest_agent::spool::Spool;
    use attest_config::WhenFull;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(format!("seg-{:020}.log", 1)), data).expect("write segment");
    let mut spool = match Spool::open(dir.path(), 64 << 20, WhenFull::DropOldest) {
        Ok(s) => s,
        Err(e) => panic!("opening a spool with any segment content must recover, got: {e}"),
    };
    for _ in 0..10_000 {
        match spool.next_batch(1000).expect("next batch") {
            Some(b) => spool.ack(b.seq).expect("ack the batch just cut"),
            None => return,
        }
    }
    panic!("the spool did not drain");
}

/// Import line parser. Invariant: on success, as many measurements as non-blank lines.
pub fn import_lines(data: &[u8]) {
    let cfg = attest_config::parse_collector(
        "/nonexistent/fuzz/collector.toml",
        "[[agent]]\nid = \"web-01\"\ntoken = \"t\"\n",
    )
    .expect("config");
    if let Ok(n) = attest_collector::ingest::import::validate_lines(&cfg, Cursor::new(data)) {
        let lines = data
            .split(|b| *b == b'\n')
            .filter(|l| !String::from_utf8_lossy(l).trim().is_empty())
            .count() as u64;
        assert_eq!(n, lines);
    }
}
