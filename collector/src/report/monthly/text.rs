//! The HTML and Markdown renderers: minijinja templates over the [`MonthlyReport`], with
//! built-in defaults (`templates/report.html`, `templates/report.md`) that a user may
//! replace, and the display helpers every renderer shares.
//!
//! Invariants:
//! - Templates see the report as data plus two inline SVG charts per service and the
//!   content digest; filters only format (n/a for null, fixed decimals), never compute.
//! - HTML output is auto-escaped; the SVG charts are the only values marked safe, and they
//!   escape their own text.

use minijinja::value::{Serde, Value};
use minijinja::{Environment, context};
use serde::Serialize;

use super::model::{AVAILABILITY_DECIMALS, MonthlyReport, Verdict};
use super::svg;

pub const HTML_TEMPLATE: &str = include_str!("templates/report.html");
pub const MD_TEMPLATE: &str = include_str!("templates/report.md");

#[derive(Debug, thiserror::Error)]
#[error("report template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

/// Template sources; `None` uses the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    pub html: Option<String>,
    pub markdown: Option<String>,
}

impl Templates {
    /// Reads `report.html` and `report.md` from `dir` where present.
    pub fn from_dir(dir: &std::path::Path) -> std::io::Result<Templates> {
        let read = |name: &str| -> std::io::Result<Option<String>> {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        Ok(Templates {
            html: read("report.html")?,
            markdown: read("report.md")?,
        })
    }

    pub fn is_default(&self) -> bool {
        self.html.is_none() && self.markdown.is_none()
    }
}

/// `99.930 %`, or `n/a`.
pub fn fmt_opt_pct(p: Option<&str>) -> String {
    p.map_or_else(|| "n/a".to_string(), |p| format!("{p} %"))
}

/// A number with `decimals` digits, or `n/a`.
pub fn fmt_num(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.decimals$}"))
}

/// A ratio as a percentage rounded down to 3 decimals, or `n/a`.
pub fn fmt_ratio(x: Option<f64>) -> String {
    x.map_or_else(
        || "n/a".to_string(),
        |x| format!("{:.3} %", (x * 100_000.0).floor() / 1_000.0),
    )
}

/// Seconds with millisecond precision, or `n/a`.
pub fn fmt_secs(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3} s"))
}

#[derive(Serialize)]
struct Charts {
    daily: Value,
    timeline: Value,
}

fn environment<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.add_filter("pct", |p: Option<String>| fmt_opt_pct(p.as_deref()));
    env.add_filter("num", |x: Option<f64>, d: Option<usize>| {
        fmt_num(x, d.unwrap_or(1))
    });
    env.add_filter("ratio", fmt_ratio);
    env.add_filter("secs", fmt_secs);
    env.add_filter("na", |v: Value| {
        if v.is_none() || v.is_undefined() || v.as_str() == Some("") {
            Value::from("n/a")
        } else {
            v
        }
    });
    env.add_filter("verdict", |v: String| {
        match v.as_str() {
            "met" => Verdict::Met,
            "breached" => Verdict::Breached,
            _ => Verdict::NotDeterminable,
        }
        .label()
    });
    // Markdown table cells: a `|` would end the cell, a newline the row.
    env.add_filter("cell", |s: String| s.replace('|', "\\|").replace('\n', " "));
    env
}

fn charts(r: &MonthlyReport) -> Vec<Charts> {
    r.services
        .iter()
        .zip(&r.summary)
        .map(|(s, sum)| Charts {
            daily: Value::from_safe_string(svg::daily_chart(
                &s.daily,
                f64::from(sum.target_ppm) / 1e6,
            )),
            timeline: Value::from_safe_string(svg::incident_timeline(
                sum.period_start,
                sum.period_end,
                &s.incidents,
            )),
        })
        .collect()
}

fn render(
    name: &str,
    source: &str,
    r: &MonthlyReport,
    digest: &str,
) -> Result<String, TemplateError> {
    let err = |e: minijinja::Error| TemplateError {
        name: name.to_string(),
        detail: format!("{e:#}"),
    };
    let mut env = environment();
    env.add_template(name, source).map_err(err)?;
    let tmpl = env.get_template(name).map_err(err)?;
    tmpl.render(context! {
        r => Value::from(Serde(r)),
        charts => Value::from(Serde(charts(r))),
        content_sha256 => digest,
        decimals => AVAILABILITY_DECIMALS,
    })
    .map_err(err)
}

/// The self-contained HTML document (no trailer yet).
pub fn html(r: &MonthlyReport, digest: &str, t: &Templates) -> Result<String, TemplateError> {
    render(
        "report.html",
        t.html.as_deref().unwrap_or(HTML_TEMPLATE),
        r,
        digest,
    )
}

/// The Markdown document (no trailer yet).
pub fn markdown(r: &MonthlyReport, digest: &str, t: &Templates) -> Result<String, TemplateError> {
    render(
        "report.md",
        t.markdown.as_deref().unwrap_or(MD_TEMPLATE),
        r,
        digest,
    )
}
