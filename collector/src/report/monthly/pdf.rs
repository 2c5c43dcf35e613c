//! The PDF renderer: A4 pages laid out line by line with krilla, text in the bundled DejaVu
//! Sans (subset and embedded by krilla, with a ToUnicode map so the text is searchable and
//! `pdftotext` extracts it), bars drawn as rectangles.
//!
//! Invariants:
//! - Renders [`MonthlyReport`] only; reads no clock (the PDF creation date is the report's
//!   generation instant) and no file, so the same report gives the same bytes.
//! - Every figure is printed as the model formats it (percentages rounded down).

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};

use super::model::{MaintenanceRow, MonthlyReport, ServiceSection, SummaryRow};
use super::text::{
    FIGURES_HEAD, SummaryCells, VERDICT_HEAD, definition_lines, evidence_cells, fmt_num,
    fmt_opt_pct, fmt_ratio, fmt_secs, incident_cells, note_cells, redundancy_lines, terms_rows,
    unknown_cells,
};

static REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 42.0;
const BOTTOM: f32 = PAGE_H - 48.0;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the bundled font could not be loaded")]
    Font,
    #[error("PDF serialisation failed: {0}")]
    Write(String),
}

/// One styled line of text, or a bar row, queued for the current page.
enum Item {
    Text {
        x: f32,
        size: f32,
        bold: bool,
        text: String,
    },
    Rule,
    Bars {
        values: Vec<Option<f64>>,
        target: f64,
    },
}

/// Glyph advances of the two bundled faces, parsed once.
struct Faces {
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
}

fn faces() -> Option<&'static Faces> {
    static F: std::sync::OnceLock<Option<Faces>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        Some(Faces {
            regular: ttf_parser::Face::parse(REGULAR, 0).ok()?,
            bold: ttf_parser::Face::parse(BOLD, 0).ok()?,
        })
    })
    .as_ref()
}

/// The width of `text` set in the bundled font at `size` points.
pub fn text_width(text: &str, size: f32, bold: bool) -> f32 {
    let Some(f) = faces() else {
        // Wider than any glyph of the font: wraps early rather than overflowing.
        return text.chars().count() as f32 * size;
    };
    let face = if bold { &f.bold } else { &f.regular };
    let em = f32::from(face.units_per_em());
    let units: f32 = text
        .chars()
        .map(|c| {
            face.glyph_index(c)
                .and_then(|g| face.glyph_hor_advance(g))
                .map_or(em, f32::from)
        })
        .sum();
    units / em * size
}

/// Lines of `text` no wider than `width` points; a word wider than a line (a digest) is
/// cut between characters.
pub fn wrap_width(text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
    let fits = |s: &str| text_width(s, size, bold) <= width;
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let joined = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if fits(&joined) {
            line = joined;
            continue;
        }
        if !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            line.push(c);
            if !fits(&line) {
                line.pop();
                out.push(std::mem::take(&mut line));
                line.push(c);
            }
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// A page-breaking flow of rows; each row is a list of items sharing one baseline.
struct Flow {
    pages: Vec<Vec<(f32, Vec<Item>)>>,
    y: f32,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            pages: vec![Vec::new()],
            y: MARGIN,
        }
    }

    fn row(&mut self, height: f32, items: Vec<Item>) {
        if self.y + height > BOTTOM {
            self.page_break();
        }
        self.y += height;
        let y = self.y;
        if let Some(p) = self.pages.last_mut() {
            p.push((y, items));
        }
    }

    fn page_break(&mut self) {
        if self.pages.last().is_some_and(|p| !p.is_empty()) {
            self.pages.push(Vec::new());
        }
        self.y = MARGIN;
    }

    /// A line of text; wrapped inside the margins when it is wider than the page allows
    /// (a long title, organisation or service name).
    fn text(&mut self, size: f32, bold: bool, text: impl Into<String>) {
        for line in wrap_width(&text.into(), size, bold, TEXT_W) {
            self.row(
                size * 1.45,
                vec![Item::Text {
                    x: MARGIN,
                    size,
                    bold,
                    text: line,
                }],
            );
        }
    }

    /// Long text wrapped inside the margins.
    fn para(&mut self, size: f32, text: &str) {
        self.para_styled(size, false, text);
    }

    fn para_styled(&mut self, size: f32, bold: bool, text: &str) {
        self.text(size, bold, text);
    }

    /// A table whose cells wrap inside their columns (`widths` in points, summing to at
    /// most the text width); the header is bold and a row is kept on one page.
    fn table(&mut self, size: f32, widths: &[f32], head: &[&str], rows: &[Vec<String>]) {
        let head: Vec<String> = head.iter().map(|h| (*h).to_string()).collect();
        self.table_row(size, true, widths, &head);
        for r in rows {
            self.table_row(size, false, widths, r);
        }
    }

    fn table_row(&mut self, size: f32, bold: bool, widths: &[f32], cells: &[String]) {
        let pad = 4.0;
        let wrapped: Vec<Vec<String>> = widths
            .iter()
            .zip(cells)
            .map(|(w, c)| wrap_width(c, size, bold, w - pad))
            .collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        let line_h = size * 1.35;
        if self.y + line_h * lines as f32 + 2.0 > BOTTOM {
            self.page_break();
        }
        for i in 0..lines {
            let mut x = MARGIN;
            let mut items = Vec::new();
            for (w, cell) in widths.iter().zip(&wrapped) {
                if let Some(text) = cell.get(i) {
                    items.push(Item::Text {
                        x,
                        size,
                        bold,
                        text: text.clone(),
                    });
                }
                x += w;
            }
            self.row(line_h, items);
        }
        self.y += 2.0;
    }
}

