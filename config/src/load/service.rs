//! `[[service]]` tables: what is measured, the target, and the calendar that decides
//! which minutes count (zone, service hours, holidays, maintenance, start).
//!
//! Invariants:
//! - Zones exist in the bundled tz database; weekly windows have `start < end`
//!   (`end = None` meaning 24:00); one-off maintenance has `end > start`.
//! - Instants are given with an explicit offset: a local time is ambiguous until the zone
//!   is applied, and the store holds UTC.

use jiff::Timestamp;
use jiff::civil::Date;
use toml::de::DeValue;

use super::values;
use super::walk::{Ctx, Section, Val};
use crate::model::{
    LatencyObjective, MaintenanceWindow, Quorum, Service, ServiceInfo, WeeklyWindow,
};

pub const DEFAULT_TIME_ZONE: &str = "UTC";
pub const DEFAULT_MIN_REPORTERS: u32 = 1;

const KEYS: &[&str] = &[
    "name",
    "checks",
    "target",
    "time_zone",
    "quorum",
    "min_reporters",
    "min_coverage",
    "service_hours",
    "holidays",
    "maintenance",
    "latency",
    "start",
    "hosts",
    "hosts_match",
    "capacity",
    "description",
    "owner",
    "customer",
    "agreement",
];

/// Longest `description`; the other [`ServiceInfo`] keys are names and references.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_NAME_CHARS: usize = 200;

pub(crate) fn service(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Service> {
    ctx.deny_unknown(sec, KEYS);
    let name = ctx.required_parsed(
        sec,
        "name",
        "a unique service name like \"webshop\"",
        service_name,
    );
    let checks = checks(ctx, sec);
    let target = ctx.required_parsed(
        sec,
        "target",
        "the availability target like \"99.9%\"",
        values::positive_percent,
    );
    let time_zone = ctx
        .parsed(sec, "time_zone", values::time_zone)
        .unwrap_or_else(|| DEFAULT_TIME_ZONE.to_string());
    let quorum = quorum(ctx, sec);
    let min_reporters = ctx
        .u32(sec, "min_reporters", 1, 10_000)
        .unwrap_or(DEFAULT_MIN_REPORTERS);
    let min_coverage = ctx.parsed(sec, "min_coverage", values::positive_percent);
    let service_hours = windows(ctx, sec);
    let holidays = holidays(ctx, sec);
    let maintenance = maintenance(ctx, sec);
    let latency = latency(ctx, sec);
    let start = sec
        .get("start")
        .and_then(|v| timestamp(ctx, v, &sec.key_path("start"), ""));
    let hosts = super::capacity::hosts(ctx, sec);
    let capacity = super::capacity::objectives(ctx, sec);
    let info = info(ctx, sec);
    Some(Service {
        name: name?,
        checks: checks?,
        target: target?,
        time_zone,
        quorum: quorum?,
        min_reporters,
        min_coverage,
        service_hours: service_hours?,
        holidays: holidays?,
        maintenance: maintenance?,
        latency: latency?,
        start,
        hosts: hosts?,
        capacity: capacity?,
        info,
    })
}

/// `description`, `owner`, `customer`, `agreement`: optional one-line texts printed on
/// the report (a line break or tab would break its tables and the CSV's one-row-per-service).
fn info(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> ServiceInfo {
    let mut text = |key: &str, max: usize| ctx.parsed(sec, key, |s| one_line(s, max));
    ServiceInfo {
        description: text("description", MAX_DESCRIPTION_CHARS),
        owner: text("owner", MAX_NAME_CHARS),
        customer: text("customer", MAX_NAME_CHARS),
        agreement: text("agreement", MAX_NAME_CHARS),
    }
}

pub(crate) fn one_line(s: &str, max: usize) -> Result<String, String> {
    let ok = !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control);
    if ok {
        Ok(s.trim().to_string())
    } else {
        Err(format!(
            "a non-empty text of at most {max} characters on one line (no control characters)"
        ))
    }
}

fn service_name(s: &str) -> Result<String, String> {
    let ok = !s.trim().is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control);
    if ok {
        Ok(s.to_string())
    } else {
        Err("a non-empty name of at most 128 characters without control characters".into())
    }
}

