//! Past totals: the good, bad and known minutes of every complete month before the
//! current one since the service was first measured, behind the SLO counters.
//!
//! Invariants:
//! - The totals depend on the rows and gaps of `[from, before)` (the earliest month's
//!   input range start to the current month's start), on where the service was first
//!   seen and on its API maintenance: they are reused while none of the three changed.
//!   Retention is journalled as "every minute before the horizon changed", so a horizon
//!   far behind `from` does not invalidate them (it did: every retention pass recomputed
//!   every past month of every service, and a restart after one read them all again).
//! - When the month turns, the month that just closed is added to the totals of the months
//!   before it, evaluated from its closed minutes when they still hold (only its last
//!   minutes are read); the months before it are not read again.

use std::time::Duration;

use attest_config::Service;
use jiff::Timestamp;

use super::current::Cached;
use super::state::PastBasis;
use super::{Figures, STORE_UNAVAILABLE, Totals, completed, store_err};
use crate::reject::Rejection;
use crate::sla::{self, Incremental, Month, Period};
use crate::store::MaintenanceRow;

/// How often the totals of past months (behind the SLO counters) are rechecked against the
/// store's journal, so late data for a closed month reaches the counters.
const PAST_MONTHS_EVERY: Duration = Duration::from_secs(600);

/// Totals of complete past months per service, with the current month they precede and
/// when and at which store mark they were computed. Per service, since services in
/// different zones are in different months around midnight UTC.
#[derive(Debug, Default)]
pub(super) struct PastMonths {
    pub(super) totals: std::collections::BTreeMap<String, PastTotals>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PastTotals {
    pub(super) current: Month,
    pub(super) totals: Totals,
    pub(super) at: Timestamp,
    pub(super) mark: u64,
    /// What they were computed from besides the rows of `[basis.from, current's start)`.
    pub(super) basis: PastBasis,
}

/// A stable hash of the API maintenance windows that shape the calendar (start and end).
pub(crate) fn maintenance_key(rows: &[MaintenanceRow]) -> u64 {
    let spans: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (r.start.as_second(), r.end.as_second()))
        .collect();
    super::state::fnv(&format!("{spans:?}"))
}

impl Figures {
    /// Sum over the complete months before `current` since the service's first measurement;
    /// cached, rechecked every [`PAST_MONTHS_EVERY`] and recomputed then only when the
    /// store's journal shows a change to the rows they were computed from, or where the
    /// service was first seen or its maintenance changed; when the month turns, only the
    /// month that closed is added (see the module invariants).
    /// A store failure fails the whole sum (never a smaller total: the SLO counters would
    /// read it as a reset); a month the engine refuses for another reason is logged and
    /// left out, as before.
    pub(super) fn past_totals(
        &self,
        svc: &Service,
        current: Month,
        now: Timestamp,
        maintenance: &[MaintenanceRow],
    ) -> Result<Totals, Rejection> {
        let mut past = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = Period::month(current, &svc.time_zone).map_or(i64::MAX, |p| p.start_minute);
        let key = maintenance_key(maintenance);
        if let Some(entry) = past
            .totals
            .get_mut(&svc.name)
            .filter(|e| e.current == current && e.basis.maintenance == key)
        {
            let young = now.duration_since(entry.at).as_secs() < PAST_MONTHS_EVERY.as_secs() as i64;
            if young || self.past_unchanged(svc, entry, before)? {
                entry.at = if young { entry.at } else { now };
                return Ok(entry.totals);
            }
        }
        let mark = self.store.change_mark();
        let first = self.store.first_seen(&svc.checks).map_err(store_err)?;
        let prior = past.totals.remove(&svc.name);
        let entry =
            match prior.filter(|p| p.current.next() == current && p.basis.maintenance == key) {
                Some(p) => self.past_turned(svc, p, first, (now, mark), maintenance)?,
                None => None,
            };
        let entry = match entry {
            Some(e) => e,
            None => self.past_from_store(svc, current, first, (now, mark), maintenance)?,
        };
        past.totals.insert(svc.name.clone(), entry);
        Ok(entry.totals)
    }

    /// Whether nothing cached past totals were computed from changed since their mark.
    fn past_unchanged(
        &self,
        svc: &Service,
        entry: &PastTotals,
        before: i64,
    ) -> Result<bool, Rejection> {
        let changed = self
            .store
            .changed_since(&svc.checks, entry.mark, entry.basis.from, before)
            .map_err(store_err)?;
        Ok(!changed
            && self.store.first_seen(&svc.checks).map_err(store_err)? == entry.basis.first_seen)
    }

