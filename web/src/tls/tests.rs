use super::*;
use attest_config::web::parse_web;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

fn write_pki(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".into()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write");
}

fn tls_of(dir: &Path, body: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file = dir.join("web.yml");
    let cfg = parse_web(&file.display().to_string(), body).expect("valid web config");
    server_config(cfg.tls.as_ref().expect("tls"))
}

#[test]
fn builds_each_client_auth_policy_and_version_range() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let base = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let plain = tls_of(dir.path(), base).expect("plain");
    assert_eq!(plain.alpn_protocols, vec![b"http/1.1".to_vec()]);
    for auth in ["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"] {
        let body = format!("{base}  client_auth_type: {auth}\n  client_ca_file: ca.pem\n");
        tls_of(dir.path(), &body).expect(auth);
    }
    tls_of(dir.path(), &format!("{base}  min_version: TLS13\n")).expect("tls13 only");
    tls_of(dir.path(), &format!("{base}  max_version: TLS12\n")).expect("tls12 only");
}

#[test]
fn file_errors_name_the_key_and_the_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let e = tls_of(
        dir.path(),
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
    )
    .expect_err("missing cert");
    let msg = e.to_string();
    assert!(
        msg.contains("cert_file") && msg.contains("missing.pem"),
        "{msg}"
    );
    let e = tls_of(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: ca.pem\n",
    )
    .expect_err("a certificate is not a key");
    assert!(e.to_string().contains("no private key found"), "{e}");
    let e = tls_of(
        dir.path(),
        "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
    )
    .expect_err("a key is not a certificate");
    assert!(e.to_string().contains("no certificate found"), "{e}");
}

/// A client identity: certificate (DER) and key.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pem: String,
}

/// A self-signed client certificate; `ca` sets `CA:TRUE` (as exporter-toolkit's own test
/// client certificates have), `eku` its extended key usage.
fn self_signed(ca: bool, eku: rcgen::ExtendedKeyUsagePurpose, expired: bool) -> Identity {
    let mut params = CertificateParams::new(vec!["scraper".to_string()]).expect("params");
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params.extended_key_usages = vec![eku];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    Identity {
        cert: cert.der().clone(),
        key: PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        pem: cert.pem(),
    }
}

/// A client trusting `ca`, presenting `client` when given, with `provider`'s suites/groups.
fn client_config(
    ca: &Path,
    client: Option<&Identity>,
    provider: rustls::crypto::CryptoProvider,
) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    for c in load_certs("ca", ca).expect("ca") {
        roots.add(c).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match client {
        Some(id) => builder
            .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    }
}

/// Runs a handshake in memory; `Err` names the side that refused and why.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    ca: &Path,
    client: Option<&Identity>,
) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    handshake_with(server, client_config(ca, client, provider)).map(|_| ())
}

/// What a finished handshake negotiated: cipher suite and key-exchange group.
type Negotiated = (rustls::CipherSuite, Option<rustls::NamedGroup>);

fn handshake_with(
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
) -> Result<Negotiated, String> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
    let mut s = rustls::ServerConnection::new(server).expect("server");
    for _ in 0..32 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write");
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("server read");
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server write");
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client read");
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            let suite = s.negotiated_cipher_suite().expect("suite").suite();
            let group = s
                .negotiated_key_exchange_group()
                .map(rustls::crypto::SupportedKxGroup::name);
            return Ok((suite, group));
        }
    }
    Err("handshake did not finish".into())
}

