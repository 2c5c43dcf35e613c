//! Small value types with a textual form in configuration files: durations (`"10s"`),
//! byte sizes (`"256MiB"`), percentages (`"99.9%"`) held as parts per million so that
//! compliance is decided on integers, never floats.

use std::fmt;
use std::time::Duration;

/// A ratio held in parts per million (`99.9%` = 999_000). Integer on purpose: SLA
/// compliance is decided by exact integer comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppm(pub u32);

impl Ppm {
    pub const ONE: Ppm = Ppm(1_000_000);

    pub fn as_ratio(self) -> f64 {
        f64::from(self.0) / 1e6
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exact: ppm has at most 4 decimals in percent.
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let s = format!("{frac:04}");
            write!(f, "{whole}.{}%", s.trim_end_matches('0'))
        }
    }
}

/// Parses `"99.9%"` (at most four decimals) into parts per million.
pub fn parse_percent(s: &str) -> Result<Ppm, String> {
    let body = s
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| "a percentage ending in '%', like \"99.9%\"".to_string())?;
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let ok_digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !ok_digits(int) || !ok_digits(frac) || frac.len() > 4 {
        return Err("a percentage with at most four decimals, like \"99.95%\"".into());
    }
    let int: u64 = int
        .parse()
        .map_err(|_| "a percentage between 0% and 100%".to_string())?;
    let mut frac_val: u64 = 0;
    for (i, c) in frac.chars().enumerate() {
        frac_val += u64::from(c as u8 - b'0') * 10u64.pow(3 - i as u32);
    }
    let ppm = int * 10_000 + frac_val;
    if ppm > 1_000_000 {
        return Err("a percentage between 0% and 100%".into());
    }
    Ok(Ppm(ppm as u32))
}

/// Parses `"500ms"`, `"10s"`, `"5m"`, `"2h"`, `"35d"` and sums like `"1m30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXPECT: &str = "a duration like \"500ms\", \"10s\", \"5m\", \"2h\" or \"35d\"";
    let s = s.trim();
    if s.is_empty() {
        return Err(EXPECT.into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(EXPECT.into());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| EXPECT.to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(EXPECT.into()),
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

/// Parses `"1048576"`, `"512KiB"`, `"256MiB"`, `"2GiB"` (also decimal `kB`, `MB`, `GB`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    const EXPECT: &str = "a size like \"64MiB\", \"1GiB\" or a number of bytes";
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(EXPECT.into());
    }
    let n: u64 = s[..digits].parse().map_err(|_| EXPECT.to_string())?;
    let mult: u64 = match s[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(EXPECT.into()),
    };
    n.checked_mul(mult).ok_or_else(|| EXPECT.to_string())
}

/// An IP network in CIDR form (`"10.0.0.0/8"`, `"2001:db8::/32"`; a bare address is a
/// single host). The address is stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is compared as the IPv4 address it carries, so a deny list cannot be dodged that way.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask_bits(u128::from(u32::from(a)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask_bits(u128::from(a), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_bits(v: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let host = u32::from(width - prefix);
    (v >> host) << host
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses `"10.0.0.0/8"`, `"::1/128"` or a bare address. Host bits must be zero, so a
/// typo like `"10.1.2.3/8"` is refused rather than silently meaning `10.0.0.0/8`.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    use std::net::IpAddr;
    const EXPECT: &str = "a network in CIDR form like \"10.0.0.0/8\" or \"2001:db8::/32\"";
    let (a, p) = match s.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s.trim(), None),
    };
    let addr: IpAddr = a.parse().map_err(|_| EXPECT.to_string())?;
    let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => width,
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= width)
            .ok_or_else(|| format!("{EXPECT} (prefix length at most {width})"))?,
        Some(_) => return Err(EXPECT.into()),
    };
    let bits = match addr {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    };
    if mask_bits(bits, width, prefix) != bits {
        return Err(format!(
            "{EXPECT} with the host bits zero (\"{a}/{prefix}\" has bits set past the prefix)"
        ));
    }
    Ok(Cidr { addr, prefix })
}

/// Deny wins; an empty allow list allows every address not denied.
pub fn target_allowed(allow: &[Cidr], deny: &[Cidr], ip: std::net::IpAddr) -> bool {
    !deny.iter().any(|n| n.contains(ip))
        && (allow.is_empty() || allow.iter().any(|n| n.contains(ip)))
}

/// What an id (agent id, check id) may look like, as said in error messages.
pub const ID_RULE: &str = "an id of letters, digits and - _ . : / (at most 128 characters, starting with a letter or digit, no \"..\" or empty path segment), like \"web-01\"";

/// The one id rule for agent and check ids, applied by the config loader, ingest and
/// import alike: ids end up in metric labels, URLs and file names, so besides the plain
/// character set a path-like id may not climb (`..`) or hold empty segments (`a//b`).
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_exact() {
        assert_eq!(parse_percent("99.9%"), Ok(Ppm(999_000)));
        assert_eq!(parse_percent("99.95%"), Ok(Ppm(999_500)));
        assert_eq!(parse_percent("100%"), Ok(Ppm(1_000_000)));
        assert_eq!(parse_percent("0.0001%"), Ok(Ppm(1)));
        assert!(parse_percent("99.9").is_err());
        assert!(parse_percent("100.1%").is_err());
        assert!(parse_percent("99.12345%").is_err());
        assert_eq!(Ppm(999_000).to_string(), "99.9%");
        assert_eq!(Ppm(995_000).to_string(), "99.5%");
        assert_eq!(Ppm(1_000_000).to_string(), "100%");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("35d"), Ok(Duration::from_secs(35 * 86_400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn cidr_parses_and_contains() {
        let n = parse_cidr("10.0.0.0/8").unwrap();
        assert!(n.contains("10.200.1.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.1.2.3".parse().unwrap()),
            "v4-mapped v6"
        );
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let host = parse_cidr("192.0.2.7").unwrap();
        assert_eq!(host.prefix, 32);
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(
            parse_cidr("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in [
            "10.1.2.3/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "web/8",
            "::/129",
            "1.2.3.4/x",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deny_wins_and_empty_allow_allows() {
        let allow = [parse_cidr("10.0.0.0/8").unwrap()];
        let deny = [parse_cidr("10.0.0.0/24").unwrap()];
        let ip = |s: &str| s.parse().unwrap();
        assert!(target_allowed(&[], &[], ip("203.0.113.1")));
        assert!(target_allowed(&allow, &deny, ip("10.1.0.1")));
        assert!(!target_allowed(&allow, &deny, ip("10.0.0.1")));
        assert!(!target_allowed(&allow, &[], ip("192.0.2.1")));
        assert!(!target_allowed(&[], &deny, ip("::ffff:10.0.0.9")));
    }

    #[test]
    fn id_rule_refuses_paths_that_climb() {
        for ok in ["web-01", "shop.home", "dc1/web:443", "a_b", "9"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            "../../etc/passwd",
            "a/../b",
            "a//b",
            "a/",
            "/etc",
            ".hidden",
            "web 01",
            "wéb",
            "a\u{0}b",
            &long,
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
