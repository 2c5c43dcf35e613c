//! Incremental evaluation: the engine's per-minute results of a service's *closed* minutes
//! (everything before a split about two hours behind `as_of`), kept by the caller and
//! passed back, so that a refresh reads and folds only the minutes after them.
//!
//! Why: a month of rollups is ~140 k agent-minutes per service; re-reading and re-folding
//! them on every refresh is what made a fleet refresh take tens of seconds, while only the
//! last minutes (and rare late data, which the caller detects with the store's change
//! journal) actually change.
//!
//! Invariants:
//! - A [`ClosedMinutes`] holds exactly what folding the rows of `[from, to)` gives: minute
//!   states, failing rows (for incident attribution) and the latency tally of the window's
//!   eligible minutes. Every fold is per minute or a sum, so appending the fold of later
//!   minutes is exact.
//! - It is reused only when everything it was built from is unchanged: same range start,
//!   quorum rule, latency window start, threshold and first exactly judged minute, and the
//!   same eligibility mask bit for
//!   bit (maintenance, service hours, first-seen and DST all live in the mask). Whether the
//!   rows and gaps changed is the caller's part (`Store::changed_since`).

use crate::minutes::{GapSpan, SeriesMinute, SeriesMinutes};

use super::timeline::{LatencyTally, LatencyWindow, QuorumRule, Timeline};

/// Minutes this far behind `as_of` (rounded down to the hour) are considered closed.
const OPEN_MINUTES: i64 = 120;

/// The folded results of the minutes `[from, to)` of one service's input range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClosedMinutes {
    // Visible inside the engine for `closed_codec` (the byte form); built only by `fold`.
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) rule: Option<QuorumRule>,
    pub(super) window_from: i64,
    pub(super) threshold_us: Option<u64>,
    pub(super) exact_from: Option<i64>,
    /// The eligibility mask of `[from, to)` it was built with, one bit per minute.
    pub(super) eligible: Vec<u64>,
    pub(super) states: Vec<u8>,
    /// Agents that had a column (sorted).
    pub(super) agents: Vec<String>,
    /// Rows with failures in `[from, to)`, without latency buckets.
    pub(super) failing: SeriesMinutes,
    pub(super) probes: u64,
    pub(super) within: u64,
    pub(super) histogram_probes: u64,
    /// Merged latency buckets, sparse: (bucket index, probes).
    pub(super) merged: Vec<(u32, u64)>,
}

impl ClosedMinutes {
    /// First minute not covered: the caller reads rows from here on.
    pub fn to(&self) -> i64 {
        self.to
    }

    pub fn from(&self) -> i64 {
        self.from
    }

    /// Approximate heap bytes held (for the cache's memory accounting in docs and logs).
    pub fn heap_bytes(&self) -> usize {
        self.eligible.len() * 8
            + self.states.len()
            + self.failing.rows.len() * std::mem::size_of::<SeriesMinute>()
            + self.merged.len() * 16
    }

    fn empty(from: i64, rule: QuorumRule, window: &LatencyWindow<'_>) -> ClosedMinutes {
        ClosedMinutes {
            from,
            to: from,
            rule: Some(rule),
            window_from: window.from,
            threshold_us: window.threshold_us,
            exact_from: window.exact_from(),
            ..ClosedMinutes::default()
        }
    }

    fn reusable(
        &self,
        from: i64,
        split: i64,
        mask: &[u8],
        rule: QuorumRule,
        w: &LatencyWindow<'_>,
    ) -> bool {
        self.from == from
            && self.to <= split
            && self.rule == Some(rule)
            && self.window_from == w.from
            && self.threshold_us == w.threshold_us
            && self.exact_from == w.exact_from()
            && mask
                .get(..(self.to - from) as usize)
                .is_some_and(|m| same_bits(m, &self.eligible))
    }
}

/// The split between closed and open minutes of `[from, as_of)`.
pub(crate) fn split(from: i64, as_of: i64) -> i64 {
    ((as_of - OPEN_MINUTES).div_euclid(60) * 60).clamp(from.min(as_of), as_of)
}

/// The result of folding the whole range with a reused prefix.
pub(crate) struct Folded {
    pub timeline: Timeline,
    pub tally: LatencyTally,
    /// The failing rows `timeline.failing` indexes.
    pub failing: SeriesMinutes,
    pub closed: ClosedMinutes,
}

/// Folds the minutes `[from, from + mask.len())`: with `prior`, reuses it and folds only the
/// `rollups` after it, or returns `None` when it does not apply; without, folds everything.
pub(crate) fn fold(
    from: i64,
    mask: &[u8],
    split: i64,
    (rollups, gaps): (&SeriesMinutes, &[GapSpan]),
    rule: QuorumRule,
    window: LatencyWindow<'_>,
    prior: Option<&ClosedMinutes>,
) -> Option<Folded> {
    let to = from + mask.len() as i64;
    let split = split.clamp(from, to);
    let mut closed = match prior {
        Some(p) if p.reusable(from, split, mask, rule, &window) => p.clone(),
        Some(_) => return None,
        None => ClosedMinutes::empty(from, rule, &window),
    };
    let piece = |a: i64, b: i64| {
        let m = &mask[(a - from) as usize..(b - from) as usize];
        Timeline::build_with_latency(a, m, rollups, gaps, rule, Some(window))
    };
    let (t, tally) = piece(closed.to, split);
    append(&mut closed, &t, &tally, rollups);
    closed.eligible = pack_bits(&mask[..(split - from) as usize]);
    let mut all = closed.clone();
    let (t, tally) = piece(split, to);
    append(&mut all, &t, &tally, rollups);
    let mut merged = vec![0u64; tally.merged.len()];
    for &(i, n) in &all.merged {
        if let Some(slot) = merged.get_mut(i as usize) {
            *slot += n;
        }
    }
    let timeline = Timeline {
        from,
        states: all.states,
        agents: all.agents,
        failing: (0..all.failing.rows.len()).collect(),
    };
    Some(Folded {
        timeline,
        tally: LatencyTally {
            probes: all.probes,
            within: all.within,
            histogram_probes: all.histogram_probes,
            merged,
        },
        failing: all.failing,
        closed,
    })
}

