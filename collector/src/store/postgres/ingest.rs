//! The commit path of the PostgreSQL store: `commit_batch`, one transaction.
//!
//! Invariants:
//! - Every commit holds a share lock on the rollup-horizon row for its whole transaction and
//!   skips minutes behind the horizon; retention raises that row before it deletes
//!   (`retention.rs`), so a commit never writes a minute that retention is deleting (no
//!   partial minute resurrects).
//! - Only raw rows that this transaction newly inserted (`RETURNING`) reach rollups, exact
//!   threshold counts, host minutes, totals and `first_minute`; gaps are added only for a
//!   new batch row.
//! - Rows are written in key order (raw by (series, ts), rollups by (series, minute)) so
//!   that concurrent commits rarely deadlock; when they do, the caller retries.
//! - Statements are set-based (`unnest` arrays): round trips per commit do not grow with
//!   the batch size.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use attest_config::wire::{Measurement, SpoolStatus};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

use super::blocks::{self, hour_of};
use super::{TxError, thresholds};
use crate::store::codec;
use crate::store::keys::{gap_span, minute_of, to_i64, ts_ns};
use crate::store::late::LateGroup;
use crate::store::rollup::SeriesMinuteAgg;
use crate::store::{CommitOutcome, IngestBatch, StoreError};

/// Per-minute aggregate of one host value; sum and count keep merges exact.
#[derive(Debug, Clone, Copy)]
struct HostAgg {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
}

