//! `attest-collector import`: loads measurements in the import format (one JSON object per
//! line: a wire `Measurement` plus `agent`) through the same validation and deduplication as
//! ingest (it lives under `ingest/` for that reason: one validation, one seq scheme).
//!
//! Invariants:
//! - The whole file is validated before anything is stored: one bad line changes nothing and
//!   the error names the line and field.
//! - Import batches use seqs in a reserved range (high bit set, derived from the content), so
//!   re-importing the same file is a no-op and never collides with an agent's own seqs.

use std::collections::BTreeMap;
use std::io::BufRead;

use attest_config::CollectorConfig;
use attest_config::wire::{IMPORT_SEQ_BIT, ImportRecord};

use super::validate;
use crate::clock::Clock;
use crate::store::{IngestBatch, Store};

const CHUNK: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}:{line}: {reason}")]
    Line {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: cannot read: {0}", file = .1)]
    Io(std::io::Error, String),
    #[error(
        "storing failed after {stored} new measurements (re-run the import; it is idempotent): {reason}"
    )]
    Store { stored: u64, reason: String },
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Measurement lines read (blank lines are skipped).
    pub lines: u64,
    pub stored: u64,
    pub duplicates: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} lines: {} measurements stored, {} already present",
            self.lines, self.stored, self.duplicates
        )
    }
}

/// Where a long import is, for a progress display at the binary's edge (a bar on a
/// terminal, log lines otherwise); the library itself prints nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportProgress {
    /// Every line is read and valid; `measurements` will be stored.
    Validated { measurements: u64 },
    /// `done` of `total` measurements committed (stored or found present).
    Stored { done: u64, total: u64 },
}

pub fn import(
    cfg: &CollectorConfig,
    store: &dyn Store,
    clock: &dyn Clock,
    input: impl BufRead,
    file: &str,
) -> Result<ImportSummary, ImportError> {
    import_with_progress(cfg, store, clock, input, file, &mut |_| {})
}

/// [`import`], telling `progress` after validation and after each committed chunk.
pub fn import_with_progress(
    cfg: &CollectorConfig,
    store: &dyn Store,
    clock: &dyn Clock,
    input: impl BufRead,
    file: &str,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    let by_agent = read_all(cfg, input, file)?;
    // The configuration names its services and latency thresholds: remember them before
    // storing, so that the imported probes are counted exactly for those thresholds.
    crate::store::note_config(store, cfg, clock.now_utc()).map_err(|e| ImportError::Store {
        stored: 0,
        reason: e.to_string(),
    })?;
    let mut summary = ImportSummary {
        lines: by_agent.values().map(|r| r.len() as u64).sum(),
        ..ImportSummary::default()
    };
    let total = summary.lines;
    progress(ImportProgress::Validated {
        measurements: total,
    });
    let mut done = 0;
    for (agent, records) in by_agent {
        for chunk in records.chunks(CHUNK) {
            let measurements: Vec<_> = chunk.iter().map(|r| r.measurement.clone()).collect();
            let batch = IngestBatch {
                agent: agent.clone(),
                seq: content_seq(&agent, &measurements),
                received_at: clock.now_utc(),
                clock_offset_ms: 0,
                measurements,
                gaps: Vec::new(),
                spool: None,
                seal: None,
            };
            let out = store.commit_batch(&batch).map_err(|e| ImportError::Store {
                stored: summary.stored,
                reason: e.to_string(),
            })?;
            summary.stored += out.stored;
            summary.duplicates += if out.duplicate_batch {
                chunk.len() as u64
            } else {
                out.duplicate_measurements
            };
            done += chunk.len() as u64;
            progress(ImportProgress::Stored { done, total });
        }
    }
    Ok(summary)
}

/// Parses and validates every line; groups records by agent in file order.
fn read_all(
    cfg: &CollectorConfig,
    input: impl BufRead,
    file: &str,
) -> Result<BTreeMap<String, Vec<ImportRecord>>, ImportError> {
    let known: std::collections::HashSet<&str> = cfg.agents.iter().map(|a| a.id.as_str()).collect();
    let mut out: BTreeMap<String, Vec<ImportRecord>> = BTreeMap::new();
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let err = |reason: String| ImportError::Line {
            file: file.to_string(),
            line: line_no,
            reason,
        };
        let line = line.map_err(|e| ImportError::Io(e, file.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = parse_line(&line).map_err(err)?;
        if !known.contains(rec.agent.as_str()) {
            return Err(err(format!(
                "agent {:?} is not configured in [[agent]]",
                rec.agent
            )));
        }
        validate::measurement(&rec.measurement)
            .map_err(|(f, why)| err(format!("field {f}: {why}")))?;
        out.entry(rec.agent.clone()).or_default().push(rec);
    }
    Ok(out)
}

/// One line → record. The measurement is deserialized on its own (not through the flattened
/// `ImportRecord`) so that an error names the failing field, e.g. `field ts: ...`.
fn parse_line(line: &str) -> Result<ImportRecord, String> {
    let mut obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let agent = match obj.remove("agent") {
        Some(serde_json::Value::String(a)) => a,
        Some(_) => return Err("field agent: expected a string (the agent id)".into()),
        None => return Err("field agent: missing (the agent id that made the measurement)".into()),
    };
    let measurement = serde_path_to_error::deserialize(serde_json::Value::Object(obj))
        .map_err(|e| format!("field {}: {}", e.path(), e.inner()))?;
    Ok(ImportRecord { agent, measurement })
}

/// FNV-1a over the chunk's keys, mapped into the import range `[2^62, 2^63)`.
fn content_seq(agent: &str, ms: &[attest_config::wire::Measurement]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(agent.as_bytes());
    for m in ms {
        eat(m.check.as_bytes());
        eat(&m.ts.as_nanosecond().to_le_bytes());
        eat(&[u8::from(m.ok)]);
    }
    (h & (IMPORT_SEQ_BIT - 1)) | IMPORT_SEQ_BIT
}

/// Parses and validates import text without storing anything; the number of measurement
/// lines on success. For the fuzz targets (`fuzz/`) and their corpus replay.
#[doc(hidden)]
pub fn validate_lines(cfg: &CollectorConfig, input: impl BufRead) -> Result<u64, ImportError> {
    let by_agent = read_all(cfg, input, "<input>")?;
    Ok(by_agent.values().map(|r| r.len() as u64).sum())
}
