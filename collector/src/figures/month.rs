//! Month reports: one service's figures (or the month in detail) for any month, evaluated
//! from every row of the period; what `/api/v1/sla`, `attest-collector sla` and the
//! monthly report show.

use attest_config::{CollectorConfig, Service};
use jiff::Timestamp;

use super::rows::windows;
use super::{Figures, complete, completed, engine_err, store_err};
use crate::reject::Rejection;
use crate::sla::{self, HostInput, Month, Period, ServiceReport};
use crate::store::MaintenanceRow;

impl Figures {
    /// Figures of one service for one month as of `now`, from every row of the period; a
    /// month that is over reuses its kept report while nothing it was computed from
    /// changed (see [`complete`]).
    pub fn evaluate(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
    ) -> Result<ServiceReport, Rejection> {
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        let keep = complete::keepable(svc, month, now);
        if keep && let Some(report) = self.kept_month(svc, month, &maintenance)? {
            return Ok(report);
        }
        // Taken before the read: a write racing it shows up as a change at the next use.
        let basis = complete::Basis {
            mark: self.store.change_mark(),
            range: sla::input_range(svc, month, now).map_err(engine_err)?,
            first_seen: self.store.first_seen(&svc.checks).map_err(store_err)?,
            first_configured: self.store.first_configured(&svc.name).map_err(store_err)?,
        };
        let host = self.month_host_minutes(svc, month)?;
        let outcome = self.evaluate_from(svc, month, now, None, (&maintenance, Some(&host)))?;
        let report = completed(outcome)?.0;
        if keep {
            self.keep_month(svc, month, &report, &maintenance, basis);
        }
        Ok(report)
    }

    /// The monthly report's inputs for one service from one read of its rows: the engine's
    /// figures, the month in detail (days, unknown intervals, minute states), and the API
    /// maintenance windows overlapping the period (cancelled ones left out).
    pub fn month_detail(
        &self,
        svc: &Service,
        month: Month,
        now: Timestamp,
    ) -> Result<(ServiceReport, sla::MonthDetail, Vec<MaintenanceRow>), Rejection> {
        let (from, to) = sla::input_range(svc, month, now).map_err(engine_err)?;
        let period = Period::month(month, &svc.time_zone).map_err(engine_err)?;
        let maintenance = self.api_maintenance_rows(&svc.name)?;
        let rows = self.read_rows(svc, (from, to), from, maintenance)?;
        let host = self.month_host_minutes(svc, month)?;
        let maintenance = windows(&rows.maintenance);
        let cfg = self.config();
        let host = HostInput {
            config: &cfg.capacity,
            minutes: &host,
        };
        let input = rows.input(svc, &maintenance, Some(host));
        let report = sla::evaluate(&input, month, now).map_err(engine_err)?;
        let detail = sla::detail(&input, month, now).map_err(engine_err)?;
        let overlapping = rows
            .maintenance
            .into_iter()
            .filter(|r| r.start < period.end && r.end > period.start)
            .collect();
        Ok((report, detail, overlapping))
    }

    /// Every configured service (or the one named) for `month` as of `now`, evaluated from
    /// the store: what `/api/v1/sla` and `attest-collector sla` report (see `report`).
    pub fn month_reports(
        &self,
        month: Month,
        service: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<ServiceReport>, Rejection> {
        let cfg = self.config();
        select_services(&cfg, service)?
            .into_iter()
            .map(|s| self.evaluate(s, month, now))
            .collect()
    }
}

/// The configured services a month query is about: all of them, or the one named (a 404
/// naming the field when no service has that name).
pub fn select_services<'a>(
    cfg: &'a CollectorConfig,
    service: Option<&str>,
) -> Result<Vec<&'a Service>, Rejection> {
    let services: Vec<&Service> = cfg
        .services
        .iter()
        .filter(|s| service.is_none_or(|n| n == s.name))
        .collect();
    match service {
        Some(name) if services.is_empty() => Err(Rejection::new(
            404,
            format!("no service named {name:?} in the collector config"),
        )
        .field("service")),
        _ => Ok(services),
    }
}

impl Figures {
    /// What the seal of a closed month rests on, from the store: the seals of the batches
    /// whose measurements fall in `[from, to)` (the month's span over every service's zone)
    /// and every API maintenance window (cancelled ones too) overlapping it.
    pub fn seal_inputs(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<crate::store::StoredSeal>, Vec<MaintenanceRow>), Rejection> {
        let seals = self.store.batch_seals(from, to).map_err(store_err)?;
        let windows = self
            .store
            .list_maintenance(None)
            .map_err(store_err)?
            .into_iter()
            .filter(|r| r.start < to && r.end > from)
            .collect();
        Ok((seals, windows))
    }
}
