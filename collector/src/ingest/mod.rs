//! Ingest: turns an HTTP request body into a durable commit and an ack.
//!
//! Steps, in order, each of which can refuse the batch with a precise status and reason:
//! authenticate the bearer token (401) → rate limit per agent (429 + Retry-After) → decode
//! (zstd bounded by the decompressed limit: 413; JSON: 400 naming the field) → check the
//! protocol version (400) → bind the token's agent id to the batch's (403) → validate every
//! field (400/413) → verify the evidence of a signed batch (`evidence.rs`: digest,
//! signature, key, chain link; 400/403/409) → measure clock offset and apply the skew policy
//! → commit (503 when the disk is full; a signed batch's seal in the same transaction) → ack.
//!
//! Invariants:
//! - Nothing of a rejected batch is stored: validation happens before the single commit.
//! - The ack is sent only after the store's durable commit returned.
//! - Every commit signals [`DataChanged`], so figures follow new data; ingest knows only the
//!   signal, not who listens (data flows one way).
//! - Every outcome is counted in [`IngestStats`], so tests and operators can compare counts in
//!   and out.

mod auth;
mod checks;
mod decode;
pub mod evidence;
pub mod import;
mod validate;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use attest_config::wire::{self, Ack, Batch};
use attest_config::{AgentAuth, IngestLimits, SkewPolicy};
use jiff::Timestamp;

use crate::changed::DataChanged;
use crate::store::{IngestBatch, Store, StoreError};
pub use auth::RateLimiter;
pub use validate::in_range as validate_instant;

pub use crate::reject::Rejection;
pub(crate) use auth::constant_time_eq;

/// How long a failed commit keeps the collector not ready (see [`Ingest::write_failure`]).
pub const WRITE_FAILURE_TTL: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

/// Counts of everything ingest saw; exported as collector metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub batches_accepted: AtomicU64,
    pub batches_duplicate: AtomicU64,
    pub measurements_stored: AtomicU64,
    pub measurements_duplicate: AtomicU64,
    pub rejected_unauthorized: AtomicU64,
    pub rejected_forbidden: AtomicU64,
    pub rejected_malformed: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub rejected_rate_limited: AtomicU64,
    pub rejected_skew: AtomicU64,
    /// Refused by `[ingest] checks = "known"` or `max_checks_per_agent`.
    pub rejected_checks: AtomicU64,
    /// Body not received within `[server] body_read_timeout` (408).
    pub rejected_slow: AtomicU64,
    /// Refused because request bodies in flight reached `max_inflight_body_bytes` (503).
    pub rejected_busy: AtomicU64,
    pub store_unavailable: AtomicU64,
    /// Refused for their evidence (`evidence.rs`; by reason in [`evidence::EvidenceStats`]).
    pub rejected_evidence: AtomicU64,
    /// Signed and unsigned batches that passed verification, and refusals by reason.
    pub evidence: evidence::EvidenceStats,
}

/// The newest result of each check of one agent: check → (ts, ok).
type AgentResults = std::collections::BTreeMap<String, (Timestamp, bool)>;

/// The newest committed result per (agent, check): what `attest_check_success` shows.
#[derive(Debug, Default)]
pub struct LatestResults {
    /// agent → its checks; nested so that a known pair is updated without allocating.
    map: std::sync::Mutex<std::collections::BTreeMap<String, AgentResults>>,
}

impl LatestResults {
    fn record(&self, agent: &str, ms: &[wire::Measurement]) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let checks = match map.get_mut(agent) {
            Some(c) => c,
            None => map.entry(agent.to_string()).or_default(),
        };
        for m in ms {
            match checks.get_mut(m.check.as_str()) {
                // Late data (a replayed spool) never overwrites a newer result.
                Some(e) if m.ts >= e.0 => *e = (m.ts, m.ok),
                Some(_) => {}
                None => {
                    checks.insert(m.check.clone(), (m.ts, m.ok));
                }
            }
        }
    }

    /// ((agent, check), (ts, ok)) in key order.
    pub fn snapshot(&self) -> Vec<((String, String), (Timestamp, bool))> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter()
            .flat_map(|(agent, checks)| {
                checks
                    .iter()
                    .map(move |(check, v)| ((agent.clone(), check.clone()), *v))
            })
            .collect()
    }
}

