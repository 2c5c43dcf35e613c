//! Tests of the monthly report on the fixed fixture month (see `fixture.rs`): golden files
//! per format, determinism, CSV read back equals the JSON, HTML well-formed and free of
//! external references, PDF text (via `pdftotext`) shows the JSON's figures, and `verify`
//! accepts untouched files and rejects a one-byte edit of each format and a wrong key.
//!
//! Golden files live in `golden/`; `ATTEST_UPDATE_GOLDEN=1` rewrites them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;

use super::model::{IncidentRow, MonthlyReport};
use super::*;
use crate::sla::detail::MinuteStates;

type Sample = (MonthlyReport, Vec<(String, MinuteStates)>);

/// web, erp, api, db (see `fixture.rs`).
const SERVICES: usize = 4;

fn sample() -> &'static Sample {
    static S: OnceLock<Sample> = OnceLock::new();
    S.get_or_init(|| {
        let (mut r, m) = fixture::sample(SERVICES);
        fixture::with_trend(&mut r, SERVICES);
        (r, m)
    })
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn opts<'a>(
    key: Option<&'a SigningKey>,
    minutes: &'a [(String, MinuteStates)],
) -> RenderOptions<'a> {
    RenderOptions {
        key,
        templates: Templates::default(),
        minutes,
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report/monthly/golden")
}

fn golden(name: &str, got: &[u8]) {
    let path = golden_dir().join(name);
    if std::env::var_os("ATTEST_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with ATTEST_UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if want != got {
        let (w, g) = (String::from_utf8_lossy(&want), String::from_utf8_lossy(got));
        let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
        panic!(
            "{name} differs from its golden file: {}",
            verify::first_difference(&lines(&w), &lines(&g))
        );
    }
}

fn one(r: &MonthlyReport, f: Format, key: Option<&SigningKey>) -> Vec<u8> {
    let (_, minutes) = sample();
    render(r, f, &opts(key, minutes)).unwrap().remove(0).1
}

#[test]
fn fixture_has_dst_hours_maintenance_unknown_time_and_incidents() {
    let (r, _) = sample();
    let web = &r.summary[0];
    assert_eq!(web.service, "web");
    // 745 hours in Berlin's October; 60 maintenance minutes excluded.
    assert_eq!(web.eligible_minutes, 44_700 - 60);
    // 10 + 20 bad (a1 fails, quorum any), 45 + 4 unknown (both silent, then a2 in a gap
    // while a1 is ok: any needs 1 reporter, so only the 45 minutes are unknown).
    assert_eq!(web.bad_minutes, 30);
    assert_eq!(web.availability_verdict, model::Verdict::Met);
    assert_eq!(web.unknown_minutes, 45);
    assert_eq!(web.incidents, 2);
    assert_eq!(r.services[0].daily.len(), 31);
    assert_eq!(r.services[0].daily[24].eligible_minutes, 1_500);
    assert_eq!(r.services[0].unknown[0].silent_agents, ["a1", "a2"]);
    let erp = &r.summary[1];
    assert_eq!(erp.verdict, model::Verdict::Breached);
    // 120 on 14 October + 20 over the weekend of 16–19 October (service hours only).
    assert_eq!(erp.bad_minutes, 140);
    assert!(
        r.services[1]
            .excluded
            .maintenance
            .iter()
            .any(|m| m.source == "api")
    );
    assert_eq!(
        r.services[1].excluded.service_hours,
        ["Mon,Tue,Wed,Thu,Fri 08:00-18:00"]
    );
}

/// The web service's capacity objectives reach the report with the engine's verdicts: the
/// CPU p95 (48 %) is within 70 %, the one-hour memory peak of a2 (95 %) breaches 90 %, and
/// the service's capacity verdict is the worst of them; each format shows them.
#[test]
fn capacity_objectives_reach_every_format() {
    let (r, _) = sample();
    let web = &r.services[0];
    assert_eq!(web.capacity_verdict.as_deref(), Some("breached"));
    let got: Vec<(&str, &str, Option<&str>)> = web
        .capacity_objectives
        .iter()
        .map(|o| (o.name.as_str(), o.verdict.as_str(), o.host.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("cpu:p95", "met", Some("a1")),
            ("memory:max", "breached", Some("a2"))
        ]
    );
    assert_eq!(web.capacity_objectives[1].value, Some(0.95));
    // Threshold, unit and direction beside the measured value.
    assert_eq!(web.capacity_objectives[1].agreed, "≤ 90 %");
    assert_eq!(
        web.capacity_objectives[1].measured.as_deref(),
        Some("95.000 %")
    );
    // The per-host table covers the hosts the service names, also db1, which runs none of
    // its checks.
    let mut hosts: Vec<&str> = web.capacity.iter().map(|c| c.agent.as_str()).collect();
    hosts.dedup();
    assert_eq!(hosts, ["a1", "a2", "db1"]);
    assert!(r.services[1].capacity_objectives.is_empty());
    assert_eq!(r.services[1].capacity_verdict, None);
    for f in [Format::Html, Format::Md] {
        let text = String::from_utf8(one(r, f, None)).unwrap();
        assert!(
            text.contains("Capacity objectives: breached")
                && text.contains("memory:max")
                && (text.contains("95.000 % | ≤ 90 %")
                    || text.contains(&format!(
                        "95.000 %</td><td class=\"n\">{}",
                        html_escaped("≤ 90 %")
                    ))),
            "{f:?}"
        );
    }
}

