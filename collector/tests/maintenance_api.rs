//! The maintenance API against the real router: admin authentication (named `[[admin]]`
//! tokens and `[server] admin_token`), validation, the `max_retroactive` bound, and the
//! effect that matters — a registered window turns the bad minutes it covers into ineligible
//! ones in `/api/v1/sla`, and cancelling it turns them back.

mod support;

use serde_json::{Value, json};
use support::{Collector, config};

/// `max_retroactive` is wide here: these tests register windows over September 2026 from
/// whatever day they run; the bound itself is tested with windows relative to now.
const TOML: &str = r#"
[server]
admin_token = "admin-secret"

[maintenance]
max_retroactive = "3650d"

[[admin]]
name = "alice"
token = "alice-secret"

[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
time_zone = "UTC"
"#;

const SLA: &str = "/api/v1/sla?month=2026-09&service=web&at=2026-10-01T00:00:00Z";

/// Every minute of 3 September 2026 measured; 10:00–10:29 failing (30 bad minutes).
fn load_outage_day(c: &Collector, cfg: &attest_config::CollectorConfig) {
    let mut jsonl = String::new();
    for minute in 0..1440 {
        let (h, m) = (minute / 60, minute % 60);
        let ok = !(h == 10 && m < 30);
        jsonl.push_str(&format!(
            "{{\"agent\":\"a\",\"check\":\"web\",\"ts\":\"2026-09-03T{h:02}:{m:02}:00Z\",\"ok\":{ok}}}\n"
        ));
    }
    let summary = attest_collector::ingest::import::import(
        cfg,
        c.store.as_ref(),
        c.app.clock.as_ref(),
        jsonl.as_bytes(),
        "day.jsonl",
    )
    .expect("import");
    assert_eq!(summary.stored, 1440);
}

struct Api {
    c: Collector,
    http: reqwest::Client,
}

impl Api {
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

    async fn post(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/api/v1/maintenance",
            token,
            Some(body.to_string()),
        )
        .await
    }

    async fn sla(&self) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, SLA, None, None).await;
        assert_eq!(status, 200, "{body}");
        body[0].clone()
    }
}

fn window(start: &str, end: &str) -> Value {
    json!({"service": "web", "start": start, "end": end, "reason": "CHG-42 database failover"})
}

#[tokio::test]
async fn admin_token_is_required() {
    let api = Api {
        c: Collector::start(config(TOML)).await,
        http: support::client(),
    };
    let w = window("2026-09-03T10:00:00Z", "2026-09-03T10:20:00Z");
    assert_eq!(api.post(None, w.clone()).await.0, 401);
    assert_eq!(api.post(Some("wrong"), w.clone()).await.0, 403);
    let (s, _) = api
        .call(reqwest::Method::DELETE, "/api/v1/maintenance/1", None, None)
        .await;
    assert_eq!(s, 401);
    let (s, _) = api
        .call(
            reqwest::Method::DELETE,
            "/api/v1/maintenance/1",
            Some("wrong"),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, list) = api
        .call(reqwest::Method::GET, "/api/v1/maintenance", None, None)
        .await;
    assert_eq!((s, list), (200, json!([])), "nothing was registered");

    // The scheme matches in any case (RFC 9110): `bearer` is `Bearer`.
    let r = api
        .http
        .post(api.c.url("/api/v1/maintenance"))
        .header("authorization", "bearer admin-secret")
        .header("content-type", "application/json")
        .body(w.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201, "{:?}", r.text().await);

    // Without [server] admin_token and [[admin]] the admin API is off: 403 whatever the token.
    let toml = TOML
        .replace("admin_token = \"admin-secret\"", "")
        .replace("[[admin]]\nname = \"alice\"\ntoken = \"alice-secret\"", "");
    let off = Api {
        c: Collector::start(config(&toml)).await,
        http: support::client(),
    };
    let (s, e) = off.post(Some("admin-secret"), w).await;
    assert_eq!(s, 403);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("admin_token")),
        "{e}"
    );
}

