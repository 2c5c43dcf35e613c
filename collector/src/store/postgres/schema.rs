//! The PostgreSQL schema and its migrations, tracked in a `schema_version` table.
//!
//! Invariants:
//! - Migrations run in one transaction under a transaction-scoped advisory lock, so
//!   collectors starting together against one database migrate it exactly once.
//! - Migrations are append-only: a version once released is never edited.
//! - A database migrated by a newer collector is refused, never written to.

use tokio_postgres::Client;

use super::TxError;
use crate::store::StoreError;

/// Advisory lock key for migrations ("attest" in ASCII); any constant unique to Attest works.
const MIGRATION_LOCK: i64 = 0x0000_6174_7465_7374;

/// Version 1 mirrors the SQLite design: interned agents and series (agent × check), batch
/// dedup rows, raw measurements unique per (series, ts), minute rollups with codec-encoded
/// reason counters and latency buckets, host minutes kept as count/sum/min/max so merges
/// are exact, gaps, maintenance. Per-agent totals replace a global counter row so that
/// concurrent collectors never queue on one hot row.
const V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('rollup_horizon_minute', -9223372036854775808);
CREATE TABLE agents (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  last_seen_ns BIGINT,
  last_seq BIGINT,
  clock_offset_ms BIGINT,
  spool_depth BIGINT,
  spool_bytes BIGINT,
  spool_dropped BIGINT,
  spool_corrupt BIGINT,
  batches_total BIGINT NOT NULL DEFAULT 0,
  measurements_total BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE series (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id BIGINT NOT NULL REFERENCES agents (id),
  check_id TEXT NOT NULL,
  first_minute BIGINT,
  UNIQUE (check_id, agent_id)
);
CREATE TABLE batches (
  agent_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  received_ns BIGINT NOT NULL,
  PRIMARY KEY (agent_id, seq)
);
CREATE INDEX batches_received ON batches (received_ns);
CREATE TABLE raw (
  series BIGINT NOT NULL,
  ts_ns BIGINT NOT NULL,
  ok BOOLEAN NOT NULL,
  duration_s DOUBLE PRECISION,
  reason SMALLINT,
  extra BYTEA,
  PRIMARY KEY (series, ts_ns)
);
CREATE INDEX raw_ts ON raw USING brin (ts_ns);
CREATE TABLE minute_rollup (
  series BIGINT NOT NULL,
  minute BIGINT NOT NULL,
  probes BIGINT NOT NULL,
  failures BIGINT NOT NULL,
  reasons BYTEA,
  latency BYTEA,
  PRIMARY KEY (series, minute)
);
CREATE INDEX minute_rollup_minute ON minute_rollup USING brin (minute);
CREATE TABLE host_series (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id BIGINT NOT NULL REFERENCES agents (id),
  name TEXT NOT NULL,
  resource TEXT NOT NULL,
  UNIQUE (agent_id, name, resource)
);
CREATE TABLE host_minute (
  minute BIGINT NOT NULL,
  hseries BIGINT NOT NULL,
  count BIGINT NOT NULL,
  sum DOUBLE PRECISION NOT NULL,
  min DOUBLE PRECISION NOT NULL,
  max DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (minute, hseries)
);
CREATE TABLE gaps (
  series BIGINT NOT NULL,
  from_minute BIGINT NOT NULL,
  to_minute BIGINT NOT NULL,
  count BIGINT NOT NULL,
  PRIMARY KEY (series, from_minute, to_minute)
);
CREATE TABLE maintenance (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  service TEXT NOT NULL,
  start_ns BIGINT NOT NULL,
  end_ns BIGINT NOT NULL,
  reason TEXT NOT NULL,
  created_ns BIGINT NOT NULL,
  cancelled_ns BIGINT
);
CREATE INDEX maintenance_service ON maintenance (service, start_ns);
";

/// Version 2 (issue 9) adds the exact SLA inputs, as in SQLite: when the store first saw
/// each service configured; the latency thresholds counted exactly per check and from which
/// minute; per series, threshold and minute the probes in the threshold's own histogram
/// bucket that are over it (rows only for non-zero counts); and the raw horizon, which a
/// database whose retention already ran starts after its oldest raw row.
const V2: &str = "
CREATE TABLE service_configured (service TEXT PRIMARY KEY, first_ns BIGINT NOT NULL);
CREATE TABLE threshold (
  check_id TEXT NOT NULL,
  threshold_us BIGINT NOT NULL,
  exact_from_minute BIGINT NOT NULL,
  PRIMARY KEY (check_id, threshold_us)
);
CREATE TABLE minute_over (
  series BIGINT NOT NULL,
  threshold_us BIGINT NOT NULL,
  minute BIGINT NOT NULL,
  over BIGINT NOT NULL,
  PRIMARY KEY (series, threshold_us, minute)
);
INSERT INTO meta (key, value)
  SELECT 'raw_horizon_minute',
         CASE WHEN value = -9223372036854775808 THEN value
              ELSE coalesce((SELECT min(ts_ns) FROM raw) / 60000000000 + 1,
                            extract(epoch FROM now())::bigint / 60 + 1)
         END
  FROM meta WHERE key = 'rollup_horizon_minute';
";

/// Version 3 records who registered each maintenance window (the credential's name, never
/// a secret); NULL for windows registered before it, as in SQLite.
const V3: &str = "ALTER TABLE maintenance ADD COLUMN registered_by TEXT;";

/// Version 4 (issue 20): batch membership, as in SQLite. Each raw row records the seq of
/// the batch it arrived in (NULL for rows stored before), each batch row the span of its
/// measurements' instants, so a batch's measurements are found through the raw key
/// (series, ts) without an index paid at every insert.
const V4: &str = "
ALTER TABLE raw ADD COLUMN seq BIGINT;
ALTER TABLE batches ADD COLUMN first_ns BIGINT, ADD COLUMN last_ns BIGINT;
";

/// Version 5 (issue 20): raw measurements in blocks, as in SQLite (`blocks.rs`): raw rows
/// older than the recent hours are compacted into one lossless block per series and hour,
/// with the range of batch seqs it holds; `raw_block_hour` is above every hour with a block
/// and is the lock compaction and commits order themselves by.
const V5: &str = "
CREATE TABLE raw_block (
  series BIGINT NOT NULL,
  hour BIGINT NOT NULL,
  count BIGINT NOT NULL,
  seq_lo BIGINT,
  seq_hi BIGINT,
  data BYTEA NOT NULL,
  PRIMARY KEY (series, hour)
);
INSERT INTO meta (key, value) VALUES ('raw_block_hour', -9223372036854775808);
";

/// Version 6 (issue 21): the evidence of signed batches, as in SQLite (`store/seals.rs`).
const V6: &str = "
CREATE TABLE agent_key (
  id BIGSERIAL PRIMARY KEY,
  agent_id BIGINT NOT NULL,
  public_key BYTEA NOT NULL,
  first_ns BIGINT NOT NULL,
  UNIQUE (agent_id, public_key)
);
CREATE TABLE batch_seal (
  agent_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  digest BYTEA NOT NULL,
  prev BYTEA,
  signature BYTEA NOT NULL,
  key_id BIGINT NOT NULL,
  ts_shift_ms BIGINT,
  gaps BYTEA,
  PRIMARY KEY (agent_id, seq)
);
";

/// Version 7 (issue 20): the large time-keyed tables become natively partitioned by range
/// of their time key (`partitions.rs`: one partition per day, created by the compaction
/// pass, dropped by retention), each with a default partition that takes the rows of days
/// without one. The rows are copied over in this migration's transaction.
const V7: &str = "
ALTER TABLE raw RENAME TO raw_v5;
ALTER INDEX raw_pkey RENAME TO raw_v5_pkey;
ALTER INDEX raw_ts RENAME TO raw_v5_ts;
CREATE TABLE raw (
  series BIGINT NOT NULL,
  ts_ns BIGINT NOT NULL,
  ok BOOLEAN NOT NULL,
  duration_s DOUBLE PRECISION,
  reason SMALLINT,
  extra BYTEA,
  seq BIGINT,
  PRIMARY KEY (series, ts_ns)
) PARTITION BY RANGE (ts_ns);
CREATE INDEX raw_ts ON raw USING brin (ts_ns);
CREATE TABLE raw_default PARTITION OF raw DEFAULT;
INSERT INTO raw SELECT series, ts_ns, ok, duration_s, reason, extra, seq FROM raw_v5;
DROP TABLE raw_v5;

ALTER TABLE raw_block RENAME TO raw_block_v5;
ALTER INDEX raw_block_pkey RENAME TO raw_block_v5_pkey;
CREATE TABLE raw_block (
  series BIGINT NOT NULL,
  hour BIGINT NOT NULL,
  count BIGINT NOT NULL,
  seq_lo BIGINT,
  seq_hi BIGINT,
  data BYTEA NOT NULL,
  PRIMARY KEY (series, hour)
) PARTITION BY RANGE (hour);
CREATE TABLE raw_block_default PARTITION OF raw_block DEFAULT;
INSERT INTO raw_block SELECT series, hour, count, seq_lo, seq_hi, data FROM raw_block_v5;
DROP TABLE raw_block_v5;

ALTER TABLE minute_rollup RENAME TO minute_rollup_v5;
ALTER INDEX minute_rollup_pkey RENAME TO minute_rollup_v5_pkey;
ALTER INDEX minute_rollup_minute RENAME TO minute_rollup_v5_minute;
CREATE TABLE minute_rollup (
  series BIGINT NOT NULL,
  minute BIGINT NOT NULL,
  probes BIGINT NOT NULL,
  failures BIGINT NOT NULL,
  reasons BYTEA,
  latency BYTEA,
  PRIMARY KEY (series, minute)
) PARTITION BY RANGE (minute);
CREATE INDEX minute_rollup_minute ON minute_rollup USING brin (minute);
CREATE TABLE minute_rollup_default PARTITION OF minute_rollup DEFAULT;
INSERT INTO minute_rollup
  SELECT series, minute, probes, failures, reasons, latency FROM minute_rollup_v5;
DROP TABLE minute_rollup_v5;
";

/// Version 8: a maintenance window's reference (change ticket) as a field of its own.
const V8: &str = "ALTER TABLE maintenance ADD COLUMN reference TEXT;";

/// Version 9: report notes (comments, causes and actions per service and month); added
/// only, never edited. `due` is a civil date `YYYY-MM-DD`.
const V9: &str = "
CREATE TABLE report_note (
  id BIGSERIAL PRIMARY KEY,
  month TEXT NOT NULL,
  service TEXT NOT NULL,
  written_ns BIGINT NOT NULL,
  written_by TEXT NOT NULL,
  cause TEXT NOT NULL,
  action TEXT NOT NULL,
  owner TEXT,
  due TEXT
);
CREATE INDEX report_note_by_month ON report_note (month, service, written_ns);
";

/// Version 10 (issue 20): the durable late-write log, as in SQLite (`late.rs`): one row per
/// commit that wrote minutes more than an hour behind its receipt (the series as delta
/// varints), one per retention pass (`series` NULL: every series). What lets the figures'
/// saved state be trusted after a restart. And the feed of the change journal
/// (`journal.rs`): one row per commit (its agent and minutes), kept for minutes.
const V10: &str = "
CREATE TABLE recent_changes (
  seq BIGSERIAL PRIMARY KEY,
  agent_id BIGINT,
  from_minute BIGINT NOT NULL,
  to_minute BIGINT NOT NULL,
  logged_minute BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('recent_changes_floor', 0);
CREATE TABLE late_changes (
  seq BIGSERIAL PRIMARY KEY,
  from_minute BIGINT NOT NULL,
  to_minute BIGINT NOT NULL,
  logged_minute BIGINT NOT NULL,
  series BYTEA
);
INSERT INTO meta (key, value) VALUES ('late_changes_floor', 0);
";

/// Version 11: the definition history: each distinct service definition, from when it was
/// in force; added only, never edited.
const V11: &str = "
CREATE TABLE service_definition (
  id BIGSERIAL PRIMARY KEY,
  service TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  first_seen_ns BIGINT NOT NULL,
  definition TEXT NOT NULL,
  cause TEXT NOT NULL
);
CREATE INDEX service_definition_by_service ON service_definition (service, first_seen_ns);
";

/// Every migration, in order; index + 1 is the version it brings the database to.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

/// The SQL that builds a fresh database at `version` (tests of later migrations start there).
#[cfg(test)]
pub(super) fn schema_at(version: usize) -> String {
    let mut sql = String::from("CREATE TABLE schema_version (version INT NOT NULL);\n");
    for (i, m) in MIGRATIONS.iter().take(version).enumerate() {
        sql.push_str(m);
        sql.push_str(&format!(
            "\nINSERT INTO schema_version (version) VALUES ({});\n",
            i + 1
        ));
    }
    sql
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database to [`SCHEMA_VERSION`], or refuses one a newer collector migrated.
pub async fn migrate(client: &mut Client) -> Result<(), TxError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")
        .await?;
    let current: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_version", &[])
        .await?
        .try_get(0)?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, this collector knows up to \
             {SCHEMA_VERSION}: a newer collector migrated it; upgrade this collector"
        ))
        .into());
    }
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await?;
        let version = done as i32 + 1;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
