//! The month-close loop of a running collector, end to end with real processes: a month that
//! is already over (the previous UTC calendar month) is imported with `attest-collector
//! import`, then `attest-collector run` with `[report] archive_dir` and a one-second
//! `grace` archives it on its own:
//! - the month's bundle appears in `archive_dir/YYYY-MM/` (waited for on the condition, with
//!   a bound) and `attest-collector report verify` (a child process) accepts it with the
//!   signer's public key;
//! - its figures are the imported truth (30 bad, 20 unknown minutes); the all-services
//!   route serves the archived file byte for byte, and one service's page and JSON are its
//!   part of the archived report (`X-Attest-Source: archive`, no engine run), equal to what
//!   the archive holds; a service the archive lacks is a 404;
//! - after a restart the loop checks the archived month again (its
//!   `attest_report_archive_differences` gauge appears, 0) and rewrites nothing: every file
//!   keeps its bytes and modification time, and no addenda are recorded.
//!
//! Why no waiting for real time: the loop runs once at start and archives every month of
//! the last two that ended more than `grace` ago. The imported month ended before the
//! collector starts, so with `grace = "1s"` it is due at the first run. (Within the first
//! hour of a month the test uses the month before, so a run right at a month boundary
//! cannot meet a month whose grace has not passed yet.)

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use attest_tests::{Proc, bin, free_port};
use jiff::civil::Date;
use jiff::tz::Offset;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;

/// Signing seed (hex); the test derives the public key the auditor would be given.
const SEED: &str = "0909090909090909090909090909090909090909090909090909090909090909";
/// Bound for the collector to come up and for the first archive to be written (a debug
/// build renders the bundle, PDF included, on a loaded 2-core machine).
const BOUND: Duration = Duration::from_secs(180);

