//! Whole-path benchmark of the collector at fleet size: the real `attest-collector` binary
//! with 1,000 services (3 agents each) and 35 days of data behind them, fed live batches
//! over HTTP (zstd, real bearer tokens) at 594 measurements/s. Prints, beside the issue 11
//! and 20 targets: start → every service's figures on `/metrics` (cold, then a restart from
//! the saved state) and the collector's CPU over the live window (cores, and per measurement),
//! for each as-of day asked: the restart must take ≤ 2 s on every day of the month (day 1
//! right after the month closed, mid-month, the last day).
//!
//! As-of days (`FLEET_DAYS`, default `1,15,last` of the wall clock's month; `now` for the
//! wall clock) run the collector under libfaketime (Debian package `faketime`), which
//! starts its clock at that instant; the data and the batches are made for the same
//! instant. Without libfaketime only `now` runs. Each day gets its own data directory.
//!
//! Run optimised: `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench -p attest-collector --bench
//! fleet --profile dev` (or release). Knobs: `FLEET_SERVICES` (1000; a comma-separated list
//! such as `1000,10000` runs each size: 10,000 is the second line, seeded as fast
//! as 1,000 since services share the `FLEET_DISTINCT` data sets), `FLEET_DISTINCT`
//! (data sets, 100: service `i` probes check `chk-{i % distinct}`), `FLEET_RATE` (594/s),
//! `FLEET_SECONDS` (60 s of live load measured, after 10 s of warm-up), `FLEET_DAYS`.
//!
//! What it leaves out: TLS, PostgreSQL, the agents themselves (batches are built here, so
//! the collector's CPU is measured alone), scrapes other than the benchmark's own polls.
//! Every check gets new data every second, so every service's figures move between two
//! refreshes: the worst case for the refresh loop (real agents probe a check every 10 s).
//! The month behind the services is loaded as hourly packs before the collector starts.
//!
//! Owns the one process it starts: stops it with SIGTERM and waits; every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use attest_collector::store::{SeriesMinuteSummary, SqliteStore};
use attest_config::wire::{Batch, Measurement, PROTOCOL_VERSION_UNSIGNED, Phase};
use jiff::Timestamp;

const AGENTS: [&str; 3] = ["a1", "a2", "a3"];
const TARGET_RESTART: Duration = Duration::from_secs(2);
const TARGET_CORES: f64 = 0.05;
/// Linux reports process CPU in clock ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Seconds the as-of day is ahead of the wall clock (0: the wall clock).
static SHIFT: AtomicI64 = AtomicI64::new(0);

/// Where Debian's `faketime` package puts libfaketime.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The as-of clock: the wall clock (through the collector's one source of "now") shifted to
/// the day being measured, as the collector under libfaketime sees it.
fn now() -> Timestamp {
    let wall = attest_collector::clock::system().now_utc();
    wall + jiff::SignedDuration::from_secs(SHIFT.load(Ordering::Relaxed))
}

/// The instant of an as-of day of the wall clock's month: `1` is 00:30 UTC on the 1st (half
/// an hour after the month closed in UTC, in Europe/Berlin the close was 90 minutes
/// before), `last` 23:30 UTC on the last day, any other number noon that day; `now` the
/// wall clock.
fn as_of(day: &str) -> Option<Timestamp> {
    let wall = attest_collector::clock::system().now_utc();
    let utc = jiff::tz::TimeZone::UTC;
    let today = utc.to_datetime(wall).date();
    let (date, time) = match day {
        "now" => return Some(wall),
        "last" => (today.last_of_month(), jiff::civil::time(23, 30, 0, 0)),
        "1" => (today.first_of_month(), jiff::civil::time(0, 30, 0, 0)),
        n => (
            today
                .first_of_month()
                .with()
                .day(n.parse().ok()?)
                .build()
                .ok()?,
            jiff::civil::time(12, 0, 0, 0),
        ),
    };
    utc.to_timestamp(date.to_datetime(time)).ok()
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn token(agent: &str) -> String {
    format!("fleet-bench-token-{agent}-0123456789")
}

fn config(dir: &Path, port: u16, services: u64, distinct: u64) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\nbackend = \"sqlite\"\n\
         data_dir = {:?}\nraw_retention = \"35d\"\nrollup_retention = \"400d\"\n",
        dir.display().to_string()
    );
    for a in AGENTS {
        toml += &format!("[[agent]]\nid = \"{a}\"\ntoken = \"{}\"\n", token(a));
    }
    for i in 0..services {
        toml += &format!(
            "[[service]]\nname = \"svc-{i:04}\"\nchecks = [\"chk-{:04}\"]\ntarget = \"99.9%\"\n\
             time_zone = \"{}\"\nquorum = \"majority\"\n\
             latency = {{ threshold = \"250ms\", target = \"99%\" }}\n",
            i % distinct,
            if i % 2 == 0 { "Europe/Berlin" } else { "UTC" }
        );
    }
    toml
}

