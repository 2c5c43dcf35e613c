//! The HTTP contract of ingest and the probe routes, against the real router and listener over
//! a temporary SQLite store: every status code documented in docs/http-api.md, the JSON error
//! body with `field`, and — for every rejected batch — that nothing was stored.

mod support;

use serde_json::{Value, json};
use support::{Collector, config};

const INGEST: &str = attest_config::wire::INGEST_PATH;

const TOML: &str = r#"
[ingest]
max_body_bytes = "4KiB"
max_decompressed_bytes = "64KiB"
max_measurements_per_batch = 5
max_batches_per_second = 1000
# The batches below are dated September 2026; the backfill horizon has its own tests.
max_backfill_age = "36500d"

[[agent]]
id = "a"
token = "token-a"

[[agent]]
id = "b"
token = "token-b"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
"#;

fn batch(agent: &str, seq: u64, n: usize) -> Value {
    let measurements: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "check": "web",
                "ts": format!("2026-09-03T{:02}:{:02}:00Z", seq % 24, i),
                "ok": i % 2 == 0,
            })
        })
        .collect();
    json!({
        "version": 1,
        "agent": agent,
        "seq": seq,
        "sent_at": attest_collector::clock::Clock::now_utc(&attest_collector::clock::SystemClock).to_string(),
        "measurements": measurements,
    })
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn post(c: &Collector, token: Option<&str>, encoding: Option<&str>, body: Vec<u8>) -> Reply {
    let mut req = support::client()
        .post(c.url(INGEST))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let r = req.send().await.expect("ingest request");
    reply(r).await
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        retry_after,
        body,
    }
}

async fn post_json(c: &Collector, token: Option<&str>, body: &Value) -> Reply {
    post(c, token, None, serde_json::to_vec(body).expect("json")).await
}

/// Posts `body`, expects `status`, and checks the store did not change.
async fn refused(
    c: &Collector,
    token: Option<&str>,
    enc: Option<&str>,
    body: Vec<u8>,
    status: u16,
) -> Value {
    let before = c.counts();
    let r = post(c, token, enc, body).await;
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error body without `error`: {}",
        r.body
    );
    assert_eq!(c.counts(), before, "a rejected batch changed the store");
    r.body
}

#[tokio::test]
async fn accepted_batch_is_acked_and_a_resend_is_a_duplicate() {
    let c = Collector::start(config(TOML)).await;
    let b = batch("a", 1, 3);
    let r = post_json(&c, Some("token-a"), &b).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"version": 1, "acked_seq": 1, "duplicate": false, "stored": 3})
    );
    let counts = c.counts();
    assert_eq!((counts.batches, counts.measurements), (1, 3));

    let r = post_json(&c, Some("token-a"), &b).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"version": 1, "acked_seq": 1, "duplicate": true, "stored": 0})
    );
    assert_eq!(c.counts(), counts, "a resend stored something again");

    // zstd-encoded bodies are accepted the same way.
    let z = zstd::bulk::compress(&serde_json::to_vec(&batch("a", 2, 1)).expect("json"), 3)
        .expect("zstd");
    let r = post(&c, Some("token-a"), Some("zstd"), z).await;
    assert_eq!(
        (r.status, r.body["stored"].as_u64()),
        (200, Some(1)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_bearer_scheme_and_content_codings_match_in_any_case() {
    // RFC 9110: `bearer` is `Bearer`, `ZSTD` is `zstd`.
    let c = Collector::start(config(TOML)).await;
    let json = serde_json::to_vec(&batch("a", 1, 1)).expect("json");
    let z = zstd::bulk::compress(&serde_json::to_vec(&batch("a", 2, 1)).expect("json"), 3)
        .expect("zstd");
    for (seq, auth, enc, body) in [
        (1, "bearer token-a", None, json),
        (2, "BEARER token-a", Some("ZSTD"), z),
    ] {
        let mut req = support::client()
            .post(c.url(INGEST))
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(body);
        if let Some(e) = enc {
            req = req.header("content-encoding", e);
        }
        let r = reply(req.send().await.expect("ingest")).await;
        assert_eq!(r.status, 200, "{auth} {enc:?}: {}", r.body);
        assert_eq!(r.body["acked_seq"], seq);
    }
}

#[tokio::test]
async fn authentication_and_agent_binding() {
    let c = Collector::start(config(TOML)).await;
    let body = serde_json::to_vec(&batch("b", 1, 1)).expect("json");
    refused(&c, None, None, body.clone(), 401).await;
    refused(&c, Some("token-zzz"), None, body.clone(), 401).await;
    let e = refused(&c, Some("token-a"), None, body.clone(), 403).await;
    assert_eq!(e["field"], "agent");
    // The same batch with its own agent's token is fine: the 403 was about the binding.
    let r = post(&c, Some("token-b"), None, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn malformed_batches_are_400_naming_the_field() {
    let c = Collector::start(config(TOML)).await;
    // Versions 1 (unsigned) and 2 (signed) are known; 3 is not; a version 2 batch without
    // evidence is refused naming it.
    let mut v3 = batch("a", 1, 1);
    v3["version"] = json!(3);
    let e = refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&v3).expect("json"),
        400,
    )
    .await;
    assert_eq!(e["field"], "version");
    assert!(e["error"].as_str().is_some_and(|s| s.contains('3')), "{e}");
    let mut v2 = batch("a", 1, 1);
    v2["version"] = json!(2);
    let e = refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&v2).expect("json"),
        400,
    )
    .await;
    assert_eq!(e["field"], "evidence");

    let mut bad_ts = batch("a", 1, 2);
    bad_ts["measurements"][1]["ts"] = json!("yesterday");
    let e = refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&bad_ts).expect("json"),
        400,
    )
    .await;
    assert_eq!(e["field"], "measurements[1].ts");

    let mut bad_duration = batch("a", 1, 2);
    bad_duration["measurements"][0]["duration_seconds"] = json!(-1.0);
    let e = refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&bad_duration).expect("json"),
        400,
    )
    .await;
    assert_eq!(e["field"], "measurements[0].duration_seconds");

    let mut unknown = batch("a", 1, 1);
    unknown["surprise"] = json!(true);
    refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&unknown).expect("json"),
        400,
    )
    .await;

    // Seqs from 2^62 up are reserved for imports.
    let reserved = batch("a", 1 << 62, 1);
    let e = refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&reserved).expect("json"),
        400,
    )
    .await;
    assert_eq!(e["field"], "seq");

    refused(&c, Some("token-a"), None, b"not json".to_vec(), 400).await;
    refused(&c, Some("token-a"), Some("br"), b"{}".to_vec(), 415).await;
}

