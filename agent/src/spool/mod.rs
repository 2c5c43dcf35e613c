//! Durable on-disk spool: keeps every measurement from the moment it is produced until the
//! collector's ack covers it, within a byte cap, across crashes and power loss.
//!
//! # On-disk format (format version 1)
//! The spool directory holds:
//! - `LOCK`: held with an exclusive `flock` for the life of the [`Spool`], so two agents can
//!   never share a directory.
//! - `seg-<first id, 20 digits>.log`: append-only segments. An 8-byte header (`ATSP`, version
//!   u32 LE), then records `len u32 | crc32 u32 | id u64 | JSON payload` (little endian; crc32
//!   over id and payload). Per-record overhead: 16 bytes plus the compact JSON of the
//!   measurement. Record ids are consecutive, starting at 1, and never reused for data that
//!   anything referred to. Segments rotate at `segment_bytes` (default `max_bytes / 32`,
//!   between 4 KiB and 64 MiB) and are deleted whole once none of their records is live.
//! - `meta`: `ATSM | crc32 | JSON` with the next batch seq, the cut-but-unacked batch (seq, id
//!   range, gaps), where uncut data starts, and gaps not yet sent. Replaced by write `meta.tmp`
//!   + fsync + rename + fsync(dir).
//!
//! # fsync policy
//! - `append` writes its records and calls `fdatasync` on every segment it touched before it
//!   returns `Ok`: an `Ok` means durable. Callers batch measurements (the scheduler hands over
//!   what finished since its last call), so one fsync covers a group (group commit by the caller).
//! - A new segment is fsynced together with its directory entry before records go into it.
//! - `meta` is made durable (see above) before a cut batch is returned, before `ack` returns, and
//!   before any segment is deleted.
//!
//! # Invariants
//! - Every measurement whose `append` returned `Ok` is, at any later time and after any crash,
//!   exactly one of: pending (cut or uncut), acked, dropped (counted and carried by a gap until
//!   the gap's batch is acked), or counted corrupt (only possible if stored bytes change after
//!   they were synced, i.e. media corruption).
//! - A cut batch keeps its seq and content until acked, also across restarts; seqs strictly
//!   increase and are never reused (if `meta` itself is lost, the next seq jumps to the current
//!   Unix time in microseconds, far above any counter value).
//! - Recovery never fails on bad data: a torn or corrupt tail is detected by checksum, cut off and
//!   counted (a torn tail of the newest segment counts as one record: how many records the
//!   garbage held cannot be known); unknown files are ignored; only I/O errors fail `open`.
//! - Segment files stay within `max_bytes`: live records are capped at
//!   `max_bytes - 5 * segment_bytes`, and at most four segments hold dead records (around the
//!   cut batch, at the uncut start, and the active one). The cap is enforced on `append` by the
//!   `when_full` policy; an in-flight cut batch is never dropped.
//! - Memory use is bounded: the scan at `open` streams records; only the cut batch is cached.

mod gaps;
mod meta;
mod record;
mod segment;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use attest_config::WhenFull;
use attest_config::wire::{Gap, Measurement, SpoolStatus};
use jiff::Timestamp;

use gaps::OpenGaps;
use meta::{Cut, Meta};
use record::{Decoded, FRAME_OVERHEAD, MAX_PAYLOAD, SEGMENT_HEADER_LEN};
use segment::{Reader, Segment};

pub use record::FRAME_OVERHEAD as RECORD_OVERHEAD_BYTES;

