//! The web configuration of a listener (`--web.config.file`): the Prometheus exporter-toolkit
//! format, so an operator protects `/metrics` and the API exactly as they protect
//! node_exporter. `yaml.rs` parses the YAML into a tree with positions, `load.rs` walks and
//! checks it; this module is the validated model.
//!
//! Invariants:
//! - A [`WebConfig`] has passed validation: TLS has a certificate and a key, a client CA
//!   exactly when client certificates are verified, `min_version <= max_version`, and every
//!   basic-auth password is a well-formed bcrypt hash (cost 4..=31).
//! - Keys of the exporter-toolkit format that Attest does not implement are refused with a
//!   reason, never silently ignored: a security setting that looks applied but is not is
//!   worse than an error.
//! - Relative paths resolve against the directory of the web configuration file.

mod load;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

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
}

/// `tls_server_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set exactly when `client_auth` verifies certificates.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// `client_auth_type`, limited to what rustls does: it verifies every certificate it is
/// given, so Go's "request/require any certificate without verifying it" has no equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`: no client certificate is asked for.
    None,
    /// `VerifyClientCertIfGiven`: a client may come without a certificate; one it sends must
    /// be signed by the client CA.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: every client needs a certificate signed by the client CA.
    RequireAndVerify,
}

/// `min_version` / `max_version`: the TLS versions rustls implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl WebConfig {
    /// Whether the file asks for anything at all (an empty file is valid and changes nothing).
    pub fn is_empty(&self) -> bool {
        self.tls.is_none() && self.basic_auth_users.is_empty() && self.headers.is_empty()
    }
}
