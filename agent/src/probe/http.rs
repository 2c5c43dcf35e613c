//! HTTP(S) probe on a fresh hyper HTTP/1.1 connection per attempt, so every phase is
//! real: resolve, connect, tls, processing (request written → response head) and
//! transfer (body read). Redirects are followed hop by hop with phases summed over
//! hops, like blackbox_exporter.
//!
//! Invariants: the body read is capped by `max_body_bytes` (a larger body fails the
//! probe with reason `body`, as blackbox's `body_size_limit` does); a failed target is a
//! report, never an error; nothing here panics on what a server sends.
//!
//! Values: `http_status_code`, `http_content_length_bytes` (bytes of the final body
//! read), `http_redirects`, and for TLS `tls_earliest_cert_expiry_seconds` (unix
//! seconds) plus the label `tls_version`. Label `address`: the address probed last.

use std::sync::Arc;

use attest_config::wire::{FailureReason, Phase};
use attest_config::{HttpCheck, IpFamily, StatusRange, TlsClientOptions};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, LOCATION, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use regex_lite::Regex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::net::{self, Failure, Outcome};
use super::tls_client::TlsSetup;
use super::{BuildError, Probe, ProbeFuture, compile_regex};

const USER_AGENT_VALUE: &str = concat!("attest-agent/", env!("CARGO_PKG_VERSION"));

/// A configured HTTP check with its patterns compiled and TLS client prepared. It keeps
/// only what a probe reads (not a copy of the definition), and what most checks leave
/// unset lives in [`Extra`], absent when empty: the agent holds one of these per check.
pub struct HttpProbe {
    target: Uri,
    method: Method,
    /// Shared with other checks of the same TLS options (see `tls_client`). `None` for an
    /// `http://` URL whose TLS options name no file: such a check needs TLS only if
    /// redirected to `https://`, and then sets it up for that probe; until then the agent
    /// need not hold the system trust store (about 170 KiB) for it.
    tls: Option<Arc<TlsSetup>>,
    targets: net::Targets,
    max_body_bytes: u64,
    max_redirects: u32,
    follow_redirects: bool,
    ip_family: IpFamily,
    extra: Option<Box<Extra>>,
}

/// The settings most checks leave empty.
struct Extra {
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<String>,
    /// Empty means 200–299.
    expect_status: Vec<StatusRange>,
    body_contains: Vec<String>,
    body_regex: Vec<Regex>,
    body_not_regex: Vec<Regex>,
    header_match: Vec<(HeaderName, Regex)>,
    /// The TLS options of a check set up on demand (see `HttpProbe::tls`), when not the
    /// defaults.
    tls: Option<TlsClientOptions>,
}

/// The settings of a check that sets none of them.
static NO_EXTRA: Extra = Extra {
    headers: Vec::new(),
    body: None,
    expect_status: Vec::new(),
    body_contains: Vec::new(),
    body_regex: Vec::new(),
    body_not_regex: Vec::new(),
    header_match: Vec::new(),
    tls: None,
};

/// ALPN offered by the HTTP probe: it speaks HTTP/1.1 only.
const ALPN: &[&[u8]] = &[b"http/1.1"];

impl Extra {
    fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.body.is_none()
            && self.expect_status.is_empty()
            && self.body_contains.is_empty()
            && self.body_regex.is_empty()
            && self.body_not_regex.is_empty()
            && self.header_match.is_empty()
            && self.tls.is_none()
    }
}

/// The part of one hop's response the checks need.
struct HopResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl HttpProbe {
    /// Confines the probe to `targets` (see [`net::Targets`]).
    pub fn confined(mut self, targets: net::Targets) -> Self {
        self.targets = targets;
        self
    }

