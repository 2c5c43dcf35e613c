//! Wire-level load driver: plays an agent's role on the ingest protocol (zstd JSON, bearer
//! token, `(agent, seq)` batches) so a test knows every measurement key it produced.
//!
//! Invariants:
//! - Every measurement the driver creates has a key `(agent, check, ts)` unique within the
//!   driver's run (ts advance by whole microseconds from a per-agent base), and lands in
//!   [`Produced`] before its batch is first sent.
//! - [`WireAgent::deliver`] behaves like the real transport: it resends the *same* batch
//!   (same seq, same content) until an ack for that seq arrives, on network errors, 5xx and
//!   429; any other 4xx is returned as a refusal, never retried.
//! - Every wait is bounded; running out of time is an error naming the seq, not a hang.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attest_config::wire::{self, Ack, Batch, ErrorBody, Gap, Measurement};
use jiff::{SignedDuration, Timestamp};

/// Identity of one stored or produced measurement: agent, check, probe start in ns.
pub type Key = (String, String, i128);

pub fn key(agent: &str, m: &Measurement) -> Key {
    (agent.to_string(), m.check.clone(), m.ts.as_nanosecond())
}

/// What one POST came to.
#[derive(Debug, Clone)]
pub enum Reply {
    Acked(Ack),
    Refused {
        status: u16,
        error: Option<ErrorBody>,
        retry_after: Option<u64>,
    },
    /// No HTTP answer (connection refused, reset, timeout).
    Unreachable(String),
}

impl Reply {
    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Acked(_) => Some(200),
            Reply::Refused { status, .. } => Some(*status),
            Reply::Unreachable(_) => None,
        }
    }

    /// Worth resending the same batch: no answer, 5xx or 429.
    pub fn retryable(&self) -> bool {
        match self {
            Reply::Acked(_) => false,
            Reply::Refused { status, .. } => *status >= 500 || *status == 429,
            Reply::Unreachable(_) => true,
        }
    }
}

/// Counts of what deliveries saw, for the test's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStats {
    pub batches_acked: u64,
    /// Acks with `duplicate: true` (the collector had committed the batch before).
    pub duplicate_acks: u64,
    /// Attempts that failed and were resent.
    pub retries: u64,
    /// Sum of `stored` over all acks.
    pub stored: u64,
}

/// Why [`WireAgent::deliver`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("batch seq {seq} of agent {agent} refused with {status}: {error:?}")]
    Refused {
        agent: String,
        seq: u64,
        status: u16,
        error: Option<ErrorBody>,
    },
    #[error("batch seq {seq} of agent {agent} not acked within {bound:?}; last reply: {last:?}")]
    Timeout {
        agent: String,
        seq: u64,
        bound: Duration,
        last: Option<Reply>,
    },
    #[error("ack for seq {got} while delivering seq {seq} of agent {agent}")]
    WrongAck { agent: String, seq: u64, got: u64 },
}

/// One simulated agent talking to a collector.
#[derive(Clone)]
pub struct WireAgent {
    pub id: String,
    pub token: String,
    url: String,
    client: reqwest::Client,
}

impl WireAgent {
    /// `base_url` like `http://127.0.0.1:PORT`.
    pub fn new(base_url: &str, id: &str, token: &str) -> WireAgent {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client with defaults");
        WireAgent {
            id: id.to_string(),
            token: token.to_string(),
            url: format!("{}{}", base_url.trim_end_matches('/'), wire::INGEST_PATH),
            client,
        }
    }

    /// A batch of this agent with the given seq; `sent_at` is set when it is posted.
    pub fn batch(&self, seq: u64, measurements: Vec<Measurement>, gaps: Vec<Gap>) -> Batch {
        Batch {
            version: wire::PROTOCOL_VERSION_UNSIGNED,
            agent: self.id.clone(),
            seq,
            sent_at: crate::wall_now(),
            measurements,
            gaps,
            spool: None,
            evidence: None,
        }
    }

