//! The status page's HTML: one self-contained document (inline CSS and SVG, no script, no
//! external reference), readable from a 390 px phone to a desktop, reloading itself.
//!
//! Invariants:
//! - Every text from configuration or data (service names, failure reasons) is escaped;
//!   links percent-encode the service name.
//! - The overview draws each service's 90 days as runs of equal bars (one SVG rectangle
//!   and one tooltip per run), so a page of 1,000 services stays small; the one-service
//!   page draws one rectangle and tooltip per day.

use std::fmt::Write;

use jiff::Timestamp;

use super::{Bar, Board, DayClass, RELOAD_SECONDS, Row, State};
// The reports' HTML escaping: one rule for every page the collector renders.
use crate::report::monthly::svg::escape as esc;

/// Width of one day in the SVG's user units (the bar is one less: a gap between days).
const STEP: usize = 5;
const BAR_HEIGHT: usize = 32;
const HEIGHT: usize = 40;

const CSS: &str = "\
:root{--up:#1f8a43;--deg:#d99a00;--down:#cf3a32;--mnt:#2f6fd0;--unk:#8d939a;--nc:#e3e6ea;--ink:#1d2328;--mute:#5c656e;--card:#fff;--bg:#f4f6f8}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--ink);font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}\
header{padding-top:1.2rem}\
h1{font-size:1.5rem;margin:.2rem 0 .6rem}\
h2{font-size:1.1rem;margin:0;overflow-wrap:anywhere}\
h2 a{color:inherit;text-decoration:none}\
h2 a:hover{text-decoration:underline}\
.summary{margin:0 0 .4rem;padding:.7rem 1rem;border-radius:.5rem;color:#fff;font-weight:600}\
.meta{color:var(--mute);font-size:.85rem;margin:.2rem 0 1rem}\
.svc{background:var(--card);border-radius:.6rem;padding:.9rem 1rem .8rem;margin:0 0 .9rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}\
.head{display:flex;justify-content:space-between;align-items:center;gap:.6rem}\
.pill{flex:none;color:#fff;border-radius:1rem;padding:.1rem .7rem;font-size:.85rem;font-weight:600}\
.why{color:var(--mute);font-size:.85rem;margin:.2rem 0 .5rem}\
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(13rem,1fr));gap:.3rem 1rem;margin:0 0 .6rem}\
.figs div{min-width:0}\
.figs dt{color:var(--mute);font-size:.8rem}\
.figs dd{margin:0;font-weight:600;overflow-wrap:anywhere}\
.tgt{color:var(--mute);font-weight:400;font-size:.85rem}\
.miss{color:var(--down)}\
svg.bars{display:block;width:100%;height:2.6rem}\
.axis{display:flex;justify-content:space-between;color:var(--mute);font-size:.75rem}\
.s-up{background:var(--up)}.s-degraded{background:var(--deg)}.s-down{background:var(--down)}.s-maintenance{background:var(--mnt)}.s-unknown{background:var(--unk)}\
.g{fill:var(--up)}.d{fill:var(--deg)}.b{fill:var(--down)}.u{fill:var(--unk)}.m{fill:var(--mnt)}.n{fill:var(--nc)}.p{fill:none;stroke:var(--unk);stroke-dasharray:2 2;stroke-width:.6}.k{fill:var(--mnt)}\
.gaps{fill:var(--card)}\
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;margin:.4rem 0;list-style:none;font-size:.8rem;color:var(--mute)}\
.legend svg{width:.8rem;height:.8rem;vertical-align:-.1rem;margin-right:.3rem}\
table{border-collapse:collapse;width:100%;font-size:.85rem}\
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid var(--nc)}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
.wrap{overflow-x:auto}\
footer{color:var(--mute);font-size:.8rem;padding-bottom:1.5rem}\
footer a{color:inherit}\
";

/// The overview of every row.
pub fn overview(board: &Board) -> String {
    let mut out = String::with_capacity(2_048 + board.rows.len() * 1_200);
    head(&mut out, &board.title, board);
    summary(&mut out, board);
    out.push_str("</header>\n<main>\n");
    for row in &board.rows {
        card(&mut out, row, true);
    }
    out.push_str("</main>\n");
    footer(&mut out, false);
    out
}

