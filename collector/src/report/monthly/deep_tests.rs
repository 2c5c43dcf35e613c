//! `verify --deep` against a real bundle and a real export of a SQLite store written through
//! ingest: the untouched pair passes with every figure recomputed; each tamper case is named
//! (the attacker re-seals the export's MANIFEST, so the finding comes from the evidence
//! itself); any single-byte change of the export fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attest_config::evidence::canonical;
use attest_config::evidence::keys;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::evidence::check::AgentKeys;
use crate::evidence::round_trip::{self as rt, agent_keys, exported, written};
use crate::report::monthly::{Templates, archive};

/// The archived bundle of 2026-09 from the store in `dir`, as the month-close loop writes it.
fn bundle(dir: &tempfile::TempDir, cfg: &CollectorConfig) -> PathBuf {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("data")).unwrap());
    let month = crate::report::parse_month("2026-09").unwrap();
    let at: jiff::Timestamp = "2026-10-04T00:00:00Z".parse().unwrap();
    let figures = Figures::new(Arc::new(cfg.clone()), store.clone());
    let (r, minutes) =
        assemble::assemble(&figures, cfg, &Settings::default(), (month, None), at, None).unwrap();
    let span = month_seal::span(&cfg.services, month).unwrap();
    let batches = store.batch_seals(span.0, span.1).unwrap();
    let services: Vec<&attest_config::Service> = cfg.services.iter().collect();
    let seal = month_seal::files(
        &month_seal::SealInputs {
            month: "2026-09",
            span,
            services: &services,
            batches: &batches,
            windows: &store.list_maintenance(None).unwrap(),
        },
        None,
    );
    let a = archive::Archive {
        dir: dir.path().join("archive"),
        grace: std::time::Duration::ZERO,
    };
    a.close_sealed("2026-09", (span.1, at), None, &Templates::default(), || {
        Some((r, minutes, seal))
    })
    .unwrap();
    a.month_dir("2026-09")
}

struct Case {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    evidence: PathBuf,
}

fn case() -> Case {
    let (dir, cfg) = written();
    let b = bundle(&dir, &cfg);
    let (evidence, _) = exported(&dir, &cfg, None);
    Case {
        _dir: dir,
        bundle: b,
        evidence,
    }
}

fn deep(c: &Case, keys: &AgentKeys) -> Deep {
    verify_deep(&c.bundle, &c.evidence, keys).unwrap()
}

/// An agent's records and chain lines, to edit.
fn read_agent(evidence: &Path, agent: &str) -> (Vec<Vec<u8>>, Vec<String>) {
    let raw = std::fs::read(evidence.join(crate::evidence::batches_path(agent))).unwrap();
    let mut stream = std::io::Cursor::new(zstd::stream::decode_all(&raw[..]).unwrap());
    let mut records = Vec::new();
    while let Some(r) = crate::evidence::next_record(&mut stream).unwrap() {
        records.push(r);
    }
    let chain = std::fs::read_to_string(evidence.join(crate::evidence::chain_path(agent))).unwrap();
    (records, chain.lines().map(str::to_string).collect())
}

/// Writes an agent's records and chain lines back and re-seals MANIFEST, as an attacker
/// who edits the export would.
fn write_agent(evidence: &Path, agent: &str, records: &[Vec<u8>], lines: &[String]) {
    let mut stream = Vec::new();
    for r in records {
        stream.extend_from_slice(&(r.len() as u32).to_be_bytes());
        stream.extend_from_slice(r);
    }
    std::fs::write(
        evidence.join(crate::evidence::batches_path(agent)),
        zstd::stream::encode_all(&stream[..], 3).unwrap(),
    )
    .unwrap();
    let chain: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(evidence.join(crate::evidence::chain_path(agent)), chain).unwrap();
    reseal(evidence);
}