    /// Posts `batch` once, zstd-compressed, with this agent's token.
    pub async fn post(&self, batch: &Batch) -> Reply {
        let mut b = batch.clone();
        b.sent_at = crate::wall_now();
        let json = serde_json::to_vec(&b).expect("a wire batch always serializes");
        let body = zstd::bulk::compress(&json, 3).expect("zstd of an in-memory buffer");
        self.post_raw(body, Some("zstd"), &self.token).await
    }

    /// Posts arbitrary bytes: for malformed bodies and foreign tokens.
    pub async fn post_raw(&self, body: Vec<u8>, encoding: Option<&str>, token: &str) -> Reply {
        let mut req = self
            .client
            .post(&self.url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Reply::Unreachable(e.to_string()),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Reply::Unreachable(format!("body of a {status} answer: {e}")),
        };
        if status == 200 {
            match serde_json::from_slice::<Ack>(&bytes) {
                Ok(ack) => Reply::Acked(ack),
                Err(e) => Reply::Unreachable(format!("unreadable ack: {e}")),
            }
        } else {
            Reply::Refused {
                status,
                error: serde_json::from_slice(&bytes).ok(),
                retry_after,
            }
        }
    }

    /// Resends `batch` until acked, like the agent's transport; `stats` counts what happened.
    /// Waits between attempts are short (≤ 200 ms, or a smaller `Retry-After`) so tests stay
    /// fast; the collector may ask for longer, but the protocol allows an early retry.
    pub async fn deliver(
        &self,
        batch: &Batch,
        bound: Duration,
        stats: &mut DeliveryStats,
    ) -> Result<Ack, DeliverError> {
        let start = Instant::now();
        let mut last = None;
        let mut wait = Duration::from_millis(20);
        while start.elapsed() < bound {
            let reply = self.post(batch).await;
            match &reply {
                Reply::Acked(ack) if ack.acked_seq == batch.seq => {
                    stats.batches_acked += 1;
                    stats.duplicate_acks += u64::from(ack.duplicate);
                    stats.stored += ack.stored;
                    return Ok(ack.clone());
                }
                Reply::Acked(ack) => {
                    return Err(DeliverError::WrongAck {
                        agent: self.id.clone(),
                        seq: batch.seq,
                        got: ack.acked_seq,
                    });
                }
                r if !r.retryable() => {
                    let (status, error) = match r {
                        Reply::Refused { status, error, .. } => (*status, error.clone()),
                        _ => (0, None),
                    };
                    return Err(DeliverError::Refused {
                        agent: self.id.clone(),
                        seq: batch.seq,
                        status,
                        error,
                    });
                }
                _ => {}
            }
            stats.retries += 1;
            last = Some(reply);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
        Err(DeliverError::Timeout {
            agent: self.id.clone(),
            seq: batch.seq,
            bound,
            last,
        })
    }
}

/// `n` successful measurements of `check`, `step_us` microseconds apart from `start`.
pub fn measurements(check: &str, start: Timestamp, n: usize, step_us: i64) -> Vec<Measurement> {
    (0..n)
        .map(|i| {
            let ts = start
                .checked_add(SignedDuration::from_micros(step_us * i as i64))
                .expect("test timestamps stay near now");
            let mut m = Measurement::new(check, ts, true);
            m.duration_seconds = Some(0.001 * (i % 7) as f64);
            m
        })
        .collect()
}

/// Every key produced by drivers, shared between their tasks.
#[derive(Debug, Clone, Default)]
pub struct Produced(Arc<Mutex<Vec<Key>>>);

impl Produced {
    pub fn add(&self, agent: &str, ms: &[Measurement]) {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        v.extend(ms.iter().map(|m| key(agent, m)));
    }

