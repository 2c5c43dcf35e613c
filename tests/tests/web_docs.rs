//! The access contract cannot drift from its docs: every route class of
//! `collector/src/http/auth.rs` (`ROUTES`) is named in docs/http-api.md, and every
//! exporter-toolkit key Attest accepts or refuses by name is in docs/web-config.md, as is the
//! flag in docs/cli.md.

use std::path::PathBuf;

use attest_collector::http::auth::ROUTES;

fn read(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[test]
fn every_classified_route_is_in_the_http_api_docs() {
    let docs = read("docs/http-api.md");
    let missing: Vec<&str> = ROUTES
        .iter()
        .map(|(pattern, _)| pattern.trim_end_matches('*'))
        .filter(|path| !docs.contains(&format!("`{path}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/http-api.md does not name: {missing:?}"
    );
}

#[test]
fn every_web_config_key_is_in_the_web_config_docs() {
    let docs = read("docs/web-config.md");
    let keys = [
        "tls_server_config",
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "min_version",
        "max_version",
        "NoClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "cert",
        "key",
        "client_ca",
        "client_allowed_sans",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
        "http_server_config",
        "http2",
        "headers",
        "basic_auth_users",
        "rate_limit",
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "X-XSS-Protection",
        "Strict-Transport-Security",
    ];
    let missing: Vec<&str> = keys
        .into_iter()
        .filter(|k| !docs.contains(&format!("`{k}`")) && !docs.contains(&format!("`{k}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/web-config.md does not name: {missing:?}"
    );
    assert!(read("docs/cli.md").matches("--web.config.file").count() >= 4);
}
