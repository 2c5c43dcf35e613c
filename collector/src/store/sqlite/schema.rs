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
