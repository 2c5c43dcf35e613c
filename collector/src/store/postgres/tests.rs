//! Tests of the PostgreSQL store against a real server on loopback: the shared store
//! contract, concurrent collectors, errors, and a throughput measurement (ignored).
//!
//! Each test gets a fresh database, dropped afterwards. The server is found through
//! `ATTEST_TEST_POSTGRES_URL` (a role that may create databases), or else a role
//! `attest_test` is created with `su postgres -c psql` and used over TCP 127.0.0.1:5432.
//! Without a server the tests skip loudly; `ATTEST_REQUIRE_POSTGRES=1` makes that a failure.

use attest_config::wire::{FailureReason, Measurement};

pub(crate) use super::test_db::TestDb;
use super::test_db::{admin_count, admin_exec};
use super::*;
use crate::store::InspectStore;
use crate::store::contract::{self, BASE_MINUTE, batch, fail, ok};

/// One `#[test]` per contract case, each on a fresh database.
macro_rules! pg_contract_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(db) = TestDb::create() else { return };
                let store = db.store();
                contract::$case(&store);
            }
        )*
        /// Fails when the contract gained a case that this list does not run.
        #[test]
        fn every_contract_case_runs() {
            let listed = [$(stringify!($case)),*];
            for (name, _) in contract::CASES {
                assert!(listed.contains(name), "contract case {name} is not run on PostgreSQL");
            }
        }
    };
}

pg_contract_tests!(
    idempotent_resend,
    dedup_across_batches,
    late_data_updates_past_minutes,
    reason_counts_give_top_reason,
    histogram_merge,
    gaps,
    host_min_avg_max,
    maintenance_lifecycle,
    retention,
    counts,
    first_seen,
    first_configured,
    exact_threshold_counts,
    agent_status,
    raw_roundtrip,
    batch_membership,
    raw_reads_survive_compaction,
    threshold_back_fill_reads_blocks,
    compact_matches_rollups,
    changes_are_journaled,
    seals_are_kept_with_their_batch,
    report_notes_roundtrip,
    definition_history,
    late_writes_are_logged,
);

fn web_probes(store: &dyn InspectStore) -> Vec<(i64, u32, u32, u64)> {
    store
        .series_minute_details(&["web".to_owned()], BASE_MINUTE - 10, BASE_MINUTE + 10_000)
        .expect("rollups")
        .iter()
        .map(|r| {
            let lat = r.latency.as_ref().map_or(0, hdrhistogram::Histogram::len);
            (r.minute - BASE_MINUTE, r.probes, r.failures, lat)
        })
        .collect()
}

/// Batches `seq` 1..=n of agent a1: batch k covers minutes k-1 and k (6 probes each, one
/// failure per minute), so consecutive batches overlap in one minute's measurements.
fn overlapping_batches(n: u64) -> Vec<IngestBatch> {
    (1..=n)
        .map(|k| {
            let k = k as i64;
            let ms: Vec<Measurement> = [k - 1, k]
                .into_iter()
                .flat_map(|m| {
                    (0..6).map(move |s| {
                        if s == 0 {
                            fail("web", m, 0, Some(FailureReason::Timeout))
                        } else {
                            ok("web", m, s * 10, 0.01 * s as f64)
                        }
                    })
                })
                .collect();
            batch("a1", k as u64, ms)
        })
        .collect()
}