const LOCK_FILE: &str = "LOCK";
const MIN_SEGMENT_BYTES: u64 = 4 * 1024;
const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Segments the byte cap must hold at least: live data needs room beside the dead slack.
const MIN_SEGMENTS_PER_CAP: u64 = 8;
/// Segments reserved for records that are dead but share a file with live ones.
const RESERVED_SEGMENTS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "spool directory {dir} is in use by another process (it holds {dir}/LOCK); run one agent \
         per spool directory or give this agent its own `spool.dir`"
    )]
    Locked { dir: PathBuf },
    #[error(
        "spool could not {op} {path}: {source}; check that the spool directory is writable and \
         its volume has free space"
    )]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "spool.max_bytes = {max_bytes} is too small for segments of {segment_bytes} bytes: at \
         least {min} bytes are needed; raise spool.max_bytes"
    )]
    CapTooSmall {
        max_bytes: u64,
        min: u64,
        segment_bytes: u64,
    },
    #[error(
        "measurement of check `{check}` at {ts} cannot be spooled: {reason}; nothing of this \
         append was stored (this is an agent bug: please report it)"
    )]
    InvalidMeasurement {
        check: String,
        ts: Timestamp,
        reason: String,
    },
    #[error(
        "ack for batch seq {seq} does not match the pending batch (seq {pending:?}); the transport \
         may only ack a seq it got from next_batch"
    )]
    UnknownSeq { seq: u64, pending: Option<u64> },
}

/// Wraps an I/O error with what the spool was doing and on which path.
fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError + use<> {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { op, path, source }
}

/// A batch cut from the spool, to be sent as-is until acked.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBatch {
    pub seq: u64,
    pub measurements: Vec<Measurement>,
    pub gaps: Vec<Gap>,
}

/// Spool figures for metrics. Counters (`*_total`) count since this `open`, like Prometheus
/// counters of the process; `depth`, `bytes`, `uncut` and `oldest_uncut_ts` are current.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpoolStats {
    /// Measurements not acked yet: the cut batch plus uncut ones.
    pub depth: u64,
    /// Bytes of segment files plus `meta`.
    pub bytes: u64,
    /// Measurements not yet in any batch.
    pub uncut: u64,
    /// Probe start of the oldest uncut measurement.
    pub oldest_uncut_ts: Option<Timestamp>,
    pub dropped_total: u64,
    pub corrupt_records_total: u64,
    pub appended_total: u64,
    pub acked_total: u64,
}

impl SpoolStats {
    /// The figures the agent reports to the collector with each batch.
    pub fn to_wire(&self) -> SpoolStatus {
        SpoolStatus {
            depth_measurements: self.depth,
            bytes: self.bytes,
            dropped_total: self.dropped_total,
            corrupt_records_total: self.corrupt_records_total,
        }
    }
}

/// Sizing of a spool. `Spool::open` derives `segment_bytes` from `max_bytes`; tests and tools
/// may choose it to exercise rotation with little data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    pub max_bytes: u64,
    pub when_full: WhenFull,
    /// `None`: `max_bytes / 32`, clamped to 4 KiB ..= 64 MiB.
    pub segment_bytes: Option<u64>,
}

/// Position of a record in the log: segment (by first id), byte offset, and the record id
/// expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    seg: u64,
    off: u64,
    id: u64,
}

/// Records consumed by one sequential read.
#[derive(Debug, Default, Clone)]
struct ReadOut {
    measurements: Vec<(u64, Measurement)>,
    /// Records passed over (decoded or not), and their bytes.
    consumed_ids: u64,
    consumed_bytes: u64,
    corrupt: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    dropped: u64,
    corrupt: u64,
    appended: u64,
    acked: u64,
}

/// Live-data accounting of one region of the log (the cut batch, or the uncut tail).
#[derive(Debug, Default, Clone, Copy)]
struct Region {
    /// Records present (decodable or not), and their framed bytes.
    records: u64,
    bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    _lock: File,
    when_full: WhenFull,
    segment_bytes: u64,
    /// Cap on live record bytes (cut batch plus uncut).
    budget: u64,
    max_payload: u64,
    segments: BTreeMap<u64, Segment>,
    /// Append handle of the newest segment.
    writer: File,
    /// A failed write could not be rolled back: start a fresh segment before the next write.
    force_rotate: bool,
    next_id: u64,
    meta: Meta,
    meta_bytes: u64,
    open_gaps: OpenGaps,
    pending: Option<PendingBatch>,
    cut: Region,
    uncut: Region,
    uncut_pos: Pos,
    oldest_uncut_ts: Option<Timestamp>,
    counters: Counters,
}

