//! Monthly reports through the real binary: a month (Europe/Berlin, October 2026 — the DST
//! month of 745 hours) imported with outages, maintenance and silence, then
//! `attest-collector report` in every format:
//! - each writes, twice with the same `--at` gives byte-identical output, and its figures are
//!   the ones `attest-collector sla --format json` prints;
//! - `report verify` accepts every untouched output (with the signer's public key) and rejects
//!   a one-byte edit and a wrong key, naming what changed;
//! - bad input exits 65 with the reason;
//! - a running collector serves `/reports/`, `/reports/2026-10` and
//!   `/api/v1/reports/2026-10?format=…`, and a headless Chromium (Debian `chromium`) renders
//!   the HTML report: its DOM shows the figures, its screenshot is not blank. Skips loudly
//!   without Chromium unless `ATTEST_REQUIRE_CHROMIUM=1` (scripts/test installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use attest_tests::bin;
use serde_json::Value;

const AT: &str = "2026-11-02T08:00:00Z";
const EXIT_DATA: i32 = 65;
/// Signing seed (hex) and its public key are derived by the binary; the test only needs the
/// seed and a different seed for the wrong key.
const SEED: &str = "0707070707070707070707070707070707070707070707070707070707070707";

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

fn write_config(dir: &Path) -> String {
    write_config_on(dir, 0)
}

