//! The change journal: which minutes of which checks' rollups and gaps were written after
//! a given point, so that readers (the figures cache) can keep results of minutes nobody
//! touched since and recompute only when late data, a replayed gap or retention changed
//! them.
//!
//! Invariants:
//! - Marks only grow. An entry written for a commit gets a mark `>=` every mark handed out
//!   before the entry was recorded, so a reader that took its mark before (or while) a
//!   commit ran always sees that commit as a change since its mark.
//! - The journal is conservative: when it cannot tell (entries dropped for memory, or a
//!   mark older than the journal itself) it answers "changed".
//! - Memory is bounded: at most [`MAX_ENTRIES_PER_CHECK`] entries per check.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::IngestBatch;

/// Per-check entries kept; older ones are dropped and answered conservatively. A refresh
/// runs about every second or 30 s, and each agent's batch adds one entry per check, so
/// this covers minutes of history even with many agents.
const MAX_ENTRIES_PER_CHECK: usize = 256;

/// A change to minutes `[from, to)` recorded with `mark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    mark: u64,
    from: i64,
    to: i64,
}

#[derive(Debug, Default)]
struct CheckLog {
    entries: VecDeque<Entry>,
    /// Entries with marks below this were dropped: a query from before it says "changed".
    dropped_below: u64,
}

/// In-memory journal of one store process (a reopened store starts empty at mark 0, and
/// readers start without a mark, so nothing older is trusted).
#[derive(Debug, Default)]
pub(crate) struct ChangeJournal {
    next: u64,
    checks: HashMap<String, CheckLog>,
    /// Changes to every check (retention), kept as a short list of ranges.
    all: VecDeque<Entry>,
    /// `all` entries with marks below this were dropped.
    all_dropped_below: u64,
}

impl ChangeJournal {
    /// The current mark: changes recorded from now on have a mark at least this large.
    pub(crate) fn mark(&self) -> u64 {
        self.next
    }

    /// Records that rollups or gaps of `check` in minutes `[from, to)` changed.
    pub(crate) fn record(&mut self, check: &str, from: i64, to: i64) {
        let mark = self.next;
        self.next += 1;
        let log = match self.checks.get_mut(check) {
            Some(log) => log,
            None => self.checks.entry(check.to_owned()).or_default(),
        };
        log.entries.push_back(Entry { mark, from, to });
        if log.entries.len() > MAX_ENTRIES_PER_CHECK
            && let Some(old) = log.entries.pop_front()
        {
            log.dropped_below = old.mark + 1;
        }
    }

    /// Records the minutes a committed batch touched (a resent batch is journaled too; that
    /// only costs a recompute).
    pub(crate) fn record_batch(&mut self, batch: &IngestBatch) {
        for (check, (lo, hi)) in touched(batch) {
            self.record(check, lo, hi.saturating_add(1));
        }
    }

    /// Records that minutes `[from, to)` of every check changed (retention deleted them).
    pub(crate) fn record_all(&mut self, from: i64, to: i64) {
        let mark = self.next;
        self.next += 1;
        self.all.push_back(Entry { mark, from, to });
        if self.all.len() > MAX_ENTRIES_PER_CHECK
            && let Some(old) = self.all.pop_front()
        {
            self.all_dropped_below = old.mark + 1;
        }
    }

    /// Whether any minute in `[from, to)` of `checks` may have changed at or after `since`.
    pub(crate) fn changed(&self, checks: &[String], since: u64, from: i64, to: i64) -> bool {
        let hits = |e: &Entry| e.mark >= since && e.from < to && from < e.to;
        if since > self.next || since < self.all_dropped_below || self.all.iter().any(hits) {
            return true;
        }
        checks.iter().any(|c| {
            self.checks
                .get(c.as_str())
                .is_some_and(|log| since < log.dropped_below || log.entries.iter().any(hits))
        })
    }
}

/// The minutes a batch touches, per check: its measurements' minutes and its gaps'
/// minutes, as `(lowest, highest)`.
fn touched(batch: &IngestBatch) -> BTreeMap<&str, (i64, i64)> {
    let mut touched: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let minutes = batch
        .measurements
        .iter()
        .map(|m| {
            let minute = m.ts.as_second().div_euclid(60);
            (m.check.as_str(), minute, minute)
        })
        .chain(batch.gaps.iter().map(|g| {
            let (a, z) = (
                g.from.as_second().div_euclid(60),
                g.to.as_second().div_euclid(60),
            );
            (g.check.as_str(), a.min(z), a.max(z))
        }));
    for (check, lo, hi) in minutes {
        let e = touched.entry(check).or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(names: &[&str]) -> Vec<String> {
        names.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn reports_only_overlapping_changes_of_the_asked_checks_after_the_mark() {
        let mut j = ChangeJournal::default();
        j.record("a", 100, 101);
        let mark = j.mark();
        assert!(
            !j.changed(&checks(&["a"]), mark, 0, 1000),
            "before the mark"
        );
        j.record("a", 500, 502);
        j.record("b", 10, 20);
        assert!(j.changed(&checks(&["a"]), mark, 0, 1000));
        assert!(j.changed(&checks(&["a"]), mark, 501, 502));
        assert!(!j.changed(&checks(&["a"]), mark, 0, 500), "ends before 500");
        assert!(!j.changed(&checks(&["a"]), mark, 502, 600), "starts at 502");
        assert!(!j.changed(&checks(&["c"]), mark, 0, 1000), "other check");
        assert!(j.changed(&checks(&["c", "b"]), mark, 0, 1000));
    }

    #[test]
    fn retention_changes_every_check_and_dropped_entries_answer_changed() {
        let mut j = ChangeJournal::default();
        let mark = j.mark();
        j.record_all(i64::MIN, 50);
        assert!(j.changed(&checks(&["x"]), mark, 0, 60));
        assert!(!j.changed(&checks(&["x"]), mark, 50, 60));
        let mark = j.mark();
        for i in 0..=MAX_ENTRIES_PER_CHECK as i64 {
            j.record("a", 1000 + i, 1001 + i);
        }
        assert!(
            j.changed(&checks(&["a"]), mark, 0, 10),
            "entries were dropped"
        );
        assert!(
            j.changed(&checks(&["a"]), mark + 1_000_000, 0, 10),
            "unknown mark"
        );
        assert!(!j.changed(&checks(&["a"]), j.mark(), 0, 10_000));
    }
}
