//! The TLS client side shared by the http, tcp and tls probes: trust roots, client
//! certificates, optional verification, and the facts a probe reports about the
//! handshake (presented chain, earliest expiry, protocol version).
//!
//! Invariants: only the `ring` provider is used; session resumption is off so every
//! probe measures a full handshake; the presented chain is recorded even when
//! verification fails, so expiry can be reported for broken or expired chains too.
//! Checks whose TLS options name no file share one [`TlsSetup`] per distinct options
//! ([`TlsSetup::shared`]): a setup is a template that each handshake clones, so sharing it
//! changes nothing a probe sees, and a thousand checks hold one config instead of a
//! thousand. Options naming a file (CA, client certificate) get their own setup, read when
//! the check is built, so a reload picks up a changed file.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use attest_config::TlsClientOptions;
use attest_config::wire::{FailureReason, Phase};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_cert::der::Decode;

use super::BuildError;
use super::net::{Failure, Outcome};

/// A ready-to-use TLS client for one check; cheap to use once per probe.
#[derive(Debug, Clone)]
pub(crate) struct TlsSetup {
    /// Template config; cloned per probe to attach a fresh recording verifier.
    config: ClientConfig,
    /// `None` when verification is off.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    server_name: Option<String>,
}

/// What the handshake revealed, successful or not.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFacts {
    /// Earliest `notAfter` of the presented chain, unix seconds.
    pub earliest_expiry: Option<i64>,
    /// e.g. `TLSv1_3`.
    pub version: Option<String>,
}

impl TlsFacts {
    /// Adds `tls_earliest_cert_expiry_seconds` and the `tls_version` label.
    pub fn record(&self, out: &mut Outcome) {
        if let Some(expiry) = self.earliest_expiry {
            out.value("tls_earliest_cert_expiry_seconds", expiry as f64);
        }
        if let Some(version) = &self.version {
            out.labels
                .insert("tls_version".to_string(), version.clone());
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system trust store, loaded once per process: parsing a few hundred roots per
/// check would dominate start-up.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = store.add_parsable_certificates(loaded.certs);
            Arc::new(store)
        })
        .clone()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let file = File::open(path).map_err(|e| BuildError::file(path, e.to_string()))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_reader_iter(BufReader::new(file)).collect();
    let certs = certs.map_err(|e| BuildError::file(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(BuildError::file(path, "no PEM certificate found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, BuildError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| BuildError::file(path, e.to_string()))
}

fn roots(opts: &TlsClientOptions) -> Result<Arc<RootCertStore>, BuildError> {
    let Some(ca) = &opts.ca_file else {
        return Ok(system_roots());
    };
    let mut store = RootCertStore::empty();
    for cert in read_certs(ca)? {
        store
            .add(cert)
            .map_err(|e| BuildError::file(ca, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// What makes two file-less setups interchangeable: verification, name and ALPN.
type SharedKey = (bool, Option<String>, Vec<Vec<u8>>);

/// File-less setups in use, by options; dead entries are pruned when a new one is added.
type SharedSetups = Mutex<Vec<(SharedKey, Weak<TlsSetup>)>>;

fn shared_setups() -> &'static SharedSetups {
    static SHARED: OnceLock<SharedSetups> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Vec::new()))
}

impl TlsSetup {
    /// The setup for `opts` offering `alpn`, shared with every other check of the same
    /// file-less options (see the module header); built afresh when `opts` names a file.
    pub fn shared(opts: &TlsClientOptions, alpn: &[&[u8]]) -> Result<Arc<Self>, BuildError> {
        let build = || Ok(Arc::new(TlsSetup::new(opts)?.with_alpn(alpn)));
        if opts.ca_file.is_some() || opts.client_cert.is_some() || opts.client_key.is_some() {
            return build();
        }
        let key: SharedKey = (
            opts.verify,
            opts.server_name.clone(),
            alpn.iter().map(|p| p.to_vec()).collect(),
        );
        let mut setups = shared_setups()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(live) = setups
            .iter()
            .filter(|(k, _)| *k == key)
            .find_map(|(_, w)| w.upgrade())
        {
            return Ok(live);
        }
        let setup = build()?;
        setups.retain(|(_, w)| w.strong_count() > 0);
        setups.push((key, Arc::downgrade(&setup)));
        Ok(setup)
    }

    pub fn new(opts: &TlsClientOptions) -> Result<Self, BuildError> {
        let provider = provider();
        let verifier = if opts.verify {
            let roots = roots(opts)?;
            let v = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| BuildError::Tls(format!("{e}; set tls.ca_file to a PEM CA bundle")))?;
            Some(v)
        } else {
            None
        };
        let recorder = Arc::new(RecordingVerifier::new(verifier.clone(), provider.clone()));
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(recorder);
        let mut config = match (&opts.client_cert, &opts.client_key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| BuildError::file(key, format!("key does not fit certificate: {e}")))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(BuildError::Tls(
                    "set both tls.client_cert and tls.client_key, or neither".into(),
                ));
            }
        };
        config.resumption = Resumption::disabled();
        Ok(TlsSetup {
            config,
            verifier,
            provider,
            server_name: opts.server_name.clone(),
        })
    }

    /// Adds the ALPN protocols to offer (the http probe speaks HTTP/1.1 only).
    pub fn with_alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Runs the handshake over `io`; facts are returned even when it fails.
    pub async fn handshake<IO>(
        &self,
        io: IO,
        host: &str,
    ) -> (Result<TlsStream<IO>, Failure>, TlsFacts)
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = match ServerName::try_from(name.to_string()) {
            Ok(n) => n,
            Err(e) => {
                let f = Failure::new(
                    FailureReason::Tls,
                    Phase::Tls,
                    format!("bad server name {name}: {e}"),
                );
                return (Err(f), TlsFacts::default());
            }
        };
        let recorder = Arc::new(RecordingVerifier::new(
            self.verifier.clone(),
            self.provider.clone(),
        ));
        let mut config = self.config.clone();
        config
            .dangerous()
            .set_certificate_verifier(recorder.clone());
        let connector = TlsConnector::from(Arc::new(config));
        let result = connector.connect(server_name, io).await;
        let mut facts = TlsFacts {
            earliest_expiry: earliest_expiry(&recorder.chain()),
            version: None,
        };
        match result {
            Ok(stream) => {
                facts.version = stream
                    .get_ref()
                    .1
                    .protocol_version()
                    .and_then(|v| v.as_str().map(str::to_string));
                (Ok(stream), facts)
            }
            Err(e) => {
                let f = Failure::new(
                    FailureReason::Tls,
                    Phase::Tls,
                    format!("tls handshake: {e}"),
                );
                (Err(f), facts)
            }
        }
    }
}

/// Earliest `notAfter` over the chain in unix seconds; unparsable certificates are skipped.
pub(crate) fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain
        .iter()
        .filter_map(|der| x509_cert::Certificate::from_der(der.as_ref()).ok())
        .map(|c| {
            let secs = c
                .tbs_certificate()
                .validity()
                .not_after
                .to_unix_duration()
                .as_secs();
            i64::try_from(secs).unwrap_or(i64::MAX)
        })
        .min()
}