/// The request as the HTTP layer hands it over.
pub struct Request<'a> {
    pub authorization: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    pub received_at: Timestamp,
}

pub struct Ingest {
    store: Arc<dyn Store>,
    /// Replaced as a whole on a configuration reload (`set_agents`).
    tokens: std::sync::RwLock<auth::Tokens>,
    limits: IngestLimits,
    rate: RateLimiter,
    checks: checks::CheckBook,
    trust: std::sync::RwLock<evidence::Trust>,
    changed: DataChanged,
    /// When and why the latest commit failed (cleared by a successful one).
    write_failure: std::sync::Mutex<Option<(Timestamp, String)>>,
    pub stats: Arc<IngestStats>,
    pub latest: Arc<LatestResults>,
}

impl Ingest {
    /// `changed` is signalled after every durable commit. Seeds the per-agent check sets
    /// from the store; a store that cannot answer starts them empty (logged), which only
    /// lets the cap count from zero until restart.
    pub fn new(
        store: Arc<dyn Store>,
        agents: &[AgentAuth],
        limits: IngestLimits,
        changed: DataChanged,
    ) -> Ingest {
        let known = store.agent_checks().unwrap_or_else(|e| {
            tracing::warn!(
                "cannot read the stored check ids; max_checks_per_agent counts from zero: {e}"
            );
            Vec::new()
        });
        let keys = store.agent_keys().unwrap_or_else(|e| {
            tracing::warn!(
                "cannot read the stored agent keys; keys pinned before are learnt again at their next batch: {e}"
            );
            Vec::new()
        });
        Ingest {
            trust: std::sync::RwLock::new(evidence::Trust::new(
                agents,
                limits.trust_new_agent_keys,
                keys,
            )),
            checks: checks::CheckBook::new(&limits, known),
            store,
            tokens: std::sync::RwLock::new(auth::Tokens::new(agents)),
            rate: RateLimiter::new(limits.max_batches_per_second),
            limits,
            changed,
            write_failure: std::sync::Mutex::new(None),
            stats: Arc::new(IngestStats::default()),
            latest: Arc::new(LatestResults::default()),
        }
    }

    /// Runs the whole pipeline; blocking (the store commit is synchronous), so the HTTP layer
    /// calls it on a blocking thread.
    pub fn handle(&self, req: Request<'_>) -> Result<Ack, Rejection> {
        let agent = self.admit(req.authorization, req.received_at)?;
        self.handle_admitted(&agent, req.content_encoding, req.body, req.received_at)
    }

    /// The steps that need only the request headers: the bearer token (401) and the
    /// agent's rate (429). The HTTP layer runs them before it reads a byte of the body, so
    /// a client without a valid token cannot make the collector buffer anything.
    /// Returns the token's agent id.
    pub fn admit(&self, authorization: Option<&str>, now: Timestamp) -> Result<String, Rejection> {
        let res = self
            .authenticate(authorization)
            .and_then(|agent| self.rate.check(&agent, now).map(|()| agent));
        if let Err(r) = &res {
            self.count_rejection(r);
        }
        res
    }

