//! "Data changed": the one-way signal from the writers (ingest after a commit, the
//! maintenance API after a window is added or cancelled) to `figures`, whose refresh loop
//! then recomputes within about a second. Writers hold a clone and never learn who listens,
//! so ingest does not import figures; the app wiring (`app::build`) owns the one instance.
//!
//! Invariants:
//! - Signals coalesce: many commits before the listener wakes are one wake-up.
//! - A signal sent while the listener is busy (mid-refresh) is kept for its next wait, never
//!   lost; there is one listener.

use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug, Clone, Default)]
pub struct DataChanged(Arc<Notify>);

impl DataChanged {
    pub fn new() -> DataChanged {
        DataChanged::default()
    }

    /// Something the figures are computed from changed; cheap, never blocks.
    pub fn signal(&self) {
        self.0.notify_one();
    }

    /// Completes once after one or more signals (immediately if one came since the last wait).
    pub async fn changed(&self) {
        self.0.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_before_the_wait_is_kept_and_signals_coalesce() {
        let c = DataChanged::new();
        c.signal();
        c.signal();
        let bound = std::time::Duration::from_secs(5);
        tokio::time::timeout(bound, c.changed())
            .await
            .expect("the earlier signal wakes the wait");
        let second = tokio::time::timeout(std::time::Duration::from_millis(50), c.changed()).await;
        assert!(
            second.is_err(),
            "two signals before one wait are one wake-up"
        );
    }
}
