//! Reports of complete months, kept per service and month: the twelve months before a
//! monthly report (its trend), `/api/v1/sla?month=` and repeated reports reuse the engine's
//! result of a month that is over instead of reading and folding the whole month again
//! (each such month was a full engine run per service and request, the bulk of a report
//! from the store).
//!
//! Invariants:
//! - Only a month that is over at `now` is kept: its report does not depend on `now`
//!   (the as-of instant is the month's end), so it may be reused at any later instant.
//! - A kept report is reused only while everything it was computed from is unchanged: the
//!   service's whole definition (fingerprint), the store's change journal shows no write to
//!   its checks' rows or gaps in the month's input range since the mark taken before the
//!   read, and its API maintenance, first-seen minute and first-configured instant are
//!   the same. A service with capacity objectives is never kept: host minutes are not
//!   journalled.
//! - At most [`MONTHS_KEPT`] months per service are kept (the newest); nothing here decides
//!   a figure.

use std::collections::{BTreeMap, HashMap};

use attest_config::Service;
use jiff::Timestamp;

use super::{Figures, state, store_err};
use crate::reject::Rejection;
use crate::sla::{Month, Period, ServiceReport};
use crate::store::MaintenanceRow;

/// A report's trend covers twelve months before the report's month: that month, the twelve
/// and one spare.
pub(super) const MONTHS_KEPT: usize = 14;

/// One complete month's report and what it was computed from besides the journalled rows.
#[derive(Debug, Clone)]
pub(super) struct Kept {
    report: ServiceReport,
    fingerprint: u64,
    mark: u64,
    range: (i64, i64),
    maintenance: Vec<MaintenanceRow>,
    first_seen: Option<i64>,
    first_configured: Option<Timestamp>,
}

/// Per service name, per month.
#[derive(Debug, Default)]
pub(super) struct CompleteMonths {
    kept: HashMap<String, BTreeMap<Month, Kept>>,
}

/// What a complete month's report depends on besides the rows, as read before it.
pub(super) struct Basis {
    pub(super) mark: u64,
    pub(super) range: (i64, i64),
    pub(super) first_seen: Option<i64>,
    pub(super) first_configured: Option<Timestamp>,
}

/// Whether `month` of `svc` is over at `now` and its report may be kept at all.
pub(super) fn keepable(svc: &Service, month: Month, now: Timestamp) -> bool {
    svc.capacity.is_empty() && Period::month(month, &svc.time_zone).is_ok_and(|p| now >= p.end)
}

impl Figures {
    /// The kept report of `svc`'s complete `month` when it still holds (see the module
    /// invariants); `maintenance` is the service's API maintenance, read by the caller.
    pub(super) fn kept_month(
        &self,
        svc: &Service,
        month: Month,
        maintenance: &[MaintenanceRow],
    ) -> Result<Option<ServiceReport>, Rejection> {
        let kept = self
            .complete
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .kept
            .get(&svc.name)
            .and_then(|months| months.get(&month))
            .cloned();
        let Some(k) = kept else {
            return Ok(None);
        };
        let same = k.fingerprint == state::fingerprint(svc)
            && k.maintenance == maintenance
            && !self
                .store
                .changed_since(&svc.checks, k.mark, k.range.0, k.range.1)
                .map_err(store_err)?
            && self.store.first_seen(&svc.checks).map_err(store_err)? == k.first_seen
            && self.store.first_configured(&svc.name).map_err(store_err)? == k.first_configured;
        Ok(same.then_some(k.report))
    }

    /// Keeps `report` of `svc`'s complete `month`, computed from `basis` and `maintenance`.
    pub(super) fn keep_month(
        &self,
        svc: &Service,
        month: Month,
        report: &ServiceReport,
        maintenance: &[MaintenanceRow],
        basis: Basis,
    ) {
        let mut complete = self
            .complete
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let months = complete.kept.entry(svc.name.clone()).or_default();
        months.insert(
            month,
            Kept {
                report: report.clone(),
                fingerprint: state::fingerprint(svc),
                mark: basis.mark,
                range: basis.range,
                maintenance: maintenance.to_vec(),
                first_seen: basis.first_seen,
                first_configured: basis.first_configured,
            },
        );
        while months.len() > MONTHS_KEPT {
            months.pop_first();
        }
    }

    /// Drops every kept month (a reloaded configuration; the fingerprints would also tell).
    pub(super) fn forget_complete_months(&self) {
        self.complete
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .kept
            .clear();
    }
}