impl HostAgg {
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// A measurement that may be stored: its index in the batch, series and instant.
struct Candidate {
    index: usize,
    series: i64,
    ns: i64,
}

pub(super) async fn commit(client: &mut Client, b: &IngestBatch) -> Result<CommitOutcome, TxError> {
    let received_ns = ts_ns(b.received_at)?;
    let seq = i64::try_from(b.seq).map_err(|_| {
        StoreError::Backend(format!("batch seq {} exceeds the storable range", b.seq))
    })?;
    let tx = client.transaction().await?;
    let (mut horizon, mut blocked) = (i64::MIN, i64::MIN);
    for r in tx
        .query(
            "SELECT key, value FROM meta
             WHERE key IN ('raw_block_hour', 'rollup_horizon_minute') ORDER BY key FOR SHARE",
            &[],
        )
        .await?
    {
        match r.try_get::<_, &str>(0)? {
            "raw_block_hour" => blocked = r.try_get(1)?,
            _ => horizon = r.try_get(1)?,
        }
    }
    let agent = ensure_agent(&tx, &b.agent).await?;
    let (first_ns, last_ns) = crate::store::keys::batch_span(&b.measurements)?;
    let fresh = tx
        .execute(
            "INSERT INTO batches (agent_id, seq, received_ns, first_ns, last_ns)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&agent, &seq, &received_ns, &first_ns, &last_ns],
        )
        .await?;
    let mut out = CommitOutcome {
        duplicate_batch: fresh == 0,
        stored: 0,
        duplicate_measurements: 0,
    };
    if out.duplicate_batch {
        tx.commit().await?;
        return Ok(out);
    }
    if let Some(seal) = &b.seal {
        super::seals::insert(&tx, agent, seq, received_ns, seal).await?;
    }
    let checks: BTreeSet<&str> = b
        .measurements
        .iter()
        .map(|m| m.check.as_str())
        .chain(b.gaps.iter().map(|g| g.check.as_str()))
        .collect();
    let series = ensure_series(&tx, agent, &checks).await?;
    let candidates = candidates(b, &series, horizon, &mut out)?;
    let candidates = drop_blocked(&tx, candidates, blocked, &mut out).await?;
    let new = insert_raw(&tx, b, seq, &candidates).await?;
    let names: Vec<&str> = checks.iter().copied().collect();
    let tracked = thresholds::tracked(&tx, &names).await?;
    let mut over = thresholds::OverCounts::new();
    let mut cells: BTreeMap<(i64, i64), SeriesMinuteAgg> = BTreeMap::new();
    let mut first: BTreeMap<i64, i64> = BTreeMap::new();
    let mut new_ms = Vec::with_capacity(new.len());
    for c in &candidates {
        if !new.contains(&(c.series, c.ns)) {
            out.duplicate_measurements += 1;
            continue;
        }
        let Some(m) = b.measurements.get(c.index) else {
            continue;
        };
        out.stored += 1;
        let minute = minute_of(c.ns);
        cells
            .entry((c.series, minute))
            .or_default()
            .add_measurement(m);
        if let Some(ts) = tracked.get(&m.check) {
            thresholds::count(&mut over, (c.series, minute), m, ts);
        }
        first
            .entry(c.series)
            .and_modify(|f| *f = (*f).min(minute))
            .or_insert(minute);
        new_ms.push((minute, m));
    }
    // A gap means the agent ran the check and lost results: the check existed then.
    for g in &b.gaps {
        let from = minute_of(ts_ns(g.from)?).min(minute_of(ts_ns(g.to)?));
        if let Some(&s) = series.get(&g.check) {
            first
                .entry(s)
                .and_modify(|f| *f = (*f).min(from))
                .or_insert(from);
        }
    }
    let late = late_writes(b, &cells, &series, horizon)?;
    let written = written_minutes(b, &cells, horizon)?;
    lower_first_minutes(&tx, &first).await?;
    upsert_cells(&tx, &cells).await?;
    thresholds::add(&tx, &over).await?;
    upsert_hosts(&tx, agent, &new_ms).await?;
    insert_gaps(&tx, &series, horizon, b).await?;
    update_agent(&tx, agent, seq, received_ns, b, out.stored).await?;
    // Last: the log's lock is taken after every row lock of this commit (`late.rs`).
    super::late::log(&tx, late).await?;
    if let Some(span) = written {
        let received_minute = b.received_at.as_second().div_euclid(60);
        super::journal::log(&tx, agent, span, received_minute).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The late writes of a new batch: the minute cells its new measurements reach and the
/// spans of its gaps, as `insert_gaps` writes them.
fn late_writes(
    b: &IngestBatch,
    cells: &BTreeMap<(i64, i64), SeriesMinuteAgg>,
    series: &HashMap<String, i64>,
    horizon: i64,
) -> Result<LateGroup, StoreError> {
    let received_minute = b.received_at.as_second().div_euclid(60);
    let mut late = LateGroup::default();
    for &(s, minute) in cells.keys() {
        late.note(s, minute, minute + 1, received_minute);
    }
    for g in &b.gaps {
        if let (Some((from, to)), Some(&s)) = (gap_span(g, horizon)?, series.get(&g.check)) {
            late.note(s, from, to.saturating_add(1), received_minute);
        }
    }
    Ok(late)
}

/// The minutes `[from, to)` a new batch writes (its new measurements' cells and its gaps),
/// for the change journal; `None` when it writes none.
fn written_minutes(
    b: &IngestBatch,
    cells: &BTreeMap<(i64, i64), SeriesMinuteAgg>,
    horizon: i64,
) -> Result<Option<(i64, i64)>, StoreError> {
    let mut span: Option<(i64, i64)> = None;
    let mut add = |from: i64, to: i64| {
        span = Some(span.map_or((from, to), |(a, z)| (a.min(from), z.max(to))));
    };
    for &(_, minute) in cells.keys() {
        add(minute, minute + 1);
    }
    for g in &b.gaps {
        if let Some((from, to)) = gap_span(g, horizon)? {
            add(from, to.saturating_add(1));
        }
    }
    Ok(span)
}

/// The agent's id, creating the row on first contact. Insert and select are separate
/// statements: under READ COMMITTED a row inserted by a concurrent transaction becomes
/// visible only to a statement that starts after it committed.
async fn ensure_agent(tx: &Transaction<'_>, name: &str) -> Result<i64, TxError> {
    let select = "SELECT id FROM agents WHERE name = $1";
    if let Some(row) = tx.query_opt(select, &[&name]).await? {
        return Ok(row.try_get(0)?);
    }
    tx.execute(
        "INSERT INTO agents (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .await?;
    Ok(tx.query_one(select, &[&name]).await?.try_get(0)?)
}

/// Series ids of the agent's `checks`, creating missing ones.
async fn ensure_series(
    tx: &Transaction<'_>,
    agent: i64,
    checks: &BTreeSet<&str>,
) -> Result<HashMap<String, i64>, TxError> {
    let names: Vec<&str> = checks.iter().copied().collect();
    let select = "SELECT check_id, id FROM series WHERE agent_id = $1 AND check_id = ANY($2)";
    let mut ids = id_map(tx.query(select, &[&agent, &names]).await?)?;
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !ids.contains_key(*n))
        .collect();
    if missing.is_empty() {
        return Ok(ids);
    }
    tx.execute(
        "INSERT INTO series (agent_id, check_id)
         SELECT $1, c FROM unnest($2::text[]) AS c ORDER BY c ON CONFLICT DO NOTHING",
        &[&agent, &missing],
    )
    .await?;
    ids.extend(id_map(tx.query(select, &[&agent, &missing]).await?)?);
    Ok(ids)
}

fn id_map(rows: Vec<tokio_postgres::Row>) -> Result<HashMap<String, i64>, TxError> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Measurements that may be new, unique per (series, ts) and sorted by that key. Those
/// behind the rollup horizon (their minute was deleted by retention; counting them would
/// resurrect part of it) and repeats inside the batch are counted as duplicates here.
fn candidates(
    b: &IngestBatch,
    series: &HashMap<String, i64>,
    horizon: i64,
    out: &mut CommitOutcome,
) -> Result<Vec<Candidate>, StoreError> {
    let mut seen = HashSet::with_capacity(b.measurements.len());
    let mut list = Vec::with_capacity(b.measurements.len());
    for (index, m) in b.measurements.iter().enumerate() {
        let ns = ts_ns(m.ts)?;
        let Some(&id) = series.get(&m.check) else {
            return Err(StoreError::Backend(format!(
                "series of check {:?} is missing after creation; retry the batch",
                m.check
            )));
        };
        if minute_of(ns) < horizon || !seen.insert((id, ns)) {
            out.duplicate_measurements += 1;
            continue;
        }
        list.push(Candidate {
            index,
            series: id,
            ns,
        });
    }
    list.sort_by_key(|c| (c.series, c.ns));
    Ok(list)
}

/// Drops the candidates already stored and since compacted into their hour's raw block
/// (hours before `blocked`), counting them as duplicates.
async fn drop_blocked(
    tx: &Transaction<'_>,
    candidates: Vec<Candidate>,
    blocked: i64,
    out: &mut CommitOutcome,
) -> Result<Vec<Candidate>, TxError> {
    let keys: BTreeSet<(i64, i64)> = candidates
        .iter()
        .map(|c| (c.series, hour_of(c.ns)))
        .filter(|k| k.1 < blocked)
        .collect();
    if keys.is_empty() {
        return Ok(candidates);
    }
    let keys: Vec<(i64, i64)> = keys.into_iter().collect();
    let held = blocks::blocked_instants(tx, &keys).await?;
    let mut kept = Vec::with_capacity(candidates.len());
    for c in candidates {
        if held
            .get(&(c.series, hour_of(c.ns)))
            .is_some_and(|s| s.contains(&c.ns))
        {
            out.duplicate_measurements += 1;
        } else {
            kept.push(c);
        }
    }
    Ok(kept)
}

/// Inserts the candidates' raw rows; returns the keys that were new.
async fn insert_raw(
    tx: &Transaction<'_>,
    b: &IngestBatch,
    seq: i64,
    candidates: &[Candidate],
) -> Result<HashSet<(i64, i64)>, TxError> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let n = candidates.len();
    let (mut series, mut ts, mut ok) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut dur, mut reason, mut extra) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for c in candidates {
        let Some(m) = b.measurements.get(c.index) else {
            continue;
        };
        series.push(c.series);
        ts.push(c.ns);
        ok.push(m.ok);
        dur.push(m.duration_seconds);
        reason.push(m.reason.map(|r| i16::from(codec::reason_code(r))));
        extra.push(crate::store::extra::encode(m));
    }
    let rows = tx
        .query(
            "INSERT INTO raw (series, ts_ns, ok, duration_s, reason, extra, seq)
             SELECT u.*, $7::int8 FROM unnest($1::int8[], $2::int8[], $3::bool[],
                                  $4::float8[], $5::int2[], $6::bytea[]) AS u
             ON CONFLICT DO NOTHING RETURNING series, ts_ns",
            &[&series, &ts, &ok, &dur, &reason, &extra, &seq],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Lowers `first_minute` of series whose new data is older than what they had; rows that
/// need no change are not touched (and not locked).
async fn lower_first_minutes(
    tx: &Transaction<'_>,
    first: &BTreeMap<i64, i64>,
) -> Result<(), TxError> {
    if first.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = first.keys().copied().collect();
    let minutes: Vec<i64> = first.values().copied().collect();
    tx.execute(
        "UPDATE series s SET first_minute = u.m
         FROM unnest($1::int8[], $2::int8[]) AS u(id, m)
         WHERE s.id = u.id AND (s.first_minute IS NULL OR s.first_minute > u.m)",
        &[&ids, &minutes],
    )
    .await?;
    Ok(())
}

/// Column arrays of rollup rows, for `unnest`.
#[derive(Default)]
struct CellColumns {
    series: Vec<i64>,
    minute: Vec<i64>,
    probes: Vec<i64>,
    failures: Vec<i64>,
    reasons: Vec<Option<Vec<u8>>>,
    latency: Vec<Option<Vec<u8>>>,
}

impl CellColumns {
    fn push(&mut self, (series, minute): (i64, i64), c: &SeriesMinuteAgg) {
        self.series.push(series);
        self.minute.push(minute);
        self.probes.push(to_i64(c.probes));
        self.failures.push(to_i64(c.failures));
        self.reasons.push(c.reasons_blob());
        self.latency.push(c.latency_blob());
    }

    /// The arrays as statement parameters `$1..$6`, in column order.
    fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.series,
            &self.minute,
            &self.probes,
            &self.failures,
            &self.reasons,
            &self.latency,
        ]
    }
}

/// Inserts new rollup rows in one statement; the rows that already existed are locked in
/// key order, merged here (the codec bytes cannot be merged in SQL) and written back.
async fn upsert_cells(
    tx: &Transaction<'_>,
    cells: &BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), TxError> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut cols = CellColumns::default();
    for (key, cell) in cells {
        cols.push(*key, cell);
    }
    let inserted = tx
        .query(
            "INSERT INTO minute_rollup (series, minute, probes, failures, reasons, latency)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[],
                                  $5::bytea[], $6::bytea[])
             ON CONFLICT DO NOTHING RETURNING series, minute",
            &cols.params(),
        )
        .await?;
    let inserted: HashSet<(i64, i64)> = inserted
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, TxError>>()?;
    let existing: Vec<(i64, i64)> = cells
        .keys()
        .filter(|k| !inserted.contains(k))
        .copied()
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    merge_existing(tx, cells, &existing).await
}

