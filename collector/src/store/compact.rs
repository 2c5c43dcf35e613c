//! The compact store → SLA engine form of minute rollups: one small fixed-size row per
//! (check, agent, minute), agents as indices, the top failure reason as an enum, and the
//! latency of successful probes as sparse `hdrhistogram` buckets in one shared arena.
//!
//! Why: the engine reads a month of every service on every refresh; rows with owned
//! strings and a per-minute `Histogram` cost far more to build and to walk than the
//! verdicts and counts the engine actually uses.
//!
//! Invariants:
//! - `agents` is sorted and unique; every `CompactRow::agent` indexes it.
//! - A row's latency buckets are `latency[lat_start .. lat_start + lat_len]`, sorted by
//!   bucket index, with the store's bucketing (lowest 1 µs, 2 significant digits), so they
//!   merge and compare exactly like the store's histograms.
//! - Converting [`MinuteRollup`]s keeps every figure the engine derives from them.

use attest_config::wire::FailureReason;
use hdrhistogram::Histogram;

use super::MinuteRollup;
use super::codec::{self, Buckets};

/// One `hdrhistogram` bucket of recorded latencies: bucket index and probe count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyBucket {
    pub index: u32,
    pub count: u32,
}

/// One check's minute as seen by one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactRow {
    /// Unix minute.
    pub minute: i64,
    /// Index into [`CompactRollups::agents`].
    pub agent: u32,
    pub probes: u32,
    pub failures: u32,
    /// Start of this row's buckets in [`CompactRollups::latency`].
    pub lat_start: u32,
    /// Number of buckets; 0 when no successful probe had a duration.
    pub lat_len: u32,
    /// Most common failure reason of the minute (ties: smallest name).
    pub reason: Option<FailureReason>,
}

/// Minute rollups of a set of checks over a range of minutes, in compact form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRollups {
    pub agents: Vec<String>,
    pub rows: Vec<CompactRow>,
    pub latency: Vec<LatencyBucket>,
}

impl CompactRollups {
    /// The latency buckets of `row`; empty when the row indexes outside the arena.
    pub fn buckets(&self, row: &CompactRow) -> &[LatencyBucket] {
        let start = row.lat_start as usize;
        self.latency
            .get(start..start.saturating_add(row.lat_len as usize))
            .unwrap_or(&[])
    }

    /// The name of agent `index`, or `""` for an index outside the list.
    pub fn agent(&self, index: u32) -> &str {
        self.agents.get(index as usize).map_or("", String::as_str)
    }

    /// The compact form of full rollups (for backends without a native compact read, and
    /// for tests). A top reason that names no known reason becomes `other`.
    pub fn from_rollups(rollups: &[MinuteRollup]) -> CompactRollups {
        let mut agents: Vec<String> = rollups.iter().map(|r| r.agent.clone()).collect();
        agents.sort_unstable();
        agents.dedup();
        let mut out = CompactRollups {
            agents,
            ..CompactRollups::default()
        };
        for r in rollups {
            let agent = out.agents.binary_search(&r.agent).map_or(0, |i| i as u32);
            let buckets = r
                .latency
                .as_ref()
                .map(Buckets::from_histogram)
                .unwrap_or_default();
            let reason = r.top_reason.as_deref().map(reason_named);
            out.push(r.minute, agent, r.probes, r.failures, reason, &buckets);
        }
        out
    }

    /// Appends a row and its buckets (counts saturate at `u32::MAX`).
    pub(crate) fn push(
        &mut self,
        minute: i64,
        agent: u32,
        probes: u32,
        failures: u32,
        reason: Option<FailureReason>,
        latency: &Buckets,
    ) {
        let lat_start = self.latency.len();
        self.latency
            .extend(latency.iter().map(|(index, count)| LatencyBucket {
                index,
                count: u32::try_from(count).unwrap_or(u32::MAX),
            }));
        self.push_row(minute, agent, (probes, failures), reason, lat_start);
    }