#[tokio::test]
async fn size_limits_are_413() {
    let c = Collector::start(config(TOML)).await;
    // Over max_body_bytes (4 KiB) on the wire.
    let mut big = batch("a", 1, 1);
    big["measurements"][0]["error"] = json!("x".repeat(5000));
    big["measurements"][0]["ok"] = json!(false);
    refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&big).expect("json"),
        413,
    )
    .await;

    // A zstd bomb: tiny on the wire, 1 MiB once inflated (limit 64 KiB).
    let bomb = zstd::bulk::compress(&vec![b' '; 1 << 20], 19).expect("zstd");
    assert!(bomb.len() < 4096, "bomb must pass the body limit");
    refused(&c, Some("token-a"), Some("zstd"), bomb, 413).await;

    // More measurements than max_measurements_per_batch (5).
    let many = batch("a", 1, 6);
    let e = refused(
        &c,
        Some("token-a"),
        None,
        serde_json::to_vec(&many).expect("json"),
        413,
    )
    .await;
    assert_eq!(e["field"], "measurements");
    // Exactly at the limit is fine.
    let r = post_json(&c, Some("token-a"), &batch("a", 1, 5)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn rate_limit_is_429_with_retry_after() {
    // 0.001 batches/s: a burst of one, then a wait of 1000 s — no timing in the test.
    let c = Collector::start(config(&TOML.replace(
        "max_batches_per_second = 1000",
        "max_batches_per_second = 0.001",
    )))
    .await;
    let r = post_json(&c, Some("token-a"), &batch("a", 1, 1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let before = c.counts();
    let r = post_json(&c, Some("token-a"), &batch("a", 2, 1)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.retry_after.as_deref(), Some("1000"));
    assert_eq!(c.counts(), before);
    // Buckets are per agent.
    let r = post_json(&c, Some("token-b"), &batch("b", 1, 1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn probes_and_unknown_routes() {
    let c = Collector::start(config(TOML)).await;
    let http = support::client();
    let r = http.get(c.url("/-/healthy")).send().await.expect("healthy");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok\n");
    let r = http.get(c.url("/-/ready")).send().await.expect("ready");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ready\n");

    let r = reply(http.get(c.url("/no/such/route")).send().await.expect("404")).await;
    assert_eq!(r.status, 404);
    assert!(r.body["error"].is_string(), "{}", r.body);
    // Wrong method on a known route.
    let r = http.get(c.url(INGEST)).send().await.expect("405");
    assert_eq!(r.status(), 405);

    let r = http.get(c.url("/metrics")).send().await.expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain")),
    );
    let r = http
        .get(c.url("/metrics"))
        .header("accept", "application/openmetrics-text")
        .send()
        .await
        .expect("metrics");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text")),
    );
    assert!(r.text().await.expect("body").ends_with("# EOF\n"));
}

#[tokio::test]
async fn sla_query_errors() {
    let c = Collector::start(config(TOML)).await;
    let http = support::client();
    let get = |q: &str| http.get(c.url(&format!("/api/v1/sla{q}"))).send();
    let r = reply(get("").await.expect("sla")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = reply(get("?month=2026-13").await.expect("sla")).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("month")));
    let r = reply(get("?month=2026-09&at=tomorrow").await.expect("sla")).await;
    assert_eq!((r.status, r.body["field"].as_str()), (400, Some("at")));
    let r = reply(get("?month=2026-09&service=nope").await.expect("sla")).await;
    assert_eq!((r.status, r.body["field"].as_str()), (404, Some("service")));
    let r = reply(
        get("?month=2026-09&at=2026-10-01T00:00:00Z")
            .await
            .expect("sla"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["service"], "web");
    // Nothing measured yet: no figure is made up.
    assert_eq!(r.body[0]["availability"], Value::Null, "{}", r.body);
    assert_eq!(r.body[0]["compliant"], Value::Null, "{}", r.body);
}
