//! Replays every committed fuzz input (`fuzz/corpus/` seeds and `fuzz/regressions/` crashes)
//! through the same case functions the cargo-fuzz targets run, on stable Rust: CI checks
//! them whether or not a nightly toolchain is there to fuzz further.

#[path = "../../fuzz/cases.rs"]
mod cases;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Files of `fuzz/<kind>/<target>/`, sorted; a missing directory is empty.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.ends_with(".gitkeep"))
        .collect();
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut n = 0;
    for (target, run) in cases::TARGETS {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("read input");
            // A panic names the input, so a failing replay says which file to look at.
            let res = std::panic::catch_unwind(|| run(&data));
            assert!(res.is_ok(), "{target}: input {} panicked", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn every_target_has_a_seed_corpus_and_it_replays_cleanly() {
    for (target, _) in cases::TARGETS {
        assert!(
            !inputs("corpus", target).is_empty(),
            "fuzz/corpus/{target}/ has no seed"
        );
    }
    assert!(replay("corpus") >= cases::TARGETS.len());
}

#[test]
fn every_kept_crash_replays_cleanly() {
    replay("regressions");
}

/// The seeds exercise both sides of each parser: an accepted and a refused input.
#[test]
fn seeds_reach_acceptance_and_refusal() {
    let now: jiff::Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
    let limits = attest_config::parse_collector("c.toml", "").unwrap().ingest;
    let body =
        |name: &str| std::fs::read(fuzz_dir().join("corpus/ingest_body").join(name)).unwrap();
    let ok = body("example-zstd");
    assert!(
        attest_collector::ingest::decode_and_validate(&ok[1..], Some("zstd"), &limits, now).is_ok()
    );
    let future = body("future-ts");
    let e = attest_collector::ingest::decode_and_validate(&future[1..], None, &limits, now)
        .unwrap_err();
    assert_eq!(
        (e.status, e.field.as_deref()),
        (400, Some("measurements[0].ts"))
    );
}
