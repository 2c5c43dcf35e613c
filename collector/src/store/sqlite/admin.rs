//! Maintenance windows, agent status and retention.
//!
//! Invariants:
//! - Retention deletes in one transaction and raises the rollup horizon in the same
//!   transaction, so no later commit can resurrect part of a deleted minute; it raises the
//!   raw horizon (first minute whose raw rows are all kept) in it too.
//! - Cancelling a maintenance window twice keeps the first cancellation time.

use attest_config::wire::SpoolStatus;
use jiff::Timestamp;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::error::map_err;
use super::packs::trim_boundary_packs;
use super::thresholds::raw_horizon_minute;
use crate::store::keys::{batches_before, from_ns, parse_due, to_u64, ts_ns};
use crate::store::{
    AgentStatus, DefinitionRow, MaintenanceRow, NewMaintenance, NewNote, NoteRow, StoreError,
};

/// Every (agent, check) series the store knows, measured or only gapped.
pub(super) fn agent_checks(tx: &Transaction<'_>) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.name, s.check_id FROM series s JOIN agents a ON a.id = s.agent_id
             ORDER BY a.name, s.check_id",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(super) fn agents(tx: &Transaction<'_>) -> Result<Vec<AgentStatus>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT name, last_seen_ns, last_seq, clock_offset_ms, spool_depth,
                    spool_bytes, spool_dropped, spool_corrupt
             FROM agents WHERE last_seen_ns IS NOT NULL ORDER BY name",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                [
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ],
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (agent, seen, seq, offset, spool) = row.map_err(map_err)?;
        let spool = match spool {
            [Some(d), Some(b), Some(x), Some(c)] => Some(SpoolStatus {
                depth_measurements: to_u64(d),
                bytes: to_u64(b),
                dropped_total: to_u64(x),
                corrupt_records_total: to_u64(c),
            }),
            _ => None,
        };
        out.push(AgentStatus {
            agent,
            last_seen: from_ns(seen)?,
            last_seq: seq.map_or(0, to_u64),
            clock_offset_ms: offset.unwrap_or(0),
            spool,
        });
    }
    Ok(out)
}

pub(super) fn add_maintenance(
    conn: &Connection,
    w: &NewMaintenance<'_>,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let (s, e, n) = (ts_ns(w.start)?, ts_ns(w.end)?, ts_ns(now)?);
    conn.prepare_cached(
        "INSERT INTO maintenance
           (service, start_ns, end_ns, reason, created_ns, registered_by, reference)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            w.service,
            s,
            e,
            w.reason,
            n,
            w.registered_by,
            w.reference
        ])
    })
    .map_err(map_err)?;
    Ok(conn.last_insert_rowid())
}

/// Cancelling twice keeps the first cancellation time.
pub(super) fn cancel_maintenance(
    conn: &Connection,
    id: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let n = ts_ns(now)?;
    let changed = conn
        .prepare_cached(
            "UPDATE maintenance SET cancelled_ns = coalesce(cancelled_ns, ?2) WHERE id = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![id, n]))
        .map_err(map_err)?;
    if changed == 0 {
        return Err(StoreError::NotFound(id));
    }
    Ok(())
}

pub(super) fn list_maintenance(
    tx: &Transaction<'_>,
    service: Option<&str>,
) -> Result<Vec<MaintenanceRow>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, service, start_ns, end_ns, reason, created_ns, cancelled_ns, registered_by,
                    reference
             FROM maintenance WHERE ?1 IS NULL OR service = ?1
             ORDER BY start_ns, id",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([service], maintenance_row)
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, service, start, end, reason, created, cancelled, registered_by, reference) =
            row.map_err(map_err)?;
        out.push(MaintenanceRow {
            id,
            service,
            start: from_ns(start)?,
            end: from_ns(end)?,
            reason,
            created_at: from_ns(created)?,
            cancelled_at: cancelled.map(from_ns).transpose()?,
            registered_by,
            reference,
        });
    }
    Ok(out)
}

/// id, service, start, end, reason, created, cancelled (timestamps in ns), registered by,
/// reference.
type MaintenanceColumns = (
    i64,
    String,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn maintenance_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MaintenanceColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

pub(super) fn add_report_note(
    conn: &Connection,
    n: &NewNote<'_>,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let at = ts_ns(now)?;
    let due = n.due.map(|d| d.to_string());
    conn.prepare_cached(
        "INSERT INTO report_note
           (month, service, written_ns, written_by, cause, action, owner, due)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            n.month,
            n.service,
            at,
            n.written_by,
            n.cause,
            n.action,
            n.owner,
            due
        ])
    })
    .map_err(map_err)?;
    Ok(conn.last_insert_rowid())
}