/// The page of one service (the board holds exactly one row).
pub fn one(board: &Board) -> String {
    let mut out = String::with_capacity(24_576);
    let name = board.rows.first().map_or("", |r| r.name.as_str());
    head(&mut out, &format!("{name} · {}", board.title), board);
    out.push_str("</header>\n<main>\n");
    for row in &board.rows {
        card(&mut out, row, false);
        incidents(&mut out, row);
        notable_days(&mut out, row);
    }
    out.push_str("</main>\n");
    footer(&mut out, true);
    out
}

fn head(out: &mut String, title: &str, board: &Board) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{RELOAD_SECONDS}\">\
         <title>{}</title><style>{CSS}</style></head><body>\n\
         <svg width=\"0\" height=\"0\" style=\"position:absolute\" aria-hidden=\"true\"><defs>\
         <pattern id=\"gaps\" width=\"{STEP}\" height=\"{HEIGHT}\" patternUnits=\"userSpaceOnUse\">\
         <rect class=\"gaps\" x=\"{}\" width=\"1\" height=\"{HEIGHT}\"/></pattern></defs></svg>\n\
         <header><h1>{}</h1>\n",
        esc(title),
        STEP - 1,
        esc(&board.title),
    );
    let computed = board.computed_at.map_or_else(
        || "not yet computed".to_string(),
        |t| format!("as of {}", time(t)),
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">Figures {computed} · this page reloads every minute · days are local days of each service's time zone</p>"
    );
}

fn summary(out: &mut String, board: &Board) {
    let count = |s: State| board.rows.iter().filter(|r| r.state == s).count();
    let order = [
        State::Down,
        State::Degraded,
        State::Unknown,
        State::Maintenance,
        State::Up,
    ];
    let worst = order
        .iter()
        .copied()
        .find(|&s| count(s) > 0)
        .unwrap_or(State::Up);
    let text = if board.rows.is_empty() {
        "No services to show".to_string()
    } else if count(State::Up) == board.rows.len() {
        format!("All {} services up", board.rows.len())
    } else {
        let parts: Vec<String> = order
            .iter()
            .filter(|&&s| count(s) > 0)
            .map(|&s| format!("{} {}", count(s), s.word()))
            .collect();
        format!("{} of {} services", parts.join(", "), board.rows.len())
    };
    let _ = writeln!(
        out,
        "<p class=\"summary s-{}\" role=\"status\">{}</p>",
        worst.word(),
        esc(&text)
    );
}

fn card(out: &mut String, row: &Row, linked: bool) {
    out.push_str("<section class=\"svc\">\n<div class=\"head\"><h2>");
    if linked {
        let _ = write!(
            out,
            "<a href=\"/status/{}\">{}</a>",
            url_segment(&row.name),
            esc(&row.name)
        );
    } else {
        out.push_str(&esc(&row.name));
    }
    let _ = writeln!(
        out,
        "</h2><span class=\"pill s-{w}\">{w}</span></div>\n<p class=\"why\">{}</p>",
        esc(&row.why),
        w = row.state.word()
    );
    out.push_str("<dl class=\"figs\">");
    let month = row.month.as_deref().unwrap_or("this month");
    let availability = match (&row.availability, row.compliant) {
        (Some(a), Some(false)) => format!("<span class=\"miss\">{a} %</span>"),
        (Some(a), _) => format!("{a} %"),
        (None, _) => "n/a".to_string(),
    };
    let _ = write!(
        out,
        "<div><dt>Availability {month}</dt><dd>{availability} <span class=\"tgt\">target {}</span></dd></div>",
        target(row)
    );
    let _ = write!(
        out,
        "<div><dt>Error budget left this month</dt><dd>{}</dd></div>",
        budget(row.budget)
    );
    let incident = match &row.incident {
        None => "none".to_string(),
        Some(i) => {
            let reason = i
                .reason
                .as_deref()
                .map(|r| format!(", {}", esc(r)))
                .unwrap_or_default();
            format!(
                "<span class=\"miss\">since {}</span> ({} min down{reason})",
                time(i.start),
                i.downtime_minutes
            )
        }
    };
    let _ = writeln!(
        out,
        "<div><dt>Open incident</dt><dd>{incident}</dd></div></dl>"
    );
    bars(out, &row.bars, !linked);
    out.push_str(
        "<div class=\"axis\"><span>90 days ago</span><span>today</span></div>\n</section>\n",
    );
}

