//! Behaviour tests of the spool through its public API, plus file-level damage.

use std::fs;
use std::path::{Path, PathBuf};

use attest_config::WhenFull;
use attest_config::wire::{Measurement, Phase};
use jiff::Timestamp;

use attest_config::wire::Gap;

use super::record::{FRAME_OVERHEAD, SEGMENT_HEADER_LEN};
use super::*;

const CAP: u64 = 32 * 1024;
const SEG: u64 = 4 * 1024;

fn m(check: &str, sec: i64) -> Measurement {
    let mut m = Measurement::new(
        check,
        Timestamp::from_second(1_700_000_000 + sec).unwrap(),
        true,
    );
    m.duration_seconds = Some(0.0123);
    m.phases.insert(Phase::Connect, 0.004);
    m
}

fn small(dir: &Path, when_full: WhenFull) -> Spool {
    Spool::open_with(
        dir,
        SpoolOptions {
            max_bytes: CAP,
            when_full,
            segment_bytes: Some(SEG),
        },
    )
    .unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn drain(spool: &mut Spool) -> (Vec<Measurement>, Vec<Gap>) {
    let (mut ms, mut gaps) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        let Some(b) = spool.next_batch(50).unwrap() else {
            return (ms, gaps);
        };
        ms.extend(b.measurements.decode().unwrap());
        gaps.extend(b.gaps);
        spool.ack(b.seq).unwrap();
    }
    panic!("spool did not drain in 10000 batches");
}

/// The transport moves the spool into blocking tasks.
#[test]
fn spool_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Spool>();
}

#[test]
fn batch_is_stable_until_acked_and_seqs_increase() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let input: Vec<_> = (0..10).map(|i| m("web", i)).collect();
    s.append(&input).unwrap();
    let b1 = s.next_batch(4).unwrap().unwrap();
    assert_eq!(b1.seq, 1);
    assert_eq!(b1.measurements.decode().unwrap(), input[..4]);
    assert_eq!(
        s.next_batch(7).unwrap().unwrap(),
        b1,
        "same batch until acked"
    );
    assert_eq!(s.stats().depth, 10);
    assert_eq!(s.stats().uncut, 6);
    s.ack(1).unwrap();
    s.ack(1).unwrap(); // a duplicate ack is harmless
    let b2 = s.next_batch(100).unwrap().unwrap();
    assert_eq!(b2.seq, 2);
    assert_eq!(b2.measurements.decode().unwrap(), input[4..]);
    s.ack(2).unwrap();
    assert_eq!(s.next_batch(100).unwrap(), None);
    let st = s.stats();
    assert_eq!((st.depth, st.appended_total, st.acked_total), (0, 10, 10));
}

#[test]
fn cut_batch_survives_reopen_and_seq_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<_> = (0..20).map(|i| m("dns", i)).collect();
    let b1 = {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&input).unwrap();
        s.next_batch(8).unwrap().unwrap()
    };
    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.next_batch(3).unwrap().unwrap(), b1);
    assert_eq!(s.stats().depth, 20);
    s.ack(b1.seq).unwrap();
    let (rest, gaps) = drain(&mut s);
    assert_eq!(rest, input[8..]);
    assert!(gaps.is_empty());
    drop(s);
    let mut s = small(dir.path(), WhenFull::DropOldest);
    s.append(&[m("dns", 99)]).unwrap();
    let b = s.next_batch(10).unwrap().unwrap();
    assert!(b.seq > 2, "seq {} reused after restart", b.seq);
}

#[test]
fn unknown_ack_is_refused_and_old_ack_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert!(matches!(s.ack(1), Err(SpoolError::UnknownSeq { .. })));
    s.append(&[m("a", 1), m("a", 2)]).unwrap();
    let b = s.next_batch(1).unwrap().unwrap();
    assert!(matches!(
        s.ack(b.seq + 1),
        Err(SpoolError::UnknownSeq { .. })
    ));
    s.ack(b.seq).unwrap();
    let b2 = s.next_batch(1).unwrap().unwrap();
    s.ack(b.seq).unwrap();
    assert_eq!(
        s.next_batch(1).unwrap().unwrap(),
        b2,
        "old ack must not ack the new batch"
    );
}