/// The agreed method of each service — checks with kind, target and interval, agents,
/// quorum and minimum reporters, objectives, agreement start, calendar, parties — is taken
/// from the configuration and shown in every format (JSON fields, HTML, Markdown, PDF, CSV).
#[test]
fn the_agreed_method_and_parties_reach_every_format() {
    let (r, _) = sample();
    let web = &r.services[0];
    assert_eq!(web.terms.customer.as_deref(), Some("Example Retail GmbH"));
    assert_eq!(web.terms.agreement.as_deref(), Some("SLA-2026-014"));
    assert_eq!(web.terms.owner.as_deref(), Some("Web team (J. Doe)"));
    assert_eq!(web.terms.capacity_hosts, ["a1", "a2", "db1"]);
    assert_eq!(
        web.terms.agreement_start.map(|t| t.to_string()).as_deref(),
        Some("2026-08-31T22:00:00Z")
    );
    assert_eq!(web.checks.len(), 1);
    let c = &web.checks[0];
    assert_eq!(
        (c.kind.as_deref(), c.target.as_deref(), c.interval_seconds),
        (
            Some("http"),
            Some("GET https://web.example/health"),
            Some(10.0)
        )
    );
    assert_eq!(c.assigned_agents, ["a1", "a2"]);
    // erp's check is defined on the agents: the report does not guess its target.
    let erp = &r.services[1];
    assert_eq!(erp.checks[0].defined_in, "agent");
    assert_eq!(erp.checks[0].target, None);
    assert!(erp.terms.quorum.starts_with("majority: "));
    assert_eq!(erp.terms.holidays, ["2026-10-26"]);
    assert_eq!(r.services[2].terms.latency_threshold_seconds, Some(0.5));
    assert_eq!(
        r.services[3].terms.min_coverage_percent.as_deref(),
        Some("99.9")
    );
    assert_eq!(r.cover.parties.len(), 1, "only web names its parties");
    let wanted = [
        "SLA-2026-014",
        "Example Retail GmbH",
        "Web team (J. Doe)",
        "Customer-facing web shop",
        "web-http: http GET https://web.example/health every 10 s, on a1, a2",
        "erp-http: defined in the agents' configuration",
        "2026-09-01 00:00 +02:00",
        "majority: bad when more than half of the reporting agents fail",
        "99 % of probes ≤ 0.5 s",
        "99.9 % of eligible minutes known",
        "memory:max ≤ 90 %",
        "on a1, a2, db1",
    ];
    for f in [Format::Html, Format::Md] {
        let text = String::from_utf8(one(r, f, None)).unwrap();
        for w in wanted {
            let w = if f == Format::Html {
                html_escaped(w)
            } else {
                w.to_string()
            };
            assert!(text.contains(&w), "{f:?} lacks {w:?}");
        }
    }
    let terms = csv::parse(&csv::terms(r)).unwrap();
    assert_eq!(terms.len(), 1 + r.services.len());
    assert!(terms[1].contains(&"SLA-2026-014".to_string()));
    let checks = csv::parse(&csv::checks(r)).unwrap();
    assert_eq!(
        checks[1][..4],
        ["web", "web-http", "http", "GET https://web.example/health"]
    );
}