pub(super) fn report_notes(
    tx: &Transaction<'_>,
    month: &str,
    service: Option<&str>,
) -> Result<Vec<NoteRow>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, month, service, written_ns, written_by, cause, action, owner, due
             FROM report_note WHERE month = ?1 AND (?2 IS NULL OR service = ?2)
             ORDER BY written_ns, id",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![month, service], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, month, service, at, written_by, cause, action, owner, due) =
            row.map_err(map_err)?;
        out.push(NoteRow {
            id,
            month,
            service,
            written_at: from_ns(at)?,
            written_by,
            cause,
            action,
            owner,
            due: due.as_deref().map(parse_due).transpose()?,
        });
    }
    Ok(out)
}

/// Deletes what retention expired, in one transaction.
///
/// Dedup after retention: batch rows are kept for as long as rollups (plus a day), so a
/// replayed batch is recognised as long as any minute it touched still exists; a replay
/// older than that finds its minutes behind the rollup horizon and is skipped anyway.
pub(super) fn delete_expired(
    conn: &mut Connection,
    raw_ns: i64,
    roll_ns: i64,
    horizon: i64,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let run = |sql: &str, p: i64| tx.execute(sql, [p]).map(|_| ()).map_err(map_err);
    run("DELETE FROM raw WHERE ts_ns < ?1", raw_ns)?;
    super::blocks::delete_expired(&tx, raw_ns)?;
    run("DELETE FROM minute_rollup WHERE minute < ?1", horizon)?;
    run(
        "DELETE FROM hour_pack WHERE hour < ?1",
        horizon.div_euclid(60),
    )?;
    trim_boundary_packs(&tx, horizon)?;
    run("DELETE FROM host_minute WHERE minute < ?1", horizon)?;
    run("DELETE FROM gaps WHERE to_minute < ?1", horizon)?;
    run("DELETE FROM minute_over WHERE minute < ?1", horizon)?;
    let raw_minute = raw_ns.div_euclid(60_000_000_000);
    super::late::retention(&tx, horizon, raw_minute, raw_minute)?;
    run(
        "DELETE FROM batches WHERE received_ns < ?1",
        batches_before(roll_ns),
    )?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('rollup_horizon_minute', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [horizon],
    )
    .map_err(map_err)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('raw_horizon_minute', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [raw_horizon_minute(raw_ns)],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

/// The service's latest definition first: the insert happens only when its digest differs.
pub(super) fn record_definition(conn: &Connection, d: &DefinitionRow) -> Result<bool, StoreError> {
    let at = ts_ns(d.first_seen)?;
    let n = conn
        .prepare_cached(
            "INSERT INTO service_definition (service, sha256, first_seen_ns, definition, cause)
             SELECT ?1, ?2, ?3, ?4, ?5
             WHERE NOT EXISTS (
               SELECT 1 FROM (SELECT sha256 FROM service_definition WHERE service = ?1
                              ORDER BY first_seen_ns DESC, id DESC LIMIT 1) AS latest
               WHERE latest.sha256 = ?2)",
        )
        .and_then(|mut stmt| stmt.execute(params![d.service, d.sha256, at, d.definition, d.cause]))
        .map_err(map_err)?;
    Ok(n > 0)
}

pub(super) fn definitions(
    tx: &Transaction<'_>,
    service: &str,
    (from, to): (Timestamp, Timestamp),
) -> Result<Vec<DefinitionRow>, StoreError> {
    let (from, to) = (ts_ns(from)?, ts_ns(to)?);
    let mut stmt = tx
        .prepare_cached(
            "SELECT service, sha256, first_seen_ns, definition, cause FROM service_definition
             WHERE service = ?1 AND first_seen_ns < ?3 AND (first_seen_ns >= ?2 OR id = (
               SELECT id FROM service_definition WHERE service = ?1 AND first_seen_ns < ?2
               ORDER BY first_seen_ns DESC, id DESC LIMIT 1))
             ORDER BY first_seen_ns, id",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![service, from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (service, sha256, at, definition, cause) = row.map_err(map_err)?;
        out.push(DefinitionRow {
            service,
            sha256,
            first_seen: from_ns(at)?,
            definition,
            cause,
        });
    }
    Ok(out)
}
