//! The sd_notify protocol with real processes, without systemd: the test plays the service
//! manager by binding the `NOTIFY_SOCKET` datagram socket. Each binary sends READY=1 only
//! once it can serve, WATCHDOG=1 at half of `WATCHDOG_USEC`, RELOADING=1 then READY=1 around
//! a SIGHUP reload (an invalid file keeps the running configuration and logs every error),
//! and STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use attest_tests::fixtures::{AgentCred, Collector, path_str};
use attest_tests::{Proc, free_port, get, wait_for};

/// The service manager's end: every datagram received, split into lines.
struct Manager {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn bind(dir: &Path) -> (Manager, String) {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        (
            Manager {
                sock,
                seen: Vec::new(),
            },
            path_str(&path),
        )
    }

    /// Waits (bounded) until `line` arrives; returns every line received before it.
    fn expect(&mut self, line: &str, bound: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen.iter().position(|l| l == line) {
                return self.seen.drain(..=i).collect();
            }
            assert!(
                start.elapsed() < bound,
                "no {line:?} within {bound:?}; got {:?}",
                self.seen
            );
            if let Ok(n) = self.sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.extend(text.lines().map(str::to_string));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_notifies_ready_watchdog_reload_and_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut mgr, sock) = Manager::bind(dir.path());
    let collector = Collector::new(dir.path(), None, &[AgentCred::new("a1")], &[]);
    let cfg = path_str(&collector.config);
    let env = [
        ("NOTIFY_SOCKET", sock.as_str()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let mut proc = Proc::spawn_with_env(
        "collector",
        "attest-collector",
        &["run", "-c", &cfg],
        dir.path(),
        &env,
    );
    mgr.expect("READY=1", Duration::from_secs(30));
    // Ready means ready: the listener answers at once.
    let ready = get(&format!("{}/-/ready", collector.url())).await;
    assert_eq!(ready.map(|r| r.0), Some(200));
    mgr.expect("WATCHDOG=1", Duration::from_secs(5));
    mgr.expect("WATCHDOG=1", Duration::from_secs(5));

    // An invalid reload: RELOADING, every error logged, READY again, old config kept.
    let good = std::fs::read_to_string(&collector.config).expect("read");
    let broken = format!("{good}\n[[agent]]\nid = \"a 2\"\ntoken = \"\"\n");
    std::fs::write(&collector.config, broken).expect("write");
    signal(&proc, "HUP");
    let before = mgr.expect("READY=1", Duration::from_secs(10));
    assert!(before.iter().any(|l| l == "RELOADING=1"), "{before:?}");
    assert!(
        before.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{before:?}"
    );
    let log = wait_for(
        "both errors in the log",
        Duration::from_secs(10),
        || async {
            let log = proc.log_text();
            (log.matches("reload refused").count() >= 2).then_some(log)
        },
    )
    .await;
    assert!(log.contains("agent[1].id: expected an id"), "{log}");
    assert!(
        log.contains("agent[1].token: expected a non-empty string"),
        "{log}"
    );
    let still = get(&format!("{}/-/ready", collector.url())).await;
    assert_eq!(still.map(|r| r.0), Some(200), "the collector kept running");

    signal(&proc, "TERM");
    mgr.expect("STOPPING=1", Duration::from_secs(10));
    let exit = proc.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_notifies_ready_after_binding_and_reloads_its_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut mgr, sock) = Manager::bind(dir.path());
    let listen = free_port();
    let cfg = dir.path().join("agent.toml");
    let base = format!(
        "[agent]\nid = \"a1\"\ncollector_url = \"http://127.0.0.1:{}\"\ntoken = \"t\"\nlisten = \"127.0.0.1:{listen}\"\n",
        free_port()
    );
    let check = |id: &str| {
        format!(
            "\n[[check]]\nid = \"{id}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{listen}\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n"
        )
    };
    std::fs::write(&cfg, format!("{base}{}", check("first"))).expect("write");
    let env = [
        ("NOTIFY_SOCKET", sock.as_str()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let mut proc = Proc::spawn_with_env(
        "agent",
        "attest-agent",
        &["run", "-c", &path_str(&cfg)],
        dir.path(),
        &env,
    );
    mgr.expect("READY=1", Duration::from_secs(30));
    let metrics = get(&format!("http://127.0.0.1:{listen}/metrics")).await;
    assert_eq!(
        metrics.map(|m| m.0),
        Some(200),
        "ready before the metrics listener was bound"
    );
    mgr.expect("WATCHDOG=1", Duration::from_secs(5));

    // A valid reload swaps the checks without a restart.
    std::fs::write(&cfg, format!("{base}{}", check("second"))).expect("write");
    signal(&proc, "HUP");
    let before = mgr.expect("READY=1", Duration::from_secs(10));
    assert!(before.iter().any(|l| l == "RELOADING=1"), "{before:?}");
    wait_for(
        "the new check in the agent's metrics",
        Duration::from_secs(10),
        || async {
            let (_, body) = get(&format!("http://127.0.0.1:{listen}/metrics")).await?;
            (body.contains("check=\"second\"") && !body.contains("check=\"first\"")).then_some(())
        },
    )
    .await;

    // An invalid one changes nothing and logs every error.
    std::fs::write(
        &cfg,
        format!(
            "{base}{}\n[[check]]\nid = \"bad\"\nkind = \"smtp\"\ninterval = \"0s\"\n",
            check("second")
        ),
    )
    .expect("write");
    signal(&proc, "HUP");
    mgr.expect("READY=1", Duration::from_secs(10));
    let log = wait_for(
        "both errors in the log",
        Duration::from_secs(10),
        || async {
            let log = proc.log_text();
            (log.matches("reload refused").count() >= 2).then_some(log)
        },
    )
    .await;
    assert!(log.contains("check[1].kind"), "{log}");
    assert!(log.contains("check[1].interval"), "{log}");
    let (_, body) = get(&format!("http://127.0.0.1:{listen}/metrics"))
        .await
        .expect("metrics");
    assert!(
        body.contains("check=\"second\""),
        "the running checks stayed:\n{body}"
    );

    signal(&proc, "TERM");
    mgr.expect("STOPPING=1", Duration::from_secs(10));
    let exit = proc.signal_and_wait("TERM", Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}

fn signal(p: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &p.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}
