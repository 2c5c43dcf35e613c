//! The agent file: `[agent]`, `[spool]`, `[transport]` and `[[check]]`.
//!
//! Invariants:
//! - `[agent]` is required (id, collector URLs, token); every other section has defaults.
//! - The collectors come from exactly one of `collector_url` (one) and `collector_urls`
//!   (several, in order of preference): at least one, each a valid URL, none twice.
//! - Check ids are unique within the file: they are the series key at the collector.

use std::collections::HashMap;
use std::time::Duration;

use toml::de::DeTable;

use super::check;
use super::values;
use super::walk::{Ctx, Section, Val};
use crate::model::{AgentConfig, AgentIdentity, SpoolConfig, TransportConfig, WhenFull};
use crate::units::{Cidr, parse_cidr};

pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
pub const DEFAULT_SPOOL_DIR: &str = "spool";
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 << 20;
pub const DEFAULT_BATCH_MAX_MEASUREMENTS: usize = 1000;
pub const DEFAULT_BATCH_MAX_AGE: Duration = Duration::from_secs(1);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
pub const DEFAULT_FAILBACK_AFTER: Duration = Duration::from_secs(60);

pub(crate) fn agent_file(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> Option<AgentConfig> {
    ctx.deny_unknown(root, &["agent", "spool", "transport", "check"]);
    let empty = DeTable::new();
    let agent = match ctx.table(root, "agent", "[agent]") {
        Some(sec) => identity(ctx, &sec),
        None => {
            if root.get("agent").is_none() {
                ctx.missing(root, "agent", "the agent's id, collector_url and token");
            }
            None
        }
    };
    let spool_sec = section_or_empty(ctx, root, "spool", "[spool]", &empty);
    let spool = spool(ctx, &spool_sec);
    let transport_sec = section_or_empty(ctx, root, "transport", "[transport]", &empty);
    let transport = transport(ctx, &transport_sec);
    let checks = checks(ctx, root);
    Some(AgentConfig {
        agent: agent?,
        spool,
        transport: transport?,
        checks: checks?,
    })
}

/// The section if present, else an empty table so that defaults flow through one path.
pub(crate) fn section_or_empty<'a, 'i>(
    ctx: &mut Ctx<'_>,
    root: &Section<'a, 'i>,
    key: &str,
    display: &str,
    empty: &'a DeTable<'i>,
) -> Section<'a, 'i> {
    ctx.table(root, key, display).unwrap_or_else(|| Section {
        table: empty,
        span: root.span.clone(),
        path: key.to_string(),
        display: display.to_string(),
    })
}

fn identity(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<AgentIdentity> {
    ctx.deny_unknown(
        sec,
        &[
            "id",
            "collector_url",
            "collector_urls",
            "token",
            "token_file",
            "listen",
            "max_concurrency",
            "allow_targets",
            "deny_targets",
            "signing_key_file",
        ],
    );
    let id = ctx.required_parsed(sec, "id", "a stable id like \"web-01\"", values::ident);
    let collector_urls = collector_urls(ctx, sec);
    let token = ctx.secret(sec, "token", "token_file");
    if sec.get("token").is_none() && sec.get("token_file").is_none() {
        ctx.missing(
            sec,
            "token",
            "or \"token_file\": the bearer token the collector expects",
        );
    }
    let listen = ctx.parsed(sec, "listen", values::socket_addr);
    let max_concurrency = ctx
        .usize(sec, "max_concurrency", 1, 100_000)
        .unwrap_or(DEFAULT_MAX_CONCURRENCY);
    let allow_targets = cidrs(ctx, sec, "allow_targets");
    let deny_targets = cidrs(ctx, sec, "deny_targets");
    let signing_key_file = ctx.path(sec, "signing_key_file");
    Some(AgentIdentity {
        id: id?,
        collector_urls: collector_urls?,
        token: token?,
        listen,
        max_concurrency,
        allow_targets,
        deny_targets,
        signing_key_file,
    })
}

/// `collector_url` (one) or `collector_urls` (several, in order of preference): exactly one
/// of the two keys, each URL valid, none listed twice.
fn collector_urls(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<String>> {
    const ONE: &str = "collector_url";
    const MANY: &str = "collector_urls";
    match (sec.get(ONE), sec.get(MANY)) {
        (Some(_), Some(_)) => {
            let msg = format!("set either {ONE:?} or {MANY:?}, not both");
            ctx.error(sec.key_span(MANY), &sec.path, msg);
            None
        }
        (None, None) => {
            let what =
                "or \"collector_urls\": the collector's base URL like \"https://collector:9850\"";
            ctx.missing(sec, ONE, what);
            None
        }
        (Some(_), None) => ctx.parsed(sec, ONE, values::http_url).map(|u| vec![u]),
        (None, Some(v)) => url_list(ctx, v, &sec.key_path(MANY)),
    }
}

/// A non-empty array of distinct collector URLs; each bad entry is reported at its position.
fn url_list(ctx: &mut Ctx<'_>, v: &Val<'_>, path: &str) -> Option<Vec<String>> {
    let what = "a non-empty array of URLs like [\"https://a:9850\", \"https://b:9850\"]";
    let items = ctx.array(v, path, what)?;
    if items.is_empty() {
        ctx.expected(v, path, what);
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(url) = ctx.parsed_value(item, &p, values::http_url) else {
            ok = false;
            continue;
        };
        let same = |u: &String| u.trim_end_matches('/') == url.trim_end_matches('/');
        if let Some(first) = out.iter().position(same) {
            let what = format!("a URL not listed already ({path}[{first}] is the same)");
            ctx.expected(item, &p, &what);
            ok = false;
        }
        out.push(url);
    }
    ok.then_some(out)
}

/// An array of networks (`["10.0.0.0/8", "2001:db8::/32"]`); each bad entry is reported at
/// its own position and left out.
fn cidrs(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>, key: &str) -> Vec<Cidr> {
    let Some(v) = sec.get(key) else {
        return Vec::new();
    };
    let path = sec.key_path(key);
    let what = "an array of networks like [\"10.0.0.0/8\", \"2001:db8::/32\"]";
    let Some(items) = ctx.array(v, &path, what) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| ctx.parsed_value(item, &format!("{path}[{i}]"), parse_cidr))
        .collect()
}

fn spool(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> SpoolConfig {
    ctx.deny_unknown(sec, &["dir", "max_bytes", "when_full"]);
    let dir = ctx
        .path(sec, "dir")
        .unwrap_or_else(|| ctx.resolve(DEFAULT_SPOOL_DIR));
    let max_bytes = ctx
        .bytes(sec, "max_bytes")
        .unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
    let when_full = ctx
        .choice(
            sec,
            "when_full",
            &[
                ("drop_oldest", WhenFull::DropOldest),
                ("drop_newest", WhenFull::DropNewest),
            ],
        )
        .unwrap_or(WhenFull::DropOldest);
    SpoolConfig {
        dir,
        max_bytes,
        when_full,
    }
}

fn transport(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<TransportConfig> {
    ctx.deny_unknown(
        sec,
        &[
            "batch_max_measurements",
            "batch_max_age",
            "request_timeout",
            "ca_file",
            "client_cert",
            "client_key",
            "backoff_initial",
            "backoff_max",
            "failback_after",
        ],
    );
    let batch_max_measurements = ctx
        .usize(sec, "batch_max_measurements", 1, 100_000)
        .unwrap_or(DEFAULT_BATCH_MAX_MEASUREMENTS);
    let dur = |ctx: &mut Ctx<'_>, key, default| {
        ctx.parsed(sec, key, values::positive_duration)
            .unwrap_or(default)
    };
    let batch_max_age = dur(ctx, "batch_max_age", DEFAULT_BATCH_MAX_AGE);
    let request_timeout = dur(ctx, "request_timeout", DEFAULT_REQUEST_TIMEOUT);
    let backoff_initial = dur(ctx, "backoff_initial", DEFAULT_BACKOFF_INITIAL);
    let backoff_max = dur(ctx, "backoff_max", DEFAULT_BACKOFF_MAX);
    let failback_after = dur(ctx, "failback_after", DEFAULT_FAILBACK_AFTER);
    let ca_file = ctx.path(sec, "ca_file");
    let (client_cert, client_key) = ctx.pair(sec, "client_cert", "client_key");
    let mut ok = true;
    if backoff_initial > backoff_max {
        let fd = values::format_duration;
        ctx.conflict(
            sec,
            (
                "backoff_initial",
                format!("at most backoff_max ({})", fd(backoff_max)),
            ),
            (
                "backoff_max",
                format!("at least backoff_initial ({})", fd(backoff_initial)),
            ),
        );
        ok = false;
    }
    ok.then_some(TransportConfig {
        batch_max_measurements,
        batch_max_age,
        request_timeout,
        ca_file,
        client_cert,
        client_key,
        backoff_initial,
        backoff_max,
        failback_after,
    })
}

/// All `[[check]]` tables; `None` when any is invalid or ids collide.
fn checks(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> Option<Vec<crate::model::Check>> {
    let sections = ctx.tables(root, "check", "[[check]]");
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = true;
    for sec in &sections {
        let Some(c) = check::check(ctx, sec) else {
            ok = false;
            continue;
        };
        if let Some(first) = seen.get(&c.id) {
            let msg = format!(
                "expected a unique id, found {:?} (also used by {first})",
                c.id
            );
            let span = sec.get("id").map_or(sec.span.clone(), toml::Spanned::span);
            ctx.error(span, &sec.key_path("id"), msg);
            ok = false;
            continue;
        }
        seen.insert(c.id.clone(), sec.path.clone());
        out.push(c);
    }
    ok.then_some(out)
}
