//! The hostile-input table: every case an attacker or a careless agent can send, one test per
//! row, each against its own real collector (child process, SQLite, loopback). A row states
//! the request, the expected status and `field`, and checks that the store is unchanged
//! afterwards (no batch, no measurement, no maintenance window) — a refused request leaves no
//! trace. docs/http-api.md ("Hostile input") lists the same rows.

use std::path::PathBuf;
use std::time::Duration;

use attest_collector::store::Store;
use attest_collector::store::sqlite::SqliteStore;
use attest_tests::{Proc, free_port, get, wait_for};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN_A: &str = "token-of-agent-a-0123456789";
const TOKEN_B: &str = "token-of-agent-b-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const INGEST: &str = attest_config::wire::INGEST_PATH;

/// One collector with its own data directory.
struct Rig {
    _dir: tempfile::TempDir,
    _proc: Proc,
    port: u16,
    data_dir: PathBuf,
}

/// `server_extra` is added to `[server]`; `ingest` replaces or adds `[ingest]` keys.
async fn rig_with(server_extra: &str, ingest: &[(&str, &str)]) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let data_dir = dir.path().join("data");
    let mut limits: Vec<(&str, String)> = [
        ("max_body_bytes", "\"64KiB\""),
        ("max_decompressed_bytes", "\"1MiB\""),
        ("max_measurements_per_batch", "5"),
        ("max_batches_per_second", "1"),
        ("max_backfill_age", "\"2d\""),
        ("max_checks_per_agent", "3"),
        ("max_inflight_body_bytes", "\"64KiB\""),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect();
    for (k, v) in ingest {
        limits.retain(|(key, _)| key != k);
        limits.push((k, v.to_string()));
    }
    let ingest_toml: String = limits.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    // Short timeouts by default; a test that needs a stalled upload to hold on longer than a
    // loaded machine takes to send the next request sets its own in `server_extra`.
    let timeouts: String = ["header_read_timeout", "body_read_timeout", "idle_timeout"]
        .iter()
        .filter(|k| !server_extra.contains(*k))
        .map(|k| format!("{k} = \"2s\"\n"))
        .collect();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_token = "{ADMIN}"
{timeouts}{server_extra}

[storage]
data_dir = {data:?}

[ingest]
{ingest_toml}

[[agent]]
id = "a"
token = "{TOKEN_A}"

[[agent]]
id = "b"
token = "{TOKEN_B}"

[[service]]
name = "web"
checks = ["web", "api"]
target = "99.9%"
"#,
        data = data_dir.display().to_string()
    );
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, toml).expect("write config");
    let cfg_s = cfg.display().to_string();
    let proc = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &cfg_s],
        dir.path(),
    );
    wait_for("collector ready", Duration::from_secs(30), || async move {
        get(&format!("http://127.0.0.1:{port}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    Rig {
        _dir: dir,
        _proc: proc,
        port,
        data_dir,
    }
}

async fn rig() -> Rig {
    rig_with("", &[]).await
}

/// A parsed answer of a raw HTTP/1.1 exchange.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends raw bytes and reads the answer until the server closes (requests say
/// `Connection: close`). Bounded: a server that never answers fails the row.
async fn exchange(port: u16, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // The server may answer (and close) before the whole body is written: that is allowed.
    let _ = s.write_all(raw).await;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("the collector answers within 20 s")
        .ok();
    parse_answer(&buf)
}

fn parse_answer(buf: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    Answer {
        status,
        head: head.to_string(),
        body,
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn ingest_request(token: Option<&str>, encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    if let Some(e) = encoding {
        h.push(("Content-Encoding", e));
    }
    request("POST", INGEST, &h, body)
}

fn now_minus(mins: i64) -> Timestamp {
    attest_tests::wall_now()
        .checked_sub(SignedDuration::from_mins(mins))
        .expect("instant")
}

fn m(check: &str, ts: Timestamp) -> Value {
    json!({"check": check, "ts": ts.to_string(), "ok": true})
}

fn batch(agent: &str, seq: u64, measurements: Vec<Value>) -> Value {
    json!({"version": 1, "agent": agent, "seq": seq, "sent_at": attest_tests::wall_now().to_string(), "measurements": measurements})
}

fn good_batch(seq: u64) -> Value {
    batch("a", seq, vec![m("web", now_minus(1))])
}

/// A batch with one field replaced by `value` (JSON pointer `at`).
fn with(mut b: Value, at: &str, value: Value) -> Vec<u8> {
    *b.pointer_mut(at).unwrap_or_else(|| panic!("no {at}")) = value;
    serde_json::to_vec(&b).expect("json")
}

async fn post_a(r: &Rig, body: &[u8]) -> Answer {
    exchange(r.port, &ingest_request(Some(TOKEN_A), None, body)).await
}

/// The row's verdict: status, the error body's `field`, and a store without any trace.
fn expect(r: &Rig, a: &Answer, status: u16, field: Option<&str>) {
    assert_eq!(a.status, status, "answer: {a:?}");
    assert!(
        a.body
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.is_empty()),
        "refusals carry an error text: {a:?}"
    );
    assert_eq!(
        a.body.get("field").and_then(Value::as_str),
        field,
        "field of {a:?}"
    );
    store_unchanged(r);
}

fn store_unchanged(r: &Rig) {
    let store = SqliteStore::open(&r.data_dir).expect("open store");
    let c = store.counts().expect("counts");
    assert_eq!((c.batches, c.measurements), (0, 0), "nothing stored");
    assert!(
        store.agents().expect("agents").is_empty(),
        "no batch recorded"
    );
    assert!(
        store
            .list_maintenance(None)
            .expect("maintenance")
            .is_empty(),
        "no maintenance window"
    );
}

// ------------------------------------------------------------------ authentication

#[tokio::test]
async fn auth_missing_token_is_401() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let a = exchange(r.port, &ingest_request(None, None, &body)).await;
    expect(&r, &a, 401, None);
}

#[tokio::test]
async fn auth_unknown_token_is_401() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let a = exchange(r.port, &ingest_request(Some("not-a-token"), None, &body)).await;
    expect(&r, &a, 401, None);
}

#[tokio::test]
async fn auth_basic_scheme_is_401() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let raw = request(
        "POST",
        INGEST,
        &[("Authorization", &format!("Basic {TOKEN_A}"))],
        &body,
    );
    expect(&r, &exchange(r.port, &raw).await, 401, None);
}