fn target(row: &Row) -> String {
    format!("{} %", row.target.to_string().trim_end_matches('%'))
}

fn budget(b: Option<(f64, f64)>) -> String {
    match b {
        None => "n/a".into(),
        Some((_, allowed)) if allowed <= 0.0 => "none (a 100 % target allows no bad minute)".into(),
        Some((left, allowed)) if left < 0.0 => format!(
            "<span class=\"miss\">overspent by {:.1} min</span> <span class=\"tgt\">of {allowed:.1} min</span>",
            -left
        ),
        Some((left, allowed)) => format!(
            "{left:.1} min <span class=\"tgt\">of {allowed:.1} min ({:.0} %)</span>",
            (left / allowed * 100.0).floor()
        ),
    }
}

/// The bars as one SVG; `per_day`: a rectangle and tooltip per day, else one per run.
fn bars(out: &mut String, bars: &[Bar], per_day: bool) {
    let width = bars.len().max(1) * STEP;
    let mut counts = [0usize; 7];
    for b in bars {
        counts[class_index(b.class)] += 1;
    }
    let described: Vec<String> = ALL
        .iter()
        .filter(|c| counts[class_index(**c)] > 0)
        .map(|c| format!("{} {}", counts[class_index(*c)], c.label()))
        .collect();
    let _ = write!(
        out,
        "<svg class=\"bars\" viewBox=\"0 0 {width} {HEIGHT}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"last {} days: {}\">",
        bars.len(),
        esc(&described.join(", "))
    );
    let mut i = 0;
    while i < bars.len() {
        let mut j = i + 1;
        if !per_day {
            while j < bars.len() && same_run(&bars[i], &bars[j]) {
                j += 1;
            }
        }
        let x = i * STEP;
        let w = (j - i) * STEP - 1;
        let _ = write!(
            out,
            "<rect x=\"{x}\" width=\"{w}\" height=\"{BAR_HEIGHT}\" class=\"{}\"><title>{}</title></rect>",
            bars[i].class.css(),
            esc(&tooltip(&bars[i..j]))
        );
        i = j;
    }
    // The gaps between days, then a marker under each day that had maintenance.
    let _ = write!(
        out,
        "<rect width=\"{width}\" height=\"{BAR_HEIGHT}\" fill=\"url(#gaps)\"/>"
    );
    for (i, b) in bars.iter().enumerate() {
        if b.maintenance > 0 {
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"k\"><title>{}: {} min maintenance</title></rect>",
                i * STEP,
                BAR_HEIGHT + 3,
                STEP - 1,
                HEIGHT - BAR_HEIGHT - 3,
                b.date,
                b.maintenance
            );
        }
    }
    out.push_str("</svg>\n");
}

const ALL: [DayClass; 7] = [
    DayClass::Good,
    DayClass::Degraded,
    DayClass::Bad,
    DayClass::Unknown,
    DayClass::Maintenance,
    DayClass::NotCounted,
    DayClass::Pending,
];

fn class_index(c: DayClass) -> usize {
    ALL.iter().position(|&a| a == c).unwrap_or(0)
}

/// Days drawn as one run in the overview: same class, and nothing a tooltip of its own
/// would tell (a day with bad or unknown minutes keeps its own bar).
fn same_run(a: &Bar, b: &Bar) -> bool {
    a.class == b.class
        && matches!(
            a.class,
            DayClass::Good | DayClass::NotCounted | DayClass::Pending | DayClass::Maintenance
        )
        && a.unknown == 0
        && b.unknown == 0
}

