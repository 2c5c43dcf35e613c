//! Monthly availability reports: one document per month (all services or one) in JSON,
//! HTML, Markdown, PDF and CSV, a bundle of all of them with per-service minute tables and
//! a `MANIFEST`, and the offline verification of any of them.
//!
//! Flow: figures (engine results) → [`model::MonthlyReport`] → renderers (`json`, `text`,
//! `pdf`, `csv`) → [`integrity`] seals → files.
//!
//! Invariants:
//! - Renderers read only the model (and, for the bundle's minute tables, the engine's minute
//!   states); they read no clock and no store. The same model gives the same bytes.
//! - Every output is sealed: HTML, Markdown and PDF carry a trailer, JSON an `integrity`
//!   member, CSV sets and bundles a `MANIFEST` + `MANIFEST.attest`.

pub mod archive;
pub mod assemble;
pub mod cli;
pub mod csv;
pub mod deep;
pub mod digest;
pub mod evidence;
pub mod fixture;
pub mod integrity;
pub mod method;
pub mod model;
pub mod month_seal;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod redundancy;
pub mod service;
pub mod svg;
pub mod terms;
pub mod text;
pub mod trend;
pub mod verdict;
pub mod verify;

#[cfg(test)]
mod tests;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::sla::detail::MinuteStates;
use integrity::{KIND_FILE, Seal};
use model::MonthlyReport;
pub use text::Templates;

/// The output formats of `attest-collector report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Pdf,
    Csv,
    Json,
    Md,
    Bundle,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Html,
        Format::Pdf,
        Format::Csv,
        Format::Json,
        Format::Md,
        Format::Bundle,
    ];

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "html" => Format::Html,
            "pdf" => Format::Pdf,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "md" | "markdown" => Format::Md,
            "bundle" => Format::Bundle,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Md => "md",
            Format::Bundle => "bundle",
        }
    }

    /// Whether the output is a directory of files (CSV set, bundle) rather than one file.
    pub fn is_directory(self) -> bool {
        matches!(self, Format::Csv | Format::Bundle)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] text::TemplateError),
    #[error("this collector was built without PDF support (cargo feature `pdf`)")]
    NoPdf,
    #[error("PDF: {0}")]
    Pdf(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// What rendering needs besides the model.
#[derive(Default)]
pub struct RenderOptions<'a> {
    pub key: Option<&'a SigningKey>,
    pub templates: Templates,
    /// Minute tables per service, for the bundle.
    pub minutes: &'a [(String, MinuteStates)],
}

/// The JSON file: the report with its seal as a last member.
#[derive(Serialize, Deserialize)]
pub struct JsonFile {
    #[serde(flatten)]
    pub report: MonthlyReport,
    pub integrity: JsonSeal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonSeal {
    pub content_sha256: String,
    pub key: Option<String>,
    pub signature: Option<String>,
}

/// The JSON file's bytes (pretty, with a final newline).
pub fn json(r: &MonthlyReport, key: Option<&SigningKey>) -> Result<Vec<u8>, RenderError> {
    let content = integrity::content_sha256(r);
    let seal = Seal::new(KIND_FILE, content.as_bytes(), &content, key);
    let file = JsonFileRef {
        report: r,
        integrity: JsonSeal {
            content_sha256: content,
            key: seal.signature.as_ref().map(|s| s.0.clone()),
            signature: seal.signature.map(|s| s.1),
        },
    };
    let mut out = serde_json::to_vec_pretty(&file)?;
    out.push(b'\n');
    Ok(out)
}

#[derive(Serialize)]
struct JsonFileRef<'a> {
    #[serde(flatten)]
    report: &'a MonthlyReport,
    integrity: JsonSeal,
}

pub fn html(r: &MonthlyReport, o: &RenderOptions<'_>) -> Result<Vec<u8>, RenderError> {
    let digest = integrity::content_sha256(r);
    let signed = integrity::statement_for(o.key);
    let body = text::html(r, (&digest, &signed), &o.templates)?;
    Ok(integrity::seal_file(
        body.into_bytes(),
        &digest,
        o.key,
        false,
    ))
}

pub fn markdown(r: &MonthlyReport, o: &RenderOptions<'_>) -> Result<Vec<u8>, RenderError> {
    let digest = integrity::content_sha256(r);
    let signed = integrity::statement_for(o.key);
    let body = text::markdown(r, (&digest, &signed), &o.templates)?;
    Ok(integrity::seal_file(
        body.into_bytes(),
        &digest,
        o.key,
        false,
    ))
}

#[cfg(feature = "pdf")]
pub fn pdf(r: &MonthlyReport, o: &RenderOptions<'_>) -> Result<Vec<u8>, RenderError> {
    let digest = integrity::content_sha256(r);
    let signed = integrity::statement_for(o.key);
    let body = pdf::render(r, (&digest, &signed)).map_err(|e| RenderError::Pdf(e.to_string()))?;
    Ok(integrity::seal_file(body, &digest, o.key, true))
}

#[cfg(not(feature = "pdf"))]
pub fn pdf(_: &MonthlyReport, _: &RenderOptions<'_>) -> Result<Vec<u8>, RenderError> {
    Err(RenderError::NoPdf)
}

