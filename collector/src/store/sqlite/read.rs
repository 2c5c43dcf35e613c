//! The read path: every read runs inside one read transaction on the reader connection
//! (one snapshot across the hot and packed tiers), so `/metrics` scrapes and reports never
//! wait for ingest.
//!
//! Invariants:
//! - The compact read ([`series_minutes`]) returns rows in (check, agent, minute) order,
//!   merging hot rows into packs minute by minute where both tiers hold a minute.
//! - Stored bytes that do not decode are reported as corruption, never skipped.

use std::collections::{BTreeMap, HashMap, HashSet};

use attest_config::wire::Measurement;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::blocks::{self, hour_of};
use super::error::{corrupt, map_err};
use super::packs::{cell_at, for_each_pack};
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes};
use crate::store::keys::{host_avg, rebuild_measurement, to_u64, ts_ns};
use crate::store::rollup::{self, PackDecoder, SeriesMinuteAgg};
use crate::store::{StoreCounts, StoreError};

pub(super) fn read_meta(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(map_err)
}

/// Checks by series id: `series id → (check, agent)`.
pub(super) fn series_of_checks(
    tx: &Transaction<'_>,
    checks: &[String],
) -> Result<HashMap<i64, (String, String)>, StoreError> {
    let mut out = HashMap::new();
    let mut stmt = tx
        .prepare_cached(
            "SELECT s.id, a.name FROM series s JOIN agents a ON a.id = s.agent_id
             WHERE s.check_id = ?1",
        )
        .map_err(map_err)?;
    let unique: HashSet<&String> = checks.iter().collect();
    for check in unique {
        let rows = stmt
            .query_map([check], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(map_err)?;
        for row in rows {
            let (id, agent) = row.map_err(map_err)?;
            out.insert(id, (check.clone(), agent));
        }
    }
    Ok(out)
}

pub(super) fn series_minutes(
    tx: &Transaction<'_>,
    checks: &[String],
    from_minute: i64,
    to_minute: i64,
) -> Result<SeriesMinutes, StoreError> {
    if to_minute <= from_minute {
        return Ok(SeriesMinutes::default());
    }
    let wanted = series_of_checks(tx, checks)?;
    let mut series: Vec<(i64, &String, &String)> =
        wanted.iter().map(|(id, (c, a))| (*id, c, a)).collect();
    series.sort_by(|x, y| (x.1, x.2).cmp(&(y.1, y.2)));
    let mut agents: Vec<String> = series.iter().map(|s| s.2.clone()).collect();
    agents.sort_unstable();
    agents.dedup();
    let mut out = SeriesMinutes {
        agents,
        ..SeriesMinutes::default()
    };
    let ids: Vec<i64> = series.iter().map(|s| s.0).collect();
    let mut hot = hot_cells_by_series(tx, &ids, from_minute, to_minute)?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT hour, data FROM hour_pack
             WHERE series = ?1 AND hour >= ?2 AND hour <= ?3 ORDER BY hour",
        )
        .map_err(map_err)?;
    DECODER.with_borrow_mut(|slot| {
        let decoder = match slot {
            Some(d) => d,
            None => slot.insert(PackDecoder::new().map_err(|e| corrupt("hour pack", e))?),
        };
        for (id, _, agent) in series {
            let a = out.agents.binary_search(agent).map_or(0, |i| i as u32);
            let mine = hot.remove(&id).unwrap_or_default();
            compact_series(
                &mut stmt,
                decoder,
                (id, a),
                (from_minute, to_minute),
                mine,
                &mut out,
            )?;
        }
        Ok(out)
    })
}

thread_local! {
    /// One pack decoder (zstd context and scratch) per reading thread: creating one per
    /// read cost about 3 % of a steady figures refresh.
    static DECODER: std::cell::RefCell<Option<PackDecoder>> = const { std::cell::RefCell::new(None) };
}

