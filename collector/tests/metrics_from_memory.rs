//! `/metrics` serves from memory: a scrape renders the figures snapshot, the ingest counters
//! and the newest results, and makes no store call (the store is counted by a wrapper around
//! a real SQLite store). Agent status and store counts reach the scrape through the refresh,
//! which ingest triggers by its "data changed" signal, not the HTTP route.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use attest_collector::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};
use attest_collector::store::sqlite::SqliteStore;
use attest_collector::store::{
    AgentStatus, CommitOutcome, IngestBatch, MaintenanceRow, NewMaintenance, Store, StoreCounts,
    StoreError,
};
use attest_config::wire::Measurement;
use jiff::Timestamp;
use serde_json::json;
use support::{BOUND, Collector, Refresh, config};

const TOML: &str = r#"
[[agent]]
id = "a"
token = "token-a"

[[service]]
name = "web"
checks = ["web"]
target = "99.9%"
"#;

/// A real store that counts every call made to it.
struct Counting {
    inner: SqliteStore,
    calls: AtomicU64,
}

impl Counting {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn count(&self) -> &SqliteStore {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

impl Store for Counting {
    fn commit_batch(&self, batch: &IngestBatch) -> Result<CommitOutcome, StoreError> {
        self.count().commit_batch(batch)
    }
    fn series_minutes(&self, c: &[String], f: i64, t: i64) -> Result<SeriesMinutes, StoreError> {
        self.count().series_minutes(c, f, t)
    }
    fn gaps(&self, c: &[String], f: i64, t: i64) -> Result<Vec<GapSpan>, StoreError> {
        self.count().gaps(c, f, t)
    }
    fn host_minutes(&self, f: i64, t: i64) -> Result<Vec<HostMinute>, StoreError> {
        self.count().host_minutes(f, t)
    }
    fn first_seen(&self, c: &[String]) -> Result<Option<i64>, StoreError> {
        self.count().first_seen(c)
    }
    fn note_configured(&self, s: &[String], now: Timestamp) -> Result<(), StoreError> {
        self.count().note_configured(s, now)
    }
    fn first_configured(&self, s: &str) -> Result<Option<Timestamp>, StoreError> {
        self.count().first_configured(s)
    }
    fn track_threshold(&self, c: &str, t: u64) -> Result<(), StoreError> {
        self.count().track_threshold(c, t)
    }
    fn threshold_over(
        &self,
        c: &[String],
        t: u64,
        f: i64,
        to: i64,
    ) -> Result<ThresholdOver, StoreError> {
        self.count().threshold_over(c, t, f, to)
    }
    fn agents(&self) -> Result<Vec<AgentStatus>, StoreError> {
        self.count().agents()
    }
    fn add_maintenance(&self, w: &NewMaintenance<'_>, now: Timestamp) -> Result<i64, StoreError> {
        self.count().add_maintenance(w, now)
    }
    fn cancel_maintenance(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.count().cancel_maintenance(id, now)
    }
    fn list_maintenance(&self, s: Option<&str>) -> Result<Vec<MaintenanceRow>, StoreError> {
        self.count().list_maintenance(s)
    }
    fn add_report_note(
        &self,
        n: &attest_collector::store::NewNote<'_>,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        self.count().add_report_note(n, now)
    }
    fn record_definition(
        &self,
        d: &attest_collector::store::DefinitionRow,
    ) -> Result<bool, StoreError> {
        self.count().record_definition(d)
    }
    fn definitions(
        &self,
        service: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<attest_collector::store::DefinitionRow>, StoreError> {
        self.count().definitions(service, from, to)
    }
    fn report_notes(
        &self,
        month: &str,
        service: Option<&str>,
    ) -> Result<Vec<attest_collector::store::NoteRow>, StoreError> {
        self.count().report_notes(month, service)
    }
    fn raw_measurements(
        &self,
        check: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Measurement)>, StoreError> {
        self.count().raw_measurements(check, from, to)
    }
    fn batch_measurements(&self, agent: &str, seq: u64) -> Result<Vec<Measurement>, StoreError> {
        self.count().batch_measurements(agent, seq)
    }
    fn seal_links(
        &self,
        agent: &str,
        seq: u64,
    ) -> Result<Vec<attest_collector::store::Link>, StoreError> {
        self.count().seal_links(agent, seq)
    }
    fn agent_keys(&self) -> Result<Vec<attest_collector::store::AgentKeyRow>, StoreError> {
        self.count().agent_keys()
    }
    fn batch_seals(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<attest_collector::store::StoredSeal>, StoreError> {
        self.count().batch_seals(from, to)
    }
    fn apply_retention(&self, raw: Timestamp, rollups: Timestamp) -> Result<(), StoreError> {
        self.count().apply_retention(raw, rollups)
    }
    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.count().counts()
    }
    fn compact(&self, before_minute: i64) -> Result<u64, StoreError> {
        self.count().compact(before_minute)
    }
    fn change_mark(&self) -> u64 {
        self.count().change_mark()
    }
    fn changed_since(&self, c: &[String], mark: u64, f: i64, t: i64) -> Result<bool, StoreError> {
        self.count().changed_since(c, mark, f, t)
    }
}

async fn start(refresh: Refresh) -> (Collector, Arc<Counting>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let counting = Arc::new(Counting {
        inner: SqliteStore::open(&dir.path().join("data")).expect("open store"),
        calls: AtomicU64::new(0),
    });
    let c = Collector::start_on(config(TOML), counting.clone(), dir, refresh).await;
    (c, counting)
}

/// Posts one batch of three measurements of the last minutes from agent `a`, with its spool.
async fn ingest(c: &Collector, http: &reqwest::Client) {
    let now = c.app.clock.now_utc();
    let ts = |mins: i64| {
        now.checked_sub(jiff::SignedDuration::from_mins(mins))
            .expect("in range")
            .to_string()
    };
    let body = json!({
        "version": 1,
        "agent": "a",
        "seq": 1,
        "sent_at": now.to_string(),
        "measurements": [
            {"check": "web", "ts": ts(3), "ok": true},
            {"check": "web", "ts": ts(2), "ok": true},
            {"check": "web", "ts": ts(1), "ok": false, "reason": "timeout"},
        ],
        "spool": {"depth_measurements": 7, "bytes": 700, "dropped_total": 0, "corrupt_records_total": 0},
    });
    let r = http
        .post(c.url(attest_config::wire::INGEST_PATH))
        .bearer_auth("token-a")
        .json(&body)
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn scrape(c: &Collector, http: &reqwest::Client, openmetrics: bool) -> String {
    let mut req = http.get(c.url("/metrics"));
    if openmetrics {
        req = req.header("accept", "application/openmetrics-text");
    }
    let r = req.send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    r.text().await.expect("body")
}

fn has(body: &str, line_start: &str) -> bool {
    body.lines().any(|l| l.starts_with(line_start))
}

#[tokio::test]
async fn a_scrape_makes_no_store_call() {
    let (c, store) = start(Refresh::Manual).await;
    let http = support::client();
    ingest(&c, &http).await;
    let figures = c.app.figures.clone();
    let now = c.app.clock.now_utc();
    tokio::task::spawn_blocking(move || figures.refresh(now))
        .await
        .expect("refresh");

    let before = store.calls();
    for openmetrics in [false, true, false] {
        let body = scrape(&c, &http, openmetrics).await;
        // Fleet state and figures are there, from the snapshot.
        assert!(has(&body, "attest_store_measurements 3"), "{body}");
        assert!(
            has(
                &body,
                "attest_agent_last_seen_timestamp_seconds{agent=\"a\"}"
            ),
            "{body}"
        );
        assert!(
            has(
                &body,
                "attest_agent_spool_depth_measurements{agent=\"a\"} 7"
            ),
            "{body}"
        );
        assert!(
            has(&body, "attest_sla_availability_ratio{service=\"web\"}"),
            "{body}"
        );
    }
    assert_eq!(store.calls(), before, "a /metrics scrape called the store");

    // The counter does count: the readiness probe asks the store.
    let r = http.get(c.url("/-/ready")).send().await.expect("ready");
    assert_eq!(r.status(), 200);
    assert!(store.calls() > before, "the counting store saw no call");
}

/// The route does not tell figures about new data; ingest does, and the refresh loop follows
/// well within its 30 s maximum age.
#[tokio::test]
async fn ingest_signals_figures_to_refresh() {
    let (c, _store) = start(Refresh::Loop).await;
    let http = support::client();
    let wait_for = |what: &'static str, ok: fn(&attest_collector::figures::Snapshot) -> bool| {
        let figures = c.app.figures.clone();
        async move {
            tokio::time::timeout(BOUND, async {
                while !ok(&figures.latest()) {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("figures never showed {what}"));
        }
    };
    wait_for("a first refresh", |s| s.computed_at.is_some()).await;
    assert_eq!(c.app.figures.latest().stored_measurements, Some(0));
    ingest(&c, &http).await;
    wait_for("the new batch", |s| s.stored_measurements == Some(3)).await;
    let snap = c.app.figures.latest();
    assert_eq!(snap.agents.len(), 1, "{:?}", snap.agents);
    assert_eq!(snap.services.len(), 1, "{:?}", snap.failures);
}