/// Renders the report; `content_sha256` is printed in the footer of every page.
pub fn render(
    r: &MonthlyReport,
    (content_sha256, signed): (&str, &str),
) -> Result<Vec<u8>, PdfError> {
    let flow = layout(r, content_sha256, signed);
    let regular = Font::new(REGULAR.into(), 0).ok_or(PdfError::Font)?;
    let bold = Font::new(BOLD.into(), 0).ok_or(PdfError::Font)?;
    let settings = SerializeSettings {
        xmp_metadata: false,
        ..SerializeSettings::default()
    };
    let mut doc = Document::new_with(settings);
    let total = flow.pages.len();
    for (n, rows) in flow.pages.iter().enumerate() {
        let size = PageSettings::from_wh(PAGE_W, PAGE_H).ok_or(PdfError::Font)?;
        let mut page = doc.start_page_with(size);
        let mut s = page.surface();
        for (y, items) in rows {
            for item in items {
                draw(&mut s, *y, item, &regular, &bold);
            }
        }
        footer(&mut s, &regular, r, (n + 1, total), content_sha256);
        s.finish();
        page.finish();
    }
    doc.set_metadata(metadata(r));
    doc.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
}

/// Size of the footer text.
const FOOTER_SIZE: f32 = 6.5;

/// The footer's two lines: title, month and page number (the title shortened with `…` to
/// fit one line; it is printed in full on the cover), then the content digest; both inside
/// the margins.
pub fn footer_lines(r: &MonthlyReport, (page, total): (usize, usize), digest: &str) -> [String; 2] {
    let tail = format!(" — {} — page {page} of {total}", r.cover.month);
    let fits = |t: &str| text_width(t, FOOTER_SIZE, false) <= TEXT_W;
    let mut title = r.cover.title.clone();
    if !fits(&format!("{title}{tail}")) {
        while !title.is_empty() && !fits(&format!("{title}…{tail}")) {
            title.pop();
        }
        title.push('…');
    }
    [
        format!("{title}{tail}"),
        format!("content SHA-256 {digest}"),
    ]
}

fn footer(
    s: &mut Surface<'_>,
    font: &Font,
    r: &MonthlyReport,
    pages: (usize, usize),
    digest: &str,
) {
    set_color(s, (97, 97, 97));
    for (i, line) in footer_lines(r, pages, digest).iter().enumerate() {
        s.draw_text(
            Point::from_xy(MARGIN, PAGE_H - 28.0 + 8.0 * i as f32),
            font.clone(),
            FOOTER_SIZE,
            line,
            false,
            TextDirection::Auto,
        );
    }
}

fn metadata(r: &MonthlyReport) -> Metadata {
    let t = r
        .cover
        .generated_at
        .to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let date = DateTime::new(t.year() as u16)
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    Metadata::new()
        .title(format!("{} — {}", r.cover.title, r.cover.month))
        .authors(vec![r.cover.organisation.clone()])
        .creator(format!("Attest {}", r.cover.attest_version))
        .creation_date(date)
        .language("en".into())
}