fn write_config_on(dir: &Path, port: u16) -> String {
    std::fs::write(dir.join("report.key"), SEED).expect("key");
    let head = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    let cfg = head
        + r#"

[storage]
data_dir = "data"
raw_retention = "400d"

[report]
organisation = "Example Org"
title = "Availability October"
signing_key_file = "report.key"

[[agent]]
id = "a"
token = "token-a"

[[check]]
id = "web"
kind = "http"
url = "http://127.0.0.1:9/health"
interval = "30s"

[[assign]]
agents = ["a"]
checks = ["web"]

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "Europe/Berlin"
customer = "Example Retail GmbH"
agreement = "SLA-2026-014"
owner = "Web team"
start = "2026-10-01T00:00:00+02:00"

[[service.maintenance]]
start = "2026-10-20T22:00:00Z"
end = "2026-10-20T23:00:00Z"
reason = "database upgrade"
"#;
    let p = dir.join("collector.toml");
    std::fs::write(&p, cfg).expect("write config");
    p.display().to_string()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Headless Chromium with the flags a sandboxed CI needs and a fresh profile.
fn chromium(profile: &Path, extra: &[&str], url: &str) -> Output {
    let exe = which("chromium").expect("chromium");
    Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

async fn get_text(url: &str, token: Option<&str>) -> Option<(u16, Vec<u8>)> {
    let mut req = attest_tests::client()
        .get(url)
        .timeout(std::time::Duration::from_secs(120));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.bytes().await.ok()?.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_collector_serves_reports_and_chromium_renders_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = attest_tests::free_port();
    let cfg = write_config_on(dir.path(), port);
    // A reader token guards the read routes, reports among them.
    let text_cfg = std::fs::read_to_string(&cfg).expect("cfg");
    std::fs::write(
        &cfg,
        format!("{text_cfg}\n[[reader]]\nname = \"auditor\"\ntoken = \"let-me-read\"\n"),
    )
    .expect("cfg");
    let jsonl = dir.path().join("october.jsonl");
    write_october(&jsonl);
    let out = run(&[
        "import",
        "--config",
        &cfg,
        "--input",
        &jsonl.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&[
        "sla", "--config", &cfg, "--month", "2026-10", "--at", AT, "--format", "json",
    ]);
    let sla: Value = serde_json::from_slice(&out.stdout).expect("sla json");

    let _collector = attest_tests::Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &cfg],
        dir.path(),
    );
    let base = format!("http://127.0.0.1:{port}");
    attest_tests::wait_for(
        "collector ready",
        std::time::Duration::from_secs(60),
        || {
            let url = format!("{base}/-/ready");
            async move { get_text(&url, None).await.filter(|(s, _)| *s == 200) }
        },
    )
    .await;

    let token = Some("let-me-read");
    let (status, _) = get_text(&format!("{base}/reports/2026-10"), None)
        .await
        .expect("get");
    assert_eq!(status, 401, "no token");
    let (status, _) = get_text(&format!("{base}/reports/2026-10"), Some("wrong"))
        .await
        .expect("get");
    assert_eq!(status, 401, "wrong token");
    let (status, index) = get_text(&format!("{base}/reports/"), token)
        .await
        .expect("index");
    assert_eq!(status, 200);
    assert!(text(&index).contains("/reports/"), "{}", text(&index));
    // The signer's public key, as a bundle's report-key.pub holds it; a read route.
    let key_url = format!("{base}/api/v1/reports/public-key");
    let (status, _) = get_text(&key_url, None).await.expect("key");
    assert_eq!(status, 401, "the key route is a read route");
    let (status, key) = get_text(&key_url, token).await.expect("key");
    assert_eq!(status, 200, "{}", text(&key));
    assert_eq!(text(&key), format!("{}\n", public_key_of(SEED)));
    // The agreement starts in October 2026: no earlier month is listed.
    assert!(
        !text(&index).contains("2026-09"),
        "a month before the agreement is listed: {}",
        text(&index)
    );
    let month_url = format!("{base}/reports/2026-10");
    let (status, html) = get_text(&month_url, token).await.expect("html");
    assert_eq!(status, 200, "{}", text(&html));
    let html = text(&html);
    let availability = sla[0]["availability"].as_f64().expect("availability");
    // Rounded down to 3 decimals, as the report shows it.
    let shown = format!("{:.3}", (availability * 100_000.0).floor() / 1_000.0);
    assert!(html.contains(&format!("{shown} %")), "HTML lacks {shown} %");
    for (format, ctype) in [
        ("json", "application/json"),
        ("pdf", "application/pdf"),
        ("md", "text/markdown"),
        ("csv", "text/csv"),
    ] {
        let (status, body) = get_text(
            &format!("{base}/api/v1/reports/2026-10?format={format}&at={AT}"),
            token,
        )
        .await
        .expect("file");
        assert_eq!(status, 200, "{format}: {}", text(&body));
        assert!(!body.is_empty(), "{format}");
        let _ = ctype;
    }
    let (status, body) = get_text(&format!("{base}/api/v1/reports/2026-10?format=docx"), token)
        .await
        .expect("bad");
    assert_eq!(status, 400, "{}", text(&body));
    assert!(text(&body).contains("format"));
    let (status, _) = get_text(&format!("{base}/reports/2026-13"), token)
        .await
        .expect("bad month");
    assert_eq!(status, 400);

    // A real browser. Headless Chromium cannot send a bearer token from its command line, so
    // it loads the page from the same collector restarted without a reader token.
    let Some(_) = which("chromium") else {
        assert!(
            std::env::var_os("ATTEST_REQUIRE_CHROMIUM").is_none(),
            "chromium not on PATH but ATTEST_REQUIRE_CHROMIUM is set: apt-get install chromium"
        );
        eprintln!("SKIPPED: chromium not on PATH (apt-get install chromium, or run scripts/test)");
        return;
    };
    drop(_collector);
    let open_cfg = write_config_on(dir.path(), port);
    let _open = attest_tests::Proc::spawn(
        "collector-open",
        "attest-collector",
        &["run", "--config", &open_cfg],
        dir.path(),
    );
    attest_tests::wait_for(
        "collector ready",
        std::time::Duration::from_secs(60),
        || {
            let url = format!("{base}/-/ready");
            async move { get_text(&url, None).await.filter(|(s, _)| *s == 200) }
        },
    )
    .await;
    let dom = chromium(
        &dir.path().join("profile-dom"),
        &["--dump-dom", "--virtual-time-budget=30000"],
        &month_url,
    );
    let dom_text = text(&dom.stdout);
    assert!(
        dom_text.contains("Availability October"),
        "DOM lacks the title: {}",
        text(&dom.stderr)
    );
    assert!(
        dom_text.contains(&format!("{shown} %")),
        "DOM lacks the availability"
    );
    assert!(dom_text.contains("<svg"), "DOM lacks the charts");
    let shot = dir.path().join("report.png");
    let blank = dir.path().join("blank.png");
    let out = chromium(
        &dir.path().join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--virtual-time-budget=30000",
        ],
        &month_url,
    );
    assert!(shot.is_file(), "no screenshot: {}", text(&out.stderr));
    chromium(
        &dir.path().join("profile-blank"),
        &[&format!("--screenshot={}", blank.display())],
        "about:blank",
    );
    let (report_png, blank_png) = (
        std::fs::metadata(&shot).expect("png").len(),
        std::fs::metadata(&blank).expect("png").len(),
    );
    // A white page compresses to almost nothing; text, tables and bars do not.
    assert!(
        report_png > 10 * blank_png,
        "screenshot looks blank: {report_png} bytes vs blank {blank_png}"
    );
    // At 1280 px the report is one centred column (190 mm + padding ≈ 748 px): nothing —
    // no summary table — may be drawn right of it.
    let wide = dir.path().join("report-1280.png");
    let out = chromium(
        &dir.path().join("profile-1280"),
        &[
            &format!("--screenshot={}", wide.display()),
            "--window-size=1280,1400",
            "--hide-scrollbars",
            "--virtual-time-budget=30000",
        ],
        &month_url,
    );
    assert!(wide.is_file(), "no screenshot: {}", text(&out.stderr));
    let (w, h, rgb) = png_rgb(&std::fs::read(&wide).expect("png"));
    assert_eq!(w, 1280, "screenshot width");
    let drawn: Vec<(usize, usize)> = (0..h)
        .flat_map(|y| (1030..w).map(move |x| (x, y)))
        .filter(|&(x, y)| rgb[(y * w + x) * 3..][..3].iter().any(|&c| c < 235))
        .take(5)
        .collect();
    assert!(
        drawn.is_empty(),
        "the report overflows its column at 1280 px: drawn pixels at {drawn:?}"
    );
    if let Some(dir) = std::env::var_os("ATTEST_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("report-html.png")).expect("copy screenshot");
        std::fs::copy(&wide, Path::new(&dir).join("report-html-1280.png"))
            .expect("copy screenshot");
    }
}

