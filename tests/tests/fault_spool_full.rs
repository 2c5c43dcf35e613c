//! Spool full: a real agent with a 32 KiB spool (`drop_oldest`) outlives a collector outage.
//! The measurements it drops are exactly the spooled ones that never reach the store; their
//! number equals the agent's dropped counter and the sum of stored gap counts; each lies in a
//! stored gap of its check; and `attest-collector sla --format json` counts the gap minutes
//! as unknown, never good, with every minute's state recomputed here from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use attest_collector::minutes::GapSpan;
use attest_collector::store::InspectStore;
use attest_tests::fixtures::{
    Collector, LoopbackRig, LoopbackSpec, metrics, path_str, spooled_keys, stored_gaps,
    stored_keys, wait_progress,
};
use attest_tests::load::{Key, tally};
use attest_tests::{bin, sample, wait_for};
use jiff::Timestamp;

const SERVICE: &str = "cramped";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_measurements_become_gaps_and_unknown_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let LoopbackRig {
        cred,
        checks,
        mut collector,
        setup,
        keeper,
    } = LoopbackRig::start(
        dir.path(),
        LoopbackSpec {
            agent: "cramped-agent",
            service: SERVICE,
            prefix: "sf",
            pairs: 2,
            max_bytes: "32KiB",
        },
    )
    .await;
    let mut agent = setup.spawn(dir.path());
    // Data before the outage, so the service's first minute precedes every gap.
    wait_progress(&collector.data_dir, 0, 20, Duration::from_secs(60)).await;

    collector.kill();
    let port = setup.listen_port;
    wait_for(
        "the agent to drop at least 60 measurements",
        Duration::from_secs(60),
        || async move {
            let m = metrics(port).await?;
            let d = sample(&m, "attest_agent_spool_dropped_measurements_total", &[])?;
            (d >= 60.0).then_some(())
        },
    )
    .await;
    collector.start().await;
    wait_for(
        "the spool to drain after recovery",
        Duration::from_secs(60),
        || async move {
            let m = metrics(port).await?;
            let d = sample(&m, "attest_agent_spool_depth_measurements", &[])?;
            (d < 10.0).then_some(())
        },
    )
    .await;
    // The working agent is never restarted, so its counter covers the whole run; the drain
    // agent appends nothing and so drops nothing.
    let m = metrics(port).await.expect("agent metrics");
    let dropped = sample(&m, "attest_agent_spool_dropped_measurements_total", &[])
        .expect("dropped counter") as u64;
    setup
        .drain(&mut agent, dir.path(), Duration::from_secs(60))
        .await;

    let spooled = keeper.spooled().expect("spool oracle");
    let produced = spooled_keys(&cred.id, &spooled);
    let store = collector.store();
    let stored = stored_keys(&store, &checks);
    let gaps = stored_gaps(&store, &checks);
    let t = tally(&produced, &stored);
    let gap_total: u64 = gaps.iter().map(|g| g.count).sum();
    eprintln!(
        "spool full: dropped {dropped}, gaps {} rows summing {gap_total}; {t}",
        gaps.len()
    );
    assert!(t.duplicated.is_empty() && t.unexpected.is_empty(), "{t}");
    assert_eq!(
        t.missing.len() as u64,
        dropped,
        "spooled-but-not-stored must be exactly the dropped measurements"
    );
    assert_eq!(gap_total, dropped, "gap counts must add up to the drops");
    for k in &t.missing {
        assert!(
            in_a_gap(k, &gaps),
            "dropped {k:?} lies in no stored gap: {gaps:?}"
        );
    }

    let at = Timestamp::now();
    let report = sla_json(&collector, at);
    let expected = expected_minutes(&store, &checks, &gaps, at);
    eprintln!(
        "sla report minutes {:?}, expected {expected:?}",
        minutes_of(&report)
    );
    assert_eq!(minutes_of(&report), expected);
    assert!(
        expected.unknown >= gap_minutes(&gaps).len() as u64 && !gaps.is_empty(),
        "gap minutes must count as unknown: {expected:?}"
    );
}

fn in_a_gap(k: &Key, gaps: &[GapSpan]) -> bool {
    let minute = (k.2.div_euclid(1_000_000_000) as i64).div_euclid(60);
    gaps.iter().any(|g| {
        g.agent == k.0 && g.check == k.1 && (g.from_minute..=g.to_minute).contains(&minute)
    })
}

fn gap_minutes(gaps: &[GapSpan]) -> BTreeSet<i64> {
    gaps.iter()
        .flat_map(|g| g.from_minute..=g.to_minute)
        .collect()
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Minutes {
    good: u64,
    bad: u64,
    unknown: u64,
}

fn sla_json(c: &Collector, at: Timestamp) -> serde_json::Value {
    let month = at.strftime("%Y-%m").to_string();
    let out = std::process::Command::new(bin("attest-collector"))
        .args([
            "sla",
            "--config",
            &path_str(&c.config),
            "--month",
            &month,
            "--service",
            SERVICE,
            "--at",
            &at.to_string(),
            "--format",
            "json",
        ])
        .output()
        .expect("run attest-collector sla");
    assert!(
        out.status.success(),
        "sla failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sla JSON");
    match v {
        serde_json::Value::Array(mut a) if a.len() == 1 => a.remove(0),
        other => other,
    }
}

fn minutes_of(report: &serde_json::Value) -> Minutes {
    let n = |f: &str| {
        report[f]
            .as_u64()
            .unwrap_or_else(|| panic!("report has no {f}: {report}"))
    };
    Minutes {
        good: n("good_minutes"),
        bad: n("bad_minutes"),
        unknown: n("unknown_minutes"),
    }
}

/// The model's rule, applied to the store: from the service's first measured minute up to
/// the minute containing `at`, a minute with a failure is bad, one covered by a gap is
/// unknown, one with probes is good, and one without anything is unknown.
fn expected_minutes(
    store: &impl InspectStore,
    checks: &[String],
    gaps: &[GapSpan],
    at: Timestamp,
) -> Minutes {
    let at_min = at.as_second().div_euclid(60);
    let month_start = at
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .first_of_month()
        .expect("first of month")
        .start_of_day()
        .expect("month start")
        .timestamp()
        .as_second()
        .div_euclid(60);
    let rollups = store
        .series_minute_details(checks, month_start - 1, at_min + 1)
        .expect("rollups");
    let mut probes: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
    for r in &rollups {
        let e = probes.entry(r.minute).or_default();
        e.0 += r.probes;
        e.1 += r.failures;
    }
    let first = store
        .first_seen(checks)
        .expect("first seen")
        .expect("some data");
    let gapped = gap_minutes(gaps);
    let mut m = Minutes {
        good: 0,
        bad: 0,
        unknown: 0,
    };
    // `as_of` is the first minute that has not started, so the current minute counts.
    for minute in first.max(month_start)..=at_min {
        match probes.get(&minute) {
            Some((_, f)) if *f > 0 => m.bad += 1,
            _ if gapped.contains(&minute) => m.unknown += 1,
            Some((p, _)) if *p > 0 => m.good += 1,
            _ => m.unknown += 1,
        }
    }
    m
}