/// Times are local with their UTC offset; an incident merged across ineligible time shows
/// its downtime within service hours and its segments, and the timeline draws only those.
#[test]
fn incidents_are_local_and_show_their_segments_of_service_hours() {
    let (r, _) = sample();
    let erp = &r.services[1];
    let weekend = erp
        .incidents
        .iter()
        .find(|i| i.start.to_string() == "2026-10-16T15:50:00Z")
        .expect("the weekend incident");
    assert_eq!(weekend.downtime_minutes, 20);
    assert_eq!(
        weekend.eligible_segments,
        [
            "2026-10-16T15:50:00Z/2026-10-16T16:00:00Z",
            "2026-10-19T06:00:00Z/2026-10-19T06:10:00Z"
        ]
    );
    let cells = text::incident_cells(erp);
    let c = cells
        .iter()
        .find(|c| c.start == "2026-10-16 17:50 +02:00")
        .expect("local start");
    assert_eq!(c.end, "2026-10-19 08:10 +02:00");
    assert_eq!(c.downtime, "20 min within service hours over 2 segments");
    assert_eq!(
        c.segments,
        [
            "2026-10-16 17:50 +02:00 – 2026-10-16 18:00 +02:00",
            "2026-10-19 08:00 +02:00 – 2026-10-19 08:10 +02:00"
        ]
    );
    // The DST night's incident of web: local times on both sides of the change.
    let dst = text::incident_cells(&r.services[0]);
    assert!(
        dst.iter().any(|c| c.start == "2026-10-25 02:50 +02:00"),
        "{dst:?}"
    );
    // The timeline draws the two segments, not the 2.5 days between them.
    let svg = svg::incident_timeline(
        (r.summary[1].period_start, r.summary[1].period_end),
        &erp.time_zone,
        &erp.daily,
        std::slice::from_ref(weekend),
    );
    assert_eq!(svg.matches(r##"fill="#c62828""##).count(), 2, "{svg}");
    let full = IncidentRow {
        eligible_segments: Vec::new(),
        ..weekend.clone()
    };
    let wide = svg::incident_timeline(
        (r.summary[1].period_start, r.summary[1].period_end),
        &erp.time_zone,
        &erp.daily,
        &[full],
    );
    assert_eq!(wide.matches(r##"fill="#c62828""##).count(), 1);
    // Maintenance one-off windows are local too, in every format.
    let m = &r.services[0].excluded.maintenance[0];
    assert_eq!(m.when, "2026-10-21 00:00 +02:00 – 2026-10-21 01:00 +02:00");
    for f in [Format::Html, Format::Md] {
        let t = String::from_utf8(one(r, f, None)).unwrap();
        for w in [
            "2026-10-16 17:50 +02:00",
            "20 min within service hours over 2 segments",
            "2026-10-21 00:00 +02:00",
        ] {
            assert!(t.contains(w), "{f:?} lacks {w}");
        }
        assert!(!t.contains("2026-10-16T15:50:00Z"), "{f:?} shows UTC");
    }
}

/// `[report] prepared_by`, `approved_by` and `distribution` are JSON fields and a sign-off
/// table with empty signature and date lines in HTML, Markdown and PDF; a report without
/// them has no sign-off block.
#[test]
fn the_sign_off_block_names_who_prepares_approves_and_receives() {
    let (r, _) = sample();
    let json: serde_json::Value = serde_json::from_slice(&json(r, None).unwrap()).unwrap();
    assert_eq!(
        json["sign_off"]["prepared_by"],
        "Service level manager (A. Smith)"
    );
    assert_eq!(json["sign_off"]["distribution"][1], "Web team");
    let html = String::from_utf8(one(r, Format::Html, None)).unwrap();
    assert!(html.contains(
        r#"<tr><td>Approved by</td><td>Head of IT operations</td><td class="sign"></td><td class="sign"></td></tr>"#
    ));
    assert!(html.contains("Distribution: Example Retail GmbH; Web team."));
    let md = String::from_utf8(one(r, Format::Md, None)).unwrap();
    assert!(md.contains("| Prepared by | Service level manager (A. Smith) | | |"));
    let mut bare = r.clone();
    bare.sign_off = model::SignOff::default();
    for f in [Format::Html, Format::Md] {
        let t = String::from_utf8(one(&bare, f, None)).unwrap();
        assert!(!t.contains("Sign-off"), "{f:?}");
    }
}

/// The months before are listed from the agreement's start on (none before it), oldest
/// first, with availability, verdict, downtime and budget, in every format.
#[test]
fn the_trend_lists_the_months_of_the_agreement_before_this_one() {
    let (r, _) = sample();
    let months = |i: usize| -> Vec<&str> {
        r.services[i]
            .trend
            .iter()
            .map(|t| t.month.as_str())
            .collect()
    };
    assert_eq!(months(0), ["2026-09"], "web starts on 1 September");
    assert_eq!(months(1), ["2026-08", "2026-09"], "erp starts on 1 August");
    assert!(
        months(2).is_empty() && months(3).is_empty(),
        "api and db start in October"
    );
    let sep = &r.services[0].trend[0];
    assert_eq!(sep.source, "computed");
    assert_eq!(sep.verdict, model::Verdict::Met);
    assert_eq!(sep.downtime_minutes, 0);
    let mut svc = fixture::service(1);
    svc.start = None;
    let m = crate::sla::Month::new(2026, 10).unwrap();
    assert_eq!(trend::months_before(&svc, m).len(), trend::MONTHS);
    for f in [Format::Html, Format::Md] {
        let t = String::from_utf8(one(r, f, None)).unwrap();
        assert!(
            t.contains("Previous months") && t.contains("2026-08"),
            "{f:?}"
        );
        assert!(t.contains("No earlier month under the agreement."), "{f:?}");
    }
    let csv = csv::parse(&csv::trend(r)).unwrap();
    assert_eq!(csv.len(), 1 + 3);
    // /reports/ lists a month while any agreement covers it.
    let both = [fixture::service(0), fixture::service(3)];
    let sep = crate::sla::Month::new(2026, 9).unwrap();
    assert!(trend::any_covered(&both, sep), "web covers September");
    assert!(!trend::any_covered(&both[1..], sep), "db starts in October");
    assert!(trend::any_covered(&both[1..], m));
}

/// The daily chart has a fixed axis from 90 % (or below a lower target) with ticks, dates
/// and a legend; a day below the axis is a stub with its number.
#[test]
fn the_daily_chart_has_a_fixed_axis_legend_and_clipped_days() {
    assert!((svg::axis_floor(0.999) - 0.9).abs() < 1e-9);
    assert!((svg::axis_floor(0.85) - 0.8).abs() < 1e-9);
    assert!((svg::axis_floor(0.8) - 0.7).abs() < 1e-9);
    let (r, _) = sample();
    let erp = &r.services[1];
    let chart = svg::daily_chart(&erp.daily, 0.995);
    for w in [
        "90 %",
        "92 %",
        "100 %",
        "good (≥ target)",
        "unknown",
        "ineligible",
        "10-01",
    ] {
        assert!(chart.contains(&svg::escape(w)), "chart lacks {w}");
    }
    // 14 October: 80 % (120 bad of 600 minutes) is below the axis: a stub with its number.
    assert!(chart.contains(">80.0</text>"), "{chart}");
}

/// Reduced measurement redundancy is visible: minutes with fewer reporting agents than
/// expected, the longest such stretch, and failures the quorum outvoted (not bad).
#[test]
fn reduced_redundancy_and_outvoted_failures_are_listed() {
    let (r, _) = sample();
    let web = &r.services[0].redundancy;
    assert_eq!(web.expected_agents, 2);
    // a2's gap (04:45 to 04:49 inclusive, UTC) while a1 reported; both silent before it:
    // unknown time, not reduced redundancy.
    assert_eq!(web.reduced_minutes, 5, "{web:?}");
    assert_eq!(
        web.longest_reduced.as_deref(),
        Some("2026-10-12T04:45:00Z/2026-10-12T04:50:00Z")
    );
    assert_eq!(
        web.outvoted_failure_minutes, 0,
        "quorum any counts every failure"
    );
    let erp = &r.services[1].redundancy;
    // 22 October 14:20–15:00 local: a2 silent, a1 back.
    assert_eq!((erp.reduced_minutes, erp.longest_reduced_minutes), (40, 40));
    assert_eq!(erp.outvoted_failure_minutes, 15);
    assert_eq!(
        erp.outvoted_failures,
        ["2026-10-21T08:00:00Z/2026-10-21T08:15:00Z"]
    );
    assert_eq!(
        r.summary[1].bad_minutes, 140,
        "an outvoted failure is not bad"
    );
    let lines = text::redundancy_lines(&r.services[1]).join(" ");
    assert!(
        lines.contains("15: 2026-10-21 10:00 +02:00 – 2026-10-21 10:15 +02:00"),
        "{lines}"
    );
    for f in [Format::Html, Format::Md] {
        let t = String::from_utf8(one(r, f, None)).unwrap();
        assert!(t.contains("Measurement redundancy"), "{f:?}");
        assert!(t.contains("2026-10-21 10:00 +02:00"), "{f:?}");
    }
}

/// The service's verdict is the worst of every objective, names the objectives that
/// decided it and says why, in every format.
#[test]
fn the_verdict_includes_every_objective_and_says_why() {
    let (r, _) = sample();
    let row = |name: &str| r.summary.iter().find(|s| s.service == name).unwrap();
    // web: availability met, a capacity objective breached.
    let web = row("web");
    assert_eq!(
        (web.availability_verdict, web.verdict),
        (model::Verdict::Met, model::Verdict::Breached)
    );
    assert_eq!(web.verdict_decided_by, ["capacity memory:max"]);
    assert_eq!(web.capacity_verdict, Some(model::Verdict::Breached));
    assert!(
        web.verdict_reason
            .starts_with("breached: capacity memory:max 95.000 % (agreed ≤ 90 %)"),
        "{}",
        web.verdict_reason
    );
    // erp: availability breached, nothing else agreed.
    let erp = row("erp");
    assert_eq!(erp.verdict, model::Verdict::Breached);
    assert_eq!(erp.verdict_decided_by, ["availability"]);
    // api: availability met, latency objective missed (98 % within 0.5 s < 99 %).
    let api = row("api");
    assert_eq!(api.availability_verdict, model::Verdict::Met);
    assert_eq!(api.latency_verdict, Some(model::Verdict::Breached));
    assert_eq!(api.verdict, model::Verdict::Breached);
    assert_eq!(api.verdict_decided_by, ["latency"]);
    assert_eq!(
        api.verdict_reason,
        format!(
            "breached: latency {} % within 0.5 s < 99 %",
            api.latency_within_percent.as_deref().unwrap()
        )
    );
    // db: availability 100 %, coverage below its minimum: not determinable, and why.
    let db = row("db");
    assert_eq!(db.availability_verdict, model::Verdict::Met);
    assert_eq!(db.min_coverage_percent.as_deref(), Some("99.9"));
    assert_eq!(db.coverage_verdict, Some(model::Verdict::NotDeterminable));
    assert_eq!(db.verdict, model::Verdict::NotDeterminable);
    assert_eq!(
        db.verdict_reason,
        format!(
            "not determinable: coverage {} % < minimum 99.9 %",
            db.coverage_percent.as_deref().unwrap()
        )
    );
    // Every format shows the same cells.
    for f in [Format::Html, Format::Md] {
        let text = String::from_utf8(one(r, f, None)).unwrap();
        for s in &r.summary {
            let c = text::SummaryCells::of(s);
            for cell in c.verdict_row().iter().chain(&c.figures_row()) {
                let shown = if f == Format::Html {
                    html_escaped(cell)
                } else {
                    cell.replace('|', "\\|")
                };
                assert!(text.contains(&shown), "{f:?} lacks {shown:?}");
            }
        }
    }
    let table = csv::parse(&csv::services(r)).unwrap();
    let col = table[0].iter().position(|c| c == "verdict_reason").unwrap();
    assert!(table[1..].iter().any(|row| row[col] == db.verdict_reason));
}

/// Text as minijinja's HTML auto-escaping writes it.
fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

#[test]
fn golden_files_of_every_text_format() {
    let (r, minutes) = sample();
    let o = opts(None, minutes);
    golden("report.json", &json(r, None).unwrap());
    golden("report.html", &html(r, &o).unwrap());
    golden("report.md", &markdown(r, &o).unwrap());
    for (name, bytes) in csv_files(r) {
        golden(&name, &bytes);
    }
}

#[test]
fn every_format_is_byte_identical_across_runs() {
    let (r, minutes) = sample();
    let k = key(7);
    let mut again = fixture::sample(SERVICES).0;
    fixture::with_trend(&mut again, SERVICES);
    for f in Format::ALL {
        let a = render(r, f, &opts(Some(&k), minutes)).unwrap();
        let b = render(&again, f, &opts(Some(&k), minutes)).unwrap();
        assert!(a == b, "{} differs between two runs", f.name());
    }
}

#[test]
fn json_reads_back_as_the_same_report() {
    let (r, _) = sample();
    let file: JsonFile = serde_json::from_slice(&json(r, None).unwrap()).unwrap();
    assert_eq!(&file.report, r);
    assert_eq!(file.integrity.content_sha256, integrity::content_sha256(r));
    assert_eq!(file.report.schema, model::SCHEMA);
}

/// Each CSV cell equals the JSON value's cell text; numbers parse back to the same f64;
/// the columns are exactly the JSON object's keys.
fn assert_csv_matches(text: &str, cols: &[&str], rows: Vec<(Option<&str>, serde_json::Value)>) {
    let parsed = csv::parse(text).unwrap();
    let with_service = rows.first().is_some_and(|r| r.0.is_some());
    let head: Vec<String> = with_service
        .then(|| "service".to_string())
        .into_iter()
        .chain(cols.iter().map(std::string::ToString::to_string))
        .collect();
    assert_eq!(parsed[0], head);
    assert_eq!(parsed.len() - 1, rows.len());
    for ((svc, v), row) in rows.iter().zip(&parsed[1..]) {
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want_keys = cols.to_vec();
        keys.sort_unstable();
        want_keys.sort_unstable();
        assert_eq!(keys, want_keys, "CSV columns must be every JSON field");
        let cells = if let Some(s) = svc {
            assert_eq!(row[0], *s);
            &row[1..]
        } else {
            &row[..]
        };
        for (c, cell) in cols.iter().zip(cells) {
            let jv = &obj[*c];
            match jv {
                serde_json::Value::Number(n) => {
                    assert_eq!(cell.parse::<f64>().ok(), n.as_f64(), "{c}: {cell}");
                }
                serde_json::Value::Null => assert_eq!(cell, "", "{c}"),
                _ => assert_eq!(cell, &csv::cell(jv), "{c}"),
            }
        }
    }
}

#[test]
fn csv_read_back_equals_the_json() {
    let (r, _) = sample();
    assert_csv_matches(
        &csv::services(r),
        csv::SERVICES,
        r.summary
            .iter()
            .map(|s| (None, serde_json::to_value(s).unwrap()))
            .collect(),
    );
    let per = |f: &dyn Fn(&model::ServiceSection) -> Vec<serde_json::Value>| {
        r.services
            .iter()
            .flat_map(|s| f(s).into_iter().map(move |v| (Some(s.service.as_str()), v)))
            .collect::<Vec<_>>()
    };
    assert_csv_matches(
        &csv::daily(r),
        csv::DAILY,
        per(&|s| {
            s.daily
                .iter()
                .map(|d| serde_json::to_value(d).unwrap())
                .collect()
        }),
    );
    assert_csv_matches(
        &csv::incidents(r),
        csv::INCIDENTS,
        per(&|s| {
            s.incidents
                .iter()
                .map(|d| serde_json::to_value(d).unwrap())
                .collect()
        }),
    );
    assert_csv_matches(
        &csv::unknown(r),
        csv::UNKNOWN,
        per(&|s| {
            s.unknown
                .iter()
                .map(|d| serde_json::to_value(d).unwrap())
                .collect()
        }),
    );
    assert_csv_matches(
        &csv::terms(r),
        csv::TERMS,
        r.services
            .iter()
            .map(|s| {
                (
                    Some(s.service.as_str()),
                    serde_json::to_value(&s.terms).unwrap(),
                )
            })
            .collect(),
    );
    assert_csv_matches(
        &csv::checks(r),
        csv::CHECKS,
        per(&|s| {
            s.checks
                .iter()
                .map(|c| serde_json::to_value(c).unwrap())
                .collect()
        }),
    );
    assert_csv_matches(
        &csv::trend(r),
        csv::TREND,
        per(&|s| {
            s.trend
                .iter()
                .map(|t| serde_json::to_value(t).unwrap())
                .collect()
        }),
    );
    assert_csv_matches(
        &csv::notes(r),
        csv::NOTES,
        per(&|s| {
            s.notes
                .iter()
                .map(|n| serde_json::to_value(n).unwrap())
                .collect()
        }),
    );
    assert_csv_matches(
        &csv::maintenance(r),
        csv::MAINTENANCE,
        per(&|s| {
            s.excluded
                .maintenance
                .iter()
                .map(|m| serde_json::to_value(m).unwrap())
                .collect()
        }),
    );
}

/// An API window names who registered it, its reference, and — registered after its start —
/// says "registered after the fact" and how long after, in every format, with its minutes
/// counted apart; a config window names nobody; an API window stored before registrants were
/// recorded says so instead of guessing.
#[test]
fn api_maintenance_names_its_registrant_in_every_format() {
    let (r, _) = sample();
    let erp = &r.services[1].excluded.maintenance;
    let api: Vec<_> = erp.iter().filter(|m| m.source == "api").collect();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0].registered_by.as_deref(), Some("alice"));
    assert_eq!(api[0].reference.as_deref(), Some("CHG-4711"));
    assert_eq!(api[0].registered_after_start.as_deref(), Some("2 h 30 min"));
    assert_eq!(r.services[1].excluded.after_the_fact_minutes, 60);
    assert_eq!(r.services[0].excluded.after_the_fact_minutes, 0);
    assert!(
        erp.iter()
            .filter(|m| m.source == "config")
            .all(|m| m.registered_by.is_none() && m.registered_after_start.is_none())
    );
    let json: serde_json::Value = serde_json::from_slice(&one(r, Format::Json, None)).unwrap();
    let rows = json["services"][1]["excluded"]["maintenance"]
        .as_array()
        .unwrap();
    assert!(rows.iter().any(|m| m["registered_by"] == "alice"
        && m["reference"] == "CHG-4711"
        && m["registered_after_start"] == "2 h 30 min"));
    let by = "at 2026-10-07T18:30:00Z by alice, ref. CHG-4711";
    for f in [Format::Html, Format::Md] {
        let text = String::from_utf8(one(r, f, None)).unwrap();
        assert!(text.contains(by), "{f:?} lacks {by:?}");
        assert!(
            text.contains("registered after the fact")
                && text.contains("2 h 30 min after its start"),
            "{f:?} does not mark the late window"
        );
        assert!(
            text.contains("of which up to 60 in maintenance registered after the fact"),
            "{f:?} does not count its minutes apart"
        );
    }
    let table = csv::parse(&csv::maintenance(r)).unwrap();
    let col = |name: &str| table[0].iter().position(|c| c == name).unwrap();
    assert!(table[1..].iter().any(|row| row[0] == "erp"
        && row[col("registered_by")] == "alice"
        && row[col("reference")] == "CHG-4711"
        && row[col("registered_after_start")] == "2 h 30 min"));
    let mut unrecorded = r.clone();
    for m in &mut unrecorded.services[1].excluded.maintenance {
        m.registered_by = None;
    }
    let md = String::from_utf8(one(&unrecorded, Format::Md, None)).unwrap();
    assert!(
        md.contains("at 2026-10-07T18:30:00Z by (not recorded)"),
        "{md}"
    );
}

#[test]
fn csv_quotes_what_rfc_4180_requires() {
    assert_eq!(csv::field("a,b"), "\"a,b\"");
    assert_eq!(csv::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv::field("two\r\nlines"), "\"two\r\nlines\"");
    assert_eq!(csv::field("plain"), "plain");
    let rows = csv::parse("a,\"b,c\",\"d\"\"e\"\r\n\"x\r\ny\",,z\r\n").unwrap();
    assert_eq!(
        rows,
        vec![vec!["a", "b,c", "d\"e"], vec!["x\r\ny", "", "z"]]
    );
}

#[test]
fn minute_table_has_one_row_per_minute_and_recomputes_the_counts() {
    let (r, minutes) = sample();
    let text = csv::minutes(&minutes[0].1);
    let rows = csv::parse(&text).unwrap();
    assert_eq!(rows.len() - 1, 44_700);
    let count = |s: &str| rows.iter().filter(|r| r[1] == s).count() as u64;
    assert_eq!(count("good"), r.summary[0].good_minutes);
    assert_eq!(count("bad"), r.summary[0].bad_minutes);
    assert_eq!(count("unknown"), r.summary[0].unknown_minutes);
}

/// A small checker: every non-void element is closed in order; no script, no external
/// reference (src/href/url()/@import; the SVG namespace URI is a name, not a reference).
fn assert_well_formed_self_contained(html: &str) {
    const VOID: &[&str] = &[
        "meta", "br", "hr", "img", "link", "input", "col", "wbr", "area", "base", "source",
    ];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with("!--") {
            rest = &rest[rest.find("-->").expect("unclosed comment") + 3..];
            continue;
        }
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(closing) = tag.strip_prefix('/') {
            let _ = closing;
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> without an open element"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
        } else if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    let lower = html.to_ascii_lowercase();
    for bad in ["<script", " src=", " href=", "url(", "@import", "<link"] {
        assert!(!lower.contains(bad), "HTML contains {bad:?}");
    }
    let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_ns.contains("http://") && !without_ns.contains("https://"),
        "external URL"
    );
}

#[test]
fn html_is_well_formed_and_self_contained() {
    let (r, minutes) = sample();
    let html = String::from_utf8(html(r, &opts(None, minutes)).unwrap()).unwrap();
    assert_well_formed_self_contained(&html);
    assert!(html.contains("@page { size: A4"));
    assert!(html.contains(r.summary[0].availability_percent.as_deref().unwrap()));
    let with_trend = r.services.iter().filter(|s| !s.trend.is_empty()).count();
    assert_eq!(
        html.matches("<svg").count(),
        2 * SERVICES + with_trend,
        "two charts per service, and one of the months before where there are any"
    );
}

#[test]
fn templates_can_be_overridden() {
    let (r, _) = sample();
    let t = Templates {
        html: None,
        markdown: Some("{% for s in r.summary %}{{ s.service }}={{ s.availability_percent | pct }}\n{% endfor %}".into()),
    };
    let md = markdown(
        r,
        &RenderOptions {
            templates: t,
            ..RenderOptions::default()
        },
    )
    .unwrap();
    let text = String::from_utf8(md).unwrap();
    assert!(
        text.starts_with(&format!(
            "web={} %\nerp=",
            r.summary[0].availability_percent.as_deref().unwrap()
        )),
        "{text}"
    );
    let broken = Templates {
        html: Some("{% for %}".into()),
        markdown: None,
    };
    let err = html(
        r,
        &RenderOptions {
            templates: broken,
            ..RenderOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("report.html"), "{err}");
}

#[cfg(feature = "pdf")]
#[test]
fn pdf_text_shows_the_json_figures() {
    let (r, minutes) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, one(r, Format::Pdf, None)).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) must be installed: scripts/test installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let _ = minutes;
    assert!(
        text.contains(&integrity::content_sha256(r)),
        "content digest in the footer"
    );
    for s in &r.summary {
        for cell in pdf::summary_lines(s) {
            assert!(
                text.contains(&cell),
                "PDF text lacks {cell:?} of {}",
                s.service
            );
        }
    }
    for s in &r.services {
        for i in text::incident_cells(s) {
            assert!(text.contains(&i.start), "incident start {}", i.start);
        }
        for u in &s.unknown {
            assert!(text.contains(&u.silent_agents.join(", ")));
        }
        for (label, value) in text::terms_rows(s) {
            let first = pdf::wrap_width(&value, 7.5, false, 407.0).remove(0);
            assert!(
                text.contains(label.as_str()) && text.contains(&first),
                "PDF lacks the agreed method's {label} of {}: {first:?}",
                s.service
            );
        }
        for m in s.excluded.maintenance.iter().filter(|m| m.source == "api") {
            let by = format!("by {}", m.registered_by.as_deref().unwrap_or("?"));
            assert!(text.contains(&by), "maintenance registrant {by:?}");
        }
    }
    assert!(
        text.contains("Approved by") && text.contains("Head of IT operations"),
        "sign-off block"
    );
    assert!(text.contains("Distribution: Example Retail GmbH; Web team."));
    golden("report.pdf.txt", text.as_bytes());
}

