//! Reads of the PostgreSQL store.
//!
//! Invariants:
//! - Each read is one statement (one snapshot), or one REPEATABLE READ, READ ONLY
//!   transaction when it needs two.
//! - Column values are read with `try_get`: a schema or type mismatch is an error, never a
//!   panic; stored codec bytes that do not decode are reported as corruption.

use std::collections::HashMap;

use attest_config::wire::SpoolStatus;
use tokio_postgres::{Client, IsolationLevel, Row};

use super::TxError;
use super::blocks::{hour_of, read_blocks};
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes};
use crate::store::keys::{from_ns, host_avg, rebuild_measurement, to_u64};
use crate::store::rollup::SeriesMinuteAgg;
use crate::store::{AgentStatus, MaintenanceRow, Measurement, NoteRow, StoreError};

/// Rollup rows of the checks in `[from, to)`, ordered by check, agent and minute.
const ROLLUPS_SQL: &str = "
    SELECT s.check_id, a.name, r.minute, r.probes, r.failures, r.reasons, r.latency
    FROM minute_rollup r JOIN series s ON s.id = r.series JOIN agents a ON a.id = s.agent_id
    WHERE s.check_id = ANY($1) AND r.minute >= $2 AND r.minute < $3
    ORDER BY s.check_id, a.name, r.minute";

/// The cell stored in columns `start..start + 4` (probes, failures, reasons, latency).
pub(super) fn cell_of(r: &Row, start: usize) -> Result<SeriesMinuteAgg, TxError> {
    let probes: i64 = r.try_get(start)?;
    let failures: i64 = r.try_get(start + 1)?;
    let reasons: Option<&[u8]> = r.try_get(start + 2)?;
    let latency: Option<&[u8]> = r.try_get(start + 3)?;
    SeriesMinuteAgg::from_row(to_u64(probes), to_u64(failures), reasons, latency)
        .map_err(|e| StoreError::Backend(format!("minute rollup: {e}")).into())
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[cfg(any(test, feature = "test-support"))]
pub(super) async fn series_minute_details(
    client: &mut Client,
    checks: &[String],
    from: i64,
    to: i64,
) -> Result<Vec<crate::minutes::SeriesMinuteDetail>, TxError> {
    let rows = client.query(ROLLUPS_SQL, &[&checks, &from, &to]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let cell = cell_of(r, 3)?;
        out.push(crate::minutes::SeriesMinuteDetail {
            check: r.try_get(0)?,
            agent: r.try_get(1)?,
            minute: r.try_get(2)?,
            probes: clamp_u32(cell.probes),
            failures: clamp_u32(cell.failures),
            top_reason: cell.top_reason().map(|x| x.as_str().to_owned()),
            latency: cell.latency.to_histogram(),
        });
    }
    Ok(out)
}

/// The compact read: agents are those of every series of the checks (as in SQLite), rows
/// come in (check, agent, minute) order.
pub(super) async fn series_minutes(
    client: &mut Client,
    checks: &[String],
    from: i64,
    to: i64,
) -> Result<SeriesMinutes, TxError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let names = tx
        .query(
            "SELECT DISTINCT a.name FROM series s JOIN agents a ON a.id = s.agent_id
             WHERE s.check_id = ANY($1) ORDER BY a.name",
            &[&checks],
        )
        .await?;
    let mut out = SeriesMinutes {
        agents: names
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?,
        ..SeriesMinutes::default()
    };
    let rows = tx.query(ROLLUPS_SQL, &[&checks, &from, &to]).await?;
    out.rows.reserve(rows.len());
    for r in &rows {
        let agent: &str = r.try_get(1)?;
        let index = out
            .agents
            .binary_search_by(|a| a.as_str().cmp(agent))
            .map_err(|_| StoreError::Backend(format!("agent {agent:?} has rows but no series")))?;
        let cell = cell_of(r, 3)?;
        out.push(
            r.try_get(2)?,
            u32::try_from(index).unwrap_or(u32::MAX),
            clamp_u32(cell.probes),
            clamp_u32(cell.failures),
            cell.top_reason(),
            &cell.latency,
        );
    }
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn gaps(
    client: &mut Client,
    checks: &[String],
    from: i64,
    to: i64,
) -> Result<Vec<GapSpan>, TxError> {
    let rows = client
        .query(
            "SELECT a.name, s.check_id, g.from_minute, g.to_minute, g.count
             FROM gaps g JOIN series s ON s.id = g.series JOIN agents a ON a.id = s.agent_id
             WHERE s.check_id = ANY($1) AND g.from_minute < $3 AND g.to_minute >= $2
             ORDER BY s.check_id, a.name, g.from_minute",
            &[&checks, &from, &to],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(GapSpan {
                agent: r.try_get(0)?,
                check: r.try_get(1)?,
                from_minute: r.try_get(2)?,
                to_minute: r.try_get(3)?,
                count: to_u64(r.try_get(4)?),
            })
        })
        .collect()
}

