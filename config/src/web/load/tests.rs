use super::*;
use crate::web::{ClientAuth, Pem, RateLimit};

const HASH: &str = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze";

fn parse(src: &str) -> Result<WebConfig, String> {
    parse_web("/etc/attest/web.yml", src).map_err(|e| e.to_string())
}

#[test]
fn empty_and_comment_only_files_are_empty_configs() {
    assert_eq!(parse(""), Ok(WebConfig::default()));
    assert_eq!(parse("# nothing\n\n"), Ok(WebConfig::default()));
}

#[test]
fn a_full_file_is_read() {
    let src = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  alice: {HASH}\n"
    );
    let cfg = parse(&src).expect("valid");
    let tls = cfg.tls.expect("tls");
    assert_eq!(tls.cert, Pem::File(PathBuf::from("/etc/attest/server.crt")));
    assert_eq!(tls.key, Pem::File(PathBuf::from("/abs/server.key")));
    assert_eq!(
        tls.client_ca,
        Some(Pem::File(PathBuf::from("/etc/attest/ca.pem")))
    );
    assert!(
        tls.prefer_server_cipher_suites,
        "exporter-toolkit's default"
    );
    assert!(tls.cipher_suites.is_empty() && tls.curve_preferences.is_empty());
    assert_eq!(tls.client_auth, ClientAuth::RequireAndVerify);
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(tls.max_version, TlsVersion::Tls13);
    assert_eq!(
        cfg.basic_auth_users.get("alice").map(String::as_str),
        Some(HASH)
    );
    assert_eq!(cfg.headers.len(), 2);
}

#[test]
fn unknown_keys_are_refused_with_position_and_expectation() {
    let e =
        parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  cert_flie: c\n").unwrap_err();
    assert!(e.starts_with("/etc/attest/web.yml:4:"), "{e}");
    assert!(e.contains("cert_flie"), "{e}");
    let e = parse("basic_auth_user:\n  a: b\n").unwrap_err();
    assert!(e.starts_with("/etc/attest/web.yml:1:"), "{e}");
    assert!(e.contains("basic_auth_user"), "{e}");
}

#[test]
fn syntax_errors_name_the_position() {
    let e = parse("tls_server_config:\n  cert_file: [a\n").unwrap_err();
    assert!(e.starts_with("/etc/attest/web.yml:"), "{e}");
    assert!(e.contains("invalid YAML: unclosed bracket"), "{e}");
}

#[test]
fn bad_hashes_are_refused_without_echoing_them() {
    let e = parse("basic_auth_users:\n  alice: secret-in-clear\n").unwrap_err();
    assert!(e.starts_with("/etc/attest/web.yml:2:"), "{e}");
    assert!(e.contains("basic_auth_users.alice"), "{e}");
    assert!(e.contains("expected a bcrypt hash"), "{e}");
    assert!(!e.contains("secret-in-clear"), "{e}");
    let cost3 = HASH.replacen("$10$", "$03$", 1);
    let e = parse(&format!("basic_auth_users:\n  alice: {cost3}\n")).unwrap_err();
    assert!(e.contains("04 to 31"), "{e}");
}

