//! The attest side of the benchmark: real probes built through `probe::build` from the
//! same config types the agent uses, so the figures are those of the shipped engine.
//!
//! Invariants: probes are built before any CPU reading is taken (start-up cost is not
//! per-probe cost); every probe runs with a deadline of [`PROBE_TIMEOUT`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use attest_agent::probe::{self, BuildError, Probe};
use attest_config::{Check, CheckSpec, HostCheck, HttpCheck, IpFamily, TcpCheck, TlsClientOptions};
use tokio::time::Instant;

use crate::cpu::{self, ReadError};
use crate::pace::{self, PaceError, Tally};

/// Deadline of one probe attempt, as a check's `timeout`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an engine measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot build the probe: {0}")]
    Build(#[from] BuildError),
    #[error(transparent)]
    Pace(#[from] PaceError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "the warm-up probe of {target} failed ({detail}); start the target first and check the address"
    )]
    TargetDown { target: String, detail: String },
}

/// Which probe kind a measurement drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Http,
    Tcp,
}

/// CPU spent and outcomes of a measured run.
#[derive(Debug, Clone, Copy)]
pub struct CpuRun {
    pub cpu: Duration,
    pub tally: Tally,
}

fn check(spec: CheckSpec) -> Check {
    Check {
        id: "bench".into(),
        interval: Duration::from_secs(10),
        timeout: PROBE_TIMEOUT,
        spec,
    }
}

/// The default HTTP check of a config file (`url = ...` and nothing else), optionally
/// with `headers = { Connection = "close" }` so the server closes first.
fn http_spec(url: &str, connection_close: bool) -> CheckSpec {
    let mut headers = BTreeMap::new();
    if connection_close {
        headers.insert("Connection".to_string(), "close".to_string());
    }
    CheckSpec::Http(HttpCheck {
        url: url.to_string(),
        method: "GET".into(),
        headers,
        body: None,
        expect_status: vec![],
        body_contains: vec![],
        body_regex: vec![],
        body_not_regex: vec![],
        header_match: BTreeMap::new(),
        follow_redirects: true,
        max_redirects: 10,
        tls: TlsClientOptions::default(),
        ip_family: IpFamily::Any,
        max_body_bytes: 1 << 20,
    })
}

/// The default TCP connect check of a config file (`address = ...`).
fn tcp_spec(address: &str) -> CheckSpec {
    CheckSpec::Tcp(TcpCheck {
        address: address.to_string(),
        tls: None,
        steps: vec![],
        ip_family: IpFamily::Any,
    })
}

/// Builds the probe and runs it once, so a wrong target fails fast and loudly.
pub async fn ready_probe(
    kind: Kind,
    target: &str,
    connection_close: bool,
) -> Result<Arc<dyn Probe>, EngineError> {
    let spec = match kind {
        Kind::Http => http_spec(target, connection_close),
        Kind::Tcp => tcp_spec(target),
    };
    let probe: Arc<dyn Probe> = Arc::from(probe::build(&check(spec))?);
    let report = probe.probe(Instant::now() + PROBE_TIMEOUT).await;
    if !report.ok {
        return Err(EngineError::TargetDown {
            target: target.to_string(),
            detail: report.error.unwrap_or_else(|| "no detail".into()),
        });
    }
    Ok(probe)
}

/// Runs `count` probes at `rate` per second and returns this process's CPU for them.
pub async fn paced_cpu(
    probe: Arc<dyn Probe>,
    count: u64,
    rate: f64,
) -> Result<CpuRun, EngineError> {
    let before = cpu::self_cpu()?;
    let tally = pace::paced(count, rate, move || {
        let probe = probe.clone();
        async move { probe.probe(Instant::now() + PROBE_TIMEOUT).await.ok }
    })
    .await?;
    let after = cpu::self_cpu()?;
    Ok(CpuRun {
        cpu: after.saturating_sub(before),
        tally,
    })
}

/// Runs probes back to back on `workers` loops for `duration`: the engine's highest rate.
pub async fn max_rate(
    probe: Arc<dyn Probe>,
    workers: usize,
    duration: Duration,
) -> Result<CpuRun, EngineError> {
    let before = cpu::self_cpu()?;
    let tally = pace::closed_loop(workers, duration, move || {
        let probe = probe.clone();
        async move { probe.probe(Instant::now() + PROBE_TIMEOUT).await.ok }
    })
    .await?;
    let after = cpu::self_cpu()?;
    Ok(CpuRun {
        cpu: after.saturating_sub(before),
        tally,
    })
}

/// Runs `count` host collections one after another (all groups, as the default host
/// check) after one unmeasured warm-up, and returns the CPU they took.
pub async fn host_cpu(count: u64) -> Result<CpuRun, EngineError> {
    if count == 0 {
        return Err(PaceError::Count.into());
    }
    let spec = CheckSpec::Host(HostCheck {
        cpu: true,
        memory: true,
        load: true,
        filesystems: true,
        network: true,
        processes: vec![],
        thresholds: BTreeMap::new(),
        network_speeds: BTreeMap::new(),
    });
    let probe = probe::build(&check(spec))?;
    let warm = probe.probe(Instant::now() + PROBE_TIMEOUT).await;
    if !warm.ok {
        return Err(EngineError::TargetDown {
            target: "host".into(),
            detail: warm.error.unwrap_or_else(|| "no detail".into()),
        });
    }
    let start = Instant::now();
    let before = cpu::self_cpu()?;
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..count {
        if probe.probe(Instant::now() + PROBE_TIMEOUT).await.ok {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    let after = cpu::self_cpu()?;
    Ok(CpuRun {
        cpu: after.saturating_sub(before),
        tally: Tally {
            ok,
            failed,
            wall: start.elapsed(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A loopback server answering every connection with a fixed 200 and closing.
    async fn spawn_ok_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_http_probes_count_outcomes_and_cpu() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let addr = spawn_ok_server().await;
        let probe = ready_probe(Kind::Http, &format!("http://{addr}/"), true)
            .await
            .expect("server is up");
        let run = paced_cpu(probe, 20, 1000.0).await.expect("run");
        assert_eq!(run.tally.ok, 20);
        assert!(run.cpu > Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_port_is_refused_before_measuring() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let err = ready_probe(Kind::Tcp, &port.to_string(), false)
            .await
            .err()
            .expect("closed port fails");
        assert!(matches!(err, EngineError::TargetDown { .. }), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn host_collections_are_counted() {
        let run = host_cpu(3).await.expect("host probe works here");
        assert_eq!(run.tally.ok, 3);
    }
}
