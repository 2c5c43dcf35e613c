//! The long-term tier: hot minute rows of past hours move into one compressed pack per
//! (hour, series) (compaction), and history can be loaded straight into packs.
//!
//! Invariants:
//! - Compaction moves one hour per transaction: the hot rows are merged into the hour's
//!   pack and deleted together, so a reader sees each minute in exactly one state.
//! - A minute may have data in both tiers (late data after compaction); merging is exact,
//!   so reads that merge the tiers give the same figures as if it had never been packed.

use std::collections::BTreeMap;

use attest_config::wire::FailureReason;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::{corrupt, map_err, map_err_fs};
use super::write::{Writer, ensure_agent, ensure_series};
use crate::store::keys::to_u64;
use crate::store::rollup::{self, SeriesMinuteAgg};
use crate::store::{SeriesMinuteSummary, StoreError, codec};

impl Writer {
    pub(super) fn load_minutes(
        &mut self,
        agent: &str,
        check: &str,
        minutes: &[SeriesMinuteSummary],
    ) -> Result<u64, StoreError> {
        let horizon = self.rollup_horizon;
        let mut hours: BTreeMap<i64, BTreeMap<u8, SeriesMinuteAgg>> = BTreeMap::new();
        for m in minutes.iter().filter(|m| m.minute >= horizon) {
            let offset = u8::try_from(m.minute.rem_euclid(60)).unwrap_or(0);
            let cell = hours
                .entry(m.minute.div_euclid(60))
                .or_default()
                .entry(offset)
                .or_default();
            cell.merge(&summary_cell(m));
        }
        let Some(first) = hours
            .iter()
            .next()
            .and_then(|(h, cells)| Some(h * 60 + i64::from(*cells.keys().next()?)))
        else {
            return Ok(0);
        };
        let ids = &mut self.ids;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let agent_id = ensure_agent(&tx, &mut ids.agents, agent)?;
        let series = ensure_series(&tx, &mut ids.series, agent_id, check, Some(first))?;
        let mut loaded = 0u64;
        for (hour, cells) in hours {
            loaded += cells.len() as u64;
            merge_into_pack(&tx, hour, series, cells)?;
        }
        tx.commit().map_err(map_err)?;
        Ok(loaded)
    }
}

fn summary_cell(m: &SeriesMinuteSummary) -> SeriesMinuteAgg {
    let mut cell = SeriesMinuteAgg {
        probes: u64::from(m.probes),
        failures: u64::from(m.failures),
        ..SeriesMinuteAgg::default()
    };
    if m.failures > 0 {
        let code = codec::reason_code(m.reason.unwrap_or(FailureReason::Other));
        if let Some(slot) = cell.reasons.get_mut(usize::from(code)) {
            *slot = u64::from(m.failures);
        }
    }
    for d in &m.ok_durations {
        cell.latency.record_seconds(*d);
    }
    cell
}

/// Packs the hot rows of the earliest hour that has any before `before_minute`.
/// `Ok(None)` when nothing is left to compact.
pub(super) fn compact_one_hour(
    conn: &mut Connection,
    before_minute: i64,
) -> Result<Option<u64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let first: Option<i64> = tx
        .query_row("SELECT min(minute) FROM minute_rollup", [], |r| r.get(0))
        .map_err(map_err)?;
    let Some(first) = first.filter(|m| *m < before_minute) else {
        return Ok(None);
    };
    let hour = first.div_euclid(60);
    let end = ((hour + 1) * 60).min(before_minute);
    let mut by_series: BTreeMap<i64, BTreeMap<u8, SeriesMinuteAgg>> = BTreeMap::new();
    let mut moved = 0u64;
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT minute, series, probes, failures, reasons, latency FROM minute_rollup
                 WHERE minute >= ?1 AND minute < ?2",
            )
            .map_err(map_err)?;
        let mut rows = stmt.query(params![first, end]).map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            let minute: i64 = r.get(0).map_err(map_err)?;
            let series: i64 = r.get(1).map_err(map_err)?;
            let cell = cell_at(r, 2)?;
            let offset = u8::try_from(minute - hour * 60).unwrap_or(0);
            by_series.entry(series).or_default().insert(offset, cell);
            moved += 1;
        }
    }
    for (series, cells) in by_series {
        merge_into_pack(&tx, hour, series, cells)?;
    }
    tx.execute(
        "DELETE FROM minute_rollup WHERE minute >= ?1 AND minute < ?2",
        params![first, end],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)?;
    Ok(Some(moved))
}

