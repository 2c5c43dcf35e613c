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

use super::codec::{
    self, CodecError, REASON_COUNT, Reader, decode_latency, decode_reasons, encode_latency,
    encode_reasons, put_varint,
};
use crate::minutes::latency::{self, Buckets};
use crate::minutes::{LatencyBucket, SeriesMinutes};

/// Pack format version, the first byte of every pack.
const PACK_VERSION: u8 = 1;
/// zstd level for packs: compaction runs off the ingest path, so favour size.
const PACK_ZSTD_LEVEL: i32 = 9;

/// One minute of one series as the store keeps it: counters that merge exactly and sparse
/// latency buckets (the engine reads it as a `minutes::SeriesMinute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesMinuteAgg {
    pub probes: u64,
    pub failures: u64,
    pub reasons: [u64; REASON_COUNT],
    pub latency: Buckets,
}

impl Default for SeriesMinuteAgg {
    fn default() -> Self {
        SeriesMinuteAgg {
            probes: 0,
            failures: 0,
            reasons: [0; REASON_COUNT],
            latency: Buckets::default(),
        }
    }
}

impl SeriesMinuteAgg {
    /// Counts one newly stored measurement. A failure without a typed reason counts as
    /// `other`, so every failure has a reason and `top_reason` is never missing for it.
    pub fn add_measurement(&mut self, m: &Measurement) {
        self.probes += 1;
        if m.ok {
            if let Some(d) = m.duration_seconds {
                self.latency.record_seconds(d);
            }
        } else {
            self.failures += 1;
            let code = codec::reason_code(m.reason.unwrap_or(FailureReason::Other));
            if let Some(slot) = self.reasons.get_mut(usize::from(code)) {
                *slot += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &SeriesMinuteAgg) {
        self.probes = self.probes.saturating_add(other.probes);
        self.failures = self.failures.saturating_add(other.failures);
        for (a, b) in self.reasons.iter_mut().zip(other.reasons.iter()) {
            *a = a.saturating_add(*b);
        }
        self.latency.merge(&other.latency);
    }

    /// Most common failure reason; ties go to the lexicographically smallest name.
    pub fn top_reason(&self) -> Option<FailureReason> {
        top_reason(&self.reasons)
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
        if self.latency.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(16);
        encode_latency(&mut out, &self.latency);
        Some(out)
    }

    /// Rebuilds a cell from a hot row's columns.
    pub fn from_row(
        probes: u64,
        failures: u64,
        reasons: Option<&[u8]>,
        latency: Option<&[u8]>,
    ) -> Result<SeriesMinuteAgg, CodecError> {
        let mut cell = SeriesMinuteAgg {
            probes,
            failures,
            ..SeriesMinuteAgg::default()
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

/// Most common reason in `reasons`; ties go to the lexicographically smallest name.
pub fn top_reason(reasons: &[u64; REASON_COUNT]) -> Option<FailureReason> {
    let mut best: Option<(u64, FailureReason)> = None;
    for (code, count) in reasons.iter().enumerate().filter(|(_, c)| **c > 0) {
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

/// Encodes the cells of one hour (keys are minute offsets 0..60) column by column, so
/// that the near-constant columns (probes, failures) compress to almost nothing.
pub fn encode_pack(cells: &BTreeMap<u8, SeriesMinuteAgg>) -> Result<Vec<u8>, CodecError> {
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
    encode_pack_latency(&mut body, cells.values().map(|c| &c.latency));
    let compressed = zstd::bulk::compress(&body, PACK_ZSTD_LEVEL)
        .map_err(|_| CodecError::Malformed("zstd refused to compress a pack"))?;
    let mut out = Vec::with_capacity(compressed.len() + 1);
    out.push(PACK_VERSION);
    out.extend_from_slice(&compressed);
    Ok(out)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Latency in four columns: bucket counts per minute; each minute's lowest bucket as a
/// signed delta from the previous minute's; deltas inside a minute; probe counts (mostly
/// 1). Similar values end up next to each other, which is what zstd compresses best.
fn encode_pack_latency<'a>(out: &mut Vec<u8>, cells: impl Iterator<Item = &'a Buckets> + Clone) {
    for b in cells.clone() {
        put_varint(out, b.iter().count() as u64);
    }
    let mut previous_first = 0i64;
    for b in cells.clone() {
        if let Some((first, _)) = b.iter().next() {
            put_varint(out, zigzag(i64::from(first) - previous_first));
            previous_first = i64::from(first);
        }
    }
    for b in cells.clone() {
        let mut previous = None;
        for (index, _) in b.iter() {
            if let Some(p) = previous {
                put_varint(out, u64::from(index - p));
            }
            previous = Some(index);
        }
    }
    for b in cells {
        for (_, count) in b.iter() {
            put_varint(out, count);
        }
    }
}

fn decode_pack_latency(
    r: &mut Reader<'_>,
    cells: &mut [SeriesMinuteAgg],
) -> Result<(), CodecError> {
    let mut lens = Vec::with_capacity(cells.len());
    for _ in 0..cells.len() {
        lens.push(r.varint()?);
    }
    let mut firsts = Vec::with_capacity(cells.len());
    let mut previous_first = 0i64;
    for _ in lens.iter().filter(|n| **n > 0) {
        previous_first = previous_first
            .checked_add(unzigzag(r.varint()?))
            .ok_or(CodecError::Malformed("latency bucket index overflows"))?;
        firsts.push(
            u64::try_from(previous_first)
                .map_err(|_| CodecError::Malformed("negative latency bucket"))?,
        );
    }
    let mut indexes: Vec<Vec<u64>> = Vec::with_capacity(cells.len());
    let mut firsts = firsts.into_iter();
    for n in &lens {
        let mut minute = Vec::new();
        if *n > 0 {
            let mut index = firsts.next().ok_or(CodecError::Truncated)?;
            minute.push(index);
            for _ in 1..*n {
                index = index
                    .checked_add(r.varint()?)
                    .ok_or(CodecError::Malformed("latency bucket index overflows"))?;
                minute.push(index);
            }
        }
        indexes.push(minute);
    }
    for (cell, minute) in cells.iter_mut().zip(indexes) {
        let mut b = Buckets::default();
        for index in minute {
            b.push(index, r.varint()?)?;
        }
        cell.latency = b;
    }
    Ok(())
}

/// Upper bound of a decoded pack: 60 minutes of the widest cells, with room to spare.
const PACK_MAX_BODY: usize = 1 << 20;

pub fn decode_pack(bytes: &[u8]) -> Result<BTreeMap<u8, SeriesMinuteAgg>, CodecError> {
    let (&version, compressed) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if version != PACK_VERSION {
        return Err(CodecError::Malformed("unknown pack version"));
    }
    let body = zstd::bulk::decompress(compressed, PACK_MAX_BODY)
        .map_err(|_| CodecError::Malformed("pack does not decompress"))?;
    let mut r = Reader::new(&body);
    let bitmap = r.u64_le()?;
    let offsets: Vec<u8> = (0u8..60).filter(|o| bitmap & (1 << o) != 0).collect();
    let mut cells: Vec<SeriesMinuteAgg> =
        offsets.iter().map(|_| SeriesMinuteAgg::default()).collect();
    for cell in &mut cells {
        cell.probes = r.varint()?;
    }
    for cell in &mut cells {
        cell.failures = r.varint()?;
    }
    for cell in &mut cells {
        decode_reasons(&mut r, &mut cell.reasons)?;
    }
    decode_pack_latency(&mut r, &mut cells)?;
    if !r.is_empty() {
        return Err(CodecError::Malformed("trailing bytes after a pack"));
    }
    Ok(offsets.into_iter().zip(cells).collect())
}

/// Decodes packs straight into compact rows, reusing one zstd context and scratch buffers
/// across packs: creating a context and a cell map per pack cost more than the decoding.
pub struct PackDecoder {
    dctx: zstd::bulk::Decompressor<'static>,
    body: Vec<u8>,
    indexes: Vec<u32>,
}

/// Per-column scratch of one pack: at most 60 cells.
struct Columns {
    offsets: [u8; 60],
    probes: [u64; 60],
    failures: [u64; 60],
    reasons: [Option<FailureReason>; 60],
    lens: [u64; 60],
}

impl PackDecoder {
    pub fn new() -> Result<PackDecoder, CodecError> {
        Ok(PackDecoder {
            dctx: zstd::bulk::Decompressor::new()
                .map_err(|_| CodecError::Malformed("cannot create a zstd context"))?,
            body: Vec::with_capacity(4096),
            indexes: Vec::with_capacity(512),
        })
    }

    /// Appends the cells of the pack of `hour` whose minutes lie in `[from, to)` to `out`
    /// as rows of agent `agent`. Same validation as [`decode_pack`]: corrupt bytes are an
    /// error and add nothing.
    pub fn decode_compact(
        &mut self,
        bytes: &[u8],
        hour: i64,
        range: (i64, i64),
        agent: u32,
        out: &mut SeriesMinutes,
    ) -> Result<(), CodecError> {
        let before = (out.rows.len(), out.latency.len());
        let res = self.decode_into(bytes, hour, range, agent, out);
        if res.is_err() {
            out.rows.truncate(before.0);
            out.latency.truncate(before.1);
        }
        res
    }

    fn decode_into(
        &mut self,
        bytes: &[u8],
        hour: i64,
        (from, to): (i64, i64),
        agent: u32,
        out: &mut SeriesMinutes,
    ) -> Result<(), CodecError> {
        let (&version, compressed) = bytes.split_first().ok_or(CodecError::Truncated)?;
        if version != PACK_VERSION {
            return Err(CodecError::Malformed("unknown pack version"));
        }
        let size = zstd::bulk::Decompressor::upper_bound(compressed)
            .filter(|n| *n <= PACK_MAX_BODY)
            .ok_or(CodecError::Malformed("pack has no valid size"))?;
        self.body.clear();
        self.body.reserve(size);
        self.dctx
            .decompress_to_buffer(compressed, &mut self.body)
            .map_err(|_| CodecError::Malformed("pack does not decompress"))?;
        let mut r = Reader::new(&self.body);
        let (cols, n) = read_columns(&mut r)?;
        self.indexes.clear();
        read_latency_indexes(&mut r, &cols.lens[..n], &mut self.indexes)?;
        let mut next_index = 0usize;
        for i in 0..n {
            let len = cols.lens[i] as usize;
            let minute = hour * 60 + i64::from(cols.offsets[i]);
            let keep = minute >= from && minute < to;
            let lat_start = out.latency.len();
            for k in 0..len {
                let count = r.varint()?;
                if keep {
                    let index = self.indexes.get(next_index + k).copied();
                    out.latency.push(LatencyBucket {
                        index: index.ok_or(CodecError::Truncated)?,
                        count: u32::try_from(count).unwrap_or(u32::MAX),
                    });
                }
            }
            next_index += len;
            if keep {
                out.push_row(
                    minute,
                    agent,
                    (
                        u32::try_from(cols.probes[i]).unwrap_or(u32::MAX),
                        u32::try_from(cols.failures[i]).unwrap_or(u32::MAX),
                    ),
                    cols.reasons[i],
                    lat_start,
                );
            }
        }
        if !r.is_empty() {
            return Err(CodecError::Malformed("trailing bytes after a pack"));
        }
        Ok(())
    }
}

/// Reads the bitmap, probes, failures, reasons and latency lengths of a pack body.
fn read_columns(r: &mut Reader<'_>) -> Result<(Columns, usize), CodecError> {
    let bitmap = r.u64_le()?;
    let mut cols = Columns {
        offsets: [0; 60],
        probes: [0; 60],
        failures: [0; 60],
        reasons: [None; 60],
        lens: [0; 60],
    };
    let mut n = 0;
    for o in (0u8..60).filter(|o| bitmap & (1 << o) != 0) {
        cols.offsets[n] = o;
        n += 1;
    }
    for p in &mut cols.probes[..n] {
        *p = r.varint()?;
    }
    for f in &mut cols.failures[..n] {
        *f = r.varint()?;
    }
    for reason in &mut cols.reasons[..n] {
        let mut counters = [0u64; REASON_COUNT];
        decode_reasons(r, &mut counters)?;
        *reason = top_reason(&counters);
    }
    for len in &mut cols.lens[..n] {
        *len = r.varint()?;
    }
    Ok((cols, n))
}

/// Reads the first-bucket and delta columns into absolute bucket indexes, cell by cell.
fn read_latency_indexes(
    r: &mut Reader<'_>,
    lens: &[u64],
    into: &mut Vec<u32>,
) -> Result<(), CodecError> {
    let mut firsts = [0u64; 60];
    let mut previous_first = 0i64;
    for (first, _) in firsts.iter_mut().zip(lens).filter(|(_, n)| **n > 0) {
        previous_first = previous_first
            .checked_add(unzigzag(r.varint()?))
            .ok_or(CodecError::Malformed("latency bucket index overflows"))?;
        *first = u64::try_from(previous_first)
            .map_err(|_| CodecError::Malformed("negative latency bucket"))?;
    }
    let max = latency::max_bucket_index();
    for (first, n) in firsts.iter().zip(lens).filter(|(_, n)| **n > 0) {
        let mut index = *first;
        for k in 0..*n {
            if k > 0 {
                let delta = r.varint()?;
                if delta == 0 {
                    return Err(CodecError::Malformed("latency buckets out of order"));
                }
                index = index
                    .checked_add(delta)
                    .ok_or(CodecError::Malformed("latency bucket index overflows"))?;
            }
            if index > max {
                return Err(CodecError::Malformed(
                    "latency bucket outside the tracked range",
                ));
            }
            into.push(index as u32);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cell_strategy() -> impl Strategy<Value = SeriesMinuteAgg> {
        (
            0u64..10_000,
            0u64..100,
            proptest::collection::vec((0usize..REASON_COUNT, 1u64..50), 0..4),
            proptest::collection::vec(1e-6f64..4000.0, 0..12),
        )
            .prop_map(|(probes, failures, reasons, latencies)| {
                let mut cell = SeriesMinuteAgg {
                    probes,
                    failures,
                    ..SeriesMinuteAgg::default()
                };
                for (code, count) in reasons {
                    cell.reasons[code] += count;
                }
                for s in latencies {
                    cell.latency.record_seconds(s);
                }
                cell
            })
    }

    proptest! {
        #[test]
        fn packs_roundtrip_exactly(cells in proptest::collection::btree_map(0u8..60, cell_strategy(), 0..60)) {
            let bytes = encode_pack(&cells).expect("encode");
            prop_assert_eq!(decode_pack(&bytes).expect("decode"), cells);
        }

        #[test]
        fn corrupt_packs_are_errors_not_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![PACK_VERSION];
            bytes.extend(zstd::bulk::compress(&body, 1).expect("compress"));
            let _ = decode_pack(&bytes);
        }

        #[test]
        fn compact_decoding_matches_full_decoding(
            cells in proptest::collection::btree_map(0u8..60, cell_strategy(), 0..60),
            from in 0i64..70,
            len in 0i64..70,
        ) {
            let bytes = encode_pack(&cells).expect("encode");
            let hour = 7;
            let range = (hour * 60 + from, hour * 60 + from + len);
            let mut got = SeriesMinutes::default();
            PackDecoder::new()
                .expect("decoder")
                .decode_compact(&bytes, hour, range, 3, &mut got)
                .expect("decode");
            let mut want = SeriesMinutes::default();
            for (offset, c) in decode_pack(&bytes).expect("decode") {
                let minute = hour * 60 + i64::from(offset);
                if minute >= range.0 && minute < range.1 {
                    want.push(
                        minute,
                        3,
                        u32::try_from(c.probes).unwrap_or(u32::MAX),
                        u32::try_from(c.failures).unwrap_or(u32::MAX),
                        c.top_reason(),
                        &c.latency,
                    );
                }
            }
            prop_assert_eq!(got, want);
        }

        #[test]
        fn corrupt_packs_decode_compact_to_errors_not_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![PACK_VERSION];
            bytes.extend(zstd::bulk::compress(&body, 1).expect("compress"));
            let mut out = SeriesMinutes::default();
            let mut d = PackDecoder::new().expect("decoder");
            if d.decode_compact(&bytes, 0, (i64::MIN, i64::MAX), 0, &mut out).is_err() {
                prop_assert!(out.rows.is_empty() && out.latency.is_empty());
            }
        }

        #[test]
        fn merge_is_order_independent(a in cell_strategy(), b in cell_strategy(), c in cell_strategy()) {
            let mut left = a.clone();
            left.merge(&b);
            left.merge(&c);
            let mut right = c.clone();
            right.merge(&a);
            right.merge(&b);
            prop_assert_eq!(left, right);
        }
    }

    #[test]
    fn offsets_outside_the_hour_are_refused() {
        let cells = BTreeMap::from([(60u8, SeriesMinuteAgg::default())]);
        assert!(encode_pack(&cells).is_err());
    }
}
