//! Record framing of spool segments: what one measurement looks like on disk.
//!
//! A segment file is an 8-byte header (`ATSP` + format version, u32 LE) followed by records:
//!
//! ```text
//! len: u32 LE | crc32: u32 LE | id: u64 LE | payload: len bytes (JSON of a Measurement)
//! ```
//!
//! The payload is `serde_json`'s compact encoding of the `wire::Measurement`, the same bytes
//! serde writes for it inside a `wire::Batch`; the transport splices it into the request body
//! unchanged. Format version 1 has always stored exactly this, so segments written before the
//! transport sent stored bytes are read and sent the same way (no migration). A future change
//! of the payload encoding must bump [`FORMAT_VERSION`] and keep reading version 1.
//!
//! `crc32` (IEEE, `crc32fast`) covers `id` and `payload`, so a record whose id or bytes were
//! torn or flipped is rejected, not misread. Per-record overhead is [`FRAME_OVERHEAD`] = 16
//! bytes on top of the JSON. Invariant: a decoded record is exactly what was encoded, or
//! decoding reports it corrupt; decoding never panics and never allocates more than
//! [`MAX_PAYLOAD`] bytes for one record, whatever the input.

use std::io::{self, Read};

/// Segment header: magic plus format version; bumped on any incompatible change.
pub const SEGMENT_MAGIC: [u8; 4] = *b"ATSP";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: u64 = 8;

/// Bytes of framing per record (length, checksum, id).
pub const FRAME_OVERHEAD: u64 = 16;

/// Upper bound on one record's payload. Larger lengths can only come from corruption (append
/// refuses bigger measurements), so they are rejected before allocating.
pub const MAX_PAYLOAD: u32 = 1024 * 1024;

/// The bytes that start every segment file.
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Whether `bytes` is a segment header this build can read.
pub fn header_is_valid(bytes: &[u8]) -> bool {
    bytes.len() == SEGMENT_HEADER_LEN as usize && bytes == segment_header()
}

fn checksum(id: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the frame for (`id`, `payload`) to `out`. The caller has checked the payload size.
pub fn encode(id: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(id, payload).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record read back from a segment.
#[derive(Debug)]
pub struct RawRecord {
    pub id: u64,
    pub payload: Vec<u8>,
}

impl RawRecord {
    /// Bytes this record occupies in its segment, framing included.
    pub fn frame_len(&self) -> u64 {
        FRAME_OVERHEAD + self.payload.len() as u64
    }
}

/// What reading the next record found.
#[derive(Debug)]
pub enum Decoded {
    Record(RawRecord),
    /// Clean end of data: no byte after the previous record.
    End,
    /// Bytes are present but do not form a valid record (torn write, flipped bits, garbage).
    Corrupt,
}

/// Reads one record from `r`, which must be positioned at a record boundary.
/// I/O errors other than a short read are returned; a short read is `Corrupt` (torn tail).
pub fn decode(r: &mut impl Read) -> io::Result<Decoded> {
    let mut head = [0u8; FRAME_OVERHEAD as usize];
    let got = read_full(r, &mut head)?;
    if got == 0 {
        return Ok(Decoded::End);
    }
    if got < head.len() {
        return Ok(Decoded::Corrupt);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&head[8..16]);
    let id = u64::from_le_bytes(id_bytes);
    if len > MAX_PAYLOAD {
        return Ok(Decoded::Corrupt);
    }
    let mut payload = vec![0u8; len as usize];
    if read_full(r, &mut payload)? < payload.len() || checksum(id, &payload) != crc {
        return Ok(Decoded::Corrupt);
    }
    Ok(Decoded::Record(RawRecord { id, payload }))
}

/// Like `read_exact`, but reports how many bytes were read instead of failing on EOF.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(id, payload, &mut v);
        v
    }

    #[test]
    fn round_trip_then_clean_end() {
        let mut bytes = frame(7, b"{\"a\":1}");
        bytes.extend(frame(8, b""));
        let mut r = &bytes[..];
        match decode(&mut r).unwrap() {
            Decoded::Record(rec) => {
                assert_eq!(rec.id, 7);
                assert_eq!(rec.payload, b"{\"a\":1}");
                assert_eq!(rec.frame_len(), 16 + 7);
            }
            other => panic!("expected a record, got {other:?}"),
        }
        assert!(matches!(decode(&mut r).unwrap(), Decoded::Record(ref x) if x.id == 8));
        assert!(matches!(decode(&mut r).unwrap(), Decoded::End));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let good = frame(42, b"{\"check\":\"web\",\"ok\":true}");
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[byte] ^= 1 << bit;
                let mut r = &bad[..];
                let d = decode(&mut r).unwrap();
                assert!(
                    matches!(d, Decoded::Corrupt),
                    "flip of byte {byte} bit {bit} not detected: {d:?}"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_corrupt_not_a_record() {
        let good = frame(3, b"payload");
        for cut in 1..good.len() {
            let mut r = &good[..cut];
            assert!(
                matches!(decode(&mut r).unwrap(), Decoded::Corrupt),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn huge_length_is_rejected_without_allocating() {
        let mut bad = frame(1, b"x");
        bad[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = &bad[..];
        assert!(matches!(decode(&mut r).unwrap(), Decoded::Corrupt));
    }

    #[test]
    fn header_checks_magic_and_version() {
        assert!(header_is_valid(&segment_header()));
        let mut other = segment_header();
        other[4] = 2;
        assert!(!header_is_valid(&other));
        assert!(!header_is_valid(&segment_header()[..7]));
    }
}
