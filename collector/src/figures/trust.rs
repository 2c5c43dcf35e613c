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
    /// Per service: the month its past totals precede, as of the last save (a turn saves).
    pub(super) saved_months: HashMap<String, Month>,
    /// The late-write mark and `now` of the last refresh (what a save at shutdown uses).
    pub(super) last_refresh: Option<(u64, Timestamp)>,
    /// When the last published figures were last saved (the refresh's `now`).
    pub(super) published_at: Option<Timestamp>,
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
        let (mut used, mut past_used) = (0, 0);
        for entry in &saved.services {
            let Some(svc) = by_name.get(entry.name.as_str()) else {
                continue;
            };
            if entry.fingerprint != state::fingerprint(svc) {
                tracing::debug!(service = %entry.name, "saved state not used: the definition changed");
                continue;
            }
            if self.trust_closed(svc, &saved, &entry.name, &entry.closed) {
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
            if let Some(p) = entry.past
                && self.trust_past(svc, &saved, &p)
            {
                let past = PastTotals {
                    current: p.current,
                    totals: p.totals,
                    at: now,
                    mark,
                    basis: p.basis,
                };
                if let Some((month, closed)) = &entry.closing
                    && *month == p.current
                    && self.trust_closed(svc, &saved, &entry.name, closed)
                {
                    let cached = Cached {
                        month: *month,
                        mark,
                        closed: closed.clone(),
                        last: None,
                    };
                    self.closing
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(entry.name.clone(), (cached, past));
                }
                self.past
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .totals
                    .insert(entry.name.clone(), past);
                persisted.saved_months.insert(entry.name.clone(), p.current);
                past_used += 1;
            }
        }
        persisted.saved_at = Some(saved.saved_at);
        tracing::info!(
            "loaded saved closed minutes of {used} and past totals of {past_used} of {} services ({} saved) from {}",
            self.config().services.len(),
            saved.services.len(),
            path.display()
        );
    }

    /// Whether saved closed minutes are still what the store holds.
    fn trust_closed(
        &self,
        svc: &Service,
        saved: &state::Saved,
        name: &str,
        c: &crate::sla::ClosedMinutes,
    ) -> bool {
        if !saved.covers(c.to()) {
            tracing::debug!(service = %name, "saved closed minutes not used: too recent");
            return false;
        }
        let changed = self
            .store
            .changed_late_since(&svc.checks, saved.late_mark, c.from(), c.to());
        if !changed.as_ref().is_ok_and(|changed| !changed) {
            tracing::debug!(service = %name, "saved closed minutes not used: written since ({changed:?})");
            return false;
        }
        true
    }

    /// Whether saved past-month totals still hold: far enough behind the save, no late write
    /// to the rows they read since, and the service first seen where they say.
    fn trust_past(&self, svc: &Service, saved: &state::Saved, p: &state::SavedPast) -> bool {
        let Ok(period) = Period::month(p.current, &svc.time_zone) else {
            return false;
        };
        saved.covers(period.start_minute)
            && self
                .store
                .changed_late_since(
                    &svc.checks,
                    saved.late_mark,
                    p.basis.from,
                    period.start_minute,
                )
                .is_ok_and(|changed| !changed)
            && self
                .store
                .first_seen(&svc.checks)
                .is_ok_and(|first| first == p.basis.first_seen)
    }

    /// Whether cached past totals still match the store (they are rechecked only every
    /// `PAST_MONTHS_EVERY`, so they may lag a late write; such totals are not saved).
    fn past_still_valid(&self, svc: &Service, p: &PastTotals) -> bool {
        let Ok(period) = Period::month(p.current, &svc.time_zone) else {
            return false;
        };
        self.store
            .changed_since(&svc.checks, p.mark, p.basis.from, period.start_minute)
            .is_ok_and(|changed| !changed)
            && self
                .store
                .first_seen(&svc.checks)
                .is_ok_and(|first| first == p.basis.first_seen)
    }

    /// Saves the state file when any service's closed minutes moved on since the last save
    /// and the last save is [`SAVE_EVERY`] old, or at once when a month turned (its past
    /// totals changed). `late_mark` was taken before this refresh read anything, so every
    /// entry saved is valid as of it.
    pub(super) fn save_state_if_due(&self, late_mark: u64, now: Timestamp) {
        if self.state_file.is_none() {
            return;
        }
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        persisted.last_refresh = Some((late_mark, now));
        let recent = persisted
            .saved_at
            .is_some_and(|t| now.duration_since(t).as_secs() < SAVE_EVERY.as_secs() as i64);
        let moved = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(name, c)| persisted.saved_to.get(name) != Some(&c.closed.to()));
        let turned = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .totals
            .iter()
            .any(|(name, p)| {
                persisted
                    .saved_months
                    .get(name)
                    .is_some_and(|m| *m != p.current)
            });
        if turned || (moved && !recent) {
            self.write_state(&mut persisted, late_mark, now);
        }
    }

    /// Saves the state as of the last refresh and the figures published last (at
    /// shutdown): the state only when a refresh completed since the last save.
    pub fn save_state(&self) {
        if self.state_file.is_none() {
            return;
        }
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((late_mark, now)) = persisted.last_refresh
            && persisted.saved_at != Some(now)
        {
            self.write_state(&mut persisted, late_mark, now);
        }
        self.write_published(&mut persisted);
    }

    /// Saves the figures just published when the last such save is [`SAVE_EVERY`] old.
    pub(super) fn save_published_if_due(&self, now: Timestamp) {
        if self.state_file.is_none() {
            return;
        }
        let mut persisted = self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = persisted
            .published_at
            .is_some_and(|t| now.duration_since(t).as_secs() < SAVE_EVERY.as_secs() as i64);
        if !recent {
            self.write_published(&mut persisted);
        }
    }

    fn write_published(&self, persisted: &mut Persisted) {
        let Some(path) = &self.state_file else {
            return;
        };
        let snap = self.latest();
        let Some(at) = snap.computed_at else {
            return;
        };
        let path = path.with_file_name(super::published::FILE_NAME);
        match super::published::save(&path, &snap, &self.config().services) {
            Ok(bytes) => {
                tracing::debug!(
                    "saved the published figures: {bytes} bytes to {}",
                    path.display()
                );
                persisted.published_at = Some(at);
            }
            Err(e) => tracing::warn!(
                "cannot save the published figures to {}: {e}",
                path.display()
            ),
        }
    }

    /// Writes every service's closed minutes and past totals valid as of `late_mark`. While
    /// a month that just turned is too recent for its start to be covered by the save (its
    /// last minutes may still change without a late write), the closed month's closed
    /// minutes and the totals before it are saved instead, so a restart redoes the turn from
    /// them (reading only the closed month's last minutes).
    fn write_state(&self, persisted: &mut Persisted, late_mark: u64, now: Timestamp) {
        let Some(path) = &self.state_file else {
            return;
        };
        let covers = |minute: i64| {
            state::Saved {
                late_mark,
                saved_at: now,
                services: Vec::new(),
            }
            .covers(minute)
        };
        // The refresh's order: past totals, then closed minutes, then closing months.
        let past = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut closing = self
            .closing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cfg = self.config();
        let covered = |svc: &Service, p: &PastTotals| {
            Period::month(p.current, &svc.time_zone).is_ok_and(|m| covers(m.start_minute))
        };
        closing.retain(|name, _| {
            let svc = cfg.services.iter().find(|s| &s.name == name);
            match (svc, past.totals.get(name)) {
                (Some(svc), Some(p)) => !covered(svc, p),
                (Some(_), None) => true,
                (None, _) => false,
            }
        });
        let saved_past = |svc: &Service, p: &PastTotals| {
            self.past_still_valid(svc, p).then_some(state::SavedPast {
                current: p.current,
                totals: p.totals,
                basis: p.basis,
            })
        };
        let services: Vec<state::SavedService> = cfg
            .services
            .iter()
            .filter_map(|svc| {
                let current = past.totals.get(&svc.name);
                let turning = closing
                    .get(&svc.name)
                    .filter(|(c, _)| self.closed_unchanged(svc, c).unwrap_or(false));
                let current_closed = closed.get(&svc.name);
                let (c, p, closing) = match (current, turning) {
                    (Some(p), _) if covered(svc, p) => (current_closed?, Some(p), None),
                    // The month turned too recently: the closed month's closed minutes and
                    // the totals before it (and the new month's closed minutes, if any).
                    (_, Some((c, p))) => {
                        let newer = current_closed.filter(|n| n.month != c.month);
                        let closing = newer.map(|_| (c.month, c.closed.clone()));
                        (newer.unwrap_or(c), Some(p), closing)
                    }
                    (p, None) => (current_closed?, p, None),
                };
                let past = p.and_then(|p| saved_past(svc, p));
                Some(state::SavedService {
                    name: svc.name.clone(),
                    fingerprint: state::fingerprint(svc),
                    month: c.month,
                    closed: c.closed.clone(),
                    past,
                    closing,
                })
            })
            .collect();
        let saved_months = past
            .totals
            .iter()
            .map(|(name, p)| (name.clone(), p.current))
            .collect();
        drop(closing);
        drop(past);
        let saved_to = closed
            .iter()
            .map(|(name, c)| (name.clone(), c.closed.to()))
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
                persisted.saved_months = saved_months;
            }
            Err(e) => tracing::warn!("cannot save the figures state to {}: {e}", path.display()),
        }
    }
}
