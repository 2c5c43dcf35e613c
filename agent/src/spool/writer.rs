//! The spool writer task: takes finished measurements from the scheduler and appends them to
//! the spool in small groups (one fsync per group), then tells the transport.
//!
//! Invariants:
//! - The transport is notified only after an append returned `Ok`, i.e. the group is durable.
//! - When the disk refuses an append (full, read-only), the group is held in memory and
//!   retried every second; the backlog is bounded by [`WRITE_BACKLOG_MAX`] and what overflows
//!   it — oldest first — becomes gaps (unknown minutes at the collector), never silence.
//! - On shutdown (the channel closed) whatever the disk still refuses becomes gaps too.

use std::sync::Arc;
use std::time::Duration;

use attest_config::wire::Measurement;
use tokio::sync::{Notify, mpsc};

use super::SpoolWriter;

/// Measurements held in memory while the spool's disk refuses writes; beyond this the oldest
/// become gaps, so memory stays bounded.
pub const WRITE_BACKLOG_MAX: usize = 10_000;

/// Measurements taken from the channel per append at most.
const GROUP_MAX: usize = 256;

/// How often a held backlog is retried while no new measurement arrives.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Runs until every sender of `rx` is gone and the last group is stored (or became gaps).
pub async fn run(mut rx: mpsc::Receiver<Measurement>, spool: SpoolWriter, appended: Arc<Notify>) {
    let mut backlog: Vec<Measurement> = Vec::new();
    let mut buf = Vec::with_capacity(GROUP_MAX);
    loop {
        let received = if backlog.is_empty() {
            rx.recv_many(&mut buf, GROUP_MAX).await
        } else {
            // Retry the backlog at least every second, taking new measurements meanwhile.
            tokio::select! {
                n = rx.recv_many(&mut buf, GROUP_MAX) => n,
                _ = tokio::time::sleep(RETRY_EVERY) => usize::MAX,
            }
        };
        if received == 0 && backlog.is_empty() {
            return;
        }
        let closed = received == 0;
        backlog.append(&mut buf);
        backlog = append(&spool, std::mem::take(&mut backlog), &appended).await;
        if closed {
            // Shutdown with the disk still refusing: what is held becomes gaps.
            if !backlog.is_empty() {
                spool.record_lost(&backlog);
            }
            return;
        }
    }
}

/// Appends `group` off the async threads; returns what must be held for a retry (empty on
/// success), already trimmed to [`WRITE_BACKLOG_MAX`].
async fn append(
    spool: &SpoolWriter,
    group: Vec<Measurement>,
    appended: &Notify,
) -> Vec<Measurement> {
    let sp = spool.clone();
    let res = tokio::task::spawn_blocking(move || {
        let r = sp.append(&group);
        (r, group)
    })
    .await;
    match res {
        Ok((Ok(()), _)) => {
            appended.notify_one();
            Vec::new()
        }
        Ok((Err(e), mut group)) => {
            tracing::error!(
                held = group.len(),
                "cannot append to the spool, holding measurements in memory and retrying: {e}"
            );
            shed_overflow(spool, &mut group);
            group
        }
        Err(e) => {
            tracing::error!("spool task failed: {e}");
            Vec::new()
        }
    }
}

/// Keeps the backlog within [`WRITE_BACKLOG_MAX`], recording the oldest overflow as gaps.
fn shed_overflow(spool: &SpoolWriter, backlog: &mut Vec<Measurement>) {
    if backlog.len() > WRITE_BACKLOG_MAX {
        let excess: Vec<Measurement> = backlog.drain(..backlog.len() - WRITE_BACKLOG_MAX).collect();
        tracing::error!(
            dropped = excess.len(),
            "spool write backlog full: the oldest measurements become gaps"
        );
        spool.record_lost(&excess);
    }
}