/// Two stores ("collectors") on one database commit the same batches at the same time,
/// in opposite orders; each measurement must be stored and counted exactly once.
#[test]
fn concurrent_collectors_store_each_measurement_once() {
    let Some(db) = TestDb::create() else { return };
    let (one, two) = (db.store(), db.store());
    let batches = overlapping_batches(40);
    let outcomes = std::thread::scope(|s| {
        let forward = s.spawn(|| {
            batches
                .iter()
                .map(|b| one.commit_batch(b).expect("collector one"))
                .collect::<Vec<_>>()
        });
        let backward = s.spawn(|| {
            batches
                .iter()
                .rev()
                .map(|b| two.commit_batch(b).expect("collector two"))
                .collect::<Vec<_>>()
        });
        let mut all = forward.join().expect("thread one");
        all.extend(backward.join().expect("thread two"));
        all
    });
    let fresh = outcomes.iter().filter(|o| !o.duplicate_batch).count();
    assert_eq!(fresh, 40, "each batch is taken by exactly one collector");
    let stored: u64 = outcomes.iter().map(|o| o.stored).sum();
    assert_eq!(stored, 41 * 6, "41 minutes of 6 probes, each stored once");
    assert_eq!(
        one.counts().expect("counts"),
        StoreCounts {
            batches: 40,
            measurements: 41 * 6
        }
    );
    let want: Vec<(i64, u32, u32, u64)> = (0..=40).map(|m| (m, 6, 1, 5)).collect();
    assert_eq!(web_probes(&one), want);
    assert_eq!(web_probes(&two), want);
}

/// Different batches (other seqs) carrying the same measurements, committed concurrently
/// by two collectors: raw dedup and the rollup merge hold under contention.
#[test]
fn concurrent_distinct_batches_with_shared_measurements_count_once() {
    let Some(db) = TestDb::create() else { return };
    let (one, two) = (db.store(), db.store());
    let shared = overlapping_batches(30);
    let renumbered: Vec<IngestBatch> = shared
        .iter()
        .map(|b| IngestBatch {
            seq: b.seq + 1000,
            ..b.clone()
        })
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for b in &shared {
                one.commit_batch(b).expect("collector one");
            }
        });
        s.spawn(|| {
            for b in renumbered.iter().rev() {
                two.commit_batch(b).expect("collector two");
            }
        });
    });
    let want: Vec<(i64, u32, u32, u64)> = (0..=30).map(|m| (m, 6, 1, 5)).collect();
    assert_eq!(web_probes(&one), want);
    assert_eq!(
        one.counts().expect("counts"),
        StoreCounts {
            batches: 60,
            measurements: 31 * 6
        }
    );
}

/// A real SQLSTATE 53100 from the server (raised by a trigger standing in for a full
/// disk) is reported as `Full`, and the batch is rolled back so its resend is stored.
#[test]
fn disk_full_is_reported_and_rolled_back() {
    let Some(db) = TestDb::create() else { return };
    let store = db.store();
    store
        .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
        .expect("first");
    admin_exec(
        &db.url,
        "CREATE FUNCTION attest_full() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$;
         CREATE TRIGGER attest_full BEFORE INSERT ON minute_rollup
         FOR EACH ROW EXECUTE FUNCTION attest_full();",
    )
    .expect("install trigger");
    let b2 = batch("a1", 2, vec![ok("web", 1, 0, 0.01)]);
    let err = store.commit_batch(&b2).expect_err("must fail");
    assert!(matches!(err, StoreError::Full(_)), "{err:?}");
    assert_eq!(store.counts().expect("counts").batches, 1, "rolled back");
    admin_exec(&db.url, "DROP TRIGGER attest_full ON minute_rollup").expect("drop trigger");
    let out = store.commit_batch(&b2).expect("after space freed");
    assert_eq!((out.duplicate_batch, out.stored), (false, 1));
}

#[test]
fn newer_schema_is_refused() {
    let Some(db) = TestDb::create() else { return };
    drop(db.store());
    admin_exec(
        &db.url,
        &format!(
            "INSERT INTO schema_version (version) VALUES ({})",
            SCHEMA_VERSION + 1
        ),
    )
    .expect("bump");
    let err = PgStore::connect(&db.url).err().expect("must refuse");
    assert!(err.to_string().contains("newer collector"), "{err}");
}

