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
}
