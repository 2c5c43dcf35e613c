//! What the store keeps of a signed batch (docs/wire.md, "Signed batches"): per batch only
//! its digest, the previous digest it is chained to, its signature and the key that made it
//! (by id: keys are stored once per agent in `agent_key`), plus the two facts the canonical
//! form needs that the measurement rows do not hold: the clock correction ingest applied to
//! the batch's timestamps, and its gaps (their store rows keep only minutes).
//!
//! Invariants:
//! - A seal row is written in the same transaction as its batch row, only for a batch stored
//!   for the first time; a refused batch leaves neither.
//! - Keys are append-only: `agent_key` gets a row the first time an agent's batch is stored
//!   under a key; the newest one is the key first-use trust holds the agent to.

use jiff::Timestamp;

/// The evidence of one batch, as ingest verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSeal {
    pub digest: [u8; 32],
    pub prev: Option<[u8; 32]>,
    pub signature: [u8; 64],
    pub key: [u8; 32],
    /// Milliseconds ingest added to every timestamp (`clock_skew_policy = "correct"`); the
    /// digest is over the timestamps before it. 0 almost always.
    pub ts_shift_ms: i64,
    /// The batch's gaps in their canonical encoding (`canonical::encode_gaps`); `None`
    /// when it had none.
    pub gaps: Option<Vec<u8>>,
}

/// A stored seal and the batch it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSeal {
    pub agent: String,
    pub seq: u64,
    pub seal: BatchSeal,
}

/// The chain links stored around a seq: (seq, digest, prev).
pub type Link = (u64, [u8; 32], Option<[u8; 32]>);

/// One key an agent's batches were stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentKeyRow {
    pub agent: String,
    pub key: [u8; 32],
    /// When the first batch under this key was stored.
    pub first_seen: Timestamp,
}

/// Bytes of a fixed-size column, or a backend error naming it (a row written by this code
/// always has the size; anything else was edited).
pub(crate) fn fixed<const N: usize>(
    bytes: &[u8],
    what: &str,
) -> Result<[u8; N], super::StoreError> {
    bytes.try_into().map_err(|_| {
        super::StoreError::Backend(format!(
            "stored {what} has {} bytes instead of {N}",
            bytes.len()
        ))
    })
}
