//! Scenario tests of the capacity objectives in the `check(input, expect)` style: a small
//! text DSL describes a service's objectives and its hosts' minutes; the verdicts are
//! rendered as text and compared with the expectation. Each case names the rule of
//! `docs/sla.md` (Capacity) it pins.
//!
//! DSL, one statement per line (`#` starts a comment; times are UTC instants like
//! `2026-09-03T10:00Z`; ranges are half-open `[from, to)`):
//! - settings: `month YYYY-MM` (default 2026-09), `now T` (default: period end),
//!   `capacity <toml>` (a line of `[capacity]`), `service <toml>` (a line of the
//!   `[[service]]`), `objective { ... }` (one entry of its `capacity = [...]`),
//!   `measured h1 h2` (the agents that measured the checks; default `h1`). Agents `h1`,
//!   `h2`, `h3` exist.
//! - data: `util H KIND RESOURCE FROM TO AVG [PEAK]` (`<kind>_utilization_ratio`; `-` = no
//!   resource), `fill H RESOURCE FROM TO START PER_DAY` (filesystem used/total growing
//!   linearly from START), `rx|tx H IFACE FROM TO START STEP` (a byte counter START + STEP·k
//!   at the k-th minute), `speed H IFACE FROM TO BYTES_PER_SECOND`.
//! - output per objective: `name: verdict value=… limit=… counted=… by=host/resource`, then
//!   one line per host/resource, and the trend of forecasts.

use std::str::FromStr;

use jiff::Timestamp;

use super::calendar::{self, Month, Period};
use super::capacity::Forecast;
use super::capacity_objectives::{self, HostInput, ObjectiveResult, ServiceCapacity, Verdict};
use crate::minutes::HostMinute;

fn ts(s: &str) -> Timestamp {
    Timestamp::from_str(s).unwrap_or_else(|e| panic!("bad instant {s:?}: {e}"))
}

fn minute(s: &str) -> i64 {
    calendar::floor_minute(ts(s))
}

fn row(agent: &str, name: &str, resource: &str, m: i64, avg: f64, max: f64) -> HostMinute {
    HostMinute {
        agent: agent.into(),
        name: name.into(),
        resource: resource.into(),
        minute: m,
        min: avg.min(max),
        avg,
        max,
    }
}

fn evaluate(input: &str) -> ServiceCapacity {
    let mut month = Month::new(2026, 9).unwrap();
    let mut now = None;
    let (mut capacity, mut service, mut objectives) = (String::new(), String::new(), Vec::new());
    let mut measured = vec!["h1".to_string()];
    let mut rows = Vec::new();
    for line in input.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let w: Vec<&str> = rest.split_whitespace().collect();
        let f = |i: usize| -> f64 { w[i].parse().unwrap() };
        match word {
            "month" => {
                let (y, m) = rest.split_once('-').unwrap();
                month = Month::new(y.parse().unwrap(), m.parse().unwrap()).unwrap();
            }
            "now" => now = Some(ts(rest)),
            "capacity" => capacity.push_str(&format!("{rest}\n")),
            "service" => service.push_str(&format!("{rest}\n")),
            "objective" => objectives.push(rest.to_string()),
            "measured" => measured = w.iter().map(ToString::to_string).collect(),
            "util" => {
                let (kind, res) = (w[1], if w[2] == "-" { "" } else { w[2] });
                let name = format!("{kind}_utilization_ratio");
                let peak = w.get(6).map_or(f(5), |p| p.parse().unwrap());
                let (a, b) = (minute(w[3]), minute(w[4]));
                rows.extend((a..b).map(|m| row(w[0], &name, res, m, f(5), peak)));
            }
            "fill" => {
                let (a, b) = (minute(w[2]), minute(w[3]));
                for m in a..b {
                    let used = 1000.0 * (f(4) + f(5) * (m - a) as f64 / 1_440.0);
                    rows.push(row(w[0], "filesystem_used_bytes", w[1], m, used, used));
                    rows.push(row(w[0], "filesystem_total_bytes", w[1], m, 1e3, 1e3));
                }
            }
            "rx" | "tx" => {
                let name = format!("network_{word}_bytes");
                let (a, b) = (minute(w[2]), minute(w[3]));
                for m in a..b {
                    let v = f(4) + f(5) * (m - a) as f64;
                    rows.push(row(w[0], &name, w[1], m, v, v));
                }
            }
            "speed" => {
                let name = "network_speed_bytes_per_second";
                let (a, b) = (minute(w[2]), minute(w[3]));
                rows.extend((a..b).map(|m| row(w[0], name, w[1], m, f(4), f(4))));
            }
            _ => panic!("unknown statement {line:?}"),
        }
    }
    let agents: String = ["h1", "h2", "h3"]
        .iter()
        .map(|a| format!("[[agent]]\nid = \"{a}\"\ntoken = \"token-{a}-0123456789\"\n"))
        .collect();
    let toml = format!(
        "[capacity]\n{capacity}{agents}[[service]]\nname = \"web\"\nchecks = [\"c1\"]\n\
         target = \"99.9%\"\n{service}capacity = [\n{}\n]\n",
        objectives.join(",\n")
    );
    let cfg = attest_config::parse_collector("t.toml", &toml)
        .unwrap_or_else(|e| panic!("scenario config:\n{toml}\n{e}"));
    // A later statement replaces an earlier one's minutes, as the store holds one row each.
    let rows: Vec<HostMinute> = rows
        .into_iter()
        .map(|r| {
            (
                (
                    r.agent.clone(),
                    r.name.clone(),
                    r.resource.clone(),
                    r.minute,
                ),
                r,
            )
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    let svc = &cfg.services[0];
    let period = Period::month(month, &svc.time_zone).unwrap();
    let now = now.unwrap_or(period.end);
    let as_of = calendar::ceil_minute(now).clamp(period.start_minute, period.end_minute);
    let host = HostInput {
        config: &cfg.capacity,
        minutes: &rows,
    };
    capacity_objectives::evaluate(svc, &[], Some(host), &period, as_of, &measured)
        .expect("evaluate")
}

fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), num)
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Breached => "breached",
        Verdict::NotDeterminable => "not_determinable",
    }
}