#[test]
fn a_self_signed_ca_client_certificate_in_client_ca_file_is_accepted_as_it_is() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let client_auth = rcgen::ExtendedKeyUsagePurpose::ClientAuth;
    let pinned = self_signed(true, client_auth.clone(), false);
    let stranger = self_signed(true, client_auth.clone(), false);
    let server_only = self_signed(true, rcgen::ExtendedKeyUsagePurpose::ServerAuth, false);
    let expired = self_signed(true, client_auth.clone(), true);
    let leaf = self_signed(false, client_auth, false);
    let bundle = [&pinned, &server_only, &expired, &leaf]
        .iter()
        .map(|i| i.pem.as_str())
        .collect::<String>();
    std::fs::write(dir.path().join("clients.pem"), bundle).expect("write");
    let ca = dir.path().join("ca.pem");
    for auth in ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"] {
        let body = format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: {auth}\n  client_ca_file: clients.pem\n"
        );
        let server = tls_of(dir.path(), &body).expect(auth);
        handshake(server.clone(), &ca, Some(&pinned)).expect("the pinned CA:TRUE certificate");
        handshake(server.clone(), &ca, Some(&leaf)).expect("a pinned CA:FALSE certificate");
        let e = handshake(server.clone(), &ca, Some(&stranger)).expect_err("not in the file");
        assert!(e.starts_with("server:"), "{e}");
        let e = handshake(server.clone(), &ca, Some(&server_only)).expect_err("serverAuth only");
        assert!(e.to_lowercase().contains("purpose"), "{e}");
        let e = handshake(server.clone(), &ca, Some(&expired)).expect_err("expired");
        assert!(e.to_lowercase().contains("expired"), "{e}");
        let without = handshake(server, &ca, None);
        assert_eq!(
            without.is_ok(),
            auth == "VerifyClientCertIfGiven",
            "{auth} without a certificate: {without:?}"
        );
    }
}

#[test]
fn a_certificate_signed_by_the_client_ca_still_goes_through_webpki() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    // The server certificate is signed by ca.pem: as a client certificate it verifies (it
    // has no extended key usage), though it is not in the file itself.
    let id = Identity {
        cert: load_certs("c", &dir.path().join("server.pem")).expect("cert")[0].clone(),
        key: load_key("k", &dir.path().join("server.key")).expect("key"),
        pem: String::new(),
    };
    let body = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
    let server = tls_of(dir.path(), body).expect("config");
    handshake(server, &dir.path().join("ca.pem"), Some(&id)).expect("chain to the CA");
}

/// ring restricted to the cipher suites and groups named (IANA numbers); empty: all.
fn restricted(suites: &[u16], groups: &[u16]) -> rustls::crypto::CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        // In the order given: it is the client's preference.
        let all = std::mem::take(&mut p.cipher_suites);
        p.cipher_suites = suites
            .iter()
            .filter_map(|id| all.iter().find(|s| u16::from(s.suite()) == *id).copied())
            .collect();
    }
    if !groups.is_empty() {
        p.kx_groups
            .retain(|g| groups.contains(&u16::from(g.name())));
    }
    p
}

const ECDSA_AES128: u16 = 0xc02b;
const ECDSA_AES256: u16 = 0xc02c;
const ECDSA_CHACHA: u16 = 0xcca9;

#[test]
fn cipher_suites_and_their_order_are_the_configured_ones() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let base = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  max_version: TLS12\n  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n";
    let both = restricted(&[ECDSA_AES128, ECDSA_AES256], &[]);
    let server_first = tls_of(dir.path(), base).expect("server order");
    let (suite, _) =
        handshake_with(server_first, client_config(&ca, None, both.clone())).expect("common suite");
    assert_eq!(
        u16::from(suite),
        ECDSA_AES256,
        "the server's order (the default)"
    );
    let client_first = tls_of(
        dir.path(),
        &format!("{base}  prefer_server_cipher_suites: false\n"),
    )
    .expect("client order");
    let (suite, _) =
        handshake_with(client_first.clone(), client_config(&ca, None, both)).expect("common suite");
    assert_eq!(u16::from(suite), ECDSA_AES128, "the client's order");
    let chacha_only = restricted(&[ECDSA_CHACHA], &[]);
    let e = handshake_with(client_first, client_config(&ca, None, chacha_only))
        .expect_err("no common suite");
    assert!(e.contains("server:"), "{e}");
}

