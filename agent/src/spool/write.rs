//! The write half of the spool: appending measurements durably within the byte cap, the
//! `when_full` policy that decides what is dropped, and turning drops into gaps.
//!
//! Invariant: an `Ok` from [`Spool::append`] means every kept record is fsynced and every
//! dropped measurement is counted and carried by a gap in a durable `meta` (see the module
//! header of `spool`).

use std::io::{self, Write};

use attest_config::WhenFull;
use attest_config::wire::Measurement;

use super::record::{self, FRAME_OVERHEAD};
use super::segment::{self, Segment};
use super::{Pos, ReadOut, Spool, SpoolError, io_err};

impl Spool {
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
        for h in &plan.drop_old.heads {
            open_gaps.record_drop(&mut new_meta.open_gaps, &h.check, h.ts);
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
        self.counters.dropped += drop_old.heads.len() as u64 + dropped_new.len() as u64;
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
}