/// Width, height and 8-bit RGB pixels of a PNG as Chromium writes it (8-bit RGB or RGBA,
/// not interlaced): the chunks' IDAT inflated and each row unfiltered (PNG spec, 9.2).
fn png_rgb(png: &[u8]) -> (usize, usize, Vec<u8>) {
    use std::io::Read as _;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut w, mut h, mut channels) = (0, 0, 0);
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().expect("len")) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().expect("w")) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().expect("h")) as usize;
                assert_eq!((data[8], data[12]), (8, 0), "8-bit, not interlaced");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("PNG colour type {t}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .expect("inflate");
    let stride = w * channels;
    let mut prev = vec![0u8; stride];
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let mut cur = line[1..].to_vec();
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let (b, c) = (prev[i], if i >= channels { prev[i - channels] } else { 0 });
            let predicted = match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[i] = cur[i].wrapping_add(predicted);
        }
        for px in cur.chunks(channels) {
            rgb.extend_from_slice(&px[..3]);
        }
        prev = cur;
    }
    (w, h, rgb)
}

/// One probe a minute from 27 Sep to 2 Nov; failing 3 Oct 10:00–10:10 and in the DST
/// night 25 Oct 00:50–01:10 UTC, silent 12 Oct 04:00–04:45, failing inside the maintenance.
fn write_october(path: &Path) {
    let start: jiff::Timestamp = "2026-09-27T00:00:00Z".parse().expect("ts");
    let at = |s: &str| s.parse::<jiff::Timestamp>().expect("ts");
    let fail = [
        (at("2026-10-03T10:00:00Z"), at("2026-10-03T10:10:00Z")),
        (at("2026-10-25T00:50:00Z"), at("2026-10-25T01:10:00Z")),
        (at("2026-10-20T22:10:00Z"), at("2026-10-20T22:40:00Z")),
    ];
    let silent = (at("2026-10-12T04:00:00Z"), at("2026-10-12T04:45:00Z"));
    let mut out = String::new();
    for minute in 0..(36 * 1_440i64) {
        let ts = start
            .checked_add(jiff::SignedDuration::from_mins(minute))
            .expect("ts");
        if silent.0 <= ts && ts < silent.1 {
            continue;
        }
        if fail.iter().any(|(a, b)| *a <= ts && ts < *b) {
            out.push_str(&format!(
                "{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"{ts}\",\"ok\":false,\"reason\":\"timeout\",\"error\":\"timed out\"}}\n"
            ));
        } else {
            out.push_str(&format!(
                "{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"{ts}\",\"ok\":true}}\n"
            ));
        }
    }
    std::fs::write(path, out).expect("write jsonl");
}