async fn merge_existing(
    tx: &Transaction<'_>,
    cells: &BTreeMap<(i64, i64), SeriesMinuteAgg>,
    keys: &[(i64, i64)],
) -> Result<(), TxError> {
    let s: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let m: Vec<i64> = keys.iter().map(|k| k.1).collect();
    let rows = tx
        .query(
            "SELECT r.series, r.minute, r.probes, r.failures, r.reasons, r.latency
             FROM minute_rollup r JOIN unnest($1::int8[], $2::int8[]) AS u(s, m)
               ON r.series = u.s AND r.minute = u.m
             ORDER BY r.series, r.minute FOR UPDATE OF r",
            &[&s, &m],
        )
        .await?;
    if rows.len() != keys.len() {
        return Err(StoreError::Backend(format!(
            "{} of {} rollup rows vanished while merging (a concurrent delete); retry the batch",
            keys.len() - rows.len(),
            keys.len()
        ))
        .into());
    }
    let mut cols = CellColumns::default();
    for r in &rows {
        let key: (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        let mut merged = super::read::cell_of(r, 2)?;
        if let Some(add) = cells.get(&key) {
            merged.merge(add);
        }
        cols.push(key, &merged);
    }
    tx.execute(
        "UPDATE minute_rollup r
         SET probes = u.p, failures = u.f, reasons = u.rs, latency = u.l
         FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::bytea[], $6::bytea[])
           AS u(s, m, p, f, rs, l)
         WHERE r.series = u.s AND r.minute = u.m",
        &cols.params(),
    )
    .await?;
    Ok(())
}

