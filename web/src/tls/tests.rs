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
