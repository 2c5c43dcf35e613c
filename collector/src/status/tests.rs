//! The status page from a real store through the real figures and day history: states,
//! figures, day classes (good, degraded, below target, maintenance, not counted, today from
//! the month so far), the public view, escaping, and no external reference in the HTML.

use std::sync::Arc;

use attest_config::CollectorConfig;
use attest_config::wire::Measurement;
use jiff::Timestamp;

use super::history::History;
use super::{DayClass, State, View, board, html};
use crate::figures::Figures;
use crate::store::sqlite::SqliteStore;
use crate::store::{IngestBatch, NewMaintenance, Store};

const TOML: &str = r#"
[report]
organisation = "Example <Org>"

[status]
public = true
services = ["web"]

[[agent]]
id = "a1"
token = "test-token-a1-0123456789"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"

[[service]]
name = "api <b>&"
checks = ["api"]
target = "99.5%"
"#;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn config() -> Arc<CollectorConfig> {
    Arc::new(attest_config::parse_collector("collector.toml", TOML).expect("valid config"))
}

/// One probe a minute of `check` over `[from, to)`, failing where `bad` says.
fn commit(
    store: &dyn Store,
    seq: &mut u64,
    check: &str,
    (from, to): (&str, &str),
    bad: impl Fn(Timestamp) -> bool,
) {
    let (mut t, end) = (ts(from), ts(to));
    let mut ms = Vec::new();
    while t < end {
        let mut m = Measurement::new(check, t, !bad(t));
        m.duration_seconds = Some(0.05);
        ms.push(m);
        t += jiff::SignedDuration::from_mins(1);
    }
    for chunk in ms.chunks(5_000) {
        *seq += 1;
        let b = IngestBatch {
            agent: "a1".into(),
            seq: *seq,
            received_at: end,
            clock_offset_ms: 0,
            measurements: chunk.to_vec(),
            gaps: Vec::new(),
            spool: None,
            seal: None,
        };
        store.commit_batch(&b).expect("commit");
    }
}

/// 21 June 00:00–06:00 good then silent; 22 June one bad minute; 23 June 30 bad minutes;
/// 24 June in API maintenance all day (and silent); 25 June good but the last 3 minutes
/// before noon failing. `api <b>&` good throughout.
fn fleet(now: Timestamp) -> (Arc<CollectorConfig>, Figures, History, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
    let mut seq = 0;
    let s = store.as_ref();
    commit(
        s,
        &mut seq,
        "web",
        ("2026-06-21T00:00:00Z", "2026-06-21T06:00:00Z"),
        |_| false,
    );
    commit(
        s,
        &mut seq,
        "web",
        ("2026-06-22T00:00:00Z", "2026-06-24T00:00:00Z"),
        |t| {
            t == ts("2026-06-22T08:00:00Z")
                || (ts("2026-06-23T10:00:00Z") <= t && t < ts("2026-06-23T10:30:00Z"))
        },
    );
    commit(
        s,
        &mut seq,
        "web",
        ("2026-06-25T00:00:00Z", "2026-06-25T12:00:00Z"),
        |t| t >= ts("2026-06-25T11:57:00Z"),
    );
    commit(
        s,
        &mut seq,
        "api",
        ("2026-06-21T00:00:00Z", "2026-06-25T12:00:00Z"),
        |_| false,
    );
    let window = NewMaintenance {
        service: "web",
        start: ts("2026-06-24T00:00:00Z"),
        end: ts("2026-06-25T00:00:00Z"),
        reason: "datacentre move",
        registered_by: "admin",
        reference: None,
    };
    store
        .add_maintenance(&window, ts("2026-06-20T00:00:00Z"))
        .expect("maintenance");
    let cfg = config();
    let figures = Figures::new(cfg.clone(), store.clone());
    figures.refresh(now);
    let history = History::default();
    history.refresh(&figures, store.as_ref(), now);
    (cfg, figures, history, store)
}

#[test]
fn the_board_shows_states_figures_and_every_kind_of_day() {
    let now = ts("2026-06-25T12:00:00Z");
    let (cfg, figures, history, _store) = fleet(now);
    let snap = figures.latest();
    let b = board(&cfg, &snap, &history, View::Full, None, now).expect("board");
    assert_eq!(b.title, "Example <Org> service status");
    let names: Vec<&str> = b.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["web", "api <b>&"]);
    let web = &b.rows[0];
    assert_eq!(web.state, State::Degraded, "{}", web.why);
    assert_eq!(web.why, "3 of the last 5 known minutes bad");
    assert_eq!(b.rows[1].state, State::Up);
    let report = &snap.services[0];
    assert_eq!(web.availability, report.availability_percent_floor(3));
    assert_eq!(web.month.as_deref(), Some("2026-06"));
    assert!(
        web.incident.is_some(),
        "the failing minutes are an open incident"
    );
    assert_eq!(
        web.incident.as_ref().map(|i| i.start),
        Some(ts("2026-06-25T11:57:00Z"))
    );
    assert_eq!(web.bars.len(), 90);
    let class_of = |d: &str| {
        let date: jiff::civil::Date = d.parse().expect("date");
        web.bars
            .iter()
            .find(|b| b.date == date)
            .map(|b| (b.class, b.unknown, b.maintenance))
    };
    assert_eq!(
        class_of("2026-03-28"),
        Some((DayClass::NotCounted, 0, 0)),
        "the window's first day"
    );
    assert_eq!(
        class_of("2026-06-20"),
        Some((DayClass::NotCounted, 0, 0)),
        "before the first measurement"
    );
    assert_eq!(class_of("2026-06-21"), Some((DayClass::Good, 1_080, 0)));
    assert_eq!(class_of("2026-06-22"), Some((DayClass::Degraded, 0, 0)));
    assert_eq!(class_of("2026-06-23"), Some((DayClass::Bad, 0, 0)));
    assert_eq!(
        class_of("2026-06-24"),
        Some((DayClass::Maintenance, 0, 1_440))
    );
    let today = web.bars.last().expect("today");
    assert_eq!(today.date.to_string(), "2026-06-25");
    assert_eq!(
        today.class,
        DayClass::Bad,
        "3 of 720 minutes bad is below 99.9 %"
    );
    assert_eq!((today.good, today.bad), (717, 3));
    // The days add up to the month so far.
    let days_bad: u64 = web.bars.iter().map(|b| b.bad).sum();
    assert_eq!(days_bad, report.bad_minutes);
}

