//! Tamper tests against a real store written through ingest, on SQLite and on PostgreSQL
//! (the same cases through one backend-generic rig, `Db`): each edit of the database is
//! found with the right finding; the untouched store has none. PostgreSQL cases skip loudly
//! without a reachable server (`store::postgres::test_db`), and fail with
//! `ATTEST_REQUIRE_POSTGRES=1`.

use std::sync::Arc;

use attest_config::evidence::keys::SecretKey;
use attest_config::wire::{Batch, Measurement};

use super::*;
use crate::ingest::Ingest;
use crate::store::postgres::test_db::{TestDb, admin_exec};
use crate::store::{NewMaintenance, SqliteStore};

/// 2026-09-21T13:46:40Z.
const NOW: i64 = 1_790_000_000;

const A1: &str = "(SELECT id FROM agents WHERE name = 'a1')";
const A2: &str = "(SELECT id FROM agents WHERE name = 'a2')";

/// A store under test and the way to edit it behind the collector's back.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl Db {
    fn sqlite() -> Option<Db> {
        Some(Db::Sqlite(tempfile::tempdir().unwrap()))
    }

    fn postgres() -> Option<Db> {
        TestDb::create().map(Db::Postgres)
    }

    /// A fresh handle on the store (as a new collector process would open it).
    fn open(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).unwrap()),
            Db::Postgres(db) => Arc::new(db.store()),
        }
    }

    /// Runs `sql` (written to work on both backends) on the database directly.
    fn tamper(&self, sql: &str) {
        match self {
            Db::Sqlite(dir) => {
                let conn =
                    rusqlite::Connection::open(dir.path().join(crate::store::sqlite::DB_FILE))
                        .unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Db::Postgres(db) => admin_exec(&db.url, sql).unwrap(),
        }
    }

    /// A byte-string literal of `bytes` in this backend's SQL.
    fn blob(&self, bytes: &[u8]) -> String {
        match self {
            Db::Sqlite(_) => format!("X'{}'", keys::hex(bytes)),
            Db::Postgres(_) => format!("'\\x{}'::bytea", keys::hex(bytes)),
        }
    }
}

fn key(seed: u8) -> SecretKey {
    keys::secret_from_seed(&[seed; 32])
}

/// Agents a1 (with `a1_key` configured when given) and a2; `archive` as `[report]
/// archive_dir`.
fn config(a1_key: Option<&SecretKey>, archive: Option<&std::path::Path>) -> CollectorConfig {
    let pk = a1_key.map_or(String::new(), |k| {
        format!("public_key = \"{}\"\n", keys::public_of(k))
    });
    let report = archive.map_or(String::new(), |d| {
        format!("[report]\narchive_dir = \"{}\"\n", d.display())
    });
    attest_config::parse_collector(
        "c.toml",
        &format!(
            "{report}[[agent]]\nid = \"a1\"\ntoken = \"t1\"\n{pk}[[agent]]\nid = \"a2\"\ntoken = \"t2\"\n"
        ),
    )
    .unwrap()
}

/// Batch `seq` of `agent`: three measurements a minute after the previous batch's (a2's
/// 30 s later than a1's, so that a2's rows can be copied under a1).
fn signed(agent: &str, seq: u64, prev: Option<[u8; 32]>, k: &SecretKey) -> (Batch, [u8; 32]) {
    let offset = if agent == "a2" { 30 } else { 0 };
    let ms: Vec<Measurement> = (0..3)
        .map(|i| {
            let ts = Timestamp::from_second(NOW - 3600 + seq as i64 * 60 + offset + i).unwrap();
            Measurement::new(format!("c{i}"), ts, true)
        })
        .collect();
    let (d, evidence) = attest_config::evidence::seal(
        &Header {
            agent,
            seq,
            prev: prev.as_ref(),
        },
        &ms,
        &[],
        k,
    );
    let b = Batch {
        version: 2,
        agent: agent.into(),
        seq,
        sent_at: Timestamp::from_second(NOW).unwrap(),
        measurements: ms,
        gaps: vec![],
        spool: None,
        evidence: Some(evidence),
    };
    (b, d)
}

/// `db` with 3 chained batches of a1 and 2 of a2, written through ingest.
fn written(db: Option<Db>, cfg: &CollectorConfig) -> Option<Db> {
    let db = db?;
    let ingest = Ingest::new(
        db.open(),
        &cfg.agents,
        cfg.ingest.clone(),
        crate::changed::DataChanged::new(),
    );
    for (agent, n, k) in [("a1", 3, key(1)), ("a2", 2, key(2))] {
        let mut prev = None;
        for seq in 1..=n {
            let (b, d) = signed(agent, seq, prev, &k);
            ingest
                .handle_admitted(
                    agent,
                    None,
                    &serde_json::to_vec(&b).unwrap(),
                    Timestamp::from_second(NOW).unwrap(),
                )
                .expect("stored");
            prev = Some(d);
        }
    }
    Some(db)
}

