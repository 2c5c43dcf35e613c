//! The SQLite backend against the store contract, plus what only SQLite has: two tiers,
//! bulk loads, durability across reopen, a full disk, schema versions, reader isolation.

use super::*;
use crate::store::contract::{self, at, batch, ok};
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
    assert_eq!(rows[70].latency.as_ref().map(|h| h.len()), Some(5));
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
