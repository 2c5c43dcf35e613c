//! The background retention loop: once an hour (and once at start) it applies the
//! configured retention and compacts the rollups of minutes older than
//! [`COMPACT_LAG_MINUTES`] into hourly packs, and the raw measurements of the hours that
//! ended by then into raw blocks (`store::block`).
//!
//! Invariants:
//! - Store calls run on tokio's blocking pool (the [`Store`] is synchronous).
//! - A failed run is logged and retried an hour later; it never stops the collector.
//! - Cancellation ends the loop between runs.

use std::sync::Arc;
use std::time::Duration;

use attest_config::CollectorConfig;
use tokio_util::sync::CancellationToken;

use super::Store;

/// Applies retention once an hour (and once at start), then compacts the rollups of
/// minutes older than [`COMPACT_LAG_MINUTES`], so month reads find hourly packs instead of
/// tens of thousands of hot rows per series.
pub async fn retention_loop(
    cfg: Arc<CollectorConfig>,
    store: Arc<dyn Store>,
    // "Now" comes from the caller's clock: the store reads no clock of its own.
    now: impl Fn() -> jiff::Timestamp + Send + 'static,
    cancel: CancellationToken,
) {
    loop {
        let now = now();
        let before = |d: Duration| {
            now.checked_sub(jiff::SignedDuration::try_from(d).unwrap_or_default())
                .unwrap_or(now)
        };
        let (raw, rollups) = (
            before(cfg.storage.raw_retention),
            before(cfg.storage.rollup_retention),
        );
        let compact_before = now.as_second().div_euclid(60) - COMPACT_LAG_MINUTES;
        let s = store.clone();
        let work = move || {
            s.apply_retention(raw, rollups)?;
            s.compact(compact_before)
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(Ok(moved)) => tracing::debug!(moved, "retention and compaction done"),
            Ok(Err(e)) => tracing::warn!("retention failed, will retry in an hour: {e}"),
            Err(e) => tracing::warn!("retention task failed: {e}"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Hot minute rows younger than this stay hot: late data for them is a cheap row update.
pub const COMPACT_LAG_MINUTES: i64 = 120;
