//! Textual value formats of the configuration files, as pure parsers.
//!
//! Invariants:
//! - Each parser's `Err` is the expectation only ("an address like ..."), never the found
//!   value: the walker appends ", found <value>" so every message has the same shape.
//! - Each parser rejects the empty string (the walker relies on it to name the format
//!   when a value has the wrong TOML type).

use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};

use crate::units::{self, Ppm};

pub(crate) const DURATION: &str = "a positive duration like \"10s\", \"5m\" or \"1h30m\"";

/// Durations of zero make no sense anywhere in the files (a zero interval would spin).
pub(crate) fn positive_duration(s: &str) -> Result<Duration, String> {
    match units::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(DURATION.to_string()),
    }
}

/// A duration that may be zero, where zero means "not at all" (`[maintenance]
/// max_retroactive = "0s"`: no window may start before it is registered).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    units::parse_duration(s).map_err(|_| "a duration like \"0s\", \"24h\" or \"7d\"".to_string())
}

/// A percentage in (0%, 100%]: a 0% target or threshold is always a mistake.
pub(crate) fn positive_percent(s: &str) -> Result<Ppm, String> {
    match units::parse_percent(s) {
        Ok(p) if p.0 > 0 => Ok(p),
        _ => Err(
            "a percentage above 0% and at most 100% with at most four decimals, like \"99.9%\""
                .into(),
        ),
    }
}

/// A link speed like `"1Gbit/s"`, `"100Mbit/s"` or `"2.5Gbit/s"` (decimal units, as
/// network speeds are given), in bytes per second.
pub(crate) fn link_speed(s: &str) -> Result<u64, String> {
    const EXPECT: &str = "a link speed like \"100Mbit/s\", \"1Gbit/s\" or \"2.5Gbit/s\"";
    let s = s.trim();
    let (num, mult) = [
        ("kbit/s", 1e3),
        ("Mbit/s", 1e6),
        ("Gbit/s", 1e9),
        ("Tbit/s", 1e12),
    ]
    .iter()
    .find_map(|(unit, m)| s.strip_suffix(unit).map(|n| (n.trim(), *m)))
    .ok_or(EXPECT)?;
    let plain = !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || c == '.');
    let bits = num.parse::<f64>().ok().filter(|_| plain).map(|n| n * mult);
    match bits {
        Some(b) if (8.0..1e15).contains(&b) => Ok((b / 8.0).round() as u64),
        _ => Err(EXPECT.into()),
    }
}

pub(crate) fn positive_bytes(s: &str) -> Result<u64, String> {
    match units::parse_bytes(s) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("a positive size like \"64MiB\" or \"1GiB\"".into()),
    }
}

/// A listen address: an IP literal and a port, because binding to a name is ambiguous.
pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "an IP address and port like \"127.0.0.1:9850\" or \"[::1]:9850\"".to_string())
}

/// `host:port` where host is a name, an IPv4 address or a bracketed IPv6 address.
pub(crate) fn host_port(s: &str) -> Result<String, String> {
    const EXPECT: &str =
        "an address like \"host:port\", \"192.0.2.1:443\" or \"[2001:db8::1]:443\"";
    let (host, port) = s.rsplit_once(':').ok_or(EXPECT)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        is_host_name(host)
    };
    if port_ok && host_ok {
        Ok(s.to_string())
    } else {
        Err(EXPECT.into())
    }
}

/// A DNS name or IPv4 literal (no brackets, no port).
pub(crate) fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// A host to ping: a name, an IPv4 or an (unbracketed) IPv6 literal.
pub(crate) fn host(s: &str) -> Result<String, String> {
    if is_host_name(s) || s.parse::<std::net::IpAddr>().is_ok() {
        Ok(s.to_string())
    } else {
        Err("a host name or IP address like \"example.com\" or \"192.0.2.1\"".into())
    }
}

/// A DNS server: `ip` or `ip:port`; normalized to `ip:port` (default port 53).
pub(crate) fn dns_server(s: &str) -> Result<String, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53).to_string());
    }
    match s.parse::<SocketAddr>() {
        Ok(a) if a.port() > 0 => Ok(a.to_string()),
        _ => Err(
            "a server IP address, optionally with a port, like \"192.0.2.53\" or \"[::1]:5353\""
                .into(),
        ),
    }
}

/// An absolute `http://` or `https://` URL with a host.
pub(crate) fn http_url(s: &str) -> Result<String, String> {
    const EXPECT: &str = "an http:// or https:// URL like \"https://collector.example:9850\"";
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_string()),
        _ => Err(EXPECT.into()),
    }
}

pub(crate) fn postgres_url(s: &str) -> Result<String, String> {
    const EXPECT: &str = "a URL like \"postgres://user@host:5432/attest\"";
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => Ok(s.to_string()),
        _ => Err(EXPECT.into()),
    }
}

/// Check and agent ids end up in metric labels, file names and URLs: keep them plain.
pub(crate) fn ident(s: &str) -> Result<String, String> {
    if crate::units::is_valid_id(s) {
        Ok(s.to_string())
    } else {
        Err(crate::units::ID_RULE.into())
    }
}

pub(crate) fn time_zone(s: &str) -> Result<String, String> {
    if !s.is_empty() && jiff::tz::TimeZone::get(s).is_ok() {
        Ok(s.to_string())
    } else {
        Err("an IANA time zone like \"UTC\" or \"Europe/Berlin\"".into())
    }
}

