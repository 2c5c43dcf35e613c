//! Segment files: naming, listing, validating scans at open, sequential reads, appends.
//!
//! A segment is named `seg-<first record id, 20 digits>.log`; ids inside a segment are
//! consecutive from that first id. Only the newest segment is ever appended to; older ones are
//! sealed and only read or deleted whole. Invariant: [`Segment::len`] and [`Segment::end`]
//! describe a prefix of the file that passed its checksums; nothing past `len` is ever read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::record::{self, Decoded, RawRecord, SEGMENT_HEADER_LEN};

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".log";

/// A segment as known in memory.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    /// Id of the first record (from the file name).
    pub first: u64,
    /// One past the id of the last valid record (`first` when empty).
    pub end: u64,
    /// Length of the valid prefix, header included.
    pub len: u64,
}

pub fn file_name(first: u64) -> String {
    format!("{PREFIX}{first:020}{SUFFIX}")
}

/// The first id encoded in a segment file name, or `None` for any other file.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir`, ordered by first id. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_name) {
            out.push((first, entry.path()));
        }
    }
    out.sort_by_key(|(first, _)| *first);
    Ok(out)
}

/// Result of validating one segment file.
#[derive(Debug)]
pub struct Scanned {
    pub segment: Segment,
    /// The header was missing or unknown: the file holds nothing usable.
    pub bad_header: bool,
    /// Bytes after the valid prefix that do not form records (torn or corrupt).
    pub corrupt_tail: bool,
    /// Physical file length before any repair.
    pub file_len: u64,
}

/// Reads a whole segment, checking every record's checksum and id sequence, calling `visit`
/// with each valid record and its offset. Stops at the first invalid byte. Memory use is one
/// record at a time.
pub fn scan(
    path: &Path,
    first: u64,
    mut visit: impl FnMut(&RawRecord, u64),
) -> io::Result<Scanned> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    let header_ok =
        io::Read::read_exact(&mut r, &mut header).is_ok() && record::header_is_valid(&header);
    let mut segment = Segment {
        path: path.to_path_buf(),
        first,
        end: first,
        len: if header_ok { SEGMENT_HEADER_LEN } else { 0 },
    };
    if !header_ok {
        return Ok(Scanned {
            segment,
            bad_header: true,
            corrupt_tail: false,
            file_len,
        });
    }
    loop {
        match record::decode(&mut r)? {
            Decoded::Record(rec) if rec.id == segment.end => {
                visit(&rec, segment.len);
                segment.len += rec.frame_len();
                segment.end += 1;
            }
            Decoded::End => break,
            Decoded::Record(_) | Decoded::Corrupt => break,
        }
    }
    let corrupt_tail = segment.len < file_len;
    Ok(Scanned {
        segment,
        bad_header: false,
        corrupt_tail,
        file_len,
    })
}

/// Sequential reader over one segment starting at a record boundary.
pub struct Reader {
    r: BufReader<File>,
    pub offset: u64,
    limit: u64,
}

impl Reader {
    /// Reads from `offset` up to the segment's valid length.
    pub fn open(seg: &Segment, offset: u64) -> io::Result<Reader> {
        let mut file = File::open(&seg.path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Reader {
            r: BufReader::with_capacity(64 * 1024, file),
            offset,
            limit: seg.len,
        })
    }

    /// The next record, `End` at the valid length, `Corrupt` if the bytes changed since the
    /// scan (e.g. bit rot); the caller then skips the rest of the segment.
    pub fn next(&mut self) -> io::Result<Decoded> {
        if self.offset >= self.limit {
            return Ok(Decoded::End);
        }
        let d = record::decode(&mut self.r)?;
        if let Decoded::Record(rec) = &d {
            self.offset += rec.frame_len();
            if self.offset > self.limit {
                return Ok(Decoded::Corrupt);
            }
        }
        Ok(d)
    }
}

/// Creates an empty segment starting at `first` and makes the file and its directory entry
/// durable before any record is written to it.
pub fn create(dir: &Path, first: u64) -> io::Result<(Segment, File)> {
    let path = dir.join(file_name(first));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&record::segment_header())?;
    f.sync_all()?;
    super::meta::sync_dir(dir)?;
    let seg = Segment {
        path,
        first,
        end: first,
        len: SEGMENT_HEADER_LEN,
    };
    Ok((seg, f))
}

/// Opens an existing segment for appending at its valid length, cutting off anything after it
/// (a torn tail) and making that cut durable.
pub fn open_for_append(seg: &Segment) -> io::Result<File> {
    let mut f = OpenOptions::new().write(true).open(&seg.path)?;
    if f.metadata()?.len() != seg.len {
        f.set_len(seg.len)?;
        f.sync_all()?;
    }
    f.seek(SeekFrom::Start(seg.len))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(file_name(42), "seg-00000000000000000042.log");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("seg-42.log"), None);
        assert_eq!(parse_name("seg-0000000000000000004x.log"), None);
        assert_eq!(parse_name("meta"), None);
    }

    #[test]
    fn scan_stops_at_wrong_id_and_reports_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, mut f) = create(dir.path(), 5).unwrap();
        let mut buf = Vec::new();
        record::encode(5, b"a", &mut buf);
        record::encode(6, b"b", &mut buf);
        record::encode(9, b"c", &mut buf); // out of sequence: must not be accepted
        f.write_all(&buf).unwrap();
        let mut seen = Vec::new();
        let s = scan(&seg.path, 5, |r, off| seen.push((r.id, off))).unwrap();
        assert_eq!(seen, vec![(5, 8), (6, 8 + 17)]);
        assert_eq!(s.segment.end, 7);
        assert_eq!(s.segment.len, 8 + 17 + 17);
        assert!(s.corrupt_tail);
        assert!(!s.bad_header);
    }
}