    pub fn new(id: &str, spec: &HttpCheck) -> Result<Self, BuildError> {
        let target: Uri = spec
            .url
            .parse()
            .map_err(|e| BuildError::invalid(id, format!("url {:?}: {e}", spec.url)))?;
        target_parts(&target).map_err(|f| BuildError::invalid(id, f.error))?;
        let method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|e| BuildError::invalid(id, format!("method {:?}: {e}", spec.method)))?;
        let headers = spec
            .headers
            .iter()
            .map(|(k, v)| parse_header(id, k, v))
            .collect::<Result<_, _>>()?;
        let header_match = spec
            .header_match
            .iter()
            .map(|(k, pat)| Ok((header_name(id, k)?, compile_regex(id, pat)?)))
            .collect::<Result<_, BuildError>>()?;
        let names_file = spec.tls.ca_file.is_some()
            || spec.tls.client_cert.is_some()
            || spec.tls.client_key.is_some();
        // Files are read now, so a missing one stops the start-up, not a probe.
        let on_demand = !names_file && target.scheme_str() != Some("https");
        let tls = if on_demand {
            None
        } else {
            Some(TlsSetup::shared(&spec.tls, ALPN)?)
        };
        let extra = Extra {
            tls: (on_demand && spec.tls != TlsClientOptions::default()).then(|| spec.tls.clone()),
            headers,
            body: spec.body.clone(),
            expect_status: spec.expect_status.clone(),
            body_contains: spec.body_contains.clone(),
            body_regex: compile_all(id, &spec.body_regex)?,
            body_not_regex: compile_all(id, &spec.body_not_regex)?,
            header_match,
        };
        Ok(HttpProbe {
            targets: net::Targets::any(),
            target,
            method,
            tls,
            max_body_bytes: spec.max_body_bytes,
            max_redirects: spec.max_redirects,
            follow_redirects: spec.follow_redirects,
            ip_family: spec.ip_family,
            extra: (!extra.is_empty()).then(|| Box::new(extra)),
        })
    }

    fn extra(&self) -> &Extra {
        self.extra.as_deref().unwrap_or(&NO_EXTRA)
    }

    /// The TLS setup for an `https://` hop: the check's own, or set up now for a check
    /// whose URL is `http://` (see `HttpProbe::tls`).
    fn tls_setup(&self) -> Result<Arc<TlsSetup>, Failure> {
        if let Some(tls) = &self.tls {
            return Ok(tls.clone());
        }
        let defaults;
        let opts = match &self.extra().tls {
            Some(opts) => opts,
            None => {
                defaults = TlsClientOptions::default();
                &defaults
            }
        };
        TlsSetup::shared(opts, ALPN)
            .map_err(|e| Failure::new(FailureReason::Agent, Phase::Tls, e.to_string()))
    }

    async fn run(&self, deadline: Instant, out: &mut Outcome) -> Result<(), Failure> {
        let mut uri = self.target.clone();
        let mut method = self.method.clone();
        let mut body = self.extra().body.clone();
        let mut redirects: u32 = 0;
        loop {
            let resp = self.hop(&uri, &method, body.clone(), deadline, out).await?;
            let location = resp.headers.get(LOCATION).and_then(|v| v.to_str().ok());
            match location {
                Some(loc) if self.follow_redirects && resp.status.is_redirection() => {
                    if redirects >= self.max_redirects {
                        out.value("http_redirects", f64::from(redirects));
                        return Err(Failure::check(
                            FailureReason::Redirects,
                            format!("more than {} redirects", self.max_redirects),
                        ));
                    }
                    redirects += 1;
                    uri = resolve_location(&uri, loc)?;
                    if redirect_drops_body(resp.status, &method) {
                        method = Method::GET;
                        body = None;
                    }
                }
                _ => {
                    out.value("http_redirects", f64::from(redirects));
                    return self.check_response(&resp, out);
                }
            }
        }
    }

    /// One request on a fresh connection: resolve, connect, tls, processing, transfer.
    async fn hop(
        &self,
        uri: &Uri,
        method: &Method,
        body: Option<String>,
        deadline: Instant,
        out: &mut Outcome,
    ) -> Result<HopResponse, Failure> {
        let (host, port, https) = target_parts(uri)?;
        let addr = out
            .timed(
                Phase::Resolve,
                deadline,
                net::resolve(&host, port, self.ip_family, &self.targets),
            )
            .await?;
        out.labels.insert("address".to_string(), addr.to_string());
        let tcp = out
            .timed(Phase::Connect, deadline, net::connect(addr))
            .await?;
        let request = self.request(uri, method, body)?;
        if !https {
            return self.exchange(tcp, request, deadline, out).await;
        }
        let tls = self.tls_setup()?;
        let mut facts = Default::default();
        let handshake = async {
            let (result, f) = tls.handshake(tcp, &host).await;
            facts = f;
            result
        };
        let tls = out.timed(Phase::Tls, deadline, handshake).await;
        facts.record(out);
        self.exchange(tls?, request, deadline, out).await
    }

    fn request(
        &self,
        uri: &Uri,
        method: &Method,
        body: Option<String>,
    ) -> Result<Request<Full<Bytes>>, Failure> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or("", |a| a.as_str());
        let mut builder = Request::builder().method(method.clone()).uri(path);
        let user_has = |name: &HeaderName| self.extra().headers.iter().any(|(k, _)| k == name);
        if !user_has(&HOST) {
            builder = builder.header(HOST, authority);
        }
        if !user_has(&USER_AGENT) {
            builder = builder.header(USER_AGENT, USER_AGENT_VALUE);
        }
        // Every probe uses a fresh connection: saying so lets the server close first, so the
        // TIME_WAIT sockets pile up on the server, not in the agent's local port range.
        if !user_has(&CONNECTION) {
            builder = builder.header(CONNECTION, "close");
        }
        for (k, v) in &self.extra().headers {
            builder = builder.header(k, v);
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default()));
        builder
            .body(body)
            .map_err(|e| Failure::check(FailureReason::Agent, format!("cannot build request: {e}")))
    }

    async fn exchange<IO>(
        &self,
        io: IO,
        request: Request<Full<Bytes>>,
        deadline: Instant,
        out: &mut Outcome,
    ) -> Result<HopResponse, Failure>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let response = out
            .timed(Phase::Processing, deadline, send(io, request))
            .await?;
        let (head, incoming, _driver) = response;
        let body = out
            .timed(
                Phase::Transfer,
                deadline,
                read_body(incoming, self.max_body_bytes),
            )
            .await?;
        Ok(HopResponse {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    fn check_response(&self, resp: &HopResponse, out: &mut Outcome) -> Result<(), Failure> {
        out.value("http_status_code", f64::from(resp.status.as_u16()));
        out.value("http_content_length_bytes", resp.body.len() as f64);
        self.check_status(resp.status)?;
        self.check_headers(&resp.headers)?;
        self.check_body(&resp.body)
    }

    fn check_status(&self, status: StatusCode) -> Result<(), Failure> {
        let code = status.as_u16();
        let expect = &self.extra().expect_status;
        let ok = if expect.is_empty() {
            status.is_success()
        } else {
            expect.iter().any(|r| (r.lo..=r.hi).contains(&code))
        };
        if ok {
            Ok(())
        } else {
            Err(Failure::check(
                FailureReason::Status,
                format!("status {code}"),
            ))
        }
    }

    fn check_headers(&self, headers: &HeaderMap) -> Result<(), Failure> {
        for (name, re) in &self.extra().header_match {
            let matched = headers
                .get_all(name)
                .iter()
                .any(|v| re.is_match(&String::from_utf8_lossy(v.as_bytes())));
            if !matched {
                return Err(Failure::check(
                    FailureReason::Header,
                    format!("header {name} missing or not matching {:?}", re.as_str()),
                ));
            }
        }
        Ok(())
    }

    fn check_body(&self, body: &[u8]) -> Result<(), Failure> {
        let text = String::from_utf8_lossy(body);
        let fail = |msg: String| Err(Failure::check(FailureReason::Body, msg));
        let extra = self.extra();
        if let Some(s) = extra
            .body_contains
            .iter()
            .find(|s| !text.contains(s.as_str()))
        {
            return fail(format!("body does not contain {s:?}"));
        }
        if let Some(re) = extra.body_regex.iter().find(|re| !re.is_match(&text)) {
            return fail(format!("body does not match {:?}", re.as_str()));
        }
        if let Some(re) = extra.body_not_regex.iter().find(|re| re.is_match(&text)) {
            return fail(format!("body matches forbidden {:?}", re.as_str()));
        }
        Ok(())
    }
}

impl Probe for HttpProbe {
    fn probe(&self, deadline: Instant) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut out = Outcome::default();
            let result = self.run(deadline, &mut out).await;
            out.into_report(result)
        })
    }
}