#[tokio::test]
async fn auth_token_prefix_is_401() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let a = exchange(r.port, &ingest_request(Some(&TOKEN_A[..10]), None, &body)).await;
    expect(&r, &a, 401, None);
}

#[tokio::test]
async fn auth_token_of_another_agent_is_403_agent() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let a = exchange(r.port, &ingest_request(Some(TOKEN_B), None, &body)).await;
    expect(&r, &a, 403, Some("agent"));
}

#[tokio::test]
async fn auth_wrong_token_with_a_large_body_is_401() {
    let r = rig().await;
    let body = vec![b' '; 60 << 10];
    let a = exchange(r.port, &ingest_request(Some("wrong"), None, &body)).await;
    expect(&r, &a, 401, None);
}

// ------------------------------------------------------------------ sizes and encodings

#[tokio::test]
async fn size_body_over_max_body_bytes_is_413() {
    let r = rig().await;
    let body = vec![b' '; 65 << 10];
    expect(&r, &post_a(&r, &body).await, 413, None);
}

#[tokio::test]
async fn size_zstd_bomb_is_413() {
    let r = rig().await;
    let bomb = zstd::bulk::compress(&vec![b' '; 8 << 20], 19).expect("compress");
    assert!(bomb.len() < 64 << 10);
    let a = exchange(r.port, &ingest_request(Some(TOKEN_A), Some("zstd"), &bomb)).await;
    expect(&r, &a, 413, None);
}

