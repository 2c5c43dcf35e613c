//! Integrity of report files: the SHA-256 of a report's canonical JSON content, the trailer
//! every text-like format (HTML, Markdown, PDF) carries, the `MANIFEST` of a directory
//! (bundle or CSV set), and Ed25519 signatures over them.
//!
//! Invariants:
//! - Canonical JSON = `serde_json::to_vec` of the [`MonthlyReport`] (struct field order, no
//!   whitespace, floats in shortest round-trip form). Its SHA-256 ties every format of one
//!   report together.
//! - A trailer covers every byte before it: `file-sha256` is the digest of the body, so a
//!   one-byte edit anywhere is found. The signature (when a key is configured) signs
//!   `attest-report-v1 NUL file-sha256 NUL content-sha256`, so neither can be swapped.
//! - `MANIFEST` is `sha256sum` format (`sha256sum -c MANIFEST` works); `MANIFEST.attest`
//!   carries the content digest and the signature over the MANIFEST's digest.
//! - Verification never trusts the key a file names unless the caller passes none; the
//!   caller's public key always wins.

use std::fmt::Write as _;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

pub use super::digest::{hex, sha256_hex};
use super::model::MonthlyReport;

/// Marks the trailer in HTML/Markdown (`<!-- … -->`) and PDF (`%…` after `%%EOF`).
pub const TRAILER_TAG: &str = "attest-integrity v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "cannot read the key in {path}: {detail}; expected a PKCS#8 PEM Ed25519 key (openssl genpkey -algorithm ed25519) or 64 hex digits"
    )]
    Bad { path: String, detail: String },
}

pub use crate::seal::unhex;

/// The canonical JSON bytes of `report`.
pub fn canonical(report: &MonthlyReport) -> Vec<u8> {
    serde_json::to_vec(report).unwrap_or_default()
}

/// SHA-256 of the canonical JSON content, hex.
pub fn content_sha256(report: &MonthlyReport) -> String {
    sha256_hex(&canonical(report))
}

/// What a report's cover says of its signature: `signed with Ed25519 key SHA256:…` (the
/// SHA-256 of the 32 raw public-key bytes, hex) or `not signed`, from the seal's key hex.
pub fn signature_statement(key_hex: Option<&str>) -> String {
    match key_hex.and_then(unhex) {
        Some(raw) => format!("signed with Ed25519 key SHA256:{}", sha256_hex(&raw)),
        None => "not signed".to_string(),
    }
}

/// The statement for a report about to be signed with `key` (or not signed).
pub fn statement_for(key: Option<&SigningKey>) -> String {
    signature_statement(key.map(|k| hex(k.verifying_key().as_bytes())).as_deref())
}