/// 35 days up to the last whole minute, for every data set and agent: six probes a minute,
/// a one-in-a-thousand failure, latencies spread over 20–60 ms.
fn seed(dir: &Path, distinct: u64) -> u64 {
    let store = SqliteStore::open(dir).expect("open the store to seed");
    let to = now().as_second().div_euclid(60);
    let from = to - 35 * 1_440;
    let mut loaded = 0;
    for set in 0..distinct {
        for agent in AGENTS {
            let rows: Vec<SeriesMinuteSummary> = (from..to)
                .map(|minute| {
                    let failures = u32::from((minute + set as i64) % 1_000 == 0);
                    SeriesMinuteSummary {
                        minute,
                        probes: 6,
                        failures,
                        reason: None,
                        ok_durations: (0..6 - failures)
                            .map(|k| 0.02 + f64::from(k) * 0.008)
                            .collect(),
                    }
                })
                .collect();
            loaded += store
                .load_minutes(agent, &format!("chk-{set:04}"), &rows)
                .expect("seed minutes");
        }
    }
    loaded
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// One HTTP/1.1 request on its own connection; the status and body.
fn http(port: u16, request: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// The `/metrics` body (`None` while the collector is not answering).
fn metrics(port: u16) -> Option<String> {
    let req = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    http(port, req).ok().map(|(_, body)| body)
}

/// Services with figures in a `/metrics` body, and those of them computed within the last
/// `within` (figures restored from before a restart are older than the process).
fn figures_in(body: &str, within: Duration) -> (usize, usize) {
    let ages: Vec<f64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("attest_sla_figures_age_seconds{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .collect();
    let fresh = ages.iter().filter(|a| **a < within.as_secs_f64()).count();
    (ages.len(), fresh)
}

/// Starts the collector (under libfaketime at the as-of clock when shifted); its log goes
/// to `log` (kept with the data directory).
fn start(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("create the collector log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_attest-collector"));
    cmd.args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log);
    if SHIFT.load(Ordering::Relaxed) != 0 {
        let at = now().strftime("@%Y-%m-%d %H:%M:%S").to_string();
        cmd.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME", at)
            // Timers (refresh cadence, timeouts) keep the real monotonic clock.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    cmd.spawn().expect("start attest-collector")
}

/// Time from `started` until every service has figures computed by this process on
/// `/metrics` (bounded by `limit`); also how many had figures at the first answered scrape.
fn until_all_figures(
    port: u16,
    services: usize,
    started: Instant,
    limit: Duration,
) -> (Duration, usize) {
    let mut first = None;
    loop {
        if let Some(body) = metrics(port) {
            let (shown, fresh) = figures_in(&body, started.elapsed());
            first.get_or_insert(shown);
            if fresh >= services {
                return (started.elapsed(), first.unwrap_or(0));
            }
        }
        assert!(
            started.elapsed() < limit,
            "not every service had fresh figures after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
}

/// CPU seconds (user + system) the process used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// One agent's batch of `n` measurements at `now`, spread over the data sets' checks.
fn batch_body(agent: &str, seq: u64, n: u64, offset: u64, distinct: u64) -> Vec<u8> {
    let now = now();
    let measurements = (0..n)
        .map(|k| {
            let mut m = Measurement::new(format!("chk-{:04}", (offset + k) % distinct), now, true);
            m.duration_seconds = Some(0.03);
            m.phases.insert(Phase::Connect, 0.001);
            m.phases.insert(Phase::Processing, 0.02);
            m
        })
        .collect();
    let batch = Batch {
        version: PROTOCOL_VERSION_UNSIGNED,
        agent: agent.to_owned(),
        seq,
        sent_at: now,
        measurements,
        gaps: Vec::new(),
        spool: None,
        evidence: None,
    };
    let json = serde_json::to_vec(&batch).expect("encode batch");
    zstd::bulk::compress(&json, 3).expect("compress batch")
}

fn post(port: u16, agent: &str, body: &[u8]) -> u16 {
    let mut req = format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Encoding: zstd\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        token(agent),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    http(port, &req).map_or(0, |(status, _)| status)
}

/// Plays the agents for `seconds`: every second each agent sends one batch of its share
/// of `rate`. Returns the measurements acknowledged.
fn live(port: u16, seqs: &mut [u64; 3], rate: u64, seconds: u64, distinct: u64) -> u64 {
    let per_agent = rate / AGENTS.len() as u64;
    let started = Instant::now();
    let mut acked = 0;
    for second in 0..seconds {
        for (i, agent) in AGENTS.iter().enumerate() {
            seqs[i] += 1;
            let body = batch_body(agent, seqs[i], per_agent, second * per_agent, distinct);
            let status = post(port, agent, &body);
            assert_eq!(status, 200, "ingest answered {status}");
            acked += per_agent;
        }
        let next = started + Duration::from_secs(second + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    acked
}

/// One fleet size on one as-of day: seeds, cold start, live load, restart; prints each.
fn run(services: u64, distinct: u64, day: &str, (rate, seconds): (u64, u64)) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = std::env::var_os("FLEET_KEEP").is_some();
    if keep {
        println!("keeping {}", dir.path().display());
    }
    let started = Instant::now();
    let loaded = seed(dir.path(), distinct);
    println!(
        "[{services} services, as of {day}: {}] seeded {distinct} data sets x 3 agents, 35 days: \
         {loaded} agent-minutes in {:.1} s",
        now().strftime("%Y-%m-%d %H:%M UTC"),
        started.elapsed().as_secs_f64()
    );
    let port = free_port();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, config(dir.path(), port, services, distinct)).expect("write config");
    let n = services as usize;
    let limit = Duration::from_secs(3_600);

    let spawned = Instant::now();
    let child = start(&cfg, &dir.path().join("collector-cold.log"));
    let (cold, _) = until_all_figures(port, n, spawned, limit);
    println!(
        "cold start -> figures of all {services} services on /metrics: {:.1} s \
         (month to date and every past month behind the SLO counters)",
        cold.as_secs_f64()
    );
    let mut seqs = [0u64; 3];
    let warm = live(port, &mut seqs, rate, 10, distinct);
    let cpu_before = cpu_seconds(child.id());
    let wall = Instant::now();
    let acked = live(port, &mut seqs, rate, seconds, distinct);
    let cores = (cpu_seconds(child.id()) - cpu_before) / wall.elapsed().as_secs_f64();
    println!(
        "live: {acked} measurements acked in {seconds} s (+{warm} warm-up) at {rate}/s: \
         collector CPU {cores:.3} core (target {TARGET_CORES}; {:.2}x), {:.1} µs per \
         measurement (ingest and figures refresh together)",
        cores / TARGET_CORES,
        cores * 1e6 / rate as f64
    );
    stop(child);

    let spawned = Instant::now();
    let child = start(&cfg, &dir.path().join("collector-restart.log"));
    let (restart, first) = until_all_figures(port, n, spawned, limit);
    println!(
        "restart on day {day} -> fresh figures of all {services} services on /metrics: {:.2} s \
         (target {:.0} s; {:.2}x); the first scrape answered showed {first} of {services} \
         (restored from before the restart); cold start above: {:.1} s",
        restart.as_secs_f64(),
        TARGET_RESTART.as_secs_f64(),
        restart.as_secs_f64() / TARGET_RESTART.as_secs_f64(),
        cold.as_secs_f64()
    );
    stop(child);
    if keep {
        std::mem::forget(dir);
    }
    restart
}

fn main() {
    let sizes: Vec<u64> = std::env::var("FLEET_SERVICES")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let rate = knob("FLEET_RATE", 594);
    let seconds = knob("FLEET_SECONDS", 60);
    let faked = Path::new(LIBFAKETIME).exists();
    let days: Vec<String> = std::env::var("FLEET_DAYS")
        .unwrap_or_else(|_| "1,15,last".into())
        .split(',')
        .map(|d| d.trim().to_owned())
        .filter(|d| {
            let ok = faked || d == "now";
            if !ok {
                println!("as of day {d}: skipped, libfaketime is not installed (apt-get install faketime)");
            }
            ok
        })
        .collect();
    let days = if days.is_empty() {
        vec!["now".to_owned()]
    } else {
        days
    };
    let mut summary = Vec::new();
    for &services in &sizes {
        let distinct = knob("FLEET_DISTINCT", 100).clamp(1, services);
        for day in &days {
            let Some(t) = as_of(day) else {
                println!("as of day {day}: not a day of this month");
                continue;
            };
            let wall = attest_collector::clock::system().now_utc();
            SHIFT.store(t.as_second() - wall.as_second(), Ordering::Relaxed);
            let took = run(services, distinct, day, (rate, seconds));
            summary.push((services, day.clone(), took));
        }
    }
    for (services, day, took) in summary {
        let target = if services > 1_000 {
            10.0
        } else {
            TARGET_RESTART.as_secs_f64()
        };
        println!(
            "summary: restart, {services} services, day {day}: {:.2} s (target {target:.0} s; {:.2}x)",
            took.as_secs_f64(),
            took.as_secs_f64() / target
        );
    }
}
