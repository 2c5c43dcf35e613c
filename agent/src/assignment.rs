//! Central check assignment, agent side: fetch the checks the collector assigns to this
//! agent, keep the last good assignment on disk, and hand every new one to the control loop.
//!
//! Invariants:
//! - Only a validated assignment is used or saved: the received TOML passes the same loader
//!   as the agent's own file (`attest_config::parse_checks`). A bad one is logged and the
//!   previous one keeps running.
//! - The last good assignment is saved atomically (write, fsync, rename) as
//!   `<spool dir>/assignment.json` before it is applied, so a restart while the collector is
//!   unreachable runs the same checks.
//! - Fetching never blocks measuring: the agent starts on its saved assignment (or its own
//!   checks only) and the poller runs beside it; an unreachable collector means retrying
//!   with backoff, never stopping checks.
//! - A long poll (`?wait=`) with `If-None-Match` makes a change arrive as soon as the
//!   collector has it; a 304 changes nothing.
//! - Each poll goes to the transport's active collector (`transport::collectors`); a
//!   connection error, timeout or 5xx there is reported as that collector's fault, so the
//!   poller and the transport fail over together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use attest_config::Check;
use attest_config::wire::{self, Assignment, ErrorBody};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, IF_NONE_MATCH};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::transport::collectors::Collectors;

/// File name of the saved assignment inside the spool directory.
pub const FILE_NAME: &str = "assignment.json";

/// How long one long poll may wait at the collector.
const LONG_POLL: Duration = Duration::from_secs(60);
/// Retry bounds while the collector is unreachable or refuses.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// A validated assignment: its revision and checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Central {
    pub revision: String,
    /// Shared with the scheduler, which keeps the running definitions without a copy.
    pub checks: Vec<Arc<Check>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path} is not a saved assignment: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("the assignment is for agent {found:?}, this agent is {expected:?}")]
    OtherAgent { expected: String, found: String },
    #[error("the collector sent invalid checks (revision {revision}):\n{errors}")]
    Invalid { revision: String, errors: String },
    #[error("cannot save the assignment to {path}: {err}")]
    Write { path: PathBuf, err: std::io::Error },
}

/// Validates a received (or saved) assignment for `agent`.
pub fn validate(agent: &str, a: &Assignment) -> Result<Central, AssignmentError> {
    if a.agent != agent {
        return Err(AssignmentError::OtherAgent {
            expected: agent.to_string(),
            found: a.agent.clone(),
        });
    }
    let name = format!("assignment {}", a.revision);
    let checks =
        attest_config::parse_checks(&name, &a.checks).map_err(|e| AssignmentError::Invalid {
            revision: a.revision.clone(),
            errors: e.to_string(),
        })?;
    Ok(Central {
        revision: a.revision.clone(),
        checks: share_all(checks),
    })
}

/// The saved assignment in `spool_dir`, if there is one; `Err` when it exists but cannot be
/// used (the caller logs it and starts without).
pub fn load_saved(spool_dir: &Path, agent: &str) -> Result<Option<Central>, AssignmentError> {
    let path = spool_dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(AssignmentError::Read { path, err }),
    };
    let a: Assignment = serde_json::from_slice(&bytes).map_err(|e| AssignmentError::Format {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    validate(agent, &a).map(Some)
}

/// Saves `a` as the last good assignment: temp file, fsync, rename, fsync of the directory.
pub fn save(spool_dir: &Path, a: &Assignment) -> Result<(), AssignmentError> {
    let path = spool_dir.join(FILE_NAME);
    let tmp = spool_dir.join(format!("{FILE_NAME}.tmp"));
    let write = || -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(a).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(spool_dir)?.sync_all()
    };
    write().map_err(|err| AssignmentError::Write { path, err })
}

/// A definition as the agent keeps it while the check runs: one copy, shared by the control
/// loop (own checks, the collector's assignment) and the scheduler.
pub fn share(check: Check) -> Arc<Check> {
    Arc::new(check)
}

