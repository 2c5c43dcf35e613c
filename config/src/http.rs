//! HTTP header rules both binaries apply, as RFC 9110 writes them: the `Bearer` scheme of
//! `Authorization` is case-insensitive, and `Accept-Encoding` is a weighted list whose codings
//! match in any case (the collector's ingest lower-cases `Content-Encoding` itself). Parsing
//! only; no I/O and no compression here.

/// The token of an `Authorization: Bearer <token>` header, blanks around it trimmed (empty
/// when none follows the scheme); the scheme matches in any case (`bearer`, `BEARER`; RFC 9110
/// §11.1). `None` for another scheme.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let h = authorization.trim_start();
    let (scheme, rest) = h.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !(rest.is_empty() || rest.starts_with([' ', '\t']))
    {
        return None;
    }
    Some(rest.trim())
}

/// Whether an `Accept-Encoding` header lets the answer be gzip-compressed (RFC 9110
/// §12.5.3): `gzip` (or its alias `x-gzip`) or `*` listed with a weight above 0, unless gzip
/// itself is listed with `q=0`. Names and parameters match in any case. No header: no.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(list) = accept_encoding else {
        return false;
    };
    let (mut gzip, mut any) = (None, None);
    for item in list.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let weight = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f64>().ok());
        // An unreadable weight does not grant anything.
        let allowed = weight.is_some_and(|q| q > 0.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.unwrap_or(false) || allowed);
        } else if name == "*" {
            any = Some(allowed);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_matches_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("bEaReR\tabc"), Some("abc"));
        assert_eq!(bearer_token("Bearer "), Some(""));
        assert_eq!(bearer_token("bearer"), Some(""));
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Basic YTpi"), None);
        assert_eq!(bearer_token("Bear"), None);
        assert_eq!(
            bearer_token("Beärer x"),
            None,
            "no panic on a multibyte scheme"
        );
    }

    #[test]
    fn accept_encoding_is_a_weighted_list() {
        // What Prometheus sends.
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("GZIP")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(Some("x-gzip")));
        assert!(accepts_gzip(Some("*")));
        assert!(accepts_gzip(Some("br, *;q=0.1")));
        assert!(!accepts_gzip(None));
        assert!(!accepts_gzip(Some("")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("br, zstd")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip; Q=0.000")));
        assert!(
            !accepts_gzip(Some("*, gzip;q=0")),
            "explicit refusal wins over *"
        );
        assert!(!accepts_gzip(Some("*;q=0")));
        assert!(!accepts_gzip(Some("gzip;q=nonsense")));
    }
}
