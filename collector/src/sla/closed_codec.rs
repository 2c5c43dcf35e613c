//! The byte form of [`ClosedMinutes`], so that a collector can persist each service's
//! closed minutes and load them at start instead of re-reading a month of rows.
//!
//! Invariants:
//! - `decode(encode(c)) == c` for every value the engine builds (tested).
//! - `decode` never panics: anything malformed, truncated, from another format version or
//!   inconsistent (lengths that do not match the range, agent indexes out of bounds) is
//!   `None`, and the caller recomputes from the store. A wrong answer is impossible only
//!   as far as the bytes are the ones written: the file carries a checksum (see
//!   `figures::state`), and the caller checks the service definition's fingerprint.
//! - Little-endian, fixed-width integers; no allocation is sized from a length before the
//!   bytes for it are known to be there.

use attest_config::Quorum;
use attest_config::wire::FailureReason;

use super::closed::ClosedMinutes;
use super::timeline::QuorumRule;
use crate::minutes::{SeriesMinute, SeriesMinutes};

/// Bumped whenever the fields of [`ClosedMinutes`] or their meaning change.
const VERSION: u8 = 2;

/// Failure reasons by their stored index: the one table the store also uses.
use crate::minutes::REASON_CODES as REASONS;
const NO_REASON: u8 = 255;

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.str(s);
        }
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A count of items of at least `item` bytes each, refused when the rest is too short.
    fn count(&mut self, item: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(item)? <= self.0.len()).then_some(n)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str()).collect()
    }
}

fn put_rule(o: &mut Out, rule: Option<QuorumRule>) {
    let Some(r) = rule else {
        o.u8(0);
        return;
    };
    let (tag, n) = match r.quorum {
        Quorum::Any => (1, 0),
        Quorum::Majority => (2, 0),
        Quorum::All => (3, 0),
        Quorum::AtLeast(n) => (4, n),
    };
    o.u8(tag);
    o.u32(n);
    o.u32(r.min_reporters);
}

fn get_rule(i: &mut In) -> Option<Option<QuorumRule>> {
    let tag = i.u8()?;
    if tag == 0 {
        return Some(None);
    }
    let n = i.u32()?;
    let quorum = match tag {
        1 => Quorum::Any,
        2 => Quorum::Majority,
        3 => Quorum::All,
        4 => Quorum::AtLeast(n),
        _ => return None,
    };
    let min_reporters = i.u32()?;
    Some(Some(QuorumRule {
        quorum,
        min_reporters,
    }))
}

fn reason_index(r: Option<FailureReason>) -> u8 {
    r.map_or(NO_REASON, |r| {
        REASONS
            .iter()
            .position(|x| *x == r)
            .map_or(NO_REASON - 1, |p| p as u8)
    })
}

fn put_failing(o: &mut Out, f: &SeriesMinutes) {
    o.strs(&f.agents);
    o.len(f.rows.len());
    for r in &f.rows {
        o.i64(r.minute);
        o.u32(r.agent);
        o.u32(r.probes);
        o.u32(r.failures);
        o.u8(reason_index(r.reason));
    }
}

fn get_failing(i: &mut In) -> Option<SeriesMinutes> {
    let agents = i.strs()?;
    let n = i.count(21)?;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let minute = i.i64()?;
        let agent = i.u32()?;
        let probes = i.u32()?;
        let failures = i.u32()?;
        let reason = match i.u8()? {
            NO_REASON => None,
            k => Some(*REASONS.get(k as usize)?),
        };
        if agent as usize >= agents.len() {
            return None;
        }
        rows.push(SeriesMinute {
            minute,
            agent,
            probes,
            failures,
            lat_start: 0,
            lat_len: 0,
            reason,
        });
    }
    Some(SeriesMinutes {
        agents,
        rows,
        latency: Vec::new(),
    })
}