/// Reads a signing key: PKCS#8 PEM or a 64-hex-digit seed.
pub fn load_signing_key(path: &str, text: &str) -> Result<SigningKey, KeyError> {
    let bad = |detail: String| KeyError::Bad {
        path: path.to_string(),
        detail,
    };
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(t).map_err(|e| bad(e.to_string()));
    }
    let bytes = unhex(t).ok_or_else(|| bad("not PEM and not hex".into()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("hex key is not 32 bytes".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key: SPKI PEM (`openssl pkey -pubout`) or 64 hex digits.
pub fn load_public_key(path: &str, text: &str) -> Result<VerifyingKey, KeyError> {
    let bad = |detail: String| KeyError::Bad {
        path: path.to_string(),
        detail,
    };
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(t).map_err(|e| bad(e.to_string()));
    }
    parse_public_hex(t).ok_or_else(|| bad("not PEM and not 64 hex digits".into()))
}

fn parse_public_hex(t: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = unhex(t)?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn message(kind: &str, first: &str, second: &str) -> Vec<u8> {
    format!("{kind}\0{first}\0{second}").into_bytes()
}

/// The fields of a trailer or `MANIFEST.attest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub content_sha256: String,
    /// Digest of the covered bytes (the body, or the MANIFEST).
    pub covered_sha256: String,
    /// Public key and signature, hex, when signed.
    pub signature: Option<(String, String)>,
}

impl Seal {
    /// Seals `covered` for a report whose content digest is `content`.
    pub fn new(kind: &str, covered: &[u8], content: &str, key: Option<&SigningKey>) -> Seal {
        let covered_sha256 = sha256_hex(covered);
        let signature = key.map(|k| {
            let sig = k.sign(&message(kind, &covered_sha256, content));
            (hex(k.verifying_key().as_bytes()), hex(&sig.to_bytes()))
        });
        Seal {
            content_sha256: content.to_string(),
            covered_sha256,
            signature,
        }
    }

    /// `content-sha256=… file-sha256=… [key=… signature=…]`.
    pub fn fields(&self) -> String {
        let mut s = format!(
            "content-sha256={} file-sha256={}",
            self.content_sha256, self.covered_sha256
        );
        if let Some((k, sig)) = &self.signature {
            let _ = write!(s, " key={k} signature={sig}");
        }
        s
    }

    pub fn parse(text: &str) -> Option<Seal> {
        let mut content = None;
        let mut covered = None;
        let mut key = None;
        let mut sig = None;
        for part in text.split_whitespace() {
            match part.split_once('=') {
                Some(("content-sha256", v)) => content = Some(v.to_string()),
                Some(("file-sha256", v)) => covered = Some(v.to_string()),
                Some(("key", v)) => key = Some(v.to_string()),
                Some(("signature", v)) => sig = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Seal {
            content_sha256: content?,
            covered_sha256: covered?,
            signature: key.zip(sig),
        })
    }
}

/// What a check of a seal found; empty `problems` = intact.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Findings {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `seal` against the bytes it covers and, when signed, its signature (against
/// `trusted` when given, else against the key the seal names, with a note saying so).
pub fn check_seal(
    kind: &str,
    what: &str,
    seal: &Seal,
    covered: &[u8],
    trusted: Option<&VerifyingKey>,
) -> Findings {
    let mut f = Findings::default();
    let actual = sha256_hex(covered);
    if actual != seal.covered_sha256 {
        f.problems.push(format!(
            "{what}: content changed after it was written: its SHA-256 is {actual}, the seal says {}",
            seal.covered_sha256
        ));
    }
    match (&seal.signature, trusted) {
        (None, Some(_)) => f
            .problems
            .push(format!("{what}: not signed, but a public key was given")),
        (None, None) => f.notes.push(format!(
            "{what}: not signed (digest only: proves no accidental change)"
        )),
        (Some((key_hex, sig_hex)), trusted) => {
            let named = parse_public_hex(key_hex);
            if let Some(t) = trusted
                && *key_hex != hex(t.as_bytes())
            {
                f.problems.push(format!(
                    "{what}: the seal names key {key_hex}, not the given public key {}",
                    hex(t.as_bytes())
                ));
            }
            let key = trusted.copied().or(named);
            let sig = unhex(sig_hex)
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .map(|b| Signature::from_bytes(&b));
            match (key, sig) {
                (Some(key), Some(sig)) => {
                    let msg = message(kind, &seal.covered_sha256, &seal.content_sha256);
                    if key.verify(&msg, &sig).is_err() {
                        let whose = if trusted.is_some() {
                            "the given public key"
                        } else {
                            "the key it names"
                        };
                        f.problems.push(format!(
                            "{what}: the Ed25519 signature does not verify with {whose} ({})",
                            hex(key.as_bytes())
                        ));
                    } else if trusted.is_none() {
                        f.notes.push(format!(
                            "{what}: signature valid for the key it names ({key_hex}); pass --public-key to check it is yours"
                        ));
                    } else {
                        f.notes
                            .push(format!("{what}: signature valid (key {key_hex})"));
                    }
                }
                _ => f.problems.push(format!(
                    "{what}: the signature or key in the seal is malformed"
                )),
            }
        }
    }
    f
}

/// Kinds of signed message.
pub const KIND_FILE: &str = "attest-report-v1";
pub const KIND_MANIFEST: &str = "attest-manifest-v1";

/// Appends a trailer to a text-like body: `<!-- … -->` (HTML, Markdown) or `%…` (PDF).
pub fn seal_file(mut body: Vec<u8>, content: &str, key: Option<&SigningKey>, pdf: bool) -> Vec<u8> {
    let seal = Seal::new(KIND_FILE, &body, content, key);
    let line = if pdf {
        format!("%{TRAILER_TAG} {}\n", seal.fields())
    } else {
        format!("<!-- {TRAILER_TAG} {} -->\n", seal.fields())
    };
    body.extend_from_slice(line.as_bytes());
    body
}

/// Splits a sealed file into its body and seal; `None` without a trailer, or when the
/// trailer is not exactly as [`seal_file`] writes it (an edit inside the trailer).
pub fn split_sealed(bytes: &[u8]) -> Option<(&[u8], Seal)> {
    let (body, seal) = split_loose(bytes)?;
    let pdf = bytes.get(body.len()) == Some(&b'%');
    let line = if pdf {
        format!("%{TRAILER_TAG} {}\n", seal.fields())
    } else {
        format!("<!-- {TRAILER_TAG} {} -->\n", seal.fields())
    };
    (&bytes[body.len()..] == line.as_bytes()).then_some((body, seal))
}

fn split_loose(bytes: &[u8]) -> Option<(&[u8], Seal)> {
    let tag = TRAILER_TAG.as_bytes();
    let at = bytes.windows(tag.len()).rposition(|w| w == tag)?;
    // The trailer line starts at `<!-- ` or `%`, right after the body's last byte.
    let start = if at >= 5 && &bytes[at - 5..at] == b"<!-- " {
        at - 5
    } else if at >= 1 && bytes[at - 1] == b'%' {
        at - 1
    } else {
        return None;
    };
    let line = std::str::from_utf8(&bytes[at + tag.len()..]).ok()?;
    let line = line.trim_end().trim_end_matches("-->");
    Some((&bytes[..start], Seal::parse(line)?))
}

/// `MANIFEST` text for `(path, bytes)` pairs, sorted by path.
pub fn manifest(files: &[(String, Vec<u8>)]) -> String {
    manifest_of_digests(
        files
            .iter()
            .map(|(p, b)| (p.clone(), sha256_hex(b)))
            .collect(),
    )
}

/// `MANIFEST` text for `(path, hex digest)` pairs, sorted by path.
pub fn manifest_of_digests(mut rows: Vec<(String, String)>) -> String {
    rows.sort();
    rows.iter().map(|(p, d)| format!("{d}  {p}\n")).collect()
}

/// `MANIFEST.attest` text sealing `manifest`.
pub fn manifest_seal(manifest: &str, content: &str, key: Option<&SigningKey>) -> String {
    let seal = Seal::new(KIND_MANIFEST, manifest.as_bytes(), content, key);
    format!("{TRAILER_TAG}\n{}\n", seal.fields())
}

/// Parses `sha256sum` lines: `(digest, path)`.
pub fn parse_manifest(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(d, p)| (d.to_string(), p.to_string()))
        .collect()
}