/// Appends the fold of the minutes right after `c` (timeline `t`, built from `rows`).
fn append(c: &mut ClosedMinutes, t: &Timeline, tally: &LatencyTally, rows: &SeriesMinutes) {
    c.states.extend_from_slice(&t.states);
    c.to = t.to();
    for a in &t.agents {
        if let Err(i) = c.agents.binary_search(a) {
            c.agents.insert(i, a.clone());
        }
    }
    for r in t.failing.iter().filter_map(|&k| rows.rows.get(k)) {
        push_failing(&mut c.failing, r, rows.agent(r.agent));
    }
    c.probes += tally.probes;
    c.within += tally.within;
    c.histogram_probes += tally.histogram_probes;
    let mut merged: Vec<(u32, u64)> = Vec::with_capacity(c.merged.len());
    let mut old = c.merged.iter().copied().peekable();
    for (i, n) in tally.merged.iter().enumerate().filter(|(_, n)| **n > 0) {
        let i = i as u32;
        while let Some(o) = old.next_if(|o| o.0 < i) {
            merged.push(o);
        }
        let prev = old.next_if(|o| o.0 == i).map_or(0, |o| o.1);
        merged.push((i, prev + n));
    }
    merged.extend(old);
    c.merged = merged;
}

/// Adds a failing row under agent `name`, keeping `failing.agents` sorted (re-indexing the
/// rows already there when a new agent sorts before others).
fn push_failing(failing: &mut SeriesMinutes, r: &SeriesMinute, name: &str) {
    let agent = match failing.agents.binary_search_by(|a| a.as_str().cmp(name)) {
        Ok(i) => i,
        Err(i) => {
            failing.agents.insert(i, name.to_owned());
            for row in &mut failing.rows {
                if row.agent as usize >= i {
                    row.agent += 1;
                }
            }
            i
        }
    };
    failing.rows.push(SeriesMinute {
        agent: agent as u32,
        lat_start: 0,
        lat_len: 0,
        ..*r
    });
}

fn pack_bits(mask: &[u8]) -> Vec<u64> {
    mask.chunks(64).map(pack_word).collect()
}

/// Whether `mask` packs to `words`, without packing it into a new vector.
fn same_bits(mask: &[u8], words: &[u64]) -> bool {
    mask.len().div_ceil(64) == words.len()
        && mask.chunks(64).zip(words).all(|(c, &w)| pack_word(c) == w)
}

/// Bit `i` set when byte `i` of `chunk` (at most 64 bytes) is non-zero; eight bytes at a
/// time, since a month's mask is ~45k bytes and is packed on every evaluation.
fn pack_word(chunk: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut word = 0u64;
    for (j, eight) in chunk.chunks(8).enumerate() {
        let x = match <[u8; 8]>::try_from(eight) {
            Ok(bytes) => u64::from_le_bytes(bytes),
            Err(_) => {
                let mut bytes = [0u8; 8];
                bytes[..eight.len()].copy_from_slice(eight);
                u64::from_le_bytes(bytes)
            }
        };
        // The high bit of each byte: set when the byte is non-zero.
        let nonzero = (((x & LOW7) + LOW7) | x) & HIGH;
        // Gathers the eight high bits (bytes 0..8) into the low byte, byte 0 lowest.
        let bits = ((nonzero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
        word |= u64::from(bits) << (8 * j);
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_two_hours_back_on_the_hour_within_the_range() {
        assert_eq!(split(0, 600), 480);
        assert_eq!(split(0, 659), 480);
        assert_eq!(split(0, 660), 540);
        assert_eq!(split(500, 560), 500, "clamped to the range start");
    }

    #[test]
    fn bits_pack_little_endian_per_word() {
        let mut mask = vec![0u8; 70];
        mask[0] = 1;
        mask[63] = 1;
        mask[64] = 2;
        assert_eq!(pack_bits(&mask), vec![1 | (1 << 63), 1]);
        assert!(same_bits(&mask, &[1 | (1 << 63), 1]));
        assert!(!same_bits(&mask, &[1 | (1 << 63), 1, 0]));
        assert!(!same_bits(&mask, &[1 | (1 << 63), 0]));
    }

    proptest::proptest! {
        /// The eight-at-a-time packing equals the bit-by-bit rule.
        #[test]
        fn packing_matches_bit_by_bit(mask in proptest::collection::vec(0u8..4, 0..300)) {
            let naive: Vec<u64> = mask
                .chunks(64)
                .map(|c| c.iter().enumerate().fold(0, |w, (i, &b)| w | (u64::from(b != 0) << i)))
                .collect();
            proptest::prop_assert_eq!(pack_bits(&mask), naive);
        }
    }
}