fn reseal(evidence: &Path) {
    let mut rows = Vec::new();
    for rel in [
        "evidence.json",
        "definitions.toml",
        "maintenance.jsonl",
        "agents/a1.chain",
        "agents/a1.batches.zst",
        "agents/a2.chain",
        "agents/a2.batches.zst",
    ] {
        let bytes = std::fs::read(evidence.join(rel)).unwrap();
        rows.push((rel.to_string(), keys::hex(&Sha256::digest(&bytes))));
    }
    std::fs::write(
        evidence.join("MANIFEST"),
        crate::report::monthly::integrity::manifest_of_digests(rows),
    )
    .unwrap();
}

fn has(d: &Deep, text: &str) -> bool {
    d.problems.iter().any(|p| p.contains(text))
}

/// Asserts that one of `d`'s problems contains `text`, showing them all when none does.
#[track_caller]
fn assert_named(d: &Deep, text: &str) {
    assert!(has(d, text), "no problem names {text:?}: {:#?}", d.problems);
}

#[test]
fn an_untouched_month_is_proven_figure_by_figure() {
    let c = case();
    let d = deep(&c, &agent_keys());
    assert!(d.ok(), "{:#?}", d.problems);
    assert_eq!((d.batches, d.loaded), (5, 5));
    assert!(d.figures > 100, "{} figures compared", d.figures);
}

#[test]
fn a_flipped_success_flag_is_named_with_its_batch() {
    let c = case();
    let (mut records, mut lines) = read_agent(&c.evidence, "a1");
    let mut b = canonical::decode(&records[1]).unwrap();
    b.measurements[0].ok = !b.measurements[0].ok;
    records[1] = canonical::encode(&b.header(), &b.measurements, &b.gaps);
    write_agent(&c.evidence, "a1", &records, &lines);
    let d = deep(&c, &agent_keys());
    assert_named(
        &d,
        "agent a1 batch 2: its measurements do not give the digest the agent signed",
    );
    // The attacker also writes the new digest into the chain line: the signature fails.
    let new = keys::hex(&Sha256::digest(&records[1]));
    let old = lines[2].split(' ').nth(1).unwrap().to_string();
    lines[2] = lines[2].replace(&old, &new);
    write_agent(&c.evidence, "a1", &records, &lines);
    let d = deep(&c, &agent_keys());
    assert_named(&d, "agent a1 batch 2: the signature does not verify");
}

#[test]
fn an_inserted_measurement_is_named_with_its_batch() {
    let c = case();
    let (mut records, lines) = read_agent(&c.evidence, "a1");
    let mut b = canonical::decode(&records[2]).unwrap();
    let mut extra = b.measurements[0].clone();
    extra.ts += jiff::SignedDuration::from_secs(30);
    b.measurements.push(extra);
    records[2] = canonical::encode(&b.header(), &b.measurements, &b.gaps);
    write_agent(&c.evidence, "a1", &records, &lines);
    let d = deep(&c, &agent_keys());
    assert_named(
        &d,
        "agent a1 batch 3: its measurements do not give the digest",
    );
}

#[test]
fn a_deleted_batch_is_missing_from_the_seal() {
    let c = case();
    let (mut records, mut lines) = read_agent(&c.evidence, "a1");
    records.remove(1);
    lines.remove(2);
    write_agent(&c.evidence, "a1", &records, &lines);
    let d = deep(&c, &agent_keys());
    assert_named(
        &d,
        "agent a1 batch 2: sealed for the month but missing from the evidence (deleted)",
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("seqs 2..2 are not in the evidence")),
        "{:?}",
        d.notes
    );
}

#[test]
fn reordered_batches_are_named() {
    let c = case();
    let (mut records, mut lines) = read_agent(&c.evidence, "a1");
    records.swap(1, 2);
    lines.swap(2, 3);
    write_agent(&c.evidence, "a1", &records, &lines);
    let d = deep(&c, &agent_keys());
    assert_named(
        &d,
        "agent a1 batch 2: comes after batch 3 (batches reordered or repeated)",
    );
}

#[test]
fn a_batch_replayed_from_another_agent_is_named() {
    let c = case();
    let (a1_records, a1_lines) = read_agent(&c.evidence, "a1");
    let (mut records, mut lines) = read_agent(&c.evidence, "a2");
    records[1] = a1_records[1].clone();
    lines[2] = a1_lines[2].clone();
    write_agent(&c.evidence, "a2", &records, &lines);
    let d = deep(&c, &agent_keys());
    assert_named(
        &d,
        "agent a2: holds batch 2 of agent a1 (a batch replayed from another agent)",
    );
    assert_named(&d, "agent a2 batch 2: sealed for the month but missing");
}

