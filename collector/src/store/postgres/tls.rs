//! TLS to PostgreSQL: libpq's `sslmode` on the workspace's rustls with the ring provider.
//!
//! Job: turn `[storage] postgres_sslmode` / `postgres_sslrootcert` into the mode
//! tokio-postgres negotiates with and the rustls connector it hands the stream to.
//!
//! Invariants:
//! - `verify-full` checks the certificate chain against the configured CA and that the
//!   certificate names the host of `postgres_url` (an IP address there must be an IP SAN).
//! - `verify-ca` checks the chain only; any host name is accepted.
//! - `prefer` and `require` do not check the certificate at all: they encrypt against a
//!   passive listener but not against someone in the middle (as in libpq). The TLS
//!   handshake's own signatures are still checked with the certificate's key.
//! - Only the ring provider is used (never aws-lc-rs); TLS 1.2 and 1.3 as rustls allows.
//! - A Unix-socket host never uses TLS (the server refuses it there, libpq skips it too).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attest_config::{PostgresSslMode, PostgresTls};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the TLS settings for PostgreSQL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read postgres_sslrootcert {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "postgres_sslrootcert {path} holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")"
    )]
    Empty { path: PathBuf },
    #[error("postgres_sslrootcert {path}: a certificate is not usable as a CA: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Rustls(String),
}

/// Sets the mode tokio-postgres negotiates on `config` and returns the connector every
/// connection is made with (the CA file is read once, here).
pub fn setup(
    tls: &PostgresTls,
    config: &mut tokio_postgres::Config,
) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.mode, &tls.root_cert) {
        (PostgresSslMode::VerifyFull, Some(path)) => chain_verifier(path, provider.clone())?,
        (PostgresSslMode::VerifyCa, Some(path)) => Arc::new(AnyHostName {
            chain: chain_verifier(path, provider.clone())?,
        }),
        _ => Arc::new(Unverified {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.ssl_mode(ssl_mode(tls.mode, config));
    Ok(MakeRustlsConnect::new(client))
}

/// libpq's mode as tokio-postgres knows it: the verifying modes are `Require` plus a
/// verifying connector. Unix sockets get `Disable` (see the module header).
fn ssl_mode(mode: PostgresSslMode, config: &tokio_postgres::Config) -> SslMode {
    let hosts = config.get_hosts();
    let unix_only = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
    match mode {
        _ if unix_only => SslMode::Disable,
        PostgresSslMode::Disable => SslMode::Disable,
        PostgresSslMode::Prefer => SslMode::Prefer,
        PostgresSslMode::Require | PostgresSslMode::VerifyCa | PostgresSslMode::VerifyFull => {
            SslMode::Require
        }
    }
}

/// The standard WebPKI verifier (chain and host name) over the CA certificates in `path`.
fn chain_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsSetupError> {
    let roots = Arc::new(read_roots(path)?);
    WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsSetupError::BadCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TlsSetupError::BadCa {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// `verify-ca`: the chain must verify; a certificate that names another host is accepted.
/// The WebPKI verifier checks the chain before the name, so a name error means the chain
/// was good.
#[derive(Debug)]
struct AnyHostName {
    chain: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// `prefer` and `require`: any certificate is accepted (the documented risk); the
/// handshake signatures are still verified, so the session is bound to that certificate.
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
