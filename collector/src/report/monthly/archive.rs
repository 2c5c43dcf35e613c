//! The month-close archive: once a month has ended in every service's zone and the grace
//! for late data has passed, its bundle is written once into `<archive_dir>/YYYY-MM/` and
//! never rewritten. A later recomputation that differs (late data after close) is recorded
//! as dated addenda in `<archive_dir>/YYYY-MM.addenda.jsonl` (append-only), shown in the
//! reports of later months and counted by a metric — never applied to the archive.
//!
//! Invariants:
//! - A month directory appears whole or not at all: the bundle is written into a temporary
//!   sibling directory and renamed into place; an existing directory is never touched.
//! - Addenda are appended only when the differences changed since the last record, so a
//!   steady difference is recorded once, with the instant it was first found.
//! - No clock: `now` is passed in.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::{Addendum, MonthlyReport};
use super::{BundleError, JsonFile, RenderOptions, Templates, write_bundle_with};
use crate::sla::detail::MinuteStates;
use ed25519_dalek::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("archive: {0}")]
    Bundle(#[from] BundleError),
    #[error("archive {path}: the archived report.json cannot be read: {detail}")]
    Corrupt { path: String, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Differing summary fields of each archived month checked by the month-close loop, for
/// the `attest_report_archive_differences` metric.
#[derive(Debug, Default)]
pub struct ArchiveDifferences(std::sync::Mutex<std::collections::BTreeMap<String, u64>>);

impl ArchiveDifferences {
    pub fn set(&self, month: &str, fields: u64) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(month.to_string(), fields);
    }

    /// `(month, differing fields)`, by month.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// What a closing month's bundle is built from: the report, its minute tables and extra
/// files (relative path, bytes).
pub type Built = (
    MonthlyReport,
    Vec<(String, MinuteStates)>,
    Vec<(String, Vec<u8>)>,
);

/// What [`Archive::close`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    Written(PathBuf),
    AlreadyArchived,
    NotDue,
}

#[derive(Debug, Clone)]
pub struct Archive {
    pub dir: PathBuf,
    pub grace: Duration,
}

impl Archive {
    pub fn month_dir(&self, month: &str) -> PathBuf {
        self.dir.join(month)
    }

    fn addenda_file(&self, month: &str) -> PathBuf {
        self.dir.join(format!("{month}.addenda.jsonl"))
    }

    pub fn is_archived(&self, month: &str) -> bool {
        self.month_dir(month).is_dir()
    }

    /// Whether `month`, whose latest period end over all services is `end`, is due at `now`.
    pub fn due(&self, end: Timestamp, now: Timestamp) -> bool {
        let grace = SignedDuration::try_from(self.grace).unwrap_or(SignedDuration::MAX);
        end.checked_add(grace).is_ok_and(|t| now >= t)
    }

    /// Writes the bundle of the report `build` makes (with its minute tables) for `month`
    /// unless it is archived already or not due; `build` runs only when it is due.
    pub fn close(
        &self,
        month: &str,
        when: (Timestamp, Timestamp),
        key: Option<&SigningKey>,
        templates: &Templates,
        build: impl FnOnce() -> Option<(MonthlyReport, Vec<(String, MinuteStates)>)>,
    ) -> Result<Closed, ArchiveError> {
        self.close_sealed(month, when, key, templates, || {
            build().map(|(r, m)| (r, m, Vec::new()))
        })
    }

    /// [`Archive::close`] whose `build` also gives extra files for the bundle (the month's
    /// seal), written and listed in its MANIFEST with the rest.
    pub fn close_sealed(
        &self,
        month: &str,
        (end, now): (Timestamp, Timestamp),
        key: Option<&SigningKey>,
        templates: &Templates,
        build: impl FnOnce() -> Option<Built>,
    ) -> Result<Closed, ArchiveError> {
        if self.is_archived(month) {
            return Ok(Closed::AlreadyArchived);
        }
        if !self.due(end, now) {
            return Ok(Closed::NotDue);
        }
        let Some((r, minutes, extra)) = build() else {
            return Ok(Closed::NotDue);
        };
        let opts = RenderOptions {
            key,
            templates: templates.clone(),
            minutes: &minutes,
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(".{month}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        write_bundle_with(&tmp, &r, &opts, &extra)?;
        let dest = self.month_dir(month);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        Ok(Closed::Written(dest))
    }

    /// The archived report of `month`.
    pub fn archived(&self, month: &str) -> Result<Option<MonthlyReport>, ArchiveError> {
        let p = self.month_dir(month).join("report.json");
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&p)(e)),
        };
        // A month archived by an earlier version (another schema) is the record as it was;
        // it is not compared field by field with today's schema.
        let schema = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(str::to_string));
        if schema.as_deref().is_some_and(|s| s != super::model::SCHEMA) {
            return Ok(None);
        }
        let file: JsonFile = serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Corrupt {
            path: p.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(Some(file.report))
    }

    /// Records the differences between the archived report of `month` and `now_report`
    /// (a recomputation) when they changed since the last record. Returns the current
    /// differences (empty when the recomputation agrees with the archive).
    pub fn check(
        &self,
        month: &str,
        now_report: &MonthlyReport,
        found_at: Timestamp,
    ) -> Result<Vec<Addendum>, ArchiveError> {
        let Some(archived) = self.archived(month)? else {
            return Ok(Vec::new());
        };
        let diff = differences(&archived, now_report, month, found_at);
        let last = self.latest_addenda(month)?;
        let same = |a: &[Addendum], b: &[Addendum]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    (&x.service, &x.field, &x.archived, &x.now)
                        == (&y.service, &y.field, &y.archived, &y.now)
                })
        };
        if !diff.is_empty() && !same(&diff, &last) {
            let p = self.addenda_file(month);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(io(&p))?;
            let line = serde_json::to_string(&diff).unwrap_or_default();
            writeln!(f, "{line}").map_err(io(&p))?;
            f.sync_all().map_err(io(&p))?;
        }
        Ok(diff)
    }

    /// The last recorded addenda of `month` (empty when none).
    pub fn latest_addenda(&self, month: &str) -> Result<Vec<Addendum>, ArchiveError> {
        let p = self.addenda_file(month);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&p)(e)),
        };
        Ok(text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Vec<Addendum>>(l).ok())
            .unwrap_or_default())
    }

    /// The latest addenda of every archived month before `month` (`YYYY-MM` sorts by time),
    /// for the report of `month`.
    pub fn addenda_before(&self, month: &str) -> Result<Vec<Addendum>, ArchiveError> {
        let mut months: Vec<String> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".addenda.jsonl"))
                        .map(str::to_string)
                })
                .filter(|m| m.as_str() < month)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        months.sort();
        let mut out = Vec::new();
        for m in months {
            out.extend(self.latest_addenda(&m)?);
        }
        Ok(out)
    }
}

