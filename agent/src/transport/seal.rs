//! A batch's seal: its canonical digest (chained to the previous batch's) and the agent's
//! signature over it, as `wire::Evidence` (docs/wire.md, "Signed batches").
//!
//! Invariant: computed from the measurements decoded from the spool's stored bytes — the
//! very values the collector decodes from the body — so both sides hash the same values.

use attest_config::evidence::keys::{self, SecretKey};
use attest_config::evidence::{BatchDigest, Header, digest};
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
    let d = digest(&header, &measurements, &batch.gaps);
    let signature = keys::sign(key, &d);
    Ok(Sealed {
        digest: d,
        evidence: Evidence {
            prev: batch.prev.as_ref().map(|p| keys::hex(p)),
            digest: keys::hex(&d),
            key: keys::public_of(key).to_string(),
            signature: keys::signature_text(&signature),
        },
    })
}
