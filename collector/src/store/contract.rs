//! The behaviour every [`Store`] backend must show, as test cases over `&dyn InspectStore`
//! (the store plus the inspection read the cases compare against).
//! SQLite runs them now (`sqlite_tests`); the PostgreSQL backend runs the same cases with
//! `contract_tests!(|| Box::new(PgStore::connect(..)) as Box<dyn InspectStore>)`.
//!
//! Invariants:
//! - Each case gets a fresh, empty store and uses fixed UTC instants (no wall clock).
//! - Cases assert exact counts: anything counted twice or lost fails a case.

use std::collections::BTreeMap;

use attest_config::wire::{FailureReason, Gap, Measurement, Phase, SpoolStatus, Value};
use jiff::Timestamp;

use super::{IngestBatch, InspectStore, NewMaintenance, StoreCounts, StoreError};
use crate::minutes::{SeriesMinuteDetail, SeriesMinutes};

/// A Unix minute in 2026; every case works near it.
pub const BASE_MINUTE: i64 = 29_700_000;

/// The instant `sec` seconds into minute `BASE_MINUTE + minute`.
pub fn at(minute: i64, sec: i64) -> Timestamp {
    Timestamp::from_second((BASE_MINUTE + minute) * 60 + sec).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn ok(check: &str, minute: i64, sec: i64, seconds: f64) -> Measurement {
    let mut m = Measurement::new(check, at(minute, sec), true);
    m.duration_seconds = Some(seconds);
    m
}

pub fn fail(check: &str, minute: i64, sec: i64, reason: Option<FailureReason>) -> Measurement {
    let mut m = Measurement::new(check, at(minute, sec), false);
    m.duration_seconds = Some(5.0);
    m.reason = reason;
    m
}

pub fn batch(agent: &str, seq: u64, measurements: Vec<Measurement>) -> IngestBatch {
    IngestBatch {
        agent: agent.to_owned(),
        seq,
        received_at: at(0, 0),
        clock_offset_ms: 0,
        measurements,
        gaps: Vec::new(),
        spool: None,
        seal: None,
    }
}

fn checks(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn rollups(store: &dyn InspectStore, check: &str) -> Vec<SeriesMinuteDetail> {
    store
        .series_minute_details(
            &checks(&[check]),
            BASE_MINUTE - 100_000,
            BASE_MINUTE + 100_000,
        )
        .expect("series_minute_details")
}

fn probes_by_minute(store: &dyn InspectStore, check: &str) -> Vec<(i64, u32, u32)> {
    rollups(store, check)
        .iter()
        .map(|r| (r.minute - BASE_MINUTE, r.probes, r.failures))
        .collect()
}

/// A resent batch changes nothing and says so.
pub fn idempotent_resend(store: &dyn InspectStore) {
    let b = batch(
        "a1",
        1,
        vec![
            ok("web", 0, 0, 0.01),
            ok("web", 0, 10, 0.02),
            fail("web", 0, 20, None),
        ],
    );
    let first = store.commit_batch(&b).expect("commit");
    assert!(!first.duplicate_batch);
    assert_eq!((first.stored, first.duplicate_measurements), (3, 0));
    let again = store.commit_batch(&b).expect("resend");
    assert!(again.duplicate_batch);
    assert_eq!((again.stored, again.duplicate_measurements), (0, 0));
    assert_eq!(probes_by_minute(store, "web"), vec![(0, 3, 1)]);
    assert_eq!(
        store.counts().expect("counts"),
        StoreCounts {
            batches: 1,
            measurements: 3
        }
    );
    // The same seq from another agent is another batch.
    let other = store
        .commit_batch(&batch("a2", 1, vec![ok("web", 0, 0, 0.01)]))
        .expect("a2");
    assert!(!other.duplicate_batch);
    assert_eq!(other.stored, 1);
}

/// `(agent, check, ts)` is stored once across and within batches.
pub fn dedup_across_batches(store: &dyn InspectStore) {
    let b1 = batch("a1", 1, vec![ok("web", 0, 0, 0.01), ok("web", 0, 10, 0.01)]);
    let b2 = batch(
        "a1",
        2,
        vec![
            ok("web", 0, 10, 0.01),
            ok("web", 0, 20, 0.01),
            ok("web", 0, 20, 0.01),
            ok("api", 0, 10, 0.01),
        ],
    );
    store.commit_batch(&b1).expect("b1");
    let out = store.commit_batch(&b2).expect("b2");
    assert_eq!((out.stored, out.duplicate_measurements), (2, 2));
    assert_eq!(probes_by_minute(store, "web"), vec![(0, 3, 0)]);
    assert_eq!(probes_by_minute(store, "api"), vec![(0, 1, 0)]);
    let hist = rollups(store, "web").remove(0).latency.expect("latency");
    assert_eq!(hist.len(), 3, "duplicates must not reach the histogram");
    assert_eq!(store.counts().expect("counts").measurements, 4);
}

/// Data arriving late for a past minute updates that minute.
pub fn late_data_updates_past_minutes(store: &dyn InspectStore) {
    store
        .commit_batch(&batch(
            "a1",
            1,
            vec![ok("web", 5, 0, 0.01), ok("web", 6, 0, 0.01)],
        ))
        .expect("b1");
    store
        .commit_batch(&batch("a1", 2, vec![ok("web", 7, 0, 0.01)]))
        .expect("b2");
    store
        .commit_batch(&batch(
            "a1",
            3,
            vec![fail("web", 5, 30, Some(FailureReason::Timeout))],
        ))
        .expect("late");
    assert_eq!(
        probes_by_minute(store, "web"),
        vec![(5, 2, 1), (6, 1, 0), (7, 1, 0)]
    );
    let r = store
        .series_minute_details(&checks(&["web"]), BASE_MINUTE + 5, BASE_MINUTE + 6)
        .expect("range");
    assert_eq!(r.len(), 1, "range is half-open");
    assert_eq!(r[0].top_reason.as_deref(), Some("timeout"));
}

/// The top reason is derived from counts summed over all batches.
pub fn reason_counts_give_top_reason(store: &dyn InspectStore) {
    use FailureReason::*;
    let t = |sec| fail("web", 0, sec, Some(Timeout));
    let s = |sec| fail("web", 0, sec, Some(Status));
    store
        .commit_batch(&batch("a1", 1, vec![t(0), t(1), s(2)]))
        .expect("b1");
    assert_eq!(
        rollups(store, "web")[0].top_reason.as_deref(),
        Some("timeout")
    );
    store
        .commit_batch(&batch("a1", 2, vec![s(3), s(4)]))
        .expect("b2");
    let r = &rollups(store, "web")[0];
    assert_eq!((r.probes, r.failures), (5, 5));
    assert_eq!(r.top_reason.as_deref(), Some("status"));
    // Ties go to the lexicographically smallest name.
    store
        .commit_batch(&batch(
            "a1",
            3,
            vec![fail("dns", 1, 0, Some(Tls)), fail("dns", 1, 1, Some(Dns))],
        ))
        .expect("tie");
    assert_eq!(rollups(store, "dns")[0].top_reason.as_deref(), Some("dns"));
    // A failure without a typed reason counts as "other"; no failures → no reason.
    store
        .commit_batch(&batch(
            "a1",
            4,
            vec![fail("x", 2, 0, None), ok("y", 2, 0, 0.1)],
        ))
        .expect("untyped");
    assert_eq!(rollups(store, "x")[0].top_reason.as_deref(), Some("other"));
    assert_eq!(rollups(store, "y")[0].top_reason, None);
}

/// Histograms of one minute merge across batches; failed probes stay out of them.
pub fn histogram_merge(store: &dyn InspectStore) {
    store
        .commit_batch(&batch(
            "a1",
            1,
            vec![ok("web", 0, 0, 0.010), ok("web", 0, 10, 0.020)],
        ))
        .expect("b1");
    store
        .commit_batch(&batch(
            "a1",
            2,
            vec![
                ok("web", 0, 20, 0.300),
                fail("web", 0, 30, Some(FailureReason::Status)),
            ],
        ))
        .expect("b2");
    let h = rollups(store, "web").remove(0).latency.expect("latency");
    assert_eq!(h.len(), 3);
    let close = |v: u64, want: u64| v.abs_diff(want) * 100 <= want;
    assert!(close(h.min(), 10_000), "min {}", h.min());
    assert!(
        close(h.value_at_quantile(0.5), 20_000),
        "p50 {}",
        h.value_at_quantile(0.5)
    );
    assert!(close(h.max(), 300_000), "max {}", h.max());
    // A minute with only failures has no latency.
    store
        .commit_batch(&batch("a1", 3, vec![fail("web", 1, 0, None)]))
        .expect("b3");
    assert!(rollups(store, "web")[1].latency.is_none());
}

/// Gaps are stored per agent and check and found by overlap with the range.
pub fn gaps(store: &dyn InspectStore) {
    let mut b = batch("a1", 1, vec![ok("web", 0, 0, 0.01)]);
    b.gaps = vec![Gap {
        check: "web".into(),
        from: at(5, 0),
        to: at(7, 50),
        count: 18,
    }];
    store.commit_batch(&b).expect("commit");
    let web = checks(&["web"]);
    let found = store
        .gaps(&web, BASE_MINUTE + 7, BASE_MINUTE + 20)
        .expect("gaps");
    assert_eq!(found.len(), 1);
    let g = &found[0];
    assert_eq!((g.agent.as_str(), g.check.as_str()), ("a1", "web"));
    assert_eq!(
        (
            g.from_minute - BASE_MINUTE,
            g.to_minute - BASE_MINUTE,
            g.count
        ),
        (5, 7, 18)
    );
    assert!(
        store
            .gaps(&web, BASE_MINUTE + 8, BASE_MINUTE + 20)
            .expect("after")
            .is_empty()
    );
    assert!(
        store
            .gaps(&web, BASE_MINUTE, BASE_MINUTE + 5)
            .expect("before")
            .is_empty()
    );
    assert!(
        store
            .gaps(&checks(&["api"]), BASE_MINUTE, BASE_MINUTE + 20)
            .expect("other")
            .is_empty()
    );
    // A resent batch does not double the gap.
    store.commit_batch(&b).expect("resend");
    assert_eq!(
        store
            .gaps(&web, BASE_MINUTE, BASE_MINUTE + 20)
            .expect("again")[0]
            .count,
        18
    );
}

pub fn host(minute: i64, sec: i64, values: &[(&str, Option<&str>, f64)]) -> Measurement {
    let mut m = Measurement::new("host", at(minute, sec), true);
    m.values = values
        .iter()
        .map(|(n, r, v)| Value {
            name: (*n).into(),
            resource: r.map(Into::into),
            value: *v,
        })
        .collect();
    m
}

/// Host values become per-minute min/avg/max that merge exactly across batches.
pub fn host_min_avg_max(store: &dyn InspectStore) {
    let cpu = "cpu_utilization_ratio";
    let fs = "filesystem_used_bytes";
    store
        .commit_batch(&batch(
            "a1",
            1,
            vec![host(0, 0, &[(cpu, None, 0.2), (fs, Some("/"), 100.0)])],
        ))
        .expect("b1");
    store
        .commit_batch(&batch(
            "a1",
            2,
            vec![
                host(0, 30, &[(cpu, None, 0.6), (fs, Some("/"), 300.0)]),
                host(1, 0, &[(cpu, None, 0.5)]),
            ],
        ))
        .expect("b2");
    let rows = store
        .host_minutes(BASE_MINUTE, BASE_MINUTE + 1)
        .expect("host");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let c = rows.iter().find(|r| r.name == cpu).expect("cpu row");
    assert_eq!(
        (c.agent.as_str(), c.resource.as_str(), c.minute),
        ("a1", "", BASE_MINUTE)
    );
    assert!(
        (c.min - 0.2).abs() < 1e-12 && (c.max - 0.6).abs() < 1e-12 && (c.avg - 0.4).abs() < 1e-12,
        "{c:?}"
    );
    let f = rows.iter().find(|r| r.name == fs).expect("fs row");
    assert_eq!(f.resource, "/");
    assert_eq!((f.min, f.avg, f.max), (100.0, 200.0, 300.0));
    assert_eq!(
        store
            .host_minutes(BASE_MINUTE, BASE_MINUTE + 2)
            .expect("two minutes")
            .len(),
        3
    );
}

/// Add, list (all and per service, each with its registrant and reference), cancel, cancel
/// again, cancel unknown.
pub fn maintenance_lifecycle(store: &dyn InspectStore) {
    let window = |service, start, end, reason, registered_by| NewMaintenance {
        service,
        start,
        end,
        reason,
        registered_by,
        reference: (registered_by == "admin").then_some("CHG-4711"),
    };
    let id1 = store
        .add_maintenance(
            &window("shop", at(10, 0), at(70, 0), "db upgrade", "admin"),
            at(0, 0),
        )
        .expect("add");
    let id2 = store
        .add_maintenance(
            &window("mail", at(5, 0), at(6, 0), "reboot", "ops-oncall"),
            at(0, 1),
        )
        .expect("add");
    assert_ne!(id1, id2);
    let all = store.list_maintenance(None).expect("list");
    assert_eq!(
        all.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![id2, id1],
        "ordered by start"
    );
    assert_eq!(
        all.iter()
            .map(|m| m.registered_by.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("ops-oncall"), Some("admin")],
        "each window keeps its own registrant"
    );
    assert_eq!(
        all.iter()
            .map(|m| m.reference.as_deref())
            .collect::<Vec<_>>(),
        vec![None, Some("CHG-4711")],
        "each window keeps its own reference, or none"
    );
    let shop = store.list_maintenance(Some("shop")).expect("shop");
    assert_eq!(shop.len(), 1);
    let m = &shop[0];
    assert_eq!(
        (m.service.as_str(), m.start, m.end, m.reason.as_str()),
        ("shop", at(10, 0), at(70, 0), "db upgrade")
    );
    assert_eq!((m.created_at, m.cancelled_at), (at(0, 0), None));
    store.cancel_maintenance(id1, at(1, 0)).expect("cancel");
    store
        .cancel_maintenance(id1, at(2, 0))
        .expect("cancel twice is fine");
    let m = &store.list_maintenance(Some("shop")).expect("after cancel")[0];
    assert_eq!(
        m.cancelled_at,
        Some(at(1, 0)),
        "the first cancellation counts"
    );
    assert_eq!(
        m.registered_by.as_deref(),
        Some("admin"),
        "cancelling keeps the registrant"
    );
    assert!(matches!(
        store.cancel_maintenance(id1 + id2 + 100, at(3, 0)),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_maintenance(Some("none"))
            .expect("none")
            .is_empty()
    );
}

/// Raw rows go after raw retention, rollups after rollup retention; rollups do not change
/// when raw rows go (compaction is invisible), and replays never count twice.
pub fn retention(store: &dyn InspectStore) {
    let minutes: Vec<Measurement> = (0..180)
        .flat_map(|m| {
            [
                ok("web", m, 0, 0.01 + m as f64 * 1e-4),
                fail("web", m, 30, Some(FailureReason::Timeout)),
            ]
        })
        .collect();
    let b1 = batch("a1", 1, minutes);
    store.commit_batch(&b1).expect("b1");
    let before = rollups(store, "web");
    assert_eq!(before.len(), 180);
    // Raw kept from minute 150, rollups from minute 30 (in the middle of an hour).
    store
        .apply_retention(at(150, 0), at(30, 0))
        .expect("retention");
    assert!(
        store
            .raw_measurements("web", at(0, 0), at(150, 0))
            .expect("old raw")
            .is_empty()
    );
    assert_eq!(
        store
            .raw_measurements("web", at(150, 0), at(180, 0))
            .expect("new raw")
            .len(),
        60
    );
    let after = rollups(store, "web");
    assert_eq!(after.len(), 150);
    for (a, b) in after.iter().zip(&before[30..]) {
        assert_eq!(
            (a.minute, a.probes, a.failures, &a.top_reason),
            (b.minute, b.probes, b.failures, &b.top_reason)
        );
        assert_eq!(a.latency, b.latency, "minute {}", a.minute);
    }
    // Replaying the batch counts nothing, though its raw rows are gone.
    assert!(store.commit_batch(&b1).expect("replay").duplicate_batch);
    // Late data in a new batch: a past-raw-retention minute merges with its compacted
    // figures; a minute behind the rollup horizon is skipped.
    let late = store
        .commit_batch(&batch(
            "a1",
            2,
            vec![ok("web", 40, 15, 0.5), ok("web", 10, 15, 0.5)],
        ))
        .expect("late");
    assert_eq!((late.stored, late.duplicate_measurements), (1, 1));
    let m40 = rollups(store, "web")
        .into_iter()
        .find(|r| r.minute == BASE_MINUTE + 40)
        .expect("m40");
    assert_eq!((m40.probes, m40.failures), (3, 1));
    assert_eq!(
        m40.latency.as_ref().map(hdrhistogram::Histogram::len),
        Some(2)
    );
    store
        .apply_retention(at(150, 0), at(30, 0))
        .expect("compact again");
    let m40b = rollups(store, "web")
        .into_iter()
        .find(|r| r.minute == BASE_MINUTE + 40)
        .expect("m40b");
    assert_eq!(
        (m40b.probes, m40b.failures, m40b.latency),
        (3, 1, m40.latency)
    );
    assert_eq!(rollups(store, "web").len(), 150);
    // Everything goes once the rollups expire.
    store.apply_retention(at(200, 0), at(200, 0)).expect("all");
    assert!(rollups(store, "web").is_empty());
    assert!(
        store
            .host_minutes(BASE_MINUTE - 10, BASE_MINUTE + 300)
            .expect("host")
            .is_empty()
    );
}

/// Counters are totals ever committed: duplicates and retention do not change them.
pub fn counts(store: &dyn InspectStore) {
    assert_eq!(store.counts().expect("empty"), StoreCounts::default());
    store
        .commit_batch(&batch(
            "a1",
            1,
            vec![ok("web", 0, 0, 0.01), ok("web", 0, 10, 0.01)],
        ))
        .expect("b1");
    store
        .commit_batch(&batch("a1", 1, vec![ok("web", 0, 0, 0.01)]))
        .expect("dup");
    store
        .commit_batch(&batch(
            "a1",
            2,
            vec![ok("web", 0, 10, 0.01), ok("web", 0, 20, 0.01)],
        ))
        .expect("b2");
    store
        .commit_batch(&batch("a1", 3, vec![]))
        .expect("empty batch");
    assert_eq!(
        store.counts().expect("counts"),
        StoreCounts {
            batches: 3,
            measurements: 3
        }
    );
    store
        .apply_retention(at(100, 0), at(100, 0))
        .expect("retention");
    assert_eq!(
        store.counts().expect("after retention"),
        StoreCounts {
            batches: 3,
            measurements: 3
        }
    );
}

/// First measured minute over several checks; late data lowers it; gaps do not count.
pub fn first_seen(store: &dyn InspectStore) {
    assert_eq!(store.first_seen(&checks(&["web"])).expect("none"), None);
    let mut b = batch("a1", 1, vec![ok("web", 10, 0, 0.01)]);
    b.gaps = vec![Gap {
        check: "gapped".into(),
        from: at(1, 0),
        to: at(2, 0),
        count: 3,
    }];
    store.commit_batch(&b).expect("b1");
    store
        .commit_batch(&batch("a2", 1, vec![ok("api", 7, 0, 0.01)]))
        .expect("b2");
    assert_eq!(
        store.first_seen(&checks(&["web"])).expect("web"),
        Some(BASE_MINUTE + 10)
    );
    assert_eq!(
        store.first_seen(&checks(&["web", "api"])).expect("both"),
        Some(BASE_MINUTE + 7)
    );
    // A gap means the agent ran the check and lost results: the check existed then, so those
    // minutes count as unknown rather than falling outside the period.
    assert_eq!(
        store.first_seen(&checks(&["gapped"])).expect("gap only"),
        Some(BASE_MINUTE + 1)
    );
    store
        .commit_batch(&batch("a1", 2, vec![ok("web", 3, 0, 0.01)]))
        .expect("late");
    assert_eq!(
        store.first_seen(&checks(&["web"])).expect("web late"),
        Some(BASE_MINUTE + 3)
    );
    // Every series, gapped-only included, for [ingest] max_checks_per_agent across restarts.
    let pair = |a: &str, c: &str| (a.to_string(), c.to_string());
    assert_eq!(
        store.agent_checks().expect("agent checks"),
        vec![pair("a1", "gapped"), pair("a1", "web"), pair("a2", "api")]
    );
}

/// The first instant a service was configured is kept; later notes change nothing.
pub fn first_configured(store: &dyn InspectStore) {
    let svc = |s: &[&str]| checks(s);
    assert_eq!(store.first_configured("web").expect("none"), None);
    store
        .note_configured(&svc(&["web", "api"]), at(5, 30))
        .expect("note");
    store
        .note_configured(&svc(&["web", "shop"]), at(50, 0))
        .expect("again");
    assert_eq!(store.first_configured("web").expect("web"), Some(at(5, 30)));
    assert_eq!(store.first_configured("api").expect("api"), Some(at(5, 30)));
    assert_eq!(
        store.first_configured("shop").expect("shop"),
        Some(at(50, 0))
    );
    assert_eq!(store.first_configured("other").expect("other"), None);
    store
        .note_configured(&[], at(60, 0))
        .expect("nothing to note");
}

/// Exact threshold counts: a probe at the threshold is within, 1 µs or 1 ms over is not
/// (both in the threshold's own bucket), far over needs no count. Tracking recomputes from
/// raw; later commits count at ingest, once; retention moves the start of exactness.
pub fn exact_threshold_counts(store: &dyn InspectStore) {
    let web = checks(&["web"]);
    let t = 300_000;
    let over = |from: i64, to: i64| {
        store
            .threshold_over(&web, t, BASE_MINUTE + from, BASE_MINUTE + to)
            .expect("threshold_over")
    };
    let before = batch(
        "a1",
        1,
        vec![
            ok("web", 0, 0, 0.3),
            ok("web", 0, 10, 0.300001),
            ok("web", 0, 20, 0.301),
            ok("web", 0, 30, 0.9),
            fail("web", 0, 40, None),
        ],
    );
    store.commit_batch(&before).expect("before tracking");
    let untracked = over(-10, 10);
    assert_eq!((untracked.exact_from, untracked.over.len()), (None, 0));
    store.track_threshold("web", t).expect("track");
    store.track_threshold("web", t).expect("track again");
    let got = over(-10, 10);
    assert_eq!(
        got.exact_from,
        Some(i64::MIN),
        "raw never expired: all exact"
    );
    assert_eq!(got.over, vec![(BASE_MINUTE, 2)], "recomputed from raw");
    store
        .commit_batch(&batch(
            "a2",
            1,
            vec![ok("web", 0, 0, 0.3005), ok("web", 1, 0, 0.30001)],
        ))
        .expect("after tracking");
    store.commit_batch(&before).expect("resent: counts nothing");
    assert_eq!(
        over(-10, 10).over,
        vec![(BASE_MINUTE, 3), (BASE_MINUTE + 1, 1)],
        "counted at ingest, over both agents"
    );
    assert_eq!(over(1, 2).over, vec![(BASE_MINUTE + 1, 1)], "range");
    assert_eq!(
        store
            .threshold_over(
                &checks(&["web", "api"]),
                t,
                BASE_MINUTE - 10,
                BASE_MINUTE + 10
            )
            .expect("api untracked")
            .exact_from,
        None,
        "exact only when every check tracks the threshold"
    );
    // Raw measurements before minute 1:00:30 expire; a new threshold is exact from minute 2.
    store
        .commit_batch(&batch("a1", 2, vec![ok("web", 3, 0, 0.2001)]))
        .expect("later");
    store
        .apply_retention(at(1, 30), at(-100, 0))
        .expect("retention");
    store.track_threshold("web", 200_000).expect("track 200 ms");
    let newer = store
        .threshold_over(&web, 200_000, BASE_MINUTE - 10, BASE_MINUTE + 10)
        .expect("200 ms");
    assert_eq!(newer.exact_from, Some(BASE_MINUTE + 2));
    assert_eq!(newer.over, vec![(BASE_MINUTE + 3, 1)]);
    assert_eq!(
        over(-10, 10).exact_from,
        Some(i64::MIN),
        "unchanged for 300 ms"
    );
}

/// Agent status follows the latest received batch; last_seq never goes back.
pub fn agent_status(store: &dyn InspectStore) {
    let spool = SpoolStatus {
        depth_measurements: 7,
        bytes: 700,
        dropped_total: 1,
        corrupt_records_total: 0,
    };
    let mut b2 = batch("a1", 2, vec![]);
    b2.received_at = at(2, 0);
    b2.clock_offset_ms = -40;
    b2.spool = Some(spool.clone());
    store.commit_batch(&b2).expect("b2");
    let mut b1 = batch("a1", 1, vec![]);
    b1.received_at = at(3, 0);
    b1.clock_offset_ms = 15;
    store.commit_batch(&b1).expect("b1 late");
    store.commit_batch(&batch("a0", 9, vec![])).expect("a0");
    let agents = store.agents().expect("agents");
    assert_eq!(
        agents.iter().map(|a| a.agent.as_str()).collect::<Vec<_>>(),
        vec!["a0", "a1"]
    );
    let a1 = &agents[1];
    assert_eq!(
        (a1.last_seen, a1.last_seq, a1.clock_offset_ms),
        (at(3, 0), 2, 15)
    );
    assert_eq!(
        a1.spool.as_ref(),
        Some(&spool),
        "a batch without spool status keeps the last one"
    );
}

/// Raw measurements come back exactly as sent, for every agent of the check.
pub fn raw_roundtrip(store: &dyn InspectStore) {
    let mut m = fail("web", 0, 12, Some(FailureReason::Tls));
    m.ts = at(0, 12)
        .checked_add(jiff::SignedDuration::from_nanos(123_456_789))
        .unwrap_or(m.ts);
    m.failed_phase = Some(Phase::Tls);
    m.error = Some("certificate expired".into());
    m.phases = BTreeMap::from([(Phase::Resolve, 0.001), (Phase::Connect, 0.002)]);
    m.values = vec![Value {
        name: "status_code".into(),
        resource: None,
        value: 0.0,
    }];
    m.labels = BTreeMap::from([("tls_version".to_owned(), "1.3".to_owned())]);
    let plain = ok("web", 0, 40, 0.25);
    store
        .commit_batch(&batch(
            "a1",
            1,
            vec![m.clone(), plain.clone(), ok("api", 0, 12, 0.1)],
        ))
        .expect("a1");
    store
        .commit_batch(&batch("a2", 1, vec![ok("web", 0, 12, 0.3)]))
        .expect("a2");
    let got = store
        .raw_measurements("web", at(0, 0), at(1, 0))
        .expect("raw");
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        ("a2".to_owned(), ok("web", 0, 12, 0.3)),
        "ordered by time, then agent"
    );
    assert_eq!(got[1], ("a1".to_owned(), m));
    assert_eq!(got[2], ("a1".to_owned(), plain));
    assert!(
        store
            .raw_measurements("web", at(0, 41), at(1, 0))
            .expect("none")
            .is_empty()
    );
}

/// Each stored measurement belongs to the batch that first stored it: a batch's
/// measurements come back exactly, ordered by (check, ts), without those it repeated, those
/// of other agents or of batches interleaved with it in time.
pub fn batch_membership(store: &dyn InspectStore) {
    let mut rich = fail("web", 0, 10, Some(FailureReason::Tls));
    rich.failed_phase = Some(Phase::Tls);
    rich.error = Some("certificate expired".into());
    rich.phases = BTreeMap::from([(Phase::Resolve, 0.001), (Phase::Connect, 0.002)]);
    rich.labels = BTreeMap::from([("address".to_owned(), "10.0.0.1:443".to_owned())]);
    let b1 = vec![ok("web", 0, 0, 0.01), rich.clone(), ok("api", 0, 5, 0.2)];
    store.commit_batch(&batch("a1", 1, b1)).expect("a1/1");
    let b2 = vec![ok("web", 0, 10, 0.5), ok("web", 0, 20, 0.03)];
    let out = store.commit_batch(&batch("a1", 2, b2)).expect("a1/2");
    assert_eq!((out.stored, out.duplicate_measurements), (1, 1));
    store
        .commit_batch(&batch("a2", 1, vec![ok("web", 0, 0, 0.07)]))
        .expect("a2/1");
    // Batch 3 spans two hours; batch 4 lands inside that span.
    store
        .commit_batch(&batch(
            "a1",
            3,
            vec![ok("web", 130, 0, 0.01), ok("web", 1, 0, 0.01)],
        ))
        .expect("a1/3");
    store
        .commit_batch(&batch("a1", 4, vec![ok("web", 60, 0, 0.04)]))
        .expect("a1/4");
    let of = |agent: &str, seq| store.batch_measurements(agent, seq).expect("batch");
    assert_eq!(
        of("a1", 1),
        vec![ok("api", 0, 5, 0.2), ok("web", 0, 0, 0.01), rich],
        "ordered by check, then instant; every detail kept"
    );
    assert_eq!(
        of("a1", 2),
        vec![ok("web", 0, 20, 0.03)],
        "a repeated measurement belongs to the batch that stored it"
    );
    assert_eq!(of("a2", 1), vec![ok("web", 0, 0, 0.07)]);
    assert_eq!(
        of("a1", 3),
        vec![ok("web", 1, 0, 0.01), ok("web", 130, 0, 0.01)]
    );
    assert_eq!(of("a1", 4), vec![ok("web", 60, 0, 0.04)]);
    assert!(of("a1", 99).is_empty(), "a batch never stored");
    assert!(of("nobody", 1).is_empty(), "an agent never seen");
    assert!(
        of("a1", u64::MAX).is_empty(),
        "a seq beyond the storable range"
    );
    let again = store
        .commit_batch(&batch("a1", 2, vec![ok("web", 0, 30, 0.01)]))
        .expect("resend");
    assert!(again.duplicate_batch);
    assert_eq!(
        of("a1", 2),
        vec![ok("web", 0, 20, 0.03)],
        "a resend adds nothing"
    );
}

/// Every raw read (`raw_measurements`, `batch_measurements`, the counts and rollups) answers
/// the same before and after raw measurements are compacted into blocks; per-measurement
/// idempotence holds across compaction (a replayed batch, a new batch repeating compacted
/// measurements), late data into a compacted hour is kept once and survives the next
/// compaction, and retention cuts blocks at the exact instant.
pub fn raw_reads_survive_compaction(store: &dyn InspectStore) {
    let mut sent: Vec<(String, u64, Vec<Measurement>)> = Vec::new();
    for seq in 1..=6u64 {
        for agent in ["a1", "a2"] {
            let mut ms = Vec::new();
            for minute in (seq as i64 - 1) * 35..seq as i64 * 35 {
                let mut m = ok("web", minute, 3, 0.010 + minute as f64 * 1e-6);
                m.phases = BTreeMap::from([(Phase::Connect, 0.002_345_678), (Phase::Tls, 0.1)]);
                m.labels = BTreeMap::from([("address".to_owned(), format!("10.0.0.{seq}"))]);
                m.values = vec![Value {
                    name: "http_status".into(),
                    resource: None,
                    value: 200.0,
                }];
                ms.push(m);
                if minute % 11 == 0 {
                    let mut f = fail("api", minute, 7, Some(FailureReason::Timeout));
                    f.error = Some("timed out after 5 s".into());
                    f.failed_phase = Some(Phase::Processing);
                    ms.push(f);
                }
            }
            store
                .commit_batch(&batch(agent, seq, ms.clone()))
                .expect("commit");
            sent.push((agent.to_owned(), seq, ms));
        }
    }
    let all = |store: &dyn InspectStore| {
        let raw = |check| {
            store
                .raw_measurements(check, at(-1000, 0), at(1000, 0))
                .expect("raw")
        };
        let batches: Vec<_> = sent
            .iter()
            .map(|(a, s, _)| store.batch_measurements(a, *s).expect("batch"))
            .collect();
        (
            raw("web"),
            raw("api"),
            batches,
            store.counts().expect("counts"),
        )
    };
    let before = all(store);
    assert_eq!(before.0.len(), 2 * 6 * 35);
    for ((_, _, ms), got) in sent.iter().zip(&before.2) {
        assert_eq!(got.len(), ms.len());
    }
    let rollups_before = (
        probes_by_minute(store, "web"),
        probes_by_minute(store, "api"),
    );
    // Hours 0..2 (minutes 0..179) compact; minutes 180..209 stay rows.
    store.compact(BASE_MINUTE + 180).expect("compact");
    assert_eq!(all(store), before, "reads are the same from blocks");
    assert_eq!(
        (
            probes_by_minute(store, "web"),
            probes_by_minute(store, "api")
        ),
        rollups_before
    );
    // A replayed batch, then a new batch repeating compacted measurements with one late
    // measurement into a compacted hour.
    let (agent, seq, ms) = &sent[2];
    assert!(
        store
            .commit_batch(&batch(agent, *seq, ms.clone()))
            .expect("replay")
            .duplicate_batch
    );
    let late = ok("web", 40, 50, 0.5);
    let mut again = ms.clone();
    again.push(late.clone());
    let out = store
        .commit_batch(&batch(agent, 99, again))
        .expect("repeat");
    assert_eq!(
        (out.stored, out.duplicate_measurements),
        (1, ms.len() as u64)
    );
    assert_eq!(
        store.batch_measurements(agent, 99).expect("late batch"),
        vec![late.clone()]
    );
    let mut want = before.clone();
    want.3.batches += 1;
    want.3.measurements += 1;
    let pos = want
        .0
        .iter()
        .position(|(a, m)| (m.ts, a.as_str()) > (late.ts, agent.as_str()));
    want.0
        .insert(pos.unwrap_or(want.0.len()), (agent.clone(), late.clone()));
    let with_late = |store: &dyn InspectStore| {
        let mut got = all(store);
        got.2.clear();
        got
    };
    let mut want_no_batches = want.clone();
    want_no_batches.2.clear();
    assert_eq!(
        with_late(store),
        want_no_batches,
        "the late measurement is kept once"
    );
    // The late row joins its hour's block at the next compaction; nothing changes.
    store.compact(BASE_MINUTE + 180).expect("compact again");
    assert_eq!(with_late(store), want_no_batches);
    assert_eq!(
        store.batch_measurements(agent, 99).expect("late batch"),
        vec![late.clone()]
    );
    let out = store
        .commit_batch(&batch(agent, 100, vec![late.clone()]))
        .expect("late again");
    assert_eq!((out.stored, out.duplicate_measurements), (0, 1));
    // Retention cuts inside hour 1 (at minute 90:30): what is kept is exactly the rest.
    store
        .apply_retention(at(90, 30), at(-100_000, 0))
        .expect("retention");
    let kept: Vec<_> = want_no_batches
        .0
        .iter()
        .filter(|(_, m)| m.ts >= at(90, 30))
        .cloned()
        .collect();
    assert_eq!(with_late(store).0, kept);
}

/// A threshold tracked after raw measurements were compacted into blocks is back-filled
/// from the blocks exactly as one tracked while they were rows: two checks with the same
/// probes, one tracked before compaction, one after, count the same probes over it.
pub fn threshold_back_fill_reads_blocks(store: &dyn InspectStore) {
    let t = 300_000;
    let durations = [0.3, 0.300_001, 0.301, 0.9, 0.300_5, 0.1];
    let ms: Vec<Measurement> = (0..150)
        .flat_map(|m| {
            let d = durations[m as usize % durations.len()];
            [ok("web", m, 0, d), ok("api", m, 0, d)]
        })
        .collect();
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    store.track_threshold("web", t).expect("track from rows");
    store.compact(BASE_MINUTE + 150).expect("compact");
    store.track_threshold("api", t).expect("track from blocks");
    let over = |check: &str| {
        store
            .threshold_over(&checks(&[check]), t, BASE_MINUTE - 10, BASE_MINUTE + 200)
            .expect("threshold_over")
    };
    let (web, api) = (over("web"), over("api"));
    assert_eq!(
        web.over.len(),
        75,
        "0.300001, 0.301 and 0.3005 are in the threshold's bucket and over: half the minutes"
    );
    assert_eq!(api.over, web.over);
    assert_eq!(api.exact_from, web.exact_from);
}

/// A contract case: runs against one fresh store and panics on a violation.
pub type Case = fn(&dyn InspectStore);

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    ("idempotent_resend", idempotent_resend),
    ("dedup_across_batches", dedup_across_batches),
    (
        "late_data_updates_past_minutes",
        late_data_updates_past_minutes,
    ),
    (
        "reason_counts_give_top_reason",
        reason_counts_give_top_reason,
    ),
    ("histogram_merge", histogram_merge),
    ("gaps", gaps),
    ("host_min_avg_max", host_min_avg_max),
    ("maintenance_lifecycle", maintenance_lifecycle),
    ("retention", retention),
    ("counts", counts),
    ("first_seen", first_seen),
    ("first_configured", first_configured),
    ("exact_threshold_counts", exact_threshold_counts),
    ("agent_status", agent_status),
    ("raw_roundtrip", raw_roundtrip),
    ("batch_membership", batch_membership),
    ("raw_reads_survive_compaction", raw_reads_survive_compaction),
    (
        "threshold_back_fill_reads_blocks",
        threshold_back_fill_reads_blocks,
    ),
    ("compact_matches_rollups", compact_matches_rollups),
    ("changes_are_journaled", changes_are_journaled),
    (
        "seals_are_kept_with_their_batch",
        seals_are_kept_with_their_batch,
    ),
    ("report_notes_roundtrip", report_notes_roundtrip),
    ("late_writes_are_logged", late_writes_are_logged),
    ("definition_history", definition_history),
];

/// The durable late-write log (`Store::late_mark`, both backends keep one): a write of
/// recent minutes is not logged, a late one is (for its series and minutes only; measurements
/// and gaps alike), a later mark does not see it, and retention is a change of every check
/// before its horizon. What lets the figures' saved state be trusted after a restart.
pub fn late_writes_are_logged(store: &dyn InspectStore) {
    let received = |mut b: IngestBatch| {
        b.received_at = at(200, 0);
        b
    };
    let changed = |names: &[&str], mark, a: i64, b: i64| {
        store
            .changed_late_since(&checks(names), mark, BASE_MINUTE + a, BASE_MINUTE + b)
            .expect("changed_late_since")
    };
    let Some(m0) = store.late_mark().expect("mark") else {
        return;
    };
    store
        .commit_batch(&received(batch("a1", 1, vec![ok("web", 195, 0, 0.1)])))
        .expect("recent");
    store
        .commit_batch(&received(batch("a1", 2, vec![ok("db", 195, 0, 0.1)])))
        .expect("recent db");
    assert!(
        !changed(&["web", "db"], m0, 0, 1000),
        "recent writes are not logged"
    );
    store
        .commit_batch(&received(batch("a1", 3, vec![ok("web", 100, 0, 0.1)])))
        .expect("late");
    let mut gap = received(batch("a2", 1, Vec::new()));
    gap.gaps.push(Gap {
        check: "api".into(),
        from: at(130, 0),
        to: at(132, 30),
        count: 9,
    });
    store.commit_batch(&gap).expect("late gap");
    assert!(changed(&["web"], m0, 100, 101));
    assert!(changed(&["db", "api"], m0, 131, 132), "a late gap");
    assert!(!changed(&["web"], m0, 140, 150), "after every late minute");
    assert!(!changed(&["web"], m0, 90, 100), "before every late minute");
    assert!(!changed(&["db"], m0, 100, 101), "db was not written late");
    let m1 = store.late_mark().expect("mark").expect("mark");
    assert!(m1 > m0);
    assert!(!changed(&["web", "api"], m1, 0, 1000), "nothing since m1");
    store
        .commit_batch(&received(batch("a1", 3, vec![ok("db", 100, 0, 0.1)])))
        .expect("a resent batch");
    assert!(
        !changed(&["db"], m1, 100, 101),
        "a resent batch writes nothing"
    );
    store
        .apply_retention(at(150, 0), at(50, 0))
        .expect("retention");
    assert!(
        changed(&["db"], m1, 0, 40),
        "retention is a change of every check"
    );
    assert!(
        !changed(&["db"], m1, 60, 70),
        "retention changes only minutes before its horizon"
    );
    let m2 = store.late_mark().expect("mark").expect("mark");
    store
        .apply_retention(at(250, 0), at(50, 0))
        .expect("retention that prunes the log");
    assert!(
        changed(&["web"], m0, 100, 101),
        "a mark below the pruned floor is answered as changed"
    );
    assert!(!changed(&["web"], m2, 60, 1000), "nothing late since m2");
}

/// Report notes come back per month (and service) in the order written, with every field
/// as stored; another month's notes never show.
pub fn report_notes_roundtrip(store: &dyn InspectStore) {
    use super::NewNote;
    let note = |month, service, cause, owner, due| NewNote {
        month,
        service,
        written_by: "ops-oncall",
        cause,
        action: "raised connection pool size",
        owner,
        due,
    };
    let due = jiff::civil::date(2026, 12, 15);
    let a = store
        .add_report_note(
            &note(
                "2026-11",
                "shop",
                "pool exhausted",
                Some("db team"),
                Some(due),
            ),
            at(5, 0),
        )
        .expect("add");
    let b = store
        .add_report_note(&note("2026-11", "mail", "relay down", None, None), at(1, 0))
        .expect("add");
    let c = store
        .add_report_note(
            &note("2026-11", "shop", "second look", None, None),
            at(5, 0),
        )
        .expect("add");
    store
        .add_report_note(&note("2026-10", "shop", "older", None, None), at(0, 0))
        .expect("add");
    let all = store.report_notes("2026-11", None).expect("notes");
    assert_eq!(
        all.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![b, a, c],
        "ordered by written_at, then id"
    );
    let shop = store.report_notes("2026-11", Some("shop")).expect("notes");
    assert_eq!(shop.len(), 2);
    let first = &shop[0];
    assert_eq!(
        (
            first.month.as_str(),
            first.service.as_str(),
            first.written_at,
            first.written_by.as_str(),
            first.cause.as_str(),
            first.action.as_str(),
            first.owner.as_deref(),
            first.due
        ),
        (
            "2026-11",
            "shop",
            at(5, 0),
            "ops-oncall",
            "pool exhausted",
            "raised connection pool size",
            Some("db team"),
            Some(due)
        )
    );
    assert_eq!((shop[1].owner.as_deref(), shop[1].due), (None, None));
    assert!(
        store
            .report_notes("2026-12", None)
            .expect("notes")
            .is_empty()
    );
}

/// A signed batch's seal is stored with it (not again with a resend), keys once per agent
/// and key, links around a seq come back in seq order, and `batch_seals` finds the batches
/// of a time range with everything the audit needs.
pub fn seals_are_kept_with_their_batch(store: &dyn InspectStore) {
    use crate::store::BatchSeal;
    let seal = |d: u8, prev: Option<u8>, key: u8| BatchSeal {
        digest: [d; 32],
        prev: prev.map(|p| [p; 32]),
        signature: [d ^ 0x55; 64],
        key: [key; 32],
        ts_shift_ms: if d == 2 { -1500 } else { 0 },
        gaps: (d == 2).then(|| vec![0, 0, 0, 0]),
    };
    let signed = |agent: &str, seq, ms, s| IngestBatch {
        seal: Some(s),
        ..batch(agent, seq, ms)
    };
    store
        .commit_batch(&signed(
            "a1",
            1,
            vec![ok("web", 0, 0, 0.1)],
            seal(1, None, 7),
        ))
        .expect("a1/1");
    store
        .commit_batch(&signed(
            "a1",
            2,
            vec![ok("web", 1, 0, 0.1)],
            seal(2, Some(1), 7),
        ))
        .expect("a1/2");
    let again = store
        .commit_batch(&signed(
            "a1",
            2,
            vec![ok("web", 1, 0, 0.1)],
            seal(2, Some(1), 7),
        ))
        .expect("resend");
    assert!(again.duplicate_batch);
    store
        .commit_batch(&batch("a1", 3, vec![ok("web", 2, 0, 0.1)]))
        .expect("unsigned a1/3");
    store
        .commit_batch(&signed(
            "a2",
            1,
            vec![ok("web", 0, 0, 0.1)],
            seal(9, None, 8),
        ))
        .expect("a2/1");
    store
        .commit_batch(&signed(
            "a1",
            4,
            vec![ok("web", 3, 0, 0.1)],
            seal(4, Some(3), 6),
        ))
        .expect("a1/4 under a new key");
    let links = store.seal_links("a1", 2).expect("links");
    assert_eq!(
        links,
        vec![(1, [1; 32], None), (2, [2; 32], Some([1; 32]))],
        "seq 3 is unsigned: no link stored"
    );
    assert_eq!(store.seal_links("a1", 9).expect("none"), vec![]);
    let keys: Vec<(String, [u8; 32])> = store
        .agent_keys()
        .expect("keys")
        .into_iter()
        .map(|k| (k.agent, k.key))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("a1".into(), [7; 32]),
            ("a2".into(), [8; 32]),
            ("a1".into(), [6; 32])
        ]
    );
    let from = Timestamp::from_second(BASE_MINUTE * 60).expect("from");
    let to = Timestamp::from_second((BASE_MINUTE + 2) * 60).expect("to");
    let seals: Vec<(String, u64, BatchSeal)> = store
        .batch_seals(from, to)
        .expect("seals")
        .into_iter()
        .map(|s| (s.agent, s.seq, s.seal))
        .collect();
    assert_eq!(
        seals,
        vec![
            ("a1".into(), 1, seal(1, None, 7)),
            ("a1".into(), 2, seal(2, Some(1), 7)),
            ("a2".into(), 1, seal(9, None, 8)),
        ],
        "minutes 0 and 1 of both agents, with shift and gaps"
    );
}