#[test]
fn a_swapped_agent_key_is_named_for_every_batch() {
    let c = case();
    let swapped = AgentKeys::parse(&format!(
        "a1 {}\na2 {}\n",
        keys::public_of(&rt::key(66)),
        keys::public_of(&rt::key(2))
    ))
    .unwrap();
    let d = deep(&c, &swapped);
    for seq in 1..=3 {
        assert_named(&d, &format!("agent a1 batch {seq}: signed by key SHA256:"));
    }
    let missing = AgentKeys::parse(&format!("a2 {}\n", keys::public_of(&rt::key(2)))).unwrap();
    assert!(has(&deep(&c, &missing), "agent a1: no key in --agent-keys"));
}

/// A maintenance window registered after the seal (in the store, so in a later export)
/// is named; so is a figure of the report that the evidence does not give.
#[test]
fn a_window_added_after_the_seal_and_an_edited_figure_are_named() {
    let (dir, cfg) = written();
    let b = bundle(&dir, &cfg);
    let store = SqliteStore::open(&dir.path().join("data")).unwrap();
    let at: jiff::Timestamp = "2026-10-05T00:00:00Z".parse().unwrap();
    store
        .add_maintenance(
            &NewMaintenance {
                service: "web",
                start: "2026-09-21T11:00:00Z".parse().unwrap(),
                end: "2026-09-21T12:00:00Z".parse().unwrap(),
                reason: "moved the outage",
                registered_by: "mallory",
                reference: None,
            },
            at,
        )
        .unwrap();
    drop(store);
    let (evidence, _) = exported(&dir, &cfg, None);
    let d = verify_deep(&b, &evidence, &agent_keys()).unwrap();
    assert_named(&d, "maintenance: window 1 of service web");

    // A good minute more in the archived report (its seals re-made by someone without the
    // report key): the recomputation names the figure.
    let (dir, cfg) = written();
    let b = bundle(&dir, &cfg);
    let (evidence, _) = exported(&dir, &cfg, None);
    let p = b.join("report.json");
    let text = std::fs::read_to_string(&p).unwrap();
    let edited = text.replacen("\"bad_minutes\": 1,", "\"bad_minutes\": 0,", 1);
    assert_ne!(text, edited, "the fixture has a bad minute");
    std::fs::write(&p, edited).unwrap();
    let d = verify_deep(&b, &evidence, &agent_keys()).unwrap();
    assert!(
        d.problems.iter().any(|p| p.starts_with("figure summary[")
            && p.contains(".bad_minutes: the report says 0, the evidence gives 1")),
        "{:#?}",
        d.problems
    );
}

/// Every file of the export, for the property test.
fn export_files(evidence: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for rel in [
        "MANIFEST",
        "evidence.json",
        "definitions.toml",
        "maintenance.jsonl",
        "agents/a1.chain",
        "agents/a1.batches.zst",
        "agents/a2.chain",
        "agents/a2.batches.zst",
    ] {
        let bytes = std::fs::read(evidence.join(rel)).unwrap();
        if !bytes.is_empty() {
            out.push((rel.to_string(), bytes));
        }
    }
    out
}

/// Any single-byte change anywhere in the export fails the deep check (one export, each
/// case changes one byte of one file and restores it).
#[test]
fn any_single_byte_change_fails() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let c = case();
    let files = export_files(&c.evidence);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        1u8..=255,
    );
    runner
        .run(&strategy, |(file, at, flip)| {
            let (rel, bytes) = &files[file.index(files.len())];
            let mut changed = bytes.clone();
            let i = at.index(changed.len());
            changed[i] ^= flip;
            std::fs::write(c.evidence.join(rel), &changed).unwrap();
            let d = deep(&c, &agent_keys());
            std::fs::write(c.evidence.join(rel), bytes).unwrap();
            if d.ok() {
                return Err(TestCaseError::fail(format!(
                    "{rel} byte {i} ^ {flip:#x} passed"
                )));
            }
            Ok(())
        })
        .unwrap();
    assert!(deep(&c, &agent_keys()).ok(), "restored");
}

