//! `[[check]]` tables of the agent file: the common envelope and one reader per kind.
//!
//! Invariants:
//! - `kind` decides which keys are allowed; a key of another kind is an unknown key.
//! - A check's timeout is shorter than its interval (explicit or defaulted), so one tick's
//!   attempt always ends before the next one starts.
//! - Regular expressions are validated here, so the agent never meets a bad one at runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeValue;

use super::values::{self, format_duration};
use super::walk::{Ctx, Section};
use crate::model::{
    Check, CheckSpec, DnsCheck, DnsTransport, HostCheck, HttpCheck, IcmpCheck, IpFamily,
    StatusRange, TcpCheck, TcpStep, TlsCheck, TlsClientOptions,
};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const COMMON: &[&str] = &["id", "kind", "interval", "timeout"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Http,
    Tcp,
    Dns,
    Icmp,
    Tls,
    Host,
}

const KINDS: &[(&str, Kind)] = &[
    ("http", Kind::Http),
    ("tcp", Kind::Tcp),
    ("dns", Kind::Dns),
    ("icmp", Kind::Icmp),
    ("tls", Kind::Tls),
    ("host", Kind::Host),
];

fn kind_keys(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Http => &[
            "url",
            "method",
            "headers",
            "body",
            "expect_status",
            "body_contains",
            "body_regex",
            "body_not_regex",
            "header_match",
            "follow_redirects",
            "max_redirects",
            "tls",
            "ip_family",
            "max_body_bytes",
        ],
        Kind::Tcp => &["address", "tls", "steps", "ip_family"],
        Kind::Dns => &[
            "server",
            "name",
            "record_type",
            "transport",
            "expect_rcode",
            "expect_answers",
            "expect_answer_regex",
            "expect_authoritative",
        ],
        Kind::Icmp => &["host", "count", "ip_family"],
        Kind::Tls => &["address", "tls", "min_days_left"],
        Kind::Host => &[
            "cpu",
            "memory",
            "load",
            "filesystems",
            "network",
            "processes",
            "thresholds",
            "network_speed",
        ],
    }
}

/// Default timeout: 10s, but never more than 80% of the interval so that it stays below it.
pub fn default_timeout(interval: Duration) -> Duration {
    DEFAULT_TIMEOUT.min(interval.mul_f64(0.8))
}