/// The minute-rollup cell stored in columns `start..start + 4` (probes, failures,
/// reasons, latency); bytes that do not decode are reported as corruption.
pub(super) fn cell_at(r: &rusqlite::Row<'_>, start: usize) -> Result<SeriesMinuteAgg, StoreError> {
    let blob = |i: usize| -> Result<Option<&[u8]>, StoreError> {
        r.get_ref(i)
            .map_err(map_err)?
            .as_blob_or_null()
            .map_err(map_err_fs)
    };
    SeriesMinuteAgg::from_row(
        to_u64(r.get(start).map_err(map_err)?),
        to_u64(r.get(start + 1).map_err(map_err)?),
        blob(start + 2)?,
        blob(start + 3)?,
    )
    .map_err(|e| corrupt("minute rollup", e))
}

fn load_pack(
    tx: &Transaction<'_>,
    hour: i64,
    series: i64,
) -> Result<BTreeMap<u8, SeriesMinuteAgg>, StoreError> {
    let data: Option<Vec<u8>> = tx
        .prepare_cached("SELECT data FROM hour_pack WHERE hour = ?1 AND series = ?2")
        .and_then(|mut s| s.query_row(params![hour, series], |r| r.get(0)).optional())
        .map_err(map_err)?;
    match data {
        Some(d) => rollup::decode_pack(&d).map_err(|e| corrupt("hour pack", e)),
        None => Ok(BTreeMap::new()),
    }
}

fn store_pack(
    tx: &Transaction<'_>,
    hour: i64,
    series: i64,
    cells: &BTreeMap<u8, SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    if cells.is_empty() {
        tx.prepare_cached("DELETE FROM hour_pack WHERE hour = ?1 AND series = ?2")
            .and_then(|mut s| s.execute(params![hour, series]))
            .map_err(map_err)?;
        return Ok(());
    }
    let data = rollup::encode_pack(cells).map_err(|e| corrupt("hour pack", e))?;
    tx.prepare_cached("INSERT OR REPLACE INTO hour_pack (hour, series, data) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![hour, series, data]))
        .map_err(map_err)?;
    Ok(())
}

pub(super) fn merge_into_pack(
    tx: &Transaction<'_>,
    hour: i64,
    series: i64,
    cells: BTreeMap<u8, SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut pack = load_pack(tx, hour, series)?;
    for (offset, cell) in cells {
        match pack.get_mut(&offset) {
            Some(existing) => existing.merge(&cell),
            None => {
                pack.insert(offset, cell);
            }
        }
    }
    store_pack(tx, hour, series, &pack)
}

/// Drops the minutes before `before_minute` from the packs of the hour containing it.
pub(super) fn trim_boundary_packs(
    tx: &Transaction<'_>,
    before_minute: i64,
) -> Result<(), StoreError> {
    let hour = before_minute.div_euclid(60);
    let keep_from = u8::try_from(before_minute - hour * 60).unwrap_or(0);
    if keep_from == 0 {
        return Ok(());
    }
    let series: Vec<i64> = {
        let mut stmt = tx
            .prepare_cached("SELECT series FROM hour_pack WHERE hour = ?1")
            .map_err(map_err)?;
        let rows = stmt.query_map([hour], |r| r.get(0)).map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    for s in series {
        let mut pack = load_pack(tx, hour, s)?;
        pack.retain(|offset, _| *offset >= keep_from);
        store_pack(tx, hour, s, &pack)?;
    }
    Ok(())
}

/// Calls `f(hour, pack bytes)` for each hour pack of `series` that overlaps minutes
/// `[from, to)`; `stmt` is the `hour_pack` select by series and hour range.
pub(super) fn for_each_pack(
    stmt: &mut rusqlite::CachedStatement<'_>,
    series: i64,
    (from, to): (i64, i64),
    mut f: impl FnMut(i64, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut rows = stmt
        .query(params![
            series,
            from.div_euclid(60),
            (to - 1).div_euclid(60)
        ])
        .map_err(map_err)?;
    while let Some(r) = rows.next().map_err(map_err)? {
        let hour: i64 = r.get(0).map_err(map_err)?;
        let data = r
            .get_ref(1)
            .map_err(map_err)?
            .as_blob()
            .map_err(map_err_fs)?;
        f(hour, data)?;
    }
    Ok(())
}