/// Host values of the new measurements, as per-minute aggregates merged in SQL.
async fn upsert_hosts(
    tx: &Transaction<'_>,
    agent: i64,
    new: &[(i64, &Measurement)],
) -> Result<(), TxError> {
    let mut by_key: BTreeMap<(&str, &str), BTreeMap<i64, HostAgg>> = BTreeMap::new();
    for (minute, m) in new {
        for v in m.values.iter().filter(|v| v.value.is_finite()) {
            let key = (v.name.as_str(), v.resource.as_deref().unwrap_or(""));
            by_key
                .entry(key)
                .or_default()
                .entry(*minute)
                .and_modify(|a| a.add(v.value))
                .or_insert(HostAgg {
                    count: 1,
                    sum: v.value,
                    min: v.value,
                    max: v.value,
                });
        }
    }
    if by_key.is_empty() {
        return Ok(());
    }
    let ids = ensure_host_series(tx, agent, by_key.keys().copied().collect()).await?;
    let mut rows: Vec<(i64, i64, HostAgg)> = Vec::new();
    for (key, minutes) in &by_key {
        let Some(&h) = ids.get(key) else {
            return Err(StoreError::Backend(format!(
                "host series {key:?} is missing after creation; retry the batch"
            ))
            .into());
        };
        rows.extend(minutes.iter().map(|(m, a)| (*m, h, *a)));
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let col = |f: fn(&(i64, i64, HostAgg)) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let minutes: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let hseries: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let counts: Vec<i64> = rows.iter().map(|r| r.2.count).collect();
    let (sums, mins, maxs) = (col(|r| r.2.sum), col(|r| r.2.min), col(|r| r.2.max));
    tx.execute(
        "INSERT INTO host_minute (minute, hseries, count, sum, min, max)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::float8[], $5::float8[],
                              $6::float8[])
         ON CONFLICT (minute, hseries) DO UPDATE SET
           count = host_minute.count + excluded.count, sum = host_minute.sum + excluded.sum,
           min = least(host_minute.min, excluded.min), max = greatest(host_minute.max, excluded.max)",
        &[&minutes, &hseries, &counts, &sums, &mins, &maxs],
    )
    .await?;
    Ok(())
}

