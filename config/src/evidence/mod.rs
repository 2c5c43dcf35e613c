//! The evidence chain's shared rules, for the agent (which signs) and the collector (which
//! verifies and audits): the canonical form of a batch and its digest (`canonical`), and the
//! agents' Ed25519 keys, their text form, fingerprints and signatures (`keys`).
//! Pure: no I/O; where keys live on disk is the agent's business.

pub mod canonical;
pub mod keys;

pub use canonical::{BatchDigest, Header, digest};

/// The evidence a batch is sent with: its canonical digest (chained to `header.prev`) and
/// `key`'s signature over it, in their wire text forms. One place for what the agent sends
/// and what tests forge, so both follow docs/wire.md the same way.
pub fn seal(
    header: &Header<'_>,
    measurements: &[crate::wire::Measurement],
    gaps: &[crate::wire::Gap],
    key: &keys::SecretKey,
) -> (BatchDigest, crate::wire::Evidence) {
    let d = digest(header, measurements, gaps);
    let evidence = crate::wire::Evidence {
        prev: header.prev.map(|p| keys::hex(p)),
        digest: keys::hex(&d),
        key: keys::public_of(key).to_string(),
        signature: keys::signature_text(&keys::sign(key, &d)),
    };
    (d, evidence)
}
