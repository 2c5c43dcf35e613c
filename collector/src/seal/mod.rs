//! The seal of a closed month: one Merkle root (RFC 6962, `merkle.rs`) over everything the
//! month's figures rest on — each agent's signed batch digests, the service definitions in
//! force and the maintenance windows — so that one signature over the root (the report key's)
//! commits to all of it, and any later insertion, deletion or edit of a batch, a definition or
//! a window changes the root.
//!
//! Invariants:
//! - A leaf is one UTF-8 line without its newline, `kind` first, fields separated by single
//!   spaces; free text (a maintenance reason) enters only as its SHA-256, so every field is a
//!   token without spaces (ids, decimal integers, RFC 3339 instants, lowercase hex).
//! - Leaves are sorted bytewise and deduplicated before hashing: the root does not depend on
//!   the order in which the store returned them.
//! - Pure: the caller reads the store; nothing here does I/O.

pub mod merkle;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

pub use attest_config::evidence::keys::{hex, unhex};
pub use merkle::Hash;

/// One thing the month's figures rest on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf<'a> {
    /// A batch the collector accepted: its agent, sequence number and canonical digest.
    Batch {
        agent: &'a str,
        seq: u64,
        digest: &'a Hash,
    },
    /// A service definition in force during the month, by its SHA-256 (the report's
    /// `definitions_sha256` scheme, per service).
    Definition { service: &'a str, sha256: &'a str },
    /// A maintenance window registered through the API (cancelled ones too: a cancellation
    /// is part of the record).
    Maintenance {
        id: i64,
        service: &'a str,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        registered_at: jiff::Timestamp,
        cancelled_at: Option<jiff::Timestamp>,
        registered_by: Option<&'a str>,
        reason: &'a str,
    },
}

impl Leaf<'_> {
    /// The leaf's bytes as they enter the tree (see the module's invariants).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Leaf::Batch { agent, seq, digest } => format!("batch {agent} {seq} {}", hex(*digest)),
            Leaf::Definition { service, sha256 } => format!("definition {service} {sha256}"),
            Leaf::Maintenance {
                id,
                service,
                start,
                end,
                registered_at,
                cancelled_at,
                registered_by,
                reason,
            } => format!(
                "maintenance {id} {service} {start} {end} {registered_at} {} {} {}",
                cancelled_at.map_or_else(|| "-".to_string(), |t| t.to_string()),
                registered_by.unwrap_or("-"),
                hex(&Sha256::digest(reason.as_bytes())),
            ),
        }
        .into_bytes()
    }
}

/// The month's leaves, sorted and deduplicated, and their Merkle root.
pub fn seal(leaves: &[Leaf<'_>]) -> (Vec<Vec<u8>>, Hash) {
    let mut encoded: Vec<Vec<u8>> = leaves.iter().map(Leaf::encode).collect();
    encoded.sort_unstable();
    encoded.dedup();
    let root = merkle::root(&encoded);
    (encoded, root)
}

/// The first line of a seal file; a later format gets another.
pub const SEAL_V1: &str = "attest-seal v1";

/// The last sealed batch of one agent in the month: where an offline check of its chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub agent: String,
    pub seq: u64,
    pub digest: Hash,
}

/// The seal file (`seal/SEAL` in an archived bundle): the month, its span, the number of
/// leaves, their root, each agent's chain head, then `signature ed25519 <key> <signature>`
/// over every byte before that line — or `not signed`.
pub fn seal_file(
    month: &str,
    span: (jiff::Timestamp, jiff::Timestamp),
    leaves: usize,
    root: &Hash,
    heads: &[Head],
    key: Option<&SigningKey>,
) -> String {
    let mut body = format!(
        "{SEAL_V1}\nmonth {month}\nfrom {}\nto {}\nleaves {leaves}\nroot {}\n",
        span.0,
        span.1,
        hex(root)
    );
    for h in heads {
        body.push_str(&format!("head {} {} {}\n", h.agent, h.seq, hex(&h.digest)));
    }
    match key {
        Some(k) => {
            let sig = k.sign(body.as_bytes());
            body.push_str(&format!(
                "signature ed25519 {} {}\n",
                hex(k.verifying_key().as_bytes()),
                hex(&sig.to_bytes())
            ));
        }
        None => body.push_str("not signed\n"),
    }
    body
}