async fn ensure_host_series<'a>(
    tx: &Transaction<'_>,
    agent: i64,
    keys: Vec<(&'a str, &'a str)>,
) -> Result<HashMap<(&'a str, &'a str), i64>, TxError> {
    let names: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let resources: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let select = "SELECT h.name, h.resource, h.id FROM host_series h
                  JOIN unnest($2::text[], $3::text[]) AS u(n, r) ON h.name = u.n AND h.resource = u.r
                  WHERE h.agent_id = $1";
    let lookup =
        |rows: Vec<tokio_postgres::Row>| -> Result<HashMap<(&'a str, &'a str), i64>, TxError> {
            let mut out = HashMap::new();
            for r in rows {
                let (n, res, id): (String, String, i64) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                if let Some(k) = keys.iter().find(|k| k.0 == n && k.1 == res) {
                    out.insert(*k, id);
                }
            }
            Ok(out)
        };
    let ids = lookup(tx.query(select, &[&agent, &names, &resources]).await?)?;
    if ids.len() == keys.len() {
        return Ok(ids);
    }
    tx.execute(
        "INSERT INTO host_series (agent_id, name, resource)
         SELECT $1, n, r FROM unnest($2::text[], $3::text[]) AS u(n, r) ORDER BY n, r
         ON CONFLICT DO NOTHING",
        &[&agent, &names, &resources],
    )
    .await?;
    lookup(tx.query(select, &[&agent, &names, &resources]).await?)
}