/// A window stored at version 2 (before registrants) keeps its row through migration 3 and
/// lists with no registrant; windows added afterwards name theirs.
#[test]
fn migration_3_keeps_old_windows_without_a_registrant() {
    let Some(db) = TestDb::create() else { return };
    let at_2 = format!(
        "{}\nINSERT INTO maintenance (service, start_ns, end_ns, reason, created_ns)
         VALUES ('shop', 1000000000, 2000000000, 'old', 0);",
        super::schema::schema_at(2)
    );
    admin_exec(&db.url, &at_2).expect("a version 2 database with a window");
    let store = db.store();
    let rows = store.list_maintenance(None).expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].reason.as_str(), rows[0].registered_by.as_deref()),
        ("old", None)
    );
}

#[test]
fn reconnecting_keeps_data_and_dedup_state() {
    let Some(db) = TestDb::create() else { return };
    let b = batch("a1", 1, vec![ok("web", 0, 0, 0.01)]);
    db.store().commit_batch(&b).expect("commit");
    let again = db.store();
    assert!(again.commit_batch(&b).expect("resend").duplicate_batch);
    assert_eq!(again.counts().expect("counts").measurements, 1);
}

/// Works from tokio's blocking pool and can be dropped inside async code.
#[test]
fn usable_from_spawn_blocking_and_droppable_in_async_code() {
    let Some(db) = TestDb::create() else { return };
    let store: Arc<dyn Store> = Arc::new(db.store());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let counts = rt.block_on(async move {
        let s = store.clone();
        let out = tokio::task::spawn_blocking(move || {
            s.commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))?;
            s.counts()
        })
        .await
        .expect("join");
        drop(store);
        out
    });
    assert_eq!(counts.expect("counts").measurements, 1);
}

#[test]
fn bad_url_and_unreachable_server_are_errors() {
    let err = PgStore::connect("not a url at all ://")
        .err()
        .expect("bad URL");
    assert!(err.to_string().contains("postgres_url"), "{err}");
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let err = PgStore::connect("postgres://u:secret@127.0.0.1:1/db")
        .err()
        .expect("unreachable");
    let msg = err.to_string();
    assert!(msg.contains("cannot connect to PostgreSQL"), "{msg}");
    assert!(!msg.contains("secret"), "the password must not leak: {msg}");
}

/// Throughput on the local server; run with
/// `cargo test -p attest-collector --lib postgres::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check; prints numbers"]
fn throughput() {
    let Some(db) = TestDb::create() else { return };
    let store = db.store();
    let minutes = 30 * 24 * 60i64;
    let per_batch = 1000i64;
    let started = std::time::Instant::now();
    let mut seq = 0;
    for chunk in (0..minutes).step_by(per_batch as usize) {
        seq += 1;
        let ms: Vec<Measurement> = (chunk..(chunk + per_batch).min(minutes))
            .map(|m| {
                if m % 97 == 0 {
                    fail("web", m, 0, Some(FailureReason::Timeout))
                } else {
                    ok("web", m, 0, 0.02 + (m % 50) as f64 * 1e-3)
                }
            })
            .collect();
        store.commit_batch(&batch("a1", seq, ms)).expect("commit");
    }
    let ingest = started.elapsed();
    let total = minutes as f64;
    eprintln!(
        "commit_batch: {seq} batches of up to {per_batch} in {ingest:?}: {:.0} measurements/s, {:.1} ms/batch",
        total / ingest.as_secs_f64(),
        ingest.as_secs_f64() * 1e3 / seq as f64
    );
    let web = ["web".to_owned()];
    let mut best = std::time::Duration::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let c = store
            .series_minutes(&web, BASE_MINUTE, BASE_MINUTE + minutes)
            .expect("series_minutes");
        best = best.min(t.elapsed());
        assert_eq!(c.rows.len(), minutes as usize);
    }
    eprintln!("series_minutes, a month (43,200 minutes) of one check: best of 5 {best:?}");
}

/// Retention cut into tiny chunks: many statements per table and series group.
fn tiny_chunks() -> super::retention::Chunks {
    super::retention::Chunks {
        rows: 3,
        series: 2,
        after_chunk: None,
    }
}