fn run(db: &Db, cfg: &CollectorConfig) -> AuditReport {
    let (from, to) = month_bounds("2026-09").unwrap();
    audit(db.open().as_ref(), cfg, from, to).unwrap()
}

/// Writes the sealed month 2026-09 into `archive` as the archive loop does (the seal files
/// only: the audit reads nothing else of the bundle).
fn seal_month(db: &Db, cfg: &CollectorConfig, archive: &std::path::Path) {
    let store = db.open();
    let (from, to) = month_bounds("2026-09").unwrap();
    let batches = store.batch_seals(from, to).unwrap();
    let windows: Vec<_> = store
        .list_maintenance(None)
        .unwrap()
        .into_iter()
        .filter(|w| w.start < to && w.end > from)
        .collect();
    let services: Vec<&attest_config::Service> = cfg.services.iter().collect();
    let inputs = crate::report::monthly::month_seal::SealInputs {
        month: "2026-09",
        span: (from, to),
        services: &services,
        batches: &batches,
        windows: &windows,
    };
    for (rel, bytes) in crate::report::monthly::month_seal::files(&inputs, None) {
        let path = archive.join("2026-09").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn rows_differ(r: &AuditReport) -> Vec<(String, u64)> {
    r.findings
        .iter()
        .filter_map(|f| match f {
            Finding::RowsDiffer { agent, seq, .. } => Some((agent.clone(), *seq)),
            _ => None,
        })
        .collect()
}

/// Runs `case` on SQLite, then on PostgreSQL when a server is reachable.
fn both(case: fn(fn() -> Option<Db>)) {
    case(Db::sqlite);
    case(Db::postgres);
}

#[test]
fn an_untouched_store_has_no_findings() {
    both(|db| {
        let cfg = config(Some(&key(1)), None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        let r = run(&db, &cfg);
        assert_eq!((r.batches, r.measurements), (5, 15));
        assert_eq!(r.findings, vec![], "{}", render("2026-09", &r));
        let (from, to) = month_bounds("2026-10").unwrap();
        let other = audit(db.open().as_ref(), &cfg, from, to).unwrap();
        assert_eq!(other.batches, 0, "another month holds none of them");
    });
}

#[test]
fn a_flipped_success_flag_is_found() {
    both(|db| {
        let cfg = config(None, None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        db.tamper(&format!(
            "UPDATE raw SET ok = NOT ok WHERE seq = 2 AND series IN (SELECT id FROM series WHERE agent_id = {A1} AND check_id = 'c1')"
        ));
        let r = run(&db, &cfg);
        assert_eq!(r.findings.len(), 1, "{}", render("2026-09", &r));
        assert_eq!(rows_differ(&r), vec![("a1".to_string(), 2)]);
        assert!(
            render("2026-09", &r)
                .contains("FINDING agent a1 batch 2: the stored rows no longer match")
        );
    });
}

#[test]
fn an_inserted_row_is_found() {
    both(|db| {
        let cfg = config(None, None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        // A good minute added for a1's check c0, in no batch.
        let ts_ns = (NOW - 1800) * 1_000_000_000;
        db.tamper(&format!(
            "INSERT INTO raw (ts_ns, series, ok) SELECT {ts_ns}, id, (1 = 1) FROM series WHERE agent_id = {A1} AND check_id = 'c0'"
        ));
        let r = run(&db, &cfg);
        assert_eq!(
            r.findings,
            vec![Finding::Unsigned {
                agent: "a1".into(),
                check: "c0".into(),
                count: 1
            }]
        );
        // Inserted into a signed batch instead (inside its span, under its seq): that
        // batch's rows no longer match.
        let inside = (NOW - 3600 + 181) * 1_000_000_000 + 500_000_000;
        db.tamper(&format!(
            "DELETE FROM raw WHERE ts_ns = {ts_ns};
             INSERT INTO raw (ts_ns, series, ok, seq) SELECT {inside}, id, (1 = 1), 3 FROM series WHERE agent_id = {A1} AND check_id = 'c0'"
        ));
        let r = run(&db, &cfg);
        assert_eq!(r.findings.len(), 1, "{}", render("2026-09", &r));
        assert_eq!(rows_differ(&r), vec![("a1".to_string(), 3)]);
    });
}

/// Deletes a1's batch `seq` everywhere the store keeps it.
fn delete_batch(db: &Db, seq: u64) {
    db.tamper(&format!(
        "DELETE FROM raw WHERE seq = {seq} AND series IN (SELECT id FROM series WHERE agent_id = {A1});
         DELETE FROM batches WHERE agent_id = {A1} AND seq = {seq};
         DELETE FROM batch_seal WHERE agent_id = {A1} AND seq = {seq};"
    ));
}

#[test]
fn a_deleted_batch_is_found() {
    both(|db| {
        let cfg = config(None, None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        delete_batch(&db, 2);
        let r = run(&db, &cfg);
        assert_eq!(
            r.findings,
            vec![Finding::MissingLink {
                agent: "a1".into(),
                seq: 3
            }]
        );
    });
}

/// Two batches swapped (a1's 2 and 3: rows, batch rows and seals under each other's seq):
/// both digests differ from their rows, and both links break.
#[test]
fn two_reordered_batches_are_found() {
    both(|db| {
        let cfg = config(None, None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        let mut sql = String::new();
        for (table, owner) in [
            (
                "raw",
                format!("series IN (SELECT id FROM series WHERE agent_id = {A1})"),
            ),
            ("batches", format!("agent_id = {A1}")),
            ("batch_seal", format!("agent_id = {A1}")),
        ] {
            sql.push_str(&format!(
                "UPDATE {table} SET seq = -1 WHERE seq = 2 AND {owner};
                 UPDATE {table} SET seq = 2 WHERE seq = 3 AND {owner};
                 UPDATE {table} SET seq = 3 WHERE seq = -1 AND {owner};"
            ));
        }
        db.tamper(&sql);
        let r = run(&db, &cfg);
        assert_eq!(
            rows_differ(&r),
            vec![("a1".to_string(), 2), ("a1".to_string(), 3)]
        );
        let broken: Vec<u64> = r
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::BrokenLink { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(broken, vec![2, 3], "{}", render("2026-09", &r));
        assert_eq!(r.findings.len(), 4);
    });
}

/// a2's batch 1 copied under a1 as its batch 4 (rows, batch row and seal): its digest is
/// a2's (the canonical form names the agent and seq), its key a2's.
#[test]
fn a_batch_replayed_from_another_agent_is_found() {
    both(|db| {
        let cfg = config(None, None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        db.tamper(&format!(
            "INSERT INTO raw (ts_ns, series, ok, duration_s, reason, extra, seq)
               SELECT r.ts_ns, s1.id, r.ok, r.duration_s, r.reason, r.extra, 4
               FROM raw r JOIN series s2 ON s2.id = r.series
               JOIN series s1 ON s1.check_id = s2.check_id AND s1.agent_id = {A1}
               WHERE s2.agent_id = {A2} AND r.seq = 1;
             INSERT INTO batches (agent_id, seq, received_ns, first_ns, last_ns)
               SELECT {A1}, 4, received_ns, first_ns, last_ns FROM batches WHERE agent_id = {A2} AND seq = 1;
             INSERT INTO batch_seal (agent_id, seq, digest, prev, signature, key_id, ts_shift_ms, gaps)
               SELECT {A1}, 4, digest, prev, signature, key_id, ts_shift_ms, gaps FROM batch_seal WHERE agent_id = {A2} AND seq = 1;"
        ));
        let r = run(&db, &cfg);
        assert_eq!(rows_differ(&r), vec![("a1".to_string(), 4)]);
        assert!(
            r.findings.iter().any(|f| matches!(f,
                Finding::ForeignKey { agent, seq: 4, .. } if agent == "a1")),
            "{}",
            render("2026-09", &r)
        );
        assert_eq!(r.findings.len(), 2, "{}", render("2026-09", &r));
    });
}

#[test]
fn a_swapped_agent_key_is_found() {
    both(|db| {
        let cfg = config(Some(&key(1)), None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        let forged = keys::public_of(&key(66));
        db.tamper(&format!(
            "UPDATE agent_key SET public_key = {} WHERE agent_id = {A1}",
            db.blob(forged.as_bytes())
        ));
        let r = run(&db, &cfg);
        let bad: Vec<u64> = r
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::BadSignature { agent, seq } if agent == "a1" => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(bad, vec![1, 2, 3], "{}", render("2026-09", &r));
        let foreign = r
            .findings
            .iter()
            .filter(|f| matches!(f, Finding::ForeignKey { .. }))
            .count();
        assert_eq!(foreign, 3, "the configured key is the anchor");
        assert_eq!(r.findings.len(), 6);
    });
}

/// With the month archived and sealed: a maintenance window registered afterwards is not
/// in the seal; the sealed month itself audits clean first.
#[test]
fn a_maintenance_window_inserted_after_the_seal_is_found() {
    both(|db| {
        let archive = tempfile::tempdir().unwrap();
        let cfg = config(None, Some(archive.path()));
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        seal_month(&db, &cfg, archive.path());
        let r = run(&db, &cfg);
        assert_eq!(r.findings, vec![], "{}", render("2026-09", &r));
        assert_eq!(r.sealed_leaves, Some(5), "the five signed batches");

        let start = Timestamp::from_second(NOW - 7200).unwrap();
        let w = NewMaintenance {
            service: "web",
            start,
            end: start + jiff::SignedDuration::from_hours(1),
            reason: "covering an outage afterwards",
            registered_by: "mallory",
            reference: None,
        };
        db.open()
            .add_maintenance(&w, Timestamp::from_second(NOW).unwrap())
            .unwrap();
        let r = run(&db, &cfg);
        assert!(
            matches!(r.findings.as_slice(), [Finding::NotSealed { leaf }] if leaf.starts_with("maintenance ") && leaf.contains(" web ")),
            "{}",
            render("2026-09", &r)
        );
        assert!(render("2026-09", &r).contains("not in the archived seal"));
    });
}

/// The newest batch of a chain deleted leaves no link to miss; the agent's last
/// acknowledged seq still names it, and so does the sealed month when that is lowered too.
#[test]
fn a_deleted_chain_head_is_found_by_the_last_acknowledged_seq() {
    both(|db| {
        let cfg = config(None, None);
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        delete_batch(&db, 3);
        let r = run(&db, &cfg);
        assert_eq!(
            r.findings,
            vec![Finding::MissingHead {
                agent: "a1".into(),
                seq: 3,
                last_stored: 2
            }],
            "{}",
            render("2026-09", &r)
        );
    });
}

/// The newest batch of a chain deleted and the agent's last seq lowered to match: the
/// sealed month still names it.
#[test]
fn a_deleted_chain_head_is_found_against_the_seal() {
    both(|db| {
        let archive = tempfile::tempdir().unwrap();
        let cfg = config(None, Some(archive.path()));
        let Some(db) = written(db(), &cfg) else {
            return;
        };
        seal_month(&db, &cfg, archive.path());
        delete_batch(&db, 3);
        db.tamper(&format!("UPDATE agents SET last_seq = 2 WHERE id = {A1}"));
        let r = run(&db, &cfg);
        assert!(
            matches!(r.findings.as_slice(), [Finding::SealedButGone { leaf }] if leaf.starts_with("batch a1 3 ")),
            "{}",
            render("2026-09", &r)
        );
        // An edited leaf file is not a reference any more.
        let leaves = archive.path().join("2026-09/seal/leaves.txt");
        let text = std::fs::read_to_string(&leaves).unwrap();
        std::fs::write(&leaves, text.replace("batch a1 3 ", "batch a1 4 ")).unwrap();
        let r = run(&db, &cfg);
        assert!(
            matches!(r.findings.as_slice(), [Finding::BadSeal { .. }]),
            "{}",
            render("2026-09", &r)
        );
    });
}

/// `clock_skew_policy = "correct"` stores shifted timestamps; the seal's shift lets the
/// audit recompute the digest the agent signed, and an edit is still found.
#[test]
fn corrected_clocks_still_audit_clean() {
    both(|db| {
        let mut cfg = config(None, None);
        cfg.ingest.clock_skew_policy = attest_config::SkewPolicy::Correct;
        let Some(db) = db() else {
            return;
        };
        let store = db.open();
        let ingest = Ingest::new(
            store.clone(),
            &cfg.agents,
            cfg.ingest.clone(),
            crate::changed::DataChanged::new(),
        );
        let mut prev = None;
        for seq in 1..=2 {
            let (mut b, d) = signed("a1", seq, prev, &key(1));
            // The agent's clock runs 2 minutes ahead (sent_at is outside the digest).
            b.sent_at = Timestamp::from_second(NOW + 120).unwrap();
            ingest
                .handle_admitted(
                    "a1",
                    None,
                    &serde_json::to_vec(&b).unwrap(),
                    Timestamp::from_second(NOW).unwrap(),
                )
                .expect("stored, shifted");
            prev = Some(d);
        }
        let (first, _) = signed("a1", 1, None, &key(1));
        let kept = store.batch_measurements("a1", 1).unwrap();
        assert_eq!(
            kept[0].ts,
            first.measurements[0].ts - jiff::SignedDuration::from_secs(120),
            "stored shifted"
        );
        drop((ingest, store));
        let r = run(&db, &cfg);
        assert_eq!(r.findings, vec![], "{}", render("2026-09", &r));
        db.tamper(
            "UPDATE raw SET ok = NOT ok WHERE seq = 1 AND ts_ns = (SELECT min(ts_ns) FROM raw WHERE seq = 1)",
        );
        assert_eq!(run(&db, &cfg).findings.len(), 1);
    });
}

#[test]
fn a_bad_month_is_refused() {
    for bad in ["2026", "2026-13", "26-01", "x-01"] {
        assert!(month_bounds(bad).is_err(), "{bad}");
    }
    let (from, to) = month_bounds("2026-12").unwrap();
    assert_eq!(
        (from.to_string(), to.to_string()),
        ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
    );
}
