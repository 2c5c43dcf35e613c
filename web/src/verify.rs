//! The client-certificate verifier of `tls_server_config`: webpki's chain check, plus what
//! Go's `crypto/tls` (exporter-toolkit) accepts and webpki does not — a client certificate
//! that is itself one of the certificates of `client_ca_file` ("pinned"). Self-signed client
//! certificates are often `CA:TRUE`, which webpki refuses as an end entity
//! (`CaUsedAsEndEntity`); Go verifies them as a chain of one certificate.
//!
//! Invariants:
//! - A pinned certificate is accepted only byte for byte, inside its validity period, and
//!   only when its extended key usage allows client authentication (none, `clientAuth` or
//!   `anyExtendedKeyUsage`), which is what Go checks of a chain of one certificate.
//! - Every other certificate goes through webpki's chain verification unchanged.
//! - The handshake signature is always checked with the presented certificate's own key, so
//!   a client must hold the private key of the certificate it presents.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_cert::der::Decode;
use x509_cert::der::oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_CLIENT_AUTH};
use x509_cert::ext::pkix::ExtendedKeyUsage;

/// A certificate of `client_ca_file` that a client may present as it is.
#[derive(Debug, Clone)]
pub(crate) struct Pinned {
    der: CertificateDer<'static>,
    not_before: u64,
    not_after: u64,
    /// Its extended key usage allows client authentication.
    client_auth: bool,
}

impl Pinned {
    /// `None` for a certificate x509-cert cannot read (it stays a CA for webpki).
    pub(crate) fn new(der: &CertificateDer<'static>) -> Option<Pinned> {
        let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        let client_auth = match tbs.get_extension::<ExtendedKeyUsage>().ok()? {
            None => true,
            Some((_, eku)) => eku
                .0
                .iter()
                .any(|o| *o == ID_KP_CLIENT_AUTH || *o == ANY_EXTENDED_KEY_USAGE),
        };
        Some(Pinned {
            der: der.clone(),
            not_before: validity.not_before.to_unix_duration().as_secs(),
            not_after: validity.not_after.to_unix_duration().as_secs(),
            client_auth,
        })
    }

    fn check(&self, now: UnixTime) -> Result<(), Error> {
        let now = now.as_secs();
        if now < self.not_before {
            return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if now > self.not_after {
            return Err(Error::InvalidCertificate(CertificateError::Expired));
        }
        if !self.client_auth {
            return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
        Ok(())
    }
}

/// webpki with pinned certificates in front of it.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    pub(crate) webpki: Arc<dyn ClientCertVerifier>,
    pub(crate) pinned: Vec<Pinned>,
    /// A connection without a certificate fails its handshake.
    pub(crate) mandatory: bool,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(p) = self
            .pinned
            .iter()
            .find(|p| p.der.as_ref() == end_entity.as_ref())
        {
            p.check(now)?;
            return Ok(ClientCertVerified::assertion());
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