impl ClosedMinutes {
    /// The byte form (see the module invariants).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out(Vec::with_capacity(
            self.states.len() + self.eligible.len() * 8 + 256,
        ));
        o.u8(VERSION);
        o.i64(self.from);
        o.i64(self.to);
        put_rule(&mut o, self.rule);
        o.i64(self.window_from);
        match self.threshold_us {
            Some(t) => {
                o.u8(1);
                o.u64(t);
            }
            None => o.u8(0),
        }
        match self.exact_from {
            Some(m) => {
                o.u8(1);
                o.i64(m);
            }
            None => o.u8(0),
        }
        o.len(self.eligible.len());
        for w in &self.eligible {
            o.u64(*w);
        }
        o.len(self.states.len());
        o.0.extend_from_slice(&self.states);
        o.strs(&self.agents);
        put_failing(&mut o, &self.failing);
        o.u64(self.probes);
        o.u64(self.within);
        o.u64(self.histogram_probes);
        o.len(self.merged.len());
        for (k, n) in &self.merged {
            o.u32(*k);
            o.u64(*n);
        }
        o.0
    }

    /// The value `bytes` encodes, or `None` when they are not a consistent encoding of
    /// this version.
    pub fn decode(bytes: &[u8]) -> Option<ClosedMinutes> {
        let mut i = In(bytes);
        if i.u8()? != VERSION {
            return None;
        }
        let from = i.i64()?;
        let to = i.i64()?;
        let rule = get_rule(&mut i)?;
        let window_from = i.i64()?;
        let threshold_us = match i.u8()? {
            0 => None,
            1 => Some(i.u64()?),
            _ => return None,
        };
        let exact_from = match i.u8()? {
            0 => None,
            1 => Some(i.i64()?),
            _ => return None,
        };
        let n = i.count(8)?;
        let eligible = (0..n).map(|_| i.u64()).collect::<Option<Vec<_>>>()?;
        let n = i.count(1)?;
        let states = i.take(n)?.to_vec();
        let agents = i.strs()?;
        let failing = get_failing(&mut i)?;
        let probes = i.u64()?;
        let within = i.u64()?;
        let histogram_probes = i.u64()?;
        let n = i.count(12)?;
        let merged = (0..n)
            .map(|_| Some((i.u32()?, i.u64()?)))
            .collect::<Option<Vec<_>>>()?;
        let span = usize::try_from(to.checked_sub(from)?).ok()?;
        let consistent = i.0.is_empty()
            && states.len() == span
            && eligible.len() == span.div_ceil(64)
            && merged.windows(2).all(|w| w[0].0 < w[1].0);
        consistent.then_some(ClosedMinutes {
            from,
            to,
            rule,
            window_from,
            threshold_us,
            exact_from,
            eligible,
            states,
            agents,
            failing,
            probes,
            within,
            histogram_probes,
            merged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClosedMinutes {
        ClosedMinutes {
            from: 1_000,
            to: 1_070,
            rule: Some(QuorumRule {
                quorum: Quorum::AtLeast(2),
                min_reporters: 1,
            }),
            window_from: 1_010,
            threshold_us: Some(250_000),
            exact_from: Some(1_020),
            eligible: vec![u64::MAX, 0b101],
            states: (0..70u8).map(|i| i % 3).collect(),
            agents: vec!["a1".into(), "a2".into()],
            failing: SeriesMinutes {
                agents: vec!["a2".into()],
                rows: vec![SeriesMinute {
                    minute: 1_005,
                    agent: 0,
                    probes: 6,
                    failures: 6,
                    lat_start: 0,
                    lat_len: 0,
                    reason: Some(FailureReason::Timeout),
                }],
                latency: Vec::new(),
            },
            probes: 400,
            within: 390,
            histogram_probes: 12,
            merged: vec![(3, 100), (9, 300)],
        }
    }

    #[test]
    fn roundtrips() {
        let c = sample();
        assert_eq!(ClosedMinutes::decode(&c.encode()), Some(c));
        let empty = ClosedMinutes::default();
        assert_eq!(ClosedMinutes::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn every_truncation_and_a_wrong_version_are_refused() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert_eq!(ClosedMinutes::decode(&bytes[..n]), None, "cut at {n}");
        }
        let mut v = bytes.clone();
        v[0] = VERSION + 1;
        assert_eq!(ClosedMinutes::decode(&v), None);
        let mut long = bytes;
        long.push(0);
        assert_eq!(ClosedMinutes::decode(&long), None, "trailing bytes");
    }

    #[test]
    fn every_reason_has_an_index() {
        for r in REASONS {
            assert_ne!(reason_index(Some(r)), NO_REASON - 1);
        }
    }
}
