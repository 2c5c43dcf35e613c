//! The one clock of the collector. Every "now" the collector uses (an ingest's receive time,
//! the instant figures are computed for, an API call's default `at`, a maintenance window's
//! `created_at`) comes from a [`Clock`], so tests can pin time and nothing else in the crate
//! reads the wall clock. The SLA engine never reads a clock: it is handed `now`.
//!
//! Timers and intervals (refresh cadence, retention period) use tokio's clock instead, so
//! tests can run with paused time.

use std::sync::Arc;

use jiff::Timestamp;

pub trait Clock: Send + Sync + 'static {
    /// The current UTC instant.
    fn now_utc(&self) -> Timestamp;
}

/// Wall clock of the host.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_utc(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that always answers the same instant (tests, one-shot reports `--at`).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now_utc(&self) -> Timestamp {
        self.0
    }
}

/// The shared handle the wiring passes around.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