/// [`share`] for a list. The list is shrunk: collected in place, it would keep the loader's
/// buffer of whole definitions (392 bytes per check) to hold 8-byte pointers (measured
/// with `agent/tests/memory_per_check.rs`).
pub fn share_all(checks: Vec<Check>) -> Vec<Arc<Check>> {
    let mut all: Vec<Arc<Check>> = checks.into_iter().map(share).collect();
    all.shrink_to_fit();
    all
}

/// Local and central checks as one running set. A local check wins over a central one with
/// the same id; the returned ids are those conflicts (an error the operator must fix). The
/// definitions are shared, not copied.
pub fn merge(local: &[Arc<Check>], central: Option<&Central>) -> (Vec<Arc<Check>>, Vec<String>) {
    let mut all: Vec<Arc<Check>> = local.to_vec();
    let mut conflicts = Vec::new();
    for c in central.map_or(&[][..], |c| &c.checks) {
        if local.iter().any(|l| l.id == c.id) {
            conflicts.push(c.id.clone());
        } else {
            all.push(c.clone());
        }
    }
    (all, conflicts)
}

/// Asks the collector for this agent's checks until `cancel` fires.
pub struct Poller {
    pub client: reqwest::Client,
    /// Where to ask: the active collector's `/api/v1/agents/<id>/checks`.
    pub collectors: Arc<Collectors>,
    /// `/api/v1/agents/<id>/checks`.
    pub path: String,
    pub agent: String,
    pub token: String,
    pub spool_dir: PathBuf,
    /// The agent's request timeout; a long poll gets this on top of its wait.
    pub request_timeout: Duration,
    /// Ids of the agent's own checks, sent so the collector can report conflicts.
    pub local_ids: watch::Receiver<Vec<String>>,
}

/// What one request came to.
enum Polled {
    New(Assignment),
    Unchanged,
    /// Retry after this long.
    Failed(String, Option<Duration>),
}

impl Poller {
    pub fn new(
        client: reqwest::Client,
        collectors: Arc<Collectors>,
        agent: &str,
        token: &str,
        spool_dir: PathBuf,
        request_timeout: Duration,
        local_ids: watch::Receiver<Vec<String>>,
    ) -> Poller {
        Poller {
            client,
            collectors,
            path: wire::agent_checks_path(agent),
            agent: agent.to_string(),
            token: token.to_string(),
            spool_dir,
            request_timeout,
            local_ids,
        }
    }

    /// Publishes every new valid assignment on `tx` (after saving it); starts from the
    /// revision already in `tx`.
    pub async fn run(self, tx: watch::Sender<Option<Arc<Central>>>, cancel: CancellationToken) {
        let mut known: Option<String> = tx.borrow().as_ref().map(|c| c.revision.clone());
        let mut delay = RETRY_MIN;
        let mut failing = false;
        loop {
            let polled = tokio::select! {
                _ = cancel.cancelled() => return,
                p = self.poll(known.as_deref()) => p,
            };
            let wait = match polled {
                Polled::Unchanged => None,
                Polled::New(a) => {
                    // Remember the revision even when it is refused, so the next poll
                    // waits for a change instead of fetching the same bad text again.
                    known = Some(a.revision.clone());
                    self.take(&a, &tx);
                    None
                }
                Polled::Failed(why, after) => {
                    if failing {
                        tracing::debug!("assignment: {why}");
                    } else {
                        tracing::warn!(
                            "cannot fetch the check assignment, running on the last good one: {why}"
                        );
                    }
                    Some(after.unwrap_or(delay))
                }
            };
            failing = wait.is_some();
            match wait {
                None => delay = RETRY_MIN,
                Some(w) => {
                    delay = (delay * 2).min(RETRY_MAX);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(w) => {}
                    }
                }
            }
        }
    }

    /// Validates, saves and publishes `a`; a bad one is logged and dropped.
    fn take(&self, a: &Assignment, tx: &watch::Sender<Option<Arc<Central>>>) {
        let central = match validate(&self.agent, a) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("refusing the new assignment, keeping the previous one: {e}");
                return;
            }
        };
        if let Err(e) = save(&self.spool_dir, a) {
            tracing::error!("{e}; the assignment runs but will not survive a restart");
        }
        tracing::info!(
            revision = %central.revision,
            checks = central.checks.len(),
            "new check assignment from the collector"
        );
        tx.send_replace(Some(Arc::new(central)));
    }

    async fn poll(&self, known: Option<&str>) -> Polled {
        let wait = if known.is_some() {
            LONG_POLL
        } else {
            Duration::ZERO
        };
        let local = self.local_ids.borrow().join(",");
        let target = self.collectors.active();
        let url = target.url(&format!("{}?wait={}", self.path, wait.as_secs()));
        let mut req = self
            .client
            .get(url)
            .timeout(wait + self.request_timeout)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(wire::LOCAL_CHECKS_HEADER, local);
        if let Some(k) = known {
            req = req.header(IF_NONE_MATCH, format!("\"{k}\""));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = format!(
                    "collector unreachable: {}",
                    crate::transport::error_chain(&e)
                );
                self.collectors.failed(&target, &why);
                return Polled::Failed(why, None);
            }
        };
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if crate::transport::is_collector_fault(status) {
            let why = format!("{status}: {}", reason(&body));
            self.collectors.failed(&target, &why);
            return Polled::Failed(why, None);
        }
        match status {
            StatusCode::NOT_MODIFIED => Polled::Unchanged,
            StatusCode::OK => match serde_json::from_slice::<Assignment>(&body) {
                Ok(a) => Polled::New(a),
                Err(e) => Polled::Failed(format!("unreadable assignment: {e}"), None),
            },
            // A collector without central assignment: ask again now and then.
            StatusCode::NOT_FOUND => Polled::Failed(
                format!("{status}: {}", reason(&body)),
                Some(Duration::from_secs(60)),
            ),
            _ => Polled::Failed(format!("{status}: {}", reason(&body)), None),
        }
    }
}

fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).map_or_else(
        |_| String::from_utf8_lossy(body).chars().take(200).collect(),
        |e| e.error,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKS: &str = "[[check]]\nid = \"c1\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n\n\
                          [[check]]\nid = \"c2\"\nkind = \"tcp\"\naddress = \"127.0.0.1:2\"\n";

    fn assignment(agent: &str, checks: &str) -> Assignment {
        Assignment {
            version: wire::ASSIGNMENT_VERSION,
            agent: agent.into(),
            revision: attest_config::fleet::revision(checks),
            check_ids: vec![],
            checks: checks.into(),
        }
    }

    #[test]
    fn saved_assignments_come_back_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load_saved(dir.path(), "a").expect("none yet"), None);
        let a = assignment("a", CHECKS);
        save(dir.path(), &a).expect("save");
        let back = load_saved(dir.path(), "a").expect("valid").expect("saved");
        assert_eq!(back.revision, a.revision);
        assert_eq!(back.checks.len(), 2);
        // Saved for another agent (a copied spool): not used.
        assert!(matches!(
            load_saved(dir.path(), "b"),
            Err(AssignmentError::OtherAgent { .. })
        ));
        std::fs::write(dir.path().join(FILE_NAME), b"{").expect("write");
        assert!(matches!(
            load_saved(dir.path(), "a"),
            Err(AssignmentError::Format { .. })
        ));
        let bad = assignment("a", "[[check]]\nid = \"c1\"\nkind = \"smtp\"\n");
        let err = validate("a", &bad).expect_err("unknown kind");
        assert!(err.to_string().contains("check[0].kind"), "{err}");
    }

    #[test]
    fn local_checks_win_and_conflicts_are_named() {
        let local = attest_config::parse_checks(
            "local",
            "[[check]]\nid = \"c2\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\n\n\
             [[check]]\nid = \"mine\"\nkind = \"tcp\"\naddress = \"127.0.0.1:8\"\n",
        )
        .expect("valid");
        let local = share_all(local);
        let central = validate("a", &assignment("a", CHECKS)).expect("valid");
        let (all, conflicts) = merge(&local, Some(&central));
        let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c2", "mine", "c1"]);
        assert_eq!(conflicts, ["c2"]);
        assert_eq!(all[0], local[0], "the local definition runs");
    }
}
