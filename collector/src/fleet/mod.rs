//! The fleet: which central checks each agent runs (computed by `attest_config::fleet`
//! from the configuration), what each agent last told us when it asked for them, and the
//! view `GET /api/v1/agents` and `attest-collector agents` show.
//!
//! Invariants:
//! - An assignment is a pure function of the configuration; a reload swaps the whole state
//!   at once and wakes every long poll, which then answers only if that agent's revision
//!   changed.
//! - The fleet never touches measurements: last seen, clock offset and spool figures come
//!   from the store's agent rows (written by ingest), the rest from assignment requests.
//! - Nothing here blocks on I/O; the HTTP layer reads the store and passes its rows in.
//! - Once [`Fleet::stop`] is called (shutdown), every long poll returns at once and none
//!   waits again: a poll must not hold the shutdown drain for its `?wait=`.

pub mod client;
pub mod table;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use attest_config::CollectorConfig;
use attest_config::wire::{AgentInfo, Assignment};
use jiff::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::AgentStatus;

/// What an agent said when it last asked for its checks.
#[derive(Debug, Clone, Default)]
struct Seen {
    version: Option<String>,
    at: Option<Timestamp>,
    revision: Option<String>,
    last_error: Option<String>,
}

/// One agent's request for its checks, as the HTTP layer read it.
#[derive(Debug, Clone)]
pub struct Fetch<'a> {
    pub agent: &'a str,
    /// The `User-Agent` header, e.g. `attest-agent/0.1.0`.
    pub user_agent: Option<&'a str>,
    /// Check ids of the agent's own file (its `attest-local-checks` header).
    pub local_checks: Vec<String>,
    pub now: Timestamp,
}

pub struct Fleet {
    state: RwLock<Arc<State>>,
    /// Bumped on every reload; long polls wait on it.
    generation: watch::Sender<u64>,
    seen: Mutex<BTreeMap<String, Seen>>,
    /// Cancelled at shutdown: long polls answer at once.
    stopping: CancellationToken,
}

struct State {
    cfg: Arc<CollectorConfig>,
    by_agent: BTreeMap<String, Assignment>,
}

impl State {
    fn new(cfg: Arc<CollectorConfig>) -> State {
        let by_agent = cfg
            .agents
            .iter()
            .map(|a| (a.id.clone(), attest_config::fleet::assignment(&cfg, &a.id)))
            .collect();
        State { cfg, by_agent }
    }
}

impl Fleet {
    pub fn new(cfg: Arc<CollectorConfig>) -> Fleet {
        Fleet {
            state: RwLock::new(Arc::new(State::new(cfg))),
            generation: watch::Sender::new(0),
            seen: Mutex::new(BTreeMap::new()),
            stopping: CancellationToken::new(),
        }
    }

    /// Ends every long poll now and any later one at once (the collector is shutting down).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    fn state(&self) -> Arc<State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Takes a reloaded configuration; returns the agents whose assignment changed.
    pub fn replace(&self, cfg: Arc<CollectorConfig>) -> Vec<String> {
        let new = Arc::new(State::new(cfg));
        let old = {
            let mut st = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::replace(&mut *st, new.clone())
        };
        let changed: Vec<String> = new
            .by_agent
            .iter()
            .filter(|(id, a)| old.by_agent.get(*id).map(|o| &o.revision) != Some(&a.revision))
            .map(|(id, _)| id.clone())
            .collect();
        self.generation.send_modify(|g| *g += 1);
        changed
    }

    /// The agent's current assignment; `None` for an agent not in the configuration.
    pub fn assignment(&self, agent: &str) -> Option<Assignment> {
        self.state().by_agent.get(agent).cloned()
    }