#[tokio::test]
async fn size_too_many_measurements_is_413_measurements() {
    let r = rig().await;
    let ms = (0..6).map(|i| m("web", now_minus(i + 1))).collect();
    let body = serde_json::to_vec(&batch("a", 1, ms)).unwrap();
    expect(&r, &post_a(&r, &body).await, 413, Some("measurements"));
}

#[tokio::test]
async fn size_too_many_gaps_is_413_gaps() {
    let r = rig().await;
    let g = json!({"check": "web", "from": now_minus(5).to_string(), "to": now_minus(4).to_string(), "count": 1});
    let body = with(good_batch(1), "/measurements", json!([]));
    let mut b: Value = serde_json::from_slice(&body).unwrap();
    b["gaps"] = json!(vec![g; 6]);
    let body = serde_json::to_vec(&b).unwrap();
    expect(&r, &post_a(&r, &body).await, 413, Some("gaps"));
}

#[tokio::test]
async fn encoding_brotli_is_415() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let a = exchange(r.port, &ingest_request(Some(TOKEN_A), Some("br"), &body)).await;
    expect(&r, &a, 415, None);
}

#[tokio::test]
async fn encoding_zstd_header_on_plain_json_is_400() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let a = exchange(r.port, &ingest_request(Some(TOKEN_A), Some("zstd"), &body)).await;
    expect(&r, &a, 400, None);
}

#[tokio::test]
async fn encoding_invalid_utf8_is_400() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(1)).unwrap();
    let mut body = String::from_utf8(body)
        .unwrap()
        .replace("web", "w\u{fffd}b")
        .into_bytes();
    let at = body
        .windows(3)
        .position(|w| w == "\u{fffd}".as_bytes())
        .unwrap();
    body.splice(at..at + 3, [0xff, 0xfe, 0xfd]);
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].check"),
    );
}

// ------------------------------------------------------------------ JSON shapes

#[tokio::test]
async fn json_empty_body_is_400() {
    let r = rig().await;
    expect(&r, &post_a(&r, b"").await, 400, None);
}

#[tokio::test]
async fn json_array_is_400() {
    let r = rig().await;
    expect(&r, &post_a(&r, b"[1,2,3]").await, 400, None);
}

#[tokio::test]
async fn json_deep_nesting_is_400() {
    let r = rig().await;
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    expect(&r, &post_a(&r, deep.as_bytes()).await, 400, None);
}

#[tokio::test]
async fn json_missing_version_is_400_version() {
    let r = rig().await;
    let mut b = good_batch(1);
    b.as_object_mut().unwrap().remove("version");
    let body = serde_json::to_vec(&b).unwrap();
    expect(&r, &post_a(&r, &body).await, 400, Some("version"));
}

#[tokio::test]
async fn json_unknown_version_is_400_version() {
    let r = rig().await;
    // Versions 1 (unsigned) and 2 (signed) are known; 3 is not.
    let body = with(good_batch(1), "/version", json!(3));
    expect(&r, &post_a(&r, &body).await, 400, Some("version"));
}

#[tokio::test]
async fn json_unknown_field_is_400() {
    let r = rig().await;
    let body = with(good_batch(1), "/measurements/0/ok", json!(true));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("\"ok\":true", "\"ok\":true,\"colour\":\"red\"");
    expect(
        &r,
        &post_a(&r, body.as_bytes()).await,
        400,
        Some("measurements[0].colour"),
    );
}

#[tokio::test]
async fn json_wrong_type_is_400_naming_it() {
    let r = rig().await;
    let body = with(good_batch(1), "/measurements/0/ok", json!("yes"));
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].ok"),
    );
}

#[tokio::test]
async fn json_duplicate_key_is_400() {
    let r = rig().await;
    let body = serde_json::to_string(&good_batch(1)).unwrap().replacen(
        "\"seq\":1",
        "\"seq\":1,\"seq\":2",
        1,
    );
    expect(&r, &post_a(&r, body.as_bytes()).await, 400, None);
}

// ------------------------------------------------------------------ numbers

#[tokio::test]
async fn number_seq_zero_is_400_seq() {
    let r = rig().await;
    let body = with(good_batch(1), "/seq", json!(0));
    expect(&r, &post_a(&r, &body).await, 400, Some("seq"));
}

