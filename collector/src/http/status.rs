//! Status page routes: `GET /status` (every service the request may see) and
//! `GET /status/{service}`. `auth.rs` classes them `Status`: a read route, open to requests
//! without credentials when `[status] public = true` (then the page shows only
//! `[status] services`). Rendered from memory on a blocking thread. Documented in
//! docs/http-api.md.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppState, reject};
use crate::reject::Rejection;
use crate::status::View;

/// No script, style or image from anywhere: the page is self-contained by construction.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(all))
        .route("/status/", get(all))
        .route("/status/{service}", get(one))
}

/// The view `auth::guard` decided; without its mark, the narrower one.
fn view_of(req: &Request) -> View {
    req.extensions()
        .get::<View>()
        .copied()
        .unwrap_or(View::Public)
}

async fn all(State(st): State<AppState>, req: Request) -> Response {
    render(st, view_of(&req), None).await
}

async fn one(State(st): State<AppState>, Path(service): Path<String>, req: Request) -> Response {
    render(st, view_of(&req), Some(service)).await
}

async fn render(st: AppState, view: View, service: Option<String>) -> Response {
    let board = st.status.clone();
    let res = tokio::task::spawn_blocking(move || board.page(view, service.as_deref())).await;
    match res {
        Ok(Ok(html)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CSP),
            ],
            html,
        )
            .into_response(),
        Ok(Err(r)) => reject(r),
        Err(e) => reject(Rejection::new(500, format!("status page task failed: {e}"))),
    }
}