    /// Waits up to `wait` until the agent's revision differs from `known` (or [`Fleet::stop`]
    /// is called), then returns the current assignment (which may still be `known` when the
    /// wait ran out).
    pub async fn wait_for_change(
        &self,
        agent: &str,
        known: &str,
        wait: Duration,
    ) -> Option<Assignment> {
        let mut rx = self.generation.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let current = self.assignment(agent)?;
            if current.revision != known {
                return Some(current);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Some(current) },
                _ = tokio::time::sleep_until(deadline) => return Some(current),
                _ = self.stopping.cancelled() => return Some(current),
            }
        }
    }

    /// Records an assignment request; returns the conflict it revealed, if any (a check id
    /// both in the agent's own file and assigned centrally), already logged.
    pub fn record_fetch(&self, f: &Fetch<'_>, served: &Assignment) -> Option<String> {
        let both: Vec<&str> = served
            .check_ids
            .iter()
            .filter(|id| f.local_checks.contains(id))
            .map(String::as_str)
            .collect();
        let conflict = (!both.is_empty()).then(|| {
            format!(
                "check id {} defined both in the agent's own file and centrally; the agent runs its own and ignores the central one: rename or remove one",
                both.join(", ")
            )
        });
        if let Some(c) = &conflict {
            tracing::error!(agent = f.agent, "{c}");
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = seen.entry(f.agent.to_string()).or_default();
        s.version = f
            .user_agent
            .and_then(|ua| ua.strip_prefix("attest-agent/"))
            .map(|v| v.chars().take(64).collect());
        s.at = Some(f.now);
        s.revision = Some(served.revision.clone());
        s.last_error = conflict.clone();
        conflict
    }

    /// One row per configured agent, in configuration order, joined with the store's rows
    /// and the keys its batches were stored under (`keys`, in the order first seen).
    pub fn list(
        &self,
        stored: &[AgentStatus],
        keys: &[crate::store::AgentKeyRow],
    ) -> Vec<AgentInfo> {
        let state = self.state();
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .cfg
            .agents
            .iter()
            .map(|a| {
                let st = stored.iter().find(|s| s.agent == a.id);
                let s = seen.get(&a.id).cloned().unwrap_or_default();
                let last_seen = [st.map(|s| s.last_seen), s.at].into_iter().flatten().max();
                let (key, key_trust) = key_of(a, keys);
                AgentInfo {
                    id: a.id.clone(),
                    labels: a.labels.clone(),
                    version: s.version,
                    last_seen,
                    clock_offset_ms: st.map(|s| s.clock_offset_ms),
                    assigned_checks: state
                        .by_agent
                        .get(&a.id)
                        .map(|x| x.check_ids.clone())
                        .unwrap_or_default(),
                    fetched_revision: s.revision,
                    spool_depth: st
                        .and_then(|s| s.spool.as_ref())
                        .map(|s| s.depth_measurements),
                    spool_dropped_total: st.and_then(|s| s.spool.as_ref()).map(|s| s.dropped_total),
                    last_error: s.last_error,
                    key,
                    key_trust,
                }
            })
            .collect()
    }
}