pub(super) fn gaps(
    tx: &Transaction<'_>,
    checks: &[String],
    from_minute: i64,
    to_minute: i64,
) -> Result<Vec<GapSpan>, StoreError> {
    let wanted = series_of_checks(tx, checks)?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT from_minute, to_minute, count FROM gaps
             WHERE series = ?1 AND from_minute < ?3 AND to_minute >= ?2",
        )
        .map_err(map_err)?;
    let mut out = Vec::new();
    for (series, (check, agent)) in &wanted {
        let rows = stmt
            .query_map(params![series, from_minute, to_minute], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(map_err)?;
        for row in rows {
            let (from, to, count) = row.map_err(map_err)?;
            out.push(GapSpan {
                agent: agent.clone(),
                check: check.clone(),
                from_minute: from,
                to_minute: to,
                count: to_u64(count),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.check, &a.agent, a.from_minute).cmp(&(&b.check, &b.agent, b.from_minute))
    });
    Ok(out)
}

pub(super) fn host_minutes(
    tx: &Transaction<'_>,
    from_minute: i64,
    to_minute: i64,
) -> Result<Vec<HostMinute>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.name, s.name, s.resource, h.minute, h.count, h.sum, h.min, h.max
             FROM host_minute h JOIN host_series s ON s.id = h.hseries
             JOIN agents a ON a.id = s.agent_id
             WHERE h.minute >= ?1 AND h.minute < ?2
             ORDER BY a.name, s.name, s.resource, h.minute",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![from_minute, to_minute], |r| {
            let count: i64 = r.get(4)?;
            let sum: f64 = r.get(5)?;
            Ok(HostMinute {
                agent: r.get(0)?,
                name: r.get(1)?,
                resource: r.get(2)?,
                minute: r.get(3)?,
                min: r.get(6)?,
                avg: host_avg(sum, count),
                max: r.get(7)?,
            })
        })
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(super) fn first_seen(
    tx: &Transaction<'_>,
    checks: &[String],
) -> Result<Option<i64>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT min(first_minute) FROM series WHERE check_id = ?1")
        .map_err(map_err)?;
    let mut first: Option<i64> = None;
    for check in checks {
        let m: Option<i64> = stmt.query_row([check], |r| r.get(0)).map_err(map_err)?;
        first = match (first, m) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(first)
}

