use super::refresh::{MAX_AGE, SETTLE};
use super::*;
use crate::store::SqliteStore;
use crate::store::contract::{BASE_MINUTE, at, batch, fail, ok};
use std::time::Duration;

fn config() -> Arc<CollectorConfig> {
    config_with_target("99.9%")
}

fn config_with_target(target: &str) -> Arc<CollectorConfig> {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
         data_dir = \"/nonexistent\"\n\
         [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
         [[agent]]\nid = \"a2\"\ntoken = \"test-token-a2-0123456789\"\n\
         [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"{target}\"\n\
         quorum = \"any\"\nlatency = {{ threshold = \"250ms\", target = \"99%\" }}\n"
    );
    Arc::new(attest_config::parse_collector("t.toml", &toml).expect("valid config"))
}

/// What a fresh `Figures` (nothing cached) computes from the same store.
fn fresh(cfg: &Arc<CollectorConfig>, store: &Arc<dyn Store>, now: Timestamp) -> Vec<ServiceReport> {
    let f = Figures::new(cfg.clone(), store.clone());
    f.refresh(now);
    f.latest().services.clone()
}

/// The cached refresh equals a from-scratch one: unchanged, one day later (closed
/// minutes extended), after late data into an old (compacted) minute, and after a gap.
#[test]
fn cached_refresh_matches_a_fresh_one_through_late_data() {
    let cfg = config();
    let sqlite = Arc::new(SqliteStore::open_temp().expect("store"));
    let store: Arc<dyn Store> = sqlite.clone();
    let mut seq = 0;
    let mut commit = |agent: &str, ms| {
        seq += 1;
        store.commit_batch(&batch(agent, seq, ms)).expect("commit");
    };
    for m in 0..3000 {
        commit("a1", vec![ok("web", m, 0, 0.01 + (m % 7) as f64 * 0.05)]);
    }
    let figures = Figures::new(cfg.clone(), store.clone());
    let mut now = at(2000, 0);
    let check = |figures: &Figures, now: Timestamp, what: &str| {
        figures.refresh(now);
        let got = figures.latest().services.clone();
        assert_eq!(got, fresh(&cfg, &store, now), "{what}");
        got
    };
    let first = check(&figures, now, "first refresh");
    assert!(figures.closed.lock().expect("lock").contains_key("web"));
    check(&figures, now, "unchanged");
    now = at(2999, 0);
    check(&figures, now, "later: closed minutes extended");
    store.compact(BASE_MINUTE + 2800).expect("compact");
    commit("a2", vec![fail("web", 100, 30, None)]);
    let late = check(&figures, now, "late failure into a compacted minute");
    assert_eq!(late[0].bad_minutes, first[0].bad_minutes + 1);
    let mut b = batch("a1", 10_000, Vec::new());
    b.gaps.push(attest_config::wire::Gap {
        check: "web".into(),
        from: at(200, 0),
        to: at(209, 0),
        count: 10,
    });
    store.commit_batch(&b).expect("gap");
    let gapped = check(&figures, now, "gap");
    assert_eq!(gapped[0].unknown_minutes, late[0].unknown_minutes + 10);
}