#[tokio::test]
async fn number_seq_in_import_range_is_400_seq() {
    let r = rig().await;
    let body = with(good_batch(1), "/seq", json!(1u64 << 62));
    expect(&r, &post_a(&r, &body).await, 400, Some("seq"));
}

#[tokio::test]
async fn number_seq_negative_is_400_seq() {
    let r = rig().await;
    let body = with(good_batch(1), "/seq", json!(-1));
    expect(&r, &post_a(&r, &body).await, 400, Some("seq"));
}

#[tokio::test]
async fn number_seq_huge_float_is_400_seq() {
    let r = rig().await;
    let body = String::from_utf8(serde_json::to_vec(&good_batch(1)).unwrap())
        .unwrap()
        .replace("\"seq\":1", "\"seq\":1e400");
    expect(&r, &post_a(&r, body.as_bytes()).await, 400, Some("seq"));
}

#[tokio::test]
async fn number_negative_duration_is_400() {
    let r = rig().await;
    let mut b = good_batch(1);
    b["measurements"][0]["duration_seconds"] = json!(-1.0);
    let body = serde_json::to_vec(&b).unwrap();
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].duration_seconds"),
    );
}

#[tokio::test]
async fn number_negative_phase_is_400() {
    let r = rig().await;
    let mut b = good_batch(1);
    b["measurements"][0]["phases"] = json!({"connect": -0.5});
    let body = serde_json::to_vec(&b).unwrap();
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].phases"),
    );
}

// ------------------------------------------------------------------ strings and ids

#[tokio::test]
async fn id_path_traversal_check_is_400_check() {
    let r = rig().await;
    let body = with(
        good_batch(1),
        "/measurements/0/check",
        json!("../../etc/passwd"),
    );
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].check"),
    );
}

#[tokio::test]
async fn id_control_character_check_is_400_check() {
    let r = rig().await;
    let body = with(
        good_batch(1),
        "/measurements/0/check",
        json!("web\u{1b}[2J"),
    );
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].check"),
    );
}

#[tokio::test]
async fn id_too_long_check_is_400_check() {
    let r = rig().await;
    let body = with(
        good_batch(1),
        "/measurements/0/check",
        json!("c".repeat(129)),
    );
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].check"),
    );
}

#[tokio::test]
async fn id_gap_check_is_checked_too() {
    let r = rig().await;
    let mut b = good_batch(1);
    b["gaps"] = json!([{"check": "a//b", "from": now_minus(5).to_string(), "to": now_minus(4).to_string(), "count": 1}]);
    let body = serde_json::to_vec(&b).unwrap();
    expect(&r, &post_a(&r, &body).await, 400, Some("gaps[0].check"));
}

#[tokio::test]
async fn string_error_text_over_1024_bytes_is_400() {
    let r = rig().await;
    let mut b = good_batch(1);
    b["measurements"][0]["ok"] = json!(false);
    b["measurements"][0]["error"] = json!("x".repeat(1025));
    let body = serde_json::to_vec(&b).unwrap();
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].error"),
    );
}

#[tokio::test]
async fn string_label_value_over_1024_bytes_is_400() {
    // A 60 KiB label value (the body limit here is 64 KiB); before the limit, even a 4 MiB
    // one was stored.
    let r = rig().await;
    let mut b = good_batch(1);
    b["measurements"][0]["labels"] = json!({"address": "x".repeat(60 << 10)});
    let body = serde_json::to_vec(&b).unwrap();
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].labels.address"),
    );
}

// ------------------------------------------------------------------ time

#[tokio::test]
async fn time_future_measurement_is_400_ts() {
    let r = rig().await;
    let body = with(
        good_batch(1),
        "/measurements/0/ts",
        json!("2099-01-01T00:00:00Z"),
    );
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].ts"),
    );
}

#[tokio::test]
async fn time_measurement_beyond_backfill_is_400_ts() {
    let r = rig().await;
    let old = now_minus(3 * 24 * 60);
    let body = with(good_batch(1), "/measurements/0/ts", json!(old.to_string()));
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].ts"),
    );
}