/// Aborts the spawned connection driver when the probe is done with the connection.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type SendResult = (hyper::http::response::Parts, Incoming, AbortOnDrop);

/// Writes the request and waits for the response head (the processing phase).
async fn send<IO>(io: IO, request: Request<Full<Bytes>>) -> Result<SendResult, Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| hyper_failure(Phase::Processing, &e))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| hyper_failure(Phase::Processing, &e))?;
    let (parts, body) = response.into_parts();
    Ok((parts, body, driver))
}

/// Reads the body up to `cap` bytes; more than that fails the probe.
async fn read_body(mut body: Incoming, cap: u64) -> Result<Bytes, Failure> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| hyper_failure(Phase::Transfer, &e))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > cap {
                return Err(Failure::check(
                    FailureReason::Body,
                    format!("body larger than max_body_bytes ({cap})"),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

fn hyper_failure(phase: Phase, e: &hyper::Error) -> Failure {
    let reason = if e.is_parse() || e.is_parse_status() || e.is_incomplete_message() {
        FailureReason::Protocol
    } else {
        FailureReason::Connect
    };
    Failure::new(reason, phase, format!("http: {e}"))
}

/// `(host, port, is_https)` of an absolute http(s) URL.
fn target_parts(uri: &Uri) -> Result<(String, u16, bool), Failure> {
    let bad = |msg: &str| Failure::check(FailureReason::Protocol, format!("url {uri}: {msg}"));
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("scheme must be http or https")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((host, port, https))
}

/// Resolves a `Location` header against the URL that returned it (RFC 9110 §10.2.2).
fn resolve_location(base: &Uri, location: &str) -> Result<Uri, Failure> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |a| a.as_str());
    let absolute = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        format!("{scheme}://{authority}{dir}{location}")
    };
    absolute.parse().map_err(|e| {
        Failure::check(
            FailureReason::Protocol,
            format!("bad redirect location {location:?}: {e}"),
        )
    })
}

