//! The collector file: `[server]`, `[storage]`, `[ingest]`, `[capacity]`, `[[agent]]`,
//! `[[service]]`, and central `[[check]]` / `[[assign]]` (see `fleet.rs`).
//!
//! Invariants:
//! - Every section has defaults; an empty file is a valid collector accepting no agents.
//! - Agent ids and tokens are unique: the token identifies the agent, so two agents
//!   sharing one could impersonate each other.
//! - Reader (`[[reader]]`) names and tokens are unique, and no reader token is an agent's
//!   or the admin token: a token has exactly one set of rights.
//! - Service names are unique: they are the key of every SLA figure and report.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use toml::de::DeTable;

use super::agent::section_or_empty;
use super::fleet;
use super::service;
use super::status;
use super::values;
use super::walk::{Ctx, Section};
use crate::model::{
    ADMIN_TOKEN_NAME, AcceptChecks, AdminAuth, AgentAuth, CapacityConfig, CollectorConfig,
    IngestLimits, MaintenanceConfig, NamedToken, PostgresSslMode, PostgresTls, ReaderAuth,
    ReportConfig, ServerConfig, SkewPolicy, StorageBackend, StorageConfig, TrustNewKeys,
};
use crate::units::Ppm;

pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9850);
pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(35 * 86_400);
pub const DEFAULT_ROLLUP_RETENTION: Duration = Duration::from_secs(400 * 86_400);
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 << 20;
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_MEASUREMENTS_PER_BATCH: usize = 10_000;
pub const DEFAULT_MAX_BATCHES_PER_SECOND: f64 = 50.0;
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Equal to the default raw retention: an agent's spool at its default size holds a few
/// weeks of a typical agent's measurements, and older history belongs in `import`.
pub const DEFAULT_MAX_BACKFILL_AGE: Duration = Duration::from_secs(35 * 86_400);
/// Generous: a real agent has tens of checks; the cap stops one token from inventing series.
pub const DEFAULT_MAX_CHECKS_PER_AGENT: usize = 1000;
/// Eight bodies of the default `max_body_bytes` at once.
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Well inside systemd's default stop timeout (90 s): long polls and idle connections end at
/// once on shutdown, so only a request really in flight (an upload being committed) uses it.
/// A window may be registered up to a day after its start (an emergency change registered the
/// next morning); later registrations are refused.
pub const DEFAULT_MAX_RETROACTIVE: Duration = Duration::from_secs(86_400);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CAPACITY_WARNING: Ppm = Ppm(800_000);
pub const DEFAULT_CAPACITY_CRITICAL: Ppm = Ppm(900_000);
pub const DEFAULT_TREND_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);
pub const DEFAULT_FORECAST_HORIZON: Duration = Duration::from_secs(90 * 86_400);
pub const DEFAULT_CAPACITY_MIN_COVERAGE: Ppm = Ppm(900_000);

