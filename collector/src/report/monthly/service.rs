//! The collector's report service: what the report routes and the month-close loop call.
//! It owns the signing key, the templates and the archive, and builds reports through
//! [`assemble`](super::assemble) (the engine's figures) — archived months are served from
//! the archive, which is the record.
//!
//! Invariants: every "now" is passed in (the caller's clock); an unusable signing key or
//! template directory is reported on every request that needs it, never skipped silently
//! (an unsigned report where a signed one was configured would mislead).

use std::sync::Arc;

use attest_config::CollectorConfig;
use ed25519_dalek::SigningKey;
use jiff::Timestamp;

use super::archive::{Archive, ArchiveDifferences, Closed};
use super::assemble::{self, Settings};
use super::model::MonthlyReport;
use super::{Format, RenderOptions, Templates, integrity, render};
use crate::figures::Figures;
use crate::reject::Rejection;
use crate::sla::detail::MinuteStates;
use crate::sla::{Month, Period};

pub struct Reports {
    cfg: Arc<CollectorConfig>,
    figures: Arc<Figures>,
    key: Result<Option<SigningKey>, String>,
    templates: Result<Templates, String>,
    pub archive: Option<Archive>,
    /// The archived report last read (month, report): an archive is never rewritten, so a
    /// service's page of the same month needs no second read and parse of `report.json`
    /// (17 MB at 1,000 services). One month only, to bound memory.
    archived_cache: std::sync::Mutex<Option<(String, Arc<MonthlyReport>)>>,
    pub differences: Arc<ArchiveDifferences>,
}

/// The CSV tables a route serves by `table=` (each `NAME.csv` of the `csv` format).
pub const CSV_TABLES: &[&str] = &[
    "services",
    "daily",
    "incidents",
    "unknown",
    "maintenance",
    "terms",
    "checks",
    "trend",
    "notes",
    "definitions",
    "evidence",
    "evidence_agents",
];

/// The files of one request: name, content type, bytes, and where its figures came from.
pub struct Served {
    pub name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    pub source: Source,
}

/// Where a served report's figures came from (the `X-Attest-Source` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The month's archive: the record, no engine run.
    Archive,
    /// The engine, from the store, at the time of the request.
    Computed,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Archive => "archive",
            Source::Computed => "computed",
        }
    }
}

