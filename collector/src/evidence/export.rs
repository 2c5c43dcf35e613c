//! `attest-collector evidence export --month YYYY-MM [--service S] --output DIR`: writes
//! the month's signed batches from the store in their canonical form (docs/reports.md,
//! "Evidence export"), so that `report verify --deep`, or a verifier written from the docs,
//! can check them without the collector.
//!
//! Invariants:
//! - Reads only. The batches are those the month's seal covers: every signed batch whose
//!   measurement instants overlap the month's span over every service's zone
//!   (`Store::batch_seals`), each as the rows its commit stored (`batch_measurements`, clock
//!   correction undone) and its stored gaps — the same recomputation as `audit`, so a batch
//!   whose rows were edited exports bytes that no longer give its signed digest.
//! - `DIR` must be new or empty; the files appear with `MANIFEST` written last.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use attest_config::CollectorConfig;
use attest_config::evidence::canonical::{self, Header};
use attest_config::evidence::keys::{self, PublicKey};
use sha2::{Digest, Sha256};

use super::{
    AgentEntry, ChainLine, DEFINITIONS, MAINTENANCE, MANIFEST, MANIFEST_JSON, Manifest, SCHEMA,
    ServiceEntry, WindowEntry, batches_path, chain_path,
};
use crate::report::monthly::file_safe;
use crate::report::monthly::model::definitions_sha256;
use crate::report::monthly::month_seal;
use crate::sla::Month;
use crate::store::{Store, StoreError, StoredSeal};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}; choose a writable --output directory")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} exists and is not empty; choose a new --output directory")]
    NotEmpty(String),
    #[error("unknown service {0:?}; name one of the configured [[service]] names")]
    UnknownService(String),
    #[error("month: {0}")]
    Month(String),
    #[error(
        "the configuration file cannot be reduced to its definitions: {0}; check that it loads with check-config"
    )]
    Definitions(String),
}

/// What an export wrote, for the command's summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exported {
    pub agents: usize,
    pub batches: u64,
    pub measurements: u64,
    /// Batches whose stored rows no longer give their signed digest (found while writing;
    /// `audit` and `report verify --deep` name them too).
    pub differing: Vec<(String, u64)>,
}

/// What to export.
pub struct Request<'a> {
    pub month: Month,
    pub service: Option<&'a str>,
    /// The collector configuration file's text: its definitions are exported without
    /// secrets ([`definitions_toml`]).
    pub config_text: &'a str,
    pub output: &'a Path,
}

