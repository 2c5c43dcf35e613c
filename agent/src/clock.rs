//! The one clock abstraction of the agent. Probe timestamps come from `Clock::now_utc`;
//! intervals and timeouts use tokio's clock, so tests can run with paused time.

use jiff::Timestamp;

pub trait Clock: Send + Sync + 'static {
    /// The UTC instant used as a measurement's timestamp.
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