    /// Appends a row whose buckets are `latency[lat_start..]`, already appended.
    pub(crate) fn push_row(
        &mut self,
        minute: i64,
        agent: u32,
        (probes, failures): (u32, u32),
        reason: Option<FailureReason>,
        lat_start: usize,
    ) {
        let lat_len = self.latency.len().saturating_sub(lat_start);
        self.rows.push(CompactRow {
            minute,
            agent,
            probes,
            failures,
            lat_start: u32::try_from(lat_start).unwrap_or(u32::MAX),
            lat_len: u32::try_from(lat_len).unwrap_or(0),
            reason,
        });
    }
}

fn reason_named(name: &str) -> FailureReason {
    (0..codec::REASON_COUNT as u64)
        .filter_map(|c| codec::reason_from_code(c).ok())
        .find(|r| r.as_str() == name)
        .unwrap_or(FailureReason::Other)
}

/// The bucket holding a latency of `us` microseconds (clamped to the tracked range).
pub fn latency_bucket_of(us: u64) -> u32 {
    let us = us.clamp(codec::LATENCY_LOWEST_US, codec::LATENCY_HIGHEST_US);
    u32::try_from(codec::bucket_index(us)).unwrap_or(u32::MAX)
}

/// Number of distinct buckets: a dense counts array of this length holds any histogram.
pub fn latency_bucket_count() -> usize {
    codec::bucket_index(codec::LATENCY_HIGHEST_US) as usize + 1
}

/// A histogram of dense per-bucket counts (index = bucket), for percentiles with the exact
/// semantics of `hdrhistogram`; `None` when every count is 0.
pub fn histogram_of_dense(counts: &[u64]) -> Option<Histogram<u64>> {
    let mut b = Buckets::default();
    for (index, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        // Indices come from the enumeration in ascending order, within the dense range.
        if b.push(index as u64, *count).is_err() {
            break;
        }
    }
    b.to_histogram()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollup(agent: &str, minute: i64, reason: Option<&str>, lat_us: &[u64]) -> MinuteRollup {
        let latency = (!lat_us.is_empty()).then(|| {
            let mut h = codec::new_latency_histogram();
            for v in lat_us {
                h.record(*v).expect("in range");
            }
            h
        });
        MinuteRollup {
            check: "c".into(),
            agent: agent.into(),
            minute,
            probes: 3,
            failures: u32::from(reason.is_some()),
            top_reason: reason.map(str::to_owned),
            latency,
        }
    }

    #[test]
    fn from_rollups_indexes_sorted_agents_and_keeps_buckets() {
        let rows = [
            rollup("b", 10, None, &[1000, 1000, 250_000]),
            rollup("a", 11, Some("dns"), &[]),
            rollup("b", 12, Some("no such reason"), &[5]),
        ];
        let c = CompactRollups::from_rollups(&rows);
        assert_eq!(c.agents, ["a", "b"]);
        assert_eq!(
            c.rows
                .iter()
                .map(|r| (r.agent, r.minute))
                .collect::<Vec<_>>(),
            [(1, 10), (0, 11), (1, 12)]
        );
        assert_eq!(c.rows[1].reason, Some(FailureReason::Dns));
        assert_eq!(c.rows[2].reason, Some(FailureReason::Other));
        let first = c.buckets(&c.rows[0]);
        assert_eq!(first.iter().map(|b| b.count).sum::<u32>(), 3);
        assert_eq!(first[0].index, latency_bucket_of(1000));
        assert!(c.buckets(&c.rows[1]).is_empty());
        assert_eq!(c.buckets(&c.rows[2]).len(), 1);
    }

    #[test]
    fn dense_histogram_matches_direct_recording() {
        let values = [1u64, 37, 999, 1000, 1001, 123_456, 3_000_000];
        let mut dense = vec![0u64; latency_bucket_count()];
        let mut direct = codec::new_latency_histogram();
        for v in values {
            dense[latency_bucket_of(v) as usize] += 2;
            direct.record_n(v, 2).expect("in range");
        }
        let h = histogram_of_dense(&dense).expect("not empty");
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(h.value_at_quantile(q), direct.value_at_quantile(q), "q={q}");
        }
        assert!(histogram_of_dense(&[0, 0]).is_none());
    }
}