#[tokio::test]
async fn time_unparsable_ts_is_400_ts() {
    let r = rig().await;
    let body = with(good_batch(1), "/measurements/0/ts", json!("yesterday"));
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].ts"),
    );
}

fn gap_batch(from: &str, to: &str) -> Vec<u8> {
    let mut b = good_batch(1);
    b["gaps"] = json!([{"check": "web", "from": from, "to": to, "count": 1}]);
    serde_json::to_vec(&b).unwrap()
}

#[tokio::test]
async fn time_gap_across_a_century_is_400_gaps_from() {
    let r = rig().await;
    let body = gap_batch("2000-01-01T00:00:00Z", "2099-12-31T00:00:00Z");
    expect(&r, &post_a(&r, &body).await, 400, Some("gaps[0].from"));
}

#[tokio::test]
async fn time_gap_to_year_9999_is_400_not_503() {
    let r = rig().await;
    let body = gap_batch(&now_minus(5).to_string(), "9999-01-01T00:00:00Z");
    expect(&r, &post_a(&r, &body).await, 400, Some("gaps[0].to"));
}

#[tokio::test]
async fn time_gap_from_year_1500_is_400_not_503() {
    let r = rig().await;
    let body = gap_batch("1500-01-01T00:00:00Z", &now_minus(5).to_string());
    expect(&r, &post_a(&r, &body).await, 400, Some("gaps[0].from"));
}

#[tokio::test]
async fn time_gap_ending_before_it_starts_is_400_to() {
    let r = rig().await;
    let body = gap_batch(&now_minus(4).to_string(), &now_minus(5).to_string());
    expect(&r, &post_a(&r, &body).await, 400, Some("gaps[0].to"));
}

// ------------------------------------------------------------------ what one token may write

#[tokio::test]
async fn checks_beyond_the_per_agent_cap_are_400() {
    let r = rig().await;
    let ms = ["c1", "c2", "c3", "c4"]
        .iter()
        .map(|c| m(c, now_minus(1)))
        .collect();
    let body = serde_json::to_vec(&batch("a", 1, ms)).unwrap();
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[3].check"),
    );
    let metrics = get(&format!("http://127.0.0.1:{}/metrics", r.port))
        .await
        .unwrap()
        .1;
    assert_eq!(
        attest_tests::sample(
            &metrics,
            "attest_ingest_rejected_batches_total",
            &[("result", "checks")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn checks_known_refuses_an_unlisted_check() {
    let r = rig_with("", &[("checks", "\"known\"")]).await;
    let body = with(good_batch(1), "/measurements/0/check", json!("invented"));
    expect(
        &r,
        &post_a(&r, &body).await,
        400,
        Some("measurements[0].check"),
    );
}

// ------------------------------------------------------------------ replay and rate

#[tokio::test]
async fn replay_of_an_acked_batch_is_a_duplicate_and_stores_nothing_more() {
    let r = rig().await;
    let body = serde_json::to_vec(&good_batch(7)).unwrap();
    let first = post_a(&r, &body).await;
    assert_eq!(first.status, 200, "{first:?}");
    let store = SqliteStore::open(&r.data_dir).unwrap();
    let before = store.counts().unwrap();
    let again = post_a(&r, &body).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["duplicate"], json!(true));
    assert_eq!(store.counts().unwrap(), before, "the replay stored nothing");
}

#[tokio::test]
async fn rate_beyond_the_bucket_is_429_with_retry_after() {
    let r = rig().await;
    // Rate 1/s, burst 2: the first two are admitted (and refused later for their content, so
    // the store stays empty); the third is over the rate.
    let body = with(good_batch(1), "/version", json!(2));
    for _ in 0..2 {
        assert_eq!(post_a(&r, &body).await.status, 400);
    }
    let a = post_a(&r, &body).await;
    expect(&r, &a, 429, None);
    assert!(a.header("retry-after").is_some(), "{a:?}");
}

// ------------------------------------------------------------------ maintenance API

fn window(start: &str, end: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"service": "web", "start": start, "end": end, "reason": "CHG-1"}))
        .unwrap()
}

