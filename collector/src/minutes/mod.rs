//! The SLA engine's input rows: what the store builds and the engine reads. A leaf: it
//! imports only `attest_config` and external crates, so the engine (`sla`) can depend on it
//! without depending on the store.
//!
//! Vocabulary (one name per concept):
//! - a *series* is one check as measured by one agent;
//! - a [`SeriesMinute`] is one UTC minute of one series (probes, failures, top reason,
//!   latency buckets); [`SeriesMinutes`] is the set of them for some checks and minutes,
//!   agents as indices and latencies in one shared arena;
//! - a [`SeriesMinuteDetail`] is the same minute with names and a full histogram, for
//!   inspection and tests;
//! - a [`GapSpan`] is a span of minutes in which an agent reported dropping measurements;
//! - a [`HostMinute`] is one minute of one host value;
//! - [`latency`] is the bucket scheme every latency is kept in.
//!
//! Why the compact form: the engine reads a month of every service on every refresh; rows
//! with owned strings and a per-minute `Histogram` cost far more to build and to walk than
//! the verdicts and counts the engine actually uses.
//!
//! Invariants:
//! - Minutes are Unix minutes (`unix_seconds.div_euclid(60)`), UTC.
//! - `SeriesMinutes::agents` is sorted and unique; every `SeriesMinute::agent` indexes it.
//! - A row's latency buckets are `latency[lat_start .. lat_start + lat_len]`, sorted by
//!   bucket index, in the [`latency`] scheme, so they merge and compare exactly like
//!   `hdrhistogram` histograms with the same bounds.
//! - Converting [`SeriesMinuteDetail`]s keeps every figure the engine derives from them.

pub mod latency;

use attest_config::wire::FailureReason;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde::de::IntoDeserializer;

pub use latency::{Buckets, LatencyBucket};

/// Failure reasons by the index the store and the saved figures state write for them.
/// Append-only: new reasons go at the end, or stored data changes meaning.
pub const REASON_CODES: [attest_config::wire::FailureReason; 17] = [
    attest_config::wire::FailureReason::Dns,
    attest_config::wire::FailureReason::ConnectRefused,
    attest_config::wire::FailureReason::Connect,
    attest_config::wire::FailureReason::Timeout,
    attest_config::wire::FailureReason::Tls,
    attest_config::wire::FailureReason::CertExpiry,
    attest_config::wire::FailureReason::Status,
    attest_config::wire::FailureReason::Body,
    attest_config::wire::FailureReason::Header,
    attest_config::wire::FailureReason::Expect,
    attest_config::wire::FailureReason::DnsAnswer,
    attest_config::wire::FailureReason::NoReply,
    attest_config::wire::FailureReason::Threshold,
    attest_config::wire::FailureReason::Protocol,
    attest_config::wire::FailureReason::Redirects,
    attest_config::wire::FailureReason::Agent,
    attest_config::wire::FailureReason::Other,
];

/// One minute of one series (a check as seen by one agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesMinute {
    /// Unix minute.
    pub minute: i64,
    /// Index into [`SeriesMinutes::agents`].
    pub agent: u32,
    pub probes: u32,
    pub failures: u32,
    /// Start of this row's buckets in [`SeriesMinutes::latency`].
    pub lat_start: u32,
    /// Number of buckets; 0 when no successful probe had a duration.
    pub lat_len: u32,
    /// Most common failure reason of the minute (ties: smallest name).
    pub reason: Option<FailureReason>,
}

/// The minutes of the series of a set of checks over a range of minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesMinutes {
    pub agents: Vec<String>,
    pub rows: Vec<SeriesMinute>,
    pub latency: Vec<LatencyBucket>,
}

/// One minute of one series with names and a full histogram: the wide form, for
/// inspection reads and tests (the engine reads [`SeriesMinutes`]).
#[derive(Debug, Clone)]
pub struct SeriesMinuteDetail {
    pub check: String,
    pub agent: String,
    pub minute: i64,
    pub probes: u32,
    pub failures: u32,
    /// Most common failure reason in the minute (ties: lexicographically smallest).
    pub top_reason: Option<String>,
    /// Durations of successful probes, in microseconds.
    pub latency: Option<Histogram<u64>>,
}

