//! Cross-check against Prometheus blackbox_exporter: the same loopback targets are
//! probed by attest's probes and by a real blackbox_exporter process, and both must
//! agree on pass/fail for every target. Blackbox is the reference users compare us
//! with, so a disagreement is a bug in one of the two and must be explained.
//!
//! Invariants: everything listens on 127.0.0.1; every wait is bounded (exporter start-up,
//! each `/probe` query, each attest probe). Without the exporter binary (Debian package
//! `prometheus-blackbox-exporter`) the test prints a loud reason and passes, unless
//! `ATTEST_REQUIRE_BLACKBOX=1` is set, which turns the absence into a failure.

mod probe_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use attest_agent::probe::build;
use attest_config::{Check, CheckSpec, HttpCheck, IpFamily, TcpCheck, TcpStep, TlsClientOptions};
use probe_support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Names the Debian package and upstream release use for the binary.
const BINARY_NAMES: &[&str] = &["prometheus-blackbox-exporter", "blackbox_exporter"];
/// Upper bound for the exporter to answer `/-/healthy` after it was started.
const STARTUP_POLLS: u32 = 100;
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bound for one `/probe` query (the modules time out at 5 s themselves).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts to find a free port for the exporter (another process may take it first).
const START_ATTEMPTS: u32 = 3;

const BANNER_REGEX: &str = "^SSH-2\\.0-";
/// Timeout of the `tcp_banner_short` module and of attest's probe for the silent peer.
const SHORT_TIMEOUT_SECS: u64 = 1;
const PROBE_TIMEOUT_SECS: u64 = 5;

/// Modules mirror attest's defaults: 2xx accepted, redirects followed, IPv4 loopback.
fn blackbox_config() -> String {
    format!(
        r#"modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  tcp_banner:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "{banner}"
  tcp_ping:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - send: "PING"
        - expect: "^\\+PONG"
  tcp_banner_short:
    prober: tcp
    timeout: {short}s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "{banner}"
"#,
        banner = BANNER_REGEX.replace('\\', "\\\\"),
        short = SHORT_TIMEOUT_SECS,
    )
}

/// A running blackbox_exporter, killed when dropped so a failing test leaves nothing behind.
struct Exporter {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Exporter {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ATTEST_BLACKBOX_EXPORTER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| BINARY_NAMES.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr")
}

/// Starts the exporter and waits (bounded) until it answers; retries on a lost port race.
async fn start_exporter(binary: &Path) -> Exporter {
    let mut last_log = String::new();
    for _ in 0..START_ATTEMPTS {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("blackbox.yml");
        std::fs::write(&config, blackbox_config()).expect("write config");
        let log = dir.path().join("exporter.log");
        let log_file = std::fs::File::create(&log).expect("create log");
        let addr = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut exporter = Exporter {
            child,
            addr,
            log,
            _dir: dir,
        };
        if wait_healthy(&mut exporter).await {
            return exporter;
        }
        last_log = exporter.log_text();
    }
    panic!(
        "blackbox_exporter did not become healthy after {START_ATTEMPTS} attempts; last log:\n{last_log}"
    );
}

async fn wait_healthy(exporter: &mut Exporter) -> bool {
    for _ in 0..STARTUP_POLLS {
        if let Ok(Some(_status)) = exporter.child.try_wait() {
            return false;
        }
        if let Ok((200, _)) = http_get(exporter.addr, "/-/healthy").await {
            return true;
        }
        tokio::time::sleep(STARTUP_POLL_INTERVAL).await;
    }
    false
}

/// A one-shot HTTP/1.0-style GET (Connection: close), returning status and body.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        // HTTP/1.0: the server may not answer with chunked transfer coding, so the body
        // is the bytes after the header, whatever size the probe's output reaches.
        let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        parse_response(&String::from_utf8_lossy(&raw))
    };
    tokio::time::timeout(QUERY_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within {QUERY_TIMEOUT:?}"))?
}

