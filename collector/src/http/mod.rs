//! HTTP routes only: each handler translates between HTTP and one module call (ingest,
//! report, maintenance, metrics, store readiness). No business rules live here; the state
//! is built by `app::build`. Routes are documented in docs/http-api.md.

mod agents;
pub mod auth;
mod reports;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::figures::Figures;
use crate::fleet::Fleet;
use crate::ingest::{Ingest, Rejection};
use crate::maintenance::Maintenance;
use crate::metrics::Exporter;
use crate::report::monthly::service::Reports;
use crate::report::{self, MonthQuery};
use crate::server::PeerAddr;
use crate::store::Store;

mod guard;
pub use guard::HttpGuard;

/// What the handlers call; one per collector, from `app::build`.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingest>,
    /// Only for the readiness probe.
    pub store: Arc<dyn Store>,
    pub figures: Arc<Figures>,
    pub maintenance: Arc<Maintenance>,
    /// Report notes (comments, causes and actions per service and month).
    pub notes: Arc<crate::notes::Notes>,
    pub exporter: Arc<Exporter>,
    pub fleet: Arc<Fleet>,
    pub clock: SharedClock,
    /// Monthly reports (routes in `reports.rs`).
    pub reports: Arc<Reports>,
    /// Read credentials (`[[reader]]`, basic auth) and response headers; see `auth.rs`.
    pub access: Arc<auth::Access>,
    /// Body bounds and the refusal log.
    pub guard: Arc<HttpGuard>,
    /// The live status page (routes in `status.rs`).
    pub status: Arc<crate::status::StatusBoard>,
}

/// Largest maintenance registration body: a window and a 500-character reason fit many
/// times over; anything larger is refused with 413 before it is buffered.
pub const MAINTENANCE_BODY_LIMIT: u64 = 64 << 10;

/// The routes. Bodies are read by the handlers themselves, after authentication, within
/// the bounds of `state.guard`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(attest_config::wire::INGEST_PATH, post(ingest_batch))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/sla", get(sla))
        .route(
            "/api/v1/maintenance",
            get(list_maintenance).post(add_maintenance),
        )
        .route("/api/v1/maintenance/{id}", delete(cancel_maintenance))
        .route(
            "/api/v1/reports/{month}/{service}/notes",
            get(list_notes).post(add_note),
        )
        .merge(reports::routes())
        .merge(status::routes())
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/{id}/checks", get(agents::checks))
        .fallback(|| async { reject(Rejection::new(404, "no such route; see docs/http-api.md")) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .with_state(state)
}

/// Every refusal is JSON `{"error": ..., "field": ...}` with the status and, for 429/503,
/// a `Retry-After` header; a 401 says `WWW-Authenticate: Bearer` (`auth` adds `Basic`).
fn reject(r: Rejection) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = (status, axum::Json(r.body())).into_response();
    if let Some(secs) = r.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(auth::BEARER_CHALLENGE),
        );
    }
    resp
}

/// Headers first: the token and the agent's rate are checked before a byte of the body is
/// read, so a client without a valid token holds no buffer here (docs/http-api.md, "Order
/// of checks"). Then the body is read within its size, time and in-flight bounds, and the
/// rest of the pipeline runs on a blocking thread.
async fn ingest_batch(State(st): State<AppState>, req: Request) -> Response {
    const ROUTE: &str = attest_config::wire::INGEST_PATH;
    let (parts, body) = req.into_parts();
    let peer = peer_of(&parts.extensions);
    let text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (auth, enc) = (text(header::AUTHORIZATION), text(header::CONTENT_ENCODING));
    let received_at = st.clock.now_utc();
    let agent = match st.ingest.admit(auth.as_deref(), received_at) {
        Ok(agent) => agent,
        Err(r) => return refuse(&st, ROUTE, peer, None, r),
    };
    let limit = st.guard.max_body_bytes;
    let read = async {
        let held = st.guard.reserve(&parts.headers, limit)?;
        Ok::<_, Rejection>((st.guard.read_body(body, limit).await?, held))
    };
    let (body, held) = match read.await {
        Ok(b) => b,
        Err(r) => {
            st.ingest.count_http_refusal(&r);
            return refuse(&st, ROUTE, peer, Some(&agent), r);
        }
    };
    let (ing, who) = (st.ingest.clone(), agent.clone());
    let res = tokio::task::spawn_blocking(move || {
        let ack = ing.handle_admitted(&who, enc.as_deref(), &body, received_at);
        drop(held);
        ack
    })
    .await;
    match res {
        Ok(Ok(ack)) => axum::Json(ack).into_response(),
        Ok(Err(r)) => refuse(&st, ROUTE, peer, Some(&agent), r),
        Err(e) => reject(Rejection::new(500, format!("ingest task failed: {e}"))),
    }
}

fn peer_of(ext: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    ext.get::<PeerAddr>().map(|p| p.0)
}

/// A refusal, logged (rate-limited) with who and why.
fn refuse(
    st: &AppState,
    route: &str,
    peer: Option<std::net::SocketAddr>,
    agent: Option<&str>,
    r: Rejection,
) -> Response {
    st.guard.log_refusal(route, peer, agent, &r);
    reject(r)
}

