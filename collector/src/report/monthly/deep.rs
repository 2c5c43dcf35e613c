//! `report verify --deep BUNDLE --agent-keys FILE [--evidence DIR]`: proves an archived
//! month's figures from the agents' evidence, offline. The evidence export
//! (`crate::evidence`) is checked against the auditor's agent keys and the bundle's sealed
//! leaves; every sealed batch that passed is loaded into a scratch SQLite store through the
//! store API, with the exported definitions (whose digests the seal holds) and maintenance
//! windows; then the same `assemble` the report was written with runs as of the report's
//! generation instant, and every figure and minute state is compared with the bundle's.
//!
//! Invariants:
//! - Nothing of the collector is needed: no configuration, no store, no clock.
//! - Only what the seal covers enters the recomputation; the scratch store is deleted.
//! - Every disagreement names its agent and batch, or its service and figure (a JSON path
//!   into `report.json`, or a line of `minutes/SERVICE.csv`).
//! - Not compared: what is no figure of the month (`terms`, `checks`, `notes`, and `trend`,
//!   which rests on other months).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attest_config::CollectorConfig;
use attest_config::evidence::canonical;
use serde_json::Value;

use super::assemble::{self, Settings};
use super::{JsonFile, csv, file_safe, month_seal};
use crate::evidence::check::{self, AgentKeys, Checked, Passed, Sealed};
use crate::evidence::{Manifest, WindowEntry};
use crate::figures::Figures;
use crate::store::{BatchSeal, IngestBatch, NewMaintenance, SqliteStore, Store};

/// Members of a service section that are not figures of the month: the configuration's
/// wording, earlier months, notes, and the definition history (the collector's record of
/// its configuration over time, which no agent signs; the definitions in force are checked
/// through the seal's `definition` leaves and the recomputed figures).
const NOT_FIGURES: &[&str] = &["terms", "checks", "trend", "notes", "definitions"];

/// What the deep check found.
#[derive(Debug, Default)]
pub struct Deep {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    /// Batches checked and loaded; figures compared.
    pub batches: u64,
    pub loaded: u64,
    pub figures: u64,
}

impl Deep {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where the evidence of `bundle` sits when `--evidence` is not given: beside it, as
/// `BUNDLE.evidence` (an archived month `archive/2026-10` → `archive/2026-10.evidence`).
pub fn default_evidence_dir(bundle: &Path) -> PathBuf {
    let mut name = bundle
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".evidence");
    bundle.with_file_name(name)
}

/// Checks `evidence` against `keys` and the sealed leaves of `bundle`, and recomputes the
/// bundle's figures from it. Err only for a scratch store that cannot be made.
pub fn verify_deep(bundle: &Path, evidence: &Path, keys: &AgentKeys) -> Result<Deep, String> {
    let mut deep = Deep::default();
    let Ok(leaves) = std::fs::read_to_string(bundle.join(month_seal::LEAVES)) else {
        deep.problems.push(format!(
            "{}: missing; --deep needs an archived month's bundle (one with a seal)",
            month_seal::LEAVES
        ));
        return Ok(deep);
    };
    let report = std::fs::read(bundle.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<JsonFile>(&b).ok())
        .map(|f| f.report);
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a scratch store: {e}"))?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(scratch.path())
            .map_err(|e| format!("cannot make a scratch store: {e}"))?,
    );
    let at = report.as_ref().map(|r| r.cover.generated_at);
    let sealed = Sealed::parse(&leaves);
    let checked = check::check(evidence, keys, &sealed, &mut |p| {
        load(store.as_ref(), &p, at.unwrap_or_default())
    })?;
    deep.batches = checked.batches;
    deep.loaded = checked.passed;
    deep.problems
        .extend(checked.findings.iter().map(ToString::to_string));
    deep.notes.extend(checked.notes.iter().cloned());
    let Some(report) = report else {
        deep.problems
            .push("report.json: missing or unreadable, so no figure can be compared".into());
        return Ok(deep);
    };
    let (Some(cfg), Some(manifest)) = (&checked.definitions, &checked.manifest) else {
        deep.problems.push(
            "the evidence has no usable definitions or manifest, so no figure can be recomputed"
                .into(),
        );
        return Ok(deep);
    };
    prepare(store.as_ref(), cfg, manifest, &checked)?;
    recompute(&mut deep, (bundle, &report), (cfg, manifest), store)?;
    Ok(deep)
}

/// One sealed batch into the scratch store, as ingest stored it: timestamps shifted by the
/// collector's correction, the seal kept.
fn load(store: &dyn Store, p: &Passed<'_>, received_at: jiff::Timestamp) -> Result<(), String> {
    let shift = jiff::SignedDuration::from_millis(p.line.shift_ms);
    let mut measurements = p.batch.measurements.clone();
    for m in &mut measurements {
        m.ts = m.ts.checked_add(shift).map_err(|e| {
            format!(
                "agent {} batch {}: shifted timestamp out of range: {e}",
                p.batch.agent, p.batch.seq
            )
        })?;
    }
    let gaps = (!p.batch.gaps.is_empty()).then(|| canonical::encode_gaps(&p.batch.gaps));
    let batch = IngestBatch {
        agent: p.batch.agent.clone(),
        seq: p.batch.seq,
        received_at,
        clock_offset_ms: 0,
        measurements,
        gaps: p.batch.gaps.clone(),
        spool: None,
        seal: Some(BatchSeal {
            digest: p.line.digest,
            prev: p.line.prev,
            signature: p.line.signature,
            key: p.line.key,
            ts_shift_ms: p.line.shift_ms,
            gaps,
        }),
    };
    store
        .commit_batch(&batch)
        .map(|_| ())
        .map_err(|e| format!("cannot load into the scratch store: {e}"))
}

