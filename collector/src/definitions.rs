//! The definition history: what each service's agreement measured, and from when. The
//! running collector records every distinct service definition in the store at start and at
//! each configuration reload; reports list the definitions in force during their month, so a
//! target, quorum or threshold changed mid-month is visible to the reader instead of hiding
//! behind one digest of the configuration as it is now.
//!
//! Invariants:
//! - A definition is the canonical JSON object [`json`] of one `[[service]]`: every key that
//!   decides a figure (checks, target, zone, quorum, minimum reporters and coverage, hours,
//!   holidays, maintenance, latency objective, start). Its digest is the report's
//!   `definitions_sha256` of that one service and the month seal's `definition` leaf.
//! - Recording is idempotent: the store adds a row only when the digest differs from the
//!   service's latest one, so repeated starts and no-op reloads add nothing.
//! - A failed record (the store is down) is retried until it succeeds; the instant recorded
//!   is when the configuration took effect, not when the store came back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_config::{CollectorConfig, MaintenanceWindow, Service, WeeklyWindow};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{DefinitionRow, Store, StoreError};

/// How long a failed record waits before it is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// `Mon,Tue 08:00-18:00`.
pub fn weekly_text(w: &WeeklyWindow) -> String {
    let days: Vec<String> = w
        .days
        .iter()
        .map(|d| format!("{d:?}").chars().take(3).collect())
        .collect();
    let end = w
        .end
        .map_or_else(|| "24:00".to_string(), |t| t.strftime("%H:%M").to_string());
    format!("{} {}-{}", days.join(","), w.start.strftime("%H:%M"), end)
}

/// The canonical definition of one service: the keys that decide its figures, in a fixed
/// order (serde_json keeps maps sorted).
pub fn json(s: &Service) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "checks": s.checks,
        "target_ppm": s.target.0,
        "time_zone": s.time_zone,
        "quorum": format!("{:?}", s.quorum),
        "min_reporters": s.min_reporters,
        "min_coverage_ppm": s.min_coverage.map(|p| p.0),
        "service_hours": s.service_hours.iter().map(weekly_text).collect::<Vec<_>>(),
        "holidays": s.holidays.iter().map(std::string::ToString::to_string).collect::<Vec<_>>(),
        "maintenance": s.maintenance.iter().map(|m| match m {
            MaintenanceWindow::Once { start, end, reason } => format!("once {start} {end} {reason}"),
            MaintenanceWindow::Weekly { window, reason } => format!("weekly {} {reason}", weekly_text(window)),
        }).collect::<Vec<_>>(),
        "latency": s.latency.as_ref().map(|l| (l.threshold.as_secs_f64(), l.target.0)),
        "start": s.start.map(|t| t.to_string()),
    })
}

/// The row recording `s` as in force from `at`: its digest is over `[json]`, the form of
/// the report's `definitions_sha256` for one service.
pub fn row(s: &Service, at: Timestamp, cause: &str) -> DefinitionRow {
    let object = json(s);
    let list = serde_json::Value::Array(vec![object.clone()]);
    let digest = Sha256::digest(serde_json::to_vec(&list).unwrap_or_default());
    DefinitionRow {
        service: s.name.clone(),
        sha256: crate::seal::hex(&digest),
        first_seen: at,
        definition: object.to_string(),
        cause: cause.to_string(),
    }
}

/// The configuration waiting to be recorded: set at start and at each reload, taken by
/// [`DefinitionLog::run`].
pub struct DefinitionLog {
    pending: Mutex<Option<Pending>>,
    wake: Notify,
}

struct Pending {
    cfg: Arc<CollectorConfig>,
    cause: &'static str,
    at: Timestamp,
}

impl DefinitionLog {
    /// A log with the configuration the process started with, in force from `at`.
    pub fn new(cfg: Arc<CollectorConfig>, at: Timestamp) -> DefinitionLog {
        DefinitionLog {
            pending: Mutex::new(Some(Pending {
                cfg,
                cause: "start",
                at,
            })),
            wake: Notify::new(),
        }
    }

    /// A reloaded configuration, in force from `at`; replaces one not recorded yet (whose
    /// services the new one records as they are now).
    pub fn reloaded(&self, cfg: Arc<CollectorConfig>, at: Timestamp) {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *p = Some(Pending {
            cfg,
            cause: "reload",
            at,
        });
        self.wake.notify_one();
    }

    /// Records what is pending; answers how many definitions were new. On an error the
    /// configuration stays pending.
    pub fn record(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(p) = taken else {
            return Ok(0);
        };
        match record_all(store, &p) {
            Ok(n) => Ok(n),
            Err(e) => {
                let mut slot = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // A reload that arrived meanwhile is newer: keep it.
                if slot.is_none() {
                    *slot = Some(p);
                }
                Err(e)
            }
        }
    }