fn set_color(s: &mut Surface<'_>, (r, g, b): (u8, u8, u8)) {
    s.set_fill(Some(Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }));
}

fn rect(s: &mut Surface<'_>, x: f32, y: f32, w: f32, h: f32) {
    let mut pb = PathBuilder::new();
    if let Some(r) = Rect::from_xywh(x, y, w.max(0.3), h.max(0.3)) {
        pb.push_rect(r);
    }
    if let Some(p) = pb.finish() {
        s.draw_path(&p);
    }
}

fn draw(s: &mut Surface<'_>, y: f32, item: &Item, regular: &Font, bold: &Font) {
    match item {
        Item::Text {
            x,
            size,
            bold: b,
            text,
        } => {
            set_color(s, (33, 33, 33));
            let font = if *b { bold.clone() } else { regular.clone() };
            s.draw_text(
                Point::from_xy(*x, y),
                font,
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
        Item::Rule => {
            set_color(s, (158, 158, 158));
            rect(s, MARGIN, y - 3.0, PAGE_W - 2.0 * MARGIN, 0.6);
        }
        Item::Bars { values, target } => bars(s, y, (values, *target), regular),
    }
}

/// Width of the daily chart's tick labels, left of the bars.
const AXIS_W: f32 = 26.0;

/// The daily chart: one bar per day, 60 pt high, on the fixed axis of the HTML chart (the
/// floor to 100 %, ticks labelled); a day below the floor is a stub with its number.
fn bars(s: &mut Surface<'_>, bottom: f32, (values, target): (&[Option<f64>], f64), font: &Font) {
    let h = 60.0f32;
    let lo = super::svg::axis_floor(target);
    let frac = |a: f64| (((a - lo) / (1.0 - lo)).clamp(0.0, 1.0)) as f32;
    let left = MARGIN + AXIS_W;
    let w = (TEXT_W - AXIS_W) / values.len().max(1) as f32;
    for t in super::svg::axis_ticks(lo) {
        let ty = bottom - h * frac(t);
        set_color(s, (224, 224, 224));
        rect(s, left, ty, TEXT_W - AXIS_W, 0.3);
        set_color(s, (85, 85, 85));
        s.draw_text(
            Point::from_xy(MARGIN, ty + 2.0),
            font.clone(),
            5.5,
            &super::svg::fmt_tick(t),
            false,
            TextDirection::Auto,
        );
    }
    for (i, v) in values.iter().enumerate() {
        let x = left + w * i as f32 + 0.5;
        match v {
            Some(a) if *a < lo => {
                set_color(s, (198, 40, 40));
                rect(s, x, bottom - 1.5, w - 1.0, 1.5);
                s.draw_text(
                    Point::from_xy(x, bottom - 3.0),
                    font.clone(),
                    4.5,
                    &super::svg::fmt_short(*a),
                    false,
                    TextDirection::Auto,
                );
            }
            Some(a) => {
                let good = *a >= target;
                set_color(s, if good { (46, 125, 50) } else { (198, 40, 40) });
                let bh = h * frac(*a).max(0.02);
                rect(s, x, bottom - bh, w - 1.0, bh);
            }
            None => {
                set_color(s, (189, 189, 189));
                rect(s, x, bottom - h, w - 1.0, h);
            }
        }
    }
    let ty = bottom - h * frac(target);
    set_color(s, (21, 101, 192));
    rect(s, left, ty, TEXT_W - AXIS_W, 0.5);
}

fn layout(r: &MonthlyReport, digest: &str, signed: &str) -> Flow {
    let mut f = Flow::new();
    cover(&mut f, r, digest, signed);
    summary(&mut f, &r.summary);
    for (i, s) in r.services.iter().enumerate() {
        let Some(sum) = r.summary.get(i) else {
            continue;
        };
        f.page_break();
        service(&mut f, s, sum, r.cover.generated_at);
    }
    if !r.addenda.is_empty() {
        f.text(12.0, true, "Addenda");
        for a in &r.addenda {
            f.para(
                8.0,
                &format!(
                    "{} {} ({}): {} was {}, now {} (found {})",
                    a.month, a.service, a.field, a.field, a.archived, a.now, a.found_at
                ),
            );
        }
    }
    sign_off(&mut f, &r.sign_off);
    f.page_break();
    f.text(13.0, true, "Method");
    f.row(4.0, vec![Item::Rule]);
    for m in &r.method {
        f.text(9.0, true, m.title.clone());
        f.para(8.5, &m.text);
    }
    f
}

fn cover(f: &mut Flow, r: &MonthlyReport, digest: &str, signed: &str) {
    let c = &r.cover;
    f.text(9.0, false, c.organisation.clone());
    f.text(18.0, true, c.title.clone());
    let scope = match &c.service {
        Some(s) => format!("service {s}"),
        None => format!("all services ({})", r.summary.len()),
    };
    for (k, v) in [
        (
            "Period",
            format!(
                "{} (calendar month in {})",
                c.month,
                c.time_zones.join(", ")
            ),
        ),
        ("Scope", scope),
        ("Generated", c.generated_at.to_string()),
        (
            "Attest",
            format!("{}, tz database {}", c.attest_version, c.tzdb_version),
        ),
        (
            "Service definitions",
            format!("SHA-256 {}", c.definitions_sha256),
        ),
        ("Report content", format!("SHA-256 {digest}")),
        ("Signature", signed.to_string()),
    ] {
        f.table_row(8.5, false, &[100.0, TEXT_W - 100.0], &[k.to_string(), v]);
    }
    if !c.parties.is_empty() {
        f.row(4.0, Vec::new());
        let na = |v: &Option<String>| v.clone().unwrap_or_else(|| "n/a".into());
        let rows: Vec<Vec<String>> = c
            .parties
            .iter()
            .map(|p| {
                vec![
                    p.service.clone(),
                    na(&p.customer),
                    na(&p.agreement),
                    na(&p.owner),
                ]
            })
            .collect();
        f.table(
            8.0,
            &PARTY_COLS,
            &["Service", "Customer", "Agreement", "Service owner"],
            &rows,
        );
    }
}

/// Column widths of the sign-off table.
const SIGN_OFF_COLS: [f32; 4] = [80.0, 180.0, 150.0, 101.0];
/// An empty line to sign or date on.
const SIGN_LINE: &str = "______________________________";
const DATE_LINE: &str = "____________________";

/// The sign-off table (prepared by, approved by) with empty signature and date lines, and
/// the distribution list; nothing when `[report]` names none of them.
fn sign_off(f: &mut Flow, s: &super::model::SignOff) {
    if s.is_empty() {
        return;
    }
    f.row(8.0, Vec::new());
    f.text(13.0, true, "Sign-off");
    f.row(4.0, vec![Item::Rule]);
    let head = ["Role", "Name", "Signature", "Date"];
    let head: Vec<String> = head.iter().map(|h| (*h).to_string()).collect();
    f.table_row(8.5, true, &SIGN_OFF_COLS, &head);
    for (role, name) in [
        ("Prepared by", &s.prepared_by),
        ("Approved by", &s.approved_by),
    ] {
        f.row(18.0, Vec::new());
        let name = name.clone().unwrap_or_else(|| "n/a".into());
        let cells = [role.to_string(), name, SIGN_LINE.into(), DATE_LINE.into()];
        f.table_row(8.5, false, &SIGN_OFF_COLS, &cells);
    }
    let to = if s.distribution.is_empty() {
        "n/a".to_string()
    } else {
        s.distribution.join("; ")
    };
    f.para(8.5, &format!("Distribution: {to}."));
}

/// Width of the text between the margins.
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Column widths of the cover's parties table and a service's agreed method.
const PARTY_COLS: [f32; 4] = [100.0, 150.0, 120.0, 141.0];
const TERMS_COLS: [f32; 2] = [100.0, 411.0];

/// A service's agreed method as a two-column table (the rows of [`terms_rows`]).
fn terms(f: &mut Flow, s: &ServiceSection) {
    f.text(10.0, true, "Agreed method");
    for (label, text) in terms_rows(s) {
        f.table_row(7.5, false, &TERMS_COLS, &[label, text]);
    }
}

/// Column widths (points) of the summary's verdict and figures tables.
const VERDICT_COLS: [f32; 6] = [62.0, 150.0, 75.0, 75.0, 85.0, 64.0];
const FIGURES_COLS: [f32; 7] = [90.0, 65.0, 65.0, 70.0, 55.0, 60.0, 106.0];

/// Every line the summary tables print for `s` (cells wrapped in their columns); the PDF
/// text test finds each of them.
pub fn summary_lines(s: &SummaryRow) -> Vec<String> {
    let c = SummaryCells::of(s);
    let cols = VERDICT_COLS.iter().zip(c.verdict_row());
    let cols = cols.chain(FIGURES_COLS.iter().zip(c.figures_row()));
    cols.flat_map(|(w, cell)| wrap_width(&cell, 7.0, false, w - 4.0))
        .collect()
}

fn summary(f: &mut Flow, rows: &[SummaryRow]) {
    f.row(8.0, Vec::new());
    f.text(13.0, true, "Summary");
    f.row(4.0, vec![Item::Rule]);
    f.para(
        7.0,
        "A service's verdict is the worst of its objectives — availability against the target, the coverage minimum, the latency objective and each capacity objective (breached, then not determinable, then met) — and names the objectives that decided it.",
    );
    let cells: Vec<SummaryCells> = rows.iter().map(SummaryCells::of).collect();
    let verdicts: Vec<Vec<String>> = cells.iter().map(SummaryCells::verdict_row).collect();
    f.table(7.0, &VERDICT_COLS, &VERDICT_HEAD, &verdicts);
    f.row(4.0, Vec::new());
    let figures: Vec<Vec<String>> = cells.iter().map(SummaryCells::figures_row).collect();
    f.table(7.0, &FIGURES_COLS, &FIGURES_HEAD, &figures);
    f.para(
        7.0,
        "Availability = good ÷ known minutes, rounded down to 3 decimals so that a breach never shows as a pass. Budget figures are for the known minutes of the month.",
    );
}

/// One service's section, in named steps.
fn service(f: &mut Flow, s: &ServiceSection, sum: &SummaryRow, generated_at: jiff::Timestamp) {
    service_heading(f, s, sum);
    terms(f, s);
    daily(f, s, sum);
    trend(f, s);
    incidents(f, s);
    excluded(f, s);
    unknown(f, s);
    f.text(10.0, true, "Measurement redundancy");
    f.para(8.0, &redundancy_lines(s).join(" "));
    f.text(10.0, true, "Service definition");
    for line in definition_lines(s) {
        f.para(8.0, &line);
    }
    evidence(f, s);
    notes(f, s, generated_at);
    latency(f, s, sum);
    capacity(f, s);
}

/// "Comments and actions": each note as a paragraph (the texts run to 2000 characters,
/// too long for table cells).
fn notes(f: &mut Flow, s: &ServiceSection, generated_at: jiff::Timestamp) {
    f.text(10.0, true, "Comments and actions");
    let cells = note_cells(s, generated_at);
    if cells.is_empty() {
        f.text(8.5, false, "No comments.");
        return;
    }
    for n in cells {
        let late = n.addendum.map(|a| format!(" ({a})")).unwrap_or_default();
        f.para(
            8.0,
            &format!(
                "{} by {}{late}. Cause: {} Action: {} Owner: {}. Due: {}.",
                n.date, n.by, n.cause, n.action, n.owner, n.due
            ),
        );
    }
}

/// The service's name, description and verdict with its figures.
fn service_heading(f: &mut Flow, s: &ServiceSection, sum: &SummaryRow) {
    f.text(14.0, true, s.service.clone());
    f.row(4.0, vec![Item::Rule]);
    if let Some(d) = &s.terms.description {
        f.para(8.5, d);
    }
    f.para(
        8.5,
        &format!(
            "Verdict: {}. Availability {} against a target of {} %: {}. Eligible {} min: good {}, bad {}, unknown {}. Coverage {}{}. Bounds: pessimistic {}, optimistic {}. Zone {}.",
            sum.verdict_reason,
            fmt_opt_pct(sum.availability_percent.as_deref()),
            sum.target_percent,
            sum.availability_verdict.label(),
            sum.eligible_minutes,
            sum.good_minutes,
            sum.bad_minutes,
            sum.unknown_minutes,
            fmt_opt_pct(sum.coverage_percent.as_deref()),
            match (&sum.min_coverage_percent, sum.coverage_verdict) {
                (Some(m), Some(v)) => format!(" against a minimum of {m} %: {}", v.label()),
                _ => " (no minimum agreed)".to_string(),
            },
            fmt_ratio(s.pessimistic),
            fmt_ratio(s.optimistic),
            s.time_zone
        ),
    );
}

/// The daily chart, its legend and the days with bad or unknown minutes.
fn daily(f: &mut Flow, s: &ServiceSection, sum: &SummaryRow) {
    f.text(10.0, true, "Daily availability");
    let values = s.daily.iter().map(|d| d.availability).collect();
    f.row(
        66.0,
        vec![Item::Bars {
            values,
            target: sum.target_ppm as f64 / 1e6,
        }],
    );
    f.para(
        7.0,
        &format!(
            "Axis {} to 100 %; green: at or above the target, red: below it (a stub with its number below the axis), grey: nothing known; blue: the target. Local days, {}.",
            super::svg::fmt_tick(super::svg::axis_floor(sum.target_ppm as f64 / 1e6)),
            s.time_zone
        ),
    );
    let days: Vec<String> = s
        .daily
        .iter()
        .filter(|d| d.bad_minutes > 0 || d.unknown_minutes > 0)
        .map(|d| {
            format!(
                "{} {} (bad {}, unknown {})",
                d.date,
                fmt_opt_pct(d.availability_percent.as_deref()),
                d.bad_minutes,
                d.unknown_minutes
            )
        })
        .collect();
    if !days.is_empty() {
        f.para(
            7.5,
            &format!("Days with bad or unknown minutes: {}.", days.join("; ")),
        );
    }
}

/// Service hours, holidays, ineligible minutes and each maintenance window.
fn excluded(f: &mut Flow, s: &ServiceSection) {
    f.text(10.0, true, "Excluded time");
    let hours = if s.excluded.service_hours.is_empty() {
        "24x7".to_string()
    } else {
        format!("{} (local time)", s.excluded.service_hours.join("; "))
    };
    let holidays = if s.excluded.holidays.is_empty() {
        "none".to_string()
    } else {
        s.excluded.holidays.join(", ")
    };
    f.para(
        8.0,
        &format!(
            "Service hours: {hours}. Holidays: {holidays}. Ineligible minutes in the period: {}{}.",
            s.excluded.ineligible_minutes,
            if s.excluded.after_the_fact_minutes > 0 {
                format!(
                    ", of which up to {} in maintenance registered after the fact",
                    s.excluded.after_the_fact_minutes
                )
            } else {
                String::new()
            }
        ),
    );
    for m in &s.excluded.maintenance {
        f.para(
            8.0,
            &format!(
                "Maintenance ({}, {}{}): {} — {}",
                m.kind,
                m.source,
                registration(m),
                m.when,
                m.reason
            ),
        );
    }
}

/// Probes and percentiles, and the latency objective.
fn latency(f: &mut Flow, s: &ServiceSection, sum: &SummaryRow) {
    f.text(10.0, true, "Latency");
    let l = &s.latency;
    f.para(
        8.0,
        &format!(
            "Probes {}; p50 {}, p95 {}, p99 {}.{}",
            l.probes,
            fmt_secs(l.p50_seconds),
            fmt_secs(l.p95_seconds),
            fmt_secs(l.p99_seconds),
            match (&sum.latency_objective, l.objective_ratio) {
                (Some(o), r) => format!(" Objective {o}: achieved {}.", fmt_ratio(r)),
                _ => String::new(),
            }
        ),
    );
}

/// The per-host capacity and the capacity objectives.
fn capacity(f: &mut Flow, s: &ServiceSection) {
    if !s.capacity.is_empty() {
        f.text(10.0, true, "Capacity");
        for c in &s.capacity {
            f.para(
                8.0,
                &format!(
                    "{} {} {}: p95 {}, max {}, minutes above warning {}, above critical {}, days to critical {}",
                    c.agent,
                    c.kind,
                    c.resource,
                    fmt_ratio(c.p95),
                    fmt_ratio(c.max),
                    c.minutes_above_warning,
                    c.minutes_above_critical,
                    fmt_num(c.days_until_critical, 1)
                ),
            );
        }
    }
    if !s.capacity_objectives.is_empty() {
        let verdict = s.capacity_verdict.as_deref().unwrap_or("n/a");
        f.text(10.0, true, format!("Capacity objectives: {verdict}"));
        for o in &s.capacity_objectives {
            let by = match (&o.host, &o.resource) {
                (Some(h), Some(r)) if !r.is_empty() => format!(", decided by {h} {r}"),
                (Some(h), _) => format!(", decided by {h}"),
                _ => String::new(),
            };
            f.para(
                8.0,
                &format!(
                    "{}: {} {}: {}{by}; {} minutes counted",
                    o.name,
                    o.measured.as_deref().unwrap_or("no host data"),
                    o.agreed,
                    o.verdict,
                    o.counted_minutes
                ),
            );
        }
    }
}

/// Column widths of the previous months' table.
const TREND_COLS: [f32; 6] = [70.0, 90.0, 100.0, 80.0, 90.0, 81.0];

/// The months before, as a table.
fn trend(f: &mut Flow, s: &ServiceSection) {
    f.text(10.0, true, "Previous months");
    if s.trend.is_empty() {
        f.text(8.5, false, "No earlier month under the agreement.");
        return;
    }
    let rows: Vec<Vec<String>> = s
        .trend
        .iter()
        .map(|t| {
            vec![
                t.month.clone(),
                fmt_opt_pct(t.availability_percent.as_deref()),
                t.verdict.label().to_string(),
                t.downtime_minutes.to_string(),
                fmt_num(Some(t.budget_remaining_minutes), 1),
                t.source.clone(),
            ]
        })
        .collect();
    let head = [
        "Month",
        "Availability",
        "Verdict",
        "Downtime (min)",
        "Budget left (min)",
        "Source",
    ];
    f.table(7.5, &TREND_COLS, &head, &rows);
}

/// Column widths of the incident and unknown-time tables.
const INCIDENT_COLS: [f32; 5] = [102.0, 102.0, 110.0, 80.0, 117.0];
const UNKNOWN_COLS: [f32; 4] = [102.0, 102.0, 60.0, 247.0];
const EVIDENCE_COLS: [f32; 4] = [70.0, 120.0, 90.0, 231.0];

/// "Evidence": the signed share in a sentence, then one row per agent with its chain.
fn evidence(f: &mut Flow, s: &ServiceSection) {
    f.text(10.0, true, "Evidence");
    let cells = evidence_cells(s);
    f.para(8.0, &cells.line);
    if cells.agents.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = cells
        .agents
        .into_iter()
        .map(|a| vec![a.agent, a.signed, a.chain, a.details])
        .collect();
    f.table(
        7.5,
        &EVIDENCE_COLS,
        &["Agent", "Signed and verified", "Chain", "Details"],
        &rows,
    );
}

/// The incident table in local time; a merged incident lists its eligible segments.
fn incidents(f: &mut Flow, s: &ServiceSection) {
    f.text(10.0, true, "Incidents");
    if s.incidents.is_empty() {
        f.text(8.5, false, "No incidents.");
        return;
    }
    f.para(
        7.5,
        &format!("Local time ({}) with the UTC offset.", s.time_zone),
    );
    let rows: Vec<Vec<String>> = incident_cells(s)
        .into_iter()
        .map(|c| {
            let downtime = if c.segments.is_empty() {
                c.downtime
            } else {
                format!("{}: {}", c.downtime, c.segments.join("; "))
            };
            vec![c.start, c.end, downtime, c.agents, c.reason]
        })
        .collect();
    f.table(
        7.5,
        &INCIDENT_COLS,
        &["Start", "End", "Downtime", "Agents", "Reason"],
        &rows,
    );
}

/// Unknown intervals in local time with the agents that were silent.
fn unknown(f: &mut Flow, s: &ServiceSection) {
    f.text(10.0, true, "Unknown time");
    if s.unknown.is_empty() {
        f.text(8.5, false, "No unknown time.");
        return;
    }
    let rows: Vec<Vec<String>> = unknown_cells(s)
        .into_iter()
        .map(|u| vec![u.start, u.end, u.minutes, u.silent_agents])
        .collect();
    f.table(
        7.5,
        &UNKNOWN_COLS,
        &["Start", "End", "Minutes", "Silent agents"],
        &rows,
    );
}

/// ` at INSTANT by NAME` of an API window (`(not recorded)` when the store has no
/// registrant); empty for a config window.
fn registration(m: &MaintenanceRow) -> String {
    let at = m
        .registered_at
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    if m.source != "api" {
        return at;
    }
    let by = m.registered_by.as_deref().unwrap_or("(not recorded)");
    let reference = m
        .reference
        .as_deref()
        .map(|r| format!(", ref. {r}"))
        .unwrap_or_default();
    let late = m
        .registered_after_start
        .as_deref()
        .map(|l| format!("; REGISTERED AFTER THE FACT ({l} after its start)"))
        .unwrap_or_default();
    format!("{at} by {by}{reference}{late}")
}
