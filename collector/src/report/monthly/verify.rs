//! `attest-collector report verify PATH [--public-key F]`: checks a report file or a
//! directory (bundle or CSV set) offline and says what changed.
//!
//! Invariants:
//! - Without the signer's public key (the trust anchor) nothing is called authentic: an
//!   intact file is "intact but unauthenticated" ([`Outcome::Unauthenticated`]).
//! - A file passes only if its seal matches every byte and, when signed, the signature
//!   verifies (against the given public key when there is one). A given public key with an
//!   unsigned file fails: the caller asked for proof of origin.
//! - In a directory, every file the MANIFEST lists must be present and match; files not
//!   listed are reported. When `report.json` is intact, a changed HTML, Markdown or CSV file
//!   is compared with a fresh rendering of it, naming the lines that differ.

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::integrity::{self, Findings, KIND_FILE, KIND_MANIFEST, Seal};
use super::month_seal;
use super::{JsonFile, RenderOptions, csv, text};

/// What `report verify` concludes from its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Intact, and every seal is signed by the public key the caller gave.
    Authentic,
    /// Intact, but no trust anchor was given: digests and a signature by the key a file
    /// names prove nothing about who wrote it (anyone can edit a report and re-seal it, or
    /// sign it with a key of their own).
    Unauthenticated,
    /// Something changed, is missing, or does not verify.
    Failed,
}

/// Never "authentic" without the caller's public key.
pub fn outcome(f: &Findings, key_given: bool) -> Outcome {
    if !f.ok() {
        Outcome::Failed
    } else if key_given {
        Outcome::Authentic
    } else {
        Outcome::Unauthenticated
    }
}

/// Checks `path`; the findings say what passed and what did not.
pub fn verify_path(path: &Path, trusted: Option<&VerifyingKey>) -> std::io::Result<Findings> {
    if path.is_dir() {
        return verify_dir(path, trusted);
    }
    let bytes = std::fs::read(path)?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(verify_file(&name, &bytes, trusted))
}

/// Checks one file's own seal (JSON member or trailer).
pub fn verify_file(name: &str, bytes: &[u8], trusted: Option<&VerifyingKey>) -> Findings {
    if bytes.first() == Some(&b'{') {
        return verify_json(name, bytes, trusted);
    }
    match integrity::split_sealed(bytes) {
        Some((body, seal)) => integrity::check_seal(KIND_FILE, name, &seal, body, trusted),
        None => Findings {
            problems: vec![format!(
                "{name}: no intact Attest integrity trailer (not an Attest report, or its last line was cut or edited)"
            )],
            notes: Vec::new(),
        },
    }
}

fn verify_json(name: &str, bytes: &[u8], trusted: Option<&VerifyingKey>) -> Findings {
    let file: JsonFile = match serde_json::from_slice(bytes) {
        Ok(f) => f,
        Err(e) => {
            return Findings {
                problems: vec![format!("{name}: not a valid Attest JSON report: {e}")],
                notes: Vec::new(),
            };
        }
    };
    let content = integrity::content_sha256(&file.report);
    let seal = Seal {
        content_sha256: file.integrity.content_sha256.clone(),
        // The JSON's seal covers its content digest (see `monthly::json`).
        covered_sha256: integrity::sha256_hex(file.integrity.content_sha256.as_bytes()),
        signature: file
            .integrity
            .key
            .clone()
            .zip(file.integrity.signature.clone()),
    };
    let mut f = integrity::check_seal(KIND_FILE, name, &seal, content.as_bytes(), trusted);
    if content != file.integrity.content_sha256 {
        f.problems.retain(|p| !p.contains("content changed after"));
        f.problems.insert(
            0,
            format!(
                "{name}: report content changed: its canonical JSON has SHA-256 {content}, the file says {}",
                file.integrity.content_sha256
            ),
        );
    }
    // The bytes must be exactly the canonical pretty rendering (catches edits to layout).
    if let Ok(again) = super::json(&file.report, None) {
        let strip = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .filter(|l| !l.contains("\"key\"") && !l.contains("\"signature\""))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let (want, got) = (strip(&again), strip(bytes));
        if want != got {
            f.problems
                .push(format!("{name}: {}", first_difference(&want, &got)));
        }
    }
    f
}

/// "line N: expected `…`, found `…`" for the first differing lines (up to three).
pub fn first_difference(want: &[String], got: &[String]) -> String {
    let mut out = Vec::new();
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if w != g {
            out.push(format!(
                "line {}: expected `{}`, found `{}`",
                i + 1,
                w.map_or("<end of file>", |s| s.as_str()),
                g.map_or("<end of file>", |s| s.as_str())
            ));
            if out.len() == 3 {
                break;
            }
        }
    }
    if out.is_empty() {
        "no line differs (the change is in line endings or encoding)".into()
    } else {
        out.join("; ")
    }
}