/// The exposition, gzip-compressed when the scraper accepts it (Prometheus does; 1,000
/// services are ~1.9 MiB of text).
async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let om = text(header::ACCEPT).is_some_and(|a| a.contains("application/openmetrics-text"));
    let gzip = attest_config::http::accepts_gzip(text(header::ACCEPT_ENCODING));
    let exp = st.exporter.clone();
    let res = tokio::task::spawn_blocking(move || {
        let (ctype, body) = exp.render(om);
        let body = if gzip {
            crate::metrics::gzip(body.as_bytes())
        } else {
            Ok(body.into_bytes())
        };
        body.map(|b| (ctype, b))
    })
    .await;
    match res {
        Ok(Ok((ctype, body))) => {
            let mut resp = ([(header::CONTENT_TYPE, ctype)], body).into_response();
            let h = resp.headers_mut();
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            resp
        }
        Ok(Err(e)) => reject(Rejection::new(
            500,
            format!("cannot compress the metrics: {e}"),
        )),
        Err(e) => reject(Rejection::new(500, format!("metrics task failed: {e}"))),
    }
}

/// Ready when the store answers a read and its latest write did not fail (a full disk
/// refuses writes while reads still work).
async fn ready(State(st): State<AppState>) -> Response {
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || store.counts()).await {
        Ok(Ok(_)) => match st.ingest.write_failure(st.clock.now_utc()) {
            None => "ready\n".into_response(),
            Some(why) => {
                reject(Rejection::new(503, format!("storage refuses writes: {why}")).retry_after(5))
            }
        },
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

/// Authenticates an admin token (`[[admin]]` or `[server] admin_token`); answers the name
/// of its holder, which is what records of the call show (never the token).
fn admin(st: &AppState, headers: &HeaderMap) -> Result<String, Rejection> {
    if !st.access.has_admins() {
        return Err(Rejection::new(
            403,
            "the admin API is disabled: add an [[admin]] (name, token) or set [server] admin_token in the collector config",
        ));
    }
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(attest_config::http::bearer_token)
        .filter(|t| !t.is_empty());
    match got {
        None => Err(Rejection::new(
            401,
            "missing bearer token for the admin API",
        )),
        Some(t) => st
            .access
            .admin(t)
            .ok_or_else(|| Rejection::new(403, "wrong admin token")),
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

/// The admin token is checked before the body is read (like ingest's).
async fn add_maintenance(State(st): State<AppState>, req: Request) -> Response {
    const ROUTE: &str = "/api/v1/maintenance";
    let (parts, body) = req.into_parts();
    let peer = peer_of(&parts.extensions);
    let registrant = match admin(&st, &parts.headers) {
        Ok(name) => name,
        Err(r) => return refuse(&st, ROUTE, peer, None, r),
    };
    let read = async {
        let held = st.guard.reserve(&parts.headers, MAINTENANCE_BODY_LIMIT)?;
        Ok::<_, Rejection>((
            st.guard.read_body(body, MAINTENANCE_BODY_LIMIT).await?,
            held,
        ))
    };
    let body = match read.await {
        Ok((b, _held)) => b,
        Err(r) => return refuse(&st, ROUTE, peer, Some("admin"), r),
    };
    let (maintenance, now) = (st.maintenance.clone(), st.clock.now_utc());
    match tokio::task::spawn_blocking(move || maintenance.add(&body, &registrant, now)).await {
        Ok(Ok(v)) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, e.to_string())),
    }
}

async fn cancel_maintenance(
    State(st): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    if let Err(r) = admin(&st, req.headers()) {
        let peer = peer_of(req.extensions());
        return refuse(&st, "/api/v1/maintenance/{id}", peer, None, r);
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

/// `GET /api/v1/reports/{month}/{service}/notes`: a read route (the auth middleware asks
/// for a read credential when readers are configured).
async fn list_notes(
    State(st): State<AppState>,
    Path((month, service)): Path<(String, String)>,
) -> Response {
    let notes = st.notes.clone();
    match tokio::task::spawn_blocking(move || notes.list(&month, &service)).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, e.to_string())),
    }
}

/// The admin token is checked before the body is read (like maintenance's); the note is
/// stored under the admin credential's name.
async fn add_note(
    State(st): State<AppState>,
    Path((month, service)): Path<(String, String)>,
    req: Request,
) -> Response {
    const ROUTE: &str = "/api/v1/reports/{month}/{service}/notes";
    let limit = crate::notes::NOTE_BODY_LIMIT;
    let (parts, body) = req.into_parts();
    let peer = peer_of(&parts.extensions);
    let writer = match admin(&st, &parts.headers) {
        Ok(name) => name,
        Err(r) => return refuse(&st, ROUTE, peer, None, r),
    };
    let read = async {
        let held = st.guard.reserve(&parts.headers, limit)?;
        Ok::<_, Rejection>((st.guard.read_body(body, limit).await?, held))
    };
    let body = match read.await {
        Ok((b, _held)) => b,
        Err(r) => return refuse(&st, ROUTE, peer, Some("admin"), r),
    };
    let (notes, now) = (st.notes.clone(), st.clock.now_utc());
    let res =
        tokio::task::spawn_blocking(move || notes.add_json(&month, &service, &body, &writer, now))
            .await;
    match res {
        Ok(Ok(v)) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, e.to_string())),
    }
}
