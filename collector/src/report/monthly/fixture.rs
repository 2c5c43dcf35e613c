//! A fixed, synthetic month for tests, examples and the benchmark: Europe/Berlin, October
//! 2026 (the DST month of 745 hours), services with 24x7 and office hours, a holiday,
//! maintenance from config and API, incidents (one in the DST night), unknown time with
//! silent agents, and a gap; service 0 (`web`) also has host data from both agents and two
//! capacity objectives (CPU p95 met, memory max breached on one afternoon: availability met,
//! service breached); service 2 (`api`) has latency histograms and misses its latency
//! objective; service 3 (`db`) falls below its coverage minimum (not determinable); the
//! office-hours services (`erp`) have an incident over a weekend (20 bad minutes in 2
//! segments of service hours). Built through the real engine; nothing here reads a clock.

use attest_config::units::Ppm;
use attest_config::{
    CapacityConfig, LatencyObjective, MaintenanceWindow, Quorum, Service, WeeklyWindow,
};
use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};

use super::model::{ApiMaintenance, Meta, MonthlyReport, ServiceParts, definitions_sha256};
use super::{method, terms};
use crate::minutes::{GapSpan, HostMinute, SeriesMinuteDetail, SeriesMinutes};
use crate::sla::detail::MinuteStates;
use crate::sla::{
    self, CapacityFigure, HostInput, Month, MonthDetail, Period, ServiceInput, ServiceReport,
};

pub const MONTH: &str = "2026-10";
/// The generation instant of the fixture's reports.
pub const GENERATED_AT: &str = "2026-11-02T08:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn base(name: &str) -> Service {
    Service {
        name: name.into(),
        checks: vec![format!("{name}-http")],
        target: Ppm(999_000),
        time_zone: "Europe/Berlin".into(),
        quorum: Quorum::Any,
        min_reporters: 1,
        min_coverage: None,
        service_hours: Vec::new(),
        holidays: Vec::new(),
        maintenance: Vec::new(),
        latency: None,
        start: None,
        hosts: Vec::new(),
        capacity: Vec::new(),
        info: attest_config::ServiceInfo::default(),
    }
}

/// Service `i`: even ones are 24x7 web services, odd ones office-hours ERP systems; 2 is
/// `api` (a web service with a latency objective of 99 % within 0.5 s), 3 is `db` (a web
/// service with a coverage minimum of 99.9 %).
pub fn service(i: usize) -> Service {
    if i == 2 {
        let mut s = base("api");
        s.start = Some(ts("2026-10-01T00:00:00+02:00"));
        s.latency = Some(LatencyObjective {
            threshold: std::time::Duration::from_millis(500),
            target: Ppm(990_000),
        });
        return s;
    }
    if i == 3 {
        let mut s = base("db");
        s.start = Some(ts("2026-10-01T00:00:00+02:00"));
        s.min_coverage = Some(Ppm(999_000));
        return s;
    }
    if i.is_multiple_of(2) {
        let mut s = base(if i == 0 { "web" } else { "" });
        if i != 0 {
            s.name = format!("web-{i:04}");
        }
        if i == 0 {
            s.capacity = capacity_config().services.remove(0).capacity;
            s.info = attest_config::ServiceInfo {
                description: Some("Customer-facing web shop".into()),
                owner: Some("Web team (J. Doe)".into()),
                customer: Some("Example Retail GmbH".into()),
                agreement: Some("SLA-2026-014".into()),
            };
            s.start = Some(ts("2026-09-01T00:00:00+02:00"));
            // db1 runs no check of web: its capacity counts because web names it.
            s.hosts = vec!["a1".into(), "a2".into(), "db1".into()];
        }
        s.maintenance.push(MaintenanceWindow::Once {
            start: ts("2026-10-20T22:00:00Z"),
            end: ts("2026-10-20T23:00:00Z"),
            reason: "database upgrade, change CHG-1042".into(),
        });
        s
    } else {
        let mut s = base(if i == 1 { "erp" } else { "" });
        if i == 1 {
            s.start = Some(ts("2026-08-01T00:00:00+02:00"));
        } else {
            s.name = format!("erp-{i:04}");
        }
        s.target = Ppm(995_000);
        s.quorum = Quorum::Majority;
        s.service_hours.push(WeeklyWindow {
            days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            start: Time::constant(8, 0, 0, 0),
            end: Some(Time::constant(18, 0, 0, 0)),
        });
        s.holidays.push(Date::constant(2026, 10, 26));
        s
    }
}

