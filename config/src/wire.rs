//! The agent → collector protocol, version 2 (version 1 still accepted): JSON bodies over HTTP(S), optionally
//! `Content-Encoding: zstd`. Documented in `docs/wire.md`; `config/tests/wire_golden.rs` pins the format
//! against `config/testdata/wire/batch-v1.json`.
//!
//! Invariants:
//! - `(agent, seq)` identifies a batch; a resent batch carries the same seq and content.
//! - `(agent, check, ts)` identifies a measurement; `ts` is the UTC instant the probe started.
//! - A `Measurement` is the same record in a batch and in the import format (one JSON
//!   object per line, with `agent` added: [`ImportRecord`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; the collector refuses versions it does not know.
/// Version 2 adds [`Batch::evidence`] (signed, chained batches, docs/wire.md).
pub const PROTOCOL_VERSION: u32 = 2;

/// The version before signed batches: no `evidence`. The collector still accepts it (the
/// batch is recorded as unsigned), and an agent speaks it to a collector that refuses
/// version 2 with `400` on the field `version` (docs/wire.md, "Versioning").
pub const PROTOCOL_VERSION_UNSIGNED: u32 = 1;

/// Version of an [`Assignment`] (unchanged by the batch protocol's version 2).
pub const ASSIGNMENT_VERSION: u32 = 1;

/// Route the agent posts batches to.
pub const INGEST_PATH: &str = "/api/v1/ingest";

/// Batch seqs from this value up are reserved for `attest-collector import` (which derives
/// them from the content, so a re-import is a duplicate); an agent's seqs stay below it and
/// the collector refuses a batch that reaches it. Bit 62, not 63, so every seq still fits
/// the stores' signed 64-bit columns.
pub const IMPORT_SEQ_BIT: u64 = 1 << 62;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub version: u32,
    pub agent: String,
    /// Strictly increasing per agent, starting at 1; never reused, even across restarts.
    pub seq: u64,
    /// The agent's clock when it sent this attempt (used to measure clock offset).
    pub sent_at: Timestamp,
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    /// Slots the agent knows it lost (spool full): those minutes are unknown, never up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// The agent's spool state when the batch was cut, for the collector's fleet metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolStatus>,
    /// Version 2: the batch's place in the agent's hash chain and its signature. Required in
    /// version 2, absent in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// What makes a batch evidence (docs/wire.md, "Signed batches"): the digest of its canonical
/// form (`attest_config::evidence::canonical`), the digest of the agent's previous batch, and
/// the agent's Ed25519 signature over the digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Lowercase hex of the previous batch's digest; omitted for the first batch of a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Lowercase hex of this batch's digest; the collector recomputes and compares it.
    pub digest: String,
    /// The agent's public key, `ed25519:` + base64 (pinned on first use when allowed).
    pub key: String,
    /// Standard base64 of the Ed25519 signature over the 32 digest bytes.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// Check id as configured on the agent.
    pub check: String,
    /// UTC instant the probe started.
    pub ts: Timestamp,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Typed failure reason; `None` when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// The phase in which the probe failed, when it failed in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<Phase>,
    /// Human-readable detail, e.g. `"connect timeout"` or `"status 500"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phases: BTreeMap<Phase, f64>,
    /// Numeric observations (host capacity, days of certificate left, status code...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// Textual facts (TLS version, resolved address).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Measurement {
    /// A minimal measurement; the scheduler fills the envelope, probes the rest.
    pub fn new(check: impl Into<String>, ts: Timestamp, ok: bool) -> Self {
        Measurement {
            check: check.into(),
            ts,
            ok,
            duration_seconds: None,
            reason: None,
            failed_phase: None,
            error: None,
            phases: BTreeMap::new(),
            values: Vec::new(),
            labels: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Resolve,
    Connect,
    Tls,
    /// Request written until first response byte.
    Processing,
    /// First response byte until the body is read.
    Transfer,
    /// Send/expect exchange after connect (TCP banner checks).
    Exchange,
    /// A DNS query round trip.
    Query,
    /// ICMP echo round trip.
    Rtt,
    /// Host capacity collection.
    Collect,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Processing => "processing",
            Phase::Transfer => "transfer",
            Phase::Exchange => "exchange",
            Phase::Query => "query",
            Phase::Rtt => "rtt",
            Phase::Collect => "collect",
        }
    }
}

/// Why a probe failed. Stable strings: they appear in reports and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Name did not resolve.
    Dns,
    ConnectRefused,
    /// Network or host unreachable, reset, or another connect error.
    Connect,
    /// The probe's timeout expired (see `failed_phase`).
    Timeout,
    Tls,
    /// Certificate chain expires sooner than allowed.
    CertExpiry,
    Status,
    Body,
    Header,
    /// A send/expect step did not see its expected line.
    Expect,
    /// DNS answer had the wrong rcode, answers or flags.
    DnsAnswer,
    /// No ICMP echo reply.
    NoReply,
    /// A host value exceeded its threshold, or a named process is not running.
    Threshold,
    /// The peer spoke something we could not parse.
    Protocol,
    /// Too many redirects.
    Redirects,
    /// The agent itself could not run the probe (permissions, resources).
    Agent,
    /// Imported without a typed reason.
    Other,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::ConnectRefused => "connect_refused",
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::Tls => "tls",
            FailureReason::CertExpiry => "cert_expiry",
            FailureReason::Status => "status",
            FailureReason::Body => "body",
            FailureReason::Header => "header",
            FailureReason::Expect => "expect",
            FailureReason::DnsAnswer => "dns_answer",
            FailureReason::NoReply => "no_reply",
            FailureReason::Threshold => "threshold",
            FailureReason::Protocol => "protocol",
            FailureReason::Redirects => "redirects",
            FailureReason::Agent => "agent",
            FailureReason::Other => "other",
        }
    }
}