/// Writes the export of `req.month` from `store` into `req.output`.
pub fn export(
    store: &dyn Store,
    cfg: &CollectorConfig,
    req: &Request<'_>,
) -> Result<Exported, ExportError> {
    refuse_non_empty(req.output)?;
    if let Some(s) = req.service
        && !cfg.services.iter().any(|x| x.name == s)
    {
        return Err(ExportError::UnknownService(s.to_string()));
    }
    let (from, to) = month_seal::span(&cfg.services, req.month)
        .map_err(|e| ExportError::Month(e.to_string()))?;
    let definitions = definitions_toml(req.config_text)?;
    let mut seals = store.batch_seals(from, to)?;
    if let Some(s) = req.service {
        let measuring = agents_measuring(store, cfg, s, (from, to))?;
        seals.retain(|b| measuring.contains(&b.agent));
    }
    let mut files = Files::new(req.output);
    let mut out = Exported::default();
    let mut agents = Vec::new();
    let mut signed = SignedRows::new();
    for (agent, batches) in by_agent(&seals) {
        let entry = write_agent(
            store,
            cfg,
            agent,
            &batches,
            &mut files,
            &mut out,
            &mut signed,
        )?;
        agents.push(entry);
    }
    let unsigned = unsigned(store, cfg, req.service, (from, to), &signed)?;
    out.agents = agents.len();
    files.put(DEFINITIONS, definitions.as_bytes())?;
    let windows = windows(store, (from, to))?;
    files.put(MAINTENANCE, &jsonl(&windows))?;
    let manifest = Manifest {
        schema: SCHEMA.into(),
        month: req.month.to_string(),
        from,
        to,
        service: req.service.map(str::to_string),
        agents,
        batches: out.batches,
        measurements: out.measurements,
        services: services(store, cfg)?,
        maintenance_windows: windows.len() as u64,
        unsigned_measurements: unsigned,
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    files.put(MANIFEST_JSON, &[json.as_slice(), b"\n"].concat())?;
    files.finish()?;
    Ok(out)
}

/// (check, stored instant) of the measurements of one batch.
type StoredKeys = Vec<(String, jiff::Timestamp)>;

/// (agent, check, stored instant) of every measurement in an exported batch.
type SignedRows = BTreeSet<(String, String, jiff::Timestamp)>;

/// Stored measurements of the span (of `service`'s checks, or every check) in no exported
/// batch, per agent: not evidence, so a recomputation from the export leaves them out.
fn unsigned(
    store: &dyn Store,
    cfg: &CollectorConfig,
    service: Option<&str>,
    (from, to): (jiff::Timestamp, jiff::Timestamp),
    signed: &SignedRows,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let checks: BTreeSet<String> = match service {
        Some(s) => cfg
            .services
            .iter()
            .filter(|x| x.name == s)
            .flat_map(|x| x.checks.iter().cloned())
            .collect(),
        None => store.agent_checks()?.into_iter().map(|(_, c)| c).collect(),
    };
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for check in checks {
        for (agent, m) in store.raw_measurements(&check, from, to)? {
            if !signed.contains(&(agent.clone(), m.check, m.ts)) {
                *out.entry(agent).or_default() += 1;
            }
        }
    }
    Ok(out)
}

/// The agents with stored measurements of `service`'s checks in the span.
fn agents_measuring(
    store: &dyn Store,
    cfg: &CollectorConfig,
    service: &str,
    (from, to): (jiff::Timestamp, jiff::Timestamp),
) -> Result<BTreeSet<String>, StoreError> {
    let mut out = BTreeSet::new();
    for s in cfg.services.iter().filter(|s| s.name == service) {
        for check in &s.checks {
            for (agent, _) in store.raw_measurements(check, from, to)? {
                out.insert(agent);
            }
        }
    }
    Ok(out)
}

/// Seals grouped by agent, each agent's in seq order (`batch_seals` sorts by agent, seq).
fn by_agent(seals: &[StoredSeal]) -> BTreeMap<&str, Vec<&StoredSeal>> {
    let mut out: BTreeMap<&str, Vec<&StoredSeal>> = BTreeMap::new();
    for s in seals {
        out.entry(s.agent.as_str()).or_default().push(s);
    }
    for v in out.values_mut() {
        v.sort_by_key(|s| s.seq);
    }
    out
}

/// One agent's chain file and batch stream.
fn write_agent(
    store: &dyn Store,
    cfg: &CollectorConfig,
    agent: &str,
    batches: &[&StoredSeal],
    files: &mut Files,
    out: &mut Exported,
    signed: &mut SignedRows,
) -> Result<AgentEntry, ExportError> {
    let file = file_safe(agent);
    let mut chain = format!("{} {agent}\n", super::CHAIN_V1);
    let mut stream = Vec::new();
    let mut measurements = 0u64;
    for b in batches {
        let (bytes, stored) = canonical_bytes(store, b)?;
        signed.extend(stored.into_iter().map(|(c, t)| (agent.to_string(), c, t)));
        if Sha256::digest(&bytes).as_slice() != b.seal.digest {
            out.differing.push((agent.to_string(), b.seq));
        }
        measurements += count_of(&bytes);
        stream.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        stream.extend_from_slice(&bytes);
        chain.push_str(
            &ChainLine {
                seq: b.seq,
                digest: b.seal.digest,
                prev: b.seal.prev,
                signature: b.seal.signature,
                key: b.seal.key,
                shift_ms: b.seal.ts_shift_ms,
            }
            .to_line(),
        );
    }
    files.put(&chain_path(&file), chain.as_bytes())?;
    let compressed = compress(&stream).map_err(|source| ExportError::Io {
        path: batches_path(&file),
        source,
    })?;
    files.put(&batches_path(&file), &compressed)?;
    out.batches += batches.len() as u64;
    out.measurements += measurements;
    let (public_keys, key_source) = known_keys(store, cfg, agent)?;
    Ok(AgentEntry {
        agent: agent.to_string(),
        file,
        public_keys,
        key_source,
        batches: batches.len() as u64,
        measurements,
    })
}

/// The canonical bytes of a stored batch: its rows with the clock correction undone and
/// its stored gaps, under its stored header; and the rows' (check, stored instant).
fn canonical_bytes(store: &dyn Store, b: &StoredSeal) -> Result<(Vec<u8>, StoredKeys), StoreError> {
    let mut rows = store.batch_measurements(&b.agent, b.seq)?;
    let stored = rows.iter().map(|m| (m.check.clone(), m.ts)).collect();
    let shift = jiff::SignedDuration::from_millis(-b.seal.ts_shift_ms);
    for m in &mut rows {
        m.ts = m.ts.checked_add(shift).unwrap_or(m.ts);
    }
    let gaps = b
        .seal
        .gaps
        .as_deref()
        .and_then(canonical::decode_gaps)
        .unwrap_or_default();
    let header = Header {
        agent: &b.agent,
        seq: b.seq,
        prev: b.seal.prev.as_ref(),
    };
    Ok((canonical::encode(&header, &rows, &gaps), stored))
}

fn count_of(bytes: &[u8]) -> u64 {
    canonical::decode(bytes).map_or(0, |d| d.measurements.len() as u64)
}

/// zstd with the frame's content checksum, so a damaged stream fails to decompress
/// rather than giving other bytes.
fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 9)?;
    enc.include_checksum(true)?;
    enc.write_all(bytes)?;
    enc.finish()
}