/// Fills a small spool far past its cap with two interleaved checks.
fn overfill(s: &mut Spool, n: i64) -> Vec<Measurement> {
    let all: Vec<_> = (0..n)
        .map(|i| m(if i % 2 == 0 { "a" } else { "b" }, i))
        .collect();
    for chunk in all.chunks(10) {
        s.append(chunk).unwrap();
        assert!(s.stats().bytes <= CAP, "bytes {} over cap", s.stats().bytes);
    }
    all
}

#[test]
fn drop_oldest_counts_exactly_and_gaps_cover_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let all = overfill(&mut s, 600);
    let dropped = s.stats().dropped_total;
    assert!(dropped > 0, "cap never reached");
    let (kept, gaps) = drain(&mut s);
    assert_eq!(kept.len() as u64 + dropped, 600);
    assert_eq!(
        kept,
        all[dropped as usize..],
        "exactly the oldest were dropped"
    );
    assert_eq!(gaps.iter().map(|g| g.count).sum::<u64>(), dropped);
    for check in ["a", "b"] {
        let lost: Vec<_> = all[..dropped as usize]
            .iter()
            .filter(|x| x.check == check)
            .collect();
        let g: Vec<_> = gaps.iter().filter(|g| g.check == check).collect();
        assert_eq!(g.len(), 1, "one merged gap per check");
        assert_eq!(g[0].count, lost.len() as u64);
        assert_eq!(g[0].from, lost[0].ts);
        assert_eq!(g[0].to, lost[lost.len() - 1].ts);
    }
}

#[test]
fn drop_oldest_never_touches_the_cut_batch_and_gaps_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (b1, dropped) = {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&[m("a", -2), m("a", -1)]).unwrap();
        let b1 = s.next_batch(2).unwrap().unwrap();
        overfill(&mut s, 600);
        assert_eq!(s.next_batch(5).unwrap().unwrap(), b1);
        (b1, s.stats().dropped_total)
    };
    assert!(dropped > 0);
    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.next_batch(5).unwrap().unwrap(), b1);
    s.ack(b1.seq).unwrap();
    let (kept, gaps) = drain(&mut s);
    assert_eq!(gaps.iter().map(|g| g.count).sum::<u64>(), dropped);
    assert_eq!(kept.len() as u64 + dropped, 600);
}

#[test]
fn drop_newest_keeps_the_oldest_and_gaps_cover_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropNewest);
    let all = overfill(&mut s, 600);
    let dropped = s.stats().dropped_total;
    assert!(dropped > 0);
    let (kept, gaps) = drain(&mut s);
    let n_kept = 600 - dropped as usize;
    assert_eq!(kept, all[..n_kept]);
    for check in ["a", "b"] {
        let lost: Vec<_> = all[n_kept..].iter().filter(|x| x.check == check).collect();
        let g: Vec<_> = gaps.iter().filter(|g| g.check == check).collect();
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].from, g[0].to), (lost[0].ts, lost[lost.len() - 1].ts));
        assert_eq!(g[0].count, lost.len() as u64);
    }
}

#[test]
fn drop_newest_splits_gaps_around_kept_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropNewest);
    let mut sec = 0;
    let next = |s: &mut Spool, sec: &mut i64| {
        *sec += 1;
        s.append(&[m("a", *sec)]).unwrap();
    };
    while s.stats().dropped_total == 0 {
        next(&mut s, &mut sec);
    }
    next(&mut s, &mut sec);
    let b = s.next_batch(10_000).unwrap().unwrap();
    assert_eq!(b.gaps.len(), 1);
    assert_eq!(b.gaps[0].count, 2);
    s.ack(b.seq).unwrap(); // frees space: the next one is kept
    next(&mut s, &mut sec);
    let kept_ts = Timestamp::from_second(1_700_000_000 + sec).unwrap();
    while s.stats().dropped_total == 2 {
        next(&mut s, &mut sec);
    }
    let b = s.next_batch(10_000).unwrap().unwrap();
    assert!(
        b.measurements
            .decode()
            .unwrap()
            .iter()
            .any(|x| x.ts == kept_ts)
    );
    assert!(b.gaps.iter().all(|g| g.from > kept_ts || g.to < kept_ts));
}