fn parse_response(text: &str) -> Result<(u16, String), String> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encodes everything but unreserved characters, for the `target` parameter.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Blackbox's verdict: the `probe_success` gauge of a `/probe` answer.
async fn blackbox_verdict(exporter: &Exporter, module: &str, target: &str) -> bool {
    let path = format!(
        "/probe?module={module}&target={}&debug=false",
        query_escape(target)
    );
    let (status, body) = http_get(exporter.addr, &path)
        .await
        .unwrap_or_else(|e| panic!("blackbox {path}: {e}\nlog:\n{}", exporter.log_text()));
    assert_eq!(status, 200, "blackbox {path} answered {status}: {body}");
    let value = body
        .lines()
        .find_map(|l| l.strip_prefix("probe_success "))
        .unwrap_or_else(|| panic!("no probe_success in blackbox answer to {path}:\n{body}"));
    value.trim() == "1"
}

fn http_spec(url: String) -> CheckSpec {
    CheckSpec::Http(HttpCheck {
        url,
        method: "GET".into(),
        headers: BTreeMap::new(),
        body: None,
        expect_status: vec![],
        body_contains: vec![],
        body_regex: vec![],
        body_not_regex: vec![],
        header_match: BTreeMap::new(),
        follow_redirects: true,
        max_redirects: 10,
        tls: TlsClientOptions::default(),
        ip_family: IpFamily::Ipv4,
        max_body_bytes: 1 << 20,
    })
}

fn tcp_spec(address: String, steps: Vec<TcpStep>) -> CheckSpec {
    CheckSpec::Tcp(TcpCheck {
        address,
        tls: None,
        steps,
        ip_family: IpFamily::Ipv4,
    })
}

/// Attest's verdict for one target, with the error text for the report.
async fn attest_verdict(spec: CheckSpec, timeout_secs: u64) -> (bool, Option<String>) {
    let probe = build(&Check {
        id: "crosscheck".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(timeout_secs),
        spec,
    })
    .expect("check builds");
    let report = probe.probe(deadline_in(timeout_secs)).await;
    (report.ok, report.error)
}

/// One target probed both ways, with the verdict both should reach.
struct Case {
    name: &'static str,
    module: &'static str,
    target: String,
    spec: CheckSpec,
    expect_ok: bool,
    /// Attest's deadline; equals the blackbox module's timeout.
    timeout_secs: u64,
}

fn http_routes(path: &str) -> Option<String> {
    match path {
        "/ok" => Some(response("200 OK", "", "hello attest")),
        "/fail" => Some(response("500 Internal Server Error", "", "boom")),
        "/missing" => Some(response("404 Not Found", "", "nope")),
        "/moved" => Some(response("302 Found", "Location: /ok\r\n", "")),
        _ => Some(response("404 Not Found", "", "")),
    }
}

