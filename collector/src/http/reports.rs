//! Report routes: `GET /reports/` (months), `GET /reports/{month}[/{service}]` (the HTML
//! report), `GET /api/v1/reports/{month}?format=…` (any single-file format) and
//! `GET /api/v1/reports/public-key` (the signer's public key, as in a bundle's
//! `report-key.pub`; an auditor compares it with the key the operator handed over). Read
//! routes: `auth.rs` asks for a read credential when `[[reader]]` or basic auth is
//! configured. Documented in docs/http-api.md and docs/reports.md.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{AppState, reject};
use crate::reject::Rejection;
use crate::report::monthly::{Format, service::Served};
use crate::report::parse_month;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reports", get(index))
        .route("/reports/", get(index))
        .route("/reports/{month}", get(html_all))
        .route("/reports/{month}/{service}", get(html_one))
        .route("/api/v1/reports/public-key", get(public_key))
        .route("/api/v1/reports/{month}", get(file))
}

/// The static segment wins over `{month}` (the router prefers static routes).
async fn public_key(State(st): State<AppState>) -> Response {
    match st.reports.public_key() {
        Ok((bytes, statement)) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "inline; filename=\"report-key.pub\"".to_string(),
                ),
                (header::HeaderName::from_static("x-attest-key"), statement),
            ],
            bytes,
        )
            .into_response(),
        Err(r) => reject(r),
    }
}

fn served(s: Served) -> Response {
    let disposition = format!("inline; filename=\"{}\"", s.name);
    (
        [
            (header::CONTENT_TYPE, s.content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::HeaderName::from_static("x-attest-source"),
                s.source.as_str().to_string(),
            ),
        ],
        s.bytes,
    )
        .into_response()
}

async fn index(State(st): State<AppState>) -> Response {
    let months = st.reports.months(st.clock.now_utc());
    let mut rows = String::new();
    for (m, archived) in months {
        let note = if archived { " (archived)" } else { "" };
        rows.push_str(&format!(
            "<li><a href=\"/reports/{m}\">{m}</a>{note}</li>\n"
        ));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Attest reports</title>\
         <style>body{{font-family:sans-serif;margin:2em}}</style></head><body>\
         <h1>Monthly availability reports</h1><ul>\n{rows}</ul>\
         <p>Other formats: <code>/api/v1/reports/YYYY-MM?format=pdf|json|md|csv</code></p></body></html>\n"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn render(
    st: AppState,
    month: String,
    service: Option<String>,
    format: Format,
    table: Option<String>,
    at: Option<String>,
) -> Response {
    let month = match parse_month(&month) {
        Ok(m) => m,
        Err(r) => return reject(r),
    };
    let at = match at.as_deref().map(str::parse::<jiff::Timestamp>) {
        // Whole seconds: the report prints its generation instant.
        None => jiff::Timestamp::from_second(st.clock.now_utc().as_second())
            .unwrap_or_else(|_| st.clock.now_utc()),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            return reject(
                Rejection::new(
                    400,
                    format!("at is not an RFC 3339 instant like 2026-11-01T06:00:00Z: {e}"),
                )
                .field("at"),
            );
        }
    };
    let reports = st.reports.clone();
    let res = tokio::task::spawn_blocking(move || {
        reports.file(month, service.as_deref(), format, table.as_deref(), at)
    })
    .await;
    match res {
        Ok(Ok(s)) => served(s),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, format!("report task failed: {e}"))),
    }
}

async fn html_all(State(st): State<AppState>, Path(month): Path<String>) -> Response {
    render(st, month, None, Format::Html, None, None).await
}

async fn html_one(
    State(st): State<AppState>,
    Path((month, service)): Path<(String, String)>,
) -> Response {
    render(st, month, Some(service), Format::Html, None, None).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    format: Option<String>,
    service: Option<String>,
    table: Option<String>,
    at: Option<String>,
}

async fn file(
    State(st): State<AppState>,
    Path(month): Path<String>,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            return reject(Rejection::new(
                400,
                format!(
                    "{e}; expected ?format=html|pdf|json|md|csv[&service=NAME][&table=services|daily|incidents|unknown|maintenance|terms|checks|trend][&at=RFC3339]"
                ),
            ));
        }
    };
    let name = q.format.as_deref().unwrap_or("json");
    let Some(format) = Format::parse(name) else {
        return reject(
            Rejection::new(
                400,
                format!("format={name:?} is not one of html, pdf, json, md, csv"),
            )
            .field("format"),
        );
    };
    render(st, month, q.service, format, q.table, q.at).await
}
