//! Read access against the real router and listener: with nothing configured the read routes
//! stay open as before; with `[[reader]]` tokens they need a credential (401 with a bearer
//! challenge), and a configuration reload swaps the reader tokens in and out.

mod support;

use support::{Collector, client, config};

const BASE: &str = r#"
[server]
admin_token = "admin-secret"

[[agent]]
id = "a"
token = "token-a"
"#;

const READERS: &str = r#"
[[reader]]
name = "grafana"
token = "reader-secret"
"#;

const READ_ROUTES: &[&str] = &[
    "/metrics",
    "/api/v1/sla?month=2026-05",
    "/api/v1/agents",
    "/api/v1/maintenance",
];

async fn status(c: &Collector, path: &str, token: Option<&str>) -> (u16, Option<String>) {
    let mut req = client().get(c.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("answer");
    let challenge = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status().as_u16(), challenge)
}

#[tokio::test]
async fn without_readers_read_routes_stay_open() {
    let c = Collector::start(config(BASE)).await;
    for path in READ_ROUTES {
        assert_eq!(status(&c, path, None).await.0, 200, "{path}");
        // A token nobody knows is ignored, as before read credentials existed.
        assert_eq!(status(&c, path, Some("nobody")).await.0, 200, "{path}");
    }
}

#[tokio::test]
async fn with_readers_read_routes_need_a_credential() {
    let c = Collector::start(config(&format!("{BASE}{READERS}"))).await;
    for path in READ_ROUTES {
        let (code, challenge) = status(&c, path, None).await;
        assert_eq!(code, 401, "{path}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"attest\""),
            "{path}"
        );
        assert_eq!(status(&c, path, Some("nobody")).await.0, 401, "{path}");
        for token in ["reader-secret", "token-a", "admin-secret"] {
            assert_eq!(status(&c, path, Some(token)).await.0, 200, "{path} {token}");
        }
    }
    // The scheme matches in any case (RFC 9110).
    let lower = client()
        .get(c.url("/metrics"))
        .header("authorization", "bearer reader-secret")
        .send()
        .await
        .expect("answer");
    assert_eq!(lower.status(), 200);
    assert_eq!(status(&c, "/-/healthy", None).await.0, 200);
    assert_eq!(status(&c, "/-/ready", None).await.0, 200);
    // The agent's own route is the agent's: a reader token is refused with the reason.
    let (code, _) = status(&c, "/api/v1/agents/a/checks", Some("reader-secret")).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn a_reload_swaps_the_reader_tokens() {
    let c = Collector::start(config(&format!("{BASE}{READERS}"))).await;
    assert_eq!(status(&c, "/metrics", Some("reader-secret")).await.0, 200);
    let swapped = READERS.replace("reader-secret", "reader-secret-2");
    c.app.reload(config(&format!("{BASE}{swapped}")));
    assert_eq!(status(&c, "/metrics", Some("reader-secret")).await.0, 401);
    assert_eq!(status(&c, "/metrics", Some("reader-secret-2")).await.0, 200);
    c.app.reload(config(BASE));
    assert_eq!(
        status(&c, "/metrics", None).await.0,
        200,
        "no readers: open again"
    );
}
