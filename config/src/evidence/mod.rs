//! The evidence chain's shared rules, for the agent (which signs) and the collector (which
//! verifies and audits): the canonical form of a batch and its digest (`canonical`), and the
//! agents' Ed25519 keys, their text form, fingerprints and signatures (`keys`).
//! Pure: no I/O; where keys live on disk is the agent's business.

pub mod canonical;
pub mod keys;

pub use canonical::{BatchDigest, Header, digest};
