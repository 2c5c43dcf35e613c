//! The report notes API against the real router: `POST` and `GET`
//! `/api/v1/reports/{month}/{service}/notes` — admin authentication before the body,
//! validation naming the field, the note stored under the admin's name, and that a refused
//! note changes nothing.

mod support;

use serde_json::{Value, json};
use support::{Collector, config};

const TOML: &str = r#"
[server]
admin_token = "admin-secret"

[[admin]]
name = "alice"
token = "alice-secret"

[[reader]]
name = "auditor"
token = "reader-secret"

[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
"#;

const NOTES: &str = "/api/v1/reports/2026-09/web/notes";

struct Api {
    c: Collector,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            c: Collector::start(config(TOML)).await,
            http: support::client(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.c.url(path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body.to_string()))
            .await
    }

    async fn list(&self, path: &str) -> Value {
        let (s, v) = self
            .call(reqwest::Method::GET, path, Some("reader-secret"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

fn note() -> Value {
    json!({
        "cause": "connection pool exhausted after the 3 Sept deploy",
        "action": "pool size raised; load test added to the release checklist",
        "owner": "db team",
        "due": "2026-10-15"
    })
}

#[tokio::test]
async fn a_note_is_stored_under_the_admins_name_and_listed() {
    let api = Api::start().await;
    let (s, v) = api.post(NOTES, Some("alice-secret"), note()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["written_by"], "alice");
    assert_eq!(v["due"], "2026-10-15");
    assert_eq!(v["month"], "2026-09");
    assert_eq!(v["service"], "web");
    let (s, v2) = api
        .post(
            NOTES,
            Some("admin-secret"),
            json!({"cause": "probe agent moved", "action": "none needed"}),
        )
        .await;
    assert_eq!(s, 201, "{v2}");
    assert_eq!(
        (v2["owner"].clone(), v2["due"].clone()),
        (Value::Null, Value::Null)
    );

    let listed = api.list(NOTES).await;
    assert_eq!(listed, json!([v, v2]), "in the order written, as answered");
    assert_eq!(
        api.list("/api/v1/reports/2026-10/web/notes").await,
        json!([]),
        "another month's notes are its own"
    );
}

#[tokio::test]
async fn admin_token_is_required_before_the_body() {
    let api = Api::start().await;
    assert_eq!(api.post(NOTES, None, note()).await.0, 401);
    assert_eq!(api.post(NOTES, Some("wrong"), note()).await.0, 403);
    // A reader may list notes but never write one.
    assert_eq!(api.post(NOTES, Some("reader-secret"), note()).await.0, 403);
    // Refused on the token even when the body is not JSON: the body is never read.
    let (s, _) = api
        .call(reqwest::Method::POST, NOTES, None, Some("{not json".into()))
        .await;
    assert_eq!(s, 401);
    assert_eq!(api.list(NOTES).await, json!([]));
}

/// Every refusal answers 400 naming the field, and stores nothing.
#[tokio::test]
async fn a_refused_note_changes_nothing() {
    let api = Api::start().await;
    let tok = Some("admin-secret");
    let with = |field: &str, value: Value| {
        let mut n = note();
        n[field] = value;
        n
    };
    let cases = [
        (NOTES, with("cause", json!("")), "cause"),
        (NOTES, with("action", json!(" ")), "action"),
        (NOTES, with("action", json!("x".repeat(2001))), "action"),
        (NOTES, with("owner", json!("o".repeat(201))), "owner"),
        (NOTES, with("due", json!("15.10.2026")), "due"),
        (NOTES, with("due", json!("2026-02-30")), "due"),
        (NOTES, with("extra", json!(1)), ""),
        ("/api/v1/reports/2026-09/nope/notes", note(), "service"),
        ("/api/v1/reports/2026-9/web/notes", note(), "month"),
    ];
    for (path, body, field) in cases {
        let (s, e) = api.post(path, tok, body).await;
        assert_eq!(s, 400, "{path} {field}: {e}");
        if !field.is_empty() {
            assert_eq!(e["field"].as_str(), Some(field), "{e}");
        }
    }
    let (s, _) = api
        .call(reqwest::Method::POST, NOTES, tok, Some("{not json".into()))
        .await;
    assert_eq!(s, 400);
    assert_eq!(api.list(NOTES).await, json!([]));
    assert!(
        api.c
            .store
            .report_notes("2026-09", None)
            .expect("notes")
            .is_empty(),
        "nothing stored"
    );
    // GET refuses an unknown service or a bad month the same way.
    for path in [
        "/api/v1/reports/2026-09/nope/notes",
        "/api/v1/reports/09-2026/web/notes",
    ] {
        let (s, _) = api
            .call(reqwest::Method::GET, path, Some("reader-secret"), None)
            .await;
        assert_eq!(s, 400, "{path}");
    }
}

/// A service added by a configuration reload takes notes at once.
#[tokio::test]
async fn a_reloaded_service_takes_notes() {
    let api = Api::start().await;
    let path = "/api/v1/reports/2026-09/mail/notes";
    let (s, _) = api.post(path, Some("admin-secret"), note()).await;
    assert_eq!(s, 400, "not configured yet");
    let more = format!(
        "{TOML}\n[[service]]\nname = \"mail\"\nchecks = [\"web\"]\ntarget = \"99%\"\ntime_zone = \"UTC\"\n"
    );
    api.c.app.reload(config(&more));
    let (s, v) = api.post(path, Some("admin-secret"), note()).await;
    assert_eq!(s, 201, "{v}");
}
