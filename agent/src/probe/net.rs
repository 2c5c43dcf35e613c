//! Building blocks shared by the network probes: timed phases bounded by the probe's
//! deadline, name resolution with an address-family preference, TCP connect, and the
//! typed [`Failure`] every step returns.
//!
//! Invariants: every step runs under `timeout_at(deadline)`; the time a phase took is
//! recorded even when it fails, so the recorded phases always sum to at most the time
//! the probe ran; a step never panics on what the network sends.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use attest_config::IpFamily;
use attest_config::units::{Cidr, target_allowed};
use attest_config::wire::{FailureReason, Phase, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ProbeReport;

/// Why one step of a probe failed; turned into a failed [`ProbeReport`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub reason: FailureReason,
    pub phase: Option<Phase>,
    pub error: String,
}

impl Failure {
    pub fn new(reason: FailureReason, phase: Phase, error: impl Into<String>) -> Self {
        Failure {
            reason,
            phase: Some(phase),
            error: error.into(),
        }
    }

    /// A check of the final result (status, body, header) failed; no phase is to blame.
    pub fn check(reason: FailureReason, error: impl Into<String>) -> Self {
        Failure {
            reason,
            phase: None,
            error: error.into(),
        }
    }
}

/// What a probe accumulates while it runs; becomes the [`ProbeReport`].
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub phases: BTreeMap<Phase, f64>,
    pub values: Vec<Value>,
    pub labels: BTreeMap<String, String>,
}

impl Outcome {
    pub fn value(&mut self, name: &str, value: f64) {
        self.values.push(Value {
            name: name.to_string(),
            resource: None,
            value,
        });
    }

    /// Adds (rather than sets) so that phases of redirect hops are summed.
    pub fn add_phase(&mut self, phase: Phase, seconds: f64) {
        *self.phases.entry(phase).or_insert(0.0) += seconds;
    }

    /// Runs `fut` as `phase`, bounded by `deadline`; records its duration either way.
    pub async fn timed<T>(
        &mut self,
        phase: Phase,
        deadline: Instant,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let start = Instant::now();
        let result = tokio::time::timeout_at(deadline, fut).await;
        self.add_phase(phase, start.elapsed().as_secs_f64());
        match result {
            Ok(inner) => inner,
            Err(_) => Err(Failure::new(
                FailureReason::Timeout,
                phase,
                format!("{} timeout", phase.as_str()),
            )),
        }
    }

    pub fn into_report(self, result: Result<(), Failure>) -> ProbeReport {
        let (ok, reason, failed_phase, error) = match result {
            Ok(()) => (true, None, None, None),
            Err(f) => (false, Some(f.reason), f.phase, Some(f.error)),
        };
        ProbeReport {
            ok,
            reason,
            failed_phase,
            error,
            phases: self.phases,
            values: self.values,
            labels: self.labels,
        }
    }
}

/// Splits `host:port` (IPv6 literals in brackets) into its parts.
pub(crate) fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

fn family_matches(ip: IpAddr, family: IpFamily) -> bool {
    match family {
        IpFamily::Any => true,
        IpFamily::Ipv4 => ip.is_ipv4(),
        IpFamily::Ipv6 => ip.is_ipv6(),
    }
}

/// `[agent] allow_targets`/`deny_targets`: the networks a probe may send to. Checked on the
/// resolved address, so a host name cannot lead a probe around the lists (also not through
/// an HTTP redirect: every hop resolves again). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Targets(Option<std::sync::Arc<(Vec<Cidr>, Vec<Cidr>)>>);

impl Targets {
    /// Every address allowed (no lists configured).
    pub fn any() -> Targets {
        Targets(None)
    }

    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> Targets {
        if allow.is_empty() && deny.is_empty() {
            return Targets::any();
        }
        Targets(Some(std::sync::Arc::new((allow.to_vec(), deny.to_vec()))))
    }