/// What the store knows besides measurements: when each service was first configured, the
/// latency thresholds counted exactly, the API maintenance windows.
fn prepare(
    store: &dyn Store,
    cfg: &CollectorConfig,
    manifest: &Manifest,
    checked: &Checked,
) -> Result<(), String> {
    let err = |e: crate::store::StoreError| format!("scratch store: {e}");
    for s in &manifest.services {
        if let Some(t) = s.first_configured {
            store
                .note_configured(std::slice::from_ref(&s.name), t)
                .map_err(err)?;
        }
    }
    for (check, threshold) in crate::store::tracked_thresholds(cfg) {
        store.track_threshold(&check, threshold).map_err(err)?;
    }
    let mut windows: Vec<&WindowEntry> = checked.windows.iter().collect();
    windows.sort_by_key(|w| w.id);
    for w in windows {
        let id = store
            .add_maintenance(
                &NewMaintenance {
                    service: &w.service,
                    start: w.start,
                    end: w.end,
                    reason: &w.reason,
                    registered_by: w.registered_by.as_deref().unwrap_or(""),
                    reference: w.reference.as_deref(),
                },
                w.registered_at,
            )
            .map_err(err)?;
        if let Some(c) = w.cancelled_at {
            store.cancel_maintenance(id, c).map_err(err)?;
        }
    }
    Ok(())
}

/// Runs the report's own assembly on the scratch store and compares every figure.
fn recompute(
    deep: &mut Deep,
    (bundle, report): (&Path, &super::model::MonthlyReport),
    (cfg, manifest): (&CollectorConfig, &Manifest),
    store: Arc<dyn Store>,
) -> Result<(), String> {
    let month = crate::report::parse_month(&report.cover.month).map_err(|e| e.reason)?;
    let service = manifest
        .service
        .as_deref()
        .or(report.cover.service.as_deref());
    let figures = Figures::new(Arc::new(cfg.clone()), store);
    let settings = Settings::from_config(&cfg.report);
    let (again, minutes) = assemble::assemble(
        &figures,
        cfg,
        &settings,
        (month, service),
        report.cover.generated_at,
        None,
    )
    .map_err(|e| format!("cannot recompute the month from the evidence: {}", e.reason))?;
    let (want, got) = (to_value(report), to_value(&again));
    for name in again.summary.iter().map(|s| s.service.clone()) {
        let mut differ = Vec::new();
        compare_row(
            &want,
            &got,
            "summary",
            &name,
            &[],
            &mut differ,
            &mut deep.figures,
        );
        compare_row(
            &want,
            &got,
            "services",
            &name,
            NOT_FIGURES,
            &mut differ,
            &mut deep.figures,
        );
        deep.problems
            .extend(differ.into_iter().map(|d| format!("figure {d}")));
    }
    for (name, states) in &minutes {
        let rel = format!("minutes/{}.csv", file_safe(name));
        let fresh = csv::minutes(states);
        let archived = std::fs::read_to_string(bundle.join(&rel)).unwrap_or_default();
        deep.figures += 1;
        if fresh != archived {
            let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
            deep.problems.push(format!(
                "figure {rel}: the minute states recomputed from the evidence differ: {}",
                super::verify::first_difference(&lines(&fresh), &lines(&archived))
            ));
        }
    }
    Ok(())
}

fn to_value(r: &super::model::MonthlyReport) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Compares the entry of `service` in the array `member` of both reports, leaf by leaf.
fn compare_row(
    want: &Value,
    got: &Value,
    member: &str,
    service: &str,
    skip: &[&str],
    differ: &mut Vec<String>,
    compared: &mut u64,
) {
    let find = |v: &Value| {
        v.get(member)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|r| r.get("service").and_then(Value::as_str) == Some(service))
            })
            .cloned()
    };
    let path = format!("{member}[{service}]");
    match (find(want), find(got)) {
        (Some(w), Some(g)) => {
            let (Value::Object(w), Value::Object(g)) = (w, g) else {
                return;
            };
            for (k, gv) in &g {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let wv = w.get(k).unwrap_or(&Value::Null);
                leaves(&format!("{path}.{k}"), wv, gv, differ, compared);
            }
        }
        (None, _) => differ.push(format!(
            "{path}: not in the report, but the evidence has it"
        )),
        (_, None) => differ.push(format!("{path}: in the report, but not recomputed")),
    }
}

/// Every leaf of `got` against `want`; arrays of different length differ as a whole.
fn leaves(path: &str, want: &Value, got: &Value, differ: &mut Vec<String>, compared: &mut u64) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, gv) in g {
                leaves(
                    &format!("{path}.{k}"),
                    w.get(k).unwrap_or(&Value::Null),
                    gv,
                    differ,
                    compared,
                );
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                leaves(&format!("{path}[{i}]"), wv, gv, differ, compared);
            }
        }
        _ => {
            *compared += 1;
            if want != got {
                differ.push(format!(
                    "{path}: the report says {}, the evidence gives {}",
                    short(want),
                    short(got)
                ));
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!("{}…", &s[..s.floor_char_boundary(120)])
    } else {
        s
    }
}

#[cfg(test)]
#[path = "deep_tests.rs"]
mod tests;