pub(super) fn raw_measurements(
    tx: &Transaction<'_>,
    check: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, Measurement)>, StoreError> {
    let (from, to) = (ts_ns(from)?, ts_ns(to)?);
    let mut stmt = tx
        .prepare_cached(
            "SELECT r.ts_ns, a.name, r.ok, r.duration_s, r.reason, r.extra
             FROM raw r JOIN series s ON s.id = r.series JOIN agents a ON a.id = s.agent_id
             WHERE r.ts_ns >= ?1 AND r.ts_ns < ?2 AND s.check_id = ?3
             ORDER BY r.ts_ns, a.name",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![from, to, check], raw_row)
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (ts, agent, ok, duration, reason, extra) = row.map_err(map_err)?;
        out.push((
            ts,
            agent,
            rebuild_measurement(
                check,
                ts,
                ok,
                duration,
                reason.map(to_u64),
                extra.as_deref(),
            )?,
        ));
    }
    // Older hours are in blocks (`blocks`); no instant is in both a row and a block.
    let wanted = series_of_checks(tx, &[check.to_owned()])?;
    let checks = wanted.iter().map(|(id, (c, _))| (*id, c.clone())).collect();
    let hours = (hour_of(from), hour_of(to.saturating_sub(1)));
    for (id, e) in blocks::read_blocks(tx, &checks, hours, None)? {
        if e.ns >= from
            && e.ns < to
            && let Some((_, agent)) = wanted.get(&id)
        {
            out.push((e.ns, agent.clone(), e.m));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out.into_iter().map(|(_, a, m)| (a, m)).collect())
}

/// The measurements stored from batch `seq` of `agent`, ordered by (check, ts): the raw
/// rows inside the batch's span of instants (kept with its batch row) whose seq is `seq`.
pub(super) fn batch_measurements(
    tx: &Transaction<'_>,
    agent: &str,
    seq: u64,
) -> Result<Vec<Measurement>, StoreError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(Vec::new());
    };
    let span: Option<(i64, Option<i64>, Option<i64>)> = tx
        .prepare_cached(
            "SELECT a.id, b.first_ns, b.last_ns FROM agents a
             JOIN batches b ON b.agent_id = a.id AND b.seq = ?2 WHERE a.name = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![agent, seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(map_err)?;
    let Some((agent_id, Some(first), Some(last))) = span else {
        return Ok(Vec::new());
    };
    // CROSS JOIN keeps raw the outer loop: a range scan of its time-led key.
    let mut stmt = tx
        .prepare_cached(
            "SELECT r.ts_ns, s.check_id, r.ok, r.duration_s, r.reason, r.extra
             FROM raw r CROSS JOIN series s ON s.id = r.series
             WHERE r.ts_ns >= ?1 AND r.ts_ns <= ?2 AND r.seq = ?3 AND s.agent_id = ?4",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map(params![first, last, seq, agent_id], raw_row)
        .map_err(map_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (ts, check, ok, duration, reason, extra) = row.map_err(map_err)?;
        out.push(rebuild_measurement(
            &check,
            ts,
            ok,
            duration,
            reason.map(to_u64),
            extra.as_deref(),
        )?);
    }
    let series: HashMap<i64, String> = tx
        .prepare_cached("SELECT id, check_id FROM series WHERE agent_id = ?1")
        .and_then(|mut s| {
            s.query_map([agent_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(map_err)?;
    let hours = (hour_of(first), hour_of(last));
    for (_, e) in blocks::read_blocks(tx, &series, hours, Some(seq))? {
        if e.seq == Some(seq) && e.ns >= first && e.ns <= last {
            out.push(e.m);
        }
    }
    out.sort_by(|a, b| (&a.check, a.ts).cmp(&(&b.check, b.ts)));
    Ok(out)
}

pub(super) fn counts(tx: &Transaction<'_>) -> Result<StoreCounts, StoreError> {
    Ok(StoreCounts {
        batches: read_meta(tx, "batches_total")?.map_or(0, to_u64),
        measurements: read_meta(tx, "measurements_total")?.map_or(0, to_u64),
    })
}

/// Hot cells of `series` with minutes in `[from, to)`, by series and minute.
///
/// The hot table is minute-led (ingest appends at its right edge), so filtering it by series
/// would scan every series' rows; instead this finds the hot span inside the range and seeks
/// each (minute, series) key in it. After compaction the span is about two hours.
fn hot_cells_by_series(
    tx: &Transaction<'_>,
    series: &[i64],
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, BTreeMap<i64, SeriesMinuteAgg>>, StoreError> {
    let mut out = BTreeMap::new();
    let edge = |sql: &str| -> Result<Option<i64>, StoreError> {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.query_row(params![from, to], |r| r.get(0)).optional())
            .map_err(map_err)
    };
    let first = edge(
        "SELECT minute FROM minute_rollup WHERE minute >= ?1 AND minute < ?2
         ORDER BY minute LIMIT 1",
    )?;
    let last = edge(
        "SELECT minute FROM minute_rollup WHERE minute >= ?1 AND minute < ?2
         ORDER BY minute DESC LIMIT 1",
    )?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(out);
    };
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE m(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM m WHERE x < ?2)
             SELECT m.x, r.probes, r.failures, r.reasons, r.latency
             FROM m JOIN minute_rollup r ON r.minute = m.x AND r.series = ?3",
        )
        .map_err(map_err)?;
    for id in series {
        let mut rows = stmt.query(params![first, last, id]).map_err(map_err)?;
        let mut mine = BTreeMap::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let minute: i64 = r.get(0).map_err(map_err)?;
            let cell = cell_at(r, 1)?;
            mine.insert(minute, cell);
        }
        if !mine.is_empty() {
            out.insert(*id, mine);
        }
    }
    Ok(out)
}

fn push_cell(out: &mut SeriesMinutes, minute: i64, agent: u32, cell: &SeriesMinuteAgg) {
    out.push(
        minute,
        agent,
        u32::try_from(cell.probes).unwrap_or(u32::MAX),
        u32::try_from(cell.failures).unwrap_or(u32::MAX),
        cell.top_reason(),
        &cell.latency,
    );
}

/// Appends one series' rows in `[from, to)`: packs decoded straight into rows, except the
/// hours that also have hot cells (late data after compaction), which are merged cell by
/// cell first; hot cells of hours without a pack come last.
fn compact_series(
    stmt: &mut rusqlite::CachedStatement<'_>,
    decoder: &mut PackDecoder,
    (series, agent): (i64, u32),
    (from, to): (i64, i64),
    mut hot: BTreeMap<i64, SeriesMinuteAgg>,
    out: &mut SeriesMinutes,
) -> Result<(), StoreError> {
    let start = out.rows.len();
    for_each_pack(stmt, series, (from, to), |hour, data| {
        let late: Vec<i64> = hot
            .range(hour * 60..hour * 60 + 60)
            .map(|(m, _)| *m)
            .collect();
        if late.is_empty() {
            return decoder
                .decode_compact(data, hour, (from, to), agent, out)
                .map_err(|e| corrupt("hour pack", e));
        }
        let mut pack = rollup::decode_pack(data).map_err(|e| corrupt("hour pack", e))?;
        for minute in late {
            if let Some(cell) = hot.remove(&minute) {
                let offset = u8::try_from(minute - hour * 60).unwrap_or(0);
                pack.entry(offset).or_default().merge(&cell);
            }
        }
        for (offset, cell) in &pack {
            let minute = hour * 60 + i64::from(*offset);
            if minute >= from && minute < to {
                push_cell(out, minute, agent, cell);
            }
        }
        Ok(())
    })?;
    let unsorted = !hot.is_empty();
    for (minute, cell) in &hot {
        push_cell(out, *minute, agent, cell);
    }
    if unsorted && let Some(rows) = out.rows.get_mut(start..) {
        rows.sort_by_key(|r| r.minute);
    }
    Ok(())
}

/// ts, agent (or check), ok, duration, reason code, extra details.
type RawColumns = (i64, String, bool, Option<f64>, Option<i64>, Option<Vec<u8>>);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}
