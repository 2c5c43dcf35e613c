//! The in-memory form of one minute's rollup of one series (check × agent), how it merges,
//! and the two on-disk forms: a hot per-minute row and a packed, compressed hour.
//!
//! Invariants:
//! - Merging is exact and order-independent: counts add, reason counters add, histograms
//!   merge bucket by bucket; so late data and compaction never change a figure.
//! - `top_reason` is derived from the full reason counters at read time, never stored,
//!   so it is right however many batches a minute's failures arrived in.
//! - A pack holds minutes of one UTC hour (offsets 0..60) and decodes to exactly the
//!   cells that were packed.

use std::collections::BTreeMap;

use attest_config::wire::{FailureReason, Measurement};
use hdrhistogram::Histogram;

use super::codec::{
    self, CodecError, REASON_COUNT, Reader, decode_latency, decode_reasons, encode_latency,
    encode_reasons, put_varint,
};

/// Pack format version, the first byte of every pack.
const PACK_VERSION: u8 = 1;
/// zstd level for packs: compaction runs off the ingest path, so favour size.
const PACK_ZSTD_LEVEL: i32 = 9;

/// One series' figures for one minute.
#[derive(Debug, Clone)]
pub struct Cell {
    pub probes: u64,
    pub failures: u64,
    pub reasons: [u64; REASON_COUNT],
    pub latency: Option<Histogram<u64>>,
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            probes: 0,
            failures: 0,
            reasons: [0; REASON_COUNT],
            latency: None,
        }
    }
}

impl Cell {
    /// Counts one newly stored measurement. A failure without a typed reason counts as
    /// `other`, so every failure has a reason and `top_reason` is never missing for it.
    pub fn add_measurement(&mut self, m: &Measurement) {
        self.probes += 1;
        if m.ok {
            if let Some(d) = m.duration_seconds {
                let h = self
                    .latency
                    .get_or_insert_with(codec::new_latency_histogram);
                codec::record_seconds(h, d);
            }
        } else {
            self.failures += 1;
            let code = codec::reason_code(m.reason.unwrap_or(FailureReason::Other));
            if let Some(slot) = self.reasons.get_mut(usize::from(code)) {
                *slot += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Cell) {
        self.probes = self.probes.saturating_add(other.probes);
        self.failures = self.failures.saturating_add(other.failures);
        for (a, b) in self.reasons.iter_mut().zip(other.reasons.iter()) {
            *a = a.saturating_add(*b);
        }
        if let Some(o) = &other.latency {
            match &mut self.latency {
                // Both histograms share bounds, so `add` cannot fail on range; fall back
                // to a per-bucket copy to stay total anyway.
                Some(mine) => {
                    if mine.add(o).is_err() {
                        for v in o.iter_recorded() {
                            mine.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                        }
                    }
                }
                None => self.latency = Some(o.clone()),
            }
        }
    }

    /// Most common failure reason; ties go to the lexicographically smallest name.
    pub fn top_reason(&self) -> Option<FailureReason> {
        let mut best: Option<(u64, FailureReason)> = None;
        for (code, count) in self.reasons.iter().enumerate().filter(|(_, c)| **c > 0) {
            let Ok(reason) = codec::reason_from_code(code as u64) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((c, r)) => *count > c || (*count == c && reason.as_str() < r.as_str()),
            };
            if better {
                best = Some((*count, reason));
            }
        }
        best.map(|(_, r)| r)
    }

    /// Reason counters as a blob for the hot row; `None` when there were no failures.
    pub fn reasons_blob(&self) -> Option<Vec<u8>> {
        if self.reasons.iter().all(|c| *c == 0) {
            return None;
        }
        let mut out = Vec::with_capacity(8);
        encode_reasons(&mut out, &self.reasons);
        Some(out)
    }

    /// Latency as a blob for the hot row; `None` when no successful probe had a duration.
    pub fn latency_blob(&self) -> Option<Vec<u8>> {
        let h = self.latency.as_ref().filter(|h| !h.is_empty())?;
        let mut out = Vec::with_capacity(16);
        encode_latency(&mut out, Some(h));
        Some(out)
    }

    /// Rebuilds a cell from a hot row's columns.
    pub fn from_row(
        probes: u64,
        failures: u64,
        reasons: Option<&[u8]>,
        latency: Option<&[u8]>,
    ) -> Result<Cell, CodecError> {
        let mut cell = Cell {
            probes,
            failures,
            ..Cell::default()
        };
        if let Some(bytes) = reasons {
            decode_reasons(&mut Reader::new(bytes), &mut cell.reasons)?;
        }
        if let Some(bytes) = latency {
            cell.latency = decode_latency(&mut Reader::new(bytes))?;
        }
        Ok(cell)
    }
}

/// Encodes the cells of one hour (keys are minute offsets 0..60) column by column, so
/// that the near-constant columns (probes, failures) compress to almost nothing.
pub fn encode_pack(cells: &BTreeMap<u8, Cell>) -> Result<Vec<u8>, CodecError> {
    let mut bitmap = 0u64;
    for offset in cells.keys() {
        if *offset >= 60 {
            return Err(CodecError::Malformed("minute offset outside the hour"));
        }
        bitmap |= 1 << offset;
    }
    let mut body = Vec::with_capacity(cells.len() * 12 + 8);
    body.extend_from_slice(&bitmap.to_le_bytes());
    for cell in cells.values() {
        put_varint(&mut body, cell.probes);
    }
    for cell in cells.values() {
        put_varint(&mut body, cell.failures);
    }
    for cell in cells.values() {
        encode_reasons(&mut body, &cell.reasons);
    }
    for cell in cells.values() {
        encode_latency(&mut body, cell.latency.as_ref());
    }
    let compressed = zstd::bulk::compress(&body, PACK_ZSTD_LEVEL)
        .map_err(|_| CodecError::Malformed("zstd refused to compress a pack"))?;
    let mut out = Vec::with_capacity(compressed.len() + 1);
    out.push(PACK_VERSION);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Upper bound of a decoded pack: 60 minutes of the widest cells, with room to spare.
const PACK_MAX_BODY: usize = 1 << 20;

pub fn decode_pack(bytes: &[u8]) -> Result<BTreeMap<u8, Cell>, CodecError> {
    let (&version, compressed) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if version != PACK_VERSION {
        return Err(CodecError::Malformed("unknown pack version"));
    }
    let body = zstd::bulk::decompress(compressed, PACK_MAX_BODY)
        .map_err(|_| CodecError::Malformed("pack does not decompress"))?;
    let mut r = Reader::new(&body);
    let bitmap = r.u64_le()?;
    let offsets: Vec<u8> = (0u8..60).filter(|o| bitmap & (1 << o) != 0).collect();
    let mut cells: Vec<Cell> = offsets.iter().map(|_| Cell::default()).collect();
    for cell in &mut cells {
        cell.probes = r.varint()?;
    }
    for cell in &mut cells {
        cell.failures = r.varint()?;
    }
    for cell in &mut cells {
        decode_reasons(&mut r, &mut cell.reasons)?;
    }
    for cell in &mut cells {
        cell.latency = decode_latency(&mut r)?;
    }
    if !r.is_empty() {
        return Err(CodecError::Malformed("trailing bytes after a pack"));
    }
    Ok(offsets.into_iter().zip(cells).collect())
}
