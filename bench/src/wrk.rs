//! wrk as the reference HTTP client: runs it as a child, parses its summary and charges
//! it the CPU it used (`getrusage(RUSAGE_CHILDREN)` around the run, so the figure is
//! wrk's own and independent of other load on the machine).
//!
//! Invariant: this process has no other children while wrk runs, so the children's
//! CPU difference is wrk's alone; wrk is bounded by its own `-d` duration.

use std::process::Command;
use std::time::{Duration, Instant};

/// Why wrk could not be run or understood.
#[derive(Debug, thiserror::Error)]
pub enum WrkError {
    #[error("cannot run {binary}: {source}; install the Debian package `wrk`")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("wrk failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("wrk output has no {what}: {output}")]
    Parse { what: &'static str, output: String },
    #[error("getrusage(RUSAGE_CHILDREN) failed: {0}")]
    Rusage(std::io::Error),
}

/// What one wrk run achieved and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub per_second: f64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
    pub cpu: Duration,
    pub wall: Duration,
}

/// Runs `wrk -t2 -c<concurrency> -d<seconds>s -H 'Connection: close' <url>`.
pub fn run(binary: &str, url: &str, concurrency: usize, seconds: u64) -> Result<WrkRun, WrkError> {
    let threads = concurrency.clamp(1, 2);
    let before = children_cpu()?;
    let start = Instant::now();
    let output = Command::new(binary)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .args(["-H", "Connection: close", url])
        .output()
        .map_err(|source| WrkError::Spawn {
            binary: binary.to_string(),
            source,
        })?;
    let wall = start.elapsed();
    let cpu = children_cpu()?.saturating_sub(before);
    if !output.status.success() {
        return Err(WrkError::Failed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let (requests, per_second, errors) = parse(&String::from_utf8_lossy(&output.stdout))?;
    Ok(WrkRun {
        requests,
        per_second,
        errors,
        cpu,
        wall,
    })
}

fn children_cpu() -> Result<Duration, WrkError> {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc != 0 {
        return Err(WrkError::Rusage(std::io::Error::last_os_error()));
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok(tv(usage.ru_utime) + tv(usage.ru_stime))
}

/// `(requests, requests per second, errors)` from wrk's summary.
pub fn parse(out: &str) -> Result<(u64, f64, u64), WrkError> {
    let missing = |what| WrkError::Parse {
        what,
        output: out.to_string(),
    };
    let requests = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .ok_or_else(|| missing("'N requests in' line"))?;
    let per_second = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| missing("'Requests/sec:' line"))?;
    let non_2xx: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 3, write 0, timeout 1"
    let socket: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        });
    Ok((requests, per_second, non_2xx + socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 5s test @ http://127.0.0.1:44163/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.68ms    7.55ms  75.44ms   93.49%
    Req/Sec     3.29k     1.86k    9.49k    82.47%
  32570 requests in 5.07s, 26.25MB read
Requests/sec:   6428.37
Transfer/sec:      5.18MB
";

    #[test]
    fn clean_summary_parses() {
        assert_eq!(parse(CLEAN).expect("parses"), (32570, 6428.37, 0));
    }

    #[test]
    fn errors_are_summed() {
        let out = CLEAN.replace(
            "Requests/sec:",
            "  Socket errors: connect 1, read 3, write 0, timeout 2\n  Non-2xx or 3xx responses: 4\nRequests/sec:",
        );
        assert_eq!(parse(&out).expect("parses").2, 10);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(parse("oops"), Err(WrkError::Parse { .. })));
    }
}