#[tokio::test]
async fn invalid_windows_are_400() {
    let api = Api {
        c: Collector::start(config(TOML)).await,
        http: support::client(),
    };
    let tok = Some("admin-secret");
    let (s, _) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/maintenance",
            tok,
            Some("{not json".into()),
        )
        .await;
    assert_eq!(s, 400);
    let (s, e) = api
        .post(tok, window("2026-09-03T10:00:00Z", "2026-09-03T10:00:00Z"))
        .await;
    assert_eq!((s, e["field"].as_str()), (400, Some("end")), "{e}");
    let mut other = window("2026-09-03T10:00:00Z", "2026-09-03T11:00:00Z");
    other["service"] = json!("nope");
    let (s, e) = api.post(tok, other).await;
    assert_eq!((s, e["field"].as_str()), (400, Some("service")), "{e}");
    let mut local = window("2026-09-03T10:00:00", "2026-09-03T11:00:00Z");
    local["reason"] = json!("x");
    let (s, e) = api.post(tok, local).await;
    assert_eq!((s, e["field"].as_str()), (400, Some("start")), "{e}");
    let mut no_reason = window("2026-09-03T10:00:00Z", "2026-09-03T11:00:00Z");
    no_reason["reason"] = json!(" ");
    let (s, e) = api.post(tok, no_reason).await;
    assert_eq!((s, e["field"].as_str()), (400, Some("reason")), "{e}");
    let (s, _) = api
        .call(
            reqwest::Method::DELETE,
            "/api/v1/maintenance/abc",
            tok,
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = api
        .call(
            reqwest::Method::DELETE,
            "/api/v1/maintenance/999",
            tok,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (_, list) = api
        .call(reqwest::Method::GET, "/api/v1/maintenance", None, None)
        .await;
    assert_eq!(list, json!([]), "a refused window was stored");
}

#[tokio::test]
async fn a_window_over_an_outage_makes_its_bad_minutes_ineligible() {
    let cfg = config(TOML);
    let api = Api {
        c: Collector::start(cfg.clone()).await,
        http: support::client(),
    };
    load_outage_day(&api.c, &cfg);
    let before = api.sla().await;
    assert_eq!(before["bad_minutes"], 30, "{before}");
    let eligible = before["eligible_minutes"].as_u64().expect("eligible");
    let good = before["good_minutes"].as_u64().expect("good");

    // 10:00–10:20 covers 20 of the 30 bad minutes.
    let (s, created) = api
        .post(
            Some("admin-secret"),
            window("2026-09-03T10:00:00Z", "2026-09-03T10:20:00Z"),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["service"], "web");
    assert_eq!(created["cancelled_at"], Value::Null);
    assert_eq!(created["registered_by"], "admin", "{created}");

    let (s, list) = api
        .call(
            reqwest::Method::GET,
            "/api/v1/maintenance?service=web",
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id);
    assert_eq!(
        list[0]["registered_by"], "admin",
        "the listing names the registering credential: {list}"
    );
    assert!(
        !list.to_string().contains("admin-secret"),
        "the token itself is never shown: {list}"
    );

    let during = api.sla().await;
    assert_eq!(during["bad_minutes"], 10, "{during}");
    assert_eq!(during["good_minutes"].as_u64(), Some(good));
    assert_eq!(during["eligible_minutes"].as_u64(), Some(eligible - 20));

    let (s, cancelled) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/maintenance/{id}"),
            Some("admin-secret"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{cancelled}");
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    assert_eq!(cancelled["registered_by"], "admin", "{cancelled}");
    let after = api.sla().await;
    assert_eq!(after["bad_minutes"], 30, "{after}");
    assert_eq!(after["eligible_minutes"].as_u64(), Some(eligible));
}

/// RFC 3339 of the collector's now + `minutes` (negative: in the past), whole minutes.
fn from_now(c: &Collector, minutes: i64) -> String {
    let now = c.app.clock.now_utc().as_second() / 60 * 60;
    jiff::Timestamp::from_second(now + minutes * 60)
        .expect("in range")
        .to_string()
}

/// A window that started longer ago than `[maintenance] max_retroactive` is refused with 422
/// naming `start`, and nothing is stored; one inside the bound is accepted and says how late
/// it was registered; one registered ahead says nothing.
#[tokio::test]
async fn a_window_registered_too_late_is_422_and_changes_nothing() {
    let toml = TOML.replace("max_retroactive = \"3650d\"", "max_retroactive = \"24h\"");
    let api = Api {
        c: Collector::start(config(&toml)).await,
        http: support::client(),
    };
    let tok = Some("alice-secret");
    let (s, e) = api
        .post(
            tok,
            window(&from_now(&api.c, -25 * 60), &from_now(&api.c, -24 * 60)),
        )
        .await;
    assert_eq!((s, e["field"].as_str()), (422, Some("start")), "{e}");
    let why = e["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("max_retroactive (1d)") && why.contains("1d1h"),
        "the refusal names the bound and how late: {why}"
    );
    let (_, list) = api
        .call(reqwest::Method::GET, "/api/v1/maintenance", None, None)
        .await;
    assert_eq!(list, json!([]), "a refused window was stored");

    let (s, late) = api
        .post(tok, window(&from_now(&api.c, -120), &from_now(&api.c, -60)))
        .await;
    assert_eq!(s, 201, "{late}");
    let after = late["registered_after_start_seconds"]
        .as_i64()
        .expect("late");
    assert!((7_200..7_260).contains(&after), "{late}");
    let (s, ahead) = api
        .post(tok, window(&from_now(&api.c, 60), &from_now(&api.c, 120)))
        .await;
    assert_eq!(s, 201, "{ahead}");
    assert_eq!(ahead["registered_after_start_seconds"], Value::Null);
    let (_, list) = api
        .call(reqwest::Method::GET, "/api/v1/maintenance", None, None)
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(
        list[0]["registered_after_start_seconds"],
        late["registered_after_start_seconds"]
    );
}

/// A named admin's windows are recorded under its name, with the reference it gave as a
/// field of its own; a bad reference is 400 naming `reference`.
#[tokio::test]
async fn named_admins_are_recorded_with_their_reference() {
    let api = Api {
        c: Collector::start(config(TOML)).await,
        http: support::client(),
    };
    let mut w = window("2026-09-03T10:00:00Z", "2026-09-03T10:20:00Z");
    w["reference"] = json!("CHG-4711");
    let (s, created) = api.post(Some("alice-secret"), w.clone()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        (&created["registered_by"], &created["reference"]),
        (&json!("alice"), &json!("CHG-4711"))
    );
    let (s, by_admin) = api
        .post(
            Some("admin-secret"),
            window("2026-09-04T10:00:00Z", "2026-09-04T10:20:00Z"),
        )
        .await;
    assert_eq!(s, 201, "{by_admin}");
    assert_eq!(
        (&by_admin["registered_by"], &by_admin["reference"]),
        (&json!("admin"), &Value::Null)
    );
    for bad in [json!(""), json!("x".repeat(201)), json!("CHG\n1"), json!(7)] {
        let mut w = w.clone();
        w["reference"] = bad;
        let (s, e) = api.post(Some("alice-secret"), w).await;
        assert_eq!((s, e["field"].as_str()), (400, Some("reference")), "{e}");
    }
    let (_, list) = api
        .call(reqwest::Method::GET, "/api/v1/maintenance", None, None)
        .await;
    let got: Vec<(&Value, &Value)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|m| (&m["registered_by"], &m["reference"]))
        .collect();
    assert_eq!(
        got,
        [
            (&json!("alice"), &json!("CHG-4711")),
            (&json!("admin"), &Value::Null)
        ]
    );
    assert!(!list.to_string().contains("alice-secret"), "{list}");
}