/// A server that writes `banner` on connect and then closes, like a refusing SMTP/SSH peer.
async fn spawn_banner(banner: &'static str) -> SocketAddr {
    spawn_server(None, move |mut stream| async move {
        let _ = stream.write_all(banner.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await
}

/// A Redis-like inline server: answers `+PONG` to a `PING` line, then closes.
async fn spawn_ping() -> SocketAddr {
    spawn_server(None, |stream| async move {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if reader.read_line(&mut line).await.is_ok() && line.trim_end() == "PING" {
            let _ = reader.get_mut().write_all(b"+PONG\r\n").await;
        }
        let _ = reader.get_mut().shutdown().await;
    })
    .await
}

/// A server that accepts and never speaks: only a timeout ends the probe.
async fn spawn_silent() -> SocketAddr {
    spawn_server(None, |stream| async move {
        let _held_open = stream;
        std::future::pending::<()>().await;
    })
    .await
}

fn ping_steps() -> Vec<TcpStep> {
    vec![
        TcpStep::Send("PING".into()),
        TcpStep::Expect("^\\+PONG".into()),
    ]
}

async fn cases() -> Vec<Case> {
    let web = spawn_http(None, http_routes).await;
    let ssh = spawn_banner("SSH-2.0-OpenSSH_9.2 attest-test\r\n").await;
    let smtp = spawn_banner("220 mail.example ESMTP ready\r\n").await;
    let chatty = spawn_banner("# motd line\r\nSSH-2.0-late banner\r\n").await;
    let ping = spawn_ping().await;
    let silent = spawn_silent().await;
    let closed = closed_port();
    let url = |p: &str| format!("http://{web}{p}");
    let expect = || vec![TcpStep::Expect(BANNER_REGEX.into())];
    let http = |name, path: &str, expect_ok| Case {
        name,
        module: "http_2xx",
        target: url(path),
        spec: http_spec(url(path)),
        expect_ok,
        timeout_secs: PROBE_TIMEOUT_SECS,
    };
    let tcp = |name, module, addr: SocketAddr, steps, expect_ok, timeout_secs| Case {
        name,
        module,
        target: addr.to_string(),
        spec: tcp_spec(addr.to_string(), steps),
        expect_ok,
        timeout_secs,
    };
    let t = PROBE_TIMEOUT_SECS;
    vec![
        http("http 200", "/ok", true),
        http("http 500", "/fail", false),
        http("http 404", "/missing", false),
        http("http 302 -> 200", "/moved", true),
        Case {
            name: "http closed port",
            module: "http_2xx",
            target: format!("http://{closed}/"),
            spec: http_spec(format!("http://{closed}/")),
            expect_ok: false,
            timeout_secs: t,
        },
        tcp("tcp connect open", "tcp_connect", web, vec![], true, t),
        tcp(
            "tcp connect closed",
            "tcp_connect",
            closed,
            vec![],
            false,
            t,
        ),
        tcp("tcp banner matches", "tcp_banner", ssh, expect(), true, t),
        tcp("tcp banner wrong", "tcp_banner", smtp, expect(), false, t),
        tcp(
            "tcp banner 2nd line",
            "tcp_banner",
            chatty,
            expect(),
            true,
            t,
        ),
        tcp(
            "tcp banner closed",
            "tcp_banner",
            closed,
            expect(),
            false,
            t,
        ),
        tcp("tcp send/expect", "tcp_ping", ping, ping_steps(), true, t),
        tcp(
            "tcp send/expect wrong",
            "tcp_ping",
            smtp,
            ping_steps(),
            false,
            t,
        ),
        tcp(
            "tcp banner silent peer",
            "tcp_banner_short",
            silent,
            expect(),
            false,
            SHORT_TIMEOUT_SECS,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attest_and_blackbox_agree_on_every_target() {
    let Some(binary) = find_binary() else {
        let msg = "blackbox_exporter not found on PATH (install the Debian package \
                   `prometheus-blackbox-exporter`, or set ATTEST_BLACKBOX_EXPORTER)";
        assert!(
            std::env::var_os("ATTEST_REQUIRE_BLACKBOX").is_none(),
            "{msg}; ATTEST_REQUIRE_BLACKBOX is set"
        );
        eprintln!("\n!!!!!!!! SKIPPED blackbox cross-check: {msg} !!!!!!!!\n");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = start_exporter(&binary).await;
    let mut problems = Vec::new();
    for case in cases().await {
        let bb = blackbox_verdict(&exporter, case.module, &case.target).await;
        let (ours, error) = attest_verdict(case.spec, case.timeout_secs).await;
        eprintln!(
            "{:<26} blackbox={:<5} attest={:<5} expected={:<5} {}",
            case.name,
            bb,
            ours,
            case.expect_ok,
            error.as_deref().unwrap_or("")
        );
        if bb != ours || ours != case.expect_ok {
            problems.push(format!(
                "{} ({} {}): blackbox={bb} attest={ours} expected={} attest error={error:?}",
                case.name, case.module, case.target, case.expect_ok
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "verdicts differ:\n{}",
        problems.join("\n")
    );
}

#[test]
fn query_escape_keeps_unreserved_and_escapes_the_rest() {
    assert_eq!(
        query_escape("http://127.0.0.1:80/a?b=c"),
        "http%3A%2F%2F127.0.0.1%3A80%2Fa%3Fb%3Dc"
    );
}

#[test]
fn parse_response_reads_status_and_body() {
    assert_eq!(
        parse_response("HTTP/1.1 200 OK\r\nX: y\r\n\r\nprobe_success 1\n"),
        Ok((200, "probe_success 1\n".to_string()))
    );
    assert!(parse_response("garbage").is_err());
}
