//! The evidence export (`attest-collector evidence export`): a month's signed batches in the
//! canonical form of docs/wire.md, with each batch's signature and chain link, the service
//! definitions and maintenance windows the month's seal covers, and a manifest — everything
//! an auditor needs to re-derive the month without the collector (docs/reports.md,
//! "Evidence export"). `export.rs` writes it from the store; `check.rs` reads it back and
//! checks it offline against the agents' keys and the month's seal (what `report verify
//! --deep` builds on). This file is the format both sides share.
//!
//! Invariants:
//! - A batch is exported as the exact bytes of its canonical form (what its digest is the
//!   SHA-256 of), never as a re-interpretation: a verifier hashes what it reads.
//! - The chain file and the batch stream list an agent's batches in the same order (seq
//!   ascending); record *i* of one is record *i* of the other.
//! - Nothing secret is exported: agent tokens and key files never leave the collector.
//! - Every file of the export is listed in `MANIFEST` (`sha256sum` format).

pub mod check;
pub mod export;

use std::io::Read;

use attest_config::evidence::keys::{self, PublicKey};
use serde::{Deserialize, Serialize};

/// The manifest's schema; an incompatible change gets another.
pub const SCHEMA: &str = "attest.evidence/v1";
/// The manifest: month, agents and keys, counts, services.
pub const MANIFEST_JSON: &str = "evidence.json";
/// The configuration sections the figures depend on, without secrets.
pub const DEFINITIONS: &str = "definitions.toml";
/// The API maintenance windows of the span, one JSON object per line.
pub const MAINTENANCE: &str = "maintenance.jsonl";
/// `sha256sum` lines of every other file.
pub const MANIFEST: &str = "MANIFEST";
/// First line of a chain file.
pub const CHAIN_V1: &str = "attest-evidence-chain v1";

/// `agents/<file>.chain` and `agents/<file>.batches.zst` of one agent.
pub fn chain_path(file: &str) -> String {
    format!("agents/{file}.chain")
}

pub fn batches_path(file: &str) -> String {
    format!("agents/{file}.batches.zst")
}

/// `evidence.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's span over every service's zone (the seal's `from`/`to`).
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    /// `--service`: only the batches of the agents that measured it; `None`: every agent.
    pub service: Option<String>,
    pub agents: Vec<AgentEntry>,
    pub batches: u64,
    pub measurements: u64,
    pub services: Vec<ServiceEntry>,
    pub maintenance_windows: u64,
    /// Stored measurements of the span in no signed batch, per agent (unsigned agents,
    /// imports): not evidence, not exported.
    #[serde(default)]
    pub unsigned_measurements: std::collections::BTreeMap<String, u64>,
}

/// One exported agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub agent: String,
    /// Base name of its two files under `agents/`.
    pub file: String,
    /// The keys the collector holds the agent to or stored its batches under
    /// (`ed25519:…`), configured one first. A statement of the collector, not a trust
    /// anchor: the verifier takes keys from `--agent-keys`.
    pub public_keys: Vec<String>,
    /// `configured` (`[[agent]] public_key`) or `pinned` (first use).
    pub key_source: String,
    pub batches: u64,
    pub measurements: u64,
}

/// One service whose definition the seal covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub name: String,
    /// The seal's `definition` leaf value for it.
    pub definition_sha256: String,
    /// When the collector first saw it configured (its minutes count from the earlier of
    /// this and its first measurement when it has no `start`).
    pub first_configured: Option<jiff::Timestamp>,
}

/// One API maintenance window (a line of `maintenance.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowEntry {
    pub id: i64,
    pub service: String,
    pub start: jiff::Timestamp,
    pub end: jiff::Timestamp,
    pub reason: String,
    pub registered_at: jiff::Timestamp,
    pub cancelled_at: Option<jiff::Timestamp>,
    pub registered_by: Option<String>,
    pub reference: Option<String>,
}

/// One line of a chain file: `SEQ DIGEST PREV SIGNATURE KEY SHIFT_MS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLine {
    pub seq: u64,
    pub digest: [u8; 32],
    pub prev: Option<[u8; 32]>,
    pub signature: [u8; 64],
    pub key: [u8; 32],
    /// Milliseconds the collector added to the batch's timestamps when it stored them
    /// (`clock_skew_policy = "correct"`); the canonical bytes hold the agent's own.
    pub shift_ms: i64,
}