mod open;

impl Spool {
    /// Opens or creates the spool in `dir` (locks it so two agents cannot share it; recovers
    /// after a crash: a torn or corrupt tail is detected by checksum, skipped and counted —
    /// never a crash loop, never silent).
    pub fn open(dir: &Path, max_bytes: u64, when_full: WhenFull) -> Result<Spool, SpoolError> {
        Spool::open_with(
            dir,
            SpoolOptions {
                max_bytes,
                when_full,
                segment_bytes: None,
            },
        )
    }

    /// Like [`Spool::open`] with explicit sizing.
    pub fn open_with(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        open::open(dir, opts)
    }

    /// Durable when it returns `Ok` (see the module header). When full, applies the policy:
    /// `DropOldest` drops the oldest uncut measurements (then, if still needed, the oldest of
    /// this call), `DropNewest` drops the tail of this call; each dropped measurement is
    /// counted and becomes part of a gap sent with the next batch. On `Err`, a prefix of
    /// `measurements` may already be durable (it will be delivered; the collector dedups by
    /// natural key) — the caller may retry the whole slice.
    pub fn append(&mut self, measurements: &[Measurement]) -> Result<(), SpoolError> {
        let payloads = measurements
            .iter()
            .map(|m| self.encode(m))
            .collect::<Result<Vec<_>, _>>()?;
        let sizes: Vec<u64> = payloads
            .iter()
            .map(|p| FRAME_OVERHEAD + p.len() as u64)
            .collect();
        let plan = self.plan_room(&sizes)?;
        let kept = plan.keep.clone();
        self.write_records(&payloads[kept.clone()])?;
        self.counters.appended += measurements.len() as u64;
        if self.when_full == WhenFull::DropNewest {
            for m in &measurements[kept.clone()] {
                self.open_gaps.close(&m.check);
            }
        }
        let dropped_new = measurements[..kept.start]
            .iter()
            .chain(&measurements[kept.end..]);
        self.commit_drops(plan, dropped_new)
    }

    /// Measurements that never reached the disk (the volume refused the append, e.g. it is
    /// full) become gaps, so the collector marks their minutes unknown instead of up. They are
    /// counted as dropped. The gaps are written to `meta` when possible; if `meta` cannot be
    /// written either, they stay in memory and go out with the next batch.
    pub fn record_lost(&mut self, measurements: &[Measurement]) {
        for m in measurements {
            self.open_gaps
                .record_drop(&mut self.meta.open_gaps, &m.check, m.ts);
        }
        self.counters.dropped += measurements.len() as u64;
        let meta = self.meta.clone();
        if let Err(e) = self.store_meta(&meta) {
            tracing::warn!(
                "gaps for {} lost measurements are kept in memory until the spool can write again: {e}",
                measurements.len()
            );
        }
    }

    /// The oldest unacknowledged batch, up to `max` measurements (at least one), with a stable
    /// seq: once a batch is cut, repeated calls — also after a crash and reopen — return the
    /// same seq with the same content until it is acked (`max` is then ignored). Seqs strictly
    /// increase and are never reused, even across restarts. `None` when nothing is pending.
    pub fn next_batch(&mut self, max: usize) -> Result<Option<PendingBatch>, SpoolError> {
        if let Some(p) = &self.pending {
            return Ok(Some(p.clone()));
        }
        if self.uncut.records == 0 && self.meta.open_gaps.is_empty() {
            return Ok(None);
        }
        let (next_pos, out) = self.read_from(self.uncut_pos, max.max(1), u64::MAX, u64::MAX)?;
        let mut new_meta = self.meta.clone();
        new_meta.uncut_from = next_pos.id;
        let gaps = std::mem::take(&mut new_meta.open_gaps);
        let cut_something = !out.measurements.is_empty() || !gaps.is_empty();
        if cut_something {
            new_meta.pending = Some(Cut {
                seq: self.meta.next_seq,
                first: self.meta.uncut_from,
                end: next_pos.id,
                gaps: gaps.clone(),
            });
            new_meta.next_seq += 1;
        }
        self.store_meta(&new_meta)?;
        self.meta = new_meta;
        self.open_gaps.clear();
        self.counters.corrupt += out.corrupt;
        self.uncut.records -= out.consumed_ids;
        self.uncut.bytes -= out.consumed_bytes;
        self.uncut_pos = next_pos;
        self.refresh_oldest_uncut();
        if !cut_something {
            self.delete_dead_segments();
            return Ok(None);
        }
        self.cut = Region {
            records: out.consumed_ids,
            bytes: out.consumed_bytes,
        };
        let batch = PendingBatch {
            seq: self.meta.next_seq - 1,
            measurements: out.measurements.into_iter().map(|(_, m)| m).collect(),
            gaps,
        };
        self.pending = Some(batch.clone());
        Ok(Some(batch))
    }

