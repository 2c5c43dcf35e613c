//! The read half of the spool: cutting the next batch (stable until acked), acking it, and
//! the sequential record reader both halves use.
//!
//! Invariant: a cut batch carries the records' stored bytes; a record is in a batch only if
//! its payload decodes as a measurement, otherwise it is counted corrupt and skipped.

use attest_config::evidence::{BatchDigest, keys};
use attest_config::wire::Measurement;

use super::meta::Cut;
use super::record::{Decoded, FRAME_OVERHEAD, SEGMENT_HEADER_LEN};
use super::segment::Reader;
use super::{Head, PendingBatch, Pos, ReadOut, Region, Spool, SpoolError, io_err};

impl Spool {
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
        let cut_something = !out.heads.is_empty() || !gaps.is_empty();
        let prev = self.meta.chain_head.clone();
        if cut_something {
            new_meta.pending = Some(Cut {
                seq: self.meta.next_seq,
                first: self.meta.uncut_from,
                end: next_pos.id,
                gaps: gaps.clone(),
                prev: prev.clone(),
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
            measurements: out.items.finish(),
            gaps,
            prev: prev.as_deref().and_then(keys::parse_digest),
        };
        self.pending = Some(batch.clone());
        Ok(Some(batch))
    }

    /// [`Spool::ack_linked`] without a digest: the next batch starts a new chain. For tests
    /// and tools; the transport always passes the digest it signed.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        self.ack_linked(seq, None)
    }

    /// The collector durably committed batch `seq` (or it went to quarantine): its
    /// measurements may be deleted, and `digest` — the batch's digest — becomes the chain
    /// head the next cut batch links to, in the same durable `meta` write. Acking a seq that
    /// was already acked is a no-op (the transport may see a duplicate answer).
    pub fn ack_linked(&mut self, seq: u64, digest: Option<BatchDigest>) -> Result<(), SpoolError> {
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
        new_meta.chain_head = digest.map(|d| keys::hex(&d));
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

    /// Reads records sequentially from `pos`, stopping after `max` decodable measurements, once
    /// `byte_goal` bytes were consumed, or at id `until` (exclusive). Records that fail their
    /// checksum now (changed since the scan) are counted corrupt and the rest of their
    /// segment is skipped. Returns the position after the last consumed record.
    pub(super) fn read_from(
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
                o.heads.len() >= max || o.consumed_bytes >= byte_goal || at.id >= until
            };
            if done(&out, &at) {
                break;
            }
            let mut r = Reader::open(seg, at.off).map_err(io_err("read", &seg.path))?;
            while at.off < seg.len && !done(&out, &at) {
                match r.next().map_err(io_err("read", &seg.path))? {
                    Decoded::Record(rec) if rec.id == at.id => {
                        out.take(&rec.payload);
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
    pub(super) fn refresh_oldest_uncut(&mut self) {
        self.oldest_uncut_ts = None;
        if self.uncut.records == 0 {
            return;
        }
        match self.read_from(self.uncut_pos, 1, u64::MAX, u64::MAX) {
            Ok((_, out)) => self.oldest_uncut_ts = out.heads.first().map(|h| h.ts),
            Err(e) => tracing::warn!(error = %e, "could not read the oldest uncut measurement"),
        }
    }
}

impl ReadOut {
    /// Consumes one intact record: a payload that decodes is kept as stored (the decode is the
    /// check that the collector will accept it); one that does not is counted corrupt.
    fn take(&mut self, payload: &[u8]) {
        self.consumed_ids += 1;
        self.consumed_bytes += FRAME_OVERHEAD + payload.len() as u64;
        match serde_json::from_slice::<Measurement>(payload) {
            Ok(m) => {
                self.heads.push(Head {
                    check: m.check,
                    ts: m.ts,
                });
                self.items.push(payload);
            }
            Err(_) => self.corrupt += 1,
        }
    }
}