/// The contract's cases that run retention hold when every delete is cut into tiny chunks.
#[test]
fn chunked_retention_keeps_the_contract() {
    let cases: [(&str, contract::Case); 4] = [
        ("retention", contract::retention),
        ("counts", contract::counts),
        ("exact_threshold_counts", contract::exact_threshold_counts),
        ("changes_are_journaled", contract::changes_are_journaled),
    ];
    for (name, case) in cases {
        let Some(db) = TestDb::create() else { return };
        eprintln!("chunked retention: {name}");
        case(&db.store().with_retention_chunks(tiny_chunks()));
    }
}

/// Rows of each table as text.
type Dump = std::collections::BTreeMap<&'static str, Vec<String>>;

/// Every row of every table retention touches, as text in a stable order (ids included).
fn dump(store: &PgStore) -> Dump {
    const TABLES: [&str; 10] = [
        "meta",
        "agents",
        "series",
        "batches",
        "raw",
        "minute_rollup",
        "host_minute",
        "gaps",
        "minute_over",
        "threshold",
    ];
    store
        .run(|pool| async move {
            let mut c = pool.get().await?;
            let mut out = std::collections::BTreeMap::new();
            for t in TABLES {
                let sql = format!("SELECT t::text FROM {t} t ORDER BY 1");
                let rows = c.client()?.query(&sql, &[]).await?;
                let text = rows
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<String>, _>>()?;
                out.insert(t, text);
            }
            Ok(out)
        })
        .expect("dump")
}

/// Three hours of two agents × five checks, host values, gaps, a tracked threshold.
fn history(store: &PgStore) {
    store.track_threshold("c1", 300_000).expect("track");
    for (a, agent) in ["a1", "a2"].into_iter().enumerate() {
        for hour in 0..3i64 {
            let ms: Vec<Measurement> = (0..60)
                .flat_map(|m| {
                    let minute = hour * 60 + m;
                    (0..5).map(move |c| {
                        let check = format!("c{c}");
                        if (minute + c) % 17 == 0 {
                            fail(&check, minute, 7, Some(FailureReason::Timeout))
                        } else {
                            ok(
                                &check,
                                minute,
                                7 + a as i64,
                                0.2 + (minute % 9) as f64 * 0.03,
                            )
                        }
                    })
                })
                .chain((0..60).map(|m| {
                    contract::host(
                        hour * 60 + m,
                        1,
                        &[("cpu", None, 0.5), ("disk", Some("/"), 0.7)],
                    )
                }))
                .collect();
            let mut b = batch(agent, hour as u64 + 1, ms);
            b.received_at = contract::at(hour * 60 + 59, 30);
            b.gaps = vec![attest_config::wire::Gap {
                check: "c3".into(),
                from: contract::at(hour * 60 + 10, 0),
                to: contract::at(hour * 60 + 12, 0),
                count: 4,
            }];
            store.commit_batch(&b).expect("commit");
        }
    }
}

/// Retention in tiny chunks leaves exactly the rows one pass in a single chunk leaves.
#[test]
fn chunked_retention_deletes_what_one_pass_deletes() {
    let (Some(one), Some(many)) = (TestDb::create(), TestDb::create()) else {
        return;
    };
    let whole = one.store().with_retention_chunks(super::retention::Chunks {
        rows: i64::MAX,
        series: usize::MAX,
        after_chunk: None,
    });
    let tiny = many.store().with_retention_chunks(tiny_chunks());
    for s in [&whole, &tiny] {
        history(s);
    }
    assert_eq!(dump(&whole), dump(&tiny), "the same history");
    for (raw, rollups) in [
        (contract::at(100, 30), contract::at(45, 0)),
        (contract::at(170, 0), contract::at(130, 20)),
    ] {
        for s in [&whole, &tiny] {
            s.apply_retention(raw, rollups).expect("retention");
        }
        let (w, t) = (dump(&whole), dump(&tiny));
        assert!(
            w["raw"].len() < 3 * 60 * 5 * 2,
            "retention deleted raw rows"
        );
        assert!(!w["batches"].is_empty() || !w["minute_rollup"].is_empty());
        assert_eq!(w, t, "after retention to raw {raw}, rollups {rollups}");
    }
}

