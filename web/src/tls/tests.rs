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

/// Runs a handshake in memory; `Err` names the side that refused and why.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    ca: &Path,
    client: Option<&Identity>,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in load_certs("ca", ca).expect("ca") {
        roots.add(c).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let cfg = match client {
        Some(id) => builder
            .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut c = rustls::ClientConnection::new(Arc::new(cfg), name).expect("client");
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
            return Ok(());
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
