//! Who may call which route: the route classes, read credentials (`[[reader]]` tokens and
//! the web configuration's basic-auth users), and the web configuration's response headers.
//! One middleware over the whole router (`guard`), so handlers keep only their own checks
//! (the agent token of ingest and of an agent's checks, the admin token of maintenance).
//!
//! Invariants:
//! - Nothing configured (no `[[reader]]`, no `basic_auth_users`): every route behaves as it
//!   did before read credentials existed (read routes open).
//! - Configured: a `Read` route answers only a reader token, a basic-auth user, an agent
//!   token or the admin token; anything else gets 401 with `WWW-Authenticate`.
//! - A reader token is refused (403, with the reason) on every route that is not `Read`:
//!   it can never register maintenance, ingest or fetch an agent's checks.
//! - GET and HEAD paths not in [`ROUTES`] are `Read`: a new read route is protected even
//!   before its line is added. Other methods are `Own` (their handler authenticates).
//! - Credentials are checked on the headers only; no body byte is read here.
//! - With the web configuration's `rate_limit`, every request but the `Open` ones counts,
//!   and one beyond the limit gets 429 with `Retry-After` before its credentials are checked.

use std::sync::{Arc, RwLock};

use attest_config::{AdminAuth, ReaderAuth};
use attest_web::{BASIC_CHALLENGE, BasicAuth, RateLimiter, WebSecurity};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{AppState, peer_of, reject};
use crate::ingest::{Rejection, constant_time_eq};
use crate::status::View;

/// The `WWW-Authenticate` value of a 401 that a bearer token would answer.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"attest\"";

/// How a route is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Never needs credentials (health checks of supervisors and load balancers).
    Open,
    /// Read-only; needs a read credential once readers or basic auth are configured.
    Read,
    /// The handler checks its own token (agent or admin); reader tokens are refused here.
    Own,
    /// The status page: `Read`, except that with `[status] public = true` a request without
    /// an `Authorization` header passes too and sees only the public services.
    Status,
}

/// One line per route with a class of its own (GET/HEAD). `*` at the end matches any rest
/// of the path, `{x}` one path segment. First match wins.
pub const ROUTES: &[(&str, Class)] = &[
    ("/-/healthy", Class::Open),
    ("/-/ready", Class::Open),
    // The agent's own token, checked by the handler.
    ("/api/v1/agents/{id}/checks", Class::Own),
    ("/metrics", Class::Read),
    ("/api/v1/sla*", Class::Read),
    ("/api/v1/agents", Class::Read),
    ("/api/v1/maintenance", Class::Read),
    ("/api/v1/reports*", Class::Read),
    ("/reports*", Class::Read),
    ("/status", Class::Status),
    ("/status/*", Class::Status),
];

/// The class of a request: GET and HEAD by [`ROUTES`] (unlisted: `Read`), others `Own`.
pub fn classify(method: &Method, path: &str) -> Class {
    if method != Method::GET && method != Method::HEAD {
        return Class::Own;
    }
    ROUTES
        .iter()
        .find(|(pattern, _)| matches(pattern, path))
        .map_or(Class::Read, |(_, class)| *class)
}

fn matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return path.starts_with(prefix);
    }
    let (mut p, mut s) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) if want.starts_with('{') && !got.is_empty() => {}
            (Some(want), Some(got)) if want == got => {}
            _ => return false,
        }
    }
}

/// Read and admin credentials and response headers of one collector. Readers and admins
/// follow a reload of collector.toml; basic auth and headers come from the web
/// configuration, read at start.
#[derive(Default)]
pub struct Access {
    readers: RwLock<Vec<ReaderAuth>>,
    admins: RwLock<Vec<AdminAuth>>,
    basic: RwLock<Option<Arc<BasicAuth>>>,
    headers: RwLock<Vec<(HeaderName, HeaderValue)>>,
    rate: RwLock<Option<Arc<RateLimiter>>>,
}

impl Access {
    pub fn new(readers: &[ReaderAuth], admins: &[AdminAuth]) -> Access {
        let a = Access::default();
        a.set_readers(readers);
        a.set_admins(admins);
        a
    }

