//! Memory of a running process over a window: after a warm-up, `VmRSS` is sampled once a
//! second and the median sample is the figure (one sample can land on a transient peak of
//! an upload or a burst of probes); the largest sample, `VmHWM` (peak since start, warm-up
//! included), the thread count and the CPU spent in the window are printed beside it.
//!
//! Invariant: the process is only read (`/proc/<pid>/status`, `/proc/<pid>/stat`), never
//! signalled; if it exits during the run, the run fails naming it rather than printing a
//! figure of a dead process.

use std::time::{Duration, Instant};

use crate::cpu::{self, ReadError};

/// What `watch` saw after the warm-up.
#[derive(Debug)]
pub struct Watched {
    /// Median `VmRSS` sample, bytes.
    pub rss_median: u64,
    pub rss_max: u64,
    /// `VmHWM` at the end, bytes.
    pub hwm: u64,
    pub threads: u64,
    /// Of the last sample: anonymous memory (heap, stacks) and file pages (the binary and
    /// its libraries, shared with every other process mapping them).
    pub rss_anon: u64,
    pub rss_file: u64,
    pub samples: usize,
    pub cpu: Duration,
    pub wall: Duration,
}

/// Waits `warmup`, then samples process `pid` once a second for `seconds`.
pub fn watch(pid: u32, warmup: Duration, seconds: u64) -> Result<Watched, ReadError> {
    sleep_alive(pid, warmup)?;
    let cpu0 = cpu::process_cpu(pid)?;
    let t0 = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..seconds.max(1) {
        sleep_alive(pid, Duration::from_secs(1))?;
        samples.push(cpu::process_rss(pid)?);
    }
    let cpu = cpu::process_cpu(pid)?.saturating_sub(cpu0);
    let wall = t0.elapsed();
    let status = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&status).map_err(|source| ReadError::Proc {
        path: status.clone(),
        source,
    })?;
    let threads = parse_threads(&text).ok_or(ReadError::Format {
        path: status,
        detail: "no Threads: line".into(),
    })?;
    let kib = |key: &str| cpu::parse_status_kib(&text, key).map_or(0, |k| k * 1024);
    Ok(Watched {
        rss_anon: kib("RssAnon:"),
        rss_file: kib("RssFile:"),
        rss_median: median(&mut samples.clone()),
        rss_max: samples.iter().copied().max().unwrap_or(0),
        hwm: cpu::process_hwm(pid)?,
        threads,
        samples: samples.len(),
        cpu,
        wall,
    })
}

/// Sleeps `d` in short steps, failing as soon as the process is gone.
fn sleep_alive(pid: u32, d: Duration) -> Result<(), ReadError> {
    let end = Instant::now() + d;
    loop {
        cpu::process_rss(pid)?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(200)));
    }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The `Threads:` count of `/proc/<pid>/status`.
fn parse_threads(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|rest| rest.trim().parse().ok())
}

/// `label.key=value` lines of one watched window.
pub fn lines(label: &str, w: &Watched) -> String {
    format!(
        "{label}.rss_bytes={}\n{label}.rss_max_bytes={}\n{label}.hwm_bytes={}\n\
         {label}.threads={}\n{label}.rss_anon_bytes={}\n{label}.rss_file_bytes={}\n\
         {label}.samples={}\n{label}.cpu_seconds={:.3}\n{label}.wall_seconds={:.3}\n",
        w.rss_median,
        w.rss_max,
        w.hwm,
        w.threads,
        w.rss_anon,
        w.rss_file,
        w.samples,
        w.cpu.as_secs_f64(),
        w.wall.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_ignores_one_transient_peak() {
        assert_eq!(median(&mut [5, 5, 90, 6, 5]), 5);
        assert_eq!(median(&mut [3]), 3);
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn threads_parse_from_status() {
        assert_eq!(
            parse_threads("Name:\tx\nThreads:\t7\nVmRSS: 1 kB\n"),
            Some(7)
        );
        assert_eq!(parse_threads("Name:\tx\n"), None);
    }

    #[test]
    fn watching_this_process_samples_it() {
        let w = watch(std::process::id(), Duration::ZERO, 1).expect("own /proc");
        assert_eq!(w.samples, 1);
        assert!(w.rss_median > 0 && w.hwm >= w.rss_median, "{w:?}");
        assert!(w.threads >= 1);
    }

    #[test]
    fn a_missing_process_is_an_error_not_a_figure() {
        // pid_max is at most 2^22 on Linux, so this pid cannot exist.
        assert!(watch(u32::MAX - 1, Duration::ZERO, 1).is_err());
    }
}