/// The file called `name` among `files`.
fn one_of(
    files: Vec<(String, Vec<u8>)>,
    name: String,
    source: Source,
) -> Result<Served, Rejection> {
    let bytes = files
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .ok_or_else(|| Rejection::new(500, format!("{name} was not rendered")))?;
    Ok(Served {
        content_type: content_type(&name),
        name,
        bytes,
        source,
    })
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

impl Reports {
    pub fn new(
        cfg: Arc<CollectorConfig>,
        figures: Arc<Figures>,
        differences: Arc<ArchiveDifferences>,
    ) -> Reports {
        let r = &cfg.report;
        let key = match &r.signing_key_file {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read [report] signing_key_file {}: {e}", p.display()))
                .and_then(|t| {
                    integrity::load_signing_key(&p.display().to_string(), &t)
                        .map(Some)
                        .map_err(|e| e.to_string())
                }),
        };
        let templates = match &r.templates_dir {
            None => Ok(Templates::default()),
            Some(d) => Templates::from_dir(d)
                .map_err(|e| format!("cannot read [report] templates_dir {}: {e}", d.display())),
        };
        let archive = r.archive_dir.clone().map(|dir| Archive {
            dir,
            grace: r.grace,
        });
        Reports {
            cfg,
            figures,
            key,
            templates,
            archive,
            archived_cache: std::sync::Mutex::new(None),
            differences,
        }
    }

    fn key(&self) -> Result<Option<&SigningKey>, Rejection> {
        self.key
            .as_ref()
            .map(Option::as_ref)
            .map_err(|e| Rejection::new(500, e.clone()))
    }

    /// The signer's public key as the bundle's `report-key.pub` holds it (64 hex digits and
    /// a newline), and its fingerprint statement; 404 when reports are not signed.
    pub fn public_key(&self) -> Result<(Vec<u8>, String), Rejection> {
        let key = self.key()?.ok_or_else(|| {
            Rejection::new(
                404,
                "reports are not signed: set [report] signing_key_file in the collector config",
            )
        })?;
        let (_, bytes) = super::public_key_file(Some(key)).unwrap_or_default();
        Ok((bytes, super::integrity::statement_for(Some(key))))
    }

    fn templates(&self) -> Result<Templates, Rejection> {
        self.templates.clone().map_err(|e| Rejection::new(500, e))
    }

    /// The report of `month` (all services or one) as of `at`, with its minute tables.
    pub fn build(
        &self,
        month: Month,
        service: Option<&str>,
        at: Timestamp,
    ) -> Result<(MonthlyReport, Vec<(String, MinuteStates)>), Rejection> {
        let settings = Settings::from_config(&self.cfg.report);
        let (mut r, minutes) = assemble::assemble(
            &self.figures,
            &self.figures.config(),
            &settings,
            (month, service),
            at,
            self.archive.as_ref(),
        )?;
        if let Some(a) = &self.archive {
            r.addenda = a
                .addenda_before(&month.to_string())
                .map_err(|e| Rejection::new(500, e.to_string()))?;
        }
        Ok((r, minutes))
    }

    /// One file of `month` in `format` (not `bundle`); an archived month comes from the
    /// archive (one service: its part of the archived report), any other is computed.
    /// `table` picks the CSV table (one of [`CSV_TABLES`]).
    pub fn file(
        &self,
        month: Month,
        service: Option<&str>,
        format: Format,
        table: Option<&str>,
        at: Timestamp,
    ) -> Result<Served, Rejection> {
        let name = match format {
            Format::Csv => {
                let t = table.unwrap_or("services");
                if !CSV_TABLES.contains(&t) {
                    return Err(Rejection::new(
                        400,
                        format!("table={t:?} is not one of {}", CSV_TABLES.join(", ")),
                    )
                    .field("table"));
                }
                format!("{t}.csv")
            }
            Format::Bundle => {
                return Err(Rejection::new(
                    400,
                    "format=bundle is a directory: write it with `attest-collector report --format bundle`, or fetch each format",
                )
                .field("format"));
            }
            f => format!("report.{}", f.name()),
        };
        if let Some(served) = self.archived_file(month, service, format, &name)? {
            return Ok(served);
        }
        let (r, minutes) = self.build(month, service, at)?;
        let files = self.render_files(&r, format, &minutes)?;
        one_of(files, name, Source::Computed)
    }

    /// `name` of an archived `month` without an engine run: the archived file itself for
    /// the whole month; for one service, its part of the archived report rendered anew (every
    /// figure the archived one). `None` when the month is not archived, archived under
    /// another schema, or archived without that service: then it is computed.
    fn archived_file(
        &self,
        month: Month,
        service: Option<&str>,
        format: Format,
        name: &str,
    ) -> Result<Option<Served>, Rejection> {
        let Some(a) = &self.archive else {
            return Ok(None);
        };
        let m = month.to_string();
        let Some(service) = service else {
            return Ok(std::fs::read(a.month_dir(&m).join(name))
                .ok()
                .map(|bytes| Served {
                    content_type: content_type(name),
                    name: name.to_string(),
                    bytes,
                    source: Source::Archive,
                }));
        };
        let Some(whole) = self.archived_report(a, &m)? else {
            return Ok(None);
        };
        // A service configured after the month was archived is not in the record: computed.
        let Some(part) = whole.only_service(service) else {
            return Ok(None);
        };
        let files = self.render_files(&part, format, &[])?;
        one_of(files, name.to_string(), Source::Archive).map(Some)
    }

    /// The archived report of `m`, from the cache when it was the last one read.
    fn archived_report(
        &self,
        a: &Archive,
        m: &str,
    ) -> Result<Option<Arc<MonthlyReport>>, Rejection> {
        let mut cache = self
            .archived_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((month, r)) = cache.as_ref()
            && month == m
        {
            return Ok(Some(r.clone()));
        }
        let Some(r) = a
            .archived(m)
            .map_err(|e| Rejection::new(500, e.to_string()))?
        else {
            return Ok(None);
        };
        let r = Arc::new(r);
        *cache = Some((m.to_string(), r.clone()));
        Ok(Some(r))
    }

    fn render_files(
        &self,
        r: &MonthlyReport,
        format: Format,
        minutes: &[(String, MinuteStates)],
    ) -> Result<Vec<(String, Vec<u8>)>, Rejection> {
        let opts = RenderOptions {
            key: self.key()?,
            templates: self.templates()?,
            minutes,
        };
        render(r, format, &opts).map_err(|e| Rejection::new(500, e.to_string()))
    }

    /// The months the index lists: of the twelve up to the current one (UTC), newest first,
    /// those some service's agreement covers (none before every `start`), each with whether
    /// it is archived.
    pub fn months(&self, now: Timestamp) -> Vec<(String, bool)> {
        let Ok(mut m) = Month::containing(now, "UTC") else {
            return Vec::new();
        };
        let cfg = self.figures.config();
        let mut out = Vec::new();
        for _ in 0..12 {
            if !super::trend::any_covered(&cfg.services, m) {
                break;
            }
            let name = m.to_string();
            let archived = self.archive.as_ref().is_some_and(|a| a.is_archived(&name));
            out.push((name, archived));
            m = m.previous();
        }
        out
    }

    /// Archives every closed month among the last two (UTC) that is due at `now`, and
    /// records differences of archived months against a recomputation. Returns
    /// `(month, differing fields)` of the archived months checked.
    pub fn close_months(&self, now: Timestamp) -> Result<Vec<(String, usize)>, Rejection> {
        let Some(archive) = &self.archive else {
            return Ok(Vec::new());
        };
        let err = |e: super::archive::ArchiveError| Rejection::new(500, e.to_string());
        let current =
            Month::containing(now, "UTC").map_err(|e| Rejection::new(500, e.to_string()))?;
        let mut checked = Vec::new();
        for month in [current.previous().previous(), current.previous()] {
            let name = month.to_string();
            let end = self.latest_end(month)?;
            let templates = self.templates()?;
            let key = self.key()?;
            let outcome = archive
                .close_sealed(&name, (end, now), key, &templates, || {
                    let (r, minutes) = self.build(month, None, now).ok()?;
                    let seal = super::month_seal::build(&self.figures, month, key).ok()?;
                    Some((r, minutes, seal))
                })
                .map_err(err)?;
            if let Closed::Written(dir) = &outcome {
                tracing::info!(month = %name, dir = %dir.display(), "archived the month's report bundle");
            }
            if archive.is_archived(&name) && outcome != Closed::Written(archive.month_dir(&name)) {
                let (r, _) = self.build(month, None, now)?;
                let diff = archive.check(&name, &r, now).map_err(err)?;
                if !diff.is_empty() {
                    tracing::warn!(month = %name, fields = diff.len(), "late data changed figures of an archived month; recorded as an addendum");
                }
                self.differences.set(&name, diff.len() as u64);
                checked.push((name, diff.len()));
            }
        }
        Ok(checked)
    }

    /// The latest period end of `month` over every service (zones differ).
    fn latest_end(&self, month: Month) -> Result<Timestamp, Rejection> {
        let mut end = Period::month(month, "UTC")
            .map_err(|e| Rejection::new(500, e.to_string()))?
            .end;
        for s in &self.figures.config().services {
            if let Ok(p) = Period::month(month, &s.time_zone) {
                end = end.max(p.end);
            }
        }
        Ok(end)
    }
}
