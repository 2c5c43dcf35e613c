//! Opening a spool: lock, load `meta`, scan and repair segments, rebuild the in-memory state.
//!
//! Recovery derives everything from the files (Vector #10436: never trust counters over data)
//! and always makes progress: torn tails are cut off, unreadable segments removed, a lost or
//! corrupt `meta` replaced — each counted or logged — and only I/O errors fail the open.
//! Records lost to corruption are counted only where they were live (pending or uncut);
//! already acked or dropped records that rot are of no consequence.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use attest_config::wire::Measurement;
use jiff::Timestamp;

use attest_config::evidence::keys;

use crate::clock;

use super::meta::{self, Loaded, Meta};
use super::record::{RawRecord, SEGMENT_HEADER_LEN};
use super::segment::{self, Segment};
use super::{
    Counters, OpenGaps, Pos, Region, Spool, SpoolError, SpoolOptions, io_err, lock_dir,
    max_payload, sizing,
};

pub(super) fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
    let (segment_bytes, budget) = sizing(&opts)?;
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    // The spool holds every measurement not yet delivered: the owner's only, whatever the
    // umask (new files in it are created 0600 as well).
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("restrict permissions of", dir))?;
    }
    let lock = lock_dir(dir)?;
    remove_if_present(&dir.join(meta::META_TMP_FILE))?;
    let listed = segment::list(dir).map_err(io_err("list", dir))?;
    let meta = load_meta(dir, &listed)?;
    let mut acc = Acc::new(&meta);
    let mut segments = scan_all(&listed, &mut acc)?;
    let next_id = next_id(&segments, &meta);
    let writer = activate(dir, &mut segments, next_id)?;
    let Acc {
        uncut,
        uncut_pos,
        oldest,
        cut_pos,
        corrupt,
        ..
    } = acc;
    let mut spool = Spool {
        dir: dir.to_path_buf(),
        writer,
        _lock: lock,
        when_full: opts.when_full,
        segment_bytes,
        budget,
        max_payload: max_payload(segment_bytes),
        next_id,
        segments,
        force_rotate: false,
        meta_bytes: meta_len(dir),
        meta,
        open_gaps: OpenGaps::default(),
        pending: None,
        cut: Region::default(),
        uncut,
        uncut_pos: Pos {
            seg: 0,
            off: 0,
            id: 0,
        },
        oldest_uncut_ts: oldest,
        counters: Counters {
            corrupt,
            ..Counters::default()
        },
    };
    spool.uncut_pos = uncut_pos.unwrap_or_else(|| spool.end_of_log());
    spool.load_pending(cut_pos)?;
    spool.delete_dead_segments();
    Ok(spool)
}

fn remove_if_present(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn meta_len(dir: &Path) -> u64 {
    fs::metadata(dir.join(meta::META_FILE)).map_or(0, |m| m.len())
}

/// Loads `meta`; creates it for a new spool; replaces a lost or corrupt one (logged) with a
/// state that resends all data under seqs above any used before.
fn load_meta(dir: &Path, listed: &[(u64, PathBuf)]) -> Result<Meta, SpoolError> {
    let loaded = meta::load(dir).map_err(io_err("read", &dir.join(meta::META_FILE)))?;
    let meta = match loaded {
        Loaded::Found(m) => return Ok(m),
        Loaded::Missing if listed.is_empty() => Meta::fresh(),
        Loaded::Missing | Loaded::Corrupt => {
            let seq_floor = u64::try_from(clock::wall_now().as_microsecond()).unwrap_or(1);
            tracing::error!(
                dir = %dir.display(),
                next_seq = seq_floor,
                "spool meta file is missing or corrupt; all spooled data will be resent in new \
                 batches (the collector dedups measurements by natural key)"
            );
            Meta {
                next_seq: seq_floor.max(1),
                uncut_from: listed.first().map_or(1, |(first, _)| (*first).max(1)),
                ..Meta::fresh()
            }
        }
    };
    meta::store(dir, &meta).map_err(io_err("write", &dir.join(meta::META_FILE)))?;
    Ok(meta)
}

/// Live-data accounting built while scanning, one record at a time.
struct Acc<'a> {
    meta: &'a Meta,
    cut_pos: Option<Pos>,
    uncut: Region,
    uncut_pos: Option<Pos>,
    oldest: Option<Timestamp>,
    corrupt: u64,
}