/// A retention pass paused between two chunks does not hold up ingest: a batch commits
/// while the pass waits, and its minutes behind the new horizon are already skipped.
#[test]
fn ingest_commits_while_retention_is_between_chunks() {
    use std::sync::mpsc;
    use std::time::Duration;
    let Some(db) = TestDb::create() else { return };
    let (paused_tx, paused_rx) = mpsc::sync_channel::<()>(1);
    let (go_tx, go_rx) = mpsc::sync_channel::<()>(1);
    let go_rx = std::sync::Mutex::new(go_rx);
    let first = std::sync::atomic::AtomicBool::new(true);
    let pause = move || {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let _ = paused_tx.send(());
            let rx = go_rx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Bounded: a test that failed elsewhere must not hang here forever.
            let _ = rx.recv_timeout(Duration::from_secs(120));
        }
    };
    let retention = db.store().with_retention_chunks(super::retention::Chunks {
        rows: 10,
        series: 1,
        after_chunk: Some(Arc::new(pause)),
    });
    let ingest = db.store();
    history(&ingest);
    let before = ingest.counts().expect("counts");
    std::thread::scope(|s| {
        let pass =
            s.spawn(|| retention.apply_retention(contract::at(150, 0), contract::at(120, 0)));
        paused_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the retention pass reaches its first chunk");
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let ingest = &ingest;
        s.spawn(move || {
            let b = batch(
                "a1",
                10,
                vec![ok("c0", 179, 50, 0.1), ok("c0", 60, 50, 0.1)],
            );
            let _ = done_tx.send(ingest.commit_batch(&b));
        });
        let out = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a commit finishes while retention waits between chunks")
            .expect("commit");
        assert_eq!(
            (out.stored, out.duplicate_measurements),
            (1, 1),
            "minute 60 is behind the horizon retention raised before its first chunk"
        );
        go_tx.send(()).expect("resume retention");
        pass.join().expect("retention thread").expect("retention");
    });
    let after = ingest.counts().expect("counts");
    assert_eq!(after.measurements, before.measurements + 1);
    let kept = web_like(&ingest, "c0");
    assert_eq!(
        kept.first().map(|m| m - BASE_MINUTE),
        Some(120),
        "rollups before 120 deleted"
    );
}

/// Minutes with rollups of `check`.
fn web_like(store: &dyn InspectStore, check: &str) -> Vec<i64> {
    store
        .series_minute_details(&[check.to_owned()], BASE_MINUTE - 10, BASE_MINUTE + 10_000)
        .expect("rollups")
        .iter()
        .map(|r| r.minute)
        .collect()
}

