//! Inline SVG charts for the HTML report: the daily availability bars and the incident
//! timeline. Hand-written, so the output is small, deterministic and testable.
//!
//! Invariants: coordinates are printed with at most one decimal; text is XML-escaped; no
//! external reference (fonts, images, links).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::model::{Day, IncidentRow, TrendRow};

const W: f64 = 680.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The lower bound of the daily chart's availability axis: fixed at 90 %, or the next
/// 10 % step below a lower target, so that charts of different services and months compare
/// at a glance (an axis that follows the data makes an 85 % day look like a missing bar).
/// Days below it are drawn clipped, with their number.
pub fn axis_floor(target: f64) -> f64 {
    let below_target = ((target * 10.0 - 1e-9).floor() / 10.0).max(0.0);
    below_target.min(0.9)
}

/// The axis ticks from the floor to 100 % in five steps.
pub fn axis_ticks(lo: f64) -> Vec<f64> {
    (0..=5)
        .map(|k| lo + (1.0 - lo) * f64::from(k) / 5.0)
        .collect()
}

/// How a day is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// At or above the target.
    Good,
    /// Below the target.
    Bad,
    /// Eligible minutes but none known.
    Unknown,
    /// No eligible minute (outside service hours, a holiday, maintenance, not yet elapsed).
    Ineligible,
}

impl DayKind {
    pub fn of(d: &Day, target: f64) -> DayKind {
        match d.availability {
            _ if d.eligible_minutes == 0 => DayKind::Ineligible,
            None => DayKind::Unknown,
            Some(a) if a >= target => DayKind::Good,
            Some(_) => DayKind::Bad,
        }
    }

    fn colour(self) -> &'static str {
        match self {
            DayKind::Good => "#2e7d32",
            DayKind::Bad => "#c62828",
            DayKind::Unknown => "#9e9e9e",
            DayKind::Ineligible => "#eeeeee",
        }
    }

    fn label(self) -> &'static str {
        match self {
            DayKind::Good => "good (≥ target)",
            DayKind::Bad => "bad (< target)",
            DayKind::Unknown => "unknown",
            DayKind::Ineligible => "ineligible",
        }
    }
}

const TOP: f64 = 22.0;

/// Bars per local day on a fixed axis from [`axis_floor`] to 100 % with labelled ticks,
/// dates (`MM-DD`) every five days, a legend (good, bad, unknown, ineligible) and the target
/// as a dashed line; a day below the floor is a stub at the bottom with its percentage.
pub fn daily_chart(days: &[Day], target: f64) -> String {
    let lo = axis_floor(target);
    let plot_h = H - BOTTOM - TOP;
    let n = days.len().max(1) as f64;
    let bw = (W - LEFT - 4.0) / n;
    let y = |a: f64| TOP + plot_h * (1.0 - ((a - lo) / (1.0 - lo)).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="Daily availability">"#
    );
    axis(&mut s, lo, &y);
    legend(&mut s, target);
    for (i, d) in days.iter().enumerate() {
        bar(&mut s, d, (LEFT + bw * i as f64, bw), (lo, target), &y);
        if i % 5 == 0 || i + 1 == days.len() {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle" fill="#555">{}</text>"##,
                LEFT + bw * i as f64 + bw / 2.0,
                H - 8.0,
                escape(d.date.get(5..).unwrap_or(&d.date))
            );
        }
    }
    let ty = y(target);
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{W}" y2="{ty:.1}" stroke="#1565c0" stroke-dasharray="4 3"/></svg>"##
    );
    s
}

/// Tick lines and labels of the availability axis.
fn axis(s: &mut String, lo: f64, y: &dyn Fn(f64) -> f64) {
    for t in axis_ticks(lo) {
        let ty = y(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{W}" y2="{ty:.1}" stroke="#e0e0e0" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" font-size="8" text-anchor="end" fill="#555">{}</text>"##,
            LEFT - 3.0,
            ty + 3.0,
            fmt_tick(t)
        );
    }
}

/// The legend row above the plot.
fn legend(s: &mut String, target: f64) {
    let mut x = LEFT;
    for k in [
        DayKind::Good,
        DayKind::Bad,
        DayKind::Unknown,
        DayKind::Ineligible,
    ] {
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="4" width="8" height="8" fill="{}" stroke="#9e9e9e" stroke-width="0.5"/><text x="{:.1}" y="11" font-size="8" fill="#555">{}</text>"##,
            k.colour(),
            x + 11.0,
            escape(k.label())
        );
        x += 105.0;
    }
    let _ = write!(
        s,
        r##"<line x1="{x:.1}" y1="8" x2="{:.1}" y2="8" stroke="#1565c0" stroke-dasharray="4 3"/><text x="{:.1}" y="11" font-size="8" fill="#1565c0">target {}</text>"##,
        x + 16.0,
        x + 19.0,
        fmt_pct(target)
    );
}

