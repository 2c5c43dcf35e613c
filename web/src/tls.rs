//! The rustls server configuration of `tls_server_config`: certificate chain and key, the
//! client-certificate policy, the protocol versions; ALPN says HTTP/1.1.
//!
//! Invariants:
//! - Every file is read and parsed here, before the listener exists; an error names the key
//!   and the file.
//! - With `RequireAndVerifyClientCert` a connection without a certificate signed by the
//!   client CA never completes its handshake; with `VerifyClientCertIfGiven` one without a
//!   certificate does, one with a foreign certificate does not.
//! - A client certificate that is itself in `client_ca_file` is accepted as it is (within
//!   its validity, for client authentication), `CA:TRUE` or not, as Go accepts it
//!   (`verify.rs`): a file `check-config` accepts works with the certificates it names.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use attest_config::web::{ClientAuth, TlsVersion, WebTls};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::verify::{ClientVerifier, Pinned};

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
    #[error("{0}")]
    Settings(String),
}

/// Builds the server configuration `tls` describes.
pub fn server_config(tls: &WebTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = load_certs("cert_file", &tls.cert_file)?;
    let key = load_key("key_file", &tls.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(tls.min_version, tls.max_version);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Settings(format!("TLS protocol versions: {e}")))?;
    let builder = match (&tls.client_ca_file, tls.client_auth) {
        (Some(ca), ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify) => {
            let certs = load_certs("client_ca_file", ca)?;
            let roots = Arc::new(roots_of(&certs, ca)?);
            let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Pem {
                    what: "client_ca_file",
                    path: ca.clone(),
                    reason: format!("cannot verify client certificates with it: {e}"),
                })?;
            let verifier = ClientVerifier {
                webpki,
                pinned: certs.iter().filter_map(Pinned::new).collect(),
                mandatory: tls.client_auth == ClientAuth::RequireAndVerify,
                algorithms: provider.signature_verification_algorithms,
            };
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
        (None, ClientAuth::None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::Settings(
                "client_ca_file is needed exactly when client_auth_type verifies certificates"
                    .into(),
            ));
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Pair {
            cert: tls.cert_file.clone(),
            key: tls.key_file.clone(),
            reason: e.to_string(),
        })?;
    // Both listeners speak HTTP/1.1 only; saying so lets clients offering h2 fall back.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn versions(min: TlsVersion, max: TlsVersion) -> Vec<&'static rustls::SupportedProtocolVersion> {
    [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect()
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
    let pem = read_file(what, path)?;
    let bad = |reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cannot parse PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate found; expected PEM blocks '-----BEGIN CERTIFICATE-----'".into(),
        ));
    }
    Ok(certs)
}

/// The first PEM private key of `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(what, path)?;
    let bad = |reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_slice()))
        .map_err(|e| bad(format!("cannot parse PEM: {e}")))?
        .ok_or_else(|| {
            bad("no private key found; expected a PEM block '-----BEGIN PRIVATE KEY-----' (PKCS#8), 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'".into())
        })
}

fn roots_of(certs: &[CertificateDer<'static>], path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).map_err(|e| TlsError::Pem {
            what: "client_ca_file",
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests;
