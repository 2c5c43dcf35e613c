//! attest-web: what protects a listener, built from a web configuration file
//! (`--web.config.file`, the Prometheus exporter-toolkit format read by
//! `attest_config::web`): the TLS server configuration (`tls.rs`), basic authentication
//! with bcrypt and a cache of successful verifications (`basic.rs`), and extra response
//! headers. Both the collector and the agent use it, so their listeners behave alike.
//!
//! Invariants:
//! - Everything is loaded and checked before a port is bound: a bad file or certificate
//!   stops startup with an error naming the file, never a listener that fails every request.
//! - No HTTP framework: callers pass header values in and get decisions out.
//! - Only the ring crypto provider is used.
//! - A request over `rate_limit` is refused before authentication (`rate.rs`); open health
//!   paths are the listeners' to exempt.

pub mod basic;
pub mod rate;
pub mod refusal;
pub mod tls;
mod verify;

use std::path::Path;
use std::sync::Arc;

use attest_config::web::WebConfig;

pub use basic::{BASIC_CHALLENGE, BasicAuth, BasicRefusal};
pub use rate::RateLimiter;
pub use tls::TlsError;

/// The security of one listener, ready to serve with.
#[derive(Clone, Default)]
pub struct WebSecurity {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `None`: no basic authentication.
    pub basic: Option<Arc<BasicAuth>>,
    /// Added to every response.
    pub headers: Vec<(String, String)>,
    /// `rate_limit`; `None`: no limit.
    pub rate: Option<Arc<RateLimiter>>,
    /// The loader's warnings, for `check-config` to print and `run` to log.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSecurity")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.basic.as_ref().map(|b| b.users()))
            .field("headers", &self.headers)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Why a web configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    Config(#[from] attest_config::ConfigErrors),
    #[error("{file}: tls_server_config: {err}")]
    Tls { file: String, err: TlsError },
}

impl WebSecurity {
    /// Reads `path` and builds everything it asks for (certificates are read and checked now).
    pub fn load(path: &Path) -> Result<WebSecurity, WebError> {
        let cfg = attest_config::web::load_web(path)?;
        WebSecurity::from_config(&cfg).map_err(|err| WebError::Tls {
            file: path.display().to_string(),
            err,
        })
    }

    /// Builds from a validated configuration.
    pub fn from_config(cfg: &WebConfig) -> Result<WebSecurity, TlsError> {
        let tls = cfg.tls.as_ref().map(tls::server_config).transpose()?;
        Ok(WebSecurity {
            tls,
            basic: BasicAuth::new(&cfg.basic_auth_users).map(Arc::new),
            headers: cfg.headers.clone(),
            rate: cfg.rate_limit.map(|r| Arc::new(RateLimiter::new(r))),
            warnings: cfg.warnings.clone(),
        })
    }
}
