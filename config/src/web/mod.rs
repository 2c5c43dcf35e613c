//! The web configuration of a listener (`--web.config.file`): the Prometheus exporter-toolkit
//! format, so an operator protects `/metrics` and the API exactly as they protect
//! node_exporter. `yaml.rs` parses the YAML into a tree with positions, `load.rs` walks and
//! checks it; this module is the validated model.
//!
//! Invariants:
//! - A [`WebConfig`] has passed validation: TLS has a certificate and a key (file or inline
//!   PEM), a client CA only where certificates are verified, SANs only where certificates are
//!   verified, `min_version <= max_version`, cipher suites and curves by Go's names with at
//!   least one rustls implements for every TLS version that lists any, and every basic-auth
//!   password is a well-formed bcrypt hash (cost 4..=31).
//! - What exporter-toolkit accepts is accepted and behaves as there, where rustls can; what
//!   cannot be honoured is refused with a reason, never silently ignored: a security setting
//!   that looks applied but is not is worse than an error. Entries of a list that rustls
//!   lacks (CBC suites, P-521) are left out with a warning ([`WebConfig::warnings`]) when
//!   the rest of the list still works.
//! - Relative paths resolve against the directory of the web configuration file.

mod load;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use load::{load_web, parse_web};

/// A validated web configuration. `Default` is "plain HTTP, no authentication".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// `tls_server_config`; `None` serves plain HTTP.
    pub tls: Option<WebTls>,
    /// `basic_auth_users`: user name → bcrypt hash. Empty: no basic authentication.
    pub basic_auth_users: BTreeMap<String, String>,
    /// `http_server_config.headers`: added to every response, in this order.
    pub headers: Vec<(String, String)>,
    /// `rate_limit` with a non-zero interval; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// What the operator should know although the file is valid (entries left out, a
    /// limit that refuses everything); printed by `check-config`, logged at start.
    pub warnings: Vec<String>,
}

/// PEM text: a file (`cert_file`, …) or written in the web configuration (`cert`, …).
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl std::fmt::Debug for Pem {
    /// Inline PEM may be a private key: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            Pem::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// `tls_server_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTls {
    pub cert: Pem,
    pub key: Pem,
    /// `client_ca_file` or `client_ca`; only with a policy that verifies. `None` with such a
    /// policy: the system trust store, as Go does.
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// `cipher_suites` in preference order; empty: rustls' defaults. Go applies the list to
    /// TLS 1.2 only; here TLS 1.3 suites in the list restrict TLS 1.3 too (none listed: all).
    pub cipher_suites: Vec<CipherSuite>,
    /// `prefer_server_cipher_suites` (default true): the server's order wins.
    pub prefer_server_cipher_suites: bool,
    /// `curve_preferences` in preference order; empty: rustls' defaults.
    pub curve_preferences: Vec<Curve>,
    /// `client_allowed_sans`: a verified client certificate must name one of these (DNS
    /// name, e-mail address, IP address or URI, exactly). Empty: no SAN check.
    pub client_allowed_sans: Vec<String>,
}

impl WebTls {
    /// A certificate and key from files, client certificates verified against `client_ca`
    /// when given, everything else as exporter-toolkit's defaults (`[server]` TLS).
    pub fn from_files(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> WebTls {
        WebTls {
            cert: Pem::File(cert),
            key: Pem::File(key),
            client_auth: if client_ca.is_some() {
                ClientAuth::RequireAndVerify
            } else {
                ClientAuth::None
            },
            client_ca: client_ca.map(Pem::File),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
            prefer_server_cipher_suites: true,
            curve_preferences: Vec::new(),
            client_allowed_sans: Vec::new(),
        }
    }
}

/// `client_auth_type`, as Go's `crypto/tls` defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`: no client certificate is asked for.
    None,
    /// `RequestClientCert`: asked for, optional, not verified.
    Request,
    /// `RequireAnyClientCert`: required, not verified against a CA (the client must still
    /// hold the certificate's key).
    RequireAny,
    /// `VerifyClientCertIfGiven`: optional; one that is sent must verify.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: required, and must verify.
    RequireAndVerify,
}

impl ClientAuth {
    /// Whether a presented certificate is verified against a CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
        )
    }

    /// Whether a connection without a certificate fails its handshake.
    pub fn mandatory(self) -> bool {
        matches!(self, ClientAuth::RequireAny | ClientAuth::RequireAndVerify)
    }
}

/// `min_version` / `max_version`: the TLS versions rustls implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A cipher suite by the name Go's `tls.CipherSuites()` gives it (the names
/// exporter-toolkit accepts) and its IANA number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSuite {
    pub name: &'static str,
    pub id: u16,
    pub tls13: bool,
    /// rustls (ring provider) implements it; the others (CBC, RSA key exchange) are left
    /// out of what is offered.
    pub in_rustls: bool,
}

const fn suite(name: &'static str, id: u16, tls13: bool, in_rustls: bool) -> CipherSuite {
    CipherSuite {
        name,
        id,
        tls13,
        in_rustls,
    }
}

/// Go's secure cipher suites (`tls.CipherSuites()`), by IANA number.
pub const CIPHER_SUITES: &[CipherSuite] = &[
    suite("TLS_RSA_WITH_AES_128_CBC_SHA", 0x002f, false, false),
    suite("TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035, false, false),
    suite("TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009c, false, false),
    suite("TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009d, false, false),
    suite("TLS_AES_128_GCM_SHA256", 0x1301, true, true),
    suite("TLS_AES_256_GCM_SHA384", 0x1302, true, true),
    suite("TLS_CHACHA20_POLY1305_SHA256", 0x1303, true, true),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc009, false, false),
    suite("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xc00a, false, false),
    suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013, false, false),
    suite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014, false, false),
    suite(
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02b,
        false,
        true,
    ),
    suite(
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02c,
        false,
        true,
    ),
    suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f, false, true),
    suite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030, false, true),
    suite(
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca8,
        false,
        true,
    ),
    suite(
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9,
        false,
        true,
    ),
];

/// A key-exchange group by the name exporter-toolkit gives it, and its IANA number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    pub name: &'static str,
    pub id: u16,
    /// rustls' ring provider implements it (it has no P-521).
    pub in_rustls: bool,
}

/// The curves exporter-toolkit accepts in `curve_preferences`.
pub const CURVES: &[Curve] = &[
    Curve {
        name: "CurveP256",
        id: 23,
        in_rustls: true,
    },
    Curve {
        name: "CurveP384",
        id: 24,
        in_rustls: true,
    },
    Curve {
        name: "CurveP521",
        id: 25,
        in_rustls: false,
    },
    Curve {
        name: "X25519",
        id: 29,
        in_rustls: true,
    },
];

/// `rate_limit` (exporter-toolkit's `golang.org/x/time/rate` limiter): a bucket of `burst`
/// requests, one more every `interval`; beyond it requests are answered 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Greater than zero (zero means no limit and gives no `RateLimit`).
    pub interval: Duration,
    /// Zero refuses every request, as in exporter-toolkit (a warning says so).
    pub burst: u32,
}

impl WebConfig {
    /// Whether the file asks for anything at all (an empty file is valid and changes nothing).
    pub fn is_empty(&self) -> bool {
        self.tls.is_none()
            && self.basic_auth_users.is_empty()
            && self.headers.is_empty()
            && self.rate_limit.is_none()
    }
}