/// A gap reported by an agent: measurements of `check` dropped in `[from_minute, to_minute]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapSpan {
    pub agent: String,
    pub check: String,
    pub from_minute: i64,
    pub to_minute: i64,
    pub count: u64,
}

/// The store's exact "within the latency threshold" counts for one threshold over a set of
/// checks, kept as corrections to the histogram: a probe's exact duration (µs) decides
/// only for probes in the threshold's own bucket, since every other bucket lies wholly
/// below or above the threshold. So `within = Σ probes in buckets ≤ bucket(threshold) −
/// over`, exactly, for every minute from `exact_from` on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThresholdOver {
    /// The threshold, in microseconds.
    pub threshold_us: u64,
    /// First minute whose counts are exact for this threshold; minutes before it (raw
    /// measurements already expired when the threshold was first tracked) are judged at
    /// the histogram's resolution. `None`: the store does not track this threshold.
    pub exact_from: Option<i64>,
    /// `(minute, probes)`, sorted by minute and unique: successful probes in the
    /// threshold's own bucket whose exact duration is over the threshold, summed over the
    /// series. A minute not listed has none.
    pub over: Vec<(i64, u64)>,
}

/// Host capacity value per agent, name, resource and minute.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMinute {
    pub agent: String,
    pub name: String,
    pub resource: String,
    pub minute: i64,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

impl SeriesMinutes {
    /// The latency buckets of `row`; empty when the row indexes outside the arena.
    pub fn buckets(&self, row: &SeriesMinute) -> &[LatencyBucket] {
        let start = row.lat_start as usize;
        self.latency
            .get(start..start.saturating_add(row.lat_len as usize))
            .unwrap_or(&[])
    }

    /// The name of agent `index`, or `""` for an index outside the list.
    pub fn agent(&self, index: u32) -> &str {
        self.agents.get(index as usize).map_or("", String::as_str)
    }

    /// The compact form of detailed minutes (for backends' tests and the engine's tests).
    /// A top reason that names no known reason becomes `other`.
    pub fn from_details(details: &[SeriesMinuteDetail]) -> SeriesMinutes {
        let mut agents: Vec<String> = details.iter().map(|r| r.agent.clone()).collect();
        agents.sort_unstable();
        agents.dedup();
        let mut out = SeriesMinutes {
            agents,
            ..SeriesMinutes::default()
        };
        for r in details {
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
    pub fn push(
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
    pub fn push_row(
        &mut self,
        minute: i64,
        agent: u32,
        (probes, failures): (u32, u32),
        reason: Option<FailureReason>,
        lat_start: usize,
    ) {
        let lat_len = self.latency.len().saturating_sub(lat_start);
        self.rows.push(SeriesMinute {
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

/// The reason with the stable name `name` (as in reports and metric labels), else `other`.
fn reason_named(name: &str) -> FailureReason {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.into_deserializer();
    FailureReason::deserialize(de).unwrap_or(FailureReason::Other)
}

#[cfg(test)]
mod tests {
    use super::latency::{bucket_of, new_histogram};
    use super::*;

    fn detail(
        agent: &str,
        minute: i64,
        reason: Option<&str>,
        lat_us: &[u64],
    ) -> SeriesMinuteDetail {
        let latency = (!lat_us.is_empty()).then(|| {
            let mut h = new_histogram();
            for v in lat_us {
                h.record(*v).expect("in range");
            }
            h
        });
        SeriesMinuteDetail {
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
    fn from_details_indexes_sorted_agents_and_keeps_buckets() {
        let rows = [
            detail("b", 10, None, &[1000, 1000, 250_000]),
            detail("a", 11, Some("dns"), &[]),
            detail("b", 12, Some("no such reason"), &[5]),
        ];
        let c = SeriesMinutes::from_details(&rows);
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
        assert_eq!(first[0].index, bucket_of(1000));
        assert!(c.buckets(&c.rows[1]).is_empty());
        assert_eq!(c.buckets(&c.rows[2]).len(), 1);
    }

    #[test]
    fn every_reason_is_found_by_its_name() {
        for r in [
            FailureReason::Dns,
            FailureReason::ConnectRefused,
            FailureReason::CertExpiry,
            FailureReason::DnsAnswer,
            FailureReason::NoReply,
            FailureReason::Other,
        ] {
            assert_eq!(reason_named(r.as_str()), r);
        }
    }
}
