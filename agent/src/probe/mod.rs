//! Probes: one module per kind behind one trait. A probe turns a configured check into
//! a [`ProbeReport`]; a failed target is a report with a typed reason, never an `Err`.
//! The scheduler owns the envelope (timestamp, timeout, total duration).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use attest_config::wire::{FailureReason, Phase, Value};

/// What a probe found. The scheduler wraps it into a `wire::Measurement`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeReport {
    pub ok: bool,
    pub reason: Option<FailureReason>,
    pub failed_phase: Option<Phase>,
    pub error: Option<String>,
    pub phases: BTreeMap<Phase, f64>,
    pub values: Vec<Value>,
    pub labels: BTreeMap<String, String>,
}

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeReport> + Send + 'a>>;

pub trait Probe: Send + Sync {
    /// Runs one attempt; must return by `deadline` (report a timeout in the phase it hit).
    fn probe(&self, deadline: tokio::time::Instant) -> ProbeFuture<'_>;
}

pub mod dns;
pub mod host;
pub mod http;
pub mod icmp;
pub(crate) mod net;
pub use net::Targets;
pub mod tcp;
pub mod tls;
pub(crate) mod tls_client;

use std::path::Path;

use attest_config::{Check, CheckSpec};

/// Why a configured check cannot become a probe. Raised once at start-up, never per probe.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "check {check}: invalid regex {pattern:?}: {message}; fix the pattern (regex-lite syntax)"
    )]
    Regex {
        check: String,
        pattern: String,
        message: String,
    },
    #[error(
        "cannot use {path}: {message}; check the path, its permissions and that it holds PEM data"
    )]
    File { path: String, message: String },
    #[error("tls setup: {0}")]
    Tls(String),
    #[error(
        "ICMP sockets are not permitted for this process ({0}); set net.ipv4.ping_group_range to include this process's group, or grant CAP_NET_RAW"
    )]
    IcmpNotPermitted(String),
    #[error("check {check}: {message}")]
    Invalid { check: String, message: String },
}

impl BuildError {
    pub(crate) fn file(path: &Path, message: String) -> Self {
        BuildError::File {
            path: path.display().to_string(),
            message,
        }
    }

    pub(crate) fn invalid(check: &str, message: impl Into<String>) -> Self {
        BuildError::Invalid {
            check: check.to_string(),
            message: message.into(),
        }
    }
}

/// Compiles a check's patterns once so a bad regex is a start-up error, not a probe failure.
pub(crate) fn compile_regex(check: &str, pattern: &str) -> Result<regex_lite::Regex, BuildError> {
    regex_lite::Regex::new(pattern).map_err(|e| BuildError::Regex {
        check: check.to_string(),
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

/// Turns a configured check into its probe, doing all fallible preparation up front
/// (regexes, certificate files, socket permissions). Every target address is allowed.
pub fn build(check: &Check) -> Result<Box<dyn Probe>, BuildError> {
    build_with(check, &Targets::any())
}

/// Like [`build`], with the probe confined to `targets` (`[agent] allow_targets` /
/// `deny_targets`): a probe whose target resolves elsewhere fails with reason `agent`
/// before it sends anything.
pub fn build_with(check: &Check, targets: &Targets) -> Result<Box<dyn Probe>, BuildError> {
    let t = targets.clone();
    Ok(match &check.spec {
        CheckSpec::Http(c) => Box::new(http::HttpProbe::new(&check.id, c)?.confined(t)),
        CheckSpec::Tcp(c) => Box::new(tcp::TcpProbe::new(&check.id, c)?.confined(t)),
        CheckSpec::Dns(c) => Box::new(dns::DnsProbe::new(&check.id, c)?.confined(t)),
        CheckSpec::Icmp(c) => Box::new(icmp::IcmpProbe::new(&check.id, c)?.confined(t)),
        CheckSpec::Tls(c) => Box::new(tls::TlsProbe::new(&check.id, c)?.confined(t)),
        // The host probe reads local counters; it has no target.
        CheckSpec::Host(c) => Box::new(host::HostProbe::new(&check.id, c)?),
    })
}