    /// The collector durably committed batch `seq`: its measurements may be deleted. Acking a
    /// seq that was already acked is a no-op (the transport may see a duplicate answer).
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        let pending_seq = self.meta.pending.as_ref().map(|c| c.seq);
        match pending_seq {
            Some(p) if p == seq => {}
            Some(p) if seq < p => return Ok(()),
            None if seq > 0 && seq < self.meta.next_seq => return Ok(()),
            _ => {
                return Err(SpoolError::UnknownSeq {
                    seq,
                    pending: pending_seq,
                });
            }
        }
        let mut new_meta = self.meta.clone();
        new_meta.pending = None;
        self.store_meta(&new_meta)?;
        self.meta = new_meta;
        let acked = self
            .pending
            .take()
            .map_or(0, |p| p.measurements.len() as u64);
        self.counters.acked += acked;
        self.cut = Region::default();
        self.delete_dead_segments();
        Ok(())
    }

    pub fn stats(&self) -> SpoolStats {
        let cut_measurements = self
            .pending
            .as_ref()
            .map_or(0, |p| p.measurements.len() as u64);
        SpoolStats {
            depth: cut_measurements + self.uncut.records,
            bytes: self.segments.values().map(|s| s.len).sum::<u64>() + self.meta_bytes,
            uncut: self.uncut.records,
            oldest_uncut_ts: self.oldest_uncut_ts,
            dropped_total: self.counters.dropped,
            corrupt_records_total: self.counters.corrupt,
            appended_total: self.counters.appended,
            acked_total: self.counters.acked,
        }
    }

    /// Bytes of one segment file before rotation.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Serializes one measurement, refusing what could not be read back.
    fn encode(&self, m: &Measurement) -> Result<Vec<u8>, SpoolError> {
        let invalid = |reason: String| SpoolError::InvalidMeasurement {
            check: m.check.clone(),
            ts: m.ts,
            reason,
        };
        if let Some(field) = non_finite_field(m) {
            // JSON has no NaN/Infinity: it would be written as null and fail to read back.
            return Err(invalid(format!("{field} is not a finite number")));
        }
        let payload = serde_json::to_vec(m).map_err(|e| invalid(e.to_string()))?;
        if payload.len() as u64 > self.max_payload {
            return Err(invalid(format!(
                "it is {} bytes serialized, more than the {} bytes one record may hold",
                payload.len(),
                self.max_payload
            )));
        }
        Ok(payload)
    }
}

/// The first float of `m` that JSON cannot carry, by field name.
fn non_finite_field(m: &Measurement) -> Option<&'static str> {
    if m.duration_seconds.is_some_and(|d| !d.is_finite()) {
        return Some("duration_seconds");
    }
    if m.phases.values().any(|v| !v.is_finite()) {
        return Some("a phase duration");
    }
    if m.values.iter().any(|v| !v.value.is_finite()) {
        return Some("a value");
    }
    None
}

