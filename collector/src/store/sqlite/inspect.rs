//! Reads that only tests and measurements use: rollups with names and full histograms,
//! and a decode of every pack in a range. The product reads [`SeriesMinutes`] (`read.rs`).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Transaction, params};

use super::error::{corrupt, map_err};
use super::packs::{cell_at, for_each_pack};
use super::read::series_of_checks;
use crate::minutes::SeriesMinuteDetail;
use crate::store::StoreError;
use crate::store::rollup::{self, SeriesMinuteAgg};

pub(super) fn series_minute_details(
    tx: &Transaction<'_>,
    checks: &[String],
    from_minute: i64,
    to_minute: i64,
) -> Result<Vec<SeriesMinuteDetail>, StoreError> {
    if to_minute <= from_minute {
        return Ok(Vec::new());
    }
    let wanted = series_of_checks(tx, checks)?;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut cells = BTreeMap::new();
    hot_cells(tx, &wanted, from_minute, to_minute, &mut cells)?;
    packed_cells(tx, &wanted, from_minute, to_minute, &mut cells)?;
    let mut out: Vec<SeriesMinuteDetail> = cells
        .into_iter()
        .filter_map(|((series, minute), cell)| {
            let (check, agent) = wanted.get(&series)?;
            Some(to_rollup(check, agent, minute, cell))
        })
        .collect();
    out.sort_by(|a, b| (&a.check, &a.agent, a.minute).cmp(&(&b.check, &b.agent, b.minute)));
    Ok(out)
}

fn hot_cells(
    tx: &Transaction<'_>,
    wanted: &HashMap<i64, (String, String)>,
    from: i64,
    to: i64,
    into: &mut BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT minute, series, probes, failures, reasons, latency FROM minute_rollup
             WHERE minute >= ?1 AND minute < ?2",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query(params![from, to]).map_err(map_err)?;
    while let Some(r) = rows.next().map_err(map_err)? {
        let series: i64 = r.get(1).map_err(map_err)?;
        if !wanted.contains_key(&series) {
            continue;
        }
        let minute: i64 = r.get(0).map_err(map_err)?;
        let cell = cell_at(r, 2)?;
        merge_cell(into, (series, minute), cell);
    }
    Ok(())
}

pub(super) fn packed_cells(
    tx: &Transaction<'_>,
    wanted: &HashMap<i64, (String, String)>,
    from: i64,
    to: i64,
    into: &mut BTreeMap<(i64, i64), SeriesMinuteAgg>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT hour, data FROM hour_pack WHERE series = ?1 AND hour >= ?2 AND hour <= ?3",
        )
        .map_err(map_err)?;
    for series in wanted.keys() {
        for_each_pack(&mut stmt, *series, (from, to), |hour, data| {
            let pack = rollup::decode_pack(data).map_err(|e| corrupt("hour pack", e))?;
            for (offset, cell) in pack {
                let minute = hour * 60 + i64::from(offset);
                if minute >= from && minute < to {
                    merge_cell(into, (*series, minute), cell);
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn merge_cell(
    into: &mut BTreeMap<(i64, i64), SeriesMinuteAgg>,
    key: (i64, i64),
    cell: SeriesMinuteAgg,
) {
    match into.get_mut(&key) {
        Some(existing) => existing.merge(&cell),
        None => {
            into.insert(key, cell);
        }
    }
}

fn to_rollup(check: &str, agent: &str, minute: i64, cell: SeriesMinuteAgg) -> SeriesMinuteDetail {
    SeriesMinuteDetail {
        check: check.to_owned(),
        agent: agent.to_owned(),
        minute,
        probes: u32::try_from(cell.probes).unwrap_or(u32::MAX),
        failures: u32::try_from(cell.failures).unwrap_or(u32::MAX),
        top_reason: cell.top_reason().map(|r| r.as_str().to_owned()),
        latency: cell.latency.to_histogram(),
    }
}