pub(crate) fn check(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Check> {
    let kind = match sec.get("kind") {
        None => {
            let kinds = KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
            ctx.missing(sec, "kind", &format!("one of {kinds}"));
            None
        }
        Some(_) => ctx.choice(sec, "kind", KINDS),
    };
    if let Some(kind) = kind {
        let allowed: Vec<&str> = COMMON.iter().chain(kind_keys(kind)).copied().collect();
        let display = format!("{} of kind {:?}", sec.display, kind_name(kind));
        let typed = Section {
            display,
            ..sec.clone()
        };
        ctx.deny_unknown(&typed, &allowed);
    }
    let id = ctx.required_parsed(
        sec,
        "id",
        "a unique check id like \"web-home\"",
        values::ident,
    );
    let interval = ctx
        .parsed(sec, "interval", values::positive_duration)
        .unwrap_or(DEFAULT_INTERVAL);
    let timeout = timeout(ctx, sec, interval);
    let spec = match kind? {
        Kind::Http => http(ctx, sec).map(CheckSpec::Http),
        Kind::Tcp => tcp(ctx, sec).map(CheckSpec::Tcp),
        Kind::Dns => dns(ctx, sec).map(CheckSpec::Dns),
        Kind::Icmp => icmp(ctx, sec).map(CheckSpec::Icmp),
        Kind::Tls => tls_check(ctx, sec).map(CheckSpec::Tls),
        Kind::Host => Some(CheckSpec::Host(host(ctx, sec))),
    };
    Some(Check {
        id: id?,
        interval,
        timeout: timeout?,
        spec: spec?,
    })
}

fn kind_name(kind: Kind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("?", |(n, _)| n)
}

fn timeout(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>, interval: Duration) -> Option<Duration> {
    let Some(v) = sec.get("timeout") else {
        return Some(default_timeout(interval));
    };
    let t = ctx.parsed(sec, "timeout", values::positive_duration)?;
    if t >= interval {
        let what = format!(
            "a duration shorter than the interval ({})",
            format_duration(interval)
        );
        ctx.expected(v, &sec.key_path("timeout"), &what);
        return None;
    }
    Some(t)
}

fn ip_family(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> IpFamily {
    const OPTIONS: &[(&str, IpFamily)] = &[
        ("any", IpFamily::Any),
        ("ipv4", IpFamily::Ipv4),
        ("ipv6", IpFamily::Ipv6),
    ];
    ctx.choice(sec, "ip_family", OPTIONS).unwrap_or_default()
}

fn regexes(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>, key: &str) -> Vec<String> {
    let Some(list) = ctx.strings(sec, key) else {
        return Vec::new();
    };
    let Some(DeValue::Array(items)) = sec.get(key).map(toml::Spanned::get_ref) else {
        return Vec::new();
    };
    let path = sec.key_path(key);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let DeValue::String(s) = item.get_ref()
            && list.iter().any(|l| l == s.as_ref())
            && let Some(r) = ctx.parsed_value(item, &format!("{path}[{i}]"), values::regex)
        {
            out.push(r);
        }
    }
    out
}

/// TLS client options: a table of `verify`, `ca_file`, `client_cert`, `client_key`,
/// `server_name`. Defaults: verify against the system roots, no client certificate.
fn tls_options(ctx: &mut Ctx<'_>, parent: &Section<'_, '_>) -> Option<TlsClientOptions> {
    let Some(sec) = ctx.table(parent, "tls", "tls") else {
        return Some(TlsClientOptions::default());
    };
    ctx.deny_unknown(
        &sec,
        &[
            "verify",
            "ca_file",
            "client_cert",
            "client_key",
            "server_name",
        ],
    );
    let verify = ctx.bool(&sec, "verify").unwrap_or(true);
    let ca_file = ctx.path(&sec, "ca_file");
    let (client_cert, client_key) = ctx.pair(&sec, "client_cert", "client_key");
    let server_name = ctx.non_empty(&sec, "server_name");
    Some(TlsClientOptions {
        verify,
        ca_file,
        client_cert,
        client_key,
        server_name,
    })
}

fn status_ranges(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Vec<StatusRange> {
    const EXPECT: &str = "a status code like 200, or a range like \"2xx\" or \"200-399\"";
    let Some(v) = sec.get("expect_status") else {
        return Vec::new();
    };
    let path = sec.key_path("expect_status");
    let Some(items) = ctx.array(v, &path, "an array of status codes like [200, \"3xx\"]") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let range = match item.get_ref() {
            DeValue::Integer(_) => ctx
                .int_value(item, &p, 100, 599)
                .and_then(|c| u16::try_from(c).ok())
                .map(|c| StatusRange { lo: c, hi: c }),
            _ => ctx.parsed_value(item, &p, |s| {
                parse_status_range(s).ok_or(EXPECT.to_string())
            }),
        };
        out.extend(range);
    }
    out
}

fn parse_status_range(s: &str) -> Option<StatusRange> {
    if let Some(class) = s.strip_suffix("xx") {
        let d: u16 = class.parse().ok().filter(|d| (1..=5).contains(d))?;
        return Some(StatusRange {
            lo: d * 100,
            hi: d * 100 + 99,
        });
    }
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some(StatusRange { lo, hi })
}

fn http(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<HttpCheck> {
    const METHODS: &[(&str, &str)] = &[
        ("GET", "GET"),
        ("HEAD", "HEAD"),
        ("POST", "POST"),
        ("PUT", "PUT"),
        ("DELETE", "DELETE"),
        ("OPTIONS", "OPTIONS"),
        ("PATCH", "PATCH"),
    ];
    let url = ctx.required_parsed(sec, "url", "the URL to request", values::http_url);
    let method = ctx
        .choice(sec, "method", METHODS)
        .unwrap_or("GET")
        .to_string();
    let headers = ctx.string_map(sec, "headers").unwrap_or_default();
    let body = ctx.string(sec, "body");
    let expect_status = status_ranges(ctx, sec);
    let body_contains = ctx.strings(sec, "body_contains").unwrap_or_default();
    let body_regex = regexes(ctx, sec, "body_regex");
    let body_not_regex = regexes(ctx, sec, "body_not_regex");
    let header_match = header_matchers(ctx, sec);
    let follow_redirects = ctx.bool(sec, "follow_redirects").unwrap_or(true);
    let max_redirects = ctx.u32(sec, "max_redirects", 0, 100).unwrap_or(10);
    let tls = tls_options(ctx, sec);
    let ip_family = ip_family(ctx, sec);
    let max_body_bytes = ctx.bytes(sec, "max_body_bytes").unwrap_or(1 << 20);
    Some(HttpCheck {
        url: url?,
        method,
        headers,
        body,
        expect_status,
        body_contains,
        body_regex,
        body_not_regex,
        header_match,
        follow_redirects,
        max_redirects,
        tls: tls?,
        ip_family,
        max_body_bytes,
    })
}

fn header_matchers(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> BTreeMap<String, String> {
    let Some(map) = ctx.string_map(sec, "header_match") else {
        return BTreeMap::new();
    };
    let Some(DeValue::Table(t)) = sec.get("header_match").map(toml::Spanned::get_ref) else {
        return BTreeMap::new();
    };
    let path = sec.key_path("header_match");
    let mut out = BTreeMap::new();
    for (k, v) in t {
        let name = k.get_ref().to_string();
        if map.contains_key(&name)
            && let Some(r) = ctx.parsed_value(v, &format!("{path}.{name}"), values::regex)
        {
            out.insert(name, r);
        }
    }
    out
}

fn tcp(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<TcpCheck> {
    let address = ctx.required_parsed(
        sec,
        "address",
        "\"host:port\" to connect to",
        values::host_port,
    );
    let tls = match sec.get("tls").map(toml::Spanned::get_ref) {
        None | Some(DeValue::Boolean(false)) => Some(None),
        Some(DeValue::Boolean(true)) => Some(Some(TlsClientOptions::default())),
        Some(_) => tls_options(ctx, sec).map(Some),
    };
    let steps = tcp_steps(ctx, sec);
    let ip_family = ip_family(ctx, sec);
    Some(TcpCheck {
        address: address?,
        tls: tls?,
        steps,
        ip_family,
    })
}

fn tcp_steps(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Vec<TcpStep> {
    let mut out = Vec::new();
    for step in ctx.tables(sec, "steps", "steps") {
        ctx.deny_unknown(&step, &["send", "expect"]);
        match (step.get("send").is_some(), step.get("expect").is_some()) {
            (true, false) => out.extend(ctx.string(&step, "send").map(TcpStep::Send)),
            (false, true) => {
                out.extend(
                    ctx.parsed(&step, "expect", values::regex)
                        .map(TcpStep::Expect),
                );
            }
            _ => {
                let msg = "expected exactly one of \"send\" or \"expect\" in a step, like { send = \"PING\\r\\n\" }";
                ctx.error(step.span.clone(), &step.path, msg);
            }
        }
    }
    out
}

fn dns(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<DnsCheck> {
    const TYPES: &[(&str, &str)] = &[
        ("A", "A"),
        ("AAAA", "AAAA"),
        ("CNAME", "CNAME"),
        ("MX", "MX"),
        ("NS", "NS"),
        ("PTR", "PTR"),
        ("SOA", "SOA"),
        ("SRV", "SRV"),
        ("TXT", "TXT"),
        ("CAA", "CAA"),
    ];
    const RCODES: &[(&str, &str)] = &[
        ("NOERROR", "NOERROR"),
        ("NXDOMAIN", "NXDOMAIN"),
        ("SERVFAIL", "SERVFAIL"),
        ("REFUSED", "REFUSED"),
        ("FORMERR", "FORMERR"),
        ("NOTIMP", "NOTIMP"),
    ];
    let server = ctx.required_parsed(
        sec,
        "server",
        "the DNS server's IP address",
        values::dns_server,
    );
    let name = ctx.required_parsed(sec, "name", "the name to query", |s| {
        let bare = s.strip_suffix('.').unwrap_or(s);
        if values::is_host_name(bare) {
            Ok(s.to_string())
        } else {
            Err("a domain name like \"example.com\"".to_string())
        }
    });
    let record_type = ctx
        .choice(sec, "record_type", TYPES)
        .unwrap_or("A")
        .to_string();
    let transport = ctx
        .choice(
            sec,
            "transport",
            &[("udp", DnsTransport::Udp), ("tcp", DnsTransport::Tcp)],
        )
        .unwrap_or(DnsTransport::Udp);
    let expect_rcode = ctx
        .choice(sec, "expect_rcode", RCODES)
        .unwrap_or("NOERROR")
        .to_string();
    let expect_answers = ctx.strings(sec, "expect_answers").unwrap_or_default();
    let expect_answer_regex = regexes(ctx, sec, "expect_answer_regex");
    let expect_authoritative = ctx.bool(sec, "expect_authoritative");
    Some(DnsCheck {
        server: server?,
        name: name?,
        record_type,
        transport,
        expect_rcode,
        expect_answers,
        expect_answer_regex,
        expect_authoritative,
    })
}

fn icmp(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<IcmpCheck> {
    let host = ctx.required_parsed(sec, "host", "the host to ping", values::host);
    let count = ctx.u32(sec, "count", 1, 100).unwrap_or(1);
    let ip_family = ip_family(ctx, sec);
    Some(IcmpCheck {
        host: host?,
        count,
        ip_family,
    })
}

fn tls_check(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<TlsCheck> {
    let address = ctx.required_parsed(
        sec,
        "address",
        "\"host:port\" to connect to",
        values::host_port,
    );
    let tls = tls_options(ctx, sec);
    let min_days_left = ctx.u32(sec, "min_days_left", 0, 3650).unwrap_or(14);
    Some(TlsCheck {
        address: address?,
        tls: tls?,
        min_days_left,
    })
}

fn host(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> HostCheck {
    let mut flag = |key| ctx.bool(sec, key).unwrap_or(true);
    let (cpu, memory, load, filesystems, network) = (
        flag("cpu"),
        flag("memory"),
        flag("load"),
        flag("filesystems"),
        flag("network"),
    );
    let processes = ctx.strings(sec, "processes").unwrap_or_default();
    let mut thresholds = BTreeMap::new();
    if let Some(v) = sec.get("thresholds") {
        let path = sec.key_path("thresholds");
        if let DeValue::Table(t) = v.get_ref() {
            for (k, val) in t {
                let p = format!("{path}.{}", k.get_ref());
                if let Some(n) = ctx.number_value(val, &p) {
                    thresholds.insert(k.get_ref().to_string(), n);
                }
            }
        } else {
            ctx.expected(
                v,
                &path,
                "a table of value name = upper bound, like { cpu_utilization_ratio = 0.9 }",
            );
        }
    }
    let network_speeds = network_speeds(ctx, sec);
    HostCheck {
        cpu,
        memory,
        load,
        filesystems,
        network,
        processes,
        thresholds,
        network_speeds,
    }
}

/// `network_speed = { eth0 = "1Gbit/s" }`: interface → link speed in bytes per second.
fn network_speeds(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(v) = sec.get("network_speed") else {
        return out;
    };
    let path = sec.key_path("network_speed");
    let DeValue::Table(t) = v.get_ref() else {
        ctx.expected(
            v,
            &path,
            "a table of interface = link speed, like { eth0 = \"1Gbit/s\" }",
        );
        return out;
    };
    for (k, val) in t {
        let p = format!("{path}.{}", k.get_ref());
        if let Some(bytes) = ctx.parsed_value(val, &p, values::link_speed) {
            out.insert(k.get_ref().to_string(), bytes);
        }
    }
    out
}