#[test]
fn the_public_view_shows_only_the_chosen_services() {
    let now = ts("2026-06-25T12:00:00Z");
    let (cfg, figures, history, _store) = fleet(now);
    let snap = figures.latest();
    let public = board(&cfg, &snap, &history, View::Public, None, now).expect("board");
    let names: Vec<&str> = public.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["web"]);
    let err =
        board(&cfg, &snap, &history, View::Public, Some("api <b>&"), now).expect_err("not public");
    assert_eq!(err.status, 404);
    assert!(err.reason.contains("public status page"), "{}", err.reason);
    let one = board(&cfg, &snap, &history, View::Full, Some("api <b>&"), now).expect("one");
    assert_eq!(one.rows.len(), 1);
    let err = board(&cfg, &snap, &history, View::Full, Some("nope"), now).expect_err("unknown");
    assert_eq!(err.status, 404);
}

#[test]
fn the_html_is_escaped_self_contained_and_reloads_itself() {
    let now = ts("2026-06-25T12:00:00Z");
    let (cfg, figures, history, _store) = fleet(now);
    let snap = figures.latest();
    let b = board(&cfg, &snap, &history, View::Full, None, now).expect("board");
    let page = html::overview(&b);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("api &lt;b&gt;&amp;"), "names are escaped");
    assert!(!page.contains("api <b>"), "no raw name");
    assert!(
        page.contains("href=\"/status/api%20%3Cb%3E%26\""),
        "links are encoded"
    );
    assert!(page.contains("Example &lt;Org&gt; service status"));
    assert!(page.contains("class=\"pill s-degraded\">degraded<"));
    assert!(
        page.contains("1 degraded, 1 up of 2 services") || page.contains("1 degraded"),
        "summary"
    );
    self_contained(&page);
    let one = html::one(&board(&cfg, &snap, &history, View::Full, Some("web"), now).expect("one"));
    self_contained(&one);
    assert!(
        one.contains("2026-06-23: below target, 97.916 % (1410 good, 30 bad min)"),
        "per-day tooltips"
    );
    assert!(
        one.contains("2026-06-24: 1440 min maintenance"),
        "maintenance marker"
    );
    assert!(
        one.contains("<td>2026-06-23 10:00 UTC</td><td>2026-06-23 10:30 UTC</td>"),
        "incidents"
    );
    assert!(one.contains("ongoing"), "the open incident");
    // The overview merges equal days: far fewer rectangles than days.
    let web_rects = page.matches("<rect x=").count();
    assert!(web_rects < 2 * 90, "{web_rects} rectangles");
}

/// No script, no external URL, no external stylesheet, image or font.
fn self_contained(page: &str) {
    for banned in [
        "<script",
        "http://",
        "https://",
        "src=",
        "@import",
        "<link",
        "javascript:",
    ] {
        assert!(!page.contains(banned), "the page contains {banned:?}");
    }
    for (i, _) in page.match_indices("url(") {
        assert!(page[i..].starts_with("url(#gaps)"), "external url( at {i}");
    }
}

#[test]
fn the_state_follows_staleness_and_maintenance() {
    let now = ts("2026-06-25T12:00:00Z");
    let (_cfg, figures, _history, _store) = fleet(now);
    let snap = figures.latest();
    let web = &snap.services[0];
    let (state, why) = super::state(
        Some(web),
        Some(now - jiff::SignedDuration::from_mins(10)),
        false,
        now,
    );
    assert_eq!(state, State::Unknown);
    assert!(why.contains("10 min old"), "{why}");
    assert_eq!(super::state(None, None, false, now).0, State::Unknown);
    // Nothing known in the last 5 minutes: unknown, or maintenance while in a window.
    let later = ts("2026-06-25T12:20:00Z");
    figures.refresh(later);
    let snap = figures.latest();
    let web = &snap.services[0];
    assert_eq!(
        super::state(Some(web), Some(later), false, later).0,
        State::Unknown
    );
    assert_eq!(
        super::state(Some(web), Some(later), true, later).0,
        State::Maintenance
    );
}