/// What `append` will drop to stay within the cap.
#[derive(Debug)]
struct RoomPlan {
    /// Range of the incoming measurements that is written.
    keep: std::ops::Range<usize>,
    /// Oldest uncut records to drop, read but not yet removed.
    drop_old: ReadOut,
    drop_old_next: Pos,
}

impl Spool {
    fn live_bytes(&self) -> u64 {
        self.cut.bytes + self.uncut.bytes
    }

    /// Decides what to drop so that live bytes plus the kept part of `sizes` fit the budget.
    fn plan_room(&self, sizes: &[u64]) -> Result<RoomPlan, SpoolError> {
        let need: u64 = sizes.iter().sum();
        let mut plan = RoomPlan {
            keep: 0..sizes.len(),
            drop_old: ReadOut::default(),
            drop_old_next: self.uncut_pos,
        };
        let live = self.live_bytes();
        if live + need <= self.budget {
            return Ok(plan);
        }
        match self.when_full {
            WhenFull::DropOldest => {
                let mut over = live + need - self.budget;
                let (next, out) = self.read_from(self.uncut_pos, usize::MAX, over, u64::MAX)?;
                over = over.saturating_sub(out.consumed_bytes);
                plan.drop_old = out;
                plan.drop_old_next = next;
                while over > 0 && plan.keep.start < sizes.len() {
                    over = over.saturating_sub(sizes[plan.keep.start]);
                    plan.keep.start += 1;
                }
            }
            WhenFull::DropNewest => {
                let mut room = self.budget.saturating_sub(live);
                let mut end = 0;
                while end < sizes.len() && sizes[end] <= room {
                    room -= sizes[end];
                    end += 1;
                }
                plan.keep.end = end;
            }
        }
        Ok(plan)
    }