/// The central checks of the fixture: `web-http` and `api-http` are `[[check]]`s of the
/// collector assigned to a1 and a2 (by id and by label); the others are defined on the
/// agents. Through the real loader.
pub fn central_checks() -> attest_config::CollectorConfig {
    let toml = r#"
[[agent]]
id = "a1"
token = "fixture-token-a1-0123"
labels = { role = "probe" }

[[agent]]
id = "a2"
token = "fixture-token-a2-0123"
labels = { role = "probe" }

[[check]]
id = "web-http"
kind = "http"
url = "https://web.example/health"
interval = "10s"
timeout = "5s"

[[check]]
id = "api-http"
kind = "http"
url = "https://api.example/v1/ping"
interval = "10s"

[[assign]]
agents = ["a1", "a2"]
checks = ["web-http"]

[[assign]]
match = { role = "probe" }
checks = ["api-http"]
"#;
    attest_config::parse_collector("fixture.toml", toml).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// The `[capacity]` settings (defaults) and service 0's objectives, through the real loader.
fn capacity_config() -> attest_config::CollectorConfig {
    let toml = "[[agent]]\nid = \"a1\"\ntoken = \"fixture-token-a1-0123\"\n\
         [[agent]]\nid = \"a2\"\ntoken = \"fixture-token-a2-0123\"\n\
         [[service]]\nname = \"web\"\nchecks = [\"web-http\"]\ntarget = \"99.9%\"\n\
         capacity = [{ kind = \"cpu\", statistic = \"p95\", max = \"70%\" },\
         { kind = \"memory\", statistic = \"max\", max = \"90%\" }]\n";
    attest_config::parse_collector("fixture.toml", toml).unwrap_or_else(|e| panic!("fixture: {e}"))
}

fn capacity_settings() -> CapacityConfig {
    capacity_config().capacity
}

/// Host minutes of agents a1, a2 and the database host db1 (which runs no check) over
/// `[from, to)`: CPU between 20 % and 50 % (p95 well under 70 %), memory at 60 % except 14:00–15:00 local on 14 October, when
/// a2 peaks at 95 % (above the 90 % limit).
pub fn host_minutes(from: i64, to: i64) -> Vec<HostMinute> {
    let peak = (
        minute("2026-10-14T12:00:00Z"),
        minute("2026-10-14T13:00:00Z"),
    );
    let mut rows = Vec::with_capacity(((to - from) * 4) as usize);
    for agent in ["a1", "a2", "db1"] {
        for m in from..to {
            let cpu = 0.2 + 0.3 * ((m % 60) as f64 / 60.0);
            let mem = if agent == "a2" && peak.0 <= m && m < peak.1 {
                0.95
            } else {
                0.6
            };
            for (name, v) in [
                ("cpu_utilization_ratio", cpu),
                ("memory_utilization_ratio", mem),
            ] {
                rows.push(HostMinute {
                    agent: agent.into(),
                    name: name.into(),
                    resource: String::new(),
                    minute: m,
                    min: v,
                    avg: v,
                    max: v,
                });
            }
        }
    }
    rows
}

/// The definition history of the fixture: every service recorded at a start before the
/// month; the first one's target was raised from 99.95 % to its configured value by a
/// reload on 20 October (a mid-month definition change the report must show).
fn fixture_definitions(svc: &Service) -> Vec<crate::store::DefinitionRow> {
    let start = ts("2026-09-01T06:00:00Z");
    if svc.name != service(0).name {
        return vec![crate::definitions::row(svc, start, "start")];
    }
    let mut before = svc.clone();
    before.target = attest_config::units::Ppm(999_500);
    vec![
        crate::definitions::row(&before, start, "start"),
        crate::definitions::row(svc, ts("2026-10-20T08:00:00Z"), "reload"),
    ]
}

/// What the fixture's probes said when they failed, as the raw measurements of a real
/// store give it (`Figures::failure_detail`): the HTTP status of a `status` failure.
fn fixture_detail(reason: Option<&str>) -> Option<String> {
    match reason {
        Some("status") => Some("status 503".into()),
        Some("timeout") => Some("connect timeout after 5s".into()),
        _ => None,
    }
}

/// (agent, from, to, reason): failures; `reason = None` marks silence.
fn events(
    i: usize,
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
)> {
    if i == 2 {
        return vec![(
            "a1",
            "2026-10-16T09:00:00Z",
            "2026-10-16T09:05:00Z",
            Some("status"),
        )];
    }
    if i == 3 {
        // Both agents silent for two hours: coverage 99.73 % < the 99.9 % minimum.
        return vec![
            ("a1", "2026-10-09T02:00:00Z", "2026-10-09T04:00:00Z", None),
            ("a2", "2026-10-09T02:00:00Z", "2026-10-09T04:00:00Z", None),
        ];
    }
    if i.is_multiple_of(2) {
        vec![
            (
                "a1",
                "2026-10-03T10:00:00Z",
                "2026-10-03T10:10:00Z",
                Some("status"),
            ),
            (
                "a2",
                "2026-10-03T10:00:00Z",
                "2026-10-03T10:10:00Z",
                Some("status"),
            ),
            // The DST night: 02:50 CEST to 02:10 CET.
            (
                "a1",
                "2026-10-25T00:50:00Z",
                "2026-10-25T01:10:00Z",
                Some("timeout"),
            ),
            ("a1", "2026-10-12T04:00:00Z", "2026-10-12T04:45:00Z", None),
            ("a2", "2026-10-12T04:00:00Z", "2026-10-12T04:45:00Z", None),
            // Inside the maintenance window: does not count.
            (
                "a1",
                "2026-10-20T22:10:00Z",
                "2026-10-20T22:40:00Z",
                Some("connect_refused"),
            ),
        ]
    } else {
        vec![
            (
                "a1",
                "2026-10-14T07:00:00Z",
                "2026-10-14T09:00:00Z",
                Some("connect_refused"),
            ),
            (
                "a2",
                "2026-10-14T07:00:00Z",
                "2026-10-14T09:00:00Z",
                Some("connect_refused"),
            ),
            ("a2", "2026-10-22T12:00:00Z", "2026-10-22T13:00:00Z", None),
            // a1 alone fails for 15 minutes: the majority of 2 does not count it (outvoted).
            (
                "a1",
                "2026-10-21T08:00:00Z",
                "2026-10-21T08:15:00Z",
                Some("status"),
            ),
            // Friday 17:50 to Monday 08:10 local: one incident over the weekend, 20 bad
            // minutes in 2 segments of service hours.
            (
                "a1",
                "2026-10-16T15:50:00Z",
                "2026-10-19T06:10:00Z",
                Some("status"),
            ),
            (
                "a2",
                "2026-10-16T15:50:00Z",
                "2026-10-19T06:10:00Z",
                Some("status"),
            ),
            ("a1", "2026-10-22T12:00:00Z", "2026-10-22T12:20:00Z", None),
        ]
    }
}

fn minute(s: &str) -> i64 {
    ts(s).as_second().div_euclid(60)
}

/// Six successful probes of one minute: 0.2 s, except every 50th minute (2 % of the
/// probes) at 0.8 s — against 99 % within 0.5 s, a missed objective.
fn latency_of(minute: i64) -> hdrhistogram::Histogram<u64> {
    let mut h = crate::minutes::latency::new_histogram();
    let us = if minute % 50 == 0 { 800_000 } else { 200_000 };
    let _ = h.record_n(us, 6);
    h
}

/// The rollups of service `i`: agents a1 and a2 report 6 probes a minute over the input
/// range, except for the events.
pub fn rollups(
    svc: &Service,
    i: usize,
    month: Month,
    now: Timestamp,
) -> (SeriesMinutes, Vec<GapSpan>) {
    let (from, to) = sla::input_range(svc, month, now).unwrap_or((0, 0));
    // Parsed once: parsing them per minute made this generator, not the engine, the bulk
    // of the reports benchmark's "engine" figure.
    let ev: Vec<(&str, i64, i64, Option<&str>)> = events(i)
        .into_iter()
        .map(|(a, f, t, r)| (a, minute(f), minute(t), r))
        .collect();
    let mut rows = Vec::with_capacity(((to - from) * 2) as usize);
    for agent in ["a1", "a2"] {
        for m in from..to {
            let hit = ev
                .iter()
                .find(|(a, f, t, _)| *a == agent && *f <= m && m < *t);
            let (failures, reason) = match hit {
                Some((_, _, _, None)) => continue,
                Some((_, _, _, Some(r))) => (6, Some((*r).to_string())),
                None => (0, None),
            };
            rows.push(SeriesMinuteDetail {
                check: svc.checks[0].clone(),
                agent: agent.into(),
                minute: m,
                probes: 6,
                failures,
                top_reason: reason,
                latency: (svc.latency.is_some() && failures == 0).then(|| latency_of(m)),
            });
        }
    }
    let gaps = if i.is_multiple_of(2) && i != 2 {
        vec![GapSpan {
            agent: "a2".into(),
            check: svc.checks[0].clone(),
            from_minute: minute("2026-10-12T04:45:00Z"),
            to_minute: minute("2026-10-12T04:49:00Z"),
            count: 24,
        }]
    } else {
        Vec::new()
    };
    (SeriesMinutes::from_details(&rows), gaps)
}

/// API maintenance of service `i` (registered through the API, with its registration time).
pub fn api_maintenance(i: usize) -> Vec<ApiMaintenance> {
    if i % 2 == 1 && i != 3 {
        vec![ApiMaintenance {
            start: ts("2026-10-07T16:00:00Z"),
            end: ts("2026-10-07T17:00:00Z"),
            reason: "ERP patch day".into(),
            // Registered after it began: the report marks it (and counts its minutes apart).
            registered_at: ts("2026-10-07T18:30:00Z"),
            registered_by: Some("alice".into()),
            reference: Some("CHG-4711".into()),
        }]
    } else {
        Vec::new()
    }
}

/// The engine's results for service `i` as of `now`.
pub fn evaluate(
    svc: &Service,
    i: usize,
    month: Month,
    now: Timestamp,
) -> (ServiceReport, MonthDetail) {
    let (rollups, gaps) = rollups(svc, i, month, now);
    let api: Vec<MaintenanceWindow> = api_maintenance(i)
        .into_iter()
        .map(|m| MaintenanceWindow::Once {
            start: m.start,
            end: m.end,
            reason: m.reason,
        })
        .collect();
    let first_seen = rollups.rows.iter().map(|r| r.minute).min();
    let settings = capacity_settings();
    let host = if svc.capacity.is_empty() {
        Vec::new()
    } else {
        let (from, to) = sla::input_range(svc, month, now).unwrap_or((0, 0));
        host_minutes(from - sla::capacity::lookback_minutes(&settings), to)
    };
    let input = ServiceInput {
        service: svc,
        maintenance: &api,
        rollups: &rollups,
        gaps: &gaps,
        first_seen,
        first_configured: None,
        exact: None,
        host: (!host.is_empty()).then(|| HostInput {
            config: &settings,
            minutes: &host,
        }),
    };
    let report = sla::evaluate(&input, month, now).unwrap_or_else(|e| panic!("fixture: {e}"));
    let detail = sla::detail(&input, month, now).unwrap_or_else(|e| panic!("fixture: {e}"));
    (report, detail)
}

/// Per-host capacity figures of the service's local month (as the collector computes them)
/// for a service with host data, of its `hosts`; none for the others.
fn host_capacity(
    svc: &Service,
    month: Month,
    now: Timestamp,
    reporting: &[String],
) -> Vec<CapacityFigure> {
    if svc.capacity.is_empty() {
        return Vec::new();
    }
    let settings = capacity_settings();
    let Ok(period) = Period::month(month, &svc.time_zone) else {
        return Vec::new();
    };
    let end = now.min(period.end);
    let end_min = end.as_second().div_euclid(60);
    let from = period.start_minute - sla::capacity::lookback_minutes(&settings);
    sla::capacity(&host_minutes(from, end_min + 1), &settings, &period, end)
        .into_iter()
        .filter(|c| super::assemble::capacity_hosts(svc, reporting).contains(&c.agent))
        .collect()
}

/// Adds the months before to the fixture report of `n` services, computed by the engine
/// (web from September, erp from August, api and db start in October: none).
pub fn with_trend(r: &mut MonthlyReport, n: usize) {
    let month = Month::new(2026, 10).unwrap_or_else(|e| panic!("{e}"));
    let now = ts("2026-11-01T06:00:00Z");
    let services: Vec<Service> = (0..n).map(service).collect();
    let refs: Vec<&Service> = services.iter().collect();
    let filled = super::trend::fill(r, &refs, month, |svc, m| {
        let i = services
            .iter()
            .position(|s| s.name == svc.name)
            .unwrap_or(0);
        let (report, _) = evaluate(svc, i, m, now);
        Ok(super::trend::computed(svc, m, &report))
    });
    filled.unwrap_or_else(|e| panic!("fixture: {}", e.reason));
}

/// The fixture month for `n` services, with each service's minute states.
pub fn sample(n: usize) -> (MonthlyReport, Vec<(String, MinuteStates)>) {
    let month = Month::new(2026, 10).unwrap_or_else(|e| panic!("{e}"));
    let now = ts("2026-11-01T06:00:00Z");
    let services: Vec<Service> = (0..n).map(service).collect();
    let central = central_checks();
    let results: Vec<(ServiceReport, MonthDetail)> = services
        .iter()
        .enumerate()
        .map(|(i, s)| evaluate(s, i, month, now))
        .collect();
    let api: Vec<Vec<ApiMaintenance>> = (0..n).map(api_maintenance).collect();
    let capacity: Vec<Vec<CapacityFigure>> = services
        .iter()
        .zip(&results)
        .map(|(s, (_, d))| host_capacity(s, month, now, &d.agents))
        .collect();
    let parts: Vec<ServiceParts<'_>> = services
        .iter()
        .zip(&results)
        .zip(&api)
        .zip(&capacity)
        .map(|(((service, (report, detail)), api), capacity)| {
            let (terms, checks) = terms::of(&central, service, &detail.agents);
            ServiceParts {
                service,
                report,
                detail,
                api_maintenance: api,
                capacity,
                terms,
                checks,
                notes: Vec::new(),
                definitions: fixture_definitions(service),
                incident_details: report
                    .incidents
                    .iter()
                    .map(|i| fixture_detail(i.reason.as_deref()))
                    .collect(),
                evidence: evidence(service, &detail.agents),
            }
        })
        .collect();
    let refs: Vec<&Service> = services.iter().collect();
    let meta = Meta {
        organisation: "Example Org".into(),
        title: "Monthly availability report".into(),
        month: MONTH.into(),
        service: None,
        generated_at: ts(GENERATED_AT),
        attest_version: "0.1.0".into(),
        tzdb_version: "2025b".into(),
        definitions_sha256: definitions_sha256(&refs),
        sign_off: super::model::SignOff {
            prepared_by: Some("Service level manager (A. Smith)".into()),
            approved_by: Some("Head of IT operations".into()),
            distribution: vec!["Example Retail GmbH".into(), "Web team".into()],
        },
    };
    let mut report = MonthlyReport::build(meta, &parts, method::items());
    if let Some(first) = report.services.first_mut() {
        first.notes = vec![note()];
    }
    let minutes = services
        .iter()
        .zip(results)
        .map(|(s, (_, d))| (s.name.clone(), d.minutes))
        .collect();
    (report, minutes)
}

/// The evidence statement of a fixture service measured by `agents` (one measurement a
/// minute each over the 44,700 minutes of the month): `web`'s second agent declared gaps in
/// its chain (a missing seq and 12 dropped measurements), `api`'s second agent has a broken
/// link, `erp`'s second agent is an old agent without a key; every other second agent has 3
/// unsigned measurements (imported); everything else is signed and intact.
pub fn evidence(svc: &Service, agents: &[String]) -> super::evidence::Evidence {
    use super::evidence::{Chain, Count, of};
    let (mut counts, mut chains) = (
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    );
    for (k, agent) in agents.iter().enumerate() {
        let second = k == 1;
        let unsigned = second && svc.name == "erp";
        let check = svc.checks.first().cloned().unwrap_or_default();
        let measurements = 44_700;
        counts.insert(
            (agent.clone(), check),
            Count {
                measurements,
                signed: if unsigned {
                    0
                } else {
                    measurements - 3 * k as u64
                },
            },
        );
        let chain = Chain {
            batches: if unsigned { 0 } else { 745 },
            seq_gaps: u64::from(second && svc.name == "web"),
            new_chains: 0,
            broken_links: u64::from(second && svc.name == "api"),
            dropped_measurements: if second && svc.name == "web" { 12 } else { 0 },
        };
        chains.insert(agent.clone(), chain);
    }
    of(&svc.checks, &counts, &chains)
}

/// The fixture's one report note (on the first service).
pub fn note() -> super::model::NoteItem {
    super::model::NoteItem {
        written_at: ts("2026-11-01T05:30:00Z"),
        written_by: "alice".into(),
        cause: "Certificate of the load balancer expired on 12 October".into(),
        action: "Renewal automated; expiry alert at 14 days".into(),
        owner: Some("Web team".into()),
        due: Some("2026-11-30".into()),
    }
}