#[test]
fn what_cannot_be_honoured_says_why_and_what_instead() {
    let t = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
    let cases = [
        (format!("{t}  min_version: TLS11\n"), "TLS 1.2 and 1.3 only"),
        (
            format!("{t}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"),
            "none of the TLS 1.2 cipher suites listed is implemented by rustls",
        ),
        (
            format!("{t}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n"),
            "HTTP/2 over TLS 1.2 requires",
        ),
        (
            format!(
                "{t}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  max_version: TLS12\n  min_version: TLS12\n"
            ),
            "no client could connect",
        ),
        (
            format!("{t}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA2048]\n"),
            "unknown cipher suite",
        ),
        (
            format!("{t}  curve_preferences: [CurveP521]\n"),
            "use CurveP384",
        ),
        (
            format!("{t}  curve_preferences: [CurveP257]\n"),
            "unknown curve",
        ),
        (
            "tls_server_config:\n  cert: \"-----BEGIN\"\n  key_file: b\n".to_string(),
            "expected PEM text",
        ),
        (
            "tls_server_config:\n  cert: \"\"\n  key_file: b\n".to_string(),
            "expected PEM text",
        ),
        (
            format!("{t}  cert: \"-----BEGIN CERTIFICATE-----\"\n"),
            "not both",
        ),
        (format!("{t}  client_ca_file: c\n"), "NoClientCert"),
        (
            format!("{t}  client_auth_type: RequireAnyClientCert\n  client_ca_file: c\n"),
            "the CA would never be used",
        ),
        (
            format!("{t}  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [x]\n"),
            "self-made certificate",
        ),
        (
            format!("{t}  client_allowed_sans: [x]\n"),
            "no client certificate is asked for",
        ),
        (
            format!(
                "{t}  client_auth_type: RequireAndVerifyClientCert\n  client_allowed_sans: []\n"
            ),
            "at least one SAN",
        ),
        (
            format!("{t}  client_auth_type: x\n"),
            "expected one of NoClientCert",
        ),
        (
            "tls_server_config:\n  key_file: b\n".to_string(),
            "missing key \"cert_file\"",
        ),
        (
            format!("{t}  min_version: TLS13\n  max_version: TLS12\n"),
            "min_version <= max_version",
        ),
        (
            "http_server_config:\n  http2: true\n".to_string(),
            "HTTP/2 is not supported",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".to_string(),
            "deny, sameorigin",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n".to_string(),
            "deny, sameorigin",
        ),
        (
            "http_server_config:\n  headers:\n    Server: x\n".to_string(),
            "expected one of the headers",
        ),
        ("rate_limit:\n  interval: 5\n".to_string(), "needs a unit"),
        ("rate_limit:\n  interval: -1s\n".to_string(), "negative"),
        (
            "rate_limit:\n  interval: 1s\n  burst: -1\n".to_string(),
            "whole number",
        ),
        ("rate_limit:\n  rate: 1\n".to_string(), "unknown key"),
    ];
    for (src, want) in cases {
        let e = parse(&src).unwrap_err();
        assert!(e.contains(want), "{src:?}: {e}");
        assert!(e.starts_with("/etc/attest/web.yml:"), "{e}");
    }
}

#[test]
fn what_exporter_toolkit_accepts_is_read() {
    let t = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
    let cfg = parse(&format!(
        "{t}  client_auth_type: VerifyClientCertIfGiven\n  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  prefer_server_cipher_suites: false\n  curve_preferences: [CurveP521, X25519]\n"
    ))
    .expect("valid");
    let tls = cfg.tls.expect("tls");
    assert_eq!(tls.client_auth, ClientAuth::VerifyIfGiven);
    assert_eq!(tls.client_ca, None, "the system trust store verifies");
    let names: Vec<&str> = tls.cipher_suites.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ],
        "in order, the CBC suite left out"
    );
    assert!(!tls.prefer_server_cipher_suites);
    let curves: Vec<&str> = tls.curve_preferences.iter().map(|c| c.name).collect();
    assert_eq!(curves, ["X25519"]);
    assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"));
    assert!(cfg.warnings[1].contains("CurveP521"));

    let inline = parse("tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    x\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    y\n  client_auth_type: RequireAnyClientCert\n").expect("inline");
    let tls = inline.tls.expect("tls");
    assert!(
        matches!(tls.cert, Pem::Inline(ref t) if t.starts_with("-----BEGIN CERTIFICATE-----\n"))
    );
    assert_eq!(tls.client_auth, ClientAuth::RequireAny);
    assert!(
        !format!("{tls:?}").contains("PRIVATE"),
        "inline keys are never printed"
    );

    let sans = parse(&format!("{t}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [one, test3]\n")).expect("sans");
    assert_eq!(sans.tls.expect("tls").client_allowed_sans, ["one", "test3"]);

    let blocking = parse(&format!(
        "{t}  client_auth_type: RequireAndVerifyClientCert\n"
    ))
    .expect("system roots");
    assert!(
        blocking.warnings[0].contains("system trust store"),
        "{:?}",
        blocking.warnings
    );

    for (auth, want) in [
        ("RequestClientCert", ClientAuth::Request),
        ("RequireClientCert", ClientAuth::RequireAny),
        ("\"\"", ClientAuth::None),
    ] {
        let cfg = parse(&format!("{t}  client_auth_type: {auth}\n")).expect(auth);
        assert_eq!(cfg.tls.expect("tls").client_auth, want);
    }

    let rate = parse("rate_limit:\n  interval: 1m30s\n  burst: 5\n").expect("rate");
    assert_eq!(
        rate.rate_limit,
        Some(RateLimit {
            interval: Duration::from_secs(90),
            burst: 5
        })
    );
    let off = parse("rate_limit:\n  interval: 0\n  burst: 0\n").expect("no limit");
    assert_eq!(off.rate_limit, None);
    assert!(off.warnings.is_empty());
    let all = parse("rate_limit:\n  interval: \"1s\"\n  burst: 0\n").expect("refuses all");
    assert_eq!(all.rate_limit.map(|r| r.burst), Some(0));
    assert!(
        all.warnings[0].contains("every request"),
        "{:?}",
        all.warnings
    );
}

