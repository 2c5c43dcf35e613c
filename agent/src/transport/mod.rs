//! Transport: cuts batches from the spool and delivers them to the collector, in order,
//! one at a time, until each is acknowledged.
//!
//! Invariants:
//! - Holds only the spool's read half ([`SpoolReader`]): it can cut and ack batches, never
//!   append. A batch leaves the spool only through its ack, after the collector answered with
//!   an `Ack` for exactly that seq (the collector acks only after a durable commit).
//! - Sends the measurements' stored bytes as they are (`body.rs`): no decode or re-encode per
//!   attempt, and a resent batch carries the same measurement bytes.
//! - Never gives up on a timer and never deletes on 401/403/404/405/408/415/429, 5xx or a
//!   network error: it retries with exponential backoff and jitter, honouring `Retry-After`
//!   on 429/503 (see [`refuses_the_batch`]).
//! - A batch the collector refuses with any other 4xx (400, 413, 422, …: the batch itself is
//!   at fault and will never be accepted as is) is logged loudly, counted and moved to
//!   `<spool>/quarantine/<seq>.json`, then acked in the spool, so one bad batch cannot block
//!   delivery forever and its measurements stay on disk for an operator.
//! - Each attempt carries the agent's send time (`sent_at`) so the collector can measure
//!   clock offset.
//! - Each attempt goes to the active collector of [`Collectors`]. A connection error, a
//!   timeout or a 5xx is a fault of that collector: the next one takes over and the batch is
//!   resent there at once, until every collector failed once since the last answer; after
//!   that the backoff applies. 4xx answers keep the handling above and never fail over.
//! - With a signing key, every batch is sent in protocol version 2 with its `evidence`
//!   (`seal.rs`): digest, previous digest and signature, computed once per batch; the digest
//!   goes into the spool with the ack, so the next batch links to it. A collector that
//!   refuses version 2 (`400` on the field `version`: an older collector) gets the same batch
//!   at once in version 1, unsigned, and version 2 is tried there again after
//!   [`UNSIGNED_RETRY`] (docs/wire.md, "Versioning").

pub mod backoff;
pub mod body;
pub mod collectors;
pub mod seal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_config::TransportConfig;
use attest_config::wire::{self, Ack, ErrorBody};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::spool::{PendingBatch, SpoolReader};
use backoff::{Backoff, BackoffConfig};
use body::Envelope;
use collectors::{Collectors, Target};
use seal::Sealed;

/// How long the agent sends unsigned (version 1) batches to a collector that refused
/// version 2, before it tries version 2 there again.
pub const UNSIGNED_RETRY: Duration = Duration::from_secs(3600);

/// Counters exported by the agent's telemetry.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub batches_sent_total: AtomicU64,
    pub batches_acked_total: AtomicU64,
    pub measurements_acked_total: AtomicU64,
    pub send_errors_total: AtomicU64,
    pub batches_quarantined_total: AtomicU64,
    /// Batches sent unsigned (version 1) because the collector refused version 2.
    pub batches_sent_unsigned_total: AtomicU64,
    /// Unix seconds of the last ack, 0 before the first.
    pub last_ack_unix: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "cannot read TLS file {path}: {source}; check the [transport] paths in the agent config"
    )]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid TLS material in {path}: {reason}")]
    TlsMaterial { path: PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("invalid retry settings in [transport]: {0}")]
    Backoff(#[from] backoff::BackoffError),
}

/// What one delivery attempt came to.
#[derive(Debug)]
enum Outcome {
    Acked(Ack),
    /// Keep the batch and try again later (server's floor for the wait, if it gave one).
    /// `collector_fault`: the collector itself failed (unreachable, timeout, 5xx), so
    /// another collector may take the batch.
    Retry {
        retry_after: Option<Duration>,
        why: String,
        collector_fault: bool,
    },
    /// The collector rejected the batch as malformed; retrying the same bytes cannot help.
    Rejected {
        status: StatusCode,
        why: String,
    },
    /// The collector does not speak this protocol version (an older collector refusing a
    /// signed batch): resend at once in version 1.
    OldCollector {
        why: String,
    },
}