pub(super) async fn host_minutes(
    client: &mut Client,
    from: i64,
    to: i64,
) -> Result<Vec<HostMinute>, TxError> {
    let rows = client
        .query(
            "SELECT a.name, s.name, s.resource, h.minute, h.count, h.sum, h.min, h.max
             FROM host_minute h JOIN host_series s ON s.id = h.hseries
             JOIN agents a ON a.id = s.agent_id
             WHERE h.minute >= $1 AND h.minute < $2
             ORDER BY a.name, s.name, s.resource, h.minute",
            &[&from, &to],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let count: i64 = r.try_get(4)?;
            let sum: f64 = r.try_get(5)?;
            Ok(HostMinute {
                agent: r.try_get(0)?,
                name: r.try_get(1)?,
                resource: r.try_get(2)?,
                minute: r.try_get(3)?,
                min: r.try_get(6)?,
                avg: host_avg(sum, count),
                max: r.try_get(7)?,
            })
        })
        .collect()
}

pub(super) async fn agents(client: &mut Client) -> Result<Vec<AgentStatus>, TxError> {
    let rows = client
        .query(
            "SELECT name, last_seen_ns, last_seq, clock_offset_ms, spool_depth, spool_bytes,
                    spool_dropped, spool_corrupt
             FROM agents WHERE last_seen_ns IS NOT NULL ORDER BY name",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let spool: [Option<i64>; 4] = [r.try_get(4)?, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?];
        let spool = match spool {
            [Some(d), Some(b), Some(x), Some(c)] => Some(SpoolStatus {
                depth_measurements: to_u64(d),
                bytes: to_u64(b),
                dropped_total: to_u64(x),
                corrupt_records_total: to_u64(c),
            }),
            _ => None,
        };
        let last_seq: Option<i64> = r.try_get(2)?;
        let offset: Option<i64> = r.try_get(3)?;
        out.push(AgentStatus {
            agent: r.try_get(0)?,
            last_seen: from_ns(r.try_get(1)?)?,
            last_seq: last_seq.map_or(0, to_u64),
            clock_offset_ms: offset.unwrap_or(0),
            spool,
        });
    }
    Ok(out)
}

pub(super) async fn maintenance(
    client: &mut Client,
    service: Option<&str>,
) -> Result<Vec<MaintenanceRow>, TxError> {
    let rows = client
        .query(
            "SELECT id, service, start_ns, end_ns, reason, created_ns, cancelled_ns, registered_by,
                    reference
             FROM maintenance WHERE $1::text IS NULL OR service = $1
             ORDER BY start_ns, id",
            &[&service],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let cancelled: Option<i64> = r.try_get(6)?;
        out.push(MaintenanceRow {
            id: r.try_get(0)?,
            service: r.try_get(1)?,
            start: from_ns(r.try_get(2)?)?,
            end: from_ns(r.try_get(3)?)?,
            reason: r.try_get(4)?,
            created_at: from_ns(r.try_get(5)?)?,
            cancelled_at: cancelled.map(from_ns).transpose()?,
            registered_by: r.try_get(7)?,
            reference: r.try_get(8)?,
        });
    }
    Ok(out)
}

pub(super) async fn definitions(
    client: &mut Client,
    service: &str,
    (from, to): (i64, i64),
) -> Result<Vec<crate::store::DefinitionRow>, TxError> {
    let rows = client
        .query(
            "SELECT service, sha256, first_seen_ns, definition, cause FROM service_definition
             WHERE service = $1 AND first_seen_ns < $3 AND (first_seen_ns >= $2 OR id = (
               SELECT id FROM service_definition WHERE service = $1 AND first_seen_ns < $2
               ORDER BY first_seen_ns DESC, id DESC LIMIT 1))
             ORDER BY first_seen_ns, id",
            &[&service, &from, &to],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(crate::store::DefinitionRow {
            service: r.try_get(0)?,
            sha256: r.try_get(1)?,
            first_seen: from_ns(r.try_get(2)?)?,
            definition: r.try_get(3)?,
            cause: r.try_get(4)?,
        });
    }
    Ok(out)
}

pub(super) async fn report_notes(
    client: &mut Client,
    month: &str,
    service: Option<&str>,
) -> Result<Vec<NoteRow>, TxError> {
    let rows = client
        .query(
            "SELECT id, month, service, written_ns, written_by, cause, action, owner, due
             FROM report_note WHERE month = $1 AND ($2::text IS NULL OR service = $2)
             ORDER BY written_ns, id",
            &[&month, &service],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let due: Option<String> = r.try_get(8)?;
        out.push(NoteRow {
            id: r.try_get(0)?,
            month: r.try_get(1)?,
            service: r.try_get(2)?,
            written_at: from_ns(r.try_get(3)?)?,
            written_by: r.try_get(4)?,
            cause: r.try_get(5)?,
            action: r.try_get(6)?,
            owner: r.try_get(7)?,
            due: due
                .as_deref()
                .map(crate::store::keys::parse_due)
                .transpose()?,
        });
    }
    Ok(out)
}