/// Gaps of a new batch, added to any gap of the same series and span.
async fn insert_gaps(
    tx: &Transaction<'_>,
    series: &HashMap<String, i64>,
    horizon: i64,
    b: &IngestBatch,
) -> Result<(), TxError> {
    let mut gaps: BTreeMap<(i64, i64, i64), i64> = BTreeMap::new();
    for g in &b.gaps {
        let Some((from, to)) = gap_span(g, horizon)? else {
            continue;
        };
        let Some(&s) = series.get(&g.check) else {
            continue;
        };
        let c = gaps.entry((s, from, to)).or_default();
        *c = c.saturating_add(to_i64(g.count));
    }
    if gaps.is_empty() {
        return Ok(());
    }
    let s: Vec<i64> = gaps.keys().map(|k| k.0).collect();
    let f: Vec<i64> = gaps.keys().map(|k| k.1).collect();
    let t: Vec<i64> = gaps.keys().map(|k| k.2).collect();
    let c: Vec<i64> = gaps.values().copied().collect();
    tx.execute(
        "INSERT INTO gaps (series, from_minute, to_minute, count)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])
         ON CONFLICT (series, from_minute, to_minute) DO UPDATE
           SET count = gaps.count + excluded.count",
        &[&s, &f, &t, &c],
    )
    .await?;
    Ok(())
}

/// Totals and `last_seq` only grow; the rest follows the most recently received batch
/// (a batch without spool status keeps the last one).
async fn update_agent(
    tx: &Transaction<'_>,
    agent: i64,
    seq: i64,
    received_ns: i64,
    b: &IngestBatch,
    stored: u64,
) -> Result<(), TxError> {
    let spool = |f: fn(&SpoolStatus) -> u64| b.spool.as_ref().map(|s| to_i64(f(s)));
    tx.execute(
        "UPDATE agents SET
           last_seq = greatest(coalesce(last_seq, 0), $2),
           batches_total = batches_total + 1,
           measurements_total = measurements_total + $3,
           clock_offset_ms = CASE WHEN last_seen_ns IS NULL OR last_seen_ns <= $4
             THEN $5 ELSE clock_offset_ms END,
           spool_depth = CASE WHEN last_seen_ns IS NULL OR last_seen_ns <= $4
             THEN coalesce($6, spool_depth) ELSE spool_depth END,
           spool_bytes = CASE WHEN last_seen_ns IS NULL OR last_seen_ns <= $4
             THEN coalesce($7, spool_bytes) ELSE spool_bytes END,
           spool_dropped = CASE WHEN last_seen_ns IS NULL OR last_seen_ns <= $4
             THEN coalesce($8, spool_dropped) ELSE spool_dropped END,
           spool_corrupt = CASE WHEN last_seen_ns IS NULL OR last_seen_ns <= $4
             THEN coalesce($9, spool_corrupt) ELSE spool_corrupt END,
           last_seen_ns = greatest(coalesce(last_seen_ns, $4), $4)
         WHERE id = $1",
        &[
            &agent,
            &seq,
            &to_i64(stored),
            &received_ns,
            &b.clock_offset_ms,
            &spool(|s| s.depth_measurements),
            &spool(|s| s.bytes),
            &spool(|s| s.dropped_total),
            &spool(|s| s.corrupt_records_total),
        ],
    )
    .await?;
    Ok(())
}