    /// The agent a bearer token (`Authorization` header value) belongs to.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<String, Rejection> {
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.authenticate(authorization).map(str::to_string)
    }

    /// The agents allowed in from now on (a configuration reload); batches in flight finish
    /// with the tokens they were authenticated with.
    /// Which check ids ingest accepts from now on (`[ingest] checks`; "known" follows the
    /// services of a reloaded configuration).
    pub fn set_accepted_checks(&self, accept: attest_config::AcceptChecks) {
        self.checks.set_accept(accept);
    }

    pub fn set_agents(&self, agents: &[AgentAuth]) {
        let mut tokens = self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *tokens = auth::Tokens::new(agents);
        drop(tokens);
        self.trust
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_agents(agents);
    }

    /// The rest of the pipeline for a request [`Ingest::admit`] let in; blocking.
    pub fn handle_admitted(
        &self,
        agent: &str,
        content_encoding: Option<&str>,
        body: &[u8],
        received_at: Timestamp,
    ) -> Result<Ack, Rejection> {
        let res = self.pipeline(agent, content_encoding, body, received_at);
        if let Err(r) = &res {
            self.count_rejection(r);
        }
        res
    }

    /// Counts a refusal the HTTP layer made on the ingest route (body too large or too slow,
    /// in-flight bytes exhausted), so every refused batch shows in the metrics.
    pub fn count_http_refusal(&self, r: &Rejection) {
        let s = &self.stats;
        match r.status {
            408 => {
                s.rejected_slow.fetch_add(1, Ordering::Relaxed);
            }
            503 => {
                s.rejected_busy.fetch_add(1, Ordering::Relaxed);
            }
            _ => self.count_rejection(r),
        }
    }

    /// Why the store refused the most recent commit, while that is recent and no commit has
    /// succeeded since; `None` when writes work (as far as ingest has seen). Readiness
    /// reports it, so a collector whose disk is full is taken out of rotation. The failure
    /// expires after [`WRITE_FAILURE_TTL`] so that a collector nobody sends to any more
    /// (because it is not ready) becomes ready again and is retried.
    pub fn write_failure(&self, now: Timestamp) -> Option<String> {
        let g = self
            .write_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.as_ref()
            .filter(|(at, _)| now.duration_since(*at) < WRITE_FAILURE_TTL)
            .map(|(_, why)| why.clone())
    }

    fn note_write(&self, outcome: Option<(Timestamp, String)>) {
        *self
            .write_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = outcome;
    }

    fn pipeline(
        &self,
        agent: &str,
        content_encoding: Option<&str>,
        body: &[u8],
        received_at: Timestamp,
    ) -> Result<Ack, Rejection> {
        let json = decode::decompress(body, content_encoding, self.limits.max_decompressed_bytes)?;
        let batch: Batch = decode::parse(&json)?;
        if batch.agent != agent {
            return Err(Rejection::new(
                403,
                format!(
                    "the token belongs to agent {agent:?} but the batch claims agent {:?}",
                    batch.agent
                ),
            )
            .field("agent"));
        }
        validate::batch(&batch, &self.limits)?;
        let seal = {
            let trust = self
                .trust
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            evidence::verify(&batch, &trust, &*self.store, &self.stats.evidence)?
        };
        let version = batch.version;
        let ingest = self.apply_skew(batch, received_at, seal)?;
        validate::horizon(
            &ingest.measurements,
            &ingest.gaps,
            &self.limits,
            received_at,
        )?;
        self.checks
            .admit(&ingest.agent, &ingest.measurements, &ingest.gaps)?;
        self.commit(ingest, version)
    }

    /// Applies the skew policy; a signed batch's seal records the shift (`correct`), so the
    /// digest can be recomputed from the stored, shifted timestamps.
    fn apply_skew(
        &self,
        batch: Batch,
        received_at: Timestamp,
        mut seal: Option<crate::store::BatchSeal>,
    ) -> Result<IngestBatch, Rejection> {
        let offset = batch.sent_at.duration_since(received_at);
        let offset_ms = offset.as_millis() as i64;
        let bound = self.limits.max_clock_skew;
        let beyond = offset_ms.unsigned_abs() > bound.as_millis() as u64;
        let mut measurements = batch.measurements;
        if beyond {
            match self.limits.clock_skew_policy {
                SkewPolicy::Flag => {}
                SkewPolicy::Reject => {
                    return Err(Rejection::new(
                        400,
                        format!("agent clock is {offset_ms} ms off the collector's (bound {} ms); fix the agent's time sync (NTP)", bound.as_millis()),
                    )
                    .field("sent_at"));
                }
                SkewPolicy::Correct => {
                    if let Some(s) = &mut seal {
                        s.ts_shift_ms = -offset_ms;
                    }
                    let shift = jiff::SignedDuration::from_millis(-offset_ms);
                    for m in &mut measurements {
                        m.ts = m.ts.checked_add(shift).map_err(|_| {
                            Rejection::new(400, "timestamp out of range after clock correction")
                                .field("measurements.ts")
                        })?;
                    }
                }
            }
        }
        Ok(IngestBatch {
            agent: batch.agent,
            seq: batch.seq,
            received_at,
            clock_offset_ms: offset_ms,
            measurements,
            gaps: batch.gaps,
            spool: batch.spool,
            seal,
        })
    }

    /// Commits and acks in the batch's protocol `version`.
    fn commit(&self, batch: IngestBatch, version: u32) -> Result<Ack, Rejection> {
        let batch = Arc::new(batch);
        let res = self.store.commit_shared(batch.clone());
        self.note_write(
            res.as_ref()
                .err()
                .map(|e| (batch.received_at, e.to_string())),
        );
        match res {
            Ok(out) => {
                self.changed.signal();
                let s = &self.stats;
                if out.duplicate_batch {
                    s.batches_duplicate.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.batches_accepted.fetch_add(1, Ordering::Relaxed);
                }
                s.measurements_stored
                    .fetch_add(out.stored, Ordering::Relaxed);
                s.measurements_duplicate
                    .fetch_add(out.duplicate_measurements, Ordering::Relaxed);
                self.latest.record(&batch.agent, &batch.measurements);
                if let Some(seal) = &batch.seal {
                    self.trust
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .note_stored(&batch.agent, seal.key);
                }
                Ok(Ack {
                    version,
                    acked_seq: batch.seq,
                    duplicate: out.duplicate_batch,
                    stored: out.stored,
                })
            }
            Err(StoreError::Full(e)) => Err(Rejection::new(
                503,
                format!("collector storage is full, retry later: {e}"),
            )
            .retry_after(30)),
            Err(e) => Err(Rejection::new(
                503,
                format!("collector storage failed, retry later: {e}"),
            )
            .retry_after(5)),
        }
    }

    fn count_rejection(&self, r: &Rejection) {
        let s = &self.stats;
        let c = match r.status {
            _ if r
                .field
                .as_deref()
                .is_some_and(|f| f.starts_with("evidence")) =>
            {
                &s.rejected_evidence
            }
            401 => &s.rejected_unauthorized,
            403 => &s.rejected_forbidden,
            413 => &s.rejected_too_large,
            429 => &s.rejected_rate_limited,
            503 => &s.store_unavailable,
            _ if r.field.as_deref() == Some("sent_at") => &s.rejected_skew,
            _ if r.field.as_deref().is_some_and(|f| f.ends_with("].check"))
                && r.reason.contains("[ingest]") =>
            {
                &s.rejected_checks
            }
            _ => &s.rejected_malformed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Retry-After for rate-limited agents: the bucket refills one batch in `1/rate` seconds.
pub(crate) fn retry_after_secs(rate: f64) -> u64 {
    Duration::from_secs_f64((1.0 / rate.max(0.001)).min(3600.0))
        .as_secs()
        .max(1)
}

/// The untrusted-bytes half of the pipeline, without token, rate limit or store: decode,
/// parse, validate and the clock horizon, as [`Ingest::handle`] runs them. For the fuzz
/// targets (`fuzz/`) and their corpus replay; must never panic, whatever `body` holds.
#[doc(hidden)]
pub fn decode_and_validate(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &IngestLimits,
    now: Timestamp,
) -> Result<Batch, Rejection> {
    let json = decode::decompress(body, content_encoding, limits.max_decompressed_bytes)?;
    let batch: Batch = decode::parse(&json)?;
    validate::batch(&batch, limits)?;
    validate::horizon(&batch.measurements, &batch.gaps, limits, now)?;
    Ok(batch)
}