    /// A refusal is the agent's own decision, not the target's fault: reason `agent`.
    pub(crate) fn check(&self, addr: SocketAddr, phase: Phase) -> Result<(), Failure> {
        match &self.0 {
            Some(lists) if !target_allowed(&lists.0, &lists.1, addr.ip()) => Err(Failure::new(
                FailureReason::Agent,
                phase,
                format!(
                    "target address {} is outside [agent] allow_targets or inside deny_targets; nothing was sent",
                    addr.ip()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Resolves `host` to one address of the wanted family that `targets` allows. One family
/// per probe, no happy eyeballs: a probe measures one path, like blackbox_exporter does.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    family: IpFamily,
    targets: &Targets,
) -> Result<SocketAddr, Failure> {
    let addr = resolve_any(host, port, family).await?;
    targets.check(addr, Phase::Resolve)?;
    Ok(addr)
}

async fn resolve_any(host: &str, port: u16, family: IpFamily) -> Result<SocketAddr, Failure> {
    let fail = |msg: String| Failure::new(FailureReason::Dns, Phase::Resolve, msg);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if family_matches(ip, family) {
            Ok(SocketAddr::new(ip, port))
        } else {
            Err(fail(format!(
                "{host} is not an address of the configured ip_family"
            )))
        };
    }
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| fail(format!("cannot resolve {host}: {e}")))?;
    let mut found = Vec::new();
    for addr in addrs {
        found.push(addr);
        if family_matches(addr.ip(), family) && family != IpFamily::Any {
            return Ok(addr);
        }
    }
    // With `Any`, prefer IPv4 like blackbox's default `preferred_ip_protocol` fallback.
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| found.first())
        .filter(|a| family_matches(a.ip(), family))
        .copied()
        .ok_or_else(|| fail(format!("{host} has no address of the configured ip_family")))
}

/// Maps a connect error to its typed reason: refused is its own reason because it
/// means "host up, service down", which operators triage differently.
pub(crate) fn connect_failure(addr: SocketAddr, e: &io::Error) -> Failure {
    let reason = if e.kind() == io::ErrorKind::ConnectionRefused {
        FailureReason::ConnectRefused
    } else {
        FailureReason::Connect
    };
    Failure::new(reason, Phase::Connect, format!("connect to {addr}: {e}"))
}

pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| connect_failure(addr, &e))?;
    // Probes exchange small messages; Nagle would only add latency to the timings.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("a.example:80"),
            Some(("a.example".into(), 80))
        );
        assert_eq!(split_host_port("[::1]:53"), Some(("::1".into(), 53)));
        assert_eq!(
            split_host_port("127.0.0.1:1"),
            Some(("127.0.0.1".into(), 1))
        );
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(split_host_port("h:99999"), None);
    }

    #[tokio::test]
    async fn literal_of_wrong_family_is_a_dns_failure() {
        let err = resolve("127.0.0.1", 80, IpFamily::Ipv6, &Targets::any())
            .await
            .unwrap_err();
        assert_eq!(err.reason, FailureReason::Dns);
        let ok = resolve("::1", 80, IpFamily::Ipv6, &Targets::any())
            .await
            .unwrap();
        assert!(ok.is_ipv6());
    }

    #[tokio::test]
    async fn targets_refuse_denied_and_unlisted_addresses_with_reason_agent() {
        let net = |s: &str| attest_config::units::parse_cidr(s).unwrap();
        let t = Targets::new(&[net("127.0.0.0/8")], &[net("127.0.0.2")]);
        assert!(resolve("127.0.0.1", 80, IpFamily::Any, &t).await.is_ok());
        let e = resolve("127.0.0.2", 80, IpFamily::Any, &t)
            .await
            .unwrap_err();
        assert_eq!(
            (e.reason, e.phase),
            (FailureReason::Agent, Some(Phase::Resolve))
        );
        assert!(e.error.contains("127.0.0.2"), "{}", e.error);
        let e = resolve("::1", 80, IpFamily::Any, &t).await.unwrap_err();
        assert_eq!(e.reason, FailureReason::Agent, "outside the allow list");
        // A name is checked on what it resolves to.
        let e = resolve(
            "localhost",
            80,
            IpFamily::Ipv6,
            &Targets::new(&[], &[net("::1")]),
        )
        .await;
        assert!(
            e.is_err_and(|e| e.reason == FailureReason::Agent || e.reason == FailureReason::Dns)
        );
    }
}