/// The check ids measuring the service: at least one, each once.
fn checks(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<String>> {
    let Some(v) = sec.get("checks") else {
        ctx.missing(
            sec,
            "checks",
            "the ids of the checks that measure this service",
        );
        return None;
    };
    let path = sec.key_path("checks");
    let items = ctx.array(v, &path, "an array of check ids like [\"web-home\"]")?;
    if items.is_empty() {
        ctx.expected(v, &path, "at least one check id");
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match ctx.parsed_value(item, &p, values::ident) {
            Some(id) if out.contains(&id) => {
                ctx.error(item.span(), &p, format!("check {id:?} is listed twice"));
                ok = false;
            }
            Some(id) => out.push(id),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn quorum(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Quorum> {
    const EXPECT: &str = "\"any\", \"majority\", \"all\" or { at_least = N }";
    let Some(v) = sec.get("quorum") else {
        return Some(Quorum::Majority);
    };
    let path = sec.key_path("quorum");
    match v.get_ref() {
        DeValue::String(s) => match s.as_ref() {
            "any" => Some(Quorum::Any),
            "majority" => Some(Quorum::Majority),
            "all" => Some(Quorum::All),
            _ => {
                ctx.expected(v, &path, EXPECT);
                None
            }
        },
        DeValue::Table(_) => {
            let q = ctx.as_section(v, path, "quorum".to_string())?;
            ctx.deny_unknown(&q, &["at_least"]);
            let n = match q.get("at_least") {
                Some(n) => ctx.int_value(n, &q.key_path("at_least"), 1, u64::from(u32::MAX)),
                None => {
                    ctx.missing(
                        &q,
                        "at_least",
                        "the number of failing agents that makes a minute bad",
                    );
                    None
                }
            };
            n.and_then(|n| u32::try_from(n).ok()).map(Quorum::AtLeast)
        }
        _ => {
            ctx.expected(v, &path, EXPECT);
            None
        }
    }
}

/// `days`: `"mon-fri"`, or an array of such strings.
fn days(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<jiff::civil::Weekday>> {
    let Some(v) = sec.get("days") else {
        ctx.missing(sec, "days", "like \"mon-fri\" or [\"sat\", \"sun\"]");
        return None;
    };
    let path = sec.key_path("days");
    if let DeValue::Array(items) = v.get_ref() {
        let mut all = Vec::new();
        let mut ok = !items.is_empty();
        if items.is_empty() {
            ctx.expected(v, &path, "at least one day");
        }
        for (i, item) in items.iter().enumerate() {
            match ctx.parsed_value(item, &format!("{path}[{i}]"), values::weekdays) {
                Some(d) => all.extend(d),
                None => ok = false,
            }
        }
        all.sort_by_key(|d| d.to_monday_zero_offset());
        all.dedup();
        return ok.then_some(all);
    }
    ctx.parsed_value(v, &path, values::weekdays)
}

/// A weekly window `{ days, start, end }` (maintenance adds `reason`).
fn weekly(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<WeeklyWindow> {
    let days = days(ctx, sec);
    let start = ctx.required_parsed(
        sec,
        "start",
        "the local start time like \"08:00\"",
        values::time_of_day,
    );
    let end = ctx.required_parsed(
        sec,
        "end",
        "the local end time like \"18:00\" or \"24:00\"",
        values::end_of_window,
    );
    let (start, end) = (start?, end?);
    if let Some(e) = end
        && e <= start
    {
        let what = format!(
            "a time after start \"{}\" (\"24:00\" for midnight; split windows that cross midnight)",
            start.strftime("%H:%M")
        );
        if let Some(v) = sec.get("end") {
            ctx.expected(v, &sec.key_path("end"), &what);
        }
        return None;
    }
    Some(WeeklyWindow {
        days: days?,
        start,
        end,
    })
}

fn windows(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<WeeklyWindow>> {
    let mut out = Vec::new();
    let mut ok = true;
    for w in ctx.tables(sec, "service_hours", "service_hours") {
        ctx.deny_unknown(&w, &["days", "start", "end"]);
        match weekly(ctx, &w) {
            Some(w) => out.push(w),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn holidays(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<Date>> {
    const EXPECT: &str = "a date like 2026-12-25";
    let Some(v) = sec.get("holidays") else {
        return Some(Vec::new());
    };
    let path = sec.key_path("holidays");
    let items = ctx.array(v, &path, "an array of dates like [2026-12-25, 2026-12-26]")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let date = match item.get_ref() {
            DeValue::Datetime(d) if d.time.is_none() && d.offset.is_none() => {
                d.date.and_then(|d| {
                    Date::new(
                        i16::try_from(d.year).ok()?,
                        i8::try_from(d.month).ok()?,
                        i8::try_from(d.day).ok()?,
                    )
                    .ok()
                })
            }
            DeValue::String(_) => {
                ok &= ctx
                    .parsed_value(item, &p, values::date)
                    .map(|d| out.push(d))
                    .is_some();
                continue;
            }
            _ => None,
        };
        match date {
            Some(d) => out.push(d),
            None => {
                ctx.expected(item, &p, EXPECT);
                ok = false;
            }
        }
    }
    out.sort();
    out.dedup();
    ok.then_some(out)
}

/// An instant: a TOML offset date-time or an RFC 3339 string. `hint` is appended to the
/// expectation (e.g. how to write a weekly window instead).
fn timestamp(ctx: &mut Ctx<'_>, v: &Val<'_>, path: &str, hint: &str) -> Option<Timestamp> {
    let what = format!("{}{hint}", values::timestamp("").err().unwrap_or_default());
    let text = match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Datetime(d) if d.offset.is_some() => d.to_string(),
        _ => String::new(),
    };
    match values::timestamp(&text) {
        Ok(t) => Some(t),
        Err(_) => {
            ctx.expected(v, path, &what);
            None
        }
    }
}

fn maintenance(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<MaintenanceWindow>> {
    let mut out = Vec::new();
    let mut ok = true;
    for m in ctx.tables(sec, "maintenance", "maintenance") {
        let window = if m.get("days").is_some() {
            weekly_maintenance(ctx, &m)
        } else {
            once_maintenance(ctx, &m)
        };
        match window {
            Some(w) => out.push(w),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn reason(ctx: &mut Ctx<'_>, m: &Section<'_, '_>) -> Option<String> {
    ctx.required_parsed(
        m,
        "reason",
        "why the window exists; it is printed in reports",
        |s| {
            if s.trim().is_empty() {
                Err("a non-empty reason".to_string())
            } else {
                Ok(s.to_string())
            }
        },
    )
}

fn weekly_maintenance(ctx: &mut Ctx<'_>, m: &Section<'_, '_>) -> Option<MaintenanceWindow> {
    ctx.deny_unknown(m, &["days", "start", "end", "reason"]);
    let window = weekly(ctx, m);
    let reason = reason(ctx, m);
    Some(MaintenanceWindow::Weekly {
        window: window?,
        reason: reason?,
    })
}

fn once_maintenance(ctx: &mut Ctx<'_>, m: &Section<'_, '_>) -> Option<MaintenanceWindow> {
    const HINT: &str = " (or add \"days\" for a weekly window)";
    ctx.deny_unknown(m, &["start", "end", "reason", "days"]);
    let instant = |ctx: &mut Ctx<'_>, key: &str| match m.get(key) {
        Some(v) => timestamp(ctx, v, &m.key_path(key), HINT),
        None => {
            ctx.missing(m, key, "an RFC 3339 date-time with offset");
            None
        }
    };
    let start = instant(ctx, "start");
    let end = instant(ctx, "end");
    let reason = reason(ctx, m);
    let (start, end) = (start?, end?);
    if end <= start {
        if let Some(v) = m.get("end") {
            ctx.expected(
                v,
                &m.key_path("end"),
                &format!("an instant after start ({start})"),
            );
        }
        return None;
    }
    Some(MaintenanceWindow::Once {
        start,
        end,
        reason: reason?,
    })
}

fn latency(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Option<LatencyObjective>> {
    if sec.get("latency").is_none() {
        return Some(None);
    }
    let l = ctx.table(sec, "latency", "latency")?;
    ctx.deny_unknown(&l, &["threshold", "target"]);
    let threshold = ctx.required_parsed(
        &l,
        "threshold",
        "the duration a probe must not exceed, like \"500ms\"",
        values::positive_duration,
    );
    let target = ctx.required_parsed(
        &l,
        "target",
        "the share of probes within the threshold, like \"95%\"",
        values::positive_percent,
    );
    Some(Some(LatencyObjective {
        threshold: threshold?,
        target: target?,
    }))
}