/// What checking a seal file against its leaves found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealCheck {
    /// The root the leaves give (equal to the file's, else `check_seal` fails).
    pub root: Hash,
    pub leaves: usize,
    /// The signer's key when signed (and the signature is valid for it).
    pub signed_by: Option<[u8; 32]>,
}

/// Checks `seal` (a seal file) against `leaves` (the leaf file: one leaf per line): the
/// leaves must be sorted and distinct, give the stated count and root, and a signature must
/// be valid for the key it names — and be that of `trusted` when given. Says exactly what
/// disagrees.
pub fn check_seal(
    seal: &str,
    leaves: &str,
    trusted: Option<&VerifyingKey>,
) -> Result<SealCheck, String> {
    let lines: Vec<&str> = leaves.lines().collect();
    if lines.windows(2).any(|w| w[0] >= w[1]) {
        return Err("seal leaves are not sorted and distinct (reordered or repeated)".into());
    }
    let root = merkle::root(&lines);
    let field = |name: &str| {
        seal.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .ok_or_else(|| format!("seal: no {name} line"))
    };
    if seal.lines().next() != Some(SEAL_V1) {
        return Err(format!("seal: not a {SEAL_V1:?} file"));
    }
    let stated: usize = field("leaves")?
        .parse()
        .map_err(|_| "seal: leaves is not a number".to_string())?;
    if stated != lines.len() {
        return Err(format!(
            "seal: states {stated} leaves, the leaf file has {}",
            lines.len()
        ));
    }
    if field("root")? != hex(&root) {
        return Err(format!(
            "seal: root {} differs from the leaves' root {} (a leaf was added, removed or changed)",
            field("root")?,
            hex(&root)
        ));
    }
    let signed_by = check_signature(seal, trusted)?;
    Ok(SealCheck {
        root,
        leaves: lines.len(),
        signed_by,
    })
}