    /// Records the drops of `plan` and of the incoming `dropped_new` measurements durably
    /// (gaps in `meta`), then reclaims space.
    fn commit_drops<'a>(
        &mut self,
        plan: RoomPlan,
        dropped_new: impl Iterator<Item = &'a Measurement>,
    ) -> Result<(), SpoolError> {
        let dropped_new: Vec<&Measurement> = dropped_new.collect();
        if plan.drop_old.consumed_ids == 0 && dropped_new.is_empty() {
            return Ok(());
        }
        let mut new_meta = self.meta.clone();
        let mut open_gaps = self.open_gaps.clone();
        for (_, m) in &plan.drop_old.measurements {
            open_gaps.record_drop(&mut new_meta.open_gaps, &m.check, m.ts);
        }
        for m in &dropped_new {
            open_gaps.record_drop(&mut new_meta.open_gaps, &m.check, m.ts);
        }
        let dropped_old = plan.drop_old.consumed_ids > 0;
        if dropped_old {
            new_meta.uncut_from = plan.drop_old_next.id;
        }
        self.store_meta(&new_meta)?;
        self.meta = new_meta;
        self.open_gaps = open_gaps;
        let drop_old = plan.drop_old;
        self.counters.dropped += drop_old.measurements.len() as u64 + dropped_new.len() as u64;
        self.counters.corrupt += drop_old.corrupt;
        if dropped_old {
            self.uncut.records -= drop_old.consumed_ids;
            self.uncut.bytes -= drop_old.consumed_bytes;
            self.uncut_pos = plan.drop_old_next;
            self.refresh_oldest_uncut();
            self.delete_dead_segments();
        }
        Ok(())
    }

    /// Writes framed records with fresh ids into the newest segment(s), rotating at
    /// `segment_bytes`, and fsyncs every touched segment.
    fn write_records(&mut self, payloads: &[Vec<u8>]) -> Result<(), SpoolError> {
        let mut i = 0;
        while i < payloads.len() {
            self.rotate_if_needed(payloads[i].len() as u64)?;
            let room = {
                let active = self.active();
                self.segment_bytes.saturating_sub(active.len)
            };
            let mut buf = Vec::new();
            let mut n = 0;
            while i + n < payloads.len() {
                let frame = FRAME_OVERHEAD + payloads[i + n].len() as u64;
                if n > 0 && buf.len() as u64 + frame > room {
                    break;
                }
                record::encode(self.next_id + n as u64, &payloads[i + n], &mut buf);
                n += 1;
            }
            self.write_chunk(&buf, n as u64)?;
            i += n;
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        // Not reachable from input: `open` always leaves a segment and deletion never removes
        // the newest one.
        self.segments
            .values()
            .next_back()
            .expect("the spool always has an active segment")
    }

    /// Starts a new segment when the active one cannot take a record of `payload_len`.
    fn rotate_if_needed(&mut self, payload_len: u64) -> Result<(), SpoolError> {
        let active = self.active();
        let full = active.end > active.first
            && active.len + FRAME_OVERHEAD + payload_len > self.segment_bytes;
        if !(full || self.force_rotate || active.end != self.next_id) {
            return Ok(());
        }
        let (seg, file) = segment::create(&self.dir, self.next_id)
            .map_err(io_err("create segment in", &self.dir))?;
        self.segments.insert(seg.first, seg);
        self.writer = file;
        self.force_rotate = false;
        Ok(())
    }

    /// Appends `buf` (holding `n` records) to the active segment and fsyncs it; on failure
    /// cuts the segment back so no partial record stays in front of later writes.
    fn write_chunk(&mut self, buf: &[u8], n: u64) -> Result<(), SpoolError> {
        let (path, valid_len, ends_at) = {
            let a = self.active();
            (a.path.clone(), a.len, a.end)
        };
        let result = self
            .writer
            .write_all(buf)
            .and_then(|()| self.writer.sync_data());
        if let Err(e) = result {
            let rolled_back = self
                .writer
                .set_len(valid_len)
                .and_then(|()| io::Seek::seek(&mut self.writer, io::SeekFrom::Start(valid_len)))
                .is_ok();
            self.force_rotate = !rolled_back;
            return Err(io_err("write to", &path)(e));
        }
        let key = self.active().first;
        if let Some(a) = self.segments.get_mut(&key) {
            a.len += buf.len() as u64;
            a.end = ends_at + n;
        }
        self.next_id = ends_at + n;
        if self.uncut.records == 0 {
            self.uncut_pos = Pos {
                seg: key,
                off: valid_len,
                id: ends_at,
            };
        }
        self.uncut.records += n;
        self.uncut.bytes += buf.len() as u64;
        if self.oldest_uncut_ts.is_none() {
            self.refresh_oldest_uncut();
        }
        Ok(())
    }

    fn store_meta(&mut self, meta: &Meta) -> Result<(), SpoolError> {
        self.meta_bytes = meta::store(&self.dir, meta).map_err(io_err("write", &self.dir))?;
        Ok(())
    }

    /// Reads records sequentially from `pos`, stopping after `max` decodable measurements, once
    /// `byte_goal` bytes were consumed, or at id `until` (exclusive). Records that fail their
    /// checksum now (changed since the scan) are counted corrupt and the rest of their
    /// segment is skipped. Returns the position after the last consumed record.
    fn read_from(
        &self,
        pos: Pos,
        max: usize,
        byte_goal: u64,
        until: u64,
    ) -> Result<(Pos, ReadOut), SpoolError> {
        let mut out = ReadOut::default();
        let mut at = pos;
        for (&key, seg) in self.segments.range(pos.seg..) {
            if key != pos.seg {
                at = Pos {
                    seg: key,
                    off: SEGMENT_HEADER_LEN,
                    id: seg.first,
                };
            }
            if at.off >= seg.len {
                at = Pos {
                    seg: key,
                    off: seg.len,
                    id: seg.end,
                };
                continue;
            }
            let done = |o: &ReadOut, at: &Pos| {
                o.measurements.len() >= max || o.consumed_bytes >= byte_goal || at.id >= until
            };
            if done(&out, &at) {
                break;
            }
            let mut r = Reader::open(seg, at.off).map_err(io_err("read", &seg.path))?;
            while at.off < seg.len && !done(&out, &at) {
                match r.next().map_err(io_err("read", &seg.path))? {
                    Decoded::Record(rec) if rec.id == at.id => {
                        out.consumed_ids += 1;
                        out.consumed_bytes += rec.frame_len();
                        match serde_json::from_slice::<Measurement>(&rec.payload) {
                            Ok(m) => out.measurements.push((rec.id, m)),
                            Err(_) => out.corrupt += 1,
                        }
                        at = Pos {
                            seg: key,
                            off: r.offset,
                            id: rec.id + 1,
                        };
                    }
                    _ => {
                        let lost = seg.end.saturating_sub(at.id);
                        out.corrupt += lost;
                        out.consumed_ids += lost;
                        out.consumed_bytes += seg.len - at.off;
                        at = Pos {
                            seg: key,
                            off: seg.len,
                            id: seg.end,
                        };
                    }
                }
            }
            if done(&out, &at) {
                break;
            }
        }
        Ok((at, out))
    }

    /// Re-reads the timestamp of the first uncut measurement (one record). A read error only
    /// loses this statistic, so it is logged rather than failing the operation that already
    /// changed durable state.
    fn refresh_oldest_uncut(&mut self) {
        self.oldest_uncut_ts = None;
        if self.uncut.records == 0 {
            return;
        }
        match self.read_from(self.uncut_pos, 1, u64::MAX, u64::MAX) {
            Ok((_, out)) => self.oldest_uncut_ts = out.measurements.first().map(|(_, m)| m.ts),
            Err(e) => tracing::warn!(error = %e, "could not read the oldest uncut measurement"),
        }
    }

    /// Whether no record of `seg` is live: neither in the cut batch nor uncut.
    fn is_dead(&self, seg: &Segment) -> bool {
        let in_cut = self
            .meta
            .pending
            .as_ref()
            .is_some_and(|c| seg.first < c.end && seg.end > c.first);
        seg.end <= self.meta.uncut_from && !in_cut
    }

    /// Deletes sealed segments without live records. `meta` is already durable, so a crash
    /// at any point leaves at most dead files, which the next `open` deletes. A failed unlink
    /// is logged and retried at the next deletion.
    fn delete_dead_segments(&mut self) {
        let Some(&newest) = self.segments.keys().next_back() else {
            return;
        };
        let dead: Vec<u64> = self
            .segments
            .iter()
            .filter(|(k, s)| **k != newest && (s.end == s.first || self.is_dead(s)))
            .map(|(k, _)| *k)
            .collect();
        let mut removed = false;
        for key in dead {
            let Some(seg) = self.segments.get(&key) else {
                continue;
            };
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %seg.path.display(), error = %e, "could not delete an acked spool segment; will retry");
                    continue;
                }
            }
            self.segments.remove(&key);
            removed = true;
        }
        if removed && let Err(e) = meta::sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not fsync the spool directory after deleting segments");
        }
    }
}

/// Opens (creating) the lock file and takes an exclusive lock without waiting.
fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
    }
}

/// Segment size and live-byte budget for `opts`, or why the cap is too small.
fn sizing(opts: &SpoolOptions) -> Result<(u64, u64), SpoolError> {
    let segment_bytes = opts
        .segment_bytes
        .unwrap_or(opts.max_bytes / 32)
        .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    let min = segment_bytes * MIN_SEGMENTS_PER_CAP;
    if opts.max_bytes < min {
        return Err(SpoolError::CapTooSmall {
            max_bytes: opts.max_bytes,
            min,
            segment_bytes,
        });
    }
    Ok((
        segment_bytes,
        opts.max_bytes - RESERVED_SEGMENTS * segment_bytes,
    ))
}

/// Largest payload one record may carry: small against the segment so sealed segments are
/// nearly full, which keeps the byte-cap arithmetic in the module header true.
fn max_payload(segment_bytes: u64) -> u64 {
    (segment_bytes / 8).min(u64::from(MAX_PAYLOAD))
}

#[cfg(test)]
mod tests;