    /// The admin tokens from now on (start and every reload).
    pub fn set_admins(&self, admins: &[AdminAuth]) {
        *self
            .admins
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = admins.to_vec();
    }

    /// Whether any admin token is configured (else the admin API is disabled).
    pub fn has_admins(&self) -> bool {
        !self
            .admins
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }

    /// The name of the admin whose token `bearer` is.
    pub fn admin(&self, bearer: &str) -> Option<String> {
        let admins = self
            .admins
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        find_token(&admins, bearer)
    }

    /// The read-only tokens from now on (start and every reload).
    pub fn set_readers(&self, readers: &[ReaderAuth]) {
        *self
            .readers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = readers.to_vec();
    }

    /// Basic-auth users, response headers and rate limit of the web configuration.
    pub fn set_web(&self, web: &WebSecurity) {
        *self
            .rate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = web.rate.clone();
        *self
            .basic
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = web.basic.clone();
        let headers = web
            .headers
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::try_from(n.as_str()).ok()?,
                    HeaderValue::try_from(v.as_str()).ok()?,
                ))
            })
            .collect();
        *self
            .headers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = headers;
    }

    /// `rate_limit`: `Err` is the 429 for a request beyond it.
    fn admit(&self) -> Result<(), Rejection> {
        let rate = self
            .rate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match rate.map(|r| r.admit().map_err(|retry| (r, retry))) {
            None | Some(Ok(())) => Ok(()),
            Some(Err((r, retry))) => {
                let rej = Rejection::new(429, r.refusal().trim_end());
                Err(match retry {
                    Some(secs) => rej.retry_after(secs),
                    None => rej,
                })
            }
        }
    }

    fn basic(&self) -> Option<Arc<BasicAuth>> {
        self.basic
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The name of the reader whose token `bearer` is.
    fn reader(&self, bearer: &str) -> Option<String> {
        let readers = self
            .readers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        find_token(&readers, bearer)
    }

    /// Whether read routes need credentials.
    fn protects_reads(&self) -> bool {
        self.basic().is_some()
            || !self
                .readers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty()
    }

    fn add_headers(&self, resp: &mut Response) {
        let headers = self
            .headers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (n, v) in headers.iter() {
            resp.headers_mut().insert(n.clone(), v.clone());
        }
    }
}

/// The middleware: classify, check the credentials the class needs, add the headers.
pub(super) async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let class = classify(req.method(), req.uri().path());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut req = req;
    // rate_limit before any credential check (as exporter-toolkit, and before bcrypt).
    let admitted = if class == Class::Open {
        Ok(())
    } else {
        st.access.admit()
    };
    let verdict = match (admitted, class) {
        (Err(r), _) => Err(r),
        (Ok(()), Class::Open) => Ok(()),
        (Ok(()), Class::Read) => read_allowed(&st, auth.as_deref()).await,
        (Ok(()), Class::Own) => not_a_reader(&st, auth.as_deref(), req.method(), req.uri().path()),
        (Ok(()), Class::Status) if auth.is_none() && st.status.public() => {
            req.extensions_mut().insert(View::Public);
            Ok(())
        }
        (Ok(()), Class::Status) => {
            let allowed = read_allowed(&st, auth.as_deref()).await;
            req.extensions_mut().insert(View::Full);
            allowed
        }
    };
    let mut resp = match verdict {
        Ok(()) => next.run(req).await,
        Err(r) => {
            st.guard
                .log_refusal(req.uri().path(), peer_of(req.extensions()), None, &r);
            challenge(reject(r), st.access.basic().is_some())
        }
    };
    st.access.add_headers(&mut resp);
    resp
}

/// The holder of `bearer` among `tokens`. Every token is compared in constant time, the
/// match included, so the time taken tells nothing about which one matched.
fn find_token(tokens: &[attest_config::NamedToken], bearer: &str) -> Option<String> {
    let mut found = None;
    for t in tokens {
        if constant_time_eq(t.token.as_bytes(), bearer.as_bytes()) {
            found = Some(t.name.clone());
        }
    }
    found
}

/// The token of a `Bearer` header, the scheme in any case (RFC 9110).
fn bearer(auth: Option<&str>) -> Option<&str> {
    auth.and_then(attest_config::http::bearer_token)
}