fn check_signature(seal: &str, trusted: Option<&VerifyingKey>) -> Result<Option<[u8; 32]>, String> {
    let Some(at) = seal.find("signature ed25519 ") else {
        return match trusted {
            Some(_) => Err("seal: not signed, but a public key was given".into()),
            None => Ok(None),
        };
    };
    let (body, line) = seal.split_at(at);
    let mut parts = line.trim_end().split(' ').skip(2);
    let (Some(key_hex), Some(sig_hex)) = (parts.next(), parts.next()) else {
        return Err("seal: malformed signature line".into());
    };
    let key_bytes: [u8; 32] = unhex(key_hex)
        .and_then(|b| b.try_into().ok())
        .ok_or("seal: malformed key")?;
    let sig_bytes: [u8; 64] = unhex(sig_hex)
        .and_then(|b| b.try_into().ok())
        .ok_or("seal: malformed signature")?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| "seal: not an Ed25519 key")?;
    if let Some(t) = trusted
        && t.as_bytes() != &key_bytes
    {
        return Err("seal: signed by another key than the one given".into());
    }
    key.verify(body.as_bytes(), &Signature::from_bytes(&sig_bytes))
        .map_err(|_| "seal: signature does not match its content (edited after signing)")?;
    Ok(Some(key_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn leaves_are_one_line_of_tokens() {
        let digest = [0xab; 32];
        let batch = Leaf::Batch {
            agent: "web-01",
            seq: 42,
            digest: &digest,
        };
        assert_eq!(
            String::from_utf8(batch.encode()).expect("utf-8"),
            format!("batch web-01 42 {}", "ab".repeat(32))
        );
        let window = Leaf::Maintenance {
            id: 7,
            service: "shop",
            start: ts("2026-11-21T10:00:00Z"),
            end: ts("2026-11-21T11:00:00Z"),
            registered_at: ts("2026-12-07T16:25:49Z"),
            cancelled_at: None,
            registered_by: Some("alice"),
            reason: "database failover\nwith a newline",
        };
        let line = String::from_utf8(window.encode()).expect("utf-8");
        assert!(
            line.starts_with(
                "maintenance 7 shop 2026-11-21T10:00:00Z 2026-11-21T11:00:00Z 2026-12-07T16:25:49Z - alice "
            ),
            "{line}"
        );
        assert!(!line.contains('\n'), "free text enters as its digest");
    }

    /// The root does not depend on order or repetition, and changes with any one field.
    #[test]
    fn the_root_commits_to_every_leaf_and_nothing_else() {
        let (d1, d2) = ([1; 32], [2; 32]);
        let a = Leaf::Batch {
            agent: "a",
            seq: 1,
            digest: &d1,
        };
        let b = Leaf::Batch {
            agent: "a",
            seq: 2,
            digest: &d2,
        };
        let def = Leaf::Definition {
            service: "shop",
            sha256: "00ff",
        };
        let (_, root) = seal(&[a.clone(), b.clone(), def.clone()]);
        let (_, shuffled) = seal(&[def.clone(), b.clone(), a.clone(), b.clone()]);
        assert_eq!(root, shuffled);
        let (_, without) = seal(&[a.clone(), def.clone()]);
        assert_ne!(root, without, "a deleted batch changes the root");
        let moved = Leaf::Batch {
            agent: "b",
            seq: 2,
            digest: &d2,
        };
        let (_, replayed) = seal(&[a, moved, def]);
        assert_ne!(
            root, replayed,
            "a batch moved to another agent changes the root"
        );
    }

    fn sealed(key: Option<&SigningKey>) -> (String, String) {
        let d = [7; 32];
        let leaves = [
            Leaf::Batch {
                agent: "a",
                seq: 1,
                digest: &d,
            },
            Leaf::Definition {
                service: "shop",
                sha256: "00ff",
            },
        ];
        let (encoded, root) = seal(&leaves);
        let heads = [Head {
            agent: "a".into(),
            seq: 1,
            digest: d,
        }];
        let span = (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"));
        let file = seal_file("2026-11", span, encoded.len(), &root, &heads, key);
        let text: String = encoded
            .iter()
            .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
            .collect();
        (file, text)
    }

    /// A signed seal checks with its key; an edited leaf, a removed leaf, a reordering, an
    /// edited seal line and another key are each refused with the reason.
    #[test]
    fn a_seal_checks_and_every_edit_is_named() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let (file, leaves) = sealed(Some(&key));
        let ok = check_seal(&file, &leaves, Some(&key.verifying_key())).expect("valid");
        assert_eq!(
            (ok.leaves, ok.signed_by),
            (2, Some(*key.verifying_key().as_bytes()))
        );
        let edited = leaves.replace("shop", "shoq");
        assert!(
            check_seal(&file, &edited, None)
                .unwrap_err()
                .contains("root")
        );
        let first = leaves.lines().next().expect("a line");
        let removed = leaves.replacen(&format!("{first}\n"), "", 1);
        assert!(
            check_seal(&file, &removed, None)
                .unwrap_err()
                .contains("leaves")
        );
        let reordered: String = leaves.lines().rev().map(|l| format!("{l}\n")).collect();
        assert!(
            check_seal(&file, &reordered, None)
                .unwrap_err()
                .contains("sorted")
        );
        let moved = file.replace("head a 1", "head a 2");
        assert!(
            check_seal(&moved, &leaves, None)
                .unwrap_err()
                .contains("edited")
        );
        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(
            check_seal(&file, &leaves, Some(&other.verifying_key()))
                .unwrap_err()
                .contains("another key")
        );
        let (unsigned, leaves) = sealed(None);
        assert_eq!(
            check_seal(&unsigned, &leaves, None)
                .expect("intact")
                .signed_by,
            None
        );
        assert!(check_seal(&unsigned, &leaves, Some(&key.verifying_key())).is_err());
    }
}
