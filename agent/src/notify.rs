//! systemd notifications (the `sd_notify` protocol, `Type=notify` units): READY once the
//! process can do its job, RELOADING/READY around a configuration reload, STOPPING at
//! shutdown, and WATCHDOG pings while the runtime keeps scheduling tasks.
//!
//! Invariants:
//! - Everything here is a no-op when the process is not started by systemd (`NOTIFY_SOCKET`
//!   unset), so tests and hand-started processes behave the same.
//! - A failed notification is logged, never fatal: the service manager decides what a
//!   missing READY or WATCHDOG means.
//! - Watchdog pings come from a task on the main runtime at half the configured interval; a
//!   wedged runtime stops them and systemd restarts the process.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The process is ready: state opened, listener bound.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A configuration reload starts; call [`ready`] when it is done (applied or refused).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Pings the watchdog at half of `WatchdogSec` until `cancel`; returns at once when the
/// unit has no watchdog.
pub async fn watchdog(cancel: CancellationToken) {
    let Some(every) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(every / 2);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => send(&[NotifyState::Watchdog]),
        }
    }
}