/// `changed_since` never misses a change: late data into a compacted hour, a gap and
/// retention all show up for the touched minutes; a backend with a journal also keeps
/// untouched checks and minutes (and compaction, which changes no figure) unchanged.
pub fn changes_are_journaled(store: &dyn InspectStore) {
    let web = checks(&["web"]);
    let changed = |mark, checks: &[String], a: i64, b: i64| {
        store
            .changed_since(checks, mark, BASE_MINUTE + a, BASE_MINUTE + b)
            .expect("changed_since")
    };
    let before = store.change_mark();
    store
        .commit_batch(&batch(
            "a1",
            1,
            vec![ok("web", 0, 0, 0.01), ok("api", 300, 0, 0.01)],
        ))
        .expect("commit");
    assert!(changed(before, &web, 0, 1), "a commit is a change");
    store.compact(BASE_MINUTE + 240).expect("compact");
    let mark = store.change_mark();
    let journaled = !changed(mark, &web, -100_000, 100_000);
    if journaled {
        assert!(
            !changed(before, &web, 1, 300),
            "web changed only in minute 0"
        );
    }
    store
        .commit_batch(&batch("a2", 1, vec![fail("web", 59, 30, None)]))
        .expect("late");
    assert!(
        changed(mark, &web, 59, 60),
        "late data into a compacted hour"
    );
    assert!(changed(mark, &checks(&["api", "web"]), 0, 100));
    if journaled {
        assert!(!changed(mark, &web, 60, 1000), "after the late minute");
        assert!(
            !changed(mark, &checks(&["api"]), -100_000, 100_000),
            "api untouched"
        );
    }
    let mark = store.change_mark();
    let mut b = batch("a1", 2, Vec::new());
    b.gaps.push(Gap {
        check: "api".into(),
        from: at(100, 0),
        to: at(102, 30),
        count: 3,
    });
    store.commit_batch(&b).expect("gap");
    assert!(
        changed(mark, &checks(&["api"]), 102, 103),
        "a gap is a change"
    );
    let mark = store.change_mark();
    store
        .apply_retention(at(200, 0), at(200, 0))
        .expect("retention");
    assert!(
        changed(mark, &checks(&["api"]), 0, 1),
        "retention deleted minute 0"
    );
    if journaled {
        assert!(!changed(mark, &web, 300, 400), "retention kept minute 300");
    }
}