    /// Records at once, after every reload, and again after a failure, until `cancel`.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, cancel: CancellationToken) {
        loop {
            let (me, st) = (self.clone(), store.clone());
            let wait = match tokio::task::spawn_blocking(move || me.record(st.as_ref())).await {
                Ok(Ok(n)) => {
                    if n > 0 {
                        tracing::info!(new = n, "recorded service definitions");
                    }
                    None
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot record the service definitions yet; retrying");
                    Some(RETRY)
                }
                Err(e) => {
                    tracing::error!(error = %e, "definition record task failed");
                    Some(RETRY)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep_or_forever(wait) => {}
            }
        }
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn record_all(store: &dyn Store, p: &Pending) -> Result<usize, StoreError> {
    let mut new = 0;
    for s in &p.cfg.services {
        if store.record_definition(&row(s, p.at, p.cause))? {
            new += 1;
        }
    }
    Ok(new)
}

/// What changed from `before` to `after` (two [`json`] texts): one `key: old → new` per
/// differing key, in key order; empty when either is not a JSON object.
pub fn changes(before: &str, after: &str) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (
        serde_json::from_str::<serde_json::Value>(before),
        serde_json::from_str::<serde_json::Value>(after),
    ) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            (x != y).then(|| match k.strip_suffix("_ppm") {
                Some(name) => format!("{name}: {} → {}", percent(x), percent(y)),
                None => format!("{k}: {} → {}", show(x), show(y)),
            })
        })
        .collect()
}

/// A ppm value as the percentage the configuration was written in (`999500` → `99.95 %`).
fn percent(v: Option<&serde_json::Value>) -> String {
    match v.and_then(serde_json::Value::as_u64) {
        Some(ppm) => {
            let text = format!("{}.{:04}", ppm / 10_000, ppm % 10_000);
            format!("{} %", text.trim_end_matches('0').trim_end_matches('.'))
        }
        None => show(v),
    }
}

fn show(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "none".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn config(target: &str) -> Arc<CollectorConfig> {
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"sqlite\"\n\
             data_dir = \"/nonexistent\"\n\
             [[agent]]\nid = \"a1\"\ntoken = \"test-token-a1-0123456789\"\n\
             [[service]]\nname = \"web\"\nchecks = [\"web\"]\ntarget = \"{target}\"\n\
             [[service]]\nname = \"db\"\nchecks = [\"db\"]\ntarget = \"99%\"\n"
        );
        Arc::new(attest_config::parse_collector("t.toml", &toml).expect("config"))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    /// Start records every service; a no-op reload adds nothing; a reload that changes one
    /// target adds that service's new definition only, with what changed.
    #[test]
    fn start_and_reloads_record_each_distinct_definition_once() {
        let store = SqliteStore::open_temp().expect("store");
        let log = DefinitionLog::new(config("99.9%"), ts("2026-11-01T00:00:00Z"));
        assert_eq!(log.record(&store).expect("record"), 2);
        assert_eq!(log.record(&store).expect("nothing pending"), 0);
        log.reloaded(config("99.9%"), ts("2026-11-10T00:00:00Z"));
        assert_eq!(log.record(&store).expect("no-op reload"), 0);
        log.reloaded(config("99.5%"), ts("2026-11-20T12:00:00Z"));
        assert_eq!(log.record(&store).expect("changed target"), 1);
        let web = store
            .definitions(
                "web",
                ts("2026-11-01T00:00:00Z"),
                ts("2026-12-01T00:00:00Z"),
            )
            .expect("read");
        assert_eq!(web.len(), 2);
        assert_eq!(
            (web[0].cause.as_str(), web[1].cause.as_str()),
            ("start", "reload")
        );
        assert_eq!(web[1].first_seen, ts("2026-11-20T12:00:00Z"));
        assert_eq!(
            changes(&web[0].definition, &web[1].definition),
            vec!["target: 99.9 % → 99.5 %".to_string()]
        );
        let cfg = config("99.5%");
        let services: Vec<&Service> = cfg.services.iter().take(1).collect();
        assert_eq!(
            web[1].sha256,
            crate::report::monthly::model::definitions_sha256(&services),
            "the digest is the report's for that one service"
        );
    }

    /// A store that fails keeps the configuration pending; the next record succeeds.
    #[test]
    fn a_failed_record_is_kept_for_the_retry() {
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::open_temp().expect("store"));
        let faulty = crate::store::faulty::FaultyStore::new(inner);
        let log = DefinitionLog::new(config("99.9%"), ts("2026-11-01T00:00:00Z"));
        faulty.set_failing(true);
        assert!(log.record(&faulty).is_err());
        faulty.set_failing(false);
        assert_eq!(log.record(&faulty).expect("retry"), 2);
    }

    #[test]
    fn changes_name_each_differing_key() {
        assert_eq!(
            changes(r#"{"a":1,"b":"x","c":null}"#, r#"{"a":2,"b":"x","c":"y"}"#),
            vec!["a: 1 → 2".to_string(), "c: none → y".to_string()]
        );
        assert_eq!(
            changes(
                r#"{"min_coverage_ppm":null}"#,
                r#"{"min_coverage_ppm":990000}"#
            ),
            vec!["min_coverage: none → 99 %".to_string()]
        );
        assert_eq!(percent(Some(&serde_json::json!(1_000_000))), "100 %");
        assert!(changes("not json", "{}").is_empty());
    }
}
