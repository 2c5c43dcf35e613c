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

use sha2::{Digest, Sha256};

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
}
