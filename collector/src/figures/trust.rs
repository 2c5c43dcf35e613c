//! Saved-state trust: loads the state file at the first refresh and seeds the caches with
//! every entry that may be trusted (see [`state`] for the rules), and saves it again when
//! the closed minutes moved on.

use std::collections::HashMap;
use std::time::Duration;

use attest_config::Service;
use jiff::Timestamp;

use super::current::Cached;
use super::past::PastTotals;
use super::{Figures, state};
use crate::sla::{Month, Period};

/// The least time between two saves of the state file (it changes about hourly, when the
/// closed minutes move on; a save of 1,000 services is ~50 MB before compression).
const SAVE_EVERY: Duration = Duration::from_secs(300);

/// What this process did with the state file.
#[derive(Debug, Default)]
pub(super) struct Persisted {
    pub(super) loaded: bool,
    /// When it was last saved (the refresh's `now`).
    pub(super) saved_at: Option<Timestamp>,
    /// Per service: the end of its closed minutes as last saved (or loaded).
    pub(super) saved_to: HashMap<String, i64>,
}

impl Figures {
    /// At the first refresh: loads the state file and seeds the closed-minute and
    /// past-month caches with every entry that may be trusted (see [`state`]).
    pub(super) fn load_state_once(&self, now: Timestamp) {
        let Some(path) = &self.state_file else {
            return;
        };
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if std::mem::replace(&mut persisted.loaded, true) {
            return;
        }
        let saved = match state::load(path) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(why) => {
                tracing::warn!("ignoring the saved figures state: {why}");
                return;
            }
        };
        let mark = self.store.change_mark();
        let cfg = self.config();
        let by_name: HashMap<&str, &Service> =
            cfg.services.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut used = 0;
        for entry in &saved.services {
            let Some(svc) = by_name.get(entry.name.as_str()) else {
                continue;
            };
            if entry.fingerprint != state::fingerprint(svc) {
                tracing::debug!(service = %entry.name, "saved state not used: the definition changed");
                continue;
            }
            if self.trust_closed(svc, &saved, entry) {
                persisted
                    .saved_to
                    .insert(entry.name.clone(), entry.closed.to());
                self.closed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        entry.name.clone(),
                        Cached {
                            month: entry.month,
                            mark,
                            closed: entry.closed.clone(),
                            last: None,
                        },
                    );
                used += 1;
            }
            if let Some((current, totals)) = entry.past
                && self.trust_past(svc, &saved, current)
            {
                let past = PastTotals {
                    current,
                    totals,
                    at: now,
                    mark,
                };
                self.past
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .totals
                    .insert(entry.name.clone(), past);
            }
        }
        persisted.saved_at = Some(saved.saved_at);
        tracing::info!(
            "loaded saved closed minutes of {used} of {} services ({} saved) from {}",
            self.config().services.len(),
            saved.services.len(),
            path.display()
        );
    }

    /// Whether a saved entry's closed minutes are still what the store holds.
    fn trust_closed(&self, svc: &Service, saved: &state::Saved, e: &state::SavedService) -> bool {
        let c = &e.closed;
        if !saved.covers(c.to()) {
            tracing::debug!(service = %e.name, "saved closed minutes not used: too recent");
            return false;
        }
        let changed = self
            .store
            .changed_late_since(&svc.checks, saved.late_mark, c.from(), c.to());
        if !changed.as_ref().is_ok_and(|changed| !changed) {
            tracing::debug!(service = %e.name, "saved closed minutes not used: written since ({changed:?})");
            return false;
        }
        true
    }

    /// Whether saved past-month totals (of the months before `current`) still hold.
    fn trust_past(&self, svc: &Service, saved: &state::Saved, current: Month) -> bool {
        let Ok(period) = Period::month(current, &svc.time_zone) else {
            return false;
        };
        saved.covers(period.start_minute)
            && self
                .store
                .changed_late_since(&svc.checks, saved.late_mark, i64::MIN, period.start_minute)
                .is_ok_and(|changed| !changed)
    }

    /// Whether cached past totals still match the store (they are rechecked only every
    /// [`PAST_MONTHS_EVERY`], so they may lag a late write; such totals are not saved).
    fn past_still_valid(&self, svc: &Service, p: &PastTotals) -> bool {
        let Ok(period) = Period::month(p.current, &svc.time_zone) else {
            return false;
        };
        self.store
            .changed_since(&svc.checks, p.mark, i64::MIN, period.start_minute)
            .is_ok_and(|changed| !changed)
    }

    /// Saves the state file when any service's closed minutes moved on since the last save
    /// and the last save is [`SAVE_EVERY`] old. `late_mark` was taken before this refresh
    /// read anything, so every entry saved is valid as of it.
    pub(super) fn save_state_if_due(&self, late_mark: u64, now: Timestamp) {
        let Some(path) = &self.state_file else {
            return;
        };
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = persisted
            .saved_at
            .is_some_and(|t| now.duration_since(t).as_secs() < SAVE_EVERY.as_secs() as i64);
        let closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let moved = closed
            .iter()
            .any(|(name, c)| persisted.saved_to.get(name) != Some(&c.closed.to()));
        if recent || !moved {
            return;
        }
        let past = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cfg = self.config();
        let services: Vec<state::SavedService> = cfg
            .services
            .iter()
            .filter_map(|svc| {
                let c = closed.get(&svc.name)?;
                Some(state::SavedService {
                    name: svc.name.clone(),
                    fingerprint: state::fingerprint(svc),
                    month: c.month,
                    closed: c.closed.clone(),
                    past: past
                        .totals
                        .get(&svc.name)
                        .filter(|p| self.past_still_valid(svc, p))
                        .map(|p| (p.current, p.totals)),
                })
            })
            .collect();
        drop(past);
        let saved_to = services
            .iter()
            .map(|s| (s.name.clone(), s.closed.to()))
            .collect();
        drop(closed);
        let saved = state::Saved {
            late_mark,
            saved_at: now,
            services,
        };
        match state::save(path, &saved) {
            Ok(bytes) => {
                tracing::debug!("saved figures state: {bytes} bytes to {}", path.display());
                persisted.saved_at = Some(now);
                persisted.saved_to = saved_to;
            }
            Err(e) => tracing::warn!("cannot save the figures state to {}: {e}", path.display()),
        }
    }
}
