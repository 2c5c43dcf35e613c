//! The one clock of the agent. Every reading of the wall clock goes through this module
//! (`Timestamp::now` / `SystemTime::now` are called nowhere else), so tests can inject time
//! and a lint can ban the direct calls elsewhere. Probe timestamps come from
//! [`Clock::now_utc`]; intervals and timeouts use tokio's clock, so tests can run with paused
//! time.

use jiff::Timestamp;

pub trait Clock: Send + Sync + 'static {
    /// The current UTC instant (a measurement's timestamp, a batch's `sent_at`, ...).
    fn now_utc(&self) -> Timestamp;
}

/// Wall clock of the host.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_utc(&self) -> Timestamp {
        wall_now()
    }
}

/// The host's wall clock, for the few places that only need "now" once and have no clock
/// injected (the spool's seq floor after a lost `meta`).
#[allow(clippy::disallowed_methods)]
pub fn wall_now() -> Timestamp {
    Timestamp::now()
}