fn tooltip(run: &[Bar]) -> String {
    let (first, last) = (&run[0], &run[run.len() - 1]);
    if run.len() > 1 {
        return format!(
            "{} – {} ({} days): {}",
            first.date,
            last.date,
            run.len(),
            first.class.label()
        );
    }
    let b = first;
    let mut t = format!("{}: {}", b.date, b.class.label());
    if let Some(a) = &b.availability {
        let _ = write!(t, ", {a} % ({} good, {} bad min)", b.good, b.bad);
    }
    if b.unknown > 0 {
        let _ = write!(t, ", {} min unknown", b.unknown);
    }
    if b.maintenance > 0 {
        let _ = write!(t, ", {} min maintenance", b.maintenance);
    }
    t
}

fn incidents(out: &mut String, row: &Row) {
    let month = row.month.as_deref().unwrap_or("this month");
    let _ = write!(out, "<section class=\"svc\"><h2>Incidents {month}</h2>");
    if row.incidents.is_empty() {
        out.push_str("<p class=\"why\">None.</p></section>\n");
        return;
    }
    out.push_str(
        "<div class=\"wrap\"><table><thead><tr><th>start</th><th>end</th><th>down (min)</th><th>reason</th></tr></thead><tbody>",
    );
    for i in row.incidents.iter().rev() {
        let end = if i.open_at_end {
            "ongoing".to_string()
        } else {
            time(i.end)
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{end}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            time(i.start),
            i.downtime_minutes,
            esc(i.reason.as_deref().unwrap_or("—"))
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

/// The days of the window that were not simply good, newest first.
fn notable_days(out: &mut String, row: &Row) {
    let notable: Vec<&Bar> = row
        .bars
        .iter()
        .rev()
        .filter(|b| {
            matches!(
                b.class,
                DayClass::Degraded | DayClass::Bad | DayClass::Unknown | DayClass::Maintenance
            ) || b.unknown > 0
                || b.maintenance > 0
        })
        .collect();
    out.push_str("<section class=\"svc\"><h2>Days with bad, unknown or maintenance minutes</h2>");
    if notable.is_empty() {
        out.push_str("<p class=\"why\">None in the last 90 days.</p></section>\n");
        return;
    }
    out.push_str(
        "<div class=\"wrap\"><table><thead><tr><th>day</th><th>verdict</th><th>availability</th><th>bad</th><th>unknown</th><th>maintenance</th></tr></thead><tbody>",
    );
    for b in notable {
        let a = b
            .availability
            .as_deref()
            .map_or_else(|| "n/a".to_string(), |a| format!("{a} %"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{a}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            b.date,
            b.class.label(),
            b.bad,
            b.unknown,
            b.maintenance
        );
    }
    out.push_str("</tbody></table></div><p class=\"why\">Minutes; bad and unknown count only eligible minutes (service hours, outside maintenance).</p></section>\n");
}

fn footer(out: &mut String, back: bool) {
    out.push_str("<footer><ul class=\"legend\">");
    for c in ALL {
        let _ = write!(
            out,
            "<li><svg viewBox=\"0 0 4 4\" aria-hidden=\"true\"><rect width=\"4\" height=\"4\" class=\"{}\"/></svg>{}</li>",
            c.css(),
            c.label()
        );
    }
    out.push_str("<li><svg viewBox=\"0 0 4 4\" aria-hidden=\"true\"><rect y=\"2\" width=\"4\" height=\"2\" class=\"k\"/></svg>maintenance that day</li></ul>");
    out.push_str(
        "<p>State: the engine's verdicts of the last 5 minutes (up: none bad; degraded: some bad; down: all bad; unknown: none known). \
         Availability and budget: the calendar month so far in the service's time zone, as in the monthly reports. Today's bar covers today so far.</p>",
    );
    if back {
        out.push_str("<p><a href=\"/status\">All services</a></p>");
    }
    out.push_str("</footer>\n</body></html>\n");
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// A path segment: every byte but the unreserved ones percent-encoded.
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
