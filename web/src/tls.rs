//! The rustls server configuration of `tls_server_config`: certificate chain and key (files
//! or inline PEM), the client-certificate policy, protocol versions, cipher suites and
//! key-exchange groups; ALPN says HTTP/1.1.
//!
//! Invariants:
//! - Every file is read and parsed here, before the listener exists; an error names the key
//!   and the file.
//! - With `RequireAndVerifyClientCert` a connection without a verified certificate never
//!   completes its handshake; with `VerifyClientCertIfGiven` one without a certificate does,
//!   one with a foreign certificate does not. Without `client_ca_file` the system trust
//!   store verifies (as Go does); with `RequireAnyClientCert` any certificate whose key the
//!   client holds is accepted.
//! - A client certificate that is itself in `client_ca_file` is accepted as it is (within
//!   its validity, for client authentication), `CA:TRUE` or not, as Go accepts it
//!   (`verify.rs`): a file `check-config` accepts works with the certificates it names.
//! - Only what the configuration lists is offered: its cipher suites (TLS 1.3 keeps all of
//!   its own unless the list names some) and curves, in its order; a TLS 1.2 list must have
//!   a suite the certificate's key can sign, or TLS 1.2 clients could never connect.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use attest_config::web::{ClientAuth, Pem, TlsVersion, WebTls};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::verify::{Chain, ClientVerifier, Pinned};

/// Why TLS cannot be set up; `what` is the key of `tls_server_config` that names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {err}; check the path and its permissions")]
    File {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("invalid {what} {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "cert_file {cert} and key_file {key} do not form a usable pair: {reason}; the key must be the certificate's private key"
    )]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// A problem with PEM written in the web configuration (`cert`, `key`, `client_ca`).
    #[error("{what} (inline PEM): {reason}")]
    Inline { what: &'static str, reason: String },
    #[error("{0}")]
    Settings(String),
}

/// Builds the server configuration `tls` describes.
pub fn server_config(tls: &WebTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certs_of("cert_file", "cert", &tls.cert)?;
    let key = key_of(&tls.key)?;
    let provider = Arc::new(provider_for(tls));
    let versions = versions(tls, &provider);
    check_key_fits_tls12(tls, &provider, &versions, &key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Settings(format!("TLS protocol versions: {e}")))?;
    let builder = match client_verifier(tls, &provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| match (&tls.cert, &tls.key) {
            (Pem::File(cert), Pem::File(key)) => TlsError::Pair {
                cert: cert.clone(),
                key: key.clone(),
                reason: e.to_string(),
            },
            _ => TlsError::Inline {
                what: "cert and key",
                reason: format!(
                    "they do not form a usable pair: {e}; the key must be the certificate's private key"
                ),
            },
        })?;
    // Both listeners speak HTTP/1.1 only; saying so lets clients offering h2 fall back.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // exporter-toolkit's prefer_server_cipher_suites (default true).
    cfg.ignore_client_order = tls.prefer_server_cipher_suites;
    Ok(Arc::new(cfg))
}

/// ring with the listed cipher suites and curves, in the listed order.
fn provider_for(tls: &WebTls) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        let all = std::mem::take(&mut provider.cipher_suites);
        let pick = |tls13: bool| {
            tls.cipher_suites
                .iter()
                .filter(move |s| s.tls13 == tls13)
                .filter_map(|s| all.iter().find(|a| u16::from(a.suite()) == s.id).copied())
                .collect::<Vec<_>>()
        };
        let mut tls13 = pick(true);
        if tls13.is_empty() {
            // Go's list never touches TLS 1.3: it keeps all of its suites.
            tls13 = all
                .iter()
                .filter(|a| matches!(a, rustls::SupportedCipherSuite::Tls13(_)))
                .copied()
                .collect();
        }
        provider.cipher_suites = tls13.into_iter().chain(pick(false)).collect();
    }
    if !tls.curve_preferences.is_empty() {
        let all = std::mem::take(&mut provider.kx_groups);
        provider.kx_groups = tls
            .curve_preferences
            .iter()
            .filter_map(|c| all.iter().find(|g| u16::from(g.name()) == c.id).copied())
            .collect();
    }
    provider
}

/// The versions in range that have a cipher suite to offer.
fn versions(
    tls: &WebTls,
    provider: &CryptoProvider,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let has = |v: &rustls::SupportedProtocolVersion| {
        provider.cipher_suites.iter().any(|s| s.version() == v)
    };
    [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, p)| (tls.min_version..=tls.max_version).contains(v) && has(p))
    .map(|(_, p)| p)
    .collect()
}