/// A store that stops answering does not take figures away: every series the last good
/// refresh had stays (same values, same totals), its age grows and each failed refresh
/// is counted; once the store answers again the figures are fresh and equal to a
/// from-scratch computation.
pub(crate) fn figures_survive_an_outage(inner: Arc<dyn Store>) {
    use crate::clock::FixedClock;
    use crate::ingest::{IngestStats, LatestResults};
    use crate::metrics::Exporter;
    use crate::store::faulty::FaultyStore;

    let cfg = config();
    let mut seq = 0;
    let mut commit = |agent: &str, ms| {
        seq += 1;
        inner.commit_batch(&batch(agent, seq, ms)).expect("commit");
    };
    for m in 0..600 {
        commit("a1", vec![ok("web", m, 0, 0.05)]);
    }
    commit("a2", vec![fail("web", 300, 10, None)]);
    let faulty = Arc::new(FaultyStore::new(inner.clone()));
    let store: Arc<dyn Store> = faulty.clone();
    let figures = Arc::new(Figures::new(cfg.clone(), store));
    let t0 = at(700, 0);
    figures.refresh(t0);
    let good = figures.latest();
    assert_eq!(good.services.len(), 1, "failures: {:?}", good.failures);
    assert!(good.failures.is_empty(), "{:?}", good.failures);
    assert_eq!(good.refresh_failures, vec![("web".to_owned(), 0)]);
    assert_eq!(good.agents.len(), 2);

    faulty.set_failing(true);
    let t1 = at(705, 0);
    figures.refresh(t1);
    figures.refresh(at(706, 0));
    let kept = figures.latest();
    assert!(faulty.refused.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(kept.computed_at, Some(at(706, 0)));
    assert_eq!(kept.services, good.services, "the last good report is kept");
    assert_eq!(
        kept.totals, good.totals,
        "the SLO counters do not step down"
    );
    assert_eq!(
        kept.computed,
        vec![t0],
        "the kept report keeps its own time"
    );
    assert_eq!(kept.refresh_failures, vec![("web".to_owned(), 2)]);
    assert!(kept.failures.iter().any(|(s, _)| s == "web"));
    assert_eq!(kept.agents, good.agents, "agent status is kept");
    assert_eq!(kept.stored_measurements, good.stored_measurements);

    let exporter = Exporter::new(
        cfg.clone(),
        figures.clone(),
        Arc::new(IngestStats::default()),
        Arc::new(LatestResults::default()),
        Arc::new(FixedClock(at(706, 30))),
    );
    let (_, body) = exporter.render(false);
    for line in [
        "attest_sla_target_ratio{service=\"web\"} 0.999",
        "attest_sla_figures_age_seconds{service=\"web\"} 390",
        "attest_sla_refresh_failures_total{service=\"web\"} 2",
        "attest_agent_last_seen_timestamp_seconds{agent=\"a1\"}",
    ] {
        assert!(body.contains(line), "{line} missing from:\n{body}");
    }
    assert!(body.contains("attest_slo_good_minutes_total{service=\"web\"}"));

    faulty.set_failing(false);
    commit("a2", vec![fail("web", 650, 10, None)]);
    let t2 = at(710, 0);
    figures.refresh(t2);
    let back = figures.latest();
    assert!(back.failures.is_empty(), "{:?}", back.failures);
    assert_eq!(back.computed, vec![t2]);
    assert_eq!(back.refresh_failures, vec![("web".to_owned(), 2)]);
    assert_eq!(back.services, fresh(&cfg, &inner, t2), "fresh again");
    assert_eq!(
        back.services[0].bad_minutes,
        good.services[0].bad_minutes + 1
    );
}

#[test]
fn figures_survive_an_sqlite_outage() {
    let store = Arc::new(SqliteStore::open_temp().expect("store"));
    figures_survive_an_outage(store);
}

#[test]
fn figures_survive_a_postgres_outage() {
    let Some(db) = crate::store::postgres::tests::TestDb::create() else {
        return;
    };
    figures_survive_an_outage(Arc::new(db.store()));
}

/// Within one as-of minute, a service none of whose rows, gaps or API maintenance
/// changed reuses its last report (no rollup read, the same figures with the new
/// instant); new data, a maintenance window or the next minute recompute it.
#[test]
fn an_untouched_service_costs_no_read_within_its_minute() {
    use crate::store::faulty::FaultyStore;
    use std::sync::atomic::Ordering::SeqCst;
    let cfg = config();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
    let faulty = Arc::new(FaultyStore::new(sqlite.clone()));
    for m in 0..300 {
        let b = batch("a1", m as u64 + 1, vec![ok("web", m, 0, 0.1)]);
        faulty.commit_batch(&b).expect("commit");
    }
    let figures = Figures::new(cfg.clone(), faulty.clone());
    let reads = || faulty.rollup_reads.load(SeqCst);
    figures.refresh(at(299, 20));
    let (first, before) = (figures.latest().services[0].clone(), reads());
    figures.refresh(at(299, 50));
    let again = figures.latest().services[0].clone();
    assert_eq!(reads(), before, "untouched within the minute: nothing read");
    assert_eq!(again.as_of, at(299, 50));
    assert_eq!(again.clone().restamped(first.as_of), first);
    assert_eq!(again, fresh(&cfg, &sqlite, at(299, 50))[0]);

    let b = batch("a1", 1_000, vec![fail("web", 299, 30, None)]);
    faulty.commit_batch(&b).expect("commit");
    figures.refresh(at(299, 55));
    let failed = figures.latest().services[0].clone();
    assert!(reads() > before, "new data is read");
    assert_eq!(failed.bad_minutes, first.bad_minutes + 1);
    assert_eq!(failed, fresh(&cfg, &sqlite, at(299, 55))[0]);

    let before = reads();
    let window = crate::store::NewMaintenance {
        service: "web",
        start: at(10, 0),
        end: at(20, 0),
        reason: "test",
        registered_by: "test",
        reference: None,
    };
    faulty
        .add_maintenance(&window, at(299, 56))
        .expect("maintenance");
    figures.refresh(at(299, 57));
    assert!(reads() > before, "a maintenance window recomputes");
    let maintained = figures.latest().services[0].clone();
    assert_eq!(maintained.eligible_minutes, failed.eligible_minutes - 10);

    let before = reads();
    figures.refresh(at(300, 10));
    assert!(reads() > before, "the next minute recomputes");
    assert_eq!(
        figures.latest().services[0],
        fresh(&cfg, &sqlite, at(300, 10))[0]
    );
}

/// The refresh loop's pause keeps it to its share of a core, between the settle time
/// and the snapshot's maximum age.
#[test]
fn a_long_refresh_pauses_in_proportion() {
    assert_eq!(pause_after(Duration::from_millis(10)), SETTLE);
    assert_eq!(pause_after(Duration::from_secs(1)), Duration::from_secs(19));
    assert_eq!(pause_after(Duration::from_secs(5)), MAX_AGE);
}

/// A complete month's report is kept and reused at any later instant (equal to a fresh
/// evaluation) until a write to its rows voids it; then it is computed again.
#[test]
fn a_complete_month_is_reused_only_while_its_rows_hold() {
    let cfg = config();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
    for m in 0..600 {
        let b = batch("a1", m as u64 + 1, vec![ok("web", m, 0, 0.05)]);
        store.commit_batch(&b).expect("commit");
    }
    let svc = &cfg.services[0];
    let month = Month::containing(at(0, 0), &svc.time_zone).expect("month");
    let now = at(100_000, 0);
    let figures = Figures::new(cfg.clone(), store.clone());
    let first = figures.evaluate(svc, month, now).expect("first");
    assert!(first.complete && first.known_minutes() > 0, "{first:?}");
    assert!(
        figures.kept_month(svc, month, &[]).expect("read").is_some(),
        "kept"
    );
    let later = figures.evaluate(svc, month, at(100_500, 0)).expect("again");
    assert_eq!(later, first, "reused at a later instant");
    let late = batch("a2", 1, vec![fail("web", 300, 10, None)]);
    store.commit_batch(&late).expect("late write");
    assert!(
        figures.kept_month(svc, month, &[]).expect("read").is_none(),
        "a write to its rows voids it"
    );
    let again = figures.evaluate(svc, month, now).expect("after the write");
    assert_ne!(again, first);
    let fresh = Figures::new(cfg.clone(), store.clone());
    assert_eq!(again, fresh.evaluate(svc, month, now).expect("fresh"));
}

/// Background passes that read whole months wait for the first refresh: it resolves only
/// once one completed (also a refresh whose services all failed), and at once afterwards.
#[tokio::test]
async fn the_first_refresh_is_signalled_when_it_completes() {
    use crate::store::faulty::FaultyStore;
    let faulty = Arc::new(FaultyStore::new(Arc::new(
        SqliteStore::open_temp().expect("store"),
    )));
    faulty.set_failing(true);
    let figures = Arc::new(Figures::new(config(), faulty));
    let waiting = tokio::spawn({
        let f = figures.clone();
        async move { f.first_refresh().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "no refresh yet");
    figures.refresh(at(10, 0));
    waiting.await.expect("resolved by the first refresh");
    figures.first_refresh().await;
}

/// Before any good refresh there is nothing to keep: the service is absent (documented),
/// its failure counted.
#[test]
fn a_failure_before_any_figures_counts_and_shows_nothing() {
    use crate::store::faulty::FaultyStore;
    let faulty = Arc::new(FaultyStore::new(Arc::new(
        SqliteStore::open_temp().expect("store"),
    )));
    faulty.set_failing(true);
    let figures = Figures::new(config(), faulty);
    figures.refresh(at(10, 0));
    let snap = figures.latest();
    assert!(snap.services.is_empty());
    assert!(snap.computed.is_empty());
    assert_eq!(snap.refresh_failures, vec![("web".to_owned(), 1)]);
    assert_eq!(snap.stored_measurements, None);
}

/// A restart loads the saved closed minutes and reads only the open ones, with figures
/// equal to a from-scratch computation; a late write after the save, or a changed
/// service definition, makes the saved entry untrusted (read in full again).
#[test]
fn a_restart_reuses_saved_closed_minutes_only_while_they_hold() {
    use crate::store::faulty::FaultyStore;
    use std::sync::atomic::Ordering;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(state::FILE_NAME);
    let now = at(3000, 0);
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        for m in 0..3000 {
            let mut b = batch(
                "a1",
                m as u64 + 1,
                vec![ok("web", m, 0, 0.01 + (m % 5) as f64 * 0.1)],
            );
            if m % 97 == 0 {
                b.measurements.push(fail("web", m, 30, None));
            }
            b.received_at = at(m, 5);
            store.commit_batch(&b).expect("commit");
        }
        let f = Figures::new(config(), Arc::new(store)).with_state_file(path.clone());
        f.refresh(now);
        assert!(path.exists(), "the first refresh saves the state");
    }
    let restart = |cfg: Arc<CollectorConfig>| {
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("reopen"));
        let counted = Arc::new(FaultyStore::new(inner.clone()));
        let f = Figures::new(cfg.clone(), counted.clone()).with_state_file(path.clone());
        f.refresh(now);
        let got = f.latest().services.clone();
        assert_eq!(
            got,
            fresh(&cfg, &inner, now),
            "same figures as from scratch"
        );
        (counted.earliest_read.load(Ordering::SeqCst), inner)
    };
    let (from, _) = sla::input_range(
        &config().services[0],
        current_month(&config().services[0], now).expect("month"),
        now,
    )
    .expect("range");
    {
        // Two retention passes since the save (as a restart's startup pass and the
        // hourly one), far behind the saved minutes: the saved state still holds.
        let store = SqliteStore::open(dir.path()).expect("reopen");
        for days in [400, 399] {
            let before = now - jiff::SignedDuration::from_hours(24 * days);
            store.apply_retention(before, before).expect("retention");
        }
    }
    let (earliest, inner) = restart(config());
    assert!(
        earliest >= sla::closed::split(from, now.as_second() / 60) - 60,
        "only the open minutes are read after a restart (read from {earliest}, range from {from})"
    );
    drop(inner);
    let (earliest, inner) = restart(config_with_target("99.5%"));
    assert_eq!(earliest, from, "a changed definition: read in full");
    let mut late = batch("a2", 1, vec![fail("web", 500, 0, None)]);
    late.received_at = at(3001, 0);
    inner.commit_batch(&late).expect("late write");
    drop(inner);
    let (earliest, _) = restart(config());
    assert_eq!(earliest, from, "a late write after the save: read in full");
}

/// The store's exact threshold counts and first-configured instant reach the report:
/// 0.25 s meets a 250 ms threshold, 0.250001 s and 0.251 s do not (the histogram's
/// bucket holds all three); a service configured before its first probe is eligible
/// from the configured instant.
#[test]
fn exact_threshold_and_first_configured_reach_the_report() {
    let cfg = config();
    let sqlite = Arc::new(SqliteStore::open_temp().expect("store"));
    let store: Arc<dyn Store> = sqlite.clone();
    crate::store::note_config(store.as_ref(), &cfg, at(-30, 0)).expect("note config");
    let probes = vec![
        ok("web", 0, 0, 0.25),
        ok("web", 0, 10, 0.250001),
        ok("web", 0, 20, 0.251),
        ok("web", 0, 30, 0.1),
    ];
    store.commit_batch(&batch("a1", 1, probes)).expect("commit");
    let f = Figures::new(cfg.clone(), store.clone());
    let now = at(1, 0);
    f.refresh(now);
    let r = f.latest().services[0].clone();
    assert_eq!((r.latency.probes, r.latency.probes_within), (4, Some(2)));
    assert_eq!(r.latency.histogram_resolution_probes, 0);
    let since = r.eligible_since.expect("eligible");
    assert_eq!(since.basis, sla::EligibilityBasis::FirstConfigured);
    assert_eq!(since.minute, BASE_MINUTE - 30);
    assert_eq!((r.good_minutes, r.unknown_minutes), (1, 30));
}

/// Capacity objectives run on every refresh from the store's host minutes of the
/// agents measuring the service, and the month report of the API gives the same
/// verdicts: a peak above `max` breaches even at low coverage, p95 is not determinable.
#[test]
fn refresh_and_month_reports_judge_capacity_objectives_from_the_store() {
    let toml = "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
         data_dir = \"/nonexistent\"\n\
         [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
         [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"99.9%\"\n\
         capacity = [{ kind = \"cpu\", statistic = \"max\", max = \"50%\" },\
         { kind = \"cpu\", statistic = \"p95\", max = \"50%\" }]\n";
    let cfg = Arc::new(attest_config::parse_collector("t.toml", toml).expect("valid config"));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
    let mut ms = Vec::new();
    for m in 0..600 {
        ms.push(ok("web", m, 0, 0.01));
        let mut h = attest_config::wire::Measurement::new("host", at(m, 1), true);
        h.values.push(attest_config::wire::Value {
            name: "cpu_utilization_ratio".into(),
            resource: None,
            value: if m == 100 { 0.7 } else { 0.3 },
        });
        ms.push(h);
    }
    store.commit_batch(&batch("a1", 1, ms)).expect("commit");
    let now = at(600, 0);
    let figures = Figures::new(cfg, store);
    figures.refresh(now);
    let snap = figures.latest();
    let cap = &snap.services[0].capacity;
    let got: Vec<(&str, Verdict, Option<f64>)> = cap
        .objectives
        .iter()
        .map(|o| (o.name.as_str(), o.verdict, o.value))
        .collect();
    use sla::capacity_objectives::Verdict;
    assert_eq!(cap.hosts, ["a1"]);
    assert_eq!(
        got,
        [
            ("cpu:max", Verdict::Breached, Some(0.7)),
            ("cpu:p95", Verdict::NotDeterminable, Some(0.3)),
        ]
    );
    assert_eq!(cap.verdict, Some(Verdict::Breached));
    let month = crate::report::parse_month("2026-06").expect("month");
    let api = figures
        .month_reports(month, None, now)
        .expect("month report");
    assert_eq!(&api[0].capacity, cap);
    let public: Vec<crate::report::model::ServiceReport> = api
        .iter()
        .map(crate::report::model::ServiceReport::from)
        .collect();
    let json = serde_json::to_value(&public[0]).expect("json");
    assert_eq!(json["capacity"]["objectives"][0]["verdict"], "breached");
    assert_eq!(json["capacity"]["verdict"], "breached");
    let text = crate::report::table::render(&public);
    assert!(
        text.contains("cpu:max") && text.contains("BREACHED"),
        "{text}"
    );
}

/// Two services on their own checks, one in UTC and one in Europe/Berlin (a month turns an
/// hour apart), measured by two agents.
fn two_zones() -> Arc<CollectorConfig> {
    let toml = "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
         data_dir = \"/nonexistent\"\n\
         [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
         [[agent]]\nid = \"a2\"\ntoken = \"test-token-a2-0123456789\"\n\
         [[service]]\nname = \"utc\"\nchecks = [\"c-utc\"]\ntarget = \"99.9%\"\n\
         quorum = \"any\"\nlatency = { threshold = \"250ms\", target = \"99%\" }\n\
         [[service]]\nname = \"berlin\"\nchecks = [\"c-berlin\"]\ntarget = \"99.5%\"\n\
         time_zone = \"Europe/Berlin\"\nquorum = \"majority\"\n";
    Arc::new(attest_config::parse_collector("t.toml", toml).expect("valid config"))
}

const AGENTS: [&str; 2] = ["a1", "a2"];
const CHECKS: [&str; 2] = ["c-utc", "c-berlin"];

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

/// Loads `[from, to)` of every check and agent as bulk history (one probe a minute, a
/// failure now and then), as an import before the collector first runs.
fn seed_history(store: &SqliteStore, from: i64, to: i64) {
    for (c, check) in CHECKS.iter().enumerate() {
        for (a, agent) in AGENTS.iter().enumerate() {
            let rows: Vec<crate::store::SeriesMinuteSummary> = (from..to)
                .map(|minute| {
                    let failures = u32::from((minute + (c * 7 + a) as i64) % 977 == 0);
                    crate::store::SeriesMinuteSummary {
                        minute,
                        probes: 1,
                        failures,
                        reason: None,
                        ok_durations: if failures == 0 { vec![0.1] } else { vec![] },
                    }
                })
                .collect();
            store.load_minutes(agent, check, &rows).expect("seed");
        }
    }
}

/// Live batches for the minutes `[from, to)`, each received 5 s into its minute.
fn live(store: &dyn Store, from: i64, to: i64, seq: &mut u64) {
    for minute in from..to {
        for agent in AGENTS {
            *seq += 1;
            let t = Timestamp::from_second(minute * 60 + 2).expect("ts");
            let ms = CHECKS
                .iter()
                .map(|c| {
                    let mut m = attest_config::wire::Measurement::new(*c, t, minute % 5 != 0);
                    m.duration_seconds = Some(0.12);
                    m
                })
                .collect();
            let mut b = batch(agent, *seq, ms);
            b.received_at = Timestamp::from_second(minute * 60 + 5).expect("ts");
            store.commit_batch(&b).expect("commit");
        }
    }
}

/// The collector's retention pass (raw 35 days, rollups 400 days), as at every start and
/// every hour.
fn retention(store: &dyn Store, now: Timestamp) {
    let days = |d: i64| now - jiff::SignedDuration::from_hours(24 * d);
    store
        .apply_retention(days(35), days(400))
        .expect("retention");
}

/// What one restart costs: the rows its first refresh read, against a cold start's.
#[derive(Debug)]
struct RestartCost {
    rows: u64,
    cold_rows: u64,
}

/// Runs a collector on 45 days of history up to `save` (refreshing at `save − 20 min`, then
/// a retention pass, then at `save`; with `through`, once more at that instant with live
/// data up to it), stops it (the state is saved at shutdown), feeds live data up to
/// `restart`, runs the retention pass of a start and restarts at `restart`: the restarted
/// figures and SLO counters must equal a cold start's, and the rows it read are returned
/// beside a cold start's.
fn restart_cost(save: Timestamp, through: Option<Timestamp>, restart: Timestamp) -> RestartCost {
    use crate::store::faulty::FaultyStore;
    use std::sync::atomic::Ordering::SeqCst;
    let cfg = two_zones();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(state::FILE_NAME);
    let first = minute_of(save) - 20;
    let mut seq = 0;
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        seed_history(&store, minute_of(save) - 45 * 1_440, first);
        let store: Arc<dyn Store> = Arc::new(store);
        let counted = Arc::new(FaultyStore::new(store.clone()));
        let f = Figures::new(cfg.clone(), counted.clone()).with_state_file(path.clone());
        f.refresh(save - jiff::SignedDuration::from_mins(20));
        live(store.as_ref(), first, minute_of(save), &mut seq);
        retention(store.as_ref(), save);
        let before = counted.rows_read.load(SeqCst);
        f.refresh(save);
        let during = counted.rows_read.load(SeqCst) - before;
        assert!(
            during <= 4 * 240,
            "a refresh after a retention pass read {during} rows (only the open minutes are due)"
        );
        if let Some(t) = through {
            live(store.as_ref(), minute_of(save), minute_of(t), &mut seq);
            f.refresh(t);
        }
        f.save_state();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("reopen"));
    let resumed = through.map_or(minute_of(save), minute_of);
    live(store.as_ref(), resumed, minute_of(restart), &mut seq);
    retention(store.as_ref(), restart);
    let counted = Arc::new(FaultyStore::new(store.clone()));
    let f = Figures::new(cfg.clone(), counted.clone()).with_state_file(path.clone());
    f.refresh(restart);
    let rows = counted.rows_read.load(SeqCst);
    let cold_counted = Arc::new(FaultyStore::new(store.clone()));
    let cold = Figures::new(cfg.clone(), cold_counted.clone());
    cold.refresh(restart);
    let (got, want) = (f.latest(), cold.latest());
    assert!(got.failures.is_empty(), "{:?}", got.failures);
    assert_eq!(
        got.services, want.services,
        "restarted figures equal a cold start's"
    );
    assert_eq!(
        got.totals, want.totals,
        "restarted SLO counters equal a cold start's"
    );
    assert!(
        want.totals.iter().all(|t| t.known > 0),
        "the counters have history: {:?}",
        want.totals
    );
    RestartCost {
        rows,
        cold_rows: cold_counted.rows_read.load(SeqCst),
    }
}

/// Restart cost is proportional to what changed since the save, on any day of the month:
/// the 7th (a full past month behind the SLO counters, measured at 34.5 s for 1,000
/// services when every past month was recomputed), mid-month, the month's last minute,
/// across a month close (stopped before it, started after it) and right after one (the
/// close happened while running). Each restart reads the minutes since the save plus the
/// two open hours of the month (and of the month that just closed, when it closed less
/// than two hours before the save); when the month turned while the collector was stopped,
/// also the new month's first input range (its three-day look-back into the closed month):
/// the closed month and the months before it are never read again.
#[test]
fn a_restart_reads_only_what_changed_since_the_save_on_any_day() {
    let per_minute = (AGENTS.len() * CHECKS.len()) as u64;
    for (what, save, through, restart, turned) in [
        (
            "7 December",
            "2026-12-07T12:00:00Z",
            None,
            "2026-12-07T12:10:00Z",
            false,
        ),
        (
            "mid-month",
            "2026-11-15T09:30:00Z",
            None,
            "2026-11-15T09:40:00Z",
            false,
        ),
        (
            "last day",
            "2026-11-30T22:20:00Z",
            None,
            "2026-11-30T22:45:00Z",
            false,
        ),
        // In Europe/Berlin the month turned at 23:00 UTC, before the save.
        (
            "last minute",
            "2026-11-30T23:40:00Z",
            None,
            "2026-11-30T23:59:30Z",
            false,
        ),
        (
            "right after a close",
            "2026-11-30T23:50:00Z",
            Some("2026-12-01T00:01:00Z"),
            "2026-12-01T00:05:00Z",
            false,
        ),
        // Stopped before the UTC month closed, started after it.
        (
            "across a close",
            "2026-11-30T23:50:00Z",
            None,
            "2026-12-01T00:05:00Z",
            true,
        ),
        (
            "1st, later",
            "2026-12-01T03:00:00Z",
            None,
            "2026-12-01T03:10:00Z",
            false,
        ),
    ] {
        let (save, restart) = (ts(save), ts(restart));
        let started = std::time::Instant::now();
        let cost = restart_cost(save, through.map(ts), restart);
        println!(
            "{what}: the restart read {} rows, a cold start {} ({:.1} s)",
            cost.rows,
            cost.cold_rows,
            started.elapsed().as_secs_f64()
        );
        let since = (minute_of(restart) - minute_of(save) + 5 * 60) as u64;
        let look_back = if turned { 3 * 1_440 + 4 * 60 } else { 0 };
        let bound = per_minute * (since + look_back);
        assert!(
            cost.rows <= bound,
            "{what}: the restart read {} rows, more than the {bound} that changed or are open (cold start: {})",
            cost.rows,
            cost.cold_rows
        );
        assert!(
            cost.rows * 10 <= cost.cold_rows,
            "{what}: the restart read {} rows, a cold start {}",
            cost.rows,
            cost.cold_rows
        );
    }
}

/// The figures published before a stop are served from the start of the next run (same
/// values, their own computation time, counted as restored) until the first refresh
/// replaces them; a service whose definition changed gets none back.
#[test]
fn published_figures_are_served_across_a_restart_until_recomputed() {
    use crate::clock::FixedClock;
    use crate::ingest::{IngestStats, LatestResults};
    use crate::metrics::Exporter;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(state::FILE_NAME);
    let t0 = at(600, 0);
    let before = {
        let store = SqliteStore::open(dir.path()).expect("open");
        for m in 0..600 {
            let b = batch("a1", m as u64 + 1, vec![ok("web", m, 0, 0.1)]);
            store.commit_batch(&b).expect("commit");
        }
        let f = Figures::new(config(), Arc::new(store)).with_state_file(path.clone());
        assert_eq!(f.latest().services.len(), 0, "nothing published yet");
        f.refresh(t0);
        f.save_state();
        f.latest()
    };
    assert_eq!(before.services.len(), 1);
    let published = dir.path().join(published::FILE_NAME);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&published)
            .expect("saved")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the published figures are the owner's only"
        );
    }

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("reopen"));
    let f = Arc::new(Figures::new(config(), store.clone()).with_state_file(path.clone()));
    let restored = f.latest();
    assert_eq!(restored.services, before.services, "the same figures");
    assert_eq!(restored.totals, before.totals, "the same SLO counters");
    assert_eq!(
        restored.computed,
        vec![t0],
        "with the time they were computed"
    );
    assert_eq!(restored.restored_count(), 1);
    let exporter = Exporter::new(
        config(),
        f.clone(),
        Arc::new(IngestStats::default()),
        Arc::new(LatestResults::default()),
        Arc::new(FixedClock(at(601, 30))),
    );
    let (_, body) = exporter.render(false);
    for line in [
        "attest_sla_target_ratio{service=\"web\"} 0.999",
        "attest_sla_figures_age_seconds{service=\"web\"} 90",
        "attest_sla_figures_restored_services 1",
        "attest_slo_good_minutes_total{service=\"web\"}",
    ] {
        assert!(body.contains(line), "{line} missing from:\n{body}");
    }
    let t1 = at(601, 0);
    f.refresh(t1);
    let fresh_snap = f.latest();
    assert_eq!(
        fresh_snap.restored_count(),
        0,
        "the first refresh replaces them"
    );
    assert_eq!(fresh_snap.computed, vec![t1]);
    let (_, body) = exporter.render(false);
    assert!(
        body.contains("attest_sla_figures_restored_services 0"),
        "{body}"
    );

    let changed = Figures::new(config_with_target("99.5%"), store).with_state_file(path);
    assert!(
        changed.latest().services.is_empty(),
        "a changed definition gets no figures back"
    );
}
