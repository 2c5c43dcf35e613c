//! Sharing one open [`Spool`] between the agent's tasks: the writer task appends, the
//! transport cuts and acks batches, telemetry reads figures.
//!
//! Invariants:
//! - [`SharedSpool`] is the only way the spool is shared; everything else holds a half.
//!   [`SpoolWriter`] can only append (and record what never reached the disk);
//!   [`SpoolReader`] can only cut batches and ack them (and read the figures).
//! - One mutex serializes every call: both halves change the same log (dropping the oldest
//!   uncut records on a full spool moves where the next cut starts), so they cannot run
//!   concurrently. Calls that fsync block: call them from `spawn_blocking`.
//! - A poisoned mutex means a spool call panicked mid-way; the in-memory state is then
//!   used as is, because everything durable was written before `meta` pointed to it and the
//!   next open recovers from the files.

use std::sync::{Arc, Mutex, MutexGuard};

use attest_config::evidence::BatchDigest;
use attest_config::wire::Measurement;

use super::{PendingBatch, Spool, SpoolError, SpoolStats};

/// A cheap, cloneable handle to one open spool.
#[derive(Clone)]
pub struct SharedSpool(Arc<Mutex<Spool>>);

impl SharedSpool {
    pub fn new(spool: Spool) -> SharedSpool {
        SharedSpool(Arc::new(Mutex::new(spool)))
    }

    /// The append-only half, for the task that stores measurements.
    pub fn writer(&self) -> SpoolWriter {
        SpoolWriter(self.clone())
    }

    /// The cut-and-ack half, for the transport.
    pub fn reader(&self) -> SpoolReader {
        SpoolReader(self.clone())
    }

    /// Current figures (no I/O).
    pub fn stats(&self) -> SpoolStats {
        self.lock().stats()
    }

    fn lock(&self) -> MutexGuard<'_, Spool> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SharedSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedSpool").finish_non_exhaustive()
    }
}

/// The write half: [`Spool::append`] and [`Spool::record_lost`], nothing else.
#[derive(Clone, Debug)]
pub struct SpoolWriter(SharedSpool);

impl SpoolWriter {
    /// See [`Spool::append`]. Blocks on fsync.
    pub fn append(&self, measurements: &[Measurement]) -> Result<(), SpoolError> {
        self.0.lock().append(measurements)
    }

    /// See [`Spool::record_lost`]. May block on fsync.
    pub fn record_lost(&self, measurements: &[Measurement]) {
        self.0.lock().record_lost(measurements);
    }
}

/// The read half: [`Spool::next_batch`] and [`Spool::ack`], nothing else.
#[derive(Clone, Debug)]
pub struct SpoolReader(SharedSpool);

impl SpoolReader {
    /// See [`Spool::next_batch`]. May block on I/O.
    pub fn next_batch(&self, max: usize) -> Result<Option<PendingBatch>, SpoolError> {
        self.0.lock().next_batch(max)
    }

    /// See [`Spool::ack`]. Blocks on fsync.
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        self.0.lock().ack(seq)
    }

    /// See [`Spool::ack_linked`]. Blocks on fsync.
    pub fn ack_linked(&self, seq: u64, digest: Option<BatchDigest>) -> Result<(), SpoolError> {
        self.0.lock().ack_linked(seq, digest)
    }

    pub fn stats(&self) -> SpoolStats {
        self.0.stats()
    }
}