/// `(page width, page height, words outside the page)` of a PDF, via `pdftotext -bbox`.
fn words_outside_the_page(pdf: &[u8]) -> (f64, f64, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-bbox")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) must be installed: scripts/test installs it");
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    let attr = |tag: &str, name: &str| -> f64 {
        let at = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        tag[at..].split('"').next().unwrap().parse().unwrap()
    };
    let page = html.split("<page ").nth(1).unwrap();
    let (w, h) = (attr(page, "width"), attr(page, "height"));
    let mut outside = Vec::new();
    for word in html.split("<word ").skip(1) {
        let (x0, y0, x1, y1) = (
            attr(word, "xMin"),
            attr(word, "yMin"),
            attr(word, "xMax"),
            attr(word, "yMax"),
        );
        if x0 < 0.0 || y0 < 0.0 || x1 > w || y1 > h {
            let text = word
                .split('>')
                .nth(1)
                .unwrap_or("")
                .split('<')
                .next()
                .unwrap_or("");
            outside.push(format!("{text} [{x0:.1},{y0:.1} – {x1:.1},{y1:.1}]"));
        }
    }
    (w, h, outside)
}

/// Every word of the PDF lies inside the page: the footer's digest, a long title, a long
/// organisation and a long service name wrap inside the margins.
#[test]
fn no_pdf_text_lies_outside_the_page() {
    let (r, _) = sample();
    let mut long = r.clone();
    long.cover.title = "Monthly service level report of the customer-facing web shop, ERP, API and database services under agreement SLA-2026-014".into();
    long.cover.organisation = "Example Retail GmbH — Information Technology Operations, Service Level Management and Continual Improvement".into();
    long.services[0].service =
        "customer-facing-web-shop-with-a-deliberately-long-service-name-that-does-not-fit".into();
    let (w, h, outside) = words_outside_the_page(&one(&long, Format::Pdf, None));
    assert!(
        (w - 595.28).abs() < 0.1 && (h - 841.89).abs() < 0.1,
        "A4: {w} × {h}"
    );
    assert!(outside.is_empty(), "outside the page: {outside:?}");
    long.cover.title = long.cover.title.repeat(2);
    let lines = pdf::footer_lines(&long, (1, 12), &"f".repeat(64));
    for l in &lines {
        assert!(pdf::text_width(l, 6.5, false) <= 595.28 - 84.0, "{l}");
    }
    assert!(lines[0].contains('…') && lines[0].ends_with(" — 2026-10 — page 1 of 12"));
    assert_eq!(lines[1], format!("content SHA-256 {}", "f".repeat(64)));
}