fn verify_dir(dir: &Path, trusted: Option<&VerifyingKey>) -> std::io::Result<Findings> {
    let mut f = Findings::default();
    let manifest = match std::fs::read_to_string(dir.join("MANIFEST")) {
        Ok(m) => m,
        Err(e) => {
            f.problems.push(format!("MANIFEST: cannot read it: {e}"));
            return Ok(f);
        }
    };
    let seal_text = std::fs::read_to_string(dir.join("MANIFEST.attest")).unwrap_or_default();
    match Seal::parse(seal_text.lines().nth(1).unwrap_or(""))
        .filter(|s| seal_text == format!("{}\n{}\n", integrity::TRAILER_TAG, s.fields()))
    {
        Some(seal) => merge(
            &mut f,
            integrity::check_seal(
                KIND_MANIFEST,
                "MANIFEST.attest",
                &seal,
                manifest.as_bytes(),
                trusted,
            ),
        ),
        None => f
            .problems
            .push("MANIFEST.attest: missing or malformed".into()),
    }
    let listed = integrity::parse_manifest(&manifest);
    let mut changed = Vec::new();
    for (digest, rel) in &listed {
        if rel.contains("..") || rel.starts_with('/') {
            f.problems
                .push(format!("MANIFEST: refuses the path {rel:?}"));
            continue;
        }
        match std::fs::read(dir.join(rel)) {
            Ok(bytes) => {
                let actual = integrity::sha256_hex(&bytes);
                if &actual != digest {
                    f.problems.push(format!(
                        "{rel}: changed: SHA-256 is {actual}, MANIFEST says {digest}"
                    ));
                    changed.push((rel.clone(), bytes));
                } else if rel.starts_with("report.") {
                    merge(&mut f, verify_file(rel, &bytes, trusted));
                }
            }
            Err(e) => f
                .problems
                .push(format!("{rel}: listed in MANIFEST but cannot be read: {e}")),
        }
    }
    for extra in unlisted(dir, &listed)? {
        f.problems.push(format!(
            "{extra}: present but not listed in MANIFEST (added after sealing)"
        ));
    }
    if listed.iter().any(|(_, rel)| rel == month_seal::SEAL) {
        verify_month_seal(dir, trusted, &mut f);
    }
    explain_changes(dir, &listed, &changed, &mut f);
    Ok(f)
}

/// An archived month's seal: its leaves give its root, and its signature is the trusted
/// key's (a note, not an authentication, when no key was given).
fn verify_month_seal(dir: &Path, trusted: Option<&VerifyingKey>, f: &mut Findings) {
    let read = |rel: &str| std::fs::read_to_string(dir.join(rel)).unwrap_or_default();
    match crate::seal::check_seal(&read(month_seal::SEAL), &read(month_seal::LEAVES), trusted) {
        Ok(c) => f.notes.push(format!(
            "{}: {} leaves under root {}{}",
            month_seal::SEAL,
            c.leaves,
            integrity::hex(&c.root),
            match (c.signed_by, trusted) {
                (Some(_), Some(_)) => ", signed by the given key",
                (Some(_), None) =>
                    ", signed by the key it names (not authenticated: pass --public-key)",
                (None, _) => ", not signed",
            }
        )),
        Err(why) => f.problems.push(format!("{}: {why}", month_seal::SEAL)),
    }
}

fn merge(into: &mut Findings, from: Findings) {
    into.problems.extend(from.problems);
    into.notes.extend(from.notes);
}

fn unlisted(dir: &Path, listed: &[(String, String)]) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.file_type()?.is_dir() {
                stack.push((e.path(), format!("{name}/")));
            } else if name != "MANIFEST"
                && name != "MANIFEST.attest"
                && !listed.iter().any(|(_, p)| *p == name)
            {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// For changed text files, compares them with a fresh rendering of the intact report.json.
fn explain_changes(
    dir: &Path,
    listed: &[(String, String)],
    changed: &[(String, Vec<u8>)],
    f: &mut Findings,
) {
    if changed.is_empty() {
        return;
    }
    let json_ok = listed.iter().any(|(d, p)| {
        p == "report.json"
            && std::fs::read(dir.join(p)).is_ok_and(|b| &integrity::sha256_hex(&b) == d)
    });
    let report = json_ok
        .then(|| std::fs::read(dir.join("report.json")).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<JsonFile>(&b).ok())
        .map(|j| j.report);
    let Some(r) = report else {
        f.notes.push(
            "report.json is changed or missing, so the changes cannot be shown line by line".into(),
        );
        return;
    };
    let digest = integrity::content_sha256(&r);
    let opts = RenderOptions::default();
    for (rel, bytes) in changed {
        let key_hex = integrity::split_sealed(bytes).and_then(|(_, s)| s.signature.map(|(k, _)| k));
        let signed = integrity::signature_statement(key_hex.as_deref());
        let fresh: Option<Vec<u8>> = match rel.as_str() {
            "report.html" => text::html(&r, (&digest, &signed), &opts.templates)
                .ok()
                .map(String::into_bytes),
            "report.md" => text::markdown(&r, (&digest, &signed), &opts.templates)
                .ok()
                .map(String::into_bytes),
            "services.csv" => Some(csv::services(&r).into_bytes()),
            "daily.csv" => Some(csv::daily(&r).into_bytes()),
            "incidents.csv" => Some(csv::incidents(&r).into_bytes()),
            "unknown.csv" => Some(csv::unknown(&r).into_bytes()),
            "maintenance.csv" => Some(csv::maintenance(&r).into_bytes()),
            "terms.csv" => Some(csv::terms(&r).into_bytes()),
            "checks.csv" => Some(csv::checks(&r).into_bytes()),
            "trend.csv" => Some(csv::trend(&r).into_bytes()),
            "notes.csv" => Some(csv::notes(&r).into_bytes()),
            "evidence.csv" => Some(csv::evidence(&r).into_bytes()),
            "evidence_agents.csv" => Some(csv::evidence_agents(&r).into_bytes()),
            _ => None,
        };
        let Some(fresh) = fresh else {
            f.notes.push(format!(
                "{rel}: binary or per-minute file; only its digest can be compared"
            ));
            continue;
        };
        let body = integrity::split_sealed(bytes).map_or(bytes.as_slice(), |(b, _)| b);
        let lines = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        f.problems.push(format!(
            "{rel}: compared with report.json rendered again (built-in templates): {}",
            first_difference(&lines(&fresh), &lines(body))
        ));
    }
}
