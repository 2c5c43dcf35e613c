//! The spool's cursor file (`meta`): which batch is cut, where uncut data starts, which gaps
//! are waiting to be sent, and the next batch seq.
//!
//! On disk: `ATSM` | crc32 (u32 LE) of the body | body (JSON of [`Meta`]). It is replaced
//! atomically: write `meta.tmp`, fsync it, rename over `meta`, fsync the directory. So after
//! any crash `meta` is either the old or the new version, never a mix. Invariant: `meta` is
//! made durable *before* any segment is deleted and before a cut batch is handed out, so the
//! data files always hold at least what `meta` refers to.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use attest_config::wire::Gap;
use serde::{Deserialize, Serialize};

pub const META_FILE: &str = "meta";
pub const META_TMP_FILE: &str = "meta.tmp";
const META_MAGIC: [u8; 4] = *b"ATSM";

/// A batch that was handed to the transport and is not acked yet. Its content is defined by
/// the record id range, so re-reading it after a restart yields the same measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut {
    pub seq: u64,
    /// First record id of the batch.
    pub first: u64,
    /// One past the last record id of the batch.
    pub end: u64,
    /// Gaps sent with this batch.
    pub gaps: Vec<Gap>,
    /// The previous batch's digest (hex) this batch is chained to; absent at a chain start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub version: u32,
    /// Seq the next cut batch gets; never decreases.
    pub next_seq: u64,
    /// Records with id below this are acked, dropped or in `pending`.
    pub uncut_from: u64,
    pub pending: Option<Cut>,
    /// Drops not yet attached to a cut batch.
    pub open_gaps: Vec<Gap>,
    /// Digest (hex) of the newest batch that left the spool by an ack (the collector's or
    /// quarantine's): the next cut batch is chained to it. `None` starts a new chain (a new
    /// spool, a lost `meta`, or an ack without a digest). Older agents' files lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_head: Option<String>,
}

impl Meta {
    pub fn fresh() -> Meta {
        Meta {
            version: 1,
            next_seq: 1,
            uncut_from: 1,
            pending: None,
            open_gaps: Vec::new(),
            chain_head: None,
        }
    }

    /// Whether the fields are mutually consistent; an inconsistent file is treated as corrupt.
    pub fn is_consistent(&self) -> bool {
        let cut_ok = self.pending.as_ref().is_none_or(|c| {
            c.first <= c.end && c.end <= self.uncut_from && c.seq < self.next_seq && c.seq > 0
        });
        self.version == 1 && self.next_seq > 0 && self.uncut_from > 0 && cut_ok
    }
}

/// Outcome of reading `meta`.
#[derive(Debug)]
pub enum Loaded {
    Found(Meta),
    Missing,
    /// The file exists but fails its checksum, does not parse, or is inconsistent.
    Corrupt,
}

pub fn load(dir: &Path) -> io::Result<Loaded> {
    let bytes = match fs::read(dir.join(META_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(e),
    };
    Ok(decode(&bytes).map_or(Loaded::Corrupt, Loaded::Found))
}

fn decode(bytes: &[u8]) -> Option<Meta> {
    if bytes.len() < 8 || bytes[..4] != META_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = &bytes[8..];
    if crc32fast::hash(body) != crc {
        return None;
    }
    let meta: Meta = serde_json::from_slice(body).ok()?;
    meta.is_consistent().then_some(meta)
}

fn encode(meta: &Meta) -> Vec<u8> {
    // Serializing plain structs of strings, integers and timestamps cannot fail.
    let body = serde_json::to_vec(meta).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&META_MAGIC);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Atomically replaces `meta` (see the module header for the steps). Returns the file size.
pub fn store(dir: &Path, meta: &Meta) -> io::Result<u64> {
    let bytes = encode(meta);
    let tmp: PathBuf = dir.join(META_TMP_FILE);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(META_FILE))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Makes creations, renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Meta::fresh();
        m.next_seq = 9;
        m.uncut_from = 40;
        m.pending = Some(Cut {
            seq: 8,
            first: 10,
            end: 30,
            gaps: vec![],
            prev: Some("ab".repeat(32)),
        });
        m.chain_head = Some("cd".repeat(32));
        store(dir.path(), &m).unwrap();
        match load(dir.path()).unwrap() {
            Loaded::Found(got) => assert_eq!(got, m),
            other => panic!("expected meta, got {other:?}"),
        }
        assert!(!dir.path().join(META_TMP_FILE).exists());
    }

    #[test]
    fn flipped_byte_or_inconsistency_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &Meta::fresh()).unwrap();
        let path = dir.path().join(META_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(load(dir.path()).unwrap(), Loaded::Corrupt));

        let mut m = Meta::fresh();
        m.pending = Some(Cut {
            seq: 5,
            first: 1,
            end: 2,
            gaps: vec![],
            prev: None,
        });
        store(dir.path(), &m).unwrap();
        assert!(
            matches!(load(dir.path()).unwrap(), Loaded::Corrupt),
            "cut seq >= next_seq must be rejected"
        );
    }

    #[test]
    fn missing_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()).unwrap(), Loaded::Missing));
    }
}