/// The CSV tables, by file name.
pub fn csv_files(r: &MonthlyReport) -> Vec<(String, Vec<u8>)> {
    vec![
        ("services.csv".into(), csv::services(r).into_bytes()),
        ("daily.csv".into(), csv::daily(r).into_bytes()),
        ("incidents.csv".into(), csv::incidents(r).into_bytes()),
        ("unknown.csv".into(), csv::unknown(r).into_bytes()),
        ("maintenance.csv".into(), csv::maintenance(r).into_bytes()),
        ("terms.csv".into(), csv::terms(r).into_bytes()),
        ("checks.csv".into(), csv::checks(r).into_bytes()),
        ("trend.csv".into(), csv::trend(r).into_bytes()),
        ("notes.csv".into(), csv::notes(r).into_bytes()),
        ("definitions.csv".into(), csv::definitions(r).into_bytes()),
        ("evidence.csv".into(), csv::evidence(r).into_bytes()),
        (
            "evidence_agents.csv".into(),
            csv::evidence_agents(r).into_bytes(),
        ),
    ]
}

/// `files` plus their `MANIFEST` and `MANIFEST.attest`.
fn with_manifest(
    mut files: Vec<(String, Vec<u8>)>,
    r: &MonthlyReport,
    key: Option<&SigningKey>,
) -> Vec<(String, Vec<u8>)> {
    let manifest = integrity::manifest(&files);
    let seal = integrity::manifest_seal(&manifest, &integrity::content_sha256(r), key);
    files.push(("MANIFEST".into(), manifest.into_bytes()));
    files.push(("MANIFEST.attest".into(), seal.into_bytes()));
    files
}

/// The files of one format: a single `report.<ext>` or a directory's files by relative path.
pub fn render(
    r: &MonthlyReport,
    format: Format,
    o: &RenderOptions<'_>,
) -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    Ok(match format {
        Format::Json => vec![("report.json".into(), json(r, o.key)?)],
        Format::Html => vec![("report.html".into(), html(r, o)?)],
        Format::Md => vec![("report.md".into(), markdown(r, o)?)],
        Format::Pdf => vec![("report.pdf".into(), pdf(r, o)?)],
        Format::Csv => with_manifest(csv_files(r), r, o.key),
        Format::Bundle => {
            let mut files = vec![
                ("report.json".to_string(), json(r, o.key)?),
                ("report.html".to_string(), html(r, o)?),
                ("report.md".to_string(), markdown(r, o)?),
            ];
            match pdf(r, o) {
                Ok(b) => files.push(("report.pdf".into(), b)),
                Err(RenderError::NoPdf) => {}
                Err(e) => return Err(e),
            }
            files.extend(csv_files(r));
            files.extend(public_key_file(o.key));
            for (svc, m) in o.minutes {
                files.push((
                    format!("minutes/{}.csv", file_safe(svc)),
                    csv::minutes(m).into_bytes(),
                ));
            }
            with_manifest(files, r, o.key)
        }
    })
}

/// The bundle's `report-key.pub`: the signer's public key as 64 hex digits (what
/// `report verify --public-key` reads), when signed. Listed in the MANIFEST like every file;
/// an auditor compares it with the key the operator gave them, never trusts it alone.
pub fn public_key_file(key: Option<&SigningKey>) -> Option<(String, Vec<u8>)> {
    key.map(|k| {
        let line = format!("{}\n", integrity::hex(k.verifying_key().as_bytes()));
        ("report-key.pub".to_string(), line.into_bytes())
    })
}

/// Writes the bundle into `dir` (created if missing), streaming the minute tables one
/// service at a time so that a large fleet does not hold them all in memory; the files are
/// the same as [`render`]'s for [`Format::Bundle`]. Returns the bytes written.
pub fn write_bundle(
    dir: &std::path::Path,
    r: &MonthlyReport,
    o: &RenderOptions<'_>,
) -> Result<u64, BundleError> {
    write_bundle_with(dir, r, o, &[])
}

/// [`write_bundle`] with `extra` files (relative path, bytes) beside the rendered ones, listed
/// in the MANIFEST like them: an archive's month seal.
pub fn write_bundle_with(
    dir: &std::path::Path,
    r: &MonthlyReport,
    o: &RenderOptions<'_>,
    extra: &[(String, Vec<u8>)],
) -> Result<u64, BundleError> {
    let lean = RenderOptions {
        key: o.key,
        templates: o.templates.clone(),
        minutes: &[],
    };
    let mut files = render(r, Format::Bundle, &lean)?;
    // Drop the lean manifest: it is written again with the minute tables.
    files.retain(|(p, _)| p != "MANIFEST" && p != "MANIFEST.attest");
    let mut digests = Vec::new();
    let mut total = 0u64;
    let mut put = |rel: &str, bytes: &[u8]| -> Result<(), BundleError> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| BundleError::Io(parent.display().to_string(), e))?;
        }
        std::fs::write(&p, bytes).map_err(|e| BundleError::Io(p.display().to_string(), e))?;
        total += bytes.len() as u64;
        Ok(())
    };
    for (rel, bytes) in &files {
        put(rel, bytes)?;
        digests.push((rel.clone(), integrity::sha256_hex(bytes)));
    }
    for (rel, bytes) in extra {
        put(rel, bytes)?;
        digests.push((rel.clone(), integrity::sha256_hex(bytes)));
    }
    for (svc, m) in o.minutes {
        let rel = format!("minutes/{}.csv", file_safe(svc));
        let bytes = csv::minutes(m).into_bytes();
        put(&rel, &bytes)?;
        digests.push((rel, integrity::sha256_hex(&bytes)));
    }
    let manifest = integrity::manifest_of_digests(digests);
    let seal = integrity::manifest_seal(&manifest, &integrity::content_sha256(r), o.key);
    put("MANIFEST", manifest.as_bytes())?;
    put("MANIFEST.attest", seal.as_bytes())?;
    Ok(total)
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot write {0}: {1}")]
    Io(String, std::io::Error),
}

/// A service name as a file name: anything but `[A-Za-z0-9._-]` becomes `_`.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