    /// The month turned after `p` (the totals before the month that just closed): adds that
    /// month, from its closed minutes when they still hold. `None` when `p` no longer holds.
    fn past_turned(
        &self,
        svc: &Service,
        p: PastTotals,
        first: Option<i64>,
        (now, mark): (Timestamp, u64),
        maintenance: &[MaintenanceRow],
    ) -> Result<Option<PastTotals>, Rejection> {
        let closed_month = p.current;
        let start = Period::month(closed_month, &svc.time_zone).map_err(super::engine_err)?;
        let first_holds = first == p.basis.first_seen
            || (p.basis.first_seen.is_none() && first.is_some_and(|f| f >= start.start_minute));
        if !first_holds || !self.past_unchanged_to(svc, &p, start.start_minute)? {
            return Ok(None);
        }
        let cached = self.take_closed_of(svc, closed_month);
        let prior = match cached {
            Some(c) if self.closed_unchanged(svc, &c)? => Some(c.closed),
            _ => None,
        };
        let windows = (maintenance, None);
        let mut outcome = self.evaluate_from(svc, closed_month, now, prior.as_ref(), windows)?;
        if let Incremental::NeedsAllRows = outcome {
            outcome = self.evaluate_from(svc, closed_month, now, None, windows)?;
        }
        let (report, closed) = completed(outcome)?;
        let (from, _) = sla::input_range(svc, closed_month, now).map_err(super::engine_err)?;
        let turned = PastTotals {
            current: closed_month.next(),
            totals: p.totals.add(&report),
            at: now,
            mark,
            basis: PastBasis {
                from: p.basis.from.min(from),
                first_seen: first,
                maintenance: p.basis.maintenance,
            },
        };
        let cached = Cached {
            month: closed_month,
            mark,
            closed,
            last: None,
        };
        self.closing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(svc.name.clone(), (cached, p));
        Ok(Some(turned))
    }

    /// The closed minutes of `month` (the month that closed), from the closing months or
    /// the current ones; those of another month stay where they are.
    fn take_closed_of(&self, svc: &Service, month: Month) -> Option<Cached> {
        let mut closing = self
            .closing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if closing
            .get(&svc.name)
            .is_some_and(|(c, _)| c.month == month)
        {
            return closing.remove(&svc.name).map(|(c, _)| c);
        }
        drop(closing);
        let mut closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if closed.get(&svc.name).is_some_and(|c| c.month == month) {
            return closed.remove(&svc.name);
        }
        None
    }

    /// Whether the rows of `[p.basis.from, to)` did not change since `p`'s mark.
    fn past_unchanged_to(&self, svc: &Service, p: &PastTotals, to: i64) -> Result<bool, Rejection> {
        let changed = self
            .store
            .changed_since(&svc.checks, p.mark, p.basis.from, to)
            .map_err(store_err)?;
        Ok(!changed)
    }

    /// Every month before `current` from the store. With a state file, the closed minutes
    /// of the month before `current` and the totals before it are kept as the closing month
    /// (what a save writes until it covers `current`'s start; see `trust.rs`).
    fn past_from_store(
        &self,
        svc: &Service,
        current: Month,
        first: Option<i64>,
        (now, mark): (Timestamp, u64),
        maintenance: &[MaintenanceRow],
    ) -> Result<PastTotals, Rejection> {
        let mut total = Totals::default();
        let mut from = i64::MAX;
        let mut closing = None;
        let first_month = first
            .and_then(|m| Timestamp::from_second(m * 60).ok())
            .and_then(|t| Month::containing(t, &svc.time_zone).ok());
        let basis = |from| PastBasis {
            from,
            first_seen: first,
            maintenance: maintenance_key(maintenance),
        };
        if let Some(mut month) = first_month {
            while month < current {
                let before = (total, from);
                let start = sla::input_range(svc, month, now)
                    .map_err(super::engine_err)?
                    .0;
                match self
                    .evaluate_from(svc, month, now, None, (maintenance, None))
                    .and_then(completed)
                {
                    Ok((r, closed)) => {
                        total = total.add(&r);
                        from = from.min(start);
                        if month.next() == current && self.state_file.is_some() {
                            closing = Some((month, closed, before));
                        }
                    }
                    Err(e) if e.status == STORE_UNAVAILABLE => return Err(e),
                    Err(e) => {
                        tracing::warn!(service = %svc.name, %month, "cannot compute a past month: {}", e.reason);
                    }
                }
                month = month.next();
            }
        }
        if let Some((month, closed, (totals, from))) = closing {
            let before = PastTotals {
                current: month,
                totals,
                at: now,
                mark,
                basis: basis(from),
            };
            let cached = Cached {
                month,
                mark,
                closed,
                last: None,
            };
            self.closing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(svc.name.clone(), (cached, before));
        }
        Ok(PastTotals {
            current,
            totals: total,
            at: now,
            mark,
            basis: basis(from),
        })
    }
}
