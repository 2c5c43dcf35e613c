//! The log of refused TLS handshakes, shared by both listeners: a client that cannot connect
//! (no certificate when one is required, a certificate no configured CA signed, plain HTTP
//! sent to the TLS port) is logged with its address and rustls' reason, so an operator sees
//! why a scrape fails instead of a silent listener.
//!
//! Invariants:
//! - At most [`LOG_LINES`] lines per [`LOG_WINDOW`] over the whole process; the rest are
//!   counted and the count is reported on the next line logged, so a flood of bad
//!   handshakes costs a counter increment each and cannot fill the journal.
//! - A handshake that timed out is not a refusal and is not logged here.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines logged per window at most.
pub const LOG_LINES: u32 = 10;
/// The window the line budget applies to.
pub const LOG_WINDOW: Duration = Duration::from_secs(60);

struct Window {
    start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

static WINDOW: Mutex<Window> = Mutex::new(Window {
    start: None,
    lines: 0,
    suppressed: 0,
});

/// What the budget says about one refusal: `Some(n)` log it (n refusals were not logged
/// before it), `None` count it only.
fn admit(w: &mut Window, now: Instant) -> Option<u64> {
    if w.start.is_none_or(|s| now.duration_since(s) >= LOG_WINDOW) {
        w.start = Some(now);
        w.lines = 0;
    }
    if w.lines >= LOG_LINES {
        w.suppressed += 1;
        return None;
    }
    w.lines += 1;
    Some(std::mem::take(&mut w.suppressed))
}

/// Logs a refused handshake of `peer` on the listener `listener` ("agent metrics",
/// "collector"), unless this window's lines are spent.
pub fn handshake_refused(listener: &str, peer: SocketAddr, err: &dyn Display) {
    let admitted = {
        let mut w = WINDOW
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        admit(&mut w, Instant::now())
    };
    if let Some(suppressed) = admitted {
        tracing::warn!(
            listener,
            %peer,
            suppressed_before = suppressed,
            "TLS handshake refused: {err}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_counted_and_the_count_is_reported_on_the_next_window() {
        let mut w = Window {
            start: None,
            lines: 0,
            suppressed: 0,
        };
        let t0 = Instant::now();
        for _ in 0..LOG_LINES {
            assert_eq!(admit(&mut w, t0), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(admit(&mut w, t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(admit(&mut w, t0 + LOG_WINDOW), Some(5));
        assert_eq!(admit(&mut w, t0 + LOG_WINDOW), Some(0));
    }
}
