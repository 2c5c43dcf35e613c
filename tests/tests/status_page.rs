//! The status page of a running collector (the real binary): 40 days imported up to now with
//! a failing hour, a silent stretch and a configured maintenance window; `[status] public`
//! with one of two services; a reader token guarding everything else.
//! - without credentials `/status` shows only the public service, `/status/{other}` is 404,
//!   `/metrics` still 401; with the reader token every service; a wrong token is 401;
//! - headless Chromium (Debian `chromium`) loads the public page at a desktop and a 390 px
//!   wide viewport: the DOM shows the service and its figures, neither screenshot is blank.
//!   With `ATTEST_SCREENSHOT_DIR` set, the screenshots are copied there (docs/examples/).
//!   Skips Chromium loudly unless `ATTEST_REQUIRE_CHROMIUM=1` (scripts/test installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use attest_tests::{Proc, bin, free_port, wait_for, wall_now};

const READER: &str = "status-reader-token";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn write_config(dir: &Path, port: u16, maintenance: (jiff::Timestamp, jiff::Timestamp)) -> String {
    let cfg = format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[storage]
data_dir = "data"
raw_retention = "120d"

[ingest]
max_backfill_age = "120d"

[report]
organisation = "Example Org"

[status]
public = true
services = ["webshop"]

[[reader]]
name = "ops"
token = "{READER}"

[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "webshop"
checks = ["web"]
target = "99.9%"

[[service.maintenance]]
start = "{}"
end = "{}"
reason = "database upgrade"

[[service]]
name = "intranet"
checks = ["intranet"]
target = "99.5%"
"#,
        maintenance.0, maintenance.1
    );
    let p = dir.join("collector.toml");
    std::fs::write(&p, cfg).expect("write config");
    p.display().to_string()
}

/// One probe a minute for both checks from 40 days ago (midnight UTC) to the last minute:
/// `web` failing for an hour 3 days ago and silent for 3 hours 10 days ago.
fn write_measurements(path: &Path, now: jiff::Timestamp) -> jiff::Timestamp {
    let day = jiff::SignedDuration::from_hours(24);
    let midnight = jiff::Timestamp::from_second(now.as_second().div_euclid(86_400) * 86_400)
        .expect("midnight");
    let start = midnight - day * 40;
    let fail_from = midnight - day * 3 + jiff::SignedDuration::from_hours(10);
    let silent_from = midnight - day * 10 + jiff::SignedDuration::from_hours(2);
    let mut out = String::new();
    let mut t = start;
    while t < now - jiff::SignedDuration::from_mins(1) {
        let failing = fail_from <= t && t < fail_from + jiff::SignedDuration::from_hours(1);
        let silent = silent_from <= t && t < silent_from + jiff::SignedDuration::from_hours(3);
        if !silent {
            out.push_str(&format!(
                "{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"{t}\",\"ok\":{}}}\n",
                !failing
            ));
        }
        out.push_str(&format!(
            "{{\"agent\":\"a\",\"check\":\"intranet\",\"ts\":\"{t}\",\"ok\":true}}\n"
        ));
        t += jiff::SignedDuration::from_mins(1);
    }
    std::fs::write(path, out).expect("write jsonl");
    midnight
}