pub(super) async fn raw(
    client: &mut Client,
    check: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(String, Measurement)>, TxError> {
    // One snapshot for rows and blocks: a compaction in between moves rows into blocks.
    let tx = snapshot(client).await?;
    let rows = tx
        .query(
            "SELECT r.ts_ns, a.name, r.ok, r.duration_s, r.reason, r.extra
             FROM raw r JOIN series s ON s.id = r.series JOIN agents a ON a.id = s.agent_id
             WHERE s.check_id = $1 AND r.ts_ns >= $2 AND r.ts_ns < $3",
            &[&check, &from, &to],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let extra: Option<&[u8]> = r.try_get(5)?;
        let reason: Option<i16> = r.try_get(4)?;
        let ns: i64 = r.try_get(0)?;
        let m = rebuild_measurement(
            check,
            ns,
            r.try_get(2)?,
            r.try_get(3)?,
            reason.map(|c| u64::try_from(c).unwrap_or(u64::MAX)),
            extra,
        )?;
        out.push((ns, r.try_get::<_, String>(1)?, m));
    }
    let mut agents: HashMap<i64, String> = HashMap::new();
    let mut series: HashMap<i64, String> = HashMap::new();
    for r in tx
        .query(
            "SELECT s.id, a.name FROM series s JOIN agents a ON a.id = s.agent_id
             WHERE s.check_id = $1",
            &[&check],
        )
        .await?
    {
        let id: i64 = r.try_get(0)?;
        agents.insert(id, r.try_get(1)?);
        series.insert(id, check.to_owned());
    }
    let hours = (hour_of(from), hour_of(to.saturating_sub(1)));
    for (id, e) in read_blocks(&tx, &series, hours, None).await? {
        if e.ns >= from
            && e.ns < to
            && let Some(agent) = agents.get(&id)
        {
            out.push((e.ns, agent.clone(), e.m));
        }
    }
    tx.commit().await?;
    // Sorted here, not by the server: its collation may not order text by bytes.
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out.into_iter().map(|(_, a, m)| (a, m)).collect())
}

/// A read-only repeatable-read transaction: one snapshot across statements.
async fn snapshot(client: &mut Client) -> Result<tokio_postgres::Transaction<'_>, TxError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// The measurements stored from batch `seq` of `agent`, ordered by (check, ts): the raw
/// rows of the agent's series inside the batch's span of instants whose seq is `seq`.
pub(super) async fn batch(
    client: &mut Client,
    agent: &str,
    seq: i64,
) -> Result<Vec<Measurement>, TxError> {
    let tx = snapshot(client).await?;
    let rows = tx
        .query(
            "SELECT s.check_id, r.ts_ns, r.ok, r.duration_s, r.reason, r.extra
             FROM agents a JOIN batches b ON b.agent_id = a.id AND b.seq = $2
             JOIN series s ON s.agent_id = a.id
             JOIN raw r ON r.series = s.id AND r.ts_ns BETWEEN b.first_ns AND b.last_ns
                        AND r.seq = $2
             WHERE a.name = $1",
            &[&agent, &seq],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let check: &str = r.try_get(0)?;
        let extra: Option<&[u8]> = r.try_get(5)?;
        let reason: Option<i16> = r.try_get(4)?;
        out.push(rebuild_measurement(
            check,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            reason.map(|c| u64::try_from(c).unwrap_or(u64::MAX)),
            extra,
        )?);
    }
    let span = tx
        .query_opt(
            "SELECT a.id, b.first_ns, b.last_ns FROM agents a
             JOIN batches b ON b.agent_id = a.id AND b.seq = $2 WHERE a.name = $1",
            &[&agent, &seq],
        )
        .await?;
    if let Some(r) = span {
        let (agent_id, first, last): (i64, Option<i64>, Option<i64>) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if let (Some(first), Some(last)) = (first, last) {
            let series: HashMap<i64, String> = tx
                .query(
                    "SELECT id, check_id FROM series WHERE agent_id = $1",
                    &[&agent_id],
                )
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, TxError>>()?;
            let hours = (hour_of(first), hour_of(last));
            for (_, e) in read_blocks(&tx, &series, hours, Some(seq)).await? {
                if e.seq == Some(seq) && e.ns >= first && e.ns <= last {
                    out.push(e.m);
                }
            }
        }
    }
    tx.commit().await?;
    // Sorted here, not by the server: its collation may not order text by bytes.
    out.sort_by(|a, b| (&a.check, a.ts).cmp(&(&b.check, b.ts)));
    Ok(out)
}
