//! The SQLite backend against the store contract, plus what only SQLite has: two tiers,
//! bulk loads, durability across reopen, a full disk, schema versions, reader isolation.

use super::*;
use crate::store::contract::{self, BASE_MINUTE, at, batch, ok};
use attest_config::wire::FailureReason;
use rusqlite::TransactionBehavior;

fn temp_store() -> Box<dyn InspectStore> {
    Box::new(SqliteStore::open_temp().expect("open temp store"))
}

contract::contract_tests!(temp_store);

#[test]
fn run_all_runs_every_case() {
    contract::run_all(&temp_store);
}

fn count(store: &SqliteStore, sql: &str) -> i64 {
    let w = lock(&store.writer);
    w.conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn compaction_moves_hot_rows_into_hour_packs() {
    let store = SqliteStore::open_temp().expect("open");
    let ms: Vec<Measurement> = (0..150).map(|m| ok("web", m, 0, 0.01)).collect();
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    assert_eq!(count(&store, "SELECT count(*) FROM minute_rollup"), 150);
    store
        .apply_retention(at(125, 0), at(0, 0))
        .expect("retention");
    assert_eq!(
        count(&store, "SELECT count(*) FROM minute_rollup"),
        25,
        "minutes 125.. stay hot"
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM hour_pack"),
        3,
        "hours 0, 1 and part of 2"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM raw"), 25);
    let rows = store
        .series_minute_details(
            &["web".to_owned()],
            contract::BASE_MINUTE,
            contract::BASE_MINUTE + 200,
        )
        .expect("rollups");
    assert_eq!(rows.len(), 150);
    assert!(rows.iter().all(|r| r.probes == 1));
}

#[test]
fn loaded_minutes_read_back_like_ingested_ones() {
    let store = SqliteStore::open_temp().expect("open");
    let minutes: Vec<SeriesMinuteSummary> = (0..90)
        .map(|m| SeriesMinuteSummary {
            minute: contract::BASE_MINUTE + m,
            probes: 6,
            failures: u32::from(m == 70),
            reason: (m == 70).then_some(FailureReason::Dns),
            ok_durations: vec![0.02; if m == 70 { 5 } else { 6 }],
        })
        .collect();
    assert_eq!(store.load_minutes("a1", "web", &minutes).expect("load"), 90);
    let web = ["web".to_owned()];
    let rows = store
        .series_minute_details(&web, contract::BASE_MINUTE, contract::BASE_MINUTE + 90)
        .expect("rollups");
    assert_eq!(rows.len(), 90);
    assert_eq!(rows[70].top_reason.as_deref(), Some("dns"));
    assert_eq!(
        rows[70].latency.as_ref().map(hdrhistogram::Histogram::len),
        Some(5)
    );
    assert_eq!(
        store.first_seen(&web).expect("first seen"),
        Some(contract::BASE_MINUTE)
    );
    assert_eq!(count(&store, "SELECT count(*) FROM hour_pack"), 2);
    let compact = store
        .series_minutes(&web, contract::BASE_MINUTE, contract::BASE_MINUTE + 90)
        .expect("compact");
    assert_eq!(compact, SeriesMinutes::from_details(&rows));
}

#[test]
fn committed_batches_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nested/data");
    {
        let store = SqliteStore::open(&data).expect("open");
        store
            .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
            .expect("commit");
    }
    let store = SqliteStore::open(&data).expect("reopen");
    assert!(data.join(DB_FILE).exists());
    assert_eq!(store.counts().expect("counts").measurements, 1);
    let again = store
        .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
        .expect("resend");
    assert!(
        again.duplicate_batch,
        "dedup state must be durable, not cached"
    );
}

#[test]
fn full_database_is_reported_and_rolled_back() {
    let store = SqliteStore::open_temp().expect("open");
    store
        .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
        .expect("first");
    let pages: i64 = {
        let w = lock(&store.writer);
        w.conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page_count")
    };
    store.set_max_page_count(pages as u64).expect("cap");
    let big: Vec<Measurement> = (0..20_000)
        .map(|i| ok("web", 1 + i / 6, (i % 6) * 10, 0.01))
        .collect();
    let err = store
        .commit_batch(&batch("a1", 2, big))
        .expect_err("must not fit");
    assert!(matches!(err, StoreError::Full(_)), "{err:?}");
    assert_eq!(
        store.counts().expect("counts").measurements,
        1,
        "rolled back"
    );
    store.set_max_page_count(1 << 30).expect("uncap");
    let out = store
        .commit_batch(&batch("a1", 2, vec![ok("web", 1, 0, 0.01)]))
        .expect("after space freed");
    assert_eq!(
        (out.duplicate_batch, out.stored),
        (false, 1),
        "the failed seq was not recorded"
    );
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(SqliteStore::open(dir.path()).expect("create"));
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
    conn.pragma_update(None, "user_version", schema::SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    let err = SqliteStore::open(dir.path()).err().expect("must refuse");
    assert!(err.to_string().contains("newer collector"), "{err}");
}

#[test]
fn retention_horizon_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .apply_retention(at(100, 0), at(100, 0))
            .expect("retention");
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let out = store
        .commit_batch(&batch("a1", 1, vec![ok("web", 50, 0, 0.01)]))
        .expect("old data");
    assert_eq!((out.stored, out.duplicate_measurements), (0, 1));
}

#[test]
fn reads_do_not_wait_for_an_open_write_transaction() {
    let store = SqliteStore::open_temp().expect("open");
    store
        .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
        .expect("commit");
    let mut w = lock(&store.writer);
    let tx = w
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("hold writer");
    tx.execute("DELETE FROM minute_rollup", [])
        .expect("uncommitted delete");
    // The reader sees the last committed snapshot while the writer holds its lock.
    assert_eq!(store.counts().expect("counts").batches, 1);
    let rows = store
        .series_minute_details(
            &["web".to_owned()],
            contract::BASE_MINUTE,
            contract::BASE_MINUTE + 1,
        )
        .expect("rollups");
    assert_eq!(rows.len(), 1);
    drop(tx);
}

/// The durable late-write log: recent writes are not logged, late ones are (per check and
/// range), it survives a reopen, retention counts as a change of every check, and pruning
/// answers older marks conservatively.
#[test]
fn late_writes_are_logged_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let received = |mut b: IngestBatch| {
        b.received_at = at(200, 0);
        b
    };
    let web = ["web".to_owned()];
    let db = ["db".to_owned()];
    let m0 = {
        let store = SqliteStore::open(dir.path()).expect("open");
        let m0 = store
            .late_mark()
            .expect("mark")
            .expect("sqlite logs late writes");
        store
            .commit_batch(&received(batch("a1", 1, vec![ok("web", 195, 0, 0.1)])))
            .expect("recent");
        assert!(!store.changed_late_since(&web, m0, 0, 1000).expect("q"));
        assert_eq!(store.late_mark().expect("mark"), Some(m0));
        store
            .commit_batch(&received(batch("a1", 2, vec![ok("web", 100, 0, 0.1)])))
            .expect("late");
        let (lo, hi) = (BASE_MINUTE + 100, BASE_MINUTE + 101);
        assert!(store.changed_late_since(&web, m0, lo, hi).expect("q"));
        assert!(!store.changed_late_since(&web, m0, hi, hi + 50).expect("q"));
        assert!(!store.changed_late_since(&web, m0, lo - 50, lo).expect("q"));
        assert!(!store.changed_late_since(&db, m0, lo, hi).expect("q"));
        let m1 = store.late_mark().expect("mark").expect("mark");
        assert!(m1 > m0);
        assert!(!store.changed_late_since(&web, m1, lo, hi).expect("q"));
        m0
    };
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let (lo, hi) = (BASE_MINUTE + 100, BASE_MINUTE + 101);
    assert!(
        store.changed_late_since(&web, m0, lo, hi).expect("q"),
        "the log survives a restart"
    );
    let m1 = store.late_mark().expect("mark").expect("mark");
    store
        .apply_retention(at(150, 0), at(50, 0))
        .expect("retention");
    assert!(
        store
            .changed_late_since(&db, m1, 0, BASE_MINUTE)
            .expect("q")
    );
    assert!(
        !store
            .changed_late_since(&db, m1, BASE_MINUTE + 60, BASE_MINUTE + 70)
            .expect("q"),
        "retention changes only minutes before its horizon"
    );
    store
        .apply_retention(at(250, 0), at(50, 0))
        .expect("retention that prunes the log");
    assert!(
        store.changed_late_since(&web, m0, lo, hi).expect("q"),
        "a mark below the pruned floor is answered as changed"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM late_changes WHERE check_id <> '*'"
        ),
        0
    );
}