/// A read route: open when nothing is configured; otherwise a reader token, a basic-auth
/// user, an agent token or the admin token.
async fn read_allowed(st: &AppState, auth: Option<&str>) -> Result<(), Rejection> {
    if !st.access.protects_reads() {
        return Ok(());
    }
    let Some(h) = auth else {
        return Err(Rejection::new(
            401,
            "credentials required: send a reader token (Authorization: Bearer) or, when the web configuration has basic_auth_users, basic auth",
        ));
    };
    if let Some(token) = bearer(Some(h)) {
        let admin = st.access.admin(token).is_some();
        if st.access.reader(token).is_some() || admin || st.ingest.authenticate(auth).is_ok() {
            return Ok(());
        }
        return Err(Rejection::new(
            401,
            "unknown token: expected a [[reader]] token, an agent's token or the admin token",
        ));
    }
    let is_basic = h.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic "));
    match (is_basic, st.access.basic()) {
        (true, Some(basic)) => basic
            .check(auth)
            .await
            .map(|_| ())
            .map_err(|why| Rejection::new(401, why.to_string())),
        (true, None) => Err(Rejection::new(
            401,
            "basic auth is not configured on this collector (no basic_auth_users in a --web.config.file); use a reader token",
        )),
        (false, _) => Err(Rejection::new(
            401,
            "unsupported Authorization scheme: expected 'Bearer <token>' or 'Basic <credentials>'",
        )),
    }
}

/// A route that is not read-only: a reader token is refused with the reason (the handler
/// would only say "wrong token").
fn not_a_reader(
    st: &AppState,
    auth: Option<&str>,
    method: &Method,
    path: &str,
) -> Result<(), Rejection> {
    match bearer(auth).and_then(|t| st.access.reader(t)) {
        None => Ok(()),
        Some(name) => Err(Rejection::new(
            403,
            format!(
                "the token of reader {name:?} is read-only: it may GET /metrics, /api/v1/sla, /api/v1/agents, /api/v1/maintenance and reports, not {method} {path}"
            ),
        )),
    }
}

/// A 401 says how to authenticate: always a bearer token, basic auth when configured.
fn challenge(mut resp: Response, basic: bool) -> Response {
    if resp.status() == axum::http::StatusCode::UNAUTHORIZED && basic {
        resp.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BASIC_CHALLENGE),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_method_and_path() {
        let get = Method::GET;
        let cases = [
            (&get, "/-/healthy", Class::Open),
            (&get, "/-/ready", Class::Open),
            (&get, "/metrics", Class::Read),
            (&Method::HEAD, "/metrics", Class::Read),
            (&get, "/api/v1/sla", Class::Read),
            (&get, "/api/v1/sla/history", Class::Read),
            (&get, "/api/v1/agents", Class::Read),
            (&get, "/api/v1/agents/web-01/checks", Class::Own),
            (&get, "/api/v1/agents//checks", Class::Read),
            (&get, "/api/v1/maintenance", Class::Read),
            (&get, "/api/v1/reports/2026-05", Class::Read),
            (&get, "/reports/2026-05.pdf", Class::Read),
            (&get, "/something/new", Class::Read),
            (&Method::POST, "/api/v1/maintenance", Class::Own),
            (&Method::DELETE, "/api/v1/maintenance/3", Class::Own),
            (&Method::POST, attest_config::wire::INGEST_PATH, Class::Own),
            (&Method::POST, "/metrics", Class::Own),
            (&get, "/status", Class::Status),
            (&get, "/status/web%20shop", Class::Status),
            (&get, "/statusx", Class::Read),
        ];
        for (method, path, want) in cases {
            assert_eq!(classify(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn reader_tokens_are_found_by_value_only() {
        let a = Access::new(
            &[ReaderAuth {
                name: "grafana".into(),
                token: "reader-token".into(),
            }],
            &[],
        );
        assert_eq!(a.reader("reader-token").as_deref(), Some("grafana"));
        assert_eq!(a.reader("reader-toke"), None);
        assert!(a.protects_reads());
        a.set_readers(&[]);
        assert!(!a.protects_reads());
    }
}