fn run(args: &[&str]) -> Output {
    Command::new(bin("attest-collector"))
        .args(args)
        .env("ATTEST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run attest-collector: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The first day of the month to archive and of the month after it: the previous UTC
/// month, or the one before within the first hour of the current month.
fn closed_month(now: Timestamp) -> (Date, Date) {
    let this = Offset::UTC.to_datetime(now).date().first_of_month();
    let this_start = Offset::UTC
        .to_timestamp(this.at(0, 0, 0, 0))
        .expect("month start");
    let back = if now.duration_since(this_start) < jiff::SignedDuration::from_hours(1) {
        2
    } else {
        1
    };
    let first = this.checked_sub(back.months()).expect("month");
    (first, first.checked_add(1.month()).expect("next month"))
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    std::fs::write(dir.join("report.key"), SEED).expect("key");
    let cfg = format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[storage]
data_dir = "data"
raw_retention = "400d"

[report]
organisation = "Example Org"
signing_key_file = "report.key"
archive_dir = "archive"
grace = "1s"

[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
"#
    );
    let p = dir.join("collector.toml");
    std::fs::write(&p, cfg).expect("write config");
    p
}

/// One probe a minute over the month `[first, next)`: failing on day 3 10:00–10:30 UTC
/// (30 bad minutes), silent on day 5 04:00–04:20 (20 unknown minutes).
fn write_month(path: &Path, first: Date, next: Date) {
    let at = |d: Date, h: i8, m: i8| Offset::UTC.to_timestamp(d.at(h, m, 0, 0)).expect("ts");
    let start = at(first, 0, 0);
    let end = at(next, 0, 0);
    let fail = (at(first + 2.days(), 10, 0), at(first + 2.days(), 10, 30));
    let silent = (at(first + 4.days(), 4, 0), at(first + 4.days(), 4, 20));
    let mut out = String::new();
    let mut ts = start;
    while ts < end {
        if !(silent.0 <= ts && ts < silent.1) {
            let ok = !(fail.0 <= ts && ts < fail.1);
            let reason = if ok { "" } else { r#","reason":"timeout""# };
            out.push_str(&format!(
                "{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"{ts}\",\"ok\":{ok}{reason}}}\n"
            ));
        }
        ts = ts.checked_add(1.minute()).expect("ts");
    }
    std::fs::write(path, out).expect("write jsonl");
}

fn public_key_of(seed_hex: &str) -> String {
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed.try_into().expect("32 bytes"));
    key.verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `dir` with its bytes and modification time, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            let modified = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .expect("mtime");
            out.push((p.clone(), std::fs::read(&p).expect("read"), modified));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn start_collector(name: &str, cfg: &Path, dir: &Path) -> Proc {
    Proc::spawn(
        name,
        "attest-collector",
        &["run", "--config", &cfg.display().to_string()],
        dir,
    )
}

async fn get(url: &str) -> Option<(u16, Vec<u8>)> {
    let r = attest_tests::client()
        .get(url)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.bytes().await.ok()?.to_vec()))
}

/// Status, `X-Attest-Source` header and body of a GET.
async fn get_source(url: &str) -> (u16, String, Vec<u8>) {
    let r = attest_tests::client()
        .get(url)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let source = r
        .headers()
        .get("x-attest-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, source, r.bytes().await.expect("body").to_vec())
}

/// Polls `f` until it answers `Some`, at most [`BOUND`]; on timeout the panic names `what`
/// and shows `proc`'s log.
async fn until<T, Fut>(what: &str, proc: &Proc, mut f: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < BOUND,
            "timed out after {BOUND:?} waiting for {what}; log:\n{}",
            proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(base: &str, proc: &Proc) {
    let url = format!("{base}/-/ready");
    until("collector ready", proc, || {
        let url = url.clone();
        async move { get(&url).await.filter(|(s, _)| *s == 200) }
    })
    .await;
}

/// The JSON the route answers (status 200 asserted).
async fn get_json(url: &str) -> (Vec<u8>, Value) {
    let (status, body) = get(url).await.expect("request");
    assert_eq!(status, 200, "{url}: {}", text(&body));
    let v = serde_json::from_slice(&body).expect("json");
    (body, v)
}

/// Waits for the archive's month directory (renamed into place whole, so once it is there
/// every file of the bundle is).
async fn wait_archived(month_dir: &Path, proc: &Proc) {
    until("the month's archive", proc, || {
        let found = month_dir.is_dir();
        async move { found.then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_collector_archives_a_closed_month_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = write_config(dir.path(), port);
    let (first, next) = closed_month(attest_tests::wall_now());
    let month = first.strftime("%Y-%m").to_string();
    let jsonl = dir.path().join("month.jsonl");
    write_month(&jsonl, first, next);
    let out = run(&[
        "import",
        "--config",
        &cfg.display().to_string(),
        "--input",
        &jsonl.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let month_dir = dir.path().join("archive").join(&month);
    assert!(!month_dir.exists(), "archived before any collector ran");
    let mut collector = start_collector("collector", &cfg, dir.path());
    wait_archived(&month_dir, &collector).await;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &collector).await;

    // An auditor checks the archive offline with the signer's public key.
    let public = dir.path().join("report.pub");
    std::fs::write(&public, public_key_of(SEED)).expect("pub");
    let out = run(&[
        "report",
        "verify",
        &month_dir.display().to_string(),
        "--public-key",
        &public.display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stdout));
    // The month is sealed: an imported month has no signed batches, so its leaves are the
    // service's definition; the seal is signed by the report key and checked by verify.
    let seal = std::fs::read_to_string(month_dir.join("seal/SEAL")).expect("seal");
    assert!(
        seal.contains("\nleaves 1\n") && seal.contains("\nsignature ed25519 "),
        "{seal}"
    );
    assert!(
        text(&out.stdout).contains("seal/SEAL: 1 leaves under root"),
        "{}",
        text(&out.stdout)
    );

    // The archived figures are the imported truth and what the collector computes now.
    let archived_bytes = std::fs::read(month_dir.join("report.json")).expect("report.json");
    let archived: Value = serde_json::from_slice(&archived_bytes).expect("archived json");
    let days = (next - first).get_days();
    let summary = &archived["summary"][0];
    assert_eq!(summary["service"], "web");
    assert_eq!(summary["complete"], true, "{summary}");
    assert_eq!(summary["eligible_minutes"], i64::from(days) * 1_440);
    assert_eq!(summary["bad_minutes"], 30, "{summary}");
    assert_eq!(summary["unknown_minutes"], 20, "{summary}");
    assert_eq!(summary["incidents"], 1, "{summary}");
    let api = format!("{base}/api/v1/reports/{month}?format=json");
    let (served, _) = get_json(&api).await;
    assert_eq!(served, archived_bytes, "the route serves the archived file");
    for url in [
        format!("{api}&service=web"),
        format!("{base}/reports/{month}/web"),
    ] {
        let (status, source, _) = get_source(&url).await;
        assert_eq!((status, source.as_str()), (200, "archive"), "{url}");
    }
    let (_, one) = get_json(&format!("{api}&service=web")).await;
    assert_eq!(one["cover"]["service"], "web");
    assert_eq!(one["summary"], archived["summary"], "summary figures");
    for part in [
        "daily",
        "incidents",
        "unknown",
        "excluded",
        "trend",
        "terms",
    ] {
        assert_eq!(
            one["services"][0][part], archived["services"][0][part],
            "{part}"
        );
    }
    let (status, _, body) = get_source(&format!("{base}/reports/{month}/nosuch")).await;
    assert_eq!(status, 404, "{}", text(&body));

    // A restart: the loop runs again at start, checks the archived month against a
    // recomputation (its gauge appears) and leaves every archived byte as it was.
    let before = snapshot(&month_dir);
    collector.signal_and_wait("TERM", BOUND);
    let restarted = start_collector("collector-restarted", &cfg, dir.path());
    wait_ready(&base, &restarted).await;
    let metrics = format!("{base}/metrics");
    let month_label = month.clone();
    let differences = until(
        "the archived month checked after the restart",
        &restarted,
        || {
            let (url, m) = (metrics.clone(), month_label.clone());
            async move {
                let (_, body) = get(&url).await?;
                attest_tests::sample(
                    &text(&body),
                    "attest_report_archive_differences",
                    &[("month", &m)],
                )
            }
        },
    )
    .await;
    assert_eq!(differences, 0.0, "no late data, no differences");
    assert_eq!(
        snapshot(&month_dir),
        before,
        "the archive was rewritten on restart"
    );
    assert!(
        !dir.path()
            .join("archive")
            .join(format!("{month}.addenda.jsonl"))
            .exists(),
        "addenda recorded without late data"
    );
}
