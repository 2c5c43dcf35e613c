//! Harness for the end-to-end tests: real binaries as child processes, loopback ports,
//! bounded waits. Tests live in `tests/tests/`.
//!
//! Invariants: every child is killed when its handle drops (no strays after a failed test);
//! every wait has a bound and says what it waited for when it gives up.

pub mod fixtures;
pub mod layers;

/// The wall clock, for end-to-end tests that talk to real processes living in real time.
/// The products read it only through their clock modules (clippy `disallowed-methods`).
#[allow(clippy::disallowed_methods)]
pub fn wall_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub mod load;
pub mod postgres;
pub mod spool_oracle;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Directory of the workspace's built binaries (`target/debug`), found from this test's own
/// executable (`target/debug/deps/<test>`), or `ATTEST_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ATTEST_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process killed on drop; its stderr goes to a log file for post-mortems.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, bin_name: &str, args: &[&str], log_dir: &Path) -> Proc {
        Proc::spawn_with_env(name, bin_name, args, log_dir, &[])
    }

    /// Like [`Proc::spawn`] with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn spawn_with_env(
        name: &str,
        bin_name: &str,
        args: &[&str],
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(bin(bin_name))
            .args(args)
            .env("ATTEST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin_name}: {e}"));
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal (`libc`-free: via the `kill` command) and waits for exit, bounded.
    pub fn signal_and_wait(&mut self, sig: &str, bound: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                start.elapsed() < bound,
                "{} did not exit within {bound:?} after SIG{sig}; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, at most `bound`; panics naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < bound,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Value of the first sample of `name` whose label set contains all of `labels`
/// (`key="value"` pairs), from Prometheus text exposition.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let rest = line.strip_prefix(name)?;
        let (label_part, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let end = r.find('}')?;
                (&r[..end], r[end + 1..].trim())
            }
            None if rest.starts_with(' ') => ("", rest.trim()),
            None => return None,
        };
        let all = labels
            .iter()
            .all(|(k, v)| label_part.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if !all {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

/// An HTTP client for the tests (installs the workspace's one rustls provider, ring).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// GET a URL on loopback, returning status and body (None when the connection fails).
pub async fn get(url: &str) -> Option<(u16, String)> {
    let r = client()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn parses_samples() {
        let t = "# TYPE x gauge\nx{a=\"1\",b=\"2\"} 0.5\nx{a=\"3\"} 7\ny 2\n";
        assert_eq!(sample(t, "x", &[("a", "3")]), Some(7.0));
        assert_eq!(sample(t, "x", &[("b", "2")]), Some(0.5));
        assert_eq!(sample(t, "y", &[]), Some(2.0));
        assert_eq!(sample(t, "x", &[("a", "9")]), None);
    }
}
