//! Capacity reads: the host minutes behind the per-host capacity figures and the services'
//! capacity objectives.

use attest_config::Service;
use jiff::Timestamp;

use super::{Figures, engine_err, store_err};
use crate::minutes::HostMinute;
use crate::reject::Rejection;
use crate::sla::{self, CapacityFigure, Month, Period};

impl Figures {
    /// Host minutes covering `month` of `svc` and the trend look-back before it; none
    /// (no read) when the service has no capacity objectives.
    pub(super) fn month_host_minutes(
        &self,
        svc: &Service,
        month: Month,
    ) -> Result<Vec<HostMinute>, Rejection> {
        if svc.capacity.is_empty() {
            return Ok(Vec::new());
        }
        let period = Period::month(month, &svc.time_zone).map_err(engine_err)?;
        let lookback = sla::capacity::lookback_minutes(&self.config().capacity);
        let from = period.start_minute.saturating_sub(lookback);
        self.store
            .host_minutes(from, period.end_minute)
            .map_err(store_err)
    }

    /// Capacity figures of every host for `month` (the calendar month in `zone`: a service's
    /// report covers its own local month) as of `now`.
    pub fn month_capacity(
        &self,
        month: Month,
        zone: &str,
        now: Timestamp,
    ) -> Result<Vec<CapacityFigure>, Rejection> {
        let period = Period::month(month, zone).map_err(|e| Rejection::new(500, e.to_string()))?;
        let end = now.min(period.end);
        let lookback = sla::capacity::lookback_minutes(&self.config().capacity);
        let end_min = end.as_second().div_euclid(60);
        let from = period.start_minute.min(end_min - lookback);
        let host = self
            .store
            .host_minutes(from, end_min + 1)
            .map_err(store_err)?;
        Ok(sla::capacity(&host, &self.config().capacity, &period, end))
    }

    /// Host minutes of every agent from before the earliest month start of any zone
    /// (32 days) minus the trend look-back, up to `now`: one read per refresh serves the
    /// per-host figures and every service's capacity objectives.
    pub(super) fn recent_host_minutes(&self, now: Timestamp) -> Result<Vec<HostMinute>, Rejection> {
        let lookback = sla::capacity::lookback_minutes(&self.config().capacity);
        let now_min = now.as_second().div_euclid(60);
        let from = now_min.saturating_sub(32 * 1_440).saturating_sub(lookback);
        self.store
            .host_minutes(from, now_min + 1)
            .map_err(store_err)
    }

    pub(super) fn capacity(
        &self,
        now: Timestamp,
        host: &[HostMinute],
    ) -> Result<Vec<CapacityFigure>, Rejection> {
        let month =
            Month::containing(now, "UTC").map_err(|e| Rejection::new(500, e.to_string()))?;
        let period = Period::month(month, "UTC").map_err(|e| Rejection::new(500, e.to_string()))?;
        Ok(sla::capacity(host, &self.config().capacity, &period, now))
    }
}