fn edit_one_byte(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] = if b[at] == b'7' { b'8' } else { b'7' };
    b
}

#[test]
fn verify_accepts_untouched_files_and_rejects_a_one_byte_edit_and_a_wrong_key() {
    let (r, _) = sample();
    let k = key(1);
    let good = k.verifying_key();
    let wrong = key(2).verifying_key();
    let mut formats = vec![Format::Json, Format::Html, Format::Md];
    if cfg!(feature = "pdf") {
        formats.push(Format::Pdf);
    }
    for f in formats {
        let bytes = one(r, f, Some(&k));
        let name = format!("report.{}", f.name());
        let ok = verify::verify_file(&name, &bytes, Some(&good));
        assert!(ok.ok(), "{name} untouched: {:?}", ok.problems);
        let unkeyed = verify::verify_file(&name, &bytes, None);
        assert!(
            unkeyed.ok() && unkeyed.notes.iter().any(|n| n.contains("--public-key")),
            "{name}: {unkeyed:?}"
        );
        assert!(
            !verify::verify_file(&name, &bytes, Some(&wrong)).ok(),
            "{name} with a wrong key"
        );
        // One byte in the middle of the figures (for JSON: inside a number).
        let at = match f {
            Format::Json => {
                let s = String::from_utf8_lossy(&bytes);
                s.find("\"bad_minutes\": ").unwrap() + 15
            }
            _ => bytes.len() / 2,
        };
        let edited = edit_one_byte(&bytes, at);
        let bad = verify::verify_file(&name, &edited, Some(&good));
        assert!(!bad.ok(), "{name} edited at {at} passed");
        // Unsigned files: the digest alone still catches the edit.
        let plain = one(r, f, None);
        let at = if f == Format::Json {
            at
        } else {
            plain.len() / 2
        };
        assert!(
            !verify::verify_file(&name, &edit_one_byte(&plain, at), None).ok(),
            "{name} unsigned edit"
        );
    }
}