/// The compact read is the full read in another form: same rows, counts, top reasons and
/// latency buckets, across both tiers and late data merged into compacted hours, and
/// clipped to the asked range.
pub fn compact_matches_rollups(store: &dyn InspectStore) {
    let mut ms = Vec::new();
    for m in 0..200 {
        ms.push(ok("web", m, 0, 0.01 + m as f64 * 1e-4));
        ms.push(ok("api", m, 5, 0.2));
        if m % 7 == 0 {
            ms.push(fail("web", m, 30, Some(FailureReason::Dns)));
        }
    }
    store.commit_batch(&batch("a2", 1, ms.clone())).expect("a2");
    let a1: Vec<Measurement> = ms.iter().filter(|m| m.ts < at(150, 0)).cloned().collect();
    store.commit_batch(&batch("a1", 1, a1)).expect("a1");
    let compare = |what: &str, names: &[&str], from: i64, to: i64| {
        let names = checks(names);
        let (from, to) = (BASE_MINUTE + from, BASE_MINUTE + to);
        let full = store
            .series_minute_details(&names, from, to)
            .expect("rollups");
        let mut want = SeriesMinutes::from_details(&full);
        let mut got = store
            .series_minutes(&names, from, to)
            .expect("series_minutes");
        assert_eq!(got.agents, want.agents, "{what}");
        assert_eq!(got.rows.len(), full.len(), "{what}");
        let key = |c: &SeriesMinutes| {
            let mut rows: Vec<_> = c
                .rows
                .iter()
                .map(|r| {
                    let b: Vec<_> = c.buckets(r).iter().map(|b| (b.index, b.count)).collect();
                    (r.agent, r.minute, r.probes, r.failures, r.reason, b)
                })
                .collect();
            rows.sort_by_key(|r| (r.0, r.1, r.2));
            rows
        };
        assert_eq!(key(&got), key(&want), "{what}");
        got.rows.clear();
        want.rows.clear();
    };
    compare("hot", &["web", "api"], 0, 200);
    compare("hot, clipped", &["web"], 17, 131);
    store.compact(BASE_MINUTE + 130).expect("compact");
    compare("packs and hot", &["web", "api"], 0, 200);
    compare("packs, clipped inside an hour", &["web"], 17, 131);
    let late = vec![
        fail("web", 42, 45, Some(FailureReason::Timeout)),
        fail("web", 42, 50, Some(FailureReason::Timeout)),
        ok("web", 43, 45, 3.0),
    ];
    store.commit_batch(&batch("a1", 2, late)).expect("late");
    compare("late data over a pack", &["web"], 0, 200);
    assert_eq!(
        store
            .series_minutes(&checks(&["web"]), BASE_MINUTE + 42, BASE_MINUTE + 43)
            .expect("m42")
            .rows
            .iter()
            .map(|r| (r.failures, r.reason))
            .collect::<Vec<_>>(),
        [
            (3, Some(FailureReason::Timeout)),
            (1, Some(FailureReason::Dns))
        ],
        "a1 has two late timeouts and one dns failure in minute 42, a2 one dns failure"
    );
    compare("unknown check", &["nope"], 0, 200);
    compare("empty range", &["web"], 50, 50);
}