/// A TLS 1.2 suite list the certificate's key cannot sign for (ECDSA suites with an RSA
/// key, say) would fail every TLS 1.2 handshake: refused at start instead.
fn check_key_fits_tls12(
    tls: &WebTls,
    provider: &CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
    key: &PrivateKeyDer<'static>,
) -> Result<(), TlsError> {
    if tls.cipher_suites.is_empty() || !versions.contains(&&rustls::version::TLS12) {
        return Ok(());
    }
    let Ok(signing) = provider.key_provider.load_private_key(key.clone_key()) else {
        // with_single_cert reports an unusable key with its reason.
        return Ok(());
    };
    let alg = signing.algorithm();
    let fits = provider
        .cipher_suites
        .iter()
        .any(|s| s.version() == &rustls::version::TLS12 && s.usable_for_signature_algorithm(alg));
    if fits {
        return Ok(());
    }
    Err(TlsError::Settings(format!(
        "cipher_suites: none of the TLS 1.2 suites listed works with the certificate's {alg:?} key, so TLS 1.2 clients could never connect; list TLS_ECDHE_{}_WITH_* suites, or set min_version: TLS13",
        if alg == rustls::SignatureAlgorithm::RSA {
            "RSA"
        } else {
            "ECDSA"
        }
    )))
}

/// The verifier of client certificates; `None`: none is asked for.
fn client_verifier(
    tls: &WebTls,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<ClientVerifier>>, TlsError> {
    let algorithms = provider.signature_verification_algorithms;
    let chain = match (tls.client_auth, &tls.client_ca) {
        (ClientAuth::None, _) => return Ok(None),
        (ClientAuth::Request | ClientAuth::RequireAny, _) => (Chain::Unverified, Vec::new()),
        (_, Some(ca)) => {
            let certs = certs_of("client_ca_file", "client_ca", ca)?;
            let roots = Arc::new(roots_of(&certs, ca)?);
            let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| {
                    bad_pem(
                        "client_ca_file",
                        "client_ca",
                        ca,
                        format!("cannot verify client certificates with it: {e}"),
                    )
                })?;
            let pinned = certs.iter().filter_map(Pinned::new).collect();
            (Chain::WebPki(webpki), pinned)
        }
        (auth, None) => (system_chain(auth, provider)?, Vec::new()),
    };
    let (chain, pinned) = chain;
    Ok(Some(Arc::new(ClientVerifier::new(
        chain,
        pinned,
        tls.client_auth.mandatory(),
        tls.client_allowed_sans.clone(),
        algorithms,
    ))))
}

/// Verification against the system trust store (Go's behaviour without `client_ca_file`);
/// its subjects are not sent as hints (hundreds of names in every handshake).
fn system_chain(auth: ClientAuth, provider: &Arc<CryptoProvider>) -> Result<Chain, TlsError> {
    let roots = system_roots();
    if roots.is_empty() {
        if auth.mandatory() {
            return Err(TlsError::Settings(
                "client_auth_type: RequireAndVerifyClientCert without client_ca_file verifies against the system trust store, which has no certificate here, so no client could connect; name the CA of your client certificates in client_ca_file".into(),
            ));
        }
        // No anchor: a client without a certificate connects, one with a certificate cannot.
        return Ok(Chain::Nothing);
    }
    WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .clear_root_hint_subjects()
        .build()
        .map(Chain::WebPki)
        .map_err(|e| {
            TlsError::Settings(format!(
                "the system trust store cannot verify client certificates: {e}"
            ))
        })
}

/// The system trust store, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let _ = store.add_parsable_certificates(loaded.certs);
            Arc::new(store)
        })
        .clone()
}

fn bad_pem(what: &'static str, inline: &'static str, pem: &Pem, reason: String) -> TlsError {
    match pem {
        Pem::File(path) => TlsError::Pem {
            what,
            path: path.clone(),
            reason,
        },
        Pem::Inline(_) => TlsError::Inline {
            what: inline,
            reason,
        },
    }
}

/// The bytes of a PEM source.
fn pem_bytes(what: &'static str, pem: &Pem) -> Result<Vec<u8>, TlsError> {
    match pem {
        Pem::File(path) => read_file(what, path),
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

/// The certificates of a PEM source; at least one.
fn certs_of(
    what: &'static str,
    inline: &'static str,
    pem: &Pem,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = pem_bytes(what, pem)?;
    parse_certs(&bytes).map_err(|reason| bad_pem(what, inline, pem, reason))
}

/// The first private key of a PEM source.
fn key_of(pem: &Pem) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = pem_bytes("key_file", pem)?;
    parse_key(&bytes).map_err(|reason| bad_pem("key_file", "key", pem, reason))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::File {
        what,
        path: path.to_path_buf(),
        err,
    })
}

/// The PEM certificates of `path`; at least one.
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_of(what, what, &Pem::File(path.to_path_buf()))
}

/// The first PEM private key of `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(what, path)?;
    parse_key(&pem).map_err(|reason| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    })
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot parse PEM: {e}"))?;
    if certs.is_empty() {
        return Err(
            "no certificate found; expected PEM blocks '-----BEGIN CERTIFICATE-----'".into(),
        );
    }
    Ok(certs)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .map_err(|e| format!("cannot parse PEM: {e}"))?
        .ok_or_else(|| {
            "no private key found; expected a PEM block '-----BEGIN PRIVATE KEY-----' (PKCS#8), 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'".into()
        })
}

fn roots_of(certs: &[CertificateDer<'static>], pem: &Pem) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).map_err(|e| {
            bad_pem(
                "client_ca_file",
                "client_ca",
                pem,
                format!("not a usable CA certificate: {e}"),
            )
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests;
