//! The refresh loop: computes every service's month-to-date figures into a [`Snapshot`]
//! at once, after data changed and at least every [`MAX_AGE`], keeping to
//! [`REFRESH_CPU_SHARE`] of a core; publishes partial snapshots during a long refresh and
//! keeps a service's last good figures when its refresh fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_config::Service;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{Figures, Snapshot, Totals, current_month};
use crate::changed::DataChanged;
use crate::clock::SharedClock;
use crate::minutes::HostMinute;
use crate::reject::Rejection;
use crate::sla::ServiceReport;

/// How stale a snapshot may get without new data (burn rates move with time).
pub(super) const MAX_AGE: Duration = Duration::from_secs(30);
/// After a change, how long the refresh waits for more batches to land, so a burst of
/// commits costs one refresh, not one each.
pub(super) const SETTLE: Duration = Duration::from_millis(500);
/// The share of one core the refresh loop may use while data keeps arriving: after a
/// refresh that took `t`, the next data-driven one waits `t × (1 / share − 1)` (at least
/// [`SETTLE`], at most [`MAX_AGE`]). A fleet whose refresh takes 10 ms still refreshes
/// 0.5 s after new data; one whose refresh takes 1 s refreshes every 19 s under a steady
/// stream instead of back to back (0.05 core instead of 0.65).
const REFRESH_CPU_SHARE: f64 = 0.05;
/// During a long refresh, how often the figures computed so far are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