/// A group commit logs its late writes as one row (not one per check and batch): it answers
/// for the series written late, measurements and gaps alike, never for a check of the store
/// that the group did not write late, nor for a batch of the group that was rolled back.
#[test]
fn a_group_logs_its_late_writes_in_one_row() {
    let store = SqliteStore::open_temp().expect("open");
    let received = |mut b: IngestBatch| {
        b.received_at = at(200, 0);
        b
    };
    let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    store
        .commit_batch(&received(batch("a3", 1, vec![ok("db", 195, 0, 0.1)])))
        .expect("recent db");
    let m0 = store.late_mark().expect("mark").expect("mark");
    let mut beyond = ok("x", 120, 1, 0.01);
    beyond.ts = "2300-01-01T00:00:00Z".parse().expect("instant");
    let mut gap = received(batch("a1", 2, Vec::new()));
    gap.gaps.push(attest_config::wire::Gap {
        check: "api".into(),
        from: at(130, 0),
        to: at(132, 30),
        count: 9,
    });
    let late_web = (0..40).map(|i| ok("web", 100, i, 0.1)).collect();
    let group = [
        received(batch("a1", 1, late_web)),
        received(batch("a2", 1, vec![ok("x", 120, 0, 0.01), beyond])),
        gap,
    ];
    let outcomes = lock(&store.writer).commit_group(&group);
    assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok());
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM late_changes WHERE check_id <> '*'"
        ),
        1
    );
    let changed = |c: &[&str], from: i64, to: i64| {
        store
            .changed_late_since(&names(c), m0, BASE_MINUTE + from, BASE_MINUTE + to)
            .expect("q")
    };
    assert!(changed(&["web"], 100, 101));
    assert!(changed(&["db", "api"], 131, 132), "a late gap");
    assert!(!changed(&["db"], 100, 140), "not written by the group");
    assert!(!changed(&["x"], 100, 140), "its batch was rolled back");
    assert!(
        !changed(&["web", "api"], 140, 150),
        "after every late minute"
    );
    assert!(!changed(&["web"], 90, 100), "before every late minute");
    let m1 = store.late_mark().expect("mark").expect("mark");
    assert!(m1 > m0);
    assert!(
        !store
            .changed_late_since(&names(&["web"]), m1, BASE_MINUTE, BASE_MINUTE + 200)
            .expect("q")
    );
}