pub struct Transport {
    client: reqwest::Client,
    collectors: Arc<Collectors>,
    token: String,
    agent: String,
    cfg: TransportConfig,
    spool: SpoolReader,
    quarantine_dir: PathBuf,
    backoff: Backoff,
    clock: Arc<dyn Clock>,
    /// Signs batches (version 2) when set; without it batches go out unsigned (version 1).
    key: Option<attest_config::evidence::keys::SecretKey>,
    /// Collectors (by base URL) that refused version 2, and since when.
    unsigned_since: Mutex<HashMap<String, std::time::Instant>>,
    pub stats: Arc<TransportStats>,
}

impl Transport {
    pub fn new(
        agent: &str,
        collectors: Arc<Collectors>,
        token: &str,
        cfg: TransportConfig,
        spool: SpoolReader,
        spool_dir: PathBuf,
    ) -> Result<Transport, TransportError> {
        let client = build_client_for(&cfg, collectors.bases())?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let seed = agent
            .bytes()
            .fold(clock.now_utc().as_nanosecond() as u64, |h, b| {
                h.rotate_left(5) ^ u64::from(b)
            });
        let backoff = Backoff::new(backoff_config(&cfg), seed)?;
        Ok(Transport {
            client,
            collectors,
            token: token.to_string(),
            agent: agent.to_string(),
            cfg,
            spool,
            quarantine_dir: spool_dir.join("quarantine"),
            backoff,
            clock,
            key: None,
            unsigned_since: Mutex::new(HashMap::new()),
            stats: Arc::new(TransportStats::default()),
        })
    }

