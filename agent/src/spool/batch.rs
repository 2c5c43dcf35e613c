//! A cut batch as the spool hands it to the transport: the measurements' wire JSON exactly as
//! the records store it, so a send (and every retry of it) never decodes or re-encodes them.
//!
//! Invariants:
//! - [`StoredMeasurements`] holds only record payloads that decoded as a `wire::Measurement`
//!   when the batch was read from disk (a record that does not is counted corrupt and left
//!   out, as before), so the collector's decoder accepts every one of them.
//! - The payloads are kept in log order, joined by `,`: the bytes between `[` and `]` of the
//!   batch's `measurements` array. Cloning a batch shares them (no copy).

use std::fmt;
use std::sync::Arc;

use attest_config::evidence::BatchDigest;
use attest_config::wire::{Gap, Measurement};

/// A batch cut from the spool, to be sent as-is until acked.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBatch {
    pub seq: u64,
    pub measurements: StoredMeasurements,
    pub gaps: Vec<Gap>,
    /// Digest of the batch acked before this one was cut: the link of the agent's hash
    /// chain this batch carries. `None` at a chain start.
    pub prev: Option<BatchDigest>,
}

/// The wire JSON of a batch's measurements as stored in the spool (see the module header).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoredMeasurements {
    items: Arc<[u8]>,
    count: usize,
}

impl StoredMeasurements {
    /// How many measurements the batch holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The measurements' JSON objects joined by `,`, without brackets: what goes between the
    /// `[` and `]` of a batch's `measurements` array.
    pub fn json_items(&self) -> &[u8] {
        &self.items
    }

    /// The measurements decoded (for tests, tools and the rare quarantine path; sending
    /// uses [`StoredMeasurements::json_items`]).
    pub fn decode(&self) -> Result<Vec<Measurement>, serde_json::Error> {
        let mut array = Vec::with_capacity(self.items.len() + 2);
        array.push(b'[');
        array.extend_from_slice(&self.items);
        array.push(b']');
        serde_json::from_slice(&array)
    }
}

impl fmt::Debug for StoredMeasurements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredMeasurements")
            .field("count", &self.count)
            .field("json", &String::from_utf8_lossy(&self.items))
            .finish()
    }
}

/// Collects record payloads (already checked to decode) into [`StoredMeasurements`].
#[derive(Debug, Default, Clone)]
pub(super) struct ItemsBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl ItemsBuilder {
    pub(super) fn push(&mut self, payload: &[u8]) {
        if self.count > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(payload);
        self.count += 1;
    }

    pub(super) fn finish(self) -> StoredMeasurements {
        StoredMeasurements {
            items: self.buf.into(),
            count: self.count,
        }
    }
}
