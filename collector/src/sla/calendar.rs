//! Calendar arithmetic: report periods (calendar months in an IANA zone), service hours,
//! holidays and maintenance, compiled into an eligibility mask over UTC minutes.
//!
//! Invariants:
//! - This is the only module of the engine that applies time zones; everything it
//!   returns is in UTC Unix minutes (`unix_seconds.div_euclid(60)`), half-open `[from, to)`.
//! - A minute is judged by its start instant: it is in service hours (or in a weekly
//!   maintenance window) iff the local wall-clock time of its start falls inside the window.
//!   Schedules are never stepped by a fixed 604,800 s, so DST weeks are exact: on a
//!   spring-forward day the skipped local hour contributes no minutes, on a fall-back day
//!   the repeated hour contributes its minutes twice.
//! - The mask is computed per offset segment (between two tz transitions), so the cost is
//!   a few integer operations per minute and no allocation besides the mask itself.

use attest_config::{MaintenanceWindow, Service, WeeklyWindow};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::{Offset, TimeZone};

use super::SlaError;

/// Minutes in a day and in a week.
const DAY: i64 = 1_440;
const WEEK: usize = 10_080;

/// A calendar month, the unit of SLA reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i16,
    month: i8,
}

impl Month {
    /// Rejects months outside 1..=12 and years jiff cannot represent with a next month.
    pub fn new(year: i16, month: i8) -> Result<Month, SlaError> {
        if !(1..=12).contains(&month) || !(1..=9998).contains(&year) {
            return Err(SlaError::BadMonth { year, month });
        }
        Ok(Month { year, month })
    }

    pub fn year(self) -> i16 {
        self.year
    }

    pub fn month(self) -> i8 {
        self.month
    }

    /// The month that follows; December rolls into January of the next year.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The month before; January rolls back into December of the previous year (stays at
    /// the first supported month).
    pub fn previous(self) -> Month {
        match (self.year, self.month) {
            (1, 1) => self,
            (y, 1) => Month {
                year: y - 1,
                month: 12,
            },
            (y, m) => Month {
                year: y,
                month: m - 1,
            },
        }
    }

    fn first_day(self) -> Result<Date, SlaError> {
        Date::new(self.year, self.month, 1).map_err(|e| SlaError::Time(e.to_string()))
    }
}

impl Month {
    /// The calendar month that contains `ts` in the zone `time_zone`.
    pub fn containing(ts: Timestamp, time_zone: &str) -> Result<Month, SlaError> {
        let date = zone(time_zone)?.to_datetime(ts).date();
        Month::new(date.year(), date.month())
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A report period: `[local 1st 00:00, local 1st of next month 00:00)` as UTC minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub month: Month,
    pub time_zone: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// First minute of the period.
    pub start_minute: i64,
    /// First minute after the period.
    pub end_minute: i64,
}

impl Period {
    /// The calendar month `month` in zone `time_zone`. When local midnight of the 1st does
    /// not exist (a DST gap at midnight), the period starts at the first instant after the
    /// gap (jiff's "compatible" disambiguation).
    pub fn month(month: Month, time_zone: &str) -> Result<Period, SlaError> {
        let tz = zone(time_zone)?;
        Period::month_in(month, time_zone, &tz)
    }

    pub(crate) fn month_in(month: Month, name: &str, tz: &TimeZone) -> Result<Period, SlaError> {
        let start = local_midnight(tz, month.first_day()?)?;
        let end = local_midnight(tz, month.next().first_day()?)?;
        Ok(Period {
            month,
            time_zone: name.to_string(),
            start,
            end,
            start_minute: ceil_minute(start),
            end_minute: ceil_minute(end),
        })
    }

    /// Number of minutes in the period (44,640 for a 31-day month without DST change).
    pub fn minutes(&self) -> i64 {
        self.end_minute - self.start_minute
    }
}

/// Looks up an IANA zone in the tz database jiff was built with.
pub fn zone(name: &str) -> Result<TimeZone, SlaError> {
    TimeZone::get(name).map_err(|e| SlaError::UnknownZone {
        zone: name.to_string(),
        detail: e.to_string(),
    })
}

pub(crate) fn local_midnight(tz: &TimeZone, date: Date) -> Result<Timestamp, SlaError> {
    tz.to_ambiguous_timestamp(date.to_datetime(Time::midnight()))
        .compatible()
        .map_err(|e| SlaError::Time(e.to_string()))
}

/// The first minute whose start instant is at or after `ts`.
pub fn ceil_minute(ts: Timestamp) -> i64 {
    let s = ts.as_second();
    let m = s.div_euclid(60);
    if s.rem_euclid(60) == 0 && ts.subsec_nanosecond() == 0 {
        m
    } else {
        m + 1
    }
}

/// The minute that contains `ts`.
pub fn floor_minute(ts: Timestamp) -> i64 {
    ts.as_second().div_euclid(60)
}

/// A set of minutes of the week (Monday 00:00 = 0), in local wall-clock time.
#[derive(Clone)]
struct WeekMask(Box<[bool; WEEK]>);

impl WeekMask {
    fn from_windows<'a>(windows: impl IntoIterator<Item = &'a WeeklyWindow>) -> WeekMask {
        let mut mask = WeekMask(Box::new([false; WEEK]));
        for w in windows {
            mask.add(w);
        }
        mask
    }