impl<'a> Acc<'a> {
    fn new(meta: &'a Meta) -> Acc<'a> {
        Acc {
            meta,
            cut_pos: None,
            uncut: Region::default(),
            uncut_pos: None,
            oldest: None,
            corrupt: 0,
        }
    }

    fn visit(&mut self, seg: u64, rec: &RawRecord, off: u64) {
        let pos = Pos {
            seg,
            off,
            id: rec.id,
        };
        if let Some(c) = &self.meta.pending
            && rec.id >= c.first
            && rec.id < c.end
        {
            self.cut_pos.get_or_insert(pos);
        }
        if rec.id >= self.meta.uncut_from {
            self.uncut.records += 1;
            self.uncut.bytes += rec.frame_len();
            if self.uncut_pos.is_none() {
                self.uncut_pos = Some(pos);
                self.oldest = serde_json::from_slice::<Measurement>(&rec.payload)
                    .ok()
                    .map(|m| m.ts);
            }
        }
    }

    /// How many ids in `[from, to)` were live: in the cut batch or uncut.
    fn live_ids_in(&self, from: u64, to: u64) -> u64 {
        let overlap = |a: u64, b: u64| to.min(b).saturating_sub(from.max(a));
        let cut = self
            .meta
            .pending
            .as_ref()
            .map_or(0, |c| overlap(c.first, c.end));
        cut + overlap(self.meta.uncut_from, u64::MAX)
    }

    /// Highest id `meta` refers to, plus one.
    fn referenced_end(&self) -> u64 {
        let cut_end = self.meta.pending.as_ref().map_or(0, |c| c.end);
        self.meta.uncut_from.max(cut_end)
    }
}

/// Scans every listed segment, repairing what is damaged; returns the usable segments.
fn scan_all(
    listed: &[(u64, PathBuf)],
    acc: &mut Acc<'_>,
) -> Result<BTreeMap<u64, Segment>, SpoolError> {
    let mut segments = BTreeMap::new();
    for (i, (first, path)) in listed.iter().enumerate() {
        let next_first = listed.get(i + 1).map(|(f, _)| *f);
        let scanned = segment::scan(path, *first, |rec, off| acc.visit(*first, rec, off))
            .map_err(io_err("read", path))?;
        let seg = scanned.segment;
        if scanned.bad_header {
            let lost = match next_first {
                Some(nf) => acc.live_ids_in(*first, nf),
                None if scanned.file_len <= SEGMENT_HEADER_LEN => 0,
                None => acc.live_ids_in(*first, acc.referenced_end()).max(1),
            };
            report_damage(path, lost, "unreadable segment header; segment removed");
            acc.corrupt += lost;
            remove_if_present(path)?;
            continue;
        }
        if scanned.corrupt_tail {
            let lost = match next_first {
                Some(nf) => acc.live_ids_in(seg.end, nf),
                None => acc.live_ids_in(seg.end, acc.referenced_end()).max(1),
            };
            report_damage(path, lost, "torn or corrupt tail cut off");
            acc.corrupt += lost;
            truncate(path, seg.len)?;
        }
        segments.insert(*first, seg);
    }
    Ok(segments)
}

fn report_damage(path: &Path, lost: u64, what: &str) {
    tracing::warn!(path = %path.display(), lost_records = lost, "spool recovery: {what}");
}

fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open for repair", path))?;
    f.set_len(len)
        .and_then(|()| f.sync_all())
        .map_err(io_err("truncate torn tail of", path))
}

/// The id the next appended record gets: above every stored record and every id `meta`
/// refers to, so a new record can never fall into an old batch's range.
fn next_id(segments: &BTreeMap<u64, Segment>, meta: &Meta) -> u64 {
    let stored_end = segments.values().map(|s| s.end).max().unwrap_or(1);
    let cut_end = meta.pending.as_ref().map_or(1, |c| c.end);
    stored_end.max(meta.uncut_from).max(cut_end).max(1)
}

/// Opens the newest segment for appending, or creates one at `next_id` when there is none or
/// the newest one does not end exactly at `next_id` (ids must be consecutive in a segment).
fn activate(
    dir: &Path,
    segments: &mut BTreeMap<u64, Segment>,
    next_id: u64,
) -> Result<fs::File, SpoolError> {
    if let Some(seg) = segments.values().next_back().filter(|s| s.end == next_id) {
        return segment::open_for_append(seg).map_err(io_err("open", &seg.path));
    }
    let (seg, file) = segment::create(dir, next_id).map_err(io_err("create segment in", dir))?;
    segments.insert(seg.first, seg);
    Ok(file)
}

impl Spool {
    fn end_of_log(&self) -> Pos {
        self.segments.values().next_back().map_or(
            Pos {
                seg: self.next_id,
                off: SEGMENT_HEADER_LEN,
                id: self.next_id,
            },
            |s| Pos {
                seg: s.first,
                off: s.len,
                id: s.end,
            },
        )
    }

    /// Re-reads the cut batch named in `meta` so `next_batch` returns it unchanged.
    fn load_pending(&mut self, cut_pos: Option<Pos>) -> Result<(), SpoolError> {
        let Some(c) = self.meta.pending.clone() else {
            return Ok(());
        };
        let start = cut_pos.unwrap_or_else(|| self.end_of_log());
        let (_, out) = self.read_from(start, usize::MAX, u64::MAX, c.end)?;
        self.counters.corrupt += out.corrupt;
        self.cut = Region {
            records: out.consumed_ids,
            bytes: out.consumed_bytes,
        };
        self.pending = Some(super::PendingBatch {
            seq: c.seq,
            measurements: out.items.finish(),
            gaps: c.gaps,
            prev: c.prev.as_deref().and_then(keys::parse_digest),
        });
        Ok(())
    }
}
