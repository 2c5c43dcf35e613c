//! The reference side: drives an exporter's HTTP endpoint (blackbox `/probe`,
//! node_exporter `/metrics`) at a fixed rate and charges the exporter process — not this
//! driver — with the CPU it spent, read from `/proc/<pid>/stat` before and after.
//!
//! Invariants: the client keeps connections alive, as Prometheus does when scraping, so
//! the exporter is not charged for a connection per request; every request has a
//! timeout; a request counts as ok only with status 200 and, when asked, a body that
//! contains the expected text (e.g. `probe_success 1`).

use std::time::Duration;

use crate::cpu::{self, ReadError};
use crate::engine::CpuRun;
use crate::pace::{self, PaceError};

/// Upper bound of one request to the exporter.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Pace(#[from] PaceError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("warm-up request to {url} failed: {detail}; is the exporter running there?")]
    Down { url: String, detail: String },
}

/// Whether an exporter's answer counts as a success.
fn accepted(status: u16, body: &str, expect: Option<&str>) -> bool {
    status == 200 && expect.is_none_or(|e| body.contains(e))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Requests `url` `count` times at `rate` per second and returns the CPU process `pid`
/// spent meanwhile. One unmeasured warm-up request opens the connection first.
pub async fn exporter_cpu(
    pid: u32,
    url: &str,
    expect: Option<&str>,
    count: u64,
    rate: f64,
) -> Result<CpuRun, DriveError> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| DriveError::Client(e.to_string()))?;
    let down = |detail: String| DriveError::Down {
        url: url.to_string(),
        detail,
    };
    let (status, body) = fetch(&client, url).await.map_err(down)?;
    if !accepted(status, &body, expect) {
        let head: String = body.chars().take(200).collect();
        return Err(down(format!("status {status}, body starts {head:?}")));
    }
    let before = cpu::process_cpu(pid)?;
    let expect = expect.map(str::to_string);
    let url = url.to_string();
    let tally = pace::paced(count, rate, move || {
        let client = client.clone();
        let url = url.clone();
        let expect = expect.clone();
        async move {
            match fetch(&client, &url).await {
                Ok((status, body)) => accepted(status, &body, expect.as_deref()),
                Err(_) => false,
            }
        }
    })
    .await?;
    let after = cpu::process_cpu(pid)?;
    Ok(CpuRun {
        cpu: after.saturating_sub(before),
        tally,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback stand-in for an exporter: every request gets `probe_success 1`.
    async fn spawn_exporter() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let body = "probe_success 1\n";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_an_exporter_and_reads_its_cpu() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("http://{}/probe", spawn_exporter().await);
        let pid = std::process::id();
        let run = exporter_cpu(pid, &url, Some("probe_success 1"), 10, 1000.0)
            .await
            .expect("stand-in answers");
        assert_eq!((run.tally.ok, run.tally.failed), (10, 0));
        let err = exporter_cpu(pid, &url, Some("probe_success 0"), 10, 1000.0)
            .await
            .expect_err("wrong answer is refused at warm-up");
        assert!(matches!(err, DriveError::Down { .. }), "{err}");
    }

    #[test]
    fn acceptance_needs_200_and_the_expected_text() {
        assert!(accepted(200, "probe_success 1\n", Some("probe_success 1")));
        assert!(!accepted(200, "probe_success 0\n", Some("probe_success 1")));
        assert!(!accepted(500, "probe_success 1\n", Some("probe_success 1")));
        assert!(accepted(200, "", None));
    }
}