async fn post_window(r: &Rig, token: Option<&str>, body: &[u8]) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    exchange(r.port, &request("POST", "/api/v1/maintenance", &h, body)).await
}

#[tokio::test]
async fn maintenance_in_year_9999_is_400_end_not_503() {
    let r = rig().await;
    let body = window("2026-09-03T10:00:00Z", "9999-01-01T00:00:00Z");
    expect(
        &r,
        &post_window(&r, Some(ADMIN), &body).await,
        400,
        Some("end"),
    );
}

#[tokio::test]
async fn maintenance_in_year_1000_is_400_start_not_503() {
    let r = rig().await;
    let body = window("1000-01-01T00:00:00Z", "2026-09-03T10:00:00Z");
    expect(
        &r,
        &post_window(&r, Some(ADMIN), &body).await,
        400,
        Some("start"),
    );
}

#[tokio::test]
async fn maintenance_reason_of_10_mb_is_413() {
    let r = rig().await;
    let body = serde_json::to_vec(&json!({"service": "web", "start": "2026-09-03T10:00:00Z",
        "end": "2026-09-03T11:00:00Z", "reason": "x".repeat(10 << 20)}))
    .unwrap();
    expect(&r, &post_window(&r, Some(ADMIN), &body).await, 413, None);
}

#[tokio::test]
async fn maintenance_without_token_is_401() {
    let r = rig().await;
    let body = window("2026-09-03T10:00:00Z", "2026-09-03T11:00:00Z");
    expect(&r, &post_window(&r, None, &body).await, 401, None);
}

#[tokio::test]
async fn maintenance_with_an_agent_token_is_403() {
    let r = rig().await;
    let body = window("2026-09-03T10:00:00Z", "2026-09-03T11:00:00Z");
    expect(&r, &post_window(&r, Some(TOKEN_A), &body).await, 403, None);
}

// ------------------------------------------------------------------ HTTP layer