    pub fn keys(&self) -> Vec<Key> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Shape of a steady load from one simulated agent.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub checks: Vec<String>,
    /// Measurements per check per batch.
    pub per_check: usize,
    /// Pause between acked batches.
    pub pace: Duration,
    /// Longest wait for one batch's ack (covers collector restarts).
    pub ack_bound: Duration,
}

/// Sends batches (seq 1, 2, ...) until `stop` is set, each delivered until acked; records
/// every key in `produced` before the first attempt. Returns the delivery counts.
pub async fn steady_load(
    agent: WireAgent,
    plan: LoadPlan,
    produced: Produced,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<DeliveryStats, DeliverError> {
    let mut stats = DeliveryStats::default();
    // A per-agent base one hour back keeps keys of different runs and agents apart and
    // inside the collector's accepted range; ts then advance by 1 µs per measurement.
    let base = crate::wall_now()
        .checked_sub(SignedDuration::from_mins(30))
        .expect("now minus 30 minutes");
    let mut seq = 1u64;
    let mut offset_us = 0i64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let start = base
            .checked_add(SignedDuration::from_micros(offset_us))
            .expect("test timestamps stay near now");
        let ms: Vec<Measurement> = plan
            .checks
            .iter()
            .flat_map(|c| measurements(c, start, plan.per_check, 1))
            .collect();
        offset_us += plan.per_check as i64;
        produced.add(&agent.id, &ms);
        let batch = agent.batch(seq, ms, Vec::new());
        agent.deliver(&batch, plan.ack_bound, &mut stats).await?;
        seq += 1;
        tokio::time::sleep(plan.pace).await;
    }
    Ok(stats)
}

/// The result of comparing produced keys with stored ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub produced: usize,
    pub stored: usize,
    /// Produced but not stored.
    pub missing: Vec<Key>,
    /// Stored more than once (by key).
    pub duplicated: Vec<Key>,
    /// Stored but never produced.
    pub unexpected: Vec<Key>,
}

impl Tally {
    pub fn exact(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = |v: &[Key]| v.iter().take(5).cloned().collect::<Vec<_>>();
        write!(
            f,
            "produced {} stored {}: missing {} {:?}, duplicated {} {:?}, unexpected {} {:?}",
            self.produced,
            self.stored,
            self.missing.len(),
            head(&self.missing),
            self.duplicated.len(),
            head(&self.duplicated),
            self.unexpected.len(),
            head(&self.unexpected)
        )
    }
}

/// Compares the full key lists. `produced` may repeat a key (a resent batch); `stored` must not.
pub fn tally(produced: &[Key], stored: &[Key]) -> Tally {
    let want: BTreeSet<&Key> = produced.iter().collect();
    let mut seen: BTreeMap<&Key, usize> = BTreeMap::new();
    for k in stored {
        *seen.entry(k).or_default() += 1;
    }
    Tally {
        produced: want.len(),
        stored: stored.len(),
        missing: want
            .iter()
            .filter(|k| !seen.contains_key(**k))
            .map(|k| (*k).clone())
            .collect(),
        duplicated: seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| (*k).clone())
            .collect(),
        unexpected: seen
            .keys()
            .filter(|k| !want.contains(**k))
            .map(|k| (*k).clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(a: &str, t: i128) -> Key {
        (a.into(), "c".into(), t)
    }

    #[test]
    fn tally_finds_each_kind_of_error() {
        let produced = vec![k("a", 1), k("a", 2), k("a", 2), k("a", 3)];
        let stored = vec![k("a", 1), k("a", 1), k("a", 2), k("b", 9)];
        let t = tally(&produced, &stored);
        assert_eq!(t.produced, 3);
        assert_eq!(t.missing, vec![k("a", 3)]);
        assert_eq!(t.duplicated, vec![k("a", 1)]);
        assert_eq!(t.unexpected, vec![k("b", 9)]);
        assert!(!t.exact());
        assert!(tally(&produced, &[k("a", 1), k("a", 2), k("a", 3)]).exact());
    }

    #[test]
    fn measurements_have_distinct_keys() {
        let t0: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let ms = measurements("c", t0, 1000, 1);
        let keys: BTreeSet<Key> = ms.iter().map(|m| key("a", m)).collect();
        assert_eq!(keys.len(), 1000);
    }
}
