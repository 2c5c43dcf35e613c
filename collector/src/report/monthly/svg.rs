//! Inline SVG charts for the HTML report: the daily availability bars and the incident
//! timeline. Hand-written, so the output is small, deterministic and testable.
//!
//! Invariants: coordinates are printed with at most one decimal; text is XML-escaped; no
//! external reference (fonts, images, links).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::model::{Day, IncidentRow};

const W: f64 = 680.0;
const H: f64 = 160.0;
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

/// The lower bound of a daily chart's availability axis: half a percent below the lower of
/// the lowest day and the target minus four times its budget, so that every bar, the target
/// line and a breach are visible.
pub fn axis_floor(target: f64, days: impl IntoIterator<Item = Option<f64>>) -> f64 {
    let lowest = days.into_iter().flatten().fold(1.0f64, f64::min);
    let lo = (target - (1.0 - target) * 4.0).min(lowest);
    ((lo * 200.0 - 1.0).floor() / 200.0).clamp(0.0, 0.995)
}

/// Bars per local day: height = availability between the axis floor and 100 %; days with
/// nothing known are drawn as a grey hatch; the target is a dashed line.
pub fn daily_chart(days: &[Day], target: f64) -> String {
    let lo = axis_floor(target, days.iter().map(|d| d.availability));
    let plot_h = H - BOTTOM - 8.0;
    let n = days.len().max(1) as f64;
    let bw = (W - LEFT - 4.0) / n;
    let y = |a: f64| 8.0 + plot_h * (1.0 - ((a - lo) / (1.0 - lo)).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="Daily availability">"#
    );
    for (label, a) in [(fmt_pct(1.0), 1.0), (fmt_pct(lo), lo)] {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="end" fill="#555">{label}</text>"##,
            LEFT - 3.0,
            y(a) + 3.0
        );
    }
    for (i, d) in days.iter().enumerate() {
        let x = LEFT + bw * i as f64;
        let title = escape(&format!(
            "{}: {} (bad {} min, unknown {} min)",
            d.date,
            d.availability_percent
                .as_deref()
                .map_or("n/a".into(), |p| format!("{p} %")),
            d.bad_minutes,
            d.unknown_minutes
        ));
        match d.availability {
            Some(a) => {
                let color = if a >= target { "#2e7d32" } else { "#c62828" };
                let top = y(a).min(H - BOTTOM - 1.0);
                let _ = write!(
                    s,
                    r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{title}</title></rect>"#,
                    x + 1.0,
                    (bw - 2.0).max(0.5),
                    (H - BOTTOM - top).max(0.5)
                );
            }
            None => {
                let _ = write!(
                    s,
                    r##"<rect x="{:.1}" y="8" width="{:.1}" height="{plot_h:.1}" fill="#ddd"><title>{title}</title></rect>"##,
                    x + 1.0,
                    (bw - 2.0).max(0.5)
                );
            }
        }
        if i % 5 == 0 || i + 1 == days.len() {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="#555">{}</text>"##,
                x + bw / 2.0,
                H - 8.0,
                escape(d.date.get(8..).unwrap_or(&d.date))
            );
        }
    }
    let ty = y(target);
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{W}" y2="{ty:.1}" stroke="#1565c0" stroke-dasharray="4 3"/><text x="{W}" y="7" font-size="8" text-anchor="end" fill="#1565c0">- - target {}</text></svg>"##,
        fmt_pct(target)
    );
    s
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