#[test]
fn segment_bytes_stay_under_the_cap_with_a_large_default_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 256 * 1024, WhenFull::DropOldest).unwrap();
    assert_eq!(s.segment_bytes(), 8 * 1024);
    for i in 0..200 {
        let batch: Vec<_> = (0..20).map(|j| m("cap", i * 20 + j)).collect();
        s.append(&batch).unwrap();
        assert!(s.stats().bytes <= 256 * 1024);
    }
    assert!(s.stats().dropped_total > 0);
}

#[test]
fn torn_tail_is_cut_off_counted_and_the_spool_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..5).map(|i| m("t", i)).collect();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&first).unwrap();
        s.append(&[m("t", 5)]).unwrap();
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.stats().corrupt_records_total, 1);
    assert_eq!(s.stats().depth, 5);
    s.append(&[m("t", 6)]).unwrap();
    let (got, _) = drain(&mut s);
    let mut want = first.clone();
    want.push(m("t", 6));
    assert_eq!(got, want);
    drop(s);
    let s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.stats().corrupt_records_total, 0, "repair is durable");
}

#[test]
fn flipped_byte_in_tail_is_detected_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&[m("f", 0), m("f", 1)]).unwrap();
        s.append(&[m("f", 2)]).unwrap();
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x20;
    fs::write(&seg, &bytes).unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.stats().corrupt_records_total, 1);
    let (got, _) = drain(&mut s);
    assert_eq!(got, vec![m("f", 0), m("f", 1)]);
}

#[test]
fn corrupt_sealed_segment_loses_only_its_tail_with_an_exact_count() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<_> = (0..90).map(|i| m("s", i)).collect();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&all).unwrap();
        assert_eq!(s.stats().dropped_total, 0, "test data must fit the cap");
    }
    let files = segment_files(dir.path());
    assert!(
        files.len() >= 3,
        "need sealed segments, got {}",
        files.len()
    );
    let first_of =
        |p: &PathBuf| segment::parse_name(p.file_name().unwrap().to_str().unwrap()).unwrap();
    let (s1, s2) = (first_of(&files[1]), first_of(&files[2]));
    // Corrupt the 3rd record of the second segment: it and the rest of that segment are lost.
    let mut bytes = fs::read(&files[1]).unwrap();
    let rec_len = (bytes.len() as u64 - SEGMENT_HEADER_LEN) / (s2 - s1);
    let at = (SEGMENT_HEADER_LEN + 2 * rec_len + 20) as usize;
    bytes[at] ^= 0xff;
    fs::write(&files[1], &bytes).unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let lost = s2 - s1 - 2;
    assert_eq!(s.stats().corrupt_records_total, lost);
    let (got, _) = drain(&mut s);
    assert_eq!(got.len() as u64, 90 - lost);
    let lost_from = (s1 - 1 + 2) as usize; // ids start at 1
    assert_eq!(got[..lost_from], all[..lost_from]);
    assert_eq!(got[lost_from..], all[(s2 - 1) as usize..]);
}

#[test]
fn garbage_segment_header_and_stray_files_do_not_block_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&[m("g", 0)]).unwrap();
    }
    fs::write(
        dir.path().join("seg-00000000000000009999.log"),
        b"not a segment at all",
    )
    .unwrap();
    fs::write(dir.path().join("notes.txt"), b"operator was here").unwrap();
    fs::write(dir.path().join("seg-00000000000000010000.log"), b"").unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    s.append(&[m("g", 1)]).unwrap();
    let (got, _) = drain(&mut s);
    assert_eq!(got, vec![m("g", 0), m("g", 1)]);
}

#[test]
fn corrupt_meta_resends_everything_under_higher_seqs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&[m("x", 0), m("x", 1)]).unwrap();
        let b = s.next_batch(1).unwrap().unwrap();
        assert_eq!(b.seq, 1);
    }
    fs::write(dir.path().join("meta"), b"ATSM garbage").unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let b = s.next_batch(10).unwrap().unwrap();
    assert!(
        b.seq > 1_000_000,
        "seq must jump above any counter, got {}",
        b.seq
    );
    assert_eq!(b.measurements.decode().unwrap(), vec![m("x", 0), m("x", 1)]);
}

#[test]
fn second_open_of_a_locked_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = small(dir.path(), WhenFull::DropOldest);
    let err = Spool::open(dir.path(), CAP * 8, WhenFull::DropOldest)
        .err()
        .unwrap();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("spool.dir"));
    drop(s);
    small(dir.path(), WhenFull::DropOldest);
}