impl ChainLine {
    pub fn to_line(&self) -> String {
        let key = PublicKey::from_bytes(&self.key)
            .map_or_else(|_| keys::hex(&self.key), |k| k.to_string());
        format!(
            "{} {} {} {} {key} {}\n",
            self.seq,
            keys::hex(&self.digest),
            self.prev.map_or_else(|| "-".to_string(), |p| keys::hex(&p)),
            keys::signature_text(&self.signature),
            self.shift_ms
        )
    }

    /// Parses one line (without its newline); the reason says which field is wrong.
    pub fn parse(line: &str) -> Result<ChainLine, String> {
        let f: Vec<&str> = line.split(' ').collect();
        let [seq, digest, prev, signature, key, shift] = f.as_slice() else {
            return Err(format!("{} fields instead of 6", f.len()));
        };
        let digest32 = |s: &str, what: &str| {
            keys::parse_digest(s)
                .filter(|_| s.bytes().all(|b| !b.is_ascii_uppercase()))
                .ok_or_else(|| format!("{what} is not 64 lowercase hex digits"))
        };
        let line_out = ChainLine {
            seq: canonical_int(seq).ok_or("seq is not a decimal number")?,
            digest: digest32(digest, "digest")?,
            prev: match *prev {
                "-" => None,
                p => Some(digest32(p, "prev")?),
            },
            signature: keys::parse_signature(signature)
                .ok_or("signature is not base64 of 64 bytes")?,
            key: *PublicKey::parse(key).map_err(|e| e.to_string())?.as_bytes(),
            shift_ms: shift
                .parse()
                .ok()
                .filter(|n: &i64| n.to_string() == *shift)
                .ok_or("shift is not a decimal number")?,
        };
        // One text per line: a line that parses but is written otherwise was edited.
        if line_out.to_line().trim_end() != line {
            return Err("not in its canonical text form".into());
        }
        Ok(line_out)
    }
}

fn canonical_int(s: &str) -> Option<u64> {
    s.parse().ok().filter(|n: &u64| n.to_string() == s)
}

/// Reads the next record of a batch stream (`u32` big-endian length, then that many bytes
/// of canonical form); `Ok(None)` at a clean end.
pub fn next_record(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n;
    }
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_line_round_trips_and_refuses_other_spellings() {
        let k = keys::secret_from_seed(&[9; 32]);
        let line = ChainLine {
            seq: 7,
            digest: [1; 32],
            prev: None,
            signature: keys::sign(&k, &[1; 32]),
            key: *keys::public_of(&k).as_bytes(),
            shift_ms: -120,
        };
        let text = line.to_line();
        assert_eq!(ChainLine::parse(text.trim_end()), Ok(line.clone()));
        let with_prev = ChainLine {
            prev: Some([2; 32]),
            ..line
        };
        assert_eq!(
            ChainLine::parse(with_prev.to_line().trim_end()),
            Ok(with_prev)
        );
        for bad in [
            text.replacen("7 ", "07 ", 1),
            text.replacen(" -120", " -0120", 1),
            text.replacen(&"01".repeat(32), &"01".repeat(31), 1),
            text.replacen(' ', "  ", 1),
        ] {
            assert!(ChainLine::parse(bad.trim_end()).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_are_read_until_a_clean_end() {
        let mut bytes = Vec::new();
        for r in [&b"abc"[..], &b""[..]] {
            bytes.extend_from_slice(&(r.len() as u32).to_be_bytes());
            bytes.extend_from_slice(r);
        }
        let mut cur = std::io::Cursor::new(&bytes);
        assert_eq!(next_record(&mut cur).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(next_record(&mut cur).unwrap(), Some(Vec::new()));
        assert_eq!(next_record(&mut cur).unwrap(), None);
        let mut cut = std::io::Cursor::new(&bytes[..5]);
        assert!(next_record(&mut cut).is_err());
    }
}

#[cfg(test)]
pub(crate) mod round_trip;