    /// Adds `[start, end)` on each listed day. `end` at or before `start` (other than
    /// `None` = 24:00) runs past midnight into the next day: `22:00–06:00` is overnight.
    fn add(&mut self, w: &WeeklyWindow) {
        let start = minute_of_day_ceil(w.start);
        let end = match w.end {
            None => DAY,
            Some(t) => minute_of_day_ceil(t),
        };
        let len = if end > start {
            end - start
        } else {
            DAY - start + end
        };
        for day in &w.days {
            let base = i64::from(day.to_monday_zero_offset()) * DAY + start;
            for i in 0..len {
                let idx = (base + i).rem_euclid(WEEK as i64) as usize;
                self.0[idx] = true;
            }
        }
    }

    fn contains(&self, minute_of_week: usize) -> bool {
        self.0[minute_of_week]
    }
}

/// First whole minute of the day whose start is at or after `t` (windows given with
/// seconds, e.g. 08:00:30, start at 08:01).
fn minute_of_day_ceil(t: Time) -> i64 {
    let secs = i64::from(t.hour()) * 3_600 + i64::from(t.minute()) * 60 + i64::from(t.second());
    let ns = i64::from(t.subsec_nanosecond());
    (secs + 59 + i64::from(ns > 0)) / 60
}

/// Local day number (days since 1970-01-01) of a civil date.
fn epoch_day(date: Date) -> Option<i64> {
    Offset::UTC
        .to_timestamp(date.to_datetime(Time::midnight()))
        .ok()
        .map(|ts| ts.as_second().div_euclid(86_400))
}

/// The service's schedule compiled once per evaluation: everything needed to say, for
/// any UTC minute, whether it is eligible (apart from the period bound, applied by callers).
pub struct Calendar {
    tz: TimeZone,
    /// Eligible minutes of the week (service hours minus weekly maintenance), one byte
    /// each so that a day is filled by one copy; `None` = every minute (24x7, no weekly
    /// maintenance).
    week: Option<Box<[u8; WEEK]>>,
    /// Sorted local day numbers.
    holidays: Vec<i64>,
    /// Disjoint, sorted `[from, to)` minute ranges of one-off maintenance.
    once: Vec<(i64, i64)>,
    /// Minutes before this are not eligible (see [`EligibleSince`]).
    not_before: Option<i64>,
    /// No rule makes any minute eligible (no `start`, never configured, never measured).
    never_eligible: bool,
}

/// Which rule of `docs/sla.md` opened eligibility, and from which minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EligibleSince {
    /// First eligible minute (Unix minute); minutes before it are never eligible.
    pub minute: i64,
    pub basis: EligibilityBasis,
}

/// The rule that decided where eligibility begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EligibilityBasis {
    /// The service's configured `start` (the agreement): every minute from it on is
    /// eligible, measured or not.
    Start,
    /// No `start`: the first time this store saw the service configured, which was
    /// earlier than (or as early as) its first measurement.
    FirstConfigured,
    /// No `start`: the first measurement of any of the service's checks, which came
    /// before the store first saw the service configured (or that instant is unknown).
    FirstMeasured,
}

impl EligibilityBasis {
    /// The stable name used in reports (`start`, `first_configured`, `first_measured`).
    pub fn as_str(self) -> &'static str {
        match self {
            EligibilityBasis::Start => "start",
            EligibilityBasis::FirstConfigured => "first_configured",
            EligibilityBasis::FirstMeasured => "first_measured",
        }
    }
}