/// Records the presented chain, then delegates to the real verifier (or accepts
/// anything when verification is off). One instance per handshake, so the recorded
/// chain belongs to exactly one connection.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    fn new(inner: Option<Arc<WebPkiServerVerifier>>, provider: Arc<CryptoProvider>) -> Self {
        RecordingVerifier {
            inner,
            provider,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        match self.seen.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        match self.seen.lock() {
            Ok(mut g) => *g = chain,
            Err(poisoned) => *poisoned.into_inner() = chain,
        }
        match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.inner {
            Some(v) => v.verify_tls12_signature(message, cert, dss),
            None => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.inner {
            Some(v) => v.verify_tls13_signature(message, cert, dss),
            None => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(verify: bool, name: Option<&str>) -> TlsClientOptions {
        TlsClientOptions {
            verify,
            server_name: name.map(str::to_string),
            ..TlsClientOptions::default()
        }
    }

    #[test]
    fn checks_of_the_same_file_less_options_share_one_setup() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let h1: &[&[u8]] = &[b"http/1.1"];
        let a = TlsSetup::shared(&opts(true, None), h1).expect("setup");
        let b = TlsSetup::shared(&opts(true, None), h1).expect("setup");
        assert!(Arc::ptr_eq(&a, &b), "same options, one setup");
        for other in [
            TlsSetup::shared(&opts(true, None), &[]),
            TlsSetup::shared(&opts(false, None), h1),
            TlsSetup::shared(&opts(true, Some("example.test")), h1),
        ] {
            let other = other.expect("setup");
            assert!(!Arc::ptr_eq(&a, &other), "different options, own setup");
        }
        assert_eq!(b.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_setup_no_check_holds_is_built_again() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let o = opts(false, Some("gone.test"));
        let first = TlsSetup::shared(&o, &[]).expect("setup");
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_none(), "the cache does not keep it alive");
        let again = TlsSetup::shared(&o, &[]).expect("setup");
        assert_eq!(again.server_name.as_deref(), Some("gone.test"));
    }

    #[test]
    fn options_naming_a_file_are_read_for_each_check() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let with_ca = TlsClientOptions {
            ca_file: Some(ca.clone()),
            ..TlsClientOptions::default()
        };
        let err = TlsSetup::shared(&with_ca, &[]).expect_err("no such file yet");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).expect("cert");
        std::fs::write(&ca, cert.cert.pem()).expect("write ca");
        let a = TlsSetup::shared(&with_ca, &[]).expect("setup");
        let b = TlsSetup::shared(&with_ca, &[]).expect("setup");
        assert!(
            !Arc::ptr_eq(&a, &b),
            "a file is read per check, never shared"
        );
    }
}