/// Compaction really moves old raw rows into blocks (the contract case reads the same
/// before and after; this shows there was something to read from blocks), and a
/// compaction that fails midway (an injected error on its second block) leaves the hour's
/// rows and no block: every measurement is held exactly once throughout.
#[test]
fn raw_compaction_moves_rows_into_blocks_atomically() {
    let Some(db) = TestDb::create() else { return };
    let store = db.store();
    let ms: Vec<Measurement> = (0..200)
        .flat_map(|m| [ok("web", m, 1, 0.01), ok("api", m, 2, 0.02)])
        .collect();
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    let before = store
        .raw_measurements("web", contract::at(0, 0), contract::at(300, 0))
        .expect("raw");
    let held = || {
        let rows = admin_count(&db.url, "SELECT count(*) FROM raw");
        let blocked = admin_count(
            &db.url,
            "SELECT coalesce(sum(count), 0)::int8 FROM raw_block",
        );
        (rows, blocked)
    };
    let hour1 = (BASE_MINUTE + 60) / 60;
    admin_exec(
        &db.url,
        &format!(
            "CREATE FUNCTION fail_block() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.hour = {hour1} THEN RAISE EXCEPTION 'injected fault'; END IF;
             RETURN NEW; END $$;
             CREATE TRIGGER fail_block BEFORE INSERT ON raw_block
             FOR EACH ROW EXECUTE FUNCTION fail_block();"
        ),
    )
    .expect("trigger");
    let err = store.compact(BASE_MINUTE + 180).expect_err("hour 1 fails");
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(held(), (280, 120), "hour 0 in blocks, hours 1.. in rows");
    assert_eq!(
        store
            .raw_measurements("web", contract::at(0, 0), contract::at(300, 0))
            .expect("raw"),
        before
    );
    admin_exec(&db.url, "DROP TRIGGER fail_block ON raw_block").expect("drop");
    store.compact(BASE_MINUTE + 180).expect("compact");
    assert_eq!(held(), (40, 360), "minutes 180.. stay rows");
    assert_eq!(
        store
            .raw_measurements("web", contract::at(0, 0), contract::at(300, 0))
            .expect("raw"),
        before
    );
    assert_eq!(store.counts().expect("counts").measurements, 400);
}

/// Two collectors on one database: one compacts raw hours again and again while the other
/// commits batches that repeat measurements already compacted and add one late measurement
/// each into a compacted hour. Every late measurement is stored once, no repeat is stored
/// again, and rows plus block entries always equal the measurements counted.
#[test]
fn compaction_and_commits_of_two_collectors_count_every_measurement_once() {
    let Some(db) = TestDb::create() else { return };
    let (a, b) = (db.store(), db.store());
    let ms: Vec<Measurement> = (0..150)
        .flat_map(|m| [ok("web", m, 1, 0.01), ok("api", m, 2, 0.02)])
        .collect();
    a.commit_batch(&batch("a1", 1, ms.clone())).expect("commit");
    const LATE: u64 = 40;
    std::thread::scope(|s| {
        let committer = s.spawn(|| {
            for i in 0..LATE {
                let mut late = ok("web", (i % 100) as i64, 30, 0.5);
                late.ts = late
                    .ts
                    .checked_add(jiff::SignedDuration::from_millis(i as i64))
                    .expect("ts");
                let repeat = ms[(i as usize * 7) % ms.len()].clone();
                let out = b
                    .commit_batch(&batch("a1", 100 + i, vec![repeat, late]))
                    .expect("commit");
                assert_eq!(
                    (out.stored, out.duplicate_measurements),
                    (1, 1),
                    "batch {i}"
                );
            }
        });
        while !committer.is_finished() {
            a.compact(BASE_MINUTE + 120).expect("compact");
        }
        committer.join().expect("committer");
    });
    a.compact(BASE_MINUTE + 120).expect("final compact");
    let total = 300 + LATE as i64;
    assert_eq!(a.counts().expect("counts").measurements, total as u64);
    let rows = admin_count(&db.url, "SELECT count(*) FROM raw");
    let blocked = admin_count(
        &db.url,
        "SELECT coalesce(sum(count), 0)::int8 FROM raw_block",
    );
    assert_eq!(rows + blocked, total, "held once each");
    assert_eq!(rows, 60, "minutes 120..149 stay rows");
    let web = a
        .raw_measurements("web", contract::at(-10, 0), contract::at(200, 0))
        .expect("raw");
    assert_eq!(web.len(), 150 + LATE as usize);
    let mut keys: Vec<_> = web.iter().map(|(agent, m)| (agent.clone(), m.ts)).collect();
    keys.dedup();
    assert_eq!(keys.len(), web.len(), "no measurement read twice");
}

