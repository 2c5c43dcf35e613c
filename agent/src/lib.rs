//! attest-agent: runs the configured checks on their schedules, spools every
//! measurement durably, and ships batches to the collector.
//!
//! Data flows one way: `probe` → `schedule` (envelope: timestamp, timeout, duration)
//! → `spool` (durable) → `transport` (batches, acks). A probe knows nothing of the
//! spool; the transport reads only from the spool.

pub mod assignment;
pub mod clock;
pub mod control;
pub mod keys;
pub mod memory;
pub mod notify;
pub mod probe;
pub mod schedule;
pub mod spool;
pub mod telemetry;
pub mod transport;