/// The agent's configured key, else every key the store recorded for it.
fn known_keys(
    store: &dyn Store,
    cfg: &CollectorConfig,
    agent: &str,
) -> Result<(Vec<String>, String), StoreError> {
    if let Some(k) = cfg
        .agents
        .iter()
        .find(|a| a.id == agent)
        .and_then(|a| a.public_key)
    {
        return Ok((vec![k.to_string()], "configured".into()));
    }
    let keys = store
        .agent_keys()?
        .into_iter()
        .filter(|r| r.agent == agent)
        .map(|r| {
            PublicKey::from_bytes(&r.key).map_or_else(|_| keys::hex(&r.key), |k| k.to_string())
        })
        .collect();
    Ok((keys, "pinned".into()))
}

fn services(store: &dyn Store, cfg: &CollectorConfig) -> Result<Vec<ServiceEntry>, StoreError> {
    cfg.services
        .iter()
        .map(|s| {
            Ok(ServiceEntry {
                name: s.name.clone(),
                definition_sha256: definitions_sha256(&[s]),
                first_configured: store.first_configured(&s.name)?,
            })
        })
        .collect()
}

/// The API maintenance windows overlapping the span (cancelled ones too), as sealed.
fn windows(
    store: &dyn Store,
    (from, to): (jiff::Timestamp, jiff::Timestamp),
) -> Result<Vec<WindowEntry>, StoreError> {
    Ok(store
        .list_maintenance(None)?
        .into_iter()
        .filter(|r| r.start < to && r.end > from)
        .map(|r| WindowEntry {
            id: r.id,
            service: r.service,
            start: r.start,
            end: r.end,
            reason: r.reason,
            registered_at: r.created_at,
            cancelled_at: r.cancelled_at,
            registered_by: r.registered_by,
            reference: r.reference,
        })
        .collect())
}