#[test]
fn verify_of_a_bundle_names_the_changed_line() {
    let (r, minutes) = sample();
    let k = key(3);
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in render(r, Format::Bundle, &opts(Some(&k), minutes)).unwrap() {
        let p = dir.path().join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let good = k.verifying_key();
    let ok = verify::verify_path(dir.path(), Some(&good)).unwrap();
    assert!(ok.ok(), "{:?}", ok.problems);
    assert!(
        !verify::verify_path(dir.path(), Some(&key(4).verifying_key()))
            .unwrap()
            .ok()
    );
    // Every file of the bundle: a one-byte edit is found.
    let manifest = std::fs::read_to_string(dir.path().join("MANIFEST")).unwrap();
    for (_, rel) in integrity::parse_manifest(&manifest) {
        let p = dir.path().join(&rel);
        let orig = std::fs::read(&p).unwrap();
        std::fs::write(&p, edit_one_byte(&orig, orig.len() / 2)).unwrap();
        let f = verify::verify_path(dir.path(), Some(&good)).unwrap();
        assert!(
            f.problems
                .iter()
                .any(|x| x.starts_with(&format!("{rel}: changed"))),
            "{rel}: {:?}",
            f.problems
        );
        std::fs::write(&p, orig).unwrap();
    }
    // The HTML edit is shown line by line against report.json rendered again.
    let p = dir.path().join("services.csv");
    let orig = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, orig.replacen(",breached,", ",met,", 1)).unwrap();
    let f = verify::verify_path(dir.path(), Some(&good)).unwrap();
    assert!(
        f.problems
            .iter()
            .any(|x| x.contains("services.csv: compared with report.json")
                && x.contains("line 2")
                && x.contains(",met,")),
        "{:?}",
        f.problems
    );
    std::fs::write(&p, orig).unwrap();
    std::fs::write(dir.path().join("extra.txt"), "x").unwrap();
    let f = verify::verify_path(dir.path(), Some(&good)).unwrap();
    assert!(
        f.problems
            .iter()
            .any(|x| x.starts_with("extra.txt: present but not listed"))
    );
}

#[test]
fn method_formulas_are_quoted_from_docs_sla() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sla.md"))
            .unwrap();
    for (title, _, formulas) in method::ITEMS {
        for f in *formulas {
            assert!(
                docs.contains(f),
                "method item {title:?} quotes {f:?}, which docs/sla.md does not contain"
            );
        }
    }
}

#[test]
fn signing_keys_load_from_pem_and_hex() {
    let hex_seed = "01".repeat(32);
    let k = integrity::load_signing_key("k", &hex_seed).unwrap();
    assert_eq!(k.to_bytes(), [1u8; 32]);
    let public = integrity::hex(k.verifying_key().as_bytes());
    assert_eq!(
        integrity::load_public_key("p", &public).unwrap(),
        k.verifying_key()
    );
    let err = integrity::load_signing_key("keyfile", "nonsense").unwrap_err();
    assert!(
        err.to_string().contains("keyfile") && err.to_string().contains("PKCS#8"),
        "{err}"
    );
}

