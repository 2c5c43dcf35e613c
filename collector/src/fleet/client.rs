//! The client side of `attest-collector agents`: asks a running collector for
//! `GET /api/v1/agents`. The listing lives in the running process (versions, conflicts),
//! so the command cannot read it from the store.

use std::path::{Path, PathBuf};

use attest_config::wire::{AGENTS_PATH, AgentInfo, ErrorBody};
use attest_config::{CollectorConfig, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {err}; pass --ca-file with the collector's CA")]
    Ca { path: PathBuf, err: std::io::Error },
    #[error("invalid CA file {path}: {reason}")]
    CaPem { path: PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(
        "cannot reach the collector at {url}: {reason}; is it running? (--url overrides the address)"
    )]
    Unreachable { url: String, reason: String },
    #[error("the collector refused: {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error("unreadable answer from the collector: {0}")]
    Decode(String),
}

/// The base URL of the collector a configuration describes: its listen address, with a
/// wildcard address replaced by loopback.
pub fn base_url(server: &ServerConfig) -> String {
    let mut addr = server.listen;
    if addr.ip().is_unspecified() {
        let lo: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        addr.set_ip(lo);
    }
    let scheme = if server.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// Fetches the agent listing from `url` (default: [`base_url`]), trusting `ca_file`
/// (default: `[server] tls_cert`) for HTTPS.
pub async fn fetch(
    cfg: &CollectorConfig,
    url: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<Vec<AgentInfo>, ClientError> {
    let base = url.map_or_else(|| base_url(&cfg.server), str::to_string);
    let mut b = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
    if base.starts_with("https://")
        && let Some(ca) = ca_file.or(cfg.server.tls_cert.as_deref())
    {
        let pem = std::fs::read(ca).map_err(|err| ClientError::Ca {
            path: ca.to_path_buf(),
            err,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaPem {
                path: ca.to_path_buf(),
                reason: e.to_string(),
            })?;
        b = b.tls_certs_only(certs);
    }
    let client = b.build().map_err(|e| ClientError::Client(e.to_string()))?;
    let url = format!("{}{AGENTS_PATH}", base.trim_end_matches('/'));
    let mut req = client.get(&url);
    if let Some(t) = &cfg.server.admin_token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| ClientError::Unreachable {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))?;
    if status != 200 {
        let reason = serde_json::from_slice::<ErrorBody>(&body)
            .map_or_else(|_| String::from_utf8_lossy(&body).into_owned(), |e| e.error);
        return Err(ClientError::Refused { status, reason });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
}
