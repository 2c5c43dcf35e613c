//! Durable on-disk spool: keeps every measurement from the moment it is produced until the
//! collector's ack covers it, within a byte cap, across crashes and power loss.
//!
//! # Rooms
//! - `mod.rs`: the [`Spool`] state, `open`, figures, segment housekeeping.
//! - `write.rs`: the write half — `append`, the `when_full` policy, drops as gaps (`gaps.rs`).
//! - `read.rs`: the read half — cutting the next batch, `ack`, the sequential record reader.
//! - `shared.rs`: [`SharedSpool`], the one handle the agent's tasks share, and its halves
//!   [`SpoolWriter`] (append only) and [`SpoolReader`] (cut and ack only).
//! - `writer.rs`: the task that appends the scheduler's measurements (bounded backlog while
//!   the disk refuses writes). `batch.rs`: a cut batch with its records' stored bytes.
//! - `record.rs`, `segment.rs`, `meta.rs`, `open.rs`: framing, segment files, `meta`, recovery.
//!
//! # On-disk format (format version 1)
//! The spool directory holds:
//! - `LOCK`: held with an exclusive `flock` for the life of the [`Spool`], so two agents can
//!   never share a directory.
//! - `seg-<first id, 20 digits>.log`: append-only segments. An 8-byte header (`ATSP`, version
//!   u32 LE), then records `len u32 | crc32 u32 | id u64 | JSON payload` (little endian; crc32
//!   over id and payload). The payload is the measurement's compact wire JSON, exactly the
//!   bytes that go into a batch's `measurements` array: the transport sends it as stored.
//!   Per-record overhead: 16 bytes plus that JSON. Record ids are consecutive, starting at 1, and never reused for data that
//!   anything referred to. Segments rotate at `segment_bytes` (default `max_bytes / 32`,
//!   between 4 KiB and 64 MiB) and are deleted whole once none of their records is live.
//! - `meta`: `ATSM | crc32 | JSON` with the next batch seq, the cut-but-unacked batch (seq, id
//!   range, gaps, the previous digest it is chained to), where uncut data starts, gaps not yet
//!   sent, and the chain head (digest of the newest acked batch, docs/wire.md "Signed
//!   batches"): the chain continues across restarts; a lost `meta` starts a new chain under a
//!   seq far above the old ones (a declared gap, not a broken link). Replaced by write `meta.tmp`
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
//! - A cut batch keeps its seq, content and chain link until acked, also across restarts; seqs strictly
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

mod batch;
mod gaps;
mod meta;
mod open;
mod read;
mod record;
mod segment;
mod shared;
mod write;
pub mod writer;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use attest_config::WhenFull;
use attest_config::wire::SpoolStatus;
use jiff::Timestamp;

use batch::ItemsBuilder;
use gaps::OpenGaps;
use meta::Meta;
use record::MAX_PAYLOAD;
use segment::Segment;

pub use batch::{PendingBatch, StoredMeasurements};
pub use record::FRAME_OVERHEAD as RECORD_OVERHEAD_BYTES;
pub use shared::{SharedSpool, SpoolReader, SpoolWriter};

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

/// What a record says about itself beyond its bytes: enough to turn it into a gap.
#[derive(Debug, Clone)]
struct Head {
    check: String,
    ts: Timestamp,
}

/// Records consumed by one sequential read.
#[derive(Debug, Default, Clone)]
struct ReadOut {
    /// Check and probe start of each record that decoded as a measurement, in log order.
    heads: Vec<Head>,
    /// The payloads of those records, as stored.
    items: ItemsBuilder,
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

    fn live_bytes(&self) -> u64 {
        self.cut.bytes + self.uncut.bytes
    }

    fn store_meta(&mut self, meta: &Meta) -> Result<(), SpoolError> {
        self.meta_bytes = meta::store(&self.dir, meta).map_err(io_err("write", &self.dir))?;
        Ok(())
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
        .mode(0o600)
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