/// 303 always, and 301/302 after POST, turn into a GET without body, as browsers do.
fn redirect_drops_body(status: StatusCode, method: &Method) -> bool {
    status == StatusCode::SEE_OTHER
        || (matches!(status.as_u16(), 301 | 302) && *method == Method::POST)
}

fn header_name(id: &str, name: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| BuildError::invalid(id, format!("header name {name:?}: {e}")))
}

fn parse_header(
    id: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), BuildError> {
    let value = HeaderValue::from_str(value)
        .map_err(|e| BuildError::invalid(id, format!("header {name} value: {e}")))?;
    Ok((header_name(id, name)?, value))
}

fn compile_all(id: &str, patterns: &[String]) -> Result<Vec<Regex>, BuildError> {
    patterns.iter().map(|p| compile_regex(id, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn locations_resolve_against_base() {
        let base = uri("http://h:8080/a/b?x=1");
        assert_eq!(
            resolve_location(&base, "/c").unwrap(),
            uri("http://h:8080/c")
        );
        assert_eq!(
            resolve_location(&base, "c").unwrap(),
            uri("http://h:8080/a/c")
        );
        assert_eq!(resolve_location(&base, "//o/p").unwrap(), uri("http://o/p"));
        assert_eq!(
            resolve_location(&base, "https://x/y").unwrap(),
            uri("https://x/y")
        );
        assert!(resolve_location(&base, "http://bad host/").is_err());
    }

    #[test]
    fn target_parts_defaults_ports() {
        assert_eq!(
            target_parts(&uri("https://e.test/")).unwrap(),
            ("e.test".into(), 443, true)
        );
        assert_eq!(
            target_parts(&uri("http://[::1]:81/")).unwrap(),
            ("::1".into(), 81, false)
        );
        assert!(target_parts(&uri("ftp://e.test/")).is_err());
    }

    #[test]
    fn redirect_method_rules() {
        assert!(redirect_drops_body(StatusCode::SEE_OTHER, &Method::PUT));
        assert!(redirect_drops_body(StatusCode::FOUND, &Method::POST));
        assert!(!redirect_drops_body(
            StatusCode::TEMPORARY_REDIRECT,
            &Method::POST
        ));
        assert!(!redirect_drops_body(
            StatusCode::MOVED_PERMANENTLY,
            &Method::GET
        ));
    }
}
