//! The client-certificate verifier of `tls_server_config`: webpki's chain check, plus what
//! Go's `crypto/tls` (exporter-toolkit) accepts and webpki does not — a client certificate
//! that is itself one of the certificates of `client_ca_file` ("pinned"). Self-signed client
//! certificates are often `CA:TRUE`, which webpki refuses as an end entity
//! (`CaUsedAsEndEntity`); Go verifies them as a chain of one certificate. Also the policies
//! that do not verify a chain (`RequestClientCert`, `RequireAnyClientCert`) and the SAN
//! allow-list (`client_allowed_sans`), checked as exporter-toolkit checks it.
//!
//! Invariants:
//! - A pinned certificate is accepted only byte for byte, inside its validity period, and
//!   only when its extended key usage allows client authentication (none, `clientAuth` or
//!   `anyExtendedKeyUsage`), which is what Go checks of a chain of one certificate.
//! - Every other certificate goes through webpki's chain verification unchanged, unless the
//!   policy does not verify chains at all.
//! - With `client_allowed_sans`, a certificate that passed the chain check must also name
//!   one of them (DNS name, e-mail address, IP address or URI, compared exactly).
//! - The handshake signature is always checked with the presented certificate's own key, so
//!   a client must hold the private key of the certificate it presents.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_cert::der::Decode;
use x509_cert::der::oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_CLIENT_AUTH};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

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

/// How a presented certificate's chain is checked.
#[derive(Debug)]
pub(crate) enum Chain {
    /// webpki against the configured CAs (or the system trust store).
    WebPki(Arc<dyn ClientCertVerifier>),
    /// The system trust store is empty: only pinned certificates could pass (there are none).
    Nothing,
    /// `RequestClientCert`, `RequireAnyClientCert`: any certificate (its key is still proven
    /// by the handshake signature).
    Unverified,
}

/// The chain check, pinned certificates in front of it, the SAN allow-list after it.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    chain: Chain,
    pinned: Vec<Pinned>,
    /// A connection without a certificate fails its handshake.
    mandatory: bool,
    allowed_sans: Vec<String>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub(crate) fn new(
        chain: Chain,
        pinned: Vec<Pinned>,
        mandatory: bool,
        allowed_sans: Vec<String>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> ClientVerifier {
        let hints = match &chain {
            Chain::WebPki(v) => v.root_hint_subjects().to_vec(),
            Chain::Nothing | Chain::Unverified => Vec::new(),
        };
        ClientVerifier {
            chain,
            pinned,
            mandatory,
            allowed_sans,
            hints,
            algorithms,
        }
    }

    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        if let Some(p) = self
            .pinned
            .iter()
            .find(|p| p.der.as_ref() == end_entity.as_ref())
        {
            return p.check(now);
        }
        match &self.chain {
            Chain::WebPki(v) => v
                .verify_client_cert(end_entity, intermediates, now)
                .map(|_| ()),
            Chain::Nothing => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            Chain::Unverified => Ok(()),
        }
    }

    /// exporter-toolkit's `VerifyPeerCertificate`: one of the certificate's SANs is allowed.
    fn check_sans(&self, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
        if self.allowed_sans.is_empty() {
            return Ok(());
        }
        let found =
            sans_of(end_entity).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if found.iter().any(|s| self.allowed_sans.contains(s)) {
            return Ok(());
        }
        Err(Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(SanRefused(found))),
        )))
    }
}

/// The certificate names none of `client_allowed_sans`. rustls prints a certificate error
/// with `Debug`, so both say the same.
struct SanRefused(Vec<String>);

impl std::fmt::Debug for SanRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for SanRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "client certificate SANs {:?} include none of client_allowed_sans",
            self.0
        )
    }
}

impl std::error::Error for SanRefused {}

/// The SANs of a certificate as Go prints them (DNS names, e-mail addresses, IP addresses,
/// URIs); `None` when the certificate cannot be read.
pub(crate) fn sans_of(der: &CertificateDer<'_>) -> Option<Vec<String>> {
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let Some((_, san)) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .ok()?
    else {
        return Some(Vec::new());
    };
    Some(
        san.0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(s)
                | GeneralName::Rfc822Name(s)
                | GeneralName::UniformResourceIdentifier(s) => Some(s.as_str().to_string()),
                GeneralName::IpAddress(octets) => ip_text(octets.as_bytes()),
                _ => None,
            })
            .collect(),
    )
}

/// An IP address SAN as Go's `net.IP.String()` writes it (IPv4-mapped IPv6 as IPv4).
fn ip_text(b: &[u8]) -> Option<String> {
    let ip = match b.len() {
        4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(ip.to_string())
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify_chain(end_entity, intermediates, now)?;
        self.check_sans(end_entity)?;
        Ok(ClientCertVerified::assertion())
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
