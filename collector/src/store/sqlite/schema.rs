//! The SQLite schema and its migrations, applied in order and tracked by `PRAGMA user_version`.
//!
//! Invariants:
//! - Migration `i` (1-based) moves the database from version `i - 1` to `i` inside one
//!   transaction, so a crash mid-migration leaves the previous version intact.
//! - Append-heavy tables are `WITHOUT ROWID` with a time-led primary key: ingest appends
//!   to the right edge of the B-tree instead of touching one page per series.
//! - Text (agent names, check ids, host value names) is interned once; hot rows hold ids.
//! - A database written by a newer collector (higher version) is refused, not guessed at.

use rusqlite::Connection;

use super::error::map_err;
use crate::store::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        last_seen_ns INTEGER,
        last_seq INTEGER,
        clock_offset_ms INTEGER,
        spool_depth INTEGER,
        spool_bytes INTEGER,
        spool_dropped INTEGER,
        spool_corrupt INTEGER
    );
    -- One row per (agent, check). first_minute is NULL until a measurement arrives
    -- (a gap alone does not mean the check was ever measured).
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        agent_id INTEGER NOT NULL REFERENCES agents(id),
        check_id TEXT NOT NULL,
        first_minute INTEGER,
        UNIQUE (check_id, agent_id)
    );
    -- Batch-level dedup; kept as long as rollups (see apply_retention).
    CREATE TABLE batches (
        agent_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        PRIMARY KEY (agent_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX batches_by_received ON batches (received_ns);
    -- Raw measurements; the time-led key doubles as the per-measurement dedup key.
    CREATE TABLE raw (
        ts_ns INTEGER NOT NULL,
        series INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        duration_s REAL,
        reason INTEGER,
        extra BLOB,
        PRIMARY KEY (ts_ns, series)
    ) WITHOUT ROWID;
    -- Hot tier: one row per (minute, series), upserted at ingest.
    CREATE TABLE minute_rollup (
        minute INTEGER NOT NULL,
        series INTEGER NOT NULL,
        probes INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        reasons BLOB,
        latency BLOB,
        PRIMARY KEY (minute, series)
    ) WITHOUT ROWID;
    -- Long-term tier: one compressed pack of up to 60 minute cells per (series, hour).
    -- Series-led on purpose: packs are written by compaction (1/360 of the probe rate at
    -- 10 s probes), off the ingest path, and reads ask for a few series over a month.
    CREATE TABLE hour_pack (
        series INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (series, hour)
    ) WITHOUT ROWID;
    CREATE TABLE host_series (
        id INTEGER PRIMARY KEY,
        agent_id INTEGER NOT NULL REFERENCES agents(id),
        name TEXT NOT NULL,
        resource TEXT NOT NULL,
        UNIQUE (agent_id, name, resource)
    );
    -- Sum and count (not avg) so that merges across batches stay exact.
    CREATE TABLE host_minute (
        minute INTEGER NOT NULL,
        hseries INTEGER NOT NULL,
        count INTEGER NOT NULL,
        sum REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        PRIMARY KEY (minute, hseries)
    ) WITHOUT ROWID;
    CREATE TABLE gaps (
        series INTEGER NOT NULL,
        from_minute INTEGER NOT NULL,
        to_minute INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (series, from_minute, to_minute)
    ) WITHOUT ROWID;
    CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        cancelled_ns INTEGER
    );
    CREATE INDEX maintenance_by_service ON maintenance (service, start_ns);
    -- Counters and horizons: batches_total, measurements_total, rollup_horizon_minute.
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: exact SLA inputs (issue 9). When the store first saw each service configured;
    // which latency thresholds are counted exactly per check and from which minute; and
    // per minute, series and threshold the probes in the threshold's own histogram bucket
    // that are over it (rare: rows exist only where the bucket could not decide). The raw
    // horizon says from which minute every raw measurement is still kept; a database whose
    // retention already ran starts it after its oldest raw row.
    r#"
    CREATE TABLE service_configured (
        service TEXT PRIMARY KEY,
        first_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE threshold (
        check_id TEXT NOT NULL,
        threshold_us INTEGER NOT NULL,
        exact_from_minute INTEGER NOT NULL,
        PRIMARY KEY (check_id, threshold_us)
    ) WITHOUT ROWID;
    CREATE TABLE minute_over (
        series INTEGER NOT NULL,
        threshold_us INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        over INTEGER NOT NULL,
        PRIMARY KEY (series, threshold_us, minute)
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value)
        SELECT 'raw_horizon_minute',
               coalesce((SELECT min(ts_ns) FROM raw) / 60000000000 + 1,
                        CAST(strftime('%s', 'now') AS INTEGER) / 60 + 1)
        WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'rollup_horizon_minute');
    "#,
    // 3: the durable log of late writes (see `late.rs`).
    r#"
    CREATE TABLE late_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        check_id TEXT NOT NULL,
        from_minute INTEGER NOT NULL,
        to_minute INTEGER NOT NULL,
        logged_minute INTEGER NOT NULL
    );
    CREATE INDEX late_changes_by_check ON late_changes (check_id, seq);
    "#,
    // 4: who registered each maintenance window (the credential's name, never a secret);
    // NULL for windows registered before this version.
    r#"
    ALTER TABLE maintenance ADD COLUMN registered_by TEXT;
    "#,
    // 5: the late-write log's rows per group commit (`late.rs`): `check_id` '#' and the
    // sorted ids of the series written late, as delta varints. Rows of earlier versions (one
    // per check) keep their meaning.
    r#"
    ALTER TABLE late_changes ADD COLUMN series BLOB;
    "#,
    // 6: batch membership (issue 20). Each raw row records the seq of the batch it arrived
    // in (NULL for rows stored before this version), and each batch row the span of its
    // measurements' instants, so that a batch's measurements are found by a range scan of
    // the time-led raw key instead of an index on (series, seq) paid at every insert.
    r#"
    ALTER TABLE raw ADD COLUMN seq INTEGER;
    ALTER TABLE batches ADD COLUMN first_ns INTEGER;
    ALTER TABLE batches ADD COLUMN last_ns INTEGER;
    "#,
    // 7: raw measurements in blocks (issue 20, `blocks.rs`): raw rows older than the recent
    // hours are compacted into one lossless block per series and hour (`store/block.rs`),
    // with the range of batch seqs it holds (so a batch's read skips the others).
    r#"
    CREATE TABLE raw_block (
        series INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        count INTEGER NOT NULL,
        seq_lo INTEGER,
        seq_hi INTEGER,
        data BLOB NOT NULL,
        PRIMARY KEY (series, hour)
    ) WITHOUT ROWID;
    "#,
    // 8: the evidence of signed batches (issue 21, `store/seals.rs`): each key an agent's
    // batches were stored under, and per signed batch its digest, previous digest,
    // signature and key, the clock correction applied to it and its gaps (canonical form).
    r#"
    CREATE TABLE agent_key (
        id INTEGER PRIMARY KEY,
        agent_id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        first_ns INTEGER NOT NULL,
        UNIQUE (agent_id, public_key)
    );
    CREATE TABLE batch_seal (
        agent_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        digest BLOB NOT NULL,
        prev BLOB,
        signature BLOB NOT NULL,
        key_id INTEGER NOT NULL,
        ts_shift_ms INTEGER,
        gaps BLOB,
        PRIMARY KEY (agent_id, seq)
    ) WITHOUT ROWID;
    "#,
    // 9: a maintenance window's reference (change ticket) as a field of its own.
    r#"
    ALTER TABLE maintenance ADD COLUMN reference TEXT;
    "#,
    // 10: report notes (comments, causes and actions per service and month); added only,
    // never edited. `due` is a civil date `YYYY-MM-DD`.
    r#"
    CREATE TABLE report_note (
        id INTEGER PRIMARY KEY,
        month TEXT NOT NULL,
        service TEXT NOT NULL,
        written_ns INTEGER NOT NULL,
        written_by TEXT NOT NULL,
        cause TEXT NOT NULL,
        action TEXT NOT NULL,
        owner TEXT,
        due TEXT
    );
    CREATE INDEX report_note_by_month ON report_note (month, service, written_ns);
    "#,
    // 11: the definition history: each distinct service definition, from when it was in
    // force; added only, never edited.
    r#"
    CREATE TABLE service_definition (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        first_seen_ns INTEGER NOT NULL,
        definition TEXT NOT NULL,
        cause TEXT NOT NULL
    );
    CREATE INDEX service_definition_by_service ON service_definition (service, first_seen_ns);
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current} but this collector knows only up to \
             {SCHEMA_VERSION}; run a newer collector or restore a backup"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(map_err)?;
        tx.execute_batch(sql).map_err(map_err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at version 1 whose retention already ran: migration 2 starts the raw
    /// horizon after the oldest raw row kept (its minute may have lost probes); one whose
    /// retention never ran has none (every minute's raw rows are kept).
    #[test]
    fn migration_2_derives_the_raw_horizon_of_an_old_database() {
        let at_v1 = |retention_ran: bool| {
            let mut conn = Connection::open_in_memory().expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("v1");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            // One raw row at 10:00:30 of minute 1000 (ns), series 1.
            conn.execute(
                "INSERT INTO raw (ts_ns, series, ok) VALUES (?1, 1, 1)",
                [1000 * 60_000_000_000i64 + 30_000_000_000],
            )
            .expect("raw");
            if retention_ran {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('rollup_horizon_minute', 10)",
                    [],
                )
                .expect("meta");
            }
            migrate(&mut conn).expect("migrate");
            conn.query_row(
                "SELECT value FROM meta WHERE key = 'raw_horizon_minute'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
        };
        assert_eq!(at_v1(true), Some(1001));
        assert_eq!(at_v1(false), None);
    }

    /// A window stored at version 3 keeps its row through migration 4, with no registrant
    /// (none was recorded), and a new one can name its registrant.
    #[test]
    fn migration_4_keeps_old_windows_without_a_registrant() {
        let mut conn = Connection::open_in_memory().expect("open");
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("v1..v3");
        }
        conn.pragma_update(None, "user_version", 3)
            .expect("version");
        conn.execute(
            "INSERT INTO maintenance (service, start_ns, end_ns, reason, created_ns)
             VALUES ('shop', 1, 2, 'old', 0)",
            [],
        )
        .expect("old window");
        migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO maintenance (service, start_ns, end_ns, reason, created_ns, registered_by)
             VALUES ('shop', 3, 4, 'new', 0, 'admin')",
            [],
        )
        .expect("new window");
        let by: Vec<(String, Option<String>)> = conn
            .prepare("SELECT reason, registered_by FROM maintenance ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            by,
            vec![("old".into(), None), ("new".into(), Some("admin".into()))]
        );
    }

    /// A database at version 7 with a stored batch gets the evidence tables at version 8,
    /// keeps its batch (as unsigned: no seal row) and takes seal rows afterwards.
    #[test]
    fn migration_8_adds_the_evidence_tables_and_keeps_batches() {
        let mut conn = Connection::open_in_memory().expect("open");
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).expect("v1..v7");
        }
        conn.pragma_update(None, "user_version", 7)
            .expect("version");
        conn.execute(
            "INSERT INTO batches (agent_id, seq, received_ns) VALUES (1, 1, 0)",
            [],
        )
        .expect("old batch");
        migrate(&mut conn).expect("migrate");
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql);
        assert_eq!(count("SELECT count(*) FROM batches"), 1);
        assert_eq!(
            count("SELECT count(*) FROM batch_seal"),
            0,
            "an old batch is unsigned"
        );
        conn.execute(
            "INSERT INTO batch_seal (agent_id, seq, digest, signature, key_id) VALUES (1, 2, x'00', x'00', 1)",
            [],
        )
        .expect("a seal row");
        assert_eq!(count("PRAGMA user_version"), SCHEMA_VERSION);
    }
}