/// A database at version 6 keeps its raw rows, blocks and rollups through migration 7
/// (the tables become partitioned; the rows land in the default partitions).
#[test]
fn migration_7_moves_rows_into_partitioned_tables() {
    let Some(db) = TestDb::create() else { return };
    admin_exec(
        &db.url,
        &format!(
            "{}
             INSERT INTO agents (name) VALUES ('a1');
             INSERT INTO series (agent_id, check_id, first_minute) VALUES (1, 'web', 0);
             INSERT INTO raw (series, ts_ns, ok, duration_s, seq)
             VALUES (1, {ns}, true, 0.25, 7);
             INSERT INTO minute_rollup (series, minute, probes, failures)
             VALUES (1, {minute}, 1, 0);",
            schema::schema_at(6),
            ns = BASE_MINUTE * 60_000_000_000,
            minute = BASE_MINUTE,
        ),
    )
    .expect("version 6 with rows");
    let store = db.store();
    let got = store
        .raw_measurements("web", contract::at(0, 0), contract::at(1, 0))
        .expect("raw");
    assert_eq!(got, vec![("a1".to_owned(), ok("web", 0, 0, 0.25))]);
    assert_eq!(admin_count(&db.url, "SELECT count(*) FROM raw_default"), 1);
    assert_eq!(
        admin_count(&db.url, "SELECT count(*) FROM minute_rollup_default"),
        1
    );
    assert_eq!(
        admin_count(
            &db.url,
            "SELECT count(*) FROM pg_class WHERE relkind = 'p'
             AND relname IN ('raw', 'raw_block', 'minute_rollup')"
        ),
        3
    );
}

/// Compaction creates the day partitions around its clock and moves their rows out of the
/// default partition; retention drops the partitions of whole days behind its cut-offs, and
/// what is kept reads the same.
#[test]
fn day_partitions_are_created_by_compaction_and_dropped_by_retention() {
    let Some(db) = TestDb::create() else { return };
    let store = db.store();
    let day = BASE_MINUTE.div_euclid(1440);
    let ms: Vec<Measurement> = (0..200)
        .map(|m| ok("web", m, 1, 0.01))
        .chain((0..10).map(|m| ok("web", 1440 + m, 1, 0.02)))
        .collect();
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    let count = |sql: &str| admin_count(&db.url, sql);
    assert_eq!(count("SELECT count(*) FROM raw_default"), 210);
    store.compact(BASE_MINUTE + 180).expect("compact");
    assert_eq!(count("SELECT count(*) FROM raw_default"), 0, "moved");
    assert_eq!(count(&format!("SELECT count(*) FROM raw_d{day}")), 20);
    assert_eq!(count(&format!("SELECT count(*) FROM raw_d{}", day + 1)), 10);
    assert_eq!(count(&format!("SELECT count(*) FROM raw_block_d{day}")), 3);
    assert_eq!(count("SELECT count(*) FROM minute_rollup_default"), 0);
    let kept = store
        .raw_measurements("web", contract::at(1440, 0), contract::at(2000, 0))
        .expect("raw");
    store
        .apply_retention(contract::at(1440, 0), contract::at(1440, 0))
        .expect("retention");
    let exists = |rel: String| {
        count(&format!(
            "SELECT (to_regclass('{rel}') IS NOT NULL)::int::int8"
        ))
    };
    for t in ["raw", "raw_block", "minute_rollup"] {
        assert_eq!(exists(format!("{t}_d{day}")), 0, "{t} of day 0 dropped");
        assert_eq!(exists(format!("{t}_d{}", day + 1)), 1, "{t} of day 1 kept");
    }
    assert_eq!(
        store
            .raw_measurements("web", contract::at(-10, 0), contract::at(2000, 0))
            .expect("raw"),
        kept
    );
    assert_eq!(store.counts().expect("counts").measurements, 210);
}