/// One day's bar: from the floor up to its availability; full height grey (unknown) or
/// light (ineligible) without one; a stub with its number below the floor.
fn bar(
    s: &mut String,
    d: &Day,
    (x, bw): (f64, f64),
    (lo, target): (f64, f64),
    y: &dyn Fn(f64) -> f64,
) {
    let kind = DayKind::of(d, target);
    let title = escape(&format!(
        "{}: {} (bad {} min, unknown {} min, eligible {} min)",
        d.date,
        d.availability_percent
            .as_deref()
            .map_or("n/a".into(), |p| format!("{p} %")),
        d.bad_minutes,
        d.unknown_minutes,
        d.eligible_minutes
    ));
    let base = H - BOTTOM;
    let w = (bw - 2.0).max(0.5);
    let top = match (kind, d.availability) {
        (DayKind::Good | DayKind::Bad, Some(a)) => y(a).min(base - 1.0),
        _ => TOP,
    };
    let below = d.availability.filter(|a| *a < lo);
    let top = if below.is_some() { base - 3.0 } else { top };
    let _ = write!(
        s,
        r#"<rect x="{:.1}" y="{top:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{title}</title></rect>"#,
        x + 1.0,
        (base - top).max(0.5),
        kind.colour()
    );
    if let Some(a) = below {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="7" text-anchor="middle" fill="#c62828">{}</text>"##,
            x + bw / 2.0,
            base - 5.0,
            fmt_short(a)
        );
    }
}

/// A clipped day's availability: `84.5` (percent, rounded down to one decimal).
pub fn fmt_short(a: f64) -> String {
    format!("{:.1}", (a * 1_000.0).floor() / 10.0)
}

/// The months before as bars on the daily chart's fixed axis, one per month with its
/// `MM` label; green at or above the target, red below, grey when nothing was known.
pub fn trend_chart(rows: &[TrendRow], target: f64) -> String {
    const TH: f64 = 90.0;
    let lo = axis_floor(target);
    let plot_h = TH - 30.0;
    let y = |a: f64| 8.0 + plot_h * (1.0 - ((a - lo) / (1.0 - lo)).clamp(0.0, 1.0));
    let bw = ((W - LEFT - 4.0) / 12.0).min(40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {TH}" width="100%" role="img" aria-label="Previous months">"#
    );
    axis(&mut s, lo, &y);
    for (i, r) in rows.iter().enumerate() {
        let x = LEFT + bw * i as f64;
        let (top, colour) = match r.availability {
            Some(a) if a >= target => (y(a), DayKind::Good.colour()),
            Some(a) => (y(a).min(8.0 + plot_h - 3.0), DayKind::Bad.colour()),
            None => (8.0, DayKind::Unknown.colour()),
        };
        let title = escape(&format!(
            "{}: {} ({}, {})",
            r.month,
            r.availability_percent
                .as_deref()
                .map_or("n/a".into(), |p| format!("{p} %")),
            r.verdict.label(),
            r.source
        ));
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{title}</title></rect><text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle" fill="#555">{}</text>"##,
            x + 2.0,
            (bw - 4.0).max(0.5),
            (8.0 + plot_h - top).max(0.5),
            x + bw / 2.0,
            TH - 10.0,
            escape(&r.month)
        );
    }
    let ty = y(target);
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{W}" y2="{ty:.1}" stroke="#1565c0" stroke-dasharray="4 3"/></svg>"##
    );
    s
}

/// A tick label: `92 %`.
pub fn fmt_tick(t: f64) -> String {
    format!("{:.0} %", t * 100.0)
}

fn fmt_pct(a: f64) -> String {
    format!("{:.2} %", (a * 10_000.0).floor() / 100.0)
}

/// The month as a bar with each incident's eligible segments as red marks at their
/// position (ineligible time inside a merged incident — an evening, a weekend, maintenance —
/// is not drawn), and local dates of the service's zone on the axis every seven days.
pub fn incident_timeline(
    (start, end): (Timestamp, Timestamp),
    zone: &str,
    days: &[Day],
    incidents: &[IncidentRow],
) -> String {
    let (a, b) = (start.as_second() as f64, end.as_second() as f64);
    let span = (b - a).max(1.0);
    let x = |t: Timestamp| {
        LEFT + (W - LEFT - 4.0) * ((t.as_second() as f64 - a) / span).clamp(0.0, 1.0)
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} 44" width="100%" role="img" aria-label="Incident timeline"><rect x="{LEFT}" y="12" width="{:.1}" height="14" fill="#e8f5e9" stroke="#9e9e9e" stroke-width="0.5"/>"##,
        W - LEFT - 4.0
    );
    for i in incidents {
        let title = escape(&format!(
            "{} – {} ({} min)",
            super::model::local_time(i.start, zone),
            super::model::local_time(i.end, zone),
            i.downtime_minutes
        ));
        for (t1, t2) in segments(i) {
            let (x1, x2) = (x(t1), x(t2));
            let _ = write!(
                s,
                r##"<rect x="{x1:.1}" y="10" width="{:.1}" height="18" fill="#c62828"><title>{title}</title></rect>"##,
                (x2 - x1).max(1.5)
            );
        }
    }
    for d in days.iter().step_by(7) {
        let tx = x(d.start);
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="26" x2="{tx:.1}" y2="30" stroke="#555" stroke-width="0.5"/><text x="{tx:.1}" y="39" font-size="9" text-anchor="middle" fill="#555">{}</text>"##,
            escape(d.date.get(5..).unwrap_or(&d.date))
        );
    }
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="8" font-size="8" fill="#555">local dates, {}</text></svg>"##,
        escape(zone)
    );
    s
}

/// The eligible segments of an incident; the whole incident for a report without them.
fn segments(i: &IncidentRow) -> Vec<(Timestamp, Timestamp)> {
    let parsed: Vec<(Timestamp, Timestamp)> = i
        .eligible_segments
        .iter()
        .filter_map(|seg| {
            let (a, b) = seg.split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    if parsed.is_empty() {
        vec![(i.start, i.end)]
    } else {
        parsed
    }
}