    /// Signs every batch with `key` from now on (protocol version 2).
    pub fn with_signing_key(mut self, key: attest_config::evidence::keys::SecretKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The HTTP client deliveries use (a handle: clones share its connections and TLS
    /// setup), for the agent's other requests to the collectors.
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Delivers until `cancel` fires. `appended` is notified whenever the spool grows.
    pub async fn run(self, appended: Arc<Notify>, cancel: CancellationToken) {
        let mut backoff = self.backoff.clone();
        // Failovers since the last answer that settled a batch: while some collector has not
        // been tried since, a failover resends at once instead of backing off.
        let mut failovers_in_row = 0usize;
        // The seal of the batch being delivered: computed once, reused by every attempt.
        let mut sealed: Option<(u64, Option<Sealed>)> = None;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let Some(batch) = self.wait_for_batch(&appended, &cancel).await else {
                return;
            };
            if sealed.as_ref().is_none_or(|(seq, _)| *seq != batch.seq) {
                sealed = Some((batch.seq, self.seal(&batch)));
            }
            let seal = sealed.as_ref().and_then(|(_, s)| s.as_ref());
            let target = self.collectors.active();
            match self.deliver(&batch, &target, seal).await {
                Outcome::Acked(ack) => {
                    backoff.reset();
                    failovers_in_row = 0;
                    self.on_ack(&batch, &ack, seal).await;
                }
                Outcome::Rejected { status, why } => {
                    backoff.reset();
                    failovers_in_row = 0;
                    self.quarantine(&batch, status, &why, seal).await;
                }
                Outcome::OldCollector { why } => {
                    tracing::warn!(
                        collector = %Collectors::label(&target.base),
                        "the collector does not accept signed batches (version 2); sending unsigned \
                         batches (version 1) to it for the next hour: {why}"
                    );
                    self.mark_unsigned(&target.base);
                }
                Outcome::Retry {
                    retry_after,
                    why,
                    collector_fault,
                } => {
                    self.stats.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    if collector_fault && self.resend_at_once(&target, &why, &mut failovers_in_row)
                    {
                        continue;
                    }
                    let wait = backoff.next_delay(retry_after);
                    tracing::warn!(
                        seq = batch.seq,
                        collector = %Collectors::label(&target.base),
                        wait_ms = wait.as_millis() as u64,
                        "delivery failed, will retry: {why}"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// After a collector fault at `target`: whether to resend at once, to the collector that
    /// took over. True while some collector has not failed since the last settled batch
    /// (`in_row` counts the failovers since), so an outage of all of them still backs off.
    fn resend_at_once(&self, target: &Target, why: &str, in_row: &mut usize) -> bool {
        if !self.collectors.failed(target, why) {
            return false;
        }
        *in_row += 1;
        *in_row < self.collectors.len()
    }

    /// Waits until a batch is due: a cut batch is pending, enough measurements are queued, or
    /// the oldest queued one is older than `batch_max_age`.
    async fn wait_for_batch(
        &self,
        appended: &Notify,
        cancel: &CancellationToken,
    ) -> Option<PendingBatch> {
        loop {
            let notified = appended.notified();
            let (due, wait) = self.batch_due();
            if due {
                let spool = self.spool.clone();
                let max = self.cfg.batch_max_measurements;
                let cut = tokio::task::spawn_blocking(move || spool.next_batch(max)).await;
                match cut {
                    Ok(Ok(Some(b))) => return Some(b),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!("cannot read the spool: {e}"),
                    Err(e) => tracing::error!("spool task failed: {e}"),
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// (due now?, how long until it may become due without new data).
    fn batch_due(&self) -> (bool, Duration) {
        let s = self.spool.stats();
        // Measurements beyond the uncut ones belong to a batch already cut: resend it now.
        if s.depth > s.uncut || s.uncut as usize >= self.cfg.batch_max_measurements {
            return (true, Duration::ZERO);
        }
        let Some(oldest) = s.oldest_uncut_ts else {
            return (false, self.cfg.batch_max_age);
        };
        let age = self.clock.now_utc().duration_since(oldest);
        let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
        if age >= self.cfg.batch_max_age {
            (true, Duration::ZERO)
        } else {
            (false, self.cfg.batch_max_age - age)
        }
    }

    /// The batch's digest and, with a key, its evidence; `None` without a key, or when the
    /// stored measurements no longer decode (they did when cut: only media corruption).
    fn seal(&self, batch: &PendingBatch) -> Option<Sealed> {
        let key = self.key.as_ref()?;
        match seal::seal(&self.agent, batch, key) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(
                    seq = batch.seq,
                    "cannot compute the batch digest; sending it unsigned: {e}"
                );
                None
            }
        }
    }

    /// Whether `base` refused version 2 within the last [`UNSIGNED_RETRY`].
    fn speaks_unsigned(&self, base: &str) -> bool {
        let mut map = self
            .unsigned_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(base) {
            Some(since) if since.elapsed() < UNSIGNED_RETRY => true,
            Some(_) => {
                map.remove(base);
                false
            }
            None => false,
        }
    }

    fn mark_unsigned(&self, base: &str) {
        self.unsigned_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(base.to_string(), std::time::Instant::now());
    }

    async fn deliver(
        &self,
        batch: &PendingBatch,
        target: &Target,
        seal: Option<&Sealed>,
    ) -> Outcome {
        let evidence = seal
            .filter(|_| !self.speaks_unsigned(&target.base))
            .map(|s| &s.evidence);
        if evidence.is_none() && seal.is_some() {
            self.stats
                .batches_sent_unsigned_total
                .fetch_add(1, Ordering::Relaxed);
        }
        let body = match self.encode(batch, evidence) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Rejected {
                    status: StatusCode::BAD_REQUEST,
                    why: format!("cannot encode: {e}"),
                };
            }
        };
        self.stats
            .batches_sent_total
            .fetch_add(1, Ordering::Relaxed);
        let resp = self
            .client
            .post(target.url(wire::INGEST_PATH))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "zstd")
            .body(body)
            .send()
            .await;
        match resp {
            Ok(r) => classify(r, batch.seq, evidence.is_some()).await,
            Err(e) => Outcome::Retry {
                retry_after: None,
                why: format!("collector unreachable: {}", error_chain(&e)),
                collector_fault: true,
            },
        }
    }

    /// The compressed `wire::Batch` of this attempt: fresh `sent_at` and spool figures around
    /// the measurements' stored bytes.
    fn encode(
        &self,
        batch: &PendingBatch,
        evidence: Option<&wire::Evidence>,
    ) -> Result<Vec<u8>, String> {
        let status = self.spool.stats().to_wire();
        let env = Envelope {
            version: if evidence.is_some() {
                wire::PROTOCOL_VERSION
            } else {
                wire::PROTOCOL_VERSION_UNSIGNED
            },
            agent: &self.agent,
            seq: batch.seq,
            sent_at: self.clock.now_utc(),
            gaps: &batch.gaps,
            spool: Some(&status),
            evidence,
        };
        let json = body::batch_json(&env, &batch.measurements).map_err(|e| e.to_string())?;
        zstd::bulk::compress(&json, 3).map_err(|e| e.to_string())
    }

    /// Removes the batch from the spool; its digest becomes the chain head the next batch
    /// links to (also when it went unsigned to an older collector, so the chain stays whole).
    async fn on_ack(&self, batch: &PendingBatch, ack: &Ack, seal: Option<&Sealed>) {
        let spool = self.spool.clone();
        let seq = batch.seq;
        let digest = seal.map(|s| s.digest);
        match tokio::task::spawn_blocking(move || spool.ack_linked(seq, digest)).await {
            Ok(Ok(())) => {
                self.stats
                    .batches_acked_total
                    .fetch_add(1, Ordering::Relaxed);
                self.stats
                    .measurements_acked_total
                    .fetch_add(batch.measurements.len() as u64, Ordering::Relaxed);
                self.stats.last_ack_unix.store(
                    self.clock.now_utc().as_second().max(0) as u64,
                    Ordering::Relaxed,
                );
                tracing::debug!(
                    seq,
                    stored = ack.stored,
                    duplicate = ack.duplicate,
                    "batch acknowledged"
                );
            }
            Ok(Err(e)) => tracing::error!(
                seq,
                "cannot record the ack in the spool (the batch will be resent and deduplicated): {e}"
            ),
            Err(e) => tracing::error!(seq, "spool task failed: {e}"),
        }
    }

    async fn quarantine(
        &self,
        batch: &PendingBatch,
        status: StatusCode,
        why: &str,
        seal: Option<&Sealed>,
    ) {
        self.stats
            .batches_quarantined_total
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            seq = batch.seq,
            measurements = batch.measurements.len(),
            %status,
            dir = %self.quarantine_dir.display(),
            "the collector rejected a batch as malformed; it is quarantined and will not be retried: {why}"
        );
        let path = self.quarantine_dir.join(format!("{}.json", batch.seq));
        let written = body::quarantine_json(batch, status.as_u16(), why)
            .map_err(std::io::Error::other)
            .and_then(|record| {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::create_dir_all(&self.quarantine_dir)?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?
                    .write_all(&record)
            })
            .and_then(|_| std::fs::File::open(&path)?.sync_all());
        match written {
            // Only once the batch is safely in quarantine may it leave the spool.
            Ok(()) => {
                self.on_ack(
                    batch,
                    &Ack {
                        version: wire::PROTOCOL_VERSION,
                        acked_seq: batch.seq,
                        duplicate: false,
                        stored: 0,
                    },
                    seal,
                )
                .await;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot write the quarantine file; the batch stays in the spool: {e}");
            }
        }
    }
}

/// Maps the collector's answer to an outcome. Only an `Ack` for this very seq removes data.
async fn classify(r: reqwest::Response, seq: u64, signed: bool) -> Outcome {
    let status = r.status();
    let retry_after = r
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(backoff::parse_retry_after);
    let body = r.bytes().await.unwrap_or_default();
    if status.is_success() {
        return match serde_json::from_slice::<Ack>(&body) {
            Ok(ack) if ack.acked_seq == seq => Outcome::Acked(ack),
            Ok(ack) => Outcome::Retry {
                retry_after: None,
                why: format!("ack for seq {} while sending {seq}", ack.acked_seq),
                collector_fault: false,
            },
            Err(e) => Outcome::Retry {
                retry_after: None,
                why: format!("unreadable ack: {e}"),
                collector_fault: false,
            },
        };
    }
    let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
    let version_refused = parsed
        .as_ref()
        .is_some_and(|e| e.field.as_deref() == Some("version"));
    let why = parsed.map_or_else(
        || format!("{status}: {}", String::from_utf8_lossy(&body)),
        |e| match e.field {
            Some(f) => format!("{status}: {} (field {f})", e.error),
            None => format!("{status}: {}", e.error),
        },
    );
    if signed && status == StatusCode::BAD_REQUEST && version_refused {
        return Outcome::OldCollector { why };
    }
    if refuses_the_batch(status) {
        Outcome::Rejected { status, why }
    } else {
        Outcome::Retry {
            retry_after,
            why,
            collector_fault: is_collector_fault(status),
        }
    }
}

/// Whether the answer condemns this batch rather than the agent's setup or the moment: every
/// 4xx except those that would refuse any batch just the same and go away once an operator
/// fixes the setup or the load drops — 401/403 (token), 404/405 (collector URL points
/// elsewhere), 408 (the upload was too slow), 415 (encoding; a version mismatch) and 429
/// (rate). Quarantining on those would empty a healthy spool into quarantine; retrying them
/// loses nothing. 5xx and network errors are always retried.
pub fn refuses_the_batch(status: StatusCode) -> bool {
    status.is_client_error()
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::TOO_MANY_REQUESTS
        )
}

/// An error with its causes (`error sending request: … : operation timed out`), so a log
/// line says whether the collector refused, reset or timed out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

/// Whether an answer says the collector itself is failing (any 5xx), so that another
/// collector may take the batch. A 4xx is about the batch or the agent's setup and would be
/// the same at every replica.
pub fn is_collector_fault(status: StatusCode) -> bool {
    status.is_server_error()
}

/// Checks what `Transport::new` would refuse (TLS files, retry settings) without sending
/// anything, so `check-config` reports it before `run` does.
pub fn validate(cfg: &TransportConfig) -> Result<(), TransportError> {
    build_client(cfg)?;
    Backoff::new(backoff_config(cfg), 0)?;
    Ok(())
}

fn backoff_config(cfg: &TransportConfig) -> BackoffConfig {
    BackoffConfig {
        initial: cfg.backoff_initial,
        max: cfg.backoff_max,
        // A server's Retry-After is honoured up to 10 minutes, or up to the configured
        // maximum when that is longer.
        retry_after_cap: BackoffConfig::DEFAULT.retry_after_cap.max(cfg.backoff_max),
        ..BackoffConfig::DEFAULT
    }
}

/// The HTTP client every request to the collector uses: `[transport]` timeouts, CA and client
/// certificate, and the agent's `User-Agent` (the collector reads the version from it).
pub fn build_client(cfg: &TransportConfig) -> Result<reqwest::Client, TransportError> {
    client_builder(cfg)?
        .build()
        .map_err(|e| TransportError::Client(e.to_string()))
}

/// [`build_client`] for the collectors at `bases`. When every one is plain `http://` and no
/// CA file is given, TLS is never used, and the client holds no system trust store (about
/// 190 KiB of the agent's memory, measured with `agent/tests/memory_per_check.rs`).
pub fn build_client_for(
    cfg: &TransportConfig,
    bases: &[String],
) -> Result<reqwest::Client, TransportError> {
    let plain = |b: &String| {
        b.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    };
    let mut b = client_builder(cfg)?;
    if cfg.ca_file.is_none() && bases.iter().all(plain) {
        b = b.tls_certs_only(std::iter::empty());
    }
    b.build().map_err(|e| TransportError::Client(e.to_string()))
}

fn client_builder(cfg: &TransportConfig) -> Result<reqwest::ClientBuilder, TransportError> {
    let mut b = reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .connect_timeout(cfg.request_timeout)
        .user_agent(concat!("attest-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &cfg.ca_file {
        let pem = read(ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            TransportError::TlsMaterial {
                path: ca.clone(),
                reason: e.to_string(),
            }
        })?;
        b = b.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&cfg.client_cert, &cfg.client_key) {
        let mut pem = read(cert)?;
        pem.extend_from_slice(b"\n");
        pem.extend_from_slice(&read(key)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| TransportError::TlsMaterial {
            path: cert.clone(),
            reason: e.to_string(),
        })?;
        b = b.identity(id);
    }
    Ok(b)
}

fn read(path: &PathBuf) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::TlsFile {
        path: path.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_4xx_but_setup_and_rate_problems_quarantines() {
        for code in [400, 409, 410, 413, 414, 422, 431] {
            let s = StatusCode::from_u16(code).unwrap();
            assert!(refuses_the_batch(s), "{code} condemns the batch");
        }
        for code in [200, 401, 403, 404, 405, 408, 415, 429, 500, 502, 503] {
            let s = StatusCode::from_u16(code).unwrap();
            assert!(!refuses_the_batch(s), "{code} is retried");
        }
    }

    #[test]
    fn only_5xx_is_a_collector_fault_that_fails_over() {
        for code in [500, 502, 503, 504] {
            assert!(
                is_collector_fault(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [200, 304, 400, 401, 404, 408, 409, 413, 429] {
            let s = StatusCode::from_u16(code).unwrap();
            assert!(!is_collector_fault(s), "{code} never fails over");
        }
    }
}