/// Row-by-row retention on partitioned tables deletes only expired rows: a row of another
/// day's partition that has the same physical position (ctid) as an expired one stays.
#[test]
fn retention_inside_a_day_keeps_the_rows_of_other_partitions() {
    let Some(db) = TestDb::create() else { return };
    let store = db.store();
    let ms: Vec<Measurement> = (0..10)
        .map(|m| ok("web", m, 1, 0.01))
        .chain((0..10).map(|m| ok("web", 1440 + m, 1, 0.02)))
        .collect();
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    // Creates the day partitions (and compacts nothing: no hour has ended before minute 0).
    store.compact(BASE_MINUTE).expect("partitions");
    let day = BASE_MINUTE.div_euclid(1440);
    assert_eq!(
        admin_count(&db.url, &format!("SELECT count(*) FROM raw_d{}", day + 1)),
        10
    );
    store
        .apply_retention(contract::at(5, 0), contract::at(-100_000, 0))
        .expect("retention");
    let left = store
        .raw_measurements("web", contract::at(-10, 0), contract::at(2000, 0))
        .expect("raw");
    assert_eq!(left.len(), 5 + 10, "minutes 5..9 of day 0 and all of day 1");
}

/// The late-write log is the database's, not a process's: a mark taken by one collector
/// sees a late write another collector committed, and a reconnected store (a restart)
/// answers for marks of the one before.
#[test]
fn late_writes_are_seen_across_collectors_and_restarts() {
    let Some(db) = TestDb::create() else { return };
    let (a, b) = (db.store(), db.store());
    let mut late = batch("a1", 1, vec![ok("web", 100, 0, 0.1)]);
    late.received_at = contract::at(200, 0);
    let web = ["web".to_owned()];
    let (lo, hi) = (BASE_MINUTE + 100, BASE_MINUTE + 101);
    let m0 = a.late_mark().expect("mark").expect("pg logs late writes");
    b.commit_batch(&late).expect("late on b");
    assert!(a.changed_late_since(&web, m0, lo, hi).expect("q"));
    let m1 = a.late_mark().expect("mark").expect("mark");
    assert!(m1 > m0, "a's mark covers b's commit");
    drop((a, b));
    let again = db.store();
    assert!(again.changed_late_since(&web, m0, lo, hi).expect("q"));
    assert!(!again.changed_late_since(&web, m1, lo, hi).expect("q"));
}

/// The change journal sees the commits of every collector on the database: a mark taken
/// by one after another committed answers "changed" for what the other wrote, only for
/// the checks of the agent that wrote, and nothing after a newer mark.
#[test]
fn changes_of_another_collector_are_journaled() {
    let Some(db) = TestDb::create() else { return };
    let (a, b) = (db.store(), db.store());
    a.feed().every = std::time::Duration::ZERO;
    b.commit_batch(&batch("a2", 1, vec![ok("api", 0, 0, 0.1)]))
        .expect("api on b");
    let before = a.change_mark();
    b.commit_batch(&batch("a1", 1, vec![ok("web", 5, 0, 0.1)]))
        .expect("web on b");
    let (web, api) = (["web".to_owned()], ["api".to_owned()]);
    let (lo, hi) = (BASE_MINUTE, BASE_MINUTE + 100);
    assert!(
        !a.changed_since(&web, before, lo, hi).expect("q"),
        "another collector's commit is seen from a's next mark on"
    );
    let mark = a.change_mark();
    assert!(
        a.changed_since(&web, before, BASE_MINUTE + 5, BASE_MINUTE + 6)
            .expect("q")
    );
    assert!(
        !a.changed_since(&web, before, BASE_MINUTE + 6, hi)
            .expect("q")
    );
    assert!(
        !a.changed_since(&api, before, lo, hi).expect("q"),
        "another agent's check"
    );
    assert!(!a.changed_since(&web, mark, lo, hi).expect("q"));
    b.apply_retention(contract::at(1, 0), contract::at(1, 0))
        .expect("retention on b");
    a.change_mark();
    assert!(a.changed_since(&api, mark, lo, BASE_MINUTE + 1).expect("q"));
}
