//! Which collector the agent talks to: an ordered list (`[agent] collector_urls`) with a
//! sticky preference for the first, failover down the list and failback once a more
//! preferred collector is ready again.
//!
//! Invariants:
//! - Exactly one collector is active. The transport and the assignment poller both send to
//!   it and both report its faults, so they fail over together.
//! - Only a collector fault moves the agent on ([`Collectors::failed`]): a connection error,
//!   a timeout or a 5xx. A 4xx is about the batch or the agent's setup and would be the same
//!   at every replica; it is handled as with one collector and never fails over.
//! - A fault of a collector that is no longer active (a request that started before a
//!   failover) changes nothing, so one outage fails over once, not once per request.
//! - The agent returns to a more preferred collector only after that one answered every
//!   readiness probe (`GET /-/ready`, 200) for `failback_after` ([`Collectors::probed`]); the
//!   most preferred such collector wins. One failed probe restarts its wait, so a flapping
//!   collector does not win traffic back.
//! - Choosing a collector never touches the spool: a batch leaves it only on a 2xx from
//!   whichever collector took it. A batch resent to another replica of the same database
//!   carries the same `(agent, seq)` and is counted once there.
//! - Time comes in as `Instant`s from the caller, so the policy is tested without waiting.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The longest pause between two readiness probes of the more preferred collectors.
pub const PROBE_EVERY_MAX: Duration = Duration::from_secs(5);
/// Path of the collector's readiness answer (200 once its store answers).
pub const READY_PATH: &str = "/-/ready";

/// One collector of the list: its place (0 = preferred) and base URL (no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub index: usize,
    pub base: String,
}

impl Target {
    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[derive(Debug)]
struct State {
    active: usize,
    /// Per collector: since when it has passed every readiness probe; `None` after a failed
    /// probe, a fault, or a change of the active collector.
    ready_since: Vec<Option<Instant>>,
}

/// The ordered collectors and which one is in use.
#[derive(Debug)]
pub struct Collectors {
    bases: Vec<String>,
    failback_after: Duration,
    state: Mutex<State>,
    failovers: AtomicU64,
    failbacks: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectorsError {
    #[error("no collector URL is configured; set [agent] collector_url or collector_urls")]
    Empty,
}

impl Collectors {
    /// The list in order of preference (validated by the config loader: non-empty, distinct).
    pub fn new(urls: &[String], failback_after: Duration) -> Result<Collectors, CollectorsError> {
        if urls.is_empty() {
            return Err(CollectorsError::Empty);
        }
        Ok(Collectors {
            bases: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            failback_after,
            state: Mutex::new(State {
                active: 0,
                ready_since: vec![None; urls.len()],
            }),
            failovers: AtomicU64::new(0),
            failbacks: AtomicU64::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of collectors in the list.
    pub fn len(&self) -> usize {
        self.bases.len()
    }

    /// Always false: the list has at least one collector.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// Base URLs in order of preference.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// The collector to send to now.
    pub fn active(&self) -> Target {
        let index = self.state().active;
        self.target(index)
    }

    fn target(&self, index: usize) -> Target {
        Target {
            index,
            base: self.bases[index].clone(),
        }
    }

    /// Failovers since start (the active collector failed and the next one took over).
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Returns to a more preferred collector since start.
    pub fn failbacks(&self) -> u64 {
        self.failbacks.load(Ordering::Relaxed)
    }

    /// `t` failed as a collector (connection error, timeout, 5xx). When `t` is the active
    /// one and there is another, the next in the list (wrapping around) becomes active;
    /// returns whether that happened.
    pub fn failed(&self, t: &Target, why: &str) -> bool {
        let mut st = self.state();
        st.ready_since[t.index] = None;
        if st.active != t.index || self.bases.len() < 2 {
            return false;
        }
        let next = (t.index + 1) % self.bases.len();
        self.switch(&mut st, next);
        self.failovers.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            from = %Collectors::label(&t.base),
            to = %Collectors::label(&self.bases[next]),
            "collector failed, failing over: {why}"
        );
        true
    }

    /// The collectors more preferred than the active one: those the readiness probe asks.
    pub fn probe_targets(&self) -> Vec<Target> {
        let active = self.state().active;
        (0..active).map(|i| self.target(i)).collect()
    }

    /// The result of one readiness probe of `t` at `now`. Returns to the most preferred
    /// collector that has been ready for `failback_after`; returns whether that happened.
    pub fn probed(&self, t: &Target, ready: bool, now: Instant) -> bool {
        let mut st = self.state();
        if t.index >= st.active {
            return false;
        }
        st.ready_since[t.index] = match (ready, st.ready_since[t.index]) {
            (false, _) => None,
            (true, since) => Some(since.unwrap_or(now)),
        };
        let back = (0..st.active).find(|&i| {
            st.ready_since[i]
                .is_some_and(|s| now.saturating_duration_since(s) >= self.failback_after)
        });
        let Some(back) = back else {
            return false;
        };
        let from = st.active;
        self.switch(&mut st, back);
        self.failbacks.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            from = %Collectors::label(&self.bases[from]),
            to = %Collectors::label(&self.bases[back]),
            ready_for = ?self.failback_after,
            "a more preferred collector is ready again, returning to it"
        );
        true
    }

    fn switch(&self, st: &mut State, to: usize) {
        st.active = to;
        st.ready_since.iter_mut().for_each(|r| *r = None);
    }

    /// Time between two rounds of readiness probes: [`PROBE_EVERY_MAX`], or a quarter of
    /// `failback_after` when that is shorter, so a failback takes `failback_after` plus at
    /// most a quarter of it.
    pub fn probe_every(&self) -> Duration {
        (self.failback_after / 4).clamp(Duration::from_millis(10), PROBE_EVERY_MAX)
    }

    /// Probes the more preferred collectors' readiness while the agent is failed over,
    /// until `cancel`; each probe is bounded by `timeout`.
    pub async fn watch(
        self: std::sync::Arc<Self>,
        client: reqwest::Client,
        timeout: Duration,
        cancel: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.probe_every()) => {}
            }
            for t in self.probe_targets() {
                let ready = client
                    .get(t.url(READY_PATH))
                    .timeout(timeout)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
                if self.probed(&t, ready, Instant::now()) {
                    break;
                }
            }
        }
    }