#[test]
fn curve_preferences_are_the_only_groups_offered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let body = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n  curve_preferences: [CurveP384]\n";
    let server = tls_of(dir.path(), body).expect("p384");
    let (_, group) = handshake_with(
        server.clone(),
        client_config(&ca, None, restricted(&[], &[24])),
    )
    .expect("p384 client");
    assert_eq!(group.map(u16::from), Some(24));
    let e = handshake_with(server, client_config(&ca, None, restricted(&[], &[29])))
        .expect_err("x25519 only");
    assert!(e.contains("server:"), "{e}");
}

#[test]
fn inline_pem_serves_like_files() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let indent = |f: &str| {
        std::fs::read_to_string(dir.path().join(f))
            .expect("pem")
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let body = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent("server.pem"),
        indent("server.key")
    );
    let server = tls_of(dir.path(), &body).expect("inline");
    handshake(server, &dir.path().join("ca.pem"), None).expect("handshake");
    let e = tls_of(
        dir.path(),
        &format!(
            "tls_server_config:\n  cert: |\n{}  key_file: ca.pem\n",
            indent("server.pem")
        ),
    )
    .expect_err("no key in the file");
    assert!(e.to_string().contains("key_file"), "{e}");
    let e = tls_of(
        dir.path(),
        &format!(
            "tls_server_config:\n  cert_file: server.pem\n  key: |\n{}",
            indent("ca.pem")
        ),
    )
    .expect_err("a certificate is no key");
    let msg = e.to_string();
    let body_line = indent("ca.pem")
        .lines()
        .nth(1)
        .expect("pem body")
        .trim()
        .to_string();
    assert!(msg.contains("key (inline PEM)"), "{msg}");
    assert!(!msg.contains(&body_line), "inline PEM is not echoed: {msg}");
}

#[test]
fn require_any_client_cert_takes_any_certificate_but_not_none() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let id = self_signed(true, rcgen::ExtendedKeyUsagePurpose::ClientAuth, false);
    let body = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n";
    let server = tls_of(dir.path(), body).expect("any");
    handshake(server.clone(), &ca, Some(&id)).expect("a self-made certificate");
    assert!(handshake(server, &ca, None).is_err(), "no certificate");
    let body = body.replace("RequireAnyClientCert", "RequestClientCert");
    let server = tls_of(dir.path(), &body).expect("request");
    handshake(server.clone(), &ca, Some(&id)).expect("a self-made certificate");
    handshake(server, &ca, None).expect("none is fine too");
}

#[test]
fn client_allowed_sans_refuse_a_verified_certificate_without_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let id = self_signed(true, rcgen::ExtendedKeyUsagePurpose::ClientAuth, false);
    std::fs::write(dir.path().join("client.pem"), &id.pem).expect("write");
    let with = |sans: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.pem\n  client_allowed_sans: [{sans}]\n"
        )
    };
    let ok = tls_of(dir.path(), &with("one, scraper, two")).expect("allowed");
    handshake(ok, &ca, Some(&id)).expect("scraper is allowed");
    let bad = tls_of(dir.path(), &with("bad")).expect("not allowed");
    let e = handshake(bad, &ca, Some(&id)).expect_err("scraper is not allowed");
    assert!(
        e.contains("client_allowed_sans") && e.contains("scraper"),
        "{e}"
    );
}

#[test]
fn verify_if_given_without_a_ca_uses_the_system_trust_store() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let body = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n";
    let server = tls_of(dir.path(), body).expect("system roots");
    handshake(server.clone(), &ca, None).expect("no certificate is fine");
    let id = self_signed(true, rcgen::ExtendedKeyUsagePurpose::ClientAuth, false);
    let e = handshake(server, &ca, Some(&id)).expect_err("no public CA signed it");
    assert!(e.contains("server:"), "{e}");
}
