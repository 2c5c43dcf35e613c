//! A batch's seal: its canonical digest (chained to the previous batch's) and the agent's
//! signature over it, as `wire::Evidence` (docs/wire.md, "Signed batches").
//!
//! Invariant: computed from the measurements decoded from the spool's stored bytes — the
//! very values the collector decodes from the body — so both sides hash the same values.

use attest_config::evidence::keys::SecretKey;
use attest_config::evidence::{self, BatchDigest, Header};
use attest_config::wire::Evidence;

use crate::spool::PendingBatch;

/// What a batch is sent and acked with.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    pub digest: BatchDigest,
    pub evidence: Evidence,
}

/// Seals `batch` of `agent` with `key`; fails only when its stored measurements no longer
/// decode.
pub fn seal(
    agent: &str,
    batch: &PendingBatch,
    key: &SecretKey,
) -> Result<Sealed, serde_json::Error> {
    let measurements = batch.measurements.decode()?;
    let header = Header {
        agent,
        seq: batch.seq,
        prev: batch.prev.as_ref(),
    };
    let (digest, evidence) = evidence::seal(&header, &measurements, &batch.gaps, key);
    Ok(Sealed { digest, evidence })
}