    /// `base` without user and password, for logs and metric labels.
    pub fn label(base: &str) -> String {
        match reqwest::Url::parse(base) {
            Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.as_str().trim_end_matches('/').to_string()
            }
            _ => base.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(failback_after: Duration) -> Collectors {
        let urls = ["https://a:9850/", "https://b:9850", "https://c:9850"].map(String::from);
        Collectors::new(&urls, failback_after).expect("non-empty")
    }

    #[test]
    fn the_first_is_preferred_and_a_fault_moves_to_the_next() {
        let c = three(Duration::from_secs(60));
        let a = c.active();
        assert_eq!((a.index, a.base.as_str()), (0, "https://a:9850"));
        assert!(c.failed(&a, "connection refused"));
        assert_eq!(c.active().index, 1);
        let b = c.active();
        assert!(c.failed(&b, "503"));
        assert_eq!(c.active().index, 2);
        // The last one wraps around to the preferred one.
        assert!(c.failed(&c.active(), "timeout"));
        assert_eq!(c.active().index, 0);
        assert_eq!(c.failovers(), 3);
    }

    #[test]
    fn a_stale_fault_changes_nothing() {
        let c = three(Duration::from_secs(60));
        let a = c.active();
        assert!(c.failed(&a, "reset"));
        // A second request to a, started before the failover, fails late.
        assert!(!c.failed(&a, "reset"));
        assert_eq!(c.active().index, 1);
        assert_eq!(c.failovers(), 1);
    }

    #[test]
    fn one_collector_never_fails_over() {
        let c = Collectors::new(&["http://x:1".to_string()], Duration::from_secs(1)).unwrap();
        assert!(!c.failed(&c.active(), "down"));
        assert_eq!(c.active().index, 0);
        assert_eq!(c.failovers(), 0);
        assert!(c.probe_targets().is_empty());
        assert!(Collectors::new(&[], Duration::from_secs(1)).is_err());
    }

    #[test]
    fn back_to_the_preferred_only_after_it_was_ready_for_failback_after() {
        let c = three(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        c.failed(&c.active(), "down");
        let a = c.target(0);
        assert_eq!(c.probe_targets(), std::slice::from_ref(&a));
        assert!(!c.probed(&a, true, at(0)));
        assert!(!c.probed(&a, true, at(30)));
        // One failed probe restarts the wait.
        assert!(!c.probed(&a, false, at(45)));
        assert!(!c.probed(&a, true, at(50)));
        assert!(!c.probed(&a, true, at(100)), "ready for 50 s only");
        assert!(c.probed(&a, true, at(110)));
        assert_eq!(c.active().index, 0);
        assert_eq!(c.failbacks(), 1);
        assert!(
            c.probe_targets().is_empty(),
            "nothing to probe on the preferred"
        );
    }

    #[test]
    fn the_most_preferred_ready_collector_wins() {
        let c = three(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        c.failed(&c.active(), "down");
        c.failed(&c.active(), "down");
        assert_eq!(c.active().index, 2);
        let (a, b) = (c.target(0), c.target(1));
        assert!(!c.probed(&b, true, at(0)));
        assert!(!c.probed(&a, true, at(5)));
        // b has been ready for 10 s first: it takes over (a is still waiting).
        assert!(c.probed(&b, true, at(10)));
        assert_eq!(c.active().index, 1);
        // a's wait started over with the switch; it wins once ready for 10 s again.
        assert!(!c.probed(&a, true, at(12)));
        assert!(c.probed(&a, true, at(22)));
        assert_eq!(c.active().index, 0);
        assert_eq!(c.failbacks(), 2);
    }

    #[test]
    fn a_fault_after_failback_fails_over_again() {
        let c = three(Duration::from_secs(1));
        let t0 = Instant::now();
        c.failed(&c.active(), "down");
        let a = c.target(0);
        c.probed(&a, true, t0);
        assert!(c.probed(&a, true, t0 + Duration::from_secs(1)));
        assert!(c.failed(&c.active(), "down again"));
        assert_eq!(c.active().index, 1);
        // A probe result of a collector that is not more preferred is ignored.
        assert!(!c.probed(&c.target(2), true, t0 + Duration::from_secs(9)));
        assert_eq!(c.active().index, 1);
    }

    #[test]
    fn probes_run_at_most_every_five_seconds_and_labels_hide_credentials() {
        assert_eq!(
            three(Duration::from_secs(60)).probe_every(),
            PROBE_EVERY_MAX
        );
        assert_eq!(
            three(Duration::from_secs(2)).probe_every(),
            Duration::from_millis(500)
        );
        assert_eq!(
            Collectors::label("https://u:secret@h:9850"),
            "https://h:9850"
        );
        assert_eq!(Collectors::label("https://h:9850"), "https://h:9850");
    }
}
