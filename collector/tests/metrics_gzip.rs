//! `GET /metrics` honours `Accept-Encoding: gzip` (Prometheus sends it, node_exporter answers
//! it): compressed when accepted, the same exposition once decompressed, identity otherwise.
//! Real router and listener; the clock is pinned so two scrapes render the same text.

mod support;

use std::io::Read;
use std::sync::Arc;

use attest_collector::app;
use attest_collector::clock::FixedClock;
use attest_collector::store::Store;
use attest_collector::store::sqlite::SqliteStore;
use support::{Collector, config};

const TOML: &str = r#"
[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
"#;

struct Answer {
    encoding: Option<String>,
    vary: Option<String>,
    body: Vec<u8>,
}

async fn scrape(c: &Collector, headers: &[(&str, &str)]) -> Answer {
    let mut req = support::client().get(c.url("/metrics"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let h = |name| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (encoding, vary) = (h("content-encoding"), h("vary"));
    Answer {
        encoding,
        vary,
        body: r.bytes().await.expect("body").to_vec(),
    }
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("a gzip stream");
    out
}

#[tokio::test]
async fn metrics_are_gzip_compressed_only_when_the_scraper_accepts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("data")).expect("open store"));
    let now: jiff::Timestamp = "2026-09-15T12:00:00Z".parse().expect("instant");
    let app = app::build_with_clock(config(TOML), store, Arc::new(FixedClock(now)));
    app.figures.refresh(now);
    let router = app.router();
    let c = Collector::serve(router, None, app, dir, false).await;

    for accept in ["", "application/openmetrics-text"] {
        let with = |extra: Option<(&'static str, &'static str)>| {
            let mut h: Vec<(&str, &str)> = extra.into_iter().collect();
            if !accept.is_empty() {
                h.push(("accept", accept));
            }
            h
        };
        let identity = scrape(&c, &with(None)).await;
        assert_eq!(identity.encoding, None);
        assert_eq!(identity.vary.as_deref(), Some("Accept-Encoding"));
        let text = String::from_utf8(identity.body).expect("utf-8");
        assert!(
            text.contains("attest_sla_target_ratio{service=\"web\"}"),
            "{text}"
        );

        // What Prometheus sends.
        let prom = "gzip";
        let gz = scrape(&c, &with(Some(("accept-encoding", prom)))).await;
        assert_eq!(gz.encoding.as_deref(), Some("gzip"), "{accept:?}");
        assert_eq!(gz.vary.as_deref(), Some("Accept-Encoding"));
        assert!(gz.body.len() < text.len(), "compressed is smaller");
        assert_eq!(gunzip(&gz.body), text, "the same exposition ({accept:?})");
        let weighted = scrape(&c, &with(Some(("accept-encoding", "br;q=1.0, GZIP;q=0.5")))).await;
        assert_eq!(weighted.encoding.as_deref(), Some("gzip"));
        assert_eq!(gunzip(&weighted.body), text);

        for refused in ["gzip;q=0", "identity", "br, zstd"] {
            let a = scrape(&c, &with(Some(("accept-encoding", refused)))).await;
            assert_eq!(a.encoding, None, "{refused}");
            assert_eq!(String::from_utf8(a.body).expect("utf-8"), text, "{refused}");
        }
    }
}