impl Figures {
    /// Refreshes at once, then again [`SETTLE`] after each change signal (later when the
    /// last refresh was long: [`REFRESH_CPU_SHARE`]), or when the snapshot is [`MAX_AGE`]
    /// old; until `cancel`, when it saves the state file (see [`Figures::save_state`]).
    pub async fn refresh_loop(
        self: Arc<Self>,
        changed: DataChanged,
        clock: SharedClock,
        cancel: CancellationToken,
    ) {
        loop {
            let me = self.clone();
            let now = clock.now_utc();
            let started = Instant::now();
            if let Err(e) = tokio::task::spawn_blocking(move || me.refresh(now)).await {
                tracing::error!("figures refresh failed: {e}");
            }
            let (pause, done) = (pause_after(started.elapsed()), Instant::now());
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = changed.changed() => {}
                _ = tokio::time::sleep(MAX_AGE) => {}
            }
            let settle = pause.saturating_sub(done.elapsed()).max(SETTLE);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(settle) => {}
            }
        }
        // At shutdown: the state as of the last refresh, so a restart reads only what
        // changed after it.
        let me = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || me.save_state()).await {
            tracing::error!("saving the figures state at shutdown failed: {e}");
        }
    }

    /// Computes month-to-date figures of every service as of `now` and publishes them. A
    /// service (or capacity, or the fleet state) whose figures cannot be computed keeps its
    /// last good ones from the previous snapshot; see the module invariants.
    pub fn refresh(&self, now: Timestamp) {
        let late_mark = self.store.late_mark().ok().flatten();
        self.load_state_once(now);
        let prev = self.latest();
        let mut snap = Snapshot {
            computed_at: Some(now),
            ..Snapshot::default()
        };
        let host = self.recent_host_minutes(now);
        let mut published = Instant::now();
        let cfg = self.config();
        for (i, svc) in cfg.services.iter().enumerate() {
            match self.service_figures(svc, now, &host) {
                Ok((report, totals)) => {
                    snap.services.push(report);
                    snap.totals.push(totals);
                    snap.computed.push(now);
                    snap.restored.push(false);
                }
                Err(e) => {
                    tracing::warn!(service = %svc.name, "cannot compute figures: {}", e.reason);
                    self.count_failure(&svc.name);
                    snap.failures.push((svc.name.clone(), e.reason));
                    keep_last_good(&prev, &svc.name, &mut snap);
                }
            }
            if published.elapsed() >= PUBLISH_EVERY {
                self.publish_partial(&prev, &snap, &cfg.services[i + 1..]);
                published = Instant::now();
            }
        }
        match host.and_then(|h| self.capacity(now, &h)) {
            Ok(c) => snap.capacity = c,
            Err(e) => {
                tracing::warn!("cannot compute capacity figures: {}", e.reason);
                snap.failures.push(("capacity".into(), e.reason));
                snap.capacity = prev.capacity.clone();
            }
        }
        self.fleet(&prev, &mut snap);
        snap.refresh_failures = self.failure_counts();
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snap);
        match late_mark {
            Some(mark) => self.save_state_if_due(mark, now),
            // Without a late-write log nothing is saved: the closing months are not needed.
            None => self
                .closing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear(),
        }
        self.save_published_if_due(now);
        self.refreshed.send_replace(true);
    }

    /// Publishes the figures computed so far in this refresh, with the previous snapshot's
    /// figures of the services still to come.
    fn publish_partial(&self, prev: &Snapshot, done: &Snapshot, rest: &[Service]) {
        let mut partial = Snapshot {
            computed_at: prev.computed_at.or(done.computed_at),
            services: done.services.clone(),
            totals: done.totals.clone(),
            computed: done.computed.clone(),
            restored: done.restored.clone(),
            capacity: prev.capacity.clone(),
            failures: done.failures.clone(),
            agents: prev.agents.clone(),
            stored_measurements: prev.stored_measurements,
            refresh_failures: self.failure_counts(),
        };
        for svc in rest {
            keep_last_good(prev, &svc.name, &mut partial);
        }
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(partial);
    }

    /// One service's month-to-date report and its totals since first measured. A service
    /// with capacity objectives fails (keeps its last good figures) when the refresh's host
    /// minutes could not be read; one without does not depend on them.
    fn service_figures(
        &self,
        svc: &Service,
        now: Timestamp,
        host: &Result<Vec<HostMinute>, Rejection>,
    ) -> Result<(ServiceReport, Totals), Rejection> {
        let month = current_month(svc, now)?;
        let host = match host {
            Ok(h) => Some(h.as_slice()),
            Err(e) if !svc.capacity.is_empty() => return Err(e.clone()),
            Err(_) => None,
        };
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        // Past totals first: when the month turned they take the closed month's closed
        // minutes, which the current month cannot use.
        let past = self.past_totals(svc, month, now, &maintenance)?;
        let report = self.evaluate_cached(svc, month, now, host, maintenance)?;
        let totals = past.add(&report);
        Ok((report, totals))
    }

    fn count_failure(&self, service: &str) {
        let mut counts = self
            .refresh_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(service.to_owned()).or_default() += 1;
    }

    /// Every configured service's failure count, in configuration order.
    fn failure_counts(&self) -> Vec<(String, u64)> {
        let counts = self
            .refresh_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.config()
            .services
            .iter()
            .map(|s| (s.name.clone(), counts.get(&s.name).copied().unwrap_or(0)))
            .collect()
    }

    /// Agent status and store counts, read here so that `/metrics` renders them from memory.
    /// A failed read keeps the previous snapshot's values (and is logged).
    fn fleet(&self, prev: &Snapshot, snap: &mut Snapshot) {
        snap.agents = self.store.agents().unwrap_or_else(|e| {
            tracing::warn!("cannot read agent status for /metrics: {e}");
            prev.agents.clone()
        });
        snap.stored_measurements = match self.store.counts() {
            Ok(c) => Some(c.measurements),
            Err(e) => {
                tracing::warn!("cannot read store counts for /metrics: {e}");
                prev.stored_measurements
            }
        };
    }
}

/// How long the refresh loop waits after a refresh that took `took` before starting the
/// next one on new data (see [`REFRESH_CPU_SHARE`]); public for the fleet benchmark.
pub fn pause_after(took: Duration) -> Duration {
    took.mul_f64(1.0 / REFRESH_CPU_SHARE - 1.0)
        .clamp(SETTLE, MAX_AGE)
}

/// Carries `service`'s last good report, totals and computation time from `prev` into
/// `snap` (nothing when it never had figures).
fn keep_last_good(prev: &Snapshot, service: &str, snap: &mut Snapshot) {
    let Some(i) = prev.services.iter().position(|r| r.service == service) else {
        return;
    };
    let (Some(totals), Some(computed)) = (prev.totals.get(i), prev.computed_of(i)) else {
        return;
    };
    snap.services.push(prev.services[i].clone());
    snap.totals.push(*totals);
    snap.computed.push(computed);
    snap.restored
        .push(prev.restored.get(i).copied().unwrap_or(false));
}