#[test]
fn go_durations() {
    for (text, secs) in [
        ("0", 0.0),
        ("1s", 1.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("2us", 2e-6),
    ] {
        let d = parse_go_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!((d.as_secs_f64() - secs).abs() < 1e-9, "{text}: {d:?}");
    }
    for bad in ["", "1", "s", "1x", "-1s", "1.2.3s", "9999999999h"] {
        assert!(parse_go_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n  curve_preferences: [X25519, Curve1]\nbasic_auth_users:\n  bob: nope\n").unwrap_err();
    assert_eq!(e.lines().count(), 3, "{e}");
}

#[test]
fn bcrypt_shapes() {
    assert_eq!(check_bcrypt(HASH), Ok(()));
    for v in ["2a", "2b", "2x"] {
        assert_eq!(check_bcrypt(&HASH.replacen("2y", v, 1)), Ok(()));
    }
    assert!(check_bcrypt(&HASH.replacen("2y", "1", 1)).is_err());
    assert!(check_bcrypt(&HASH.replacen("$10$", "$32$", 1)).is_err());
    assert!(check_bcrypt(&HASH.replacen('.', "!", 1)).is_err());
}

#[test]
fn yaml_shapes_that_are_not_the_format_are_refused() {
    let cases = [
        (
            "- a\n- b\n",
            "1:1: error: expected a mapping (key: value lines), found a list",
        ),
        (
            "basic_auth_users: 3\n",
            "basic_auth_users: expected a mapping",
        ),
        (
            "tls_server_config:\n",
            "tls_server_config: expected a mapping",
        ),
        (
            "basic_auth_users:\n  alice: &h x\n  bob: *h\n",
            "aliases (*name) are not supported",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "expected one YAML document, found a second",
        ),
        (
            "basic_auth_users:\n  alice: x\n  alice: y\n",
            "3:3: error: basic_auth_users.alice: expected each key once",
        ),
        (
            "http_server_config:\n  http2: \"false\"\n",
            "expected true or false",
        ),
    ];
    for (src, want) in cases {
        let e = parse(src).unwrap_err();
        assert!(e.contains(want), "{src:?}: {e}");
    }
    assert_eq!(
        parse("http_server_config:\n  http2: false\n"),
        Ok(WebConfig::default())
    );
    assert_eq!(parse("---\n"), Ok(WebConfig::default()));
}

proptest::proptest! {
    /// Hostile input: any text gives a config or errors, never a panic.
    #[test]
    fn any_text_is_answered_without_panicking(src in "(?s).{0,300}") {
        let _ = parse_web("web.yml", &src);
    }

    /// YAML-shaped text built from the format's own keys and symbols.
    #[test]
    fn yaml_like_text_is_answered_without_panicking(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "tls_server_config:", "basic_auth_users:", "http_server_config:", "headers:",
                "cert_file: a", "client_auth_type: x", "min_version: TLS13", "alice: $2y$04$",
                "\n", "\n  ", "- ", "[", "]", "{", "}", "&a ", "*a", "'", "\"", ": ", "---\n", "#",
            ]),
            0..40,
        )
    ) {
        let _ = parse_web("web.yml", &parts.concat());
    }
}