/// In one group, a batch that fails part-way is rolled back alone (its rows and the ids it
/// created are gone), and the batches around it commit, including one that reuses the
/// failed batch's new agent and check.
#[test]
fn a_failing_batch_in_a_group_is_rolled_back_alone() {
    let store = SqliteStore::open_temp().expect("open");
    let mut beyond = ok("x", 2, 0, 0.01);
    beyond.ts = "2300-01-01T00:00:00Z".parse().expect("instant");
    let group = [
        batch("a1", 1, vec![ok("web", 0, 0, 0.01), ok("web", 1, 0, 0.01)]),
        batch(
            "a2",
            1,
            vec![ok("x", 0, 0, 0.01), ok("x", 1, 0, 0.01), beyond],
        ),
        batch("a2", 2, vec![ok("x", 3, 0, 0.01)]),
        batch("a1", 1, vec![ok("web", 0, 0, 0.01)]),
    ];
    let outcomes = lock(&store.writer).commit_group(&group);
    assert!(outcomes[1].is_err(), "{:?}", outcomes[1]);
    let stored: Vec<(bool, u64)> = [0, 2, 3]
        .iter()
        .map(|&i| {
            let o = outcomes[i].as_ref().expect("commits");
            (o.duplicate_batch, o.stored)
        })
        .collect();
    assert_eq!(stored, vec![(false, 2), (false, 1), (true, 0)]);
    assert_eq!(store.counts().expect("counts").measurements, 3);
    assert_eq!(count(&store, "SELECT count(*) FROM raw"), 3);
    assert_eq!(count(&store, "SELECT count(*) FROM batches"), 2);
    let x = store
        .series_minutes(&["x".to_owned()], BASE_MINUTE - 10, BASE_MINUTE + 10)
        .expect("read");
    assert_eq!(
        x.rows.len(),
        1,
        "only the minute of the batch that committed"
    );
}