/// The fingerprint of the key `a`'s batches are checked against, and whether it is
/// configured or pinned on first use (the newest key stored for it).
fn key_of(
    a: &attest_config::AgentAuth,
    keys: &[crate::store::AgentKeyRow],
) -> (Option<String>, Option<String>) {
    use attest_config::evidence::keys::PublicKey;
    if let Some(k) = a.public_key {
        return (Some(k.fingerprint()), Some("configured".into()));
    }
    keys.iter()
        .rev()
        .find(|r| r.agent == a.id)
        .and_then(|r| PublicKey::from_bytes(&r.key).ok())
        .map_or((None, None), |k| {
            (Some(k.fingerprint()), Some("pinned".into()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(assign: &str) -> Arc<CollectorConfig> {
        let src = format!(
            "[[agent]]\nid = \"a\"\ntoken = \"ta\"\nlabels = {{ role = \"web\" }}\n\n\
             [[agent]]\nid = \"b\"\ntoken = \"tb\"\n\n\
             [[check]]\nid = \"c1\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n\n\
             [[check]]\nid = \"c2\"\nkind = \"tcp\"\naddress = \"127.0.0.1:2\"\n\n{assign}"
        );
        Arc::new(attest_config::parse_collector("collector.toml", &src).expect("valid"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_returns_at_once_on_a_change_and_times_out_otherwise() {
        let fleet = Arc::new(Fleet::new(cfg(
            "[[assign]]\nmatch = { role = \"web\" }\nchecks = [\"c1\"]\n",
        )));
        let rev = fleet.assignment("a").expect("known").revision;
        // No change: the poll ends at its deadline with the same revision.
        let same = fleet
            .wait_for_change("a", &rev, Duration::from_secs(30))
            .await;
        assert_eq!(same.expect("known").revision, rev);
        // A reload that changes "b" only does not wake "a" early.
        let f = fleet.clone();
        let r = rev.clone();
        let poll =
            tokio::spawn(async move { f.wait_for_change("a", &r, Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        let changed = fleet.replace(cfg(
            "[[assign]]\nmatch = { role = \"web\" }\nchecks = [\"c1\"]\n[[assign]]\nagents = [\"b\"]\nchecks = [\"c2\"]\n",
        ));
        assert_eq!(changed, ["b"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!poll.is_finished(), "a's poll woke for b's change");
        fleet.replace(cfg(
            "[[assign]]\nmatch = { role = \"web\" }\nchecks = [\"c1\", \"c2\"]\n",
        ));
        let got = poll.await.expect("poll task").expect("known");
        assert_eq!(got.check_ids, ["c1", "c2"]);
        assert!(fleet.assignment("nobody").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_every_long_poll_at_once_and_later_ones_do_not_wait() {
        let fleet = Arc::new(Fleet::new(cfg(
            "[[assign]]\nmatch = { role = \"web\" }\nchecks = [\"c1\"]\n",
        )));
        let rev = fleet.assignment("a").expect("known").revision;
        let (f, r) = (fleet.clone(), rev.clone());
        let poll = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let got = f.wait_for_change("a", &r, Duration::from_secs(300)).await;
            (got, started.elapsed())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !poll.is_finished(),
            "the poll waits while the collector runs"
        );
        fleet.stop();
        let (got, waited) = poll.await.expect("poll task");
        assert_eq!(got.expect("known").revision, rev, "unchanged: answered 304");
        assert_eq!(
            waited,
            Duration::from_secs(1),
            "ended at the stop, not at ?wait="
        );
        let started = tokio::time::Instant::now();
        let later = fleet
            .wait_for_change("a", &rev, Duration::from_secs(300))
            .await;
        assert!(later.is_some());
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a poll after the stop does not wait"
        );
    }

    #[test]
    fn a_conflict_is_reported_and_listed_until_it_is_gone() {
        let fleet = Fleet::new(cfg("[[assign]]\nagents = [\"a\"]\nchecks = [\"c1\"]\n"));
        let served = fleet.assignment("a").expect("known");
        let now: Timestamp = "2026-11-01T00:00:00Z".parse().expect("ts");
        let fetch = Fetch {
            agent: "a",
            user_agent: Some("attest-agent/9.9.9"),
            local_checks: vec!["c1".into(), "mine".into()],
            now,
        };
        let conflict = fleet.record_fetch(&fetch, &served).expect("conflict");
        assert!(
            conflict.starts_with("check id c1 defined both"),
            "{conflict}"
        );
        let rows = fleet.list(&[], &[]);
        assert_eq!(rows[0].version.as_deref(), Some("9.9.9"));
        assert_eq!(rows[0].last_seen, Some(now));
        assert_eq!(rows[0].last_error.as_deref(), Some(conflict.as_str()));
        assert_eq!(rows[0].assigned_checks, ["c1"]);
        assert_eq!(rows[1].last_seen, None);
        let fixed = Fetch {
            local_checks: vec!["mine".into()],
            ..fetch
        };
        assert!(fleet.record_fetch(&fixed, &served).is_none());
        assert_eq!(fleet.list(&[], &[])[0].last_error, None);
    }
}
