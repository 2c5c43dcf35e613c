//! CPU time and memory readings: this process via `getrusage(RUSAGE_SELF)` (all threads,
//! microsecond resolution), other processes via `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! Invariant: readings are cumulative counters; callers take differences around the
//! measured work only, so start-up costs never enter a figure.

use std::time::Duration;

/// Why a CPU or memory reading could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("getrusage failed: {0}; this benchmark needs Linux")]
    Rusage(std::io::Error),
    #[error("cannot read {path}: {source}; is process still running?")]
    Proc {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected format of {path}: {detail}; this benchmark needs Linux procfs")]
    Format { path: String, detail: String },
}

/// User + system CPU time consumed so far by every thread of this process.
pub fn self_cpu() -> Result<Duration, ReadError> {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Err(ReadError::Rusage(std::io::Error::last_os_error()));
    }
    Ok(timeval(usage.ru_utime) + timeval(usage.ru_stime))
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// User + system CPU time of another process (clock-tick resolution, usually 10 ms).
pub fn process_cpu(pid: u32) -> Result<Duration, ReadError> {
    let path = format!("/proc/{pid}/stat");
    let text = read(&path)?;
    let ticks = parse_stat_ticks(&text).map_err(|detail| ReadError::Format {
        path: path.clone(),
        detail,
    })?;
    Ok(ticks_to_duration(ticks, clock_ticks_per_second()))
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) may contain spaces and parentheses, so fields are
/// counted from the last `)`: after it come field 3 (state) onwards, putting utime
/// (field 14) at index 11 and stime (field 15) at index 12.
pub fn parse_stat_ticks(text: &str) -> Result<u64, String> {
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| "no ')' after the command name".to_string())?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize, name: &str| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("field {name} missing or not a number"))
    };
    Ok(field(11, "utime")? + field(12, "stime")?)
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    Duration::from_secs(ticks / hz) + Duration::from_secs_f64((ticks % hz) as f64 / hz as f64)
}

/// Resident set size of a process in bytes (`VmRSS`).
pub fn process_rss(pid: u32) -> Result<u64, ReadError> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size of a process in bytes (`VmHWM`).
pub fn process_hwm(pid: u32) -> Result<u64, ReadError> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

fn status_kib(pid: u32, key: &str) -> Result<u64, ReadError> {
    let path = format!("/proc/{pid}/status");
    let text = read(&path)?;
    parse_status_kib(&text, key).ok_or_else(|| ReadError::Format {
        path,
        detail: format!("no numeric {key} line"),
    })
}

/// The kB figure of one `/proc/<pid>/status` line such as `VmRSS:  5120 kB`.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn read(path: &str) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError::Proc {
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_stat_ticks(line), Ok(325));
        assert!(parse_stat_ticks("1234 (x) S 1").is_err());
        assert!(parse_stat_ticks("no parens").is_err());
    }

    #[test]
    fn ticks_convert_with_the_tick_rate() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
    }

    #[test]
    fn status_lines_parse_in_kib() {
        let text = "Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t  5120 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS:"), Some(5120));
        assert_eq!(parse_status_kib(text, "VmHWM:"), Some(9000));
        assert_eq!(parse_status_kib(text, "VmSwap:"), None);
    }

    #[test]
    fn own_readings_work_and_grow() {
        let before = self_cpu().expect("getrusage");
        let mut x: u64 = 1;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = self_cpu().expect("getrusage");
        assert!(after > before, "cpu did not grow: {before:?} -> {after:?}");
        let pid = std::process::id();
        assert!(process_rss(pid).expect("rss") > 0);
        process_cpu(pid).expect("own /proc stat parses");
    }
}