/// Writes the fixture's files to `$ATTEST_EXAMPLES_DIR` (for docs/examples; run by hand:
/// `ATTEST_EXAMPLES_DIR=/tmp/x cargo test -p attest-collector --lib write_examples -- --ignored`).
#[test]
#[ignore = "writes example files for the docs"]
fn write_examples() {
    let dir = PathBuf::from(std::env::var("ATTEST_EXAMPLES_DIR").expect("ATTEST_EXAMPLES_DIR"));
    let (r, minutes) = sample();
    for f in [Format::Html, Format::Pdf, Format::Md, Format::Json] {
        for (name, bytes) in render(r, f, &opts(None, minutes)).unwrap() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn archive_writes_a_month_once_and_records_late_differences_as_addenda() {
    let (r, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let archive = archive::Archive {
        dir: dir.path().join("archive"),
        grace: std::time::Duration::from_secs(3 * 86_400),
    };
    let end: jiff::Timestamp = "2026-10-31T23:00:00Z".parse().unwrap();
    let early: jiff::Timestamp = "2026-11-02T08:00:00Z".parse().unwrap();
    let late: jiff::Timestamp = "2026-11-04T00:00:00Z".parse().unwrap();
    let (_, minutes) = sample();
    let t = Templates::default();
    let build = || Some((r.clone(), minutes.clone()));
    assert_eq!(
        archive
            .close("2026-10", (end, early), None, &t, build)
            .unwrap(),
        archive::Closed::NotDue
    );
    let written = archive
        .close("2026-10", (end, late), None, &t, build)
        .unwrap();
    assert_eq!(
        written,
        archive::Closed::Written(archive.month_dir("2026-10"))
    );
    assert!(
        verify::verify_path(&archive.month_dir("2026-10"), None)
            .unwrap()
            .ok()
    );
    let before = std::fs::read(archive.month_dir("2026-10").join("report.json")).unwrap();
    // Never rewritten, whatever the report now says.
    let mut changed = r.clone();
    changed.summary[0].bad_minutes += 5;
    changed.summary[0].verdict = model::Verdict::Met;
    let again = archive.close("2026-10", (end, late), None, &t, || {
        Some((changed.clone(), Vec::new()))
    });
    assert_eq!(again.unwrap(), archive::Closed::AlreadyArchived);
    assert_eq!(
        std::fs::read(archive.month_dir("2026-10").join("report.json")).unwrap(),
        before
    );
    // Same figures: no addendum. Late data: dated addenda, recorded once.
    assert!(archive.check("2026-10", r, late).unwrap().is_empty());
    let found: jiff::Timestamp = "2026-11-05T00:00:00Z".parse().unwrap();
    let diff = archive.check("2026-10", &changed, found).unwrap();
    let fields: Vec<&str> = diff.iter().map(|a| a.field.as_str()).collect();
    assert_eq!(fields, ["bad_minutes", "verdict"]);
    assert_eq!(
        (diff[1].archived.as_str(), diff[1].now.as_str()),
        ("breached", "met")
    );
    archive
        .check("2026-10", &changed, "2026-11-06T00:00:00Z".parse().unwrap())
        .unwrap();
    let recorded = archive.addenda_before("2026-11").unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[0].found_at, found,
        "a steady difference keeps its first date"
    );
    let lines = std::fs::read_to_string(dir.path().join("archive/2026-10.addenda.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 1);
    assert!(archive.addenda_before("2026-10").unwrap().is_empty());

    // A note written after archiving becomes an addendum (the archive stays as it was).
    let mut noted = changed.clone();
    let mut later = fixture::note();
    later.written_at = "2026-11-07T09:00:00Z".parse().unwrap();
    later.cause = "late root cause".into();
    noted.services[0].notes.push(later);
    let diff = archive
        .check("2026-10", &noted, "2026-11-07T10:00:00Z".parse().unwrap())
        .unwrap();
    let notes: Vec<_> = diff.iter().filter(|a| a.field == "note").collect();
    assert_eq!(notes.len(), 1, "only the note the archive lacks: {diff:?}");
    assert!(notes[0].now.contains("late root cause"));
    assert!(notes[0].now.contains(text::NOTE_ADDENDUM));
    assert_eq!(
        std::fs::read(archive.month_dir("2026-10").join("report.json")).unwrap(),
        before
    );
}

/// A forgery that recomputes every digest (an edited figure, re-sealed unsigned or signed
/// with another key) passes every digest check: without the signer's public key `verify`
/// must not call it authentic, and with the key it fails. The untouched signed report is
/// authentic only with the key.
#[test]
fn verify_never_calls_a_resealed_forgery_authentic() {
    use verify::Outcome;
    let (r, _) = sample();
    let signer = key(11);
    let anchor = signer.verifying_key();
    let other = key(12);
    let check = |name: &str, bytes: &[u8], with_key: bool| {
        let f = verify::verify_file(name, bytes, with_key.then_some(&anchor));
        verify::outcome(&f, with_key)
    };
    let mut forged = r.clone();
    let erp = forged
        .summary
        .iter_mut()
        .find(|s| s.service == "erp")
        .unwrap();
    assert_eq!(erp.verdict, model::Verdict::Breached);
    erp.verdict = model::Verdict::Met;
    erp.availability_percent = Some("99.583".into());
    for f in [Format::Json, Format::Html, Format::Md] {
        let name = format!("report.{}", f.name());
        let genuine = one(r, f, Some(&signer));
        assert_eq!(check(&name, &genuine, false), Outcome::Unauthenticated);
        assert_eq!(check(&name, &genuine, true), Outcome::Authentic);
        for (how, k) in [
            ("re-sealed", None),
            ("signed with another key", Some(&other)),
        ] {
            let fake = one(&forged, f, k);
            assert_ne!(
                check(&name, &fake, false),
                Outcome::Authentic,
                "{name} {how} without the key"
            );
            assert_eq!(
                check(&name, &fake, true),
                Outcome::Failed,
                "{name} {how} with the key"
            );
        }
    }
}

/// Every text format states on its cover by which key it is signed, or that it is not.
#[test]
fn the_cover_states_the_signing_key() {
    use sha2::Digest as _;
    let (r, _) = sample();
    let k = key(13);
    let fingerprint = integrity::hex(&sha2::Sha256::digest(k.verifying_key().as_bytes()));
    let want = format!("signed with Ed25519 key SHA256:{fingerprint}");
    assert_eq!(integrity::statement_for(Some(&k)), want);
    for f in [Format::Html, Format::Md] {
        let signed = String::from_utf8(one(r, f, Some(&k))).unwrap();
        assert!(signed.contains(&want), "{f:?}");
        let plain = String::from_utf8(one(r, f, None)).unwrap();
        assert!(
            plain.contains("not signed") && !plain.contains("signed with"),
            "{f:?}"
        );
    }
}

/// A signed bundle carries the signer's public key, listed in its MANIFEST; `verify` with
/// that key accepts the bundle.
#[test]
fn a_signed_bundle_carries_its_public_key() {
    let (r, minutes) = sample();
    let k = key(14);
    let files = render(r, Format::Bundle, &opts(Some(&k), minutes)).unwrap();
    let (_, pubkey) = files.iter().find(|(n, _)| n == "report-key.pub").unwrap();
    let text = String::from_utf8(pubkey.clone()).unwrap();
    let loaded = integrity::load_public_key("report-key.pub", &text).unwrap();
    assert_eq!(loaded, k.verifying_key());
    let manifest = &files.iter().find(|(n, _)| n == "MANIFEST").unwrap().1;
    assert!(String::from_utf8_lossy(manifest).contains("  report-key.pub\n"));
    let unsigned = render(r, Format::Bundle, &opts(None, minutes)).unwrap();
    assert!(unsigned.iter().all(|(n, _)| n != "report-key.pub"));
}

/// A service's notes show under "Comments and actions" with date, writer, cause, action,
/// owner and due date in HTML, Markdown and JSON (`services[].notes`) and `notes.csv`; a
/// note written after the report's generation (on an archived month: after archiving) is
/// marked; a report without notes still reads when `notes` is absent (older archives).
#[test]
fn notes_render_in_every_text_format() {
    let (r, _) = sample();
    let n = fixture::note();
    assert_eq!(r.services[0].notes, vec![n.clone()]);
    let date = "2026-11-01 06:30 +01:00";
    for f in [Format::Html, Format::Md] {
        let text = String::from_utf8(one(r, f, None)).unwrap();
        assert!(text.contains("Comments and actions"), "{f:?}");
        for want in [date, "alice", &n.cause, &n.action, "Web team", "2026-11-30"] {
            assert!(text.contains(want), "{f:?} lacks {want:?}");
        }
        assert!(!text.contains(text::NOTE_ADDENDUM), "{f:?}");
        assert!(
            text.contains("No comments."),
            "{f:?}: other services say so"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&one(r, Format::Json, None)).unwrap();
    assert_eq!(json["services"][0]["notes"][0]["written_by"], "alice");
    assert_eq!(json["services"][0]["notes"][0]["due"], "2026-11-30");
    let rows = csv::parse(&csv::notes(r)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], r.services[0].service);

    let mut late = r.clone();
    late.services[0].notes[0].written_at =
        late.cover.generated_at + jiff::SignedDuration::from_secs(60);
    let text = String::from_utf8(one(&late, Format::Html, None)).unwrap();
    assert!(text.contains(text::NOTE_ADDENDUM));

    let mut old = serde_json::to_value(r).unwrap();
    for s in old["services"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("notes");
    }
    let back: MonthlyReport = serde_json::from_value(old).unwrap();
    assert!(back.services.iter().all(|s| s.notes.is_empty()));
}

/// The evidence statement of each service shows in every format: the signed share and each
/// agent's chain (`web`: a2 with declared gaps; `api`: a2 broken; `erp`: a2 unsigned) in
/// HTML, Markdown, PDF (via `pdftotext`), JSON (`services[].evidence`), `evidence.csv` and
/// `evidence_agents.csv`; a report without `evidence` still reads (older archives).
#[test]
fn evidence_statement_in_every_format() {
    let (r, _) = sample();
    let web = &r.services[0].evidence;
    assert_eq!(
        (web.measurements, web.signed_measurements),
        (89_400, 89_397)
    );
    assert_eq!(web.signed_percent.as_deref(), Some("99.99"), "rounded down");
    let chains = |i: usize| -> Vec<(String, String)> {
        r.services[i]
            .evidence
            .agents
            .iter()
            .map(|a| (a.agent.clone(), a.chain.clone()))
            .collect()
    };
    let pair = |a: &str, c: &str| (a.to_string(), c.to_string());
    assert_eq!(chains(0), vec![pair("a1", "intact"), pair("a2", "gaps")]);
    assert_eq!(
        chains(1),
        vec![pair("a1", "intact"), pair("a2", "unsigned")]
    );
    assert_eq!(chains(2), vec![pair("a1", "intact"), pair("a2", "broken")]);

    let mut pdf_text = String::new();
    if let Ok(dir) = tempfile::tempdir() {
        let path = dir.path().join("r.pdf");
        std::fs::write(&path, one(r, Format::Pdf, None)).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args(["-layout"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) must be installed: scripts/test installs it");
        pdf_text = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let texts = [
        (
            "html",
            String::from_utf8(one(r, Format::Html, None)).unwrap(),
        ),
        ("md", String::from_utf8(one(r, Format::Md, None)).unwrap()),
        ("pdf", pdf_text),
    ];
    for (name, text) in &texts {
        for want in [
            "Evidence",
            "99.99 % of the",
            "signed by their agent and were verified at ingest",
            "gaps declared by the",
            "broken",
            "unsigned (an agent",
            "44697 of 44700 (99.99 %)",
        ] {
            assert!(text.contains(want), "{name} lacks {want:?}");
        }
    }

    let json: serde_json::Value = serde_json::from_slice(&one(r, Format::Json, None)).unwrap();
    let e = &json["services"][0]["evidence"];
    assert_eq!(e["signed_percent"], "99.99");
    assert_eq!(e["agents"][1]["chain"], "gaps");
    assert_eq!(e["agents"][1]["seq_gaps"], 1);
    assert_eq!(e["agents"][1]["dropped_measurements"], 12);

    let per = |f: &dyn Fn(&model::ServiceSection) -> Vec<serde_json::Value>| {
        r.services
            .iter()
            .flat_map(|s| f(s).into_iter().map(move |v| (Some(s.service.as_str()), v)))
            .collect::<Vec<_>>()
    };
    assert_csv_matches(
        &csv::evidence(r),
        csv::EVIDENCE,
        per(&|s| {
            // `agents` is evidence_agents.csv.
            let mut v = serde_json::to_value(&s.evidence).unwrap();
            v.as_object_mut().unwrap().remove("agents");
            vec![v]
        }),
    );
    assert_csv_matches(
        &csv::evidence_agents(r),
        csv::EVIDENCE_AGENTS,
        per(&|s| {
            s.evidence
                .agents
                .iter()
                .map(|a| serde_json::to_value(a).unwrap())
                .collect()
        }),
    );
    let files: Vec<String> = csv_files(r).into_iter().map(|(n, _)| n).collect();
    assert!(files.contains(&"evidence.csv".to_string()));
    assert!(files.contains(&"evidence_agents.csv".to_string()));

    let mut old = serde_json::to_value(r).unwrap();
    for s in old["services"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("evidence");
    }
    let back: MonthlyReport = serde_json::from_value(old).unwrap();
    assert!(back.services.iter().all(|s| s.evidence.agents.is_empty()));
}