#[test]
fn invalid_input_is_refused_without_storing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let mut bad = m("nan", 1);
    bad.duration_seconds = Some(f64::NAN);
    let err = s.append(&[m("ok", 0), bad]).unwrap_err();
    assert!(
        matches!(err, SpoolError::InvalidMeasurement { .. }),
        "{err}"
    );
    let mut huge = m("huge", 2);
    huge.error = Some("x".repeat(10_000));
    assert!(s.append(&[huge]).is_err());
    assert_eq!(s.stats().depth, 0);
    assert_eq!(s.next_batch(10).unwrap(), None);
}

#[test]
fn too_small_cap_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let err = Spool::open(dir.path(), 1000, WhenFull::DropOldest)
        .err()
        .unwrap();
    assert!(matches!(err, SpoolError::CapTooSmall { .. }));
    assert!(err.to_string().contains("raise spool.max_bytes"));
}

#[test]
fn acked_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let all: Vec<_> = (0..100).map(|i| m("d", i)).collect();
    s.append(&all).unwrap();
    assert!(segment_files(dir.path()).len() >= 3);
    let before = s.stats().bytes;
    drain(&mut s);
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment remains"
    );
    assert!(s.stats().bytes < before / 2);
}

#[test]
fn stats_report_oldest_uncut_and_wire_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.stats().oldest_uncut_ts, None);
    s.append(&[m("o", 5), m("o", 6)]).unwrap();
    assert_eq!(s.stats().oldest_uncut_ts, Some(m("o", 5).ts));
    s.next_batch(1).unwrap();
    assert_eq!(s.stats().oldest_uncut_ts, Some(m("o", 6).ts));
    let w = s.stats().to_wire();
    assert_eq!(w.depth_measurements, 2);
    assert_eq!(w.bytes, s.stats().bytes);
}

/// A measurement the size of a typical HTTP probe result.
fn http_like(i: i64) -> Measurement {
    let mut m = m("https-api", i);
    m.phases.insert(Phase::Resolve, 0.0011);
    m.phases.insert(Phase::Tls, 0.0213);
    m.phases.insert(Phase::Processing, 0.0457);
    m.phases.insert(Phase::Transfer, 0.0009);
    m.values.push(attest_config::wire::Value {
        name: "status_code".into(),
        resource: None,
        value: 200.0,
    });
    m.labels.insert("tls_version".into(), "TLSv1.3".into());
    m
}

/// Prints append throughput (batches of 100, fsync per append) and bytes per measurement.
/// Run: `cargo test -p attest-agent --lib spool_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, prints numbers"]
fn spool_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 128 * 1024 * 1024, WhenFull::DropOldest).unwrap();
    let batches = 200;
    let all: Vec<_> = (0..batches * 100).map(http_like).collect();
    let start = std::time::Instant::now();
    for chunk in all.chunks(100) {
        s.append(chunk).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let st = s.stats();
    let json = serde_json::to_vec(&all[0]).unwrap().len();
    println!(
        "append, batches of 100: {:.0} measurements/s ({:.2} ms per fsynced append)",
        all.len() as f64 / secs,
        secs * 1000.0 / batches as f64
    );
    println!(
        "on disk: {:.1} bytes per measurement (JSON {json} + {FRAME_OVERHEAD} framing), {} bytes total",
        st.bytes as f64 / all.len() as f64,
        st.bytes
    );
    let start = std::time::Instant::now();
    for i in 0..200 {
        s.append(&[http_like(1_000_000 + i)]).unwrap();
    }
    println!(
        "append, one per call: {:.0} measurements/s",
        200.0 / start.elapsed().as_secs_f64()
    );
    let start = std::time::Instant::now();
    let mut n = 0;
    while let Some(b) = s.next_batch(1000).unwrap() {
        n += b.measurements.len();
        s.ack(b.seq).unwrap();
    }
    println!(
        "drain (next_batch 1000 + ack): {:.0} measurements/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    assert_eq!(n, all.len() + 200);
}

#[test]
fn lost_measurements_become_gaps_that_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&[m("web", 0)]).unwrap();
        s.record_lost(&[m("web", 10), m("web", 20), m("db", 15)]);
        assert_eq!(s.stats().dropped_total, 3);
    }
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let (ms, gaps) = drain(&mut s);
    assert_eq!(ms.len(), 1);
    let total: u64 = gaps.iter().map(|g| g.count).sum();
    assert_eq!(total, 3, "{gaps:?}");
    let web = gaps.iter().find(|g| g.check == "web").expect("web gap");
    assert_eq!(
        (web.from, web.to, web.count),
        (m("web", 10).ts, m("web", 20).ts, 2)
    );
}