/// Where eligibility begins: at `start` when the service has one (whether or not anything
/// was measured); otherwise at the earlier of the first measurement (`first_measured`, a
/// minute) and the first minute starting at or after `first_configured`; a tie goes to
/// `first_configured`. `None` when neither is known: no minute is eligible.
pub fn eligible_since(
    service: &Service,
    first_measured: Option<i64>,
    first_configured: Option<Timestamp>,
) -> Option<EligibleSince> {
    if let Some(start) = service.start {
        return Some(EligibleSince {
            minute: ceil_minute(start),
            basis: EligibilityBasis::Start,
        });
    }
    let configured = first_configured.map(ceil_minute);
    match (configured, first_measured) {
        (Some(c), Some(m)) if m < c => Some(EligibleSince {
            minute: m,
            basis: EligibilityBasis::FirstMeasured,
        }),
        (Some(c), _) => Some(EligibleSince {
            minute: c,
            basis: EligibilityBasis::FirstConfigured,
        }),
        (None, Some(m)) => Some(EligibleSince {
            minute: m,
            basis: EligibilityBasis::FirstMeasured,
        }),
        (None, None) => None,
    }
}

impl Calendar {
    /// Compiles the service's schedule. `extra` holds maintenance registered through the
    /// API; `since` is where eligibility begins ([`eligible_since`]; `None`: no minute is
    /// eligible).
    pub fn new(
        service: &Service,
        extra: &[MaintenanceWindow],
        since: Option<EligibleSince>,
    ) -> Result<Calendar, SlaError> {
        let tz = zone(&service.time_zone)?;
        let hours = (!service.service_hours.is_empty())
            .then(|| WeekMask::from_windows(&service.service_hours));
        let all_maintenance = || service.maintenance.iter().chain(extra);
        let weekly: Vec<&WeeklyWindow> = all_maintenance()
            .filter_map(|m| match m {
                MaintenanceWindow::Weekly { window, .. } => Some(window),
                MaintenanceWindow::Once { .. } => None,
            })
            .collect();
        let weekly_maintenance = (!weekly.is_empty()).then(|| WeekMask::from_windows(weekly));
        let week = week_pattern(hours.as_ref(), weekly_maintenance.as_ref());
        let once = union(all_maintenance().filter_map(|m| match m {
            MaintenanceWindow::Once { start, end, .. } => {
                Some((ceil_minute(*start), ceil_minute(*end)))
            }
            MaintenanceWindow::Weekly { .. } => None,
        }));
        let mut holidays: Vec<i64> = service
            .holidays
            .iter()
            .filter_map(|d| epoch_day(*d))
            .collect();
        holidays.sort_unstable();
        holidays.dedup();
        Ok(Calendar {
            tz,
            week,
            holidays,
            once,
            not_before: since.map(|s| s.minute),
            never_eligible: since.is_none(),
        })
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Eligibility of every minute in `[from, to)`: 1 = eligible, 0 = not (outside service
    /// hours, on a holiday, in maintenance, or before eligibility begins).
    pub fn eligible_mask(&self, from: i64, to: i64) -> Vec<u8> {
        let len = usize::try_from(to - from).unwrap_or(0);
        let mut mask = vec![0u8; len];
        if self.never_eligible || len == 0 {
            return mask;
        }
        self.fill_schedule(from, &mut mask);
        for &(a, b) in &self.once {
            clear(&mut mask, from, a, b);
        }
        if let Some(nb) = self.not_before {
            clear(&mut mask, from, i64::MIN, nb);
        }
        mask
    }

    /// Sets service-hours minutes (minus holidays and weekly maintenance), segment by
    /// segment of constant UTC offset.
    fn fill_schedule(&self, from: i64, mask: &mut [u8]) {
        let to = from + mask.len() as i64;
        let mut seg_start = from;
        let mut offset = self.tz.to_offset(ts_of_minute(from));
        let mut transitions = self.tz.following(ts_of_minute(from));
        while seg_start < to {
            let next = transitions.next();
            let (seg_end, next_offset) = match &next {
                Some(t) => (ceil_minute(t.timestamp()).min(to), t.offset()),
                None => (to, offset),
            };
            let off_min = i64::from(offset.seconds()).div_euclid(60);
            self.fill_segment(from, seg_start, seg_end.max(seg_start), off_min, mask);
            if next.is_none() {
                break;
            }
            seg_start = seg_end.max(seg_start);
            offset = next_offset;
        }
    }

    /// Fills `[a, b)` (one UTC offset throughout) day by day: a holiday stays 0, any other
    /// local day copies its slice of the week pattern.
    fn fill_segment(&self, from: i64, a: i64, b: i64, off_min: i64, mask: &mut [u8]) {
        let mut m = a;
        while m < b {
            let local = m + off_min;
            let day = local.div_euclid(DAY);
            let end = (m + DAY - local.rem_euclid(DAY)).min(b);
            let out = &mut mask[(m - from) as usize..(end - from) as usize];
            if self.holidays.binary_search(&day).is_err() {
                match &self.week {
                    None => out.fill(1),
                    Some(week) => {
                        let mow = ((day + 3).rem_euclid(7) * DAY + local.rem_euclid(DAY)) as usize;
                        out.copy_from_slice(&week[mow..mow + out.len()]);
                    }
                }
            }
            m = end;
        }
    }
}

/// The week's eligible minutes: in service hours (all, when none are set) and not in
/// weekly maintenance; `None` when that is every minute.
fn week_pattern(
    hours: Option<&WeekMask>,
    maintenance: Option<&WeekMask>,
) -> Option<Box<[u8; WEEK]>> {
    if hours.is_none() && maintenance.is_none() {
        return None;
    }
    let mut week = Box::new([0u8; WEEK]);
    for (mow, slot) in week.iter_mut().enumerate() {
        let in_hours = hours.is_none_or(|h| h.contains(mow));
        let in_maint = maintenance.is_some_and(|w| w.contains(mow));
        *slot = u8::from(in_hours && !in_maint);
    }
    Some(week)
}

/// The start instant of Unix minute `m` (saturating at the ends of the supported range).
pub fn minute_start(m: i64) -> Timestamp {
    ts_of_minute(m)
}

fn ts_of_minute(m: i64) -> Timestamp {
    Timestamp::from_second(m.saturating_mul(60)).unwrap_or(if m < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Clears minutes `[a, b)` of a mask that starts at minute `from`.
fn clear(mask: &mut [u8], from: i64, a: i64, b: i64) {
    let len = mask.len() as i64;
    let lo = a.saturating_sub(from).clamp(0, len) as usize;
    let hi = b.saturating_sub(from).clamp(0, len) as usize;
    if lo < hi {
        mask[lo..hi].fill(0);
    }
}

/// Union of half-open ranges as disjoint sorted ranges; empty ranges are dropped.
pub fn union(ranges: impl IntoIterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> = ranges.into_iter().filter(|(a, b)| a < b).collect();
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(year: i16, month: i8, zone: &str) -> i64 {
        let m = Month::new(year, month).expect("valid month");
        Period::month(m, zone).expect("known zone").minutes()
    }

    #[test]
    fn month_lengths_with_dst() {
        assert_eq!(minutes(2026, 9, "UTC"), 43_200);
        assert_eq!(minutes(2026, 10, "Europe/Berlin"), 44_700);
        assert_eq!(minutes(2026, 3, "Europe/Berlin"), 44_580);
        assert_eq!(minutes(2026, 11, "America/New_York"), 43_260);
        assert_eq!(minutes(2026, 3, "America/New_York"), 44_580);
        assert_eq!(minutes(2028, 2, "UTC"), 41_760);
        assert_eq!(minutes(2027, 2, "UTC"), 40_320);
    }

    #[test]
    fn period_bounds_are_local_midnight() {
        let p = Period::month(Month::new(2026, 10).unwrap(), "Europe/Berlin").unwrap();
        assert_eq!(p.start.to_string(), "2026-09-30T22:00:00Z");
        assert_eq!(p.end.to_string(), "2026-10-31T23:00:00Z");
        let p = Period::month(Month::new(2026, 12).unwrap(), "UTC").unwrap();
        assert_eq!(p.end.to_string(), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Month::new(2026, 13).is_err());
        assert!(Month::new(2026, 0).is_err());
        assert!(Period::month(Month::new(2026, 1).unwrap(), "Mars/Olympus").is_err());
    }

    #[test]
    fn union_merges_overlaps_and_touching() {
        assert_eq!(
            union([(5, 10), (1, 3), (3, 4), (8, 12), (20, 20)]),
            vec![(1, 4), (5, 12)]
        );
    }

    #[test]
    fn ceil_and_floor_minutes() {
        let t: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        assert_eq!(ceil_minute(t) - floor_minute(t), 1);
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(ceil_minute(t), floor_minute(t));
        let t: Timestamp = "1969-12-31T23:59:30Z".parse().unwrap();
        assert_eq!(floor_minute(t), -1);
        assert_eq!(ceil_minute(t), 0);
    }

    #[test]
    fn overnight_window_wraps_into_next_day() {
        use jiff::civil::{Weekday, time};
        let w = WeeklyWindow {
            days: vec![Weekday::Sunday],
            start: time(22, 0, 0, 0),
            end: Some(time(6, 0, 0, 0)),
        };
        let mask = WeekMask::from_windows([&w]);
        let count = mask.0.iter().filter(|b| **b).count();
        assert_eq!(count, 8 * 60);
        assert!(mask.contains(0), "Monday 00:00 follows Sunday 22:00");
        assert!(mask.contains(6 * 1440 + 22 * 60));
        assert!(!mask.contains(6 * 60));
    }
}