/// Headers of a POST declaring `length` body bytes, of which none are sent.
fn headers_only(path: &str, token: &str, length: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn http_wrong_token_is_refused_before_the_body_arrives() {
    let r = rig().await;
    // The body never comes: the answer must not wait for it (the exchange would time out).
    let a = exchange(r.port, &headers_only(INGEST, "wrong", 60 << 10)).await;
    expect(&r, &a, 401, None);
}

#[tokio::test]
async fn http_declared_length_over_the_limit_is_413_before_the_body() {
    let r = rig().await;
    let a = exchange(r.port, &headers_only(INGEST, TOKEN_A, 1 << 30)).await;
    expect(&r, &a, 413, None);
}

#[tokio::test]
async fn http_stalled_body_is_408_after_body_read_timeout() {
    let r = rig().await;
    let mut raw = headers_only(INGEST, TOKEN_A, 1000);
    raw.extend_from_slice(b"{\"version\":1,");
    let a = exchange(r.port, &raw).await;
    expect(&r, &a, 408, None);
    assert_eq!(rejected(&r, "slow_body").await, Some(1.0));
}

#[tokio::test]
async fn http_stalled_body_outlasting_idle_timeout_is_still_408() {
    // A request in its handler is not idle: body_read_timeout, not idle_timeout, ends a
    // stalled upload, with its 408 (the idle watchdog used to cut it without an answer).
    let r = rig_with("idle_timeout = \"1s\"\nbody_read_timeout = \"3s\"", &[]).await;
    let mut raw = headers_only(INGEST, TOKEN_A, 1000);
    raw.extend_from_slice(b"{\"version\":1,");
    let a = exchange(r.port, &raw).await;
    expect(&r, &a, 408, None);
    assert_eq!(rejected(&r, "slow_body").await, Some(1.0));
}

/// `attest_ingest_rejected_batches_total{result}` of the rig's collector.
async fn rejected(r: &Rig, result: &str) -> Option<f64> {
    let metrics = get(&format!("http://127.0.0.1:{}/metrics", r.port))
        .await?
        .1;
    attest_tests::sample(
        &metrics,
        "attest_ingest_rejected_batches_total",
        &[("result", result)],
    )
}

#[tokio::test]
async fn http_admin_route_refuses_a_wrong_token_before_the_body() {
    let r = rig().await;
    let a = exchange(
        r.port,
        &headers_only("/api/v1/maintenance", "wrong", 10 << 20),
    )
    .await;
    expect(&r, &a, 403, None);
}

#[tokio::test]
async fn http_connection_without_a_request_is_closed_by_header_read_timeout() {
    let r = rig().await;
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let mut buf = Vec::new();
    // header_read_timeout is 2 s; the bound leaves room for a slow machine.
    let closed = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the collector closes a silent connection");
    store_unchanged(&r);
}

#[tokio::test]
async fn http_in_flight_body_bytes_beyond_the_cap_are_503() {
    // The stalled upload must hold its budget until the next request arrives, however
    // loaded the machine: a body_read_timeout far beyond the waits below (idle_timeout
    // stays 2 s: a request in its handler is not idle).
    let r = rig_with(
        "body_read_timeout = \"5m\"",
        &[("max_batches_per_second", "100")],
    )
    .await;
    // A valid agent starts a 64 KiB upload and stalls: it holds the whole in-flight budget
    // until body_read_timeout.
    let holder = hold_inflight_budget(r.port, 64 << 10).await;
    // The next upload (content refused if it ever got through) finds no room.
    let body = with(good_batch(1), "/version", json!(2));
    let refused = exchange(r.port, &ingest_request(Some(TOKEN_B), None, &body)).await;
    expect(&r, &refused, 503, None);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(rejected(&r, "busy").await, Some(1.0));
    drop(holder);
}

/// Starts agent a's upload of `length` body bytes and sends none of them; returns once the
/// collector holds the in-flight bytes for it. The upload asks `Expect: 100-continue`, which
/// the collector answers when the handler starts reading the body, i.e. after it reserved the
/// bytes: only then may the next request come, or it could take the room first and the
/// holder would be the one refused.
async fn hold_inflight_budget(port: u16, length: usize) -> TcpStream {
    let mut holder = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut head = headers_only(INGEST, TOKEN_A, length);
    head.truncate(head.len() - 2);
    head.extend_from_slice(b"Expect: 100-continue\r\n\r\n");
    holder.write_all(&head).await.expect("write headers");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), holder.read(&mut buf))
            .await
            .expect("the collector answers the upload's headers within 20 s")
            .expect("read");
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "the stalled upload is let in: {:?}",
        String::from_utf8_lossy(&got)
    );
    holder
}

#[tokio::test]
async fn http_connections_beyond_max_connections_wait_and_are_counted() {
    // The two silent connections must keep their slots until the third client has queued,
    // however loaded the machine: header and idle timeouts far beyond the wait below.
    let r = rig_with(
        "max_connections = 2\nheader_read_timeout = \"5m\"\nidle_timeout = \"5m\"",
        &[],
    )
    .await;
    let a = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let b = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    // A third client waits in the kernel's queue until a slot frees, then is served.
    let third =
        tokio::spawn(async move { get(&format!("http://127.0.0.1:{}/-/healthy", r.port)).await });
    drop(a);
    let (status, _) = tokio::time::timeout(Duration::from_secs(20), third)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .expect("answer");
    assert_eq!(status, 200);
    drop(b);
    let metrics = get(&format!("http://127.0.0.1:{}/metrics", r.port))
        .await
        .unwrap()
        .1;
    let capped = attest_tests::sample(&metrics, "attest_http_connection_cap_reached_total", &[]);
    assert!(
        capped.is_some_and(|n| n >= 1.0),
        "cap reached counted: {capped:?}"
    );
    assert_eq!(
        attest_tests::sample(&metrics, "attest_http_connections_limit", &[]),
        Some(2.0)
    );
    store_unchanged(&r);
}
