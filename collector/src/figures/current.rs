//! The current month of one service: its closed minutes and last report are reused while
//! the store's change journal says nothing they were built from changed.

use attest_config::Service;
use jiff::Timestamp;

use super::{Figures, completed, store_err};
use crate::minutes::HostMinute;
use crate::reject::Rejection;
use crate::sla::{self, ClosedMinutes, Incremental, Month, ServiceReport};
use crate::store::MaintenanceRow;

/// The closed minutes of one service's current month, and the store mark they are valid
/// at: reused while `Store::changed_since` says nothing of them changed after `mark`.
#[derive(Debug)]
pub(super) struct Cached {
    pub(super) month: Month,
    pub(super) mark: u64,
    pub(super) closed: ClosedMinutes,
    /// The report computed with these closed minutes, and what it was computed from
    /// beyond the journalled rows: reused while none of it changed (see [`Last::holds`]).
    /// `None` for closed minutes loaded from the state file.
    pub(super) last: Option<Last>,
}

/// What a service's last report depended on besides the rows the journal tracks.
#[derive(Debug)]
pub(super) struct Last {
    report: ServiceReport,
    /// The as-of minute: every figure moves with it, none moves within it.
    as_of: i64,
    maintenance: Vec<MaintenanceRow>,
}

impl Last {
    /// Whether a report computed now would equal this one apart from its as-of instant:
    /// same as-of minute, same API maintenance, no host minutes involved (they are not
    /// journalled) — the caller has checked that no row or gap of the service changed.
    fn holds(&self, svc: &Service, now: Timestamp, maintenance: &[MaintenanceRow]) -> bool {
        svc.capacity.is_empty()
            && self.as_of == sla::calendar::ceil_minute(now)
            && self.maintenance == maintenance
    }
}

impl Figures {
    /// [`Figures::evaluate`] reusing the service's closed minutes from the last refresh when
    /// the store says none of them changed since: then only the minutes after them are read.
    /// `maintenance` is the service's API maintenance, read once by the caller.
    pub(super) fn evaluate_cached(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
        host: Option<&[HostMinute]>,
        maintenance: Vec<MaintenanceRow>,
    ) -> Result<ServiceReport, Rejection> {
        let mark = self.store.change_mark();
        let mut prior = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&svc.name)
            .filter(|c| c.month == month);
        let reusable = match &prior {
            Some(c) => match c.last.as_ref().filter(|l| l.holds(svc, now, &maintenance)) {
                Some(last) if self.untouched(svc, c)? => Some(last.report.clone()),
                _ => None,
            },
            None => None,
        };
        if let Some(report) = reusable
            && let Some(c) = prior.take()
        {
            self.keep(svc, Cached { mark, ..c });
            return Ok(report.restamped(now));
        }
        let prior = match prior {
            Some(c) if !self.closed_unchanged(svc, &c)? => None,
            other => other.map(|c| c.closed),
        };
        let windows = (maintenance.as_slice(), host);
        let mut outcome = self.evaluate_from(svc, month, now, prior.as_ref(), windows)?;
        if let Incremental::NeedsAllRows = outcome {
            outcome = self.evaluate_from(svc, month, now, None, windows)?;
        }
        let (report, closed) = completed(outcome)?;
        let last = Last {
            report: report.clone(),
            as_of: sla::calendar::ceil_minute(now),
            maintenance,
        };
        self.keep(
            svc,
            Cached {
                month,
                mark,
                closed,
                last: Some(last),
            },
        );
        Ok(report)
    }

    fn keep(&self, svc: &Service, cached: Cached) {
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(svc.name.clone(), cached);
    }

    /// Whether no row or gap of the service changed at all since `cached` was computed.
    fn untouched(&self, svc: &Service, cached: &Cached) -> Result<bool, Rejection> {
        let changed = self
            .store
            .changed_since(&svc.checks, cached.mark, i64::MIN, i64::MAX)
            .map_err(store_err)?;
        Ok(!changed)
    }

    /// Whether nothing `cached` was built from changed in the store since its mark.
    pub(super) fn closed_unchanged(
        &self,
        svc: &Service,
        cached: &Cached,
    ) -> Result<bool, Rejection> {
        let c = &cached.closed;
        let changed = self
            .store
            .changed_since(&svc.checks, cached.mark, c.from(), c.to())
            .map_err(store_err)?;
        Ok(!changed)
    }
}