fn forecast(f: Option<Forecast>) -> String {
    match f {
        Some(Forecast::WithinHorizon { days }) => format!("within {}", num(days)),
        Some(Forecast::NotWithinHorizon) => "not_within_horizon".into(),
        Some(Forecast::NoTrend) => "no_trend".into(),
        None => "-".into(),
    }
}

fn render_objective(o: &ObjectiveResult) -> String {
    let by = o
        .constraint
        .as_ref()
        .map_or("-".into(), |c| format!("{}/{}", c.host, c.resource));
    let mut out = format!(
        "{}: {} value={} limit={} counted={} by={}\n",
        o.name,
        verdict(o.verdict),
        opt(o.value),
        num(o.limit),
        o.counted_minutes,
        by
    );
    if o.forecast.is_some() {
        out.push_str(&format!("  forecast {}\n", forecast(o.forecast)));
    }
    for s in &o.series {
        out.push_str(&format!(
            "  {}/{} n={} cov={} value={} {}\n",
            s.host,
            s.resource,
            s.minutes,
            opt(s.coverage),
            opt(s.value),
            verdict(s.verdict)
        ));
        if let Some(t) = &s.trend {
            out.push_str(&format!(
                "    trend {}..{} n={} slope={} r2={} end={} forecast {}\n",
                t.from,
                t.to,
                t.minutes,
                opt(t.slope_per_day),
                opt(t.r_squared),
                opt(t.value_at_end),
                forecast(s.forecast)
            ));
        }
    }
    out
}

fn render(c: &ServiceCapacity) -> String {
    let mut out = format!(
        "service {} hosts={} ({})\n",
        c.verdict.map_or("n/a", verdict),
        c.hosts.join(","),
        c.hosts_from
    );
    for o in &c.objectives {
        out.push_str(&render_objective(o));
    }
    out
}

fn check(input: &str, expect: &str) {
    let out = render(&evaluate(input));
    let want: String = expect
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("        ").unwrap_or(l)))
        .collect();
    assert_eq!(out, want, "\n--- got ---\n{out}--- want ---\n{want}");
}

/// p95 is the nearest rank of the counted minutes' averages: in September's 43,200 minutes
/// rank 41,040, so 2,160 minutes above the limit still meet it and one more breaches it.
#[test]
fn p95_objective_met_and_breached_by_one_minute_at_the_boundary() {
    let base = "objective { kind = \"cpu\", statistic = \"p95\", max = \"70%\" }\n\
                util h1 cpu - 2026-09-01T00:00Z 2026-10-01T00:00Z 0.5\n";
    check(
        &format!("{base}util h1 cpu - 2026-09-29T12:00Z 2026-10-01T00:00Z 0.8"),
        "service met hosts=h1 (checks)
        cpu:p95: met value=0.5 limit=0.7 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=0.5 met",
    );
    check(
        &format!("{base}util h1 cpu - 2026-09-29T11:59Z 2026-10-01T00:00Z 0.8"),
        "service breached hosts=h1 (checks)
        cpu:p95: breached value=0.8 limit=0.7 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=0.8 breached",
    );
}