/// A named numeric observation, optionally about one resource (a mount point, an interface).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Value {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub value: f64,
}

/// Measurements of `check` that the agent dropped, with probe starts in `[from, to]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    pub check: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolStatus {
    pub depth_measurements: u64,
    pub bytes: u64,
    pub dropped_total: u64,
    pub corrupt_records_total: u64,
}

/// The collector's answer to a committed (or already committed) batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub version: u32,
    /// The batch's seq, now durably committed.
    pub acked_seq: u64,
    /// True when this seq had been committed before (a resend); nothing was stored again.
    pub duplicate: bool,
    /// Measurements newly stored from this batch.
    pub stored: u64,
}

/// The body of a 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// Field path that failed validation, when one did (e.g. `measurements[3].ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One line of the collector's import format: a measurement plus the agent that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub agent: String,
    #[serde(flatten)]
    pub measurement: Measurement,
}

/// Route prefix of the fleet API; an agent's checks are at `{AGENTS_PATH}/{id}/checks`
/// (the id percent-encoded, see [`agent_checks_path`]).
pub const AGENTS_PATH: &str = "/api/v1/agents";

/// Header in which an agent lists the check ids of its own file (comma-separated), so the
/// collector can report an id defined on both sides.
pub const LOCAL_CHECKS_HEADER: &str = "attest-local-checks";

/// The longest long poll (`?wait=`) the collector honours, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 300;

/// Longest text of a measurement the collector accepts, in bytes: `error`, each label value,
/// a value's `resource` (docs/wire.md). The agent clips its own to it ([`clip_texts`]).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most labels one measurement may carry.
pub const MAX_LABELS: usize = 32;

/// Cuts `error`, label values and resources to [`MAX_TEXT_BYTES`] (at a character boundary),
/// so a long message from a probe never gets a whole batch refused.
pub fn clip_texts(m: &mut Measurement) {
    fn clip(s: &mut String) {
        if s.len() > MAX_TEXT_BYTES {
            let mut end = MAX_TEXT_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
    }
    if let Some(e) = &mut m.error {
        clip(e);
    }
    m.labels.values_mut().for_each(clip);
    for v in &mut m.values {
        if let Some(r) = &mut v.resource {
            clip(r);
        }
    }
}

/// The path of an agent's assignment; characters outside `[A-Za-z0-9-_.]` are
/// percent-encoded so that ids with `/` or `:` stay one path segment.
pub fn agent_checks_path(agent: &str) -> String {
    let mut id = String::with_capacity(agent.len());
    for b in agent.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            id.push(char::from(b));
        } else {
            id.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{AGENTS_PATH}/{id}/checks")
}

/// The checks the collector assigns to one agent (`GET /api/v1/agents/{id}/checks`). The
/// response's `ETag` is `"<revision>"`; a request with `If-None-Match` of the same value gets
/// 304 (after waiting up to `?wait=SECONDS` for a change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub version: u32,
    pub agent: String,
    /// Changes whenever the assigned checks change; hex digest of `checks`.
    pub revision: String,
    /// The assigned check ids, in `checks` order.
    pub check_ids: Vec<String>,
    /// The assigned checks as a TOML document of `[[check]]` tables, validated by the agent
    /// with the same loader as its own file (`attest_config::parse_checks`).
    pub checks: String,
}

/// One row of `GET /api/v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// From the agent's `User-Agent` when it last asked for its checks.
    pub version: Option<String>,
    /// Newest of its last committed batch and its last assignment request.
    pub last_seen: Option<Timestamp>,
    /// Agent clock minus collector clock at its last batch, in milliseconds.
    pub clock_offset_ms: Option<i64>,
    pub assigned_checks: Vec<String>,
    /// Revision of the assignment the agent last fetched (`None`: never asked).
    pub fetched_revision: Option<String>,
    pub spool_depth: Option<u64>,
    pub spool_dropped_total: Option<u64>,
    pub last_error: Option<String>,
    /// Fingerprint (`SHA256:…`) of the key the agent's signed batches are checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where that key comes from: `configured` (`[[agent]] public_key`) or `pinned` (on first
    /// use; confirm it by configuring it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_trust: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_texts_cuts_at_a_character_boundary_and_leaves_short_texts() {
        let mut m = Measurement::new("c", Timestamp::UNIX_EPOCH, false);
        // 'é' is 2 bytes: 1023 bytes of 'a' then 'é' ends at 1025, so the cut is at 1023.
        m.error = Some(format!("{}é", "a".repeat(MAX_TEXT_BYTES - 1)));
        m.labels.insert("address".into(), "x".repeat(4 << 20));
        m.labels.insert("tls_version".into(), "TLSv1.3".into());
        m.values.push(Value {
            name: "used".into(),
            resource: Some("/".repeat(MAX_TEXT_BYTES + 5)),
            value: 1.0,
        });
        clip_texts(&mut m);
        assert_eq!(m.error.as_deref().map(str::len), Some(MAX_TEXT_BYTES - 1));
        assert_eq!(m.labels["address"].len(), MAX_TEXT_BYTES);
        assert_eq!(m.labels["tls_version"], "TLSv1.3");
        assert_eq!(
            m.values[0].resource.as_deref().map(str::len),
            Some(MAX_TEXT_BYTES)
        );
    }
}