/// Field-by-field differences of the summary rows (every figure a verdict rests on).
pub fn differences(
    archived: &MonthlyReport,
    now: &MonthlyReport,
    month: &str,
    found_at: Timestamp,
) -> Vec<Addendum> {
    let mut out = Vec::new();
    for a in &archived.summary {
        let Some(b) = now.summary.iter().find(|b| b.service == a.service) else {
            continue;
        };
        let (va, vb) = (serde_json::to_value(a), serde_json::to_value(b));
        let (Ok(serde_json::Value::Object(va)), Ok(serde_json::Value::Object(vb))) = (va, vb)
        else {
            continue;
        };
        for (k, x) in &va {
            let y = vb.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if *x != y {
                out.push(Addendum {
                    month: month.to_string(),
                    found_at,
                    service: a.service.clone(),
                    field: k.clone(),
                    archived: super::csv::cell(x),
                    now: super::csv::cell(&y),
                });
            }
        }
    }
    out.extend(later_notes(archived, now, month, found_at));
    out
}

/// Report notes the archive does not hold (written after it was archived), one addendum
/// each (`field` `note`): the archive is never rewritten, so a cause or action written later
/// reaches readers as an addendum in the reports of later months.
fn later_notes(
    archived: &MonthlyReport,
    now: &MonthlyReport,
    month: &str,
    found_at: Timestamp,
) -> Vec<Addendum> {
    let mut out = Vec::new();
    for s in &now.services {
        let held = archived
            .services
            .iter()
            .find(|a| a.service == s.service)
            .map_or(&[][..], |a| a.notes.as_slice());
        for n in s.notes.iter().filter(|n| !held.contains(n)) {
            out.push(Addendum {
                month: month.to_string(),
                found_at,
                service: s.service.clone(),
                field: "note".to_string(),
                archived: String::new(),
                now: format!(
                    "{} by {} ({}): cause: {}; action: {}; owner: {}; due: {}",
                    n.written_at,
                    n.written_by,
                    super::text::NOTE_ADDENDUM,
                    n.cause,
                    n.action,
                    n.owner.as_deref().unwrap_or("n/a"),
                    n.due.as_deref().unwrap_or("n/a"),
                ),
            });
        }
    }
    out
}
