//! Fleet routes: `GET /api/v1/agents` (every configured agent with what is known of it) and
//! `GET /api/v1/agents/{id}/checks` (an agent's assignment, for that agent's own token,
//! with ETag / If-None-Match and an optional long poll `?wait=SECONDS`).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, reject};
use crate::fleet::Fetch;
use crate::ingest::Rejection;
use attest_config::wire::{LOCAL_CHECKS_HEADER, MAX_WAIT_SECONDS};

pub(super) async fn list(State(st): State<AppState>) -> Response {
    let store = st.store.clone();
    let read = move || Ok::<_, crate::store::StoreError>((store.agents()?, store.agent_keys()?));
    let (stored, keys) = match tokio::task::spawn_blocking(read).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            return reject(Rejection::new(503, format!("cannot read agents: {e}")).retry_after(5));
        }
        Err(e) => return reject(Rejection::new(500, format!("agents task failed: {e}"))),
    };
    axum::Json(st.fleet.list(&stored, &keys)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChecksQuery {
    wait: Option<u64>,
}

pub(super) async fn checks(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<ChecksQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return reject(Rejection::new(400, format!("{e}; expected ?wait=SECONDS"))),
    };
    let wait = q.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        let msg = format!("wait must be at most {MAX_WAIT_SECONDS} seconds, got {wait}");
        return reject(Rejection::new(400, msg).field("wait"));
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let agent = match st.ingest.authenticate(text(header::AUTHORIZATION.as_str())) {
        Ok(a) => a,
        Err(r) => return reject(r),
    };
    if agent != id {
        let msg = format!("the token belongs to agent {agent:?}, not {id:?}");
        return reject(Rejection::new(403, msg));
    }
    let known = text(header::IF_NONE_MATCH.as_str()).map(etag_value);
    let current = match known {
        Some(k) if wait > 0 => {
            st.fleet
                .wait_for_change(&agent, k, Duration::from_secs(wait))
                .await
        }
        _ => st.fleet.assignment(&agent),
    };
    let Some(current) = current else {
        return reject(Rejection::new(
            404,
            format!("agent {agent:?} is no longer configured"),
        ));
    };
    let local_checks = text(LOCAL_CHECKS_HEADER)
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let fetch = Fetch {
        agent: &agent,
        user_agent: text(header::USER_AGENT.as_str()),
        local_checks,
        now: st.clock.now_utc(),
    };
    st.fleet.record_fetch(&fetch, &current);
    let etag = HeaderValue::from_str(&format!("\"{}\"", current.revision))
        .unwrap_or(HeaderValue::from_static("\"\""));
    if known == Some(current.revision.as_str()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    ([(header::ETAG, etag)], axum::Json(current)).into_response()
}

/// `"abc"` or `W/"abc"` → `abc`.
fn etag_value(h: &str) -> &str {
    let h = h.trim();
    let h = h.strip_prefix("W/").unwrap_or(h);
    h.trim_matches('"')
}
