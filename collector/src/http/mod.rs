//! HTTP routes only: each handler translates between HTTP and one module call (ingest,
//! report, maintenance, metrics, store readiness). No business rules live here; the state
//! is built by `app::build`. Routes are documented in docs/http-api.md.

mod reports;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::figures::Figures;
use crate::ingest::{self, Ingest, Rejection};
use crate::maintenance::Maintenance;
use crate::metrics::Exporter;
use crate::report::monthly::service::Reports;
use crate::report::{self, MonthQuery};
use crate::store::Store;

/// What the handlers call; one per collector, from `app::build`.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingest>,
    /// Only for the readiness probe.
    pub store: Arc<dyn Store>,
    pub figures: Arc<Figures>,
    pub maintenance: Arc<Maintenance>,
    pub exporter: Arc<Exporter>,
    pub clock: SharedClock,
    pub admin_token: Option<String>,
    /// Monthly reports (routes in `reports.rs`).
    pub reports: Arc<Reports>,
}

pub fn router(state: AppState, max_body_bytes: u64) -> Router {
    Router::new()
        .route(
            attest_config::wire::INGEST_PATH,
            post(ingest_batch).layer(DefaultBodyLimit::max(max_body_bytes as usize)),
        )
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/sla", get(sla))
        .route(
            "/api/v1/maintenance",
            get(list_maintenance).post(add_maintenance),
        )
        .route("/api/v1/maintenance/{id}", delete(cancel_maintenance))
        .merge(reports::routes())
        .fallback(|| async { reject(Rejection::new(404, "no such route; see docs/http-api.md")) })
        .with_state(state)
}

/// Every refusal is JSON `{"error": ..., "field": ...}` with the status and, for 429/503,
/// a `Retry-After` header.
fn reject(r: Rejection) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, axum::Json(r.body())).into_response();
    if let Some(secs) = r.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

async fn ingest_batch(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return reject(Rejection::new(
                e.status().as_u16(),
                format!("cannot read the body: {e}"),
            ));
        }
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ing = st.ingest.clone();
    let received_at = st.clock.now_utc();
    let res = tokio::task::spawn_blocking(move || {
        ing.handle(ingest::Request {
            authorization: auth.as_deref(),
            content_encoding: enc.as_deref(),
            body: &body,
            received_at,
        })
    })
    .await;
    match res {
        Ok(Ok(ack)) => axum::Json(ack).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, format!("ingest task failed: {e}"))),
    }
}

async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let om = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let exp = st.exporter.clone();
    match tokio::task::spawn_blocking(move || exp.render(om)).await {
        Ok((ctype, body)) => ([(header::CONTENT_TYPE, ctype)], body).into_response(),
        Err(e) => reject(Rejection::new(500, format!("metrics task failed: {e}"))),
    }
}

async fn ready(State(st): State<AppState>) -> Response {
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || store.counts()).await {
        Ok(Ok(_)) => "ready\n".into_response(),
        Ok(Err(e)) => reject(Rejection::new(503, format!("storage not ready: {e}")).retry_after(5)),
        Err(e) => reject(Rejection::new(503, format!("storage check failed: {e}")).retry_after(5)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlaQuery {
    month: String,
    service: Option<String>,
    at: Option<String>,
}

async fn sla(
    State(st): State<AppState>,
    q: Result<Query<SlaQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            return reject(Rejection::new(
                400,
                format!("{e}; expected ?month=YYYY-MM[&service=NAME][&at=RFC3339]"),
            ));
        }
    };
    let query = match MonthQuery::parse(&q.month, q.service.as_deref(), q.at.as_deref()) {
        Ok(query) => query,
        Err(r) => return reject(r),
    };
    let (figures, clock) = (st.figures.clone(), st.clock.clone());
    let res = tokio::task::spawn_blocking(move || {
        report::month_reports(&figures, &query, clock.as_ref())
    })
    .await;
    match res {
        Ok(Ok(reports)) => match report::json::compact(&reports) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => reject(Rejection::new(
                500,
                format!("cannot encode the reports: {e}"),
            )),
        },
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, format!("sla task failed: {e}"))),
    }
}

fn admin(st: &AppState, headers: &HeaderMap) -> Result<(), Rejection> {
    let Some(expected) = &st.admin_token else {
        return Err(Rejection::new(
            403,
            "the admin API is disabled: set [server] admin_token in the collector config",
        ));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    match got {
        None => Err(Rejection::new(
            401,
            "missing bearer token for the admin API",
        )),
        Some(t) if t.trim().as_bytes() == expected.as_bytes() => Ok(()),
        Some(_) => Err(Rejection::new(403, "wrong admin token")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceQuery {
    service: Option<String>,
}

async fn list_maintenance(
    State(st): State<AppState>,
    q: Result<Query<MaintenanceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return reject(Rejection::new(400, format!("{e}; expected ?service=NAME"))),
    };
    let maintenance = st.maintenance.clone();
    match tokio::task::spawn_blocking(move || maintenance.list(q.service.as_deref())).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, e.to_string())),
    }
}

async fn add_maintenance(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = admin(&st, &headers) {
        return reject(r);
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return reject(Rejection::new(e.status().as_u16(), e.to_string())),
    };
    let (maintenance, now) = (st.maintenance.clone(), st.clock.now_utc());
    match tokio::task::spawn_blocking(move || maintenance.add(&body, now)).await {
        Ok(Ok(v)) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, e.to_string())),
    }
}

async fn cancel_maintenance(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin(&st, &headers) {
        return reject(r);
    }
    let Ok(id) = id.parse::<i64>() else {
        return reject(Rejection::new(
            400,
            format!("maintenance id {id:?} is not an integer"),
        ));
    };
    let (maintenance, now) = (st.maintenance.clone(), st.clock.now_utc());
    match tokio::task::spawn_blocking(move || maintenance.cancel(id, now)).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, e.to_string())),
    }
}