/// Measurement, not a test (`--ignored --nocapture`): export and `verify --deep` time for
/// 4 agents × 100 batches × 100 measurements (40,000 measurements).
#[test]
#[ignore = "measurement"]
fn deep_cost() {
    use attest_config::evidence::keys::SecretKey;
    use attest_config::wire::{Batch, Measurement};
    let mut text = String::new();
    let ks: Vec<SecretKey> = (0..4u8).map(|i| rt::key(10 + i)).collect();
    for (i, k) in ks.iter().enumerate() {
        text.push_str(&format!(
            "[[agent]]\nid = \"m{i}\"\ntoken = \"t{i}\"\npublic_key = \"{}\"\n",
            keys::public_of(k)
        ));
    }
    text.push_str("[[service]]\nname = \"web\"\nchecks = [\"c0\", \"c1\"]\ntarget = \"99%\"\ntime_zone = \"UTC\"\n");
    let cfg = attest_config::parse_collector("c.toml", &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("data")).unwrap());
    let now = jiff::Timestamp::from_second(rt::NOW).unwrap();
    crate::store::note_config(store.as_ref(), &cfg, now).unwrap();
    let ingest = crate::ingest::Ingest::new(
        store.clone(),
        &cfg.agents,
        cfg.ingest.clone(),
        crate::changed::DataChanged::new(),
    );
    for (i, k) in ks.iter().enumerate() {
        let agent = format!("m{i}");
        let mut prev = None;
        for seq in 1..=100u64 {
            let ms: Vec<Measurement> = (0..100)
                .map(|j| {
                    let t = rt::NOW - 86_400 + (seq as i64 * 50 + j / 2) * 10;
                    Measurement::new(
                        format!("c{}", j % 2),
                        jiff::Timestamp::from_second(t).unwrap(),
                        j % 37 != 0,
                    )
                })
                .collect();
            let h = canonical::Header {
                agent: &agent,
                seq,
                prev: prev.as_ref(),
            };
            let (d, evidence) = attest_config::evidence::seal(&h, &ms, &[], k);
            let b = Batch {
                version: 2,
                agent: agent.clone(),
                seq,
                sent_at: now,
                measurements: ms,
                gaps: vec![],
                spool: None,
                evidence: Some(evidence),
            };
            ingest
                .handle_admitted(&agent, None, &serde_json::to_vec(&b).unwrap(), now)
                .unwrap();
            prev = Some(d);
        }
    }
    drop(ingest);
    let b = bundle(&dir, &cfg);
    let out = dir.path().join("ev");
    let t = std::time::Instant::now();
    let _ = crate::evidence::export::export(
        store.as_ref(),
        &cfg,
        &crate::evidence::export::Request {
            month: crate::report::parse_month("2026-09").unwrap(),
            service: None,
            config_text: &text,
            output: &out,
        },
    )
    .unwrap();
    let export = t.elapsed();
    let keys = AgentKeys::parse(
        &ks.iter()
            .enumerate()
            .map(|(i, k)| format!("m{i} {}\n", keys::public_of(k)))
            .collect::<String>(),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let d = verify_deep(&b, &out, &keys).unwrap();
    let deep = t.elapsed();
    assert!(d.ok(), "{:#?}", d.problems);
    let bytes: u64 = [
        "agents/m0.batches.zst",
        "agents/m1.batches.zst",
        "agents/m2.batches.zst",
        "agents/m3.batches.zst",
    ]
    .iter()
    .map(|r| std::fs::metadata(out.join(r)).unwrap().len())
    .sum();
    eprintln!(
        "40,000 measurements in 400 batches: export {export:?}, verify --deep {deep:?} ({} figures), batch streams {bytes} bytes ({:.1} B per measurement)",
        d.figures,
        bytes as f64 / 40_000.0
    );
}