/// Concurrent commits (grouped by whoever holds the writer) store every measurement once:
/// 8 threads × 40 batches, each batch sent twice.
#[test]
fn concurrent_commits_store_everything_once() {
    let store = std::sync::Arc::new(SqliteStore::open_temp().expect("open"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let agent = format!("a{t}");
                let mut stored = 0;
                for seq in 1..=40 {
                    let ms = (0..5).map(|i| ok("web", seq * 5 + i, t, 0.01)).collect();
                    let b = batch(&agent, seq as u64, ms);
                    stored += store.commit_batch(&b).expect("commit").stored;
                    let again = store.commit_batch(&b).expect("resend");
                    assert!(again.duplicate_batch);
                }
                stored
            })
        })
        .collect();
    let stored: u64 = threads.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(stored, 8 * 40 * 5);
    assert_eq!(store.counts().expect("counts").measurements, 8 * 40 * 5);
    assert_eq!(count(&store, "SELECT count(*) FROM raw"), 8 * 40 * 5);
}

/// Rows go in many per statement: a batch larger than one statement, with a key repeated
/// inside it (across statements) and keys an earlier batch stored, stores each key once and
/// counts only what it stored, in the rollups too.
#[test]
fn multi_row_statements_store_each_key_once() {
    let store = SqliteStore::open_temp().expect("open");
    let earlier: Vec<_> = (0..10).map(|i| ok("web", 0, i, 0.01)).collect();
    store
        .commit_batch(&batch("a1", 1, earlier))
        .expect("earlier");
    // 300 probes over 5 minutes: 60 per minute, one a second.
    let mut ms: Vec<_> = (0..300).map(|i| ok("web", i / 60, i % 60, 0.01)).collect();
    ms.push(ok("web", 0, 5, 0.02)); // stored by the earlier batch
    ms.push(ok("web", 2, 7, 0.03)); // repeats one in this batch
    let out = store.commit_batch(&batch("a1", 2, ms)).expect("commit");
    assert_eq!((out.stored, out.duplicate_measurements), (290, 12));
    assert_eq!(count(&store, "SELECT count(*) FROM raw"), 300);
    let rows = store
        .series_minute_details(&["web".to_owned()], BASE_MINUTE, BASE_MINUTE + 10)
        .expect("rollups");
    let probes: Vec<u32> = rows.iter().map(|r| r.probes).collect();
    assert_eq!(probes, vec![60, 60, 60, 60, 60]);
}

/// Raw measurements held as rows plus as block entries.
fn raw_held(store: &SqliteStore) -> (i64, i64) {
    (
        count(store, "SELECT count(*) FROM raw"),
        count(store, "SELECT coalesce(sum(count), 0) FROM raw_block"),
    )
}

/// Compaction moves old hours from rows into blocks one hour per transaction: when writing
/// an hour's block fails midway (an injected abort), that hour keeps all its rows and no
/// block, the hours before it stay compacted, every measurement is held exactly once and
/// reads do not change; the next compaction finishes the job.
#[test]
fn a_failed_compaction_leaves_rows_or_blocks_never_both_or_neither() {
    let store = SqliteStore::open_temp().expect("open");
    let ms: Vec<Measurement> = (0..200)
        .flat_map(|m| [ok("web", m, 1, 0.01), ok("api", m, 2, 0.02)])
        .collect();
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    let read = |s: &SqliteStore| {
        s.raw_measurements("web", at(0, 0), at(300, 0))
            .expect("raw")
    };
    let before = read(&store);
    let hour1 = (BASE_MINUTE + 60) / 60;
    lock(&store.writer)
        .conn
        .execute_batch(&format!(
            "CREATE TRIGGER fail_block BEFORE INSERT ON raw_block
             WHEN NEW.hour = {hour1} AND NEW.series = 2
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
        ))
        .expect("trigger");
    let err = store.compact(BASE_MINUTE + 180).expect_err("hour 1 fails");
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(
        raw_held(&store),
        (280, 120),
        "hour 0 in blocks, hours 1.. in rows"
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM raw_block WHERE hour = {hour1}")
        ),
        0,
        "the failed hour wrote no block, not even for its first series"
    );
    assert_eq!(read(&store), before);
    lock(&store.writer)
        .conn
        .execute_batch("DROP TRIGGER fail_block")
        .expect("drop trigger");
    store.compact(BASE_MINUTE + 180).expect("compact");
    assert_eq!(raw_held(&store), (40, 360), "minutes 180.. stay rows");
    assert_eq!(read(&store), before);
    assert_eq!(store.counts().expect("counts").measurements, 400);
}