pub(crate) fn collector_file(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> Option<CollectorConfig> {
    ctx.deny_unknown(
        root,
        &[
            "server",
            "storage",
            "ingest",
            "capacity",
            "report",
            "status",
            "maintenance",
            "agent",
            "reader",
            "admin",
            "service",
            "check",
            "assign",
        ],
    );
    let empty = DeTable::new();
    let sec = section_or_empty(ctx, root, "server", "[server]", &empty);
    let server = server(ctx, &sec);
    let sec = section_or_empty(ctx, root, "storage", "[storage]", &empty);
    let storage = storage(ctx, &sec);
    let sec = section_or_empty(ctx, root, "ingest", "[ingest]", &empty);
    let ingest = ingest(ctx, &sec);
    let sec = section_or_empty(ctx, root, "capacity", "[capacity]", &empty);
    let capacity = capacity(ctx, &sec);
    let sec = section_or_empty(ctx, root, "report", "[report]", &empty);
    let report = report(ctx, &sec);
    let agents = agents(ctx, root);
    let sec = section_or_empty(ctx, root, "maintenance", "[maintenance]", &empty);
    let maintenance = maintenance(ctx, &sec);
    let tokens = named_tokens(ctx, root, agents.as_deref(), server.as_ref());
    let agent_ids: Option<Vec<String>> = agents
        .as_ref()
        .map(|a| a.iter().map(|a| a.id.clone()).collect());
    let services = services(ctx, root, agents.as_deref(), capacity.as_ref());
    let sec = section_or_empty(ctx, root, "status", "[status]", &empty);
    let service_names: Option<Vec<String>> = services
        .as_ref()
        .map(|s| s.iter().map(|s| s.name.clone()).collect());
    let status = status::status(ctx, &sec, service_names.as_deref());
    let mut ingest = ingest?;
    if let (AcceptChecks::Known(ids), Some(services)) = (&mut ingest.checks, &services) {
        // "known" means listed by some service; resolved here so ingest needs no services.
        ids.extend(services.iter().flat_map(|s| s.checks.iter().cloned()));
    }
    let checks = fleet::central_checks(ctx, root);
    let check_ids: Option<Vec<String>> = checks
        .as_ref()
        .map(|c| c.iter().map(|c| c.check.id.clone()).collect());
    let assignments = fleet::assignments(ctx, root, agent_ids.as_deref(), check_ids.as_deref());
    Some(CollectorConfig {
        server: server?,
        storage: storage?,
        ingest,
        agents: agents?,
        readers: tokens.as_ref()?.readers.clone(),
        admins: tokens?.admins,
        maintenance: maintenance?,
        services: services?,
        capacity: capacity?,
        report: report?,
        status: status?,
        checks: checks?,
        assignments: assignments?,
    })
}

fn server(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<ServerConfig> {
    ctx.deny_unknown(
        sec,
        &[
            "listen",
            "tls_cert",
            "tls_key",
            "client_ca",
            "admin_token",
            "admin_token_file",
            "max_connections",
            "header_read_timeout",
            "body_read_timeout",
            "idle_timeout",
            "shutdown_timeout",
        ],
    );
    let listen = ctx
        .parsed(sec, "listen", values::socket_addr)
        .unwrap_or(DEFAULT_LISTEN);
    let (tls_cert, tls_key) = ctx.pair(sec, "tls_cert", "tls_key");
    let client_ca = ctx.path(sec, "client_ca");
    if client_ca.is_some() && sec.get("tls_cert").is_none() {
        ctx.missing(
            sec,
            "tls_cert",
            "client certificates (\"client_ca\") need TLS",
        );
    }
    let admin_token = ctx.secret(sec, "admin_token", "admin_token_file");
    let max_connections = ctx
        .usize(sec, "max_connections", 1, 1_000_000)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let duration = |ctx: &mut Ctx<'_>, key: &str, default: Duration| {
        ctx.parsed(sec, key, values::positive_duration)
            .unwrap_or(default)
    };
    let header_read_timeout = duration(ctx, "header_read_timeout", DEFAULT_HEADER_READ_TIMEOUT);
    let body_read_timeout = duration(ctx, "body_read_timeout", DEFAULT_BODY_READ_TIMEOUT);
    let idle_timeout = duration(ctx, "idle_timeout", DEFAULT_IDLE_TIMEOUT);
    let shutdown_timeout = duration(ctx, "shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT);
    Some(ServerConfig {
        listen,
        tls_cert,
        tls_key,
        client_ca,
        admin_token,
        max_connections,
        header_read_timeout,
        body_read_timeout,
        idle_timeout,
        shutdown_timeout,
    })
}

fn storage(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<StorageConfig> {
    ctx.deny_unknown(
        sec,
        &[
            "backend",
            "data_dir",
            "postgres_url",
            "postgres_sslmode",
            "postgres_sslrootcert",
            "raw_retention",
            "rollup_retention",
        ],
    );
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Sqlite,
        Postgres,
    }
    let kind = ctx
        .choice(
            sec,
            "backend",
            &[("sqlite", Kind::Sqlite), ("postgres", Kind::Postgres)],
        )
        .unwrap_or(Kind::Sqlite);
    let data_dir = ctx
        .path(sec, "data_dir")
        .unwrap_or_else(|| ctx.resolve(DEFAULT_DATA_DIR));
    let url = ctx.parsed_secret(sec, "postgres_url", values::postgres_url);
    let url = url.and_then(|u| postgres_url_without_tls(ctx, sec, u));
    let tls = postgres_tls(ctx, sec);
    let backend = if kind == Kind::Sqlite {
        for key in POSTGRES_KEYS.into_iter().filter(|k| sec.get(k).is_some()) {
            let msg = format!(
                "{key:?} is only used with backend = \"postgres\"; remove it or set the backend"
            );
            ctx.error(Ctx::value_span(sec, key), &sec.key_path(key), msg);
        }
        POSTGRES_KEYS
            .iter()
            .all(|k| sec.get(k).is_none())
            .then_some(StorageBackend::Sqlite)
    } else if sec.get("postgres_url").is_none() {
        ctx.missing(sec, "postgres_url", "backend = \"postgres\" needs it");
        None
    } else {
        url.zip(tls)
            .map(|(url, tls)| StorageBackend::Postgres { url, tls })
    };
    let raw_retention = ctx
        .parsed(sec, "raw_retention", values::positive_duration)
        .unwrap_or(DEFAULT_RAW_RETENTION);
    let rollup_retention = ctx
        .parsed(sec, "rollup_retention", values::positive_duration)
        .unwrap_or(DEFAULT_ROLLUP_RETENTION);
    let mut ok = true;
    if rollup_retention < raw_retention {
        // Rollups are what remains after raw data expires.
        let fd = values::format_duration;
        ctx.conflict(
            sec,
            (
                "rollup_retention",
                format!("at least raw_retention ({})", fd(raw_retention)),
            ),
            (
                "raw_retention",
                format!("at most rollup_retention ({})", fd(rollup_retention)),
            ),
        );
        ok = false;
    }
    let backend = backend?;
    ok.then_some(StorageConfig {
        backend,
        data_dir,
        raw_retention,
        rollup_retention,
    })
}

/// The `[storage]` keys only a PostgreSQL store uses.
const POSTGRES_KEYS: [&str; 3] = ["postgres_url", "postgres_sslmode", "postgres_sslrootcert"];

/// The URL as written, unless it carries libpq TLS parameters (`sslmode=`, `sslrootcert=`, …):
/// TLS is set by `postgres_sslmode` and `postgres_sslrootcert` only, so that one place says
/// how the database is reached. The URL is not echoed: it may hold a password.
fn postgres_url_without_tls(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    url: String,
) -> Option<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let tls_param = query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .find(|name| name.starts_with("ssl") || *name == "requiressl");
    let Some(name) = tls_param else {
        return Some(url);
    };
    let msg = format!(
        "TLS is set with postgres_sslmode and postgres_sslrootcert in [storage], not with \
         {name:?} in the URL; remove it from postgres_url"
    );
    ctx.error(
        Ctx::value_span(sec, "postgres_url"),
        &sec.key_path("postgres_url"),
        msg,
    );
    None
}

/// `postgres_sslmode` (libpq's modes, default `"prefer"`) and `postgres_sslrootcert`, which
/// the verifying modes need and the others refuse (a CA that is silently not checked would
/// look like protection).
fn postgres_tls(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<PostgresTls> {
    use PostgresSslMode as M;
    let modes = [
        ("disable", M::Disable),
        ("prefer", M::Prefer),
        ("require", M::Require),
        ("verify-ca", M::VerifyCa),
        ("verify-full", M::VerifyFull),
    ];
    let given = sec.get("postgres_sslmode").is_some();
    let mode = ctx.choice(sec, "postgres_sslmode", &modes);
    if given && mode.is_none() {
        return None;
    }
    let mode = mode.unwrap_or_default();
    let root_cert = ctx.path(sec, "postgres_sslrootcert");
    let has_root = sec.get("postgres_sslrootcert").is_some();
    match (mode.verifies(), has_root) {
        (true, false) => {
            let what = format!(
                "postgres_sslmode = {:?} needs the PEM file of the CA that signed the server's certificate",
                mode.as_str()
            );
            ctx.missing(sec, "postgres_sslrootcert", &what);
            None
        }
        (false, true) => {
            let msg = format!(
                "\"postgres_sslrootcert\" is only used with postgres_sslmode = \"verify-ca\" or \
                 \"verify-full\"; {:?} does not check the server's certificate",
                mode.as_str()
            );
            let key = "postgres_sslrootcert";
            ctx.error(Ctx::value_span(sec, key), &sec.key_path(key), msg);
            None
        }
        // `ctx.path` has reported why the value is not a path.
        (true, true) if root_cert.is_none() => None,
        _ => Some(PostgresTls { mode, root_cert }),
    }
}

fn ingest(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<IngestLimits> {
    ctx.deny_unknown(
        sec,
        &[
            "max_body_bytes",
            "max_decompressed_bytes",
            "max_measurements_per_batch",
            "max_batches_per_second",
            "max_clock_skew",
            "clock_skew_policy",
            "max_backfill_age",
            "max_checks_per_agent",
            "checks",
            "max_inflight_body_bytes",
            "trust_new_agent_keys",
        ],
    );
    let max_body_bytes = ctx
        .bytes(sec, "max_body_bytes")
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let max_decompressed_bytes = ctx
        .bytes(sec, "max_decompressed_bytes")
        .unwrap_or(DEFAULT_MAX_DECOMPRESSED_BYTES);
    let max_measurements_per_batch = ctx
        .usize(sec, "max_measurements_per_batch", 1, 1_000_000)
        .unwrap_or(DEFAULT_MAX_MEASUREMENTS_PER_BATCH);
    let max_batches_per_second = match sec.get("max_batches_per_second") {
        None => DEFAULT_MAX_BATCHES_PER_SECOND,
        Some(v) => match ctx.number_value(v, &sec.key_path("max_batches_per_second")) {
            Some(n) if n > 0.0 => n,
            Some(_) => {
                ctx.expected(
                    v,
                    &sec.key_path("max_batches_per_second"),
                    "a number above 0",
                );
                DEFAULT_MAX_BATCHES_PER_SECOND
            }
            None => DEFAULT_MAX_BATCHES_PER_SECOND,
        },
    };
    let max_clock_skew = ctx
        .parsed(sec, "max_clock_skew", values::positive_duration)
        .unwrap_or(DEFAULT_MAX_CLOCK_SKEW);
    let clock_skew_policy = ctx
        .choice(
            sec,
            "clock_skew_policy",
            &[
                ("flag", SkewPolicy::Flag),
                ("correct", SkewPolicy::Correct),
                ("reject", SkewPolicy::Reject),
            ],
        )
        .unwrap_or(SkewPolicy::Flag);
    let max_backfill_age = ctx
        .parsed(sec, "max_backfill_age", values::positive_duration)
        .unwrap_or(DEFAULT_MAX_BACKFILL_AGE);
    let max_checks_per_agent = ctx
        .usize(sec, "max_checks_per_agent", 1, 10_000_000)
        .unwrap_or(DEFAULT_MAX_CHECKS_PER_AGENT);
    let known = ctx
        .choice(sec, "checks", &[("any", false), ("known", true)])
        .unwrap_or(false);
    let checks = if known {
        AcceptChecks::Known(Default::default())
    } else {
        AcceptChecks::Any
    };
    let max_inflight_body_bytes = ctx
        .bytes(sec, "max_inflight_body_bytes")
        .unwrap_or(DEFAULT_MAX_INFLIGHT_BODY_BYTES);
    let trust_new_agent_keys = ctx
        .choice(
            sec,
            "trust_new_agent_keys",
            &[
                ("first_use", TrustNewKeys::FirstUse),
                ("never", TrustNewKeys::Never),
            ],
        )
        .unwrap_or(TrustNewKeys::FirstUse);
    let mut ok = true;
    if max_inflight_body_bytes < max_body_bytes {
        // One full-size body must always fit, or no agent could ever deliver one.
        let fb = values::format_bytes;
        ctx.conflict(
            sec,
            (
                "max_inflight_body_bytes",
                format!("at least max_body_bytes ({})", fb(max_body_bytes)),
            ),
            (
                "max_body_bytes",
                format!(
                    "at most max_inflight_body_bytes ({})",
                    fb(max_inflight_body_bytes)
                ),
            ),
        );
        ok = false;
    }
    if max_decompressed_bytes < max_body_bytes {
        let fb = values::format_bytes;
        ctx.conflict(
            sec,
            (
                "max_decompressed_bytes",
                format!("at least max_body_bytes ({})", fb(max_body_bytes)),
            ),
            (
                "max_body_bytes",
                format!(
                    "at most max_decompressed_bytes ({})",
                    fb(max_decompressed_bytes)
                ),
            ),
        );
        ok = false;
    }
    ok.then_some(IngestLimits {
        max_body_bytes,
        max_decompressed_bytes,
        max_measurements_per_batch,
        max_batches_per_second,
        max_clock_skew,
        clock_skew_policy,
        max_backfill_age,
        max_checks_per_agent,
        checks,
        max_inflight_body_bytes,
        trust_new_agent_keys,
    })
}

fn capacity(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<CapacityConfig> {
    ctx.deny_unknown(
        sec,
        &[
            "warning",
            "critical",
            "trend_lookback",
            "forecast_horizon",
            "min_coverage",
        ],
    );
    let warning = ctx
        .parsed(sec, "warning", values::positive_percent)
        .unwrap_or(DEFAULT_CAPACITY_WARNING);
    let critical = ctx
        .parsed(sec, "critical", values::positive_percent)
        .unwrap_or(DEFAULT_CAPACITY_CRITICAL);
    let trend_lookback = ctx
        .parsed(sec, "trend_lookback", values::positive_duration)
        .unwrap_or(DEFAULT_TREND_LOOKBACK);
    let forecast_horizon = ctx
        .parsed(sec, "forecast_horizon", values::positive_duration)
        .unwrap_or(DEFAULT_FORECAST_HORIZON);
    let min_coverage = ctx
        .parsed(sec, "min_coverage", values::positive_percent)
        .unwrap_or(DEFAULT_CAPACITY_MIN_COVERAGE);
    if warning >= critical {
        ctx.conflict(
            sec,
            (
                "warning",
                format!("a percentage below critical ({critical})"),
            ),
            (
                "critical",
                format!("a percentage above warning ({warning})"),
            ),
        );
        return None;
    }
    Some(CapacityConfig {
        warning,
        critical,
        trend_lookback,
        forecast_horizon,
        min_coverage,
    })
}

pub const DEFAULT_REPORT_TITLE: &str = "Monthly availability report";
pub const DEFAULT_REPORT_GRACE: Duration = Duration::from_secs(3 * 86_400);

fn report(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<ReportConfig> {
    ctx.deny_unknown(
        sec,
        &[
            "organisation",
            "title",
            "signing_key_file",
            "archive_dir",
            "grace",
            "templates_dir",
            "prepared_by",
            "approved_by",
            "distribution",
        ],
    );
    let name = |s: &str| super::service::one_line(s, super::service::MAX_NAME_CHARS);
    Some(ReportConfig {
        organisation: ctx.string(sec, "organisation").unwrap_or_default(),
        title: ctx
            .non_empty(sec, "title")
            .unwrap_or_else(|| DEFAULT_REPORT_TITLE.to_string()),
        signing_key_file: ctx.path(sec, "signing_key_file"),
        archive_dir: ctx.path(sec, "archive_dir"),
        grace: ctx
            .parsed(sec, "grace", values::positive_duration)
            .unwrap_or(DEFAULT_REPORT_GRACE),
        templates_dir: ctx.path(sec, "templates_dir"),
        prepared_by: ctx.parsed(sec, "prepared_by", name),
        approved_by: ctx.parsed(sec, "approved_by", name),
        distribution: distribution(ctx, sec)?,
    })
}

/// `[report] distribution`: the recipients of the report, one-line names, each once.
fn distribution(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<String>> {
    let Some(v) = sec.get("distribution") else {
        return Some(Vec::new());
    };
    let path = sec.key_path("distribution");
    let items = ctx.array(
        v,
        &path,
        "an array of recipients like [\"Service owner\", \"Customer\"]",
    )?;
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let parsed = ctx.parsed_value(item, &p, |s| {
            super::service::one_line(s, super::service::MAX_NAME_CHARS)
        });
        match parsed {
            Some(r) if out.contains(&r) => {
                ctx.error(item.span(), &p, format!("recipient {r:?} is listed twice"));
                ok = false;
            }
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn agents(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> Option<Vec<AgentAuth>> {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut tokens: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = true;
    for sec in ctx.tables(root, "agent", "[[agent]]") {
        ctx.deny_unknown(&sec, &["id", "token", "token_file", "labels", "public_key"]);
        let public_key = ctx.parsed(&sec, "public_key", |s: &str| {
            use crate::evidence::keys::{KeyError, PublicKey};
            PublicKey::parse(s).map_err(|e| {
                let (KeyError::Public(detail) | KeyError::Secret(detail)) = e;
                format!(
                    "an Ed25519 public key as `attest-agent key show` prints it, `ed25519:` and the base64 of 32 bytes ({detail})"
                )
            })
        });
        let labels = fleet::labels(ctx, &sec, "labels");
        let id = ctx.required_parsed(
            &sec,
            "id",
            "the agent's id as in its agent.toml",
            values::ident,
        );
        if sec.get("token").is_none() && sec.get("token_file").is_none() {
            ctx.missing(
                &sec,
                "token",
                "or \"token_file\": the bearer token this agent sends",
            );
        }
        let token = ctx.secret(&sec, "token", "token_file");
        let (Some(id), Some(token)) = (id, token) else {
            ok = false;
            continue;
        };
        if let Some(first) = ids.get(&id) {
            let msg = format!("expected a unique id, found {id:?} (also used by {first})");
            ctx.error(Ctx::value_span(&sec, "id"), &sec.key_path("id"), msg);
            ok = false;
            continue;
        }
        if let Some(first) = tokens.get(&token) {
            let key = if sec.get("token").is_some() {
                "token"
            } else {
                "token_file"
            };
            // Never echo the token itself: messages end up in logs.
            let msg = format!("expected a token of its own, found the token of {first}");
            ctx.error(Ctx::value_span(&sec, key), &sec.key_path(key), msg);
            ok = false;
            continue;
        }
        ids.insert(id.clone(), sec.path.clone());
        tokens.insert(token.clone(), sec.path.clone());
        out.push(AgentAuth {
            id,
            token,
            labels,
            public_key,
        });
    }
    ok.then_some(out)
}

/// The named tokens of `[[reader]]` and `[[admin]]`.
struct NamedTokens {
    readers: Vec<ReaderAuth>,
    /// `[[admin]]` in file order, then `[server] admin_token` as [`ADMIN_TOKEN_NAME`].
    admins: Vec<AdminAuth>,
}

/// `[[reader]]` and `[[admin]]`: `name` and `token` (or `token_file`); names unique within
/// each kind, and no token that already belongs to an agent, the other kind or another entry
/// (a token names exactly one holder, so what it does is attributed to one name).
fn named_tokens(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    agents: Option<&[AgentAuth]>,
    server: Option<&ServerConfig>,
) -> Option<NamedTokens> {
    let mut tokens: HashMap<String, String> = HashMap::new();
    for a in agents.unwrap_or_default() {
        tokens.insert(a.token.clone(), format!("agent {:?}", a.id));
    }
    let server_admin = server.and_then(|s| s.admin_token.as_ref());
    if let Some(admin) = server_admin {
        tokens.insert(admin.clone(), "[server] admin_token".into());
    }
    let readers = token_tables(ctx, root, "reader", &mut tokens, None);
    let reserved = server_admin.map(|_| ADMIN_TOKEN_NAME);
    let mut admins = token_tables(ctx, root, "admin", &mut tokens, reserved)?;
    if let Some(token) = server_admin {
        admins.push(AdminAuth {
            name: ADMIN_TOKEN_NAME.into(),
            token: token.clone(),
        });
    }
    Some(NamedTokens {
        readers: readers?,
        admins,
    })
}

/// The `[[kind]]` tables of named tokens. `tokens` holds the tokens taken so far (and takes
/// these); `reserved` is a name no table may use.
fn token_tables(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    kind: &str,
    tokens: &mut HashMap<String, String>,
    reserved: Option<&str>,
) -> Option<Vec<NamedToken>> {
    let mut names: HashMap<String, String> = HashMap::new();
    if let Some(name) = reserved {
        names.insert(name.to_owned(), "[server] admin_token".into());
    }
    let hint = if kind == "admin" {
        "who holds this admin token (a person or a system), e.g. \"alice\" or \"change-bot\""
    } else {
        "who holds this read-only token, e.g. \"grafana\""
    };
    let mut out = Vec::new();
    let mut ok = true;
    for sec in ctx.tables(root, kind, &format!("[[{kind}]]")) {
        ctx.deny_unknown(&sec, &["name", "token", "token_file"]);
        let name = ctx.required_parsed(&sec, "name", hint, values::ident);
        if sec.get("token").is_none() && sec.get("token_file").is_none() {
            let what = format!("or \"token_file\": the {kind} bearer token");
            ctx.missing(&sec, "token", &what);
        }
        let token = ctx.secret(&sec, "token", "token_file");
        let (Some(name), Some(token)) = (name, token) else {
            ok = false;
            continue;
        };
        if let Some(first) = names.get(&name) {
            let msg = format!("expected a unique name, found {name:?} (also used by {first})");
            ctx.error(Ctx::value_span(&sec, "name"), &sec.key_path("name"), msg);
            ok = false;
            continue;
        }
        names.insert(name.clone(), sec.path.clone());
        if let Some(first) = tokens.get(&token) {
            let key = if sec.get("token").is_some() {
                "token"
            } else {
                "token_file"
            };
            // Never echo the token itself: messages end up in logs.
            let msg = format!("expected a token of its own, found the token of {first}");
            ctx.error(Ctx::value_span(&sec, key), &sec.key_path(key), msg);
            ok = false;
            continue;
        }
        tokens.insert(token.clone(), sec.path.clone());
        out.push(NamedToken { name, token });
    }
    ok.then_some(out)
}

/// `[maintenance]`: `max_retroactive`, a duration (`"0s"`: no window may start before its
/// registration).
fn maintenance(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<MaintenanceConfig> {
    ctx.deny_unknown(sec, &["max_retroactive"]);
    let max_retroactive = match sec.get("max_retroactive") {
        None => DEFAULT_MAX_RETROACTIVE,
        Some(_) => ctx.parsed(sec, "max_retroactive", values::duration)?,
    };
    Some(MaintenanceConfig { max_retroactive })
}

fn services(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    agents: Option<&[AgentAuth]>,
    capacity: Option<&CapacityConfig>,
) -> Option<Vec<crate::model::Service>> {
    let agent_ids: Option<Vec<String>> = agents.map(|a| a.iter().map(|a| a.id.clone()).collect());
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = true;
    for sec in ctx.tables(root, "service", "[[service]]") {
        let Some(mut s) = service::service(ctx, &sec) else {
            ok = false;
            continue;
        };
        if let Some(first) = names.get(&s.name) {
            let msg = format!(
                "expected a unique name, found {:?} (also used by {first})",
                s.name
            );
            ctx.error(Ctx::value_span(&sec, "name"), &sec.key_path("name"), msg);
            ok = false;
            continue;
        }
        names.insert(s.name.clone(), sec.path.clone());
        ok &= super::capacity::cross_check(ctx, &sec, &s, agent_ids.as_deref(), capacity);
        ok &= super::capacity::hosts_by_labels(ctx, &sec, &mut s, agents);
        out.push(s);
    }
    ok.then_some(out)
}