fn jsonl(windows: &[WindowEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in windows {
        out.extend_from_slice(&serde_json::to_vec(w).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// Keys of `[[check]]` that may hold secrets or host-local paths; the figures never depend
/// on them (only on which agents a check is assigned to).
const CHECK_KEYS_LEFT_OUT: &[&str] = &["headers", "tls", "body", "steps"];
/// `[report]` keys that are the report's wording; paths and the signing key stay behind.
const REPORT_KEYS_KEPT: &[&str] = &[
    "organisation",
    "title",
    "prepared_by",
    "approved_by",
    "distribution",
];

/// The sections of a collector configuration the month's figures depend on — `[[service]]`,
/// `[capacity]`, `[[check]]`, `[[assign]]`, `[[agent]]` (id, labels, public key) and the
/// report's wording — as a collector configuration of its own, without a secret: each
/// agent's token is replaced by the placeholder `not-exported:<id>`, which the loader needs
/// and nothing checks. The result loads with the collector's own loader.
pub fn definitions_toml(config_text: &str) -> Result<String, ExportError> {
    let src: toml::Table = config_text
        .parse()
        .map_err(|e: toml::de::Error| ExportError::Definitions(e.to_string()))?;
    let mut out = toml::Table::new();
    for key in ["service", "capacity", "assign"] {
        if let Some(v) = src.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(toml::Value::Array(checks)) = src.get("check") {
        let kept = checks
            .iter()
            .map(|c| without(c, CHECK_KEYS_LEFT_OUT))
            .collect();
        out.insert("check".into(), toml::Value::Array(kept));
    }
    if let Some(toml::Value::Table(report)) = src.get("report") {
        let kept: toml::Table = report
            .iter()
            .filter(|(k, _)| REPORT_KEYS_KEPT.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.insert("report".into(), toml::Value::Table(kept));
    }
    if let Some(toml::Value::Array(agents)) = src.get("agent") {
        out.insert(
            "agent".into(),
            toml::Value::Array(agents.iter().map(agent_entry).collect()),
        );
    }
    let text = toml::to_string(&out).map_err(|e| ExportError::Definitions(e.to_string()))?;
    attest_config::parse_collector(DEFINITIONS, &text)
        .map_err(|e| ExportError::Definitions(e.to_string()))?;
    Ok(format!(
        "# The configuration the month's figures depend on, exported by `attest-collector evidence export`.\n# Agent tokens are placeholders: nothing secret leaves the collector.\n{text}"
    ))
}

fn without(v: &toml::Value, left_out: &[&str]) -> toml::Value {
    match v {
        toml::Value::Table(t) => toml::Value::Table(
            t.iter()
                .filter(|(k, _)| !left_out.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn agent_entry(v: &toml::Value) -> toml::Value {
    let mut t = toml::Table::new();
    if let toml::Value::Table(src) = v {
        for key in ["id", "labels", "public_key"] {
            if let Some(x) = src.get(key) {
                t.insert(key.into(), x.clone());
            }
        }
        let id = src.get("id").and_then(toml::Value::as_str).unwrap_or("");
        t.insert(
            "token".into(),
            toml::Value::String(format!("not-exported:{id}")),
        );
    }
    toml::Value::Table(t)
}

fn refuse_non_empty(dir: &Path) -> Result<(), ExportError> {
    let non_empty = dir.exists() && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some());
    if non_empty {
        return Err(ExportError::NotEmpty(dir.display().to_string()));
    }
    Ok(())
}

/// Writes files under the output directory and lists their digests for `MANIFEST`.
struct Files<'a> {
    dir: &'a Path,
    digests: Vec<(String, String)>,
}

impl<'a> Files<'a> {
    fn new(dir: &'a Path) -> Files<'a> {
        Files {
            dir,
            digests: Vec::new(),
        }
    }

    fn put(&mut self, rel: &str, bytes: &[u8]) -> Result<(), ExportError> {
        let p = self.dir.join(rel);
        let io = |source| ExportError::Io {
            path: p.display().to_string(),
            source,
        };
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&p, bytes).map_err(io)?;
        self.digests
            .push((rel.to_string(), keys::hex(&Sha256::digest(bytes))));
        Ok(())
    }

    fn finish(self) -> Result<(), ExportError> {
        let manifest = crate::report::monthly::integrity::manifest_of_digests(self.digests);
        let p = self.dir.join(MANIFEST);
        std::fs::write(&p, manifest).map_err(|source| ExportError::Io {
            path: p.display().to_string(),
            source,
        })
    }
}
