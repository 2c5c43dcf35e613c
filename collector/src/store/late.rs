//! What both backends' durable late-write logs share (SQLite `sqlite/late.rs`, PostgreSQL
//! `postgres/late.rs`): the late writes of one commit, and the compact form of the series
//! they went to. A reader that persisted results of old minutes (the figures' saved state)
//! asks the log after a restart whether anything of them was written since; the log is
//! written in the same transaction as the data it describes.
//!
//! Invariants:
//! - A write counts as late when its first minute is more than [`LATE_MINUTES`] behind the
//!   receipt minute of the batch that wrote it: readers persist only minutes older than
//!   twice that.
//! - A [`LateGroup`] covers every late write noted in it: its range is the union of their
//!   minutes and its series every series they wrote (conservative: a query may answer
//!   "changed" for a minute of the union nobody wrote, never "unchanged" for one written).

use std::collections::HashSet;

use super::LATE_MINUTES;
use super::codec::{CodecError, Reader, put_varint};

/// The late writes of one commit (or of one batch, before it joins its group): which
/// series, and the union of the minutes written.
#[derive(Debug, Default)]
pub(crate) struct LateGroup {
    series: Vec<i64>,
    from: i64,
    to: i64,
    /// The newest receipt minute of the batches that wrote late.
    logged: i64,
}

impl LateGroup {
    /// The first minute a batch received at `received_minute` does not write late.
    fn late_before(received_minute: i64) -> i64 {
        received_minute - LATE_MINUTES
    }

    /// Notes a write of `series` to minutes `[from, to)` by a batch received at
    /// `received_minute`, if any of them is late.
    pub(crate) fn note(&mut self, series: i64, from: i64, to: i64, received_minute: i64) {
        if from >= Self::late_before(received_minute) {
            return;
        }
        if self.series.is_empty() {
            (self.from, self.to, self.logged) = (from, to, received_minute);
        } else {
            self.from = self.from.min(from);
            self.to = self.to.max(to);
            self.logged = self.logged.max(received_minute);
        }
        self.series.push(series);
    }

    /// Adds the notes of a batch that committed inside the group.
    pub(crate) fn absorb(&mut self, other: LateGroup) {
        if other.series.is_empty() {
            return;
        }
        if self.series.is_empty() {
            *self = other;
            return;
        }
        self.from = self.from.min(other.from);
        self.to = self.to.max(other.to);
        self.logged = self.logged.max(other.logged);
        self.series.extend(other.series);
    }

    /// The log row of these writes, `(from, to, logged minute, series)`, the series as
    /// [`encode_series`]; `None` when nothing was written late.
    pub(crate) fn into_row(mut self) -> Option<(i64, i64, i64, Vec<u8>)> {
        if self.series.is_empty() {
            return None;
        }
        let series = encode_series(&mut self.series);
        Some((self.from, self.to, self.logged, series))
    }
}

/// Sorted, distinct series ids as delta varints (about 2 B per series).
pub(crate) fn encode_series(series: &mut Vec<i64>) -> Vec<u8> {
    series.sort_unstable();
    series.dedup();
    let mut out = Vec::with_capacity(series.len() * 2);
    let mut prev = 0i64;
    for &s in series.iter() {
        put_varint(&mut out, s.wrapping_sub(prev) as u64);
        prev = s;
    }
    out
}

/// Whether the series list `bytes` (from [`encode_series`]) holds any of `wanted`.
pub(crate) fn holds_any(bytes: &[u8], wanted: &HashSet<i64>) -> Result<bool, CodecError> {
    let mut r = Reader::new(bytes);
    let mut s = 0i64;
    while !r.is_empty() {
        s = s.wrapping_add(r.varint()? as i64);
        if wanted.contains(&s) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_row_holds_every_series_and_minute_noted_late() {
        let mut g = LateGroup::default();
        g.note(7, 1000, 1001, 1000 + LATE_MINUTES);
        assert!(g.series.is_empty(), "recent minutes are not late");
        g.note(9, 10, 11, 1000);
        let mut other = LateGroup::default();
        other.note(3, 20, 25, 1001);
        g.absorb(other);
        let (from, to, logged, series) = g.into_row().expect("late writes");
        assert_eq!((from, to, logged), (10, 25, 1001));
        let holds = |ids: &[i64]| holds_any(&series, &ids.iter().copied().collect()).expect("ok");
        assert!(holds(&[3]) && holds(&[9, 100]));
        assert!(!holds(&[7]) && !holds(&[4, 8]));
        assert!(LateGroup::default().into_row().is_none());
    }
}