fn report(cfg: &str, format: &str, output: &Path) -> Output {
    run(&[
        "report",
        "--config",
        cfg,
        "--month",
        "2026-10",
        "--format",
        format,
        "--at",
        AT,
        "--output",
        &output.display().to_string(),
    ])
}

fn verify(path: &Path, key: Option<&Path>) -> Output {
    let p = path.display().to_string();
    let mut args = vec!["report", "verify", &p];
    let k = key.map(|k| k.display().to_string());
    if let Some(k) = &k {
        args.extend(["--public-key", k]);
    }
    run(&args)
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

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn flip_middle_byte(p: &Path) -> Vec<u8> {
    let orig = std::fs::read(p).expect("read");
    let mut b = orig.clone();
    let i = b.len() / 2;
    b[i] = if b[i] == b'7' { b'8' } else { b'7' };
    std::fs::write(p, b).expect("write");
    orig
}

#[test]
fn report_writes_every_format_deterministically_and_verify_catches_edits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path());
    let jsonl = dir.path().join("october.jsonl");
    write_october(&jsonl);
    let out = run(&[
        "import",
        "--config",
        &cfg,
        "--input",
        &jsonl.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let good_key = dir.path().join("good.pub");
    std::fs::write(&good_key, public_key_of(SEED)).expect("pub");
    let wrong_key = dir.path().join("wrong.pub");
    std::fs::write(&wrong_key, public_key_of(&"01".repeat(32))).expect("pub");

    // The engine's figures, as `sla` prints them.
    let out = run(&[
        "sla", "--config", &cfg, "--month", "2026-10", "--at", AT, "--format", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sla: Value = serde_json::from_slice(&out.stdout).expect("sla json");
    assert_eq!(sla[0]["bad_minutes"], 30);
    assert_eq!(sla[0]["unknown_minutes"], 45);
    assert_eq!(sla[0]["eligible_minutes"], 44_700 - 60);

    for format in ["json", "html", "md", "pdf", "csv", "bundle"] {
        let a = dir.path().join(format!("a-{format}"));
        let b = dir.path().join(format!("b-{format}"));
        for p in [&a, &b] {
            let out = report(&cfg, format, p);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{format}: {}",
                text(&out.stderr)
            );
        }
        let (fa, fb) = if a.is_dir() {
            (all_files(&a), all_files(&b))
        } else {
            (vec![a.clone()], vec![b.clone()])
        };
        assert_eq!(fa.len(), fb.len(), "{format}");
        for (x, y) in fa.iter().zip(&fb) {
            assert!(
                std::fs::read(x).expect("a") == std::fs::read(y).expect("b"),
                "{format}: {} differs between runs",
                x.display()
            );
        }
        let out = verify(&a, Some(&good_key));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("OK:"), "{format}");
        let out = verify(&a, Some(&wrong_key));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format} with a wrong key: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stdout).contains("signature does not verify"),
            "{format}: {}",
            text(&out.stdout)
        );
        // A one-byte edit of each file is found and named.
        for f in &fa {
            let orig = flip_middle_byte(f);
            let out = verify(&a, Some(&good_key));
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{format}: edit of {} passed: {stdout}",
                f.display()
            );
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            assert!(stdout.contains(&name), "{format}: {stdout}");
            std::fs::write(f, orig).expect("restore");
        }
    }

    // The JSON report carries the engine's figures.
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a-json")).expect("json"))
            .expect("parse");
    let s = &json["summary"][0];
    for key in [
        "eligible_minutes",
        "good_minutes",
        "bad_minutes",
        "unknown_minutes",
        "availability",
        "coverage",
    ] {
        assert_eq!(s[key], sla[0][key], "{key}");
    }
    assert_eq!(s["verdict"], "met");
    assert_eq!(json["cover"]["organisation"], "Example Org");
    // The agreed method and parties come from the configuration file.
    assert_eq!(json["cover"]["parties"][0]["agreement"], "SLA-2026-014");
    let terms = &json["services"][0]["terms"];
    assert_eq!(terms["customer"], "Example Retail GmbH");
    assert_eq!(
        terms["quorum"],
        "majority: bad when more than half of the reporting agents fail"
    );
    assert_eq!(terms["reporting_agents"][0], "a");
    let check = &json["services"][0]["checks"][0];
    assert_eq!(check["target"], "GET http://127.0.0.1:9/health");
    assert_eq!(check["interval_seconds"], 30.0);
    assert_eq!(check["assigned_agents"][0], "a");
    assert_eq!(json["services"][0]["daily"][24]["eligible_minutes"], 1_500);
    assert_eq!(json["services"][0]["unknown"][0]["silent_agents"][0], "a");
    assert_eq!(
        json["services"][0]["excluded"]["maintenance"][0]["reason"],
        "database upgrade"
    );
    // The bundle's minute table recomputes the figures.
    let minutes =
        std::fs::read_to_string(dir.path().join("a-bundle/minutes/web.csv")).expect("minutes");
    let count = |state: &str| {
        minutes
            .lines()
            .filter(|l| l.split(',').nth(1) == Some(state))
            .count() as u64
    };
    assert_eq!(count("good"), s["good_minutes"].as_u64().expect("good"));
    assert_eq!(count("bad"), 30);
    assert_eq!(count("unknown"), 45);
}