/// `HH:MM` wall-clock time.
pub(crate) fn time_of_day(s: &str) -> Result<Time, String> {
    const EXPECT: &str = "a time of day \"HH:MM\" from \"00:00\" to \"23:59\"";
    let (h, m) = s.split_once(':').ok_or(EXPECT)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(EXPECT.into());
    }
    let h: i8 = h.parse().map_err(|_| EXPECT)?;
    let m: i8 = m.parse().map_err(|_| EXPECT)?;
    Time::new(h, m, 0, 0).map_err(|_| EXPECT.to_string())
}

/// End of a window: `HH:MM`, or `"24:00"` / `"00:00"` for the end of the day (`None`).
pub(crate) fn end_of_window(s: &str) -> Result<Option<Time>, String> {
    if s == "24:00" || s == "00:00" {
        return Ok(None);
    }
    time_of_day(s)
        .map(Some)
        .map_err(|_| "a time of day \"HH:MM\" from \"00:01\" to \"24:00\"".to_string())
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_index(s: &str) -> Option<usize> {
    DAYS.iter().position(|(n, _)| *n == s)
}

/// `"mon"`, `"mon-fri"`, `"sat,sun"`, `"fri-mon"` (ranges wrap around the week).
/// Returns the days in week order, each once.
pub(crate) fn weekdays(s: &str) -> Result<Vec<Weekday>, String> {
    const EXPECT: &str =
        "days like \"mon-fri\", \"sat,sun\" or \"mon\" (mon tue wed thu fri sat sun)";
    let mut set = [false; 7];
    for part in s.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (
            day_index(a.trim()).ok_or(EXPECT)?,
            day_index(b.trim()).ok_or(EXPECT)?,
        );
        let mut i = a;
        loop {
            set[i] = true;
            if i == b {
                break;
            }
            i = (i + 1) % 7;
        }
    }
    Ok(DAYS
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|((_, d), _)| *d)
        .collect())
}

/// An instant with an explicit offset; a local time would be ambiguous across zones.
pub(crate) fn timestamp(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>()
        .map_err(|_| "an RFC 3339 date-time with offset like 2026-03-01T02:00:00+01:00".to_string())
}

pub(crate) fn date(s: &str) -> Result<Date, String> {
    const EXPECT: &str = "a date like 2026-12-25";
    if s.len() != 10 {
        return Err(EXPECT.into());
    }
    s.parse::<Date>().map_err(|_| EXPECT.to_string())
}

/// Validates with the syntax of the `regex` crate, which the agent uses to match.
pub(crate) fn regex(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a non-empty regular expression".into());
    }
    match regex_syntax::Parser::new().parse(s) {
        Ok(_) => Ok(s.to_string()),
        Err(_) => Err("a valid regular expression (Rust regex syntax)".into()),
    }
}

/// Renders a duration the way the files write it (`1h30m`, `250ms`), for messages and summaries.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut secs = ms / 1000;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if !ms.is_multiple_of(1000) {
        out.push_str(&format!("{}ms", ms % 1000));
    }
    out
}

/// Renders a size with the largest binary unit that divides it (`256 MiB`, `1500 B`).
pub fn format_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_forms() {
        use Weekday::*;
        assert_eq!(
            weekdays("mon-fri"),
            Ok(vec![Monday, Tuesday, Wednesday, Thursday, Friday])
        );
        assert_eq!(weekdays("sat,sun"), Ok(vec![Saturday, Sunday]));
        assert_eq!(
            weekdays("fri-mon"),
            Ok(vec![Monday, Friday, Saturday, Sunday])
        );
        assert_eq!(weekdays("wed"), Ok(vec![Wednesday]));
        assert!(weekdays("monday").is_err());
        assert!(weekdays("").is_err());
    }

    #[test]
    fn addresses() {
        assert!(host_port("example.com:443").is_ok());
        assert!(host_port("[::1]:53").is_ok());
        assert!(host_port("127.0.0.1:9850").is_ok());
        assert!(host_port("example.com").is_err());
        assert!(host_port("example.com:0").is_err());
        assert!(host_port("::1:53").is_err());
        assert_eq!(dns_server("192.0.2.53"), Ok("192.0.2.53:53".into()));
        assert_eq!(dns_server("[::1]:5353"), Ok("[::1]:5353".into()));
        assert!(dns_server("ns1.example").is_err());
    }

    #[test]
    fn times_and_zones() {
        assert_eq!(end_of_window("24:00"), Ok(None));
        assert!(time_of_day("24:00").is_err());
        assert!(time_of_day("8:00").is_err());
        assert!(time_zone("Europe/Berlin").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(timestamp("2026-03-01T02:00:00+01:00").is_ok());
        assert!(timestamp("2026-03-01T02:00:00").is_err());
        assert!(date("2026-12-25").is_ok());
        assert!(date("2026-02-30").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(35 * 86_400)), "35d");
        assert_eq!(format_bytes(256 << 20), "256 MiB");
        assert_eq!(format_bytes(1500), "1500 B");
    }

    #[test]
    fn urls_and_regexes() {
        assert!(http_url("https://collector:9850").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("collector:9850").is_err());
        assert!(regex("^ok$").is_ok());
        assert!(regex("(unclosed").is_err());
    }
}