/// The forecast is the least-squares line over `trend_lookback` before `as_of`: a
/// filesystem at 50 % on the 1st growing 1 point a day is at 69 % on the 20th and reaches
/// 90 % in exactly 21 days (R² = 1). A flat series never reaches it: not within horizon,
/// met, and no number.
#[test]
fn filesystem_filling_linearly_reaches_the_threshold_in_exact_days() {
    check(
        "now 2026-09-20T00:00Z
         capacity trend_lookback = \"7d\"
         capacity forecast_horizon = \"60d\"
         objective { kind = \"filesystem\", resource = \"/var\", statistic = \"days_to_threshold\", threshold = \"90%\", min_days = 30 }
         objective { name = \"cpu runway\", kind = \"cpu\", statistic = \"days_to_threshold\", threshold = \"90%\", min_days = 30 }
         fill h1 /var 2026-09-01T00:00Z 2026-09-20T00:00Z 0.5 0.01
         util h1 cpu - 2026-09-01T00:00Z 2026-09-20T00:00Z 0.3",
        "service breached hosts=h1 (checks)
        filesystem[/var]:days_to_threshold: breached value=21 limit=30 counted=10080 by=h1//var
          forecast within 21
          h1//var n=10080 cov=1 value=21 breached
            trend 2026-09-13T00:00:00Z..2026-09-20T00:00:00Z n=10080 slope=0.01 r2=1 end=0.69 forecast within 21
        cpu runway: met value=n/a limit=30 counted=10080 by=h1/
          forecast not_within_horizon
          h1/ n=10080 cov=1 value=n/a met
            trend 2026-09-13T00:00:00Z..2026-09-20T00:00:00Z n=10080 slope=0 r2=n/a end=0.3 forecast not_within_horizon",
    );
}

/// `exclude_maintenance` leaves the maintenance minutes out of the counted minutes (and
/// their samples out of the statistic); an objective that does not ask keeps them.
#[test]
fn maintenance_is_excluded_only_from_an_objective_that_asks() {
    check(
        "service maintenance = [{ start = 2026-09-10T02:00:00Z, end = 2026-09-10T04:00:00Z, reason = \"patch\" }]
         objective { name = \"peak outside maintenance\", kind = \"cpu\", statistic = \"max\", max = \"90%\", exclude_maintenance = true }
         objective { name = \"peak\", kind = \"cpu\", statistic = \"max\", max = \"90%\" }
         util h1 cpu - 2026-09-01T00:00Z 2026-10-01T00:00Z 0.2
         util h1 cpu - 2026-09-10T02:00Z 2026-09-10T04:00Z 0.95",
        "service breached hosts=h1 (checks)
        peak outside maintenance: met value=0.2 limit=0.9 counted=43080 by=h1/
          h1/ n=43080 cov=1 value=0.2 met
        peak: breached value=0.95 limit=0.9 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=0.95 breached",
    );
}

/// Service hours count the same way: with Mon–Fri 08:00–18:00 only those minutes count.
#[test]
fn only_service_hours_counts_the_service_calendar() {
    check(
        "service service_hours = [{ days = \"mon-fri\", start = \"08:00\", end = \"18:00\" }]
         objective { kind = \"memory\", statistic = \"minutes_above\", threshold = \"80%\", max_minutes = 60, only_service_hours = true }
         objective { name = \"memory all day\", kind = \"memory\", statistic = \"minutes_above\", threshold = \"80%\", max_minutes = 60 }
         util h1 memory - 2026-09-01T00:00Z 2026-10-01T00:00Z 0.5
         util h1 memory - 2026-09-01T02:00Z 2026-09-01T04:00Z 0.9  # a night batch, Tuesday
         util h1 memory - 2026-09-01T09:00Z 2026-09-01T09:30Z 0.9",
        "service breached hosts=h1 (checks)
        memory:minutes_above: met value=30 limit=60 counted=13200 by=h1/
          h1/ n=13200 cov=1 value=30 met
        memory all day: breached value=150 limit=60 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=150 breached",
    );
}

/// Coverage rule: a host with values in fewer than `min_coverage` (90 %) of the counted
/// minutes makes p95 not determinable; a peak it did report above the limit still
/// breaches `max` (more data could only raise it). Named hosts replace the measuring agents.
#[test]
fn a_host_reporting_on_ten_percent_of_the_month_is_not_determinable() {
    check(
        "service hosts = [\"h1\", \"h2\"]
         measured h3
         objective { kind = \"cpu\", statistic = \"p95\", max = \"70%\" }
         objective { kind = \"cpu\", statistic = \"max\", max = \"95%\" }
         util h1 cpu - 2026-09-01T00:00Z 2026-10-01T00:00Z 0.3
         util h2 cpu - 2026-09-01T00:00Z 2026-09-04T00:00Z 0.3",
        "service not_determinable hosts=h1,h2 (config)
        cpu:p95: not_determinable value=0.3 limit=0.7 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=0.3 met
          h2/ n=4320 cov=0.1 value=0.3 not_determinable
        cpu:max: not_determinable value=0.3 limit=0.95 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=0.3 met
          h2/ n=4320 cov=0.1 value=0.3 not_determinable",
    );
    check(
        "service hosts = [\"h1\", \"h2\"]
         objective { kind = \"cpu\", statistic = \"max\", max = \"95%\" }
         util h1 cpu - 2026-09-01T00:00Z 2026-10-01T00:00Z 0.3
         util h2 cpu - 2026-09-01T00:00Z 2026-09-04T00:00Z 0.3 0.99",
        "service breached hosts=h1,h2 (config)
        cpu:max: breached value=0.99 limit=0.95 counted=43200 by=h2/
          h1/ n=43200 cov=1 value=0.3 met
          h2/ n=4320 cov=0.1 value=0.99 breached",
    );
}

/// A host without any series of the kind has coverage 0; a service without hosts (none
/// named, none measured) cannot be judged at all.
#[test]
fn hosts_without_values_are_not_determinable() {
    check(
        "measured h1 h2
         objective { kind = \"swap\", statistic = \"average\", max = \"50%\" }
         util h1 swap - 2026-09-01T00:00Z 2026-10-01T00:00Z 0.1",
        "service not_determinable hosts=h1,h2 (checks)
        swap:average: not_determinable value=0.1 limit=0.5 counted=43200 by=h1/
          h1/ n=43200 cov=1 value=0.1 met
          h2/ n=0 cov=0 value=n/a not_determinable",
    );
    check(
        "measured
         objective { kind = \"cpu\", statistic = \"p95\", max = \"70%\" }",
        "service not_determinable hosts= (checks)
        cpu:p95: not_determinable value=n/a limit=0.7 counted=43200 by=-",
    );
}

/// Network utilisation: `max(rx, tx increase) / (60 s × link speed)` between consecutive
/// minutes. At 1 Gbit/s (125 MB/s) a minute carries 7.5 GB: 3.75 GB received is 50 %.
/// The counter resets at 00:30 (restarting from 0, so the first value after it is the
/// increase); the first minute has no predecessor; eth1 has no known speed and no series.
#[test]
fn network_utilisation_from_byte_counters_and_link_speed_with_a_reset() {
    check(
        "now 2026-09-01T01:00Z
         objective { kind = \"network\", statistic = \"p95\", max = \"60%\" }
         objective { kind = \"network\", resource = \"eth0\", statistic = \"max\", max = \"40%\" }
         speed h1 eth0 2026-09-01T00:00Z 2026-09-01T01:00Z 125000000
         rx h1 eth0 2026-09-01T00:00Z 2026-09-01T00:30Z 900000000000 3750000000
         rx h1 eth0 2026-09-01T00:30Z 2026-09-01T01:00Z 3750000000 3750000000
         tx h1 eth0 2026-09-01T00:00Z 2026-09-01T01:00Z 0 1500000000
         rx h1 eth1 2026-09-01T00:00Z 2026-09-01T01:00Z 0 1000",
        "service breached hosts=h1 (checks)
        network:p95: met value=0.5 limit=0.6 counted=60 by=h1/eth0
          h1/eth0 n=59 cov=0.9833 value=0.5 met
        network[eth0]:max: breached value=0.5 limit=0.4 counted=60 by=h1/eth0
          h1/eth0 n=59 cov=0.9833 value=0.5 breached",
    );
}