#[test]
fn bad_report_arguments_exit_65_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path());
    let out_path = dir.path().join("x");
    let cases: [(&[&str], &str); 4] = [
        (&["--month", "2026-13", "--format", "html"], "YYYY-MM"),
        (&["--month", "2026-10", "--format", "docx"], "is not one of"),
        (
            &[
                "--month",
                "2026-10",
                "--format",
                "html",
                "--service",
                "nope",
            ],
            "no service named",
        ),
        (
            &[
                "--month",
                "2026-10",
                "--format",
                "html",
                "--at",
                "yesterday",
            ],
            "RFC 3339",
        ),
    ];
    for (extra, words) in cases {
        let o = out_path.display().to_string();
        let mut args = vec!["report", "--config", &cfg, "--output", &o];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(EXIT_DATA),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(words),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
    let out = verify(&dir.path().join("missing.html"), None);
    assert_eq!(out.status.code(), Some(EXIT_DATA));
}

/// `report note` stores a note as `cli` through the store; a refused one exits 65 naming
/// the flag and stores nothing.
#[test]
fn report_note_stores_a_note_as_cli_and_refusals_exit_65() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path());
    let base = ["report", "note", "--config", &cfg];
    let web = ["--month", "2026-10", "--service", "web"];
    let ok = ["--cause", "c", "--action", "a"];
    let refused: [(Vec<&str>, &str); 4] = [
        (
            [&["--cause", "", "--action", "a"][..], &web].concat(),
            "--cause",
        ),
        ([&ok[..], &web, &["--due", "15.11.2026"]].concat(), "--due"),
        (
            [&ok[..], &["--month", "2026-10", "--service", "nope"]].concat(),
            "--service",
        ),
        (
            [&ok[..], &["--month", "2026-13", "--service", "web"]].concat(),
            "--month",
        ),
    ];
    for (extra, words) in refused {
        let mut args = base.to_vec();
        args.extend_from_slice(&extra);
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(EXIT_DATA),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains(words), "{}", text(&out.stderr));
    }
    let mut args = base.to_vec();
    args.extend_from_slice(&web);
    args.extend_from_slice(&[
        "--cause",
        "certificate expired on the load balancer",
        "--action",
        "renewal automated",
        "--owner",
        "Web team",
        "--due",
        "2026-11-30",
    ]);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("by cli"),
        "{}",
        text(&out.stdout)
    );

    let loaded = attest_config::load_collector(Path::new(&cfg)).expect("config");
    let store = attest_collector::store::open(&loaded.storage).expect("store");
    let notes = store.report_notes("2026-10", None).expect("notes");
    assert_eq!(notes.len(), 1, "only the accepted note: {notes:?}");
    let n = &notes[0];
    assert_eq!(
        (
            n.service.as_str(),
            n.written_by.as_str(),
            n.owner.as_deref(),
            n.due
        ),
        (
            "web",
            "cli",
            Some("Web team"),
            Some(jiff::civil::date(2026, 11, 30))
        )
    );
}
