use super::*;

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
    assert_eq!(tls.cert_file, PathBuf::from("/etc/attest/server.crt"));
    assert_eq!(tls.key_file, PathBuf::from("/abs/server.key"));
    assert_eq!(
        tls.client_ca_file,
        Some(PathBuf::from("/etc/attest/ca.pem"))
    );
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
fn unsupported_settings_say_why_and_what_instead() {
    let cases = [
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
            "without verifying",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n",
            "TLS 1.2 and 1.3 only",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "safe default cipher suites",
        ),
        (
            "tls_server_config:\n  cert: \"-----BEGIN\"\n  key_file: b\n",
            "use cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
            "missing key \"client_ca_file\"",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
            "NoClientCert",
        ),
        (
            "tls_server_config:\n  key_file: b\n",
            "missing key \"cert_file\"",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
            "min_version <= max_version",
        ),
        (
            "http_server_config:\n  http2: true\n",
            "HTTP/2 is not supported",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "deny, sameorigin",
        ),
        (
            "http_server_config:\n  headers:\n    Server: x\n",
            "expected one of the headers",
        ),
        ("rate_limit:\n  interval: 1s\n  burst: 2\n", "not supported"),
    ];
    for (src, want) in cases {
        let e = parse(src).unwrap_err();
        assert!(e.contains(want), "{src:?}: {e}");
        assert!(e.starts_with("/etc/attest/web.yml:"), "{e}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n  curve_preferences: [X25519]\nbasic_auth_users:\n  bob: nope\n").unwrap_err();
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