/// Records are sent as stored: any payload that decodes as a measurement (an older writer's
/// key order or spacing) goes out byte for byte; one that does not is counted corrupt and
/// left out of the batch, so a batch never carries what the collector would refuse.
#[test]
fn stored_payloads_are_checked_when_cut_and_kept_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = small(dir.path(), WhenFull::DropOldest);
        s.append(&[m("a", 0)]).unwrap();
    }
    let spaced = br#"{ "ok": true, "ts": "2023-11-14T22:13:21Z", "check": "b" }"#;
    let mut raw = Vec::new();
    record::encode(2, spaced, &mut raw);
    record::encode(3, br#"{"not":"a measurement"}"#, &mut raw);
    record::encode(4, &serde_json::to_vec(&m("c", 2)).unwrap(), &mut raw);
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &raw).unwrap();
    drop(f);

    let mut s = small(dir.path(), WhenFull::DropOldest);
    assert_eq!(s.stats().depth, 4);
    let b = s.next_batch(10).unwrap().unwrap();
    let b_meas = Measurement::new("b", Timestamp::from_second(1_700_000_001).unwrap(), true);
    assert_eq!(
        b.measurements.decode().unwrap(),
        vec![m("a", 0), b_meas, m("c", 2)]
    );
    let items = String::from_utf8(b.measurements.json_items().to_vec()).unwrap();
    assert!(
        items.contains(std::str::from_utf8(spaced).unwrap()),
        "payload not kept verbatim: {items}"
    );
    assert_eq!(s.stats().corrupt_records_total, 1);
    s.ack(b.seq).unwrap();
    assert_eq!(s.stats().depth, 0);
}

/// The hash chain: an ack with a digest makes it the next batch's `prev`, a cut batch keeps
/// its `prev` across a restart, and an ack without a digest or a lost `meta` starts a new
/// chain (the collector sees a declared gap there, never a broken link).
#[test]
fn chain_head_links_batches_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    s.append(&[m("a", 1)]).unwrap();
    let first = s.next_batch(10).unwrap().unwrap();
    assert_eq!(first.prev, None, "a new spool starts a chain");
    s.ack_linked(first.seq, Some([1; 32])).unwrap();
    s.append(&[m("a", 2)]).unwrap();
    let second = s.next_batch(10).unwrap().unwrap();
    assert_eq!(second.prev, Some([1; 32]));
    drop(s);

    let mut s = small(dir.path(), WhenFull::DropOldest);
    let again = s.next_batch(10).unwrap().unwrap();
    assert_eq!(
        (again.seq, again.prev),
        (second.seq, Some([1; 32])),
        "kept across a restart"
    );
    s.ack_linked(again.seq, Some([2; 32])).unwrap();
    drop(s);

    let mut s = small(dir.path(), WhenFull::DropOldest);
    s.append(&[m("a", 3)]).unwrap();
    let third = s.next_batch(10).unwrap().unwrap();
    assert_eq!(third.prev, Some([2; 32]), "the head survives a restart");
    s.ack(third.seq).unwrap();
    s.append(&[m("a", 4)]).unwrap();
    let fourth = s.next_batch(10).unwrap().unwrap();
    assert_eq!(fourth.prev, None, "an ack without a digest ends the chain");
    s.ack_linked(fourth.seq, Some([4; 32])).unwrap();
    s.append(&[m("a", 5)]).unwrap();
    drop(s);

    fs::remove_file(dir.path().join(meta::META_FILE)).unwrap();
    let mut s = small(dir.path(), WhenFull::DropOldest);
    let after_loss = s.next_batch(10).unwrap().unwrap();
    assert_eq!(after_loss.prev, None, "a lost meta starts a new chain");
    assert!(
        after_loss.seq > fourth.seq + 1,
        "under a seq far above: a declared gap"
    );
}
