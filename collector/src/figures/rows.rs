//! One engine run from the store: reads the rows the engine needs for a service (rollups,
//! gaps, first seen, first configured, exact threshold counts, API maintenance) and runs it.

use attest_config::{MaintenanceWindow, Service};
use jiff::Timestamp;

use super::{Figures, engine_err, store_err};
use crate::minutes::{GapSpan, HostMinute, SeriesMinutes, ThresholdOver};
use crate::reject::Rejection;
use crate::sla::{self, ClosedMinutes, HostInput, Incremental, Month, ServiceInput};
use crate::store::MaintenanceRow;

impl Figures {
    /// One engine run reading rows from the end of `prior` (or the whole range) on;
    /// `maintenance` is the service's API maintenance (read once by the caller), `host`
    /// (covering the period and the trend look-back) feeds the capacity objectives.
    pub(super) fn evaluate_from(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
        prior: Option<&ClosedMinutes>,
        (maintenance, host): (&[MaintenanceRow], Option<&[HostMinute]>),
    ) -> Result<Incremental, Rejection> {
        let (from, to) = sla::input_range(svc, month, now).map_err(engine_err)?;
        let read_from = prior.map_or(from, |c| c.to().max(from));
        let rows = self.read_rows(svc, (from, to), read_from, maintenance.to_vec())?;
        let maintenance = windows(&rows.maintenance);
        let cfg = self.config();
        let host = host.map(|minutes| HostInput {
            config: &cfg.capacity,
            minutes,
        });
        let input = rows.input(svc, &maintenance, host);
        sla::evaluate_incremental(&input, month, now, prior).map_err(engine_err)
    }

    /// Everything the engine reads for `svc` over `[from, to)`, the rollups only from
    /// `read_from` on (the closed minutes before it are reused), with the API maintenance
    /// the caller read.
    pub(super) fn read_rows(
        &self,
        svc: &Service,
        (from, to): (i64, i64),
        read_from: i64,
        maintenance: Vec<MaintenanceRow>,
    ) -> Result<Rows, Rejection> {
        let exact = match &svc.latency {
            Some(objective) => {
                let t = u64::try_from(objective.threshold.as_micros()).unwrap_or(u64::MAX);
                let over = self.store.threshold_over(&svc.checks, t, from, to);
                Some(over.map_err(store_err)?)
            }
            None => None,
        };
        Ok(Rows {
            rollups: self
                .store
                .series_minutes(&svc.checks, read_from, to)
                .map_err(store_err)?,
            gaps: self.store.gaps(&svc.checks, from, to).map_err(store_err)?,
            first_seen: self.store.first_seen(&svc.checks).map_err(store_err)?,
            first_configured: self.store.first_configured(&svc.name).map_err(store_err)?,
            exact,
            maintenance,
        })
    }

    /// The service's maintenance windows registered through the API (cancelled ones left out).
    /// The report notes of `service`'s `month` (`YYYY-MM`), in the order written.
    pub fn report_notes(
        &self,
        month: &str,
        service: &str,
    ) -> Result<Vec<crate::store::NoteRow>, Rejection> {
        self.store
            .report_notes(month, Some(service))
            .map_err(store_err)
    }

    pub(super) fn api_maintenance_rows(
        &self,
        service: &str,
    ) -> Result<Vec<MaintenanceRow>, Rejection> {
        let rows = self
            .store
            .list_maintenance(Some(service))
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.cancelled_at.is_none())
            .collect())
    }
}

/// The store rows one engine run reads for a service (see [`Figures::read_rows`]).
pub(super) struct Rows {
    pub(super) rollups: SeriesMinutes,
    pub(super) gaps: Vec<GapSpan>,
    pub(super) first_seen: Option<i64>,
    pub(super) first_configured: Option<Timestamp>,
    pub(super) exact: Option<ThresholdOver>,
    pub(super) maintenance: Vec<MaintenanceRow>,
}

impl Rows {
    pub(super) fn input<'a>(
        &'a self,
        service: &'a Service,
        maintenance: &'a [MaintenanceWindow],
        host: Option<HostInput<'a>>,
    ) -> ServiceInput<'a> {
        ServiceInput {
            service,
            maintenance,
            rollups: &self.rollups,
            gaps: &self.gaps,
            first_seen: self.first_seen,
            first_configured: self.first_configured,
            exact: self.exact.as_ref(),
            host,
        }
    }
}

/// API maintenance rows as the engine's windows.
pub(super) fn windows(rows: &[MaintenanceRow]) -> Vec<MaintenanceWindow> {
    rows.iter()
        .map(|r| MaintenanceWindow::Once {
            start: r.start,
            end: r.end,
            reason: r.reason.clone(),
        })
        .collect()
}