async fn get(url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut req = attest_tests::client()
        .get(url)
        .timeout(Duration::from_secs(60));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

fn chromium(profile: &Path, size: &str, extra: &[&str], url: &str) -> Output {
    Command::new(which("chromium").expect("chromium"))
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
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--window-size={size}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_collector_serves_the_status_page_to_the_public_and_to_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let now = wall_now();
    let day = jiff::SignedDuration::from_hours(24);
    let midnight = jiff::Timestamp::from_second(now.as_second().div_euclid(86_400) * 86_400)
        .expect("midnight");
    let maintenance = (midnight - day * 20, midnight - day * 19);
    let cfg = write_config(dir.path(), port, maintenance);
    let jsonl = dir.path().join("history.jsonl");
    write_measurements(&jsonl, now);
    let out = Command::new(bin("attest-collector"))
        .args([
            "import",
            "--config",
            &cfg,
            "--input",
            &jsonl.display().to_string(),
        ])
        .env("ATTEST_LOG", "warn")
        .output()
        .expect("import");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let _collector = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &cfg],
        dir.path(),
    );
    let base = format!("http://127.0.0.1:{port}");
    // Ready, with the history's months computed (the current month comes first, the
    // earlier ones in the same pass right after).
    let (_, page) = wait_for(
        "the status page with its history",
        Duration::from_secs(120),
        || {
            let url = format!("{base}/status");
            async move {
                get(&url, None).await.filter(|(s, body)| {
                    *s == 200
                        && body.contains("below target")
                        && !body.contains("not computed yet</title>")
                })
            }
        },
    )
    .await;
    assert!(page.contains("webshop"), "{page}");
    assert!(
        !page.contains("intranet"),
        "the public page shows only [status] services"
    );
    assert!(page.contains("Example Org service status"));
    assert!(
        page.contains("class=\"m\"><title>"),
        "the maintenance day is drawn"
    );
    assert!(page.contains("min unknown"), "the silent stretch shows");
    let (status, _) = get(&format!("{base}/status/intranet"), None)
        .await
        .expect("get");
    assert_eq!(status, 404, "not on the public page");
    let (status, _) = get(&format!("{base}/metrics"), None).await.expect("get");
    assert_eq!(status, 401, "everything else stays protected");
    let (status, full) = get(&format!("{base}/status"), Some(READER))
        .await
        .expect("get");
    assert_eq!(status, 200);
    assert!(
        full.contains("webshop") && full.contains("intranet"),
        "a reader sees every service"
    );
    let (status, _) = get(&format!("{base}/status"), Some("wrong"))
        .await
        .expect("get");
    assert_eq!(status, 401);
    let (status, one) = get(&format!("{base}/status/webshop"), None)
        .await
        .expect("get");
    assert_eq!(status, 200);
    assert!(one.contains("Incidents"), "{one}");

    let Some(_) = which("chromium") else {
        assert!(
            std::env::var_os("ATTEST_REQUIRE_CHROMIUM").is_none(),
            "chromium not on PATH but ATTEST_REQUIRE_CHROMIUM is set: apt-get install chromium"
        );
        eprintln!("SKIPPED: chromium not on PATH (apt-get install chromium, or run scripts/test)");
        return;
    };
    let url = format!("{base}/status");
    let dom = chromium(
        &dir.path().join("profile-dom"),
        "1280,900",
        &["--dump-dom", "--virtual-time-budget=5000"],
        &url,
    );
    let dom_text = text(&dom.stdout);
    assert!(
        dom_text.contains("webshop"),
        "DOM lacks the service: {}",
        text(&dom.stderr)
    );
    assert!(dom_text.contains("Availability"), "DOM lacks the figures");
    assert!(dom_text.contains("<svg"), "DOM lacks the bars");
    let blank = dir.path().join("blank.png");
    chromium(
        &dir.path().join("profile-blank"),
        "390,800",
        &[&format!("--screenshot={}", blank.display())],
        "about:blank",
    );
    let blank_len = std::fs::metadata(&blank).expect("blank png").len();
    for (name, size) in [
        ("status-desktop.png", "1100,900"),
        ("status-phone.png", "390,1100"),
    ] {
        let shot = dir.path().join(name);
        let out = chromium(
            &dir.path().join(format!("profile-{name}")),
            size,
            &[
                &format!("--screenshot={}", shot.display()),
                "--virtual-time-budget=5000",
            ],
            &format!("{base}/status/webshop"),
        );
        assert!(shot.is_file(), "no screenshot: {}", text(&out.stderr));
        let len = std::fs::metadata(&shot).expect("png").len();
        assert!(
            len > 10 * blank_len,
            "{name} looks blank: {len} bytes vs blank {blank_len}"
        );
        // The PNG's width is the viewport's: nothing forced a wider layout.
        let png = std::fs::read(&shot).expect("png");
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert_eq!(
            width.to_string(),
            size.split(',').next().expect("width"),
            "{name}"
        );
        if let Some(to) = std::env::var_os("ATTEST_SCREENSHOT_DIR") {
            std::fs::copy(&shot, Path::new(&to).join(name)).expect("copy screenshot");
        }
    }
}
