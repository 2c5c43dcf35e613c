//! The failure detail behind an incident's reason: the rollups keep only a minute's top
//! reason code (`status`), so the human detail the probe gave (`status 503`,
//! `connect timeout`) is read back from the raw measurements of the incident's first hour.
//!
//! Invariants:
//! - Reads only, and only a bounded span (`DETAIL_SPAN` from the incident's start), so a
//!   long incident costs no more than a short one.
//! - The detail is the most common `error` text among the failed measurements of the
//!   service's checks whose reason is the incident's reason (ties: the smallest text), so it
//!   never contradicts the code beside it.
//! - `None` when nothing is left to read (raw retention removed it) or no failure carried a
//!   text: the report then shows the code alone, as before.

use std::collections::BTreeMap;

use attest_config::wire::FailureReason;
use jiff::{SignedDuration, Timestamp};

use super::{Figures, store_err};
use crate::reject::Rejection;

/// How much of an incident is read for its detail: the first hour says what failed.
const DETAIL_SPAN: SignedDuration = SignedDuration::from_hours(1);

impl Figures {
    /// The most common failure text of `checks` in `[start, end)` (at most `DETAIL_SPAN`)
    /// among failures with reason `reason` (`None`: any reason).
    pub fn failure_detail(
        &self,
        checks: &[String],
        (start, end): (Timestamp, Timestamp),
        reason: Option<&str>,
    ) -> Result<Option<String>, Rejection> {
        let to = end.min(start.saturating_add(DETAIL_SPAN).unwrap_or(end));
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for check in checks {
            for (_, m) in self
                .store
                .raw_measurements(check, start, to)
                .map_err(store_err)?
            {
                if m.ok || !same_reason(m.reason, reason) {
                    continue;
                }
                if let Some(text) = m.error.filter(|t| !t.trim().is_empty()) {
                    *counts.entry(text).or_default() += 1;
                }
            }
        }
        Ok(most_common(counts))
    }
}

fn same_reason(got: Option<FailureReason>, want: Option<&str>) -> bool {
    match want {
        None => true,
        Some(w) => got.map(FailureReason::as_str) == Some(w),
    }
}

/// The text seen most often; ties go to the smallest text (the map is ordered).
fn most_common(counts: BTreeMap<String, u64>) -> Option<String> {
    let mut best: Option<(String, u64)> = None;
    for (text, n) in counts {
        if best.as_ref().is_none_or(|(_, b)| n > *b) {
            best = Some((text, n));
        }
    }
    best.map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use attest_config::CollectorConfig;

    use super::*;
    use crate::store::contract::{BASE_MINUTE, at, batch, fail, ok};
    use crate::store::{SqliteStore, Store};

    fn failed(minute: i64, reason: FailureReason, text: &str) -> attest_config::wire::Measurement {
        let mut m = fail("web", minute, 0, Some(reason));
        m.error = Some(text.into());
        m
    }

    /// Read from a real store, through rows and through a compacted block: the text of the
    /// incident's reason wins over a more frequent text of another reason, and nothing
    /// after the first hour is read.
    #[test]
    fn the_detail_comes_from_the_raw_measurements_of_the_first_hour() {
        let cfg: Arc<CollectorConfig> = Arc::new(
            attest_config::parse_collector(
                "t.toml",
                "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
                 data_dir = \"/nonexistent\"\n[[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
                 [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"99.9%\"\n",
            )
            .expect("config"),
        );
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
        let mut ms = vec![ok("web", 0, 0, 0.1)];
        ms.extend((10..13).map(|m| failed(m, FailureReason::Status, "status 503")));
        ms.push(failed(13, FailureReason::Status, "status 500"));
        ms.extend((14..20).map(|m| failed(m, FailureReason::Timeout, "connect timeout")));
        // After the first hour: never read.
        ms.extend((80..90).map(|m| failed(m, FailureReason::Status, "status 502")));
        store.commit_batch(&batch("a1", 1, ms)).expect("commit");
        let figures = Figures::new(cfg, store.clone());
        let checks = vec!["web".to_string()];
        let span = (at(10, 0), at(90, 0));
        let got = |reason| figures.failure_detail(&checks, span, reason).expect("read");
        assert_eq!(got(Some("status")).as_deref(), Some("status 503"));
        assert_eq!(got(Some("timeout")).as_deref(), Some("connect timeout"));
        assert_eq!(got(Some("dns")), None);
        let moved = store.compact(BASE_MINUTE + 24 * 60).expect("compact");
        assert!(moved > 0, "the hours were compacted");
        assert_eq!(
            got(Some("status")).as_deref(),
            Some("status 503"),
            "from blocks"
        );
    }

    #[test]
    fn the_most_common_text_wins_and_ties_go_to_the_smallest() {
        let m: BTreeMap<String, u64> = [("status 503".into(), 4), ("status 500".into(), 4)]
            .into_iter()
            .collect();
        assert_eq!(most_common(m).as_deref(), Some("status 500"));
        let m: BTreeMap<String, u64> = [("status 503".into(), 5), ("status 500".into(), 4)]
            .into_iter()
            .collect();
        assert_eq!(most_common(m).as_deref(), Some("status 503"));
        assert_eq!(most_common(BTreeMap::new()), None);
    }

    #[test]
    fn only_failures_of_the_incident_reason_count() {
        assert!(same_reason(Some(FailureReason::Status), Some("status")));
        assert!(!same_reason(Some(FailureReason::Timeout), Some("status")));
        assert!(!same_reason(None, Some("status")));
        assert!(same_reason(None, None));
    }
}
