//! Exact record of what a real `attest-agent` spooled, read from outside the process.
//!
//! The agent deletes a spool segment once every record in it is acknowledged, so reading the
//! spool at the end would miss what was delivered (or lost) in between. [`SegmentKeeper`]
//! therefore hard-links every `seg-*.log` file as soon as it appears: the link keeps the
//! inode, and because segments are append-only the link sees every later append too. After
//! the agent is stopped, [`SegmentKeeper::spooled`] decodes all kept files.
//!
//! Invariants:
//! - The spool's record ids are consecutive from 1, so the kept records must cover `1..=max`
//!   without a hole; a hole means the keeper missed a segment, and `spooled` reports it as an
//!   error instead of returning an incomplete list.
//! - Only records whose checksum verifies count (a torn tail from a kill is cut off by the
//!   agent on restart and never counted as spooled: its `append` had not returned).
//! - Reads never modify the agent's spool directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use attest_config::wire::Measurement;

/// Bytes before the first record of a segment (`ATSP` + version).
const HEADER: usize = 8;
/// Framing per record: len u32, crc32 u32, id u64.
const FRAME: usize = 16;
/// How often the keeper looks for new segment files. A segment lives at least until its
/// records are cut, sent and acked (hundreds of ms at the fastest), far above this.
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("cannot read kept segment {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the keeper missed spool records {from}..={to} (a segment was created and deleted \
         between two polls); the oracle is incomplete, so the test cannot judge"
    )]
    Hole { from: u64, to: u64 },
    #[error("record id {id} holds two different measurements in kept segments: {a:?} / {b:?}")]
    Conflict {
        id: u64,
        a: Box<Measurement>,
        b: Box<Measurement>,
    },
}

/// Hard-links the spool's segment files into a side directory for the life of the value.
pub struct SegmentKeeper {
    keep_dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SegmentKeeper {
    /// Starts watching `spool_dir` (it may not exist yet); links go to `keep_dir`.
    pub fn start(spool_dir: &Path, keep_dir: &Path) -> SegmentKeeper {
        std::fs::create_dir_all(keep_dir).expect("create the keeper directory");
        let stop = Arc::new(AtomicBool::new(false));
        let (src, dst, flag) = (
            spool_dir.to_path_buf(),
            keep_dir.to_path_buf(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                link_new_segments(&src, &dst);
                std::thread::sleep(POLL);
            }
            link_new_segments(&src, &dst);
        });
        SegmentKeeper {
            keep_dir: keep_dir.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }

    /// Every measurement the agent spooled so far, by record id. Call it with the agent
    /// stopped (or killed) so no append races the read.
    pub fn spooled(&self) -> Result<BTreeMap<u64, Measurement>, OracleError> {
        link_now_and_read(&self.keep_dir)
    }
}

impl SegmentKeeper {
    /// Segment files kept so far (including ones the agent has since deleted).
    pub fn kept_files(&self) -> usize {
        std::fs::read_dir(&self.keep_dir).map_or(0, std::iter::Iterator::count)
    }
}

impl Drop for SegmentKeeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Links each `seg-*.log` not yet kept; the link name carries the inode so a segment file
/// re-created under the same name is kept separately.
fn link_new_segments(src: &Path, dst: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(src) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("seg-") && name.ends_with(".log")) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let target = dst.join(format!("{name}.{}", meta.ino()));
        if !target.exists() {
            // Losing the race with a deletion is possible only if the segment died within one
            // poll; the hole check in `spooled` reports that case.
            let _ = std::fs::hard_link(e.path(), &target);
        }
    }
}

fn link_now_and_read(keep_dir: &Path) -> Result<BTreeMap<u64, Measurement>, OracleError> {
    let mut out: BTreeMap<u64, Measurement> = BTreeMap::new();
    let entries = std::fs::read_dir(keep_dir).map_err(|source| OracleError::Io {
        path: keep_dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let path = e.path();
        let bytes = std::fs::read(&path).map_err(|source| OracleError::Io {
            path: path.clone(),
            source,
        })?;
        for (id, m) in decode_segment(&bytes) {
            match out.get(&id) {
                Some(prev) if *prev != m => {
                    return Err(OracleError::Conflict {
                        id,
                        a: Box::new(prev.clone()),
                        b: Box::new(m),
                    });
                }
                _ => {
                    out.insert(id, m);
                }
            }
        }
    }
    check_contiguous(&out)?;
    Ok(out)
}

/// Ids must run 1..=max without a hole.
fn check_contiguous(records: &BTreeMap<u64, Measurement>) -> Result<(), OracleError> {
    for (expect, &id) in (1u64..).zip(records.keys()) {
        if id != expect {
            return Err(OracleError::Hole {
                from: expect,
                to: id - 1,
            });
        }
    }
    Ok(())
}

/// Valid records of one segment file, stopping at the first incomplete or corrupt one.
pub fn decode_segment(bytes: &[u8]) -> Vec<(u64, Measurement)> {
    let mut out = Vec::new();
    if bytes.len() < HEADER || &bytes[..4] != b"ATSP" {
        return out;
    }
    let mut off = HEADER;
    while let Some(frame) = bytes.get(off..off + FRAME) {
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let mut idb = [0u8; 8];
        idb.copy_from_slice(&frame[8..16]);
        let id = u64::from_le_bytes(idb);
        let Some(payload) = bytes.get(off + FRAME..off + FRAME + len) else {
            break;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&idb);
        h.update(payload);
        if h.finalize() != crc {
            break;
        }
        let Ok(m) = serde_json::from_slice::<Measurement>(payload) else {
            break;
        };
        out.push((id, m));
        off += FRAME + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u64, m: &Measurement) -> Vec<u8> {
        let payload = serde_json::to_vec(m).unwrap();
        let mut h = crc32fast::Hasher::new();
        h.update(&id.to_le_bytes());
        h.update(&payload);
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn decodes_until_a_torn_tail() {
        let ts: jiff::Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let mut seg = b"ATSP\x01\0\0\0".to_vec();
        seg.extend(frame(1, &Measurement::new("a", ts, true)));
        seg.extend(frame(2, &Measurement::new("b", ts, false)));
        let third = frame(3, &Measurement::new("c", ts, true));
        seg.extend_from_slice(&third[..third.len() - 3]);
        let got = decode_segment(&seg);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, 2);
        assert_eq!(got[1].1.check, "b");
        // A flipped payload byte stops decoding at that record.
        let mut bad = b"ATSP\x01\0\0\0".to_vec();
        let mut f = frame(1, &Measurement::new("a", ts, true));
        let last = f.len() - 2;
        f[last] ^= 0x20;
        bad.extend(f);
        assert!(decode_segment(&bad).is_empty());
    }

    #[test]
    fn holes_are_reported() {
        let ts: jiff::Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let mut m = BTreeMap::new();
        m.insert(1, Measurement::new("a", ts, true));
        m.insert(4, Measurement::new("a", ts, true));
        match check_contiguous(&m) {
            Err(OracleError::Hole { from: 2, to: 3 }) => {}
            other => panic!("{other:?}"),
        }
    }
}