/// Runs every case on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn InspectStore>) {
    for (name, case) in CASES {
        eprintln!("store contract: {name}");
        case(make().as_ref());
    }
}

/// One `#[test]` per case, each on a fresh store from `$make` (a `Fn() -> Box<dyn InspectStore>`).
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::store::contract::contract_tests!(@cases $make;
            idempotent_resend, dedup_across_batches, late_data_updates_past_minutes,
            reason_counts_give_top_reason, histogram_merge, gaps, host_min_avg_max,
            maintenance_lifecycle, retention, counts, first_seen, first_configured,
            exact_threshold_counts, agent_status, raw_roundtrip, batch_membership,
            raw_reads_survive_compaction, threshold_back_fill_reads_blocks,
            compact_matches_rollups,
            changes_are_journaled, seals_are_kept_with_their_batch, report_notes_roundtrip,
            late_writes_are_logged);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let make: &dyn Fn() -> Box<dyn $crate::store::InspectStore> = &$make;
                $crate::store::contract::$case(make().as_ref());
            }
        )*
    };
}
pub(crate) use contract_tests;

/// A definition is recorded only when it differs from the service's latest one; a span
/// gets the one in force at its start and every later one inside it, oldest first.
pub fn definition_history(store: &dyn InspectStore) {
    use super::DefinitionRow;
    let def = |service: &str, sha: &str, minute, cause: &str| DefinitionRow {
        service: service.into(),
        sha256: sha.into(),
        first_seen: at(minute, 0),
        definition: format!("{{\"v\":\"{sha}\"}}"),
        cause: cause.into(),
    };
    let record = |d: DefinitionRow| store.record_definition(&d).expect("record");
    assert!(record(def("web", "aa", 0, "start")));
    assert!(
        !record(def("web", "aa", 5, "reload")),
        "same digest: not again"
    );
    assert!(record(def("db", "aa", 6, "start")), "another service");
    assert!(record(def("web", "bb", 100, "reload")));
    assert!(record(def("web", "cc", 200, "reload")));
    assert!(
        record(def("web", "aa", 300, "reload")),
        "back to an earlier one"
    );
    let shas = |from, to| -> Vec<(String, i64)> {
        store
            .definitions("web", at(from, 0), at(to, 0))
            .expect("definitions")
            .into_iter()
            .map(|d| (d.sha256, d.first_seen.as_second()))
            .collect()
    };
    let m = |minute| at(minute, 0).as_second();
    assert_eq!(
        shas(150, 250),
        vec![("bb".into(), m(100)), ("cc".into(), m(200))],
        "in force at the start, then the change inside"
    );
    assert_eq!(
        shas(0, 100),
        vec![("aa".into(), m(0))],
        "the end is exclusive"
    );
    assert_eq!(shas(400, 500), vec![("aa".into(), m(300))]);
    assert!(shas(-10, 0).is_empty(), "nothing recorded before");
    let all = store
        .definitions("web", at(0, 0), at(1000, 0))
        .expect("all");
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].definition, "{\"v\":\"aa\"}");
    assert_eq!(all[0].cause, "start");
    assert_eq!(all[3].cause, "reload");
}
