//! Turning dropped measurements into gap markers `(check, from, to, count)`.
//!
//! Invariant: a gap's `[from, to]` contains only dropped measurements of its check; a gap is
//! extended only while no measurement of that check was kept in between (the `open` index),
//! so merging never makes the collector treat a kept measurement's minute as unknown. After
//! a restart every loaded gap is closed (the index is empty), which may split a run into two
//! gaps but never widens one wrongly.

use std::collections::HashMap;

use attest_config::wire::Gap;
use jiff::Timestamp;

/// Gaps not yet attached to a batch, plus which of them may still be extended.
#[derive(Debug, Clone, Default)]
pub struct OpenGaps {
    /// Index into the gap list of the extendable gap of each check.
    open: HashMap<String, usize>,
}

impl OpenGaps {
    /// Counts one dropped measurement into `gaps`.
    pub fn record_drop(&mut self, gaps: &mut Vec<Gap>, check: &str, ts: Timestamp) {
        if let Some(g) = self.open.get(check).and_then(|&i| gaps.get_mut(i)) {
            g.from = g.from.min(ts);
            g.to = g.to.max(ts);
            g.count += 1;
            return;
        }
        gaps.push(Gap {
            check: check.to_string(),
            from: ts,
            to: ts,
            count: 1,
        });
        self.open.insert(check.to_string(), gaps.len() - 1);
    }

    /// A measurement of `check` was kept: later drops of it start a new gap.
    pub fn close(&mut self, check: &str) {
        self.open.remove(check);
    }

    /// The gap list was handed to a batch; nothing is extendable any more.
    pub fn clear(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn merges_runs_per_check_and_splits_after_close() {
        let mut gaps = Vec::new();
        let mut open = OpenGaps::default();
        open.record_drop(&mut gaps, "a", ts(10));
        open.record_drop(&mut gaps, "b", ts(11));
        open.record_drop(&mut gaps, "a", ts(20));
        open.close("a");
        open.record_drop(&mut gaps, "a", ts(40));
        assert_eq!(gaps.len(), 3);
        assert_eq!(
            (gaps[0].from, gaps[0].to, gaps[0].count),
            (ts(10), ts(20), 2)
        );
        assert_eq!((gaps[1].check.as_str(), gaps[1].count), ("b", 1));
        assert_eq!(
            (gaps[2].from, gaps[2].to, gaps[2].count),
            (ts(40), ts(40), 1)
        );
        open.clear();
        open.record_drop(&mut gaps, "b", ts(50));
        assert_eq!(gaps.len(), 4, "a cleared index starts a new gap");
    }
}
