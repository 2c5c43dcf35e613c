//! Past totals: the good, bad and known minutes of every complete month before the
//! current one since the service was first measured, behind the SLO counters.

use std::time::Duration;

use attest_config::Service;
use jiff::Timestamp;

use super::{Figures, STORE_UNAVAILABLE, Totals, completed, store_err};
use crate::reject::Rejection;
use crate::sla::{Month, Period};

/// How often the totals of past months (behind the SLO counters) are recomputed, so late
/// data for a closed month reaches the counters.
const PAST_MONTHS_EVERY: Duration = Duration::from_secs(600);

/// Totals of complete past months per service, with the current month they precede and
/// when and at which store mark they were computed. Per service, since services in
/// different zones are in different months around midnight UTC.
#[derive(Debug, Default)]
pub(super) struct PastMonths {
    pub(super) totals: std::collections::BTreeMap<String, PastTotals>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PastTotals {
    pub(super) current: Month,
    pub(super) totals: Totals,
    pub(super) at: Timestamp,
    pub(super) mark: u64,
}

impl Figures {
    /// Sum over the complete months before `current` since the service's first measurement;
    /// cached, rechecked every [`PAST_MONTHS_EVERY`] and recomputed then only when the
    /// store's journal shows a change before `current` (and always when the month turns).
    /// A store failure fails the whole sum (never a smaller total: the SLO counters would
    /// read it as a reset); a month the engine refuses for another reason is logged and
    /// left out, as before.
    pub(super) fn past_totals(
        &self,
        svc: &Service,
        current: Month,
        now: Timestamp,
    ) -> Result<Totals, Rejection> {
        let mut past = self
            .past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = Period::month(current, &svc.time_zone).map_or(i64::MAX, |p| p.start_minute);
        if let Some(entry) = past
            .totals
            .get_mut(&svc.name)
            .filter(|e| e.current == current)
        {
            let young = now.duration_since(entry.at).as_secs() < PAST_MONTHS_EVERY.as_secs() as i64;
            let unchanged = || {
                self.store
                    .changed_since(&svc.checks, entry.mark, i64::MIN, before)
                    .is_ok_and(|changed| !changed)
            };
            if young || unchanged() {
                entry.at = if young { entry.at } else { now };
                return Ok(entry.totals);
            }
        }
        let mark = self.store.change_mark();
        let mut total = Totals::default();
        let first = self.store.first_seen(&svc.checks).map_err(store_err)?;
        let first_month = first
            .and_then(|m| Timestamp::from_second(m * 60).ok())
            .and_then(|t| Month::containing(t, &svc.time_zone).ok());
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        if let Some(mut month) = first_month {
            while month < current {
                match self
                    .evaluate_from(svc, month, now, None, (&maintenance, None))
                    .and_then(completed)
                {
                    Ok((r, _)) => total = total.add(&r),
                    Err(e) if e.status == STORE_UNAVAILABLE => return Err(e),
                    Err(e) => {
                        tracing::warn!(service = %svc.name, %month, "cannot compute a past month: {}", e.reason);
                    }
                }
                month = month.next();
            }
        }
        let entry = PastTotals {
            current,
            totals: total,
            at: now,
            mark,
        };
        past.totals.insert(svc.name.clone(), entry);
        Ok(total)
    }
}
